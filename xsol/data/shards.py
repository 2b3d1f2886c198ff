"""Each process's share of a data set: token files, IDX files and text files.

A share is a contiguous range: of windows for a token file, of rows for IDX
files, of bytes for text. Shares are as equal as the unit allows and,
together, hold every example exactly once, so summing every process's
statistics (:func:`xsol.distributed.allreduce_stats`) gives exactly the
statistics of one pass over everything. Token files and IDX files are cut at
batch boundaries of the single-process stream (when there are at least as
many batches as processes), so each process sees the very batches one
process would: its float sums are the same, only added in another order.

``index`` and ``count`` default to ``jax.process_index()`` and
``jax.process_count()``.
"""

from __future__ import annotations

import codecs
import io
import os
import re

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xsol.core.checks import is_integer, nonnegative_int, positive_int
from xsol.data import text as text_lib
from xsol.data.streaming import (
    Batches,
    SizedBatches,
    fixed_size_batches,
    check_batch_size,
    iter_idx_batches,
    rebatch,
)
from xsol.data.idx import read_idx_header
from xsol.data.token_files import held_out_cut, open_token_file
from xsol.data.token_windows import iter_token_windows
from xsol.data.tokenizer import safe_cut
from xsol.data.vocab import Vocabulary
from xsol.data.windows import check_window

__all__ = [
    "check_process",
    "shard_bounds",
    "shard_token_file_windows",
    "shard_idx_batches",
    "shard_text_windows",
]

#: Bytes a text share may start after: ASCII whitespace except "\r" (a cut
#: between "\r" and "\n" would read one line break as two).
_CUT_AFTER = re.compile(rb"[ \t\n\x0b\x0c]")
_SCAN_BLOCK = 1 << 16


def check_process(index=None, count=None) -> tuple[int, int]:
    """``(index, count)`` checked; None means this JAX process's index and the process count.

    Raises:
      ValueError: a count below 1, or an index outside ``[0, count)``.
    """
    if index is None or count is None:
        import jax  # noqa: PLC0415 - only to read the defaults

        index = jax.process_index() if index is None else index
        count = jax.process_count() if count is None else count
    count = positive_int(count, "the process count")
    if not is_integer(index) or not 0 <= index < count:
        raise ValueError(f"process index {index!r} is out of range for {count} processes: "
                         f"expected an integer with 0 <= index < {count}")
    return int(index), int(count)


def shard_bounds(n: int, *, index=None, count=None, multiple: int = 1) -> tuple[int, int]:
    """The ``[start, stop)`` of share ``index`` of ``n`` items cut into ``count`` shares.

    Shares are contiguous, in order, and differ in size by at most one
    ``multiple`` (a batch size: every share but the last then starts on a
    multiple of it, so the shares' batches are those of one pass). Shares may
    be empty when ``n < count * multiple``.

    Raises:
      ValueError: a bad index or count (see :func:`check_process`), a negative
        ``n`` or a ``multiple`` below 1.
    """
    index, count = check_process(index, count)
    n = nonnegative_int(n, "the number of items")
    multiple = positive_int(multiple, "multiple")
    units = -(-n // multiple)
    lo = units * index // count * multiple
    hi = units * (index + 1) // count * multiple
    return min(lo, n), min(hi, n)


def _share(n: int, unit: int, index: int, count: int, what: str) -> tuple[int, int]:
    """Bounds cut at multiples of ``unit`` when every share gets one, else at single items."""
    if n < count:
        raise ValueError(f"{n} {what} cannot be shared by {count} processes: each process needs "
                         "at least one; use fewer processes")
    multiple = unit if -(-n // unit) >= count else 1
    return shard_bounds(n, index=index, count=count, multiple=multiple)


def shard_token_file_windows(path, window: int, *, dtype=None, part: str = "all",
                             held_out: float | None = None, chunk_tokens: int = 1 << 22,
                             vocab_size: int | None = None, index=None,
                             count=None) -> SizedBatches:
    """This process's share of the next-token windows of a token file.

    The windows of ``part`` (as :func:`xsol.data.iter_token_file_windows`
    numbers them) are cut into contiguous shares of whole chunks of
    ``chunk_tokens`` windows; share ``p`` reads its tokens plus the ``window``
    tokens after them (which the next share reads too), so no window is lost
    or counted twice.

    Args:
      path, window, dtype, part, held_out, chunk_tokens, vocab_size: as for
        :func:`xsol.data.iter_token_file_windows`.
      index, count: this process's index and the number of processes.

    Returns:
      A seekable :class:`xsol.data.SizedBatches` of this share's ``(X, y)`` chunks.

    Raises:
      ValueError: as :func:`xsol.data.iter_token_file_windows`; fewer windows
        than processes; a bad index or count.
    """
    index, count = check_process(index, count)
    k = check_window(window)
    if part not in ("all", "train", "held_out"):
        raise ValueError(f"part must be 'all', 'train' or 'held_out', got {part!r}")
    ids = open_token_file(path, dtype)
    start, stop = 0, len(ids)
    if part != "all":
        if held_out is None:
            raise ValueError(f"part={part!r} needs held_out, the fraction of the file held out at "
                             "its end (e.g. 0.1); part='all' shares the whole file")
        cut = held_out_cut(len(ids), held_out, k)
        start, stop = (0, cut) if part == "train" else (cut, len(ids))
    n_windows = stop - start - k
    if n_windows < 1:
        raise ValueError(f"{os.fspath(path)}: holds {stop - start} tokens; window {k} needs more "
                         f"than {k}")
    chunk_tokens = positive_int(chunk_tokens, "chunk_tokens", "windows per chunk")
    lo, hi = _share(n_windows, chunk_tokens, index, count, "windows")
    return iter_token_windows(ids, k, start=start + lo, stop=start + hi + k,
                              chunk_tokens=chunk_tokens, vocab_size=vocab_size,
                              source=os.fspath(path))


def shard_idx_batches(images_path, labels_path, batch_size: int, *, flatten: bool = True,
                      index=None, count=None) -> SizedBatches:
    """This process's share of a pair of IDX files: a contiguous range of rows.

    Shares are whole batches of ``batch_size`` rows of the single-process
    stream (:func:`xsol.data.iter_idx_batches`), so each process reads the
    very batches one process would; a plain file is read from its share's
    first row on (a seek), a gzipped one decompressed up to it.

    Args:
      images_path, labels_path, batch_size, flatten: as for
        :func:`xsol.data.iter_idx_batches`.
      index, count: this process's index and the number of processes.

    Returns:
      A seekable :class:`xsol.data.SizedBatches` of this share's batches.

    Raises:
      ValueError: as :func:`xsol.data.iter_idx_batches`; fewer examples than
        processes; a bad index or count.
    """
    index, count = check_process(index, count)
    bs = check_batch_size(batch_size)
    header = read_idx_header(images_path)
    if not header.shape:
        raise ValueError(f"{os.fspath(images_path)}: expected an array of examples, got a scalar")
    n = header.shape[0]
    lo, hi = _share(n, bs, index, count, "examples")
    return iter_idx_batches(images_path, labels_path, bs, flatten=flatten, start=lo, stop=hi)


# --- text ------------------------------------------------------------------------------


class _ByteRange(io.RawIOBase):
    """Bytes ``[start, stop)`` of a file, as a readable raw stream."""

    def __init__(self, path, start: int, stop: int):
        super().__init__()
        self._f = open(path, "rb")
        self._f.seek(start)
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(b)[: self._left]
        n = self._f.readinto(view)
        self._left -= n or 0
        return n or 0

    def close(self) -> None:
        self._f.close()
        super().close()


class _TextLayout:
    """A text source as one stream of bytes: its files in order, a "\\n" between two.

    Positions count bytes of that stream; the "\\n" after file ``j`` (not after
    the last) sits at ``ends[j]``.
    """

    def __init__(self, source, encoding: str):
        kind, payload = text_lib.resolve_text_source(source)
        if kind not in ("file", "dir"):
            raise ValueError(f"a text share needs a text file or a directory of *.txt files, got "
                             f"{source!r} ({kind}); load other sources whole, or write them to "
                             "a file first")
        self.files = [payload] if kind == "file" else list(payload)
        self.starts, pos = [], 0
        for j, f in enumerate(self.files):
            self.starts.append(pos)
            pos += os.path.getsize(f) + (1 if j < len(self.files) - 1 else 0)
        self.size = pos
        self.encoding = encoding

    def _file_end(self, j: int) -> int:
        return self.starts[j] + os.path.getsize(self.files[j])

    def cut_at_or_after(self, pos: int) -> int:
        """The first position ``>= pos`` where a share may start: 0, the end, or after a
        whitespace byte (a file's own, or the "\n" between two files)."""
        if pos <= 0:
            return 0
        q = pos - 1  # the byte before the candidate position
        for j, f in enumerate(self.files):
            end, last = self._file_end(j), j == len(self.files) - 1
            if q >= end + (0 if last else 1):
                continue  # past this file and its separator
            if q < end:
                with open(f, "rb") as fh:
                    fh.seek(q - self.starts[j])
                    at = q
                    while at < end:
                        block = fh.read(min(_SCAN_BLOCK, end - at))
                        if not block:
                            break
                        m = _CUT_AFTER.search(block)
                        if m:
                            return at + m.start() + 1
                        at += len(block)
            if not last:
                return end + 1  # after the separator
        return self.size

    def pieces(self, start: int, stop: int | None, chunk_chars: int, errors: str):
        """The decoded text of bytes ``[start, stop)`` (stop None: to the end), in pieces.

        Each file's range is decoded on its own with universal newlines, as
        :func:`xsol.data.load_text` decodes whole files.
        """
        stop = self.size if stop is None else stop
        for j, f in enumerate(self.files):
            a, end = self.starts[j], self._file_end(j)
            lo, hi = max(start, a), min(stop, end)
            if lo < hi:
                raw = _ByteRange(f, lo - a, hi - a)
                with io.TextIOWrapper(io.BufferedReader(raw), encoding=self.encoding,
                                      errors=errors, newline=None) as t:
                    while True:
                        try:
                            piece = t.read(chunk_chars)
                        except UnicodeDecodeError as e:
                            raise text_lib.decode_error(f, self.encoding, e) from e
                        if not piece:
                            break
                        yield piece
            if j < len(self.files) - 1 and start <= end < stop:
                yield "\n"


def _check_text_encoding(encoding: str) -> str:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown text encoding {encoding!r}") from None
    if "x \t\n".encode(encoding) != "x".encode(encoding) + b" \t\n":
        raise ValueError(f"a text share is cut at whitespace bytes, so the encoding must write "
                         f"ASCII whitespace as single bytes (UTF-8, Latin-1, ...); {encoding!r} "
                         "does not")
    return encoding


def shard_text_windows(source, vocab: Vocabulary, window: int, batch_size: int, *,
                       chunk_chars: int = 1 << 20, encoding: str = "utf-8",
                       errors: str = "strict", index=None, count=None) -> Batches:
    """This process's share of the next-token windows of a text file (or directory).

    The text's bytes (a directory's ``*.txt`` files in name order, a "\\n"
    between two, as :func:`xsol.data.load_text` joins them) are cut into
    ``count`` ranges of about equal size, each cut moved forward to just
    after a whitespace byte, so that no token is split (no token spans
    whitespace, see :mod:`xsol.data.tokenizer`). Share ``p`` holds the
    windows whose first token lies in its range; it reads its range, in
    chunks of ``chunk_chars`` characters, and then just enough of the text
    after it for the last ``window`` targets. Together the shares hold
    exactly the windows of ``context_windows(vocab.encode(load_text(source)),
    window)``, each once.

    Args:
      source: a text file path or a directory of ``*.txt`` files.
      vocab: the fixed :class:`xsol.data.Vocabulary` (its tokenization settings are used).
      window: K, context tokens per example, >= 1.
      batch_size: examples per batch, > 0.
      chunk_chars: characters decoded per piece, > 0.
      encoding: the files' encoding; one that writes ASCII whitespace as
        single bytes and keeps no state between characters (UTF-8, Latin-1,
        cp1252, ...).
      errors: as for :func:`xsol.data.load_text`.
      index, count: this process's index and the number of processes.

    Returns:
      A :class:`xsol.data.Batches` of ``(X, y)`` int32 batches (``total`` unknown);
      a share with no window yields nothing.

    Raises:
      ValueError: a bad window, batch size, chunk size, encoding, index or
        count; a source that is not a file or directory of text files.
      TextDecodeError: while streaming, undecodable bytes with ``errors="strict"``.
    """
    index, count = check_process(index, count)
    k = check_window(window)
    bs = check_batch_size(batch_size)
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a xsol.data.Vocabulary, got {type(vocab).__name__}")
    chunk_chars = positive_int(chunk_chars, "chunk_chars")
    text_lib.check_errors(errors)
    layout = _TextLayout(source, _check_text_encoding(encoding))
    level = vocab.level

    def bounds():
        a = layout.cut_at_or_after(layout.size * index // count)
        b = layout.cut_at_or_after(layout.size * (index + 1) // count) if index + 1 < count \
            else layout.size
        return a, max(a, b)

    def ids(start, stop):
        """Token ids of bytes ``[start, stop)``, chunk by chunk, cut only at safe places."""
        carry = ""
        for piece in layout.pieces(start, stop, chunk_chars, errors):
            t = carry + piece
            cut = safe_cut(t, level)
            carry = t[cut:]
            if cut:
                yield vocab.encode(t[:cut])
        if carry:
            yield vocab.encode(carry)

    def blocks():
        a, b = bounds()
        carry = np.empty(0, np.int32)
        for got in ids(a, b):
            arr = np.concatenate([carry, got]) if len(carry) else np.asarray(got, np.int32)
            if len(arr) > k:
                yield sliding_window_view(arr[:-1], k), arr[k:]
            carry = arr[-k:].copy() if len(arr) >= k else arr.copy()
        if not len(carry):
            return
        extra, need = [], k
        for got in ids(b, None):  # the targets of the last windows, from the next shares' text
            extra.append(got[:need])
            need -= len(extra[-1])
            if need <= 0:
                break
        arr = np.concatenate([carry, *extra]).astype(np.int32, copy=False)
        if len(arr) > k:
            yield sliding_window_view(arr[:-1], k), arr[k:]

    return fixed_size_batches(lambda: rebatch(blocks(), bs), batch_size=bs)
