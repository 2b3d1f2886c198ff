"""Claim C5: explicit solutions fitted layer by layer in a multi-layer network.

A softmax-activation :class:`xsol.models.linen.MLP`, ``h_1 = softmax(x~ W_1 + b_1)``,
..., ``logits = h_L W_{L+1} + b_{L+1}``, is built without backpropagation
(docs/math.md, "Multi-layer networks, layer by layer"):

1. **Hidden targets.** Every layer needs a target for its outputs. The hidden
   code must be *predictable from the layer's inputs* (so that the layer's
   explicit solution can reproduce it) and *informative of the labels* (so
   that the layers above can read the class off it). Class-conditioned
   clusters are both: for each class ``c``, k-means on that class's
   L1-normalized layer inputs splits it into ``H / N`` clusters (the remainder
   going to the largest classes), so every hidden unit belongs to one class
   and the target of example ``t`` is its cluster id. Plain k-means on all
   inputs (no labels) is the ablation: just as predictable, but nothing
   forces its clusters to respect classes.
2. **Hidden layer l.** ``fit_explicit(h_{l-1}, clusters_l, H_l)``
   (``W_l = log P(cluster | feature)``, one counting pass), then one scalar,
   its inverse temperature, fitted by Newton's method on the cluster
   cross-entropy (:meth:`ExplicitSolution.calibrate`). No gradient reaches
   the weights. A deeper layer's clusters are those of the activations of the
   layer below (``h_0 = X``).
3. **Output layer.** The last hidden activations are positive and sum to 1, a
   valid explicit-solution input; ``fit_explicit(h_L, y, N)`` and ``calibrate``.

The parameters drop into the MLP with :meth:`MLP.from_explicit`; the MLP's
test metrics are checked against the same forward pass computed by hand from
the :class:`ExplicitSolution` objects.

**The prior counted once.** The explicit weights factor as
``W_ik = log(F_ik + a) - log(f_i + N a) = log P^(i | k) + log c_k - log(f_i + N a)``
with the smoothed likelihood ``P^(i | k) = (F_ik + a) / c_k`` and the label's
smoothed mass ``c_k = sum_i F_ik + M a`` (its unnormalized prior). With
L1-normalized inputs (``sum_i x~_i = 1``) the scores are therefore
``s_k(x) = sum_i x~_i log P^(i | k) + log c_k + const(x)``: the average
log-likelihood plus the log prior. The calibrated logits ``beta * s_k`` weight
the log prior ``beta`` times, so a cluster or class with fewer examples is
penalized more than Bayes' rule would. The variant "prior once" takes the
prior out of the scaled part and adds it once: ``z_k = beta (s_k - log c_k) +
log p_k`` (:func:`count_prior_once`). It is reported beside the method above.

**What C5 compares** (:func:`run`), for each image task, hidden width and seed
(a resample of the fitting part of the training set; the validation split is
held apart to choose learning rates): the layer-wise explicit network (no
backprop), the single-layer explicit solution it generalizes, the single
softmax layer trained by backprop, the network trained by backprop from
random init, and the network fine-tuned by backprop from the layer-wise
explicit parameters. Every backprop run is a learning-rate sweep
(:func:`xsol.experiments.sweep.train_grid`) over ``cfg.lr_grid`` for each
optimizer of ``cfg.optimizers``, the rate chosen on the validation split,
separately for every start. The verdict (:func:`c5_parts`, :func:`c5_verdict`,
:func:`c5_summary`) is a pure function of the per-seed numbers.

Claim C7 (warm start + backprop in networks with two hidden layers) lives in
:mod:`xsol.experiments.networks`; :func:`run_c7` runs it.
"""

from __future__ import annotations

import contextlib

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

import xsol
from xsol.core import inputs
from xsol.experiments import verdicts
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.sweep import OPTIMIZER_TITLES, train_grid
from xsol.experiments.tasks import Task, resample, validation_split
from xsol.solvers.explicit import ExplicitSolution
from xsol.models.linen import MLP, SoftmaxRegression
from xsol.train.loop import evaluate, stack_batches

CLAIM = "C5"
TITLE = "layer-wise explicit solutions in multi-layer networks"

#: "Beats chance by a wide margin": at least halfway from chance to perfect.
MARGIN_FRACTION = 0.5
#: "At least as good as": a difference of accuracy above minus this (half a
#: percentage point) counts as a tie.
TIE_TOLERANCE = 0.005
#: k-means restarts per clustering (seeded).
KMEANS_N_INIT = 2
#: Above this many examples per clustering, MiniBatchKMeans replaces KMeans.
MINIBATCH_ABOVE = 20000

#: Networks built without backpropagation: key, title.
EXPLICIT = (
    ("single", "single-layer explicit (calibrated)"),
    ("single_once", "single-layer explicit (prior once)"),
    ("layerwise", "layer-wise explicit, class clusters"),
    ("layerwise_once", "layer-wise explicit, class clusters, prior once"),
    ("kmeans", "layer-wise explicit, k-means clusters (ablation)"),
)
#: Backprop runs (each swept over the learning-rate grid, per optimizer): key, title.
TRAINED = (
    ("single_trained", "single softmax layer, random init"),
    ("random", "network, random init"),
    ("finetuned", "network from layer-wise explicit"),
    ("finetuned_once", "network from layer-wise explicit (prior once)"),
)
#: Every method in table order: key, title, whether it uses backpropagation.
METHODS = tuple((k, t, False) for k, t in EXPLICIT) + tuple((k, t, True) for k, t in TRAINED)
_TITLES = {k: t for k, t, _ in METHODS}


def l1_rows(X) -> np.ndarray:
    """``x / sum(x)`` per row, float32 (the explicit solution's input normalization)."""
    return np.asarray(inputs.normalize_dense(jnp.asarray(np.asarray(X, np.float32)), "l1"))


def _kmeans(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Seeded k-means labels, run on one thread.

    One thread because scikit-learn's OpenMP threads spin-wait: beside JAX's own
    threads (or any other load) on a 2-core machine, two threads made k-means
    15x slower here (4 s instead of 0.25 s for the ten per-class clusterings
    of 9,000 Fashion-MNIST images).
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    if k <= 1:
        return np.zeros(len(X), np.int32)
    if len(X) > MINIBATCH_ABOVE:
        km = MiniBatchKMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed,
                             batch_size=4096)
    else:
        km = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed)
    with threadpool_limits(limits=1):
        labels = km.fit_predict(X).astype(np.int32)
    for log in _KMEANS_LOGS:
        log.append({"examples": int(X.shape[0]), "features": int(X.shape[1]),
                    "clusters": int(k), "restarts": int(KMEANS_N_INIT),
                    "iterations": int(getattr(km, "n_iter_", 0))})
    return labels


#: The lists that :func:`record_kmeans` is filling (one per active ``with``).
_KMEANS_LOGS: list[list[dict]] = []


@contextlib.contextmanager
def record_kmeans():
    """Records every k-means clustering the layer-wise fit runs inside the ``with``.

    Yields a list that receives one dict per clustering: ``examples``,
    ``features``, ``clusters``, ``restarts`` (``n_init``) and ``iterations``
    (scikit-learn's ``n_iter_`` of the best restart), from which the cost
    measurement (C6) counts k-means FLOPs.
    """
    fits: list[dict] = []
    _KMEANS_LOGS.append(fits)
    try:
        yield fits
    finally:
        _KMEANS_LOGS.remove(fits)


def clusters_per_class(y, num_hidden: int, num_classes: int) -> np.ndarray:
    """How many hidden units each class gets: ``H // N`` each, the remainder to the largest classes.

    A class never gets more units than it has examples.

    Raises:
      ValueError: when ``H < N`` (some class would have no hidden unit).
    """
    if num_hidden < num_classes:
        raise ValueError(
            f"class-conditioned clusters need at least one hidden unit per class: "
            f"hidden width {num_hidden} < {num_classes} classes")
    counts = np.bincount(np.asarray(y), minlength=num_classes)
    k = np.full(num_classes, num_hidden // num_classes)
    order = np.argsort(-counts, kind="stable")
    k[order[: num_hidden % num_classes]] += 1
    return np.minimum(k, counts)


def class_conditioned_clusters(X, y, num_hidden: int, num_classes: int, *, seed: int = 0):
    """Hidden targets: k-means within each class on L1-normalized inputs.

    Args:
      X: non-negative features ``(B, M)`` (inputs or a layer's activations).
      y: labels ``(B,)``.
      num_hidden: ``H``, the number of clusters in all.
      num_classes: ``N``.
      seed: seeds k-means.

    Returns:
      ``(targets, owner)``: the cluster id of every example ``(B,)`` in
      ``[0, H)``, and the class each cluster belongs to ``(H,)`` (``-1`` for a
      unit left without examples, possible only when a class has fewer
      examples than units).
    """
    y = np.asarray(y)
    Xn = l1_rows(X)
    k = clusters_per_class(y, num_hidden, num_classes)
    targets = np.zeros(len(y), np.int32)
    owner = np.full(num_hidden, -1, np.int32)
    offset = 0
    for c in range(num_classes):
        if k[c] == 0:
            continue
        rows = np.flatnonzero(y == c)
        targets[rows] = offset + _kmeans(Xn[rows], int(k[c]), seed + 1000 * c)
        owner[offset: offset + k[c]] = c
        offset += int(k[c])
    return targets, owner


def kmeans_clusters(X, num_hidden: int, *, seed: int = 0) -> np.ndarray:
    """Hidden targets for the ablation: k-means on all L1-normalized inputs, labels unused."""
    return _kmeans(l1_rows(X), num_hidden, seed)


def count_prior_once(solution: ExplicitSolution, X, y) -> ExplicitSolution:
    """``solution.calibrate(X, y, prior="once")``: the label prior counted once.

    See :meth:`xsol.ExplicitSolution.calibrate`: logits
    ``beta (x~ W - log c) + log p`` instead of ``beta x~ W``.
    """
    if solution.kind != "dense":
        raise ValueError("count_prior_once needs a solution fitted on dense, L1-normalized inputs")
    return solution.calibrate(X, y, prior="once")


@dataclasses.dataclass
class LayerwiseFit:
    """A layer-wise explicit network: its layers and what they were fitted to.

    Attributes:
      layers: ``[hidden_1, ..., hidden_L, output]`` :class:`ExplicitSolution` (bottom first).
      targets: the first hidden layer's targets of the training examples.
      owner: the class of each first-layer hidden unit (``None`` for unconditioned clusters).
      cluster_seconds: time spent clustering.
      solve_seconds: time spent fitting and calibrating the layers.
      hidden_targets: every hidden layer's targets, bottom first.
      hidden_owners: every hidden layer's unit classes (``None`` where unconditioned).
    """

    layers: list
    targets: np.ndarray
    owner: np.ndarray | None
    cluster_seconds: float
    solve_seconds: float
    hidden_targets: list = dataclasses.field(default_factory=list)
    hidden_owners: list = dataclasses.field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.cluster_seconds + self.solve_seconds


def _calibrated(sol, X, y, prior_once: bool):
    return count_prior_once(sol, X, y) if prior_once else sol.calibrate(X, y)


def _widths(num_hidden) -> tuple:
    if isinstance(num_hidden, (int, np.integer)):
        return (int(num_hidden),)
    widths = tuple(int(w) for w in num_hidden)
    if not widths:
        raise ValueError("a layer-wise network needs at least one hidden layer")
    return widths


def _per_layer(value, depth: int, what: str) -> list:
    """``[value] + [None] * (depth - 1)`` for one array, or the given list of ``depth``."""
    if value is None:
        return [None] * depth
    if isinstance(value, (list, tuple)):
        if len(value) != depth:
            raise ValueError(f"{what}: got {len(value)} entries for {depth} hidden layers")
        return list(value)
    return [value] + [None] * (depth - 1)


def fit_layerwise(X, y, num_hidden, num_classes: int, *, targets=None, owner=None,
                  seed: int = 0, smoothing: float = xsol.solvers.explicit.DEFAULT_SMOOTHING,
                  prior_once: bool = False, cluster_seconds: float = 0.0,
                  clusters: str = "class") -> LayerwiseFit:
    """Fits a softmax network layer by layer, without backpropagation.

    Args:
      X: non-negative inputs ``(B, M)``.
      y: labels ``(B,)``.
      num_hidden: ``H`` for one hidden layer, or the widths ``(H_1, ..., H_L)``.
      num_classes: ``N``.
      targets: hidden targets: an array ``(B,)`` in ``[0, H_1)`` for the first
        hidden layer, or a list with one array (or None) per hidden layer.
        Layers without given targets get clusters of their inputs (``clusters``).
      owner: the class of each hidden unit where known (an array for the
        first layer, or a list per layer).
      seed: seeds the clustering.
      smoothing: additive smoothing of every layer.
      prior_once: calibrate with :func:`count_prior_once` instead of
        :meth:`ExplicitSolution.calibrate`.
      cluster_seconds: clustering time already spent on given ``targets``.
      clusters: how missing targets are made: ``"class"``
        (:func:`class_conditioned_clusters`) or ``"kmeans"`` (:func:`kmeans_clusters`).

    Returns:
      A :class:`LayerwiseFit`; ``MLP.from_explicit(fit.layers)`` gives its parameters.
    """
    if clusters not in ("class", "kmeans"):
        raise ValueError(f"clusters must be 'class' or 'kmeans', got {clusters!r}")
    widths = _widths(num_hidden)
    given = _per_layer(targets, len(widths), "targets")
    owners = _per_layer(owner, len(widths), "owner")
    layers, all_targets, all_owners = [], [], []
    solve_seconds = 0.0
    h = X
    for l, H in enumerate(widths):
        tg, ow = given[l], owners[l]
        if tg is None:
            t0 = time.perf_counter()
            if clusters == "class":
                tg, ow = class_conditioned_clusters(h, y, H, num_classes, seed=seed + 7919 * l)
            else:
                tg, ow = kmeans_clusters(h, H, seed=seed + 7919 * l), None
            cluster_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = xsol.fit_explicit(h, tg, H, smoothing=smoothing, normalize="l1")
        sol = _calibrated(sol, h, tg, prior_once)
        h = np.asarray(sol.predict_proba(h))  # softmax(layer logits): the MLP's activation
        solve_seconds += time.perf_counter() - t0
        layers.append(sol)
        all_targets.append(np.asarray(tg))
        all_owners.append(ow)
    t0 = time.perf_counter()
    out = xsol.fit_explicit(h, y, num_classes, smoothing=smoothing, normalize="l1")
    out = _calibrated(out, h, y, prior_once)
    out.weights.block_until_ready()
    solve_seconds += time.perf_counter() - t0
    layers.append(out)
    return LayerwiseFit(layers, all_targets[0], all_owners[0], cluster_seconds, solve_seconds,
                        all_targets, all_owners)


def mlp_for(task: Task, num_hidden) -> MLP:
    """The network of these experiments: ``M -> H_1 (softmax) -> ... -> N``, L1-normalized inputs.

    ``num_hidden``: one width, or the widths of several hidden layers.
    """
    return MLP(num_features=task.num_features, hidden=_widths(num_hidden),
               num_classes=task.num_classes, activation="softmax", normalize="l1",
               hidden_normalize="l1")


def hidden_activations(fit: LayerwiseFit, X) -> list:
    """The activations of every hidden layer, computed from the solutions (batched)."""
    hs, h = [], X
    for layer in fit.layers[:-1]:
        h = np.asarray(layer.predict_proba(h))  # never all of a layer's logits at once
        hs.append(h)
    return hs


def hand_forward(fit: LayerwiseFit, X) -> np.ndarray:
    """Logits of the layer-wise network from its solutions, without the MLP."""
    return np.asarray(fit.layers[-1].logits(hidden_activations(fit, X)[-1]))


def _metrics(logits, y) -> dict:
    """Accuracy and mean cross-entropy computed in float64 numpy, apart from the model code."""
    from scipy.special import logsumexp

    z = np.asarray(logits, np.float64)
    y = np.asarray(y)
    loss = logsumexp(z, axis=-1) - z[np.arange(len(y)), y]
    return dict(test_accuracy=float(np.mean(z.argmax(-1) == y)), test_loss=float(loss.mean()))


def _solution_row(sol: ExplicitSolution, t: Task, seconds: float) -> dict:
    return dict(test_accuracy=sol.score(t.X_test, t.y_test), test_loss=sol.nll(t.X_test, t.y_test),
                train_accuracy=sol.score(t.X_train, t.y_train),
                train_loss=sol.nll(t.X_train, t.y_train), seconds=seconds,
                inverse_temperature=sol.inverse_temperature)


@functools.lru_cache(maxsize=None)
def _jitted_logits(model: MLP):
    return jax.jit(lambda params, X: model.apply({"params": params}, X))


def network_row(model: MLP, fit: LayerwiseFit, t: Task, test_eval=None) -> dict:
    """Test metrics of the MLP built from ``fit``, checked against the forward pass by hand."""
    if test_eval is None:
        test_eval = stack_batches(jnp.asarray(model.prepare(t.X_test)), t.y_test, None)
    params = model.from_explicit(fit.layers)
    ev = evaluate(model, params, test_eval)
    z_model = np.asarray(_jitted_logits(model)(params, test_eval.X[0]))
    hs = hidden_activations(fit, t.X_test)
    z_hand = np.asarray(fit.layers[-1].logits(hs[-1]))
    hand = _metrics(z_hand, t.y_test)
    first, out = fit.layers[0], fit.layers[-1]
    row = dict(
        test_accuracy=ev["accuracy"], test_loss=ev["loss"],
        hand_test_accuracy=hand["test_accuracy"], hand_test_loss=hand["test_loss"],
        forward_max_abs_diff=float(np.max(np.abs(z_model - z_hand))),
        forward_prediction_mismatches=int(np.sum(z_model.argmax(-1) != z_hand.argmax(-1))),
        train_loss=out.nll(hidden_activations(fit, t.X_train)[-1], t.y_train),
        hidden_target_accuracy=first.score(t.X_train, fit.targets),
        hidden_inverse_temperature=first.inverse_temperature,
        output_inverse_temperature=out.inverse_temperature,
        seconds=fit.seconds, cluster_seconds=fit.cluster_seconds, solve_seconds=fit.solve_seconds,
    )
    owner = fit.hidden_owners[-1] if fit.hidden_owners else fit.owner
    if owner is not None:
        # Reading the top hidden code directly: the class owning the most probable unit.
        row["hidden_argmax_accuracy"] = float(np.mean(owner[hs[-1].argmax(-1)] == t.y_test))
    return row


_network_row = network_row


# ------------------------------------------------------------------ tuned runs


def grid_row(run, choose_step: int | None = None) -> tuple:
    """The run at the learning rate chosen on validation, and every rate's figures.

    Args:
      run: a :class:`xsol.experiments.sweep.GridRun` with validation and test columns.
      choose_step: the step at which the validation loss chooses (default: the last).

    Returns:
      ``(row, trajectory)``: ``row`` holds the chosen rate, whether it is at
      the grid's edge, the held-out figures at the last step and ``by_lr``
      (final validation and test figures per rate); ``trajectory`` is the
      chosen rate's (None when every rate diverged).
    """
    by_lr = {k: run.values(k).tolist()
             for k in ("val_loss", "val_accuracy", "test_loss", "test_accuracy", "train_loss")}
    base = dict(grid=list(run.learning_rates), grid_seconds=run.seconds, by_lr=by_lr)
    try:
        i = run.choose("val_loss", choose_step)
    except ValueError:
        nan = float("nan")
        return dict(base, learning_rate=None, lr_index=None, at_edge=False, diverged=True,
                    test_accuracy=nan, test_loss=nan, val_loss=nan, val_accuracy=nan,
                    train_loss=nan, train_accuracy=nan, start_test_accuracy=nan,
                    start_test_loss=nan), None
    traj = run.trajectories[i]
    last, first = traj.rows[-1], traj.rows[0]
    row = dict(base, learning_rate=run.learning_rates[i], lr_index=i, at_edge=run.at_edge(i),
               diverged=False, test_accuracy=last["test_accuracy"], test_loss=last["test_loss"],
               val_loss=last["val_loss"], val_accuracy=last["val_accuracy"],
               train_loss=last["train_loss"], train_accuracy=last["train_accuracy"],
               grad_norm=last.get("grad_norm"), start_test_accuracy=first["test_accuracy"],
               start_test_loss=first["test_loss"])
    if "distance" in last:
        row["distance_to_start"] = last["distance"]
        row["cosine_to_start"] = last["cosine"]
    return row, traj


def _split(cfg: ReproduceConfig, tasks: TaskCache, task: Task) -> tuple:
    """``(fit_task, (X_val, y_val))``: the cache's validation split of ``task``."""
    try:
        return tasks.split(task.name)
    except (KeyError, FileNotFoundError, AttributeError):
        return validation_split(task, cfg.validation_fraction)


def run_seed(task: Task, num_hidden: int, seed: int, cfg: ReproduceConfig,
             validation=None) -> dict:
    """Every method on one resample of ``task`` at hidden width ``num_hidden``.

    Args:
      task: the fitting part of the task (the validation split removed).
      num_hidden: ``H``.
      seed: picks the resample, the random init and the minibatches.
      cfg: steps, learning-rate grid, optimizers, batch size, smoothing.
      validation: ``(X_val, y_val)`` to choose learning rates on (default: a
        split of ``task`` made here).

    Returns:
      ``{"methods": {key: row}, "trajectories": {key: Trajectory}, "chance": float}``;
      a backprop method's row is ``{optimizer: row}``.
    """
    if validation is None:
        task, validation = validation_split(task, cfg.validation_fraction)
    t = resample(task, seed, cfg.resample_fraction)
    a, N, H = cfg.image_smoothing, t.num_classes, int(num_hidden)
    model = mlp_for(t, H)
    test_eval = stack_batches(jnp.asarray(model.prepare(t.X_test)), t.y_test, None)
    rows, trajs = {}, {}

    t0 = time.perf_counter()
    single = xsol.fit_explicit(t.X_train, t.y_train, N, smoothing=a)
    cal = single.calibrate(t.X_train, t.y_train)
    rows["single"] = _solution_row(cal, t, time.perf_counter() - t0)
    t0 = time.perf_counter()
    rows["single_once"] = _solution_row(count_prior_once(single, t.X_train, t.y_train), t,
                                        time.perf_counter() - t0)

    fit = fit_layerwise(t.X_train, t.y_train, H, N, seed=seed, smoothing=a)
    rows["layerwise"] = network_row(model, fit, t, test_eval)
    once = fit_layerwise(t.X_train, t.y_train, H, N, targets=fit.targets, owner=fit.owner,
                         smoothing=a, prior_once=True, cluster_seconds=fit.cluster_seconds)
    rows["layerwise_once"] = network_row(model, once, t, test_eval)
    km = fit_layerwise(t.X_train, t.y_train, H, N, seed=seed, smoothing=a, clusters="kmeans")
    rows["kmeans"] = network_row(model, km, t, test_eval)

    starts = {
        "single_trained": (SoftmaxRegression(t.num_features, N), "random"),
        "random": (model, "random"),
        "finetuned": (model, fit.layers),
        "finetuned_once": (model, once.layers),
    }
    explicit_seconds = {"finetuned": fit.seconds, "finetuned_once": once.seconds}
    for key, (m, init) in starts.items():
        rows[key] = {}
        for opt in cfg.optimizers:
            run = train_grid(m, init, opt, cfg.lr_grid, t.X_train, t.y_train, steps=cfg.steps,
                             validation=validation, test=(t.X_test, t.y_test),
                             batch_size=cfg.batch_size, seed=seed,
                             meta=dict(task=t.name, start=key))
            row, traj = grid_row(run)
            if key in explicit_seconds:
                row["explicit_seconds"] = explicit_seconds[key]
            if key == "random" and traj is not None:
                for k in ("layerwise", "layerwise_once"):
                    row[f"steps_to_{k}_accuracy"] = _first_step_reaching(
                        traj, rows[k]["test_accuracy"])
            rows[key][opt] = row
            trajs[f"{key}/{opt}"] = traj
    return {"methods": rows, "trajectories": trajs,
            "chance": verdicts.chance_accuracy(t.y_train, t.y_test)}


def _first_step_reaching(traj, accuracy: float):
    """The first recorded step with held-out accuracy >= ``accuracy`` (None if never)."""
    for row in traj.rows:
        if row["test_accuracy"] >= accuracy:
            return int(row["step"])
    return None


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


# ------------------------------------------------- rules: pure functions of numbers


def threshold_test(values, threshold, *, side: str = "above", **info) -> dict:
    """A per-seed quantity against its threshold: the paired t-test of ``values - threshold``.

    Args:
      values: the quantity on each seed.
      threshold: a number, or one per seed (e.g. a margin above each seed's chance).
      side: ``"above"`` (the claim needs the quantity above the threshold) or ``"below"``.
      info: more keys for the result (names, means for sentences).

    Returns:
      :func:`verdicts.paired` of ``values`` and the threshold plus ``side``,
      ``threshold`` (its mean), ``values``, ``mean`` and the quantity's
      confidence interval ``value_lo``/``value_hi``.
    """
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    v = np.asarray([float(x) for x in values], np.float64)
    thr = np.broadcast_to(np.asarray(threshold, np.float64), v.shape).astype(np.float64)
    test = verdicts.paired(v, thr)
    ci = verdicts.interval(v)
    test.update(side=side, threshold=float(np.mean(thr)) if thr.size else float("nan"),
                values=v.tolist(), mean=ci["mean"], value_lo=ci["lo"], value_hi=ci["hi"])
    test.update(info)
    return test


def part_verdict(test: dict) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` for a :func:`threshold_test`.

    Significant (Holm-adjusted p below :data:`verdicts.ALPHA`, so the
    quantity's interval excludes the threshold) on the claim's side: holds;
    on the other side: does not hold; otherwise inconclusive. With one seed
    the point decides. A test with ``forced`` set (e.g. a run that did not
    converge) takes that verdict.
    """
    if test.get("forced"):
        return test["forced"]
    d = test["mean_diff"]
    if not math.isfinite(d) or d == 0:
        return "inconclusive"
    good = d > 0 if test["side"] == "above" else d < 0
    if test["n"] < 2:
        return "holds" if good else "does not hold"
    p = test.get("p_holm", test["p_value"])
    if math.isfinite(p) and p < verdicts.ALPHA:
        return "holds" if good else "does not hold"
    return "inconclusive"


def decide(parts: list) -> list:
    """Holm-adjusts the parts' p-values as one family and sets each part's ``verdict``."""
    family = {i: p for i, p in enumerate(parts)}
    verdicts.with_holm(family)
    for p in parts:
        p["verdict"] = part_verdict(p)
    return parts


def _p_text(test: dict) -> str:
    p = test.get("p_holm", test.get("p_value", float("nan")))
    if test.get("n", 0) < 2:
        return "n = 1, the point decides"
    return f"Holm p = {p:.2g}" if math.isfinite(p) else "p n/a"


def part_sentence(part: dict, digits: int = 3) -> str:
    """One computed sentence for a rule part: the comparison, the interval, the verdict."""
    head = verdicts.compare(part["name_a"], part["a"], part["name_b"], part["b"],
                            digits=digits, higher=part.get("higher", "higher"),
                            lower=part.get("lower", "lower"))
    sign = "+" if part.get("quantity") else ""
    f = lambda x: f"{x:{sign}.{digits + 1}f}"  # noqa: E731
    ci = f"{int(100 * verdicts.CONFIDENCE)}% CI {f(part['value_lo'])} to {f(part['value_hi'])}"
    body = (f"{part.get('quantity') or 'mean'} {f(part['mean'])} ({ci}) against threshold "
            f"{f(part['threshold'])}")
    tail = f"; {part['reason']}" if part.get("reason") else ""
    return f"{head}; {body}, {_p_text(part)}{tail}: {part['verdict']}"


def mean_of(v) -> float:
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _diff(a, b) -> list:
    return (np.asarray(a, np.float64) - np.asarray(b, np.float64)).tolist()


def c5_parts(cells: list, optimizers: Sequence[str], steps: int) -> list:
    """The parts of C5's rule for every cell, decided with Holm's correction over all of them.

    Args:
      cells: one dict per (task, width): ``name``, ``chance`` and ``margin``
        (per seed), and ``acc``: per-seed held-out accuracy by method key,
        backprop methods as ``"<key>/<optimizer>"``.
      optimizers: the optimizers of the backprop runs.
      steps: their budget (for the sentences).

    Returns:
      A list of :func:`threshold_test` dicts with ``cell``, ``part`` and ``verdict``.
    """
    parts = []
    for c in cells:
        acc = c["acc"]
        parts.append(threshold_test(
            acc["layerwise"], c["margin"], side="above", cell=c["name"], part="a",
            name_a="layer-wise explicit accuracy", a=mean_of(acc["layerwise"]),
            name_b="the wide margin", b=mean_of(c["margin"])))
        parts.append(threshold_test(
            _diff(acc["layerwise"], acc["single"]), -TIE_TOLERANCE, side="above", cell=c["name"],
            part="b", quantity="difference", name_a="layer-wise explicit",
            a=mean_of(acc["layerwise"]), name_b="single-layer explicit", b=mean_of(acc["single"])))
        for opt in optimizers:
            ft, rd = acc[f"finetuned/{opt}"], acc[f"random/{opt}"]
            title = OPTIMIZER_TITLES.get(opt, opt)
            parts.append(threshold_test(
                _diff(ft, rd), -TIE_TOLERANCE, side="above", cell=c["name"], part="c",
                optimizer=opt, quantity="difference",
                name_a=f"{title} from layer-wise explicit", a=mean_of(ft),
                name_b=f"{title} from random init ({steps} steps, each at its tuned lr)",
                b=mean_of(rd)))
    return decide(parts)


def c5_verdict(parts: list) -> str:
    """C5's verdict: :func:`verdicts.combine` of its parts' verdicts."""
    return verdicts.combine([p["verdict"] for p in parts])


def c5_summary(parts: list) -> str:
    """C5's one-line evidence: every part's computed sentence, grouped by cell."""
    by_cell = {}
    for p in parts:
        by_cell.setdefault(p["cell"], []).append(f"({p['part']}) {part_sentence(p)}")
    return " ".join(f"{cell}: " + "; ".join(s) + "." for cell, s in by_cell.items())


def c5_rule(optimizers: Sequence[str], steps: int) -> str:
    """C5's rule, as printed beside the verdict."""
    opts = " and ".join(OPTIMIZER_TITLES.get(o, o) for o in optimizers)
    return (
        "The claim as written: layer-wise explicit solutions work in multi-layer networks. For "
        "every task and hidden width: (a) the layer-wise explicit network, without backprop, "
        "has a held-out accuracy above the wide margin, chance + "
        f"{MARGIN_FRACTION:g} × (1 − chance), chance = held-out accuracy of the majority "
        "training label; (b) it is at least as good as the single-layer explicit solution it "
        f"generalizes: accuracy difference above −{TIE_TOLERANCE:g}; (c) for each optimizer "
        f"({opts}), fine-tuning from it is at least as good as random-init backprop at equal "
        f"budget ({steps} steps), each start at its own learning rate chosen on the validation "
        f"split: accuracy difference above −{TIE_TOLERANCE:g}. Each part tests the per-seed "
        "quantity against its threshold (paired t-test over seeds, Holm-corrected over all "
        "parts): it holds when significantly on the claim's side, does not hold when "
        "significantly on the other side, and is inconclusive when its confidence interval "
        "contains the threshold. Verdict: every part holds → holds; every part fails → does "
        "not hold; some hold → partly; otherwise inconclusive."
    )


def c5_reported(cells: list, optimizers: Sequence[str]) -> list:
    """Comparisons reported beside the rule (their own Holm family): paired differences."""
    tests = []

    def add(cell, what, a, b, name_a, name_b):
        t = verdicts.paired(a, b)
        t.update(cell=cell, what=what, name_a=name_a, name_b=name_b, a=mean_of(a), b=mean_of(b))
        tests.append(t)

    for c in cells:
        acc, loss, n = c["acc"], c["loss"], c["name"]
        add(n, "accuracy", acc["layerwise"], acc["kmeans"], "class clusters", "k-means clusters")
        add(n, "accuracy", acc["layerwise_once"], acc["single_once"],
            "layer-wise explicit (prior once)", "single-layer explicit (prior once)")
        for opt in optimizers:
            title = OPTIMIZER_TITLES.get(opt, opt)
            add(n, "accuracy", acc["layerwise"], acc[f"single_trained/{opt}"],
                "layer-wise explicit (no backprop)", f"single softmax layer + {title}")
            add(n, "accuracy", acc["layerwise"], acc[f"random/{opt}"],
                "layer-wise explicit (no backprop)", f"random init + {title}")
            add(n, "accuracy", acc[f"finetuned/{opt}"], acc[f"single_trained/{opt}"],
                f"layer-wise explicit + {title}", f"single softmax layer + {title}")
            add(n, "accuracy", acc[f"finetuned_once/{opt}"], acc[f"random/{opt}"],
                f"layer-wise explicit (prior once) + {title}", f"random init + {title}")
            add(n, "loss", loss[f"finetuned/{opt}"], loss[f"random/{opt}"],
                f"layer-wise explicit + {title}", f"random init + {title}")
    verdicts.with_holm({i: t for i, t in enumerate(tests)})
    return tests


# ------------------------------------------------------------------ the experiment


def _cell_numbers(name: str, cell_runs: list, optimizers) -> dict:
    """Per-seed accuracy and loss of every method of one (task, width)."""
    acc, loss = {}, {}
    for key, _ in EXPLICIT:
        acc[key] = [r["methods"][key]["test_accuracy"] for r in cell_runs]
        loss[key] = [r["methods"][key]["test_loss"] for r in cell_runs]
    for key, _ in TRAINED:
        for opt in optimizers:
            acc[f"{key}/{opt}"] = [r["methods"][key][opt]["test_accuracy"] for r in cell_runs]
            loss[f"{key}/{opt}"] = [r["methods"][key][opt]["test_loss"] for r in cell_runs]
    chance = [r["chance"] for r in cell_runs]
    margin = [c + MARGIN_FRACTION * (1.0 - c) for c in chance]
    return dict(name=name, chance=chance, margin=margin, acc=acc, loss=loss)


def _lr_rows(name: str, cell_runs: list, optimizers, seeds) -> list:
    rows = []
    for key, title in TRAINED:
        for opt in optimizers:
            rs = [r["methods"][key][opt] for r in cell_runs]
            chosen = ["diverged" if x["learning_rate"] is None else f"{x['learning_rate']:g}"
                      for x in rs]
            edge = sum(bool(x["at_edge"]) for x in rs)
            rows.append(dict(cell=name, start=title, optimizer=OPTIMIZER_TITLES.get(opt, opt),
                             grid=", ".join(f"{v:g}" for v in rs[0]["grid"]),
                             chosen=", ".join(chosen),
                             edge=f"{edge}/{len(rs)}" + (" ⚠ widen the grid" if edge else ""),
                             grid_s=mean_of([x["grid_seconds"] for x in rs])))
    return rows


def _sensitivity(name: str, cell_runs: list, optimizers) -> list:
    """Mean held-out accuracy of every backprop start at every rate, and fine-tuned − random."""
    rows = []
    for opt in optimizers:
        grid = cell_runs[0]["methods"]["random"][opt]["grid"]
        for i, lr in enumerate(grid):
            row = dict(cell=name, optimizer=OPTIMIZER_TITLES.get(opt, opt), lr=lr)
            for key, _ in TRAINED:
                v = [r["methods"][key][opt]["by_lr"]["test_accuracy"][i] for r in cell_runs]
                row[key] = mean_of(v)
                row[f"{key}_chosen"] = sum(r["methods"][key][opt]["lr_index"] == i
                                           for r in cell_runs)
            d = _diff([r["methods"]["finetuned"][opt]["by_lr"]["test_accuracy"][i]
                       for r in cell_runs],
                      [r["methods"]["random"][opt]["by_lr"]["test_accuracy"][i]
                       for r in cell_runs])
            ci = verdicts.interval(d)
            row.update(diff=ci["mean"], diff_lo=ci["lo"], diff_hi=ci["hi"],
                       chosen=" / ".join(str(row[f"{k}_chosen"]) for k, _ in TRAINED))
            rows.append(row)
    return rows


def _plot_sensitivity(rows: list, numbers: dict, path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from xsol.core.serialize import save_figure

    opts = list(dict.fromkeys(r["optimizer"] for r in rows))
    fig = Figure(figsize=(5.2 * len(opts), 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(opts), squeeze=False)[0]
    flat = {"layerwise": "layer-wise explicit (no backprop)",
            "single": "single-layer explicit (no backprop)"}
    for ax, opt in zip(axes, opts):
        rs = [r for r in rows if r["optimizer"] == opt]
        lrs = [r["lr"] for r in rs]
        for key, t in TRAINED:
            ax.plot(lrs, [r[key] for r in rs], marker="o", markersize=3, label=f"{t} + backprop")
        for i, (key, t) in enumerate(flat.items()):
            ax.axhline(mean_of(numbers["acc"][key]), ls="--", lw=1, color=f"C{4 + i}", label=t)
        ax.axhline(mean_of(numbers["margin"]), ls=":", lw=1, color="gray", label="wide margin")
        ax.set_xscale("log")
        ax.set_xlabel(f"learning rate ({opt})")
        ax.set_ylabel("held-out accuracy after the budget")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(title)
    save_figure(fig, str(path), dpi=110)


def _plot(cell_runs: list, path: Path, title: str, optimizers) -> None:
    from xsol.train.plots import plot_trajectories

    r0 = cell_runs[0]
    runs = {}
    for opt in optimizers:
        for key in ("finetuned", "finetuned_once", "random", "single_trained"):
            traj = r0["trajectories"].get(f"{key}/{opt}")
            if traj is not None:
                lr = r0["methods"][key][opt]["learning_rate"]
                runs[f"{_TITLES[key]} + {OPTIMIZER_TITLES.get(opt, opt)} (lr {lr:g})"] = traj
    if runs:
        plot_trajectories(runs, path, metrics=("test_loss", "test_accuracy"), title=title)


def _method_rows(name: str, cell_runs: list, optimizers) -> list:
    rows = []
    for key, title in EXPLICIT:
        ms = [r["methods"][key] for r in cell_runs]
        a = verdicts.interval([m["test_accuracy"] for m in ms])
        lo = verdicts.interval([m["test_loss"] for m in ms])
        rows.append(dict(cell=name, method=title, optimizer="–", acc=a["mean"], acc_std=a["std"],
                         acc_ci=f"{a['lo']:.4f} to {a['hi']:.4f}", loss=lo["mean"],
                         loss_std=lo["std"], train_loss=mean_of([m["train_loss"] for m in ms]),
                         explicit_s=mean_of([m["seconds"] for m in ms]), backprop_s=None, lr=None))
    for key, title in TRAINED:
        for opt in optimizers:
            ms = [r["methods"][key][opt] for r in cell_runs]
            a = verdicts.interval([m["test_accuracy"] for m in ms])
            lo = verdicts.interval([m["test_loss"] for m in ms])
            ex = [m["explicit_seconds"] for m in ms if "explicit_seconds" in m]
            rows.append(dict(
                cell=name, method=f"{title} + backprop", optimizer=OPTIMIZER_TITLES.get(opt, opt),
                acc=a["mean"], acc_std=a["std"], acc_ci=f"{a['lo']:.4f} to {a['hi']:.4f}",
                loss=lo["mean"], loss_std=lo["std"],
                train_loss=mean_of([m["train_loss"] for m in ms]),
                explicit_s=mean_of(ex) if ex else None,
                backprop_s=mean_of([m["grid_seconds"] for m in ms]),
                lr=", ".join("–" if m["learning_rate"] is None else f"{m['learning_rate']:g}"
                             for m in ms)))
    return rows


def _opt_title(opt) -> str:
    return "–" if not opt else OPTIMIZER_TITLES.get(opt, opt)


def _opt_suffix(part: dict) -> str:
    return f", {_opt_title(part['optimizer'])}" if part.get("optimizer") else ""


def _range(values) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return f"{min(v):.1f}-{max(v):.1f}" if v else "n/a"


def run_cells(cells, cfg: ReproduceConfig, tasks: TaskCache, run_seed, *, desc: str,
              progress: bool) -> dict:
    """``{(task name, H): [run_seed(fit_task, H, seed, cfg, val) per seed]}`` over the cells.

    Each task is split once (:func:`_split`); every seed of every (task,
    width) cell trains on that split's fitting part.
    """
    from tqdm.auto import tqdm

    splits = {task.name: _split(cfg, tasks, task) for task, _ in cells}
    work = [(task, H, seed) for task, H in cells for seed in cfg.seeds]
    results = {}
    with tqdm(work, desc=desc, disable=not progress) as bar:
        for task, H, seed in bar:
            bar.set_postfix_str(f"{task.name} H={H} seed {seed}")
            fit_task, val = splits[task.name]
            results.setdefault((task.name, H), []).append(run_seed(fit_task, H, seed, cfg, val))
    return results


def run(cfg: ReproduceConfig, tasks: TaskCache, out_dir: Path,
        progress: bool = False) -> ClaimResult:
    """Runs the C5 experiment on every image task, hidden width and seed of ``cfg``.

    Args:
      cfg: the settings (``image_datasets``, ``hidden_widths``, ``seeds``,
        ``resample_fraction``, ``validation_fraction``, ``steps``, ``lr_grid``,
        ``optimizers``, ``batch_size``, ``image_smoothing``).
      tasks: loads the image tasks and their validation splits.
      out_dir: where the plots go.
      progress: show a progress bar.

    Returns:
      The :class:`ClaimResult` for claim C5; ``data`` holds every number per seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    loaded, skipped = [], []
    for name in cfg.image_datasets:
        try:
            loaded.append(tasks.image(name))
        except FileNotFoundError as e:
            skipped.append(dict(task=name, reason=str(e).splitlines()[0]))
    cells, too_narrow = [], []
    for task in loaded:
        for H in cfg.hidden_widths:
            if int(H) < task.num_classes:
                too_narrow.append(dict(task=task.name, hidden=int(H)))
            else:
                cells.append((task, int(H)))
    rule = c5_rule(cfg.optimizers, cfg.steps)
    if not cells:
        why = "no image task could be loaded" if not loaded else "every hidden width is < N"
        return ClaimResult(CLAIM, TITLE, "not run", why, rule=rule,
                           data=dict(skipped=skipped, too_narrow=too_narrow))

    results = run_cells(cells, cfg, tasks, run_seed, desc="C5 layer-wise explicit",
                        progress=progress)

    numbers, plots, method_rows, lr_rows, sens_rows = [], [], [], [], []
    for task, H in cells:
        cell = results[(task.name, H)]
        name = f"{task.name} H={H}"
        nums = _cell_numbers(name, cell, cfg.optimizers)
        numbers.append(nums)
        method_rows += _method_rows(name, cell, cfg.optimizers)
        lr_rows += _lr_rows(name, cell, cfg.optimizers, cfg.seeds)
        sens = _sensitivity(name, cell, cfg.optimizers)
        sens_rows += sens
        traj_png = f"c5_{slug(task.name)}_h{H}.png"
        _plot(cell, out_dir / traj_png,
              f"{task.name}, MLP {task.num_features}-{H}-{task.num_classes}, seed "
              f"{cfg.seeds[0]}, tuned lr: held-out loss and accuracy", cfg.optimizers)
        sens_png = f"c5_{slug(task.name)}_h{H}_lr.png"
        _plot_sensitivity(sens, nums, out_dir / sens_png,
                          f"C5 {name}: held-out accuracy after {cfg.steps} steps across the "
                          f"lr grid (mean of {len(cfg.seeds)} seeds)")
        plots += [p for p in (traj_png, sens_png) if (out_dir / p).is_file()]

    parts = c5_parts(numbers, cfg.optimizers, cfg.steps)
    verdict = c5_verdict(parts)
    summary = c5_summary(parts)
    reported = c5_reported(numbers, cfg.optimizers)
    once_parts = c5_parts([dict(n, acc=dict(n["acc"], layerwise=n["acc"]["layerwise_once"],
                                             single=n["acc"]["single_once"],
                                             **{f"finetuned/{o}": n["acc"][f"finetuned_once/{o}"]
                                                for o in cfg.optimizers}))
                           for n in numbers], cfg.optimizers, cfg.steps)
    verdict_once = c5_verdict(once_parts)

    all_rows = [r["methods"][k] for cell in results.values() for r in cell
                for k in ("layerwise", "layerwise_once", "kmeans")]
    max_diff = max(r["forward_max_abs_diff"] for r in all_rows)
    mismatches = sum(r["forward_prediction_mismatches"] for r in all_rows)
    edges = [r for r in lr_rows if not r["edge"].startswith("0/")]
    betas_single = [r["methods"]["single"]["inverse_temperature"]
                    for cell in results.values() for r in cell]
    betas_hidden = [r["methods"]["layerwise"]["hidden_inverse_temperature"]
                    for cell in results.values() for r in cell]
    plateau = []
    for nums, (task, H) in zip(numbers, cells):
        for opt in cfg.optimizers:
            cell = results[(task.name, H)]
            starts = [r["methods"]["random"][opt]["start_test_loss"] for r in cell]
            ends = [r["methods"]["random"][opt]["test_loss"] for r in cell]
            plateau.append(verdicts.change(
                f"{nums['name']}, {OPTIMIZER_TITLES.get(opt, opt)} at the chosen rate: the "
                "held-out loss", mean_of(starts), mean_of(ends), relative=True)
                + f" (log N = {math.log(task.num_classes):.3f})")

    notes = [
        f"Verdict for the method as specified (plain calibration): {verdict}. With the prior "
        f"counted once, the same rule gives '{verdict_once}': " + "; ".join(
            f"({p['part']}{_opt_suffix(p)}) {p['cell']}: {p['verdict']}" for p in once_parts)
        + ".",
        "Network: an MLP `M -> H -> N` with a softmax hidden activation (positive and summing "
        "to 1, so the next layer's input is already a distribution) and L1-normalized layer "
        "inputs, the explicit solution's convention.",
        "Hidden targets: for each class, k-means (scikit-learn, seeded, "
        f"n_init={KMEANS_N_INIT}) on that class's L1-normalized training inputs into H/N "
        "clusters (the remainder going to the largest classes); the target of an example is its "
        "cluster id. The ablation clusters all inputs without labels.",
        "No backpropagation: layer 1 is `fit_explicit(X, clusters, H)` and layer 2 is "
        "`fit_explicit(h, y, N)` on the hidden activations; each layer then gets one scalar, "
        "its inverse temperature, fitted by Newton's method on that layer's own cross-entropy "
        f"(fitted here: {_range(betas_single)} for the single layer, {_range(betas_hidden)} for "
        "the hidden layer). The MLP built by `MLP.from_explicit` reproduces the hand-computed "
        f"forward pass: largest logit difference over all runs {max_diff:.2g}, held-out "
        f"predictions that differ: {mismatches}.",
        "Data: each task's training examples are split once into a fitting part and a "
        f"validation split ({cfg.validation_fraction:g} of them, the same for every seed and "
        f"method); each seed keeps a resample of {cfg.resample_fraction:g} of the fitting "
        "part. Chance is the held-out accuracy of the majority training label (per seed).",
        "Backpropagation, tuned: every backprop start (single softmax layer from random init, "
        "the network from random init, the network from each layer-wise explicit solution) is "
        "trained at every learning rate of the grid "
        f"({', '.join(f'{v:g}' for v in cfg.lr_grid)}) with each optimizer "
        f"({', '.join(OPTIMIZER_TITLES.get(o, o) for o in cfg.optimizers)}), {cfg.steps} "
        f"steps, batch size {cfg.batch_size or 'full'}, same seed and minibatches; the rate "
        "with the lowest validation loss at the end of the budget is chosen for each start, "
        "seed and optimizer separately (test figures never choose). "
        + (f"{len(edges)} of {len(lr_rows)} (start, optimizer) choices hit the grid's edge on "
           "some seed (flagged in the learning-rate table)." if edges else
           "No chosen rate is at the grid's edge."),
        "Random-init networks from step 0 to the end of the budget: " + "; ".join(plateau)
        + ".",
        "Times: explicit = clustering + all solves + calibrations (wall clock); backprop = "
        "training steps of the whole learning-rate grid at once (compilation and evaluation "
        "excluded).",
        "Plots: held-out loss and accuracy against step at the chosen rates (first seed), and "
        "held-out accuracy against learning rate for every start (the sensitivity of part (c)).",
    ]
    if skipped:
        notes.append("Skipped (data not found): " + ", ".join(d["task"] for d in skipped) + ".")
    if too_narrow:
        notes.append("Skipped widths below the class count (class-conditioned clusters need "
                     "H >= N): " + ", ".join(f"{d['task']} H={d['hidden']}" for d in too_narrow)
                     + ".")

    fmt4, fmt2 = "{:.4f}", "{:.2f}"
    part_rows = [dict(cell=p["cell"], part=p["part"],
                      optimizer=_opt_title(p.get("optimizer")),
                      a=p["name_a"], b=p["name_b"], mean=p["mean"],
                      ci=f"{p['value_lo']:.4f} to {p['value_hi']:.4f}", threshold=p["threshold"],
                      p=p.get("p_holm"), seeds=f"{p['a_greater']}/{p['n']}", verdict=p["verdict"])
                 for p in parts]
    rep_rows = [dict(cell=t["cell"], what=t["what"], a=t["name_a"], b=t["name_b"],
                     sentence=verdicts.difference(t, t["name_a"], t["name_b"]))
                for t in reported]
    tables = [
        Table(f"C5: held-out accuracy and loss over {len(cfg.seeds)} seeds (mean, std, "
              f"{int(100 * verdicts.CONFIDENCE)}% CI); backprop rows at the learning rate chosen "
              "on validation (per seed)",
              [("cell", "task, H", None), ("method", "method", None),
               ("optimizer", "optimizer", None), ("acc", "test acc", fmt4),
               ("acc_std", "± acc", fmt4), ("acc_ci", "acc CI", None),
               ("loss", "test loss", fmt4), ("loss_std", "± loss", fmt4),
               ("train_loss", "train loss", fmt4), ("lr", "chosen lr per seed", None),
               ("explicit_s", "explicit s", fmt2), ("backprop_s", "backprop s (grid)", fmt2)],
              method_rows),
        Table("C5 rule parts: the per-seed quantity (accuracy, or a paired accuracy difference) "
              "against its threshold; Holm-corrected over all parts",
              [("cell", "task, H", None), ("part", "part", None), ("optimizer", "optimizer", None),
               ("a", "A", None), ("b", "B", None), ("mean", "quantity", fmt4),
               ("ci", "95% CI", None), ("threshold", "threshold", fmt4), ("p", "Holm p", "{:.2g}"),
               ("seeds", "seeds A > B", None), ("verdict", "verdict", None)],
              part_rows),
        Table("C5: further paired comparisons (held-out accuracy unless stated; "
              "Holm-corrected among themselves)",
              [("cell", "task, H", None), ("what", "metric", None), ("sentence", "result", None)],
              rep_rows),
        Table("C5: learning rates, chosen on the validation loss at the end of the budget",
              [("cell", "task, H", None), ("start", "start", None),
               ("optimizer", "optimizer", None), ("grid", "grid", None),
               ("chosen", "chosen per seed", None), ("edge", "at grid edge", None),
               ("grid_s", "grid s", fmt2)],
              lr_rows),
        Table("C5 sensitivity: mean held-out accuracy at every learning rate after the budget; "
              "part (c)'s quantity (fine-tuned − random init, same rate) with its CI; seeds that "
              "chose the rate (single / random / fine-tuned / fine-tuned prior once)",
              [("cell", "task, H", None), ("optimizer", "optimizer", None), ("lr", "lr", "{:g}"),
               ("single_trained", "single layer", fmt4), ("random", "random init", fmt4),
               ("finetuned", "fine-tuned", fmt4), ("finetuned_once", "fine-tuned (once)", fmt4),
               ("diff", "fine-tuned − random", "{:+.4f}"), ("diff_lo", "CI lo", "{:+.4f}"),
               ("diff_hi", "CI hi", "{:+.4f}"), ("chosen", "chosen by seeds", None)],
              sens_rows),
    ]

    per_seed = {
        f"{name} H={H}": [
            dict(seed=seed, chance=r["chance"], methods=r["methods"],
                 trajectories={k: tr.to_dict() for k, tr in r["trajectories"].items()
                               if tr is not None})
            for seed, r in zip(cfg.seeds, cell)]
        for (name, H), cell in results.items()
    }
    data = dict(
        verdict_rule=dict(margin_fraction=MARGIN_FRACTION, tie_tolerance=TIE_TOLERANCE,
                          alpha=verdicts.ALPHA),
        parts=parts, parts_prior_once=once_parts, verdict_prior_once=verdict_once,
        reported=reported, numbers=numbers, sensitivity=sens_rows, learning_rates=lr_rows,
        per_seed=per_seed, skipped=skipped, too_narrow=too_narrow,
        forward_max_abs_diff=max_diff, forward_prediction_mismatches=mismatches,
        settings=dict(steps=cfg.steps, lr_grid=list(cfg.lr_grid),
                      optimizers=list(cfg.optimizers), batch_size=cfg.batch_size,
                      seeds=list(cfg.seeds), hidden_widths=list(cfg.hidden_widths),
                      smoothing=cfg.image_smoothing, resample_fraction=cfg.resample_fraction,
                      validation_fraction=cfg.validation_fraction, kmeans_n_init=KMEANS_N_INIT),
        seconds=time.perf_counter() - t_start,
    )
    return ClaimResult(CLAIM, TITLE, verdict, summary, tables=tables, plots=plots, notes=notes,
                       data=data, rule=rule)
