"""Statistics: one pass over the data gives everything the explicit solution needs.

For a softmax layer ``p = softmax(x~ W + b)`` with non-negative features, the
co-occurrence matrix ``F = X~^T Y`` (features by labels), its row sums
``f_i = sum_j F_ij``, the label counts and the number of examples are all sums
over examples, so they merge associatively: shards on several devices or
processes add with one all-reduce, and a stream can stop and resume.

* :mod:`~xsol.stats.accumulators`: :class:`CoocStats` and the pure
  ``init``/``update``/``merge`` accumulators (:func:`token_cooccurrence`,
  :func:`feature_cooccurrence`), jit- and vmap-friendly.
* :mod:`~xsol.stats.accumulation`: :func:`accumulate`, the validated, sharded
  one-pass driver (float64/int64 running totals on the host).
* :mod:`~xsol.stats.batches`: the checks of one batch of a stream, and
  :class:`BatchError` / :class:`EmptyStreamError`.
* :mod:`~xsol.stats.device_steps`: the compiled steps that add a batch's
  statistics, on one device or split over the local devices.
* :mod:`~xsol.stats.resume`: Orbax checkpoints of a stream's statistics and
  position, behind ``accumulate(..., checkpoint_dir=...)``.
* :mod:`~xsol.stats.sparse`: :class:`SparseStats`, exact sparse counts for large vocabularies.
* :mod:`~xsol.stats.collectives`: JAX's distributed runtime and the all-reduce of statistics.
"""

from xsol.stats.accumulation import accumulate
from xsol.stats.accumulators import (
    Accumulator,
    CoocStats,
    count_dtype,
    feature_cooccurrence,
    merge,
    token_cooccurrence,
)
from xsol.stats.batches import BatchError, EmptyStreamError
from xsol.stats.resume import StreamCheckpointError
from xsol.stats.sparse import SparseStats, sparse_accumulate, sparse_cooccurrence

__all__ = [
    "Accumulator",
    "BatchError",
    "CoocStats",
    "EmptyStreamError",
    "SparseStats",
    "StreamCheckpointError",
    "accumulate",
    "count_dtype",
    "feature_cooccurrence",
    "merge",
    "sparse_accumulate",
    "sparse_cooccurrence",
    "token_cooccurrence",
]
