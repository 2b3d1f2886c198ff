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
(:mod:`xsol.distributed.sharded_solve`): ``F`` is placed row-sharded (each
device receives only its rows), every device applies the formula to its own
rows (a ``shard_map`` without communication) and ``W`` stays sharded the same way,
ready to be the ``W`` parameter of a model in :mod:`xsol.models` or
:mod:`xsol.nnx_models`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from xsol import defaults, inputs, memory
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

#: Matrices with at least this many entries are solved on the host when the
#: statistics live on the CPU (see :func:`explicit_weights_host`).
HOST_SOLVE_MIN_ENTRIES = 1 << 24

#: Rows per task of the host solve: about 1 MiB of float32, so the three
#: passes over a block (add, log, subtract) stay in the core's cache.
_HOST_BLOCK_BYTES = 1 << 20


def explicit_weights_host(cooc: np.ndarray, smoothing: float, *,
                          threads: int | None = None) -> np.ndarray:
    """:func:`explicit_weights` computed by NumPy in row blocks on every core.

    The same formula, ``W_ij = log(F_ij + a) - log(f_i + N a)`` in float32
    (``f_i`` summed exactly in float64, its log taken in float64); rows never
    seen get ``-log N`` when ``a = 0``. For a large matrix the solve is bound
    by the logarithm: NumPy's vectorized float32 ``log`` is about 3x faster
    than XLA's on the CPU, and row blocks of about 1 MiB run on a thread pool
    (NumPy releases the GIL), so a 32k x 32k solve takes about one second per
    core instead of ten. The result is 64-byte aligned, so ``jax.device_put``
    on the CPU shares it without a copy.

    Args:
      cooc: ``F``, ``(M, N)`` NumPy array (integer or float).
      smoothing: ``a >= 0``.
      threads: worker threads (default: the CPUs this process may use).

    Returns:
      ``W``, ``(M, N)`` float32 NumPy.
    """
    M, N = cooc.shape
    a = np.float32(smoothing)
    W = inputs.aligned_empty((M, N), np.float32)
    unseen_value = np.float32(-np.log(N))
    rows_per_block = max(1, _HOST_BLOCK_BYTES // (4 * N))

    def block(lo):
        hi = min(M, lo + rows_per_block)
        F, out = cooc[lo:hi], W[lo:hi]
        f = F.sum(axis=1, dtype=np.float64)
        denom = f + N * float(a)
        seen = denom > 0
        row = np.log(np.where(seen, denom, 1.0)).astype(np.float32)
        np.copyto(out, F, casting="unsafe")  # a plain cast, then float32 ufuncs (fast loops)
        out += a
        with np.errstate(divide="ignore"):
            np.log(out, out=out)
        out -= row[:, None]
        if not seen.all():
            out[~seen] = unseen_value

    with ThreadPoolExecutor(max_workers=threads or available_cpus()) as pool:
        list(pool.map(block, range(0, M, rows_per_block)))
    return W


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def check_smoothing(smoothing) -> float:
    """Validates the additive smoothing ``a``: finite, ``>= 0``, and representable in float32.

    A positive ``a`` below float32's smallest normal number (``1.18e-38``) would
    round to (or near) zero in the float32 weights and put ``log 0 = -inf``
    into them, so it is refused with that number.
    """
    try:
        a = float(smoothing)
    except (TypeError, ValueError):
        raise TypeError(f"smoothing must be a number, got {smoothing!r}") from None
    if not a >= 0 or a != a or a == float("inf"):
        raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing}")
    tiny = float(np.finfo(np.float32).tiny)
    if 0 < a < tiny:
        raise ValueError(
            f"smoothing {a:g} is below {tiny:g}, the smallest normal float32: it would round "
            "to 0 in the float32 weights and log(0) = -inf would enter them; use a >= 1e-30 "
            "(or 0 for the maximum-likelihood weights, refused where a count is 0)")
    return a


def _on_cpu(x) -> bool:
    if not isinstance(x, jax.Array):
        return True
    return all(d.platform == "cpu" for d in x.devices())


def _zero_cells_in_seen_rows(cooc: jax.Array) -> jax.Array:
    return jnp.sum((cooc == 0) & (cooc.sum(axis=1, keepdims=True) > 0))


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
    (:func:`xsol.distributed.sharded_solve.shard_rows`), each device solves its rows (:func:`xsol.distributed.sharded_solve.explicit_weights_sharded`)
    and ``W`` comes back with that same sharding, ``b`` replicated over the
    mesh. The result equals the one-device :func:`explicit_weights` bit for bit
    (the same float32 operations on each row; the unsharded solve of a matrix
    of at least :data:`HOST_SOLVE_MIN_ENTRIES` entries on the CPU uses NumPy's
    ``log`` instead, which may differ in the last bit). When the rows do not
    divide over the devices, ``pad=True`` appends never-seen features (zero
    rows of ``F``, weights ``log a - log(N a) = -log N``) as described in
    :func:`xsol.distributed.sharded_solve.padded_rows`; ``W`` then has ``padded_rows(M, n, window)`` rows.

    Args:
      stats: :class:`xsol.CoocStats` from :func:`xsol.accumulate` or an accumulator.
        For a sharded solve ``stats.cooc`` may be a host (NumPy) array, a
        ``jax.Array`` on any devices, or one already sharded by rows.
      smoothing: ``a >= 0``, the pseudo-count added to every cell (default
        :data:`xsol.defaults.SMOOTHING`, as for :func:`xsol.fit_explicit`).
      check_memory: estimate the weight matrix's size first and refuse it with
        :class:`xsol.memory.MemoryBudgetError` when it would not fit (for a
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
    from xsol.distributed import sharded_solve  # noqa: PLC0415 - it builds on this module

    sharding = sharded_solve.resolve_row_sharding(sharding, mesh, axis)
    if sharding is not None:
        return sharded_solve.solve_sharded(stats, smoothing, sharding, check_memory=check_memory, pad=pad,
                              window=window)
    if pad or window != 1:
        raise ValueError("pad and window apply to a sharded solve only; pass sharding= or mesh=")
    cooc = jnp.asarray(stats.cooc)
    if cooc.ndim != 2:
        raise ValueError(f"stats.cooc must be a matrix (M, N), got shape {cooc.shape}")
    if int(stats.num_examples) == 0:
        raise ValueError("the statistics hold no examples; accumulate some data first")
    largest = float(np.max(np.asarray(stats.feature_totals))) if cooc.size else 0.0
    _check_totals(largest, cooc.shape[1], smoothing)
    host = cooc.size >= HOST_SOLVE_MIN_ENTRIES and _on_cpu(stats.cooc)
    if check_memory:  # the host solve writes W once; the compiled one also casts F first
        memory.check_fits("explicit weight matrix", cooc.shape, 4, copies=1 if host else 2,
                          hint="use fewer features/classes or a smaller vocabulary")
    if smoothing == 0:
        _refuse_zero_cells(int(_zero_cells_in_seen_rows(cooc)))
    if host:
        W = jax.device_put(explicit_weights_host(np.asarray(stats.cooc), smoothing))
    else:
        W = _explicit_weights(cooc, smoothing)
    return W, jnp.zeros((cooc.shape[1],), jnp.float32)


def _check_totals(largest: float, N: int, smoothing: float) -> None:
    if largest + N * smoothing > float(np.finfo(np.float32).max):
        raise ValueError(
            f"a feature's total count f_i = {largest:g} (plus N a) exceeds the largest float32, "
            f"{np.finfo(np.float32).max:g}: log(f_i + N a) would be inf and the weights NaN; "
            "scale the features down (or use normalize='l1')")


def _refuse_zero_cells(zeros: int) -> None:
    if zeros:
        raise ValueError(
            f"smoothing=0 but {zeros} co-occurrence counts of seen features are "
            "zero, which would put log(0) = -inf into the weights; use "
            "smoothing > 0 (e.g. 1e-3 for near-maximum-likelihood weights)"
        )
