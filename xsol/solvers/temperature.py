"""One scalar fitted to the explicit solution's scale (its inverse temperature).

The explicit weights fix the direction of ``W`` but not its best scale
(docs/math.md section 1, B). Scaling the logits, ``z(beta) = beta * x~ W + b``,
leaves every prediction (argmax) unchanged and lowers the cross-entropy a lot.
The mean loss is convex in ``beta`` (a log-sum-exp of functions affine in beta),
so Newton's method finds the optimum in a few steps:

    L'(beta)  = mean_t ( E_p[s_t] - s_t[y_t] )
    L''(beta) = mean_t Var_p[s_t]
    beta     <- beta - clip(L' / L'', -4 beta, beta / 2)

with ``s_t = x~_t W`` the unscaled scores and ``p = softmax(beta s_t + b)``.
The damping lets ``beta`` at most halve or grow 5x per step, so it stays
positive; the loop stops after :data:`MAX_NEWTON_STEPS` steps or when a step
falls below :data:`STEP_TOLERANCE` ``* beta``.

This module holds that Newton method once: :func:`score_moments` (the
per-example ``E_p[s]``, ``Var_p[s]``), :func:`newton_step` (the damped step),
and two loops over them: :func:`newton_inverse_temperature`, compiled, for
scores that fit on the device at once (:func:`fit_inverse_temperature`), and
:func:`newton_on_host`, for gradients and curvatures summed over batches on
the host (:func:`xsol.solvers.scoring.fit_inverse_temperature_batched`).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

#: The most damped Newton steps :func:`newton_inverse_temperature` takes.
MAX_NEWTON_STEPS = 50
#: The loop stops when a step is at most this times ``beta``.
STEP_TOLERANCE = 1e-6
#: Floor of the curvature ``L''(beta)`` (scores that do not vary give a zero variance).
MIN_CURVATURE = 1e-12


def score_moments(scores, bias, beta):
    """Per-example ``(E_p[s], Var_p[s])`` of the scores, ``p = softmax(beta s + b)``.

    Args:
      scores: unscaled scores ``s = x~ W``, ``(B, N)``.
      bias: ``(N,)``.
      beta: the inverse temperature.

    Returns:
      Two ``(B,)`` arrays: ``sum_j p_j s_j`` and ``sum_j p_j s_j^2 - (sum_j p_j s_j)^2``.
    """
    p = jax.nn.softmax(beta * scores + bias, axis=-1)
    mean_s = (p * scores).sum(-1)
    var_s = (p * scores ** 2).sum(-1) - mean_s ** 2
    return mean_s, var_s


def newton_step(gradient, curvature, beta, xp=jnp):
    """The damped Newton step ``clip(L' / max(L'', floor), -4 beta, beta / 2)``.

    ``beta - step`` is the next iterate: it at most grows 5x or halves, so it
    stays positive.

    Args:
      gradient: ``L'(beta)``.
      curvature: ``L''(beta)`` (floored at :data:`MIN_CURVATURE`).
      beta: the current inverse temperature.
      xp: the array namespace: ``jax.numpy`` (traced, on the device) or
        ``numpy`` (float64 on the host).
    """
    return xp.clip(gradient / xp.maximum(curvature, MIN_CURVATURE), -4.0 * beta, 0.5 * beta)


@jax.jit
def newton_inverse_temperature(scores, bias, y, beta):
    """Damped Newton on the mean cross-entropy of ``beta * scores + bias`` in ``beta``.

    At most :data:`MAX_NEWTON_STEPS` steps of :func:`newton_step`, stopping
    when a step falls below :data:`STEP_TOLERANCE` ``* beta``; the whole loop
    runs on the device.
    """
    s_y = jnp.take_along_axis(scores, y[:, None], axis=-1)[:, 0]

    def step_size(beta):
        mean_s, var_s = score_moments(scores, bias, beta)
        return newton_step(jnp.mean(mean_s - s_y), jnp.mean(var_s), beta)

    def cond(carry):
        it, beta, step = carry
        return (it < MAX_NEWTON_STEPS) & (jnp.abs(step) > STEP_TOLERANCE * beta)

    def body(carry):
        it, beta, _ = carry
        step = step_size(beta)
        return it + 1, beta - step, step

    _, beta, _ = jax.lax.while_loop(cond, body, (0, beta, jnp.asarray(jnp.inf, beta.dtype)))
    return beta


def newton_on_host(gradient_and_curvature: Callable[[float], tuple[float, float]],
                   beta: float = 1.0, *, max_steps: int = MAX_NEWTON_STEPS,
                   tol: float = STEP_TOLERANCE) -> float:
    """The same damped Newton loop, in float64 on the host.

    Args:
      gradient_and_curvature: ``beta -> (L'(beta), L''(beta))`` as floats
        (e.g. sums over batches divided by the example count).
      beta: the starting inverse temperature.
      max_steps: the most steps.
      tol: stop when a step is at most ``tol * beta`` (or ``beta`` is not finite).

    Returns:
      ``beta`` (a Python float).
    """
    for _ in range(max_steps):
        g, h = gradient_and_curvature(beta)
        delta = float(newton_step(g, h, beta, xp=np))
        beta -= delta
        if not math.isfinite(beta) or abs(delta) <= tol * beta:
            break
    return float(beta)


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
    return float(newton_inverse_temperature(scores, jnp.asarray(bias, jnp.float32),
                                            jnp.asarray(y), jnp.float32(1.0)))
