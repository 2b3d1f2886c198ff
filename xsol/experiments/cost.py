"""Computational savings of the explicit solution, and how they grow (claim C6).

For one softmax layer, the explicit solution costs one statistics pass plus an
element-wise solve (docs/math.md section 1); backpropagation costs many optimizer
steps, each a forward and backward pass over the data plus an update of every
weight. This module measures, model by model, what each method pays to reach
the same training loss, in two separate measures (FLOPs and wall time), each
with its own verdict:

* **Explicit cost**: the compiled statistics step that :func:`xsol.accumulate`
  runs (``F = X~^T Y`` and its sums) plus the compiled solve
  (:func:`xsol.solvers.dense.explicit_weights`), timed on device-resident data after a
  warm-up (compilation timed separately), and the FLOPs XLA's cost analysis
  counts in those compiled computations. Every seed gets its own group of
  timed repeats (their median), so timing noise enters the intervals. For a
  calibrated target the 1-D temperature fit is added. For the layer-wise
  network the clustering (scikit-learn k-means, one thread) and the solves
  are timed and reported apart.
* **Backpropagation cost to equal training loss**: each optimizer of
  ``cfg.optimizers`` (:data:`xsol.experiments.sweep.OPTIMIZERS`) from a random
  initialization (``model.init_params(seed)``), full-batch steps, run until the
  training loss first reaches a target, with a cap on steps and seconds. FLOPs
  to target = FLOPs of one compiled training step
  (:func:`xsol.train.loop.make_train_step`) x steps; time = steps x measured seconds
  per step. A target not reached within the cap gives a lower bound on the
  savings, never a ratio.

Learning rates (:func:`tune`). The rates come from ``cfg.lr_grid``. C6 measures
cost to a target, so a rate is chosen by that cost: the rate of the grid that
reaches the target training loss in the fewest steps on the tuning seed
(``cfg.seeds[0]``), per optimizer and target. The search starts at the rate the
previous model of the same kind chose (the grid's middle for the first) and
walks outward while a neighbour is faster for some target; a run stops as soon
as it can no longer beat the cheapest run so far on any target in either
measure. The baseline charged to backpropagation for a target and measure is
the cheaper optimizer at its chosen rate; the other seeds rerun it. No held-out
quality is compared in C6: both sides fit the fitting part of
``cfg.validation_fraction``'s split (:func:`xsol.experiments.tasks.validation_split`),
and the validation loss where each stops is recorded beside the cost.

Targets. For a bigram language model (K = 1) the explicit solution is the
exact training optimum, so the target is that optimum + 1% (the solution with
a pseudo-count of 1e-8); the loss of the smoothed solution the report uses
elsewhere (``cfg.lm_smoothing``) is a second target. For image pixels (one
softmax layer) there are two targets: the plain explicit solution's loss, and
the temperature-calibrated solution's loss.

Growth series: (a) vocabulary ``V`` of the bigram LM (``V x V`` weights) on
the first ``tokens_per_word x V`` tokens of the text, so data grows with the
vocabulary; (b) data: leading fractions of the training tokens at a fixed
vocabulary; (c) hidden width ``H`` of a one-hidden-layer network
(:func:`xsol.experiments.layerwise.mlp_for`, ``M -> H -> N``): the explicit
side is the layer-wise fit of :func:`xsol.experiments.layerwise.fit_layerwise`,
the backprop side trains the same network from random init to the layer-wise
network's training loss.

Verdict (:func:`verdict`, a pure function of the measured points). For each
measure: *cheaper* per model and target when the confidence interval over
seeds of ``log(backprop cost / explicit cost)`` lies above 0; *grows* per
series when the interval of the per-seed log-log slope of that ratio against
size lies above 0 (:func:`xsol.experiments.verdicts.against`). The parts are
combined with :func:`xsol.experiments.verdicts.combine`, per measure and then
across the two measures.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from xsol.core import inputs
from xsol.stats.accumulation import make_accumulator, validate_batch
from xsol.stats.accumulation import step as accumulate_step
from xsol.experiments import layerwise, verdicts
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import mean_std
from xsol.experiments.sweep import OPTIMIZER_TITLES, OPTIMIZERS
from xsol.experiments.tasks import text_task, validation_split
from xsol.solvers.explicit import fit_explicit
from xsol.models.linen import SoftmaxRegression, TokenLM
from xsol.core.serialize import save_figure
from xsol.solvers.explicit import linear_logits_compiled
from xsol.solvers import temperature
from xsol.solvers.formula import explicit_weights_compiled
from xsol.train.loop import create_train_state, loss_fn, make_train_step, sample_batch

#: Pseudo-count of the explicit LM solution taken as the exact training optimum.
OPTIMUM_SMOOTHING = 1e-8
#: The LM target: the optimum's training loss times ``1 + LM_TOLERANCE``.
LM_TOLERANCE = 0.01
#: Full training loss checked every this many steps when training on minibatches.
EVAL_EVERY = 10
#: The two cost measures: key -> how the report names it. Each has its own verdict.
MEASURES = {"flops": "FLOPs", "time": "wall time"}
#: A tuning run stops once its time exceeds the cheapest run's time times this
#: (a margin for timing noise; FLOPs are exact and get none).
TIME_SLACK = 1.25
#: Growth series: axis -> the size it grows.
AXES = {"vocabulary": "weights", "data size": "examples", "hidden width": "weights"}
#: Where the layer-wise network's time is also judged without its clustering.
NO_CLUSTERING = "time without clustering"

# The library's own compiled kernels (their compilations are shared with fit_explicit's).
_solve_jit = explicit_weights_compiled
_scores_jit = linear_logits_compiled


@dataclasses.dataclass(frozen=True)
class CostSettings:
    """What C6 measures at one scale.

    Attributes:
      vocab_sizes: vocabulary sizes of the bigram LM (series a).
      tokens_per_word: series a reads the first ``tokens_per_word x V`` tokens
        of the text, so the data grows with the vocabulary.
      fractions: leading fractions of the training tokens (series b), at
        ``data_vocab`` words.
      data_vocab: the vocabulary of series b.
      data_tokens: token cap of the text of series b (None: all).
      widths: hidden widths ``H`` of the layer-wise network (series c).
      max_steps: step cap of one backprop run.
      max_seconds: time cap of one backprop run (training steps only).
      repeats_per_seed: timed repeats of each explicit fit per seed (their
        median is that seed's explicit time).
      lm_batch_size: minibatch of the LM runs (None: full batch).
    """

    vocab_sizes: tuple
    tokens_per_word: int
    fractions: tuple
    data_vocab: int
    data_tokens: int | None
    widths: tuple
    max_steps: int
    max_seconds: float
    repeats_per_seed: int
    lm_batch_size: int | None = None


def settings_for(cfg: ReproduceConfig) -> CostSettings:
    """The C6 settings of ``cfg.scale``."""
    if cfg.scale == "tiny":
        return CostSettings(vocab_sizes=(100, cfg.vocab_size), tokens_per_word=20,
                            fractions=(0.5, 1.0), data_vocab=cfg.vocab_size,
                            data_tokens=min(cfg.max_tokens or 12000, 12000), widths=(10, 20),
                            max_steps=300, max_seconds=1.5, repeats_per_seed=3)
    if cfg.scale == "quick":
        return CostSettings(vocab_sizes=(125, 250, 500, 1000), tokens_per_word=10,
                            fractions=(0.25, 0.5, 1.0), data_vocab=cfg.vocab_size,
                            data_tokens=cfg.max_tokens or 10000, widths=(16, 64, 256),
                            max_steps=1000, max_seconds=8.0, repeats_per_seed=3)
    return CostSettings(vocab_sizes=(500, 1000, 2000, 4000, 8000), tokens_per_word=25,
                        fractions=(0.125, 0.25, 0.5, 1.0), data_vocab=cfg.vocab_size,
                        data_tokens=cfg.max_tokens, widths=(16, 64, 256, 1024),
                        max_steps=20000, max_seconds=300.0, repeats_per_seed=3)


# --------------------------------------------------------------------------- FLOPs


def compiled_flops(compiled) -> float | None:
    """FLOPs XLA's cost analysis reports for a compiled computation, or None.

    ``jax.stages.Compiled.cost_analysis()`` returns a dict in recent JAX and a
    list of dicts (one per computation) in older versions; both are read. A
    ``while`` loop's body is counted once, whatever its trip count.
    """
    try:
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 -- best effort by design of the JAX API
        return None
    if isinstance(ca, dict):
        ca = [ca]
    total = 0.0
    for entry in ca or []:
        if isinstance(entry, dict):
            total += float(entry.get("flops", 0.0) or 0.0)
    return total if total > 0 else None


def analytic_explicit_flops(B: int, M: int, N: int, kind: str, K: int = 1) -> float:
    """Fallback count of the statistics pass + solve.

    Ids: ``2 B K`` scatter-adds + ``M N`` (merge). Dense: ``2 B M N`` (the
    product ``X^T A``) + ``B M`` (row sums) + ``2 M N`` (merge, totals).
    Solve: ``4 M N`` (add, two logs, subtract).
    """
    stats = 2.0 * B * K + M * N if kind == "ids" else 2.0 * B * M * N + B * M + 2.0 * M * N
    return stats + 4.0 * M * N


def analytic_step_flops(B: int, sizes, kind: str, K: int = 1) -> float:
    """Fallback count of one Adam step: forward + backward (about 3x forward) + update.

    ``sizes = [M, h_1, ..., N]``. Forward per layer: ``B K N`` (row lookups)
    or ``2 B M N`` (product), plus ``6 B N`` (softmax); Adam: about 12 FLOPs
    per weight.
    """
    fwd, weights = 0.0, 0.0
    for l in range(len(sizes) - 1):
        m, n = sizes[l], sizes[l + 1]
        fwd += (B * K * n if (kind == "ids" and l == 0) else 2.0 * B * m * n) + 6.0 * B * n
        weights += m * n + n
    return 3.0 * fwd + 12.0 * weights


def lloyd_flops(num_examples: int, num_features: int, k: int) -> float:
    """FLOPs of one Lloyd iteration of k-means: ``2 B M k`` (distances by products),
    ``B k`` (assignment), ``B M`` (centroid update)."""
    B, M = num_examples, num_features
    return 2.0 * B * M * k + B * k + B * M


class _KMeansRecorder:
    """Records every scikit-learn k-means fit (examples, features, clusters, iterations).

    K-means runs in scikit-learn, outside XLA, so its FLOPs are counted from
    the iterations it reports: ``n_iter_`` of the best restart times the
    number of restarts (an estimate: the other restarts' counts are not kept).
    """

    def __init__(self):
        self.fits = []
        self._recording = None

    def __enter__(self):
        self._recording = layerwise.record_kmeans()
        self.fits = self._recording.__enter__()
        return self

    def __exit__(self, *exc):
        return self._recording.__exit__(*exc)

    def flops(self) -> float:
        return float(sum(f["restarts"] * f["iterations"]
                         * lloyd_flops(f["examples"], f["features"], f["clusters"])
                         for f in self.fits))


def _newton_steps() -> int:
    """The iteration cap of :mod:`xsol.solvers.temperature`'s Newton loop."""
    return temperature.MAX_NEWTON_STEPS


# --------------------------------------------------------------------------- explicit side


def _median_seconds(fn, repeats: int) -> tuple[float, list]:
    jax.block_until_ready(fn())  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times


def _compiled_fit(X, y, num_classes, *, kind, vocab_size, normalize="l1"):
    """The statistics step :func:`xsol.accumulate` runs, and the solve, compiled for ``(X, y)``."""
    acc = make_accumulator(X, num_classes, vocab_size=vocab_size, kind=kind, normalize=normalize)
    Xh, yh = validate_batch(acc, X, y)
    Xd, yd = jax.device_put(Xh), jax.device_put(np.asarray(yh, np.int32))
    state0 = acc.init()
    a = jnp.float32(0.0)
    t0 = time.perf_counter()
    stats_c = jax.jit(lambda s, X, y: accumulate_step(acc, s, X, y)[0]).lower(
        state0, Xd, yd).compile()
    solve_c = _solve_jit.lower(state0.cooc, a).compile()
    compile_seconds = time.perf_counter() - t0
    sf, vf = compiled_flops(stats_c), compiled_flops(solve_c)
    if sf is None or vf is None:
        flops = analytic_explicit_flops(Xh.shape[0], acc.num_features, acc.num_classes, kind,
                                        acc.window or 1)
        source = "analytic"
    else:
        flops, source = sf + vf, "xla"
    return dict(acc=acc, Xh=Xh, yh=yh, Xd=Xd, yd=yd, state0=state0, stats_c=stats_c,
                solve_c=solve_c, compile_seconds=compile_seconds, flops=flops,
                stats_flops=sf, solve_flops=vf, flops_source=source)


def seed_medians(times, groups: int) -> list:
    """Medians of ``groups`` consecutive, near-equal groups of timings (one per seed)."""
    times = list(times)
    groups = max(1, min(int(groups), len(times)))
    return [float(np.median(g)) for g in np.array_split(np.asarray(times, np.float64), groups)]


def explicit_cost(X, y, num_classes: int, *, kind: str, vocab_size: int | None,
                  smoothing: float, repeats: int, groups: int = 1) -> dict:
    """Time and FLOPs of the explicit fit: compiled statistics step + compiled solve.

    Args:
      X, y: training inputs and labels (ids ``(B, K)`` or dense ``(B, M)``).
      num_classes: ``N``.
      kind: ``"ids"`` or ``"dense"``.
      vocab_size: ``V`` for ids.
      smoothing: the additive smoothing of the solve.
      repeats: timed repeats after one warm-up.
      groups: the repeats are split into this many consecutive groups (one
        per seed); ``seconds_per_seed`` holds their medians.

    Returns:
      ``seconds`` (median of all repeats, device-resident data),
      ``seconds_per_seed``, ``seconds_all``, ``fit_explicit_seconds`` (median
      of whole :func:`xsol.fit_explicit` calls), ``compile_seconds``,
      ``flops``, ``stats_flops``, ``solve_flops``, ``flops_source``
      (``"xla"`` or ``"analytic"``).
    """
    c = _compiled_fit(X, y, num_classes, kind=kind, vocab_size=vocab_size)
    a = jnp.float32(smoothing)
    stats_c, solve_c, state0, Xd, yd = c["stats_c"], c["solve_c"], c["state0"], c["Xd"], c["yd"]

    def once():
        return solve_c(stats_c(state0, Xd, yd).cooc, a)

    seconds, times = _median_seconds(once, repeats)
    fit_seconds, _ = _median_seconds(
        lambda: fit_explicit(c["Xh"], c["yh"], num_classes, vocab_size=vocab_size,
                             smoothing=smoothing, kind=kind).weights, max(1, repeats // 3))
    return {"seconds": seconds, "seconds_per_seed": seed_medians(times, groups),
            "seconds_all": times, "fit_explicit_seconds": fit_seconds,
            "compile_seconds": c["compile_seconds"], "flops": c["flops"],
            "stats_flops": c["stats_flops"], "solve_flops": c["solve_flops"],
            "flops_source": c["flops_source"]}


def calibration_flops(sol, X, y) -> dict:
    """FLOPs of :meth:`ExplicitSolution.calibrate` on dense ``X``: scores + Newton on one scalar.

    XLA's count of the compiled scores ``x~ W``, plus its count of the Newton
    loop times the loop's iteration cap (XLA counts a loop body once; the loop
    may stop earlier, so this is an upper bound).
    """
    Xd = jax.device_put(np.asarray(X, np.float32))
    yd = jax.device_put(np.asarray(y, np.int32))
    B, M = Xd.shape
    N = sol.num_classes
    sc = compiled_flops(_scores_jit.lower(sol.weights, sol.bias, Xd, kind="dense",
                                          normalize=sol.normalize).compile())
    steps = _newton_steps()
    try:
        s = jnp.zeros((B, N), jnp.float32)
        nf = compiled_flops(temperature.newton_inverse_temperature.lower(s, sol.bias, yd, jnp.float32(1)).compile())
    except Exception:  # noqa: BLE001
        nf = None
    iters = steps
    if sc is None or nf is None:
        return {"flops": 2.0 * B * M * N + iters * 12.0 * B * N, "flops_source": "analytic",
                "newton_steps": iters}
    return {"flops": sc + iters * nf, "flops_source": "xla", "newton_steps": iters}


def layerwise_cost(X, y, H: int, N: int, *, smoothing: float, seeds, repeats: int) -> dict:
    """Time and FLOPs of :func:`layerwise.fit_layerwise` (no backpropagation), per seed.

    A first call (seed ``seeds[0]``; it compiles, and its excess over that
    seed's median is reported as compile time) gives the network whose
    training loss is the target. Then every seed fits ``repeats`` times with
    its own k-means seed; the medians of its clustering, solve and total times
    are that seed's times. FLOPs: XLA's counts of both layers' statistics +
    solve, both calibrations and the hidden activations (the same for every
    seed), plus k-means FLOPs from the iterations scikit-learn reports for
    that seed's clusterings (see :class:`_KMeansRecorder`).
    """
    seeds = [int(s) for s in seeds]
    first = layerwise.fit_layerwise(X, y, H, N, seed=seeds[0], smoothing=smoothing)
    per_seed, kmeans = [], []
    for s in seeds:
        with _KMeansRecorder() as rec:
            fits = [layerwise.fit_layerwise(X, y, H, N, seed=s, smoothing=smoothing)
                    for _ in range(max(1, repeats))]
        kmeans.append({"flops": rec.flops() / len(fits),
                       "fits": rec.fits[:len(rec.fits) // len(fits)]})
        per_seed.append({"seconds": float(np.median([f.seconds for f in fits])),
                         "cluster_seconds": float(np.median([f.cluster_seconds for f in fits])),
                         "solve_seconds": float(np.median([f.solve_seconds for f in fits]))})
    fit = first
    hidden, out = fit.layers
    h = np.asarray(hidden.predict_proba(X))
    l1 = _compiled_fit(X, fit.targets, H, kind="dense", vocab_size=None)
    l2 = _compiled_fit(h, y, N, kind="dense", vocab_size=None)
    c1 = calibration_flops(hidden, X, fit.targets)
    c2 = calibration_flops(out, h, y)
    act = compiled_flops(_scores_jit.lower(hidden.weights, hidden.bias,
                                           jax.device_put(np.asarray(X, np.float32)),
                                           kind="dense", normalize="l1").compile())
    solves = l1["flops"] + l2["flops"] + c1["flops"] + c2["flops"] + (act or 0.0)
    sources = {l1["flops_source"], l2["flops_source"], c1["flops_source"], c2["flops_source"]}
    logits = layerwise.hand_forward(fit, X)
    loss = float(jnp.mean(inputs.cross_entropy(jnp.asarray(logits), jnp.asarray(y))))
    med = {k: float(np.median([p[k] for p in per_seed]))
           for k in ("seconds", "cluster_seconds", "solve_seconds")}
    return {
        **med,
        "seconds_per_seed": [p["seconds"] for p in per_seed],
        "cluster_seconds_per_seed": [p["cluster_seconds"] for p in per_seed],
        "solve_seconds_per_seed": [p["solve_seconds"] for p in per_seed],
        "fit_explicit_seconds": med["seconds"],
        "compile_seconds": max(0.0, first.seconds - per_seed[0]["seconds"]),
        "flops": solves + float(np.median([k["flops"] for k in kmeans])),
        "flops_per_seed": [solves + k["flops"] for k in kmeans],
        "solve_flops": solves, "kmeans": kmeans,
        "flops_source": "xla + k-means count" if sources == {"xla"} else
                        "analytic + k-means count",
        "loss": loss, "fit": fit,
    }


# --------------------------------------------------------------------------- backprop side

#: ``hit`` codes inside the compiled loop: target pending / not asked for.
_PENDING, _SKIPPED = -1, -2


def _make_runner(apply_fn, tx, batch_size: int | None):
    """A compiled loop of optimizer steps that stops when every asked-for target is reached.

    ``run(state, hit, min_loss, last, X, y, key, targets, num_steps)`` runs at
    most ``num_steps`` steps of :func:`xsol.train.loop.make_train_step`. ``hit[k]``
    is ``-1`` while target ``k`` is pending, ``-2`` when it is not asked for,
    else the first step whose parameters reach ``targets[k]``. Full batch: the
    loss each step computes anyway is the training loss of the parameters
    before its update, so ``hit`` is exact at no extra cost. Minibatches: the
    full training loss is evaluated every :data:`EVAL_EVERY` steps (and that
    time is counted).
    """
    step_fn = make_train_step(apply_fn, tx, jit=False)

    def run(state, hit, min_loss, last, X, y, key, targets, num_steps):
        def cond(c):
            _, hit, _, last, i = c
            return (i < num_steps) & jnp.any(hit == _PENDING) & jnp.isfinite(last)

        def body(c):
            s, hit, mn, _, i = c
            if batch_size is None:
                s2, m = step_fn(s, X, y)
                loss, checked = m["loss"], True
            else:
                checked = s.step % EVAL_EVERY == 0
                full = jax.lax.cond(checked, lambda p: loss_fn(p, apply_fn, X, y),
                                    lambda p: jnp.float32(jnp.inf), s.params)
                xb, yb = sample_batch(key, s.step, X, y, batch_size)
                s2, m = step_fn(s, xb, yb)
                loss = jnp.where(checked, full, m["loss"])
            newly = (hit == _PENDING) & (loss <= targets) & checked
            hit = jnp.where(newly, s.step, hit)
            mn = jnp.where(checked, jnp.minimum(mn, loss), mn)
            return s2, hit, mn, loss, i + 1

        s, hit, mn, last, _ = jax.lax.while_loop(
            cond, body, (state, hit, min_loss, last, jnp.int32(0)))
        return s, hit, mn, last

    return jax.jit(run, donate_argnums=0)


def _optimizer(name: str, learning_rate: float = 0.01):
    """The optimizer ``name`` of :data:`OPTIMIZERS`, its rate a leaf of the state.

    ``optax.inject_hyperparams`` keeps the rate in the optimizer state, so one
    compiled loop serves every rate.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)}, got {name!r}")
    factory = OPTIMIZERS[name]
    return optax.inject_hyperparams(lambda learning_rate: factory(learning_rate))(
        learning_rate=learning_rate)


def _num_outputs(model) -> int:
    return int(getattr(model, "num_outputs", None) or model.num_classes)


_INIT_CACHE: dict = {}


def _model_key(model):
    return (repr(model), id(getattr(model, "kernel_init", None)),
            id(getattr(model, "bias_init", None)))


def _init_fn(model, optimizer: str = "adam"):
    """``key -> TrainingState`` of ``model.init_params(key)`` and ``optimizer``.

    One compiled function per model makes the states of every optimizer of
    :data:`OPTIMIZERS` at once (run eagerly, every operation of the
    initializers would compile on its own).
    """
    key = _model_key(model)
    if key not in _INIT_CACHE:
        names = tuple(OPTIMIZERS)
        _INIT_CACHE[key] = jax.jit(lambda k: {
            n: create_train_state(p, _optimizer(n))
            for p in [model.init_params(k)] for n in names})
    both = _INIT_CACHE[key]
    return lambda k: both(k)[optimizer]


_VAL_CACHE: dict = {}


def _val_loss_fn(model):
    """``(params, X, y) -> mean cross-entropy``, compiled once per model."""
    key = _model_key(model)
    if key not in _VAL_CACHE:
        _VAL_CACHE[key] = jax.jit(lambda p, X, y: loss_fn(p, model.apply, X, y))
    return _VAL_CACHE[key]


class BackpropRunner:
    """One optimizer from random init on one model and data, compiled once for all rates and seeds.

    Attributes:
      optimizer: a key of :data:`OPTIMIZERS`.
      step_flops: FLOPs of one compiled training step (XLA's count, or analytic).
      flops_source: ``"xla"`` or ``"analytic"``.
      compile_seconds: time to compile the training loop.
    """

    def __init__(self, model, X, y, targets, *, batch_size: int | None,
                 optimizer: str = "adam", validation=None):
        self.model = model
        self.optimizer = optimizer
        Xh = model.prepare(X)
        yh = inputs.check_labels(y, Xh.shape[0], _num_outputs(model))
        self.X, self.y = jnp.asarray(Xh), jnp.asarray(yh, jnp.int32)
        self.targets = jnp.asarray(np.asarray(targets, np.float32))
        self.batch_size = batch_size
        self.validation = None
        if validation is not None:
            Xv = model.prepare(validation[0])
            yv = inputs.check_labels(validation[1], Xv.shape[0], _num_outputs(model))
            self.validation = (jnp.asarray(Xv), jnp.asarray(yv, jnp.int32))
            self._val_loss = _val_loss_fn(model)
        tx = _optimizer(optimizer)
        self._init = _init_fn(model, optimizer)
        key0 = jax.random.PRNGKey(0)
        state = jax.eval_shape(self._init, key0)
        T = len(targets)
        t0 = time.perf_counter()
        self.run_c = _make_runner(model.apply, tx, batch_size).lower(
            state, jnp.full((T,), _PENDING, jnp.int32), jnp.float32(jnp.inf), jnp.float32(0),
            self.X, self.y, jax.random.PRNGKey(0), self.targets, jnp.int32(0)).compile()
        self.compile_seconds = time.perf_counter() - t0
        # XLA counts a while loop's body once (its trip count is an argument here), so the
        # compiled loop's count is that of one compiled training step (plus a few
        # comparisons); the test checks it against the step compiled alone.
        flops = compiled_flops(self.run_c)
        if flops is None:
            B = self.X.shape[0] if batch_size is None else batch_size
            sizes = getattr(model, "sizes", [model.num_features, _num_outputs(model)])
            flops, self.flops_source = analytic_step_flops(B, sizes, model.kind), "analytic"
        else:
            self.flops_source = "xla"
        self.step_flops = float(flops)

    def step_flops_alone(self) -> float | None:
        """XLA's FLOPs of one :func:`make_train_step` step compiled on its own (a check)."""
        tx = _optimizer(self.optimizer)
        state = self._init(jax.random.PRNGKey(0))
        b = self.batch_size
        xb, yb = (self.X, self.y) if b is None else (self.X[:b], self.y[:b])
        return compiled_flops(make_train_step(self.model.apply, tx).lower(state, xb, yb).compile())

    def run(self, learning_rate: float, seed: int, *, max_steps: int, max_seconds: float,
            needed=None, beat=None) -> dict:
        """One run until every asked-for target is reached, a cap is hit, or it cannot win.

        Args:
          learning_rate: the rate.
          seed: seeds the initialization (and the minibatches).
          max_steps, max_seconds: the caps (training steps only are timed).
          needed: which targets to run for (default: all).
          beat: per target, ``None`` or ``(flops, seconds)`` of the cheapest
            run so far; the run stops once, for every pending target, it has
            spent more than that in FLOPs and more than :data:`TIME_SLACK`
            times that in time (it can no longer be the cheaper run).

        Returns:
          ``hits`` (first step reaching each target, None if not reached or
          not asked for), ``needed``, ``steps_run``, ``seconds`` (training
          steps only), ``seconds_per_step``, ``min_loss`` (lowest training
          loss seen), ``final_loss``, ``diverged``, ``stopped`` (why), and
          ``val_loss`` (the validation loss where it stopped, when the runner
          has a validation split).
        """
        T = int(self.targets.shape[0])
        needed = [True] * T if needed is None else [bool(n) for n in needed]
        state = self._init(jax.random.PRNGKey(seed))
        # The rate is a leaf of the optimizer state (optax.inject_hyperparams).
        state.opt_state.hyperparams["learning_rate"] = jnp.asarray(
            learning_rate, state.opt_state.hyperparams["learning_rate"].dtype)
        hit = jnp.asarray([_PENDING if n else _SKIPPED for n in needed], jnp.int32)
        mn, last = jnp.float32(jnp.inf), jnp.float32(0)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
        steps, seconds, chunk, stopped = 0, 0.0, 4, "step cap"
        while True:
            pending = [k for k, h in enumerate(np.asarray(hit)) if h == _PENDING]
            limit = self._beat_limit(pending, beat, seconds / steps if steps else None)
            if limit is not None and steps >= limit:
                stopped = "cannot beat the cheapest run"
                break
            n = min(chunk, max_steps - steps)
            if steps > 0:  # stay within the time cap
                per = seconds / steps
                n = min(n, max(1, int((max_seconds - seconds) / max(per, 1e-9)) + 1))
            if limit is not None:
                n = min(n, max(1, limit - steps))
            t = time.perf_counter()
            state, hit, mn, last = self.run_c(state, hit, mn, last, self.X, self.y, key,
                                              self.targets, jnp.int32(n))
            jax.block_until_ready(hit)
            seconds += time.perf_counter() - t
            steps = int(state.step)
            if not np.any(np.asarray(hit) == _PENDING):
                stopped = "reached"
                break
            if not np.isfinite(float(last)):
                stopped = "diverged"
                break
            if steps >= max_steps:
                break
            if seconds >= max_seconds:
                stopped = "time cap"
                break
            chunk = min(chunk * 2, 1024)
        hits = [int(h) if h >= 0 else None for h in np.asarray(hit)]
        out = {"optimizer": self.optimizer, "learning_rate": float(learning_rate),
               "seed": int(seed), "hits": hits, "needed": needed, "steps_run": steps,
               "seconds": seconds, "seconds_per_step": seconds / max(steps, 1),
               "min_loss": float(mn), "final_loss": float(last),
               "diverged": not np.isfinite(float(last)), "stopped": stopped,
               "step_flops": self.step_flops}
        if self.validation is not None:
            out["val_loss"] = float(self._val_loss(state.params, *self.validation))
        return out

    def _beat_limit(self, pending, beat, seconds_per_step):
        """Steps after which no pending target can be reached more cheaply (None: no limit)."""
        if beat is None or not pending:
            return None
        limit = 0
        for k in pending:
            if beat[k] is None:
                return None
            flops, secs = beat[k]
            by_flops = int(math.ceil(flops / max(self.step_flops, 1e-30)))
            by_time = (int(math.ceil(TIME_SLACK * secs / seconds_per_step))
                       if seconds_per_step else by_flops)
            limit = max(limit, by_flops, by_time, 1)
        return limit


def run_cost(run: dict, k: int) -> dict:
    """What run ``run`` spent on target ``k``: steps, FLOPs, seconds, and whether it reached it.

    A run that did not reach the target contributes what it spent, a lower bound.
    """
    h = run["hits"][k]
    n = run["steps_run"] if h is None else h
    return {"steps": int(n), "flops": n * run["step_flops"], "seconds": n * run["seconds_per_step"],
            "reached": h is not None}


def _run_key(run: dict, k: int, measure: str = "flops"):
    """Sort key of a run on target ``k``: reached first, then cheaper, then lower training loss."""
    c = run_cost(run, k)
    loss = run["min_loss"] if (math.isfinite(run["min_loss"]) and not run["diverged"]) else math.inf
    if not c["reached"]:
        return (1, math.inf, loss)
    return (0, c["flops" if measure == "flops" else "seconds"], loss)


def _better_somewhere(run: dict, than: dict, T: int) -> bool:
    return any(_run_key(run, k) < _run_key(than, k) for k in range(T))


def tune(runners: dict, grid, seed: int, settings: CostSettings, start: dict | None = None) -> dict:
    """Chooses each optimizer's learning rate on ``grid`` by the cost to each target.

    For each optimizer (in the order of ``runners``) the search starts at
    ``start[optimizer]`` (else the grid's middle) and walks up the grid, then
    down, while the next rate reaches some target in fewer steps than its
    neighbour (the cost to target is taken as unimodal in the rate). Every
    run stops once it can no longer be the cheapest on any target in either
    measure (``beat`` of :meth:`BackpropRunner.run`), across optimizers.

    Returns:
      ``{"grid", "seed", "optimizers": {name: {"tried": [runs], "chosen": [run per
      target], "at_edge": [bool per target]}}, "winners": {measure: [(optimizer,
      learning rate) per target]}}``.
    """
    grid = [float(g) for g in grid]
    G = len(grid)
    T = len(next(iter(runners.values())).targets)
    best = [None] * T  # per target: (flops, seconds) of the cheapest run that reached it

    def update_best(r):
        for k in range(T):
            c = run_cost(r, k)
            if c["reached"]:
                b = best[k]
                best[k] = ((c["flops"], c["seconds"]) if b is None
                           else (min(b[0], c["flops"]), min(b[1], c["seconds"])))

    out = {"grid": grid, "seed": int(seed), "optimizers": {}}
    for name, runner in runners.items():
        lr0 = (start or {}).get(name)
        i0 = int(np.argmin([abs(math.log(g / lr0)) for g in grid])) if lr0 else (G - 1) // 2
        tried = {}

        def attempt(i, runner=runner, tried=tried):
            r = runner.run(grid[i], seed, max_steps=settings.max_steps,
                           max_seconds=settings.max_seconds, beat=list(best))
            tried[i] = r
            update_best(r)
            return r

        first = attempt(i0)
        for direction in (+1, -1):
            prev, i = first, i0 + direction
            while 0 <= i < G:
                r = attempt(i)
                if not _better_somewhere(r, prev, T):
                    break
                prev, i = r, i + direction
        runs = [tried[i] for i in sorted(tried)]
        chosen, edge = [], []
        for k in range(T):
            i_best = min(sorted(tried), key=lambda i, k=k: _run_key(tried[i], k))
            chosen.append(tried[i_best])
            edge.append(G > 1 and i_best in (0, G - 1))
        out["optimizers"][name] = {"tried": runs, "chosen": chosen, "at_edge": edge}
    out["winners"] = {}
    for m in MEASURES:
        out["winners"][m] = []
        for k in range(T):
            name = min(out["optimizers"],
                       key=lambda n, k=k: _run_key(out["optimizers"][n]["chosen"][k], k, m))
            out["winners"][m].append((name, out["optimizers"][name]["chosen"][k]["learning_rate"]))
    return out


def measure_backprop(runners: dict, tuned: dict, seeds, settings: CostSettings) -> dict:
    """The baseline of every target and measure, run on every seed.

    The tuning seed reuses its tuning run; the other seeds run each distinct
    (optimizer, rate) once, for the targets it is the baseline of.

    Returns:
      ``{measure: [[run per seed] per target]}`` and ``"runs"``: every run made.
    """
    seeds = [int(s) for s in seeds]
    T = len(next(iter(runners.values())).targets)
    jobs = {}
    for m in MEASURES:
        for k, pair in enumerate(tuned["winners"][m]):
            jobs.setdefault(pair, set()).add(k)
    made = {}
    for (name, lr), ks in jobs.items():
        tuning_run = next(r for r in tuned["optimizers"][name]["tried"] if r["learning_rate"] == lr)
        made[(name, lr, seeds[0])] = tuning_run
        for s in seeds[1:]:
            made[(name, lr, s)] = runners[name].run(
                lr, s, max_steps=settings.max_steps, max_seconds=settings.max_seconds,
                needed=[k in ks for k in range(T)])
    out = {m: [[made[(*tuned["winners"][m][k], s)] for s in seeds] for k in range(T)]
           for m in MEASURES}
    out["runs"] = list(made.values())
    return out


def _censored_median(values, censored):
    """Median of values some of which are lower bounds; returns ``(median, is_lower_bound)``."""
    order = sorted(zip(values, censored), key=lambda vc: (vc[1], vc[0]))
    n = len(order)
    mid = [order[(n - 1) // 2], order[n // 2]]
    return float(np.mean([v for v, _ in mid])), any(c for _, c in mid)


def per_seed_ratios(runs, k: int, measure: str, explicit) -> dict:
    """Per seed: backprop cost to target ``k`` in ``measure``, the explicit cost, and their ratio.

    ``explicit``: the explicit cost per seed (same order as ``runs``).
    """
    costs = [run_cost(r, k) for r in runs]
    key = "flops" if measure == "flops" else "seconds"
    bp = [c[key] for c in costs]
    ex = [float(e) for e in explicit]
    return {"backprop": bp, "explicit": ex, "steps": [c["steps"] for c in costs],
            "ratio": [b / e if e > 0 else math.inf for b, e in zip(bp, ex)],
            "censored": [not c["reached"] for c in costs]}


def summarize_target(target: dict, k: int, measured: dict, tuned: dict) -> dict:
    """Fills ``target[measure]`` (per-seed costs and ratios) from the baseline runs.

    ``target`` holds ``explicit_flops`` and ``explicit_seconds`` per seed (and,
    for the layer-wise network, ``explicit_solve_seconds``).
    """
    for m in MEASURES:
        runs = measured[m][k]
        ex = target["explicit_flops"] if m == "flops" else target["explicit_seconds"]
        d = per_seed_ratios(runs, k, m, ex)
        name, lr = tuned["winners"][m][k]
        d.update(optimizer=name, learning_rate=lr,
                 val_loss=[r.get("val_loss") for r in runs])
        target[m] = d
    if "explicit_solve_seconds" in target:
        d = per_seed_ratios(measured["time"][k], k, "time", target["explicit_solve_seconds"])
        target[NO_CLUSTERING] = d
    steps = [s for s, c in zip(target["flops"]["steps"], target["flops"]["censored"]) if not c]
    target["reached"] = len(steps)
    target["runs"] = len(target["flops"]["steps"])
    target["steps"] = mean_std(steps) if steps else None
    target["max_steps_run"] = int(max(target["flops"]["steps"]))
    for m in MEASURES:
        ci = ratio_interval(target[m]["ratio"])
        target[f"{m}_ratio"] = ci["geomean"]
        target[f"{m}_ratio_lo"], target[f"{m}_ratio_hi"] = ci["lo"], ci["hi"]
        target[f"{m}_lower_bound"] = any(target[m]["censored"])
    target["lower_bound"] = target["flops_lower_bound"] or target["time_lower_bound"]
    return target


# --------------------------------------------------------------------------- points


def _backprop(point: dict, model, X, y, validation, cfg: ReproduceConfig,
              settings: CostSettings, batch_size, start: dict) -> dict:
    """Tunes and measures every optimizer of ``cfg.optimizers`` on ``point``'s targets."""
    losses = [t["loss"] for t in point["targets"]]
    runners = {name: BackpropRunner(model, X, y, losses, batch_size=batch_size, optimizer=name,
                                    validation=validation)
               for name in cfg.optimizers}
    tuned = tune(runners, cfg.lr_grid, int(cfg.seeds[0]), settings, start=start)
    measured = measure_backprop(runners, tuned, cfg.seeds, settings)
    for k, t in enumerate(point["targets"]):
        summarize_target(t, k, measured, tuned)
    point["backprop"] = {
        "grid": tuned["grid"], "tuning_seed": tuned["seed"],
        "optimizers": {
            name: {"tried": o["tried"], "at_edge": o["at_edge"],
                   "chosen": [r["learning_rate"] for r in o["chosen"]],
                   "step_flops": runners[name].step_flops,
                   "step_flops_source": runners[name].flops_source,
                   "compile_seconds": runners[name].compile_seconds,
                   "seconds_per_step": float(np.median([r["seconds_per_step"]
                                                        for r in o["tried"]]))}
            for name, o in tuned["optimizers"].items()},
        "winners": tuned["winners"], "runs": measured["runs"],
        "max_steps": settings.max_steps, "max_seconds": settings.max_seconds,
    }
    # The next model of this kind starts its search at these rates.
    for name, o in tuned["optimizers"].items():
        start[name] = o["chosen"][0]["learning_rate"]
    return point


def lm_point(X, y, V: int, cfg: ReproduceConfig, settings: CostSettings, *, axis: str,
             label: str, validation=None, start: dict | None = None) -> dict:
    """One bigram LM: explicit cost, the two targets, the optimizers to the targets."""
    n = len(cfg.seeds)
    exp = explicit_cost(X, y, V, kind="ids", vocab_size=V, smoothing=OPTIMUM_SMOOTHING,
                        repeats=settings.repeats_per_seed * n, groups=n)
    opt_sol = fit_explicit(X, y, V, vocab_size=V, smoothing=OPTIMUM_SMOOTHING)
    smooth_sol = fit_explicit(X, y, V, vocab_size=V, smoothing=cfg.lm_smoothing)
    opt, smoothed = opt_sol.nll(X, y), smooth_sol.nll(X, y)
    flops = [exp["flops"]] * n
    targets = [
        {"name": f"optimum +{100 * LM_TOLERANCE:g}%", "loss": opt * (1 + LM_TOLERANCE),
         "explicit_seconds": exp["seconds_per_seed"], "explicit_flops": flops},
        {"name": f"smoothed explicit (a={cfg.lm_smoothing:g})", "loss": smoothed,
         "explicit_seconds": exp["seconds_per_seed"], "explicit_flops": flops},
    ]
    if validation is not None:
        targets[0]["explicit_val_loss"] = opt_sol.nll(*validation)
        targets[1]["explicit_val_loss"] = smooth_sol.nll(*validation)
    point = {"axis": axis, "label": label, "model": f"bigram LM, V={V}", "M": V, "N": V,
             "weights": V * V, "examples": int(len(y)), "explicit": exp,
             "optimum_loss": opt, "smoothed_loss": smoothed, "targets": targets}
    return _backprop(point, TokenLM(vocab_size=V, window=1), X, y, validation, cfg, settings,
                     settings.lm_batch_size, {} if start is None else start)


def pixel_point(task, cfg: ReproduceConfig, settings: CostSettings, *, validation=None,
                start: dict | None = None) -> dict:
    """One softmax layer on the image pixels: plain and calibrated explicit targets."""
    X, y, N = task.X_train, task.y_train, task.num_classes
    a = cfg.image_smoothing
    n = len(cfg.seeds)
    exp = explicit_cost(X, y, N, kind="dense", vocab_size=None, smoothing=a,
                        repeats=settings.repeats_per_seed * n, groups=n)
    sol = fit_explicit(X, y, N, smoothing=a, kind="dense")
    _, cal_times = _median_seconds(lambda: jnp.float32(sol.calibrate(X, y).inverse_temperature),
                                   settings.repeats_per_seed * n)
    cal_per_seed = seed_medians(cal_times, n)
    cal = dict(calibration_flops(sol, X, y), seconds=float(np.median(cal_times)),
               seconds_per_seed=cal_per_seed)
    csol = sol.calibrate(X, y)
    targets = [
        {"name": "plain explicit", "loss": sol.nll(X, y),
         "explicit_seconds": exp["seconds_per_seed"], "explicit_flops": [exp["flops"]] * n},
        {"name": "calibrated explicit", "loss": csol.nll(X, y),
         "explicit_seconds": [e + c for e, c in zip(exp["seconds_per_seed"], cal_per_seed)],
         "explicit_flops": [exp["flops"] + cal["flops"]] * n},
    ]
    if validation is not None:
        targets[0]["explicit_val_loss"] = sol.nll(*validation)
        targets[1]["explicit_val_loss"] = csol.nll(*validation)
    M = task.num_features
    point = {"axis": "single layer (pixels)", "label": f"{task.name} pixels",
             "model": f"softmax layer {M}→{N}", "M": M, "N": N, "weights": M * N,
             "examples": int(len(y)), "explicit": exp, "calibration": cal,
             "inverse_temperature": csol.inverse_temperature, "targets": targets}
    return _backprop(point, SoftmaxRegression(num_features=M, num_classes=N), X, y, validation,
                     cfg, settings, cfg.batch_size, {} if start is None else start)


def width_point(task, H: int, cfg: ReproduceConfig, settings: CostSettings, *, validation=None,
                start: dict | None = None) -> dict:
    """One network ``M -> H -> N``: the layer-wise explicit fit vs backprop to its training loss."""
    X, y, N, M = task.X_train, task.y_train, task.num_classes, task.num_features
    lw = layerwise_cost(X, y, H, N, smoothing=cfg.image_smoothing, seeds=cfg.seeds,
                        repeats=max(1, settings.repeats_per_seed - 1))
    fit = lw.pop("fit")
    target = {"name": "layer-wise explicit network", "loss": lw["loss"],
              "explicit_seconds": lw["seconds_per_seed"], "explicit_flops": lw["flops_per_seed"],
              "explicit_solve_seconds": lw["solve_seconds_per_seed"]}
    if validation is not None:
        logits = layerwise.hand_forward(fit, validation[0])
        target["explicit_val_loss"] = float(jnp.mean(inputs.cross_entropy(
            jnp.asarray(logits), jnp.asarray(validation[1]))))
    point = {"axis": "hidden width", "label": f"H={H}", "model": f"MLP {M}→{H}→{N}",
             "M": M, "H": H, "N": N, "weights": M * H + H * N, "examples": int(len(y)),
             "explicit": lw, "targets": [target]}
    return _backprop(point, layerwise.mlp_for(task, H), X, y, validation, cfg, settings,
                     cfg.batch_size, {} if start is None else start)


# --------------------------------------------------------------------------- verdict
#
# Everything from here to the plot is a pure function of the measured points:
# a point is ``{"axis", "label", "weights", "examples", "targets": [{"name",
# "flops": {"ratio": [...], "censored": [...]}, "time": {...}}]}`` (ratios per
# seed; ``censored``: the seed did not reach the target, so its ratio is a lower
# bound). Hidden-width targets may add ``NO_CLUSTERING`` the same way.

#: How a growth part's verdict reads in a sentence.
_GROWTH_WORDS = {"holds": "grows", "does not hold": "does not grow",
                 "inconclusive": "inconclusive"}


def _logs(values) -> list:
    return [math.log(v) if (v is not None and v > 0 and math.isfinite(v)) else math.nan
            for v in values]


def ratio_interval(ratios) -> dict:
    """Geometric mean of ratios over seeds and its confidence interval (a t-interval on logs)."""
    ci = verdicts.interval(_logs(ratios))
    if ci["n"] == 0:
        nan = float("nan")
        return {"geomean": nan, "lo": nan, "hi": nan, "n": 0}
    return {"geomean": math.exp(ci["mean"]), "lo": math.exp(ci["lo"]), "hi": math.exp(ci["hi"]),
            "n": ci["n"]}


def cheaper_part(ratio, censored) -> dict:
    """*holds* when the interval of ``log(backprop / explicit)`` over seeds is above 0.

    A censored seed (target not reached: its ratio is a lower bound) cannot
    show that the explicit fit is not cheaper, so *does not hold* becomes
    *inconclusive* when a seed is censored.
    """
    v = verdicts.against(_logs(ratio), 0.0, side="above")
    if v == "does not hold" and any(censored):
        v = "inconclusive"
    return dict(verdict=v, censored=int(sum(bool(c) for c in censored)), **ratio_interval(ratio))


def growth_part(sizes, ratios, censored) -> dict:
    """Whether a ratio grows with size: the per-seed log-log slope's interval against 0.

    Args:
      sizes: the sizes, ascending (at least two distinct).
      ratios: per size, the ratio on each seed.
      censored: per size, whether each seed's ratio is a lower bound.

    Seed ``s``'s slope is the least-squares slope of ``log ratio[i][s]`` on
    ``log size[i]``. A lower bound below the mean log-size makes the slope an
    upper bound (it cannot show growth); above it, a lower bound (it cannot
    show its absence); the verdict those bounds cannot support becomes
    *inconclusive*.
    """
    x = np.log(np.asarray(sizes, np.float64))
    xc = x - x.mean()
    sxx = float(np.sum(xc ** 2))
    if len(sizes) < 2 or sxx <= 0:
        raise ValueError(f"a growth series needs two distinct sizes, got {list(sizes)}")
    w = xc / sxx
    n = min(len(r) for r in ratios)
    logs = [_logs(r[:n]) for r in ratios]
    slopes = [float(sum(w[i] * logs[i][s] for i in range(len(sizes)))) for s in range(n)]
    v = verdicts.against(slopes, 0.0, side="above")
    small = any(c for i in range(len(sizes)) if w[i] < 0 for c in censored[i][:n])
    large = any(c for i in range(len(sizes)) if w[i] > 0 for c in censored[i][:n])
    if v == "holds" and small:
        v = "inconclusive"
    if v == "does not hold" and large:
        v = "inconclusive"
    ci = verdicts.interval(slopes)
    first, last = ratio_interval(ratios[0]), ratio_interval(ratios[-1])
    return {"verdict": v, "slope": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"],
            "slopes": slopes, "sizes": [float(s) for s in sizes], "first": first["geomean"],
            "last": last["geomean"], "factor": last["geomean"] / first["geomean"],
            "censored_small": small, "censored_large": large}


def series(points) -> dict:
    """``{(axis, target name): [(point, target index)] ascending in size}`` for the growth axes."""
    out = {}
    for p in points:
        if p["axis"] not in AXES:
            continue
        for k, t in enumerate(p["targets"]):
            out.setdefault((p["axis"], t["name"]), []).append((p, k))
    for (axis, _), lst in out.items():
        lst.sort(key=lambda pk: pk[0][AXES[axis]])
    return {key: lst for key, lst in out.items()
            if len({p[AXES[key[0]]] for p, _ in lst}) >= 2}


def measure_basis(points, measure: str) -> dict:
    """Cheaper and growth parts of one measure, each combined, and the measure's verdict."""
    cheaper, seen = {}, set()
    for p in points:
        same = (p.get("model", p["label"]), p["examples"])
        if same in seen:
            continue  # one model on the same examples serves two axes: counted once
        seen.add(same)
        for t in p["targets"]:
            if measure in t:
                cheaper[f"{p['label']} / {t['name']}"] = dict(
                    cheaper_part(t[measure]["ratio"], t[measure]["censored"]),
                    axis=p["axis"], model=p.get("model", p["label"]), target=t["name"])
    grows = {}
    for (axis, name), lst in series(points).items():
        if not all(measure in p["targets"][k] for p, k in lst):
            continue
        sizes = [p[AXES[axis]] for p, _ in lst]
        grows[f"{axis} / {name}"] = dict(
            growth_part(sizes, [p["targets"][k][measure]["ratio"] for p, k in lst],
                        [p["targets"][k][measure]["censored"] for p, k in lst]),
            axis=axis, target=name, labels=[p["label"] for p, _ in lst])
    by_axis = {}
    for g in grows.values():
        by_axis.setdefault(g["axis"], []).append(g["verdict"])
    c_v = verdicts.combine([c["verdict"] for c in cheaper.values()])
    g_v = verdicts.combine([g["verdict"] for g in grows.values()])
    return {"verdict": verdicts.combine([c_v, g_v]),
            "cheaper": {"verdict": c_v, "parts": cheaper},
            "grows": {"verdict": g_v, "parts": grows,
                      "axes": {a: verdicts.combine(v) for a, v in by_axis.items()}}}


def verdict(points) -> tuple[str, dict]:
    """The C6 verdict and what it rests on (:data:`RULE`).

    Returns:
      ``(verdict, basis)``; ``basis["measures"][m]`` for ``m`` in
      :data:`MEASURES` and, where the layer-wise network was measured,
      ``basis["without_clustering"]`` (its time without the clustering; shown,
      not part of the verdict).
    """
    measures = {m: measure_basis(points, m) for m in MEASURES}
    basis = {"measures": measures,
             "verdicts": {m: b["verdict"] for m, b in measures.items()}}
    width = [p for p in points if any(NO_CLUSTERING in t for t in p["targets"])]
    if width:
        basis["without_clustering"] = measure_basis(width, NO_CLUSTERING)
    return verdicts.combine([b["verdict"] for b in measures.values()]), basis


#: The verdict rule, printed beside the verdict.
RULE = (
    "Two measures, judged separately: FLOPs and wall time. For each: *cheaper* per model and "
    f"target when the {int(100 * verdicts.CONFIDENCE)}% t-interval over seeds of "
    "log(backprop cost / explicit cost) lies above 0; *grows* per series (vocabulary with "
    "tokens growing with it, data size, hidden width) when the interval of the per-seed "
    "log-log slope of that ratio against size lies above 0 (below 0: does not grow; "
    "containing 0: inconclusive; a target not reached within the cap makes a ratio a lower "
    "bound, which cannot decide against the side it favours). A measure combines all its "
    "parts and the claim combines the two measures: holds if every part holds, does not hold "
    "if none does, partly if some hold, inconclusive if none holds and some are inconclusive.")


# --------------------------------------------------------------------------- sentences


def _join(items) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _x(v: float) -> str:
    return f"×{v:.3g}" if math.isfinite(v) else "×n/a"


def _moved(name: str, before: float, after: float, *, up: str, down: str) -> str:
    """``"the savings grow from ×4 to ×9"``; the direction from the numbers."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return f"{name} go from {_x(before)} to {_x(after)}"
    if after == before:
        return f"{name} stay at {_x(after)}"
    return f"{name} {up if after > before else down} from {_x(before)} to {_x(after)}"


def _count_sentence(parts: dict, what: str, unit: str) -> str:
    """``"A in 9 of 11 UNIT (not in a, b; inconclusive for c)"`` from the parts' verdicts."""
    n = len(parts)
    held = [k for k, p in parts.items() if p["verdict"] == "holds"]
    failed = [k for k, p in parts.items() if p["verdict"] == "does not hold"]
    unsure = [k for k, p in parts.items() if p["verdict"] == "inconclusive"]
    text = f"{what} in {len(held)} of {n} {unit}"
    rest = []
    if failed:
        rest.append(f"not in {_join(failed)}")
    if unsure:
        rest.append(f"inconclusive for {_join(unsure)}")
    return text + (f" ({'; '.join(rest)})" if rest else "")


def _axes_sentence(axes: dict, noun: str) -> str:
    """``"the FLOPs savings grow with data size; they do not grow with vocabulary"``.

    Made from the per-axis verdicts.
    """
    groups = {}
    for axis, v in axes.items():
        groups.setdefault(v, []).append(axis)
    bits = []
    if groups.get("holds"):
        bits.append(f"grow with {_join(groups['holds'])}")
    if groups.get("partly"):
        bits.append(f"grow with {_join(groups['partly'])} for some targets only")
    if groups.get("does not hold"):
        bits.append(f"do not grow with {_join(groups['does not hold'])}")
    if groups.get("inconclusive"):
        bits.append(f"are inconclusive in {_join(groups['inconclusive'])}")
    if not bits:
        return f"no growth series measured the {noun}"
    return f"the {noun} " + "; they ".join(bits)


def measure_sentence(measure: str, b: dict) -> str:
    """One sentence per measure, every direction and count computed from ``b``."""
    name = MEASURES.get(measure, measure)
    parts = b["cheaper"]["parts"]
    g = [p["geomean"] for p in parts.values() if math.isfinite(p["geomean"])]
    span = f"backprop/explicit {_x(min(g))} to {_x(max(g))}; " if g else ""
    cheaper = _count_sentence(parts, "the explicit fit is cheaper", "model-targets")
    axes = _axes_sentence(b["grows"]["axes"], f"{name} savings")
    return f"{name} — {b['verdict']}: {span}{cheaper}; {axes}"


def growth_sentence(key: str, g: dict, measure: str) -> str:
    """``"vocabulary / t: the FLOPs savings shrink from ×2180 to ×408 (slope ...)"``."""
    name = MEASURES.get(measure, measure)
    moved = _moved(f"the {name} savings", g["first"], g["last"], up="grow", down="shrink")
    tail = (f"log-log slope {g['slope']:+.2f}, {int(100 * verdicts.CONFIDENCE)}% CI "
            f"{g['lo']:+.2f} to {g['hi']:+.2f}, n = {g['n']}: {_GROWTH_WORDS[g['verdict']]}")
    bounds = []
    if g["censored_small"]:
        bounds.append("lower bounds at the small sizes")
    if g["censored_large"]:
        bounds.append("lower bounds at the large sizes")
    if bounds:
        tail += f"; {_join(bounds)}"
    return f"{key}: {moved} ({tail})"


def component_sentences(points) -> list:
    """What dominates each explicit cost, at the smallest and largest size of each series."""
    out = []
    for (axis, name), lst in series(points).items():
        if lst[0][1] != 0:
            continue  # one sentence per axis (the explicit cost is shared by its targets)
        (p0, _), (p1, _) = lst[0], lst[-1]
        e0, e1 = p0.get("explicit", {}), p1.get("explicit", {})
        if axis in ("vocabulary", "data size") and all(
                e.get("solve_flops") and e.get("stats_flops") for e in (e0, e1)):
            s0 = 100 * e0["solve_flops"] / (e0["solve_flops"] + e0["stats_flops"])
            s1 = 100 * e1["solve_flops"] / (e1["solve_flops"] + e1["stats_flops"])
            out.append(verdicts.change(
                f"{axis}: between {p0['label']} and {p1['label']} the solve's share of the "
                f"explicit FLOPs (%; the rest is the statistics pass)", s0, s1, digits=0))
        if axis == "hidden width" and all(e.get("seconds") for e in (e0, e1)):
            c0 = 100 * e0["cluster_seconds"] / e0["seconds"]
            c1 = 100 * e1["cluster_seconds"] / e1["seconds"]
            out.append(verdicts.change(
                f"hidden width: between {p0['label']} and {p1['label']} the clustering's share of "
                f"the layer-wise fit's wall time (%; the rest is both layers' solves and "
                f"calibrations)", c0, c1, digits=0))
    return out


def clustering_sentence(basis: dict) -> str | None:
    """Whether excluding the clustering would change the hidden-width time verdicts."""
    wc = basis.get("without_clustering")
    if wc is None:
        return None
    full = basis["measures"]["time"]
    pairs = []
    for part in ("cheaper", "grows"):
        with_c = [p["verdict"] for p in full[part]["parts"].values()
                  if p["axis"] == "hidden width"]
        without = [p["verdict"] for p in wc[part]["parts"].values()]
        if with_c and without:
            pairs.append((part, verdicts.combine(with_c), verdicts.combine(without)))
    if not pairs:
        return None
    changed = [(p, a, b) for p, a, b in pairs if a != b]
    if changed:
        return ("Excluding the clustering changes the hidden-width wall-time verdicts: "
                + "; ".join(f"{p}: {a} with it, {b} without it" for p, a, b in changed)
                + " (the verdict counts the clustering: it is part of the layer-wise fit).")
    return ("Excluding the clustering leaves the hidden-width wall-time verdicts unchanged ("
            + "; ".join(f"{p}: {a}" for p, a, _ in pairs) + ").")


def summary_text(overall: str, basis: dict) -> str:
    """The one-line summary: each measure's verdict and the counts behind it."""
    ms = basis["measures"]
    text = "; ".join(measure_sentence(m, ms[m]) for m in MEASURES)
    v = basis["verdicts"]
    if v["flops"] != v["time"]:
        text += f". The measures disagree (FLOPs {v['flops']}, wall time {v['time']}): {overall}"
    return text


def lr_sentences(points) -> list:
    """Which chosen learning rates sit at an end of the grid (a faster rate may lie beyond)."""
    edges, labels, seen = {}, [], set()
    for p in points:
        bp = p.get("backprop")
        if not bp or (p.get("model"), p["examples"]) in seen:
            continue
        seen.add((p.get("model"), p["examples"]))
        labels += [f"{p['label']} / {t['name']}" for t in p["targets"]]
        for name, o in bp["optimizers"].items():
            for k, (t, lr, e) in enumerate(zip(p["targets"], o["chosen"], o["at_edge"])):
                if e:
                    end = "top" if lr >= max(bp["grid"]) else "bottom"
                    charged = any(tuple(w[k]) == (name, lr) for w in bp["winners"].values())
                    edges.setdefault((name, lr, end), []).append(
                        (f"{p['label']} / {t['name']}", charged))
    if not edges:
        return ["Every chosen rate lies inside the grid."]
    bits = []
    for (name, lr, end), items in edges.items():
        total, named = len(labels), [k for k, _ in items]
        others = [k for k in labels if k not in named]
        where = (f"every model-target ({total})" if not others
                 else f"{len(items)} of {total} model-targets (all but {_join(others)})"
                 if len(others) < len(named)
                 else f"{len(items)} of {total} model-targets ({_join(named)})")
        charged = sum(c for _, c in items)
        bits.append(f"{OPTIMIZER_TITLES.get(name, name)} at {lr:g}, the {end} of the grid, for "
                    f"{where}; it is the charged baseline for {charged} of them")
    return ["Chosen rates at an end of the grid (a faster rate may lie beyond it): "
            + "; ".join(bits) + "."]


# --------------------------------------------------------------------------- plot, tables


def _xkey(axis: str) -> str:
    return AXES.get(axis, "weights")


def plot_savings(points, path) -> str:
    """Savings per axis: geometric mean over seeds with its interval; time solid, FLOPs dashed.

    Log axes; open triangles: lower bounds (a seed did not reach the target).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes_names = list(dict.fromkeys(p["axis"] for p in points))
    fig, axs = plt.subplots(1, len(axes_names), figsize=(4.6 * len(axes_names), 3.9),
                            squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, axis in zip(axs[0], axes_names):
        lst_by_name = {}
        for p in sorted((p for p in points if p["axis"] == axis), key=lambda p: p[_xkey(axis)]):
            for k, t in enumerate(p["targets"]):
                lst_by_name.setdefault(t["name"], []).append((p, k))
        for ci, (name, lst) in enumerate(lst_by_name.items()):
            x = [p[_xkey(axis)] for p, _ in lst]
            c = colors[ci % len(colors)]
            for m, style, tag in (("time", "-", "time"), ("flops", "--", "FLOPs")):
                ts = [p["targets"][k] for p, k in lst]
                yv = np.asarray([t[f"{m}_ratio"] for t in ts])
                err = np.asarray([[max(0.0, v - t[f"{m}_ratio_lo"]) for v, t in zip(yv, ts)],
                                  [max(0.0, t[f"{m}_ratio_hi"] - v) for v, t in zip(yv, ts)]])
                lb = [t[f"{m}_lower_bound"] for t in ts]
                ax.errorbar(x, yv, yerr=np.nan_to_num(err), fmt=style, marker="o", ms=3, color=c,
                            capsize=2, lw=1, label=f"{tag}: {name}")
                bound = [(a, v) for a, v, b in zip(x, yv, lb) if b]
                if bound:
                    ax.scatter(*zip(*bound), marker="^", facecolors="none", edgecolors=c, s=44)
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis_ in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 3, 10, 30, ...
            axis_.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
            axis_.set_major_formatter(
                FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
            axis_.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training examples" if axis == "data size" else "weights (M×N summed)")
        ax.set_ylabel("backprop cost / explicit cost")
        ax.set_title(axis, fontsize=10)
        ax.legend(fontsize=6)
    fig.suptitle("C6: savings of the explicit fit to equal training loss, geometric mean over "
                 "seeds with 95% CI (above 1: explicit cheaper; open triangles: lower bounds)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def _lr_text(o: dict) -> str:
    """The chosen rates (per target, repeats dropped), flagged when one is at the grid's edge."""
    chosen = dict.fromkeys(o["chosen"])
    edge = any(o["at_edge"])
    return " / ".join(f"{lr:g}" for lr in chosen) + (" (grid edge)" if edge else "")


def _tables(points, basis) -> list:
    explicit_rows, lr_rows, target_rows, growth_rows = [], [], [], []
    seen = set()
    for p in points:
        e, bp = p["explicit"], p["backprop"]
        shared = (p["model"], p["examples"]) in seen  # one model measured once, on two axes
        seen.add((p["model"], p["examples"]))
        explicit_rows.append({
            "axis": p["axis"], "model": p["model"], "weights": p["weights"],
            "examples": p["examples"], "explicit_ms": 1e3 * e["seconds"],
            "cluster_ms": 1e3 * e["cluster_seconds"] if "cluster_seconds" in e else None,
            "solve_ms": 1e3 * e["solve_seconds"] if "solve_seconds" in e else None,
            "fit_ms": 1e3 * e["fit_explicit_seconds"], "compile_s": e["compile_seconds"],
            "explicit_mflops": e["flops"] / 1e6, "flops_source": e["flops_source"],
        })
        for name, o in ([] if shared else bp["optimizers"].items()):
            lr_rows.append({
                "model": p["model"], "examples": p["examples"],
                "optimizer": OPTIMIZER_TITLES.get(name, name),
                "tried": ", ".join(f"{r['learning_rate']:g}" for r in o["tried"]),
                "chosen": _lr_text(o),
                "step_mflops": o["step_flops"] / 1e6, "ms_per_step": 1e3 * o["seconds_per_step"],
                "compile_s": o["compile_seconds"],
            })
        for t in p["targets"]:
            st = t["steps"]
            row = {"axis": p["axis"], "model": p["model"], "target": t["name"],
                   "target_loss": t["loss"], "reached": f"{t['reached']}/{t['runs']}",
                   "steps": (f"{st['mean']:.0f} ± {st['std']:.0f}" if st
                             else f"> {t['max_steps_run']}"),
                   "explicit_val": t.get("explicit_val_loss")}
            vals = [v for v in t["flops"].get("val_loss", []) if v is not None]
            row["backprop_val"] = float(np.median(vals)) if vals else None
            for m in MEASURES:
                d = t[m]
                part = cheaper_part(d["ratio"], d["censored"])
                row[f"{m}_baseline"] = (f"{OPTIMIZER_TITLES.get(d['optimizer'], d['optimizer'])}"
                                        f" {d['learning_rate']:g}")
                row[f"{m}_ratio"] = t[f"{m}_ratio"]
                row[f"{m}_ci"] = (f"{t[f'{m}_ratio_lo']:.3g}–{t[f'{m}_ratio_hi']:.3g}"
                                  + (" (≥)" if t[f"{m}_lower_bound"] else ""))
                row[f"{m}_verdict"] = part["verdict"]
            row["backprop_mflops"] = float(np.median(t["flops"]["backprop"])) / 1e6
            row["explicit_mflops"] = float(np.median(t["flops"]["explicit"])) / 1e6
            row["backprop_ms"] = 1e3 * float(np.median(t["time"]["backprop"]))
            row["explicit_ms"] = 1e3 * float(np.median(t["time"]["explicit"]))
            target_rows.append(row)
    for m, b in list(basis["measures"].items()) + (
            [(NO_CLUSTERING, basis["without_clustering"])] if "without_clustering" in basis
            else []):
        for key, g in b["grows"]["parts"].items():
            growth_rows.append({
                "series": key, "measure": MEASURES.get(m, m),
                "sizes": " → ".join(f"{s:,.0f}" for s in g["sizes"]),
                "first": g["first"], "last": g["last"], "slope": g["slope"],
                "ci": f"{g['lo']:+.2f} to {g['hi']:+.2f}", "n": g["n"],
                "verdict": _GROWTH_WORDS[g["verdict"]]
                + ("" if m in MEASURES else " (shown only)")})
    t1 = Table(
        "C6 explicit cost per model (median over seeds of each seed's median of repeats; "
        "compile time excluded and listed; the layer-wise fit split into clustering and solves)",
        [("axis", "axis", None), ("model", "model", None), ("weights", "weights", "{:,}"),
         ("examples", "examples", "{:,}"), ("explicit_ms", "explicit ms", "{:.3f}"),
         ("cluster_ms", "clustering ms", "{:.2f}"), ("solve_ms", "solves ms", "{:.2f}"),
         ("fit_ms", "whole fit ms", "{:.2f}"), ("compile_s", "explicit compile s", "{:.2f}"),
         ("explicit_mflops", "explicit MFLOPs", "{:.3g}"), ("flops_source", "FLOPs from", None)],
        explicit_rows)
    t2 = Table(
        "C6 learning rates: tried on the tuning seed (from the grid), chosen per target by the "
        "fewest steps to the target training loss",
        [("model", "model", None), ("examples", "examples", "{:,}"),
         ("optimizer", "optimizer", None), ("tried", "rates tried", None),
         ("chosen", "chosen", None),
         ("step_mflops", "MFLOPs/step", "{:.3g}"), ("ms_per_step", "ms/step", "{:.3f}"),
         ("compile_s", "compile s", "{:.2f}")],
        lr_rows)
    t3 = Table(
        "C6 backprop from random init to the target training loss vs the explicit fit: steps "
        "mean ± std over the seeds that reached it (FLOPs baseline); costs are medians over "
        "seeds; ratio = backprop / explicit, geometric mean over seeds with its 95% CI (above "
        "1: explicit cheaper; ≥: some seed did not reach the target, a lower bound); val: "
        "validation loss of the explicit solution behind the target, and of the FLOPs "
        "baseline's runs where they stopped (median over seeds; a run stops at the last "
        "target it was run for)",
        [("axis", "axis", None), ("model", "model", None), ("target", "target", None),
         ("target_loss", "target loss", "{:.4f}"), ("reached", "reached", None),
         ("steps", "steps", None),
         ("flops_baseline", "FLOPs baseline", None),
         ("backprop_mflops", "backprop MFLOPs", "{:.3g}"),
         ("explicit_mflops", "explicit MFLOPs", "{:.3g}"),
         ("flops_ratio", "FLOPs ×", "{:.3g}"), ("flops_ci", "CI", None),
         ("flops_verdict", "cheaper (FLOPs)", None),
         ("time_baseline", "time baseline", None), ("backprop_ms", "backprop ms", "{:.1f}"),
         ("explicit_ms", "explicit ms", "{:.3f}"), ("time_ratio", "time ×", "{:.3g}"),
         ("time_ci", "CI", None), ("time_verdict", "cheaper (time)", None),
         ("explicit_val", "val explicit", "{:.3f}"), ("backprop_val", "val backprop", "{:.3f}")],
        target_rows)
    t4 = Table(
        "C6 growth of the savings with size: geometric-mean ratio at the smallest and largest "
        "size, per-seed log-log slope (mean and 95% CI)",
        [("series", "series", None), ("measure", "measure", None), ("sizes", "sizes", None),
         ("first", "smallest ×", "{:.3g}"), ("last", "largest ×", "{:.3g}"),
         ("slope", "slope", "{:+.2f}"), ("ci", "95% CI", None), ("n", "seeds", None),
         ("verdict", "verdict", None)],
        growth_rows)
    return [t1, t2, t3, t4]


# --------------------------------------------------------------------------- run


def _text(cfg, V: int, max_tokens):
    task = text_task(cfg.text_source, vocab_size=V, window=1, max_tokens=max_tokens)
    fit, val = validation_split(task, cfg.validation_fraction)
    return task, fit, val


def run(cfg: ReproduceConfig, tasks: TaskCache, out_dir: pathlib.Path,
        progress: bool = True) -> ClaimResult:
    """Measures claim C6: the explicit solution's savings and their growth with model size.

    Args:
      cfg: the run's settings (``cfg.scale`` picks :func:`settings_for`).
      tasks: loaded tasks (the first image task serves the image models).
      out_dir: where the plot goes.
      progress: show a progress bar over the measured models.

    Returns:
      A :class:`ClaimResult` for ``"C6"``.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = settings_for(cfg)
    t_start = time.perf_counter()

    texts, seen = [], set()
    for V in s.vocab_sizes:
        cap = s.tokens_per_word * V
        if cfg.max_tokens:
            cap = min(cap, cfg.max_tokens)
        task, fit, val = _text(cfg, V, cap)
        if task.vocab_size not in seen:  # a text with fewer words caps V
            seen.add(task.vocab_size)
            texts.append((fit, val, cap))
    dtask, dfit, dval = _text(cfg, s.data_vocab, s.data_tokens)
    image = split = None
    if cfg.image_datasets:
        image = tasks.image(cfg.image_datasets[0])
        split = tasks.split(image.name)
    plan = [("vocabulary", fit, (1.0, val)) for fit, val, _ in texts]
    plan += [("data size", dfit, (f, dval)) for f in s.fractions]
    widths = ()
    if image is not None:
        widths = tuple(H for H in s.widths if H >= image.num_classes)
        plan.append(("single layer (pixels)", split[0], None))
        plan += [("hidden width", split[0], H) for H in widths]

    points, cache, starts = [], {}, {"lm": {}, "pixels": {}, "mlp": {}}
    bar = tqdm(plan, disable=not progress, desc="C6 cost", leave=False)
    for axis, task, arg in bar:
        t_point = time.perf_counter()
        if axis == "single layer (pixels)":
            bar.set_postfix_str("pixels")
            points.append(dict(pixel_point(task, cfg, s, validation=split[1],
                                           start=starts["pixels"]),
                               wall_seconds=time.perf_counter() - t_point))
            continue
        if axis == "hidden width":
            bar.set_postfix_str(f"H={arg}")
            points.append(dict(width_point(task, int(arg), cfg, s, validation=split[1],
                                           start=starts["mlp"]),
                               wall_seconds=time.perf_counter() - t_point))
            continue
        frac, val = arg
        n = len(task.y_train)
        if axis == "data size":
            n = max(2, int(frac * n))
        label = (f"V={task.vocab_size}" if axis == "vocabulary"
                 else f"{frac:g} of the tokens, V={task.vocab_size}")
        bar.set_postfix_str(label)
        key = (task.vocab_size, n)
        if key in cache and not (np.array_equal(cache[key]["_X"], task.X_train[:n])
                                 and np.array_equal(cache[key]["_y"], task.y_train[:n])):
            key = (*key, axis)
        if key not in cache:
            cache[key] = lm_point(task.X_train[:n], task.y_train[:n], task.vocab_size, cfg, s,
                                  axis=axis, label=label, validation=val, start=starts["lm"])
            cache[key]["wall_seconds"] = time.perf_counter() - t_point
            cache[key]["_X"], cache[key]["_y"] = task.X_train[:n], task.y_train[:n]
        # The same model on the same examples serves both axes (measured once).
        points.append({k: v for k, v in dict(cache[key], axis=axis, label=label).items()
                       if not k.startswith("_")})
    bar.close()

    v, basis = verdict(points)
    plot = plot_savings(points, out_dir / "c6_savings.png")
    tables = _tables(points, basis)
    summary = summary_text(v, basis)

    growth = [growth_sentence(key, g, m) for m, b in basis["measures"].items()
              for key, g in b["grows"]["parts"].items()]
    batch_txt = ("full-batch steps" if s.lm_batch_size is None
                 else f"minibatches of {s.lm_batch_size}")
    img_batch = ("full-batch steps" if cfg.batch_size is None
                 else f"minibatches of {cfg.batch_size}")
    opt_names = _join(OPTIMIZER_TITLES.get(o, o) for o in cfg.optimizers)
    vocab_txt = "; ".join(f"V = {fit.vocab_size}: {len(fit.y_train):,} fitted tokens"
                          for fit, _, _ in texts)
    per_word = [len(fit.y_train) / fit.vocab_size for fit, _, _ in texts]
    per_word_txt = (f"{min(per_word):.1f} to {max(per_word):.1f}"
                    if max(per_word) - min(per_word) >= 0.05 else f"{per_word[0]:.1f}")
    notes = [
        "Explicit cost: the compiled statistics step that `xsol.accumulate` runs, plus the "
        "compiled solve (`xsol.solvers.dense.explicit_weights`), on device-resident data after a "
        f"warm-up; each seed gets {s.repeats_per_seed} timed repeats and their median is its "
        "explicit time (so timing noise enters the intervals); compile time is listed "
        "separately; 'whole fit' is the median of whole `fit_explicit` calls (host checks and "
        "transfers included). FLOPs are what XLA's cost analysis "
        "(`jit(f).lower(...).compile().cost_analysis()`) reports for those computations (an "
        "analytic count where it reports none; the table says which). For a calibrated target "
        "the temperature fit's time and FLOPs are added (Newton loop FLOPs: XLA's per-iteration "
        "count × the loop's iteration cap, an upper bound).",
        f"Backprop cost: {opt_names} from a random initialization (Lecun normal), {batch_txt} "
        f"for the LMs and {img_batch} for the image models, until the training loss first "
        "reaches the target (full batch: the loss every step computes is the training loss, "
        f"so the first step reaching the target is exact); cap {s.max_steps} steps and "
        f"{s.max_seconds:g} s of training per run. Time to target = steps × measured seconds "
        "per step (compile time excluded, as on the explicit side); FLOPs = XLA's FLOPs of one "
        "compiled training step (`xsol.train.loop.make_train_step`, as compiled inside the training "
        "loop) × steps.",
        f"Learning rates: from the grid {tuple(float(g) for g in cfg.lr_grid)} (`cfg.lr_grid`), "
        f"for each of {opt_names}. C6 measures cost to a target training loss, so a rate is "
        "chosen by that cost: per optimizer and target, the rate reaching the target in the "
        f"fewest steps on the tuning seed {cfg.seeds[0]}. The search starts at the previous "
        "model's choice (the grid's middle for the first model of each kind) and walks outward "
        "while a neighbour is faster for some target; a run stops once it cannot be the "
        f"cheapest on any target (FLOPs, or time with a ×{TIME_SLACK:g} margin). The baseline of "
        "each target and measure is the cheaper optimizer at its rate; seeds "
        f"{tuple(cfg.seeds)} then run it (they change the initialization). Only the baseline's "
        "cost is charged to backprop, not the search's. No held-out quality is compared in "
        "C6: both methods fit the fitting part of the validation split "
        f"(fraction {cfg.validation_fraction:g}); the validation loss where each stopped is "
        "listed beside the cost.",
        *lr_sentences(points),
        f"Targets. Bigram LM: the explicit solution with pseudo-count {OPTIMUM_SMOOTHING:g} is "
        f"the exact training optimum, so the target is its loss + {100 * LM_TOLERANCE:g}% "
        f"(relative); the smoothed solution used elsewhere in this report "
        f"(a = {cfg.lm_smoothing:g}) gives a second target. Image pixels (one softmax layer): "
        "the plain explicit solution's loss, and the temperature-calibrated solution's loss. "
        "Hidden width: the training loss of the layer-wise explicit network "
        "(`layerwise.fit_layerwise`: class-conditioned k-means targets, both layers fitted "
        "and calibrated explicitly), reached by backprop training the same network "
        "(`layerwise.mlp_for`, softmax hidden layer) from random init. Its explicit time is "
        "the fit's own time, clustering (scikit-learn k-means on one thread, seeded per seed) "
        "and solves listed apart; its FLOPs add XLA's counts of both layers' statistics, "
        "solves, calibrations and hidden activations to a count for k-means, which runs "
        "outside XLA: restarts × the iterations scikit-learn reports for the best restart × "
        "one Lloyd iteration (2BMk + Bk + BM), an estimate.",
        f"Growth series: vocabulary (bigram LM on the first {s.tokens_per_word} × V tokens of "
        f"the text, so the data grows with V: {vocab_txt}; "
        f"{per_word_txt} fitted tokens per word; weights = V²); "
        f"data size (leading fractions {tuple(s.fractions)} of {len(dfit.y_train):,} fitted "
        f"tokens at V = {dfit.vocab_size}; plotted against the number of examples); hidden "
        f"width (H in {widths} on {image.name if image is not None else '-'}, "
        "weights = MH + HN).",
        *component_sentences(points),
        *([c] if (c := clustering_sentence(basis)) else []),
        f"Growth per series (smallest → largest size): {'; '.join(growth) or 'none measured'}.",
        f"Wall time of this experiment: {time.perf_counter() - t_start:.1f} s "
        f"(backend {jax.default_backend()}).",
    ]
    data = {
        "settings": dataclasses.asdict(s),
        "lr_grid": [float(g) for g in cfg.lr_grid],
        "optimizers": list(cfg.optimizers),
        "optimum_smoothing": OPTIMUM_SMOOTHING,
        "lm_tolerance": LM_TOLERANCE,
        "time_slack": TIME_SLACK,
        "points": points,
        "verdict_basis": basis,
        "backend": jax.default_backend(),
        "seconds": time.perf_counter() - t_start,
    }
    return ClaimResult(
        claim="C6",
        title="Computational savings and their growth with model size",
        verdict=v,
        summary=summary,
        tables=tables,
        plots=[pathlib.Path(plot).name],
        notes=notes,
        data=data,
        rule=RULE,
    )
