"""Flax models that take explicit weights: linen, ``flax.nnx``, and any model's head.

* :mod:`~xsol.models.linen`: :class:`SoftmaxRegression`, :class:`TokenLM` and
  :class:`MLP` (positive activations) in Flax linen, each with ``from_explicit``.
* :mod:`~xsol.models.nnx`: the same models in ``flax.nnx``.
* :mod:`~xsol.models.head`: :func:`explicit_head`, the explicit output layer of
  any Flax model (NNX or linen).
"""

from xsol.models import nnx
from xsol.models.head import explicit_head, replace_layer_params
from xsol.models.linen import MLP, SoftmaxRegression, TokenLM, apply_model, layer_inputs

__all__ = ["MLP", "SoftmaxRegression", "TokenLM", "apply_model", "explicit_head",
           "layer_inputs", "nnx", "replace_layer_params"]
