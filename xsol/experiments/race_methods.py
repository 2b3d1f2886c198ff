"""The contestants of the race of :mod:`xsol.experiments.race`, each run and scored alike.

Every method runs from its start and is recorded by :func:`curve`: the
passes over the training data and the wall seconds at which its loss first
comes within the target, the test accuracy of the weights there, and its
curve of the best loss so far.

* :func:`run_refine_method` -- GIS or statistics L-BFGS (:func:`xsol.refine`).
* :func:`run_adam` -- Optax Adam from zero, full batch, in chunks of steps of
  the library's training loop (:func:`xsol.train.steps.run_steps`), its
  learning rate chosen by the validation loss at the end of the budget.
* :func:`run_optax_lbfgs` -- :func:`optax.lbfgs` with its zoom line search,
  one iteration at a time.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xsol.optimize.optimum import layer_loss
from xsol.optimize.refinement import refine
from xsol.solvers import scoring
from xsol.train.steps import create_train_state, make_objective_step, run_steps

__all__ = ["TOLERANCE", "DEFAULT_L2", "Settings", "gap", "accuracy", "curve",
           "run_refine_method", "run_adam", "run_optax_lbfgs"]

#: The loss gap every method is timed to: ``(L - L*) / L* <= TOLERANCE``.
TOLERANCE = 1e-3
#: The L2 penalty of every task (finite optimum, no overfitting of note on these data).
DEFAULT_L2 = 1e-5


@dataclasses.dataclass(frozen=True)
class Settings:
    """Budgets and grids of one benchmark run.

    Attributes:
      l2: the penalty.
      tolerance: the relative gap each method is timed to.
      stop_gap: a run stops once its gap is below this.
      max_passes: pass budget of every method.
      max_seconds: time budget of every method (per Adam learning rate).
      learning_rates: Adam's grid.
      validation_fraction: training examples held out to choose Adam's rate.
      optimum_iterations: iteration cap of the reference :func:`fit_optimum`.
      max_train: keep at most this many training examples per task (None: all).
      seed: the validation split's seed.
    """

    l2: float = DEFAULT_L2
    tolerance: float = TOLERANCE
    stop_gap: float = 1e-5
    max_passes: int = 2000
    max_seconds: float = 120.0
    learning_rates: tuple = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    validation_fraction: float = 0.15
    optimum_iterations: int = 10000
    max_train: int | None = None
    seed: int = 0

    @classmethod
    def quick(cls, **kw) -> "Settings":
        return cls(**{**dict(max_passes=400, max_seconds=15.0, learning_rates=(0.03, 0.3, 3.0),
                             optimum_iterations=3000), **kw})


def gap(loss: float, ref: float) -> float:
    """The relative loss gap ``(L - L*) / |L*|``."""
    return (loss - ref) / abs(ref)


def accuracy(W, b, X, y, kind) -> float:
    """Fraction of ``X`` whose argmax score under ``(W, b)`` is ``y``."""
    pred = scoring.predict(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32), X,
                           kind=kind)
    return float(np.mean(pred == y))


def curve(label, passes, seconds, losses, ref, target, reached_at, params, test, kind,
           **extra) -> dict:
    """A method's record: its curve, and passes/seconds/test accuracy where it met ``target``."""
    best = np.minimum.accumulate(np.asarray(losses, np.float64))
    reached = None
    if reached_at is not None:
        i = reached_at
        reached = {"passes": int(passes[i]), "seconds": float(seconds[i]),
                   "train_loss": float(losses[i]),
                   "test_accuracy": accuracy(*params, test[0], test[1], kind)}
    return {"label": label, "passes": [int(p) for p in passes],
            "seconds": [float(s) for s in seconds], "losses": [float(v) for v in best],
            "final_gap": gap(float(best[-1]), ref) if len(best) else None,
            "target_loss": target, "reached": reached, **extra}


# ------------------------------------------------------------------------------ methods


def run_refine_method(method: str, init: str, X, y, N, *, kind, vocab_size, l2, ref, target,
                      settings: Settings, test) -> dict:
    """:func:`xsol.refine` from ``init``, recording the first pass under ``target``."""
    hit: dict = {}
    t0 = time.perf_counter()

    def cb(step):
        if not hit and step.loss <= target:
            hit.update(passes=step.passes, W=step.weights.copy(), b=step.bias.copy())
        return (gap(step.loss, ref) <= settings.stop_gap
                or time.perf_counter() - t0 > settings.max_seconds)

    r = refine(X, y, N, method=method, init=init, l2=l2, max_passes=settings.max_passes,
               kind=kind, vocab_size=vocab_size, callback=cb)
    passes = 1 + np.arange(1, r.passes + 1)  # the statistics pass first
    seconds = r.statistics_seconds + np.cumsum(r.pass_seconds)
    at = hit["passes"] - 1 if hit else None
    params = (hit["W"], hit["b"]) if hit else None
    return curve(f"{method} from {init}", passes, seconds, r.losses, ref, target, at, params,
                  test, kind, stopped=r.reason, statistics_seconds=r.statistics_seconds)


def _adam_chunk(objective, tx, length: int):
    """``length`` full-batch steps of ``tx`` on ``objective(params, X, y)``, one compiled call.

    The steps run in the library's training loop
    (:func:`xsol.train.steps.run_steps`); ``chunk(state, X, y) -> (state,
    values)`` where ``values[i]`` is the objective at the parameters step ``i``
    started from.
    """
    step = make_objective_step(objective, tx, jit=False)

    def record(values, i, _, metrics):
        return values.at[i].set(metrics["loss"])

    @jax.jit
    def chunk(state, X, y):
        return run_steps(step, state, X, y, None, length, batch_size=None, watch=record,
                         carry=jnp.zeros((length,), jnp.float32))
    return chunk


def run_adam(Xfit, yfit, Xval, yval, N, *, kind, num_features, l2, ref, target,
             settings: Settings, test, chunk: int = 10) -> dict:
    """Adam from zero at every rate of the grid; the lowest final validation loss is reported.

    ``values[i]`` of a chunk is the loss of the iterate the step's own forward
    pass evaluated, so the iterate after ``k`` steps is known to be under
    ``target`` at pass ``k + 1``. The parameters where it first is are
    recomputed off the clock (full batch, deterministic).
    """
    Xd, yd = jnp.asarray(Xfit), jnp.asarray(yfit)

    def fun(params, X, y):
        return layer_loss(params, X, y, kind=kind, normalize="l1", l2=l2)

    zeros = (jnp.zeros((num_features, N), jnp.float32), jnp.zeros((N,), jnp.float32))
    val_loss = jax.jit(functools.partial(layer_loss, X=jnp.asarray(Xval), y=jnp.asarray(yval),
                                         kind=kind, normalize="l1", l2=0.0))
    runs = []
    for lr in settings.learning_rates:
        tx = optax.adam(lr)
        step_chunk = _adam_chunk(fun, tx, chunk)
        # compile, off the clock
        jax.block_until_ready(step_chunk(create_train_state(zeros, tx), Xd, yd))
        state = create_train_state(zeros, tx)
        values, seconds, starts = [], 0.0, []
        per_step = []
        t_budget = time.perf_counter()
        while len(values) < settings.max_passes:
            starts.append(state)
            t = time.perf_counter()
            state, v = step_chunk(state, Xd, yd)
            jax.block_until_ready(state)
            dt = time.perf_counter() - t
            seconds += dt
            per_step.extend([dt / chunk] * chunk)
            values.extend(np.asarray(v, np.float64).tolist())
            if (gap(min(values), ref) <= settings.stop_gap
                    or time.perf_counter() - t_budget > settings.max_seconds):
                break
        values = np.asarray(values)
        under = np.flatnonzero(values <= target)
        runs.append(dict(lr=lr, values=values, per_step=np.asarray(per_step),
                         reached_step=int(under[0]) if len(under) else None,
                         val_loss=float(val_loss(state.params)), starts=starts, tx=tx,
                         final=state.params))
    best = min(runs, key=lambda r: (not np.isfinite(r["val_loss"]), r["val_loss"]))
    params_at = None
    k = best["reached_step"]
    if k is not None:  # the iterate after k steps, recomputed from its chunk's start
        state = best["starts"][k // chunk]
        one = _adam_chunk(fun, best["tx"], 1)
        for _ in range(k % chunk):
            state, _ = one(state, Xd, yd)
        params_at = (np.asarray(state.params[0]), np.asarray(state.params[1]))
    n = len(best["values"])
    passes = np.arange(1, n + 1)
    seconds = np.cumsum(best["per_step"])
    sweep = [{"learning_rate": r["lr"], "validation_loss": r["val_loss"],
              "passes_run": len(r["values"]), "final_gap": gap(float(np.min(r["values"])), ref),
              "reached_passes": None if r["reached_step"] is None else r["reached_step"] + 1}
             for r in runs]
    return curve(f"adam lr {best['lr']:g}", passes, seconds, best["values"], ref, target, k,
                  params_at, test, kind, learning_rate=best["lr"], sweep=sweep,
                  choice="lowest validation loss at the end of the budget")


def run_optax_lbfgs(Xfit, yfit, N, *, kind, num_features, l2, ref, target, settings: Settings,
                    test, init=None, startup_seconds: float = 0.0, startup_passes: int = 0,
                    memory_size: int = 20) -> dict:
    """:func:`optax.lbfgs` (as in :func:`xsol.optimize.optimum.fit_optimum`), one iteration at a time."""
    Xd, yd = jnp.asarray(Xfit), jnp.asarray(yfit)
    fun = functools.partial(layer_loss, X=Xd, y=yd, kind=kind, normalize="l1", l2=l2)
    opt = optax.lbfgs(memory_size=memory_size)
    vg = optax.value_and_grad_from_state(fun)

    @jax.jit
    def step(params, state):
        value, grad = vg(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = optax.apply_updates(params, updates)
        return (params, state, optax.tree.get(state, "value"),
                optax.tree.get(state, "num_linesearch_steps"))

    if init is None:
        params = (jnp.zeros((num_features, N), jnp.float32), jnp.zeros((N,), jnp.float32))
    else:
        params = tuple(jnp.asarray(a, jnp.float32) for a in init)
    # Compile, off the clock: twice, since the state after a step can differ in its
    # types (weak types) from the initial one and compile a second variant.
    p1, s1, _, _ = step(params, opt.init(params))
    jax.block_until_ready(step(p1, s1))
    state = opt.init(params)
    # The starting point's loss, off the clock: the first iteration evaluates it again
    # (its first pass), and that time is counted with the iteration.
    first = float(fun(params))
    passes, seconds, losses = [startup_passes + 1], [startup_seconds], [first]
    hits = {}
    clock = startup_seconds
    if first <= target:
        hits = dict(i=0, params=params)
    t_budget = time.perf_counter()
    while passes[-1] < startup_passes + settings.max_passes:
        t = time.perf_counter()
        params, state, value, nls = step(params, state)
        jax.block_until_ready(params)
        clock += time.perf_counter() - t
        n_evals = int(nls)
        passes.append(passes[-1] + n_evals)  # the first pass was counted with the start
        seconds.append(clock)
        losses.append(float(value))
        if not hits and losses[-1] <= target:
            hits = dict(i=len(losses) - 1, params=params)
        if (gap(min(losses), ref) <= settings.stop_gap or n_evals == 0
                or time.perf_counter() - t_budget > settings.max_seconds):
            break
    at = hits.get("i")
    pr = None if not hits else (np.asarray(hits["params"][0]), np.asarray(hits["params"][1]))
    return curve("optax lbfgs", passes, seconds, losses, ref, target, at, pr, test, kind)
