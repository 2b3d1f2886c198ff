"""Next-token prediction examples from a token stream, and a held-out split.

For a stream of ids `t_0 .. t_{n-1}` and a context window of K tokens, example
`i` (for i = 0 .. n-K-1) is

    X[i] = (t_i, t_{i+1}, ..., t_{i+K-1})    the K previous tokens, oldest first
    y[i] = t_{i+K}                           the token to predict

so column 0 of X is the oldest token (K positions back) and column K-1 the
most recent one (the one just before the target). With K = 1 this is the
bigram setting of the explicit language model.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xsol.core.checks import positive_int

__all__ = ["check_window", "as_token_ids", "context_windows", "split_tokens"]


def check_window(window) -> int:
    """Validates a context window length.

    Args:
      window: the number of previous tokens per example.

    Returns:
      The window as an int.

    Raises:
      ValueError: not a positive integer.
    """
    return positive_int(window, "window", "tokens of context")


def as_token_ids(ids) -> np.ndarray:
    """Validates a token stream and returns it as a 1-D int32 array.

    Args:
      ids: a 1-D sequence of non-negative integer ids below 2**31.

    Returns:
      A 1-D int32 numpy array (no copy when `ids` already is one).

    Raises:
      ValueError: not 1-D, not integer, negative, or too large for int32.
    """
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"token ids must be a 1-D array, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > np.iinfo(np.int32).max):
        raise ValueError(f"token ids must lie in [0, 2**31), got range [{a.min()}, {a.max()}]")
    return a.astype(np.int32, copy=False)


def context_windows(ids, window: int = 1, *, copy: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Builds (context, next token) examples from a token stream.

    Uses `numpy.lib.stride_tricks.sliding_window_view`: X is a strided view of
    the stream, materialized only when `copy` is true.

    Args:
      ids: 1-D integer token ids, length n.
      window: K, the number of previous tokens per example; 1 <= K < n.
      copy: return a contiguous, writable X (n-K, K); with False, X is a
        read-only view of `ids` sharing its memory (no K-fold blow-up).

    Returns:
      `(X, y)`: X int32 of shape (n-K, K) with `X[i] = ids[i:i+K]` (column 0
      the oldest token), y int32 of shape (n-K,) with `y[i] = ids[i+K]`.

    Raises:
      ValueError: window <= 0, window >= n (no example would remain), or
        invalid ids.
    """
    k = check_window(window)
    a = as_token_ids(ids)
    if k >= len(a):
        raise ValueError(
            f"window ({k}) must be smaller than the number of tokens ({len(a)}): "
            f"each example needs {k} context tokens plus one target"
        )
    x = sliding_window_view(a[:-1], k)
    y = a[k:]
    if copy:
        x, y = x.copy(), y.copy()  # C-contiguous, writable, owning its data
    return x, y


def split_tokens(ids, held_out: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Splits a token stream into a training part and a held-out part, contiguously.

    The last `held_out` fraction of the stream (rounded to the nearest token)
    is held out. The split is a single cut rather than a random choice of
    windows: windows built separately on each part never overlap the other
    part, so no held-out target (or context) leaks into training, and text
    that follows the training text is what an LM is asked to predict.

    Args:
      ids: 1-D integer token ids.
      held_out: fraction to hold out, strictly between 0 and 1.

    Returns:
      `(train_ids, held_out_ids)`: int32 views, `train_ids = ids[:cut]`,
      `held_out_ids = ids[cut:]`, both non-empty.

    Raises:
      ValueError: held_out not in (0, 1), or a stream too short for both parts
        to be non-empty.
    """
    if not (isinstance(held_out, (float, int)) and 0.0 < float(held_out) < 1.0):
        raise ValueError(f"held_out must be a fraction strictly between 0 and 1, got {held_out!r}")
    a = as_token_ids(ids)
    n_held = int(round(len(a) * float(held_out)))
    if n_held < 1 or n_held >= len(a):
        raise ValueError(
            f"cannot hold out {held_out} of {len(a)} tokens: both parts must be non-empty"
        )
    cut = len(a) - n_held
    return a[:cut], a[cut:]
