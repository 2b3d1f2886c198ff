"""Claim C3: backprop from the explicit solution improves it only a little.

For each task, optimizer and explicit start, the relative change of the
training loss and the held-out change of tuned gradient descent. Read off the
shared runs, judged as :mod:`xsol.experiments.claims` describes.
"""

from __future__ import annotations

from pathlib import Path

from xsol.experiments import verdicts as V
from xsol.experiments.figures import plot_by_rate, plot_metric_by_task
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import fmt, fmt_interval, mean_std
from xsol.experiments.sweep import OPTIMIZER_TITLES
from xsol.experiments.tuning import START_TITLES, chosen_rates, optimizers_of, rate_curve

TITLE = "backprop from the explicit solution improves it only a little"

C3_TRAIN = -0.05
C3_LM_HELDOUT = -0.02
C3_IMG_ACCURACY = 0.01
C3_RULE = ("a (task, start, optimizer) case is marginal when, at the tuned learning rate, the "
           f"95% interval of the relative training-loss change lies above {C3_TRAIN:.0%} and the "
           "held-out gain is small: relative held-out loss change above "
           f"{C3_LM_HELDOUT:.0%} (language models) or accuracy gain below "
           f"{100 * C3_IMG_ACCURACY:.0f} point (images); not marginal when either interval lies "
           "on the other side; inconclusive otherwise. C3 holds if every case is marginal, "
           "partly if some are.")


def c3_case(rel_train, heldout, is_lm: bool) -> str:
    """C3's verdict for one case from per-seed relative training-loss and held-out changes."""
    a = V.against(rel_train, C3_TRAIN, side="above")
    b = (V.against(heldout, C3_LM_HELDOUT, side="above") if is_lm
         else V.against(heldout, C3_IMG_ACCURACY, side="below"))
    return V.both(a, b)


def _rel_change(t, key):
    first, last = t.rows[0][key], t.rows[-1][key]
    return (last - first) / abs(first) if first else float("nan")


def _heldout_change(t, is_lm):
    return (_rel_change(t, "test_loss") if is_lm
            else t.rows[-1]["test_accuracy"] - t.rows[0]["test_accuracy"])


def claim_c3(runs: dict, out: Path, cfg) -> ClaimResult:
    """C3: backprop from the explicit solution improves it only a little."""
    rows, srows, data, status = [], [], {}, {}
    curves = {}
    for name, rs in runs.items():
        is_lm = rs[0].kind == "ids"
        curves[name] = {}
        for opt in optimizers_of(rs):
            for start in ("explicit", "calibrated"):
                rel = [_rel_change(r.tuned(opt, start), "train_loss") for r in rs]
                held = [_heldout_change(r.tuned(opt, start), is_lm) for r in rs]
                key = f"{name} / {OPTIMIZER_TITLES[opt]} / {START_TITLES[start]}"
                status[key] = c3_case(rel, held, is_lm)
                rows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                                 start=START_TITLES[start], lr=chosen_rates(rs, opt, start),
                                 rel=fmt_interval(rel, 1, 100, "%"),
                                 held=(fmt_interval(held, 1, 100, "%") if is_lm
                                       else fmt_interval(held, 4)),
                                 verdict=status[key]))
                data[key] = dict(relative_train_loss_change=V.interval(rel),
                                 heldout_change=V.interval(held), verdict=status[key])
                curve = rate_curve(rs, opt, start, lambda t: _rel_change(t, "train_loss"), 100)
                curves[name][f"{OPTIMIZER_TITLES[opt]}, {START_TITLES[start]}"] = curve
                for j, lr in enumerate(curve[0]):
                    srows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                                      start=START_TITLES[start], lr=f"{lr:g}",
                                      rel=fmt(mean_std(curve[1][:, j]), 1)))
    verdict = V.combine(status.values())
    n_marg = sum(v == "holds" for v in status.values())
    n_not = sum(v == "does not hold" for v in status.values())
    summary = (f"marginal in {n_marg} of {len(status)} (task, start, optimizer) cases, not "
               f"marginal in {n_not}, inconclusive in {len(status) - n_marg - n_not}")
    for name, rs in runs.items():
        k = f"{name} / {OPTIMIZER_TITLES[optimizers_of(rs)[0]]} / explicit"
        summary += (f"; {name}: training loss "
                    f"{100 * data[k]['relative_train_loss_change']['mean']:+.1f}% from explicit")
    table = Table(
        f"Tuned gradient descent ({cfg.steps} steps) started from the explicit solution: "
        "relative change of the training loss from step 0 to the end, and of the held-out "
        "figure (language models: relative held-out loss change; images: accuracy change), "
        "with 95% intervals over seeds.",
        [("task", "task", None), ("optimizer", "optimizer", None), ("start", "start", None),
         ("lr", "chosen rate (seeds)", None), ("rel", "train loss change", None),
         ("held", "held-out change", None), ("verdict", "marginal?", None)], rows)
    stable = Table("Sensitivity: relative training-loss change (%) from the explicit start at "
                   "every learning rate of the grid (mean ± std over seeds).",
                   [("task", "task", None), ("optimizer", "optimizer", None),
                    ("start", "start", None), ("lr", "rate", None), ("rel", "change (%)", None)],
                   srows)
    plot1 = plot_metric_by_task(runs, "test_loss", ["explicit", "calibrated", "random"],
                                out / "c3_heldout_loss.png", ylabel="held-out loss (nats)",
                                title="C3: held-out loss, tuned Adam from explicit vs random init")
    plot2 = plot_by_rate(curves, out / "c3_sensitivity.png",
                         ylabel="training-loss change from the explicit start (%)",
                         hline=(100 * C3_TRAIN, "-5%"),
                         title="C3 across learning rates")
    return ClaimResult("C3", TITLE,
                       verdict, summary, [table, stable], [Path(plot1).name, Path(plot2).name],
                       [], data, rule=C3_RULE)

