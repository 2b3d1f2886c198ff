"""Explicit solutions fitted layer by layer in a multi-layer network, without backprop.

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
log p_k`` (:func:`count_prior_once`).

Claim C5 (:mod:`xsol.experiments.claims.c5_layerwise`) compares this network
with backprop; claim C7 (:mod:`xsol.experiments.claims.c7_warm_start`) starts
backprop from it; the cost measurement (C6) times it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

import xsol
from xsol.core import inputs
from xsol.experiments.tasks import Task
from xsol.models.linen import MLP
from xsol.solvers.explicit import ExplicitSolution
from xsol.train.loop import evaluate, stack_batches

#: k-means restarts per clustering (seeded).
KMEANS_N_INIT = 2
#: Above this many examples per clustering, MiniBatchKMeans replaces KMeans.
MINIBATCH_ABOVE = 20000


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


def solution_row(sol: ExplicitSolution, t: Task, seconds: float) -> dict:
    """Held-out and training figures of a single explicit solution, and its fitting time."""
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
