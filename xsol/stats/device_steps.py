"""The compiled steps that add one batch's statistics, on one device or split over several.

The statistics of a batch are sums over its examples (``F += X~^T Y``, the
feature totals, the label counts), so a batch split over the ``"data"`` axis
of a mesh of local devices (:func:`data_mesh`) is counted shard by shard and
the shards added: one ``psum`` (:func:`sharded_step`), or, for token ids,
one table per device added once at the end (:class:`DeviceCounts`). Integer
counts are exact, so the result is identical for any device count. The
host-side driver is :func:`xsol.stats.accumulation.accumulate`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xsol.core import inputs
from xsol.stats import accumulators as st
from xsol.stats.accumulators import Accumulator, CoocStats


def _batch_stats(kind, X, y, *, vocab_size, num_classes, normalize):
    if kind == "ids":
        b = st.token_batch_stats(X, y, vocab_size, num_classes)
        return b, jnp.zeros((), jnp.float32), jnp.array(True)
    return st.dense_batch_stats(X, y, num_classes, normalize)


@functools.partial(jax.jit, static_argnames=("kind", "vocab_size", "num_classes", "normalize"))
def checked_step(state, X, y, *, kind, vocab_size, num_classes, normalize):
    """``state`` plus the statistics of batch ``(X, y)``; also ``x_min`` and ``finite`` of ``X``."""
    b, x_min, finite = _batch_stats(
        kind, X, y, vocab_size=vocab_size, num_classes=num_classes, normalize=normalize
    )
    return st.merge(state, st.cast_like(b, state)), x_min, finite


def _count_tokens(state, X, y, *, vocab_size, num_classes):
    """Counts a validated batch of ids into ``state``; same outputs as :func:`checked_step`.

    Only for batches that passed :func:`xsol.stats.batches.validate_batch` (ids and labels in
    range, no padding): the scatter is told its keys are in bounds.
    """
    new = st.add_token_counts(state, X, y, vocab_size, num_classes, in_bounds=True)
    return new, jnp.zeros((), jnp.float32), jnp.array(True)


_ID_STATICS = ("vocab_size", "num_classes")
#: :func:`_count_tokens`, compiled.
count_tokens_step = jax.jit(_count_tokens, static_argnames=_ID_STATICS)
#: The same, reusing the state's buffers for the result (counts updated in place).
count_tokens_in_place = jax.jit(_count_tokens, static_argnames=_ID_STATICS, donate_argnums=0)


@functools.lru_cache(maxsize=32)
def sharded_step(mesh: Mesh, kind, vocab_size, num_classes, normalize):
    """:func:`checked_step` with the batch split over ``mesh``'s ``"data"`` axis.

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


@functools.partial(jax.jit, static_argnames=("kind", "vocab_size", "num_classes", "normalize"))
def checked_chunk_step(carry, X, y, *, kind, vocab_size, num_classes, normalize):
    """:func:`checked_step` on a carry ``(state, x_min, finite)``: one more chunk of a batch."""
    state, x_min, finite = carry
    state, m, f = checked_step(state, X, y, kind=kind, vocab_size=vocab_size,
                                num_classes=num_classes, normalize=normalize)
    return state, jnp.minimum(x_min, m.astype(x_min.dtype)), finite & f


@functools.lru_cache(maxsize=32)
def device_count_step(mesh: Mesh, vocab_size: int, num_classes: int):
    """Adds a batch of ids split over ``mesh``'s ``"data"`` axis to per-device tables.

    The state has a leading device axis sharded over the mesh: each device
    scatters its shard of the batch into its own table
    (:func:`xsol.stats.accumulators.add_token_counts`, in place: the state is donated) and
    nothing crosses devices until :meth:`DeviceCounts.total`.
    """

    def local(state, X, y):
        own = jax.tree_util.tree_map(lambda a: a[0], state)
        own = st.add_token_counts(own, X, y, vocab_size, num_classes)
        return jax.tree_util.tree_map(lambda a: a[None], own)

    spec = P("data")
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec, spec, spec), out_specs=spec),
                   donate_argnums=0)


class DeviceCounts:
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
        self.step = device_count_step(mesh, acc.vocab_size, acc.num_classes)

    def add(self, X: np.ndarray, y: np.ndarray) -> None:
        """Counts a validated batch of ids, split over the devices (padded: rows labelled ``N``)."""
        n = self.mesh.devices.size
        pad = (-X.shape[0]) % n  # rows labelled N count nothing
        if pad:
            X = np.concatenate([X, np.zeros((pad,) + X.shape[1:], X.dtype)])
            y = np.concatenate([np.asarray(y), np.full((pad,), self.acc.num_classes, np.int32)])
        self.tables = self.step(self.tables, inputs.aligned(X), inputs.aligned(y, np.int32))

    def total(self) -> CoocStats:
        """``F_start + sum_d F_d``: the statistics counted so far."""
        summed = jax.tree_util.tree_map(lambda a: a.sum(axis=0, dtype=a.dtype), self.tables)
        return st.merge(self.start, st.cast_like(summed, self.start))


@functools.lru_cache(maxsize=32)
def mesh_dense_partials(mesh: Mesh, rows: int, num_classes: int, normalize: str):
    """:func:`xsol.stats.accumulators.dense_chunk_partials` on every device of ``mesh``.

    Each device reduces its contiguous share of the rows in chunks of ``rows``.
    """

    def local(X, y):
        P_, m, f = st.dense_chunk_partials(X, y, rows=rows, num_classes=num_classes,
                                           normalize=normalize)
        return P_, m[None], f[None]

    spec = P("data")
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(spec, spec),
                                 out_specs=(spec, spec, spec)))

