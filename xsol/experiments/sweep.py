"""Learning-rate sweeps: one compiled run trains a model at every rate of a grid.

Every gradient baseline in the report is tuned the same, stated way
(:func:`train_grid`): the model is trained from the same start, on the same
minibatches (step ``s`` uses the batch drawn from ``fold_in(key, s)``, exactly
as :func:`xsol.train.loop.train_and_evaluate`; the same loop,
:func:`xsol.train.steps.run_steps`), at every learning rate of a
log-spaced grid at once (the parameters and optimizer states carry a leading
grid axis and the update is ``jax.vmap``-ed over it), and the rate is chosen
on a validation split by the lowest validation loss at the end of the budget
(:meth:`GridRun.choose`); diverged rates (a non-finite loss) are never chosen.
Held-out test figures are recorded for every rate but never used to choose.

The optimizers (:data:`OPTIMIZERS`) are Optax's: ``adam`` and ``sgd_momentum``
(SGD with heavy-ball momentum 0.9).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xsol.core.checks import positive_int
from xsol.solvers import scoring
from xsol.train.evaluation import eval_sums, stack_batches
from xsol.train.metrics import weight_agreement
from xsol.train.starts import initial_params, prepare_xy, reference_layers
from xsol.train.steps import TrainingState, make_train_step, run_steps
from xsol.train.trajectory import Trajectory, check_steps

#: name -> learning rate -> Optax optimizer.
OPTIMIZERS = {
    "adam": lambda lr: optax.adam(lr),
    "sgd_momentum": lambda lr: optax.sgd(lr, momentum=0.9),
}
#: How the report names them.
OPTIMIZER_TITLES = {"adam": "Adam", "sgd_momentum": "SGD + momentum 0.9"}


def lr_grid(low: float, high: float, per_decade: int = 2) -> tuple:
    """Log-spaced learning rates from ``low`` to ``high``: ``per_decade`` per factor of 10.

    >>> lr_grid(1e-2, 1, 1)
    (0.01, 0.1, 1.0)
    """
    per_decade = positive_int(per_decade, "per_decade", "rates per factor of 10")
    if not (0 < low <= high):
        raise ValueError(f"lr_grid needs 0 < low <= high, got {low}, {high}")
    n = int(round(np.log10(high / low) * per_decade)) + 1
    return tuple(float(f"{v:.3g}") for v in np.logspace(np.log10(low), np.log10(high), n))


@dataclasses.dataclass
class GridRun:
    """One model trained at every learning rate of a grid from one start.

    Attributes:
      optimizer: a key of :data:`OPTIMIZERS`.
      start: how the parameters were initialized (``"random"``, ``"explicit"``, ...).
      learning_rates: the grid.
      trajectories: one :class:`Trajectory` per rate, with ``val_*`` columns
        when a validation split was given.
      final_params: the parameters after the last step, one host pytree per rate.
      seconds: training time of the whole grid (all rates at once).
    """

    optimizer: str
    start: str
    learning_rates: list
    trajectories: list
    final_params: list
    seconds: float

    def values(self, key: str, step: int | None = None) -> np.ndarray:
        """``key`` at ``step`` (default: the last step) for every rate."""
        out = []
        for t in self.trajectories:
            row = t.rows[-1] if step is None else t.at(step)
            out.append(row.get(key, np.nan))
        return np.asarray(out, np.float64)

    def choose(self, key: str = "val_loss", step: int | None = None) -> int:
        """Index of the rate with the lowest finite ``key`` at ``step`` (ties: the smaller rate).

        Raises:
          ValueError: every rate diverged.
        """
        v = self.values(key, step)
        if not np.isfinite(v).any():
            raise ValueError(f"{self.optimizer} from {self.start}: every learning rate in "
                             f"{self.learning_rates} diverged (non-finite {key})")
        return int(np.nanargmin(np.where(np.isfinite(v), v, np.nan)))

    def at_edge(self, index: int) -> bool:
        """True when the chosen rate is the smallest or largest of the grid (widen it)."""
        return len(self.learning_rates) > 1 and index in (0, len(self.learning_rates) - 1)


@functools.lru_cache(maxsize=None)
def _grid_chunk(apply_fn, factory, batch_size):
    """The training loop (:func:`xsol.train.steps.run_steps`) of every rate at once.

    The state's params and optimizer state carry a leading grid axis; its
    step is shared, so every rate trains on the same minibatches.
    """
    def one_step(state, lr, xb, yb):
        return make_train_step(apply_fn, factory(lr), jit=False)(state, xb, yb)[0]

    per_rate = TrainingState(None, 0, 0)
    grid_step = jax.vmap(one_step, in_axes=(per_rate, 0, None, None), out_axes=per_rate)

    def run_chunk(state, lrs, X, y, key, num_steps):
        def step(s, xb, yb):
            return grid_step(s, lrs, xb, yb), {}

        return run_steps(step, state, X, y, key, num_steps, batch_size=batch_size)[0]

    return jax.jit(run_chunk, donate_argnums=0)


@functools.lru_cache(maxsize=None)
def _grid_eval(apply_fn, with_grad):
    f = functools.partial(eval_sums, apply_fn=apply_fn, with_grad=with_grad)
    return jax.jit(jax.vmap(f, in_axes=(0, None, None, None)))


def _grid_metrics(model, data, params, with_grad) -> dict:
    loss, correct, grad = _grid_eval(model.apply, with_grad)(params, data.X, data.y, data.mask)
    out = {"loss": np.asarray(loss, np.float64) / data.count,
           "accuracy": np.asarray(correct, np.float64) / data.count}
    if with_grad:
        sq = sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grad))
        out["grad_norm"] = np.sqrt(np.asarray(sq, np.float64)) / data.count
    return out


def _pick(tree, i):
    return jax.tree.map(lambda a: a[i], tree)


def train_grid(model, init, optimizer: str, learning_rates, X, y, *, steps, validation=None,
               test=None, reference=None, batch_size: int | None = None, seed: int = 0,
               eval_batch_size: int | None = None, train_eval_rows: int | None = None,
               meta: dict | None = None) -> GridRun:
    """Trains ``model`` from ``init`` at every learning rate at once and records trajectories.

    Args:
      model: a model from :mod:`xsol.models.linen`.
      init: the start, as :func:`xsol.train.starts.initial_params` takes it.
      optimizer: a key of :data:`OPTIMIZERS`.
      learning_rates: the grid (see :func:`lr_grid`).
      X, y: training data.
      steps: the steps to record (a list) or a total (see :func:`xsol.train.loop.train_and_evaluate`).
      validation: ``(X_val, y_val)``, the split rates are chosen on.
      test: ``(X_test, y_test)``, recorded only.
      reference: weights to measure the row-centered cosine/distance to.
      batch_size: minibatch size (None: full batch).
      seed: seeds the random init and the minibatches.
      eval_batch_size: evaluation batch rows (None: from the memory budget).
      train_eval_rows: measure the training figures of the steps between the
        first and the last record on a fixed random subset of this many
        training examples (the first and last records always use all of them);
        None: all examples at every record.
      meta: more metadata for every trajectory.

    Returns:
      A :class:`GridRun`. Its trajectory for rate ``lr`` equals
      ``train_and_evaluate(model, init, OPTIMIZERS[optimizer](lr), ...)`` on
      the same seed (up to float32 summation order).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {optimizer!r}")
    lrs = [float(v) for v in learning_rates]
    if not lrs or min(lrs) <= 0:
        raise ValueError(f"learning_rates must be a non-empty list of positive rates, got {lrs}")
    record = check_steps(steps)
    factory = OPTIMIZERS[optimizer]
    params0, init_kind = initial_params(model, init, seed)
    ref_layers = reference_layers(model, reference, init, init_kind)
    norms = model.layer_normalizations()
    is_lm = getattr(model, "task", "classification") == "lm"

    Xh, yh = prepare_xy(model, X, y)
    X_dev, y_dev = jnp.asarray(Xh), jnp.asarray(yh, jnp.int32)
    G = len(lrs)
    if eval_batch_size is None:
        width = max(int(W.shape[1]) for W, _ in model.layer_weights(params0))
        # The grid evaluates G models at once: their logits share the budget.
        eval_batch_size = max(1, scoring.rows_per_batch(width * G, len(yh)))
    sets = {"train": stack_batches(X_dev, y_dev, eval_batch_size)}
    subset = None
    if train_eval_rows is not None and train_eval_rows < len(yh):
        pick = np.sort(np.random.default_rng(seed).choice(len(yh), int(train_eval_rows),
                                                          replace=False))
        subset = stack_batches(X_dev[pick], y_dev[pick], eval_batch_size)
    for name, pair in (("val", validation), ("test", test)):
        if pair is not None:
            Xs, ys = prepare_xy(model, pair[0], pair[1])
            sets[name] = stack_batches(Xs, ys, eval_batch_size)

    lr_dev = jnp.asarray(lrs, jnp.float32)
    params = jax.tree.map(lambda a: jnp.array(jnp.broadcast_to(a, (G, *a.shape)), jnp.float32),
                          params0)
    opt_state = jax.vmap(lambda lr, p: factory(lr).init(p))(lr_dev, params)
    state = TrainingState(jnp.zeros((), jnp.int32), params, opt_state)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
    chunk = _grid_chunk(model.apply, factory, batch_size)

    rows = [[] for _ in range(G)]
    step, seconds = 0, 0.0
    for target in record:
        n = target - step
        if n > 0:
            t0 = time.perf_counter()
            state = chunk(state, lr_dev, X_dev, y_dev, key, jnp.int32(n))
            jax.block_until_ready(state)
            seconds += time.perf_counter() - t0
            step = target
        params = state.params
        # The gradient norm (a convergence check) is measured at the end only.
        last = target == record[-1]
        ends = last or target == record[0]
        ev = {name: _grid_metrics(model, subset if (name == "train" and subset is not None
                                                    and not ends) else data,
                                  params, with_grad=(name == "train" and last))
              for name, data in sets.items()}
        for i in range(G):
            row = {"step": step}
            for name, m in ev.items():
                row[f"{name}_loss"] = float(m["loss"][i])
                row[f"{name}_accuracy"] = float(m["accuracy"][i])
                if is_lm:
                    row[f"{name}_perplexity"] = float(np.exp(m["loss"][i]))
            if last:
                row["grad_norm"] = float(ev["train"]["grad_norm"][i])
            if ref_layers is not None:
                p_i = _pick(params, i)
                if all(bool(jnp.all(jnp.isfinite(W))) for W, _ in model.layer_weights(p_i)):
                    row.update(weight_agreement(model.layer_weights(p_i), ref_layers, norms))
                else:
                    row.update(cosine=float("nan"), distance=float("nan"))
            row["seconds"] = seconds
            rows[i].append(row)

    info = dict(optimizer=optimizer, init=init_kind, seed=int(seed), batch_size=batch_size,
                model=type(model).__name__, grid=lrs, backend=jax.default_backend(),
                train_eval=("all training examples" if subset is None else
                            f"all training examples at the first and last step, a fixed "
                            f"subset of {subset.count} in between"))
    info.update(meta or {})
    trajs = [Trajectory(rows=rows[i], meta=dict(info, learning_rate=lrs[i],
                                                label=f"{OPTIMIZER_TITLES[optimizer]} from "
                                                      f"{init_kind}, lr {lrs[i]:g}"))
             for i in range(G)]
    host = jax.device_get(params)
    finals = [jax.tree.map(lambda a, i=i: np.asarray(a[i]), host) for i in range(G)]
    return GridRun(optimizer, init_kind, lrs, trajs, finals, seconds)
