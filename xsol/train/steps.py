"""Optimizer steps, and the one loop that runs them on device.

* :func:`create_train_state` -- ``TrainingState(step, params, opt_state)``.
* :func:`make_objective_step` -- one update ``params <- params + tx(grad f)``
  of any objective ``f(params, X, y)``; :func:`make_train_step` is it for
  ``f = mean_t -log softmax(model(x_t))[y_t]`` (:func:`loss_fn`).
* :func:`run_steps` -- **the training loop**: up to ``num_steps`` steps in one
  ``lax.while_loop``. Step ``s`` trains on the minibatch drawn from
  ``fold_in(key, s)`` (``batch_size`` indices drawn uniformly with
  replacement, :func:`sample_batch`), or on all examples when ``batch_size``
  is None, so a run depends only on its seed, not on where the chunks of
  steps between host round-trips begin and end. An optional *watch* sees
  every step (the parameters before it and the step's metrics), keeps its
  own carry, and can stop the loop early (targets reached, divergence).
* :func:`make_train_chunk` -- :func:`run_steps` of :func:`make_train_step`,
  jitted, with the number of steps an argument.
* :func:`make_optimizer` -- an Optax optimizer from a transformation, a
  factory or a name.

Every training loop of the library and its benchmarks runs through
:func:`run_steps`: :func:`xsol.train.loop.train_and_evaluate`, the NNX chunk
(:mod:`xsol.train.nnx_steps`), the learning-rate grid of
:mod:`xsol.experiments.sweep`, the cost-to-target runner of
:mod:`xsol.experiments.backprop_cost`, and the Adam runs of
:mod:`xsol.experiments.race` and ``benchmarks/convergence.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from xsol.core import inputs

__all__ = ["TrainingState", "create_train_state", "loss_fn", "make_objective_step",
           "make_train_step", "sample_batch", "run_steps", "make_train_chunk", "make_optimizer"]


class TrainingState(NamedTuple):
    """What changes during training: a plain pytree (named apart from Flax's
    ``flax.training.train_state.TrainState``, whose interface differs).

    Attributes:
      step: number of updates applied so far (int32 scalar).
      params: the model parameters.
      opt_state: the Optax optimizer state.
    """

    step: jax.Array
    params: Any
    opt_state: Any


def create_train_state(params, tx: optax.GradientTransformation) -> TrainingState:
    """``TrainingState(0, params, tx.init(params))``."""
    return TrainingState(jnp.zeros((), jnp.int32), params, tx.init(params))


def loss_fn(params, apply_fn, X, y):
    """Mean cross-entropy ``1/B sum_t -log softmax(apply_fn(params, X)_t)[y_t]``."""
    logits = apply_fn({"params": params}, X)
    return jnp.mean(inputs.cross_entropy(logits, y))


def make_objective_step(objective: Callable, tx: optax.GradientTransformation, *,
                        jit: bool = True):
    """One optimizer step on the objective ``f = objective(params, X, y)``.

    The update is Optax's: ``u, opt_state = tx.update(grad f, opt_state, params)``,
    ``params <- params + u``.

    Args:
      objective: ``(params, X, y) -> scalar`` to minimize.
      tx: an Optax optimizer.
      jit: return the jitted function (default) or the plain one (for use
        inside other compiled code).

    Returns:
      ``step(state, X, y) -> (state, {"loss", "grad_norm"})`` where ``loss``
      is ``f`` before the update and ``grad_norm`` the global L2 norm of its
      gradient.
    """

    def step(state: TrainingState, X, y):
        loss, grads = jax.value_and_grad(objective)(state.params, X, y)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return TrainingState(state.step + 1, params, opt_state), metrics

    return jax.jit(step) if jit else step


def make_train_step(apply_fn, tx: optax.GradientTransformation, *, jit: bool = True):
    """One optimizer step on the mean cross-entropy of a batch (:func:`loss_fn`).

    Args:
      apply_fn: ``model.apply``.
      tx: an Optax optimizer.
      jit: return the jitted function (default) or the plain one.

    Returns:
      ``train_step(state, X, y) -> (state, {"loss", "grad_norm"})`` (see
      :func:`make_objective_step`).
    """
    return make_objective_step(lambda p, X, y: loss_fn(p, apply_fn, X, y), tx, jit=jit)


def sample_batch(key: jax.Array, step: jax.Array, X, y, batch_size: int | None):
    """The minibatch of step ``step``: ``batch_size`` indices uniform in ``[0, B)``.

    The indices come from ``jax.random.fold_in(key, step)``, so the batch of a
    step is fixed by the seed alone. Sampling is with replacement.
    ``batch_size=None`` means full-batch steps: ``(X, y)`` itself.
    """
    if batch_size is None:
        return X, y
    idx = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, X.shape[0])
    return X[idx], y[idx]


def run_steps(step_fn: Callable, state: TrainingState, X, y, key, num_steps, *,
              batch_size: int | None, watch: Callable | None = None,
              keep_going: Callable | None = None, carry=None):
    """The training loop: up to ``num_steps`` steps of ``step_fn`` in one ``lax.while_loop``.

    Step ``s = state.step`` runs ``step_fn(state, *sample_batch(key, s, X, y,
    batch_size))``. The trip count may be traced (one compilation serves
    every chunk length, and no step is wasted on padding). Call it inside
    ``jax.jit``.

    Args:
      step_fn: ``(state, X_batch, y_batch) -> (state, metrics)``, e.g.
        :func:`make_train_step` with ``jit=False``.
      state: a :class:`TrainingState` (``params`` and ``opt_state`` may carry
        extra leading axes if ``step_fn`` maps over them; ``step`` is a scalar).
      X, y: all training examples.
      key: the minibatch key (unused when ``batch_size`` is None).
      num_steps: the most steps to run.
      batch_size: minibatch size, or None for full-batch steps.
      watch: ``(carry, i, state_before, metrics) -> carry``, called after the
        ``i``-th step of this call (``state_before``: the state the step
        started from, ``metrics``: what ``step_fn`` returned).
      keep_going: ``carry -> bool``; the loop also stops once it is False
        (checked before every step).
      carry: the watch's initial carry.

    Returns:
      ``(state, carry)`` after the last step run.
    """

    def cond(c):
        _, w, i = c
        go = i < num_steps
        return go if keep_going is None else go & keep_going(w)

    def body(c):
        s, w, i = c
        xb, yb = sample_batch(key, s.step, X, y, batch_size)
        s2, metrics = step_fn(s, xb, yb)
        if watch is not None:
            w = watch(w, i, s, metrics)
        return s2, w, i + 1

    state, carry, _ = jax.lax.while_loop(cond, body, (state, carry, jnp.int32(0)))
    return state, carry


def make_train_chunk(apply_fn, tx: optax.GradientTransformation, *, batch_size: int | None):
    """Many training steps in one compiled call: :func:`run_steps` of :func:`make_train_step`.

    Args:
      apply_fn: ``model.apply``.
      tx: an Optax optimizer.
      batch_size: minibatch size, or None for full-batch steps.

    Returns:
      ``run_chunk(state, X, y, key, num_steps) -> state`` (jitted; the state
      argument is donated, so pass a state you do not keep).
    """
    step_fn = make_train_step(apply_fn, tx, jit=False)

    def run_chunk(state, X, y, key, num_steps):
        return run_steps(step_fn, state, X, y, key, num_steps, batch_size=batch_size)[0]

    return jax.jit(run_chunk, donate_argnums=0)


def make_optimizer(optimizer, learning_rate: float | None = None):
    """An Optax optimizer and its name.

    Args:
      optimizer: an Optax ``GradientTransformation``; an Optax factory such
        as ``optax.adam`` (called with ``learning_rate``); or its name
        (``"adam"``, ``"sgd"``, ...).
      learning_rate: needed for a factory or a name.

    Returns:
      ``(tx, name)``; ``name`` is ``"custom"`` for a ready-made transformation.
    """
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, "custom"
    if isinstance(optimizer, str):
        factory = getattr(optax, optimizer, None)
        if factory is None or not callable(factory):
            raise ValueError(f"unknown Optax optimizer {optimizer!r}; e.g. 'adam', 'sgd', 'adamw'")
        name = optimizer
    elif callable(optimizer):
        factory, name = optimizer, getattr(optimizer, "__name__", "custom")
    else:
        raise ValueError(
            "optimizer must be an optax.GradientTransformation, an Optax factory "
            f"(e.g. optax.adam) or its name, got {type(optimizer).__name__}"
        )
    if learning_rate is None:
        raise ValueError(f"optimizer {name!r} needs learning_rate")
    tx = factory(learning_rate)
    if not isinstance(tx, optax.GradientTransformation):
        raise ValueError(
            f"{name!r}({learning_rate}) did not return an Optax GradientTransformation")
    return tx, name
