"""Where training starts: parameters from a random or zero init, explicit weights or params.

:func:`initial_params` turns the ``init`` argument of
:func:`xsol.train.loop.train_and_evaluate` into parameters (linen: a dict;
NNX: an ``nnx.State``) and names how they were made; :func:`reference_layers`
reads the weights a run is compared to; :func:`prepare_xy`
puts data in the form the model reads.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xsol.core import inputs
from xsol.solvers.explicit import ExplicitSolution
from xsol.train.nnx_steps import NNXModel

__all__ = ["initial_params", "nnx_state", "check_param_shapes", "prepare_xy", "reference_layers"]


def _is_explicit_source(x) -> bool:
    """True for an :class:`xsol.ExplicitSolution`, a ``(W, b)`` pair or an array."""
    if isinstance(x, ExplicitSolution):
        return True
    if isinstance(x, (tuple, list)):
        return True
    return isinstance(x, (jax.Array, np.ndarray))


def _explicit_params(model, init):
    """``model.from_explicit(init)`` and ``"explicit"`` (``"explicit-calibrated"`` for a
    solution whose inverse temperature is not 1)."""
    kind = "explicit"
    if isinstance(init, ExplicitSolution) and init.inverse_temperature != 1.0:
        kind = "explicit-calibrated"
    return model.from_explicit(init), kind


def initial_params(model, init, seed: int = 0):
    """Parameters to start from, and a name for how they were made.

    Args:
      model: a model from :mod:`xsol.models.linen`.
      init: ``"random"`` (``model.init_params(seed)``), ``"zeros"``, an
        :class:`xsol.ExplicitSolution` or explicit weights accepted by
        ``model.from_explicit``, or a params dict used as is.
      seed: seed of the random initialization.

    Returns:
      ``(params, kind)`` with ``kind`` one of ``"random"``, ``"zeros"``,
      ``"explicit"``, ``"explicit-calibrated"`` (a solution whose inverse
      temperature is not 1), ``"params"`` or (NNX) ``"model"``.
    """
    if isinstance(model, NNXModel):
        return _initial_nnx_params(model, init, seed)
    if isinstance(init, str):
        if init == "random":
            return model.init_params(seed), "random"
        if init == "zeros":
            return jax.tree.map(jnp.zeros_like, model.init_params(seed)), "zeros"
        raise ValueError(
            f"init must be 'random', 'zeros', explicit weights or params, got {init!r}")
    if isinstance(init, dict):
        check_param_shapes(init, jax.tree.map(jnp.shape, model.init_params(0)), "init params")
        return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), init), "params"
    if _is_explicit_source(init):
        return _explicit_params(model, init)
    raise ValueError(
        f"init must be 'random', 'zeros', explicit weights or params, got {type(init).__name__}"
    )


def _initial_nnx_params(model: NNXModel, init, seed: int):
    """:func:`initial_params` for an NNX model: params are an ``nnx.State``.

    Besides the linen choices, ``init="model"`` starts from the module's own
    parameters, and params may be an ``nnx.State`` or a pure dict of its layout.
    """
    if isinstance(init, str):
        if init == "model":
            return model.params(), "model"
        if init == "random":
            return model.init_params(seed), "random"
        if init == "zeros":
            return jax.tree.map(jnp.zeros_like, model.params()), "zeros"
        raise ValueError("init must be 'model', 'random', 'zeros', explicit weights or params, "
                         f"got {init!r}")
    if isinstance(init, (dict, nnx.State)):
        return nnx_state(model, init, "init params"), "params"
    if _is_explicit_source(init):
        return _explicit_params(model, init)
    raise ValueError("init must be 'model', 'random', 'zeros', explicit weights or params, "
                     f"got {type(init).__name__}")


def check_param_shapes(params, shapes, what: str) -> None:
    """Refuses ``params`` whose pytree of shapes differs from the model's ``shapes``."""
    try:
        got = jax.tree.map(jnp.shape, params)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{what} could not be read as arrays: {e}") from e
    if got != shapes:
        raise ValueError(f"{what} have shapes {got}, the model needs {shapes}")


def nnx_state(model: NNXModel, params, what: str):
    """``params`` (an ``nnx.State`` or a pure dict) as a float32 State of the model's layout."""
    ref = nnx.state(model.module, nnx.Param)
    shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(ref))
    pure = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    check_param_shapes(pure, shapes, what)
    state = jax.tree.map(jnp.array, ref)
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), pure))
    return state


def prepare_xy(model, X, y):
    """``(model.prepare(X), y)`` with ``y`` checked as labels of the model's classes."""
    X = model.prepare(X)
    num_classes = getattr(model, "num_outputs", getattr(model, "num_classes", None))
    y = inputs.check_labels(y, X.shape[0], num_classes)
    return X, y


def reference_layers(model, reference, init=None, init_kind: str = ""):
    """The ``(W, b)`` of every layer of the reference weights, or None without a reference.

    Args:
      model: a linen model or an :class:`xsol.train.nnx_steps.NNXModel`.
      reference: anything ``model.from_explicit`` accepts, or params (a dict;
        NNX: also an ``nnx.State``); None: ``init`` when ``init_kind`` says it
        is explicit weights, else no reference.
      init, init_kind: the start and its kind (from :func:`initial_params`).
    """
    if reference is None and init_kind.startswith("explicit"):
        reference = init
    if reference is None:
        return None
    if isinstance(model, NNXModel) and isinstance(reference, (dict, nnx.State)):
        ref_params = nnx_state(model, reference, "reference params")
    else:
        ref_params = reference if isinstance(reference, dict) else model.from_explicit(reference)
    return [(jnp.array(W), jnp.array(b)) for W, b in model.layer_weights(ref_params)]
