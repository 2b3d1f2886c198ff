"""The multi-process driver: each process accumulates its share, one all-reduce adds them.

Every process runs the same program: :func:`xsol.distributed.initialize`
starts JAX's distributed runtime, each process reads its own share of the
data (:mod:`xsol.data.shards`), and :func:`accumulate_distributed` counts it
with :func:`xsol.accumulate` and adds every process's statistics with
:func:`xsol.stats.collectives.allreduce_stats` (one ``psum`` over every device
of every process), so that every process ends with the same statistics.
"""

from __future__ import annotations

from xsol.stats.accumulation import EmptyStreamError, accumulate
from xsol.stats.accumulators import CoocStats
from xsol.stats.collectives import allreduce_stats, report_failure

__all__ = ["accumulate_distributed"]


def accumulate_distributed(batches, num_classes: int, *, vocab_size: int | None = None,
                           kind: str = "auto", normalize: str = "l1", progress: bool = False,
                           total: int | None = None, devices=None, limit: int | None = None,
                           checkpoint_dir=None, every: int | None = None,
                           fingerprint: str | None = None, method: str = "auto") -> CoocStats:
    """:func:`xsol.accumulate` over this process's share, then :func:`allreduce_stats`.

    Every process calls it with its own ``batches`` (e.g. from
    :mod:`xsol.data.shards`) and otherwise the same arguments; each
    returns the statistics of every process's batches together. A process
    whose share is empty contributes zeros (without ``checkpoint_dir``). When
    one process raises, the others raise too (a ``RuntimeError`` naming it)
    instead of waiting for it.

    Args:
      batches: this process's ``(X, y)`` batches.
      num_classes, vocab_size, kind, normalize, progress, total, devices, limit: as for
        :func:`xsol.accumulate` (``devices``: this process's devices to split
        each batch across; default all local ones).
      checkpoint_dir, every, fingerprint: stream checkpoints, as for
        :func:`xsol.accumulate`; in a run over several processes the
        directory is shared (a file system or bucket every process sees) and
        each process saves and restores its own position in it.
      method: the all-reduce (see :func:`allreduce_stats`).

    Returns:
      The summed :class:`CoocStats`, the same in every process.
    """
    try:
        local = accumulate(batches, num_classes, vocab_size=vocab_size, kind=kind,
                           normalize=normalize, progress=progress, total=total,
                           devices=devices, limit=limit, checkpoint_dir=checkpoint_dir,
                           every=every, fingerprint=fingerprint)
    except BaseException as e:
        if not (isinstance(e, EmptyStreamError) and checkpoint_dir is None):
            report_failure()  # the others' all-reduce learns of it and stops
            raise
        local = None
    return allreduce_stats(local, method=method)
