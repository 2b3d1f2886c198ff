"""Training with any Optax optimizer, recording a trajectory toward explicit weights.

:func:`train_and_evaluate` trains to the last requested step and records, at
each requested step, losses, accuracy/perplexity, the gradient norm, time, and
the row-centered distance/cosine to reference weights
(:mod:`xsol.train.metrics`); it returns the final params and a
:class:`xsol.train.trajectory.Trajectory`. Its pieces live in their own modules:

* :mod:`xsol.train.steps` -- train states, optimizer steps and the one
  training loop (:func:`xsol.train.steps.run_steps`), chunked between
  evaluations;
* :mod:`xsol.train.nnx_steps` -- the same loop for :mod:`xsol.models.nnx`
  models, stepping with ``nnx.Optimizer``;
* :mod:`xsol.train.starts` -- the starting parameters and the reference weights;
* :mod:`xsol.train.evaluation` -- full-batch or minibatched loss, accuracy and
  gradient norm.

Their names are importable from here too. Nothing here is device-specific:
the same code runs on CPU, GPU and TPU.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from xsol.core.checks import optional_positive_int
from xsol.solvers import scoring
from xsol.train.evaluation import EvalData, eval_sums, evaluate, stack_batches
from xsol.train.metrics import weight_agreement
from xsol.train.nnx_steps import NNXModel, create_nnx_train_state, make_nnx_train_chunk
from xsol.train.starts import initial_params, prepare_xy, reference_layers
from xsol.train.steps import (TrainingState, create_train_state, loss_fn, make_optimizer,
                              make_train_chunk, make_train_step, run_steps, sample_batch)
from xsol.train.trajectory import Trajectory, check_steps

__all__ = ["EvalData", "NNXModel", "TrainingState", "create_nnx_train_state",
           "create_train_state", "eval_sums", "evaluate", "initial_params", "loss_fn",
           "make_nnx_train_chunk", "make_optimizer", "make_train_chunk", "make_train_step",
           "prepare_xy", "run_steps", "sample_batch", "stack_batches", "train_and_evaluate"]


def train_and_evaluate(
    model,
    init,
    optimizer,
    X,
    y,
    *,
    steps,
    test=None,
    reference=None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    eval_batch_size: int | None = None,
    seed: int = 0,
    fold_bias: bool = True,
    progress: bool = True,
    label: str | None = None,
    meta: dict | None = None,
):
    """Trains ``model`` with an Optax optimizer and records a trajectory.

    Minimizes the mean cross-entropy on ``(X, y)``. At every step in
    ``steps`` (step ``s`` = after ``s`` updates) it records one row:

    * ``step``;
    * ``train_loss``, ``train_accuracy`` and ``grad_norm`` (L2 norm of the
      gradient of the mean training loss) over all of ``(X, y)``;
    * ``test_loss``, ``test_accuracy`` on ``test`` when given; for a language
      model (``model.task == "lm"``) also ``train_perplexity`` and
      ``test_perplexity`` (``exp`` of the losses);
    * ``distance`` and ``cosine`` to the reference weights (row-centered,
      :func:`xsol.train.metrics.weight_agreement`; per layer as ``distance_<l>``,
      ``cosine_<l>`` for an :class:`xsol.models.linen.MLP`) when there is a reference;
    * ``seconds``: time spent in training steps only -- compiled ahead of
      time, so compilation and evaluation are excluded; ``wall_seconds``: time
      since :func:`train_and_evaluate` was called, everything included.

    Args:
      model: a model from :mod:`xsol.models.linen` (linen) or :mod:`xsol.models.nnx`
        (NNX; trained with ``nnx.Optimizer``, the module itself is not changed).
      init: where to start (see :func:`initial_params`): ``"random"``,
        ``"zeros"``, an :class:`xsol.ExplicitSolution`, explicit weights, or
        params (NNX: an ``nnx.State`` or pure dict; also ``"model"``, the
        module's own parameters).
      optimizer: an Optax ``GradientTransformation``, a factory such as
        ``optax.adam`` or its name ``"adam"`` (with ``learning_rate``).
      X: training inputs (dense features or token ids, per the model).
      y: training labels ``(B,)``.
      steps: the steps to record (a list), or a total number of steps
        (recorded at 0 and log-spaced steps up to it, :func:`xsol.train.trajectory.log_steps`).
      test: ``(X_test, y_test)`` for held-out figures, or None.
      reference: weights to measure the distance to (anything
        ``model.from_explicit`` accepts, or a params dict); default ``init``
        when that is explicit weights, else none.
      learning_rate: for a factory or a name; recorded in the metadata.
      batch_size: minibatch size (sampled with replacement from the seed), or
        None for full-batch gradient steps.
      eval_batch_size: evaluate in batches of this many examples (None: as many
        as the memory budget allows for the widest layer's ``batch x width``
        activations, :func:`xsol.solvers.scoring.rows_per_batch`; all at once for data
        that fits).
      seed: seeds the random initialization (``init="random"``) and the
        minibatch sampling.
      fold_bias: compare ``W + 1 b^T`` rather than ``W`` for layers with
        L1-normalized inputs (see :mod:`xsol.train.metrics`).
      progress: show a progress bar with step, loss and cosine.
      label: a name for the run (plots, legends); default from init and optimizer.
      meta: more metadata to store in the trajectory.

    Returns:
      ``(params, trajectory)``: the parameters after the last step (for an
      NNX model: a new module of the same class holding them) and a
      :class:`xsol.train.trajectory.Trajectory` whose ``meta`` holds ``optimizer``,
      ``learning_rate``, ``seed``, ``init``, ``batch_size``, ``label``,
      ``model``, ``compared`` and ``compile_seconds`` (and ``framework``:
      ``"nnx"`` for an NNX model).
    """
    t_start = time.perf_counter()
    record = check_steps(steps)
    batch_size = optional_positive_int(batch_size, "batch_size")
    tx, opt_name = make_optimizer(optimizer, learning_rate)
    is_nnx = isinstance(model, nnx.Module)
    if is_nnx:
        model = NNXModel.wrap(model)
    params, init_kind = initial_params(model, init, seed)
    ref_layers = reference_layers(model, reference, init, init_kind)
    norms = model.layer_normalizations()
    task = getattr(model, "task", "classification")

    Xh, yh = prepare_xy(model, X, y)
    X_dev, y_dev = jnp.asarray(Xh), jnp.asarray(yh, jnp.int32)
    if eval_batch_size is None:
        width = max(int(W.shape[1]) for W, _ in model.layer_weights(params))
        n_test = len(test[1]) if isinstance(test, (tuple, list)) and len(test) == 2 else 0
        eval_batch_size = scoring.rows_per_batch(width, max(len(yh), n_test))
    train_eval = stack_batches(X_dev, y_dev, eval_batch_size)
    test_eval = None
    if test is not None:
        if not isinstance(test, (tuple, list)) or len(test) != 2:
            raise ValueError("test must be a pair (X_test, y_test)")
        Xt, yt = prepare_xy(model, test[0], test[1])
        test_eval = stack_batches(Xt, yt, eval_batch_size)

    # Own copies: the chunk donates its state, which must not free the caller's arrays.
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    t0 = time.perf_counter()
    if is_nnx:
        state, opt_def = create_nnx_train_state(model, jax.tree.map(jnp.array, params), tx)
        chunk = make_nnx_train_chunk(model, opt_def, batch_size=batch_size)
    else:
        state = create_train_state(jax.tree.map(jnp.array, params), tx)
        chunk = make_train_chunk(model.apply, tx, batch_size=batch_size)
    chunk = chunk.lower(state, X_dev, y_dev, key, jnp.int32(0)).compile()
    compile_seconds = time.perf_counter() - t0

    def measure(state, seconds):
        row = {"step": int(state.step)}
        ev = evaluate(model, state.params, train_eval, with_grad=True)
        row["train_loss"], row["train_accuracy"] = ev["loss"], ev["accuracy"]
        if test_eval is not None:
            et = evaluate(model, state.params, test_eval)
            row["test_loss"], row["test_accuracy"] = et["loss"], et["accuracy"]
        if task == "lm":
            row["train_perplexity"] = float(np.exp(row["train_loss"]))
            if test_eval is not None:
                row["test_perplexity"] = float(np.exp(row["test_loss"]))
        row["grad_norm"] = ev["grad_norm"]
        if ref_layers is not None:
            row.update(weight_agreement(model.layer_weights(state.params), ref_layers, norms,
                                        fold_bias=fold_bias))
        row["seconds"] = seconds
        row["wall_seconds"] = time.perf_counter() - t_start
        return row

    rows, train_seconds = [], 0.0
    bar = tqdm(total=record[-1], disable=not progress, desc=label or init_kind, leave=False)
    try:
        for target in record:
            n = target - int(state.step)
            if n > 0:
                t = time.perf_counter()
                state = chunk(state, X_dev, y_dev, key, jnp.int32(n))
                jax.block_until_ready(state)
                train_seconds += time.perf_counter() - t
                bar.update(n)
            row = measure(state, train_seconds)
            rows.append(row)
            post = {"step": row["step"], "loss": f"{row['train_loss']:.4f}"}
            if "cosine" in row:
                post["cos"] = f"{row['cosine']:.3f}"
            bar.set_postfix(post, refresh=False)
    finally:
        bar.close()

    info = {
        "optimizer": opt_name,
        "learning_rate": None if learning_rate is None else float(learning_rate),
        "seed": int(seed),
        "init": init_kind,
        "batch_size": batch_size,
        "eval_batch_size": eval_batch_size,
        "label": label or f"{init_kind} {opt_name}",
        "model": type(model.module if is_nnx else model).__name__,
        "task": task,
        "num_train": int(train_eval.count),
        "num_test": None if test_eval is None else int(test_eval.count),
        "compared": None if ref_layers is None else "row-centered " + "; ".join(
            "W + 1 b^T" if fold_bias and n == "l1" else "W" for n in norms),
        "compile_seconds": compile_seconds,
        "backend": jax.default_backend(),
    }
    if is_nnx:
        info["framework"] = "nnx"
    info.update(meta or {})
    if is_nnx:
        return model.merge(state.params), Trajectory(rows=rows, meta=info)
    return state.params, Trajectory(rows=rows, meta=info)
