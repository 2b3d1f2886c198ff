"""The learning rate a network claim chooses from a grid, and the figures it reads there.

C5 reads every rate at the end of its budget and chooses by the validation
loss there (:func:`grid_row`). C7 trains to convergence: a run *converges*
when its validation loss has not improved by more than :data:`MIN_DELTA` for
a patience of steps (:func:`early_stop`); it keeps its best checkpoint. :func:`stopped_grid` early-stops every rate of a
:class:`xsol.experiments.sweep.GridRun` and chooses the rate with the lowest
checkpoint validation loss; :func:`at_budget` re-chooses at a shorter budget.
Held-out (test) figures are read at the checkpoint and never choose anything.
"""

from __future__ import annotations

import math

import numpy as np

#: An improvement of the validation loss smaller than this (nats) does not count.
MIN_DELTA = 1e-3
#: A run "never left its start" when its held-out loss at the checkpoint is
#: within this (nats) of its loss at step 0.
STUCK_TOLERANCE = 0.01


def early_stop(steps, val_loss, *, patience_steps: int, min_delta: float = MIN_DELTA) -> dict:
    """Early stopping on a recorded validation loss.

    Walks the evaluations in order. An evaluation *improves* when its loss is
    below the best so far by more than ``min_delta``. The run stops at the
    first evaluation at least ``patience_steps`` after the last improvement;
    its checkpoint is the evaluation with the lowest loss up to the stop.

    Args:
      steps: the recorded steps (increasing).
      val_loss: the validation loss at each.
      patience_steps: steps without improvement before stopping.
      min_delta: the smallest improvement that counts.

    Returns:
      ``{"index", "step", "stop_step", "status"}``: the checkpoint's index and
      step, the step where it stopped, and ``"converged"`` (stopped within the
      budget), ``"not converged"`` (still improving at the end) or
      ``"diverged"`` (a non-finite loss before stopping; ``index`` is then the
      best finite evaluation before it).
    """
    steps = [int(s) for s in steps]
    v = np.asarray(val_loss, np.float64)
    if len(steps) != len(v) or not steps:
        raise ValueError("early_stop needs one validation loss per recorded step")
    best, last_improvement, best_i = math.inf, steps[0], None
    for i, (s, x) in enumerate(zip(steps, v)):
        if not math.isfinite(x):
            return dict(index=best_i if best_i is not None else 0,
                        step=steps[best_i] if best_i is not None else steps[0],
                        stop_step=s, status="diverged")
        if x < best - min_delta:  # an improvement: patience starts again
            best, last_improvement = x, s
        if best_i is None or x < v[best_i]:
            best_i = i
        if s - last_improvement >= patience_steps:
            return dict(index=best_i, step=steps[best_i], stop_step=s, status="converged")
    return dict(index=best_i, step=steps[best_i], stop_step=steps[-1], status="not converged")


def stopped_grid(run, patience_steps: int) -> dict:
    """Every rate of a grid early-stopped, the rate chosen, and figures at its checkpoint.

    Returns:
      ``{"grid", "by_lr": {...}, "chosen", "learning_rate", "at_edge", ...}``
      with the chosen run's figures at its checkpoint (NaN when every rate diverged).
    """
    per = []
    for traj in run.trajectories:
        steps = [r["step"] for r in traj.rows]
        es = early_stop(steps, [r["val_loss"] for r in traj.rows], patience_steps=patience_steps)
        row = traj.rows[es["index"]]
        per.append(dict(es, val_loss=row["val_loss"], test_loss=row["test_loss"],
                        test_accuracy=row["test_accuracy"], train_loss=row["train_loss"],
                        grad_norm=traj.rows[-1].get("grad_norm", float("nan")),
                        start_test_loss=traj.rows[0]["test_loss"]))
    by_lr = {k: [p[k] for p in per] for k in per[0]}
    ok = [i for i, p in enumerate(per)
          if p["status"] != "diverged" and math.isfinite(p["val_loss"])]
    out = dict(grid=list(run.learning_rates), by_lr=by_lr, grid_seconds=run.seconds)
    if not ok:
        nan = float("nan")
        return dict(out, chosen=None, learning_rate=None, at_edge=False, status="diverged",
                    test_loss=nan, test_accuracy=nan, train_loss=nan, val_loss=nan,
                    grad_norm=nan, step=None, stop_step=None, start_test_loss=nan, stuck=False)
    i = min(ok, key=lambda j: (per[j]["val_loss"], j))
    p = per[i]
    return dict(out, chosen=i, learning_rate=run.learning_rates[i], at_edge=run.at_edge(i),
                status=p["status"], test_loss=p["test_loss"], test_accuracy=p["test_accuracy"],
                train_loss=p["train_loss"], val_loss=p["val_loss"], grad_norm=p["grad_norm"],
                step=p["step"], stop_step=p["stop_step"], start_test_loss=p["start_test_loss"],
                stuck=bool(abs(p["test_loss"] - p["start_test_loss"]) <= STUCK_TOLERANCE))


def at_budget(run, step: int) -> dict:
    """The rate chosen by the validation loss at ``step`` and its held-out figures there."""
    try:
        i = run.choose("val_loss", step)
    except ValueError:
        return dict(learning_rate=None, test_loss=float("nan"), test_accuracy=float("nan"))
    row = run.trajectories[i].at(step)
    return dict(learning_rate=run.learning_rates[i], at_edge=run.at_edge(i),
                test_loss=row["test_loss"], test_accuracy=row["test_accuracy"],
                val_loss=row["val_loss"])


def grid_row(run, choose_step: int | None = None) -> tuple:
    """The run at the learning rate chosen on validation, and every rate's figures.

    Args:
      run: a :class:`xsol.experiments.sweep.GridRun` with validation and test columns.
      choose_step: the step at which the validation loss chooses (default: the last).

    Returns:
      ``(row, trajectory)``: ``row`` holds the chosen rate, whether it is at
      the grid's edge, the held-out figures at the last step and ``by_lr``
      (final validation and test figures per rate); ``trajectory`` is the
      chosen rate's (None when every rate diverged).
    """
    by_lr = {k: run.values(k).tolist()
             for k in ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss")}
    base = dict(grid=list(run.learning_rates), grid_seconds=run.seconds, by_lr=by_lr)
    try:
        i = run.choose("val_loss", choose_step)
    except ValueError:
        nan = float("nan")
        return dict(base, learning_rate=None, lr_index=None, at_edge=False, diverged=True,
                    test_accuracy=nan, test_loss=nan, val_loss=nan, val_accuracy=nan,
                    train_loss=nan, train_accuracy=nan, start_test_accuracy=nan,
                    start_test_loss=nan), None
    traj = run.trajectories[i]
    last, first = traj.rows[-1], traj.rows[0]
    row = dict(base, learning_rate=run.learning_rates[i], lr_index=i, at_edge=run.at_edge(i),
               diverged=False, test_accuracy=last["test_accuracy"], test_loss=last["test_loss"],
               val_loss=last["val_loss"], val_accuracy=last["val_accuracy"],
               train_loss=last["train_loss"], train_accuracy=last["train_accuracy"],
               grad_norm=last.get("grad_norm"), start_test_accuracy=first["test_accuracy"],
               start_test_loss=first["test_loss"])
    if "distance" in last:
        row["distance_to_start"] = last["distance"]
        row["cosine_to_start"] = last["cosine"]
    return row, traj
