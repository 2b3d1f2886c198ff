"""NNX models in the functional training loop of :mod:`xsol.train.steps`.

An :mod:`xsol.models.nnx` model holds its parameters; :class:`NNXModel` splits
it into a graph and an ``nnx.State`` of parameters, so that the same loop
(:func:`xsol.train.steps.run_steps`) trains it, stepping with
``nnx.Optimizer`` (:func:`make_nnx_train_chunk`), on the same minibatches as a
linen model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from xsol.core import inputs
from xsol.train.steps import TrainingState, run_steps

__all__ = ["NNXModel", "create_nnx_train_state", "make_nnx_train_chunk"]


@dataclasses.dataclass(frozen=True)
class NNXModel:
    """An :mod:`xsol.models.nnx` model seen through the functional interface used here.

    ``apply({"params": state}, X)`` merges the module's graph with a
    parameter ``nnx.State`` and calls it; the other methods are the module's
    (``init_params``, ``explicit_params`` as ``from_explicit``,
    ``layer_weights``, ``layer_normalizations``, ``prepare``). Equal graphs
    compare equal, so compiled functions are shared between runs.

    Attributes:
      graphdef: the module's ``nnx.GraphDef``.
      module: the module itself (not compared).
    """

    graphdef: Any
    module: Any = dataclasses.field(compare=False, repr=False)

    @classmethod
    def wrap(cls, module) -> "NNXModel":
        missing = [m for m in ("init_params", "explicit_params", "layer_weights",
                               "layer_normalizations", "prepare") if not hasattr(module, m)]
        if missing:
            raise ValueError(
                f"train_and_evaluate trains NNX models with the xsol model interface "
                f"(xsol.models.nnx); {type(module).__name__} lacks {', '.join(missing)}")
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)
        others = jax.tree.leaves(rest, is_leaf=lambda x: isinstance(x, nnx.Variable))
        if others:
            raise ValueError(
                f"train_and_evaluate trains NNX models whose only state is their nnx.Param "
                f"parameters; {type(module).__name__} also holds "
                f"{sorted({type(v).__name__ for v in others})}")
        return cls(graphdef, module)

    def merge(self, params):
        """The module with ``params`` (an ``nnx.State`` of its parameters)."""
        return nnx.merge(self.graphdef, params)

    def apply(self, variables, X):
        return self.merge(variables["params"])(X)

    def init_params(self, seed=0):
        return self.module.init_params(seed)

    def from_explicit(self, source):
        return self.module.explicit_params(source)

    def layer_weights(self, params):
        return self.module.layer_weights(params)

    def layer_normalizations(self):
        return self.module.layer_normalizations()

    def prepare(self, X):
        return self.module.prepare(X)

    def params(self):
        """A copy of the module's own parameters."""
        return jax.tree.map(jnp.array, nnx.state(self.module, nnx.Param))

    def __getattr__(self, name):  # task, num_outputs, num_classes, ...
        if name in ("graphdef", "module") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.module, name)


def create_nnx_train_state(model: NNXModel, params, tx: optax.GradientTransformation):
    """``(TrainingState(0, params, optimizer_state), optimizer_graphdef)`` for an NNX model.

    ``optimizer_state`` is the ``nnx.State`` of an ``nnx.Optimizer(module, tx,
    wrt=nnx.Param)`` built on the module holding ``params``.
    """
    optimizer = nnx.Optimizer(model.merge(params), tx, wrt=nnx.Param)
    opt_def, opt_state = nnx.split(optimizer)
    return TrainingState(jnp.zeros((), jnp.int32), params, opt_state), opt_def


def make_nnx_train_chunk(model: NNXModel, opt_def, *, batch_size: int | None):
    """:func:`xsol.train.steps.make_train_chunk` for an NNX model, stepping with ``nnx.Optimizer``.

    Each step merges the module and its optimizer from the carried states,
    takes ``nnx.grad`` of the mean cross-entropy, applies
    ``optimizer.update(module, grads)`` and carries the new states, so the
    updates are Optax's, as for a linen model; the minibatch of step ``s`` is
    the same as there.

    Returns:
      ``run_chunk(state, X, y, key, num_steps) -> state`` (jitted, state donated).
    """

    def loss(module, X, y):
        return jnp.mean(inputs.cross_entropy(module(X), y))

    def step(s, xb, yb):
        module = model.merge(s.params)
        optimizer = nnx.merge(opt_def, s.opt_state)
        grads = nnx.grad(loss)(module, xb, yb)
        optimizer.update(module, grads)
        return TrainingState(s.step + 1, nnx.state(module, nnx.Param), nnx.state(optimizer)), {}

    def run_chunk(state, X, y, key, num_steps):
        return run_steps(step, state, X, y, key, num_steps, batch_size=batch_size)[0]

    return jax.jit(run_chunk, donate_argnums=0)
