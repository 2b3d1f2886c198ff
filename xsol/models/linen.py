"""Flax models whose layers are softmax layers on non-negative features.

Every layer computes ``z = x~ W + b`` with :func:`xsol.core.inputs.linear_logits`,
``x~`` the layer's input normalized per example (``normalize="l1"``:
``x / sum(x)``; for token ids the average of the ``K`` one-hot blocks' rows).
These are exactly the logits :func:`xsol.solvers.softmax_nll` and
:class:`xsol.ExplicitSolution` compute, so explicit weights drop into a model
unchanged and a warm-started model starts at the explicit solution's loss.

Three models:

* :class:`SoftmaxRegression` -- dense features ``(B, M)`` -> ``N`` classes.
* :class:`TokenLM` -- a window of ``K`` previous token ids ``(B, K)`` -> the
  next token, as a row lookup into ``W`` of shape ``(K * V, N)`` (feature index
  ``k * V + id``, the :class:`xsol.ExplicitSolution` layout; no one-hot matrix
  is built).
* :class:`MLP` -- a stack of such layers with positive hidden activations
  (softmax, sigmoid or ReLU), so every layer's input is a valid input for an
  explicit solution.

Written with ``flax.linen`` (not ``flax.nnx``): parameters are a plain nested
dict of arrays, kept apart from the module, which is what ``jit``/``lax``
loops and Optax want, and what compares directly with explicit weights. A
single-layer model's parameters are ``{"W": (M, N), "b": (N,)}``; an
:class:`MLP`'s are ``{"layers_0": {"W", "b"}, "layers_1": {...}, ...}``.
Apply a model with ``model.apply({"params": params}, X)``.

Sharded weights: ``W`` from a row-sharded solve (``xsol.solve(stats, mesh=...)``)
goes into the params unchanged, so ``params["W"]`` keeps its
``NamedSharding`` (rows split over the mesh axis) and a zero bias is placed
replicated on the same mesh; ``jit(model.apply)`` then runs on that mesh. With
``Explicit`` mesh axes (``jax.make_mesh``'s default) the token-id row lookup
names its output sharding (the batch's), as explicit sharding requires.

Each model has the same helper methods (callable on the unbound module):
``init_params(seed)`` (random initialization), ``from_explicit(...)`` (params
from explicit weights), ``layer_weights(params)`` (the list of ``(W, b)``
pairs), ``layer_normalizations()`` and ``prepare(X)`` (host-side validation).
"""

from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import inputs
from xsol.core.checks import positive_int
from xsol.models.layer import (
    as_pair,
    check_dense_layer,
    check_token_layer,
    layer_logits,
    prepare_dense,
    prepare_ids,
)
from xsol.solvers.explicit import ExplicitSolution

Params = dict
Initializer = Callable[..., jax.Array]

ACTIVATIONS = ("softmax", "sigmoid", "relu")


def _key(seed_or_key) -> jax.Array:
    if isinstance(seed_or_key, (int, np.integer)):
        return jax.random.PRNGKey(int(seed_or_key))
    return seed_or_key


class _OneLayer:
    """What the single-layer models share: one ``(W, b)`` pair and its normalization."""

    @nn.nowrap
    def layer_weights(self, params: Params) -> list:
        """``[(W, b)]``: the one layer's weights."""
        return [(params["W"], params["b"])]

    @nn.nowrap
    def layer_normalizations(self) -> list:
        """``[normalize]``: how the one layer's input is normalized."""
        return [self.normalize]

    @nn.nowrap
    def init_params(self, seed=0) -> Params:
        """Randomly initialized ``{"W", "b"}`` from an int seed or a PRNG key."""
        if self.kind == "ids":  # one window of K token ids
            example = jnp.zeros((1, self.window), jnp.int32)
        else:
            example = jnp.zeros((1, self.num_features), jnp.float32)
        return self.init(_key(seed), example)["params"]


class SoftmaxRegression(_OneLayer, nn.Module):
    """Softmax regression on dense non-negative features.

    ``logits = x~ W + b`` with ``x~ = x / sum(x)`` for ``normalize="l1"``
    (:func:`xsol.core.inputs.linear_logits`, ``kind="dense"``).

    Attributes:
      num_features: ``M``.
      num_classes: ``N``.
      normalize: ``"l1"`` (default) or ``"none"``.
      kernel_init: initializer of ``W`` for :meth:`init_params`.
      bias_init: initializer of ``b``.
    """

    kind: ClassVar[str] = "dense"
    task: ClassVar[str] = "classification"

    num_features: int
    num_classes: int
    normalize: str = "l1"
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()

    def __post_init__(self):
        check_dense_layer(self.num_features, self.num_classes, self.normalize)
        super().__post_init__()

    @nn.compact
    def __call__(self, X):
        """Logits ``(B, N)`` for dense features ``X`` of shape ``(B, M)``."""
        W = self.param("W", self.kernel_init, (self.num_features, self.num_classes), jnp.float32)
        b = self.param("b", self.bias_init, (self.num_classes,), jnp.float32)
        return inputs.linear_logits(W, b, X, "dense", self.normalize)

    @nn.nowrap
    def from_explicit(self, source) -> Params:
        """Parameters ``{"W": W, "b": b}`` from explicit weights.

        Args:
          source: an :class:`xsol.ExplicitSolution` (uses ``scaled_weights()``
            and ``bias``; kind and normalization must match), a pair ``(W, b)``
            or a matrix ``W`` of shape ``(M, N)`` (bias 0).

        Returns:
          The params dict, float32.
        """
        W, b = as_pair(source, (self.num_features, self.num_classes), "SoftmaxRegression",
                        kind="dense", normalize=self.normalize)
        return {"W": W, "b": b}

    @nn.nowrap
    def prepare(self, X):
        """Validates dense features ``(B, M)`` (non-negative, finite) on the host."""
        return prepare_dense(X, self.num_features)


class TokenLM(_OneLayer, nn.Module):
    """Next-token softmax over a window of ``K`` previous tokens (one-hot blocks).

    ``logits_b = c * sum_k W[k * V + X[b, k]] + b`` with ``c = 1/K`` for
    ``normalize="l1"`` and ``c = 1`` for ``"none"``: a row lookup per position,
    the same as a K-hot input times ``W`` of shape ``(K * V, N)``.

    Attributes:
      vocab_size: ``V``.
      window: ``K`` (1 for a bigram model).
      num_classes: ``N``; default ``V``.
      normalize: ``"l1"`` (default) or ``"none"``.
      kernel_init, bias_init: the initializers of ``W`` and ``b`` for :meth:`init_params`.
    """

    kind: ClassVar[str] = "ids"
    task: ClassVar[str] = "lm"

    vocab_size: int
    window: int = 1
    num_classes: int | None = None
    normalize: str = "l1"
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()

    def __post_init__(self):
        check_token_layer(self.vocab_size, self.window, self.num_classes, self.normalize)
        super().__post_init__()

    @property
    def num_outputs(self) -> int:
        """``N``."""
        return self.vocab_size if self.num_classes is None else int(self.num_classes)

    @property
    def num_features(self) -> int:
        """``M = K * V``."""
        return self.window * self.vocab_size

    @nn.compact
    def __call__(self, X):
        """Logits ``(B, N)`` for token ids ``X`` of shape ``(B, K)`` (int32)."""
        W = self.param("W", self.kernel_init, (self.num_features, self.num_outputs), jnp.float32)
        b = self.param("b", self.bias_init, (self.num_outputs,), jnp.float32)
        if X.ndim == 1:
            X = X[:, None]
        return layer_logits(W, b, X, "ids", self.normalize)

    @nn.nowrap
    def from_explicit(self, source) -> Params:
        """Parameters ``{"W": W, "b": b}`` from explicit weights.

        Args:
          source: an :class:`xsol.ExplicitSolution` fitted on ids with the same
            window, vocabulary and normalization (uses ``scaled_weights()`` and
            ``bias``), a pair ``(W, b)`` or a matrix ``W`` of shape
            ``(K * V, N)``, row ``k * V + id`` for token ``id`` at position ``k``.

        Returns:
          The params dict, float32.
        """
        W, b = as_pair(source, (self.num_features, self.num_outputs), "TokenLM", kind="ids",
                        normalize=self.normalize, vocab_size=self.vocab_size, window=self.window)
        return {"W": W, "b": b}

    @nn.nowrap
    def prepare(self, X):
        """Validates token ids ``(B,)`` or ``(B, K)`` on the host; returns int32 ``(B, K)``."""
        return prepare_ids(X, self.vocab_size, self.window)


class _SoftmaxLayer(nn.Module):
    """One layer ``x~ W + b`` of an :class:`MLP` (params ``W``, ``b``)."""

    num_inputs: int
    num_outputs: int
    kind: str
    normalize: str
    kernel_init: Initializer
    bias_init: Initializer

    @nn.compact
    def __call__(self, x):
        W = self.param("W", self.kernel_init, (self.num_inputs, self.num_outputs), jnp.float32)
        b = self.param("b", self.bias_init, (self.num_outputs,), jnp.float32)
        return layer_logits(W, b, x, self.kind, self.normalize)


def resolve_activation(name: str, z):
    if name == "softmax":
        return jax.nn.softmax(z, axis=-1)
    if name == "sigmoid":
        return jax.nn.sigmoid(z)
    return jax.nn.relu(z)


class MLP(nn.Module):
    """A network of softmax layers with positive hidden activations.

    Layer ``l`` computes ``z_l = n_l(h_l) W_l + b_l`` where ``h_0 = X``,
    ``h_{l+1} = act(z_l)`` and ``n_l`` is the layer's per-example normalization
    (``normalize`` for the input, ``hidden_normalize`` for hidden activations).
    The last layer's ``z`` are the logits. Because ``act`` is positive
    (softmax, sigmoid or ReLU), every ``h_l`` is a valid input for an explicit
    solution fitted with ``normalize=n_l``; :meth:`layer_inputs` returns them.

    Attributes:
      num_features: ``M`` (for ``input_kind="ids"``: ``window * vocab_size``).
      hidden: hidden widths, e.g. ``(128,)`` or ``(256, 64)``; may be empty.
      num_classes: ``N``.
      activation: ``"softmax"``, ``"sigmoid"`` (default) or ``"relu"``.
      normalize: normalization of the network input, ``"l1"`` or ``"none"``.
      hidden_normalize: normalization of hidden activations entering the next
        layer; default ``"l1"`` (the explicit solution's convention).
      input_kind: ``"dense"`` (default) or ``"ids"`` (token windows; then
        ``window`` gives ``K`` and ``num_features`` must be ``K * V``).
      window: ``K`` for ``input_kind="ids"``.
      kernel_init: initializer of every ``W`` for :meth:`init_params`.
      bias_init: initializer of every ``b``.
    """

    num_features: int
    hidden: Sequence[int]
    num_classes: int
    activation: str = "sigmoid"
    normalize: str = "l1"
    hidden_normalize: str = "l1"
    input_kind: str = "dense"
    window: int = 1
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()

    task: ClassVar[str] = "classification"

    def __post_init__(self):
        positive_int(self.num_features, "num_features")
        positive_int(self.num_classes, "num_classes")
        if isinstance(self.hidden, (int, np.integer)):
            raise ValueError(f"hidden must be a sequence of widths, e.g. ({self.hidden},)")
        for w in self.hidden:
            positive_int(w, "every hidden width")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {ACTIVATIONS} (positive, so every layer's "
                f"input is a valid explicit-solution input), got {self.activation!r}"
            )
        inputs.check_normalize(self.normalize)
        inputs.check_normalize(self.hidden_normalize)
        if self.input_kind not in ("dense", "ids"):
            raise ValueError(f"input_kind must be 'dense' or 'ids', got {self.input_kind!r}")
        positive_int(self.window, "window")
        if self.input_kind == "ids" and self.num_features % self.window:
            raise ValueError(
                f"num_features={self.num_features} is not a multiple of window={self.window}; "
                "for token ids num_features must be window * vocab_size"
            )
        super().__post_init__()

    @property
    def kind(self) -> str:
        """The input kind, ``"dense"`` or ``"ids"``."""
        return self.input_kind

    @property
    def sizes(self) -> list:
        """``[M, h_1, ..., N]``: layer ``l`` maps ``sizes[l]`` to ``sizes[l + 1]``."""
        return [int(self.num_features), *(int(w) for w in self.hidden), int(self.num_classes)]

    @property
    def num_layers(self) -> int:
        return len(self.hidden) + 1

    def setup(self):
        sizes = self.sizes
        norms = self.layer_normalizations()
        self.layers = [
            _SoftmaxLayer(sizes[l], sizes[l + 1], self.input_kind if l == 0 else "dense", norms[l],
                          self.kernel_init, self.bias_init)
            for l in range(self.num_layers)
        ]

    def _inputs(self, X):
        if self.input_kind == "ids" and X.ndim == 1:
            X = X[:, None]
        hs, h = [X], X
        for layer in self.layers[:-1]:
            h = resolve_activation(self.activation, layer(h))
            hs.append(h)
        return hs

    def __call__(self, X):
        """Logits ``(B, N)``."""
        return self.layers[-1](self._inputs(X)[-1])

    def layer_inputs(self, X):
        """The activations entering each layer, before that layer's normalization.

        Returns:
          A list of ``num_layers`` arrays: ``X`` itself, then each hidden
          layer's activations ``act(z_l)`` of shape ``(B, hidden[l])``.
          Call it as ``model.apply({"params": p}, X, method="layer_inputs")``
          or with :func:`layer_inputs`.
        """
        return self._inputs(X)

    @nn.nowrap
    def layer_normalizations(self) -> list:
        """The normalization of each layer's input: ``[normalize, hidden_normalize, ...]``."""
        return [self.normalize] + [self.hidden_normalize] * len(self.hidden)

    @nn.nowrap
    def init_params(self, seed=0) -> Params:
        """Randomly initialized ``{"layers_0": {"W", "b"}, ...}`` from a seed or key."""
        if self.input_kind == "ids":
            dummy = jnp.zeros((1, self.window), jnp.int32)
        else:
            dummy = jnp.zeros((1, self.num_features), jnp.float32)
        return self.init(_key(seed), dummy)["params"]

    @nn.nowrap
    def from_explicit(self, layers) -> Params:
        """Parameters from per-layer explicit weights.

        Args:
          layers: a sequence of ``num_layers`` items, one per layer, bottom
            first; each an :class:`xsol.ExplicitSolution` (fitted with that
            layer's normalization; uses ``scaled_weights()`` and ``bias``), a
            pair ``(W_l, b_l)`` or a matrix ``W_l`` of shape
            ``(sizes[l], sizes[l + 1])`` (bias 0).

        Returns:
          ``{"layers_0": {"W", "b"}, ...}``, float32.
        """
        if isinstance(layers, ExplicitSolution) or not isinstance(layers, (list, tuple)):
            raise ValueError(
                f"MLP.from_explicit expects a list of {self.num_layers} per-layer weights "
                "(ExplicitSolution, (W, b) or W), bottom layer first"
            )
        if len(layers) != self.num_layers:
            raise ValueError(
                f"MLP.from_explicit got {len(layers)} layers' weights, the model has "
                f"{self.num_layers} layers"
            )
        sizes, norms = self.sizes, self.layer_normalizations()
        params = {}
        for l, src in enumerate(layers):
            kind = self.input_kind if l == 0 else "dense"
            W, b = as_pair(src, (sizes[l], sizes[l + 1]), f"MLP layer {l}", kind=kind,
                            normalize=norms[l], vocab_size=sizes[0] // self.window,
                            window=self.window)
            params[f"layers_{l}"] = {"W": W, "b": b}
        return params

    @nn.nowrap
    def layer_weights(self, params: Params) -> list:
        """``[(W_0, b_0), ..., (W_L, b_L)]``, bottom layer first."""
        return [(params[f"layers_{l}"]["W"], params[f"layers_{l}"]["b"])
                for l in range(self.num_layers)]

    @nn.nowrap
    def prepare(self, X):
        """Validates the network input on the host (dense features or token ids)."""
        if self.input_kind == "ids":
            return prepare_ids(X, self.num_features // self.window, self.window)
        return prepare_dense(X, self.num_features)


def layer_inputs(model: MLP, params: Params, X) -> list:
    """The activations entering each layer of ``model`` (see :meth:`MLP.layer_inputs`).

    Args:
      model: an :class:`MLP`.
      params: its parameters.
      X: the network input.

    Returns:
      A list of ``model.num_layers`` arrays, ``X`` first.
    """
    if not isinstance(model, MLP):
        raise ValueError(f"layer_inputs needs an MLP, got {type(model).__name__}")
    return model.apply({"params": params}, jnp.asarray(X), method="layer_inputs")


def apply_model(model: nn.Module, params: Params, X) -> jax.Array:
    """Logits of ``model`` with ``params`` on ``X``: ``model.apply({"params": params}, X)``."""
    return model.apply({"params": params}, X)

