"""Claim C7: warm start + backprop finds better optima than backprop alone.

A single softmax layer is convex, so every start that converges reaches the
same optimum there; the claim can only be tested in networks. This
experiment uses softmax-activation MLPs with :data:`DEPTH` hidden layers,
``M -> H -> H -> N`` (:func:`xsol.experiments.layerwise.mlp_for`), and trains
each from two kinds of start with the same optimizer, data and minibatches:

* **cold**: random (LeCun-normal) init, the model's default;
* **warm**: the layer-wise explicit network, built without backpropagation
  (:func:`xsol.experiments.layerwise.fit_layerwise`): layer 1 fitted to
  class-conditioned clusters of the inputs, layer 2 to class-conditioned
  clusters of layer 1's activations, the output layer to the labels on
  layer 2's activations, every layer with its inverse temperature fitted by
  Newton's method (the method of C5 as specified, plain calibration).

**Tuned, to convergence.** Each (start, optimizer) is trained at every
learning rate of ``cfg.lr_grid`` at once (:func:`xsol.experiments.sweep.train_grid`)
for a budget of :data:`BUDGET_FACTOR` × ``cfg.steps`` steps, evaluated
every 1/:data:`RECORDS` of the budget. Every run is then early-stopped
(:func:`xsol.experiments.grid_choice.early_stop`): it stops at the first
evaluation where the validation loss has not improved by more than
:data:`xsol.experiments.grid_choice.MIN_DELTA` nats for
:data:`PATIENCE_FRACTION` of the budget, and keeps its best checkpoint (the
lowest validation loss up to the stop) -- *converged*; a run still improving
at the end of the budget is *not converged*; a non-finite loss before the
stop is *diverged*. The learning rate is chosen per start, seed and optimizer
by the lowest validation loss at its checkpoint. Held-out (test) figures are
read at that checkpoint and never choose anything. At the intermediate
budgets (:func:`budgets`) the rate is re-chosen by the validation loss at
that step.

A run that has not converged can only lower its checkpoint's validation loss
with more steps, so a comparison is left *inconclusive* only when the start
that could still close the gap did not converge: the cold start when the
difference is on the claim's side of its threshold, the warm start when it
is not (:func:`c7_parts`).

The verdict (:func:`c7_parts`, :func:`c7_verdict`, :func:`c7_summary`) is a
pure function of the per-seed numbers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from xsol.experiments import verdicts
from xsol.experiments.cells import (LR_CHOICE_COLUMNS, lr_choice, per_seed, plan_cells, rates_text,
                                   run_cells, slug)
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.figures import plot_by_optimizer
from xsol.experiments.grid_choice import MIN_DELTA, STUCK_TOLERANCE, at_budget, stopped_grid
from xsol.experiments.layerwise import fit_layerwise, mlp_for, network_row
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import fmt_span, mean_of
from xsol.experiments.sweep import OPTIMIZER_TITLES, train_grid
from xsol.experiments.tasks import Task, resample
from xsol.experiments.verdicts import TIE_TOLERANCE, decide, threshold_test
from xsol.train.plots import plot_trajectories
from xsol.train.trajectory import log_steps

CLAIM = "C7"
TITLE = "warm start + backprop finds better optima"

#: Hidden layers of the networks (the claim needs more than one layer).
DEPTH = 2
#: Training budget: this many times ``cfg.steps``.
BUDGET_FACTOR = 4
#: Evaluations spread evenly over the budget (plus log-spaced early ones).
RECORDS = 40
#: Early stopping's patience, as a fraction of the budget.
PATIENCE_FRACTION = 0.25
#: "Better optimum": held-out loss lower by more than this (nats).
MIN_LOSS_GAIN = 0.01

#: Starts: key, title.
STARTS = (
    ("cold", "random init"),
    ("warm", "layer-wise explicit init"),
)
_TITLES = dict(STARTS)


def budget(cfg: ReproduceConfig) -> int:
    """The training budget in steps: :data:`BUDGET_FACTOR` × ``cfg.steps``."""
    return int(BUDGET_FACTOR * cfg.steps)


def budgets(cfg: ReproduceConfig) -> list:
    """Intermediate budgets at which warm and cold are also compared (ending with the budget)."""
    total = budget(cfg)
    return sorted({max(1, cfg.steps // 10), int(cfg.steps), total})


def record_steps(cfg: ReproduceConfig) -> list:
    """Evaluation steps: every ``budget / RECORDS`` steps, log-spaced early ones, the budgets."""
    total = budget(cfg)
    every = max(1, total // RECORDS)
    return sorted(set(range(0, total + 1, every)) | set(log_steps(total, 12))
                  | set(budgets(cfg)) | {total})


def patience(cfg: ReproduceConfig) -> int:
    """Early stopping's patience in steps."""
    return max(1, int(round(PATIENCE_FRACTION * budget(cfg))))


def run_seed(task: Task, num_hidden: int, seed: int, cfg: ReproduceConfig, validation) -> dict:
    """Warm and cold starts of the ``DEPTH``-hidden-layer network on one resample.

    Args:
      task: the fitting part of the task (validation split removed).
      num_hidden: ``H``, the width of every hidden layer.
      seed: the resample, the random init and the minibatches.
      cfg: settings.
      validation: ``(X_val, y_val)``.

    Returns:
      ``{"starts": {key: {optimizer: row}}, "explicit": {key: row}, "trajectories": {...}}``.
    """
    t = resample(task, seed, cfg.resample_fraction)
    widths = (int(num_hidden),) * DEPTH
    model = mlp_for(t, widths)
    a, N = cfg.image_smoothing, t.num_classes
    fit = fit_layerwise(t.X_train, t.y_train, widths, N, seed=seed, smoothing=a)
    explicit = {"warm": network_row(model, fit, t)}
    # A params dict (not the solutions): no distance to the start is tracked, which saves time.
    inits = {"cold": "random", "warm": jax.device_get(model.from_explicit(fit.layers))}
    steps, pat = record_steps(cfg), patience(cfg)
    starts, trajs = {}, {}
    for key, _ in STARTS:
        starts[key] = {}
        for opt in cfg.optimizers:
            run = train_grid(model, inits[key], opt, cfg.lr_grid, t.X_train, t.y_train,
                             steps=steps, validation=validation, test=(t.X_test, t.y_test),
                             batch_size=cfg.batch_size, seed=seed,
                             meta=dict(task=t.name, start=key))
            row = stopped_grid(run, pat)
            row["budgets"] = {int(b): at_budget(run, b) for b in budgets(cfg)}
            if key == "warm":
                row["explicit_seconds"] = fit.seconds
            starts[key][opt] = row
            if row["chosen"] is not None:
                trajs[f"{key}/{opt}"] = run.trajectories[row["chosen"]]
    return dict(starts=starts, explicit=explicit, trajectories=trajs,
                chance=verdicts.chance_accuracy(t.y_train, t.y_test))


# ------------------------------------------------- rules: pure functions of numbers


def c7_parts(cells: list) -> list:
    """The parts of C7's rule, decided with Holm's correction over all of them.

    Args:
      cells: one dict per (task, width, optimizer): ``name``, ``optimizer``,
        per-seed ``loss`` and ``acc`` at convergence by start (``"warm"``,
        ``"cold"``), and ``converged`` (per-seed booleans by start).

    Returns:
      :func:`xsol.experiments.verdicts.threshold_test` dicts with ``cell``,
      ``part`` (``"loss"``, ``"accuracy"``) and ``verdict``.
    """
    parts = []
    for c in cells:
        title = OPTIMIZER_TITLES.get(c["optimizer"], c["optimizer"])
        lw, lc = c["loss"]["warm"], c["loss"]["cold"]
        parts.append(threshold_test(
            (np.asarray(lc, float) - np.asarray(lw, float)).tolist(), MIN_LOSS_GAIN,
            side="above", cell=c["name"], optimizer=c["optimizer"], part="loss",
            quantity="cold − warm held-out loss",
            name_a=f"{title} from the warm start: held-out loss at convergence", a=mean_of(lw),
            name_b="from the cold start", b=mean_of(lc)))
        aw, ac = c["acc"]["warm"], c["acc"]["cold"]
        parts.append(threshold_test(
            (np.asarray(aw, float) - np.asarray(ac, float)).tolist(), -TIE_TOLERANCE,
            side="above", cell=c["name"], optimizer=c["optimizer"], part="accuracy",
            quantity="warm − cold held-out accuracy",
            name_a=f"{title} from the warm start: held-out accuracy at convergence", a=mean_of(aw),
            name_b="from the cold start", b=mean_of(ac)))
        for p in parts[-2:]:
            # The start that could still close the gap: the cold one when the difference
            # is on the claim's side, the warm one when it is not.
            could_close = "cold" if p["mean"] > p["threshold"] else "warm"
            flags = [bool(x) for x in c["converged"][could_close]]
            if not all(flags):
                p["reason"] = (f"the {could_close} start, which could still close the gap, did "
                               f"not converge within the budget on {flags.count(False)}/"
                               f"{len(flags)} seeds")
                p["forced"] = "inconclusive"
    return decide(parts)


def c7_verdict(parts: list) -> str:
    """C7's verdict: :func:`verdicts.combine` of its parts' verdicts."""
    return verdicts.parts_verdict(parts)


def c7_summary(parts: list) -> str:
    """C7's one-line evidence: every part's computed sentence, grouped by cell."""
    return verdicts.parts_summary(parts)


def c7_rule(cfg: ReproduceConfig) -> str:
    """C7's rule, as printed beside the verdict."""
    opts = " and ".join(OPTIMIZER_TITLES.get(o, o) for o in cfg.optimizers)
    return (
        "The claim as written: warm start + backprop finds better optima than backprop alone. "
        f"Networks with {DEPTH} softmax hidden layers (M → H → H → N); warm = layer-wise "
        "explicit init (no backprop), cold = random init; each start, optimizer "
        f"({opts}) and seed at its own learning rate, chosen on the validation loss. Trained to "
        f"convergence: budget {budget(cfg)} steps, early stopping when the validation loss has "
        f"not improved by more than {MIN_DELTA:g} nats for {patience(cfg)} steps, best "
        "checkpoint kept. For every task, width and optimizer: (loss) cold − warm held-out "
        f"loss at convergence above {MIN_LOSS_GAIN:g} nats; (accuracy) warm − cold held-out "
        f"accuracy above −{TIE_TOLERANCE:g}. Each part tests the per-seed paired difference "
        "against its threshold (t-test over seeds, Holm-corrected over all parts): holds when "
        "significantly on the claim's side, does not hold when significantly on the other "
        "side, inconclusive when the confidence interval contains the threshold, and "
        "inconclusive when the start that could still close the gap (cold when the difference "
        "is on the claim's side, warm otherwise) did not converge on some seed: more steps can "
        "only lower a run's checkpoint validation loss. " + verdicts.PARTS_COMBINE
    )


def c7_reported(cells: list, steps: Sequence[int]) -> list:
    """Comparisons reported beside the rule (their own Holm family)."""
    tests = []

    def add(cell, opt, when, what, a, b, name_a, name_b):
        tests.append(verdicts.reported_test(a, b, cell=cell, optimizer=opt, when=when, what=what,
                                            name_a=name_a, name_b=name_b))

    for c in cells:
        n, opt = c["name"], c["optimizer"]
        for b in steps:
            add(n, opt, f"{b} steps", "held-out loss", c["budget_loss"]["cold"][b],
                c["budget_loss"]["warm"][b], "cold", "warm")
            add(n, opt, f"{b} steps", "held-out accuracy", c["budget_acc"]["warm"][b],
                c["budget_acc"]["cold"][b], "warm", "cold")
        add(n, opt, "convergence", "training loss", c["train_loss"]["cold"],
            c["train_loss"]["warm"], "cold", "warm")
    verdicts.with_holm({i: t for i, t in enumerate(tests)})
    return tests


# ------------------------------------------------------------------ the experiment


def _cell_numbers(name: str, cell_runs: list, opt: str, steps: Sequence[int]) -> dict:
    keys = [k for k, _ in STARTS]
    rows = {k: [r["starts"][k][opt] for r in cell_runs] for k in keys}
    return dict(
        name=name, optimizer=opt,
        loss={k: [x["test_loss"] for x in rows[k]] for k in keys},
        acc={k: [x["test_accuracy"] for x in rows[k]] for k in keys},
        train_loss={k: [x["train_loss"] for x in rows[k]] for k in keys},
        converged={k: [x["status"] == "converged" for x in rows[k]] for k in keys},
        budget_loss={k: {b: [x["budgets"][b]["test_loss"] for x in rows[k]] for b in steps}
                     for k in keys},
        budget_acc={k: {b: [x["budgets"][b]["test_accuracy"] for x in rows[k]] for b in steps}
                    for k in keys},
    )


def _sensitivity(name: str, cell_runs: list, opt: str) -> list:
    rows = []
    grid = cell_runs[0]["starts"]["cold"][opt]["grid"]
    for i, lr in enumerate(grid):
        row = dict(cell=name, optimizer=OPTIMIZER_TITLES.get(opt, opt), lr=lr)
        for k, _ in STARTS:
            xs = [r["starts"][k][opt] for r in cell_runs]
            row[k] = mean_of([x["by_lr"]["test_loss"][i] for x in xs])
            row[f"{k}_converged"] = sum(x["by_lr"]["status"][i] == "converged" for x in xs)
            row[f"{k}_chosen"] = sum(x["chosen"] == i for x in xs)
        d = [r["starts"]["cold"][opt]["by_lr"]["test_loss"][i]
             - r["starts"]["warm"][opt]["by_lr"]["test_loss"][i] for r in cell_runs]
        ci = verdicts.interval(d)
        row.update(diff=ci["mean"], diff_lo=ci["lo"], diff_hi=ci["hi"], n=len(cell_runs),
                   converged=" / ".join(str(row[f"{k}_converged"]) for k, _ in STARTS),
                   chosen=" / ".join(str(row[f"{k}_chosen"]) for k, _ in STARTS))
        rows.append(row)
    return rows


def _plot_sensitivity(rows: list, path: Path, title: str) -> None:
    plot_by_optimizer(rows, STARTS, path, title=title,
                      ylabel="held-out loss at the early-stopped checkpoint")


def _plot(cell_runs: list, path: Path, title: str, optimizers) -> None:
    r0 = cell_runs[0]
    runs = {}
    for opt in optimizers:
        for k, t in STARTS:
            traj = r0["trajectories"].get(f"{k}/{opt}")
            if traj is not None:
                row = r0["starts"][k][opt]
                runs[f"{t} + {OPTIMIZER_TITLES.get(opt, opt)} (lr {row['learning_rate']:g}, "
                     f"{row['status']} at {row['stop_step']})"] = traj
    if runs:
        plot_trajectories(runs, path, metrics=("val_loss", "test_loss", "test_accuracy"),
                          title=title)


def run_c7(cfg: ReproduceConfig, tasks: TaskCache, out_dir: Path,
           progress: bool = False) -> ClaimResult:
    """Runs C7 on every image task, hidden width and seed of ``cfg``.

    Returns:
      The :class:`ClaimResult` for claim C7; ``data`` holds every number per seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rule = c7_rule(cfg)
    plan = plan_cells(cfg, tasks)
    cells = plan.cells
    if not cells:
        return plan.not_run(CLAIM, TITLE, rule)

    results = run_cells(cells, cfg, tasks, run_seed, desc="C7 warm vs cold networks",
                        progress=progress)

    steps_b = budgets(cfg)
    numbers, sens_rows, plots, main_rows, lr_rows, budget_rows = [], [], [], [], [], []
    for task, H in cells:
        cell = results[(task.name, H)]
        shape = "-".join(str(s) for s in [task.num_features, *([H] * DEPTH), task.num_classes])
        name = f"{task.name} {shape}"
        sens = []
        for opt in cfg.optimizers:
            numbers.append(_cell_numbers(name, cell, opt, steps_b))
            sens += _sensitivity(name, cell, opt)
            for k, t in STARTS:
                xs = [r["starts"][k][opt] for r in cell]
                acc = verdicts.interval([x["test_accuracy"] for x in xs])
                loss = verdicts.interval([x["test_loss"] for x in xs])
                main_rows.append(dict(
                    cell=name, optimizer=OPTIMIZER_TITLES.get(opt, opt), start=t,
                    loss=loss["mean"], loss_ci=fmt_span(loss), acc=acc["mean"],
                    acc_ci=fmt_span(acc),
                    train_loss=mean_of([x["train_loss"] for x in xs]),
                    grad_norm=mean_of([x["grad_norm"] for x in xs]),
                    steps=", ".join("–" if x["step"] is None else str(x["step"]) for x in xs),
                    status=", ".join(x["status"] for x in xs),
                    stuck=f"{sum(x['stuck'] for x in xs)}/{len(xs)}"))
                lr_rows.append(dict(cell=name, optimizer=OPTIMIZER_TITLES.get(opt, opt), start=t,
                                    **lr_choice(xs)))
                for b in steps_b:
                    bs = [x["budgets"][b] for x in xs]
                    budget_rows.append(dict(
                        cell=name, optimizer=OPTIMIZER_TITLES.get(opt, opt), start=t, budget=b,
                        loss=mean_of([y["test_loss"] for y in bs]),
                        acc=mean_of([y["test_accuracy"] for y in bs]),
                        lr=rates_text(bs)))
        sens_rows += sens
        traj_png = f"c7_{slug(task.name)}_h{H}.png"
        _plot(cell, out_dir / traj_png,
              f"C7 {name}, seed {cfg.seeds[0]}, chosen rates: validation/held-out loss, "
              "held-out accuracy", cfg.optimizers)
        sens_png = f"c7_{slug(task.name)}_h{H}_lr.png"
        _plot_sensitivity(sens, out_dir / sens_png,
                          f"C7 {name}: held-out loss at the early-stopped checkpoint across the "
                          f"lr grid (mean of {len(cfg.seeds)} seeds)")
        plots += [p for p in (traj_png, sens_png) if (out_dir / p).is_file()]

    parts = c7_parts(numbers)
    verdict = c7_verdict(parts)
    summary = c7_summary(parts)
    reported = c7_reported(numbers, steps_b)

    conv_counts = {k: sum(r["starts"][k][o]["status"] == "converged" for cell in results.values()
                          for r in cell for o in cfg.optimizers) for k, _ in STARTS}
    total = sum(len(cell) for cell in results.values()) * len(cfg.optimizers)
    stuck = {k: sum(r["starts"][k][o]["stuck"] for cell in results.values() for r in cell
                    for o in cfg.optimizers) for k, _ in STARTS}
    edges = [r for r in lr_rows if not r["edge"].startswith("0/")]
    explicit_acc = mean_of([r["explicit"]["warm"]["test_accuracy"] for cell in results.values()
                          for r in cell])
    max_diff = max(r["explicit"]["warm"]["forward_max_abs_diff"] for cell in results.values()
                   for r in cell)
    notes = [
        "Why networks: a single softmax layer is convex, so every converging start reaches "
        f"the same optimum; here the networks have {DEPTH} softmax hidden layers of width H "
        "(L1-normalized layer inputs, the explicit solution's convention).",
        "Warm start, without backprop: layer 1 is fitted to class-conditioned k-means clusters "
        "of the inputs, layer 2 to class-conditioned clusters of layer 1's activations, the "
        "output layer to the labels on layer 2's activations, each layer followed by its "
        "Newton-fitted inverse temperature (`layerwise.fit_layerwise` with two widths). Before "
        f"any backprop its mean held-out accuracy is {explicit_acc:.3f}; the MLP reproduces the "
        f"hand-computed forward pass to {max_diff:.2g} in the logits.",
        "Tuning and convergence: every (start, optimizer, seed) is trained at every learning "
        f"rate of the grid ({', '.join(f'{v:g}' for v in cfg.lr_grid)}) for {budget(cfg)} "
        f"steps (batch size {cfg.batch_size or 'full'}), evaluated every "
        f"{max(1, budget(cfg) // RECORDS)} steps; early stopping with patience {patience(cfg)} "
        f"steps and minimum improvement {MIN_DELTA:g} nats keeps the best validation "
        "checkpoint, and the rate with the lowest checkpoint validation loss is chosen. Chosen "
        "runs that converged within the budget: " + ", ".join(
            f"{_TITLES[k]} {conv_counts[k]}/{total}" for k in conv_counts) + ". "
        + (f"{len(edges)} of {len(lr_rows)} (start, optimizer) choices hit the grid's edge on "
           "some seed (flagged)." if edges else "No chosen rate is at the grid's edge."),
        "Chosen runs whose held-out loss at the checkpoint is within "
        f"{STUCK_TOLERANCE:g} nats of their loss at step 0 (never left the start): " + ", ".join(
            f"{_TITLES[k]} {stuck[k]}/{total}" for k in stuck) + ".",
        f"Intermediate budgets ({', '.join(str(b) for b in steps_b)} steps): the rate is "
        "re-chosen by the validation loss at that step; the comparisons are in the tables "
        "below (Holm-corrected among themselves).",
        "Plots: validation and held-out loss and held-out accuracy against step at the chosen "
        "rates (first seed), and held-out loss at the checkpoint against learning rate.",
    ]
    notes += plan.notes()

    fmt4 = "{:.4f}"
    part_rows = [dict(cell=p["cell"],
                      optimizer=OPTIMIZER_TITLES.get(p["optimizer"], p["optimizer"]),
                      part=p["part"], mean=p["mean"],
                      ci=fmt_span(dict(lo=p["value_lo"], hi=p["value_hi"])), threshold=p["threshold"],
                      p=p.get("p_holm"), seeds=f"{p['a_greater']}/{p['n']}",
                      verdict=p["verdict"], reason=p.get("reason") or "–")
                 for p in parts]
    rep_rows = [dict(cell=t["cell"], optimizer=OPTIMIZER_TITLES.get(t["optimizer"], t["optimizer"]),
                     when=t["when"], what=t["what"],
                     sentence=verdicts.difference(t, t["name_a"], t["name_b"]))
                for t in reported]
    tables = [
        Table(f"C7: at convergence (early-stopped checkpoint, chosen rate), over "
              f"{len(cfg.seeds)} seeds: held-out loss and accuracy (mean, 95% CI), training "
              "loss, gradient norm of the training loss at the end of the budget, checkpoint "
              "step and status per seed",
              [("cell", "task, network", None), ("optimizer", "optimizer", None),
               ("start", "start", None), ("loss", "test loss", fmt4), ("loss_ci", "CI", None),
               ("acc", "test acc", fmt4), ("acc_ci", "CI", None),
               ("train_loss", "train loss", fmt4),
               ("grad_norm", "grad norm (end of budget)", "{:.2g}"),
               ("steps", "checkpoint step per seed", None), ("status", "status per seed", None),
               ("stuck", "never left start", None)],
              main_rows),
        Table("C7 rule parts: the per-seed paired difference against its threshold "
              "(Holm-corrected over all parts)",
              [("cell", "task, network", None), ("optimizer", "optimizer", None),
               ("part", "part", None), ("mean", "difference", "{:+.4f}"), ("ci", "95% CI", None),
               ("threshold", "threshold", "{:+.4f}"), ("p", "Holm p", "{:.2g}"),
               ("seeds", "seeds > 0", None), ("verdict", "verdict", None),
               ("reason", "note", None)],
              part_rows),
        Table("C7: held-out loss and accuracy at intermediate budgets (rate re-chosen on "
              "validation at each budget; mean over seeds)",
              [("cell", "task, network", None), ("optimizer", "optimizer", None),
               ("start", "start", None), ("budget", "steps", None), ("loss", "test loss", fmt4),
               ("acc", "test acc", fmt4), ("lr", "chosen lr per seed", None)],
              budget_rows),
        Table("C7: paired comparisons at every budget and at convergence (Holm-corrected "
              "among themselves)",
              [("cell", "task, network", None), ("optimizer", "optimizer", None),
               ("when", "when", None), ("what", "metric", None), ("sentence", "result", None)],
              rep_rows),
        Table("C7: learning rates, chosen by the validation loss at the early-stopped checkpoint",
              [("cell", "task, network", None), ("optimizer", "optimizer", None),
               ("start", "start", None)] + LR_CHOICE_COLUMNS, lr_rows),
        Table("C7 sensitivity: mean held-out loss at the early-stopped checkpoint at every "
              "learning rate; cold − warm with its CI; seeds converged and seeds that chose the "
              "rate (cold / warm)",
              [("cell", "task, network", None), ("optimizer", "optimizer", None),
               ("lr", "lr", "{:g}"), ("cold", "cold", fmt4), ("warm", "warm", fmt4),
               ("diff", "cold − warm", "{:+.4f}"),
               ("diff_lo", "CI lo", "{:+.4f}"), ("diff_hi", "CI hi", "{:+.4f}"),
               ("converged", "converged", None), ("chosen", "chosen by seeds", None)],
              sens_rows),
    ]
    data = dict(
        verdict_rule=dict(min_loss_gain=MIN_LOSS_GAIN, tie_tolerance=TIE_TOLERANCE,
                          alpha=verdicts.ALPHA, min_delta=MIN_DELTA, patience=patience(cfg),
                          budget=budget(cfg)),
        parts=parts, reported=reported, numbers=numbers, sensitivity=sens_rows,
        learning_rates=lr_rows, budgets=budget_rows,
        per_seed=per_seed(results, cfg.seeds, ("chance", "starts", "explicit")),
        skipped=plan.skipped, too_narrow=plan.too_narrow,
        settings=dict(depth=DEPTH, budget=budget(cfg), records=record_steps(cfg),
                      patience=patience(cfg), lr_grid=list(cfg.lr_grid),
                      optimizers=list(cfg.optimizers), batch_size=cfg.batch_size,
                      seeds=list(cfg.seeds), hidden_widths=list(cfg.hidden_widths),
                      smoothing=cfg.image_smoothing, resample_fraction=cfg.resample_fraction,
                      validation_fraction=cfg.validation_fraction),
        seconds=time.perf_counter() - t_start,
    )
    return ClaimResult(CLAIM, TITLE, verdict, summary, tables=tables, plots=plots, notes=notes,
                       data=data, rule=rule)
