"""Generalized Iterative Scaling on the statistics of a softmax layer (``method="gis"``).

Darroch & Ratcliff, 1972, *Generalized iterative scaling for log-linear
models*, Ann. Math. Statist. 43(5). With L1-normalized inputs every example's
features sum to 1, so the GIS constant is ``C = 1`` and the step that
minimizes GIS's auxiliary bound
``sum_ij E_ij (exp(d_ij) - 1) - F_ij d_ij >= B (L(W + d) - L(W))`` is
``d_ij = log(F_ij / E_ij)`` (``F``, ``E``: :mod:`xsol.optimize.gradient`).
Here, with the additive smoothing ``a`` of the explicit solution,

    W_ij <- W_ij + log((F_ij + a) / (E_ij + a))

whose fixed point is still ``E = F`` (the optimum) and which still lowers the
bound (the step lies between 0 and the exact one, where the convex bound is
non-positive), so the loss decreases monotonically. From ``W = 0`` the first
step is the explicit solution plus the constant ``log N`` (docs/math.md), so
``init="explicit"`` starts one step in. With ``l2 > 0`` the bound plus the
penalty is still separable, and each entry's step solves
``E_ij exp(d) + B l2 (W_ij + d) = F_ij`` (a few safeguarded Newton steps on
the host; GIS with a Gaussian prior: Chen & Rosenfeld, 2000, *A survey of
smoothing techniques for ME models*, IEEE Trans. Speech Audio Process. 8(1)).

The bias is not a GIS feature. For L1-normalized inputs it is redundant
(``x~ W + b = x~ (W + 1 b^T)`` when ``x~`` sums to 1), so at ``l2 = 0`` it
stays at its starting value and nothing is lost; at ``l2 > 0`` the free moves
(:meth:`xsol.optimize.gradient.Problem.centered`: row means of ``W`` removed,
column means moved into ``b``) follow every step, so the fixed point is the
optimum over ``(W, b)``. Moving means into ``b`` needs every example to have a
non-zero feature; when some example is all zeros the bias stays fixed. GIS
needs ``normalize="l1"``.
"""

from __future__ import annotations

import math

import numpy as np

from xsol.optimize.gradient import Problem, grad_max
from xsol.optimize.history import Point, Recorder, StopRun, converged, max_passes_reason


def gis_step(F, E, W, *, l2: float, num_examples: int, smoothing: float) -> np.ndarray:
    """The GIS step ``d`` for L1-normalized inputs (``C = 1``), entry by entry.

    ``l2 = 0``: ``d = log((F + a) / (E + a))``. ``l2 > 0``: the root of
    ``h(d) = E exp(d) + c (W + d) - F`` with ``c = B l2`` (``F``, ``E`` are sums
    over the ``B`` examples), found by Newton's method from a start where
    ``h >= 0`` (``max(0, log(max(F - c W, 0) / E))``): ``h`` is increasing and
    convex, so the iterates decrease monotonically to the root. Entries with
    ``E = 0`` (a feature no example has) get ``d = F / c - W``.

    Args:
      F: co-occurrences ``(M, N)``, float64.
      E: expected co-occurrences at ``W``, float64.
      W: current weights, float64.
      l2: the penalty.
      num_examples: ``B``.
      smoothing: ``a`` (``l2 = 0`` only).

    Returns:
      ``d``, float64, the same shape.
    """
    if l2 == 0:
        with np.errstate(divide="ignore"):
            return np.log(F + smoothing) - np.log(E + smoothing)
    c = float(num_examples) * l2
    rhs = F - c * W
    pos = E > 0
    Es = np.where(pos, E, 1.0)
    with np.errstate(divide="ignore"):
        start = np.log(np.maximum(rhs, 0.0) / Es)
    d = np.where(pos, np.maximum(start, 0.0), 0.0)
    for _ in range(200):
        e = Es * np.exp(d)
        step = np.where(pos, (e + c * d - rhs) / (e + c), 0.0)
        d = d - step
        if float(np.max(np.abs(step), initial=0.0)) <= 1e-12 * (
                1.0 + float(np.max(np.abs(d), initial=0.0))):
            break
    return np.where(pos, d, rhs / c)


def run_gis(problem: Problem, W, b, *, l2, rtol, gtol, smoothing, record: Recorder, **_):
    """GIS steps from ``(W, b)`` until convergence or a stop (:mod:`xsol.optimize.history`).

    Returns:
      ``(W, b, loss, grad_max, converged, reason)`` (:meth:`xsol.optimize.history.Point.result`).

    Raises:
      ValueError: ``l2 = 0`` and ``smoothing = 0`` with a zero count of a seen
        feature (``log(F / E) = -inf``).
    """
    recenter = l2 > 0
    if l2 == 0 and smoothing == 0:
        zero = (problem.F == 0) & (problem.F.sum(axis=1, keepdims=True) > 0)
        if zero.any():
            raise ValueError(
                f"GIS with l2=0 and smoothing=0: {int(zero.sum())} co-occurrence counts of seen "
                "features are zero, so log(F / E) = -inf; use smoothing > 0 or l2 > 0")
    cur = Point(W, b)
    prev = None
    try:
        while True:
            loss, GW, gb, E, _ = problem.evaluate(cur.W, cur.b, l2)
            cur.loss, cur.gmax = loss, grad_max(GW, gb)
            record.done(loss, cur.gmax, cur.W, cur.b, True)
            if not math.isfinite(loss):
                return cur.result(False, "the loss is not finite")
            if converged(loss, prev, cur.gmax, rtol, gtol):
                return cur.result(True, "gradient and loss change below tolerance")
            if record.exhausted:
                return cur.result(False, max_passes_reason(record))
            prev = loss
            W = cur.W + gis_step(problem.F, E, cur.W, l2=l2, num_examples=problem.B,
                                 smoothing=smoothing)
            b = cur.b
            if recenter:
                W, b = problem.centered(W, b)
            cur = Point(W, b)
    except StopRun:
        return cur.result(False, "stopped by the callback")

