"""One softmax layer ``z = x~ W + b``, whatever Flax API holds it (linen or NNX).

What :mod:`xsol.models.linen` and :mod:`xsol.models.nnx` share: the checks
of a layer's configuration (``M`` dense features or windows of ``K`` ids of
``V`` tokens, ``N`` outputs, ``normalize``), explicit weights as a float32
``(W, b)`` pair (:func:`as_pair`), the logits
``z = x~ W + b`` of :func:`xsol.core.inputs.linear_logits`, also for ``W``
split over the rows of a mesh (:func:`layer_logits`), and the host-side
validation of a model's inputs (:func:`prepare_dense`, :func:`prepare_ids`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from xsol.core import inputs
from xsol.core.checks import optional_positive_int, positive_int
from xsol.solvers.explicit import ExplicitSolution, prepare_inputs


def check_dense_layer(num_features, num_classes, normalize: str) -> None:
    """Checks the configuration of a softmax layer over ``M`` dense features and ``N`` classes.

    Raises:
      ValueError: ``num_features`` or ``num_classes`` is not a positive
        integer, or ``normalize`` is not ``"l1"``/``"none"``.
    """
    positive_int(num_features, "num_features")
    positive_int(num_classes, "num_classes")
    inputs.check_normalize(normalize)


def check_token_layer(vocab_size, window, num_classes, normalize: str) -> None:
    """Checks the configuration of a softmax layer over windows of ``K`` ids of ``V`` tokens.

    Raises:
      ValueError: ``vocab_size`` or ``window`` is not a positive integer,
        ``num_classes`` neither None nor one, or ``normalize`` is not
        ``"l1"``/``"none"``.
    """
    positive_int(vocab_size, "vocab_size")
    positive_int(window, "window")
    optional_positive_int(num_classes, "num_classes", none_means="vocab_size")
    inputs.check_normalize(normalize)


def as_pair(source, shape: tuple[int, int], what: str, *, kind: str, normalize: str,
             vocab_size: int | None = None, window: int | None = None):
    """``(W, b)`` float32 from an ExplicitSolution, a ``(W, b)`` pair or a bare ``W``.

    Args:
      source: :class:`xsol.ExplicitSolution` (its ``scaled_weights()`` and
        ``bias``, so a calibrated solution's logits are reproduced), a pair
        ``(W, b)``, a dict ``{"W": ..., "b": ...}`` or a matrix ``W`` (bias 0).
      shape: the expected ``(M, N)``.
      what: the layer's name for error messages.
      kind, normalize, vocab_size, window: the layer's input conventions, which
        an ExplicitSolution must share.

    Returns:
      ``(W, b)`` as float32 ``jax.Array`` of shapes ``(M, N)`` and ``(N,)``.
    """
    if isinstance(source, ExplicitSolution):
        if source.kind != kind:
            raise ValueError(
                f"{what}: the explicit solution was fitted on {source.kind!r} inputs, "
                f"but the layer takes {kind!r} inputs"
            )
        if source.normalize != normalize:
            raise ValueError(
                f"{what}: the explicit solution uses normalize={source.normalize!r} but "
                f"the layer uses normalize={normalize!r}; their logits would differ"
            )
        if kind == "ids" and (source.window != window or source.vocab_size != vocab_size):
            raise ValueError(
                f"{what}: the explicit solution has window={source.window}, "
                f"vocab_size={source.vocab_size}; the model has window={window}, "
                f"vocab_size={vocab_size}"
            )
        W, b = source.scaled_weights(), source.bias
    elif isinstance(source, dict):
        if set(source) != {"W", "b"}:
            raise ValueError(f"{what}: expected a dict with keys 'W' and 'b', got {sorted(source)}")
        W, b = source["W"], source["b"]
    elif isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ValueError(
                f"{what}: expected a pair (W, b), got a sequence of {len(source)} items")
        W, b = source
    else:
        W, b = source, None
    W = jnp.asarray(W, jnp.float32)
    if W.shape != tuple(shape):
        raise ValueError(
            f"{what}: weights have shape {tuple(W.shape)}, expected {tuple(shape)} "
            "(num_features, num_outputs)"
        )
    if b is None:
        b = jnp.zeros((shape[1],), jnp.float32)
        if is_sharded(W):  # replicated on W's mesh, next to W's rows
            b = jax.device_put(b, NamedSharding(W.sharding.mesh, P()))
    else:
        b = jnp.asarray(b, jnp.float32)
    if b.shape != (shape[1],):
        raise ValueError(f"{what}: bias has shape {tuple(b.shape)}, expected ({shape[1]},)")
    return W, b


def is_sharded(x) -> bool:
    """Whether ``x`` is a concrete ``jax.Array`` split or replicated over a mesh of devices."""
    return (isinstance(x, jax.Array) and not isinstance(x, jax.core.Tracer)
            and isinstance(x.sharding, NamedSharding) and len(x.sharding.device_set) > 1)


def _rows_split_explicitly(W) -> bool:
    """Whether ``W``'s rows are split along an ``Explicit`` mesh axis (sharding in its type)."""
    try:
        sharding = jax.typeof(W).sharding
    except Exception:  # noqa: BLE001 - not a JAX value
        return False
    spec = tuple(getattr(sharding, "spec", ()) or ())
    if not spec or spec[0] is None:
        return False
    mesh = sharding.mesh
    kinds = dict(zip(mesh.axis_names, mesh.axis_types))
    rows = (spec[0],) if isinstance(spec[0], str) else tuple(spec[0])
    return any(kinds.get(a) == AxisType.Explicit for a in rows)


def layer_logits(W, b, X, kind: str, normalize: str):
    """:func:`xsol.core.inputs.linear_logits` of a layer, also for ``W`` split over ``Explicit`` axes.

    For token ids with ``W``'s rows split along an ``Explicit`` mesh axis, the
    row lookup ``W[k * V + X[b, k]]`` is told its output sharding: split like
    the batch ``X`` (if it is, on the same mesh), whole along ``N``. The
    logits are the same numbers.
    """
    if kind == "ids" and _rows_split_explicitly(W):
        K = X.shape[1]
        V = W.shape[0] // K
        rows = X + (jnp.arange(K, dtype=X.dtype) * V)[None, :]
        mesh = jax.typeof(W).sharding.mesh
        batch = None
        try:
            xs = jax.typeof(rows).sharding
            if xs.mesh == mesh and len(xs.spec):
                batch = xs.spec[0]
        except Exception:  # noqa: BLE001
            pass
        z = W.at[rows].get(out_sharding=NamedSharding(mesh, P(batch, None, None))).sum(axis=1)
        if normalize == "l1":
            z = z / K
        return z + b
    return inputs.linear_logits(W, b, X, kind, normalize)


def prepare_dense(X, num_features: int):
    """Validated dense features ``(B, M)`` (non-negative, finite) with ``M = num_features``."""
    X, _ = prepare_inputs(X, "dense")
    if X.shape[1] != num_features:
        raise ValueError(f"X has {X.shape[1]} features, the model expects {num_features}")
    return X


def prepare_ids(X, vocab_size: int, window: int):
    """Validated token ids, int32 ``(B, K)`` with ids in ``[0, V)`` and ``K = window``."""
    X = inputs.as_host_array(X)
    if np.shape(X)[0] == 0:
        raise ValueError("X is empty (0 examples); expected at least one example")
    X = inputs.check_ids(np.asarray(X), vocab_size)
    if X.shape[1] != window:
        raise ValueError(f"X has a window of {X.shape[1]} positions, the model expects {window}")
    return X

