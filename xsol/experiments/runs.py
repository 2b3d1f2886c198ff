"""The shared runs behind claims C1-C4, C7 and C8, computed once per task and seed.

For one task and one seed (a resample of the training set) a :class:`SeedRuns`
holds:

* the explicit solution (one counting pass) and its temperature-calibrated copy;
* the true optimum of the training loss by full-batch L-BFGS from zero;
* three Adam runs with identical settings and minibatches: from random init,
  from the explicit weights, and from the calibrated explicit weights, each a
  trajectory that records losses, accuracy/perplexity and the row-centered
  cosine/distance to the explicit weights.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import optax

import xsol
from xsol import inputs, scoring
from xsol.experiments.config import ReproduceConfig
from xsol.experiments.tasks import Task, resample
from xsol.metrics import weight_agreement
from xsol.models import SoftmaxRegression, TokenLM
from xsol.optimum import fit_optimum
from xsol.trajectory import log_steps

#: L-BFGS iteration caps per scale.
LBFGS_ITERS = {"tiny": 30, "quick": 100, "full": 1000}


@dataclasses.dataclass
class SeedRuns:
    """Everything measured for one task and one seed (see module docstring)."""

    task: str
    seed: int
    kind: str
    num_classes: int
    explicit: dict
    calibrated: dict
    optimum: dict
    prior_once: dict | None
    adam: dict  # {"random": Trajectory, "explicit": Trajectory, "calibrated": Trajectory}
    weights: dict  # final weight matrices for C8: {"explicit", "optimum", "adam_random"}


def model_for(task: Task):
    """The single softmax layer for ``task``."""
    if task.is_lm:
        return TokenLM(vocab_size=task.vocab_size, window=task.window,
                       num_classes=task.num_classes)
    return SoftmaxRegression(num_features=task.num_features, num_classes=task.num_classes)


def record_steps(total: int) -> list:
    """Log-spaced record points plus the one-tenth budget used by C7."""
    return sorted(set(log_steps(total, 12)) | {max(1, total // 10)})


def _solution_metrics(sol, task: Task, seconds: float) -> dict:
    m = dict(
        train_loss=sol.nll(task.X_train, task.y_train),
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


def _prepared(task: Task):
    """Validated JAX-ready arrays: ids ``(B, K)`` int32 or dense float32."""
    def prep(X):
        if task.is_lm:
            return inputs.check_ids(X, task.vocab_size)
        return np.asarray(X, np.float32)
    return prep(task.X_train), prep(task.X_test)


def run_seed(task: Task, seed: int, cfg: ReproduceConfig, *, progress: bool = False) -> SeedRuns:
    """Computes a :class:`SeedRuns` for ``task`` resampled with ``seed``."""
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
        prior_once = _solution_metrics(once, t, t_fit + time.perf_counter() - t0)

    Xtr, Xte = _prepared(t)
    t0 = time.perf_counter()
    # The loss is convex, so the optimum does not depend on the start; starting
    # from the explicit weights only makes L-BFGS get there sooner.
    opt = fit_optimum(Xtr, t.y_train, t.num_classes, kind=t.kind, num_features=t.num_features,
                      init=(sol.weights, sol.bias), max_iter=LBFGS_ITERS.get(cfg.scale, 300),
                      tol=1e-5)
    t_opt = time.perf_counter() - t0
    opt_test = xsol.softmax_nll(opt.weights, opt.bias, Xte, t.y_test, kind=t.kind)
    pred_tr = scoring.predict(opt.weights, opt.bias, Xtr, kind=t.kind)
    pred_te = scoring.predict(opt.weights, opt.bias, Xte, kind=t.kind)
    optimum = dict(
        train_loss=opt.loss, test_loss=opt_test,
        train_accuracy=float(np.mean(pred_tr == t.y_train)),
        test_accuracy=float(np.mean(pred_te == t.y_test)),
        grad_norm=opt.grad_norm, iterations=opt.iterations, seconds=t_opt,
        cosine_to_explicit=weight_agreement([(opt.weights, opt.bias)],
                                            [(sol.weights, sol.bias)], ["l1"])["cosine"],
    )
    if t.is_lm and t.window == 1:
        # For one-hot inputs the optimum is known in closed form: the maximum
        # likelihood bigram model, whose mean loss is the conditional entropy.
        F = np.asarray(sol.stats.cooc, np.float64)
        f = F.sum(1, keepdims=True)
        nz = F > 0
        optimum["exact_train_loss"] = float(-np.sum(F[nz] * np.log((F / np.where(f > 0, f, 1))[nz]))
                                            / F.sum())
    if t.is_lm:
        optimum["train_perplexity"] = float(np.exp(optimum["train_loss"]))
        optimum["test_perplexity"] = float(np.exp(optimum["test_loss"]))

    model = model_for(t)
    steps = record_steps(cfg.steps)
    batch = cfg.batch_size if not t.is_lm else (cfg.lm_batch_size or cfg.batch_size)
    lr = cfg.lm_learning_rate if t.is_lm else cfg.learning_rate
    runs, finals = {}, {}
    for name, init in (("random", "random"), ("explicit", sol), ("calibrated", cal)):
        params, traj = xsol.train_and_evaluate(
            model, init, optax.adam, t.X_train, t.y_train, learning_rate=lr, steps=steps,
            test=(t.X_test, t.y_test), reference=sol, batch_size=batch, seed=seed,
            progress=progress, label=f"Adam from {name}",
            meta=dict(task=t.name, seed=seed),
        )
        runs[name] = traj
        finals[name] = np.asarray(params["W"])
    return SeedRuns(
        task=t.name, seed=seed, kind=t.kind, num_classes=t.num_classes,
        explicit=_solution_metrics(sol, t, t_fit),
        calibrated=_solution_metrics(cal, t, t_cal),
        optimum=optimum, prior_once=prior_once, adam=runs,
        weights=dict(explicit=np.asarray(sol.weights), optimum=np.asarray(opt.weights),
                     adam_random=finals["random"], calibrated_scale=cal.inverse_temperature),
    )


def run_all(tasks: list, cfg: ReproduceConfig, *, progress: bool = True) -> dict:
    """``{task name: [SeedRuns per seed]}`` for every task and seed."""
    from tqdm.auto import tqdm

    out = {}
    work = [(task, seed) for task in tasks for seed in cfg.seeds]
    bar = tqdm(work, desc="runs (explicit, L-BFGS, Adam x3)", disable=not progress)
    for task, seed in bar:
        bar.set_postfix_str(f"{task.name} seed {seed}")
        out.setdefault(task.name, []).append(run_seed(task, seed, cfg))
    return out
