"""The explicit formula and its checks, shared by the dense and the sharded solve.

``W_ij = log(F_ij + a) - log(f_i + N a)`` (docs/math.md section 1): row ``i``
needs only row ``i`` of ``F`` and its total ``f_i``; rows never seen get the
uniform ``-log N`` when ``a = 0``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import inputs


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


#: :func:`explicit_weights`, compiled once (``smoothing`` is traced).
explicit_weights_compiled = jax.jit(explicit_weights)

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


def zero_cells_in_seen_rows(cooc: jax.Array) -> jax.Array:
    """Zero counts in rows whose total is positive (they get ``log 0`` when ``a = 0``)."""
    return jnp.sum((cooc == 0) & (cooc.sum(axis=1, keepdims=True) > 0))


def check_totals(largest: float, N: int, smoothing: float) -> None:
    """Refuses totals whose ``log(f_i + N a)`` would overflow float32."""
    if largest + N * smoothing > float(np.finfo(np.float32).max):
        raise ValueError(
            f"a feature's total count f_i = {largest:g} (plus N a) exceeds the largest float32, "
            f"{np.finfo(np.float32).max:g}: log(f_i + N a) would be inf and the weights NaN; "
            "scale the features down (or use normalize='l1')")


def refuse_zero_cells(zeros: int) -> None:
    """Refuses ``a = 0`` when ``zeros`` counts of seen features are zero (``log 0``)."""
    if zeros:
        raise ValueError(
            f"smoothing=0 but {zeros} co-occurrence counts of seen features are "
            "zero, which would put log(0) = -inf into the weights; use "
            "smoothing > 0 (e.g. 1e-3 for near-maximum-likelihood weights)"
        )


def check_next_token_query(context, k, window: int) -> tuple[np.ndarray, int]:
    """Validates a ``top_next`` query: ``window`` context ids and ``k >= 1`` answers.

    Returns:
      ``(context as a (window,) array, k as an int)``.

    Raises:
      ValueError: ``k < 1``, or a context of another length than ``window``.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    context = np.atleast_1d(np.asarray(context))
    if context.shape != (window,):
        raise ValueError(f"the context must hold {window} token id(s), got shape {context.shape}")
    return context, k
