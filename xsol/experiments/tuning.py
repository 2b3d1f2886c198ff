"""How the gradient baselines were tuned: reading the learning-rate sweeps, and the setup section.

Every gradient baseline of the shared runs (:mod:`xsol.experiments.runs`) is a
learning-rate sweep per optimizer and start, the rate chosen on the
validation split. The readers here take the seeds' :class:`SeedRuns` of one
task (``rs``) and an ``(optimizer, start)``; :func:`tuning_section` tabulates
and plots the whole tuning (and how each reference optimum ended) for the
report's setup section.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from xsol.experiments import verdicts as V
from xsol.experiments.figures import plot_by_rate
from xsol.experiments.report import Table
from xsol.experiments.summary import fmt, over_seeds
from xsol.experiments.sweep import OPTIMIZER_TITLES

#: How each start of the gradient baselines is named in the report.
START_TITLES = {"random": "random init", "explicit": "explicit",
                "calibrated": "explicit + temperature"}


def optimizers_of(rs) -> list:
    """The optimizers the seeds' runs were tuned for."""
    return list(rs[0].grids)


def chosen_rate(r, opt, start) -> float:
    """The rate seed ``r`` trained ``opt`` from ``start`` at."""
    return r.grids[opt][start].learning_rates[r.chosen[opt][start]]


def swept_seeds(rs, opt, start) -> list:
    """The seeds that ran the whole grid (the others reused the rate those chose)."""
    n = max(len(r.grids[opt][start].learning_rates) for r in rs)
    return [r for r in rs if len(r.grids[opt][start].learning_rates) == n]


def chosen_rates(rs, opt, start) -> str:
    """The chosen rates with their seed counts, e.g. ``"0.1 (3/5), 1 (2/5)"``."""
    counts = Counter(chosen_rate(r, opt, start) for r in rs)
    reused = len(rs) - len(swept_seeds(rs, opt, start))
    tail = (f"; {reused} seed{'s' if reused > 1 else ''} reused the swept seeds' choice"
            if reused else "")
    return ", ".join(f"{lr:g} ({n}/{len(rs)})" for lr, n in sorted(counts.items())) + tail


def grid_values(rs, opt, start, fn) -> np.ndarray:
    """``(swept seeds, rates)`` of ``fn(trajectory)`` over every rate of the grid."""
    return np.asarray([[fn(t) for t in r.grids[opt][start].trajectories]
                       for r in swept_seeds(rs, opt, start)], np.float64)


def grid_rates(rs, opt, start) -> list:
    """The learning rates of the whole grid."""
    return list(swept_seeds(rs, opt, start)[0].grids[opt][start].learning_rates)


def chosen_by_seed(rs, opt, start) -> list:
    """The rate each swept seed chose."""
    return [chosen_rate(r, opt, start) for r in swept_seeds(rs, opt, start)]


def rate_curve(rs, opt, start, fn, scale: float = 1.0) -> tuple:
    """One curve of :func:`xsol.experiments.figures.plot_by_rate`: ``fn(trajectory)`` by rate.

    Returns:
      ``(rates, scale * values of shape (swept seeds, rates), chosen rates)``.
    """
    return (grid_rates(rs, opt, start), scale * grid_values(rs, opt, start, fn),
            chosen_by_seed(rs, opt, start))


def final_val_loss(traj) -> float:
    """The validation loss at a trajectory's last record (NaN if absent)."""
    return traj.rows[-1].get("val_loss", np.nan)


#: A run whose validation loss fell by more than this (relative) between its
#: last two recorded steps had not converged within its budget.
STILL_IMPROVING = 0.01


def still_improving(traj, key: str = "val_loss") -> bool:
    """True when ``key`` fell by more than :data:`STILL_IMPROVING` between the last two records."""
    if traj.num_rows < 2:
        return False
    a, b = traj.rows[-2].get(key, np.nan), traj.rows[-1].get(key, np.nan)
    return bool(np.isfinite(a) and np.isfinite(b) and b < a * (1 - STILL_IMPROVING))


def tuning_section(runs: dict, setups: dict, out: Path, cfg) -> tuple:
    """Tables and a plot of how every baseline was tuned and how each optimum ended.

    Returns:
      ``(notes, tables, plots, data)`` for the report's setup section.
    """
    rows, data = [], {}
    for name, rs in runs.items():
        for opt in optimizers_of(rs):
            for start in rs[0].grids[opt]:
                swept = swept_seeds(rs, opt, start)
                g = swept[0].grids[opt][start]
                edge = sum(r.grids[opt][start].at_edge(r.chosen[opt][start]) for r in swept)
                val = grid_values(rs, opt, start, final_val_loss)
                diverged = int(np.sum(~np.isfinite(val)))
                finals = [r.tuned(opt, start).rows[-1] for r in rs]
                still = sum(still_improving(r.tuned(opt, start)) for r in rs)
                rows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                                 start=START_TITLES[start], chosen=chosen_rates(rs, opt, start),
                                 edge=f"{edge}/{len(swept)}", diverged=f"{diverged}/{val.size}",
                                 grad=f"{np.median([f.get('grad_norm', np.nan) for f in finals]):.2g}",
                                 still=f"{still}/{len(rs)}"))
                data[f"{name} / {opt} / {start}"] = dict(
                    grid=g.learning_rates, chosen=chosen_by_seed(rs, opt, start),
                    chosen_at_edge=edge, validation_loss=val.tolist(), still_improving=still)
    tables = [Table(
        f"Learning rates chosen on the validation split (lowest validation loss after "
        f"{cfg.steps} steps) from the grid {list(cfg.lr_grid)}; counts over seeds. 'at edge': "
        "swept seeds whose "
        "choice is the grid's smallest or largest rate (the grid may be too narrow there); "
        "'diverged': (seed, rate) runs that ended with a non-finite loss; at the chosen rate, "
        "the median final gradient norm and the seeds whose validation loss still fell by more "
        f"than {STILL_IMPROVING:.0%} between the last two recorded steps (not converged within "
        "the budget).",
        [("task", "task", None), ("optimizer", "optimizer", None), ("start", "start", None),
         ("chosen", "chosen rate (seeds)", None), ("edge", "at edge", None),
         ("diverged", "diverged", None), ("grad", "final gradient norm", None),
         ("still", "still improving", None)], rows)]
    orows = []
    for name, rs in runs.items():
        s = setups[name]
        reasons = Counter(r.optimum["reason"] for r in rs)
        orows.append(dict(
            task=name, l2=f"{s.l2:g}" + (" (grid edge)" if s.l2_table and len(s.l2_table) > 1
                                          and s.l2 in (s.l2_table[0]["l2"], s.l2_table[-1]["l2"])
                                          else ""), how=", ".join(f"{k} ({n}/{len(rs)})" for k, n in
                                                     reasons.items()),
            iters=fmt(over_seeds(rs, lambda r: r.optimum["iterations"]), 0),
            grad=f"{max(r.optimum['grad_norm'] for r in rs):.2g}",
            free=("–" if s.unpenalized is None else
                  f"train accuracy {s.unpenalized['train_accuracy']:.4f}, loss "
                  f"{s.unpenalized['train_loss']:.3g}, largest |W| "
                  f"{s.unpenalized['max_abs_weight']:.3g}, {s.unpenalized['reason']}"),
            separable="–" if s.unpenalized is None else
            ("yes" if s.unpenalized["separable"] else "no")))
        data[f"{name} / optimum"] = dict(l2=s.l2, l2_table=s.l2_table, unpenalized=s.unpenalized,
                                         reasons=dict(reasons))
    tables.append(Table(
        f"The reference optimum (full-batch L-BFGS, at most {cfg.optimum_max_iter} iterations "
        f"for images and {cfg.lm_optimum_max_iter} for language models; "
        "converged = 'gradient': the gradient max-norm reached 1e-05; 'stalled': the relative "
        "loss change stayed below 1e-07 for 10 iterations; 'iteration cap'). Image tasks use "
        f"the L2 penalty with the lowest validation loss among those of "
        f"{list(cfg.optimum_l2_grid)} whose run converged; the "
        "unpenalized fit is shown beside it (separable: it classifies every fitting example "
        "correctly, so the unpenalized loss has no finite minimizer).",
        [("task", "task", None), ("l2", "L2", None), ("how", "how each seed's run ended", None),
         ("iters", "iterations", None), ("grad", "largest final gradient", None),
         ("free", "unpenalized fit", None), ("separable", "separable", None)], orows))
    for name, s in setups.items():
        if s.l2_table:
            tables.append(Table(
                f"{name}: candidate L2 penalties of the optimum on the validation split "
                f"({s.num_validation} examples; the fitting part has {s.num_fit}).",
                [("l2", "L2", "{:g}"), ("val_loss", "validation loss", "{:.4f}"),
                 ("val_accuracy", "validation accuracy", "{:.4f}"), ("reason", "ended by", None),
                 ("iterations", "iterations", None)], s.l2_table))
    curves = {}
    for name, rs in runs.items():
        curves[name] = {}
        for opt in optimizers_of(rs):
            for start in rs[0].grids[opt]:
                curves[name][f"{OPTIMIZER_TITLES[opt]}, {START_TITLES[start]}"] = rate_curve(
                    rs, opt, start, final_val_loss)
    plot = plot_by_rate(curves, out / "tuning_validation_loss.png",
                        ylabel=f"validation loss after {cfg.steps} steps",
                        title="Learning-rate sweeps (mean ± std over seeds)")
    notes = [
        f"Every gradient baseline is trained at each learning rate of a log grid on the same "
        f"minibatches, and the rate with the lowest validation loss after {cfg.steps} steps is "
        f"used; the validation split is {int(100 * cfg.validation_fraction)}% of the training "
        "examples (contiguous for text), never the held-out test examples. Cold and warm starts "
        "are tuned separately.",
        f"Chance is the held-out accuracy of always predicting the most frequent training label. "
        f"Intervals are {int(100 * V.CONFIDENCE)}% Student-t intervals over seeds; tests are "
        f"paired over seeds and Holm-corrected within a claim (alpha {V.ALPHA}).",
    ]
    return notes, tables, [Path(plot).name], data

