"""Evaluation of a model on all examples, in batches: mean loss, accuracy, gradient norm.

:func:`stack_batches` pads examples to whole batches and stacks them
(``(num_batches, batch_size, ...)`` with a validity mask); :func:`eval_sums`
sums, in one ``lax.scan`` over the batches, the per-example cross-entropy
``-log softmax(model(x_t))[y_t]``, the correct predictions and (optionally)
the gradient of the summed loss; :func:`evaluate` divides by the number of
examples.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from xsol.core import inputs
from xsol.core.checks import optional_positive_int

__all__ = ["EvalData", "eval_sums", "stack_batches", "evaluate"]


def eval_sums(params, Xb, yb, mask, *, apply_fn, with_grad):
    """Sums of per-example loss, correct predictions and loss gradients over stacked batches."""

    def batch_sums(p, X, y, m):
        logits = apply_fn({"params": p}, X)
        ce = inputs.cross_entropy(logits, y)
        correct = jnp.sum((jnp.argmax(logits, -1) == y) * m)
        return jnp.sum(ce * m), correct

    def body(carry, batch):
        loss, correct, grad = carry
        X, y, m = batch
        if with_grad:
            (l, c), g = jax.value_and_grad(batch_sums, has_aux=True)(params, X, y, m)
            grad = jax.tree.map(jnp.add, grad, g)
        else:
            l, c = batch_sums(params, X, y, m)
        return (loss + l, correct + c, grad), None

    zero_grad = jax.tree.map(jnp.zeros_like, params) if with_grad else None
    init = (jnp.float32(0), jnp.float32(0), zero_grad)
    (loss, correct, grad), _ = jax.lax.scan(body, init, (Xb, yb, mask))
    return loss, correct, grad


class EvalData(NamedTuple):
    """Examples stacked into ``(num_batches, batch_size, ...)`` with a validity mask."""

    X: jax.Array
    y: jax.Array
    mask: jax.Array
    count: int


def stack_batches(X, y, batch_size: int | None) -> EvalData:
    """Pads ``(X, y)`` to whole batches and stacks them for :func:`evaluate`.

    Args:
      X: inputs ``(B, ...)`` (device or host array).
      y: labels ``(B,)``.
      batch_size: examples per batch; None for one batch of all examples.

    Returns:
      An :class:`EvalData`; padded examples have mask 0.
    """
    batch_size = optional_positive_int(batch_size, "eval_batch_size")
    X, y = jnp.asarray(X), jnp.asarray(y, jnp.int32)
    n = int(X.shape[0])
    if batch_size is None or batch_size >= n:
        return EvalData(X[None], y[None], jnp.ones((1, n), jnp.float32), n)
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    Xp = jnp.concatenate([X, jnp.zeros((pad, *X.shape[1:]), X.dtype)])
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)])
    mask = (jnp.arange(nb * batch_size) < n).astype(jnp.float32)
    return EvalData(Xp.reshape(nb, batch_size, *X.shape[1:]), yp.reshape(nb, batch_size),
                    mask.reshape(nb, batch_size), n)


@functools.lru_cache(maxsize=None)
def _eval_fn(apply_fn, with_grad):
    """:func:`eval_sums` of ``apply_fn``, jitted once per model and ``with_grad``."""
    return jax.jit(functools.partial(eval_sums, apply_fn=apply_fn, with_grad=with_grad))


def evaluate(model, params, data: EvalData, *, with_grad: bool = False) -> dict:
    """Mean loss, accuracy and (optionally) the gradient norm on stacked examples.

    Args:
      model: a model from :mod:`xsol.models.linen`.
      params: its parameters.
      data: from :func:`stack_batches`.
      with_grad: also return ``grad_norm = ||1/B sum_t grad loss_t||_2``,
        the gradient norm of the mean loss over all examples.

    Returns:
      ``{"loss", "accuracy"[, "grad_norm"]}`` as Python floats.
    """
    loss, correct, grad = _eval_fn(model.apply, with_grad)(params, data.X, data.y, data.mask)
    out = {"loss": float(loss) / data.count, "accuracy": float(correct) / data.count}
    if with_grad:
        out["grad_norm"] = float(optax.tree.norm(grad)) / data.count
    return out
