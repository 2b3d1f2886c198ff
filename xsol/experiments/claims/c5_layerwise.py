"""Claim C5: layer-wise explicit solutions work in multi-layer networks.

The network is the layer-wise explicit fit of :mod:`xsol.experiments.layerwise`
(class-conditioned clusters as hidden targets, every layer an explicit
solution with its fitted inverse temperature, no backpropagation).

**What C5 compares** (:func:`run_c5`), for each image task, hidden width and
seed (a resample of the fitting part of the training set; the validation
split is held apart to choose learning rates): the layer-wise explicit
network (no backprop), the single-layer explicit solution it generalizes, the
single softmax layer trained by backprop, the network trained by backprop
from random init, and the network fine-tuned by backprop from the layer-wise
explicit parameters. Every backprop run is a learning-rate sweep
(:func:`xsol.experiments.sweep.train_grid`) over ``cfg.lr_grid`` for each
optimizer of ``cfg.optimizers``, the rate chosen on the validation split,
separately for every start. The verdict (:func:`c5_parts`, :func:`c5_verdict`,
:func:`c5_summary`) is a pure function of the per-seed numbers.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax.numpy as jnp

import xsol
from xsol.experiments import verdicts
from xsol.experiments.cells import (LR_CHOICE_COLUMNS, lr_choice, per_seed, plan_cells, rates_text,
                                   run_cells, slug)
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.figures import plot_by_optimizer
from xsol.experiments.grid_choice import grid_row
from xsol.experiments.layerwise import (KMEANS_N_INIT, count_prior_once, fit_layerwise, mlp_for,
                                        network_row, solution_row)
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import fmt_span, mean_of
from xsol.experiments.sweep import OPTIMIZER_TITLES, train_grid
from xsol.experiments.claims.c5_rule import (MARGIN_FRACTION, c5_parts, c5_reported, c5_rule,
                                             c5_summary, c5_verdict)
from xsol.experiments.tasks import Task, resample, validation_split
from xsol.experiments.verdicts import TIE_TOLERANCE
from xsol.models.linen import SoftmaxRegression
from xsol.train.loop import stack_batches
from xsol.train.plots import plot_trajectories

CLAIM = "C5"
TITLE = "layer-wise explicit solutions in multi-layer networks"

#: Networks built without backpropagation: key, title.
EXPLICIT = (
    ("single", "single-layer explicit (calibrated)"),
    ("single_once", "single-layer explicit (prior once)"),
    ("layerwise", "layer-wise explicit, class clusters"),
    ("layerwise_once", "layer-wise explicit, class clusters, prior once"),
    ("kmeans", "layer-wise explicit, k-means clusters (ablation)"),
)
#: Backprop runs (each swept over the learning-rate grid, per optimizer): key, title.
TRAINED = (
    ("single_trained", "single softmax layer, random init"),
    ("random", "network, random init"),
    ("finetuned", "network from layer-wise explicit"),
    ("finetuned_once", "network from layer-wise explicit (prior once)"),
)
#: Every method in table order: key, title, whether it uses backpropagation.
METHODS = tuple((k, t, False) for k, t in EXPLICIT) + tuple((k, t, True) for k, t in TRAINED)
_TITLES = {k: t for k, t, _ in METHODS}


def run_seed(task: Task, num_hidden: int, seed: int, cfg: ReproduceConfig,
             validation=None) -> dict:
    """Every method on one resample of ``task`` at hidden width ``num_hidden``.

    Args:
      task: the fitting part of the task (the validation split removed).
      num_hidden: ``H``.
      seed: picks the resample, the random init and the minibatches.
      cfg: steps, learning-rate grid, optimizers, batch size, smoothing.
      validation: ``(X_val, y_val)`` to choose learning rates on (default: a
        split of ``task`` made here).

    Returns:
      ``{"methods": {key: row}, "trajectories": {key: Trajectory}, "chance": float}``;
      a backprop method's row is ``{optimizer: row}``.
    """
    if validation is None:
        task, validation = validation_split(task, cfg.validation_fraction)
    t = resample(task, seed, cfg.resample_fraction)
    a, N, H = cfg.image_smoothing, t.num_classes, int(num_hidden)
    model = mlp_for(t, H)
    test_eval = stack_batches(jnp.asarray(model.prepare(t.X_test)), t.y_test, None)
    rows, trajs = {}, {}

    t0 = time.perf_counter()
    single = xsol.fit_explicit(t.X_train, t.y_train, N, smoothing=a)
    cal = single.calibrate(t.X_train, t.y_train)
    rows["single"] = solution_row(cal, t, time.perf_counter() - t0)
    t0 = time.perf_counter()
    rows["single_once"] = solution_row(count_prior_once(single, t.X_train, t.y_train), t,
                                        time.perf_counter() - t0)

    fit = fit_layerwise(t.X_train, t.y_train, H, N, seed=seed, smoothing=a)
    rows["layerwise"] = network_row(model, fit, t, test_eval)
    once = fit_layerwise(t.X_train, t.y_train, H, N, targets=fit.targets, owner=fit.owner,
                         smoothing=a, prior_once=True, cluster_seconds=fit.cluster_seconds)
    rows["layerwise_once"] = network_row(model, once, t, test_eval)
    km = fit_layerwise(t.X_train, t.y_train, H, N, seed=seed, smoothing=a, clusters="kmeans")
    rows["kmeans"] = network_row(model, km, t, test_eval)

    starts = {
        "single_trained": (SoftmaxRegression(t.num_features, N), "random"),
        "random": (model, "random"),
        "finetuned": (model, fit.layers),
        "finetuned_once": (model, once.layers),
    }
    explicit_seconds = {"finetuned": fit.seconds, "finetuned_once": once.seconds}
    for key, (m, init) in starts.items():
        rows[key] = {}
        for opt in cfg.optimizers:
            run = train_grid(m, init, opt, cfg.lr_grid, t.X_train, t.y_train, steps=cfg.steps,
                             validation=validation, test=(t.X_test, t.y_test),
                             batch_size=cfg.batch_size, seed=seed,
                             meta=dict(task=t.name, start=key))
            row, traj = grid_row(run)
            if key in explicit_seconds:
                row["explicit_seconds"] = explicit_seconds[key]
            if key == "random" and traj is not None:
                for k in ("layerwise", "layerwise_once"):
                    row[f"steps_to_{k}_accuracy"] = _first_step_reaching(
                        traj, rows[k]["test_accuracy"])
            rows[key][opt] = row
            trajs[f"{key}/{opt}"] = traj
    return {"methods": rows, "trajectories": trajs,
            "chance": verdicts.chance_accuracy(t.y_train, t.y_test)}


def _first_step_reaching(traj, accuracy: float):
    """The first recorded step with held-out accuracy >= ``accuracy`` (None if never)."""
    for row in traj.rows:
        if row["test_accuracy"] >= accuracy:
            return int(row["step"])
    return None


# ------------------------------------------------------------------ the experiment


def _cell_numbers(name: str, cell_runs: list, optimizers) -> dict:
    """Per-seed accuracy and loss of every method of one (task, width)."""
    acc, loss = {}, {}
    for key, _ in EXPLICIT:
        acc[key] = [r["methods"][key]["test_accuracy"] for r in cell_runs]
        loss[key] = [r["methods"][key]["test_loss"] for r in cell_runs]
    for key, _ in TRAINED:
        for opt in optimizers:
            acc[f"{key}/{opt}"] = [r["methods"][key][opt]["test_accuracy"] for r in cell_runs]
            loss[f"{key}/{opt}"] = [r["methods"][key][opt]["test_loss"] for r in cell_runs]
    chance = [r["chance"] for r in cell_runs]
    margin = [c + MARGIN_FRACTION * (1.0 - c) for c in chance]
    return dict(name=name, chance=chance, margin=margin, acc=acc, loss=loss)


def _lr_rows(name: str, cell_runs: list, optimizers) -> list:
    rows = []
    for key, title in TRAINED:
        for opt in optimizers:
            rs = [r["methods"][key][opt] for r in cell_runs]
            rows.append(dict(cell=name, start=title, optimizer=OPTIMIZER_TITLES.get(opt, opt),
                             **lr_choice(rs, none="diverged")))
    return rows


def _sensitivity(name: str, cell_runs: list, optimizers) -> list:
    """Mean held-out accuracy of every backprop start at every rate, and fine-tuned − random."""
    rows = []
    for opt in optimizers:
        grid = cell_runs[0]["methods"]["random"][opt]["grid"]
        for i, lr in enumerate(grid):
            row = dict(cell=name, optimizer=OPTIMIZER_TITLES.get(opt, opt), lr=lr)
            for key, _ in TRAINED:
                v = [r["methods"][key][opt]["by_lr"]["test_accuracy"][i] for r in cell_runs]
                row[key] = mean_of(v)
                row[f"{key}_chosen"] = sum(r["methods"][key][opt]["lr_index"] == i
                                           for r in cell_runs)
            d = [r["methods"]["finetuned"][opt]["by_lr"]["test_accuracy"][i]
                 - r["methods"]["random"][opt]["by_lr"]["test_accuracy"][i] for r in cell_runs]
            ci = verdicts.interval(d)
            row.update(diff=ci["mean"], diff_lo=ci["lo"], diff_hi=ci["hi"],
                       chosen=" / ".join(str(row[f"{k}_chosen"]) for k, _ in TRAINED))
            rows.append(row)
    return rows



def _plot_sensitivity(rows: list, numbers: dict, path: Path, title: str) -> None:
    flat = {"layerwise": "layer-wise explicit (no backprop)",
            "single": "single-layer explicit (no backprop)"}
    hlines = [(mean_of(numbers["acc"][key]), dict(ls="--", lw=1, color=f"C{4 + i}", label=t))
              for i, (key, t) in enumerate(flat.items())]
    hlines.append((mean_of(numbers["margin"]), dict(ls=":", lw=1, color="gray",
                                                    label="wide margin")))
    plot_by_optimizer(rows, [(key, f"{t} + backprop") for key, t in TRAINED], path, title=title,
                      ylabel="held-out accuracy after the budget", hlines=hlines)


def _plot(cell_runs: list, path: Path, title: str, optimizers) -> None:
    r0 = cell_runs[0]
    runs = {}
    for opt in optimizers:
        for key in ("finetuned", "finetuned_once", "random", "single_trained"):
            traj = r0["trajectories"].get(f"{key}/{opt}")
            if traj is not None:
                lr = r0["methods"][key][opt]["learning_rate"]
                runs[f"{_TITLES[key]} + {OPTIMIZER_TITLES.get(opt, opt)} (lr {lr:g})"] = traj
    if runs:
        plot_trajectories(runs, path, metrics=("test_loss", "test_accuracy"), title=title)


def _heldout(ms: list) -> dict:
    """Held-out accuracy and loss (mean, std, interval) and the mean training loss of the seeds."""
    a = verdicts.interval([m["test_accuracy"] for m in ms])
    lo = verdicts.interval([m["test_loss"] for m in ms])
    return dict(acc=a["mean"], acc_std=a["std"], acc_ci=fmt_span(a), loss=lo["mean"],
                loss_std=lo["std"], train_loss=mean_of([m["train_loss"] for m in ms]))


def _method_rows(name: str, cell_runs: list, optimizers) -> list:
    rows = []
    for key, title in EXPLICIT:
        ms = [r["methods"][key] for r in cell_runs]
        rows.append(dict(cell=name, method=title, optimizer="–", **_heldout(ms),
                         explicit_s=mean_of([m["seconds"] for m in ms]), backprop_s=None, lr=None))
    for key, title in TRAINED:
        for opt in optimizers:
            ms = [r["methods"][key][opt] for r in cell_runs]
            ex = [m["explicit_seconds"] for m in ms if "explicit_seconds" in m]
            rows.append(dict(
                cell=name, method=f"{title} + backprop", optimizer=OPTIMIZER_TITLES.get(opt, opt),
                **_heldout(ms), explicit_s=mean_of(ex) if ex else None,
                backprop_s=mean_of([m["grid_seconds"] for m in ms]), lr=rates_text(ms)))
    return rows


def _opt_title(opt) -> str:
    return "–" if not opt else OPTIMIZER_TITLES.get(opt, opt)


def _opt_suffix(part: dict) -> str:
    return f", {_opt_title(part['optimizer'])}" if part.get("optimizer") else ""


def _range(values) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return f"{min(v):.1f}-{max(v):.1f}" if v else "n/a"



def run_c5(cfg: ReproduceConfig, tasks: TaskCache, out_dir: Path,
           progress: bool = False) -> ClaimResult:
    """Runs the C5 experiment on every image task, hidden width and seed of ``cfg``.

    Args:
      cfg: the settings (``image_datasets``, ``hidden_widths``, ``seeds``,
        ``resample_fraction``, ``validation_fraction``, ``steps``, ``lr_grid``,
        ``optimizers``, ``batch_size``, ``image_smoothing``).
      tasks: loads the image tasks and their validation splits.
      out_dir: where the plots go.
      progress: show a progress bar.

    Returns:
      The :class:`ClaimResult` for claim C5; ``data`` holds every number per seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    plan = plan_cells(cfg, tasks)
    cells = plan.cells
    rule = c5_rule(cfg.optimizers, cfg.steps)
    if not cells:
        return plan.not_run(CLAIM, TITLE, rule)

    results = run_cells(cells, cfg, tasks, run_seed, desc="C5 layer-wise explicit",
                        progress=progress)

    numbers, plots, method_rows, lr_rows, sens_rows = [], [], [], [], []
    for task, H in cells:
        cell = results[(task.name, H)]
        name = f"{task.name} H={H}"
        nums = _cell_numbers(name, cell, cfg.optimizers)
        numbers.append(nums)
        method_rows += _method_rows(name, cell, cfg.optimizers)
        lr_rows += _lr_rows(name, cell, cfg.optimizers)
        sens = _sensitivity(name, cell, cfg.optimizers)
        sens_rows += sens
        traj_png = f"c5_{slug(task.name)}_h{H}.png"
        _plot(cell, out_dir / traj_png,
              f"{task.name}, MLP {task.num_features}-{H}-{task.num_classes}, seed "
              f"{cfg.seeds[0]}, tuned lr: held-out loss and accuracy", cfg.optimizers)
        sens_png = f"c5_{slug(task.name)}_h{H}_lr.png"
        _plot_sensitivity(sens, nums, out_dir / sens_png,
                          f"C5 {name}: held-out accuracy after {cfg.steps} steps across the "
                          f"lr grid (mean of {len(cfg.seeds)} seeds)")
        plots += [p for p in (traj_png, sens_png) if (out_dir / p).is_file()]

    parts = c5_parts(numbers, cfg.optimizers, cfg.steps)
    verdict = c5_verdict(parts)
    summary = c5_summary(parts)
    reported = c5_reported(numbers, cfg.optimizers)
    once_parts = c5_parts([dict(n, acc=dict(n["acc"], layerwise=n["acc"]["layerwise_once"],
                                             single=n["acc"]["single_once"],
                                             **{f"finetuned/{o}": n["acc"][f"finetuned_once/{o}"]
                                                for o in cfg.optimizers}))
                           for n in numbers], cfg.optimizers, cfg.steps)
    verdict_once = c5_verdict(once_parts)

    all_rows = [r["methods"][k] for cell in results.values() for r in cell
                for k in ("layerwise", "layerwise_once", "kmeans")]
    max_diff = max(r["forward_max_abs_diff"] for r in all_rows)
    mismatches = sum(r["forward_prediction_mismatches"] for r in all_rows)
    edges = [r for r in lr_rows if not r["edge"].startswith("0/")]
    betas_single = [r["methods"]["single"]["inverse_temperature"]
                    for cell in results.values() for r in cell]
    betas_hidden = [r["methods"]["layerwise"]["hidden_inverse_temperature"]
                    for cell in results.values() for r in cell]
    plateau = []
    for nums, (task, H) in zip(numbers, cells):
        for opt in cfg.optimizers:
            cell = results[(task.name, H)]
            starts = [r["methods"]["random"][opt]["start_test_loss"] for r in cell]
            ends = [r["methods"]["random"][opt]["test_loss"] for r in cell]
            plateau.append(verdicts.change(
                f"{nums['name']}, {OPTIMIZER_TITLES.get(opt, opt)} at the chosen rate: the "
                "held-out loss", mean_of(starts), mean_of(ends), relative=True)
                + f" (log N = {math.log(task.num_classes):.3f})")

    notes = [
        f"Verdict for the method as specified (plain calibration): {verdict}. With the prior "
        f"counted once, the same rule gives '{verdict_once}': " + "; ".join(
            f"({p['part']}{_opt_suffix(p)}) {p['cell']}: {p['verdict']}" for p in once_parts)
        + ".",
        "Network: an MLP `M -> H -> N` with a softmax hidden activation (positive and summing "
        "to 1, so the next layer's input is already a distribution) and L1-normalized layer "
        "inputs, the explicit solution's convention.",
        "Hidden targets: for each class, k-means (scikit-learn, seeded, "
        f"n_init={KMEANS_N_INIT}) on that class's L1-normalized training inputs into H/N "
        "clusters (the remainder going to the largest classes); the target of an example is its "
        "cluster id. The ablation clusters all inputs without labels.",
        "No backpropagation: layer 1 is `fit_explicit(X, clusters, H)` and layer 2 is "
        "`fit_explicit(h, y, N)` on the hidden activations; each layer then gets one scalar, "
        "its inverse temperature, fitted by Newton's method on that layer's own cross-entropy "
        f"(fitted here: {_range(betas_single)} for the single layer, {_range(betas_hidden)} for "
        "the hidden layer). The MLP built by `MLP.from_explicit` reproduces the hand-computed "
        f"forward pass: largest logit difference over all runs {max_diff:.2g}, held-out "
        f"predictions that differ: {mismatches}.",
        "Data: each task's training examples are split once into a fitting part and a "
        f"validation split ({cfg.validation_fraction:g} of them, the same for every seed and "
        f"method); each seed keeps a resample of {cfg.resample_fraction:g} of the fitting "
        "part. Chance is the held-out accuracy of the majority training label (per seed).",
        "Backpropagation, tuned: every backprop start (single softmax layer from random init, "
        "the network from random init, the network from each layer-wise explicit solution) is "
        "trained at every learning rate of the grid "
        f"({', '.join(f'{v:g}' for v in cfg.lr_grid)}) with each optimizer "
        f"({', '.join(OPTIMIZER_TITLES.get(o, o) for o in cfg.optimizers)}), {cfg.steps} "
        f"steps, batch size {cfg.batch_size or 'full'}, same seed and minibatches; the rate "
        "with the lowest validation loss at the end of the budget is chosen for each start, "
        "seed and optimizer separately (test figures never choose). "
        + (f"{len(edges)} of {len(lr_rows)} (start, optimizer) choices hit the grid's edge on "
           "some seed (flagged in the learning-rate table)." if edges else
           "No chosen rate is at the grid's edge."),
        "Random-init networks from step 0 to the end of the budget: " + "; ".join(plateau)
        + ".",
        "Times: explicit = clustering + all solves + calibrations (wall clock); backprop = "
        "training steps of the whole learning-rate grid at once (compilation and evaluation "
        "excluded).",
        "Plots: held-out loss and accuracy against step at the chosen rates (first seed), and "
        "held-out accuracy against learning rate for every start (the sensitivity of part (c)).",
    ]
    notes += plan.notes(" (class-conditioned clusters need H >= N)")

    fmt4, fmt2 = "{:.4f}", "{:.2f}"
    part_rows = [dict(cell=p["cell"], part=p["part"],
                      optimizer=_opt_title(p.get("optimizer")),
                      a=p["name_a"], b=p["name_b"], mean=p["mean"],
                      ci=fmt_span(dict(lo=p["value_lo"], hi=p["value_hi"])), threshold=p["threshold"],
                      p=p.get("p_holm"), seeds=f"{p['a_greater']}/{p['n']}", verdict=p["verdict"])
                 for p in parts]
    rep_rows = [dict(cell=t["cell"], what=t["what"], a=t["name_a"], b=t["name_b"],
                     sentence=verdicts.difference(t, t["name_a"], t["name_b"]))
                for t in reported]
    tables = [
        Table(f"C5: held-out accuracy and loss over {len(cfg.seeds)} seeds (mean, std, "
              f"{int(100 * verdicts.CONFIDENCE)}% CI); backprop rows at the learning rate chosen "
              "on validation (per seed)",
              [("cell", "task, H", None), ("method", "method", None),
               ("optimizer", "optimizer", None), ("acc", "test acc", fmt4),
               ("acc_std", "± acc", fmt4), ("acc_ci", "acc CI", None),
               ("loss", "test loss", fmt4), ("loss_std", "± loss", fmt4),
               ("train_loss", "train loss", fmt4), ("lr", "chosen lr per seed", None),
               ("explicit_s", "explicit s", fmt2), ("backprop_s", "backprop s (grid)", fmt2)],
              method_rows),
        Table("C5 rule parts: the per-seed quantity (accuracy, or a paired accuracy difference) "
              "against its threshold; Holm-corrected over all parts",
              [("cell", "task, H", None), ("part", "part", None), ("optimizer", "optimizer", None),
               ("a", "A", None), ("b", "B", None), ("mean", "quantity", fmt4),
               ("ci", "95% CI", None), ("threshold", "threshold", fmt4), ("p", "Holm p", "{:.2g}"),
               ("seeds", "seeds A > B", None), ("verdict", "verdict", None)],
              part_rows),
        Table("C5: further paired comparisons (held-out accuracy unless stated; "
              "Holm-corrected among themselves)",
              [("cell", "task, H", None), ("what", "metric", None), ("sentence", "result", None)],
              rep_rows),
        Table("C5: learning rates, chosen on the validation loss at the end of the budget",
              [("cell", "task, H", None), ("start", "start", None),
               ("optimizer", "optimizer", None)] + LR_CHOICE_COLUMNS, lr_rows),
        Table("C5 sensitivity: mean held-out accuracy at every learning rate after the budget; "
              "part (c)'s quantity (fine-tuned − random init, same rate) with its CI; seeds that "
              "chose the rate (single / random / fine-tuned / fine-tuned prior once)",
              [("cell", "task, H", None), ("optimizer", "optimizer", None), ("lr", "lr", "{:g}"),
               ("single_trained", "single layer", fmt4), ("random", "random init", fmt4),
               ("finetuned", "fine-tuned", fmt4), ("finetuned_once", "fine-tuned (once)", fmt4),
               ("diff", "fine-tuned − random", "{:+.4f}"), ("diff_lo", "CI lo", "{:+.4f}"),
               ("diff_hi", "CI hi", "{:+.4f}"), ("chosen", "chosen by seeds", None)],
              sens_rows),
    ]

    data = dict(
        verdict_rule=dict(margin_fraction=MARGIN_FRACTION, tie_tolerance=TIE_TOLERANCE,
                          alpha=verdicts.ALPHA),
        parts=parts, parts_prior_once=once_parts, verdict_prior_once=verdict_once,
        reported=reported, numbers=numbers, sensitivity=sens_rows, learning_rates=lr_rows,
        per_seed=per_seed(results, cfg.seeds, ("chance", "methods")), skipped=plan.skipped,
        too_narrow=plan.too_narrow,
        forward_max_abs_diff=max_diff, forward_prediction_mismatches=mismatches,
        settings=dict(steps=cfg.steps, lr_grid=list(cfg.lr_grid),
                      optimizers=list(cfg.optimizers), batch_size=cfg.batch_size,
                      seeds=list(cfg.seeds), hidden_widths=list(cfg.hidden_widths),
                      smoothing=cfg.image_smoothing, resample_fraction=cfg.resample_fraction,
                      validation_fraction=cfg.validation_fraction, kmeans_n_init=KMEANS_N_INIT),
        seconds=time.perf_counter() - t_start,
    )
    return ClaimResult(CLAIM, TITLE, verdict, summary, tables=tables, plots=plots, notes=notes,
                       data=data, rule=rule)
