"""The shared runs behind claims C1-C4 and C8, computed once per task and seed.

Per task, once (:func:`setup_task`): the training examples are split into a
fitting part and a validation split (:func:`xsol.experiments.tasks.validation_split`);
for image tasks the L2 penalty of the reference optimum is chosen on the
validation split from ``cfg.optimum_l2_grid`` (image data is often separable,
where the unpenalized optimum does not exist; the unpenalized fit is kept as a
diagnostic). Language models use the unpenalized training loss, whose infimum
is C1's reference.

Per seed (:func:`run_seed`, a seeded resample of the fitting part), a
:class:`SeedRuns` holds:

* the explicit solution (one counting pass), its temperature-calibrated copy
  and, for images, the prior counted once; for language models the training
  loss across ``cfg.smoothing_grid``;
* the reference optimum by full-batch L-BFGS (:func:`xsol.optimize.optimum.fit_optimum`)
  with its convergence flag;
* for every optimizer in ``cfg.optimizers`` and every start (random init, the
  explicit weights, the calibrated explicit weights), a learning-rate sweep
  over ``cfg.lr_grid`` on identical minibatches (:func:`xsol.experiments.sweep.train_grid`),
  the rate chosen on the validation split; ``adam`` holds Adam's tuned
  trajectories (the rows of a trajectory record losses, accuracy/perplexity
  and the row-centered cosine/distance to the explicit weights);
* C8's readout divergence and template correlation of each weight matrix.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

import xsol
from xsol.core import inputs
from xsol.solvers import scoring
from xsol.experiments.config import ReproduceConfig
from xsol.experiments.interpret import readout_divergence, template_correlation
from xsol.experiments.sweep import train_grid
from xsol.experiments.tasks import Task, resample
from xsol.experiments.verdicts import chance_accuracy
from xsol.train.metrics import weight_agreement
from xsol.models.linen import SoftmaxRegression, TokenLM
from xsol.optimize.optimum import fit_optimum
from xsol.train.trajectory import log_steps

#: The starts every optimizer is run from.
STARTS = ("random", "explicit", "calibrated")
#: Gradient max-norm at which an optimum counts as converged.
OPTIMUM_TOL = 1e-5
#: Training figures between a sweep's first and last step use a fixed subset
#: of this many examples (:func:`xsol.experiments.sweep.train_grid`).
TRAIN_EVAL_ROWS = 8192


@dataclasses.dataclass
class TaskSetup:
    """What is decided once per task, on the validation split.

    Attributes:
      task: the task's name.
      l2: the reference optimum's L2 penalty.
      l2_table: for image tasks, each candidate penalty with its validation
        loss/accuracy and how its L-BFGS run ended.
      unpenalized: for image tasks, the unpenalized fit on the fitting part:
        how it ended, its training accuracy and loss, its largest weight, and
        ``separable`` (training accuracy 1: the loss has no finite minimizer).
      num_fit, num_validation: example counts.
    """

    task: str
    l2: float
    l2_table: list
    unpenalized: dict | None
    num_fit: int
    num_validation: int


@dataclasses.dataclass
class SeedRuns:
    """Everything measured for one task and one seed (see module docstring)."""

    task: str
    seed: int
    kind: str
    num_classes: int
    chance: float
    explicit: dict
    calibrated: dict
    optimum: dict
    prior_once: dict | None
    smoothing: list
    grids: dict      # {optimizer: {start: GridRun}} (final params dropped)
    chosen: dict     # {optimizer: {start: index into the grid}}
    adam: dict       # {start: Trajectory}: Adam at its chosen rate
    weights: dict    # {"explicit", "optimum", "adam_random"}: weight matrices
    readout: dict    # C8: {weights name: readout divergence (nats)}
    template: dict   # C8: {weights name: mean template correlation}

    def tuned(self, optimizer: str, start: str):
        """The trajectory of ``optimizer`` from ``start`` at its chosen rate."""
        return self.grids[optimizer][start].trajectories[self.chosen[optimizer][start]]


def lm_runs(runs: dict) -> dict:
    """The language-model tasks of ``{task name: [SeedRuns]}``."""
    return {k: v for k, v in runs.items() if v[0].kind == "ids"}


def model_for(task: Task):
    """The single softmax layer for ``task``."""
    if task.is_lm:
        return TokenLM(vocab_size=task.vocab_size, window=task.window,
                       num_classes=task.num_classes)
    return SoftmaxRegression(num_features=task.num_features, num_classes=task.num_classes)


def record_steps(total: int) -> list:
    """Log-spaced record points, plus the one-tenth budget."""
    return sorted(set(log_steps(total, 12)) | {max(1, total // 10)})


def _prepared(task: Task, X):
    """Validated JAX-ready arrays: ids ``(B, K)`` int32 or dense float32."""
    if task.is_lm:
        return inputs.check_ids(X, task.vocab_size)
    return np.asarray(X, np.float32)


def _solution_metrics(sol, task: Task, val, seconds: float) -> dict:
    m = dict(
        train_loss=sol.nll(task.X_train, task.y_train),
        val_loss=sol.nll(val[0], val[1]),
        test_loss=sol.nll(task.X_test, task.y_test),
        train_accuracy=sol.score(task.X_train, task.y_train),
        test_accuracy=sol.score(task.X_test, task.y_test),
        seconds=seconds,
        inverse_temperature=sol.inverse_temperature,
    )
    if task.is_lm:
        m["train_perplexity"] = float(np.exp(m["train_loss"]))
        m["test_perplexity"] = float(np.exp(m["test_loss"]))
    return m


def _weights_metrics(W, b, task: Task, X, y) -> dict:
    loss = xsol.solvers.softmax_nll(W, b, X, y, kind=task.kind)
    acc = float(np.mean(scoring.predict(W, b, X, kind=task.kind) == np.asarray(y)))
    return dict(loss=loss, accuracy=acc)


def _optimum(task: Task, l2: float, cfg: ReproduceConfig, init=None):
    X = _prepared(task, task.X_train)
    cap = cfg.lm_optimum_max_iter if task.is_lm else cfg.optimum_max_iter
    return fit_optimum(X, task.y_train, task.num_classes, kind=task.kind,
                       num_features=task.num_features, init=init, l2=l2, max_iter=cap,
                       tol=OPTIMUM_TOL)


def choose_l2(table: list) -> int:
    """Index of the penalty with the lowest validation loss among those whose optimum converged.

    A penalty whose L-BFGS run did not converge within its cap has no optimum
    to stand for; it is chosen only when none converged (and then flagged).
    """
    losses = np.asarray([r["val_loss"] for r in table], np.float64)
    ok = np.asarray([r["reason"] == "gradient" for r in table]) & np.isfinite(losses)
    pool = ok if ok.any() else np.isfinite(losses)
    return int(np.nanargmin(np.where(pool, losses, np.nan)))


def setup_task(fit_task: Task, val: tuple, cfg: ReproduceConfig) -> TaskSetup:
    """Chooses the reference optimum's penalty on the validation split (see module docstring)."""
    if fit_task.is_lm:
        return TaskSetup(fit_task.name, 0.0, [], None, len(fit_task.y_train), len(val[1]))
    Xv = _prepared(fit_task, val[0])
    table = []
    for l2 in cfg.optimum_l2_grid:
        opt = _optimum(fit_task, float(l2), cfg)
        m = _weights_metrics(opt.weights, opt.bias, fit_task, Xv, val[1])
        table.append(dict(l2=float(l2), val_loss=m["loss"], val_accuracy=m["accuracy"],
                          reason=opt.reason, iterations=opt.iterations))
    best = choose_l2(table)
    free = _optimum(fit_task, 0.0, cfg)
    tr = _weights_metrics(free.weights, free.bias, fit_task, _prepared(fit_task, fit_task.X_train),
                          fit_task.y_train)
    unpenalized = dict(reason=free.reason, iterations=free.iterations, train_loss=tr["loss"],
                       train_accuracy=tr["accuracy"], grad_norm=free.grad_norm,
                       max_abs_weight=float(np.max(np.abs(np.asarray(free.weights)))),
                       separable=bool(tr["accuracy"] >= 1.0))
    return TaskSetup(fit_task.name, table[best]["l2"], table, unpenalized,
                     len(fit_task.y_train), len(val[1]))


def _smoothing_sweep(sol, t: Task, cfg: ReproduceConfig) -> list:
    out = []
    for a in cfg.smoothing_grid:
        s = xsol.solvers.explicit.solution_from_stats(sol.stats, kind=t.kind, smoothing=float(a),
                                              vocab_size=t.vocab_size, window=t.window)
        out.append(dict(smoothing=float(a), train_loss=s.nll(t.X_train, t.y_train),
                        test_loss=s.nll(t.X_test, t.y_test)))
    return out


def _bigram_entropy(cooc) -> float:
    """Mean loss of the maximum-likelihood bigram: the conditional entropy of the counts."""
    F = np.asarray(cooc, np.float64)
    f = F.sum(1, keepdims=True)
    nz = F > 0
    return float(-np.sum(F[nz] * np.log((F / np.where(f > 0, f, 1))[nz])) / F.sum())


def run_seed(task: Task, seed: int, cfg: ReproduceConfig, *, val: tuple, setup: TaskSetup,
             rates: dict | None = None, progress: bool = False) -> SeedRuns:
    """Computes a :class:`SeedRuns` for the fitting part ``task`` resampled with ``seed``.

    ``rates``: ``{(optimizer, start): rate}`` to train at instead of sweeping
    ``cfg.lr_grid`` (seeds after ``cfg.lm_sweep_seeds``, see :func:`run_all`).
    """
    t = resample(task, seed, cfg.resample_fraction)
    smoothing = cfg.lm_smoothing if t.is_lm else cfg.image_smoothing
    t0 = time.perf_counter()
    sol = xsol.fit_explicit(t.X_train, t.y_train, t.num_classes, vocab_size=t.vocab_size,
                            smoothing=smoothing)
    sol.weights.block_until_ready()
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = sol.calibrate(t.X_train, t.y_train)
    t_cal = t_fit + time.perf_counter() - t0
    prior_once = None
    if not t.is_lm:
        t0 = time.perf_counter()
        once = sol.calibrate(t.X_train, t.y_train, prior="once")
        prior_once = _solution_metrics(once, t, val, t_fit + time.perf_counter() - t0)

    Xtr, Xte = _prepared(t, t.X_train), _prepared(t, t.X_test)
    t0 = time.perf_counter()
    # Starting at the explicit weights only shortens the run: with a penalty the
    # problem is strongly convex (one optimum); without one, on separable data,
    # no finite optimum exists whatever the start, and the run is flagged.
    opt = _optimum(t, setup.l2, cfg, init=(sol.weights, sol.bias))
    t_opt = time.perf_counter() - t0
    tr = _weights_metrics(opt.weights, opt.bias, t, Xtr, t.y_train)
    te = _weights_metrics(opt.weights, opt.bias, t, Xte, t.y_test)
    optimum = dict(
        train_loss=opt.cross_entropy, objective=opt.loss, l2=setup.l2,
        test_loss=te["loss"], train_accuracy=tr["accuracy"], test_accuracy=te["accuracy"],
        grad_norm=opt.grad_norm, iterations=opt.iterations, reason=opt.reason,
        converged=opt.converged, seconds=t_opt,
        separable=bool(setup.l2 == 0 and tr["accuracy"] >= 1.0),
        cosine_to_explicit=weight_agreement([(opt.weights, opt.bias)],
                                            [(sol.weights, sol.bias)], ["l1"])["cosine"],
    )
    if t.is_lm and t.window == 1:
        # One-hot inputs: the infimum of the training loss is the conditional
        # entropy of the counts (the maximum-likelihood bigram).
        optimum["exact_train_loss"] = _bigram_entropy(sol.stats.cooc)
    if t.is_lm:
        optimum["train_perplexity"] = float(np.exp(optimum["train_loss"]))
        optimum["test_perplexity"] = float(np.exp(optimum["test_loss"]))

    model = model_for(t)
    steps = record_steps(cfg.steps)
    batch = cfg.lm_batch_size if t.is_lm else cfg.batch_size
    grids, chosen, finals = {}, {}, {}
    for name in cfg.optimizers:
        grids[name], chosen[name] = {}, {}
        for start, init in (("random", "random"), ("explicit", sol), ("calibrated", cal)):
            grid = cfg.lr_grid if rates is None else [rates[(name, start)]]
            g = train_grid(model, init, name, grid, t.X_train, t.y_train, steps=steps,
                           validation=val, test=(t.X_test, t.y_test), reference=sol,
                           batch_size=batch, seed=seed, train_eval_rows=TRAIN_EVAL_ROWS,
                           meta=dict(task=t.name, seed=seed))
            i = g.choose()
            finals[(name, start)] = g.final_params[i]
            g.final_params = []  # the chosen one is kept in `weights`; the rest would bloat stages
            grids[name][start], chosen[name][start] = g, i
    adam = {s: grids["adam"][s].trajectories[chosen["adam"][s]] for s in STARTS} \
        if "adam" in grids else {}
    first = cfg.optimizers[0]
    weights = dict(explicit=np.asarray(sol.weights), optimum=np.asarray(opt.weights),
                   adam_random=np.asarray(finals[(first, "random")]["W"]),
                   calibrated_scale=cal.inverse_temperature)
    biases = dict(explicit=np.asarray(sol.bias), optimum=np.asarray(opt.bias),
                  adam_random=np.asarray(finals[(first, "random")]["b"]))
    F_test = np.asarray(xsol.fit_explicit(t.X_test, t.y_test, t.num_classes,
                                          vocab_size=t.vocab_size).stats.cooc, np.float64)
    readout = {k: readout_divergence(weights[k], biases[k], F_test) for k in biases}
    template = {}
    if not t.is_lm:
        for k in biases:
            template[k] = float(np.nanmean(template_correlation(
                weights[k], t.X_train, t.y_train, t.num_classes)))
        F = np.asarray(sol.stats.cooc, np.float64)
        # One gradient step from zero moves W along -grad = (F - f 1^T / N) / B.
        step1 = F - F.sum(1, keepdims=True) / t.num_classes
        template["one_step_from_zero"] = float(np.nanmean(template_correlation(
            step1, t.X_train, t.y_train, t.num_classes)))
    return SeedRuns(
        task=t.name, seed=seed, kind=t.kind, num_classes=t.num_classes,
        chance=chance_accuracy(t.y_train, t.y_test),
        explicit=_solution_metrics(sol, t, val, t_fit),
        calibrated=_solution_metrics(cal, t, val, t_cal),
        optimum=optimum, prior_once=prior_once,
        smoothing=_smoothing_sweep(sol, t, cfg) if t.is_lm else [],
        grids=grids, chosen=chosen, adam=adam, weights=weights, readout=readout,
        template=template,
    )


def run_all(tasks: list, cfg: ReproduceConfig, cache=None, *, progress: bool = True) -> dict:
    """``{"setups": {task: TaskSetup}, "runs": {task: [SeedRuns per seed]}}``.

    ``cache`` is the :class:`xsol.experiments.config.TaskCache` the tasks came
    from (its validation splits are reused); without one the split is made here.
    """
    from tqdm.auto import tqdm

    from xsol.experiments.tasks import validation_split

    splits = {t.name: (cache.split(t.name) if cache is not None
                       else validation_split(t, cfg.validation_fraction)) for t in tasks}
    setups = {}
    for name, (fit, val) in tqdm(splits.items(), desc="optimum penalties (validation)",
                                 disable=not progress):
        setups[name] = setup_task(fit, val, cfg)
    out = {}
    work = [(task, seed) for task in tasks for seed in cfg.seeds]
    bar = tqdm(work, desc="runs (explicit, L-BFGS, lr sweeps)", disable=not progress)
    for task, seed in bar:
        bar.set_postfix_str(f"{task.name} seed {seed}")
        fit, val = splits[task.name]
        done = out.setdefault(task.name, [])
        rates = None
        if task.is_lm and cfg.lm_sweep_seeds is not None and len(done) >= cfg.lm_sweep_seeds:
            rates = reused_rates(done)
        done.append(run_seed(fit, seed, cfg, val=val, setup=setups[task.name], rates=rates))
    return dict(setups=setups, runs=out)


def reused_rates(swept: list) -> dict:
    """``{(optimizer, start): rate}``: the rate the swept seeds chose most often (ties: the smaller)."""
    from collections import Counter

    out = {}
    for opt, by_start in swept[0].grids.items():
        for start in by_start:
            counts = Counter(r.grids[opt][start].learning_rates[r.chosen[opt][start]]
                             for r in swept)
            out[(opt, start)] = min(counts, key=lambda lr: (-counts[lr], lr))
    return out
