"""The C6 cost claim's report: sentences, notes, tables and the savings plot.

Everything here is a function of the measured points and the verdict's basis
(:mod:`xsol.experiments.savings`), every direction and count computed from
them: :func:`summary_text` (one sentence per measure), :func:`growth_sentence`,
:func:`component_sentences`, :func:`clustering_sentence`,
:func:`lr_sentences`, the notes of the method (:func:`method_notes`,
:func:`growth_notes`), :func:`tables` and :func:`plot_savings`.
"""

from __future__ import annotations

import math

import numpy as np

from xsol.core.serialize import save_figure
from xsol.experiments import verdicts
from xsol.experiments.backprop_cost import TIME_SLACK
from xsol.experiments.report import Table
from xsol.experiments.savings import AXES, MEASURES, NO_CLUSTERING, cheaper_part, series
from xsol.experiments.sweep import OPTIMIZER_TITLES

__all__ = ["measure_sentence", "growth_sentence", "component_sentences", "clustering_sentence",
           "summary_text", "lr_sentences", "plot_savings", "tables", "method_notes",
           "growth_notes"]

#: How a growth part's verdict reads in a sentence.
_GROWTH_WORDS = {"holds": "grows", "does not hold": "does not grow",
                 "inconclusive": "inconclusive"}



def _join(items) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _x(v: float) -> str:
    return f"×{v:.3g}" if math.isfinite(v) else "×n/a"


def _moved(name: str, before: float, after: float, *, up: str, down: str) -> str:
    """``"the savings grow from ×4 to ×9"``; the direction from the numbers."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return f"{name} go from {_x(before)} to {_x(after)}"
    if after == before:
        return f"{name} stay at {_x(after)}"
    return f"{name} {up if after > before else down} from {_x(before)} to {_x(after)}"


def _count_sentence(parts: dict, what: str, unit: str) -> str:
    """``"A in 9 of 11 UNIT (not in a, b; inconclusive for c)"`` from the parts' verdicts."""
    n = len(parts)
    held = [k for k, p in parts.items() if p["verdict"] == "holds"]
    failed = [k for k, p in parts.items() if p["verdict"] == "does not hold"]
    unsure = [k for k, p in parts.items() if p["verdict"] == "inconclusive"]
    text = f"{what} in {len(held)} of {n} {unit}"
    rest = []
    if failed:
        rest.append(f"not in {_join(failed)}")
    if unsure:
        rest.append(f"inconclusive for {_join(unsure)}")
    return text + (f" ({'; '.join(rest)})" if rest else "")


def _axes_sentence(axes: dict, noun: str) -> str:
    """``"the FLOPs savings grow with data size; they do not grow with vocabulary"``.

    Made from the per-axis verdicts.
    """
    groups = {}
    for axis, v in axes.items():
        groups.setdefault(v, []).append(axis)
    bits = []
    if groups.get("holds"):
        bits.append(f"grow with {_join(groups['holds'])}")
    if groups.get("partly"):
        bits.append(f"grow with {_join(groups['partly'])} for some targets only")
    if groups.get("does not hold"):
        bits.append(f"do not grow with {_join(groups['does not hold'])}")
    if groups.get("inconclusive"):
        bits.append(f"are inconclusive in {_join(groups['inconclusive'])}")
    if not bits:
        return f"no growth series measured the {noun}"
    return f"the {noun} " + "; they ".join(bits)


def measure_sentence(measure: str, b: dict) -> str:
    """One sentence per measure, every direction and count computed from ``b``."""
    name = MEASURES.get(measure, measure)
    parts = b["cheaper"]["parts"]
    g = [p["geomean"] for p in parts.values() if math.isfinite(p["geomean"])]
    span = f"backprop/explicit {_x(min(g))} to {_x(max(g))}; " if g else ""
    cheaper = _count_sentence(parts, "the explicit fit is cheaper", "model-targets")
    axes = _axes_sentence(b["grows"]["axes"], f"{name} savings")
    return f"{name} — {b['verdict']}: {span}{cheaper}; {axes}"


def growth_sentence(key: str, g: dict, measure: str) -> str:
    """``"vocabulary / t: the FLOPs savings shrink from ×2180 to ×408 (slope ...)"``."""
    name = MEASURES.get(measure, measure)
    moved = _moved(f"the {name} savings", g["first"], g["last"], up="grow", down="shrink")
    tail = (f"log-log slope {g['slope']:+.2f}, {int(100 * verdicts.CONFIDENCE)}% CI "
            f"{g['lo']:+.2f} to {g['hi']:+.2f}, n = {g['n']}: {_GROWTH_WORDS[g['verdict']]}")
    bounds = []
    if g["censored_small"]:
        bounds.append("lower bounds at the small sizes")
    if g["censored_large"]:
        bounds.append("lower bounds at the large sizes")
    if bounds:
        tail += f"; {_join(bounds)}"
    return f"{key}: {moved} ({tail})"


def component_sentences(points) -> list:
    """What dominates each explicit cost, at the smallest and largest size of each series."""
    out = []
    for (axis, name), lst in series(points).items():
        if lst[0][1] != 0:
            continue  # one sentence per axis (the explicit cost is shared by its targets)
        (p0, _), (p1, _) = lst[0], lst[-1]
        e0, e1 = p0.get("explicit", {}), p1.get("explicit", {})
        if axis in ("vocabulary", "data size") and all(
                e.get("solve_flops") and e.get("stats_flops") for e in (e0, e1)):
            s0 = 100 * e0["solve_flops"] / (e0["solve_flops"] + e0["stats_flops"])
            s1 = 100 * e1["solve_flops"] / (e1["solve_flops"] + e1["stats_flops"])
            out.append(verdicts.change(
                f"{axis}: between {p0['label']} and {p1['label']} the solve's share of the "
                f"explicit FLOPs (%; the rest is the statistics pass)", s0, s1, digits=0))
        if axis == "hidden width" and all(e.get("seconds") for e in (e0, e1)):
            c0 = 100 * e0["cluster_seconds"] / e0["seconds"]
            c1 = 100 * e1["cluster_seconds"] / e1["seconds"]
            out.append(verdicts.change(
                f"hidden width: between {p0['label']} and {p1['label']} the clustering's share of "
                f"the layer-wise fit's wall time (%; the rest is both layers' solves and "
                f"calibrations)", c0, c1, digits=0))
    return out


def clustering_sentence(basis: dict) -> str | None:
    """Whether excluding the clustering would change the hidden-width time verdicts."""
    wc = basis.get("without_clustering")
    if wc is None:
        return None
    full = basis["measures"]["time"]
    pairs = []
    for part in ("cheaper", "grows"):
        with_c = [p["verdict"] for p in full[part]["parts"].values()
                  if p["axis"] == "hidden width"]
        without = [p["verdict"] for p in wc[part]["parts"].values()]
        if with_c and without:
            pairs.append((part, verdicts.combine(with_c), verdicts.combine(without)))
    if not pairs:
        return None
    changed = [(p, a, b) for p, a, b in pairs if a != b]
    if changed:
        return ("Excluding the clustering changes the hidden-width wall-time verdicts: "
                + "; ".join(f"{p}: {a} with it, {b} without it" for p, a, b in changed)
                + " (the verdict counts the clustering: it is part of the layer-wise fit).")
    return ("Excluding the clustering leaves the hidden-width wall-time verdicts unchanged ("
            + "; ".join(f"{p}: {a}" for p, a, _ in pairs) + ").")


def summary_text(overall: str, basis: dict) -> str:
    """The one-line summary: each measure's verdict and the counts behind it."""
    ms = basis["measures"]
    text = "; ".join(measure_sentence(m, ms[m]) for m in MEASURES)
    v = basis["verdicts"]
    if v["flops"] != v["time"]:
        text += f". The measures disagree (FLOPs {v['flops']}, wall time {v['time']}): {overall}"
    return text


def lr_sentences(points) -> list:
    """Which chosen learning rates sit at an end of the grid (a faster rate may lie beyond)."""
    edges, labels, seen = {}, [], set()
    for p in points:
        bp = p.get("backprop")
        if not bp or (p.get("model"), p["examples"]) in seen:
            continue
        seen.add((p.get("model"), p["examples"]))
        labels += [f"{p['label']} / {t['name']}" for t in p["targets"]]
        for name, o in bp["optimizers"].items():
            for k, (t, lr, e) in enumerate(zip(p["targets"], o["chosen"], o["at_edge"])):
                if e:
                    end = "top" if lr >= max(bp["grid"]) else "bottom"
                    charged = any(tuple(w[k]) == (name, lr) for w in bp["winners"].values())
                    edges.setdefault((name, lr, end), []).append(
                        (f"{p['label']} / {t['name']}", charged))
    if not edges:
        return ["Every chosen rate lies inside the grid."]
    bits = []
    for (name, lr, end), items in edges.items():
        total, named = len(labels), [k for k, _ in items]
        others = [k for k in labels if k not in named]
        where = (f"every model-target ({total})" if not others
                 else f"{len(items)} of {total} model-targets (all but {_join(others)})"
                 if len(others) < len(named)
                 else f"{len(items)} of {total} model-targets ({_join(named)})")
        charged = sum(c for _, c in items)
        bits.append(f"{OPTIMIZER_TITLES.get(name, name)} at {lr:g}, the {end} of the grid, for "
                    f"{where}; it is the charged baseline for {charged} of them")
    return ["Chosen rates at an end of the grid (a faster rate may lie beyond it): "
            + "; ".join(bits) + "."]



def _xkey(axis: str) -> str:
    return AXES.get(axis, "weights")


def plot_savings(points, path) -> str:
    """Savings per axis: geometric mean over seeds with its interval; time solid, FLOPs dashed.

    Log axes; open triangles: lower bounds (a seed did not reach the target).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes_names = list(dict.fromkeys(p["axis"] for p in points))
    fig, axs = plt.subplots(1, len(axes_names), figsize=(4.6 * len(axes_names), 3.9),
                            squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, axis in zip(axs[0], axes_names):
        lst_by_name = {}
        for p in sorted((p for p in points if p["axis"] == axis), key=lambda p: p[_xkey(axis)]):
            for k, t in enumerate(p["targets"]):
                lst_by_name.setdefault(t["name"], []).append((p, k))
        for ci, (name, lst) in enumerate(lst_by_name.items()):
            x = [p[_xkey(axis)] for p, _ in lst]
            c = colors[ci % len(colors)]
            for m, style, tag in (("time", "-", "time"), ("flops", "--", "FLOPs")):
                ts = [p["targets"][k] for p, k in lst]
                yv = np.asarray([t[f"{m}_ratio"] for t in ts])
                err = np.asarray([[max(0.0, v - t[f"{m}_ratio_lo"]) for v, t in zip(yv, ts)],
                                  [max(0.0, t[f"{m}_ratio_hi"] - v) for v, t in zip(yv, ts)]])
                lb = [t[f"{m}_lower_bound"] for t in ts]
                ax.errorbar(x, yv, yerr=np.nan_to_num(err), fmt=style, marker="o", ms=3, color=c,
                            capsize=2, lw=1, label=f"{tag}: {name}")
                bound = [(a, v) for a, v, b in zip(x, yv, lb) if b]
                if bound:
                    ax.scatter(*zip(*bound), marker="^", facecolors="none", edgecolors=c, s=44)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis_ in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 3, 10, 30, ...
            axis_.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
            axis_.set_major_formatter(
                FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
            axis_.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training examples" if axis == "data size" else "weights (M×N summed)")
        ax.set_ylabel("backprop cost / explicit cost")
        ax.set_title(axis, fontsize=10)
        ax.legend(fontsize=6)
    fig.suptitle("C6: savings of the explicit fit to equal training loss, geometric mean over "
                 "seeds with 95% CI (above 1: explicit cheaper; open triangles: lower bounds)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def _lr_text(o: dict) -> str:
    """The chosen rates (per target, repeats dropped), flagged when one is at the grid's edge."""
    chosen = dict.fromkeys(o["chosen"])
    edge = any(o["at_edge"])
    return " / ".join(f"{lr:g}" for lr in chosen) + (" (grid edge)" if edge else "")


def tables(points, basis) -> list:
    """The four C6 tables: explicit costs, learning rates, costs per target, growth."""
    explicit_rows, lr_rows, target_rows, growth_rows = [], [], [], []
    seen = set()
    for p in points:
        e, bp = p["explicit"], p["backprop"]
        shared = (p["model"], p["examples"]) in seen  # one model measured once, on two axes
        seen.add((p["model"], p["examples"]))
        explicit_rows.append({
            "axis": p["axis"], "model": p["model"], "weights": p["weights"],
            "examples": p["examples"], "explicit_ms": 1e3 * e["seconds"],
            "cluster_ms": 1e3 * e["cluster_seconds"] if "cluster_seconds" in e else None,
            "solve_ms": 1e3 * e["solve_seconds"] if "solve_seconds" in e else None,
            "fit_ms": 1e3 * e["fit_explicit_seconds"], "compile_s": e["compile_seconds"],
            "explicit_mflops": e["flops"] / 1e6, "flops_source": e["flops_source"],
        })
        for name, o in ([] if shared else bp["optimizers"].items()):
            lr_rows.append({
                "model": p["model"], "examples": p["examples"],
                "optimizer": OPTIMIZER_TITLES.get(name, name),
                "tried": ", ".join(f"{r['learning_rate']:g}" for r in o["tried"]),
                "chosen": _lr_text(o),
                "step_mflops": o["step_flops"] / 1e6, "ms_per_step": 1e3 * o["seconds_per_step"],
                "compile_s": o["compile_seconds"],
            })
        for t in p["targets"]:
            st = t["steps"]
            row = {"axis": p["axis"], "model": p["model"], "target": t["name"],
                   "target_loss": t["loss"], "reached": f"{t['reached']}/{t['runs']}",
                   "steps": (f"{st['mean']:.0f} ± {st['std']:.0f}" if st
                             else f"> {t['max_steps_run']}"),
                   "explicit_val": t.get("explicit_val_loss")}
            vals = [v for v in t["flops"].get("val_loss", []) if v is not None]
            row["backprop_val"] = float(np.median(vals)) if vals else None
            for m in MEASURES:
                d = t[m]
                part = cheaper_part(d["ratio"], d["censored"])
                row[f"{m}_baseline"] = (f"{OPTIMIZER_TITLES.get(d['optimizer'], d['optimizer'])}"
                                        f" {d['learning_rate']:g}")
                row[f"{m}_ratio"] = t[f"{m}_ratio"]
                row[f"{m}_ci"] = (f"{t[f'{m}_ratio_lo']:.3g}–{t[f'{m}_ratio_hi']:.3g}"
                                  + (" (≥)" if t[f"{m}_lower_bound"] else ""))
                row[f"{m}_verdict"] = part["verdict"]
            row["backprop_mflops"] = float(np.median(t["flops"]["backprop"])) / 1e6
            row["explicit_mflops"] = float(np.median(t["flops"]["explicit"])) / 1e6
            row["backprop_ms"] = 1e3 * float(np.median(t["time"]["backprop"]))
            row["explicit_ms"] = 1e3 * float(np.median(t["time"]["explicit"]))
            target_rows.append(row)
    for m, b in list(basis["measures"].items()) + (
            [(NO_CLUSTERING, basis["without_clustering"])] if "without_clustering" in basis
            else []):
        for key, g in b["grows"]["parts"].items():
            growth_rows.append({
                "series": key, "measure": MEASURES.get(m, m),
                "sizes": " → ".join(f"{s:,.0f}" for s in g["sizes"]),
                "first": g["first"], "last": g["last"], "slope": g["slope"],
                "ci": f"{g['lo']:+.2f} to {g['hi']:+.2f}", "n": g["n"],
                "verdict": _GROWTH_WORDS[g["verdict"]]
                + ("" if m in MEASURES else " (shown only)")})
    t1 = Table(
        "C6 explicit cost per model (median over seeds of each seed's median of repeats; "
        "compile time excluded and listed; the layer-wise fit split into clustering and solves)",
        [("axis", "axis", None), ("model", "model", None), ("weights", "weights", "{:,}"),
         ("examples", "examples", "{:,}"), ("explicit_ms", "explicit ms", "{:.3f}"),
         ("cluster_ms", "clustering ms", "{:.2f}"), ("solve_ms", "solves ms", "{:.2f}"),
         ("fit_ms", "whole fit ms", "{:.2f}"), ("compile_s", "explicit compile s", "{:.2f}"),
         ("explicit_mflops", "explicit MFLOPs", "{:.3g}"), ("flops_source", "FLOPs from", None)],
        explicit_rows)
    t2 = Table(
        "C6 learning rates: tried on the tuning seed (from the grid), chosen per target by the "
        "fewest steps to the target training loss",
        [("model", "model", None), ("examples", "examples", "{:,}"),
         ("optimizer", "optimizer", None), ("tried", "rates tried", None),
         ("chosen", "chosen", None),
         ("step_mflops", "MFLOPs/step", "{:.3g}"), ("ms_per_step", "ms/step", "{:.3f}"),
         ("compile_s", "compile s", "{:.2f}")],
        lr_rows)
    t3 = Table(
        "C6 backprop from random init to the target training loss vs the explicit fit: steps "
        "mean ± std over the seeds that reached it (FLOPs baseline); costs are medians over "
        "seeds; ratio = backprop / explicit, geometric mean over seeds with its 95% CI (above "
        "1: explicit cheaper; ≥: some seed did not reach the target, a lower bound); val: "
        "validation loss of the explicit solution behind the target, and of the FLOPs "
        "baseline's runs where they stopped (median over seeds; a run stops at the last "
        "target it was run for)",
        [("axis", "axis", None), ("model", "model", None), ("target", "target", None),
         ("target_loss", "target loss", "{:.4f}"), ("reached", "reached", None),
         ("steps", "steps", None),
         ("flops_baseline", "FLOPs baseline", None),
         ("backprop_mflops", "backprop MFLOPs", "{:.3g}"),
         ("explicit_mflops", "explicit MFLOPs", "{:.3g}"),
         ("flops_ratio", "FLOPs ×", "{:.3g}"), ("flops_ci", "CI", None),
         ("flops_verdict", "cheaper (FLOPs)", None),
         ("time_baseline", "time baseline", None), ("backprop_ms", "backprop ms", "{:.1f}"),
         ("explicit_ms", "explicit ms", "{:.3f}"), ("time_ratio", "time ×", "{:.3g}"),
         ("time_ci", "CI", None), ("time_verdict", "cheaper (time)", None),
         ("explicit_val", "val explicit", "{:.3f}"), ("backprop_val", "val backprop", "{:.3f}")],
        target_rows)
    t4 = Table(
        "C6 growth of the savings with size: geometric-mean ratio at the smallest and largest "
        "size, per-seed log-log slope (mean and 95% CI)",
        [("series", "series", None), ("measure", "measure", None), ("sizes", "sizes", None),
         ("first", "smallest ×", "{:.3g}"), ("last", "largest ×", "{:.3g}"),
         ("slope", "slope", "{:+.2f}"), ("ci", "95% CI", None), ("n", "seeds", None),
         ("verdict", "verdict", None)],
        growth_rows)
    return [t1, t2, t3, t4]


# --------------------------------------------------------------------------- notes


def method_notes(cfg, settings, points) -> list:
    """How each side was measured and how the learning rates were chosen (report notes).

    Args:
      cfg: the run's :class:`xsol.experiments.config.ReproduceConfig`.
      settings: its :class:`xsol.experiments.claims.c6_cost.CostSettings`.
      points: the measured points.
    """
    s = settings
    batch_txt = ("full-batch steps" if s.lm_batch_size is None
                 else f"minibatches of {s.lm_batch_size}")
    img_batch = ("full-batch steps" if cfg.batch_size is None
                 else f"minibatches of {cfg.batch_size}")
    opt_names = _join(OPTIMIZER_TITLES.get(o, o) for o in cfg.optimizers)
    return [
        "Explicit cost: the compiled statistics step that `xsol.accumulate` runs, plus the "
        "compiled solve (`xsol.solvers.dense.explicit_weights`), on device-resident data after a "
        f"warm-up; each seed gets {s.repeats_per_seed} timed repeats and their median is its "
        "explicit time (so timing noise enters the intervals); compile time is listed "
        "separately; 'whole fit' is the median of whole `fit_explicit` calls (host checks and "
        "transfers included). FLOPs are what XLA's cost analysis "
        "(`jit(f).lower(...).compile().cost_analysis()`) reports for those computations (an "
        "analytic count where it reports none; the table says which). For a calibrated target "
        "the temperature fit's time and FLOPs are added (Newton loop FLOPs: XLA's per-iteration "
        "count × the loop's iteration cap, an upper bound).",
        f"Backprop cost: {opt_names} from a random initialization (Lecun normal), {batch_txt} "
        f"for the LMs and {img_batch} for the image models, until the training loss first "
        "reaches the target (full batch: the loss every step computes is the training loss, "
        f"so the first step reaching the target is exact); cap {s.max_steps} steps and "
        f"{s.max_seconds:g} s of training per run. Time to target = steps × measured seconds "
        "per step (compile time excluded, as on the explicit side); FLOPs = XLA's FLOPs of one "
        "compiled training step (`xsol.train.steps.make_train_step`, as compiled inside the "
        "training loop `xsol.train.steps.run_steps`) × steps.",
        f"Learning rates: from the grid {tuple(float(g) for g in cfg.lr_grid)} (`cfg.lr_grid`), "
        f"for each of {opt_names}. C6 measures cost to a target training loss, so a rate is "
        "chosen by that cost: per optimizer and target, the rate reaching the target in the "
        f"fewest steps on the tuning seed {cfg.seeds[0]}. The search starts at the previous "
        "model's choice (the grid's middle for the first model of each kind) and walks outward "
        "while a neighbour is faster for some target; a run stops once it cannot be the "
        f"cheapest on any target (FLOPs, or time with a ×{TIME_SLACK:g} margin). The baseline of "
        "each target and measure is the cheaper optimizer at its rate; seeds "
        f"{tuple(cfg.seeds)} then run it (they change the initialization). Only the baseline's "
        "cost is charged to backprop, not the search's. No held-out quality is compared in "
        "C6: both methods fit the fitting part of the validation split "
        f"(fraction {cfg.validation_fraction:g}); the validation loss where each stopped is "
        "listed beside the cost.",
        *lr_sentences(points),
        *lr_sentences(points),
    ]


def growth_notes(settings, points, basis, *, texts, data_fit, widths, image) -> list:
    """What each growth series varies, what dominates the explicit cost, and how each grew.

    Args:
      settings: the run's :class:`xsol.experiments.claims.c6_cost.CostSettings`.
      points, basis: the measured points and the verdict's basis.
      texts: ``(fit, validation, token cap)`` of each vocabulary of series (a).
      data_fit: the fitted text of series (b).
      widths: the hidden widths of series (c) measured.
      image: the image task of series (c), or None.
    """
    s, dfit = settings, data_fit
    vocab_txt = "; ".join(f"V = {fit.vocab_size}: {len(fit.y_train):,} fitted tokens"
                          for fit, _, _ in texts)
    per_word = [len(fit.y_train) / fit.vocab_size for fit, _, _ in texts]
    per_word_txt = (f"{min(per_word):.1f} to {max(per_word):.1f}"
                    if max(per_word) - min(per_word) >= 0.05 else f"{per_word[0]:.1f}")
    growth = [growth_sentence(key, g, m) for m, b in basis["measures"].items()
              for key, g in b["grows"]["parts"].items()]
    return [
        f"Growth series: vocabulary (bigram LM on the first {s.tokens_per_word} × V tokens of "
        f"the text, so the data grows with V: {vocab_txt}; "
        f"{per_word_txt} fitted tokens per word; weights = V²); "
        f"data size (leading fractions {tuple(s.fractions)} of {len(dfit.y_train):,} fitted "
        f"tokens at V = {dfit.vocab_size}; plotted against the number of examples); hidden "
        f"width (H in {widths} on {image.name if image is not None else '-'}, "
        "weights = MH + HN).",
        *component_sentences(points),
        *([c] if (c := clustering_sentence(basis)) else []),
        f"Growth per series (smallest → largest size): {'; '.join(growth) or 'none measured'}.",
    ]
