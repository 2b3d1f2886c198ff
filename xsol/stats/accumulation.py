"""One validated pass over a stream of batches: ``xsol.accumulate``.

The host-side driver around the pure accumulators of :mod:`xsol.stats.accumulators`: it
validates every batch (clear errors for bad input), runs a jit-compiled step,
splits each batch across local devices when there are several (``shard_map``;
token ids are counted into one table per device, added once at the end; each
device reduces its share of dense rows in chunks whose sums the host adds),
shows a progress bar, and never loses what it has already
counted: on a bad batch it raises :class:`BatchError` carrying the statistics
of every batch before it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from xsol.core import inputs

from xsol.stats import accumulators as st
from xsol.core.memory import MemoryBudgetError
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


def _batch_stats(kind, X, y, *, vocab_size, num_classes, normalize):
    if kind == "ids":
        b = st.token_batch_stats(X, y, vocab_size, num_classes)
        return b, jnp.zeros((), jnp.float32), jnp.array(True)
    return st.dense_batch_stats(X, y, num_classes, normalize)


@functools.partial(jax.jit, static_argnames=("kind", "vocab_size", "num_classes", "normalize"))
def _checked_step(state, X, y, *, kind, vocab_size, num_classes, normalize):
    b, x_min, finite = _batch_stats(
        kind, X, y, vocab_size=vocab_size, num_classes=num_classes, normalize=normalize
    )
    return st.merge(state, st.cast_like(b, state)), x_min, finite


def _count_tokens(state, X, y, *, vocab_size, num_classes):
    """Counts a validated batch of ids into ``state``; same outputs as ``_checked_step``.

    Only for batches that passed :func:`validate_batch` (ids and labels in
    range, no padding): the scatter is told its keys are in bounds.
    """
    new = st.add_token_counts(state, X, y, vocab_size, num_classes, in_bounds=True)
    return new, jnp.zeros((), jnp.float32), jnp.array(True)


_ID_STATICS = ("vocab_size", "num_classes")
_token_step_keep = jax.jit(_count_tokens, static_argnames=_ID_STATICS)
#: The same, reusing the state's buffers for the result (counts updated in place).
_token_step = jax.jit(_count_tokens, static_argnames=_ID_STATICS, donate_argnums=0)


@functools.lru_cache(maxsize=32)
def _sharded_step(mesh: Mesh, kind, vocab_size, num_classes, normalize):
    """``_checked_step`` with the batch split over ``mesh``'s ``"data"`` axis.

    Each device computes its shard's statistics; one ``psum`` adds them. Integer
    counts are exact, so the result is identical for any device count.
    """

    def local(X, y):
        b, x_min, finite = _batch_stats(
            kind, X, y, vocab_size=vocab_size, num_classes=num_classes, normalize=normalize
        )
        b = jax.lax.psum(b, "data")
        x_min = jax.lax.pmin(x_min, "data")
        finite = jax.lax.pmin(finite.astype(jnp.int32), "data") > 0
        return b, x_min, finite

    sharded = jax.shard_map(
        local, mesh=mesh, in_specs=(P("data"), P("data")), out_specs=(P(), P(), P())
    )

    @jax.jit
    def step(state, X, y):
        b, x_min, finite = sharded(X, y)
        return st.merge(state, st.cast_like(b, state)), x_min, finite

    return step


def data_mesh(devices=None) -> Mesh | None:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: all local devices).

    Returns ``None`` for a single device (no sharding needed).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if len(devices) <= 1:
        return None
    return Mesh(np.array(devices), ("data",))


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


@functools.partial(jax.jit, static_argnames=("kind", "vocab_size", "num_classes", "normalize"))
def _checked_chunk_step(carry, X, y, *, kind, vocab_size, num_classes, normalize):
    state, x_min, finite = carry
    state, m, f = _checked_step(state, X, y, kind=kind, vocab_size=vocab_size,
                                num_classes=num_classes, normalize=normalize)
    return state, jnp.minimum(x_min, m.astype(x_min.dtype)), finite & f


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
            run = functools.partial(_checked_step, **kw) if mesh is None else _sharded_step(mesh, **kw)
            chunks = _host_chunks(X, np.asarray(y), rows, acc.num_classes)
            Xc, yc = next(chunks)
            carry = run(state, Xc, yc)
            for Xc, yc in chunks:
                if mesh is None:
                    carry = _checked_chunk_step(carry, Xc, yc, **kw)
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
            update = _token_step if donate else _token_step_keep
            return update(state, X, y, vocab_size=acc.vocab_size, num_classes=acc.num_classes)
        return _checked_step(state, X, y, **kw)
    pad = (-X.shape[0]) % n
    if pad:
        X = np.concatenate([np.asarray(X), np.zeros((pad,) + X.shape[1:], X.dtype)])
        y = np.concatenate([np.asarray(y), np.full((pad,), acc.num_classes, np.int32)])
    return _sharded_step(mesh, **kw)(state, X, y)


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
    from xsol.stats.resume import StreamCheckpoint  # noqa: PLC0415 - import cycle

    with StreamCheckpoint(checkpoint_dir, every, fingerprint=fingerprint) as ckpt:
        return _accumulate(*args, ckpt)


@functools.lru_cache(maxsize=32)
def _device_count_step(mesh: Mesh, vocab_size: int, num_classes: int):
    """Adds a batch of ids split over ``mesh``'s ``"data"`` axis to per-device tables.

    The state has a leading device axis sharded over the mesh: each device
    scatters its shard of the batch into its own table
    (:func:`xsol.stats.accumulators.add_token_counts`, in place: the state is donated) and
    nothing crosses devices until :meth:`_DeviceCounts.total`.
    """

    def local(state, X, y):
        own = jax.tree_util.tree_map(lambda a: a[0], state)
        own = st.add_token_counts(own, X, y, vocab_size, num_classes)
        return jax.tree_util.tree_map(lambda a: a[None], own)

    spec = P("data")
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec),
                   donate_argnums=0)


class _DeviceCounts:
    """Exact token counts of a pass over several local devices, one table per device.

    ``F = F_start + sum_d F_d``: device ``d`` counts its shard of every batch
    into its own ``F_d``, and the tables are added once, when the total is
    asked for (a checkpoint, an error, the end of the pass), instead of a
    ``psum`` of the whole ``K V x N`` table after every batch. Integer sums, so
    the result is identical to counting on one device.
    """

    def __init__(self, acc: Accumulator, start: CoocStats, mesh: Mesh):
        self.acc, self.start, self.mesh = acc, start, mesh
        n = mesh.devices.size
        sharding = NamedSharding(mesh, P("data"))
        self.tables = jax.tree_util.tree_map(
            lambda z: jax.device_put(jnp.zeros((n,) + z.shape, z.dtype), sharding), acc.init())
        self.step = _device_count_step(mesh, acc.vocab_size, acc.num_classes)

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        n = self.mesh.devices.size
        pad = (-X.shape[0]) % n  # rows labelled N count nothing
        if pad:
            X = np.concatenate([X, np.zeros((pad,) + X.shape[1:], X.dtype)])
            y = np.concatenate([np.asarray(y), np.full((pad,), self.acc.num_classes, np.int32)])
        self.tables = self.step(self.tables, inputs.aligned(X), inputs.aligned(y, np.int32))

    def total(self) -> CoocStats:
        summed = jax.tree_util.tree_map(lambda a: a.sum(axis=0, dtype=a.dtype), self.tables)
        return st.merge(self.start, st.cast_like(summed, self.start))


def _accumulate(batches, num_classes, vocab_size, kind, normalize, state, progress, total,
                devices, limit, ckpt):
    """The pass of :func:`accumulate`; ``ckpt``: its stream checkpoints, or None."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 1):
        raise ValueError(f"limit must be a positive number of batches or None, got {limit!r}")
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
    devices_counts = None  # token ids over several devices: per-device tables (_DeviceCounts)

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
                state = _check_state(acc, state)
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
                devices_counts = _DeviceCounts(acc, state, mesh)
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


@functools.lru_cache(maxsize=32)
def _mesh_partials(mesh: Mesh, rows: int, num_classes: int, normalize: str):
    """:func:`xsol.stats.accumulators.dense_chunk_partials` on every device of ``mesh`` over its share of rows."""

    def local(X, y):
        P_, m, f = st.dense_chunk_partials(X, y, rows=rows, num_classes=num_classes,
                                           normalize=normalize)
        return P_, m[None], f[None]

    spec = P("data")
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec, spec),
                                 out_specs=(spec, spec, spec)))


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
        P_, m, f = _mesh_partials(mesh, rows, acc.num_classes, acc.normalize)(X[:full], y[:full])
        total = np.asarray(P_, np.float64).sum(axis=0)
        x_min, finite = float(np.min(np.asarray(m))), bool(np.all(np.asarray(f)))
    if full < n_rows:
        t, m, f = _dense_partials_one_device(acc, X[full:], y[full:])
        total, x_min, finite = total + t, min(x_min, m), finite and f
    return total, x_min, finite


def dense_pass_rows(num_rows: int, num_features: int, itemsize: int) -> int:
    """Rows per chunk of the one-device dense pass: cache-sized, aligned, at most ``EXACT_CHUNK_ROWS``.

    :func:`chunk_rows` (about :data:`DENSE_CHUNK_BYTES` of float32 per chunk,
    chunk starts 64-byte aligned) capped at :data:`EXACT_CHUNK_ROWS`, so every
    chunk's float32 sum stays exact for integer-valued features.
    """
    return min(chunk_rows(num_rows, num_features, itemsize), EXACT_CHUNK_ROWS)


def _dense_partials_one_device(acc, X, y):
    """``(sum_c P_c, x_min, finite)`` of a validated dense batch on one device, float64 sum on the host.

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


def _check_state(acc: Accumulator, state: CoocStats | None) -> CoocStats:
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
