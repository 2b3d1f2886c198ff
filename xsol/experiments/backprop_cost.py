"""The backpropagation side of the C6 cost claim: optimizer runs to target training losses.

* :class:`BackpropRunner` -- one optimizer of
  :data:`xsol.experiments.sweep.OPTIMIZERS` from random init
  (``model.init_params(seed)``) on one model and data, compiled once for every
  rate and seed: the library's training loop
  (:func:`xsol.train.steps.run_steps`) run in chunks until the training loss
  first reaches each target, with caps on steps and seconds. FLOPs to target
  = XLA's FLOPs of one compiled training step x steps; time = steps x
  measured seconds per step. A target not reached gives a lower bound.
* :func:`tune` -- the learning rate of each optimizer and target: the rate of
  the grid reaching the target in the fewest steps on the tuning seed,
  searched outward from a start; a run stops as soon as it can no longer be
  the cheapest on any target in either measure.
* :func:`measure_backprop` -- the baseline of every target and measure (the
  cheaper optimizer at its rate), rerun on every seed;
  :func:`summarize_target` turns those runs into per-seed ratios to the
  explicit cost.

``settings`` arguments are :class:`xsol.experiments.claims.c6_cost.CostSettings` (only
``max_steps`` and ``max_seconds`` are read).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xsol.core import inputs
from xsol.experiments.flops import analytic_step_flops, compiled_flops
from xsol.experiments.savings import MEASURES, NO_CLUSTERING, ratio_interval
from xsol.experiments.summary import mean_std
from xsol.experiments.sweep import OPTIMIZERS
from xsol.train.steps import create_train_state, loss_fn, make_train_step, run_steps

__all__ = ["EVAL_EVERY", "TIME_SLACK", "BackpropRunner", "run_cost", "tune", "measure_backprop",
           "per_seed_ratios", "summarize_target"]

#: Full training loss checked every this many steps when training on minibatches.
EVAL_EVERY = 10
#: A tuning run stops once its time exceeds the cheapest run's time times this
#: (a margin for timing noise; FLOPs are exact and get none).
TIME_SLACK = 1.25

#: ``hit`` codes inside the compiled loop: target pending / not asked for.
_PENDING, _SKIPPED = -1, -2


def _make_runner(apply_fn, tx, batch_size: int | None):
    """The training loop, stopping when every asked-for target is reached.

    ``run(state, hit, min_loss, last, X, y, key, targets, num_steps)`` runs at
    most ``num_steps`` steps of :func:`xsol.train.steps.make_train_step` in
    :func:`xsol.train.steps.run_steps`, whose watch keeps ``hit``: ``hit[k]``
    is ``-1`` while target ``k`` is pending, ``-2`` when it is not asked for,
    else the first step whose parameters reach ``targets[k]``. Full batch: the
    loss each step computes anyway is the training loss of the parameters
    before its update, so ``hit`` is exact at no extra cost. Minibatches: the
    full training loss is evaluated every :data:`EVAL_EVERY` steps (and that
    time is counted). The loop stops early once no target is pending or the
    loss is not finite.
    """
    step_fn = make_train_step(apply_fn, tx, jit=False)

    def run(state, hit, min_loss, last, X, y, key, targets, num_steps):
        def watch(carry, _, before, metrics):
            hit, mn, _ = carry
            if batch_size is None:
                loss, checked = metrics["loss"], True
            else:
                checked = before.step % EVAL_EVERY == 0
                full = jax.lax.cond(checked, lambda p: loss_fn(p, apply_fn, X, y),
                                    lambda p: jnp.float32(jnp.inf), before.params)
                loss = jnp.where(checked, full, metrics["loss"])
            newly = (hit == _PENDING) & (loss <= targets) & checked
            hit = jnp.where(newly, before.step, hit)
            mn = jnp.where(checked, jnp.minimum(mn, loss), mn)
            return hit, mn, loss

        def keep_going(carry):
            hit, _, last = carry
            return jnp.any(hit == _PENDING) & jnp.isfinite(last)

        s, (hit, mn, last) = run_steps(step_fn, state, X, y, key, num_steps,
                                       batch_size=batch_size, watch=watch,
                                       keep_going=keep_going, carry=(hit, min_loss, last))
        return s, hit, mn, last

    return jax.jit(run, donate_argnums=0)


def _optimizer(name: str, learning_rate: float = 0.01):
    """The optimizer ``name`` of :data:`OPTIMIZERS`, its rate a leaf of the state.

    ``optax.inject_hyperparams`` keeps the rate in the optimizer state, so one
    compiled loop serves every rate.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {name!r}")
    factory = OPTIMIZERS[name]
    return optax.inject_hyperparams(lambda learning_rate: factory(learning_rate))(
        learning_rate=learning_rate)


def _num_outputs(model) -> int:
    return int(getattr(model, "num_outputs", None) or model.num_classes)


_INIT_CACHE: dict = {}


def _model_key(model):
    return (repr(model), id(getattr(model, "kernel_init", None)),
            id(getattr(model, "bias_init", None)))


def _init_fn(model, optimizer: str = "adam"):
    """``key -> TrainingState`` of ``model.init_params(key)`` and ``optimizer``.

    One compiled function per model makes the states of every optimizer of
    :data:`OPTIMIZERS` at once (run eagerly, every operation of the
    initializers would compile on its own).
    """
    key = _model_key(model)
    if key not in _INIT_CACHE:
        names = tuple(OPTIMIZERS)
        _INIT_CACHE[key] = jax.jit(lambda k: {
            n: create_train_state(p, _optimizer(n))
            for p in [model.init_params(k)] for n in names})
    both = _INIT_CACHE[key]
    return lambda k: both(k)[optimizer]


_VAL_CACHE: dict = {}


def _val_loss_fn(model):
    """``(params, X, y) -> mean cross-entropy``, compiled once per model."""
    key = _model_key(model)
    if key not in _VAL_CACHE:
        _VAL_CACHE[key] = jax.jit(lambda p, X, y: loss_fn(p, model.apply, X, y))
    return _VAL_CACHE[key]


class BackpropRunner:
    """One optimizer from random init on one model and data, compiled once for all rates and seeds.

    Attributes:
      optimizer: a key of :data:`OPTIMIZERS`.
      step_flops: FLOPs of one compiled training step (XLA's count, or analytic).
      flops_source: ``"xla"`` or ``"analytic"``.
      compile_seconds: time to compile the training loop.
    """

    def __init__(self, model, X, y, targets, *, batch_size: int | None,
                 optimizer: str = "adam", validation=None):
        self.model = model
        self.optimizer = optimizer
        Xh = model.prepare(X)
        yh = inputs.check_labels(y, Xh.shape[0], _num_outputs(model))
        self.X, self.y = jnp.asarray(Xh), jnp.asarray(yh, jnp.int32)
        self.targets = jnp.asarray(np.asarray(targets, np.float32))
        self.batch_size = batch_size
        self.validation = None
        if validation is not None:
            Xv = model.prepare(validation[0])
            yv = inputs.check_labels(validation[1], Xv.shape[0], _num_outputs(model))
            self.validation = (jnp.asarray(Xv), jnp.asarray(yv, jnp.int32))
            self._val_loss = _val_loss_fn(model)
        tx = _optimizer(optimizer)
        self._init = _init_fn(model, optimizer)
        key0 = jax.random.PRNGKey(0)
        state = jax.eval_shape(self._init, key0)
        T = len(targets)
        t0 = time.perf_counter()
        self.run_c = _make_runner(model.apply, tx, batch_size).lower(
            state, jnp.full((T,), _PENDING, jnp.int32), jnp.float32(jnp.inf), jnp.float32(0),
            self.X, self.y, jax.random.PRNGKey(0), self.targets, jnp.int32(0)).compile()
        self.compile_seconds = time.perf_counter() - t0
        # XLA counts a while loop's body once (its trip count is an argument here), so the
        # compiled loop's count is that of one compiled training step (plus a few
        # comparisons); the test checks it against the step compiled alone.
        flops = compiled_flops(self.run_c)
        if flops is None:
            B = self.X.shape[0] if batch_size is None else batch_size
            sizes = getattr(model, "sizes", [model.num_features, _num_outputs(model)])
            flops, self.flops_source = analytic_step_flops(B, sizes, model.kind), "analytic"
        else:
            self.flops_source = "xla"
        self.step_flops = float(flops)

    def step_flops_alone(self) -> float | None:
        """XLA's FLOPs of one :func:`make_train_step` step compiled on its own (a check)."""
        tx = _optimizer(self.optimizer)
        state = self._init(jax.random.PRNGKey(0))
        b = self.batch_size
        xb, yb = (self.X, self.y) if b is None else (self.X[:b], self.y[:b])
        return compiled_flops(make_train_step(self.model.apply, tx).lower(state, xb, yb).compile())

    def run(self, learning_rate: float, seed: int, *, max_steps: int, max_seconds: float,
            needed=None, beat=None) -> dict:
        """One run until every asked-for target is reached, a cap is hit, or it cannot win.

        Args:
          learning_rate: the rate.
          seed: seeds the initialization (and the minibatches).
          max_steps, max_seconds: the caps (training steps only are timed).
          needed: which targets to run for (default: all).
          beat: per target, ``None`` or ``(flops, seconds)`` of the cheapest
            run so far; the run stops once, for every pending target, it has
            spent more than that in FLOPs and more than :data:`TIME_SLACK`
            times that in time (it can no longer be the cheaper run).

        Returns:
          ``hits`` (first step reaching each target, None if not reached or
          not asked for), ``needed``, ``steps_run``, ``seconds`` (training
          steps only), ``seconds_per_step``, ``min_loss`` (lowest training
          loss seen), ``final_loss``, ``diverged``, ``stopped`` (why), and
          ``val_loss`` (the validation loss where it stopped, when the runner
          has a validation split).
        """
        T = int(self.targets.shape[0])
        needed = [True] * T if needed is None else [bool(n) for n in needed]
        state = self._init(jax.random.PRNGKey(seed))
        # The rate is a leaf of the optimizer state (optax.inject_hyperparams).
        state.opt_state.hyperparams["learning_rate"] = jnp.asarray(
            learning_rate, state.opt_state.hyperparams["learning_rate"].dtype)
        hit = jnp.asarray([_PENDING if n else _SKIPPED for n in needed], jnp.int32)
        mn, last = jnp.float32(jnp.inf), jnp.float32(0)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
        steps, seconds, chunk, stopped = 0, 0.0, 4, "step cap"
        while True:
            pending = [k for k, h in enumerate(np.asarray(hit)) if h == _PENDING]
            limit = self._beat_limit(pending, beat, seconds / steps if steps else None)
            if limit is not None and steps >= limit:
                stopped = "cannot beat the cheapest run"
                break
            n = min(chunk, max_steps - steps)
            if steps > 0:  # stay within the time cap
                per = seconds / steps
                n = min(n, max(1, int((max_seconds - seconds) / max(per, 1e-9)) + 1))
            if limit is not None:
                n = min(n, max(1, limit - steps))
            t = time.perf_counter()
            state, hit, mn, last = self.run_c(state, hit, mn, last, self.X, self.y, key,
                                              self.targets, jnp.int32(n))
            jax.block_until_ready(hit)
            seconds += time.perf_counter() - t
            steps = int(state.step)
            if not np.any(np.asarray(hit) == _PENDING):
                stopped = "reached"
                break
            if not np.isfinite(float(last)):
                stopped = "diverged"
                break
            if steps >= max_steps:
                break
            if seconds >= max_seconds:
                stopped = "time cap"
                break
            chunk = min(chunk * 2, 1024)
        hits = [int(h) if h >= 0 else None for h in np.asarray(hit)]
        out = {"optimizer": self.optimizer, "learning_rate": float(learning_rate),
               "seed": int(seed), "hits": hits, "needed": needed, "steps_run": steps,
               "seconds": seconds, "seconds_per_step": seconds / max(steps, 1),
               "min_loss": float(mn), "final_loss": float(last),
               "diverged": not np.isfinite(float(last)), "stopped": stopped,
               "step_flops": self.step_flops}
        if self.validation is not None:
            out["val_loss"] = float(self._val_loss(state.params, *self.validation))
        return out

    def _beat_limit(self, pending, beat, seconds_per_step):
        """Steps after which no pending target can be reached more cheaply (None: no limit)."""
        if beat is None or not pending:
            return None
        limit = 0
        for k in pending:
            if beat[k] is None:
                return None
            flops, secs = beat[k]
            by_flops = int(math.ceil(flops / max(self.step_flops, 1e-30)))
            by_time = (int(math.ceil(TIME_SLACK * secs / seconds_per_step))
                       if seconds_per_step else by_flops)
            limit = max(limit, by_flops, by_time, 1)
        return limit


def run_cost(run: dict, k: int) -> dict:
    """What run ``run`` spent on target ``k``: steps, FLOPs, seconds, and whether it reached it.

    A run that did not reach the target contributes what it spent, a lower bound.
    """
    h = run["hits"][k]
    n = run["steps_run"] if h is None else h
    return {"steps": int(n), "flops": n * run["step_flops"], "seconds": n * run["seconds_per_step"],
            "reached": h is not None}


def _run_key(run: dict, k: int, measure: str = "flops"):
    """Sort key of a run on target ``k``: reached first, then cheaper, then lower training loss."""
    c = run_cost(run, k)
    loss = run["min_loss"] if (math.isfinite(run["min_loss"]) and not run["diverged"]) else math.inf
    if not c["reached"]:
        return (1, math.inf, loss)
    return (0, c["flops" if measure == "flops" else "seconds"], loss)


def _better_somewhere(run: dict, than: dict, T: int) -> bool:
    return any(_run_key(run, k) < _run_key(than, k) for k in range(T))


def tune(runners: dict, grid, seed: int, settings, start: dict | None = None) -> dict:
    """Chooses each optimizer's learning rate on ``grid`` by the cost to each target.

    For each optimizer (in the order of ``runners``) the search starts at
    ``start[optimizer]`` (else the grid's middle) and walks up the grid, then
    down, while the next rate reaches some target in fewer steps than its
    neighbour (the cost to target is taken as unimodal in the rate). Every
    run stops once it can no longer be the cheapest on any target in either
    measure (``beat`` of :meth:`BackpropRunner.run`), across optimizers.

    Returns:
      ``{"grid", "seed", "optimizers": {name: {"tried": [runs], "chosen": [run per
      target], "at_edge": [bool per target]}}, "winners": {measure: [(optimizer,
      learning rate) per target]}}``.
    """
    grid = [float(g) for g in grid]
    G = len(grid)
    T = len(next(iter(runners.values())).targets)
    best = [None] * T  # per target: (flops, seconds) of the cheapest run that reached it

    def update_best(r):
        for k in range(T):
            c = run_cost(r, k)
            if c["reached"]:
                b = best[k]
                best[k] = ((c["flops"], c["seconds"]) if b is None
                           else (min(b[0], c["flops"]), min(b[1], c["seconds"])))

    out = {"grid": grid, "seed": int(seed), "optimizers": {}}
    for name, runner in runners.items():
        lr0 = (start or {}).get(name)
        i0 = int(np.argmin([abs(math.log(g / lr0)) for g in grid])) if lr0 else (G - 1) // 2
        tried = {}

        def attempt(i, runner=runner, tried=tried):
            r = runner.run(grid[i], seed, max_steps=settings.max_steps,
                           max_seconds=settings.max_seconds, beat=list(best))
            tried[i] = r
            update_best(r)
            return r

        first = attempt(i0)
        for direction in (+1, -1):
            prev, i = first, i0 + direction
            while 0 <= i < G:
                r = attempt(i)
                if not _better_somewhere(r, prev, T):
                    break
                prev, i = r, i + direction
        runs = [tried[i] for i in sorted(tried)]
        chosen, edge = [], []
        for k in range(T):
            i_best = min(sorted(tried), key=lambda i, k=k: _run_key(tried[i], k))
            chosen.append(tried[i_best])
            edge.append(G > 1 and i_best in (0, G - 1))
        out["optimizers"][name] = {"tried": runs, "chosen": chosen, "at_edge": edge}
    out["winners"] = {}
    for m in MEASURES:
        out["winners"][m] = []
        for k in range(T):
            name = min(out["optimizers"],
                       key=lambda n, k=k: _run_key(out["optimizers"][n]["chosen"][k], k, m))
            out["winners"][m].append((name, out["optimizers"][name]["chosen"][k]["learning_rate"]))
    return out


def measure_backprop(runners: dict, tuned: dict, seeds, settings) -> dict:
    """The baseline of every target and measure, run on every seed.

    The tuning seed reuses its tuning run; the other seeds run each distinct
    (optimizer, rate) once, for the targets it is the baseline of.

    Returns:
      ``{measure: [[run per seed] per target]}`` and ``"runs"``: every run made.
    """
    seeds = [int(s) for s in seeds]
    T = len(next(iter(runners.values())).targets)
    jobs = {}
    for m in MEASURES:
        for k, pair in enumerate(tuned["winners"][m]):
            jobs.setdefault(pair, set()).add(k)
    made = {}
    for (name, lr), ks in jobs.items():
        tuning_run = next(r for r in tuned["optimizers"][name]["tried"] if r["learning_rate"] == lr)
        made[(name, lr, seeds[0])] = tuning_run
        for s in seeds[1:]:
            made[(name, lr, s)] = runners[name].run(
                lr, s, max_steps=settings.max_steps, max_seconds=settings.max_seconds,
                needed=[k in ks for k in range(T)])
    out = {m: [[made[(*tuned["winners"][m][k], s)] for s in seeds] for k in range(T)]
           for m in MEASURES}
    out["runs"] = list(made.values())
    return out


def _censored_median(values, censored):
    """Median of values some of which are lower bounds; returns ``(median, is_lower_bound)``."""
    order = sorted(zip(values, censored), key=lambda vc: (vc[1], vc[0]))
    n = len(order)
    mid = [order[(n - 1) // 2], order[n // 2]]
    return float(np.mean([v for v, _ in mid])), any(c for _, c in mid)


def per_seed_ratios(runs, k: int, measure: str, explicit) -> dict:
    """Per seed: backprop cost to target ``k`` in ``measure``, the explicit cost, and their ratio.

    ``explicit``: the explicit cost per seed (same order as ``runs``).
    """
    costs = [run_cost(r, k) for r in runs]
    key = "flops" if measure == "flops" else "seconds"
    bp = [c[key] for c in costs]
    ex = [float(e) for e in explicit]
    return {"backprop": bp, "explicit": ex, "steps": [c["steps"] for c in costs],
            "ratio": [b / e if e > 0 else math.inf for b, e in zip(bp, ex)],
            "censored": [not c["reached"] for c in costs]}


def summarize_target(target: dict, k: int, measured: dict, tuned: dict) -> dict:
    """Fills ``target[measure]`` (per-seed costs and ratios) from the baseline runs.

    ``target`` holds ``explicit_flops`` and ``explicit_seconds`` per seed (and,
    for the layer-wise network, ``explicit_solve_seconds``).
    """
    for m in MEASURES:
        runs = measured[m][k]
        ex = target["explicit_flops"] if m == "flops" else target["explicit_seconds"]
        d = per_seed_ratios(runs, k, m, ex)
        name, lr = tuned["winners"][m][k]
        d.update(optimizer=name, learning_rate=lr,
                 val_loss=[r.get("val_loss") for r in runs])
        target[m] = d
    if "explicit_solve_seconds" in target:
        d = per_seed_ratios(measured["time"][k], k, "time", target["explicit_solve_seconds"])
        target[NO_CLUSTERING] = d
    steps = [s for s, c in zip(target["flops"]["steps"], target["flops"]["censored"]) if not c]
    target["reached"] = len(steps)
    target["runs"] = len(target["flops"]["steps"])
    target["steps"] = mean_std(steps) if steps else None
    target["max_steps_run"] = int(max(target["flops"]["steps"]))
    for m in MEASURES:
        ci = ratio_interval(target[m]["ratio"])
        target[f"{m}_ratio"] = ci["geomean"]
        target[f"{m}_ratio_lo"], target[f"{m}_ratio_hi"] = ci["lo"], ci["hi"]
        target[f"{m}_lower_bound"] = any(target[m]["censored"])
    target["lower_bound"] = target["flops_lower_bound"] or target["time_lower_bound"]
    return target
