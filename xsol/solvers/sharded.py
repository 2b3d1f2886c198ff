"""The explicit solve with the rows of ``F`` and ``W`` sharded over devices.

Row ``i`` of ``W_ij = log(F_ij + a) - log(f_i + N a)`` needs only row ``i``
of ``F`` and its sum ``f_i``, so the solve splits over devices by rows with no
communication: ``F`` is placed row-sharded (:func:`shard_rows`, each device
receives only its rows, never the whole matrix), every device applies the
formula to its rows (:func:`explicit_weights_sharded`, a ``shard_map``) and
``W`` keeps that sharding, ready to be the ``W`` parameter of a model in
:mod:`xsol.models.linen` or :mod:`xsol.models.nnx`. :func:`xsol.solve` calls
:func:`solve_sharded` when given ``sharding=`` or ``mesh=``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xsol.core import memory
from xsol.core.checks import positive_int
from xsol.solvers.formula import (
    check_smoothing,
    check_totals,
    explicit_weights,
    refuse_zero_cells,
    zero_cells_in_seen_rows,
)
from xsol.stats.accumulators import CoocStats



def row_sharding(mesh: Mesh, axis: str | tuple[str, ...] = "model") -> NamedSharding:
    """``NamedSharding(mesh, P(axis, None))``: rows split along ``axis``, columns whole.

    Args:
      mesh: a ``jax.sharding.Mesh``.
      axis: one of its axis names, or a tuple of them (rows split over their product).

    Raises:
      TypeError: ``mesh`` is not a Mesh.
      ValueError: ``axis`` is not an axis of ``mesh``.
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    axes = (axis,) if isinstance(axis, str) else tuple(axis) if isinstance(axis, (tuple, list)) \
        else None
    if not axes or not all(isinstance(a, str) for a in axes):
        raise TypeError(f"axis must be a mesh axis name or a tuple of names, got {axis!r}")
    missing = [a for a in axes if a not in mesh.axis_names]
    if missing:
        raise ValueError(
            f"the mesh has no axis {missing[0]!r} to split the rows along; its axes are "
            f"{tuple(mesh.axis_names)} (pass axis= one of them)")
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis names the same mesh axis twice: {axes}")
    return NamedSharding(mesh, P(axes[0] if len(axes) == 1 else axes, None))


def resolve_row_sharding(sharding=None, mesh: Mesh | None = None,
                         axis: str | tuple[str, ...] = "model") -> NamedSharding | None:
    """The row sharding that ``sharding`` or ``mesh``/``axis`` ask for (``None``: neither).

    ``sharding`` is validated by :func:`row_axes`; ``mesh`` becomes
    :func:`row_sharding` ``(mesh, axis)``. Giving both is refused.
    """
    if sharding is not None and mesh is not None:
        raise ValueError("pass either sharding= or mesh= (with axis=), not both")
    if mesh is not None:
        return row_sharding(mesh, axis)
    if sharding is not None:
        row_axes(sharding)
    return sharding


def row_axes(sharding) -> tuple[str, ...]:
    """The mesh axes a row-wise sharding splits the rows along (validated).

    A row-wise sharding is a ``NamedSharding`` whose spec splits dimension 0
    along one or more mesh axes and leaves dimension 1 whole: ``P("model", None)``
    or ``P(("data", "model"), None)``.

    Raises:
      TypeError: not a ``NamedSharding``.
      ValueError: the rows are not split, the columns are, or the spec has
        more than two entries.
    """
    if not isinstance(sharding, NamedSharding):
        raise TypeError(
            "sharding must be a jax.sharding.NamedSharding that splits the rows, e.g. "
            f"NamedSharding(mesh, P('model', None)); got {type(sharding).__name__}")
    spec = tuple(sharding.spec)
    example = "NamedSharding(mesh, P('model', None))"
    if len(spec) > 2:
        raise ValueError(f"sharding spec {sharding.spec} has {len(spec)} entries; a matrix "
                         f"(M, N) takes two, e.g. {example}")
    rows = spec[0] if spec else None
    cols = spec[1] if len(spec) > 1 else None
    if cols is not None:
        raise ValueError(
            f"sharding spec {sharding.spec} splits the columns; the explicit solve is "
            "row-wise (row i needs all of F_i for its total f_i): leave the columns whole, "
            f"e.g. {example}")
    if rows is None or rows == () or rows is P.UNCONSTRAINED:
        raise ValueError(
            f"sharding spec {sharding.spec} does not split the rows (every device would hold "
            f"the whole matrix); split them along a mesh axis, e.g. {example}")
    axes = (rows,) if isinstance(rows, str) else tuple(rows)
    missing = [a for a in axes if a not in sharding.mesh.axis_names]
    if missing:
        raise ValueError(f"the mesh has no axis {missing[0]!r}; its axes are "
                         f"{tuple(sharding.mesh.axis_names)}")
    return axes


def num_row_shards(sharding: NamedSharding) -> int:
    """How many pieces a row-wise ``sharding`` splits the rows into."""
    shape = dict(sharding.mesh.shape)
    return math.prod(shape[a] for a in row_axes(sharding))


def padded_rows(num_rows: int, num_shards: int, window: int = 1) -> int:
    """Rows after padding ``num_rows`` so that ``num_shards`` devices get equal parts.

    The rows are ``window`` equal blocks (token ids at ``K = window``
    positions: row ``k * V + id``); each block is padded at its end to the
    same length ``V'``, the smallest ``V' >= V`` with ``K V'`` a multiple of
    ``num_shards``, and the result is ``K V'``. That is ``num_rows`` itself
    when it already divides. The padding rows are features never seen (zero
    rows of ``F``), whose weights are those of any unseen feature,
    ``log a - log(N a) = -log N`` (to float32 rounding); no input reaches them:

    * token ids: the padded matrix is the ``W`` of a vocabulary of ``V'`` ids
      (``TokenLM(vocab_size=V', window=K, num_classes=N)``) whose ids ``>= V``
      never occur, so every id ``< V`` looks up the same rows as before;
    * dense features (``window=1``): padding appends ``V' - V`` features, which
      inputs fill with zeros (``np.pad(X, ((0, 0), (0, V' - V)))``); zeros
      change neither ``x~`` nor the logits.
    """
    num_rows = positive_int(num_rows, "num_rows")
    num_shards = positive_int(num_shards, "num_shards")
    window = positive_int(window, "window")
    if num_rows % window:
        raise ValueError(f"{num_rows} rows do not split into window={window} equal blocks")
    block = num_rows // window
    unit = num_shards // math.gcd(window, num_shards)
    return window * (-(-block // unit) * unit)


def _padded_rows_or_refuse(M: int, sharding: NamedSharding, pad: bool, window: int) -> int:
    n = num_row_shards(sharding)
    Mp = padded_rows(M, n, window)
    if Mp != M and not pad:
        raise ValueError(
            f"the {M} rows do not split evenly over the {n} devices of mesh axis "
            f"{'/'.join(row_axes(sharding))}; pass pad=True to pad them to {Mp} rows "
            f"(never-seen features, weights -log N; window={window} block(s) of "
            f"{Mp // window}, see xsol.solvers.sharded.padded_rows), or use a device count that "
            f"divides {M}")
    return Mp


def shard_rows(cooc, sharding: NamedSharding, *, pad: bool = False, window: int = 1) -> jax.Array:
    """``F`` as a ``jax.Array`` split by rows with ``sharding``; no device gets more than its rows.

    A host (NumPy) matrix is placed with ``jax.make_array_from_callback``: each
    device receives a copy of its own row block only. A ``jax.Array`` already
    sharded that way is returned as is; any other ``jax.Array`` is resharded
    (``jax.device_put``, or slice by slice when padding). Values keep their
    dtype (canonicalized as ``jnp.asarray`` would, e.g. float64 -> float32
    without ``jax_enable_x64``).

    Args:
      cooc: ``F``, ``(M, N)``.
      sharding: a row-wise ``NamedSharding`` (see :func:`row_axes`).
      pad: pad the rows (zero rows) to :func:`padded_rows` when ``M`` does not
        split evenly; without it an uneven ``M`` is refused.
      window: the number of row blocks the padding respects (see :func:`padded_rows`).

    Returns:
      The row-sharded ``(padded_rows(M, n, window), N)`` array.
    """
    shape = tuple(np.shape(cooc))
    if len(shape) != 2:
        raise ValueError(f"stats.cooc must be a matrix (M, N), got shape {shape}")
    M, N = shape
    Mp = _padded_rows_or_refuse(M, sharding, pad, window)
    is_jax = isinstance(cooc, jax.Array)
    if is_jax and Mp == M:
        if cooc.sharding.is_equivalent_to(sharding, 2):
            return cooc
        return jax.device_put(cooc, sharding)
    if not is_jax:
        cooc = np.asarray(cooc)
    dtype = jax.dtypes.canonicalize_dtype(cooc.dtype)
    xp = jnp if is_jax else np
    block, block_pad = M // window, Mp // window

    def rows(lo, hi):
        """Rows ``[lo, hi)`` of the padded matrix, from ``cooc`` and zeros."""
        parts, r = [], lo
        while r < hi:
            k, i = divmod(r, block_pad)
            end = min(hi, (k + 1) * block_pad)
            if i < block:
                take = min(end - r, block - i)
                parts.append(cooc[k * block + i: k * block + i + take])
                r += take
            else:
                parts.append(xp.zeros((end - r, N), dtype))
                r = end
        out = parts[0] if len(parts) == 1 else xp.concatenate(parts)
        return out.astype(dtype, copy=False) if not is_jax else out.astype(dtype)

    def piece(index):
        lo, hi, _ = index[0].indices(Mp)
        return rows(lo, hi)[:, index[1]]

    return jax.make_array_from_callback((Mp, N), sharding, piece)


@functools.lru_cache(maxsize=32)
def _sharded_kernel(mesh: Mesh, rows, count_zeros: bool):
    spec = P(rows, None)
    axes = (rows,) if isinstance(rows, str) else tuple(rows)

    def local(F, a):
        W = explicit_weights(F, a)
        if not count_zeros:
            return W, jnp.zeros((), jnp.int32)
        return W, jax.lax.psum(zero_cells_in_seen_rows(F).astype(jnp.int32), axes)

    kernel = jax.shard_map(local, mesh=mesh, in_specs=(spec, P()), out_specs=(spec, P()))
    return jax.jit(kernel)


def explicit_weights_sharded(cooc: jax.Array, smoothing: float) -> jax.Array:
    """:func:`explicit_weights` of a row-sharded ``F``, computed where each row lives.

    ``W_ij = log(F_ij + a) - log(f_i + N a)`` (``-log N`` for rows with
    ``f_i + N a = 0``), in a ``shard_map`` over the mesh axes that split the
    rows: each device reads only its rows of ``F`` and writes the same rows of
    ``W``, with no communication. The result has ``cooc``'s sharding and equals
    ``explicit_weights(cooc, smoothing)`` on one device bit for bit.

    Args:
      cooc: ``F``, ``(M, N)``, a ``jax.Array`` with a row-wise ``NamedSharding``
        (e.g. from :func:`shard_rows`).
      smoothing: ``a >= 0``.
    """
    if not isinstance(cooc, jax.Array):
        raise TypeError("cooc must be a row-sharded jax.Array; place a host matrix with "
                        "xsol.solvers.sharded.shard_rows(F, sharding) first")
    if cooc.ndim != 2:
        raise ValueError(f"cooc must be a matrix (M, N), got shape {cooc.shape}")
    if not isinstance(cooc.sharding, NamedSharding):
        raise TypeError(f"cooc must be split by rows with a NamedSharding, it has "
                        f"{type(cooc.sharding).__name__}; place it with "
                        "xsol.solvers.sharded.shard_rows(F, sharding) first")
    axes = row_axes(cooc.sharding)
    rows = axes[0] if len(axes) == 1 else axes
    return _sharded_kernel(cooc.sharding.mesh, rows, False)(
        cooc, _smoothing_array(check_smoothing(smoothing), cooc.dtype))[0]


def _smoothing_array(smoothing: float, dtype) -> jax.Array:
    """``a`` in the precision :func:`explicit_weights` computes in for ``F`` of ``dtype``."""
    return jnp.asarray(smoothing, jnp.float64 if dtype == jnp.float64 else jnp.float32)


def solve_sharded(stats: CoocStats, smoothing: float, sharding: NamedSharding, *,
                   check_memory: bool, pad: bool, window: int):
    shape = tuple(np.shape(stats.cooc))
    if len(shape) != 2:
        raise ValueError(f"stats.cooc must be a matrix (M, N), got shape {shape}")
    M, N = shape
    if int(stats.num_examples) == 0:
        raise ValueError("the statistics hold no examples; accumulate some data first")
    Mp = _padded_rows_or_refuse(M, sharding, pad, window)
    totals = stats.feature_totals
    largest = (float(jnp.max(totals)) if isinstance(totals, jax.Array)
               else float(np.max(np.asarray(totals)))) if M * N else 0.0
    check_totals(largest, N, smoothing)
    if check_memory:
        devices = list(sharding.addressable_devices)
        if all(d.platform == "cpu" for d in devices):  # host memory, shared by all of them
            memory.check_fits("explicit weight matrix", (Mp, N), 4, copies=2,
                              hint="use fewer features/classes or a smaller vocabulary")
        else:
            n = num_row_shards(sharding)
            budget = min(memory.available_bytes(d) for d in devices)
            memory.check_fits(f"explicit weight matrix's rows on one device (1/{n})",
                              (Mp // n, N), 4, copies=2, budget=budget,
                              hint="use more devices, fewer features/classes or a smaller "
                                   "vocabulary")
    placed = shard_rows(stats.cooc, sharding, pad=pad, window=window)
    axes = row_axes(sharding)
    kernel = _sharded_kernel(sharding.mesh, axes[0] if len(axes) == 1 else axes, smoothing == 0)
    W, zeros = kernel(placed, _smoothing_array(smoothing, placed.dtype))
    del placed
    if smoothing == 0:
        refuse_zero_cells(int(zeros))
    b = jax.device_put(np.zeros((N,), np.float32), NamedSharding(sharding.mesh, P()))
    return W, b
