"""The loss of a softmax layer and its gradient from statistics, by forward passes.

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
``s = sum_t p_t``. ``F`` is gathered once (:func:`setup_problem`); ``E``,
``s`` and the summed cross-entropy are gathered together by one forward pass
over the data in batches of ``rows x N`` logits
(:func:`xsol.solvers.scoring.rows_per_batch`), computed in float32 on the
device and summed in float64 on the host (:meth:`Problem.forward`). One such
pass is the unit of cost of :func:`xsol.refine`.

Free moves: adding ``c_i`` to row ``i`` of ``W`` adds the same amount to every
logit of an example, and when every example sums to 1 adding ``m_j`` to column
``j`` and subtracting it from ``b_j`` changes no logit; neither changes a
probability, so :meth:`Problem.centered` removes the row means of ``W`` and
moves its column means into ``b``: the same probabilities with the smallest
penalty (at the optimum both means are zero). The library never
differentiates a graph; the tests check these gradients against ``jax.grad``.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import inputs, memory
from xsol.core.checks import optional_positive_int
from xsol.solvers import scoring
from xsol.solvers.explicit import prepare_inputs
from xsol.stats.accumulation import accumulate
from xsol.stats.batches import BatchError
from xsol.stats.accumulators import CoocStats

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
        # (P^T X)^T: the orientation the CPU runs fastest
        # (see xsol.stats.accumulators.dense_batch_stats).
        E = jax.lax.dot(P.T.astype(x.dtype), x, precision=jax.lax.Precision.HIGHEST).T
    return loss, E, P.sum(axis=0)


_normalized = jax.jit(inputs.normalize_dense, static_argnames=("normalize",))


def _fits_normalized(num_examples: int, num_features: int) -> bool:
    """Whether a float32 copy of the normalized features takes at most a quarter of free memory."""
    return 4 * num_examples * num_features <= memory.available_bytes() // 4


class Problem:
    """The data of one refinement: ``F``, ``n``, and batches for the forward passes.

    Built by :func:`setup_problem`; :meth:`evaluate` gives the loss and the
    gradient at a point from one :meth:`forward` pass.
    """

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
        """``(X_b, y_b, count)`` per batch, padded to ``rows`` rows (``count`` of them real)."""
        if self._cache is not None:
            yield from self._cache
            return
        for lo, hi in self.spans:  # sparse rows: densified a batch at a time
            yield (scoring.padded_slice(self.X, lo, hi, self.rows),
                   scoring.padded_slice(self.y, lo, hi, self.rows), hi - lo)

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
        loss = total / self.B + 0.5 * l2 * dot(W.ravel(), W.ravel())
        GW = (E - self.F) / self.B
        if l2:
            GW += l2 * W
        gb = (s - self.n) / self.B
        return loss, GW, gb, E, s


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` of two vectors without BLAS.

    BLAS's threaded vector kernels stall for milliseconds when the cores are
    busy (e.g. with the device's own threads); this loop does not.
    """
    return float(np.einsum("i,i->", a, b))


def grad_max(GW, gb) -> float:
    """``max(|G_W|, |g_b|)``, the gradient's max-norm over ``W`` and ``b``."""
    return float(max(np.max(np.abs(GW)) if GW.size else 0.0, np.max(np.abs(gb))))


def check_tol(name, v) -> float:
    """``v`` as a finite float ``>= 0`` (a tolerance or a penalty).

    Raises:
      TypeError: ``v`` is not a number.
      ValueError: it is negative, NaN or infinite.
    """
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


def setup_problem(X, y, num_classes, *, kind, vocab_size, normalize, stats, batch_rows, copies):
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
    problem = Problem(X, y, kind=kind, normalize=normalize, num_classes=N, num_features=M,
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
      X, y, num_classes, kind, vocab_size, normalize, stats, batch_rows: as for
        :func:`xsol.optimize.refinement.refine`.
      l2: the penalty ``l2/2 ||W||^2``.

    Returns:
      ``(loss, grad_W, grad_b)``: a float and float64 NumPy arrays.
    """
    l2 = check_tol("l2", l2)
    normalize = inputs.check_normalize(normalize)
    batch_rows = optional_positive_int(batch_rows, "batch_rows", none_means="the default")
    problem, _, _ = setup_problem(X, y, num_classes, kind=kind, vocab_size=vocab_size,
                           normalize=normalize, stats=stats, batch_rows=batch_rows, copies=4)
    W = np.asarray(weights, np.float64)
    b = np.asarray(bias, np.float64)
    if W.shape != (problem.M, problem.N) or b.shape != (problem.N,):
        raise ValueError(f"weights must be ({problem.M}, {problem.N}) and bias ({problem.N},); "
                         f"got {W.shape} and {b.shape}")
    loss, GW, gb, _, _ = problem.evaluate(W, b, l2)
    return loss, GW, gb

