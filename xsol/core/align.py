"""64-byte-aligned, C-contiguous host arrays, which JAX's CPU device shares without a copy.

`jax.device_put` (and every jitted call on a numpy argument) copies a host
array unless it is C-contiguous, native-endian and starts on an `ALIGNMENT`
byte boundary; such a copy costs much more than a numpy copy (docs/math.md
section 5). These helpers make arrays that meet the rule, in numpy only, so
data loaders can produce them without importing JAX. `xsol.core.inputs`
re-exports them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALIGNMENT", "is_aligned", "aligned_empty", "aligned"]

#: Byte alignment at which ``jax.device_put`` on the CPU shares a numpy
#: array's memory instead of copying it.
ALIGNMENT = 64


def is_aligned(a: np.ndarray, alignment: int = ALIGNMENT) -> bool:
    """Whether ``a`` is C-contiguous, native-endian and starts on an ``alignment``-byte boundary.

    Such arrays reach a CPU device without a copy; others are copied by
    ``jax.device_put`` (much slower than a numpy copy: docs/math.md section 5).
    """
    return (
        a.flags.c_contiguous
        and a.dtype.isnative
        and a.ctypes.data % alignment == 0
    )


def aligned_empty(shape, dtype, alignment: int = ALIGNMENT) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an ``alignment``-byte boundary."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in np.atleast_1d(shape)) if np.ndim(shape) else (int(shape),)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + alignment, np.uint8)
    off = (-buf.ctypes.data) % alignment
    return buf[off:off + nbytes].view(dtype).reshape(shape)


def aligned(a, dtype=None, alignment: int = ALIGNMENT) -> np.ndarray:
    """``a`` as a C-contiguous, ``alignment``-byte-aligned array of ``dtype``.

    Returns ``a`` itself when it already is one; otherwise one numpy copy (with
    the dtype conversion folded in), so that handing it to JAX costs nothing.
    """
    a = np.asarray(a)
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if a.dtype == dtype and is_aligned(a, alignment):
        return a
    out = aligned_empty(a.shape, dtype.newbyteorder("="), alignment)
    np.copyto(out, a, casting="unsafe")
    return out
