"""Beyond the paper: the optimum of a softmax layer without backpropagation.

The explicit solution is one step of Generalized Iterative Scaling from zero
(docs/math.md); the statistics it is solved from also give the exact
gradient of the cross-entropy, ``(X~^T P - F) / B + l2 W``, from forward
passes alone (:mod:`xsol.optimize.refinement`). This experiment asks whether refining it
that way (GIS, or L-BFGS on those statistics) reaches the optimum of the
penalized training loss in fewer passes over the data and less time than
backpropagation with Adam from zero at a tuned learning rate. It reuses the
``refine`` benchmark (:mod:`xsol.experiments.race`, also run by the benchmarks) on the run's image tasks and
one K = 2 text task.

Verdict: *holds* when the best backprop-free scheme reaches the tolerance in
fewer passes and less time than tuned Adam on every task, *partly* when on
some, *does not hold* otherwise.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from xsol.experiments import race as bench
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import ClaimResult, Table

CLAIM = "Beyond"
TITLE = "beyond the paper: the optimum without backpropagation"
RULE = ("holds when the best backprop-free scheme reaches a training loss within a relative "
        "0.001 of the optimum's in fewer passes and less time than Adam from zero at its "
        "validation-chosen learning rate on every task; partly when on some; does not hold "
        "when on none.")

#: Per scale: the benchmark's settings and a cap on the text task's training windows.
_SCALES = {
    "tiny": (dict(max_passes=150, max_seconds=20.0, learning_rates=(0.1, 1.0),
                  optimum_iterations=1500), 3000),
    "quick": (dict(max_passes=600, max_seconds=30.0, learning_rates=(0.03, 0.1, 0.3, 1.0, 3.0),
                   optimum_iterations=5000), None),
    "full": ({}, None),
}


def settings_for(cfg: ReproduceConfig) -> tuple[bench.Settings, int | None]:
    """The benchmark settings of ``cfg.scale`` and the text task's cap on training windows."""
    kw, text_cap = _SCALES.get(cfg.scale, _SCALES["quick"])
    return bench.Settings(**kw), text_cap


def _task_result(task, settings, say):
    return bench.bench_task(task.name, task.X_train, task.y_train, task.X_test, task.y_test,
                            task.num_classes, kind=task.kind, vocab_size=task.vocab_size,
                            settings=settings, say=say)


def _wins(c: dict) -> bool:
    return bool(c["best_backprop_free"]) and c["fewer_passes"] and c["less_time"]


def _describe(t: dict) -> str:
    c = t["comparison"]
    m = t["methods"]
    adam = m["adam"]["reached"]
    adam_txt = ("Adam did not reach it in its budget"
                if adam is None else f"Adam {adam['passes']} passes / {adam['seconds']:.3g} s")
    if not c["best_backprop_free"]:
        return f"{t['task']}: no backprop-free scheme reached it; {adam_txt}"
    best = m[c["best_backprop_free"]]["reached"]
    fast = m[c["fastest_backprop_free"]]["reached"]
    txt = (f"{t['task']}: {bench.METHODS[c['best_backprop_free']]} {best['passes']} passes / "
           f"{best['seconds']:.3g} s")
    if c["fastest_backprop_free"] != c["best_backprop_free"]:
        txt += (f" (fastest: {bench.METHODS[c['fastest_backprop_free']]} "
                f"{fast['seconds']:.3g} s)")
    return txt + f" vs {adam_txt}"


def run(cfg: ReproduceConfig, cache: TaskCache, out_dir, progress: bool = False) -> ClaimResult:
    """Runs the experiment on ``cache.images()`` and ``cache.text(2)``.

    Args:
      cfg: the run's settings (``scale`` picks the budgets, see :func:`settings_for`).
      cache: loads the tasks.
      out_dir: where the plot goes.
      progress: print what runs.

    Returns:
      A :class:`ClaimResult` for ``"Beyond"``; ``data`` holds every curve.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings, text_cap = settings_for(cfg)
    say = (lambda msg: print(f"[{CLAIM}] {msg}", flush=True)) if progress else None
    tasks, skipped = [], []
    for name in cfg.image_datasets:
        try:
            tasks.append(cache.image(name))
        except (FileNotFoundError, OSError) as e:
            skipped.append({"task": name, "reason": str(e).splitlines()[0]})
    try:
        text = cache.text(2)
    except (FileNotFoundError, OSError, ValueError) as e:
        skipped.append({"task": "text K=2", "reason": str(e).splitlines()[0]})
    else:
        if text_cap and len(text.y_train) > text_cap:
            text = dataclasses.replace(text, name=f"{text.name} (first {text_cap} windows)",
                                       X_train=text.X_train[:text_cap],
                                       y_train=text.y_train[:text_cap])
        tasks.append(text)
    if not tasks:
        return ClaimResult(CLAIM, TITLE, "not run", "no task could be loaded",
                           data={"skipped": skipped}, rule=RULE)

    results = [_task_result(t, settings, say) for t in tasks]
    plot_name = "beyond_loss_gap.png"
    bench.plot_refine({"tasks": results}, out_dir / plot_name)

    wins = [_wins(t["comparison"]) for t in results]
    n_win, n = sum(wins), len(results)
    verdict = "holds" if n_win == n else ("partly" if n_win else "does not hold")
    tol = settings.tolerance
    summary = (f"the best backprop-free scheme came within a relative {tol:g} of the optimal "
               f"training loss in fewer passes and less time than tuned Adam from zero on "
               f"{n_win} of {n} tasks ("
               + "; ".join(_describe(t) for t in results) + ")")

    rows = []
    for t in results:
        for key, m in t["methods"].items():
            r = m["reached"]
            rows.append({"task": t["task"], "method": m["label"]
                         + (f" (lr {m['learning_rate']:g})" if key == "adam" else ""),
                         "passes": None if r is None else r["passes"],
                         "seconds": None if r is None else r["seconds"],
                         "test_accuracy": None if r is None else r["test_accuracy"],
                         "final_gap": m["final_gap"],
                         "reached": "yes" if r else "not in budget"})
    table = Table(f"Passes and seconds to a training-loss gap of {tol:g} (l2 = {settings.l2:g})",
                  [("task", "task", None), ("method", "method", None),
                   ("reached", "reached", None), ("passes", "passes", None),
                   ("seconds", "seconds", "{:.3g}"), ("test_accuracy", "test acc", "{:.4f}"),
                   ("final_gap", "final gap", "{:.1e}")], rows)
    opt_rows = [{"task": t["task"], "loss": t["optimum"]["loss"],
                 "grad_max": t["optimum"]["grad_max"], "iterations": t["optimum"]["iterations"],
                 "explicit_gap": t["explicit"]["gap"],
                 "centered_gap": t["explicit"]["centered_gap"],
                 "test_accuracy": t["optimum"]["test_accuracy"]} for t in results]
    opt_table = Table("The reference optimum (fit_optimum) and the explicit solution's gap to it",
                      [("task", "task", None), ("loss", "L*", "{:.6f}"),
                       ("grad_max", "grad max", "{:.1e}"), ("iterations", "iterations", None),
                       ("explicit_gap", "explicit gap", "{:.3g}"),
                       ("centered_gap", "centered explicit gap", "{:.3g}"),
                       ("test_accuracy", "test acc at L*", "{:.4f}")], opt_rows)

    notes = [bench.METHOD_NOTE,
             f"Settings: l2 = {settings.l2:g}, tolerance {tol:g}, budget {settings.max_passes} "
             f"passes and {settings.max_seconds:g} s per method (per learning rate for Adam), "
             f"Adam learning rates {tuple(settings.learning_rates)}, validation fraction "
             f"{settings.validation_fraction:g}, reference fit_optimum up to "
             f"{settings.optimum_iterations} iterations."]
    unconverged = [f"{t['task']} ({t['optimum']['grad_max']:.1e} after "
                   f"{t['optimum']['iterations']} of {t['optimum']['iteration_cap']} iterations)"
                   for t in results if not t["optimum"]["converged"]]
    if unconverged:
        notes.append("fit_optimum's final gradient max-norm is above 1e-6 on: "
                     f"{', '.join(unconverged)}; its loss is still the reference.")
    lower = [t["task"] for t in results
             if t["lowest_loss_seen"] < t["optimum"]["loss"] * (1 - 1e-6)]
    if lower:
        notes.append(f"Some method went below fit_optimum's loss on: {', '.join(lower)}.")
    for t in results:
        c = t["comparison"]
        if c["best_backprop_free"] and c["adam_reached"]:
            notes.append(f"{t['task']}: Adam needed {c['pass_ratio']:.3g}x the passes of "
                         f"{bench.METHODS[c['best_backprop_free']]} and {c['time_ratio']:.3g}x "
                         f"the time of {bench.METHODS[c['fastest_backprop_free']]}.")
    if skipped:
        notes.append("Skipped: " + "; ".join(f"{s['task']} ({s['reason']})" for s in skipped))
    return ClaimResult(CLAIM, TITLE, verdict, summary, tables=[table, opt_table],
                       plots=[plot_name], notes=notes,
                       data={"settings": dataclasses.asdict(settings), "tasks": results,
                             "skipped": skipped, "wins": wins}, rule=RULE)
