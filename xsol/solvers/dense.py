"""Explicit weights from co-occurrence statistics (docs/math.md section 1).

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

Row ``i`` of ``W`` needs only row ``i`` of ``F`` (and its sum ``f_i``), so the
solve is embarrassingly parallel over rows. ``solve(stats, sharding=...)``
(or ``mesh=``) computes it with the rows split over devices
(:mod:`xsol.solvers.sharded`): ``F`` is placed row-sharded (each
device receives only its rows), every device applies the formula to its own
rows (a ``shard_map`` without communication) and ``W`` stays sharded the same way,
ready to be the ``W`` parameter of a model in :mod:`xsol.models.linen` or
:mod:`xsol.models.nnx`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from xsol.core import defaults, memory
from xsol.solvers import sharded
from xsol.solvers.formula import (
    HOST_SOLVE_MIN_ENTRIES,
    available_cpus,
    check_smoothing,
    check_totals,
    explicit_weights,
    explicit_weights_compiled,
    explicit_weights_host,
    refuse_zero_cells,
    zero_cells_in_seen_rows,
)
from xsol.stats.accumulators import CoocStats

__all__ = ["HOST_SOLVE_MIN_ENTRIES", "available_cpus", "check_smoothing", "explicit_weights",
           "explicit_weights_host", "solve"]


def _on_cpu(x) -> bool:
    if not isinstance(x, jax.Array):
        return True
    return all(d.platform == "cpu" for d in x.devices())


def solve(stats: CoocStats, *, smoothing: float = defaults.SMOOTHING,
          check_memory: bool = True, sharding: NamedSharding | None = None,
          mesh: Mesh | None = None, axis: str | tuple[str, ...] = "model", pad: bool = False,
          window: int = 1):
    """The explicit solution ``(W, b)`` of a softmax layer from its statistics.

    ``W_ij = log(F_ij + a) - log(f_i + N a)`` and ``b = 0`` (see the module
    docstring). With ``a = 0`` every feature seen in the data must have co-occurred
    with every label, otherwise ``log 0 = -inf`` would enter the weights: that
    is refused with a ``ValueError`` that says how many counts are zero.

    With ``sharding`` (or ``mesh``) the rows are split over devices and never
    gathered: ``F`` is placed with each device holding only its rows
    (:func:`xsol.solvers.sharded.shard_rows`), each device solves its rows (:func:`xsol.solvers.sharded.explicit_weights_sharded`)
    and ``W`` comes back with that same sharding, ``b`` replicated over the
    mesh. The result equals the one-device :func:`explicit_weights` bit for bit
    (the same float32 operations on each row; the unsharded solve of a matrix
    of at least :data:`HOST_SOLVE_MIN_ENTRIES` entries on the CPU uses NumPy's
    ``log`` instead, which may differ in the last bit). When the rows do not
    divide over the devices, ``pad=True`` appends never-seen features (zero
    rows of ``F``, weights ``log a - log(N a) = -log N``) as described in
    :func:`xsol.solvers.sharded.padded_rows`; ``W`` then has ``padded_rows(M, n, window)`` rows.

    Args:
      stats: :class:`xsol.stats.CoocStats` from :func:`xsol.accumulate` or an accumulator.
        For a sharded solve ``stats.cooc`` may be a host (NumPy) array, a
        ``jax.Array`` on any devices, or one already sharded by rows.
      smoothing: ``a >= 0``, the pseudo-count added to every cell (default
        :data:`xsol.core.defaults.SMOOTHING`, as for :func:`xsol.fit_explicit`).
      check_memory: estimate the weight matrix's size first and refuse it with
        :class:`xsol.core.memory.MemoryBudgetError` when it would not fit (for a
        sharded solve: one device's rows on an accelerator, the whole matrix
        on CPU devices, which share the host's memory).
      sharding: a row-wise ``jax.sharding.NamedSharding``, spec ``P(axis, None)``
        (``axis`` a mesh axis name or a tuple of them; columns not split).
      mesh: instead of ``sharding``: a ``jax.sharding.Mesh``, rows split along
        its axis ``axis``.
      axis: the mesh axis (or axes) the rows are split along, with ``mesh``.
      pad: allow padding the rows to a multiple of the device count (sharded
        solve only; otherwise an indivisible row count is refused).
      window: ``K`` for token-id statistics (rows ``k * V + id``): the padding
        goes at the end of each of the ``K`` blocks, so ``W`` keeps the layout
        of a vocabulary of ``padded_rows(M, n, K) // K`` ids.

    Returns:
      ``(weights, bias)``: float32 arrays of shapes ``(M, N)`` and ``(N,)``
      (sharded: ``W`` split by rows as asked, ``(padded_rows(M, n, window), N)``
      with ``pad=True``; ``b`` replicated on the mesh).
    """
    smoothing = check_smoothing(smoothing)
    sharding = sharded.resolve_row_sharding(sharding, mesh, axis)
    if sharding is not None:
        return sharded.solve_sharded(stats, smoothing, sharding, check_memory=check_memory,
                                     pad=pad, window=window)
    if pad or window != 1:
        raise ValueError("pad and window apply to a sharded solve only; pass sharding= or mesh=")
    cooc = jnp.asarray(stats.cooc)
    if cooc.ndim != 2:
        raise ValueError(f"stats.cooc must be a matrix (M, N), got shape {cooc.shape}")
    if int(stats.num_examples) == 0:
        raise ValueError("the statistics hold no examples; accumulate some data first")
    largest = float(np.max(np.asarray(stats.feature_totals))) if cooc.size else 0.0
    check_totals(largest, cooc.shape[1], smoothing)
    host = cooc.size >= HOST_SOLVE_MIN_ENTRIES and _on_cpu(stats.cooc)
    if check_memory:  # the host solve writes W once; the compiled one also casts F first
        memory.check_fits("explicit weight matrix", cooc.shape, 4, copies=1 if host else 2,
                          hint="use fewer features/classes or a smaller vocabulary")
    if smoothing == 0:
        refuse_zero_cells(int(zero_cells_in_seen_rows(cooc)))
    if host:
        W = jax.device_put(explicit_weights_host(np.asarray(stats.cooc), smoothing))
    else:
        W = explicit_weights_compiled(cooc, smoothing)
    return W, jnp.zeros((cooc.shape[1],), jnp.float32)
