"""Time for iterative optimizers to reach the explicit solution's numbers.

Targets are thresholds on evaluated metrics, e.g. ``("train_loss", 0.52, "<=")``
or ``("test_accuracy", 0.81, ">=")``. Adam (Optax, through
:func:`xsol.train.steps.make_train_chunk`, the library's one training loop)
trains from zero weights in chunks of steps; after each chunk the metrics are
evaluated **off the clock** (only the training steps are timed, blocked on the
new parameters), and the first
``(steps, seconds)`` at which each target holds is recorded. A short
learning-rate sweep picks the rate whose primary metric is best after
``sweep_seconds``; that run then continues (same state, same clock) up to the
budget. Unreached targets are reported as ``None`` with the budget spent.
L-BFGS (scikit-learn ``LogisticRegression``) cannot be interrupted, so it runs
on a ladder of ``max_iter`` values and the time of the shortest run that
reaches a target is reported.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xsol.train import steps as train

Target = tuple[str, float, str]


def _met(value: float, threshold: float, direction: str) -> bool:
    return value <= threshold if direction == "<=" else value >= threshold


class _AdamRun:
    """One Adam run from zero weights that can be continued chunk by chunk."""

    def __init__(self, model, X, y, lr: float, batch_size: int | None, seed: int):
        self.lr = float(lr)
        self.X, self.y = X, y
        tx = optax.adam(self.lr)
        params = jax.tree_util.tree_map(jnp.zeros_like, model.init_params(seed))
        self.run_chunk = train.make_train_chunk(model.apply, tx, batch_size=batch_size)
        self.key = jax.random.PRNGKey(seed)
        # Compile (and discard) on a throwaway state: the state argument is donated.
        t0 = time.perf_counter()
        jax.block_until_ready(self.run_chunk(train.create_train_state(
            jax.tree_util.tree_map(jnp.copy, params), tx), X, y, self.key, 1))
        self.compile_s = time.perf_counter() - t0
        self.state = train.create_train_state(params, tx)
        self.steps = 0
        self.chunk = 1
        self.seconds = 0.0
        self.history: list[dict] = []
        self.reached: dict[str, dict | None] = {}

    def advance(self, num_steps: int) -> None:
        t0 = time.perf_counter()
        self.state = jax.block_until_ready(
            self.run_chunk(self.state, self.X, self.y, self.key, int(num_steps)))
        self.seconds += time.perf_counter() - t0
        self.steps += int(num_steps)

    def record(self, evaluate: Callable, targets: dict[str, Target]) -> dict:
        m = evaluate(self.state.params)
        self.history.append({"step": self.steps, "seconds": self.seconds, **m})
        for name, (metric, thr, direction) in targets.items():
            if self.reached.get(name) is None and _met(m[metric], thr, direction):
                self.reached[name] = {"steps": self.steps, "seconds": self.seconds, metric: m[metric]}
        return m

    def done(self, targets) -> bool:
        return all(self.reached.get(n) is not None for n in targets)

    def summary(self, targets) -> dict:
        return {
            "learning_rate": self.lr,
            "steps": self.steps,
            "train_seconds": self.seconds,
            "compile_s": self.compile_s,
            "final": self.history[-1] if self.history else None,
            "reached": {n: self.reached.get(n) for n in targets},
        }


def _train_until(run: _AdamRun, evaluate, targets, *, seconds: float, max_steps: int,
                 first_chunk: int, growth: float = 1.3, max_chunk: int = 2000) -> None:
    if not run.history:
        run.chunk = max(1, int(first_chunk))
        run.record(evaluate, targets)
    while run.seconds < seconds and run.steps < max_steps and not run.done(targets):
        run.advance(min(run.chunk, max_steps - run.steps))
        run.record(evaluate, targets)
        run.chunk = min(max_chunk, max(run.chunk + 1, int(run.chunk * growth)))


def adam_time_to_targets(model, X, y, evaluate: Callable[[object], dict],
                         targets: dict[str, Target], *, primary: str,
                         learning_rates=(0.01, 0.03, 0.1, 0.3), batch_size: int | None = None,
                         sweep_seconds: float = 5.0, budget_seconds: float = 30.0,
                         max_steps: int = 100_000, first_chunk: int = 10,
                         growth: float = 1.3, seed: int = 0) -> dict:
    """Adam from zero weights until every target holds or the budget is spent.

    Args:
      model: an :mod:`xsol.models.linen` model.
      X, y: training inputs (device arrays) and labels.
      evaluate: ``params -> {metric: value}`` (run off the clock).
      targets: ``{name: (metric, threshold, "<=" | ">=")}``.
      primary: the metric that ranks learning rates after the sweep (lower is
        better for ``"<="`` targets' metrics, higher for ``">="``).
      learning_rates: the sweep.
      batch_size: minibatch size, or None for full-batch steps.
      sweep_seconds: training time per learning rate in the sweep.
      budget_seconds: training time cap of the chosen rate's run (includes its sweep part).
      max_steps: step cap.
      first_chunk: steps before the first evaluation.
      growth: each chunk of steps between evaluations is this much longer than
        the last (evaluations are off the clock but not free; a target's time
        is resolved to within one chunk).
      seed: initialization (zeros here) and minibatch seed.

    Returns:
      A dict: ``sweep`` (a summary per rate), ``best_learning_rate``, ``best``
      (the chosen run's summary and a ``history`` of evaluations), ``budget``.
    """
    direction = {m: d for m, _, d in targets.values()}.get(primary, "<=")
    runs = []
    for lr in learning_rates:
        run = _AdamRun(model, X, y, lr, batch_size, seed)
        _train_until(run, evaluate, targets, seconds=sweep_seconds, max_steps=max_steps,
                     first_chunk=first_chunk, growth=growth)
        runs.append(run)

    def rank(r: _AdamRun):
        reached = sum(v is not None for v in r.reached.values())
        value = r.history[-1][primary]
        return (-reached, value if direction == "<=" else -value)

    best = min(runs, key=rank)
    _train_until(best, evaluate, targets, seconds=budget_seconds, max_steps=max_steps,
                 first_chunk=first_chunk, growth=growth)
    out = best.summary(targets)
    out["history"] = best.history
    return {
        "sweep": [r.summary(targets) for r in runs],
        "best_learning_rate": best.lr,
        "best": out,
        "budget": {"seconds": budget_seconds, "max_steps": max_steps,
                   "sweep_seconds": sweep_seconds, "batch_size": batch_size},
    }


def lbfgs_time_to_targets(X_train, y_train, evaluate: Callable[[object], dict],
                          targets: dict[str, Target], *, ladder=(5, 10, 20, 40, 80, 160, 320),
                          budget_seconds: float = 30.0, C: float = 1e4) -> dict:
    """scikit-learn ``LogisticRegression(solver="lbfgs")`` on a ladder of ``max_iter``.

    Each rung is a separate fit from scratch, timed alone; a target's time is
    the time of the first rung that reaches it. Stops when every target is
    reached or the rungs so far took ``budget_seconds`` in total.

    Args:
      X_train, y_train: features (as the model sees them) and labels.
      evaluate: ``model -> {metric: value}``.
      targets: as for :func:`adam_time_to_targets`.
      ladder: ``max_iter`` values.
      budget_seconds: total fitting time cap.
      C: inverse L2 strength (large: nearly unregularized).

    Returns:
      ``{"rungs": [...], "reached": {name: {...} | None}, "budget_seconds"}``.
    """
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    rungs, reached, spent = [], {n: None for n in targets}, 0.0
    for it in ladder:
        model = LogisticRegression(C=C, max_iter=int(it), solver="lbfgs")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X_train, y_train)
        dt = time.perf_counter() - t0
        spent += dt
        m = evaluate(model)
        rungs.append({"max_iter": int(it), "iterations": int(np.max(model.n_iter_)),
                      "seconds": dt, **m})
        for name, (metric, thr, direction) in targets.items():
            if reached[name] is None and _met(m[metric], thr, direction):
                reached[name] = {"max_iter": int(it), "seconds": dt, metric: m[metric]}
        if all(v is not None for v in reached.values()) or spent >= budget_seconds:
            break
    return {"rungs": rungs, "reached": reached, "budget_seconds": budget_seconds,
            "spent_seconds": spent}
