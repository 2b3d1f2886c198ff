"""Reading and writing IDX files (the MNIST file format), plain or gzipped.

An IDX file is a tiny header followed by the raw array, big-endian, C order::

    bytes 0-1   zero
    byte  2     dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    then        d sizes, each a big-endian uint32
    then        prod(sizes) items of the dtype, big-endian

Whether a file is gzipped is decided by its first two bytes (the gzip magic
0x1f 0x8b), not by its name, so `foo-idx3-ubyte` and `foo-idx3-ubyte.gz` both
read whatever they hold. Reads go straight into a preallocated numpy buffer
(`readinto`), never through Python loops, and every inconsistency (bad magic,
unknown dtype code, too few or too many bytes) raises a `ValueError` that names
the file and what was expected.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import IO, Iterator, NamedTuple

import numpy as np

from xsol.core.checks import positive_int

__all__ = [
    "IDX_DTYPES",
    "IdxHeader",
    "read_idx_header",
    "read_idx",
    "iter_idx_chunks",
    "write_idx",
]

#: IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_ALIGN = 64  # bytes; lets jax.device_put on CPU use the buffer without a copy


def _describe_codes() -> str:
    return ", ".join(f"0x{c:02X} ({IDX_DTYPES[c].newbyteorder('=').name})" for c in IDX_DTYPES)


class IdxHeader(NamedTuple):
    """What an IDX header says.

    Attributes:
      shape: the array's shape (sizes of every dimension).
      dtype: the stored (big-endian) numpy dtype.
      offset: number of header bytes; the data starts there.
      gzipped: whether the file is gzip-compressed.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    gzipped: bool

    @property
    def nbytes(self) -> int:
        """Number of data bytes the header promises."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def _open(path: str | os.PathLike) -> tuple[IO[bytes], bool]:
    """Opens `path` for binary reading, transparently un-gzipping it."""
    if os.path.isdir(path):
        raise ValueError(f"{os.fspath(path)} is a directory; expected an IDX file")
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), True
    return raw, False


def _read_exactly(f: IO[bytes], n: int, path, what: str) -> bytes:
    try:
        data = f.read(n)
    except (OSError, EOFError, zlib.error) as e:  # corrupt or truncated gzip stream
        raise ValueError(f"{os.fspath(path)}: could not read the {what}: {e}") from e
    if len(data) != n:
        raise ValueError(
            f"{os.fspath(path)}: truncated IDX file: expected {n} bytes of {what}, "
            f"found {len(data)}"
        )
    return data


def _parse_header(f: IO[bytes], path, gzipped: bool) -> IdxHeader:
    magic = _read_exactly(f, 4, path, "header (magic number)")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{os.fspath(path)}: not an IDX file: the magic number must start with two "
            f"zero bytes followed by a dtype code and the number of dimensions, "
            f"got bytes {magic.hex(' ')}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise ValueError(
            f"{os.fspath(path)}: unknown IDX dtype code 0x{code:02X}; "
            f"expected one of {_describe_codes()}"
        )
    dims = _read_exactly(f, 4 * ndim, path, f"header ({ndim} dimension sizes)")
    shape = struct.unpack(f">{ndim}I", dims)
    return IdxHeader(tuple(int(s) for s in shape), IDX_DTYPES[code], 4 + 4 * ndim, gzipped)


def read_idx_header(path: str | os.PathLike) -> IdxHeader:
    """Reads only the header of an IDX file.

    Args:
      path: an IDX file, plain or gzipped.

    Returns:
      An `IdxHeader` (shape, dtype, data offset, whether gzipped).

    Raises:
      ValueError: the header is malformed (wrong magic, unknown dtype code,
        fewer bytes than the header needs).
    """
    f, gz = _open(path)
    with f:
        return _parse_header(f, path, gz)


def _check_declared_size(path, header: IdxHeader) -> None:
    """Refuses, before allocating, data the file cannot hold or memory cannot take.

    A plain file must hold the header plus ``header.nbytes``; a gzipped one's
    size is unknown until read, so only the memory check applies to it.
    """
    name = os.fspath(path)
    if not header.gzipped:
        size = os.path.getsize(path)
        if header.offset + header.nbytes > size:
            raise ValueError(
                f"{name}: truncated IDX file: expected {header.nbytes} bytes of "
                f"{header.dtype.name} data for the shape {header.shape} its header declares, "
                f"found {size - header.offset}")
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return
    if header.nbytes > avail:
        raise ValueError(
            f"{name}: the header declares shape {header.shape}, {header.nbytes:,} bytes of "
            f"data, more than the {avail:,} bytes of memory available; the header is likely "
            "corrupt")


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data is 64-byte aligned."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = (-buf.ctypes.data) % _ALIGN
    return buf[start : start + nbytes].view(dtype).reshape(shape)


def _read_into(f: IO[bytes], out: np.ndarray, path, what: str) -> None:
    """Fills `out` from `f`, raising ValueError when the file ends early."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    try:
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{os.fspath(path)}: could not read the {what}: {e}") from e
    if got != len(view):
        raise ValueError(
            f"{os.fspath(path)}: truncated IDX file: expected {len(view)} bytes of {what}, "
            f"found {got}"
        )


def _check_no_trailing(f: IO[bytes], path, expected: int) -> None:
    try:
        extra = f.read(1)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{os.fspath(path)}: could not read the end of the file: {e}") from e
    if extra:
        raise ValueError(
            f"{os.fspath(path)}: IDX file is longer than its header says: expected exactly "
            f"{expected} data bytes, found more"
        )


def _to_native(a: np.ndarray) -> np.ndarray:
    """Byte-swaps a big-endian array in place and returns a native-order view."""
    if a.dtype.itemsize > 1 and not a.dtype.isnative:
        a.byteswap(inplace=True)
    return a.view(a.dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads a whole IDX file into a numpy array.

    Args:
      path: an IDX file, plain or gzipped (detected from its first bytes).

    Returns:
      A writable, C-contiguous, 64-byte-aligned array in native byte order
      with the shape and dtype the header declares (uint8, int8, int16, int32,
      float32 or float64).

    Raises:
      ValueError: wrong magic number, unknown dtype code, or a data section
        shorter or longer than the header declares. The message names the file.
    """
    f, gz = _open(path)
    with f:
        header = _parse_header(f, path, gz)
        _check_declared_size(path, header)
        out = _aligned_empty(header.shape, header.dtype)
        _read_into(f, out, path, f"data for shape {header.shape}")
        _check_no_trailing(f, path, header.nbytes)
    return _to_native(out)


def iter_idx_chunks(path: str | os.PathLike, chunk_size: int, *, start: int = 0,
                    stop: int | None = None) -> Iterator[np.ndarray]:
    """Reads an IDX file piece by piece along its first axis.

    Only one chunk is held in memory at a time, so arbitrarily large files
    (gzipped or not) can be streamed. With `start`/`stop` only rows
    `[start, stop)` are read: a plain file seeks straight to row `start`; a
    gzipped one is decompressed up to it and those bytes dropped.

    Args:
      path: an IDX file, plain or gzipped, with at least one dimension.
      chunk_size: number of items (rows along axis 0) per chunk, > 0.
      start, stop: the rows to read, `0 <= start <= stop <= n` (stop None:
        to the end). Trailing bytes after the data are reported only when
        the rows reach the end of the file.

    Returns:
      An iterator of native-byte-order arrays of shape
      `(min(chunk_size, remaining),) + shape[1:]`.

    Raises:
      ValueError: as `read_idx` (raised when the bad part is reached), or a
        0-dimensional file, or `chunk_size <= 0`, or rows outside the file.
    """
    positive_int(chunk_size, "chunk_size")
    f, gz = _open(path)
    with f:
        header = _parse_header(f, path, gz)
        if not header.shape:
            raise ValueError(f"{os.fspath(path)}: a 0-dimensional IDX file cannot be chunked")
        n, rest = header.shape[0], header.shape[1:]
        lo, hi = row_range(start, stop, n, path)
        if lo:
            row_bytes = header.nbytes // n
            try:
                f.seek(header.offset + lo * row_bytes)
            except (OSError, EOFError, zlib.error) as e:
                raise ValueError(f"{os.fspath(path)}: could not read up to row {lo}: {e}") from e
        for first in range(lo, hi, chunk_size):
            m = min(chunk_size, hi - first)
            out = _aligned_empty((m,) + rest, header.dtype)
            _read_into(f, out, path, f"items {first}..{first + m - 1} of shape {header.shape}")
            yield _to_native(out)
        if hi == n:
            _check_no_trailing(f, path, header.nbytes)


def row_range(start, stop, n: int, path) -> tuple[int, int]:
    """Checked `(start, stop)` rows of a file of `n` rows (stop None: `n`)."""
    for name, v in (("start", start), ("stop", stop)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise ValueError(f"{name} must be a non-negative row index, got {v!r}")
    lo, hi = 0 if start is None else int(start), n if stop is None else int(stop)
    if not lo <= hi <= n:
        raise ValueError(f"{os.fspath(path)}: rows {lo} to {hi} are outside the file's {n} "
                         f"rows; expected 0 <= start <= stop <= {n}")
    return lo, hi


def write_idx(path: str | os.PathLike, array, *, compresslevel: int = 6) -> None:
    """Writes an array as an IDX file; gzipped when the name ends in `.gz`.

    Args:
      path: the file to write.
      array: array-like of dtype uint8, int8, int16, int32, float32 or float64
        (bool is written as uint8), with every dimension < 2**32 and at most 255
        dimensions.
      compresslevel: gzip level (only used for `.gz` names).

    Returns:
      None.

    Raises:
      ValueError: a dtype the format cannot hold (for example int64 or
        float16: convert first) or too many/too large dimensions.
    """
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    code = _CODE_OF_KIND.get((a.dtype.kind, a.dtype.itemsize))
    if code is None:
        raise ValueError(
            f"cannot write dtype {a.dtype} as IDX; supported: {_describe_codes()} "
            f"(convert the array first, e.g. a.astype(np.int32))"
        )
    if a.ndim > 255 or any(s >= 2**32 for s in a.shape):
        raise ValueError(f"shape {a.shape} does not fit an IDX header (<= 255 dims, each < 2**32)")
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    data = np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).reshape(-1).view(np.uint8)
    if os.fspath(path).endswith(".gz"):
        f = gzip.open(path, "wb", compresslevel=compresslevel)
    else:
        f = open(path, "wb")
    with f:
        f.write(header)
        f.write(data)
