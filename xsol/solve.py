"""Explicit weights from co-occurrence statistics (docs/math.md section 1).

For one-hot inputs (a bigram language model, or one block per window position)
the gradient of the cross-entropy vanishes at

    W_ij = log F_ij - log f_i        (f_i = sum_j F_ij)

which is the exact global optimum (maximum likelihood). With additive smoothing
``a > 0``,

    W_ij = log(F_ij + a) - log(f_i + N a)

is the MAP estimate under a symmetric Dirichlet(a + 1) prior and keeps every
weight finite. For positive-valued features normalized per example the same
formula applied to ``F = X~^T Y`` is the paper's generalization (exact when each
example has a single active feature, an approximation otherwise). Each row is
a log conditional distribution ``log P(label | feature i)``; the logits average
them over an example's features. The bias is zero: the label prior is already
inside every row.

Row ``i`` of ``W`` needs only row ``i`` of ``F`` (and its sum ``f_i``), so the
solve is embarrassingly parallel over rows. ``solve(stats, sharding=...)``
(or ``mesh=``) computes it with the rows split over devices: ``F`` is placed
row-sharded (:func:`shard_rows`, each device receives only its rows), every
device applies the formula to its own rows (:func:`explicit_weights_sharded`,
a ``shard_map`` without communication) and ``W`` stays sharded the same way,
ready to be the ``W`` parameter of a model in :mod:`xsol.models` or
:mod:`xsol.nnx_models`.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xsol import defaults, inputs, memory
from xsol.stats import CoocStats


def explicit_weights(cooc: jax.Array, smoothing: float) -> jax.Array:
    """``W_ij = log(F_ij + a) - log(f_i + N a)`` in float32.

    Rows with ``f_i = 0`` (a feature never seen) get the uniform
    ``-log N`` when ``a = 0`` (any constant row gives the same predictions).

    Args:
      cooc: ``F``, shape ``(M, N)``, integer or float.
      smoothing: ``a >= 0``.

    Returns:
      ``W`` of shape ``(M, N)``, float32.
    """
    F = cooc.astype(jnp.float64 if cooc.dtype == jnp.float64 else jnp.float32)
    N = F.shape[1]
    f = F.sum(axis=1, keepdims=True)
    a = jnp.asarray(smoothing, F.dtype)
    denom = f + N * a
    W = jnp.log(F + a) - jnp.log(jnp.where(denom > 0, denom, 1.0))
    return jnp.where(denom > 0, W, -jnp.log(jnp.asarray(N, F.dtype)))


_explicit_weights = jax.jit(explicit_weights)

#: Matrices with at least this many entries are solved on the host when the
#: statistics live on the CPU (see :func:`explicit_weights_host`).
HOST_SOLVE_MIN_ENTRIES = 1 << 24

#: Rows per task of the host solve: about 1 MiB of float32, so the three
#: passes over a block (add, log, subtract) stay in the core's cache.
_HOST_BLOCK_BYTES = 1 << 20


def explicit_weights_host(cooc: np.ndarray, smoothing: float, *,
                          threads: int | None = None) -> np.ndarray:
    """:func:`explicit_weights` computed by NumPy in row blocks on every core.

    The same formula, ``W_ij = log(F_ij + a) - log(f_i + N a)`` in float32
    (``f_i`` summed exactly in float64, its log taken in float64); rows never
    seen get ``-log N`` when ``a = 0``. For a large matrix the solve is bound
    by the logarithm: NumPy's vectorized float32 ``log`` is about 3x faster
    than XLA's on the CPU, and row blocks of about 1 MiB run on a thread pool
    (NumPy releases the GIL), so a 32k x 32k solve takes about one second per
    core instead of ten. The result is 64-byte aligned, so ``jax.device_put``
    on the CPU shares it without a copy.

    Args:
      cooc: ``F``, ``(M, N)`` NumPy array (integer or float).
      smoothing: ``a >= 0``.
      threads: worker threads (default: the CPUs this process may use).

    Returns:
      ``W``, ``(M, N)`` float32 NumPy.
    """
    M, N = cooc.shape
    a = np.float32(smoothing)
    W = inputs.aligned_empty((M, N), np.float32)
    unseen_value = np.float32(-np.log(N))
    rows_per_block = max(1, _HOST_BLOCK_BYTES // (4 * N))

    def block(lo):
        hi = min(M, lo + rows_per_block)
        F, out = cooc[lo:hi], W[lo:hi]
        f = F.sum(axis=1, dtype=np.float64)
        denom = f + N * float(a)
        seen = denom > 0
        row = np.log(np.where(seen, denom, 1.0)).astype(np.float32)
        np.copyto(out, F, casting="unsafe")  # a plain cast, then float32 ufuncs (fast loops)
        out += a
        with np.errstate(divide="ignore"):
            np.log(out, out=out)
        out -= row[:, None]
        if not seen.all():
            out[~seen] = unseen_value

    with ThreadPoolExecutor(max_workers=threads or available_cpus()) as pool:
        list(pool.map(block, range(0, M, rows_per_block)))
    return W


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def check_smoothing(smoothing) -> float:
    """Validates the additive smoothing ``a``: finite, ``>= 0``, and representable in float32.

    A positive ``a`` below float32's smallest normal number (``1.18e-38``) would
    round to (or near) zero in the float32 weights and put ``log 0 = -inf``
    into them, so it is refused with that number.
    """
    try:
        a = float(smoothing)
    except (TypeError, ValueError):
        raise TypeError(f"smoothing must be a number, got {smoothing!r}") from None
    if not a >= 0 or a != a or a == float("inf"):
        raise ValueError(f"smoothing must be a finite number >= 0, got {smoothing}")
    tiny = float(np.finfo(np.float32).tiny)
    if 0 < a < tiny:
        raise ValueError(
            f"smoothing {a:g} is below {tiny:g}, the smallest normal float32: it would round "
            "to 0 in the float32 weights and log(0) = -inf would enter them; use a >= 1e-30 "
            "(or 0 for the maximum-likelihood weights, refused where a count is 0)")
    return a


def _on_cpu(x) -> bool:
    if not isinstance(x, jax.Array):
        return True
    return all(d.platform == "cpu" for d in x.devices())


def _zero_cells_in_seen_rows(cooc: jax.Array) -> jax.Array:
    return jnp.sum((cooc == 0) & (cooc.sum(axis=1, keepdims=True) > 0))


def solve(stats: CoocStats, *, smoothing: float = defaults.SMOOTHING,
          check_memory: bool = True, sharding: NamedSharding | None = None,
          mesh: Mesh | None = None, axis: str | tuple[str, ...] = "model", pad: bool = False,
          window: int = 1):
    """The explicit solution ``(W, b)`` of a softmax layer from its statistics.

    ``W_ij = log(F_ij + a) - log(f_i + N a)`` and ``b = 0`` (see the module
    docstring). With ``a = 0`` every feature seen in the data must have co-occurred
    with every label, otherwise ``log 0 = -inf`` would enter the weights: that
    is refused with a ``ValueError`` that says how many counts are zero.

    With ``sharding`` (or ``mesh``) the rows are split over devices and never
    gathered: ``F`` is placed with each device holding only its rows
    (:func:`shard_rows`), each device solves its rows (:func:`explicit_weights_sharded`)
    and ``W`` comes back with that same sharding, ``b`` replicated over the
    mesh. The result equals the one-device :func:`explicit_weights` bit for bit
    (the same float32 operations on each row; the unsharded solve of a matrix
    of at least :data:`HOST_SOLVE_MIN_ENTRIES` entries on the CPU uses NumPy's
    ``log`` instead, which may differ in the last bit). When the rows do not
    divide over the devices, ``pad=True`` appends never-seen features (zero
    rows of ``F``, weights ``log a - log(N a) = -log N``) as described in
    :func:`padded_rows`; ``W`` then has ``padded_rows(M, n, window)`` rows.

    Args:
      stats: :class:`xsol.CoocStats` from :func:`xsol.accumulate` or an accumulator.
        For a sharded solve ``stats.cooc`` may be a host (NumPy) array, a
        ``jax.Array`` on any devices, or one already sharded by rows.
      smoothing: ``a >= 0``, the pseudo-count added to every cell (default
        :data:`xsol.defaults.SMOOTHING`, as for :func:`xsol.fit_explicit`).
      check_memory: estimate the weight matrix's size first and refuse it with
        :class:`xsol.memory.MemoryBudgetError` when it would not fit (for a
        sharded solve: one device's rows on an accelerator, the whole matrix
        on CPU devices, which share the host's memory).
      sharding: a row-wise ``jax.sharding.NamedSharding``, spec ``P(axis, None)``
        (``axis`` a mesh axis name or a tuple of them; columns not split).
      mesh: instead of ``sharding``: a ``jax.sharding.Mesh``, rows split along
        its axis ``axis``.
      axis: the mesh axis (or axes) the rows are split along, with ``mesh``.
      pad: allow padding the rows to a multiple of the device count (sharded
        solve only; otherwise an indivisible row count is refused).
      window: ``K`` for token-id statistics (rows ``k * V + id``): the padding
        goes at the end of each of the ``K`` blocks, so ``W`` keeps the layout
        of a vocabulary of ``padded_rows(M, n, K) // K`` ids.

    Returns:
      ``(weights, bias)``: float32 arrays of shapes ``(M, N)`` and ``(N,)``
      (sharded: ``W`` split by rows as asked, ``(padded_rows(M, n, window), N)``
      with ``pad=True``; ``b`` replicated on the mesh).
    """
    smoothing = check_smoothing(smoothing)
    sharding = resolve_row_sharding(sharding, mesh, axis)
    if sharding is not None:
        return _solve_sharded(stats, smoothing, sharding, check_memory=check_memory, pad=pad,
                              window=window)
    if pad or window != 1:
        raise ValueError("pad and window apply to a sharded solve only; pass sharding= or mesh=")
    cooc = jnp.asarray(stats.cooc)
    if cooc.ndim != 2:
        raise ValueError(f"stats.cooc must be a matrix (M, N), got shape {cooc.shape}")
    if int(stats.num_examples) == 0:
        raise ValueError("the statistics hold no examples; accumulate some data first")
    largest = float(np.max(np.asarray(stats.feature_totals))) if cooc.size else 0.0
    _check_totals(largest, cooc.shape[1], smoothing)
    host = cooc.size >= HOST_SOLVE_MIN_ENTRIES and _on_cpu(stats.cooc)
    if check_memory:  # the host solve writes W once; the compiled one also casts F first
        memory.check_fits("explicit weight matrix", cooc.shape, 4, copies=1 if host else 2,
                          hint="use fewer features/classes or a smaller vocabulary")
    if smoothing == 0:
        _refuse_zero_cells(int(_zero_cells_in_seen_rows(cooc)))
    if host:
        W = jax.device_put(explicit_weights_host(np.asarray(stats.cooc), smoothing))
    else:
        W = _explicit_weights(cooc, smoothing)
    return W, jnp.zeros((cooc.shape[1],), jnp.float32)


def _check_totals(largest: float, N: int, smoothing: float) -> None:
    if largest + N * smoothing > float(np.finfo(np.float32).max):
        raise ValueError(
            f"a feature's total count f_i = {largest:g} (plus N a) exceeds the largest float32, "
            f"{np.finfo(np.float32).max:g}: log(f_i + N a) would be inf and the weights NaN; "
            "scale the features down (or use normalize='l1')")


def _refuse_zero_cells(zeros: int) -> None:
    if zeros:
        raise ValueError(
            f"smoothing=0 but {zeros} co-occurrence counts of seen features are "
            "zero, which would put log(0) = -inf into the weights; use "
            "smoothing > 0 (e.g. 1e-3 for near-maximum-likelihood weights)"
        )


# ----------------------------------------------------------------------------
# The row-sharded solve
# ----------------------------------------------------------------------------


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
    for name, v in (("num_rows", num_rows), ("num_shards", num_shards), ("window", window)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
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
            f"{Mp // window}, see xsol.solve.padded_rows), or use a device count that "
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
        return W, jax.lax.psum(_zero_cells_in_seen_rows(F).astype(jnp.int32), axes)

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
                        "xsol.solve.shard_rows(F, sharding) first")
    if cooc.ndim != 2:
        raise ValueError(f"cooc must be a matrix (M, N), got shape {cooc.shape}")
    if not isinstance(cooc.sharding, NamedSharding):
        raise TypeError(f"cooc must be split by rows with a NamedSharding, it has "
                        f"{type(cooc.sharding).__name__}; place it with "
                        "xsol.solve.shard_rows(F, sharding) first")
    axes = row_axes(cooc.sharding)
    rows = axes[0] if len(axes) == 1 else axes
    return _sharded_kernel(cooc.sharding.mesh, rows, False)(
        cooc, _smoothing_array(check_smoothing(smoothing), cooc.dtype))[0]


def _smoothing_array(smoothing: float, dtype) -> jax.Array:
    """``a`` in the precision :func:`explicit_weights` computes in for ``F`` of ``dtype``."""
    return jnp.asarray(smoothing, jnp.float64 if dtype == jnp.float64 else jnp.float32)


def _solve_sharded(stats: CoocStats, smoothing: float, sharding: NamedSharding, *,
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
    _check_totals(largest, N, smoothing)
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
        _refuse_zero_cells(int(zeros))
    b = jax.device_put(np.zeros((N,), np.float32), NamedSharding(sharding.mesh, P()))
    return W, b
