"""Sparse co-occurrence statistics for large vocabularies.

A bigram language model over ``V = 64k`` tokens has ``V^2 = 4.3e9`` weights, 16
GiB in float32, yet 10M tokens of text contain only a few million distinct
pairs. This module never builds the dense matrix unless asked to.

**Statistics.** Each example ``t`` and window position ``k`` contributes one
count at the flat key ``(k * V + X[t, k]) * N + y_t`` (feature index
``i = k * V + id``, as everywhere in xsol). Sorting the keys and counting runs
gives the non-zero entries of ``F`` exactly (integers, int64), as a
:class:`SparseStats`. Statistics of two streams merge by key (a merge of two
sorted lists), so merging is exact and associative.

The explicit solution solved from them, stored and scored without the dense
matrix, is :class:`xsol.solvers.SparseExplicitLM`. Everything here runs in
numpy on the host (sorting keys is what dominates).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import jax.numpy as jnp
import numpy as np

from xsol.core import defaults, inputs, memory
from xsol.core.checks import positive_int
from xsol.core.saved import register_saved_type

#: Default additive smoothing ``a`` (the same default as :func:`xsol.fit_explicit`).
DEFAULT_SMOOTHING = defaults.SMOOTHING

#: Entries gathered at once when scoring windows of several tokens (bounds memory).
_SCORE_CHUNK = 1 << 22


def key_dtype(num_keys: int) -> np.dtype:
    """The narrowest unsigned dtype that holds keys ``0 .. num_keys - 1`` (sorting is faster)."""
    return np.dtype(np.uint32 if num_keys <= 1 << 32 else np.uint64)


def _runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    flag = np.empty(len(sorted_keys), bool)
    if len(sorted_keys):
        flag[0] = True
        np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=flag[1:])
    return np.flatnonzero(flag)


def merge_counts(keys_a, counts_a, keys_b, counts_b) -> tuple[np.ndarray, np.ndarray]:
    """The union of two sorted, unique key lists with their counts added.

    A stable ``argsort`` of the concatenated keys (a merge of two sorted runs)
    orders keys and counts; runs of equal keys then add their counts. Exact.
    """
    keys = np.concatenate([keys_a, keys_b])
    counts = np.concatenate([counts_a, counts_b])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = _runs(keys)
    return keys[starts], (np.add.reduceat(counts, starts) if len(starts) else counts)


@dataclasses.dataclass(frozen=True, eq=False)
class SparseStats:
    """Non-zero entries of the co-occurrence matrix ``F`` (``M x N``, ``M = K * V``).

    Attributes:
      keys: int64, sorted and unique flat keys ``i * N + j`` of the non-zero entries.
      counts: int64 ``F_ij > 0`` at ``keys``.
      feature_totals: int64 ``f_i = sum_j F_ij``, shape ``(M,)``.
      label_counts: int64 examples per label, shape ``(N,)``.
      num_examples: examples counted.
      vocab_size: ``V``.
      num_classes: ``N``.
      window: ``K``.
    """

    keys: np.ndarray
    counts: np.ndarray
    feature_totals: np.ndarray
    label_counts: np.ndarray
    num_examples: int
    vocab_size: int
    num_classes: int
    window: int = 1

    @property
    def num_features(self) -> int:
        """``M = K * V``."""
        return self.window * self.vocab_size

    @property
    def nnz(self) -> int:
        """Number of distinct (feature, label) pairs seen."""
        return int(len(self.keys))

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(a.nbytes for a in (self.keys, self.counts, self.feature_totals,
                                      self.label_counts))

    @property
    def rows(self) -> np.ndarray:
        """Feature index ``i`` of each non-zero entry."""
        return self.keys // self.num_classes

    @property
    def cols(self) -> np.ndarray:
        """Label ``j`` of each non-zero entry."""
        return self.keys % self.num_classes

    def indptr(self) -> np.ndarray:
        """CSR row pointers: row ``i``'s entries are ``keys[indptr[i]:indptr[i + 1]]``."""
        bounds = np.arange(self.num_features + 1, dtype=np.int64) * self.num_classes
        return np.searchsorted(self.keys, bounds)

    def count(self, rows, cols) -> np.ndarray:
        """``F[rows, cols]`` for arrays of indices (zero where unseen), int64."""
        q = np.asarray(rows, np.int64) * self.num_classes + np.asarray(cols, np.int64)
        pos = np.minimum(np.searchsorted(self.keys, q), max(self.nnz - 1, 0))
        if not self.nnz:
            return np.zeros(q.shape, np.int64)
        return np.where(self.keys[pos] == q, self.counts[pos], 0)

    def merge(self, other: "SparseStats") -> "SparseStats":
        """``self + other``, merged by key (exact, associative and commutative)."""
        if not isinstance(other, SparseStats):
            raise TypeError(f"can only merge SparseStats with SparseStats, got {type(other).__name__}")
        shape = (self.vocab_size, self.num_classes, self.window)
        if shape != (other.vocab_size, other.num_classes, other.window):
            raise ValueError(
                "cannot merge statistics of different shapes: (vocab_size, num_classes, "
                f"window) = {shape} and {(other.vocab_size, other.num_classes, other.window)}"
            )
        keys, counts = merge_counts(self.keys, self.counts, other.keys, other.counts)
        return SparseStats(
            keys,
            counts,
            self.feature_totals + other.feature_totals,
            self.label_counts + other.label_counts,
            self.num_examples + other.num_examples,
            *shape,
        )

    def merge_pairs(self, other: "SparseStats") -> "SparseStats":
        """``self`` with ``other``'s pair counts merged in (sums and totals of ``self`` kept)."""
        keys, counts = merge_counts(self.keys, self.counts, other.keys, other.counts)
        return dataclasses.replace(self, keys=keys, counts=counts)


    @classmethod
    def from_dense(cls, stats, vocab_size: int, window: int = 1) -> "SparseStats":
        """The non-zero entries of dense integer :class:`xsol.stats.CoocStats` (one scan of ``F``).

        Exact: keys are the flat indices of the non-zero counts.
        """
        F = np.asarray(stats.cooc)
        if not np.issubdtype(F.dtype, np.integer):
            raise TypeError(f"from_dense needs integer counts (token ids), got {F.dtype}")
        M, N = F.shape
        if M != int(window) * int(vocab_size):
            raise ValueError(f"the counts have {M} rows, expected window * vocab_size = "
                             f"{int(window) * int(vocab_size)}")
        flat = F.reshape(-1)
        keys = np.flatnonzero(flat)
        return cls(keys.astype(np.int64), flat[keys].astype(np.int64),
                   np.asarray(stats.feature_totals).astype(np.int64),
                   np.asarray(stats.label_counts).astype(np.int64),
                   int(stats.num_examples), int(vocab_size), int(N), int(window))

    def to_dense(self, *, check_memory: bool = True):
        """The dense :class:`xsol.stats.CoocStats` (JAX arrays), refused when it would not fit.

        Counts use :func:`xsol.stats.accumulators.count_dtype` (int32 unless 64-bit mode is on).

        Raises:
          MemoryBudgetError: the ``M x N`` matrix would not fit in memory.
          ValueError: a count is too large for int32 without 64-bit mode.
        """
        from xsol.stats import accumulators as st  # noqa: PLC0415 - light to import

        M, N = self.num_features, self.num_classes
        dtype = np.dtype(st.count_dtype())
        if check_memory:
            memory.check_fits("co-occurrence matrix", (M, N), dtype.itemsize, copies=2,
                              hint="keep the statistics sparse (SparseExplicitLM scores "
                                   "text without the dense matrix)")
        if self.nnz and max(int(self.counts.max()), int(self.feature_totals.max()),
                            self.num_examples) > np.iinfo(dtype).max:
            raise ValueError(
                f"counts exceed the largest {dtype.name}; enable 64-bit counts with "
                "jax.config.update('jax_enable_x64', True)"
            )
        F = np.zeros(M * N, dtype)
        F[self.keys] = self.counts
        return st.CoocStats(
            jnp.asarray(F.reshape(M, N)),
            jnp.asarray(self.feature_totals.astype(dtype)),
            jnp.asarray(self.label_counts.astype(dtype)),
            jnp.asarray(self.num_examples, dtype),
        )


def _prepare_ids(X, y, vocab_size, num_classes):
    """Validated ``(X (B, K) int32, y (B,) int32, V, N)``; refuses empty input."""
    X = np.asarray(X)
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError("X is empty (0 examples); expected at least one example")
    if not np.issubdtype(X.dtype, np.integer):
        raise TypeError(f"token ids must be integers, got dtype {X.dtype}")
    V = vocab_size
    if num_classes is None:
        num_classes = V
    V, N = positive_int(V, "vocab_size"), positive_int(num_classes, "num_classes")
    X = inputs.check_ids(X, V)
    y = inputs.check_labels(y, X.shape[0], N)
    return X, y, V, N


def sparse_cooccurrence(X, y, vocab_size: int, num_classes: int | None = None) -> SparseStats:
    """Exact sparse co-occurrence counts of token windows and their next tokens.

    ``F[k * V + X[t, k], y_t] += 1`` for every example ``t`` and position ``k``,
    computed by sorting the flat keys ``(k * V + X[t, k]) * N + y_t`` (in the
    narrowest unsigned dtype that holds ``M * N`` keys) and counting runs. No
    ``M x N`` array is allocated: memory is ``O(B K)`` for the keys plus
    ``O(nnz)`` for the result.

    Args:
      X: token ids, shape ``(B,)`` or ``(B, K)``, values in ``[0, V)``.
      y: next-token labels, shape ``(B,)``, values in ``[0, N)``.
      vocab_size: ``V``.
      num_classes: ``N`` (default ``V``).

    Returns:
      A :class:`SparseStats`.

    Raises:
      ValueError: empty input, ids or labels out of range, mismatched lengths.
    """
    X, y, V, N = _prepare_ids(X, y, vocab_size, num_classes)
    B, K = X.shape
    keys = np.empty(B * K, key_dtype(K * V * N))
    write_keys(X, y, V, N, keys)
    keys.sort()
    uniq, counts = count_sorted(keys)
    return SparseStats(uniq, counts, count_feature_totals(X, V), count_labels(y, N), int(B), V, N,
                       int(K))


def write_keys(X: np.ndarray, y: np.ndarray, V: int, N: int, out: np.ndarray) -> None:
    """Writes the flat keys ``(k * V + X[t, k]) * N + y_t`` of a batch into ``out`` (``B K``)."""
    B, K = X.shape
    kd = out.dtype
    yk = y.astype(kd)
    for k in range(K):
        part = out[k * B:(k + 1) * B]
        np.add(X[:, k], k * V, out=part, casting="unsafe")
        part *= kd.type(N)
        part += yk


def count_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique keys (int64) and how often each occurs (int64) in a sorted array."""
    starts = _runs(keys)
    counts = np.empty(len(starts), np.int64)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    if len(starts):
        counts[-1] = len(keys) - starts[-1]
    return keys[starts].astype(np.int64), counts


def count_feature_totals(X: np.ndarray, V: int) -> np.ndarray:
    return np.concatenate([np.bincount(X[:, k], minlength=V) for k in range(X.shape[1])]) \
        .astype(np.int64)


def count_labels(y: np.ndarray, N: int) -> np.ndarray:
    return np.bincount(y, minlength=N).astype(np.int64)


#: Keys gathered before they are sorted and counted (the bytes are this times
#: 4 or 8): a few large sorts, which NumPy vectorizes, rather than many small
#: ones and many merges.
SORT_BUFFER_KEYS = 1 << 27


def sparse_accumulate(batches: Iterable[tuple[Any, Any]], vocab_size: int,
                      num_classes: int | None = None, *,
                      buffer_keys: int = SORT_BUFFER_KEYS) -> SparseStats:
    """Exact sparse co-occurrence counts of a stream of ``(X, y)`` batches.

    The flat keys of consecutive batches are written into one buffer of
    ``buffer_keys`` keys; a full buffer is sorted and its runs counted into
    partial statistics, which are merged like a binary counter (a new one is
    merged into the last while that one is no larger), so memory holds the
    buffer plus ``O(nnz)`` and the merging work is ``O(nnz log p)`` for ``p``
    partials. The result equals :func:`sparse_cooccurrence` of all the
    batches at once.

    Args:
      batches: ``(X, y)`` token-id windows and next tokens (as for
        :func:`sparse_cooccurrence`); every batch must have the same window ``K``.
      vocab_size: ``V``.
      num_classes: ``N`` (default ``V``).
      buffer_keys: keys sorted at once.

    Raises:
      ValueError: no batches, or a batch is invalid (the message names it).
    """
    stack: list[SparseStats] = []
    buf = totals = labels = None
    fill = 0
    n_examples = 0
    V = N = K = 0

    def flush():
        nonlocal fill
        if fill == 0:
            return
        part = buf[:fill]
        part.sort()
        keys, counts = count_sorted(part)
        fill = 0
        s = SparseStats(keys, counts, np.zeros(0, np.int64), np.zeros(0, np.int64), 0, V, N, K)
        while stack and stack[-1].nnz <= s.nnz:
            s = stack.pop().merge_pairs(s)
        stack.append(s)

    for i, (X, y) in enumerate(batches):
        try:
            X, y, V_i, N_i = _prepare_ids(X, y, vocab_size, num_classes)
            if buf is None:
                V, N, K = V_i, N_i, X.shape[1]
                kd = key_dtype(K * V * N)
                # A fixed buffer of about 512 MiB: 2**27 uint32 keys, or half as many uint64.
                keys = int(buffer_keys) if kd.itemsize == 4 else max(1, int(buffer_keys) // 2)
                buf = np.empty(max(keys, X.size), kd)
                totals = np.zeros(K * V, np.int64)
                labels = np.zeros(N, np.int64)
            elif X.shape[1] != K:
                raise ValueError(f"token ids have a window of {X.shape[1]} positions, expected "
                                 f"{K} (the window of the first batch)")
        except (ValueError, TypeError) as e:
            raise type(e)(f"batch {i}: {e}") from e
        for lo in range(0, X.shape[0], max(1, len(buf) // K)):
            Xc, yc = X[lo:lo + len(buf) // K], y[lo:lo + len(buf) // K]
            if fill + Xc.size > len(buf):
                flush()
            write_keys(Xc, yc, V, N, buf[fill:fill + Xc.size])
            fill += Xc.size
        totals += count_feature_totals(X, V)
        labels += count_labels(y, N)
        n_examples += X.shape[0]
    if buf is None:
        raise ValueError("no batches: the data is empty; expected at least one (X, y) batch")
    flush()
    del buf
    out = stack.pop()
    while stack:
        out = stack.pop().merge_pairs(out)
    return SparseStats(out.keys, out.counts, totals, labels, n_examples, V, N, K)


#: The arrays a saved :class:`SparseStats` stores (its sizes are JSON fields).
SPARSE_ARRAYS = ("keys", "counts", "feature_totals", "label_counts")


def sparse_stats_record(s: SparseStats) -> tuple[dict, dict]:
    """``(arrays, fields)`` of sparse statistics, as :mod:`xsol.io` stores them."""
    fields = dict(kind="ids", vocab_size=int(s.vocab_size), num_classes=int(s.num_classes),
                  window=int(s.window), num_examples=int(s.num_examples))
    return {k: getattr(s, k) for k in SPARSE_ARRAYS}, fields


def sparse_stats_from_record(arrays: dict, fields: dict) -> SparseStats:
    """The :class:`SparseStats` back from :func:`sparse_stats_record`'s output."""
    return SparseStats(*(arrays[k] for k in SPARSE_ARRAYS), int(fields["num_examples"]),
                       int(fields["vocab_size"]), int(fields["num_classes"]),
                       int(fields["window"]))


register_saved_type("SparseStats", SparseStats, to_record=sparse_stats_record,
                    from_record=sparse_stats_from_record)
