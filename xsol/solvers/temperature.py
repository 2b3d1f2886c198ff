"""One scalar fitted to the explicit solution's scale (its inverse temperature).

The explicit weights fix the direction of ``W`` but not its best scale
(docs/math.md section 1, B). Scaling the logits, ``z(beta) = beta * x~ W + b``,
leaves every prediction (argmax) unchanged and lowers the cross-entropy a lot.
The mean loss is convex in ``beta`` (a log-sum-exp of functions affine in beta),
so Newton's method finds the optimum in a few steps:

    L'(beta)  = mean_t ( E_p[s_t] - s_t[y_t] )
    L''(beta) = mean_t Var_p[s_t]

with ``s_t = x~_t W`` the unscaled scores and ``p = softmax(beta s_t + b)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


#: The most damped Newton steps :func:`newton_inverse_temperature` takes.
MAX_NEWTON_STEPS = 50


@jax.jit
def newton_inverse_temperature(scores, bias, y, beta):
    """Damped Newton on the mean cross-entropy of ``beta * scores + bias`` in ``beta``.

    At most :data:`MAX_NEWTON_STEPS` steps, stopping when a step falls below
    ``1e-6 beta``; each step is at most ``-4 beta`` or ``+beta/2``, so ``beta``
    stays positive.
    """
    def step_size(beta):
        z = beta * scores + bias
        p = jax.nn.softmax(z, axis=-1)
        mean_s = (p * scores).sum(-1)
        var_s = (p * scores**2).sum(-1) - mean_s**2
        s_y = jnp.take_along_axis(scores, y[:, None], axis=-1)[:, 0]
        g = jnp.mean(mean_s - s_y)
        h = jnp.maximum(jnp.mean(var_s), 1e-12)
        # Damped: beta may at most halve or grow 5x per step, so it stays positive.
        return jnp.clip(g / h, -4.0 * beta, 0.5 * beta)

    def cond(carry):
        it, beta, step = carry
        return (it < MAX_NEWTON_STEPS) & (jnp.abs(step) > 1e-6 * beta)

    def body(carry):
        it, beta, _ = carry
        step = step_size(beta)
        return it + 1, beta - step, step

    _, beta, _ = jax.lax.while_loop(cond, body, (0, beta, jnp.asarray(jnp.inf, beta.dtype)))
    return beta


def fit_inverse_temperature(scores: jax.Array, bias: jax.Array, y: jax.Array) -> float:
    """``argmin_beta mean_t -log softmax(beta * scores_t + bias)[y_t]``, ``beta > 0``.

    Args:
      scores: unscaled scores ``x~ W``, shape ``(B, N)``.
      bias: ``(N,)``.
      y: int labels ``(B,)``.

    Returns:
      The fitted inverse temperature ``beta`` (a Python float).
    """
    scores = jnp.asarray(scores, jnp.float32)
    return float(newton_inverse_temperature(scores, jnp.asarray(bias, jnp.float32), jnp.asarray(y), jnp.float32(1.0)))
