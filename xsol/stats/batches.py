"""One batch of a stream: the accumulator that fits it, its checks, and the errors.

:func:`make_accumulator` builds the accumulator of :mod:`xsol.stats.accumulators`
that fits a stream's first batch (``K V x N`` token counts or ``M x N`` dense
co-occurrences ``F = X~^T Y``); :func:`validate_batch` checks every batch
against it on the host; :func:`check_state` checks (and copies) the
statistics a stream resumes from. A refused batch raises :class:`BatchError`,
which keeps the statistics of every batch before it.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from xsol.core import inputs
from xsol.stats import accumulators as st
from xsol.stats.accumulators import Accumulator, CoocStats


class BatchError(ValueError):
    """A batch was refused; the statistics gathered before it are kept.

    Attributes:
      batch_index: index of the refused batch in the stream.
      stats: :class:`CoocStats` of all earlier batches (resume from it with
        ``xsol.accumulate(rest, ..., state=e.stats)``).
    """

    def __init__(self, message: str, batch_index: int, stats: CoocStats):
        super().__init__(message)
        self.batch_index = batch_index
        self.stats = stats


class EmptyStreamError(ValueError):
    """The stream yielded no batch at all."""


def make_accumulator(
    X, num_classes: int, *, vocab_size: int | None = None, kind: str = "auto",
    normalize: str = "l1",
) -> Accumulator:
    """Builds the accumulator that fits a first batch ``X``.

    Token ids need ``vocab_size``; the window ``K`` is read from ``X``'s shape.
    Dense features take ``M`` from ``X.shape[1]``.
    """
    kind = inputs.infer_kind(X, kind)
    if num_classes is None:
        raise ValueError("num_classes must be a positive integer, got None")
    num_classes = inputs.check_num_classes(num_classes)
    shape = np.shape(X)
    if kind == "ids":
        if vocab_size is None:
            raise ValueError("token-id inputs need vocab_size (the number of distinct ids V)")
        window = 1 if len(shape) == 1 else shape[1]
        if len(shape) not in (1, 2):
            raise ValueError(f"token ids must have shape (B,) or (B, K), got shape {shape}")
        return st.token_cooccurrence(vocab_size, num_classes, window)
    if len(shape) != 2 or shape[1] < 1:
        raise ValueError(
            f"dense features must have shape (B, M) with M >= 1, got shape {shape}; "
            "flatten images first, e.g. X.reshape(len(X), -1)"
        )
    return st.feature_cooccurrence(shape[1], num_classes, inputs.check_normalize(normalize))


def validate_batch(acc: Accumulator, X, y) -> tuple[Any, np.ndarray]:
    """Host-side checks of one batch against ``acc``; returns ``(X, y)`` ready to step.

    Checks shapes, label range and (for ids) id range. Dense values (negative,
    NaN, infinity) are checked inside the compiled step, fused with its read of
    ``X``, and reported by :func:`accumulate`.
    """
    X = inputs.as_host_array(X)
    if X.shape[0] == 0:
        raise ValueError("the batch is empty (0 examples); expected at least one example")
    if acc.kind == "ids":
        X = inputs.check_ids(X, acc.vocab_size)
        if X.shape[1] != acc.window:
            raise ValueError(
                f"token ids have a window of {X.shape[1]} positions, expected {acc.window} "
                "(the window of the first batch)"
            )
    else:
        inputs.check_dense_shape(X)
        if X.shape[1] != acc.num_features:
            raise ValueError(
                f"features have {X.shape[1]} columns, expected {acc.num_features} "
                "(the width of the first batch)"
            )
        if X.dtype == np.float16 or (not np.issubdtype(X.dtype, np.floating)
                                     and X.dtype not in (np.uint8, np.bool_)):
            X = X.astype(np.float32)
    y = inputs.check_labels(y, X.shape[0], acc.num_classes)
    return X, y


def dense_value_error(X) -> ValueError:
    """The error for a dense batch whose compiled checks failed (locates the entry)."""
    try:
        inputs.check_dense_values(np.asarray(X))
    except ValueError as e:
        return e
    sums = np.asarray(X, np.float64).sum(axis=1)
    big = np.flatnonzero(sums > np.finfo(np.float32).max)
    if len(big):
        return ValueError(
            f"row {big[0]} of the features sums to {sums[big[0]]:g}, more than the largest "
            f"float32 ({np.finfo(np.float32).max:g}), so its statistics would be inf; the sums "
            "exceed the largest float32: scale the features down")
    return ValueError("features contain negative or non-finite values")

def check_state(acc: Accumulator, state: CoocStats | None) -> CoocStats:
    """The state a pass over ``acc``'s batches starts from: ``state`` checked, or zeros.

    Dense statistics start as host totals (float64 sums, int64 counters);
    token counts as a device copy of ``state`` (the pass updates it in place).

    Raises:
      ValueError: ``state``'s co-occurrence matrix is not ``(M, N)`` for ``acc``.
    """
    if state is None and acc.kind == "dense":  # host totals: no device zeros needed
        M, N = acc.num_features, acc.num_classes
        return CoocStats(np.zeros((M, N)), np.zeros(M), np.zeros(N, np.int64), np.int64(0))
    if state is None:
        state = acc.init()
    expected = (acc.num_features, acc.num_classes)
    if tuple(state.cooc.shape) != expected:
        raise ValueError(
            f"the starting state has a {tuple(state.cooc.shape)} co-occurrence matrix, "
            f"expected {expected} for these batches"
        )
    if acc.kind == "dense":  # running totals on the host: float64 sums, int64 counters
        return CoocStats(np.array(state.cooc, np.float64), np.array(state.feature_totals,
                                                                     np.float64),
                         np.array(state.label_counts, np.int64),
                         np.int64(int(state.num_examples)))
    # A copy: the driver updates its state in place (donation), the caller's stays intact.
    return CoocStats(*(jnp.array(s, copy=True) for s in state))
