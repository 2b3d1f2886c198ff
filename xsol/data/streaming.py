"""Streams of fixed-size (X, y) batches, for one-pass statistics (`xsol.accumulate`).

Every function here returns a `Batches`: a re-iterable object (each `for`
loop starts again from the beginning) yielding numpy `(X, y)` pairs of
`batch_size` examples, the last one smaller unless `drop_remainder=True`.
When the number of batches is known in advance, `batches.total` gives it and
`len(batches)` works (a `SizedBatches`; progress bars pick it up); otherwise
`total` is None and the object has no `len()`, like any iterator of unknown
length.

Memory stays bounded by one batch (IDX files, gzipped or not) or one chunk
of text plus one batch (text files), so files larger than memory can be
streamed. The batches are exactly those of the in-memory path: the same
examples in the same order.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Iterable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from xsol.core.checks import positive_int
from xsol.data import tfds_source
from xsol.data.idx import row_range, iter_idx_chunks, read_idx_header
from xsol.data.text import iter_text_chunks
from xsol.data.tokenizer import safe_cut
from xsol.data.vocab import Vocabulary
from xsol.data.windows import check_window

__all__ = [
    "Batches",
    "SizedBatches",
    "check_batch_size",
    "rebatch",
    "iter_array_batches",
    "iter_idx_batches",
    "iter_text_windows",
    "iter_tfds_batches",
]


def check_batch_size(batch_size) -> int:
    """Validates a batch size.

    Args:
      batch_size: examples per batch.

    Returns:
      The batch size as an int.

    Raises:
      ValueError: not a positive integer.
    """
    return positive_int(batch_size, "batch_size")


def _num_batches(n: int | None, batch_size: int, drop_remainder: bool) -> int | None:
    if n is None:
        return None
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


class Batches:
    """A re-iterable stream of `(X, y)` numpy batches.

    Each `iter()` starts the stream again from the beginning. This class has
    no `__len__` (its length is unknown in advance); `SizedBatches`, returned
    when the number of batches is known, adds it.

    Attributes:
      batch_size: examples per batch (the last batch may hold fewer).
      total: number of batches, or None when unknown before streaming.
      num_examples: number of examples that will be yielded, or None.
    """

    def __init__(
        self,
        make_iterator: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
        *,
        batch_size: int,
        total: int | None = None,
        num_examples: int | None = None,
        seek: Callable[[int], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None,
    ):
        """Wraps a generator factory.

        Args:
          make_iterator: called with no arguments at each `iter()`; returns an
            iterator of `(X, y)` batches.
          batch_size: examples per batch.
          total: number of batches, if known.
          num_examples: number of examples, if known.
          seek: optional; called with a batch index `k`, returns an iterator
            of the batches from `k` on without reading the ones before (see
            `iter_from`).
        """
        self._make = make_iterator
        self._seek = seek
        self.batch_size = batch_size
        self.total = total
        self.num_examples = num_examples

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter(self._make())

    @property
    def seekable(self) -> bool:
        """Whether `iter_from` jumps to a batch without reading the ones before it."""
        return self._seek is not None

    def iter_from(self, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """An iterator over the batches from index `start` on (0: all of them).

        Sources that can seek (arrays, IDX files, token files) start there
        directly; others read and drop the first `start` batches. Either way
        the batches are those `iter()` yields from index `start` on.

        Raises:
          ValueError: `start` is not a non-negative integer.
        """
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be a non-negative batch index, got {start!r}")
        start = int(start)
        if self._seek is not None:
            return iter(self._seek(start))
        it = iter(self)
        for _ in range(start):
            if next(it, None) is None:
                break
        return it

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, total={self.total}, "
            f"num_examples={self.num_examples})"
        )


class SizedBatches(Batches):
    """A `Batches` whose number of batches is known: `len()` works."""

    def __len__(self) -> int:
        return self.total


def fixed_size_batches(make_iterator, *, batch_size, total=None, num_examples=None, seek=None) -> Batches:
    cls = Batches if total is None else SizedBatches
    return cls(make_iterator, batch_size=batch_size, total=total, num_examples=num_examples,
               seek=seek)


def rebatch(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]], batch_size: int, drop_remainder: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Re-cuts a stream of variable-size `(X, y)` blocks into fixed-size batches.

    Args:
      blocks: `(X, y)` pairs of any lengths (equal within a pair).
      batch_size: examples per output batch, > 0.
      drop_remainder: drop a final batch smaller than `batch_size`.

    Returns:
      An iterator of `(X, y)` batches of `batch_size` examples (the last may
      be smaller), in the original order; each a fresh C-contiguous copy, so
      blocks that are strided views (e.g. sliding windows) are safe to pass.
    """
    bs = check_batch_size(batch_size)
    pend_x: list[np.ndarray] = []
    pend_y: list[np.ndarray] = []
    n = 0
    for x, y in blocks:
        m, i = len(x), 0
        if n:
            take = min(bs - n, m)
            pend_x.append(x[:take])
            pend_y.append(y[:take])
            n += take
            i = take
            if n < bs:
                continue
            yield np.concatenate(pend_x), np.concatenate(pend_y)
            pend_x, pend_y, n = [], [], 0
        while m - i >= bs:
            yield np.array(x[i : i + bs]), np.array(y[i : i + bs])
            i += bs
        if i < m:
            pend_x, pend_y, n = [x[i:]], [y[i:]], m - i
    if n and not drop_remainder:
        yield np.concatenate(pend_x), np.concatenate(pend_y)


def iter_array_batches(X, y, batch_size: int, *, drop_remainder: bool = False) -> Batches:
    """Batches of in-memory arrays, in order.

    Args:
      X: array of examples, first axis n (e.g. (n, M) features or (n, K) ids).
      y: array of n labels.
      batch_size: examples per batch, > 0.
      drop_remainder: drop the final batch when it is smaller than batch_size.

    Returns:
      A `Batches` of `(X[i:i+b], y[i:i+b])` views, with `len()` known.

    Raises:
      ValueError: batch_size <= 0, or X and y of different lengths.
    """
    bs = check_batch_size(batch_size)
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(
            f"X and y must have the same number of examples (first axis), got X shape "
            f"{X.shape} and y shape {y.shape}"
        )
    n = len(X)
    stop = (n // bs) * bs if drop_remainder else n

    def gen(first: int = 0):
        for i in range(first * bs, stop, bs):
            yield X[i : i + bs], y[i : i + bs]

    return fixed_size_batches(gen, batch_size=bs, total=_num_batches(n, bs, drop_remainder),
                    num_examples=stop, seek=gen)


def iter_idx_batches(
    images_path: str | os.PathLike,
    labels_path: str | os.PathLike,
    batch_size: int,
    *,
    flatten: bool = True,
    drop_remainder: bool = False,
    start: int = 0,
    stop: int | None = None,
) -> Batches:
    """Streams (images, labels) batches from a pair of IDX files, plain or gzipped.

    Both files are read incrementally, one batch at a time, so memory stays
    bounded by one batch whatever the file size. Headers are checked when
    this function is called; the data when it is reached. `iter_from(k)`
    starts at batch `k` without reading the batches before it (a plain file
    seeks there).

    Args:
      images_path: IDX file of n examples (e.g. uint8 (n, 28, 28)).
      labels_path: IDX file of n labels, 1-D.
      batch_size: examples per batch, > 0.
      flatten: yield X as rows (B, prod(shape[1:])), the dense-feature layout
        `xsol.accumulate` expects; False keeps the stored shape (B, 28, 28).
      drop_remainder: drop the final short batch.
      start, stop: stream only examples `[start, stop)` (stop None: to the
        end), e.g. one process's share of the files; batches are cut from
        `start`.

    Returns:
      A `Batches` of `(X, y)`: X in the file's dtype (uint8 for MNIST), y
      int32; `len()` known.

    Raises:
      ValueError: batch_size <= 0, malformed headers, labels not 1-D,
        different numbers of images and labels, or `start`/`stop` outside
        `0 <= start <= stop <= n`.
    """
    bs = check_batch_size(batch_size)
    hx, hy = read_idx_header(images_path), read_idx_header(labels_path)
    if len(hx.shape) < 1:
        raise ValueError(f"{os.fspath(images_path)}: expected an array of examples, got a scalar")
    if len(hy.shape) != 1:
        raise ValueError(f"{os.fspath(labels_path)}: expected 1-D labels, got shape {hy.shape}")
    if hx.shape[0] != hy.shape[0]:
        raise ValueError(
            f"{os.fspath(images_path)} holds {hx.shape[0]} examples but "
            f"{os.fspath(labels_path)} holds {hy.shape[0]} labels"
        )
    n_file = hx.shape[0]
    lo, hi = row_range(start, stop, n_file, images_path)
    n = hi - lo
    keep = (n // bs) * bs if drop_remainder else n

    def gen(first: int = 0):
        a = min(lo + first * bs, lo + keep)
        b = hi if keep == n else lo + keep  # to `hi` so that trailing garbage is reported
        xs = iter_idx_chunks(images_path, bs, start=a, stop=b)
        ys = iter_idx_chunks(labels_path, bs, start=a, stop=b)
        for _ in range(a, lo + keep, bs):
            x, y = next(xs), next(ys)
            yield (x.reshape(len(x), -1) if flatten else x), y.astype(np.int32, copy=False)
        if keep == n:  # run both readers to their end so trailing garbage is reported
            for _ in xs:
                pass
            for _ in ys:
                pass

    return fixed_size_batches(gen, batch_size=bs, total=_num_batches(n, bs, drop_remainder),
                    num_examples=keep, seek=gen)


def iter_text_windows(
    source,
    vocab: Vocabulary,
    window: int,
    batch_size: int,
    *,
    chunk_chars: int = 1 << 20,
    drop_remainder: bool = False,
    split: str = "train",
    feature: str = "text",
    encoding: str = "utf-8",
    errors: str = "strict",
) -> Batches:
    """Streams next-token examples from a text, read in chunks, with a fixed vocabulary.

    The result is exactly `context_windows(vocab.encode(load_text(source)),
    window)` cut into batches, without holding the whole text: each chunk is
    cut after its last whitespace character, the incomplete trailing word is
    carried into the next chunk (so no word is split in two), and the last
    `window` token ids are carried across chunk boundaries so that no window
    is lost. Memory: one chunk plus one batch (plus the longest run of text
    without whitespace, which cannot be cut).

    Args:
      source: a text file path, a directory of `*.txt` files, an open text
        file object, None (the embedded text) or "tfds:NAME" (see
        `xsol.data.text`).
      vocab: the fixed `Vocabulary` (its tokenization settings are used).
      window: K, context tokens per example, >= 1.
      batch_size: examples per batch, > 0.
      chunk_chars: characters read per chunk, > 0.
      drop_remainder: drop the final short batch.
      split, feature, encoding, errors: as in `xsol.data.text.load_text`
        (errors: "strict", "replace" or "ignore" for undecodable bytes).

    Returns:
      A `Batches` of `(X, y)`, X int32 (B, K) with column 0 the oldest token,
      y int32 (B,). `total` is None (unknown until the text is read). A file
      object can be streamed only once.

    Raises:
      ValueError: window <= 0, batch_size <= 0, chunk_chars <= 0, or (while
        streaming) an empty text ("text is empty") or one with no more than
        `window` tokens; `TextDecodeError` (a ValueError) for undecodable
        bytes with errors="strict".
    """
    k = check_window(window)
    bs = check_batch_size(batch_size)
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a xsol.data.Vocabulary, got {type(vocab).__name__}")
    level = vocab.level
    iter_text_chunks(  # validate now
        source, chunk_chars, split=split, feature=feature, encoding=encoding, errors=errors
    )

    once = {"used": False} if hasattr(source, "read") else None

    def blocks():
        if once is not None:
            if once["used"]:
                raise RuntimeError(
                    "this text stream reads from a file object, which can be streamed only "
                    "once; pass a path to iterate again"
                )
            once["used"] = True
        carry_ids = np.empty(0, np.int32)
        carry_text = ""
        n_chars = n_tokens = 0

        def windows(ids):
            nonlocal carry_ids, n_tokens
            n_tokens += len(ids)
            a = np.concatenate([carry_ids, ids]) if len(carry_ids) else ids
            if len(a) > k:
                yield sliding_window_view(a[:-1], k), a[k:]
            carry_ids = a[-k:].copy()

        chunks = iter_text_chunks(
            source, chunk_chars, split=split, feature=feature, encoding=encoding, errors=errors
        )
        for piece in chunks:
            n_chars += len(piece)
            text = carry_text + piece
            cut = safe_cut(text, level)
            carry_text = text[cut:]
            if cut:
                yield from windows(vocab.encode(text[:cut]))
        if carry_text:
            yield from windows(vocab.encode(carry_text))
        if n_chars == 0:
            raise ValueError(f"text is empty: source {source!r} holds no characters")
        if n_tokens <= k:
            raise ValueError(
                f"window ({k}) must be smaller than the number of tokens ({n_tokens}): "
                f"each example needs {k} context tokens plus one target"
            )

    return fixed_size_batches(lambda: rebatch(blocks(), bs, drop_remainder), batch_size=bs)


def iter_tfds_batches(
    name: str,
    split: str = "train",
    batch_size: int = 1024,
    *,
    flatten: bool = True,
    drop_remainder: bool = False,
    data_dir: str | None = None,
    shard_by_process: bool = False,
) -> Batches:
    """Streams (x, y) batches of a supervised tensorflow-datasets dataset.

    tfds (and TensorFlow) are imported when this is called and the data is
    read lazily through `tf.data` while iterating (tfds may download and
    prepare it on first use).

    Args:
      name: a tfds dataset name with (input, label) pairs, e.g. "mnist".
      split: a tfds split (expression), e.g. "train" or "test[:50%]".
      batch_size: examples per batch, > 0.
      flatten: yield X as rows (B, prod(example shape)).
      drop_remainder: drop the final short batch.
      data_dir: tfds's own data directory (None: tfds's default).
      shard_by_process: in a run over several JAX processes, read only this
        process's contiguous share of `split` (`tfds.split_for_jax_process`:
        shares differ in size by at most one example and together hold every
        example once), so that each process accumulates its own part.

    Returns:
      A `Batches` of `(X, y)` (X in the stored dtype, uint8 for images; y
      int32), with `total` from the dataset's metadata when tfds knows it
      (of this process's share with `shard_by_process`).

    Raises:
      ValueError: batch_size <= 0.
      TfdsUnavailableError (an ImportError): tensorflow-datasets or
        TensorFlow is missing.
    """
    bs = check_batch_size(batch_size)
    tfds_source.import_tfds()
    if shard_by_process:
        split = tfds_source.split_for_process(split)
    n = tfds_source.tfds_num_examples(name, split, data_dir=data_dir)

    def gen():
        for x, y in tfds_source.iter_tfds_supervised(name, split, bs, flatten=flatten, data_dir=data_dir):
            if drop_remainder and len(x) < bs:
                return
            yield x, y

    return fixed_size_batches(
        gen,
        batch_size=bs,
        total=_num_batches(n, bs, drop_remainder),
        num_examples=None if n is None else (n // bs) * bs if drop_remainder else n,
    )
