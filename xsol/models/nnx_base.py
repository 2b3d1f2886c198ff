"""What the NNX models of :mod:`xsol.models.nnx` share.

A softmax layer ``z = x~ W + b`` (:class:`Layer`, the logits of
:func:`xsol.models.layer.layer_logits`) holds ``W``, ``b`` as ``nnx.Param``;
:class:`Model` gives every model ``init_params``, ``layer_weights``, the
conversion to and from :mod:`xsol.models.linen` and its configuration;
:class:`OneLayer` is the base of the single-layer models. Explicit weights
split over a mesh keep their sharding as ``nnx.Param`` metadata
(:func:`as_param`) and a model is assembled around them
(:func:`explicit_model`), never allocating a random ``W`` on one device.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xsol.models import linen as linen_models
from xsol.models.layer import is_sharded, layer_logits
from xsol.solvers.explicit import ExplicitSolution

Initializer = Callable[..., jax.Array]

#: The default initializers of ``W`` and ``b`` (the linen models' defaults too).
LECUN_NORMAL = nnx.initializers.lecun_normal()
ZEROS = nnx.initializers.zeros_init()


def as_rngs(rngs) -> nnx.Rngs:
    """``rngs`` as an ``nnx.Rngs``: None means seed 0, an int is a seed."""
    if rngs is None:
        return nnx.Rngs(0)
    if isinstance(rngs, (int, np.integer)) and not isinstance(rngs, bool):
        return nnx.Rngs(int(rngs))
    if isinstance(rngs, nnx.Rngs):
        return rngs
    raise TypeError(f"rngs must be an nnx.Rngs, an int seed or None, got {type(rngs).__name__}")


def as_param(x) -> nnx.Param:
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


def explicit_model(cls, source, config: dict, rngs):
    """``cls(**config)`` holding the explicit weights of ``source``.

    When the weights are split over several devices, the model is built
    abstractly (``nnx.eval_shape``) and merged with them, so no random
    ``(M, N)`` matrix is ever allocated on one device; otherwise it is
    initialized with ``rngs`` and updated.
    """
    if is_sharded(source_weights(source)):
        abstract = nnx.eval_shape(lambda: cls(**config, rngs=nnx.Rngs(0)))
        graphdef, _ = nnx.split(abstract)
        return nnx.merge(graphdef, abstract.explicit_params(source))
    model = cls(**config, rngs=rngs)
    nnx.update(model, model.explicit_params(source))
    return model


def params_state(model: nnx.Module) -> nnx.State:
    """The ``nnx.Param`` variables of ``model``, as a State."""
    return nnx.state(model, nnx.Param)


def as_param_state(params, model: nnx.Module) -> nnx.State:
    """``params`` (an ``nnx.State`` or a pure nested dict) as a State shaped like ``model``'s."""
    if isinstance(params, nnx.State):
        return params
    if isinstance(params, dict):
        state = nnx.clone(params_state(model))
        try:
            nnx.replace_by_pure_dict(state, params)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"params do not match the model's parameters "
                f"{jax.tree.map(jnp.shape, nnx.to_pure_dict(state))}: {e}") from e
        return state
    raise TypeError(f"params must be an nnx.State or a dict, got {type(params).__name__}")


class Layer(nnx.Module):
    """One softmax layer ``x~ W + b`` (params ``W``, ``b``)."""

    def __init__(self, num_inputs: int, num_outputs: int, *, kind: str, normalize: str,
                 kernel_init: Initializer, bias_init: Initializer, rngs: nnx.Rngs):
        self.num_inputs, self.num_outputs = int(num_inputs), int(num_outputs)
        self.kind, self.normalize = kind, normalize
        self.W = nnx.Param(kernel_init(rngs.params(), (self.num_inputs, self.num_outputs),
                                       jnp.float32))
        self.b = nnx.Param(bias_init(rngs.params(), (self.num_outputs,), jnp.float32))

    def __call__(self, x):
        """The logits ``x~ W + b`` of a batch ``x`` (token ids ``(B,)`` count as ``(B, 1)``)."""
        if self.kind == "ids" and x.ndim == 1:
            x = x[:, None]
        return layer_logits(self.W[...], self.b[...], x, self.kind, self.normalize)

    def set(self, W, b) -> None:
        """Sets ``W`` and ``b`` in place (as float32)."""
        self.W[...] = jnp.asarray(W, jnp.float32)
        self.b[...] = jnp.asarray(b, jnp.float32)


class Model(nnx.Module):
    """What the three NNX models share (their constructor arguments are ``_fields``)."""

    _fields: ClassVar[tuple] = ()

    def _config(self) -> dict:
        """The constructor arguments of this model (its ``_fields``), rngs excepted."""
        return {f: getattr(self, f) for f in self._fields}

    def init_params(self, seed=0) -> nnx.State:
        """Random parameters, those ``rngs=nnx.Rngs(seed)`` gives, as an ``nnx.State``."""
        return params_state(type(self)(**self._config(), rngs=as_rngs(seed)))

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
        model = nnx.merge(nnx.graphdef(self), as_param_state(params, self))
        return model.layer_weights()

    def linen(self):
        """The :mod:`xsol.models.linen` module with the same configuration.

        Initializers left at their defaults are left at the linen module's defaults
        (the same functions), so the module equals one built with the same arguments.
        """
        config = self._config()
        for name, default in (("kernel_init", LECUN_NORMAL), ("bias_init", ZEROS)):
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
        model = cls(**config, rngs=as_rngs(rngs))
        layers = module.layer_weights(params)
        multi = isinstance(module, linen_models.MLP)
        nnx.update(model, model.explicit_params(layers if multi else layers[0]))
        return model


class OneLayer(Model):
    """A model of one softmax layer (``self.W``, ``self.b``)."""

    def _layers(self) -> list:
        return [self]

    def _init_weights(self, num_inputs: int, num_outputs: int, kernel_init, bias_init,
                      rngs) -> None:
        """``W = kernel_init(key, (M, N))`` and ``b = bias_init(key, (N,))``, float32 params."""
        self.kernel_init, self.bias_init = kernel_init, bias_init
        rngs = as_rngs(rngs)
        self.W = nnx.Param(kernel_init(rngs.params(), (num_inputs, num_outputs), jnp.float32))
        self.b = nnx.Param(bias_init(rngs.params(), (num_outputs,), jnp.float32))

    def layer_normalizations(self) -> list:
        """``[normalize]``: how the one layer's input is normalized."""
        return [self.normalize]

    def linen_params(self) -> dict:
        """``{"W": W, "b": b}``, the :mod:`xsol.models.linen` layout."""
        return {"W": self.W[...], "b": self.b[...]}


def source_weights(source):
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
