"""From the explicit solution to the optimum of a softmax layer, without backpropagation.

The problem is the convex one of :func:`xsol.optimize.optimum.fit_optimum`: minimize

    L(W, b) = 1/B sum_t -log softmax(x~_t W + b)[y_t] + l2/2 ||W||^2

over ``B`` examples, with the inputs ``x~`` of :mod:`xsol.core.inputs` (dense
non-negative features normalized per example, ``normalize="l1"`` by default,
or ``K`` one-hot blocks of token ids, ``W`` of shape ``(K V, N)``). Its
gradient needs no autodiff graph, only statistics:

    dL/dW = (E - F) / B + l2 W,        dL/db = (s - n) / B

where ``F = X~^T Y`` is the co-occurrence matrix the explicit solution is
solved from (``CoocStats.cooc``; for token ids divided by ``K`` under
``normalize="l1"``), ``n`` the label counts, ``E = X~^T P`` the *expected*
co-occurrences under the model's probabilities ``P = softmax(X~ W + b)`` and
``s = sum_t p_t``. ``F`` is gathered once; ``E``, ``s`` and the summed
cross-entropy are gathered together by one forward pass over the data in
batches of ``rows x N`` logits (:func:`xsol.solvers.scoring.rows_per_batch`),
computed in float32 on the device and summed in float64 on the host. One such
pass is the unit of cost reported in :class:`Refinement` (``passes``); the
one pass that gathers ``F`` is counted separately.

Two schemes:

* ``method="gis"``: Generalized Iterative Scaling (Darroch & Ratcliff, 1972,
  *Generalized iterative scaling for log-linear models*, Ann. Math. Statist.
  43(5)). With L1-normalized inputs every example's features sum to 1, so
  the GIS constant is ``C = 1`` and the step that minimizes GIS's auxiliary
  bound ``sum_ij E_ij (exp(d_ij) - 1) - F_ij d_ij >= B (L(W + d) - L(W))`` is
  ``d_ij = log(F_ij / E_ij)``. Here, with the additive smoothing ``a`` of
  the explicit solution,

      W_ij <- W_ij + log((F_ij + a) / (E_ij + a))

  whose fixed point is still ``E = F`` (the optimum) and which still lowers
  the bound (the step lies between 0 and the exact one, where the convex
  bound is non-positive), so the loss decreases monotonically. From
  ``W = 0`` the first step is the explicit solution plus the constant
  ``log N`` (docs/math.md), so ``init="explicit"`` starts one step in. With
  ``l2 > 0`` the bound plus the penalty is still separable, and each entry's
  step solves ``E_ij exp(d) + B l2 (W_ij + d) = F_ij`` (a few safeguarded
  Newton steps on the host; GIS with a Gaussian prior: Chen & Rosenfeld,
  2000, *A survey of smoothing techniques for ME models*, IEEE Trans.
  Speech Audio Process. 8(1)). The bias is not a GIS feature. For L1-normalized inputs it is
  redundant (``x~ W + b = x~ (W + 1 b^T)`` when ``x~`` sums to 1), so at
  ``l2 = 0`` it stays at its starting value and nothing is lost; at
  ``l2 > 0`` the free moves below follow every step (row means of ``W``
  removed, column means moved into ``b``), so the fixed point is the optimum
  over ``(W, b)``. Moving means into ``b`` needs every example to have a
  non-zero feature; when some example is all zeros the bias stays fixed.
  GIS needs ``normalize="l1"``.
* ``method="lbfgs"`` (default): limited-memory BFGS (two-loop recursion over
  the last ``memory_size`` steps, in float64 on the host; Nocedal, 1980) on
  the statistics-based gradient, preconditioned by GIS's curvature bound:
  for non-negative inputs summing to 1, ``x x^T <= diag(x)`` and
  ``diag(p) - p p^T <= diag(p)``, so the Hessian is at most
  ``D = diag(E) / B + l2 I`` (``diag(s) / B`` for ``b``). The initial
  inverse-Hessian estimate is ``H_0 = gamma D^-1`` with ``D`` built from the
  latest pass's ``E + a`` and ``gamma = s^T y / y^T D^-1 y`` from the newest
  pair, so the first step ``-D^-1 g`` is a GIS-like step
  (``log(F / E) ~ (F - E) / E``) and later steps add the curvature L-BFGS
  learns; ``precondition=False`` gives plain L-BFGS (``H_0 = gamma I``).
  It runs with a backtracking Armijo line search whose
  trial points are forward passes (each gives the loss and the gradient at
  once, so an accepted trial point needs no further pass). A trial step
  ``t`` along ``d`` is accepted when the measured loss decreases enough,
  ``L(t) <= L(0) + c t L'(0)``, or when the slope does, ``L'(t) <= c L'(0)``:
  by convexity ``L(t) <= L(0) + t L'(t)``, so the second test implies the
  first in exact arithmetic and keeps working where the float32 loss can no
  longer resolve the decrease. Most iterations accept the unit step and so
  cost one pass.

Free moves: adding ``c_i`` to row ``i`` of ``W`` adds the same amount to every
logit of an example, and when every example sums to 1 adding ``m_j`` to column
``j`` and subtracting it from ``b_j`` changes no logit; neither changes a
probability, so with ``l2 > 0`` both methods start from the point with the row
means of ``W`` removed and its column means moved into ``b``, which has the
smallest penalty among them (and at the optimum both means are zero).

Convergence: after a pass at an accepted point, the run has converged when
the gradient's max-norm (over ``W`` and ``b``) is at most ``gtol`` **and**
the loss changed by at most ``rtol`` relative to the previous accepted point.
It stops without converging after ``max_passes`` passes, when the line search
finds no decrease (the float32 resolution of the loss; converged if the
gradient is below ``gtol``), or when ``callback`` returns True. The library
never differentiates a graph; the tests check these gradients against
``jax.grad``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from xsol.core import defaults, inputs, memory

from xsol.solvers import scoring
from xsol.stats.accumulation import BatchError, accumulate
from xsol.solvers.explicit import ExplicitSolution, prepare_inputs, solution_from_stats
from xsol.solvers.dense import check_smoothing
from xsol.stats.accumulators import CoocStats

METHODS = ("lbfgs", "gis")

#: Default tolerances (relative loss change between accepted points, and gradient max-norm).
RTOL = 1e-7
GTOL = 1e-6
#: Default cap on forward passes (the statistics pass not included).
MAX_PASSES = 500
#: Default L-BFGS history length.
MEMORY_SIZE = 10
#: Armijo constant of the line search.
_ARMIJO = 1e-4


class RefineStep(NamedTuple):
    """What a ``callback`` sees after each pass.

    Attributes:
      passes: passes done so far (this one included).
      loss: the (penalized) mean loss at the point this pass evaluated.
      grad_max: the gradient's max-norm there.
      weights: that point's ``W`` (float64 NumPy; do not modify).
      bias: that point's ``b`` (float64 NumPy).
      accepted: whether the point became the current iterate (L-BFGS line-search
        trial points that were rejected are passes too).
      seconds: wall seconds of this pass (host algebra included, callback excluded).
    """

    passes: int
    loss: float
    grad_max: float
    weights: np.ndarray
    bias: np.ndarray
    accepted: bool
    seconds: float


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
      converged: whether the convergence criterion held (module docstring).
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


# ----------------------------------------------------------------------------- one pass


@functools.partial(jax.jit, static_argnames=("kind", "normalize"))
def _batch_pass(W, b, X, y, count, *, kind, normalize):
    """Cross-entropies, ``E = X~^T P`` and ``s = sum_t p_t`` of the first ``count`` rows.

    The cross-entropies come back per example (zero for padding rows) and are
    summed in float64 on the host: a float32 sum over many rows would blur
    loss changes of 1e-7, which line searches near the optimum must see.
    """
    z = inputs.linear_logits(W, b, X, kind, normalize)
    mask = jnp.arange(z.shape[0]) < count
    lse = jax.nn.logsumexp(z, axis=-1)
    ce = lse - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
    loss = jnp.where(mask, ce, 0.0)  # per example: summed in float64 on the host
    P = jnp.where(mask[:, None], jnp.exp(z - lse[:, None]), 0.0)
    if kind == "ids":
        K = X.shape[1]
        V = W.shape[0] // K
        scale = 1.0 / K if normalize == "l1" else 1.0
        E = jnp.zeros(W.shape, P.dtype)
        Ps = P * scale
        for k in range(K):  # one scatter-add of probability rows per window position
            E = E.at[X[:, k] + k * V].add(Ps)
    else:
        x = inputs.normalize_dense(X, normalize)
        # (P^T X)^T: the orientation the CPU runs fastest (see xsol.stats.accumulators.dense_batch_stats).
        E = jax.lax.dot(P.T.astype(x.dtype), x, precision=jax.lax.Precision.HIGHEST).T
    return loss, E, P.sum(axis=0)


_normalized = jax.jit(inputs.normalize_dense, static_argnames=("normalize",))


def _fits_normalized(num_examples: int, num_features: int) -> bool:
    """Whether a float32 copy of the normalized features takes at most a quarter of free memory."""
    return 4 * num_examples * num_features <= memory.available_bytes() // 4


class _Problem:
    """The data of one refinement: ``F``, ``n``, and batches for the forward passes."""

    def __init__(self, X, y, *, kind, normalize, num_classes, num_features, vocab_size, window,
                 F, label_counts, batch_rows):
        self.kind, self.normalize = kind, normalize
        self.vocab_size = vocab_size
        self.B = int(X.shape[0])
        self.M, self.N = int(num_features), int(num_classes)
        self.window = window
        self.F = F
        self.n = label_counts
        rows = int(batch_rows or scoring.rows_per_batch(self.N, self.B))
        if rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self.rows = min(rows, self.B)
        self.sparse = inputs.is_sparse(X)
        self.X, self.y = X, y
        self.spans = list(scoring.batch_spans(self.B, self.rows))
        self._cache = None
        # What the kernel is told about normalization: dense batches that fit are
        # stored already normalized, so no pass repeats that work.
        self.kernel_normalize = normalize
        if not self.sparse:
            pre = kind == "dense" and _fits_normalized(self.B, self.M)
            self._cache = []
            for lo, hi in self.spans:
                Xb = jax.device_put(scoring.padded_slice(X, lo, hi, self.rows))
                if pre:
                    Xb = _normalized(Xb, normalize=normalize)
                self._cache.append((Xb, jax.device_put(scoring.padded_slice(y, lo, hi, self.rows)),
                                    hi - lo))
            if pre:
                self.kernel_normalize = "none"

    def batches(self):
        if self._cache is not None:
            yield from self._cache
            return
        for lo, hi in self.spans:  # sparse rows: densified a batch at a time
            yield scoring.padded_slice(self.X, lo, hi, self.rows), scoring.padded_slice(self.y, lo, hi,
                                                                            self.rows), hi - lo

    @functools.cached_property
    def rows_sum_to_one(self) -> bool:
        """Whether every normalized example sums to 1 (``"l1"`` and no all-zero example)."""
        if self.normalize != "l1":
            return False
        if self.kind == "ids":
            return True
        if self.sparse:
            return bool(np.all(np.asarray(self.X.sum(axis=1)).ravel() > 0))
        return bool(np.all(np.asarray(self.X).sum(axis=1, dtype=np.float64) > 0))

    def centered(self, W: np.ndarray, b: np.ndarray):
        """``(W, b)`` with the same probabilities and the smallest ``||W||`` that keeps them.

        Adding ``c_i`` to row ``i`` of ``W`` adds ``x~_t . c`` to every logit of
        example ``t``, which no probability notices; when every example sums
        to 1, adding ``m_j`` to column ``j`` and subtracting it from ``b_j``
        changes no logit. So the row means, and then the column means (moved
        into ``b``), can be removed for free; the penalty drops, and at the
        optimum both are zero (the gradient's row sums are ``l2`` times ``W``'s,
        since ``sum_j E_ij = sum_j F_ij``).
        """
        W = W - W.mean(axis=1, keepdims=True)
        if self.rows_sum_to_one:
            m = W.mean(axis=0)
            W, b = W - m[None, :], b + m
        return W, b

    def forward(self, W: np.ndarray, b: np.ndarray):
        """One pass: ``(summed cross-entropy, E, s)`` in float64 at ``(W, b)``."""
        Wd = jnp.asarray(W, jnp.float32)
        bd = jnp.asarray(b, jnp.float32)
        total = 0.0
        E = None
        s = np.zeros(self.N, np.float64)
        for Xb, yb, count in self.batches():
            lb, Eb, sb = _batch_pass(Wd, bd, Xb, yb, count, kind=self.kind,
                                     normalize=self.kernel_normalize)
            total += float(np.sum(np.asarray(lb), dtype=np.float64))
            Eb = np.asarray(Eb, np.float64)
            if E is None:
                E = Eb
            else:
                E += Eb
            s += np.asarray(sb, np.float64)
        return total, E, s

    def evaluate(self, W, b, l2):
        """Penalized mean loss, gradients ``(G_W, g_b)`` and the sums ``(E, s)``."""
        total, E, s = self.forward(W, b)
        loss = total / self.B + 0.5 * l2 * _dot(W.ravel(), W.ravel())
        GW = (E - self.F) / self.B
        if l2:
            GW += l2 * W
        gb = (s - self.n) / self.B
        return loss, GW, gb, E, s


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` of two vectors without BLAS.

    BLAS's threaded vector kernels stall for milliseconds when the cores are
    busy (e.g. with the device's own threads); this loop does not.
    """
    return float(np.einsum("i,i->", a, b))


def _grad_max(GW, gb) -> float:
    return float(max(np.max(np.abs(GW)) if GW.size else 0.0, np.max(np.abs(gb))))


# ----------------------------------------------------------------------------- the API


def _check_positive_int(name, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _check_tol(name, v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {v!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


def _statistics(X, y, num_classes, *, kind, normalize, vocab_size):
    """``CoocStats`` of in-memory ``(X, y)`` in one pass (sparse rows densified in batches)."""
    batches = [(X, y)]
    if inputs.is_sparse(X):
        rows = scoring.rows_per_batch(X.shape[1])
        batches = ((X[i:i + rows].toarray(), y[i:i + rows]) for i in range(0, X.shape[0], rows))
    try:
        return accumulate(batches, num_classes, vocab_size=vocab_size, kind=kind,
                          normalize=normalize, progress=False)
    except BatchError as e:
        raise ValueError(str(e).removeprefix("batch 0: ")) from None


def _initial_point(init, *, M, N, kind, normalize, window, stats_fn):
    """``(W, b, label, explicit_solution_or_None)`` for the ``init`` argument."""
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


def _setup(X, y, num_classes, *, kind, vocab_size, normalize, stats, batch_rows, copies):
    """Validates the data and gathers ``F``: ``(problem, stats, statistics seconds)``."""
    X, kind = inputs.host_examples(X, kind)
    y = inputs.check_labels(y, np.shape(X)[0], num_classes)
    if num_classes is None:
        num_classes = inputs.infer_num_classes(y)
    N = inputs.check_num_classes(num_classes)
    V = window = None
    if kind == "ids":
        V = int(vocab_size) if vocab_size is not None else max(int(np.max(X)) + 1, N)
    X, _ = prepare_inputs(X, kind, vocab_size=V)
    if kind == "ids":
        window = int(X.shape[1])
        M = window * V
    else:
        M = int(X.shape[1])
    B = int(X.shape[0])
    memory.check_fits("refinement state", (M, N), 8, copies=copies,
                      hint="use fewer features/classes, or a smaller memory_size")
    t0 = time.perf_counter()
    if stats is None:
        stats = _statistics(X, y, N, kind=kind, normalize=normalize, vocab_size=V)
        seconds = time.perf_counter() - t0
    elif tuple(np.shape(stats.cooc)) != (M, N) or int(stats.num_examples) != B:
        raise ValueError(
            f"stats hold a {tuple(np.shape(stats.cooc))} matrix over {int(stats.num_examples)} "
            f"examples; these data need ({M}, {N}) over {B}")
    else:
        seconds = 0.0
    F = np.asarray(stats.cooc, np.float64)
    if kind == "ids" and normalize == "l1":
        F = F / window
    n = np.asarray(stats.label_counts, np.float64)
    problem = _Problem(X, y, kind=kind, normalize=normalize, num_classes=N, num_features=M,
                       vocab_size=V, window=window, F=F, label_counts=n, batch_rows=batch_rows)
    return problem, stats, seconds


def loss_and_gradient(weights, bias, X, y, num_classes: int | None = None, *, l2: float = 0.0,
                      kind: str = "auto", vocab_size: int | None = None, normalize: str = "l1",
                      stats: CoocStats | None = None, batch_rows: int | None = None):
    """The penalized mean loss and its gradient from statistics, without autodiff.

    ``dL/dW = (E - F) / B + l2 W`` and ``dL/db = (s - n) / B`` (module
    docstring): one statistics pass for ``F`` (skipped when ``stats`` are
    given) and one forward pass for ``E``, ``s`` and the loss.

    Args:
      weights: ``W``, ``(M, N)``.
      bias: ``b``, ``(N,)``.
      X, y, num_classes, kind, vocab_size, normalize, stats, batch_rows: as for :func:`refine`.
      l2: the penalty ``l2/2 ||W||^2``.

    Returns:
      ``(loss, grad_W, grad_b)``: a float and float64 NumPy arrays.
    """
    l2 = _check_tol("l2", l2)
    normalize = inputs.check_normalize(normalize)
    if batch_rows is not None:
        batch_rows = _check_positive_int("batch_rows", batch_rows)
    problem, _, _ = _setup(X, y, num_classes, kind=kind, vocab_size=vocab_size,
                           normalize=normalize, stats=stats, batch_rows=batch_rows, copies=4)
    W = np.asarray(weights, np.float64)
    b = np.asarray(bias, np.float64)
    if W.shape != (problem.M, problem.N) or b.shape != (problem.N,):
        raise ValueError(f"weights must be ({problem.M}, {problem.N}) and bias ({problem.N},); "
                         f"got {W.shape} and {b.shape}")
    loss, GW, gb, _, _ = problem.evaluate(W, b, l2)
    return loss, GW, gb


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

    See the module docstring for the formulas, the two methods and the
    convergence criterion. Memory: the data once on the device (dense
    features normalized, in float32, when that takes at most a quarter of the
    free memory, else in their own dtype; sparse inputs stay on the host and
    are densified a batch at a time), one batch of ``rows x N`` float32 logits, and a few ``M x N``
    float64 matrices on the host (``F``, ``W``, the gradient, ``E``; L-BFGS
    adds ``2 * memory_size``).

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
      callback: called with a :class:`RefineStep` after each pass; returning
        True stops the run.
      progress: show a progress bar over passes.

    Returns:
      A :class:`Refinement`.

    Raises:
      ValueError, TypeError: bad inputs (negative or non-finite features, labels
        out of range, mismatched shapes, empty data) or options.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    l2 = _check_tol("l2", l2)
    rtol, gtol = _check_tol("rtol", rtol), _check_tol("gtol", gtol)
    max_passes = _check_positive_int("max_passes", max_passes)
    memory_size = _check_positive_int("memory_size", memory_size)
    if batch_rows is not None:
        batch_rows = _check_positive_int("batch_rows", batch_rows)
    smoothing = check_smoothing(smoothing)
    normalize = inputs.check_normalize(normalize)
    if method == "gis" and normalize != "l1":
        raise ValueError('method="gis" needs normalize="l1" (features summing to 1 per example, '
                         'so the GIS constant is C = 1); use method="lbfgs"')

    memory_copies = 6 + (2 * memory_size if method == "lbfgs" else 0)
    problem, stats, stats_seconds = _setup(X, y, num_classes, kind=kind, vocab_size=vocab_size,
                                           normalize=normalize, stats=stats,
                                           batch_rows=batch_rows, copies=memory_copies)
    kind, V, window = problem.kind, problem.vocab_size, problem.window
    t0 = time.perf_counter()

    def explicit():
        return solution_from_stats(stats, kind=kind, normalize=normalize, smoothing=smoothing,
                                   vocab_size=V, window=window)

    W, b, init_label, _ = _initial_point(init, M=problem.M, N=problem.N, kind=kind,
                                         normalize=normalize, window=window, stats_fn=explicit)
    if init_label == "explicit":
        stats_seconds += time.perf_counter() - t0
    if l2 > 0:  # free: the same probabilities, a smaller penalty (see _Problem.centered)
        W, b = problem.centered(W, b)
    run = _gis if method == "gis" else _lbfgs
    record = _Recorder(max_passes, callback, progress, method)
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


class _Stop(Exception):
    """Raised by the recorder when the callback asks to stop."""


class _Recorder:
    """Counts passes, keeps the history, times passes and calls the callback.

    A pass's seconds run from the end of the previous pass (its callback
    excluded) to the end of this one, so the host algebra between passes
    (GIS steps, the L-BFGS recursion) is counted with the pass that follows.
    """

    def __init__(self, max_passes, callback, progress, method):
        self.max_passes = max_passes
        self.callback = callback
        self.passes = 0
        self.losses, self.grad_maxes, self.accepted, self.seconds = [], [], [], []
        self.bar = tqdm(total=max_passes, disable=not progress, desc=f"refine ({method})",
                        unit="pass")
        self._t = time.perf_counter()

    def done(self, loss, gmax, W, b, accepted) -> None:
        dt = time.perf_counter() - self._t
        self.passes += 1
        self.losses.append(float(loss))
        self.grad_maxes.append(float(gmax))
        self.accepted.append(bool(accepted))
        self.seconds.append(dt)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.6g}", grad=f"{gmax:.2g}")
        if self.callback is not None and self.callback(
                RefineStep(self.passes, float(loss), float(gmax), W, b, bool(accepted), dt)):
            raise _Stop
        self._t = time.perf_counter()

    @property
    def exhausted(self) -> bool:
        return self.passes >= self.max_passes

    def close(self):
        self.bar.close()


class _Point:
    """The current (accepted) iterate."""

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.loss = math.inf
        self.gmax = math.inf

    def result(self, converged, reason):
        return self.W, self.b, self.loss, self.gmax, converged, reason


def _converged(loss, prev, gmax, rtol, gtol) -> bool:
    return gmax <= gtol and prev is not None and abs(prev - loss) <= rtol * max(abs(loss), 1e-300)


def _max_passes_reason(record) -> str:
    return f"max_passes ({record.max_passes}) reached"


# ----------------------------------------------------------------------------- GIS


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


def _gis(problem: _Problem, W, b, *, l2, rtol, gtol, smoothing, record: _Recorder, **_):
    recenter = l2 > 0
    if l2 == 0 and smoothing == 0:
        zero = (problem.F == 0) & (problem.F.sum(axis=1, keepdims=True) > 0)
        if zero.any():
            raise ValueError(
                f"GIS with l2=0 and smoothing=0: {int(zero.sum())} co-occurrence counts of seen "
                "features are zero, so log(F / E) = -inf; use smoothing > 0 or l2 > 0")
    cur = _Point(W, b)
    prev = None
    try:
        while True:
            loss, GW, gb, E, _ = problem.evaluate(cur.W, cur.b, l2)
            cur.loss, cur.gmax = loss, _grad_max(GW, gb)
            record.done(loss, cur.gmax, cur.W, cur.b, True)
            if not math.isfinite(loss):
                return cur.result(False, "the loss is not finite")
            if _converged(loss, prev, cur.gmax, rtol, gtol):
                return cur.result(True, "gradient and loss change below tolerance")
            if record.exhausted:
                return cur.result(False, _max_passes_reason(record))
            prev = loss
            W = cur.W + gis_step(problem.F, E, cur.W, l2=l2, num_examples=problem.B,
                                 smoothing=smoothing)
            b = cur.b
            if recenter:
                W, b = problem.centered(W, b)
            cur = _Point(W, b)
    except _Stop:
        return cur.result(False, "stopped by the callback")


# ----------------------------------------------------------------------------- L-BFGS


def _two_loop(g, S, Y, h0):
    """``H g`` for the L-BFGS inverse-Hessian estimate of the pairs ``(s, y)`` (Nocedal, 1980).

    ``h0`` is the diagonal of the initial estimate ``H_0`` (a vector).
    """
    q = g.copy()
    saved = []
    for s, y in zip(reversed(S), reversed(Y)):
        rho = 1.0 / _dot(y, s)
        a = rho * _dot(s, q)
        q -= a * y
        saved.append((rho, a, s, y))
    r = h0 * q
    for rho, a, s, y in reversed(saved):
        r += s * (a - rho * _dot(y, r))
    return r


def _lbfgs(problem: _Problem, W, b, *, l2, rtol, gtol, smoothing, memory_size, precondition,
           record: _Recorder, **_):
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

    cur = _Point(W, b)
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
            if _converged(f, prev, cur.gmax, rtol, gtol):
                return cur.result(True, "gradient and loss change below tolerance")
            if cur.gmax == 0.0:
                return cur.result(True, "the gradient is zero")
            if record.exhausted:
                return cur.result(False, _max_passes_reason(record))
            inv_d = 1.0 / D if D is not None else np.ones_like(g)
            if S:  # H_0 = gamma D^-1, gamma from the newest pair (Nocedal & Wright, eq. 7.20)
                y_last = Y[-1]
                h0 = inv_d * (_dot(S[-1], y_last) / _dot(y_last, inv_d * y_last))
                d = -_two_loop(g, S, Y, h0)
                t = 1.0
            else:
                d = -inv_d * g
                t = 1.0 if D is not None else min(1.0, 1.0 / max(math.sqrt(_dot(g, g)), 1e-300))
            gd = _dot(g, d)
            if not (gd < 0 and math.isfinite(gd)):  # not a descent direction: restart
                S.clear()
                Y.clear()
                d = -inv_d * g
                gd = _dot(g, d)
            dmax = float(np.max(np.abs(d)))
            while True:
                trial = theta + t * d
                f_t, g_t, D_t, W_t, b_t = evaluate(trial)
                # Armijo on the measured loss, or the same decrease implied by convexity
                # (f(t) <= f(0) + t f'(t)) from the slope, which float32 noise in the
                # loss does not blur near the optimum.
                ok = math.isfinite(f_t) and (f_t <= f + _ARMIJO * t * gd
                                             or _dot(g_t, d) <= _ARMIJO * gd)
                if ok:
                    s, yv = trial - theta, g_t - g
                    sy = _dot(s, yv)
                    if sy > 1e-10 * math.sqrt(_dot(s, s) * _dot(yv, yv)):
                        S.append(s)
                        Y.append(yv)
                    prev, theta, f, g, D = f, trial, f_t, g_t, D_t
                    cur = _Point(W_t, b_t)
                    cur.loss, cur.gmax = f, float(np.max(np.abs(g)))
                    record.done(f_t, cur.gmax, W_t, b_t, True)
                    break
                record.done(f_t, float(np.max(np.abs(g_t))), W_t, b_t, False)
                if record.exhausted:
                    return cur.result(False, _max_passes_reason(record))
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
    except _Stop:
        return cur.result(False, "stopped by the callback")
