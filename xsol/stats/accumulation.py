"""One validated pass over a stream of batches: ``xsol.accumulate``.

The host-side driver around the pure accumulators of
:mod:`xsol.stats.accumulators`: it validates every batch
(:mod:`xsol.stats.batches`: clear errors for bad input), runs a jit-compiled
step (:mod:`xsol.stats.device_steps`), splits each batch across local devices
when there are several (``shard_map``; token ids are counted into one table
per device, added once at the end; each device reduces its share of dense
rows in chunks whose sums the host adds), shows a progress bar, and never
loses what it has already counted: on a bad batch it raises
:class:`xsol.stats.batches.BatchError` carrying the statistics of every batch
before it. Dense totals ``F = sum_c X~_c^T Y_c`` are summed chunk by chunk,
each chunk in float32 on the device (exact for integer-valued features below
``2**24``, :data:`EXACT_CHUNK_ROWS`) and the chunks in float64 on the host.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from xsol.core import inputs
from xsol.core.checks import optional_positive_int
from xsol.core.memory import MemoryBudgetError
from xsol.stats import accumulators as st
from xsol.stats.accumulators import Accumulator, CoocStats
from xsol.stats.batches import (
    BatchError,
    EmptyStreamError,
    check_state,
    dense_value_error,
    make_accumulator,
    validate_batch,
)
from xsol.stats.device_steps import (
    DeviceCounts,
    checked_chunk_step,
    checked_step,
    count_tokens_in_place,
    count_tokens_step,
    data_mesh,
    mesh_dense_partials,
    sharded_step,
)
from xsol.stats.resume import StreamCheckpoint


#: Dense host batches go to the compiled step in chunks of about this many
#: bytes (counted as float32). A chunk stays in the CPU's cache between the
#: row-sum read, which brings it in from memory, and the two reads after it
#: (minimum, product); a whole 188 MB batch would be read from memory three
#: times. Measured on Fashion-MNIST (60k x 784) with 2 cores: about 1.5x faster
#: than one step over the whole array.
DENSE_CHUNK_BYTES = 6 << 20


def chunk_rows(num_rows: int, num_features: int, itemsize: int, multiple: int = 1) -> int:
    """Rows per chunk of a dense host batch (see :data:`DENSE_CHUNK_BYTES`).

    A multiple of ``multiple`` (the device count) and, when possible, of the
    number of rows that keeps every chunk's start 64-byte aligned (so chunks of
    an aligned array reach the device without a copy). At most ``num_rows``
    rounded up to that multiple.
    """
    row_bytes = max(1, num_features * itemsize)
    align = inputs.ALIGNMENT // math.gcd(row_bytes, inputs.ALIGNMENT)
    unit = math.lcm(align, multiple, 16)  # 16 int32 labels are 64 bytes
    rows = max(unit, DENSE_CHUNK_BYTES // (4 * max(1, num_features)) // unit * unit)
    return min(rows, -(-num_rows // unit) * unit)


def _host_chunks(X: np.ndarray, y: np.ndarray, rows: int, num_classes: int):
    """``(X, y)`` in chunks of exactly ``rows`` rows, each aligned for a zero-copy hand-over.

    Aligned slices are views; an unaligned slice is copied once by numpy (far
    cheaper than the copy ``device_put`` makes). The last chunk is padded with
    zero rows labelled ``num_classes``, which count nothing, so every chunk has
    the same shape and the step compiles once.
    """
    n = X.shape[0]
    for i in range(0, n, rows):
        Xc, yc = X[i:i + rows], y[i:i + rows]
        if Xc.shape[0] < rows:
            Xp = inputs.aligned_empty((rows,) + X.shape[1:], X.dtype)
            Xp[: Xc.shape[0]] = Xc
            Xp[Xc.shape[0]:] = 0
            yp = inputs.aligned_empty((rows,), np.int32)
            yp[: yc.shape[0]] = yc
            yp[yc.shape[0]:] = num_classes
            yield Xp, yp
        else:
            yield inputs.aligned(Xc), inputs.aligned(yc)


def step(acc: Accumulator, state: CoocStats, X, y, mesh: Mesh | None = None, *,
         donate: bool = False):
    """Adds one (already validated) batch; returns ``(state, x_min, finite)``.

    With ``donate=True`` (token ids, one device) the state's buffers are
    reused for the result, so the counts are updated in place and ``state``
    must not be used afterwards.

    Host (numpy) arrays are handed over 64-byte aligned (copied once by numpy
    when they are not), which the CPU device shares without a copy. Dense host
    batches larger than :data:`DENSE_CHUNK_BYTES` run as a sequence of
    cache-sized chunks (see :func:`chunk_rows`); the result is the same sum.
    With a multi-device ``mesh`` the batch is padded to a multiple of the device
    count with rows labelled ``N`` (which count nothing) and split across it.
    """
    kw = dict(kind=acc.kind, vocab_size=acc.vocab_size, num_classes=acc.num_classes,
              normalize=acc.normalize)
    n = 1 if mesh is None else mesh.devices.size
    host = isinstance(X, np.ndarray)
    if host and acc.kind == "dense":
        rows = chunk_rows(X.shape[0], X.shape[1], X.dtype.itemsize, n)
        if X.shape[0] > rows:
            run = (functools.partial(checked_step, **kw) if mesh is None
                   else sharded_step(mesh, **kw))
            chunks = _host_chunks(X, np.asarray(y), rows, acc.num_classes)
            Xc, yc = next(chunks)
            carry = run(state, Xc, yc)
            for Xc, yc in chunks:
                if mesh is None:
                    carry = checked_chunk_step(carry, Xc, yc, **kw)
                else:
                    new, m, f = run(carry[0], Xc, yc)
                    carry = (new, jnp.minimum(carry[1], m), carry[2] & f)
            return carry
    if host:
        X = inputs.aligned(X)
    if not isinstance(y, jax.Array):
        y = inputs.aligned(y, np.int32)
    if mesh is None:
        if acc.kind == "ids":
            update = count_tokens_in_place if donate else count_tokens_step
            return update(state, X, y, vocab_size=acc.vocab_size, num_classes=acc.num_classes)
        return checked_step(state, X, y, **kw)
    pad = (-X.shape[0]) % n
    if pad:
        X = np.concatenate([np.asarray(X), np.zeros((pad,) + X.shape[1:], X.dtype)])
        y = np.concatenate([np.asarray(y), np.full((pad,), acc.num_classes, np.int32)])
    return sharded_step(mesh, **kw)(state, X, y)


def accumulate(
    batches: Iterable[tuple[Any, Any]],
    num_classes: int,
    *,
    vocab_size: int | None = None,
    kind: str = "auto",
    normalize: str = "l1",
    state: CoocStats | None = None,
    progress: bool = True,
    total: int | None = None,
    devices=None,
    limit: int | None = None,
    checkpoint_dir=None,
    every: int | None = None,
    fingerprint: str | None = None,
) -> CoocStats:
    """Co-occurrence statistics of a stream of ``(X, y)`` batches, in one pass.

    Batches may have any size. Integer ids (shape ``(B,)`` or ``(B, K)``) are
    counted exactly in integers; dense non-negative features (``(B, M)``) are
    normalized per example (``normalize``) and summed in float32 (see
    :func:`xsol.stats.token_cooccurrence`, :func:`xsol.stats.feature_cooccurrence`). With
    several local devices each batch is split across them: token ids are
    counted into one table per device and the tables are added once (at the
    end, or when a checkpoint or an error needs the total); each device reduces
    its contiguous share of dense rows in chunks whose sums the host adds.

    Args:
      batches: an iterable of ``(X, y)`` pairs (numpy or JAX arrays).
      num_classes: ``N``.
      vocab_size: ``V``, required for token ids.
      kind: ``"auto"``, ``"ids"`` or ``"dense"`` (see :func:`xsol.core.inputs.infer_kind`).
      normalize: ``"l1"`` (``x / sum(x)``) or ``"none"``; dense features only.
      state: statistics to continue from (e.g. a saved earlier pass).
      progress: show a tqdm progress bar.
      total: number of batches, for the bar (read from ``len(batches)`` if defined).
      devices: devices to split batches across (default: all local devices).
      limit: take at most this many batches (an infinite stream then ends).
      checkpoint_dir: a folder for stream checkpoints (Orbax): every
        ``every`` batches and at the end, the statistics and the number of
        batches counted are saved there, and a rerun with the same arguments
        resumes from the latest checkpoint, skipping the batches it holds,
        with the same result as one uninterrupted pass (see
        :mod:`xsol.stats.resume`; under ``jax.distributed`` a folder
        every process sees, where each keeps its own position). A restored
        checkpoint replaces ``state``, which it includes.
      every: batches between two checkpoints (needed with ``checkpoint_dir``).
      fingerprint: a string describing the data (e.g. file names, sizes,
        dates), stored with the checkpoints; a checkpoint written with
        another one is refused.

    Returns:
      The :class:`CoocStats` of everything seen (plus ``state``).

    Raises:
      BatchError: a batch was invalid, or the source itself raised while
        producing it (a generator error, a truncated or undecodable file);
        ``e.stats`` holds the statistics of every batch before it (``state``,
        possibly None, when it was the first) and ``e.batch_index`` its index,
        so ``accumulate(rest, ..., state=e.stats)`` resumes exactly.
      EmptyStreamError: a ``ValueError``, for an empty stream.
      StreamCheckpointError: a ``ValueError``: bad ``checkpoint_dir``,
        ``every`` or ``fingerprint``, or a checkpoint of another run (the
        message names what differs).
    """
    args = (batches, num_classes, vocab_size, kind, normalize, state, progress, total, devices,
            limit)
    if checkpoint_dir is None and every is None and fingerprint is None:
        return _accumulate(*args, None)
    with StreamCheckpoint(checkpoint_dir, every, fingerprint=fingerprint) as ckpt:
        return _accumulate(*args, ckpt)

def _accumulate(batches, num_classes, vocab_size, kind, normalize, state, progress, total,
                devices, limit, ckpt):
    """The pass of :func:`accumulate`; ``ckpt``: its stream checkpoints, or None."""
    limit = optional_positive_int(limit, "limit", "batches")
    if total is None and hasattr(batches, "__len__"):
        total = len(batches)  # type: ignore[arg-type]
    if limit is not None:
        total = limit if total is None else min(total, limit)
    mesh = data_mesh(devices)
    acc: Accumulator | None = None
    max_count = st.max_count()
    bar = tqdm(total=total, disable=not progress, desc="accumulate", unit="batch")
    seen = None  # examples counted so far, tracked on the host (no device sync per batch)
    source = iter(batches)
    i = -1
    consumed = 0  # batches counted, from the start of the stream
    devices_counts = None  # token ids over several devices: per-device tables

    def current() -> CoocStats | None:
        return state if devices_counts is None else devices_counts.total()
    while limit is None or i + 1 < limit:
        i += 1
        try:
            X, y = next(source)
        except StopIteration:
            break
        except Exception as e:  # noqa: BLE001 - any failure of the source keeps the counts
            bar.close()
            raise BatchError(f"batch {i}: the data source failed: {type(e).__name__}: {e}",
                             i, current()) from e
        bar.update(1)
        try:
            if acc is None:
                acc = make_accumulator(X, num_classes, vocab_size=vocab_size, kind=kind,
                                       normalize=normalize)
                state = check_state(acc, state)
                seen = int(state.num_examples)
                base = None  # the dense passes start from zero on their own
            Xv, yv = validate_batch(acc, X, y)
            per_example = acc.window or 1
            if acc.kind == "ids" and (seen + Xv.shape[0]) * per_example > max_count:
                raise ValueError(
                    f"counts would exceed {max_count}, the largest value of "
                    f"{jnp.dtype(st.count_dtype()).name}; enable 64-bit counts with "
                    "jax.config.update('jax_enable_x64', True)"
                )
        except MemoryBudgetError:
            raise
        except ValueError as e:
            raise BatchError(f"batch {i}: {e}", i, current()) from e
        if ckpt is not None and i == 0:
            consumed, state = ckpt.restore(acc, state, Xv, yv, batches)
            if consumed:  # resume: the checkpoint holds batches [0, consumed)
                source = ckpt.skip(batches, source, consumed, limit)
                seen = int(state.num_examples)
                bar.update(consumed - 1)
                i = consumed - 1
                continue
        if acc.kind == "dense":
            state = _add_dense_batch(acc, state, base, Xv, yv, mesh, i)
        elif mesh is not None:
            if devices_counts is None:
                devices_counts = DeviceCounts(acc, state, mesh)
            devices_counts.add(Xv, yv)
        else:
            # Host checks above are final for ids (nothing refuses the batch after
            # the step), so accumulate's own state is donated and counted in place.
            state = step(acc, state, Xv, yv, mesh, donate=True)[0]
        seen += Xv.shape[0]
        consumed = i + 1
        if ckpt is not None and consumed % ckpt.every == 0:
            ckpt.counted(consumed, current())
    bar.close()
    if acc is None:
        raise EmptyStreamError("no batches: the data is empty; expected at least one (X, y) batch")
    state = current()
    if ckpt is not None:
        ckpt.finish(consumed, state)
    return state


#: Rows of dense features summed on the device before the sums join the
#: float64 totals on the host. Chunk sums of integer-valued features stay exact
#: in float32 while they are below ``2**24`` (e.g. 4,096 rows of ``uint8``
#: pixels sum to at most ``4096 * 255 < 2**24`` per cell); the host totals are
#: exact integers up to ``2**53``.
EXACT_CHUNK_ROWS = 4096


def _add_dense_batch(acc, host: CoocStats, base: CoocStats, X, y, mesh, index: int):
    """``host`` plus one validated dense batch, summed chunk by chunk into float64/int64.

    Each chunk of at most :data:`EXACT_CHUNK_ROWS` rows is reduced on the device
    in float32 and added to the host totals in float64 (counts in int64), so
    totals never stop growing at ``2**24`` and counters never wrap at
    ``2**31``. On one device the whole batch is one compiled call
    (:func:`xsol.stats.accumulators.dense_chunk_partials`, plus one for a last partial
    chunk) that reads a host array where it lies; with a mesh every device
    runs the same program on its contiguous share of the rows and returns its
    own chunks' products (no collective; the host adds them). A negative or
    non-finite value (or row sums that overflow float32) refuses the batch;
    the totals of earlier batches are kept in the :class:`BatchError`.
    """
    if mesh is None:
        cooc_t, x_min, finite = _dense_partials_one_device(acc, X, y)
    else:
        cooc_t, x_min, finite = _dense_partials_mesh(acc, X, y, mesh)
    if not finite or x_min < 0:
        raise BatchError(f"batch {index}: {dense_value_error(X)}", index, host)
    cooc_part = cooc_t.T
    totals_part = cooc_part.sum(axis=1)
    labels = np.bincount(np.asarray(y), minlength=acc.num_classes)[:acc.num_classes]
    return CoocStats(host.cooc + cooc_part, host.feature_totals + totals_part,
                     host.label_counts + labels.astype(np.int64),
                     np.int64(int(host.num_examples) + X.shape[0]))


def _dense_partials_mesh(acc, X, y, mesh: Mesh):
    """``(sum_c P_c, x_min, finite)`` of a validated dense batch split over ``mesh``'s devices.

    The first ``n * C * R`` rows are split into ``n`` contiguous shares, one
    per device, each reduced in chunks of ``R`` rows by the one-device program;
    the remaining rows (fewer than ``n * R``) go through the one-device pass.
    """
    if isinstance(X, np.ndarray):
        X = inputs.aligned(X)
    y = inputs.aligned(np.asarray(y), np.int32)
    n_rows, n_dev = X.shape[0], mesh.devices.size
    rows = dense_pass_rows(max(1, n_rows // n_dev), X.shape[1], X.dtype.itemsize)
    full = n_rows // (n_dev * rows) * (n_dev * rows)
    total, x_min, finite = 0.0, np.inf, True
    if full:
        partials = mesh_dense_partials(mesh, rows, acc.num_classes, acc.normalize)
        P_, m, f = partials(X[:full], y[:full])
        total = np.asarray(P_, np.float64).sum(axis=0)
        x_min, finite = float(np.min(np.asarray(m))), bool(np.all(np.asarray(f)))
    if full < n_rows:
        t, m, f = _dense_partials_one_device(acc, X[full:], y[full:])
        total, x_min, finite = total + t, min(x_min, m), finite and f
    return total, x_min, finite


def dense_pass_rows(num_rows: int, num_features: int, itemsize: int) -> int:
    """Rows per chunk of the one-device dense pass: cache-sized, aligned, <= ``EXACT_CHUNK_ROWS``.

    :func:`chunk_rows` (about :data:`DENSE_CHUNK_BYTES` of float32 per chunk,
    chunk starts 64-byte aligned) capped at :data:`EXACT_CHUNK_ROWS`, so every
    chunk's float32 sum stays exact for integer-valued features.
    """
    return min(chunk_rows(num_rows, num_features, itemsize), EXACT_CHUNK_ROWS)


def _dense_partials_one_device(acc, X, y):
    """``(sum_c P_c, x_min, finite)`` of a validated dense batch on one device.

    The chunk sums ``P_c`` are added in float64 on the host.

    A 64-byte aligned host array (or a device array) goes to the device as it
    lies, with no copy: its first ``C * R`` rows in one call, the remaining
    rows (fewer than ``R``) in a second. An unaligned host array is streamed
    instead: each chunk of ``R`` rows is copied once into an aligned buffer
    (cache-sized, see :data:`DENSE_CHUNK_BYTES`) and handed over, and as the
    calls are asynchronous, copying the next chunk overlaps the device's work
    on the previous one. Never more than one copy of a chunk, never a copy of
    the whole array.
    """
    y = inputs.aligned(np.asarray(y), np.int32)
    n = X.shape[0]
    rows = dense_pass_rows(n, X.shape[1], X.dtype.itemsize)
    kw = dict(num_classes=acc.num_classes, normalize=acc.normalize)
    parts = []
    if isinstance(X, np.ndarray) and not inputs.is_aligned(X):
        for lo in range(0, n, rows):
            Xc = inputs.aligned(X[lo:lo + rows])
            parts.append(st.dense_chunk_partials(Xc, y[lo:lo + rows], rows=Xc.shape[0], **kw))
    else:
        full = n // rows * rows
        if full:
            parts.append(st.dense_chunk_partials(X[:full], y[:full], rows=rows, **kw))
        if full < n:
            parts.append(st.dense_chunk_partials(X[full:], y[full:], rows=n - full, **kw))
    total = sum(np.asarray(P, np.float64).sum(axis=0) for P, _, _ in parts)
    x_min = min(float(m) for _, m, _ in parts)
    finite = all(bool(f) for _, _, f in parts)
    return total, x_min, finite

