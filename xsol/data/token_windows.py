"""A token-id file (or array) streamed as next-token windows, in chunks of bounded memory.

`iter_token_windows` cuts a stream of token ids (a file opened by
`xsol.data.token_files.open_token_file`, or any 1-D integer array) into
chunks of about `chunk_tokens` windows and yields, for each, the same
`(X, y)` rows as `xsol.data.context_windows` (for K = `window` and tokens
`t`):

    X[i] = (t_i, ..., t_{i+K-1})    y[i] = t_{i+K}

Consecutive chunks share K tokens, so every window appears exactly once and
concatenating the chunks gives `context_windows(ids[start:stop], K)`. Memory
is one chunk, O(chunk_tokens * K), whatever the file size: pages of a mapped
file already used are handed back to the kernel.

`iter_token_file_windows(part=...)` streams the windows of a file's training
part or of its held-out tail (`xsol.data.token_files.held_out_cut`), none
crossing the cut.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

from xsol.core.align import aligned_empty
from xsol.core.checks import is_integer, nonnegative_int, positive_int
from xsol.data.streaming import SizedBatches, fixed_size_batches
from xsol.data.token_files import TokenFileError, held_out_cut, open_token_file
from xsol.data.windows import check_window

__all__ = ["iter_token_windows", "iter_token_file_windows"]

#: Ids are stored as int32 once loaded, so every id must lie below this.
_INT32_LIMIT = 1 << 31

#: Up to this window length, X is filled one column at a time (K strided
#: copies of a contiguous slice); for longer windows, one copy of a sliding
#: window view is faster. Measured on uint16 files: columns 2x faster at K = 2,
#: 3; equal at 4-5; 2x slower at K = 8.
_COLUMN_COPY_MAX_K = 4


def _whole_file_map(ids: np.ndarray):
    """`(filename, header bytes)` when `ids` maps a whole file from its first id, else None."""
    if isinstance(ids, np.memmap) and isinstance(ids.base, mmap.mmap) and ids.filename:
        return ids.filename, int(ids.offset)
    return None


def _release(a: np.ndarray, start: int, length: int) -> None:
    """Drops the pages of ``a[start:start + length]`` from this process's resident set.

    For a read-only map of a file (:func:`open_token_file`) the pages stay in
    the operating system's page cache, but no longer count as this process's
    memory, so a pass over a file far larger than memory keeps a flat resident
    size. Whole pages only (the next chunk's first ids may share a page), and a
    no-op for anything that is not such a map.
    """
    base = getattr(a, "base", None)
    if not (isinstance(a, np.memmap) and isinstance(base, mmap.mmap)) or not hasattr(
            mmap, "MADV_DONTNEED"):
        return
    item = a.dtype.itemsize
    offset = a.ctypes.data - np.frombuffer(base, np.uint8).ctypes.data  # a's start in the map
    page = mmap.PAGESIZE
    first = -(-(offset + start * item) // page) * page
    last = (offset + (start + length) * item) // page * page
    if last > first:
        try:
            base.madvise(mmap.MADV_DONTNEED, first, last - first)
        except (OSError, ValueError):
            pass


def _id_checker(dtype: np.dtype, upper: int):
    """A function `chunk -> bool` (every id in `[0, upper)`, one reduction), or None if always true."""
    info = np.iinfo(dtype)
    if info.min == 0:
        if info.max < upper:
            return None
        return lambda c: int(c.max()) < upper
    if info.max < upper:  # only negatives can be out of range
        return lambda c: int(c.min()) >= 0
    # upper <= info.max: viewed as unsigned (same width and byte order), negatives
    # land above every valid id, so one max checks both ends.
    udt = np.dtype(dtype.str.replace("i", "u"))
    return lambda c: int(c.view(udt).max()) < upper


def _index(value, what: str) -> int:
    return nonnegative_int(value, what, "a token index")


def iter_token_windows(
    ids,
    window: int,
    *,
    start: int = 0,
    stop: int | None = None,
    chunk_tokens: int = 1 << 22,
    vocab_size: int | None = None,
    source=None,
) -> SizedBatches:
    """Streams the next-token windows of `ids[start:stop]` in chunks, in bounded memory.

    Concatenating every yielded `(X, y)` gives exactly
    `context_windows(ids[start:stop], window)`: `X[i] = t[i:i+K]`, `y[i] =
    t[i+K]` for `t = ids[start:stop]`. Chunk c holds windows `[c*C, (c+1)*C)`
    (C = `chunk_tokens`, the last chunk shorter) and reads tokens
    `[start + c*C, start + (c+1)*C + K)`: consecutive chunks share K tokens,
    so no window is lost or repeated at chunk edges.

    Each chunk's ids are checked with one reduction (a `max`; signed dtypes
    are viewed as unsigned, so negatives fail it too) and converted to int32
    once, straight into fresh, C-contiguous, 64-byte-aligned X and y (which
    JAX's CPU device takes without a copy). Only when the check fails is the
    first bad id located. Memory: one chunk of X and y, about
    `4 * chunk_tokens * (K + 1)` bytes; `ids` itself is only sliced (a memory
    map stays on disk).

    Args:
      ids: 1-D integer token ids: a map from `open_token_file`, or any array.
      window: K, context tokens per example, >= 1.
      start, stop: the slice of `ids` to stream (stop None: to the end);
        `0 <= start`, `start + window < stop <= len(ids)`.
      chunk_tokens: windows per chunk (the last may hold fewer), > 0.
      vocab_size: V; every id must lie in `[0, V)`. None: ids need only lie
        in `[0, 2**31)` (they become int32).
      source: a name for error messages (a file name). None: the file's name
        when `ids` maps a whole file, else none.

    Returns:
      A `SizedBatches` of `(X, y)`: X int32 (B, K) with column 0 the oldest
      token, y int32 (B,), B <= chunk_tokens; `total` the number of chunks,
      `num_examples` the number of windows, `stop - start - window`.
      `iter_from(c)` starts at chunk c without reading the ones before.

    Raises:
      ValueError: ids not 1-D or not integer; a bad window, start, stop,
        chunk_tokens or vocab_size; no more than `window` tokens in the slice.
      TokenFileError (a ValueError, while streaming): an id outside the
        range, naming `source`, the id, its offset counted from `ids[0]` (the
        file's start, not `start`), its byte offset when `ids` maps a whole
        file, and the expected range.
    """
    k = check_window(window)
    a = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"token ids must be a 1-D array, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {a.dtype}")
    n_all = len(a)
    lo = _index(start, "start")
    hi = n_all if stop is None else _index(stop, "stop")
    if not lo <= hi <= n_all:
        raise ValueError(
            f"start ({lo}) and stop ({hi}) must satisfy 0 <= start <= stop <= len(ids) ({n_all})"
        )
    if hi - lo <= k:
        raise ValueError(
            f"window ({k}) must be smaller than the number of tokens ({hi - lo}, from {lo} to "
            f"{hi}): each example needs {k} context tokens plus one target"
        )
    chunk = positive_int(chunk_tokens, "chunk_tokens", "windows per chunk")
    if vocab_size is not None and not (is_integer(vocab_size) and 0 < vocab_size <= _INT32_LIMIT):
        raise ValueError(f"vocab_size must be a positive integer at most 2**31, or None, got {vocab_size!r}")
    upper = _INT32_LIMIT if vocab_size is None else int(vocab_size)
    check = _id_checker(a.dtype, upper)
    mapped = _whole_file_map(a)
    name = source if source is not None else (mapped[0] if mapped else None)
    n_windows = hi - lo - k
    n_chunks = -(-n_windows // chunk)

    def fail(src: np.ndarray, first: int):
        vals = src.astype(np.int64) if src.dtype.kind == "i" else src
        bad_at = int(np.argmax((vals < 0) | (vals >= upper)))
        value, offset = int(src[bad_at]), first + bad_at
        where = f"{name}: token" if name is not None else "token"
        pos = f"token offset {offset}"
        if mapped is not None:
            pos += f", byte offset {mapped[1] + offset * a.dtype.itemsize}"
        expected = (
            f"expected ids in [0, vocab_size) with vocab_size={vocab_size}"
            if vocab_size is not None
            else "expected non-negative ids below 2**31 (they are stored as int32)"
        )
        raise TokenFileError(
            f"{where} id {value} at {pos} is outside [0, {upper}); {expected}", name
        )

    def gen(first: int = 0):
        for w0 in range(first * chunk, n_windows, chunk):
            b = min(chunk, n_windows - w0)
            s = lo + w0
            src = a[s:s + b + k]
            if check is not None and not check(src):
                fail(src, s)
            X = aligned_empty((b, k), np.int32)
            if k <= _COLUMN_COPY_MAX_K:
                for j in range(k):
                    np.copyto(X[:, j], src[j:j + b], casting="unsafe")
            else:
                np.copyto(X, np.lib.stride_tricks.sliding_window_view(src[:-1], k), casting="unsafe")
            y = aligned_empty((b,), np.int32)
            np.copyto(y, src[k:], casting="unsafe")
            _release(a, s, b)
            yield X, y

    return fixed_size_batches(gen, batch_size=min(chunk, n_windows), total=n_chunks, num_examples=n_windows,
                    seek=gen)


def iter_token_file_windows(
    path,
    window: int,
    *,
    dtype=None,
    part: str = "all",
    held_out: float | None = None,
    chunk_tokens: int = 1 << 22,
    vocab_size: int | None = None,
) -> SizedBatches:
    """Streams the next-token windows of a token file: all of it, its training part, or its tail.

    With n tokens and `cut = held_out_cut(n, held_out, window)`, the parts
    are `"all"`: tokens `[0, n)`; `"train"`: `[0, cut)`; `"held_out"`:
    `[cut, n)`. Windows are built within the part, so none crosses the cut.
    The result equals `context_windows(ids[part], window)`, in chunks (see
    `iter_token_windows`).

    Args:
      path: a raw token file or a `.npy` (see `open_token_file`).
      window: K, context tokens per example, >= 1.
      dtype: the stored dtype of a raw file ("uint16" when None; "uint32",
        "int32"); for `.npy`, optional and checked.
      part: "all", "train" or "held_out".
      held_out: the fraction held out at the end, in (0, 1); needed by
        "train" and "held_out", not used by "all".
      chunk_tokens: windows per chunk, > 0.
      vocab_size: V, the exclusive upper bound on ids; None: below 2**31.

    Returns:
      A `SizedBatches` of `(X, y)` int32 chunks, X (B, K), y (B,).

    Raises:
      FileNotFoundError, TokenFileError: as `open_token_file`; and while
        streaming, an id out of range (see `iter_token_windows`).
      ValueError: an unknown part; held_out missing for "train"/"held_out"
        or not in (0, 1); a part with no more than `window` tokens.
    """
    k = check_window(window)
    if part not in ("all", "train", "held_out"):
        raise ValueError(f"part must be 'all', 'train' or 'held_out', got {part!r}")
    ids = open_token_file(path, dtype)
    n = len(ids)
    start, stop = 0, n
    if part != "all":
        if held_out is None:
            raise ValueError(
                f"part={part!r} needs held_out, the fraction of the file held out at its end "
                "(e.g. 0.1); part='all' streams the whole file"
            )
        cut = held_out_cut(n, held_out, k)
        start, stop = (0, cut) if part == "train" else (cut, n)
    elif n <= k:
        raise TokenFileError(
            f"{os.fspath(path)}: holds {n} tokens; window {k} needs more than {k} (a window of "
            f"{k} context tokens plus one target)",
            path,
        )
    return iter_token_windows(
        ids, k, start=start, stop=stop, chunk_tokens=chunk_tokens, vocab_size=vocab_size,
        source=os.fspath(path),
    )
