"""The parts of the C6 verdict: pure functions of the measured points.

A point is ``{"axis", "label", "weights", "examples", "targets": [{"name",
"flops": {"ratio": [...], "censored": [...]}, "time": {...}}]}`` (ratios
``backprop cost / explicit cost`` per seed; ``censored``: the seed did not
reach the target, so its ratio is a lower bound). Hidden-width targets may
add :data:`NO_CLUSTERING` the same way.

* :func:`cheaper_part` -- *holds* when the interval over seeds of
  ``log(backprop / explicit)`` lies above 0.
* :func:`growth_part` -- *holds* when the interval of the per-seed log-log
  slope of that ratio against size lies above 0.
* :func:`measure_basis` -- every part of one measure, combined with
  :func:`xsol.experiments.verdicts.combine`.
"""

from __future__ import annotations

import math

import numpy as np

from xsol.experiments import verdicts

__all__ = ["MEASURES", "AXES", "NO_CLUSTERING", "ratio_interval", "cheaper_part", "growth_part",
           "series", "measure_basis"]

#: The two cost measures: key -> how the report names it. Each has its own verdict.
MEASURES = {"flops": "FLOPs", "time": "wall time"}
#: Growth series: axis -> the size it grows.
AXES = {"vocabulary": "weights", "data size": "examples", "hidden width": "weights"}
#: Where the layer-wise network's time is also judged without its clustering.
NO_CLUSTERING = "time without clustering"


def _logs(values) -> list:
    return [math.log(v) if (v is not None and v > 0 and math.isfinite(v)) else math.nan
            for v in values]


def ratio_interval(ratios) -> dict:
    """Geometric mean of ratios over seeds and its confidence interval (a t-interval on logs)."""
    ci = verdicts.interval(_logs(ratios))
    if ci["n"] == 0:
        nan = float("nan")
        return {"geomean": nan, "lo": nan, "hi": nan, "n": 0}
    return {"geomean": math.exp(ci["mean"]), "lo": math.exp(ci["lo"]), "hi": math.exp(ci["hi"]),
            "n": ci["n"]}


def cheaper_part(ratio, censored) -> dict:
    """*holds* when the interval of ``log(backprop / explicit)`` over seeds is above 0.

    A censored seed (target not reached: its ratio is a lower bound) cannot
    show that the explicit fit is not cheaper, so *does not hold* becomes
    *inconclusive* when a seed is censored.
    """
    v = verdicts.against(_logs(ratio), 0.0, side="above")
    if v == "does not hold" and any(censored):
        v = "inconclusive"
    return dict(verdict=v, censored=int(sum(bool(c) for c in censored)), **ratio_interval(ratio))


def growth_part(sizes, ratios, censored) -> dict:
    """Whether a ratio grows with size: the per-seed log-log slope's interval against 0.

    Args:
      sizes: the sizes, ascending (at least two distinct).
      ratios: per size, the ratio on each seed.
      censored: per size, whether each seed's ratio is a lower bound.

    Seed ``s``'s slope is the least-squares slope of ``log ratio[i][s]`` on
    ``log size[i]``. A lower bound below the mean log-size makes the slope an
    upper bound (it cannot show growth); above it, a lower bound (it cannot
    show its absence); the verdict those bounds cannot support becomes
    *inconclusive*.
    """
    x = np.log(np.asarray(sizes, np.float64))
    xc = x - x.mean()
    sxx = float(np.sum(xc ** 2))
    if len(sizes) < 2 or sxx <= 0:
        raise ValueError(f"a growth series needs two distinct sizes, got {list(sizes)}")
    w = xc / sxx
    n = min(len(r) for r in ratios)
    logs = [_logs(r[:n]) for r in ratios]
    slopes = [float(sum(w[i] * logs[i][s] for i in range(len(sizes)))) for s in range(n)]
    v = verdicts.against(slopes, 0.0, side="above")
    small = any(c for i in range(len(sizes)) if w[i] < 0 for c in censored[i][:n])
    large = any(c for i in range(len(sizes)) if w[i] > 0 for c in censored[i][:n])
    if v == "holds" and small:
        v = "inconclusive"
    if v == "does not hold" and large:
        v = "inconclusive"
    ci = verdicts.interval(slopes)
    first, last = ratio_interval(ratios[0]), ratio_interval(ratios[-1])
    return {"verdict": v, "slope": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"],
            "slopes": slopes, "sizes": [float(s) for s in sizes], "first": first["geomean"],
            "last": last["geomean"], "factor": last["geomean"] / first["geomean"],
            "censored_small": small, "censored_large": large}


def series(points) -> dict:
    """``{(axis, target name): [(point, target index)] ascending in size}`` for the growth axes."""
    out = {}
    for p in points:
        if p["axis"] not in AXES:
            continue
        for k, t in enumerate(p["targets"]):
            out.setdefault((p["axis"], t["name"]), []).append((p, k))
    for (axis, _), lst in out.items():
        lst.sort(key=lambda pk: pk[0][AXES[axis]])
    return {key: lst for key, lst in out.items()
            if len({p[AXES[key[0]]] for p, _ in lst}) >= 2}


def measure_basis(points, measure: str) -> dict:
    """Cheaper and growth parts of one measure, each combined, and the measure's verdict."""
    cheaper, seen = {}, set()
    for p in points:
        same = (p.get("model", p["label"]), p["examples"])
        if same in seen:
            continue  # one model on the same examples serves two axes: counted once
        seen.add(same)
        for t in p["targets"]:
            if measure in t:
                cheaper[f"{p['label']} / {t['name']}"] = dict(
                    cheaper_part(t[measure]["ratio"], t[measure]["censored"]),
                    axis=p["axis"], model=p.get("model", p["label"]), target=t["name"])
    grows = {}
    for (axis, name), lst in series(points).items():
        if not all(measure in p["targets"][k] for p, k in lst):
            continue
        sizes = [p[AXES[axis]] for p, _ in lst]
        grows[f"{axis} / {name}"] = dict(
            growth_part(sizes, [p["targets"][k][measure]["ratio"] for p, k in lst],
                        [p["targets"][k][measure]["censored"] for p, k in lst]),
            axis=axis, target=name, labels=[p["label"] for p, _ in lst])
    by_axis = {}
    for g in grows.values():
        by_axis.setdefault(g["axis"], []).append(g["verdict"])
    c_v = verdicts.combine([c["verdict"] for c in cheaper.values()])
    g_v = verdicts.combine([g["verdict"] for g in grows.values()])
    return {"verdict": verdicts.combine([c_v, g_v]),
            "cheaper": {"verdict": c_v, "parts": cheaper},
            "grows": {"verdict": g_v, "parts": grows,
                      "axes": {a: verdicts.combine(v) for a, v in by_axis.items()}}}
