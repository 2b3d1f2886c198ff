"""Scale-out of the accumulation: several JAX processes, and streams that resume.

* :mod:`~xsol.stats.collectives`: :func:`initialize` (JAX's distributed
  runtime), :func:`allreduce_stats` (the sum of every process's
  :class:`xsol.stats.CoocStats`, one ``psum`` over a global mesh) and
  :func:`accumulate_distributed` (``accumulate`` over this process's share,
  then the all-reduce).
* :mod:`~xsol.data.shards`: each process's share of token files (a
  range of windows), IDX files (a range of rows) and text (a range of bytes).
* :mod:`~xsol.stats.resume`: Orbax checkpoints of a stream's
  statistics and position, behind ``xsol.accumulate(..., checkpoint_dir=...,
  every=...)``.
* :mod:`~xsol.solvers.sharded`: the explicit weights with their
  rows sharded over devices, behind ``xsol.solve(stats, sharding=...)``.

A run over several processes (``scripts/accumulate_distributed.py`` is the
same as a command)::

    xsol.distributed.initialize("10.0.0.1:8476", num_processes=4, process_id=i)
    share = xsol.distributed.shard_token_file_windows("train.bin", window=1, vocab_size=V)
    stats = xsol.distributed.accumulate_distributed(share, V, vocab_size=V)
    # every process now holds the statistics of the whole file
"""

from xsol.stats.resume import StreamCheckpointError
from xsol.stats.collectives import (
    Process,
    allreduce_stats,
    gather_ints,
    global_mesh,
    initialize,
    process_mesh,
)
from xsol.distributed.runtime import accumulate_distributed
from xsol.data.shards import (
    check_process,
    shard_bounds,
    shard_idx_batches,
    shard_text_windows,
    shard_token_file_windows,
)

__all__ = [
    "Process",
    "StreamCheckpointError",
    "accumulate_distributed",
    "allreduce_stats",
    "check_process",
    "gather_ints",
    "global_mesh",
    "initialize",
    "process_mesh",
    "shard_bounds",
    "shard_idx_batches",
    "shard_text_windows",
    "shard_token_file_windows",
]
