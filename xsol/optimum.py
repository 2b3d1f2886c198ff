"""The true optimum of a softmax layer by full-batch L-BFGS (the reference point).

Minimizes the mean cross-entropy ``L(W, b) = mean_t -log softmax(x~_t W + b)[y_t]``
(plus an optional ``l2 / 2 * ||W||^2``) with :func:`optax.lbfgs` and its zoom
line search, inside one compiled ``lax.while_loop``, until the gradient's
max-norm falls below ``tol`` or ``max_iter`` iterations have run. The loss is
convex in ``(W, b)``, so this is the global optimum the explicit solution is
measured against (claims C1/C2).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from xsol import inputs


class Optimum(NamedTuple):
    """Result of :func:`fit_optimum`.

    Attributes:
      weights: ``(M, N)``.
      bias: ``(N,)``.
      loss: final mean training loss (plus the L2 term).
      grad_norm: final gradient max-norm.
      iterations: L-BFGS iterations run.
    """

    weights: jax.Array
    bias: jax.Array
    loss: float
    grad_norm: float
    iterations: int


def layer_loss(params, X, y, kind, normalize, l2=0.0):
    """Mean cross-entropy of ``params = (W, b)`` on ``(X, y)`` plus ``l2/2 ||W||^2``."""
    W, b = params
    z = inputs.linear_logits(W, b, X, kind, normalize)
    return jnp.mean(inputs.cross_entropy(z, y)) + 0.5 * l2 * jnp.sum(W * W)


@functools.partial(jax.jit, static_argnames=("kind", "normalize", "max_iter", "memory_size"))
def _run(params, X, y, l2, tol, *, kind, normalize, max_iter, memory_size):
    fun = functools.partial(layer_loss, X=X, y=y, kind=kind, normalize=normalize, l2=l2)
    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(fun)

    def gnorm(g):
        return optax.tree.norm(g, ord=jnp.inf)

    def cond(carry):
        _, _, it, g, _ = carry
        return (it < max_iter) & (gnorm(g) > tol)

    def body(carry):
        params, state, it, _, _ = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = optax.apply_updates(params, updates)
        return params, state, it + 1, grad, value

    state = opt.init(params)
    value0, grad0 = jax.value_and_grad(fun)(params)
    params, state, it, _, _ = jax.lax.while_loop(cond, body, (params, state, 0, grad0, value0))
    value, grad = jax.value_and_grad(fun)(params)
    return params, value, gnorm(grad), it


def fit_optimum(
    X,
    y,
    num_classes: int,
    *,
    kind: str,
    normalize: str = "l1",
    num_features: int | None = None,
    init=None,
    l2: float = 0.0,
    max_iter: int = 1000,
    tol: float = 1e-6,
    memory_size: int = 20,
) -> Optimum:
    """Full-batch L-BFGS on the softmax layer's cross-entropy.

    Args:
      X: validated inputs: ids ``(B, K)`` int32 or dense ``(B, M)``.
      y: int32 labels ``(B,)``.
      num_classes: ``N``.
      kind: ``"ids"`` or ``"dense"``.
      normalize: ``"l1"`` or ``"none"``.
      num_features: ``M`` (needed for ids: ``K * V``); default ``X.shape[1]``.
      init: starting ``(W, b)``; default zeros.
      l2: L2 penalty on ``W``.
      max_iter: iteration cap.
      tol: stop when the gradient max-norm is below this.
      memory_size: L-BFGS history length.

    Returns:
      An :class:`Optimum`.
    """
    M = num_features if num_features is not None else X.shape[1]
    if init is None:
        init = (jnp.zeros((M, num_classes), jnp.float32), jnp.zeros((num_classes,), jnp.float32))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tuple(init))
    (W, b), value, g, it = _run(
        params, jnp.asarray(X), jnp.asarray(y), jnp.float32(l2), jnp.float32(tol),
        kind=kind, normalize=normalize, max_iter=int(max_iter), memory_size=int(memory_size),
    )
    return Optimum(W, b, float(value), float(g), int(it))
