"""Claims C1-C4 and C8, and the tuning section, read off the shared runs.

Each claim function takes ``{task name: [SeedRuns per seed]}`` (see
:mod:`xsol.experiments.runs`) and returns a
:class:`xsol.experiments.report.ClaimResult` whose verdict follows the rule in
its ``rule`` field, applied with the confidence intervals of
:mod:`xsol.experiments.verdicts` (a result whose interval contains its
threshold is *inconclusive*). Gradient baselines are read at the learning rate
chosen on the validation split; each claim's key quantity is also tabulated
and plotted across the whole grid. Every sentence that states a direction is
computed from the numbers it describes.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from xsol.experiments import verdicts as V
from xsol.experiments.figures import plot_by_rate, plot_metric_by_task
from xsol.experiments.interpret import draw_weight_images, top_next_tokens
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import fmt, mean_std
from xsol.experiments.sweep import OPTIMIZER_TITLES

START_TITLES = {"random": "random init", "explicit": "explicit",
                "calibrated": "explicit + temperature"}


def _ms(seed_runs, get):
    return mean_std([get(r) for r in seed_runs])


def _ci(values, digits=4, scale=1.0, unit=""):
    c = V.interval(values)
    return (f"{scale * c['mean']:.{digits}f}{unit} "
            f"[{scale * c['lo']:.{digits}f}, {scale * c['hi']:.{digits}f}]")


def _lm(runs):
    return {k: v for k, v in runs.items() if v[0].kind == "ids"}


def _img(runs):
    return {k: v for k, v in runs.items() if v[0].kind == "dense"}


def _opt_train(r):
    """The optimum's training loss: closed form for bigrams, else L-BFGS (cross-entropy part)."""
    return r.optimum.get("exact_train_loss", r.optimum["train_loss"])


def _optimizers(rs):
    return list(rs[0].grids)


def _lr(r, opt, start) -> float:
    """The rate seed ``r`` trained ``opt`` from ``start`` at."""
    return r.grids[opt][start].learning_rates[r.chosen[opt][start]]


def _swept(rs, opt, start) -> list:
    """The seeds that ran the whole grid (the others reused the rate those chose)."""
    n = max(len(r.grids[opt][start].learning_rates) for r in rs)
    return [r for r in rs if len(r.grids[opt][start].learning_rates) == n]


def _chosen_rates(rs, opt, start) -> str:
    counts = Counter(_lr(r, opt, start) for r in rs)
    reused = len(rs) - len(_swept(rs, opt, start))
    tail = (f"; {reused} seed{'s' if reused > 1 else ''} reused the swept seeds' choice"
            if reused else "")
    return ", ".join(f"{lr:g} ({n}/{len(rs)})" for lr, n in sorted(counts.items())) + tail


def _grid_values(rs, opt, start, fn) -> np.ndarray:
    """``(swept seeds, rates)`` of ``fn(trajectory)`` over every rate of the grid."""
    return np.asarray([[fn(t) for t in r.grids[opt][start].trajectories]
                       for r in _swept(rs, opt, start)], np.float64)


def _rates(rs, opt, start):
    return list(_swept(rs, opt, start)[0].grids[opt][start].learning_rates)


def _chosen_list(rs, opt, start):
    return [_lr(r, opt, start) for r in _swept(rs, opt, start)]


def both(a: str, b: str) -> str:
    """Verdict of a rule made of two conditions that must both hold."""
    if "does not hold" in (a, b):
        return "does not hold"
    if a == b == "holds":
        return "holds"
    return "inconclusive"


# --------------------------------------------------------------------- tuning

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
        for opt in _optimizers(rs):
            for start in rs[0].grids[opt]:
                swept = _swept(rs, opt, start)
                g = swept[0].grids[opt][start]
                edge = sum(r.grids[opt][start].at_edge(r.chosen[opt][start]) for r in swept)
                val = _grid_values(rs, opt, start, lambda t: t.rows[-1].get("val_loss", np.nan))
                diverged = int(np.sum(~np.isfinite(val)))
                finals = [r.tuned(opt, start).rows[-1] for r in rs]
                still = sum(still_improving(r.tuned(opt, start)) for r in rs)
                rows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                                 start=START_TITLES[start], chosen=_chosen_rates(rs, opt, start),
                                 edge=f"{edge}/{len(swept)}", diverged=f"{diverged}/{val.size}",
                                 grad=f"{np.median([f.get('grad_norm', np.nan) for f in finals]):.2g}",
                                 still=f"{still}/{len(rs)}"))
                data[f"{name} / {opt} / {start}"] = dict(
                    grid=g.learning_rates, chosen=_chosen_list(rs, opt, start),
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
            iters=fmt(_ms(rs, lambda r: r.optimum["iterations"]), 0),
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
        for opt in _optimizers(rs):
            for start in rs[0].grids[opt]:
                curves[name][f"{OPTIMIZER_TITLES[opt]}, {START_TITLES[start]}"] = (
                    _rates(rs, opt, start),
                    _grid_values(rs, opt, start, lambda t: t.rows[-1].get("val_loss", np.nan)),
                    _chosen_list(rs, opt, start))
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


# --------------------------------------------------------------------- C1

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


def claim_c1(runs: dict, out: Path, cfg) -> ClaimResult:
    """C1: the explicit LM solution is (near-)optimal."""
    lm = _lm(runs)
    if not lm:
        return ClaimResult("C1", "explicit LM solution is near-optimal", "not run",
                           "no language-model task was configured", rule=C1_RULE)
    rows, srows, data, status, notes_tail = [], [], {}, {}, []
    for name, rs in lm.items():
        exact = "exact_train_loss" in rs[0].optimum
        converged = all(r.optimum["converged"] for r in rs)
        sure = exact or converged
        rel = [(r.explicit["train_loss"] - _opt_train(r)) / _opt_train(r) for r in rs]
        grid = [s["smoothing"] for s in rs[0].smoothing]
        gaps = np.asarray([[(s["train_loss"] - _opt_train(r)) / _opt_train(r) for s in r.smoothing]
                           for r in rs])
        best_i = int(np.argmin(gaps.mean(0)))
        best = gaps[:, best_i].tolist()
        status[name] = c1_task_verdict(best, sure)
        for j, a in enumerate(grid):
            srows.append(dict(task=name, a=f"{a:g}", gap=_ci(gaps[:, j], 2, 100, "%"),
                              ppl=fmt(_ms(rs, lambda r, j=j: math.exp(r.smoothing[j]["test_loss"])),
                                      1)))
        adam = _ms(rs, lambda r: r.adam["random"].rows[-1]["train_loss"])
        rows.append(dict(
            task=name, explicit=fmt(_ms(rs, lambda r: r.explicit["train_loss"])),
            optimum=fmt(_ms(rs, _opt_train)),
            how="closed form (maximum likelihood)" if exact else
            ("L-BFGS, converged" if converged else "L-BFGS, not converged: gap is a lower bound"),
            rel=_ci(rel, 2, 100, "%"), best_a=f"{grid[best_i]:g}", best=_ci(best, 2, 100, "%"),
            verdict=status[name], adam=fmt(adam),
            ppl_exp=fmt(_ms(rs, lambda r: r.explicit["test_perplexity"]), 1),
            ppl_opt=fmt(_ms(rs, lambda r: r.optimum["test_perplexity"]), 1)))
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
    return ClaimResult("C1", "explicit LM solution is near-optimal", verdict, summary,
                       [table, stable], [plot], notes, data, rule=C1_RULE)


# --------------------------------------------------------------------- C2

C2_GAP = 0.02
C2_FRACTION = 0.5
C2_RULE = (f"a task holds if the 95% interval of the optimum's test-accuracy lead over the "
           f"explicit solution lies below {C2_GAP:.0%} (2 points); partly if instead the explicit "
           f"solution's share of the optimum's margin over chance lies above {C2_FRACTION:.0%}; "
           "does not hold if neither can; inconclusive when an interval contains its threshold. "
           "C2 combines the tasks.")


def c2_task_verdict(gaps, fractions) -> str:
    """C2's verdict for one task from per-seed accuracy gaps and shares of the margin over chance."""
    near = V.against(gaps, C2_GAP, side="below")
    if near == "holds":
        return "holds"
    share = V.against(fractions, C2_FRACTION, side="above")
    if share == "holds":
        return "partly" if near == "does not hold" else "inconclusive"
    if near == "does not hold" and share == "does not hold":
        return "does not hold"
    return "inconclusive"


def claim_c2(runs: dict, out: Path, cfg) -> ClaimResult:
    """C2: the solution generalizes to positive-valued features (images)."""
    img = _img(runs)
    if not img:
        return ClaimResult("C2", "generalizes to positive-valued features", "not run",
                           "no image task was configured", rule=C2_RULE)
    rows, data, status = [], {}, {}
    for name, rs in img.items():
        gaps = [r.optimum["test_accuracy"] - r.explicit["test_accuracy"] for r in rs]
        fracs = [(r.explicit["test_accuracy"] - r.chance)
                 / max(r.optimum["test_accuracy"] - r.chance, 1e-9) for r in rs]
        status[name] = c2_task_verdict(gaps, fracs)
        entries = [("explicit (one pass)", lambda r: r.explicit),
                   ("explicit + temperature", lambda r: r.calibrated),
                   ("explicit + temperature, prior counted once", lambda r: r.prior_once),
                   (f"optimum (L2 {rs[0].optimum['l2']:g})", lambda r: r.optimum)]
        for label, get in entries:
            rows.append(dict(task=name, method=label,
                             acc=fmt(_ms(rs, lambda r, g=get: g(r)["test_accuracy"])),
                             loss=fmt(_ms(rs, lambda r, g=get: g(r)["test_loss"]))))
        for opt in _optimizers(rs):
            rows.append(dict(task=name, method=f"tuned {OPTIMIZER_TITLES[opt]} from random init, "
                                               f"{cfg.steps} steps (lr {_chosen_rates(rs, opt, 'random')})",
                             acc=fmt(_ms(rs, lambda r, o=opt: r.tuned(o, "random").rows[-1]["test_accuracy"])),
                             loss=fmt(_ms(rs, lambda r, o=opt: r.tuned(o, "random").rows[-1]["test_loss"]))))
        rows.append(dict(task=name, method="chance (majority training label)",
                         acc=fmt(_ms(rs, lambda r: r.chance)), loss=None))
        data[name] = dict(accuracy_gap=V.interval(gaps), share_of_margin=V.interval(fracs),
                          explicit_test_accuracy=_ms(rs, lambda r: r.explicit["test_accuracy"]),
                          optimum_test_accuracy=_ms(rs, lambda r: r.optimum["test_accuracy"]),
                          prior_once_test_accuracy=_ms(rs, lambda r: r.prior_once["test_accuracy"]),
                          chance=_ms(rs, lambda r: r.chance), verdict=status[name])
    verdict = V.combine(status.values())
    summary = "; ".join(
        f"{n}: " + V.compare("explicit test accuracy", data[n]["explicit_test_accuracy"]["mean"],
                             "the optimum's", data[n]["optimum_test_accuracy"]["mean"])
        + f" (prior once {data[n]['prior_once_test_accuracy']['mean']:.3f}; share of the "
          f"optimum's margin over chance {data[n]['share_of_margin']['mean']:.2f}) → {status[n]}"
        for n in img)
    table = Table("Held-out accuracy and loss on image tasks (L1-normalized pixels).",
                  [("task", "task", None), ("method", "method", None),
                   ("acc", "test accuracy", None), ("loss", "test loss (nats)", None)], rows)
    notes = [
        f"Setting: pixels as features, each image divided by its sum; smoothing a = "
        f"{cfg.image_smoothing}; seeds {list(cfg.seeds)} each keep a random "
        f"{int(100 * cfg.resample_fraction)}% of the fitting images. The optimum is full-batch "
        "L-BFGS with the L2 penalty chosen on the validation split (see the setup section).",
        "With L1-normalized inputs the explicit solution ranks classes exactly like multinomial "
        "naive Bayes (the two score functions differ by a term that is the same for every "
        "class); one fitted scalar (temperature) rescales its logits without changing a "
        "prediction, and counting the label prior once (`calibrate(X, y, prior=\"once\")`) can.",
    ]
    for n, rs in img.items():
        once = data[n]["prior_once_test_accuracy"]["mean"]
        notes.append(f"{n}: " + V.compare("with the prior counted once, test accuracy", once,
                                          "the plain explicit solution's",
                                          data[n]["explicit_test_accuracy"]["mean"]) + ".")
    return ClaimResult("C2", "generalizes to positive-valued features", verdict, summary,
                       [table], [], notes, data, rule=C2_RULE)


# --------------------------------------------------------------------- C3

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
    return both(a, b)


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
        for opt in _optimizers(rs):
            for start in ("explicit", "calibrated"):
                rel = [_rel_change(r.tuned(opt, start), "train_loss") for r in rs]
                held = [_heldout_change(r.tuned(opt, start), is_lm) for r in rs]
                key = f"{name} / {OPTIMIZER_TITLES[opt]} / {START_TITLES[start]}"
                status[key] = c3_case(rel, held, is_lm)
                rows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                                 start=START_TITLES[start], lr=_chosen_rates(rs, opt, start),
                                 rel=_ci(rel, 1, 100, "%"),
                                 held=_ci(held, 1, 100, "%") if is_lm else _ci(held, 4),
                                 verdict=status[key]))
                data[key] = dict(relative_train_loss_change=V.interval(rel),
                                 heldout_change=V.interval(held), verdict=status[key])
                grid_rel = _grid_values(rs, opt, start, lambda t: _rel_change(t, "train_loss"))
                curves[name][f"{OPTIMIZER_TITLES[opt]}, {START_TITLES[start]}"] = (
                    _rates(rs, opt, start), 100 * grid_rel, _chosen_list(rs, opt, start))
                for j, lr in enumerate(_rates(rs, opt, start)):
                    srows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                                      start=START_TITLES[start], lr=f"{lr:g}",
                                      rel=fmt(mean_std(100 * grid_rel[:, j]), 1)))
    verdict = V.combine(status.values())
    n_marg = sum(v == "holds" for v in status.values())
    n_not = sum(v == "does not hold" for v in status.values())
    summary = (f"marginal in {n_marg} of {len(status)} (task, start, optimizer) cases, not "
               f"marginal in {n_not}, inconclusive in {len(status) - n_marg - n_not}")
    for name, rs in runs.items():
        k = f"{name} / {OPTIMIZER_TITLES[_optimizers(rs)[0]]} / explicit"
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
    return ClaimResult("C3", "backprop from the explicit solution improves it only a little",
                       verdict, summary, [table, stable], [Path(plot1).name, Path(plot2).name],
                       [], data, rule=C3_RULE)


# --------------------------------------------------------------------- C4

C4_PEAK = 0.5
C4_RISE = 0.3
C4_RULE = (f"for each (task, optimizer), gradient descent from random init at its tuned rate "
           f"moves toward the explicit weights when the 95% interval of the peak row-centered "
           f"cosine over the run lies above {C4_PEAK} and that of its rise from step 0 above "
           f"{C4_RISE}; not when either lies below; inconclusive otherwise. C4 holds if every "
           "case moves toward, partly if some do.")


def c4_case(peaks, rises) -> str:
    """C4's verdict for one case from per-seed peak cosines and their rises."""
    return both(V.against(peaks, C4_PEAK, side="above"), V.against(rises, C4_RISE, side="above"))


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
        for opt in _optimizers(rs):
            p = [_peak(r.tuned(opt, "random")) for r in rs]
            peaks, steps, firsts, finals = (list(x) for x in zip(*p))
            rises = [a - b for a, b in zip(peaks, firsts)]
            key = f"{name} / {OPTIMIZER_TITLES[opt]}"
            status[key] = c4_case(peaks, rises)
            opt_cos = _ms(rs, lambda r: r.optimum["cosine_to_explicit"])
            rows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt],
                             lr=_chosen_rates(rs, opt, "random"), start=fmt(mean_std(firsts), 3),
                             peak=_ci(peaks, 3), at=f"{int(np.median(steps))}",
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
            grid_peak = _grid_values(rs, opt, "random", lambda t: _peak(t)[0])
            curves[name][OPTIMIZER_TITLES[opt]] = (_rates(rs, opt, "random"), grid_peak,
                                                   _chosen_list(rs, opt, "random"))
            for j, lr in enumerate(_rates(rs, opt, "random")):
                srows.append(dict(task=name, optimizer=OPTIMIZER_TITLES[opt], lr=f"{lr:g}",
                                  peak=fmt(mean_std(grid_peak[:, j]), 3)))
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
    return ClaimResult("C4", "random init moves toward the explicit solution", verdict, summary,
                       [table, stable], [Path(plot1).name, Path(plot2).name], notes, data,
                       rule=C4_RULE)


# --------------------------------------------------------------------- C8

C8_RULE = ("per task, the explicit weights' readout divergence (below) is compared, paired over "
           "seeds and Holm-corrected, with the optimum's and tuned Adam's (from random init): "
           "holds if significantly lower than both, partly if than one, does not hold if "
           "significantly higher than both, inconclusive otherwise. C8 combines the tasks.")
C8_OTHERS = (("optimum", "the optimum"), ("adam_random", "tuned Adam"))


def c8_task_verdict(tests: dict) -> str:
    """C8's verdict from Holm-corrected paired tests ``explicit - other`` (negative: explicit lower)."""
    lower = sum(t["significant"] and t["mean_diff"] < 0 for t in tests.values())
    higher = sum(t["significant"] and t["mean_diff"] > 0 for t in tests.values())
    if lower == len(tests):
        return "holds"
    if lower:
        return "partly"
    if higher == len(tests):
        return "does not hold"
    return "inconclusive"


def claim_c8(runs: dict, tasks: dict, out: Path, cfg) -> ClaimResult:
    """C8: explicit weights are interpretable (readout divergence; weights as images; top next tokens)."""
    tables, plots, data, status, parts = [], [], {}, {}, []
    rows = []
    for name, rs in runs.items():
        tests = {k: V.paired([r.readout["explicit"] for r in rs], [r.readout[k] for r in rs])
                 for k, _ in C8_OTHERS}
        V.with_holm(tests)
        status[name] = c8_task_verdict(tests)
        for k, label in (("explicit", "explicit"),) + C8_OTHERS:
            rows.append(dict(task=name, weights=label, d=_ci([r.readout[k] for r in rs], 4),
                             t=fmt(_ms(rs, lambda r, k=k: r.template[k]), 3)
                             if rs[0].template else None))
        if rs[0].template:
            rows.append(dict(task=name, weights="one gradient step from zero", d=None,
                             t=fmt(_ms(rs, lambda r: r.template["one_step_from_zero"]), 3)))
        data[name] = dict(readout={k: V.interval([r.readout[k] for r in rs])
                                   for k in rs[0].readout},
                          tests=tests, template={k: mean_std([r.template[k] for r in rs])
                                                 for k in rs[0].template}, verdict=status[name])
        parts.append(f"{name}: " + "; ".join(
            V.difference(tests[k], "explicit", label, digits=3) for k, label in C8_OTHERS)
            + f" → {status[name]}")
        task = tasks.get(name)
        if rs[0].kind == "dense" and task is not None and task.image_shape:
            r0 = rs[0]
            plots.append(Path(draw_weight_images(
                {"explicit": r0.weights["explicit"], "optimum": r0.weights["optimum"],
                 "tuned Adam from random": r0.weights["adam_random"]},
                task.image_shape, out / f"c8_weights_{name}.png")).name)
    tables.append(Table(
        "Readout divergence D (nats, 95% interval; lower: each row reads as its feature's "
        "held-out label distribution) and, for images, the class-template correlation (a "
        "secondary figure: a single gradient step from zero already scores high on it).",
        [("task", "task", None), ("weights", "weights", None), ("d", "readout divergence D", None),
         ("t", "template correlation", None)], rows))
    lm = {k: v for k, v in _lm(runs).items() if v[0].weights["explicit"].shape[0]
          == v[0].weights["explicit"].shape[1]}
    if lm:
        name, rs = next(iter(lm.items()))
        vocab = tasks[name].vocab
        words = [w for w in vocab.tokens[1:] if w.isalpha()][:8]
        exp = top_next_tokens(rs[0].weights["explicit"], vocab, words)
        adam = top_next_tokens(rs[0].weights["adam_random"], vocab, words)
        agree = float(np.mean([exp[w][0][0] == adam[w][0][0] for w in words]))
        tables.append(Table(
            f"{name}: most likely next tokens of frequent words from the explicit weights (with "
            f"probabilities) and from tuned Adam's weights; the top token agrees for "
            f"{agree:.0%} of these words.",
            [("word", "word", None), ("explicit", "explicit: top next tokens", None),
             ("adam", "tuned Adam from random: top next tokens", None)],
            [dict(word=w, explicit=", ".join(f"{t} ({p:.2f})" for t, p in exp[w]),
                  adam=", ".join(t for t, _ in adam[w])) for w in words]))
        data[name].update(top_next_explicit=exp, top_next_adam=adam, top1_agreement=agree)
    verdict = V.combine(status.values())
    notes = [
        "Measure: any softmax layer predicts, for an input made of feature i alone, the label "
        "distribution softmax(W_i + b), its row's readout. The readout divergence is the "
        "feature-mass-weighted KL divergence from the held-out conditional label distribution "
        "of each feature (held-out co-occurrences, row-normalized) to that readout. It asks "
        "whether a row can be read on its own, and whether the reading holds on unseen data; "
        "unlike the template correlation it does not reward the first gradient step's direction.",
        "The explicit rows are these conditionals estimated on the training data, so for them D "
        "measures how well that reading carries over to unseen data; gradient-trained rows were "
        "never fitted to be read one feature at a time, and D says how far they are from it.",
    ]
    return ClaimResult("C8", "explicit weights are interpretable", verdict, "; ".join(parts),
                       tables, plots, notes, data, rule=C8_RULE)
