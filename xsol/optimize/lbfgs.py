"""Preconditioned L-BFGS on the statistics gradient of a softmax layer (``method="lbfgs"``).

Limited-memory BFGS (two-loop recursion over the last ``memory_size`` steps,
in float64 on the host; Nocedal, 1980) on the gradient of
:mod:`xsol.optimize.gradient`, preconditioned by GIS's curvature bound: for
non-negative inputs summing to 1, ``x x^T <= diag(x)`` and
``diag(p) - p p^T <= diag(p)``, so the Hessian is at most
``D = diag(E) / B + l2 I`` (``diag(s) / B`` for ``b``). The initial
inverse-Hessian estimate is ``H_0 = gamma D^-1`` with ``D`` built from the
latest pass's ``E + a`` and ``gamma = s^T y / y^T D^-1 y`` from the newest
pair, so the first step ``-D^-1 g`` is a GIS-like step
(``log(F / E) ~ (F - E) / E``) and later steps add the curvature L-BFGS
learns; ``precondition=False`` gives plain L-BFGS (``H_0 = gamma I``).

It runs with a backtracking Armijo line search whose trial points are forward
passes (each gives the loss and the gradient at once, so an accepted trial
point needs no further pass). A trial step ``t`` along ``d`` is accepted when
the measured loss decreases enough, ``L(t) <= L(0) + c t L'(0)``, or when the
slope does, ``L'(t) <= c L'(0)``: by convexity ``L(t) <= L(0) + t L'(t)``, so
the second test implies the first in exact arithmetic and keeps working where
the float32 loss can no longer resolve the decrease. Most iterations accept
the unit step and so cost one pass. The run also stops when the line search
finds no decrease (the float32 resolution of the loss; converged if the
gradient is below ``gtol``).
"""

from __future__ import annotations

import collections
import math

import numpy as np

from xsol.optimize.gradient import Problem, dot
from xsol.optimize.history import Point, Recorder, StopRun, converged, max_passes_reason

#: Armijo constant ``c`` of the line search.
ARMIJO = 1e-4


def two_loop(g, S, Y, h0):
    """``H g`` for the L-BFGS inverse-Hessian estimate of the pairs ``(s, y)`` (Nocedal, 1980).

    ``h0`` is the diagonal of the initial estimate ``H_0`` (a vector).
    """
    q = g.copy()
    saved = []
    for s, y in zip(reversed(S), reversed(Y)):
        rho = 1.0 / dot(y, s)
        a = rho * dot(s, q)
        q -= a * y
        saved.append((rho, a, s, y))
    r = h0 * q
    for rho, a, s, y in reversed(saved):
        r += s * (a - rho * dot(y, r))
    return r


def run_lbfgs(problem: Problem, W, b, *, l2, rtol, gtol, smoothing, memory_size, precondition,
           record: Recorder, **_):
    """L-BFGS iterations from ``(W, b)`` until convergence or a stop (module docstring).

    Returns:
      ``(W, b, loss, grad_max, converged, reason)`` (:meth:`xsol.optimize.history.Point.result`).
    """
    M, N = W.shape
    size = M * N

    def split(theta):
        return theta[:size].reshape(M, N), theta[size:]

    def evaluate(theta):
        Wt, bt = split(theta)
        loss, GW, gb, E, s = problem.evaluate(Wt, bt, l2)
        g = np.concatenate([GW.ravel(), gb])
        if precondition:  # GIS's curvature bound: diag(E) / B (+ l2), smoothed by a
            floor = max(smoothing, 1e-12)
            D = np.concatenate([((E + floor) / problem.B + l2).ravel(), (s + floor) / problem.B])
        else:
            D = None
        return loss, g, D, Wt, bt

    cur = Point(W, b)
    theta = np.concatenate([W.ravel(), b])
    S: collections.deque = collections.deque(maxlen=memory_size)
    Y: collections.deque = collections.deque(maxlen=memory_size)
    try:
        f, g, D, _, _ = evaluate(theta)
        cur.loss, cur.gmax = f, float(np.max(np.abs(g)))
        record.done(f, cur.gmax, cur.W, cur.b, True)
        if not math.isfinite(f):
            return cur.result(False, "the loss at the starting point is not finite")
        prev = None
        while True:
            if converged(f, prev, cur.gmax, rtol, gtol):
                return cur.result(True, "gradient and loss change below tolerance")
            if cur.gmax == 0.0:
                return cur.result(True, "the gradient is zero")
            if record.exhausted:
                return cur.result(False, max_passes_reason(record))
            inv_d = 1.0 / D if D is not None else np.ones_like(g)
            if S:  # H_0 = gamma D^-1, gamma from the newest pair (Nocedal & Wright, eq. 7.20)
                y_last = Y[-1]
                h0 = inv_d * (dot(S[-1], y_last) / dot(y_last, inv_d * y_last))
                d = -two_loop(g, S, Y, h0)
                t = 1.0
            else:
                d = -inv_d * g
                t = 1.0 if D is not None else min(1.0, 1.0 / max(math.sqrt(dot(g, g)), 1e-300))
            gd = dot(g, d)
            if not (gd < 0 and math.isfinite(gd)):  # not a descent direction: restart
                S.clear()
                Y.clear()
                d = -inv_d * g
                gd = dot(g, d)
            dmax = float(np.max(np.abs(d)))
            while True:
                trial = theta + t * d
                f_t, g_t, D_t, W_t, b_t = evaluate(trial)
                # Armijo on the measured loss, or the same decrease implied by convexity
                # (f(t) <= f(0) + t f'(t)) from the slope, which float32 noise in the
                # loss does not blur near the optimum.
                ok = math.isfinite(f_t) and (f_t <= f + ARMIJO * t * gd
                                             or dot(g_t, d) <= ARMIJO * gd)
                if ok:
                    s, yv = trial - theta, g_t - g
                    sy = dot(s, yv)
                    if sy > 1e-10 * math.sqrt(dot(s, s) * dot(yv, yv)):
                        S.append(s)
                        Y.append(yv)
                    prev, theta, f, g, D = f, trial, f_t, g_t, D_t
                    cur = Point(W_t, b_t)
                    cur.loss, cur.gmax = f, float(np.max(np.abs(g)))
                    record.done(f_t, cur.gmax, W_t, b_t, True)
                    break
                record.done(f_t, float(np.max(np.abs(g_t))), W_t, b_t, False)
                if record.exhausted:
                    return cur.result(False, max_passes_reason(record))
                if math.isfinite(f_t):  # minimizer of the quadratic through f, f'(0), f(t)
                    denom = 2.0 * (f_t - f - gd * t)
                    t_new = -gd * t * t / denom if denom > 0 else 0.5 * t
                else:
                    t_new = 0.1 * t
                t = min(max(t_new, 0.1 * t), 0.5 * t)
                if t * dmax <= 1e-12 * (1.0 + float(np.max(np.abs(theta)))):
                    return cur.result(
                        cur.gmax <= gtol,
                        "the line search found no decrease (the loss's float32 resolution)")
    except StopRun:
        return cur.result(False, "stopped by the callback")
