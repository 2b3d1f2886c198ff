"""Training with any Optax optimizer, recording a trajectory toward explicit weights.

The pieces, in the order they run:

* :func:`create_train_state` -- ``TrainingState(step, params, opt_state)``.
* :func:`make_train_step` -- one update ``params <- params + tx(grad L)`` on a
  batch, with ``L = mean_t -log softmax(model(x_t))[y_t]`` (jitted).
* :func:`make_train_chunk` -- many steps on device per host round-trip. Step
  ``s`` trains on the minibatch drawn from ``fold_in(key, s)`` (``batch_size``
  indices drawn uniformly with replacement), or on all examples when
  ``batch_size`` is None, so a run depends only on its seed, not on where the
  chunks between evaluations begin and end.
* :func:`evaluate` -- full-batch or minibatched loss, accuracy and gradient norm.
* :func:`train_and_evaluate` -- all of the above: trains to the last requested step and
  records, at each requested step, losses, accuracy/perplexity, the gradient
  norm, time, and the row-centered distance/cosine to reference weights
  (:mod:`xsol.train.metrics`); returns the final params and a
  :class:`xsol.train.trajectory.Trajectory`.

Nothing here is device-specific: the same code runs on CPU, GPU and TPU.
The models are those of :mod:`xsol.models.linen` (``flax.linen``, parameters kept
apart) and of :mod:`xsol.models.nnx` (``flax.nnx``, parameters held by the
module): an NNX model is trained with ``nnx.Optimizer``
(:func:`make_nnx_train_chunk`) and :func:`train_and_evaluate` returns a
trained copy of it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from xsol.core import inputs

from xsol.solvers import scoring
from xsol.solvers.explicit import ExplicitSolution
from xsol.train.metrics import weight_agreement
from xsol.train.trajectory import Trajectory, check_steps


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


def make_train_step(apply_fn, tx: optax.GradientTransformation, *, jit: bool = True):
    """One optimizer step on a batch.

    Args:
      apply_fn: ``model.apply``.
      tx: an Optax optimizer.
      jit: return the jitted function (default) or the plain one (for use
        inside other compiled code).

    Returns:
      ``train_step(state, X, y) -> (state, {"loss", "grad_norm"})`` where
      ``loss`` is the batch loss before the update and ``grad_norm`` the
      global L2 norm of its gradient.
    """

    def train_step(state: TrainingState, X, y):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, apply_fn, X, y)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
        return TrainingState(state.step + 1, params, opt_state), metrics

    return jax.jit(train_step) if jit else train_step


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


def make_train_chunk(apply_fn, tx: optax.GradientTransformation, *, batch_size: int | None):
    """Many training steps in one compiled call.

    The steps run in a ``lax.fori_loop`` whose trip count is an argument (so
    it becomes a ``while_loop``): one compilation serves every chunk length,
    and no step is wasted on padding, unlike a fixed-length ``lax.scan``.

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
        def body(_, s):
            xb, yb = sample_batch(key, s.step, X, y, batch_size)
            return step_fn(s, xb, yb)[0]

        return jax.lax.fori_loop(0, num_steps, body, state)

    return jax.jit(run_chunk, donate_argnums=0)


@dataclasses.dataclass(frozen=True)
class NNXModel:
    """An :mod:`xsol.models.nnx` model seen through the functional interface used here.

    ``apply({"params": state}, X)`` merges the module's graph with a
    parameter ``nnx.State`` and calls it; the other methods are the module's
    (``init_params``, ``explicit_params`` as ``from_explicit``,
    ``layer_weights``, ``layer_normalizations``, ``prepare``). Equal graphs
    compare equal, so compiled functions are shared between runs.

    Attributes:
      graphdef: the module's ``nnx.GraphDef``.
      module: the module itself (not compared).
    """

    graphdef: Any
    module: Any = dataclasses.field(compare=False, repr=False)

    @classmethod
    def wrap(cls, module) -> "NNXModel":
        missing = [m for m in ("init_params", "explicit_params", "layer_weights",
                               "layer_normalizations", "prepare") if not hasattr(module, m)]
        if missing:
            raise ValueError(
                f"train_and_evaluate trains NNX models with the xsol model interface "
                f"(xsol.models.nnx); {type(module).__name__} lacks {', '.join(missing)}")
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)
        others = jax.tree.leaves(rest, is_leaf=lambda x: isinstance(x, nnx.Variable))
        if others:
            raise ValueError(
                f"train_and_evaluate trains NNX models whose only state is their nnx.Param "
                f"parameters; {type(module).__name__} also holds "
                f"{sorted({type(v).__name__ for v in others})}")
        return cls(graphdef, module)

    def merge(self, params):
        """The module with ``params`` (an ``nnx.State`` of its parameters)."""
        return nnx.merge(self.graphdef, params)

    def apply(self, variables, X):
        return self.merge(variables["params"])(X)

    def init_params(self, seed=0):
        return self.module.init_params(seed)

    def from_explicit(self, source):
        return self.module.explicit_params(source)

    def layer_weights(self, params):
        return self.module.layer_weights(params)

    def layer_normalizations(self):
        return self.module.layer_normalizations()

    def prepare(self, X):
        return self.module.prepare(X)

    def params(self):
        """A copy of the module's own parameters."""
        return jax.tree.map(jnp.array, nnx.state(self.module, nnx.Param))

    def __getattr__(self, name):  # task, num_outputs, num_classes, ...
        if name in ("graphdef", "module") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.module, name)


def create_nnx_train_state(model: NNXModel, params, tx: optax.GradientTransformation):
    """``(TrainingState(0, params, optimizer_state), optimizer_graphdef)`` for an NNX model.

    ``optimizer_state`` is the ``nnx.State`` of an ``nnx.Optimizer(module, tx,
    wrt=nnx.Param)`` built on the module holding ``params``.
    """
    optimizer = nnx.Optimizer(model.merge(params), tx, wrt=nnx.Param)
    opt_def, opt_state = nnx.split(optimizer)
    return TrainingState(jnp.zeros((), jnp.int32), params, opt_state), opt_def


def make_nnx_train_chunk(model: NNXModel, opt_def, *, batch_size: int | None):
    """:func:`make_train_chunk` for an NNX model, stepping with ``nnx.Optimizer``.

    Each step merges the module and its optimizer from the carried states,
    takes ``nnx.grad`` of the mean cross-entropy, applies
    ``optimizer.update(module, grads)`` and carries the new states, so the
    updates are Optax's, as for a linen model; the minibatch of step ``s`` is
    the same as there.

    Returns:
      ``run_chunk(state, X, y, key, num_steps) -> state`` (jitted, state donated).
    """

    def loss(module, X, y):
        return jnp.mean(inputs.cross_entropy(module(X), y))

    def run_chunk(state, X, y, key, num_steps):
        def body(_, s):
            xb, yb = sample_batch(key, s.step, X, y, batch_size)
            module = model.merge(s.params)
            optimizer = nnx.merge(opt_def, s.opt_state)
            grads = nnx.grad(loss)(module, xb, yb)
            optimizer.update(module, grads)
            return TrainingState(s.step + 1, nnx.state(module, nnx.Param), nnx.state(optimizer))

        return jax.lax.fori_loop(0, num_steps, body, state)

    return jax.jit(run_chunk, donate_argnums=0)


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
    X, y = jnp.asarray(X), jnp.asarray(y, jnp.int32)
    n = int(X.shape[0])
    if batch_size is None or batch_size >= n:
        return EvalData(X[None], y[None], jnp.ones((1, n), jnp.float32), n)
    if batch_size < 1:
        raise ValueError(f"eval_batch_size must be a positive integer or None, got {batch_size}")
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    Xp = jnp.concatenate([X, jnp.zeros((pad, *X.shape[1:]), X.dtype)])
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)])
    mask = (jnp.arange(nb * batch_size) < n).astype(jnp.float32)
    return EvalData(Xp.reshape(nb, batch_size, *X.shape[1:]), yp.reshape(nb, batch_size),
                    mask.reshape(nb, batch_size), n)


@functools.lru_cache(maxsize=None)
def _eval_fn(apply_fn, with_grad):
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


def _is_explicit_source(x) -> bool:
    if isinstance(x, ExplicitSolution):
        return True
    if isinstance(x, (tuple, list)):
        return True
    return isinstance(x, (jax.Array, np.ndarray))


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
        _check_param_shapes(init, jax.tree.map(jnp.shape, model.init_params(0)), "init params")
        return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), init), "params"
    if _is_explicit_source(init):
        kind = "explicit"
        if isinstance(init, ExplicitSolution) and init.inverse_temperature != 1.0:
            kind = "explicit-calibrated"
        return model.from_explicit(init), kind
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
        return _nnx_state(model, init, "init params"), "params"
    if _is_explicit_source(init):
        kind = "explicit"
        if isinstance(init, ExplicitSolution) and init.inverse_temperature != 1.0:
            kind = "explicit-calibrated"
        return model.from_explicit(init), kind
    raise ValueError("init must be 'model', 'random', 'zeros', explicit weights or params, "
                     f"got {type(init).__name__}")


def _check_param_shapes(params, shapes, what: str) -> None:
    """Refuses ``params`` whose pytree of shapes differs from the model's ``shapes``."""
    try:
        got = jax.tree.map(jnp.shape, params)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{what} could not be read as arrays: {e}") from e
    if got != shapes:
        raise ValueError(f"{what} have shapes {got}, the model needs {shapes}")


def _nnx_state(model: NNXModel, params, what: str):
    """``params`` (an ``nnx.State`` or a pure dict) as a float32 State of the model's layout."""
    ref = nnx.state(model.module, nnx.Param)
    shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(ref))
    pure = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    _check_param_shapes(pure, shapes, what)
    state = jax.tree.map(jnp.array, ref)
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), pure))
    return state


def prepare_xy(model, X, y):
    X = model.prepare(X)
    num_classes = getattr(model, "num_outputs", getattr(model, "num_classes", None))
    y = inputs.check_labels(y, X.shape[0], num_classes)
    return X, y


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
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    tx, opt_name = make_optimizer(optimizer, learning_rate)
    is_nnx = isinstance(model, nnx.Module)
    if is_nnx:
        model = NNXModel.wrap(model)
    params, init_kind = initial_params(model, init, seed)
    if reference is None and init_kind.startswith("explicit"):
        reference = init
    ref_layers = None
    if reference is not None:
        if is_nnx and isinstance(reference, (dict, nnx.State)):
            ref_params = _nnx_state(model, reference, "reference params")
        else:
            ref_params = (reference if isinstance(reference, dict)
                          else model.from_explicit(reference))
        ref_layers = [(jnp.array(W), jnp.array(b)) for W, b in model.layer_weights(ref_params)]
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
