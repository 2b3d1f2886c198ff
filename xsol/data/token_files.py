"""Token-id files, as GPT-style data pipelines write them: read, written, split.

Two layouts hold one long stream of token ids:

* **raw binary** (any extension but `.npy`, e.g. nanoGPT's `train.bin`): the
  ids back to back, little-endian, with no header; the dtype is not stored,
  so the reader must know it: `uint16` (nanoGPT's choice, vocabularies up to
  65536), `uint32` or `int32`. A file of S bytes holds `S / itemsize` ids.
* **`.npy`**: a numpy array file, 1-D, any integer dtype (stored in its
  header).

`open_token_file` maps a file read-only (`numpy.memmap`): nothing is read
until it is used; `write_token_file` writes one atomically. `held_out_cut`
places a contiguous held-out tail at the end of the file (as `split_tokens`
does in memory). `xsol.data.token_windows` streams a file's `(X, y)` windows.
"""

from __future__ import annotations

import errno
import numbers
import os

import numpy as np

from xsol.core.checks import nonnegative_int
from xsol.data.windows import check_window
from xsol.core.serialize import atomic_open

__all__ = ["TokenFileError", "open_token_file", "write_token_file", "held_out_cut"]

#: dtypes a raw token file may hold: (kind, itemsize) -> name.
_RAW_DTYPES = {("u", 2): "uint16", ("u", 4): "uint32", ("i", 4): "int32"}
_RAW_NAMES = ", ".join(repr(n) for n in _RAW_DTYPES.values())

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
    n = nonnegative_int(num_tokens, "num_tokens")
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
