"""From the explicit solution to the optimum of a softmax layer, without backpropagation.

:func:`refine` minimizes the convex single-layer cross-entropy

    L(W, b) = 1/B sum_t -log softmax(x~_t W + b)[y_t] + l2/2 ||W||^2

by forward passes alone: its gradient is ``dL/dW = (E - F) / B + l2 W``,
``dL/db = (s - n) / B`` with ``F = X~^T Y`` gathered once and the expected
co-occurrences ``E = X~^T P`` from each pass (:mod:`xsol.optimize.gradient`).
One such pass is the unit of cost reported in :class:`Refinement`
(``passes``); the one pass that gathers ``F`` is counted separately. Two
schemes:

* ``method="gis"``: Generalized Iterative Scaling,
  ``W_ij <- W_ij + log((F_ij + a) / (E_ij + a))`` (:mod:`xsol.optimize.gis`;
  needs ``normalize="l1"``).
* ``method="lbfgs"`` (default): L-BFGS preconditioned by GIS's curvature bound
  ``D = diag(E) / B + l2 I``, with a line search whose trial points are passes
  (:mod:`xsol.optimize.lbfgs`).

With ``l2 > 0`` both start from the point with the row means of ``W`` removed
and its column means moved into ``b`` (the same probabilities, the smallest
penalty: :meth:`xsol.optimize.gradient.Problem.centered`). The convergence
test and the record of each pass are in :mod:`xsol.optimize.history`: the run
converges when the gradient's max-norm is at most ``gtol`` and the loss
changed by at most ``rtol`` (relative) between accepted points.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import defaults, inputs
from xsol.core.checks import optional_positive_int, positive_int
from xsol.optimize.gis import run_gis
from xsol.optimize.gradient import check_tol, setup_problem
from xsol.optimize.history import Recorder, RefineStep
from xsol.optimize.lbfgs import run_lbfgs
from xsol.solvers.dense import check_smoothing
from xsol.solvers.explicit import ExplicitSolution, solution_from_stats
from xsol.stats.accumulators import CoocStats

METHODS = ("lbfgs", "gis")

#: Default tolerances (relative loss change between accepted points, and gradient max-norm).
RTOL = 1e-7
GTOL = 1e-6
#: Default cap on forward passes (the statistics pass not included).
MAX_PASSES = 500
#: Default L-BFGS history length.
MEMORY_SIZE = 10


@dataclasses.dataclass
class Refinement:
    """Result of :func:`refine`.

    Attributes:
      weights: refined ``W``, ``(M, N)`` float32.
      bias: refined ``b``, ``(N,)`` float32.
      method: ``"lbfgs"`` or ``"gis"``.
      init: where it started (``"explicit"``, ``"zeros"``, ``"solution"``, ``"weights"``).
      l2: the L2 penalty on ``W``.
      loss: the final (penalized) mean training loss, at ``weights``/``bias``.
      grad_max: the gradient max-norm there.
      passes: forward passes used (the statistics pass not included).
      converged: whether the convergence criterion held (:mod:`xsol.optimize.history`).
      reason: why it stopped, in words.
      losses: the loss at the point each pass evaluated, ``(passes,)`` float64
        (rejected line-search trial points included; see :attr:`best_losses`).
      grad_maxes: the gradient max-norm at each pass's point.
      accepted: whether each pass's point was accepted.
      pass_seconds: wall seconds of each pass (the first includes compilation
        when the shapes are new).
      statistics_seconds: seconds of the statistics pass that gathered ``F``
        (0 when ``stats`` were given) plus the explicit solve for ``init="explicit"``.
      kind, normalize, smoothing, vocab_size, window: the input conventions.
      stats: the :class:`xsol.stats.CoocStats` of the training data.
    """

    weights: jax.Array
    bias: jax.Array
    method: str
    init: str
    l2: float
    loss: float
    grad_max: float
    passes: int
    converged: bool
    reason: str
    losses: np.ndarray
    grad_maxes: np.ndarray
    accepted: np.ndarray
    pass_seconds: np.ndarray
    statistics_seconds: float
    kind: str
    normalize: str
    smoothing: float
    vocab_size: int | None
    window: int | None
    stats: CoocStats

    def __repr__(self) -> str:
        M, N = self.weights.shape
        return (f"Refinement(method={self.method!r}, init={self.init!r}, weights=({M}, {N}), "
                f"l2={self.l2:g}, loss={self.loss:.6g}, grad_max={self.grad_max:.3g}, "
                f"passes={self.passes}, converged={self.converged}, reason={self.reason!r})")

    @property
    def best_losses(self) -> np.ndarray:
        """The lowest loss seen up to each pass (the running minimum of :attr:`losses`)."""
        return np.minimum.accumulate(self.losses)

    @property
    def seconds(self) -> float:
        """Wall seconds of all passes (the statistics pass not included)."""
        return float(np.sum(self.pass_seconds))

    def solution(self) -> ExplicitSolution:
        """The refined weights as an :class:`xsol.ExplicitSolution` (scoring, ``calibrate``, ...).

        Its ``weights``/``bias`` are the refined ones, ``inverse_temperature`` is 1
        and ``stats`` are the training statistics.
        """
        return ExplicitSolution(self.weights, self.bias, self.stats, self.kind, self.normalize,
                                self.smoothing, self.vocab_size, self.window)

    def predict(self, X, **kw) -> np.ndarray:
        """:meth:`xsol.ExplicitSolution.predict` of :meth:`solution`."""
        return self.solution().predict(X, **kw)

    def predict_proba(self, X, **kw) -> np.ndarray:
        """:meth:`xsol.ExplicitSolution.predict_proba` of :meth:`solution`."""
        return self.solution().predict_proba(X, **kw)

    def score(self, X, y, **kw) -> float:
        """Accuracy (:meth:`xsol.ExplicitSolution.score`)."""
        return self.solution().score(X, y, **kw)

    def nll(self, X, y, **kw) -> float:
        """Mean cross-entropy without the penalty (:meth:`xsol.ExplicitSolution.nll`)."""
        return self.solution().nll(X, y, **kw)

def initial_point(init, *, M, N, kind, normalize, window, stats_fn):
    """``(W, b, label, explicit_solution_or_None)`` for the ``init`` argument of :func:`refine`.

    ``stats_fn`` makes the explicit solution (called for ``init="explicit"`` only).
    """
    if isinstance(init, str):
        if init == "zeros":
            return np.zeros((M, N)), np.zeros(N), "zeros", None
        if init == "explicit":
            sol = stats_fn()
            return (np.asarray(sol.weights, np.float64), np.asarray(sol.bias, np.float64),
                    "explicit", sol)
        raise ValueError(f"init must be 'explicit', 'zeros', an ExplicitSolution or a (W, b) "
                         f"pair, got {init!r}")
    if isinstance(init, ExplicitSolution):
        if init.kind != kind or init.normalize != normalize:
            raise ValueError(
                f"the initial solution has kind={init.kind!r}, normalize={init.normalize!r}; "
                f"these data have kind={kind!r}, normalize={normalize!r}")
        if kind == "ids" and init.window != window:
            raise ValueError(f"the initial solution has a window of {init.window}, these data "
                             f"{window}")
        W, b = np.asarray(init.scaled_weights(), np.float64), np.asarray(init.bias, np.float64)
        label = "solution"
    else:
        try:
            W, b = init
        except (TypeError, ValueError):
            raise TypeError("init must be 'explicit', 'zeros', an ExplicitSolution or a "
                            f"(weights, bias) pair, got {type(init).__name__}") from None
        W, b = np.array(W, np.float64), np.array(b, np.float64)
        label = "weights"
    if W.shape != (M, N) or b.shape != (N,):
        raise ValueError(f"initial weights must be ({M}, {N}) and bias ({N},); got "
                         f"{W.shape} and {b.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ValueError("initial weights or bias contain NaN or infinity")
    return W, b, label, None


def refine(
    X,
    y,
    num_classes: int | None = None,
    *,
    init: Any = "explicit",
    method: str = "lbfgs",
    l2: float = 0.0,
    rtol: float = RTOL,
    gtol: float = GTOL,
    max_passes: int = MAX_PASSES,
    kind: str = "auto",
    vocab_size: int | None = None,
    normalize: str = "l1",
    smoothing: float = defaults.SMOOTHING,
    memory_size: int = MEMORY_SIZE,
    precondition: bool = True,
    batch_rows: int | None = None,
    stats: CoocStats | None = None,
    callback: Callable[[RefineStep], Any] | None = None,
    progress: bool = False,
) -> Refinement:
    """Refines a softmax layer's weights toward the optimum, by forward passes only.

    See the module docstring for the formulas and the two methods (each in
    its module) and :mod:`xsol.optimize.history` for the convergence
    criterion. Memory: the data once on the device (dense features
    normalized, in float32, when that takes at most a quarter of the free
    memory, else in their own dtype; sparse inputs stay on the host and are
    densified a batch at a time), one batch of ``rows x N`` float32 logits,
    and a few ``M x N`` float64 matrices on the host (``F``, ``W``, the
    gradient, ``E``; L-BFGS adds ``2 * memory_size``).

    Args:
      X: token ids ``(B,)``/``(B, K)`` or dense non-negative features ``(B, M)``
        (NumPy, SciPy sparse), as for :func:`xsol.fit_explicit`.
      y: int labels ``(B,)`` in ``[0, N)``.
      num_classes: ``N``; default ``max(y) + 1``.
      init: ``"explicit"`` (the explicit solution with ``smoothing``; its
        statistics pass is the one that gathers ``F``), ``"zeros"``, an
        :class:`xsol.ExplicitSolution` (its ``beta W`` and ``b``) or a
        ``(W, b)`` pair.
      method: ``"lbfgs"`` or ``"gis"``.
      l2: the penalty ``l2/2 ||W||^2`` (``b`` is not penalized), as in
        :func:`xsol.optimize.optimum.fit_optimum`; with ``l2 = 0`` and separable data
        the optimum lies at infinity.
      rtol: relative loss change between accepted points for convergence.
      gtol: gradient max-norm for convergence.
      max_passes: cap on forward passes (the statistics pass not included).
      kind: ``"auto"``, ``"ids"`` or ``"dense"``.
      vocab_size: ``V`` for ids (default ``max(max(X) + 1, N)``).
      normalize: ``"l1"`` or ``"none"`` (GIS needs ``"l1"``).
      smoothing: additive smoothing ``a`` of the explicit start and of GIS's
        ratio ``(F + a) / (E + a)``.
      memory_size: L-BFGS history length.
      precondition: L-BFGS with GIS's diagonal curvature bound as ``H_0``
        (module docstring); False: ``H_0 = gamma I``.
      batch_rows: examples per batch of a pass (default
        :func:`xsol.solvers.scoring.rows_per_batch`).
      stats: the statistics of exactly ``(X, y)`` with the same ``kind``,
        ``normalize`` and ``vocab_size`` (e.g. ``fit_explicit(X, y).stats``):
        saves the statistics pass. Only their shape and example count are checked.
      callback: called with a :class:`xsol.optimize.history.RefineStep` after
        each pass; returning True stops the run.
      progress: show a progress bar over passes.

    Returns:
      A :class:`Refinement`.

    Raises:
      ValueError, TypeError: bad inputs (negative or non-finite features, labels
        out of range, mismatched shapes, empty data) or options.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    l2 = check_tol("l2", l2)
    rtol, gtol = check_tol("rtol", rtol), check_tol("gtol", gtol)
    max_passes = positive_int(max_passes, "max_passes")
    memory_size = positive_int(memory_size, "memory_size")
    batch_rows = optional_positive_int(batch_rows, "batch_rows", none_means="the default")
    smoothing = check_smoothing(smoothing)
    normalize = inputs.check_normalize(normalize)
    if method == "gis" and normalize != "l1":
        raise ValueError('method="gis" needs normalize="l1" (features summing to 1 per example, '
                         'so the GIS constant is C = 1); use method="lbfgs"')

    memory_copies = 6 + (2 * memory_size if method == "lbfgs" else 0)
    problem, stats, stats_seconds = setup_problem(X, y, num_classes, kind=kind,
                                                  vocab_size=vocab_size, normalize=normalize,
                                                  stats=stats, batch_rows=batch_rows,
                                                  copies=memory_copies)
    kind, V, window = problem.kind, problem.vocab_size, problem.window
    t0 = time.perf_counter()

    def explicit():
        return solution_from_stats(stats, kind=kind, normalize=normalize, smoothing=smoothing,
                                   vocab_size=V, window=window)

    W, b, init_label, _ = initial_point(init, M=problem.M, N=problem.N, kind=kind,
                                        normalize=normalize, window=window, stats_fn=explicit)
    if init_label == "explicit":
        stats_seconds += time.perf_counter() - t0
    if l2 > 0:  # free: the same probabilities, a smaller penalty (see gradient.Problem.centered)
        W, b = problem.centered(W, b)
    run = run_gis if method == "gis" else run_lbfgs
    record = Recorder(max_passes, callback, progress, method)
    try:
        W, b, loss, gmax, converged, reason = run(problem, W, b, l2=l2, rtol=rtol, gtol=gtol,
                                                  smoothing=smoothing, record=record,
                                                  memory_size=memory_size,
                                                  precondition=bool(precondition))
    finally:
        record.close()
    return Refinement(
        weights=jnp.asarray(W, jnp.float32), bias=jnp.asarray(b, jnp.float32), method=method,
        init=init_label, l2=l2, loss=float(loss), grad_max=float(gmax), passes=record.passes,
        converged=bool(converged), reason=reason, losses=np.array(record.losses),
        grad_maxes=np.array(record.grad_maxes), accepted=np.array(record.accepted, bool),
        pass_seconds=np.array(record.seconds), statistics_seconds=stats_seconds, kind=kind,
        normalize=normalize, smoothing=smoothing, vocab_size=V, window=window, stats=stats)

