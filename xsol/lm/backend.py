"""Dense or sparse statistics for a token-window language model, chosen from memory.

A window of ``K`` tokens over a vocabulary of ``V`` and ``N`` next-token
classes has ``M x N = K V x N`` co-occurrence cells. The dense path holds the
integer counts and the float32 weights, ``M N (c + 4)`` bytes (``c`` the
count's item size, 4 for int32), and is the fastest when they fit. The sparse
path (:class:`xsol.SparseExplicitLM`) holds only the distinct pairs seen, so
its memory grows with the corpus's distinct pairs, not with ``V^2``.

The rule: dense when ``M N (c + 4)`` is at most :data:`DENSE_FRACTION` of the
memory budget (:func:`xsol.core.memory.available_bytes`, ``XSOL_MEMORY_BUDGET``),
sparse otherwise. The other half is headroom: the held-out scoring of windows
of ``K > 1`` tokens builds the sparse form of the counts beside them, and the
operating system keeps the token file in its page cache (a 32k x 32k x 2
window, 16 GiB by this rule, was killed for memory on a 24 GiB machine with
0.75).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from xsol.core import memory
from xsol.stats.accumulators import count_dtype

#: Share of the memory budget the dense counts and weights may take.
DENSE_FRACTION = 0.5

BACKENDS = ("auto", "dense", "sparse")


@dataclasses.dataclass(frozen=True)
class BackendChoice:
    """Which statistics a language model uses, and why.

    Attributes:
      backend: ``"dense"`` or ``"sparse"``.
      reason: one sentence for the user.
      dense_bytes: bytes the dense counts and weights would take.
      budget: the memory budget the choice was made against.
    """

    backend: str
    reason: str
    dense_bytes: int
    budget: int


def dense_bytes(vocab_size: int, window: int, num_classes: int | None = None) -> int:
    """``M N (c + 4)``: dense integer counts plus float32 weights, in bytes."""
    N = int(num_classes or vocab_size)
    itemsize = jnp.dtype(count_dtype()).itemsize
    return int(window) * int(vocab_size) * N * (itemsize + 4)


def choose_backend(vocab_size: int, window: int, num_classes: int | None = None, *,
                   backend: str = "auto", budget: int | None = None) -> BackendChoice:
    """Picks dense or sparse statistics (see the module docstring).

    Args:
      vocab_size: ``V``.
      window: ``K``.
      num_classes: ``N`` (default ``V``).
      backend: ``"auto"`` (choose), or ``"dense"`` / ``"sparse"`` to force one.
      budget: memory budget in bytes (default :func:`xsol.core.memory.available_bytes`).

    Returns:
      A :class:`BackendChoice`.

    Raises:
      ValueError: an unknown ``backend``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    need = dense_bytes(vocab_size, window, num_classes)
    budget = memory.available_bytes() if budget is None else int(budget)
    M, N = int(window) * int(vocab_size), int(num_classes or vocab_size)
    size = (f"the dense {M:,} x {N:,} counts and weights need {memory.format_bytes(need)} "
            f"of {memory.format_bytes(budget)} available")
    if backend != "auto":
        return BackendChoice(backend, f"{backend} (forced); {size}", need, budget)
    if need <= DENSE_FRACTION * budget:
        return BackendChoice("dense", f"dense: {size}", need, budget)
    return BackendChoice(
        "sparse", f"sparse: {size}, more than {DENSE_FRACTION:.0%} of it; only the distinct "
        "pairs seen are kept", need, budget)
