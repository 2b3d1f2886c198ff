"""Explicit weights from co-occurrence statistics (DESIGN.md section 1).

For one-hot inputs (a bigram language model, or one block per window position)
the gradient of the cross-entropy vanishes at

    W_ij = log F_ij - log f_i        (f_i = sum_j F_ij)

which is the exact global optimum (maximum likelihood). With additive smoothing
``a > 0``,

    W_ij = log(F_ij + a) - log(f_i + N a)

is the MAP estimate under a symmetric Dirichlet(a + 1) prior and keeps every
weight finite. For positive-valued features normalized per example the same
formula applied to ``F = X~^T Y`` is the paper's generalization (exact when each
example has a single active feature, an approximation otherwise). Each row is
a log conditional distribution ``log P(label | feature i)``; the logits average
them over an example's features. The bias is zero: the label prior is already
inside every row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from xsol import memory
from xsol.stats import CoocStats


def explicit_weights(cooc: jax.Array, smoothing: float) -> jax.Array:
    """``W_ij = log(F_ij + a) - log(f_i + N a)`` in float32.

    Rows with ``f_i = 0`` (a feature never seen) get the uniform
    ``-log N`` when ``a = 0`` (any constant row gives the same predictions).

    Args:
      cooc: ``F``, shape ``(M, N)``, integer or float.
      smoothing: ``a >= 0``.

    Returns:
      ``W`` of shape ``(M, N)``, float32.
    """
    F = cooc.astype(jnp.float64 if cooc.dtype == jnp.float64 else jnp.float32)
    N = F.shape[1]
    f = F.sum(axis=1, keepdims=True)
    a = jnp.asarray(smoothing, F.dtype)
    denom = f + N * a
    W = jnp.log(F + a) - jnp.log(jnp.where(denom > 0, denom, 1.0))
    return jnp.where(denom > 0, W, -jnp.log(jnp.asarray(N, F.dtype)))


_explicit_weights = jax.jit(explicit_weights)


def _zero_cells_in_seen_rows(cooc: jax.Array) -> jax.Array:
    return jnp.sum((cooc == 0) & (cooc.sum(axis=1, keepdims=True) > 0))


def solve(stats: CoocStats, *, smoothing: float = 1.0, check_memory: bool = True):
    """The explicit solution ``(W, b)`` of a softmax layer from its statistics.

    ``W_ij = log(F_ij + a) - log(f_i + N a)`` and ``b = 0`` (see the module
    docstring). With ``a = 0`` every feature seen in the data must have co-occurred
    with every label, otherwise ``log 0 = -inf`` would enter the weights: that
    is refused with a ``ValueError`` that says how many counts are zero.

    Args:
      stats: :class:`xsol.CoocStats` from :func:`xsol.accumulate` or an accumulator.
      smoothing: ``a >= 0``, the pseudo-count added to every cell.
      check_memory: estimate the weight matrix's size first and refuse it with
        :class:`xsol.memory.MemoryBudgetError` when it would not fit.

    Returns:
      ``(weights, bias)``: float32 arrays of shapes ``(M, N)`` and ``(N,)``.
    """
    smoothing = float(smoothing)
    if not smoothing >= 0 or smoothing != smoothing or smoothing == float("inf"):
        raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing}")
    cooc = jnp.asarray(stats.cooc)
    if cooc.ndim != 2:
        raise ValueError(f"stats.cooc must be a matrix (M, N), got shape {cooc.shape}")
    if int(stats.num_examples) == 0:
        raise ValueError("the statistics hold no examples; accumulate some data first")
    if check_memory:
        memory.check_fits("explicit weight matrix", cooc.shape, 4, copies=2,
                          hint="use fewer features/classes or a smaller vocabulary")
    if smoothing == 0:
        zeros = int(_zero_cells_in_seen_rows(cooc))
        if zeros:
            raise ValueError(
                f"smoothing=0 but {zeros} co-occurrence counts of seen features are "
                "zero, which would put log(0) = -inf into the weights; use "
                "smoothing > 0 (e.g. 1e-3 for near-maximum-likelihood weights)"
            )
    W = _explicit_weights(cooc, smoothing)
    return W, jnp.zeros((cooc.shape[1],), jnp.float32)
