"""Flax models that take explicit weights: linen, ``flax.nnx``, and any model's head.

* :mod:`~xsol.models.linen`: :class:`SoftmaxRegression`, :class:`TokenLM` and
  :class:`MLP` (positive activations) in Flax linen, each with ``from_explicit``.
* :mod:`~xsol.models.nnx`: the same models in ``flax.nnx`` (their shared base:
  :mod:`~xsol.models.nnx_base`).
* :mod:`~xsol.models.layer`: what both share for one softmax layer ``x~ W + b``:
  configuration checks, explicit weights as ``(W, b)``, logits, input checks.
* :mod:`~xsol.models.head`: :func:`explicit_head`, the explicit output layer of
  any Flax model (NNX or linen).
* :mod:`~xsol.models.model_layers`: the layers of any Flax model, found by
  name (:func:`replace_layer_params`) and their inputs captured.
"""

from xsol.models import nnx
from xsol.models.head import explicit_head
from xsol.models.linen import MLP, SoftmaxRegression, TokenLM, apply_model, layer_inputs
from xsol.models.model_layers import replace_layer_params

__all__ = ["MLP", "SoftmaxRegression", "TokenLM", "apply_model", "explicit_head",
           "layer_inputs", "nnx", "replace_layer_params"]
