"""Claim C4: randomly initialized parameters move toward the explicit solution.

For each task and optimizer, the row-centered cosine between the weights of
tuned gradient descent from random init and the explicit weights. Read off the
shared runs, judged as :mod:`xsol.experiments.claims` describes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xsol.experiments import verdicts as V
from xsol.experiments.figures import plot_by_rate, plot_metric_by_task
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import fmt, fmt_interval, mean_std, over_seeds
from xsol.experiments.sweep import OPTIMIZER_TITLES
from xsol.experiments.tuning import chosen_rates, optimizers_of, rate_curve

TITLE = "random init moves toward the explicit solution"

C4_PEAK = 0.5
C4_RISE = 0.3
C4_RULE = (f"for each (task, optimizer), gradient descent from random init at its tuned rate "
           f"moves toward the explicit weights when the 95% interval of the peak row-centered "
           f"cosine over the run lies above {C4_PEAK} and that of its rise from step 0 above "
           f"{C4_RISE}; not when either lies below; inconclusive otherwise. C4 holds if every "
           "case moves toward, partly if some do.")


def c4_case(peaks, rises) -> str:
    """C4's verdict for one case from per-seed peak cosines and their rises."""
    return V.both(V.against(peaks, C4_PEAK, side="above"), V.against(rises, C4_RISE, side="above"))


def _peak(t):
    cos = np.asarray(t.column("cosine"), np.float64)
    i = int(np.nanargmax(cos)) if np.isfinite(cos).any() else 0
    return float(cos[i]), int(t.column("step")[i]), float(cos[0]), float(cos[-1])


def claim_c4(runs: dict, out: Path, cfg) -> ClaimResult:
    """C4: randomly initialized parameters move toward the explicit solution."""
    rows, srows, data, status, notes = [], [], {}, {}, []
    curves = {}
    for name, rs in runs.items():
        curves[name] = {}
        for opt in optimizers_of(rs):
            p = [_peak(r.tuned(opt, "random")) for r in rs]
            peaks, steps, firsts, finals = (list(x) for x in zip(*p))
            rises = [a - b for a, b in zip(peaks, firsts)]
            key = f"{name} / {OPTIMIZER_TITLES[opt]}"
            status[key] = c4_case(peaks, rises)
            opt_cos = over_seeds(rs, lambda r: r.optimum["cosine_to_explicit"])
            rows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                             lr=chosen_rates(rs, opt, "random"), start=fmt(mean_std(firsts), 3),
                             peak=fmt_interval(peaks, 3), at=f"{int(np.median(steps))}",
                             final=fmt(mean_std(finals), 3), opt=fmt(opt_cos, 3),
                             verdict=status[key]))
            data[key] = dict(peak=V.interval(peaks), rise=V.interval(rises), peak_steps=steps,
                             final=mean_std(finals), start=mean_std(firsts),
                             optimum_cosine_to_explicit=opt_cos, verdict=status[key])
            m_first, m_peak, m_final = (float(np.mean(x)) for x in (firsts, peaks, finals))
            after = (f"falls to {m_final:.3f} by the end" if m_final < m_peak
                     else "stays there to the end")
            notes.append(f"{key}: " + V.change("the cosine", m_first, m_peak)
                         + f" at step {int(np.median(steps))} (median over seeds), then {after}; "
                         + V.compare("the optimum's own cosine", opt_cos["mean"],
                                     "the final cosine", m_final) + ".")
            curve = rate_curve(rs, opt, "random", lambda t: _peak(t)[0])
            curves[name][OPTIMIZER_TITLES[opt]] = curve
            for j, lr in enumerate(curve[0]):
                srows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt], lr=f"{lr:g}",
                                  peak=fmt(mean_std(curve[1][:, j]), 3)))
    verdict = V.combine(status.values())
    summary = "; ".join(f"{k}: peak cosine {d['peak']['mean']:.2f} (from {d['start']['mean']:.2f},"
                        f" final {d['final']['mean']:.2f}, optimum "
                        f"{d['optimum_cosine_to_explicit']['mean']:.2f})"
                        for k, d in data.items())
    table = Table("Row-centered cosine between the weights of tuned gradient descent from random "
                  "init and the explicit weights (bias folded into W): at step 0, its peak over "
                  "the run (95% interval) and the step of the peak, at the end, and the "
                  "optimum's own cosine.",
                  [("task", "task", None), ("optimizer", "optimizer", None),
                   ("lr", "chosen rate (seeds)", None), ("start", "step 0", None),
                   ("peak", "peak", None), ("at", "peak step (median)", None),
                   ("final", "end", None), ("opt", "optimum", None),
                   ("verdict", "moves toward?", None)], rows)
    stable = Table("Sensitivity: peak cosine at every learning rate (mean ± std over seeds).",
                   [("task", "task", None), ("optimizer", "optimizer", None),
                    ("lr", "rate", None), ("peak", "peak cosine", None)], srows)
    plot1 = plot_metric_by_task(runs, "cosine", ["random"], out / "c4_cosine.png",
                                ylabel="row-centered cosine to explicit",
                                title="C4: the whole cosine curve, tuned Adam from random init",
                                hlines={n: [(float(np.mean([r.optimum["cosine_to_explicit"]
                                                            for r in rs])),
                                             "optimum", dict(color="k", ls="--"))]
                                        for n, rs in runs.items()})
    plot2 = plot_by_rate(curves, out / "c4_sensitivity.png", ylabel="peak cosine",
                         hline=(C4_PEAK, "0.5"), title="C4 across learning rates")
    return ClaimResult("C4", TITLE, verdict, summary,
                       [table, stable], [Path(plot1).name, Path(plot2).name], notes, data,
                       rule=C4_RULE)

