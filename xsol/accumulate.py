"""One validated pass over a stream of batches: ``xsol.accumulate``.

The host-side driver around the pure accumulators of :mod:`xsol.stats`: it
validates every batch (clear errors for bad input), runs a jit-compiled step,
splits each batch across local devices when there are several (``shard_map``
with one ``psum``), shows a progress bar, and never loses what it has already
counted: on a bad batch it raises :class:`BatchError` carrying the statistics
of every batch before it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P
from tqdm.auto import tqdm

from xsol import inputs, stats as st
from xsol.memory import MemoryBudgetError
from xsol.stats import Accumulator, CoocStats


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


def make_accumulator(
    X, num_classes: int, *, vocab_size: int | None = None, kind: str = "auto",
    normalize: str = "l1",
) -> Accumulator:
    """Builds the accumulator that fits a first batch ``X``.

    Token ids need ``vocab_size``; the window ``K`` is read from ``X``'s shape.
    Dense features take ``M`` from ``X.shape[1]``.
    """
    kind = inputs.infer_kind(X, kind)
    if num_classes is None or int(num_classes) < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
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


def step(acc: Accumulator, state: CoocStats, X, y, mesh: Mesh | None = None):
    """Adds one (already validated) batch; returns ``(state, x_min, finite)``.

    With a multi-device ``mesh`` the batch is padded to a multiple of the device
    count with rows labelled ``N`` (which count nothing) and split across it.
    """
    kw = dict(kind=acc.kind, vocab_size=acc.vocab_size, num_classes=acc.num_classes,
              normalize=acc.normalize)
    if mesh is None:
        return _checked_step(state, X, y, **kw)
    n = mesh.devices.size
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
) -> CoocStats:
    """Co-occurrence statistics of a stream of ``(X, y)`` batches, in one pass.

    Batches may have any size. Integer ids (shape ``(B,)`` or ``(B, K)``) are
    counted exactly in integers; dense non-negative features (``(B, M)``) are
    normalized per example (``normalize``) and summed in float32 (see
    :func:`xsol.token_cooccurrence`, :func:`xsol.feature_cooccurrence`). With
    several local devices each batch is split across them and the shards'
    statistics are added with one ``psum``.

    Args:
      batches: an iterable of ``(X, y)`` pairs (numpy or JAX arrays).
      num_classes: ``N``.
      vocab_size: ``V``, required for token ids.
      kind: ``"auto"``, ``"ids"`` or ``"dense"`` (see :func:`xsol.inputs.infer_kind`).
      normalize: ``"l1"`` (``x / sum(x)``) or ``"none"``; dense features only.
      state: statistics to continue from (e.g. a saved earlier pass).
      progress: show a tqdm progress bar.
      total: number of batches, for the bar (read from ``len(batches)`` if defined).
      devices: devices to split batches across (default: all local devices).

    Returns:
      The :class:`CoocStats` of everything seen (plus ``state``).

    Raises:
      BatchError: a batch was invalid; ``e.stats`` holds the statistics of the
        batches before it. A ``ValueError`` is also raised for an empty stream.
    """
    if total is None and hasattr(batches, "__len__"):
        total = len(batches)  # type: ignore[arg-type]
    mesh = data_mesh(devices)
    acc: Accumulator | None = None
    limit = st.max_count()
    bar = tqdm(batches, total=total, disable=not progress, desc="accumulate", unit="batch")
    for i, (X, y) in enumerate(bar):
        try:
            if acc is None:
                acc = make_accumulator(X, num_classes, vocab_size=vocab_size, kind=kind,
                                       normalize=normalize)
                state = _check_state(acc, state)
            Xv, yv = validate_batch(acc, X, y)
            per_example = acc.window or 1
            if acc.kind == "ids" and (int(state.num_examples) + Xv.shape[0]) * per_example > limit:
                raise ValueError(
                    f"counts would exceed {limit}, the largest value of "
                    f"{jnp.dtype(st.count_dtype()).name}; enable 64-bit counts with "
                    "jax.config.update('jax_enable_x64', True)"
                )
        except MemoryBudgetError:
            raise
        except ValueError as e:
            raise BatchError(f"batch {i}: {e}", i, state) from e
        new_state, x_min, finite = step(acc, state, Xv, yv, mesh)
        if acc.kind == "dense" and (not bool(finite) or float(x_min) < 0):
            raise BatchError(f"batch {i}: {dense_value_error(Xv)}", i, state)
        state = new_state
    if acc is None:
        raise ValueError("no batches: the data is empty; expected at least one (X, y) batch")
    return state


def _check_state(acc: Accumulator, state: CoocStats | None) -> CoocStats:
    if state is None:
        return acc.init()
    expected = (acc.num_features, acc.num_classes)
    if tuple(state.cooc.shape) != expected:
        raise ValueError(
            f"the starting state has a {tuple(state.cooc.shape)} co-occurrence matrix, "
            f"expected {expected} for these batches"
        )
    return CoocStats(*(jnp.asarray(s) for s in state))
