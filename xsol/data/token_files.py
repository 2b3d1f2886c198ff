"""Token-id files, as GPT-style data pipelines write them, streamed as next-token windows.

Two layouts hold one long stream of token ids:

* **raw binary** (any extension but `.npy`, e.g. nanoGPT's `train.bin`): the
  ids back to back, little-endian, with no header; the dtype is not stored,
  so the reader must know it: `uint16` (nanoGPT's choice, vocabularies up to
  65536), `uint32` or `int32`. A file of S bytes holds `S / itemsize` ids.
* **`.npy`**: a numpy array file, 1-D, any integer dtype (stored in its
  header).

`open_token_file` maps a file read-only (`numpy.memmap`): nothing is read
until it is used. `iter_token_windows` cuts the stream into chunks of about
`chunk_tokens` windows and yields, for each, the same `(X, y)` rows as
`xsol.data.context_windows` (for K = `window` and tokens `t`):

    X[i] = (t_i, ..., t_{i+K-1})    y[i] = t_{i+K}

Consecutive chunks share K tokens, so every window appears exactly once and
concatenating the chunks gives `context_windows(ids[start:stop], K)`. Memory
is one chunk, O(chunk_tokens * K), whatever the file size.

`held_out_cut` places a contiguous held-out tail at the end of the file (as
`split_tokens` does in memory); `iter_token_file_windows(part=...)` streams
the windows of the training part or of the tail, none crossing the cut.
"""

from __future__ import annotations

import errno
import mmap
import numbers
import os

import numpy as np

from xsol.core.align import aligned_empty
from xsol.data.streaming import SizedBatches, fixed_size_batches
from xsol.data.windows import check_window
from xsol.core.serialize import atomic_open

__all__ = [
    "TokenFileError",
    "open_token_file",
    "write_token_file",
    "held_out_cut",
    "iter_token_windows",
    "iter_token_file_windows",
]

#: dtypes a raw token file may hold: (kind, itemsize) -> name.
_RAW_DTYPES = {("u", 2): "uint16", ("u", 4): "uint32", ("i", 4): "int32"}
_RAW_NAMES = ", ".join(repr(n) for n in _RAW_DTYPES.values())

#: Ids are stored as int32 once loaded, so every id must lie below this.
_INT32_LIMIT = 1 << 31

#: Up to this window length, X is filled one column at a time (K strided
#: copies of a contiguous slice); for longer windows, one copy of a sliding
#: window view is faster. Measured on uint16 files: columns 2x faster at K = 2,
#: 3; equal at 4-5; 2x slower at K = 8.
_COLUMN_COPY_MAX_K = 4

#: Tokens converted and written per step by `write_token_file`.
_WRITE_CHUNK = 1 << 22

_NPY_MAGIC = b"\x93NUMPY"


class TokenFileError(ValueError):
    """A token file (or token stream) that cannot be read as asked.

    Attributes:
      path: the file concerned, or None for an in-memory stream.
    """

    def __init__(self, message: str, path=None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


def _is_npy(path: str) -> bool:
    return path.lower().endswith(".npy")


def _raw_dtype(dtype, path) -> np.dtype:
    """The little-endian dtype of a raw token file; `dtype=None` means uint16."""
    if dtype is None:
        dtype = "uint16"
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or (dt.kind, dt.itemsize) not in _RAW_DTYPES:
        raise TokenFileError(
            f"{path}: unknown token dtype {dtype!r}; expected one of {_RAW_NAMES}", path
        )
    return dt.newbyteorder("<")


def _check_path(path) -> str:
    """Returns `path` as a str after checking it names a non-empty regular file."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "token file not found", p) from None
    if os.path.isdir(p):
        raise TokenFileError(f"{p}: is a directory; expected a token file (raw ids or .npy)", p)
    if st.st_size == 0:
        raise TokenFileError(f"{p}: the file is empty (0 bytes); expected at least one token", p)
    return p


def open_token_file(path, dtype=None) -> np.ndarray:
    """Maps a token-id file read-only, as a 1-D array of ids.

    Raw files (any extension but `.npy`) hold little-endian ids back to back,
    so a file of S bytes holds S / itemsize ids; `.npy` files carry their
    dtype and shape in their header. No data is read here: pages are loaded
    when the array is used, and the operating system may drop them again.

    Args:
      path: the file.
      dtype: for raw files, the stored dtype: "uint16" (the default when
        None, as nanoGPT writes), "uint32" or "int32" (numpy dtype objects
        are accepted too). For `.npy`, optional: when given it must be the
        file's (byte order aside), else an error is raised.

    Returns:
      A read-only 1-D `numpy.memmap` of ids (little-endian for raw files),
      with at least one token.

    Raises:
      FileNotFoundError: the file does not exist (naming it).
      TokenFileError (a ValueError): the path is a directory; the file is
        empty; an unknown dtype; a raw file whose size is not a multiple of
        the dtype's size; a `.npy` that is malformed, not 1-D, not integer,
        of another dtype than `dtype`, or holds no token. Every message names
        the file.
    """
    p = _check_path(path)
    if not _is_npy(p):
        dt = _raw_dtype(dtype, p)
        size = os.path.getsize(p)
        if size % dt.itemsize:
            hint = ""
            for (_, itemsize), name in _RAW_DTYPES.items():
                if itemsize != dt.itemsize and size % itemsize == 0:
                    hint = f"; the size is a multiple of {itemsize}: was it written as {name}?"
                    break
            raise TokenFileError(
                f"{p}: {size} bytes is not a multiple of {dt.itemsize} bytes, the size of one "
                f"{_RAW_DTYPES[dt.kind, dt.itemsize]} token, so the file is truncated or holds "
                f"another dtype{hint}",
                p,
            )
        return np.memmap(p, dtype=dt, mode="r")

    with open(p, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic != _NPY_MAGIC:
        raise TokenFileError(
            f"{p}: not a .npy file (it does not start with the .npy magic bytes); a raw token "
            "file must not be named *.npy",
            p,
        )
    try:
        a = np.load(p, mmap_mode="r")
    except (ValueError, EOFError) as e:
        raise TokenFileError(f"{p}: cannot read this .npy file: {e}", p) from e
    if a.ndim != 1:
        raise TokenFileError(
            f"{p}: holds an array of shape {a.shape}; expected a 1-D array of token ids", p
        )
    if not np.issubdtype(a.dtype, np.integer):
        raise TokenFileError(f"{p}: holds dtype {a.dtype}; expected integer token ids", p)
    if dtype is not None:
        try:
            want = np.dtype(dtype)
        except TypeError:
            raise TokenFileError(
                f"{p}: unknown token dtype {dtype!r}; expected an integer dtype such as "
                f"{_RAW_NAMES}",
                p,
            ) from None
        if (want.kind, want.itemsize) != (a.dtype.kind, a.dtype.itemsize):
            raise TokenFileError(
                f"{p}: holds dtype {a.dtype.newbyteorder('=').name} but dtype={dtype!r} was "
                "asked for; a .npy file stores its dtype, so pass dtype=None or the file's",
                p,
            )
    if a.size == 0:
        raise TokenFileError(f"{p}: holds 0 tokens; expected at least one", p)
    return a


def _choose_dtype(dtype, lo: int, hi: int, path: str) -> np.dtype:
    if dtype is None:
        if hi < (1 << 16):
            return np.dtype("<u2")
        if hi < (1 << 32):
            return np.dtype("<u4")
        raise TokenFileError(
            f"{path}: id {hi} does not fit in uint32, the largest token-file dtype", path
        )
    return _raw_dtype(dtype, path)


def write_token_file(path, ids, dtype=None) -> int:
    """Writes token ids as a raw binary file, or as `.npy` when `path` ends with `.npy`.

    The data is written to a temporary file in the same directory, flushed to
    disk, then renamed over `path` (`os.replace`), so an interrupted or failed
    write leaves any previous file untouched and never a partial one.
    Converted in chunks: memory beyond `ids` stays bounded.

    Args:
      path: the file to write (replaced if it exists).
      ids: 1-D integer token ids, at least one.
      dtype: "uint16", "uint32" or "int32"; None picks uint16 when the largest
        id is below 65536, else uint32. Stored little-endian.

    Returns:
      The number of tokens written.

    Raises:
      TokenFileError (a ValueError): `ids` not 1-D, not integer, or empty; a
        negative id, or one too large for the dtype (the message gives the
        first one and its position); an unknown dtype; `path` a directory.
      FileNotFoundError: the directory of `path` does not exist.
    """
    p = os.fspath(path)
    a = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    if a.ndim != 1:
        raise TokenFileError(f"{p}: ids must be a 1-D array, got shape {a.shape}", p)
    if a.size == 0:
        raise TokenFileError(f"{p}: no ids to write; a token file holds at least one token", p)
    if not np.issubdtype(a.dtype, np.integer):
        raise TokenFileError(f"{p}: ids must be integers, got dtype {a.dtype}", p)
    if os.path.isdir(p):
        raise TokenFileError(f"{p}: is a directory; expected a file path to write", p)
    folder = os.path.dirname(p) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "directory not found for the token file", folder)

    lo, hi = int(a.min()), int(a.max())
    dt = _choose_dtype(dtype, lo, hi, p)
    info = np.iinfo(dt)
    if lo < 0 or hi > info.max:
        bad = lo if lo < 0 else hi
        at = int(np.argmax(a < 0)) if lo < 0 else int(np.argmax(a > info.max))
        raise TokenFileError(
            f"{p}: id {bad} at position {at} does not fit in {dt.newbyteorder('=').name}; "
            f"expected ids in [0, {info.max}]",
            p,
        )

    with atomic_open(p, "wb") as f:
        if _is_npy(p):
            header = np.lib.format.header_data_from_array_1_0(np.empty(0, dt))
            header["shape"] = (len(a),)
            np.lib.format.write_array_header_1_0(f, header)
        for i in range(0, len(a), _WRITE_CHUNK):
            f.write(np.ascontiguousarray(a[i:i + _WRITE_CHUNK], dtype=dt).data)
    return len(a)


def held_out_cut(num_tokens: int, held_out: float, window: int = 1) -> int:
    """Where a contiguous held-out tail of a token stream starts.

    `cut = num_tokens - round(num_tokens * held_out)` (Python's rounding, as in
    `split_tokens`): the training part is tokens `[0, cut)`, the held-out part
    `[cut, num_tokens)`. Windows built on each part separately never cross
    the cut, so no held-out token is seen in training.

    Args:
      num_tokens: n, the length of the stream.
      held_out: the fraction held out, strictly between 0 and 1 (not
        optional here: whether to hold out at all is the caller's choice).
      window: K, the context window; both parts must hold more than K tokens
        so that each has at least one window.

    Returns:
      The cut, an int with `window < cut < num_tokens - window`.

    Raises:
      ValueError: `held_out` not a number in (0, 1); `num_tokens` not a
        non-negative integer; `window` not positive; a part with no more than
        `window` tokens.
    """
    k = check_window(window)
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)) or num_tokens < 0:
        raise ValueError(f"num_tokens must be a non-negative integer, got {num_tokens!r}")
    n = int(num_tokens)
    if (
        isinstance(held_out, bool)
        or not isinstance(held_out, numbers.Real)
        or not 0.0 < float(held_out) < 1.0
    ):
        raise ValueError(
            f"held_out must be a fraction strictly between 0 and 1 (the share of tokens held "
            f"out at the end), got {held_out!r}"
        )
    n_held = int(round(n * float(held_out)))
    cut = n - n_held
    if cut <= k or n_held <= k:
        raise ValueError(
            f"cannot hold out {held_out} of {n} tokens with window {k}: the training part would "
            f"hold {cut} tokens and the held-out part {n_held}; each needs more than {k} (a "
            f"window of {k} context tokens plus one target)"
        )
    return cut


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
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer token index, got {value!r}")
    return int(value)


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
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, (int, np.integer)) or chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be a positive integer (windows per chunk), got {chunk_tokens!r}")
    if vocab_size is not None and (
        isinstance(vocab_size, bool)
        or not isinstance(vocab_size, (int, np.integer))
        or not 0 < vocab_size <= _INT32_LIMIT
    ):
        raise ValueError(f"vocab_size must be a positive integer at most 2**31, or None, got {vocab_size!r}")
    chunk = int(chunk_tokens)
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
