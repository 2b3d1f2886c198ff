"""The models of :mod:`xsol.models.linen` written with ``flax.nnx``.

The same three models with the same names, conventions and logits:

* :class:`SoftmaxRegression` -- dense features ``(B, M)`` -> ``N`` classes.
* :class:`TokenLM` -- a window of ``K`` previous token ids ``(B, K)`` -> the
  next token (row ``k * V + id`` of ``W``, the :class:`xsol.ExplicitSolution` layout).
* :class:`MLP` -- a stack of softmax layers with positive hidden activations.

Every layer computes ``z = x~ W + b`` with :func:`xsol.core.inputs.linear_logits`,
``x~`` its input normalized per example, so explicit weights drop in unchanged.
An NNX model holds its parameters: ``nnx.Param`` attributes ``W`` and ``b``
(an :class:`MLP` has ``layers[l].W``, ``layers[l].b``). Given the same
parameters, a model here and its :mod:`xsol.models.linen` counterpart compute the
same logits (:meth:`SoftmaxRegression.linen` and ``linen_params()`` give the
counterpart, ``from_linen`` the way back).

Constructors and helpers::

    model = SoftmaxRegression(64, 10, rngs=nnx.Rngs(0))     # random init
    model = SoftmaxRegression.from_explicit(solution)       # sizes from the solution
    nnx.update(model, model.explicit_params(solution))      # load into a model
    logits = model(X)

Sharded weights (``xsol.solve(stats, mesh=...)``): a ``W`` split over a mesh
becomes an ``nnx.Param`` holding that array, annotated with its partitioning
(``out_sharding`` metadata, as ``nnx.with_partitioning`` would give, and the
mesh), so ``nnx.get_partition_spec(nnx.state(model))`` reports it; a model
built by ``from_explicit`` from such weights is assembled around them
(``nnx.eval_shape``), never allocating a full random ``W`` on one device.

``explicit_params(source)`` is the counterpart of the linen models'
``from_explicit(source)``: an ``nnx.State`` of parameters for this model's
configuration, validated the same way. ``init_params(seed)``,
``layer_weights(params=None)``, ``layer_normalizations()`` and ``prepare(X)``
are as in :mod:`xsol.models.linen`, so :func:`xsol.train.train_and_evaluate` trains
these models with ``nnx.Optimizer``.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from xsol.core import inputs
from xsol.models import linen as linen_models
from xsol.models.layer import (as_pair, check_dense_layer, check_token_layer, layer_logits,
                               prepare_dense, prepare_ids)
from xsol.models.linen import resolve_activation
from xsol.models.nnx_base import (
    LECUN_NORMAL,
    ZEROS,
    Initializer,
    Layer,
    Model,
    OneLayer,
    as_param,
    as_rngs,
    explicit_model,
    source_weights,
)
from xsol.solvers.explicit import ExplicitSolution


class SoftmaxRegression(OneLayer):
    """Softmax regression on dense non-negative features (NNX).

    ``logits = x~ W + b`` with ``x~ = x / sum(x)`` for ``normalize="l1"``: the
    logits of :class:`xsol.models.linen.SoftmaxRegression` and of
    :meth:`xsol.ExplicitSolution.logits`.

    Args:
      num_features: ``M``.
      num_classes: ``N``.
      normalize: ``"l1"`` (default) or ``"none"``.
      kernel_init: initializer of ``W``.
      bias_init: initializer of ``b``.
      rngs: an ``nnx.Rngs`` (or an int seed; None: seed 0) for the initializers.
    """

    kind: ClassVar[str] = "dense"
    task: ClassVar[str] = "classification"
    _fields: ClassVar[tuple] = ("num_features", "num_classes", "normalize", "kernel_init",
                                "bias_init")

    def __init__(self, num_features: int, num_classes: int, *, normalize: str = "l1",
                 kernel_init: Initializer = LECUN_NORMAL, bias_init: Initializer = ZEROS,
                 rngs: nnx.Rngs | int | None = None):
        check_dense_layer(num_features, num_classes, normalize)
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self.normalize = normalize
        self._init_weights(self.num_features, self.num_classes, kernel_init, bias_init, rngs)

    def __call__(self, X):
        """Logits ``(B, N)`` for dense features ``X`` of shape ``(B, M)``."""
        return inputs.linear_logits(self.W[...], self.b[...], X, "dense", self.normalize)

    def explicit_params(self, source) -> nnx.State:
        """Parameters ``{W, b}`` for this model from explicit weights, as an ``nnx.State``.

        Args:
          source: an :class:`xsol.ExplicitSolution` (uses ``scaled_weights()``
            and ``bias``; kind and normalization must match), a pair ``(W, b)``,
            a dict ``{"W", "b"}`` or a matrix ``W`` of shape ``(M, N)`` (bias 0).

        Returns:
          A State for ``nnx.update(model, state)``, float32.
        """
        W, b = as_pair(source, (self.num_features, self.num_classes), "SoftmaxRegression",
                        kind="dense", normalize=self.normalize)
        return nnx.State({"W": as_param(W), "b": as_param(b)})

    @classmethod
    def from_explicit(cls, source, *, normalize: str | None = None,
                      rngs: nnx.Rngs | int | None = None, **config) -> "SoftmaxRegression":
        """A model holding explicit weights; ``M`` and ``N`` come from their shape.

        Args:
          source: an :class:`xsol.ExplicitSolution` fitted on dense features
            (its normalization is the model's), a pair ``(W, b)`` or a matrix ``W``.
          normalize: the model's normalization; default the solution's (or ``"l1"``).
          rngs: only initializes the model before the weights are set (unused
            when the weights are split over devices: the model is then built
            around them).
          **config: other constructor arguments (``kernel_init``, ``bias_init``).
        """
        W = source_weights(source)
        if normalize is None:
            normalize = source.normalize if isinstance(source, ExplicitSolution) else "l1"
        return explicit_model(cls, source, dict(num_features=int(W.shape[0]),
                                                 num_classes=int(W.shape[1]),
                                                 normalize=normalize, **config), rngs)

    def prepare(self, X):
        """Validates dense features ``(B, M)`` (non-negative, finite) on the host."""
        return prepare_dense(X, self.num_features)


class TokenLM(OneLayer):
    """Next-token softmax over a window of ``K`` previous tokens (NNX).

    ``logits_b = c * sum_k W[k * V + X[b, k]] + b`` with ``c = 1/K`` for
    ``normalize="l1"`` and ``1`` for ``"none"``, as :class:`xsol.models.linen.TokenLM`.

    Args:
      vocab_size: ``V``.
      window: ``K`` (1 for a bigram model).
      num_classes: ``N``; default ``V``.
      normalize: ``"l1"`` (default) or ``"none"``.
      kernel_init, bias_init: initializers of ``W`` and ``b``.
      rngs: an ``nnx.Rngs`` (or an int seed; None: seed 0).
    """

    kind: ClassVar[str] = "ids"
    task: ClassVar[str] = "lm"
    _fields: ClassVar[tuple] = ("vocab_size", "window", "num_classes", "normalize",
                                "kernel_init", "bias_init")

    def __init__(self, vocab_size: int, window: int = 1, num_classes: int | None = None, *,
                 normalize: str = "l1", kernel_init: Initializer = LECUN_NORMAL,
                 bias_init: Initializer = ZEROS, rngs: nnx.Rngs | int | None = None):
        check_token_layer(vocab_size, window, num_classes, normalize)
        self.vocab_size, self.window = int(vocab_size), int(window)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.normalize = normalize
        self._init_weights(self.num_features, self.num_outputs, kernel_init, bias_init, rngs)

    @property
    def num_outputs(self) -> int:
        """``N``."""
        return self.vocab_size if self.num_classes is None else self.num_classes

    @property
    def num_features(self) -> int:
        """``M = K * V``."""
        return self.window * self.vocab_size

    def __call__(self, X):
        """Logits ``(B, N)`` for token ids ``X``, ``(B, K)`` (or ``(B,)`` when ``K = 1``)."""
        if X.ndim == 1:
            X = X[:, None]
        return layer_logits(self.W[...], self.b[...], X, "ids", self.normalize)

    def explicit_params(self, source) -> nnx.State:
        """Parameters ``{W, b}`` from explicit weights, as in :class:`xsol.models.linen.TokenLM`."""
        W, b = as_pair(source, (self.num_features, self.num_outputs), "TokenLM", kind="ids",
                        normalize=self.normalize, vocab_size=self.vocab_size, window=self.window)
        return nnx.State({"W": as_param(W), "b": as_param(b)})

    @classmethod
    def from_explicit(cls, source, *, vocab_size: int | None = None, window: int | None = None,
                      normalize: str | None = None, rngs: nnx.Rngs | int | None = None,
                      **config) -> "TokenLM":
        """A model holding explicit weights.

        Args:
          source: an :class:`xsol.ExplicitSolution` fitted on token ids (its
            window, vocabulary and normalization are the model's), or ``(W, b)``
            / ``W`` with ``vocab_size`` and ``window`` given.
          vocab_size, window, normalize: default the solution's.
          rngs: only initializes the model before the weights are set (unused
            when the weights are split over devices).
          **config: ``kernel_init``, ``bias_init``.
        """
        W = source_weights(source)
        if isinstance(source, ExplicitSolution):
            if source.kind != "ids":
                raise ValueError("TokenLM.from_explicit: the explicit solution was fitted on "
                                 f"{source.kind!r} inputs, not token ids")
            vocab_size = source.vocab_size if vocab_size is None else vocab_size
            window = source.window if window is None else window
            normalize = source.normalize if normalize is None else normalize
        if window is None:
            window = 1
        if vocab_size is None:
            if W.shape[0] % window:
                raise ValueError(f"TokenLM.from_explicit: W has {W.shape[0]} rows, not a "
                                 f"multiple of window={window}")
            vocab_size = int(W.shape[0]) // window
        return explicit_model(cls, source, dict(vocab_size=vocab_size, window=window,
                                                 num_classes=int(W.shape[1]),
                                                 normalize=normalize or "l1", **config), rngs)

    def prepare(self, X):
        """Validates token ids ``(B,)`` or ``(B, K)`` on the host; returns int32 ``(B, K)``."""
        return prepare_ids(X, self.vocab_size, self.window)


class MLP(Model):
    """A network of softmax layers with positive hidden activations (NNX).

    Layer ``l`` computes ``z_l = n_l(h_l) W_l + b_l`` with ``h_0 = X`` and
    ``h_{l+1} = act(z_l)``; the last ``z`` are the logits. The same network
    as :class:`xsol.models.linen.MLP`; its layers are ``model.layers[l]`` with
    parameters ``W`` and ``b`` (linen: ``params["layers_<l>"]``).

    Args:
      num_features: ``M`` (for ``input_kind="ids"``: ``window * vocab_size``).
      hidden: hidden widths, e.g. ``(128,)``; may be empty.
      num_classes: ``N``.
      activation: ``"softmax"``, ``"sigmoid"`` (default) or ``"relu"``.
      normalize: normalization of the network input, ``"l1"`` or ``"none"``.
      hidden_normalize: normalization of hidden activations; default ``"l1"``.
      input_kind: ``"dense"`` (default) or ``"ids"``.
      window: ``K`` for ``input_kind="ids"``.
      kernel_init, bias_init: initializers of every ``W`` and ``b``.
      rngs: an ``nnx.Rngs`` (or an int seed; None: seed 0).
    """

    task: ClassVar[str] = "classification"
    _fields: ClassVar[tuple] = ("num_features", "hidden", "num_classes", "activation",
                                "normalize", "hidden_normalize", "input_kind", "window",
                                "kernel_init", "bias_init")

    def __init__(self, num_features: int, hidden: Sequence[int], num_classes: int, *,
                 activation: str = "sigmoid", normalize: str = "l1",
                 hidden_normalize: str = "l1", input_kind: str = "dense", window: int = 1,
                 kernel_init: Initializer = LECUN_NORMAL, bias_init: Initializer = ZEROS,
                 rngs: nnx.Rngs | int | None = None):
        # The linen module validates the configuration with the same messages.
        linen_models.MLP(num_features, tuple(hidden) if not isinstance(hidden, (int, np.integer))
                         else hidden, num_classes, activation=activation, normalize=normalize,
                         hidden_normalize=hidden_normalize, input_kind=input_kind,
                         window=window)
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self.hidden = tuple(int(w) for w in hidden)
        self.activation, self.normalize, self.hidden_normalize = (activation, normalize,
                                                                  hidden_normalize)
        self.input_kind, self.window = input_kind, int(window)
        self.kernel_init, self.bias_init = kernel_init, bias_init
        rngs = as_rngs(rngs)
        sizes, norms = self.sizes, self.layer_normalizations()
        self.layers = nnx.List([
            Layer(sizes[l], sizes[l + 1], kind=input_kind if l == 0 else "dense",
                   normalize=norms[l], kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)
            for l in range(self.num_layers)
        ])

    def _layers(self) -> list:
        return list(self.layers)

    @property
    def kind(self) -> str:
        """The input kind, ``"dense"`` or ``"ids"``."""
        return self.input_kind

    @property
    def sizes(self) -> list:
        """``[M, h_1, ..., N]``: layer ``l`` maps ``sizes[l]`` to ``sizes[l + 1]``."""
        return [self.num_features, *self.hidden, self.num_classes]

    @property
    def num_layers(self) -> int:
        return len(self.hidden) + 1

    def layer_normalizations(self) -> list:
        """The normalization of each layer's input: ``[normalize, hidden_normalize, ...]``."""
        return [self.normalize] + [self.hidden_normalize] * len(self.hidden)

    def _inputs(self, X):
        if self.input_kind == "ids" and X.ndim == 1:
            X = X[:, None]
        hs, h = [X], X
        for layer in list(self.layers)[:-1]:
            h = resolve_activation(self.activation, layer(h))
            hs.append(h)
        return hs

    def __call__(self, X):
        """Logits ``(B, N)``."""
        return self.layers[-1](self._inputs(X)[-1])

    def layer_inputs(self, X) -> list:
        """The activations entering each layer, before its normalization: ``X``, ``act(z_l)``..."""
        return self._inputs(jnp.asarray(X))

    def explicit_params(self, layers) -> nnx.State:
        """Parameters from per-layer explicit weights (see :meth:`xsol.models.linen.MLP.from_explicit`).

        Args:
          layers: ``num_layers`` items, bottom first, each an
            :class:`xsol.ExplicitSolution`, a pair ``(W_l, b_l)`` or a matrix ``W_l``.

        Returns:
          ``State({"layers": {l: {"W", "b"}}})`` for ``nnx.update(model, state)``.
        """
        params = self.linen().from_explicit(layers)
        return nnx.State({"layers": {l: {"W": nnx.Param(params[f"layers_{l}"]["W"]),
                                          "b": nnx.Param(params[f"layers_{l}"]["b"])}
                                     for l in range(self.num_layers)}})

    @classmethod
    def from_explicit(cls, layers, *, activation: str = "sigmoid",
                      rngs: nnx.Rngs | int | None = None, **config) -> "MLP":
        """A network holding per-layer explicit weights; the sizes come from their shapes.

        Args:
          layers: per-layer weights, bottom first (see :meth:`explicit_params`).
          activation: the hidden activation.
          rngs: only initializes the model before the weights are set.
          **config: other constructor arguments (``normalize``,
            ``hidden_normalize``, ``input_kind``, ``window``, ...); the input
            normalization defaults to the first solution's.
        """
        if isinstance(layers, ExplicitSolution) or not isinstance(layers, (list, tuple)) \
                or not layers:
            raise ValueError("MLP.from_explicit expects a list of per-layer weights "
                             "(ExplicitSolution, (W, b) or W), bottom layer first")
        shapes = [tuple(source_weights(s).shape) for s in layers]
        first = layers[0]
        if isinstance(first, ExplicitSolution):
            config.setdefault("normalize", first.normalize)
            if first.kind == "ids":
                config.setdefault("input_kind", "ids")
                config.setdefault("window", first.window)
        if len(layers) > 1 and isinstance(layers[1], ExplicitSolution):
            config.setdefault("hidden_normalize", layers[1].normalize)
        model = cls(shapes[0][0], [s[1] for s in shapes[:-1]], shapes[-1][1],
                    activation=activation, rngs=rngs, **config)
        nnx.update(model, model.explicit_params(layers))
        return model

    def linen_params(self) -> dict:
        """``{"layers_0": {"W", "b"}, ...}``, the :mod:`xsol.models.linen` layout."""
        return {f"layers_{l}": {"W": layer.W[...], "b": layer.b[...]}
                for l, layer in enumerate(self.layers)}

    def prepare(self, X):
        """Validates the network input on the host (dense features or token ids)."""
        if self.input_kind == "ids":
            return prepare_ids(X, self.num_features // self.window, self.window)
        return prepare_dense(X, self.num_features)


def layer_inputs(model: MLP, X) -> list:
    """The activations entering each layer of an NNX :class:`MLP` (``X`` first)."""
    if not isinstance(model, MLP):
        raise ValueError(f"layer_inputs needs an MLP, got {type(model).__name__}")
    return model.layer_inputs(X)


def is_nnx(model) -> bool:
    """Whether ``model`` is a ``flax.nnx`` module."""
    return isinstance(model, nnx.Module)


__all__ = ["MLP", "SoftmaxRegression", "TokenLM", "is_nnx", "layer_inputs"]
