"""The explicit side of the C6 cost claim: time and FLOPs of the fits, without backpropagation.

* :func:`explicit_cost` -- the compiled statistics step that
  :func:`xsol.accumulate` runs (``F = X~^T Y`` and its sums) plus the compiled
  solve (:func:`xsol.solvers.dense.explicit_weights`), timed on
  device-resident data after a warm-up (compilation timed apart), with XLA's
  FLOP count of both (:mod:`xsol.experiments.flops`).
* :func:`layerwise_cost` -- the layer-wise network of
  :func:`xsol.experiments.layerwise.fit_layerwise`: clustering and solves
  timed apart, per seed.
* :func:`seed_medians` -- one timing per seed from groups of repeats.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import inputs
from xsol.experiments import layerwise
from xsol.experiments.flops import (KMeansRecorder, analytic_explicit_flops, calibration_flops,
                                    compiled_flops)
from xsol.solvers.explicit import fit_explicit, linear_logits_compiled
from xsol.solvers.formula import explicit_weights_compiled
from xsol.stats.accumulation import make_accumulator, validate_batch
from xsol.stats.accumulation import step as accumulate_step

__all__ = ["median_seconds", "seed_medians", "explicit_cost", "layerwise_cost"]


def median_seconds(fn, repeats: int) -> tuple[float, list]:
    """The median and all of ``repeats`` timed calls of ``fn`` (blocked on), after a warm-up."""
    jax.block_until_ready(fn())  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times


def _compiled_fit(X, y, num_classes, *, kind, vocab_size, normalize="l1"):
    """The statistics step :func:`xsol.accumulate` runs, and the solve, compiled for ``(X, y)``."""
    acc = make_accumulator(X, num_classes, vocab_size=vocab_size, kind=kind, normalize=normalize)
    Xh, yh = validate_batch(acc, X, y)
    Xd, yd = jax.device_put(Xh), jax.device_put(np.asarray(yh, np.int32))
    state0 = acc.init()
    a = jnp.float32(0.0)
    t0 = time.perf_counter()
    stats_c = jax.jit(lambda s, X, y: accumulate_step(acc, s, X, y)[0]).lower(
        state0, Xd, yd).compile()
    solve_c = explicit_weights_compiled.lower(state0.cooc, a).compile()
    compile_seconds = time.perf_counter() - t0
    sf, vf = compiled_flops(stats_c), compiled_flops(solve_c)
    if sf is None or vf is None:
        flops = analytic_explicit_flops(Xh.shape[0], acc.num_features, acc.num_classes, kind,
                                        acc.window or 1)
        source = "analytic"
    else:
        flops, source = sf + vf, "xla"
    return dict(acc=acc, Xh=Xh, yh=yh, Xd=Xd, yd=yd, state0=state0, stats_c=stats_c,
                solve_c=solve_c, compile_seconds=compile_seconds, flops=flops,
                stats_flops=sf, solve_flops=vf, flops_source=source)


def seed_medians(times, groups: int) -> list:
    """Medians of ``groups`` consecutive, near-equal groups of timings (one per seed)."""
    times = list(times)
    groups = max(1, min(int(groups), len(times)))
    return [float(np.median(g)) for g in np.array_split(np.asarray(times, np.float64), groups)]


def explicit_cost(X, y, num_classes: int, *, kind: str, vocab_size: int | None,
                  smoothing: float, repeats: int, groups: int = 1) -> dict:
    """Time and FLOPs of the explicit fit: compiled statistics step + compiled solve.

    Args:
      X, y: training inputs and labels (ids ``(B, K)`` or dense ``(B, M)``).
      num_classes: ``N``.
      kind: ``"ids"`` or ``"dense"``.
      vocab_size: ``V`` for ids.
      smoothing: the additive smoothing of the solve.
      repeats: timed repeats after one warm-up.
      groups: the repeats are split into this many consecutive groups (one
        per seed); ``seconds_per_seed`` holds their medians.

    Returns:
      ``seconds`` (median of all repeats, device-resident data),
      ``seconds_per_seed``, ``seconds_all``, ``fit_explicit_seconds`` (median
      of whole :func:`xsol.fit_explicit` calls), ``compile_seconds``,
      ``flops``, ``stats_flops``, ``solve_flops``, ``flops_source``
      (``"xla"`` or ``"analytic"``).
    """
    c = _compiled_fit(X, y, num_classes, kind=kind, vocab_size=vocab_size)
    a = jnp.float32(smoothing)
    stats_c, solve_c, state0, Xd, yd = c["stats_c"], c["solve_c"], c["state0"], c["Xd"], c["yd"]

    def once():
        return solve_c(stats_c(state0, Xd, yd).cooc, a)

    seconds, times = median_seconds(once, repeats)
    fit_seconds, _ = median_seconds(
        lambda: fit_explicit(c["Xh"], c["yh"], num_classes, vocab_size=vocab_size,
                             smoothing=smoothing, kind=kind).weights, max(1, repeats // 3))
    return {"seconds": seconds, "seconds_per_seed": seed_medians(times, groups),
            "seconds_all": times, "fit_explicit_seconds": fit_seconds,
            "compile_seconds": c["compile_seconds"], "flops": c["flops"],
            "stats_flops": c["stats_flops"], "solve_flops": c["solve_flops"],
            "flops_source": c["flops_source"]}



def layerwise_cost(X, y, H: int, N: int, *, smoothing: float, seeds, repeats: int) -> dict:
    """Time and FLOPs of :func:`layerwise.fit_layerwise` (no backpropagation), per seed.

    A first call (seed ``seeds[0]``; it compiles, and its excess over that
    seed's median is reported as compile time) gives the network whose
    training loss is the target. Then every seed fits ``repeats`` times with
    its own k-means seed; the medians of its clustering, solve and total times
    are that seed's times. FLOPs: XLA's counts of both layers' statistics +
    solve, both calibrations and the hidden activations (the same for every
    seed), plus k-means FLOPs from the iterations scikit-learn reports for
    that seed's clusterings (see :class:`xsol.experiments.flops.KMeansRecorder`).
    """
    seeds = [int(s) for s in seeds]
    first = layerwise.fit_layerwise(X, y, H, N, seed=seeds[0], smoothing=smoothing)
    per_seed, kmeans = [], []
    for s in seeds:
        with KMeansRecorder() as rec:
            fits = [layerwise.fit_layerwise(X, y, H, N, seed=s, smoothing=smoothing)
                    for _ in range(max(1, repeats))]
        kmeans.append({"flops": rec.flops() / len(fits),
                       "fits": rec.fits[:len(rec.fits) // len(fits)]})
        per_seed.append({"seconds": float(np.median([f.seconds for f in fits])),
                         "cluster_seconds": float(np.median([f.cluster_seconds for f in fits])),
                         "solve_seconds": float(np.median([f.solve_seconds for f in fits]))})
    fit = first
    hidden, out = fit.layers
    h = np.asarray(hidden.predict_proba(X))
    l1 = _compiled_fit(X, fit.targets, H, kind="dense", vocab_size=None)
    l2 = _compiled_fit(h, y, N, kind="dense", vocab_size=None)
    c1 = calibration_flops(hidden, X, fit.targets)
    c2 = calibration_flops(out, h, y)
    act = compiled_flops(linear_logits_compiled.lower(hidden.weights, hidden.bias,
                                                      jax.device_put(np.asarray(X, np.float32)),
                                                      kind="dense", normalize="l1").compile())
    solves = l1["flops"] + l2["flops"] + c1["flops"] + c2["flops"] + (act or 0.0)
    sources = {l1["flops_source"], l2["flops_source"], c1["flops_source"], c2["flops_source"]}
    logits = layerwise.hand_forward(fit, X)
    loss = float(jnp.mean(inputs.cross_entropy(jnp.asarray(logits), jnp.asarray(y))))
    med = {k: float(np.median([p[k] for p in per_seed]))
           for k in ("seconds", "cluster_seconds", "solve_seconds")}
    return {
        **med,
        "seconds_per_seed": [p["seconds"] for p in per_seed],
        "cluster_seconds_per_seed": [p["cluster_seconds"] for p in per_seed],
        "solve_seconds_per_seed": [p["solve_seconds"] for p in per_seed],
        "fit_explicit_seconds": med["seconds"],
        "compile_seconds": max(0.0, first.seconds - per_seed[0]["seconds"]),
        "flops": solves + float(np.median([k["flops"] for k in kmeans])),
        "flops_per_seed": [solves + k["flops"] for k in kmeans],
        "solve_flops": solves, "kmeans": kmeans,
        "flops_source": "xla + k-means count" if sources == {"xla"} else
                        "analytic + k-means count",
        "loss": loss, "fit": fit,
    }
