"""FLOP counts of the C6 cost claim: XLA's counts of compiled computations, and analytic ones.

* :func:`compiled_flops` -- what XLA's cost analysis reports for a compiled
  computation (a ``while`` loop's body counted once).
* :func:`analytic_explicit_flops`, :func:`analytic_step_flops` -- fallback
  counts of the explicit fit and of one training step, where XLA reports none.
* :func:`lloyd_flops` and :class:`KMeansRecorder` -- k-means, which runs in
  scikit-learn outside XLA: restarts x iterations x ``2BMk + Bk + BM``.
* :func:`calibration_flops` -- the temperature fit: the scores, plus the Newton
  loop's count times its iteration cap (an upper bound).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from xsol.experiments import layerwise
from xsol.solvers.explicit import linear_logits_compiled
from xsol.solvers.temperature import MAX_NEWTON_STEPS, newton_inverse_temperature

__all__ = ["compiled_flops", "analytic_explicit_flops", "analytic_step_flops", "lloyd_flops",
           "KMeansRecorder", "calibration_flops"]


def compiled_flops(compiled) -> float | None:
    """FLOPs XLA's cost analysis reports for a compiled computation, or None.

    ``jax.stages.Compiled.cost_analysis()`` returns a dict in recent JAX and a
    list of dicts (one per computation) in older versions; both are read. A
    ``while`` loop's body is counted once, whatever its trip count.
    """
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 -- best effort by design of the JAX API
        return None
    if isinstance(ca, dict):
        ca = [ca]
    total = 0.0
    for entry in ca or []:
        if isinstance(entry, dict):
            total += float(entry.get("flops", 0.0) or 0.0)
    return total if total > 0 else None


def analytic_explicit_flops(B: int, M: int, N: int, kind: str, K: int = 1) -> float:
    """Fallback count of the statistics pass + solve.

    Ids: ``2 B K`` scatter-adds + ``M N`` (merge). Dense: ``2 B M N`` (the
    product ``X^T A``) + ``B M`` (row sums) + ``2 M N`` (merge, totals).
    Solve: ``4 M N`` (add, two logs, subtract).
    """
    stats = 2.0 * B * K + M * N if kind == "ids" else 2.0 * B * M * N + B * M + 2.0 * M * N
    return stats + 4.0 * M * N


def analytic_step_flops(B: int, sizes, kind: str, K: int = 1) -> float:
    """Fallback count of one Adam step: forward + backward (about 3x forward) + update.

    ``sizes = [M, h_1, ..., N]``. Forward per layer: ``B K N`` (row lookups)
    or ``2 B M N`` (product), plus ``6 B N`` (softmax); Adam: about 12 FLOPs
    per weight.
    """
    fwd, weights = 0.0, 0.0
    for l in range(len(sizes) - 1):
        m, n = sizes[l], sizes[l + 1]
        fwd += (B * K * n if (kind == "ids" and l == 0) else 2.0 * B * m * n) + 6.0 * B * n
        weights += m * n + n
    return 3.0 * fwd + 12.0 * weights


def lloyd_flops(num_examples: int, num_features: int, k: int) -> float:
    """FLOPs of one Lloyd iteration of k-means: ``2 B M k`` (distances by products),
    ``B k`` (assignment), ``B M`` (centroid update)."""
    B, M = num_examples, num_features
    return 2.0 * B * M * k + B * k + B * M


class KMeansRecorder:
    """Records every scikit-learn k-means fit (examples, features, clusters, iterations).

    K-means runs in scikit-learn, outside XLA, so its FLOPs are counted from
    the iterations it reports: ``n_iter_`` of the best restart times the
    number of restarts (an estimate: the other restarts' counts are not kept).
    """

    def __init__(self):
        self.fits = []
        self._recording = None

    def __enter__(self):
        self._recording = layerwise.record_kmeans()
        self.fits = self._recording.__enter__()
        return self

    def __exit__(self, *exc):
        return self._recording.__exit__(*exc)

    def flops(self) -> float:
        """The recorded fits' k-means FLOPs (restarts x iterations x :func:`lloyd_flops`)."""
        return float(sum(f["restarts"] * f["iterations"]
                         * lloyd_flops(f["examples"], f["features"], f["clusters"])
                         for f in self.fits))


def _newton_steps() -> int:
    """The iteration cap of :mod:`xsol.solvers.temperature`'s Newton loop."""
    return MAX_NEWTON_STEPS


def calibration_flops(sol, X, y) -> dict:
    """FLOPs of :meth:`ExplicitSolution.calibrate` on dense ``X``: scores + Newton on one scalar.

    XLA's count of the compiled scores ``x~ W``, plus its count of the Newton
    loop times the loop's iteration cap (XLA counts a loop body once; the loop
    may stop earlier, so this is an upper bound).
    """
    Xd = jax.device_put(np.asarray(X, np.float32))
    yd = jax.device_put(np.asarray(y, np.int32))
    B, M = Xd.shape
    N = sol.num_classes
    sc = compiled_flops(linear_logits_compiled.lower(sol.weights, sol.bias, Xd, kind="dense",
                                                     normalize=sol.normalize).compile())
    try:
        s = jnp.zeros((B, N), jnp.float32)
        nf = compiled_flops(newton_inverse_temperature.lower(
            s, sol.bias, yd, jnp.float32(1)).compile())
    except Exception:  # noqa: BLE001
        nf = None
    iters = _newton_steps()
    if sc is None or nf is None:
        return {"flops": 2.0 * B * M * N + iters * 12.0 * B * N, "flops_source": "analytic",
                "newton_steps": iters}
    return {"flops": sc + iters * nf, "flops_source": "xla", "newton_steps": iters}
