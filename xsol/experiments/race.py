"""To the optimum with and without backpropagation: passes and seconds to a loss gap.

For one softmax layer and one L2 penalty ``l2`` the training loss
``L(W, b) = mean cross-entropy + l2/2 ||W||^2`` has one optimum ``L*``, found
by :func:`xsol.optimize.optimum.fit_optimum` run long (its gradient max-norm is
reported, and any method that goes lower moves the reference down). Each
method runs from its start and is scored by the passes over the training
data and the wall seconds it needs to bring ``(L - L*) / L*`` below
``tolerance`` (1e-3), and by the test accuracy of the weights at that point:

* ``gis`` and ``lbfgs`` from the explicit solution and from zero:
  :func:`xsol.refine` (forward passes only; the pass that gathers the
  co-occurrences ``F`` counts as one pass and its seconds, with the explicit
  solve for the explicit start, are included).
* ``adam``: Optax Adam from zero, full batch (one step = one pass: a forward
  and a backward pass over all the data). Its learning rate is chosen from a
  stated log-spaced grid by the validation loss at the end of the budget, on
  a validation split held out of the training set (every method trains on the
  rest); the chosen run is the one reported, the others are listed.
* ``optax_lbfgs``: :func:`optax.lbfgs` full batch with its zoom line search,
  the iteration :func:`xsol.optimize.optimum.fit_optimum` runs, stepped one iteration
  at a time; its passes are the line search's function-and-gradient
  evaluations (plus one at the start), from zero and from the explicit
  solution (whose statistics pass is counted as for ``lbfgs``).

Every method starts from the same explicit weights, row- and column-centered
(the same probabilities, the smallest penalty: see :mod:`xsol.optimize.refinement`).
Compilation is excluded from every clock (each computation runs once on
throwaway inputs first); evaluations of the test accuracy are off the clock.
A run stops at its pass or time budget, or once its gap is below
``stop_gap``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xsol.core import inputs

from xsol.solvers import scoring
from xsol.solvers.explicit import fit_explicit
from xsol.optimize.optimum import fit_optimum, layer_loss
from xsol.optimize.refinement import refine

__all__ = ['BACKPROP_FREE', 'FASHION_DIR', 'METHODS', 'METHOD_NOTE', 'Settings', 'TOLERANCE', 'bench_task', 'compare', 'format_refine', 'load_tasks', 'plot_refine', 'run_adam', 'run_optax_lbfgs', 'run_refine', 'run_refine_method']

#: The loss gap every method is timed to: ``(L - L*) / L* <= TOLERANCE``.
TOLERANCE = 1e-3
#: The L2 penalty of every task (finite optimum, no overfitting of note on these data).
DEFAULT_L2 = 1e-5
FASHION_DIR = "/usr/share/datasets/fashion-mnist"

#: Method keys and their labels, backprop-free ones first.
METHODS = {
    "gis_explicit": "GIS from explicit",
    "gis_zeros": "GIS from zero",
    "lbfgs_explicit": "stats L-BFGS from explicit",
    "lbfgs_zeros": "stats L-BFGS from zero",
    "adam": "Adam from zero (tuned lr)",
    "optax_lbfgs_zeros": "optax L-BFGS from zero",
    "optax_lbfgs_explicit": "optax L-BFGS from explicit",
}
BACKPROP_FREE = ("gis_explicit", "gis_zeros", "lbfgs_explicit", "lbfgs_zeros")

#: How the methods are run and counted, in a few sentences (for reports).
METHOD_NOTE = (
    "Backprop-free: GIS and L-BFGS on co-occurrence statistics (xsol.refine: forward passes "
    "only), from the explicit solution and from zero. With backpropagation: Adam from zero, "
    "full batch, its learning rate chosen from the grid by the validation loss at the end of "
    "its budget (a validation split held out of the training set; every method trains on the "
    "rest); optax L-BFGS with its zoom line search (fit_optimum's iteration), from zero and "
    "from the explicit solution. One pass is one pass over the training data: a statistics or "
    "forward pass, one full-batch Adam step (forward and backward), one L-BFGS function-and-"
    "gradient evaluation; the pass that gathers the statistics counts for the backprop-free "
    "schemes and for every start from the explicit solution. Explicit starts are row- and "
    "column-centered (the same probabilities, the smallest penalty). Compilation is excluded "
    "from every clock; test accuracy is measured off the clock on the weights where the "
    "tolerance was first met. The reference optimum L* is fit_optimum's loss at the same l2.")


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


# ------------------------------------------------------------------------------ helpers


def _gap(loss: float, ref: float) -> float:
    return (loss - ref) / abs(ref)


def _centered(W, b, *, kind: str, X):
    """Row means of ``W`` removed, column means moved into ``b`` (when every example sums to 1)."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    W = W - W.mean(axis=1, keepdims=True)
    if kind == "ids" or bool(np.all(np.asarray(X).sum(axis=1, dtype=np.float64) > 0)):
        m = W.mean(axis=0)
        W, b = W - m[None, :], b + m
    return W.astype(np.float32), b.astype(np.float32)


def _accuracy(W, b, X, y, kind) -> float:
    pred = scoring.predict(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32), X,
                           kind=kind)
    return float(np.mean(pred == y))


def _curve(label, passes, seconds, losses, ref, target, reached_at, params, test, kind,
           **extra) -> dict:
    """A method's record: its curve, and passes/seconds/test accuracy where it met ``target``."""
    best = np.minimum.accumulate(np.asarray(losses, np.float64))
    reached = None
    if reached_at is not None:
        i = reached_at
        reached = {"passes": int(passes[i]), "seconds": float(seconds[i]),
                   "train_loss": float(losses[i]),
                   "test_accuracy": _accuracy(*params, test[0], test[1], kind)}
    return {"label": label, "passes": [int(p) for p in passes],
            "seconds": [float(s) for s in seconds], "losses": [float(v) for v in best],
            "final_gap": _gap(float(best[-1]), ref) if len(best) else None,
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
        return (_gap(step.loss, ref) <= settings.stop_gap
                or time.perf_counter() - t0 > settings.max_seconds)

    r = refine(X, y, N, method=method, init=init, l2=l2, max_passes=settings.max_passes,
               kind=kind, vocab_size=vocab_size, callback=cb)
    passes = 1 + np.arange(1, r.passes + 1)  # the statistics pass first
    seconds = r.statistics_seconds + np.cumsum(r.pass_seconds)
    at = hit["passes"] - 1 if hit else None
    params = (hit["W"], hit["b"]) if hit else None
    return _curve(f"{method} from {init}", passes, seconds, r.losses, ref, target, at, params,
                  test, kind, stopped=r.reason, statistics_seconds=r.statistics_seconds)


def _adam_chunk(fun, tx, length):
    @jax.jit
    def chunk(params, state):
        def body(carry, _):
            p, s = carry
            value, grad = jax.value_and_grad(fun)(p)
            updates, s = tx.update(grad, s, p)
            return (optax.apply_updates(p, updates), s), value
        (params, state), values = jax.lax.scan(body, (params, state), None, length=length)
        return params, state, values
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
    fun = functools.partial(layer_loss, X=Xd, y=yd, kind=kind, normalize="l1", l2=l2)
    zeros = (jnp.zeros((num_features, N), jnp.float32), jnp.zeros((N,), jnp.float32))
    val_loss = jax.jit(functools.partial(layer_loss, X=jnp.asarray(Xval), y=jnp.asarray(yval),
                                         kind=kind, normalize="l1", l2=0.0))
    runs = []
    for lr in settings.learning_rates:
        tx = optax.adam(lr)
        step_chunk = _adam_chunk(fun, tx, chunk)
        jax.block_until_ready(step_chunk(zeros, tx.init(zeros)))  # compile, off the clock
        params, state = zeros, tx.init(zeros)
        values, seconds, starts = [], 0.0, []
        per_step = []
        t_budget = time.perf_counter()
        while len(values) < settings.max_passes:
            starts.append((params, state))
            t = time.perf_counter()
            params, state, v = step_chunk(params, state)
            jax.block_until_ready(params)
            dt = time.perf_counter() - t
            seconds += dt
            per_step.extend([dt / chunk] * chunk)
            values.extend(np.asarray(v, np.float64).tolist())
            if (_gap(min(values), ref) <= settings.stop_gap
                    or time.perf_counter() - t_budget > settings.max_seconds):
                break
        values = np.asarray(values)
        under = np.flatnonzero(values <= target)
        runs.append(dict(lr=lr, values=values, per_step=np.asarray(per_step),
                         reached_step=int(under[0]) if len(under) else None,
                         val_loss=float(val_loss(params)), starts=starts, tx=tx,
                         final=params))
    best = min(runs, key=lambda r: (not np.isfinite(r["val_loss"]), r["val_loss"]))
    params_at = None
    k = best["reached_step"]
    if k is not None:  # the iterate after k steps, recomputed from its chunk's start
        p, s = best["starts"][k // chunk]
        one = _adam_chunk(fun, best["tx"], 1)
        for _ in range(k % chunk):
            p, s, _ = one(p, s)
        params_at = (np.asarray(p[0]), np.asarray(p[1]))
    n = len(best["values"])
    passes = np.arange(1, n + 1)
    seconds = np.cumsum(best["per_step"])
    sweep = [{"learning_rate": r["lr"], "validation_loss": r["val_loss"],
              "passes_run": len(r["values"]), "final_gap": _gap(float(np.min(r["values"])), ref),
              "reached_passes": None if r["reached_step"] is None else r["reached_step"] + 1}
             for r in runs]
    return _curve(f"adam lr {best['lr']:g}", passes, seconds, best["values"], ref, target, k,
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
        if (_gap(min(losses), ref) <= settings.stop_gap or n_evals == 0
                or time.perf_counter() - t_budget > settings.max_seconds):
            break
    at = hits.get("i")
    pr = None if not hits else (np.asarray(hits["params"][0]), np.asarray(hits["params"][1]))
    return _curve("optax lbfgs", passes, seconds, losses, ref, target, at, pr, test, kind)


# ------------------------------------------------------------------------------ one task


def _split(X, y, fraction: float, seed: int, kind: str):
    n = len(y)
    k = max(1, int(round(fraction * n)))
    if kind == "ids":  # the tail of the token stream
        idx = np.arange(n)
    else:
        idx = np.random.default_rng(seed).permutation(n)
    fit, val = np.sort(idx[:-k]), np.sort(idx[-k:])
    return X[fit], y[fit], X[val], y[val]


def bench_task(name: str, X_train, y_train, X_test, y_test, num_classes: int, *, kind: str,
               vocab_size: int | None = None, settings: Settings = Settings(),
               say=None) -> dict:
    """Every method of the module docstring on one task; a JSON-ready dict.

    Args:
      name: the task's name.
      X_train, y_train, X_test, y_test: dense non-negative features or token
        windows ``(B, K)``, and int labels.
      num_classes: ``N``.
      kind: ``"dense"`` or ``"ids"``.
      vocab_size: ``V`` for ids.
      settings: budgets and grids.
      say: progress callback (a function of one string), or None.
    """
    say = say or (lambda msg: None)
    N = int(num_classes)
    if settings.max_train is not None:
        X_train, y_train = X_train[:settings.max_train], y_train[:settings.max_train]
    Xfit, yfit, Xval, yval = _split(np.asarray(X_train), np.asarray(y_train, np.int32),
                                    settings.validation_fraction, settings.seed, kind)
    Xfit, yfit = inputs.aligned(Xfit), inputs.aligned(yfit, np.int32)
    if kind == "ids":
        V = int(vocab_size)
        K = int(Xfit.shape[1])
        M = K * V
    else:
        V, K, M = None, None, int(Xfit.shape[1])
    test = (np.asarray(X_test) if kind != "ids" else inputs.aligned(X_test, np.int32),
            np.asarray(y_test, np.int32))
    l2 = settings.l2

    say(f"{name}: reference optimum (fit_optimum, up to {settings.optimum_iterations} iterations)")
    t = time.perf_counter()
    opt = fit_optimum(Xfit, yfit, N, kind=kind, num_features=M, l2=l2,
                      max_iter=settings.optimum_iterations, tol=1e-6)
    optimum = {"loss": opt.loss, "grad_max": opt.grad_norm, "iterations": opt.iterations,
               "iteration_cap": settings.optimum_iterations,
               "converged": opt.grad_norm <= 1e-6, "seconds": time.perf_counter() - t,
               "test_accuracy": _accuracy(opt.weights, opt.bias, *test, kind)}
    ref = opt.loss
    target = ref * (1 + settings.tolerance)

    # Compile every kernel once on these shapes, off the clock.
    sol = fit_explicit(Xfit, yfit, N, kind=kind, vocab_size=V)
    refine(Xfit, yfit, N, kind=kind, vocab_size=V, max_passes=1, stats=sol.stats)
    t = time.perf_counter()
    sol = fit_explicit(Xfit, yfit, N, kind=kind, vocab_size=V)
    jax.block_until_ready(sol.weights)
    explicit_seconds = time.perf_counter() - t
    start = _centered(sol.weights, sol.bias, kind=kind, X=Xfit)

    def train_loss(params):
        return float(layer_loss(params, jnp.asarray(Xfit), jnp.asarray(yfit), kind, "l1", l2))

    explicit = {"train_loss": train_loss((sol.weights, sol.bias)),
                "centered_train_loss": train_loss(start), "seconds": explicit_seconds,
                "test_accuracy": _accuracy(sol.weights, sol.bias, *test, kind)}
    explicit["gap"] = _gap(explicit["train_loss"], ref)
    explicit["centered_gap"] = _gap(explicit["centered_train_loss"], ref)

    methods = {}
    for key in BACKPROP_FREE:
        method, init = key.split("_")
        say(f"{name}: {METHODS[key]}")
        methods[key] = run_refine_method(method, init, Xfit, yfit, N, kind=kind, vocab_size=V,
                                         l2=l2, ref=ref, target=target, settings=settings,
                                         test=test)
    say(f"{name}: Adam, learning rates {settings.learning_rates}")
    methods["adam"] = run_adam(Xfit, yfit, Xval, yval, N, kind=kind, num_features=M, l2=l2,
                               ref=ref, target=target, settings=settings, test=test)
    say(f"{name}: optax L-BFGS from zero and from the explicit solution")
    methods["optax_lbfgs_zeros"] = run_optax_lbfgs(Xfit, yfit, N, kind=kind, num_features=M,
                                                   l2=l2, ref=ref, target=target,
                                                   settings=settings, test=test)
    methods["optax_lbfgs_explicit"] = run_optax_lbfgs(
        Xfit, yfit, N, kind=kind, num_features=M, l2=l2, ref=ref, target=target,
        settings=settings, test=test, init=start, startup_seconds=explicit_seconds,
        startup_passes=1)
    for k, m in methods.items():
        m["label"] = METHODS[k]

    below = min(min(m["losses"]) for m in methods.values() if m["losses"])
    return {
        "task": name, "kind": kind, "num_classes": N, "num_features": M, "vocab_size": V,
        "window": K, "train_examples": int(len(yfit)), "validation_examples": int(len(yval)),
        "test_examples": int(len(test[1])), "l2": l2, "tolerance": settings.tolerance,
        "optimum": optimum, "target_loss": target, "explicit": explicit,
        "lowest_loss_seen": below,
        "reference_note": ("a method went below fit_optimum's loss by more than 1e-6 relative"
                           if below < ref * (1 - 1e-6) else "fit_optimum's loss is the lowest"),
        "methods": methods, "comparison": compare(methods),
    }


def compare(methods: dict) -> dict:
    """The best backprop-free method (fewest passes to the target, then seconds) against Adam."""
    free = [(k, methods[k]["reached"]) for k in BACKPROP_FREE if methods.get(k, {}).get("reached")]
    adam = methods.get("adam", {}).get("reached")
    if not free:
        return {"best_backprop_free": None, "fewer_passes": False, "less_time": False,
                "adam_reached": adam is not None}
    key, r = min(free, key=lambda kr: (kr[1]["passes"], kr[1]["seconds"]))
    fastest_key, fastest = min(free, key=lambda kr: kr[1]["seconds"])
    return {
        "best_backprop_free": key, "passes": r["passes"], "seconds": r["seconds"],
        "fastest_backprop_free": fastest_key, "fastest_seconds": fastest["seconds"],
        "adam_reached": adam is not None,
        "adam_passes": None if adam is None else adam["passes"],
        "adam_seconds": None if adam is None else adam["seconds"],
        "fewer_passes": adam is None or r["passes"] < adam["passes"],
        "less_time": adam is None or fastest["seconds"] < adam["seconds"],
        "pass_ratio": None if adam is None else adam["passes"] / r["passes"],
        "time_ratio": None if adam is None else adam["seconds"] / fastest["seconds"],
    }


# ------------------------------------------------------------------------------ the section


def load_tasks(quick: bool, *, data_dir: str | None = None, say=None) -> list[dict]:
    """digits, Fashion-MNIST (when present; a subset with ``quick``) and a K=2 text LM."""
    from xsol import data  # noqa: PLC0415

    say = say or (lambda msg: None)
    tasks = []
    d = data.load_images("digits", None, flatten=True)
    tasks.append(dict(name="digits", X_train=d.x_train, y_train=d.y_train, X_test=d.x_test,
                      y_test=d.y_test, num_classes=10, kind="dense"))
    fdir = data_dir or (FASHION_DIR if os.path.isdir(FASHION_DIR) else None)
    try:
        f = data.load_images("fashion_mnist", fdir, flatten=True)
    except Exception as e:  # noqa: BLE001 - absent data: the section runs without it
        say(f"fashion_mnist skipped: {type(e).__name__}: {str(e).splitlines()[0]}")
    else:
        n_tr, n_te = (3000, 1000) if quick else (None, None)
        tasks.append(dict(name="fashion_mnist" + (f" (first {n_tr})" if quick else ""),
                          X_train=f.x_train[:n_tr], y_train=f.y_train[:n_tr],
                          X_test=f.x_test[:n_te], y_test=f.y_test[:n_te], num_classes=10,
                          kind="dense"))
    V, max_tokens = (200, 12000) if quick else (500, None)
    ids, vocab = data.tokenize(data.load_text(None), vocab_size=V)
    if max_tokens:
        ids = ids[:max_tokens]
    train, held = data.split_tokens(ids, held_out=0.1)
    Xtr, ytr = data.context_windows(train, 2)
    Xte, yte = data.context_windows(held, 2)
    Vt = len(vocab)
    tasks.append(dict(name=f"text K=2 (V={Vt}, {len(ids)} tokens)", X_train=Xtr.astype(np.int32),
                      y_train=ytr.astype(np.int32), X_test=Xte.astype(np.int32),
                      y_test=yte.astype(np.int32), num_classes=Vt, kind="ids", vocab_size=Vt))
    return tasks


def run_refine(quick: bool = False, *, data_dir: str | None = None, say=None,
               plot_path: str | None = None, settings: Settings | None = None) -> dict:
    """The ``refine`` benchmark section: every task of :func:`load_tasks`, a JSON-ready dict.

    Returns:
      ``{"settings", "method", "tasks": [bench_task(...)...], "plot"}``.
    """
    settings = settings or (Settings.quick() if quick else Settings())
    results = []
    for t in load_tasks(quick, data_dir=data_dir, say=say):
        results.append(bench_task(t["name"], t["X_train"], t["y_train"], t["X_test"],
                                  t["y_test"], t["num_classes"], kind=t["kind"],
                                  vocab_size=t.get("vocab_size"), settings=settings, say=say))
    res = {"settings": dataclasses.asdict(settings), "method": METHOD_NOTE, "tasks": results}
    if plot_path:
        res["plot"] = plot_refine(res, plot_path)
    return res


def _fmt_reached(r) -> str:
    if r is None:
        return "not reached in budget"
    return f"{r['passes']:>5d} passes {r['seconds']:8.3f} s  test acc {r['test_accuracy']:.4f}"


def format_refine(res: dict) -> str:
    """A text table: per task and method, passes and seconds to the tolerance, test accuracy."""
    s = res["settings"]
    lines = [f"loss gap (L - L*) / L* <= {s['tolerance']:g} at l2 = {s['l2']:g}; budget "
             f"{s['max_passes']} passes / {s['max_seconds']:g} s per method; Adam lr grid "
             f"{tuple(s['learning_rates'])} chosen by validation loss"]
    for t in res["tasks"]:
        o = t["optimum"]
        lines.append(f"\n  {t['task']}: {t['train_examples']} train / {t['validation_examples']} "
                     f"validation / {t['test_examples']} test; L* = {o['loss']:.6f} "
                     f"(fit_optimum {o['iterations']} iterations, grad max {o['grad_max']:.1e}, "
                     f"{o['seconds']:.1f} s, test acc {o['test_accuracy']:.4f}); explicit gap "
                     f"{t['explicit']['gap']:.3g} (centered {t['explicit']['centered_gap']:.3g}), "
                     f"test acc {t['explicit']['test_accuracy']:.4f}")
        for k, m in t["methods"].items():
            extra = f" (lr {m['learning_rate']:g})" if k == "adam" else ""
            lines.append(f"    {m['label'] + extra:34s} {_fmt_reached(m['reached'])}   final gap "
                         f"{m['final_gap']:.1e}")
        sweep = t["methods"].get("adam", {}).get("sweep") or []
        if sweep:
            lines.append("    Adam sweep (lr: validation loss, passes to tolerance): " + "; ".join(
                f"{w['learning_rate']:g}: {w['validation_loss']:.4f}, "
                + ("not reached" if w["reached_passes"] is None else str(w["reached_passes"]))
                for w in sweep))
        c = t["comparison"]
        if c["best_backprop_free"]:
            lines.append(
                f"    best backprop-free: {METHODS[c['best_backprop_free']]} "
                f"({c['passes']} passes); "
                f"fastest {METHODS[c['fastest_backprop_free']]} ({c['fastest_seconds']:.3f} s); "
                + ("Adam not reached" if not c["adam_reached"] else
                   f"Adam / best: {c['pass_ratio']:.1f}x passes, {c['time_ratio']:.1f}x time"))
    return "\n".join(lines)


def plot_refine(res: dict, path) -> str:
    """Log-scale loss gap against passes, a panel per task (:func:`xsol.core.serialize.save_figure`)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from xsol.core.serialize import save_figure  # noqa: PLC0415

    tasks = res["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    styles = {"gis_explicit": ("C0", "-"), "gis_zeros": ("C0", ":"),
              "lbfgs_explicit": ("C1", "-"), "lbfgs_zeros": ("C1", ":"), "adam": ("C2", "-"),
              "optax_lbfgs_zeros": ("C3", ":"), "optax_lbfgs_explicit": ("C3", "-")}
    for ax, t in zip(axes[0], tasks):
        ref = t["optimum"]["loss"]
        for k, m in t["methods"].items():
            if not m["passes"]:
                continue
            gap = np.maximum((np.asarray(m["losses"]) - ref) / abs(ref), 1e-8)
            color, ls = styles.get(k, ("k", "-"))
            label = m["label"] + (f" {m['learning_rate']:g}" if k == "adam" else "")
            ax.plot(m["passes"], gap, color=color, linestyle=ls, label=label)
        ax.axhline(t["tolerance"], color="gray", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passes over the training data")
        ax.set_ylabel("(L - L*) / L*")
        ax.set_title(t["task"], fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)
