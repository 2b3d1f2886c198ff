"""The true optimum of a softmax layer by full-batch L-BFGS (the reference point).

Minimizes the mean cross-entropy ``L(W, b) = mean_t -log softmax(x~_t W + b)[y_t]``
(plus an optional ``l2 / 2 * ||W||^2``) with :func:`optax.lbfgs` and its zoom
line search, inside one compiled ``lax.while_loop``.

Convergence criterion: the run has *converged* when the max-norm of the
gradient of the objective is at most ``tol``. It also stops, without having
converged, when the relative change of the objective
``|L_k - L_{k-1}| / max(|L_k|, tiny)`` stays at most ``rtol`` for
:data:`STALL_ITERATIONS` consecutive iterations ("stalled": no progress
measurable in float32), or after ``max_iter`` iterations ("iteration cap").
:attr:`Optimum.reason` says which.

The loss is convex in ``(W, b)``, so a converged run is the global optimum.
Without a penalty it need not exist: on separable data (common for images
with many pixels) the loss keeps falling toward 0 as the weights grow, no
finite minimizer exists, and every run ends at the cap or stalls with a
gradient that is small but not zero. A small ``l2 > 0`` makes the problem
strongly convex with a unique optimum.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from xsol.core import inputs


class Optimum(NamedTuple):
    """Result of :func:`fit_optimum`.

    Attributes:
      weights: ``(M, N)``.
      bias: ``(N,)``.
      loss: final mean training loss (plus the L2 term).
      grad_norm: final gradient max-norm.
      iterations: L-BFGS iterations run.
      reason: why it stopped: ``"gradient"`` (converged), ``"stalled"`` or
        ``"iteration cap"``.
      cross_entropy: the mean cross-entropy alone (``loss`` minus the L2 term).
    """

    weights: jax.Array
    bias: jax.Array
    loss: float
    grad_norm: float
    iterations: int
    reason: str = "gradient"
    cross_entropy: float = float("nan")

    @property
    def converged(self) -> bool:
        """The gradient max-norm reached ``tol``."""
        return self.reason == "gradient"


#: Iterations of no measurable relative progress after which a run counts as stalled.
STALL_ITERATIONS = 10


def layer_loss(params, X, y, kind, normalize, l2=0.0):
    """Mean cross-entropy of ``params = (W, b)`` on ``(X, y)`` plus ``l2/2 ||W||^2``."""
    W, b = params
    z = inputs.linear_logits(W, b, X, kind, normalize)
    return jnp.mean(inputs.cross_entropy(z, y)) + 0.5 * l2 * jnp.sum(W * W)


@functools.partial(jax.jit, static_argnames=("kind", "normalize", "max_iter", "memory_size"))
def _run(params, X, y, l2, tol, rtol, *, kind, normalize, max_iter, memory_size):
    fun = functools.partial(layer_loss, X=X, y=y, kind=kind, normalize=normalize, l2=l2)
    opt = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(fun)

    def gnorm(g):
        return optax.tree.norm(g, ord=jnp.inf)

    def cond(carry):
        _, _, it, g, _, stall = carry
        return (it < max_iter) & (gnorm(g) > tol) & (stall < STALL_ITERATIONS)

    def body(carry):
        params, state, it, _, previous, stall = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = optax.apply_updates(params, updates)
        change = jnp.abs(value - previous) / jnp.maximum(jnp.abs(value), 1e-30)
        stall = jnp.where((it > 0) & (change <= rtol), stall + 1, 0)
        return params, state, it + 1, grad, value, stall

    state = opt.init(params)
    value0, grad0 = jax.value_and_grad(fun)(params)
    params, state, it, _, _, stall = jax.lax.while_loop(
        cond, body, (params, state, 0, grad0, value0, 0))
    value, grad = jax.value_and_grad(fun)(params)
    ce = fun(params) - 0.5 * l2 * jnp.sum(params[0] * params[0])
    return params, value, gnorm(grad), it, stall, ce


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
    rtol: float = 1e-7,
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
      tol: converged when the gradient max-norm is at most this.
      rtol: stalled when the relative loss change stays at most this for
        :data:`STALL_ITERATIONS` iterations.
      memory_size: L-BFGS history length.

    Returns:
      An :class:`Optimum`.
    """
    M = num_features if num_features is not None else X.shape[1]
    if init is None:
        init = (jnp.zeros((M, num_classes), jnp.float32), jnp.zeros((num_classes,), jnp.float32))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), tuple(init))
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    (W, b), value, g, it, stall, ce = _run(
        params, jnp.asarray(X), jnp.asarray(y), jnp.float32(l2), jnp.float32(tol),
        jnp.float32(rtol), kind=kind, normalize=normalize, max_iter=int(max_iter),
        memory_size=int(memory_size),
    )
    g = float(g)
    # The loop tests the gradient at the start of an iteration; the final
    # gradient (recomputed above) can sit a rounding error above ``tol``.
    reason = ("stalled" if int(stall) >= STALL_ITERATIONS
              else "iteration cap" if int(it) >= int(max_iter) and g > tol else "gradient")
    return Optimum(W, b, float(value), g, int(it), reason, float(ce))
