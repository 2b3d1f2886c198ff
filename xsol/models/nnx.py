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

from typing import Callable, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xsol.core import inputs
from xsol.models import linen as linen_models
from xsol.solvers.explicit import ExplicitSolution
from xsol.models.linen import (
    resolve_activation,
    as_pair,
    check_positive_int,
    is_sharded,
    prepare_dense,
    prepare_ids,
    layer_logits,
)

Initializer = Callable[..., jax.Array]

_lecun_normal = nnx.initializers.lecun_normal()
_zeros = nnx.initializers.zeros_init()


def _rngs(rngs) -> nnx.Rngs:
    """``rngs`` as an ``nnx.Rngs``: None means seed 0, an int is a seed."""
    if rngs is None:
        return nnx.Rngs(0)
    if isinstance(rngs, (int, np.integer)) and not isinstance(rngs, bool):
        return nnx.Rngs(int(rngs))
    if isinstance(rngs, nnx.Rngs):
        return rngs
    raise TypeError(f"rngs must be an nnx.Rngs, an int seed or None, got {type(rngs).__name__}")


def _value(x):
    """The array of an ``nnx.Variable`` (or the array itself)."""
    return x[...] if isinstance(x, nnx.Variable) else x


def _param(x) -> nnx.Param:
    """``nnx.Param(x)``; for an array split over a mesh, annotated with its partitioning.

    The annotation is the ``out_sharding``/``mesh`` metadata of
    ``nnx.with_partitioning``; the array is already placed, so it is not moved
    (``eager_sharding=False``).
    """
    if is_sharded(x):
        spec = tuple(x.sharding.spec) + (None,) * (x.ndim - len(x.sharding.spec))
        if any(a is not None for a in spec):
            return nnx.Param(x, out_sharding=spec, mesh=x.sharding.mesh, eager_sharding=False)
    return nnx.Param(x)


def _explicit_model(cls, source, config: dict, rngs):
    """``cls(**config)`` holding the explicit weights of ``source``.

    When the weights are split over several devices, the model is built
    abstractly (``nnx.eval_shape``) and merged with them, so no random
    ``(M, N)`` matrix is ever allocated on one device; otherwise it is
    initialized with ``rngs`` and updated.
    """
    if is_sharded(_source_weights(source)):
        abstract = nnx.eval_shape(lambda: cls(**config, rngs=nnx.Rngs(0)))
        graphdef, _ = nnx.split(abstract)
        return nnx.merge(graphdef, abstract.explicit_params(source))
    model = cls(**config, rngs=rngs)
    nnx.update(model, model.explicit_params(source))
    return model


def _params_state(model: nnx.Module) -> nnx.State:
    return nnx.state(model, nnx.Param)


def _as_param_state(params, model: nnx.Module) -> nnx.State:
    """``params`` (an ``nnx.State`` or a pure nested dict) as a State shaped like ``model``'s."""
    if isinstance(params, nnx.State):
        return params
    if isinstance(params, dict):
        state = nnx.clone(_params_state(model))
        try:
            nnx.replace_by_pure_dict(state, params)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"params do not match the model's parameters "
                f"{jax.tree.map(jnp.shape, nnx.to_pure_dict(state))}: {e}") from e
        return state
    raise TypeError(f"params must be an nnx.State or a dict, got {type(params).__name__}")


class _Layer(nnx.Module):
    """One softmax layer ``x~ W + b`` (params ``W``, ``b``)."""

    def __init__(self, num_inputs: int, num_outputs: int, *, kind: str, normalize: str,
                 kernel_init: Initializer, bias_init: Initializer, rngs: nnx.Rngs):
        self.num_inputs, self.num_outputs = int(num_inputs), int(num_outputs)
        self.kind, self.normalize = kind, normalize
        self.W = nnx.Param(kernel_init(rngs.params(), (self.num_inputs, self.num_outputs),
                                       jnp.float32))
        self.b = nnx.Param(bias_init(rngs.params(), (self.num_outputs,), jnp.float32))

    def __call__(self, x):
        if self.kind == "ids" and x.ndim == 1:
            x = x[:, None]
        return layer_logits(self.W[...], self.b[...], x, self.kind, self.normalize)

    def set(self, W, b) -> None:
        self.W[...] = jnp.asarray(W, jnp.float32)
        self.b[...] = jnp.asarray(b, jnp.float32)


class _Model(nnx.Module):
    """What the three models share."""

    def _config(self) -> dict:
        raise NotImplementedError

    def init_params(self, seed=0) -> nnx.State:
        """Random parameters, those ``rngs=nnx.Rngs(seed)`` gives, as an ``nnx.State``."""
        return _params_state(type(self)(**self._config(), rngs=_rngs(seed)))

    def _layers(self) -> list:
        raise NotImplementedError

    def layer_weights(self, params=None) -> list:
        """``[(W, b), ...]`` per layer, bottom first: the model's own or those of ``params``.

        Args:
          params: None (this model's parameters), or an ``nnx.State``/pure dict
            of parameters for a model of this configuration.
        """
        if params is None:
            return [(layer.W[...], layer.b[...]) for layer in self._layers()]
        model = nnx.merge(nnx.graphdef(self), _as_param_state(params, self))
        return model.layer_weights()

    def linen(self):
        """The :mod:`xsol.models.linen` module with the same configuration.

        Initializers left at their defaults are left at the linen module's defaults
        (the same functions), so the module equals one built with the same arguments.
        """
        config = self._config()
        for name, default in (("kernel_init", _lecun_normal), ("bias_init", _zeros)):
            if config[name] is default:
                del config[name]
        return getattr(linen_models, type(self).__name__)(**config)

    def linen_params(self) -> dict:
        """This model's parameters in the :mod:`xsol.models.linen` layout (plain arrays)."""
        raise NotImplementedError

    @classmethod
    def from_linen(cls, module, params, *, rngs=None):
        """The NNX model of a :mod:`xsol.models.linen` ``module`` with its ``params``.

        Args:
          module: a linen model of the same class name.
          params: its params dict (``{"W", "b"}`` or ``{"layers_0": ..., ...}``).
          rngs: unused for the parameters (they are copied); initializes the
            model before they are.
        """
        if type(module).__name__ != cls.__name__ or not isinstance(module, (
                linen_models.SoftmaxRegression, linen_models.TokenLM, linen_models.MLP)):
            raise TypeError(f"{cls.__name__}.from_linen needs an xsol.models.linen.{cls.__name__}, "
                            f"got {type(module).__name__}")
        config = {f: getattr(module, f) for f in cls._fields}
        model = cls(**config, rngs=_rngs(rngs))
        layers = module.layer_weights(params)
        nnx.update(model, model.explicit_params(layers if cls is MLP else layers[0]))
        return model


class _OneLayer(_Model):
    """A model of one softmax layer (``self.W``, ``self.b``)."""

    def _layers(self) -> list:
        return [self]

    def layer_normalizations(self) -> list:
        """``[normalize]``: how the one layer's input is normalized."""
        return [self.normalize]

    def linen_params(self) -> dict:
        """``{"W": W, "b": b}``, the :mod:`xsol.models.linen` layout."""
        return {"W": self.W[...], "b": self.b[...]}


class SoftmaxRegression(_OneLayer):
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
                 kernel_init: Initializer = _lecun_normal, bias_init: Initializer = _zeros,
                 rngs: nnx.Rngs | int | None = None):
        check_positive_int("num_features", num_features)
        check_positive_int("num_classes", num_classes)
        inputs.check_normalize(normalize)
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self.normalize = normalize
        self.kernel_init, self.bias_init = kernel_init, bias_init
        rngs = _rngs(rngs)
        self.W = nnx.Param(kernel_init(rngs.params(), (self.num_features, self.num_classes),
                                       jnp.float32))
        self.b = nnx.Param(bias_init(rngs.params(), (self.num_classes,), jnp.float32))

    def _config(self) -> dict:
        return {f: getattr(self, f) for f in self._fields}

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
        return nnx.State({"W": _param(W), "b": _param(b)})

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
        W = _source_weights(source)
        if normalize is None:
            normalize = source.normalize if isinstance(source, ExplicitSolution) else "l1"
        return _explicit_model(cls, source, dict(num_features=int(W.shape[0]),
                                                 num_classes=int(W.shape[1]),
                                                 normalize=normalize, **config), rngs)

    def prepare(self, X):
        """Validates dense features ``(B, M)`` (non-negative, finite) on the host."""
        return prepare_dense(X, self.num_features)


class TokenLM(_OneLayer):
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
                 normalize: str = "l1", kernel_init: Initializer = _lecun_normal,
                 bias_init: Initializer = _zeros, rngs: nnx.Rngs | int | None = None):
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("window", window)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        inputs.check_normalize(normalize)
        self.vocab_size, self.window = int(vocab_size), int(window)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.normalize = normalize
        self.kernel_init, self.bias_init = kernel_init, bias_init
        rngs = _rngs(rngs)
        self.W = nnx.Param(kernel_init(rngs.params(), (self.num_features, self.num_outputs),
                                       jnp.float32))
        self.b = nnx.Param(bias_init(rngs.params(), (self.num_outputs,), jnp.float32))

    def _config(self) -> dict:
        return {f: getattr(self, f) for f in self._fields}

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
        return nnx.State({"W": _param(W), "b": _param(b)})

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
        W = _source_weights(source)
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
        return _explicit_model(cls, source, dict(vocab_size=vocab_size, window=window,
                                                 num_classes=int(W.shape[1]),
                                                 normalize=normalize or "l1", **config), rngs)

    def prepare(self, X):
        """Validates token ids ``(B,)`` or ``(B, K)`` on the host; returns int32 ``(B, K)``."""
        return prepare_ids(X, self.vocab_size, self.window)


class MLP(_Model):
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
                 kernel_init: Initializer = _lecun_normal, bias_init: Initializer = _zeros,
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
        rngs = _rngs(rngs)
        sizes, norms = self.sizes, self.layer_normalizations()
        self.layers = nnx.List([
            _Layer(sizes[l], sizes[l + 1], kind=input_kind if l == 0 else "dense",
                   normalize=norms[l], kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)
            for l in range(self.num_layers)
        ])

    def _config(self) -> dict:
        return {f: getattr(self, f) for f in self._fields}

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
        shapes = [tuple(_source_weights(s).shape) for s in layers]
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


def _source_weights(source):
    """The weight matrix of an explicit source, to read its shape."""
    if isinstance(source, ExplicitSolution):
        return source.weights
    if isinstance(source, dict) and "W" in source:
        W = source["W"]
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        W = source[0]
    else:
        W = source
    W = jnp.asarray(W) if not hasattr(W, "shape") else W
    if len(W.shape) != 2:
        raise ValueError(f"expected weights of shape (M, N), got shape {tuple(W.shape)}")
    return W


def layer_inputs(model: MLP, X) -> list:
    """The activations entering each layer of an NNX :class:`MLP` (``X`` first)."""
    if not isinstance(model, MLP):
        raise ValueError(f"layer_inputs needs an MLP, got {type(model).__name__}")
    return model.layer_inputs(X)


def is_nnx(model) -> bool:
    """Whether ``model`` is a ``flax.nnx`` module."""
    return isinstance(model, nnx.Module)


__all__ = ["MLP", "SoftmaxRegression", "TokenLM", "is_nnx", "layer_inputs"]
