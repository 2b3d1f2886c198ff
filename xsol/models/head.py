"""The explicit weights of one dense layer of any Flax model (NNX or linen).

:func:`explicit_head` runs the model's forward pass over a stream of
``(X, y)`` batches, captures the input ``h`` of one dense layer (usually the
classification head), accumulates the co-occurrence statistics of ``h`` and
the labels (:func:`xsol.stats.feature_cooccurrence`, summed in float64 on the
host), solves them (:func:`xsol.solve`) and returns the weights in that
layer's own parameter structure::

    # NNX: a State to assign to the model
    nnx.update(model, xsol.explicit_head(model, layer="head", batches=data))

    # linen: the params subtree of the layer
    sub = xsol.explicit_head(cnn, params, layer="Dense_1", batches=data)
    params = xsol.models.head.replace_layer_params(params, "Dense_1", sub)

**Which logits the layer then computes.** The explicit solution's logits are
``z = x~ W + b`` with ``x~`` the layer input normalized per example by
``normalize`` (docs/math.md, case B); its bias ``b`` is zero. How a layer
reproduces them depends on what the layer does with its input:

* A layer that normalizes its own input (the layers of :mod:`xsol.models.linen`
  and :mod:`xsol.models.nnx`, which have a ``normalize`` attribute): the
  statistics use that normalization and the layer's logits *are* the explicit
  solution's, exactly.
* A plain dense layer (``nnx.Linear``, ``flax.linen.Dense``: ``h @ kernel +
  bias`` on the raw ``h``) with ``normalize="l1"`` (the default for them): it
  computes ``h @ W = s(h) * (h~ W)`` with ``s(h) = sum(h) > 0``, a positive
  factor per example, and ``bias = 0``. Every prediction (argmax) is exactly
  the explicit solution's; the probabilities are those of the explicit
  logits at inverse temperature ``s(h)``. To get the explicit probabilities
  too, divide ``h`` by ``sum(h)`` in the model before the layer, or fit with
  ``normalize="none"``.
* A plain dense layer with ``normalize="none"``: the statistics are those of
  the raw ``h`` (``F = H^T Y``) and the layer's logits are exactly that
  solution's, ``h @ W``.

``calibrate=True`` fits one scalar ``beta`` (Newton's method, :mod:`xsol.solvers.temperature`)
that minimizes the cross-entropy of the logits the layer actually computes,
``beta * n(h) @ W`` with ``n`` the layer's own normalization (none for a plain
dense layer); the kernel returned is ``beta * W``. Predictions do not change.
It needs a second pass over the batches.

The layer's input must be non-negative (a ReLU, sigmoid or softmax before
it): a negative entry is refused with the fraction of negative entries.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from xsol.core import inputs
from xsol.models.model_layers import (  # replace_layer_params: also reached from here
    LayerInfo,
    linen_layer,
    nnx_layer,
    replace_layer_params,
)
from xsol.solvers.explicit import DEFAULT_SMOOTHING, solution_from_stats
from xsol.solvers.temperature import fit_inverse_temperature
from xsol.stats.accumulators import CoocStats, feature_cooccurrence


def _iterate(batches):
    if callable(batches) and not hasattr(batches, "__iter__"):
        return iter(batches())
    try:
        return iter(batches)
    except TypeError:
        raise TypeError(f"batches must be an iterable of (X, y) pairs (or a function returning "
                        f"one), got {type(batches).__name__}") from None


def _reiterable(batches) -> bool:
    if callable(batches) and not hasattr(batches, "__iter__"):
        return True
    return iter(batches) is not batches


def _split_batch(batch, index: int):
    try:
        X, y = batch
    except (TypeError, ValueError):
        raise ValueError(f"batch {index}: expected an (X, y) pair, got {type(batch).__name__}") \
            from None
    return X, y


def _feature_error(name: str, index: int, shape, n_neg: int, n_bad: int, x_min: float) -> str:
    size = int(np.prod(shape))
    if n_bad:
        return (f"the input of layer {name!r} in batch {index} holds {n_bad} NaN or infinite "
                f"values ({n_bad / size:.2%} of {size}); explicit weights need finite features")
    return (f"the input of layer {name!r} is negative in {n_neg / size:.2%} of its entries "
            f"({n_neg} of {size} in batch {index}, minimum {x_min:g}); explicit weights need "
            "non-negative features (counts, probabilities, positive activations). Make the "
            "layer's input non-negative in the model: a ReLU, sigmoid or softmax before the "
            "layer, or a shift such as h - min(h) built into the model (the layer then sees "
            "the shifted features too)")


def explicit_head(
    model,
    params=None,
    *,
    layer,
    batches: Iterable | Callable[[], Iterable],
    num_classes: int | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    normalize: str | None = None,
    calibrate: bool = False,
    call_kwargs: dict | None = None,
    progress: bool = False,
    return_solution: bool = False,
):
    """Explicit weights for one dense layer of a Flax model, in that layer's parameter structure.

    Runs the model (jit-compiled) on every batch, captures the input ``h``
    ``(B, M)`` of ``layer``, accumulates ``F = h~^T Y`` and solves
    ``W_ij = log(F_ij + a) - log(f_i + N a)``, ``b = 0`` (docs/math.md). The
    result equals :func:`xsol.fit_explicit` on the captured features. See the
    module docstring for which logits the layer then computes.

    Args:
      model: an ``nnx.Module`` (the parameters are its own; ``params`` must be
        None), or a ``flax.linen`` module with its ``params``.
      params: for a linen model, its params dict or its full variables
        ``{"params": ..., "batch_stats": ...}``.
      layer: the dense layer: for NNX an attribute path such as ``"head"``,
        ``"layers.2"`` or ``("layers", 2)``; for linen a submodule name such
        as ``"Dense_1"``, a dotted path ``"body.Dense_0"`` or a tuple
        ``("head",)``. Its parameters must be one kernel ``(M, N)`` and
        optionally a bias ``(N,)``, and it must be called exactly once per
        forward pass, through ``__call__``.
      batches: an iterable of ``(X, y)`` pairs (``X`` what the model takes,
        ``y`` int labels ``(B,)`` in ``[0, N)``), or a function returning one.
        ``calibrate=True`` reads it twice (a list or a function, not a generator).
      num_classes: ``N``; default the kernel's number of columns, which it must equal.
      smoothing: additive smoothing ``a >= 0``.
      normalize: normalization of ``h`` in the statistics, ``"l1"`` or
        ``"none"``. Default: the layer's own for a layer that normalizes its
        input (an :mod:`xsol.models.linen`/:mod:`xsol.models.nnx` layer, which must
        then match), ``"l1"`` for a plain dense layer.
      calibrate: also fit the inverse temperature of the layer's logits (a
        second pass over the batches); the kernel is then ``beta * W``.
      call_kwargs: keyword arguments for the forward pass, e.g.
        ``{"train": False}`` (linen: passed to ``model.apply``). Put an NNX
        model with dropout or batch norm in evaluation mode (``model.eval()``) first.
      progress: show a progress bar.
      return_solution: also return the :class:`xsol.ExplicitSolution` of the
        captured features (its statistics, and ``inverse_temperature = beta``
        so that ``solution.scaled_weights()`` is the kernel).

    Returns:
      For NNX an ``nnx.State`` rooted at the model, e.g.
      ``State({"head": {"kernel": Param, "bias": Param}})``, to apply with
      ``nnx.update(model, state)``; for linen the layer's params subtree, e.g.
      ``{"kernel": W, "bias": b}``, to put at ``params[layer]``
      (:func:`replace_layer_params`). With ``return_solution=True``, the pair
      ``(weights, solution)``.

    Raises:
      ValueError: an unknown layer (the message lists the model's layers with
        parameters), a layer that is not dense, negative or non-finite layer
        inputs (with the fraction of negative entries), labels out of range,
        no batches, or a mismatched ``normalize``/``num_classes``.
    """
    call_kwargs = dict(call_kwargs or {})
    if normalize is not None:
        normalize = inputs.check_normalize(normalize)
    if calibrate and not _reiterable(batches):
        raise ValueError("calibrate=True reads the batches twice; pass a list of (X, y) pairs or "
                         "a function returning a fresh iterable, not an iterator or generator")

    if isinstance(model, nnx.Module):
        if params is not None:
            raise ValueError("an NNX model holds its own parameters; pass params only for a "
                             "flax.linen model")
        info, capture, state = nnx_layer(model, layer, call_kwargs)
    elif isinstance(model, nn.Module):
        if params is None:
            raise ValueError("a flax.linen model needs its params: explicit_head(model, params, "
                             "layer=..., batches=...)")
        info, capture, state = linen_layer(model, params, layer, call_kwargs)
    else:
        raise TypeError(f"model must be a flax.nnx or flax.linen Module, got "
                        f"{type(model).__name__}")

    M, N = (int(d) for d in np.shape(info.kernel))
    if num_classes is not None and int(num_classes) != N:
        raise ValueError(f"num_classes={num_classes} but layer {info.name!r} has {N} outputs "
                         f"(its kernel is {M} x {N})")

    def features(state, X):
        box = capture(state, X)
        if len(box) != 1:
            raise ValueError(
                f"layer {info.name!r} was called {len(box)} times in one forward pass; "
                "explicit_head needs a layer called exactly once (through __call__)")
        _check_feature_shape(info, box[0], M)
        return box[0]

    source = _iterate(batches)
    first = next(source, None)
    if first is None:
        raise ValueError("no batches: explicit_head needs at least one (X, y) batch")
    # Tracing the first batch finds the layer (and, for linen, its input normalization).
    jax.eval_shape(features, state, _split_batch(first, 0)[0])
    if normalize is None:
        normalize = info.normalize or "l1"
    elif info.normalize is not None and normalize != info.normalize:
        raise ValueError(
            f"layer {info.name!r} normalizes its input with normalize={info.normalize!r}; "
            f"statistics with normalize={normalize!r} would not give its logits (pass "
            f"normalize={info.normalize!r} or leave it out)")
    layer_normalize = info.normalize or "none"
    acc = feature_cooccurrence(M, N, normalize)

    @jax.jit
    def step(state, X, y):
        h = features(state, X)
        h = h.astype(jnp.promote_types(h.dtype, jnp.float32))
        batch = acc.update(acc.init(), h, y)
        return (batch, jnp.sum(h < 0), jnp.sum(~jnp.isfinite(h)),
                jnp.min(jnp.where(jnp.isfinite(h), h, jnp.inf)))

    cooc = np.zeros((M, N), np.float64)
    totals = np.zeros((M,), np.float64)
    labels = np.zeros((N,), np.int64)
    count = 0
    bar = tqdm(disable=not progress, desc="explicit head", unit="batch")
    try:
        for i, batch in enumerate(itertools.chain([first], source)):
            X, y = _split_batch(batch, i)
            B = _batch_size(X)
            part, n_neg, n_bad, x_min = step(state, X, jnp.asarray(_labels(y, B, N, i)))
            n_neg, n_bad = int(n_neg), int(n_bad)
            if n_neg or n_bad:
                raise ValueError(_feature_error(info.name, i, (B, M), n_neg, n_bad,
                                                float(x_min)))
            # Each batch is summed on the device in float32, the batches on the host in float64.
            cooc += np.asarray(part.cooc, np.float64)
            totals += np.asarray(part.feature_totals, np.float64)
            labels += np.asarray(part.label_counts, np.int64)
            count += int(part.num_examples)
            bar.update(1)
    finally:
        bar.close()
    stats = CoocStats(cooc, totals, labels, np.int64(count))
    solution = solution_from_stats(stats, kind="dense", normalize=normalize, smoothing=smoothing)

    beta = 1.0
    if calibrate:
        beta = _fit_beta(features, state, batches, solution.weights, solution.bias,
                         layer_normalize, N)
        solution = dataclasses.replace(solution, inverse_temperature=beta)
    W = solution.scaled_weights()
    out = _layer_params(info, W, solution.bias, model)
    return (out, solution) if return_solution else out


def _batch_size(X) -> int:
    leaves = jax.tree.leaves(X)
    if not leaves:
        raise ValueError("a batch's X holds no arrays")
    shape = np.shape(leaves[0])
    if not shape:
        raise ValueError("a batch's X is a scalar; expected a batch of examples")
    return int(shape[0])


def _labels(y, B: int, N: int, index: int) -> np.ndarray:
    try:
        return inputs.check_labels(y, B, N).astype(np.int32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"batch {index}: {e}") from None


def _check_feature_shape(info: LayerInfo, h, M: int) -> None:
    shape, dtype = tuple(h.shape), h.dtype
    if len(shape) != 2 or shape[1] != M:
        raise ValueError(
            f"the input of layer {info.name!r} has shape {shape}; explicit_head needs one "
            f"feature vector per example, (batch, {M}) (flatten before the layer)")
    if not (jnp.issubdtype(dtype, jnp.floating) or dtype in (jnp.uint8, jnp.bool_)):
        raise ValueError(f"the input of layer {info.name!r} has dtype {dtype}; expected "
                         "float features (a layer taking token ids is fitted with "
                         "xsol.fit_explicit on the ids)")


def _fit_beta(features, state, batches, W, b, layer_normalize: str, N: int) -> float:
    """The inverse temperature of the layer's logits ``beta * n(h) @ W + b``, on the batches."""

    @jax.jit
    def scores(state, X):
        h = features(state, X)
        return inputs.linear_logits(W, jnp.zeros_like(b), h, "dense", layer_normalize)

    S, Y = [], []
    for i, batch in enumerate(_iterate(batches)):
        X, y = _split_batch(batch, i)
        S.append(np.asarray(scores(state, X)))
        Y.append(_labels(y, S[-1].shape[0], N, i))
    return fit_inverse_temperature(np.concatenate(S), b, np.concatenate(Y))


def _layer_params(info: LayerInfo, W, b, model):
    """The fitted weights in the layer's own structure (dtype of its kernel and bias)."""
    W = jnp.asarray(W, jnp.asarray(info.kernel).dtype)
    if info.bias_name is None:
        values = {info.kernel_name: W}
    else:
        values = {info.kernel_name: W,
                  info.bias_name: jnp.asarray(b, jnp.asarray(info.bias).dtype)}
    if isinstance(model, nnx.Module):
        variables = {info.kernel_name: info.kernel.replace(values[info.kernel_name])}
        if info.bias_name is not None:
            variables[info.bias_name] = info.bias.replace(values[info.bias_name])
        tree: Any = variables
        for p in reversed(info.path):
            tree = {p: tree}
        return nnx.State(tree)
    return values
