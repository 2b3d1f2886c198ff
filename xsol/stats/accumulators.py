"""Co-occurrence statistics: pure ``init`` / ``update`` / ``merge`` accumulators.

Everything the explicit solution needs is the feature-by-label co-occurrence
matrix ``F = X~^T Y`` (``M x N``, ``Y`` the one-hot labels) and its sums,
gathered in one pass over the data (docs/math.md section 1). Statistics are sums,
so they merge associatively: shards on several devices combine with one
``psum`` and a stream can stop and resume from a saved state.

Each accumulator is an :class:`Accumulator` of three pure functions, in the
shape of an optax ``GradientTransformation``::

    acc = xsol.stats.token_cooccurrence(vocab_size=V, num_classes=V, window=1)
    state = acc.init()
    for X, y in batches:
        state = acc.update(state, X, y)   # jit-compiled; any batch size

The state is a :class:`CoocStats` pytree. ``update`` trusts its input (it runs
inside ``jit``); :func:`xsol.accumulate` and :func:`xsol.fit_explicit` validate
inputs first and raise clear errors.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from xsol.core import memory
from xsol.core.saved import register_saved_type
from xsol.core.inputs import Normalize, check_normalize


class CoocStats(NamedTuple):
    """Sufficient statistics of a softmax layer over one pass of data.

    Attributes:
      cooc: ``F``, shape ``(M, N)``. For token ids, exact integer counts
        ``F_ij = #{(t, k): k * V + X[t, k] = i, y_t = j}`` (one count per
        position, i.e. before the ``1/K`` normalization, which cancels in the
        explicit solution). For dense features, ``F = X~^T Y`` in float32.
      feature_totals: ``f_i = sum_j F_ij``, shape ``(M,)``, same dtype as ``cooc``.
      label_counts: examples per label, shape ``(N,)``, integer.
      num_examples: number of examples seen, integer scalar.
    """

    cooc: jax.Array
    feature_totals: jax.Array
    label_counts: jax.Array
    num_examples: jax.Array


class Accumulator(NamedTuple):
    """A pair of pure functions (plus ``merge``) over :class:`CoocStats`.

    Attributes:
      init: ``() -> CoocStats``, zero statistics.
      update: ``(state, X, y) -> CoocStats``, adds a batch (jit-compiled).
      merge: ``(a, b) -> CoocStats``, adds two statistics entrywise.
      kind: ``"ids"`` or ``"dense"``.
      num_features: ``M``.
      num_classes: ``N``.
      vocab_size: ``V`` for ids (``None`` for dense).
      window: ``K`` for ids (``None`` for dense).
      normalize: the per-example normalization (``"l1"`` or ``"none"``).
    """

    init: Callable[[], CoocStats]
    update: Callable[[CoocStats, jax.Array, jax.Array], CoocStats]
    merge: Callable[[CoocStats, CoocStats], CoocStats]
    kind: str
    num_features: int
    num_classes: int
    vocab_size: int | None
    window: int | None
    normalize: str


def count_dtype():
    """Integer dtype for exact counts: int64 under ``jax_enable_x64``, else int32."""
    return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32


def max_count() -> int:
    """Largest count the integer dtype holds exactly."""
    return int(jnp.iinfo(count_dtype()).max)


@jax.jit
def merge(a: CoocStats, b: CoocStats) -> CoocStats:
    """``a + b`` entrywise: statistics are sums, so merging is addition."""
    return jax.tree_util.tree_map(jnp.add, a, b)


def zeros(num_features: int, num_classes: int, cooc_dtype) -> CoocStats:
    """Zero statistics for ``M`` features and ``N`` labels."""
    c = count_dtype()
    return CoocStats(
        cooc=jnp.zeros((num_features, num_classes), cooc_dtype),
        feature_totals=jnp.zeros((num_features,), cooc_dtype),
        label_counts=jnp.zeros((num_classes,), c),
        num_examples=jnp.zeros((), c),
    )


def _check_cooc_fits(num_features: int, num_classes: int, itemsize: int, kind: str) -> None:
    hint = (
        "use a smaller vocabulary (a cap with an <unk> token), fewer window "
        "positions, or sparse statistics"
        if kind == "ids"
        else "reduce the number of features or classes"
    )
    # The state and one update's result are alive together.
    memory.check_fits(
        "co-occurrence matrix", (num_features, num_classes), itemsize, copies=2, hint=hint
    )


def _label_counts(y: jax.Array, num_classes: int) -> jax.Array:
    # Labels equal to num_classes are padding (sharded updates) and are dropped.
    return jnp.zeros((num_classes,), count_dtype()).at[y].add(1, mode="drop")


def _flat_index_ok(num_features: int, num_classes: int) -> bool:
    """Whether flat keys ``i * N + j`` (plus one out-of-range key) fit the index dtype."""
    limit = jnp.iinfo(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32).max
    return num_features * num_classes < limit


def add_token_counts(state: CoocStats, X: jax.Array, y: jax.Array, vocab_size: int,
                     num_classes: int, *, in_bounds: bool = False) -> CoocStats:
    """``state`` plus the exact counts of one batch of token ids, scattered in place.

    ``F[k * V + X[t, k], y_t] += 1`` for every example ``t`` and position ``k``,
    as one scatter-add of ones at the flat keys ``(k * V + X[t, k]) * N + y_t``
    straight into ``state``'s counts viewed as a vector of ``M * N`` (no
    one-hot matrix, no second table to merge; under ``jit`` with the state
    donated the table is updated in place). A flat scatter is about twice as
    fast as a two-index one on the CPU. Rows whose label equals
    ``num_classes`` are padding: their key is ``M * N``, out of range, so the
    scatter drops it.

    The sums: when the table is small next to the batch they are recomputed
    from the merged counts (``f_i = sum_j F_ij``, ``n_j = sum_{i < V} F_ij``:
    every example puts one count in each of the ``K`` blocks), which is exact
    for consistent statistics (every state xsol produces is); otherwise the
    ``B`` rows and labels are scattered into them, so a large table is not
    re-read for every small batch.

    Args:
      state: statistics to add to (integer counts).
      X: int32 ids, shape ``(B, K)``, values in ``[0, V)``.
      y: int32 labels, shape ``(B,)``, values in ``[0, N]`` (``N`` = padding).
      vocab_size: ``V``.
      num_classes: ``N``.
      in_bounds: the caller guarantees every id is in ``[0, V)`` and every
        label in ``[0, N)`` (validated, no padding), so the scatter skips its
        bounds handling (about 15% faster). Out-of-range input then writes
        out of bounds: pass it only for validated batches.

    Returns:
      The updated :class:`CoocStats`.
    """
    B, K = X.shape
    V, N = int(vocab_size), int(num_classes)
    M = K * V
    c = state.cooc.dtype
    valid = y < N
    rows = X + (jnp.arange(K, dtype=X.dtype) * V)[None, :]
    if _flat_index_ok(M, N):
        idx = jnp.int64 if M * N >= jnp.iinfo(jnp.int32).max else jnp.int32
        keys = rows.astype(idx) * N + y.astype(idx)[:, None]
        if not in_bounds:
            keys = jnp.where(valid[:, None], keys, M * N)
        cooc = _scatter_ones(state.cooc.reshape(-1), keys.reshape(-1), in_bounds).reshape(M, N)
    else:  # a table this large is refused by the memory check in practice
        cols = jnp.broadcast_to(y[:, None], (B, K)).reshape(-1)
        ones = jnp.broadcast_to(valid.astype(c)[:, None], (B, K)).reshape(-1)
        cooc = state.cooc.at[rows.reshape(-1), cols].add(ones, mode="drop")
    if M * N <= 4 * B * K:
        totals = cooc.sum(axis=1, dtype=c)
        labels = cooc[:V].sum(axis=0, dtype=c).astype(state.label_counts.dtype)
    else:
        totals = state.feature_totals.at[jnp.where(valid[:, None], rows, M).reshape(-1)].add(
            1, mode="drop")
        labels = state.label_counts.at[y].add(1, mode="drop")
    # Without padding every example counts (and an integer sum over B is not free).
    added = B if in_bounds else valid.sum(dtype=state.num_examples.dtype)
    return CoocStats(cooc, totals, labels, state.num_examples + added)


def _scatter_ones(table: jax.Array, keys: jax.Array, in_bounds: bool) -> jax.Array:
    """``table[keys] += 1`` (repeated keys add up); out-of-range keys are dropped unless ``in_bounds``.

    ``lax.scatter_add`` directly: ``.at[].add`` would add a pass that wraps
    negative indices, which the keys never are.
    """
    dn = jax.lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,),
                                         scatter_dims_to_operand_dims=(0,))
    mode = (jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS if in_bounds
            else jax.lax.GatherScatterMode.FILL_OR_DROP)
    return jax.lax.scatter_add(table, keys[:, None], jnp.ones(keys.shape, table.dtype), dn,
                               mode=mode)


def token_batch_stats(X: jax.Array, y: jax.Array, vocab_size: int, num_classes: int) -> CoocStats:
    """Exact integer statistics of one batch of token ids.

    ``F[k * V + X[t, k], y_t] += 1`` for every example ``t`` and position ``k``:
    :func:`add_token_counts` applied to zero statistics. Rows whose label
    equals ``num_classes`` are padding and count nothing.

    Args:
      X: int32 ids, shape ``(B, K)``, values in ``[0, V)``.
      y: int32 labels, shape ``(B,)``, values in ``[0, N]`` (``N`` = padding).
      vocab_size: ``V``.
      num_classes: ``N``.

    Returns:
      The batch's :class:`CoocStats` (integer dtype, see :func:`count_dtype`).
    """
    K = X.shape[1]
    return add_token_counts(zeros(K * int(vocab_size), int(num_classes), count_dtype()),
                            X, y, vocab_size, num_classes)


def dense_batch_stats(
    X: jax.Array, y: jax.Array, num_classes: int, normalize: Normalize
) -> tuple[CoocStats, jax.Array, jax.Array]:
    """Float statistics of one batch of dense features, plus input checks.

    ``F = X~^T onehot(y)`` computed as ``(A^T X)^T`` with
    ``A = onehot(y) * w[:, None]`` and ``w_t = 1 / sum(x_t)`` (``"l1"``) or ``1``
    (``"none"``): the per-example scale is folded into the small ``B x N``
    matrix, so ``X`` is never rescaled or copied. Three reads of ``X``, each one
    of the CPU backend's fast library kernels: the row sums, the minimum (float
    inputs only; ``uint8``/``bool`` cannot be negative), and the ``N x B`` by
    ``B x M`` product (in that orientation: ``X^T A`` is about 2x slower).
    ``A^T`` is materialized first and the product is transposed only after it
    is computed (optimization barriers): when XLA fuses either into the
    product, the CPU falls back to slower kernels. The product runs at float32
    precision (``Precision.HIGHEST``). Labels equal to ``num_classes`` are
    padding (their one-hot row is zero).

    Args:
      X: shape ``(B, M)``, float or uint8/bool.
      y: int32 labels, shape ``(B,)``.
      num_classes: ``N``.
      normalize: ``"l1"`` or ``"none"``.

    Returns:
      ``(stats, x_min, all_rows_finite)``: the batch's :class:`CoocStats`
      (float32 ``cooc``), the smallest entry of ``X`` (``0`` for unsigned and
      boolean inputs) and whether every row sum is finite (false iff ``X``
      holds a NaN or an infinity, or a row sum overflows).
    """
    fdt = jnp.promote_types(X.dtype, jnp.float32)
    x = X.astype(fdt)
    s = x.sum(axis=1)
    signed = not (X.dtype == jnp.bool_ or jnp.issubdtype(X.dtype, jnp.unsignedinteger))
    x_min = x.min() if (x.size and signed) else jnp.zeros((), fdt)
    finite = jnp.all(jnp.isfinite(s))
    if normalize == "l1":
        w = jnp.where(s > 0, 1.0 / jnp.where(s > 0, s, 1.0), 0.0)
    else:
        w = jnp.ones_like(s)
    At = jax.lax.optimization_barrier((jax.nn.one_hot(y, num_classes, dtype=fdt) * w[:, None]).T)
    # The barrier keeps XLA from folding the transpose into the product, which
    # would turn it into the X^T A form (about 2x slower on the CPU).
    cooc = jax.lax.optimization_barrier(
        jax.lax.dot(At, x, precision=jax.lax.Precision.HIGHEST)).T
    stats = CoocStats(
        cooc,
        cooc.sum(axis=1),
        _label_counts(y, num_classes),
        (y < num_classes).sum(dtype=count_dtype()),
    )
    return stats, x_min, finite


def _example_weights(s: jax.Array, normalize: Normalize) -> jax.Array:
    """``w_t = 1 / s_t`` for ``"l1"`` (``0`` for an all-zero row), ``1`` for ``"none"``."""
    if normalize == "l1":
        return jnp.where(s > 0, 1.0 / jnp.where(s > 0, s, 1.0), 0.0)
    return jnp.ones_like(s)


def _chunk_product(x: jax.Array, y: jax.Array, num_classes: int, normalize: Normalize):
    """``(A^T x, s)`` for chunks ``x`` of shape ``(C, R, M)``: ``A = onehot(y) * w``, ``s`` the row sums."""
    s = x.sum(axis=-1)
    At = jnp.swapaxes(jax.nn.one_hot(y, num_classes, dtype=x.dtype)
                      * _example_weights(s, normalize)[..., None], -1, -2)
    F = jax.lax.dot_general(At, x, (((2,), (1,)), ((0,), (0,))),
                            precision=jax.lax.Precision.HIGHEST)
    return F, s


@functools.partial(jax.jit, static_argnames=("rows", "num_classes", "normalize"))
def dense_chunk_partials(X: jax.Array, y: jax.Array, *, rows: int, num_classes: int,
                         normalize: Normalize):
    """Per-chunk float32 co-occurrence of dense features, in one compiled pass.

    ``X`` (``B x M``, ``B`` a multiple of ``rows``) is read as ``C = B / rows``
    consecutive chunks ``X_c`` and each chunk's transposed co-occurrence

        ``P_c = (X~_c^T onehot(y_c))^T = A_c^T X_c``,  ``A_c = onehot(y_c) * w``

    is returned (``w_t = 1 / sum(x_t)`` for ``"l1"``, ``1`` for ``"none"``), so
    ``F = sum_c P_c^T``. The chunks are summed by the caller in float64: a
    chunk sum of integer-valued features is exact in float32 while it stays
    below ``2**24`` (``rows * max(x) < 2**24``), and the float64 total of the
    exact chunk sums is exact too.

    Float inputs are read three times in one program with no copy: the row
    sums and the minimum (one loop each) and a batched ``N x R`` by ``R x M``
    product. ``uint8``/``bool`` inputs cannot be negative or non-finite, so
    they skip the checks; they are converted to float32 one chunk at a time
    (a loop over chunks, so the float32 copy of a chunk stays in the CPU's
    cache) because a product that converts its operand on the fly falls back
    to a slow kernel. Padding rows may be labelled ``num_classes`` (their
    one-hot row is zero).

    Args:
      X: ``(B, M)`` float, ``uint8`` or ``bool``; ``B`` a multiple of ``rows``.
      y: int32 labels, shape ``(B,)``.
      rows: rows per chunk ``R``.
      num_classes: ``N``.
      normalize: ``"l1"`` or ``"none"``.

    Returns:
      ``(P, x_min, finite)``: ``P`` of shape ``(C, N, M)`` (float32), the
      smallest entry of ``X`` (``0`` for unsigned and boolean inputs) and
      whether every row sum is finite.
    """
    B, M = X.shape
    C = B // rows
    Xc, yc = X.reshape(C, rows, M), y.reshape(C, rows)
    if jnp.issubdtype(X.dtype, jnp.floating):
        F, s = _chunk_product(Xc, yc, num_classes, normalize)
        return F, Xc.min(axis=2).min(), jnp.all(jnp.isfinite(s))

    def one_chunk(_, xy):
        x = jax.lax.optimization_barrier(xy[0].astype(jnp.float32))
        w = _example_weights(x.sum(axis=1), normalize)
        # A^T materialized before the product (a fused one is slower here, ~10%)
        At = jax.lax.optimization_barrier((jax.nn.one_hot(xy[1], num_classes, dtype=x.dtype)
                                           * w[:, None]).T)
        return None, jax.lax.dot(At, x, precision=jax.lax.Precision.HIGHEST)

    _, F = jax.lax.scan(one_chunk, None, (Xc, yc))
    return F, jnp.zeros((), jnp.float32), jnp.array(True)


def token_cooccurrence(vocab_size: int, num_classes: int, window: int = 1) -> Accumulator:
    """Accumulator of exact integer counts for token-id inputs.

    Features are ``K`` one-hot blocks of size ``V`` (``M = K * V``); ``update``
    takes ids of shape ``(B,)`` or ``(B, K)`` and labels ``(B,)`` and adds
    ``F[k * V + X[t, k], y_t] += 1`` with a scatter-add in the integer dtype of
    :func:`count_dtype` (int32, or int64 under ``jax_enable_x64``), so counts are
    exact and independent of batch size and device count.

    Args:
      vocab_size: ``V``.
      num_classes: ``N`` (``V`` for a language model).
      window: ``K``, the number of positions per example.

    Returns:
      An :class:`Accumulator`.
    """
    for name, v in (("vocab_size", vocab_size), ("num_classes", num_classes), ("window", window)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    V, N, K = int(vocab_size), int(num_classes), int(window)
    _check_cooc_fits(K * V, N, jnp.dtype(count_dtype()).itemsize, "ids")

    def init() -> CoocStats:
        return zeros(K * V, N, count_dtype())

    update = functools.partial(_token_update, vocab_size=V, num_classes=N)
    return Accumulator(init, update, merge, "ids", K * V, N, V, K, "none")


def feature_cooccurrence(
    num_features: int, num_classes: int, normalize: Normalize = "l1"
) -> Accumulator:
    """Accumulator of ``F = X~^T Y`` for dense non-negative features.

    ``update`` takes ``X`` of shape ``(B, M)`` (float, uint8 or bool) and labels
    ``(B,)``; it normalizes each example (``x~ = x / sum(x)`` for ``"l1"``; zero
    rows stay zero) and accumulates in float32 (float64 when
    ``jax_enable_x64`` is on and ``X`` is float64). It does not check its input;
    :func:`xsol.accumulate` does.

    Args:
      num_features: ``M``.
      num_classes: ``N``.
      normalize: ``"l1"`` or ``"none"``.

    Returns:
      An :class:`Accumulator`.
    """
    for name, v in (("num_features", num_features), ("num_classes", num_classes)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    M, N = int(num_features), int(num_classes)
    normalize = check_normalize(normalize)
    _check_cooc_fits(M, N, 4, "dense")

    def init() -> CoocStats:
        return zeros(M, N, jnp.float32)

    update = functools.partial(_dense_update, num_classes=N, normalize=normalize)
    return Accumulator(init, update, merge, "dense", M, N, None, None, normalize)


# Module-level jitted kernels with static configuration, so every accumulator
# with the same shapes shares one compiled executable.


@functools.partial(jax.jit, static_argnames=("vocab_size", "num_classes"))
def _token_update(state, X, y, *, vocab_size, num_classes):
    X = X.reshape(X.shape[0], -1)
    return add_token_counts(state, X, y, vocab_size, num_classes)


@functools.partial(jax.jit, static_argnames=("num_classes", "normalize"))
def _dense_update(state, X, y, *, num_classes, normalize):
    batch, _, _ = dense_batch_stats(X, y, num_classes, normalize)
    return merge(state, cast_like(batch, state))


def cast_like(stats: CoocStats, like: CoocStats) -> CoocStats:
    """Casts every field of ``stats`` to the dtype of the same field of ``like``."""
    return jax.tree_util.tree_map(lambda b, s: b.astype(s.dtype), stats, like)


register_saved_type(
    "CoocStats", CoocStats,
    to_record=lambda s: (s._asdict(), {}),
    from_record=lambda arrays, fields: CoocStats(*(arrays[k] for k in CoocStats._fields)),
)
