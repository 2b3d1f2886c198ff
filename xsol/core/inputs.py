"""Input conventions shared by fitting, scoring and the models.

Two kinds of input reach a softmax layer ``z = x~ W + b``:

* **token ids** (``kind="ids"``): an integer array of shape ``(B,)`` or
  ``(B, K)``. Column ``k`` holds a token id in ``[0, V)`` and stands for a
  one-hot block; the K blocks side by side form a K-hot vector of length
  ``M = K * V``, with feature index ``k * V + id``.
* **dense features** (``kind="dense"``): a float (or ``uint8``/``bool``) array
  of shape ``(B, M)`` with non-negative entries.

``normalize="l1"`` (the default, docs/math.md case B) divides each example by the
sum of its entries, ``x~ = x / sum(x)``, so every example is a distribution
over features; an all-zero example stays zero. For ids this is a factor
``1 / K``. ``normalize="none"`` uses ``x`` as it is.

This module validates inputs on the host (numpy) and computes logits in JAX;
every other module uses these helpers, so the conventions live in one place.
"""

from __future__ import annotations

import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

# Numpy-only, so data loaders share them without importing JAX; re-exported here.
from xsol.core.align import ALIGNMENT, aligned, aligned_empty, is_aligned  # noqa: F401
from xsol.core.checks import is_integer, positive_int

Kind = Literal["ids", "dense"]
Normalize = Literal["l1", "none"]

_NORMALIZE = ("l1", "none")


def infer_kind(X, kind: str = "auto") -> Kind:
    """Decides whether ``X`` holds token ids or dense features.

    With ``kind="auto"``: floating arrays, ``uint8`` and ``bool`` arrays are
    dense features (pixels are stored as ``uint8``); every other integer dtype
    (``int32``, ``int64``, ``uint16``, ...) holds token ids. Pass ``kind``
    explicitly to override.

    Raises:
      TypeError: for a dtype that is neither numeric nor boolean.
      ValueError: for an unknown ``kind``.
    """
    if kind in ("ids", "dense"):
        if kind == "ids" and is_sparse(X):
            raise TypeError("a SciPy sparse matrix holds features, not token ids; pass "
                            "kind='dense' (or 'auto')")
        return kind  # type: ignore[return-value]
    if kind != "auto":
        raise ValueError(f"kind must be 'auto', 'ids' or 'dense', got {kind!r}")
    if is_sparse(X):
        return "dense"
    dtype = np.dtype(getattr(X, "dtype", np.asarray(X).dtype))
    if dtype == np.bool_ or dtype == np.uint8 or np.issubdtype(dtype, np.floating):
        return "dense"
    if np.issubdtype(dtype, np.integer):
        return "ids"
    raise TypeError(
        f"X has dtype {dtype}; expected integer token ids or non-negative "
        "float/uint8 features"
    )


#: Integer inputs with more columns than this, given with ``kind="auto"``,
#: are taken as token ids with a warning (such long windows are unusual;
#: integer-valued features such as pixels in ``int64`` are the likelier meaning).
MAX_UNWARNED_WINDOW = 16


def warn_if_ids_look_dense(X) -> None:
    """Warns when ``kind="auto"`` reads a wide integer array as token ids.

    An ``(B, K)`` integer array is a window of ``K`` token ids; with
    ``K > MAX_UNWARNED_WINDOW`` it is more likely integer-valued features
    (pixels cast to ``int64``), which would then silently get ``K * V`` rows.
    """
    if is_sparse(X):
        return
    dtype = np.dtype(getattr(X, "dtype", np.asarray(X).dtype))
    shape = np.shape(X)
    if (np.issubdtype(dtype, np.integer) and dtype != np.uint8 and len(shape) == 2
            and shape[1] > MAX_UNWARNED_WINDOW):
        warnings.warn(
            f"X has integer dtype {dtype} and {shape[1]} columns: it is taken as token ids, a "
            f"window of {shape[1]} positions with one block of V rows each. For integer-valued "
            "features (e.g. pixels) pass kind='dense' or convert X to float or uint8; pass "
            "kind='ids' to confirm ids and silence this warning.", UserWarning, stacklevel=3)


def infer_num_classes(y: np.ndarray) -> int:
    """``N = max(y) + 1`` for labels whose ``num_classes`` was not given.

    Warns when some labels in ``[0, max(y)]`` never occur (labels starting at
    1, gaps, or one label far beyond the rest, e.g. a corrupt 255 among
    digits): each missing label still gets a column, which is rarely meant.
    """
    N = int(y.max()) + 1
    present = np.bincount(y, minlength=N) > 0
    missing = np.flatnonzero(~present)
    if len(missing):
        shown = ", ".join(str(int(m)) for m in missing[:8]) + (", ..." if len(missing) > 8 else "")
        largest = np.flatnonzero(present)
        runner_up = int(largest[-2]) if len(largest) > 1 else None
        hint = (f"; the largest label {N - 1} is far beyond the next largest ({runner_up})"
                if runner_up is not None and N - 1 > 2 * runner_up + 1 else "")
        warnings.warn(
            f"num_classes was not given, so it is max(y) + 1 = {N}, but {len(missing)} of those "
            f"labels never occur ({shown}){hint}; pass num_classes explicitly (and map labels "
            "to 0..N-1) if that is not what you meant.", UserWarning, stacklevel=3)
    return N


def check_normalize(normalize: str) -> Normalize:
    """Validates the ``normalize`` option."""
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    return normalize  # type: ignore[return-value]


def is_sparse(X) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array (e.g. a ``CountVectorizer`` output)."""
    if type(X).__module__.startswith("scipy.sparse"):
        import scipy.sparse  # noqa: PLC0415 - only when a sparse input arrives

        return bool(scipy.sparse.issparse(X))
    return False


def check_sparse_features(X):
    """Validates a SciPy sparse feature matrix without densifying it; returns it as CSR.

    Only the stored entries can be negative or non-finite, so the checks read
    ``X.data`` alone. Rows are densified later, a batch at a time.

    Raises:
      ValueError: not 2-D, no rows or columns, negative or non-finite entries.
    """
    X = X.tocsr()
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"sparse features must have shape (B, M) with M >= 1, got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is empty (0 examples); expected at least one example")
    data = X.data
    if data.size and not np.all(np.isfinite(data)):
        raise ValueError("sparse features contain NaN or infinity; expected finite, "
                         "non-negative values")
    if data.size and data.min() < 0:
        raise ValueError(f"sparse features contain negative values (min {data.min():g}); the "
                         "explicit solution needs x >= 0 (e.g. counts or tf-idf)")
    return X


def as_host_array(X, name: str = "X") -> np.ndarray:
    """``np.asarray`` that names the argument when conversion fails."""
    if is_sparse(X):
        return X  # validated and densified in batches by the callers
    if isinstance(X, jax.Array):
        return X  # stays on device; checks use jnp reductions
    try:
        return np.asarray(X)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name} could not be converted to an array: {e}") from e


def _range_ok(a: np.ndarray, upper: int | None) -> bool:
    """Whether every entry of the integer array ``a`` lies in ``[0, upper)``, in one pass.

    Viewing signed integers as unsigned maps negatives above every valid id, so
    one ``max`` checks both bounds (``upper=None`` checks only ``>= 0``).
    """
    if not a.size:
        return True
    if a.dtype.kind == "i":
        u = a.view(a.dtype.str.replace("i", "u"))
        if upper is None:
            return int(a.min()) >= 0
        return int(u.max()) < upper
    if a.dtype.kind == "u":
        return upper is None or int(a.max()) < upper
    return False


def _check_in_range(a: np.ndarray, upper: int | None, what: str, plural: str, bound: str) -> None:
    """Refuses an entry of the integer array ``a`` outside ``[0, upper)``.

    Args:
      a: the integer array.
      upper: the exclusive upper bound; ``None`` checks only ``>= 0``.
      what: what one entry is, for the message (``"label"``, ``"token id"``).
      plural: what the entries are (``"labels"``, ``"ids"``).
      bound: the argument ``upper`` comes from (``"num_classes"``).

    Raises:
      ValueError: naming the first offending bound (the smallest entry when
        one is negative, else the largest).
    """
    if not a.size or _range_ok(a, upper):
        return
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or (upper is not None and hi >= upper):
        bad = lo if lo < 0 else hi
        raise ValueError(
            f"{what} {bad} is outside [0, {upper}); expected {plural} in "
            f"[0, {bound}) with {bound}={upper}"
        )


def check_num_classes(num_classes) -> int:
    """Validates ``num_classes``: a positive integer (``"3"`` or ``3.0`` are refused by name).

    Raises:
      TypeError: not an integer (or a ``bool``).
      ValueError: below 1.
    """
    if not is_integer(num_classes):
        raise TypeError(f"num_classes must be a positive integer, got {num_classes!r} "
                        f"({type(num_classes).__name__})")
    return positive_int(num_classes, "num_classes")


def check_labels(y, num_examples: int, num_classes: int | None) -> np.ndarray:
    """Validates labels: integers in ``[0, num_classes)``, one per example.

    Args:
      y: labels, shape ``(B,)``.
      num_examples: ``B``, the number of rows of ``X``.
      num_classes: ``N``; ``None`` skips the upper-bound check.

    Returns:
      ``y`` as ``int32``.
    """
    if num_classes is not None:
        num_classes = check_num_classes(num_classes)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must have shape (B,), got shape {y.shape}")
    if y.shape[0] != num_examples:
        raise ValueError(
            f"X has {num_examples} examples but y has {y.shape[0]} labels; "
            "expected one label per example"
        )
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
    _check_in_range(y, num_classes, "label", "labels", "num_classes")
    return y if y.dtype == np.int32 else aligned(y, np.int32)


def check_ids(X, vocab_size: int | None) -> np.ndarray:
    """Validates token ids: shape ``(B,)`` or ``(B, K)``, values in ``[0, V)``.

    Returns:
      ``X`` as ``int32`` with shape ``(B, K)`` (a converted copy is 64-byte
      aligned, see :func:`aligned`).
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"token ids must have shape (B,) or (B, K), got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError("token ids have a window of 0 positions; expected K >= 1")
    if X.size and not np.issubdtype(X.dtype, np.integer):
        if X.dtype == np.bool_ or not np.issubdtype(X.dtype, np.number):
            raise TypeError(f"token ids must be integers, got dtype {X.dtype}")
        bad = ~np.isfinite(X) | (X != np.round(X)) if np.issubdtype(X.dtype, np.floating) \
            else np.zeros(X.shape, bool)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f"token ids must be whole numbers, got {X[r, c].item()!r} at row {r}, column {c} "
                f"(dtype {X.dtype}); ids are never rounded or truncated")
        X = X.astype(np.int64)
    _check_in_range(X, vocab_size, "token id", "ids", "vocab_size")
    if X.dtype != np.int32:
        in_range = vocab_size is not None and vocab_size <= np.iinfo(np.int32).max + 1
        if X.size and not in_range and int(X.max()) > np.iinfo(np.int32).max:
            raise ValueError("token ids must fit in int32")
        X = aligned(X, np.int32)
    return X


def check_dense_shape(X) -> None:
    """Validates a dense feature array's shape: ``(B, M)`` with ``M >= 1``."""
    if X.ndim != 2:
        raise ValueError(
            f"dense features must have shape (B, M), got shape {tuple(X.shape)}; "
            "flatten images first, e.g. X.reshape(len(X), -1)"
        )
    if X.shape[1] == 0:
        raise ValueError("dense features have 0 columns; expected M >= 1")


def check_dense_values(X) -> None:
    """Refuses negative or non-finite dense features (one pass over ``X``).

    The explicit solution needs ``x >= 0`` (docs/math.md case B).
    """
    if X.dtype == np.bool_ or np.issubdtype(X.dtype, np.unsignedinteger):
        return
    if isinstance(X, jax.Array):
        finite, lo = _finite_and_min(X)
        finite, lo = bool(finite), float(lo)
    else:
        # min() propagates NaN; a separate isfinite pass is only needed when it does.
        lo = float(X.min()) if X.size else 0.0
        finite = bool(np.isfinite(lo)) and (
            not np.issubdtype(X.dtype, np.floating) or bool(np.isfinite(X.max()))
        )
        if not finite and not np.isnan(lo):
            finite = bool(np.isfinite(X).all())
    if not finite:
        bad = np.argwhere(~np.isfinite(np.asarray(X)))[0]
        raise ValueError(
            f"features contain NaN or infinity (first at row {bad[0]}, column "
            f"{bad[1]}); expected finite, non-negative values"
        )
    if lo < 0:
        bad = np.argwhere(np.asarray(X) < 0)[0]
        raise ValueError(
            f"features contain negative values (min {lo:g}, first at row {bad[0]}, "
            f"column {bad[1]}); the explicit solution needs x >= 0 (e.g. pixels, "
            "counts, or post-ReLU/sigmoid/softmax activations)"
        )


@jax.jit
def _finite_and_min(X):
    return jnp.all(jnp.isfinite(X)), jnp.min(X)


def normalize_dense(X: jax.Array, normalize: Normalize) -> jax.Array:
    """``x~ = x / sum(x)`` per row for ``"l1"`` (zero rows stay zero), else ``x``.

    The result is float32 (or the input's float dtype if wider).
    """
    X = X.astype(jnp.promote_types(X.dtype, jnp.float32))
    if normalize == "none":
        return X
    s = X.sum(axis=1, keepdims=True)
    return X * jnp.where(s > 0, 1.0 / jnp.where(s > 0, s, 1.0), 0.0)


def linear_logits(
    weights: jax.Array,
    bias: jax.Array,
    X: jax.Array,
    kind: Kind,
    normalize: Normalize = "l1",
) -> jax.Array:
    """Logits ``z = x~ W + b`` of a softmax layer, without one-hot matrices.

    For ids of shape ``(B, K)`` and ``W`` of shape ``(K * V, N)``:
    ``z_b = c * sum_k W[k * V + X[b, k]] + b`` with ``c = 1/K`` for
    ``normalize="l1"`` and ``c = 1`` otherwise (a row lookup per position).
    For dense ``X`` of shape ``(B, M)``: ``z = normalize(X) @ W + b``, computed
    at float32 precision (``Precision.HIGHEST``, so TPUs/GPUs do not round the
    inputs to bfloat16/TF32).

    Args:
      weights: ``(M, N)``.
      bias: ``(N,)``.
      X: ids ``(B, K)`` int32 or dense ``(B, M)``.
      kind: ``"ids"`` or ``"dense"``.
      normalize: ``"l1"`` or ``"none"``.

    Returns:
      Logits of shape ``(B, N)``.
    """
    if kind == "ids":
        K = X.shape[1]
        V = weights.shape[0] // K
        rows = X + (jnp.arange(K, dtype=X.dtype) * V)[None, :]
        z = weights[rows].sum(axis=1)
        if normalize == "l1":
            z = z / K
        return z + bias
    x = normalize_dense(X, normalize)
    return jnp.dot(x, weights, precision=jax.lax.Precision.HIGHEST) + bias


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Per-example ``-log softmax(z)[y]``, computed stably with logsumexp."""
    lse = jax.nn.logsumexp(logits, axis=-1)
    return lse - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]


def host_examples(X, kind: str = "auto"):
    """``(X, kind)``: ``X`` as a host array and its kind, refusing empty input.

    ``kind="auto"`` is inferred (:func:`infer_kind`) with a warning when an
    integer array looks like dense features (:func:`warn_if_ids_look_dense`).

    Raises:
      ValueError: no examples, or an unknown ``kind``.
    """
    X = as_host_array(X)
    if np.ndim(X) == 0 or np.shape(X)[0] == 0:
        raise ValueError("X is empty (0 examples); expected at least one example")
    resolved = infer_kind(X, kind)
    if kind == "auto":
        warn_if_ids_look_dense(X)
    return X, resolved
