"""Claim C1: the explicit language-model solution is (near-)optimal.

For each language-model task, the relative training-loss gap of the explicit
solution to the optimum (closed form for a bigram, else L-BFGS), at the
configured smoothing and at the smoothing with the lowest training loss. Read
off the shared runs, judged as :mod:`xsol.experiments.claims` describes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from xsol.experiments import verdicts as V
from xsol.experiments.figures import plot_by_rate
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.runs import lm_runs
from xsol.experiments.summary import fmt, fmt_interval, over_seeds

TITLE = "explicit LM solution is near-optimal"

C1_THRESHOLD = 0.02
C1_RULE = (f"a task holds if the {int(100 * V.CONFIDENCE)}% interval of its relative "
           f"training-loss gap to the optimum, at the smoothing with the lowest training loss, "
           f"lies below {C1_THRESHOLD:.0%}; does not hold if it lies above; inconclusive if it "
           "contains the threshold, or if the optimum did not converge (the gap is then only a "
           "lower bound) and the gap is below it. C1 holds if every task holds, partly if some do.")


def c1_task_verdict(best_gaps, exact_or_converged: bool) -> str:
    """C1's verdict for one task from its per-seed relative gaps at the best smoothing."""
    v = V.against(best_gaps, C1_THRESHOLD, side="below")
    if v == "holds" and not exact_or_converged:
        return "inconclusive"
    return v


def optimum_train_loss(r) -> float:
    """The optimum's training loss: closed form for bigrams, else L-BFGS (cross-entropy part)."""
    return r.optimum.get("exact_train_loss", r.optimum["train_loss"])


def claim_c1(runs: dict, out: Path, cfg) -> ClaimResult:
    """C1: the explicit LM solution is (near-)optimal."""
    lm = lm_runs(runs)
    if not lm:
        return ClaimResult("C1", TITLE, "not run",
                           "no language-model task was configured", rule=C1_RULE)
    rows, srows, data, status, notes_tail = [], [], {}, {}, []
    for name, rs in lm.items():
        exact = "exact_train_loss" in rs[0].optimum
        converged = all(r.optimum["converged"] for r in rs)
        sure = exact or converged
        rel = [(r.explicit["train_loss"] - optimum_train_loss(r)) / optimum_train_loss(r) for r in rs]
        grid = [s["smoothing"] for s in rs[0].smoothing]
        gaps = np.asarray([[(s["train_loss"] - optimum_train_loss(r)) / optimum_train_loss(r) for s in r.smoothing]
                           for r in rs])
        best_i = int(np.argmin(gaps.mean(0)))
        best = gaps[:, best_i].tolist()
        status[name] = c1_task_verdict(best, sure)
        for j, a in enumerate(grid):
            srows.append(dict(task=name, a=f"{a:g}", gap=fmt_interval(gaps[:, j], 2, 100, "%"),
                              ppl=fmt(over_seeds(rs, lambda r, j=j: math.exp(r.smoothing[j]["test_loss"])),
                                      1)))
        adam = over_seeds(rs, lambda r: r.adam["random"].rows[-1]["train_loss"])
        rows.append(dict(
            task=name, explicit=fmt(over_seeds(rs, lambda r: r.explicit["train_loss"])),
            optimum=fmt(over_seeds(rs, optimum_train_loss)),
            how="closed form (maximum likelihood)" if exact else
            ("L-BFGS, converged" if converged else "L-BFGS, not converged: gap is a lower bound"),
            rel=fmt_interval(rel, 2, 100, "%"), best_a=f"{grid[best_i]:g}", best=fmt_interval(best, 2, 100, "%"),
            verdict=status[name], adam=fmt(adam),
            ppl_exp=fmt(over_seeds(rs, lambda r: r.explicit["test_perplexity"]), 1),
            ppl_opt=fmt(over_seeds(rs, lambda r: r.optimum["test_perplexity"]), 1)))
        smooth_part = float(np.mean(rel)) - float(np.mean(best))
        data[name] = dict(relative_gap=V.interval(rel), relative_gap_best_smoothing=V.interval(best),
                          best_smoothing=grid[best_i], smoothing_grid=grid,
                          gap_by_smoothing=gaps.tolist(), smoothing_part=smooth_part,
                          exact_optimum=exact, lbfgs_converged=converged, verdict=status[name],
                          adam_random_train_loss=adam)
        if smooth_part >= 0:
            split = (f"{100 * smooth_part:.2f} points of the gap are the smoothing"
                     + ("; what remains is the gap of the explicit average itself." if not exact
                        else " (for a bigram the rest is zero in exact arithmetic: the "
                             "unsmoothed explicit solution is the maximum-likelihood model)."))
        else:
            split = "the configured smoothing has a smaller gap than every value of the grid."
        notes_tail.append(
            f"{name}: at the configured smoothing a = {cfg.lm_smoothing:g} the gap is "
            f"{100 * np.mean(rel):.2f}%, at a = {grid[best_i]:g} it is {100 * np.mean(best):.2f}%: "
            + split)
        opt_ppl = float(np.mean([r.optimum["test_perplexity"] for r in rs]))
        exp_ppl = float(np.mean([r.explicit["test_perplexity"] for r in rs]))
        notes_tail.append(f"{name}: " + V.compare("the optimum's held-out perplexity", opt_ppl,
                                                  "the explicit solution's", exp_ppl, digits=1)
                          + ".")
    verdict = V.combine(status.values())
    summary = "relative training-loss gap at the best smoothing: " + "; ".join(
        f"{n}: {100 * data[n]['relative_gap_best_smoothing']['mean']:.2f}% (a = "
        f"{data[n]['best_smoothing']:g}; {100 * data[n]['relative_gap']['mean']:.2f}% at a = "
        f"{cfg.lm_smoothing:g}) → {status[n]}" for n in lm)
    steps = cfg.steps
    table = Table(
        f"Training loss (nats) of the explicit solution (a = {cfg.lm_smoothing:g}) vs the optimum; "
        "relative gaps with 95% intervals over seeds, at the configured smoothing and at the "
        f"smoothing with the lowest training loss; tuned Adam from random init after {steps} "
        "steps; held-out perplexities.",
        [("task", "task", None), ("explicit", "explicit train loss", None),
         ("optimum", "optimum train loss", None), ("how", "optimum by", None),
         ("rel", "relative gap", None), ("best_a", "best a", None),
         ("best", "relative gap at best a", None), ("verdict", "task verdict", None),
         ("adam", f"tuned Adam@{steps} train loss", None),
         ("ppl_exp", "explicit held-out ppl", None), ("ppl_opt", "optimum held-out ppl", None)],
        rows)
    stable = Table("The gap across smoothing values (the explicit solution's only setting).",
                   [("task", "task", None), ("a", "smoothing a", None),
                    ("gap", "relative training-loss gap", None),
                    ("ppl", "held-out perplexity", None)], srows)
    curves = {n: {"relative gap": ([s["smoothing"] for s in rs[0].smoothing],
                                   100 * np.asarray(data[n]["gap_by_smoothing"]),
                                   [data[n]["best_smoothing"]])} for n, rs in lm.items()}
    plot = plot_by_rate(curves, out / "c1_gap_by_smoothing.png",
                        ylabel="relative training-loss gap (%)", hline=(100 * C1_THRESHOLD, "2%"),
                        title="C1: gap to the optimum against the smoothing a")
    plot = Path(plot)
    plot = plot.name
    notes = [
        f"Setting: word-level next-token prediction on the configured text, vocabulary "
        f"{cfg.vocab_size}; seeds {list(cfg.seeds)} each keep a random "
        f"{int(100 * cfg.resample_fraction)}% of the fitting windows. For a bigram (K = 1) the "
        "optimum's training loss is the conditional entropy of the counts (closed form); for "
        "windows K > 1 it is unpenalized full-batch L-BFGS, whose convergence is checked.",
        "In the smoothing plot the x axis is the smoothing a (circles: the a with the lowest "
        "training loss).",
    ] + notes_tail
    return ClaimResult("C1", TITLE, verdict, summary,
                       [table, stable], [plot], notes, data, rule=C1_RULE)

