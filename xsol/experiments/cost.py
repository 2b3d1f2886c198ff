"""Computational savings of the explicit solution, and how they grow (claim C6).

For one softmax layer, the explicit solution costs one statistics pass plus an
element-wise solve (docs/math.md section 1); backpropagation costs many optimizer
steps, each a forward and backward pass over the data plus an update of every
weight. This module measures, model by model, what each method pays to reach
the same training loss:

* **Explicit cost**: the compiled statistics step that :func:`xsol.accumulate`
  runs (``F = X~^T Y`` and its sums) plus the compiled solve
  (:func:`xsol.solve.explicit_weights`), timed on device-resident data (median
  of repeats after a warm-up; compilation timed separately), and the FLOPs
  XLA's cost analysis counts in those compiled computations. The whole
  :func:`xsol.fit_explicit` call (host checks and transfers included) is timed
  too. For a calibrated target the 1-D temperature fit is added.
* **Backpropagation cost to equal training loss**: Adam from a random
  initialization (``model.init_params(seed)``), full-batch steps, run until
  the training loss first reaches a target, with a cap on steps and seconds.
  FLOPs to target = FLOPs of one compiled training step
  (:func:`xsol.train.make_train_step`) x steps. The learning rate is the
  fastest of a small stated sweep, chosen on the first seed; the other seeds
  reuse it. A target not reached within the cap gives a lower bound on the
  savings, never a ratio.

Targets. For a bigram language model (K = 1) the explicit solution is the
exact training optimum, so the target is that optimum + 1% (the solution with
a pseudo-count of 1e-8); the loss of the smoothed solution the report uses
elsewhere (``cfg.lm_smoothing``) is a second, looser target. For image pixels
(one softmax layer) the plain explicit solution's loss is poor, so there are
two targets: its loss, and the loss of the temperature-calibrated solution.

Growth axes: (a) vocabulary ``V`` of the bigram LM (``M x N = V x V``
weights); (b) data: leading fractions of the training tokens at a fixed
vocabulary; (c) hidden width ``H`` of a one-hidden-layer network
(:func:`xsol.experiments.layerwise.mlp_for`, ``M -> H -> N``): the explicit
side is the layer-wise fit of :func:`xsol.experiments.layerwise.fit_layerwise`
(class-conditioned k-means targets for the hidden layer, two explicit solves,
two calibrations), the backprop side trains the same network from random init
to the layer-wise network's training loss.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from xsol import inputs
from xsol.accumulate import make_accumulator, validate_batch
from xsol.accumulate import step as accumulate_step
from xsol.experiments import layerwise
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.summary import mean_std
from xsol.experiments.tasks import text_task
from xsol.explicit import fit_explicit
from xsol.models import SoftmaxRegression, TokenLM
from xsol.serialize import save_figure
from xsol.solve import explicit_weights
from xsol.train import create_train_state, loss_fn, make_train_step, sample_batch

#: Pseudo-count of the explicit LM solution taken as the exact training optimum.
OPTIMUM_SMOOTHING = 1e-8
#: The LM target: the optimum's training loss times ``1 + LM_TOLERANCE``.
LM_TOLERANCE = 0.01
#: Growth means the ratio at the largest size is at least this times the ratio at the smallest.
GROWTH_MARGIN = 1.1
#: Newton steps of :mod:`xsol.temperature` (used when they cannot be read off its jaxpr).
NEWTON_STEPS_FALLBACK = 50
#: Full training loss checked every this many steps when training on minibatches.
EVAL_EVERY = 10

# The library's own compiled kernels where it exposes them (so their compilations
# are shared with fit_explicit's), else compiled here.
_solve_jit = getattr(importlib.import_module("xsol.solve"), "_explicit_weights", None) \
    or jax.jit(explicit_weights)
_scores_jit = getattr(importlib.import_module("xsol.explicit"), "_linear_logits_jit", None) \
    or jax.jit(inputs.linear_logits, static_argnames=("kind", "normalize"))


@dataclasses.dataclass(frozen=True)
class CostSettings:
    """What C6 measures at one scale.

    Attributes:
      vocab_sizes: vocabulary sizes of the bigram LM (growth axis a).
      fractions: leading fractions of the training tokens (axis b), at
        ``data_vocab`` words.
      data_vocab: the vocabulary of the data axis.
      widths: hidden widths ``H`` of the layer-wise network (axis c).
      lm_learning_rates: Adam's learning-rate sweep for the LMs, tried in this
        order on the first seed; later rates stop once they cannot be faster.
      image_learning_rates: the same for the image models.
      max_steps: step cap of one Adam run.
      max_seconds: time cap of one Adam run (training steps only).
      repeats: timed repeats of each explicit fit (the median is reported).
      max_tokens: token cap of the text (None: all).
      lm_batch_size: Adam's minibatch for the LMs (None: full batch).
    """

    vocab_sizes: tuple
    fractions: tuple
    data_vocab: int
    widths: tuple
    lm_learning_rates: tuple
    image_learning_rates: tuple
    max_steps: int
    max_seconds: float
    repeats: int
    max_tokens: int | None
    lm_batch_size: int | None = None


def settings_for(cfg: ReproduceConfig) -> CostSettings:
    """The C6 settings of ``cfg.scale``; the configured learning rates are always in the sweeps."""
    lm_lr = float(getattr(cfg, "lm_learning_rate", cfg.learning_rate))
    img_lr = float(cfg.learning_rate)

    def rates(own, *extra):
        return tuple(dict.fromkeys([*extra, own]))

    if cfg.scale == "tiny":
        return CostSettings(vocab_sizes=(100, cfg.vocab_size), fractions=(0.5, 1.0),
                            data_vocab=cfg.vocab_size, widths=(10, 20),
                            lm_learning_rates=rates(lm_lr, 1.0),
                            image_learning_rates=rates(img_lr, 1.0, 3.0),
                            max_steps=300, max_seconds=1.5, repeats=5,
                            max_tokens=min(cfg.max_tokens or 10000, 10000))
    if cfg.scale == "quick":
        return CostSettings(vocab_sizes=(250, 500, 1000, 2000), fractions=(0.25, 0.5, 1.0),
                            data_vocab=cfg.vocab_size, widths=(16, 64, 256),
                            lm_learning_rates=rates(lm_lr, 1.0, 0.3, 3.0),
                            image_learning_rates=rates(img_lr, 1.0, 3.0, 0.3, 10.0, 0.1),
                            max_steps=1000, max_seconds=8.0, repeats=9,
                            max_tokens=cfg.max_tokens or 20000)
    return CostSettings(vocab_sizes=(500, 1000, 2000, 4000, 8000),
                        fractions=(0.125, 0.25, 0.5, 1.0), data_vocab=cfg.vocab_size,
                        widths=(16, 64, 256, 1024),
                        lm_learning_rates=rates(lm_lr, 1.0, 0.3, 3.0, 0.1, 0.03),
                        image_learning_rates=rates(img_lr, 1.0, 3.0, 0.3, 10.0, 0.1, 0.03),
                        max_steps=20000, max_seconds=300.0, repeats=9,
                        max_tokens=cfg.max_tokens)


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
        self._patches = []

    def __enter__(self):
        from unittest import mock

        from sklearn.cluster import KMeans, MiniBatchKMeans

        for cls in (KMeans, MiniBatchKMeans):
            original = cls.fit

            def fit(est, X, *args, _original=original, **kwargs):
                out = _original(est, X, *args, **kwargs)
                n_init = est.n_init if isinstance(est.n_init, int) else 1
                self.fits.append({"examples": int(X.shape[0]), "features": int(X.shape[1]),
                                  "clusters": int(est.n_clusters), "restarts": int(n_init),
                                  "iterations": int(getattr(est, "n_iter_", 0))})
                return out

            p = mock.patch.object(cls, "fit", fit)
            p.start()
            self._patches.append(p)
        return self

    def __exit__(self, *exc):
        for p in self._patches:
            p.stop()
        return False

    def flops(self) -> float:
        return float(sum(f["restarts"] * f["iterations"]
                         * lloyd_flops(f["examples"], f["features"], f["clusters"])
                         for f in self.fits))


def _newton_steps() -> int | None:
    """The iteration cap of :mod:`xsol.temperature`'s Newton loop, read off its jaxpr."""
    try:
        from xsol import temperature

        s = jnp.ones((2, 2), jnp.float32)
        jx = jax.make_jaxpr(temperature._newton)(s, jnp.zeros(2), jnp.zeros(2, jnp.int32),
                                                 jnp.float32(1.0))

        def walk(j):
            for e in j.eqns:
                if e.primitive.name == "while":
                    for ce in e.params["cond_jaxpr"].jaxpr.eqns:
                        if ce.primitive.name == "lt" and hasattr(ce.invars[1], "val"):
                            return int(ce.invars[1].val)
                for v in e.params.values():
                    inner = getattr(v, "jaxpr", v)
                    if hasattr(inner, "eqns"):
                        r = walk(inner)
                        if r:
                            return r
            return None

        return walk(jx.jaxpr)
    except Exception:  # noqa: BLE001
        return None


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


def explicit_cost(X, y, num_classes: int, *, kind: str, vocab_size: int | None,
                  smoothing: float, repeats: int) -> dict:
    """Time and FLOPs of the explicit fit: compiled statistics step + compiled solve.

    Args:
      X, y: training inputs and labels (ids ``(B, K)`` or dense ``(B, M)``).
      num_classes: ``N``.
      kind: ``"ids"`` or ``"dense"``.
      vocab_size: ``V`` for ids.
      smoothing: the additive smoothing of the solve.
      repeats: timed repeats after one warm-up (median reported).

    Returns:
      ``seconds`` (median, device-resident data), ``seconds_all``,
      ``fit_explicit_seconds`` (median of whole :func:`xsol.fit_explicit`
      calls), ``compile_seconds``, ``flops``, ``stats_flops``, ``solve_flops``,
      ``flops_source`` (``"xla"`` or ``"analytic"``).
    """
    c = _compiled_fit(X, y, num_classes, kind=kind, vocab_size=vocab_size)
    a = jnp.float32(smoothing)
    stats_c, solve_c, state0, Xd, yd = c["stats_c"], c["solve_c"], c["state0"], c["Xd"], c["yd"]

    def once():
        return solve_c(stats_c(state0, Xd, yd).cooc, a)

    seconds, times = _median_seconds(once, repeats)
    fit_seconds, _ = _median_seconds(
        lambda: fit_explicit(c["Xh"], c["yh"], num_classes, vocab_size=vocab_size,
                             smoothing=smoothing, kind=kind).weights, repeats)
    return {"seconds": seconds, "seconds_all": times, "fit_explicit_seconds": fit_seconds,
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
        from xsol import temperature

        s = jnp.zeros((B, N), jnp.float32)
        nf = compiled_flops(temperature._newton.lower(s, sol.bias, yd, jnp.float32(1)).compile())
    except Exception:  # noqa: BLE001
        nf = None
    iters = steps or NEWTON_STEPS_FALLBACK
    if sc is None or nf is None:
        return {"flops": 2.0 * B * M * N + iters * 12.0 * B * N, "flops_source": "analytic",
                "newton_steps": iters}
    return {"flops": sc + iters * nf, "flops_source": "xla", "newton_steps": iters}


def layerwise_cost(X, y, H: int, N: int, *, smoothing: float, seed: int, repeats: int) -> dict:
    """Time and FLOPs of :func:`layerwise.fit_layerwise` (no backpropagation).

    Time: the median of the fit's own ``seconds`` (clustering + both layers'
    fits and calibrations) over ``repeats`` calls after a first call (which
    compiles; its excess over the median is reported as compile time). FLOPs:
    XLA's counts of both layers' statistics + solve, both calibrations and
    the hidden activations, plus k-means FLOPs from the iterations scikit-learn
    reports (see :class:`_KMeansRecorder`).
    """
    with _KMeansRecorder() as rec:
        first = layerwise.fit_layerwise(X, y, H, N, seed=seed, smoothing=smoothing)
    fits = [layerwise.fit_layerwise(X, y, H, N, seed=seed, smoothing=smoothing)
            for _ in range(repeats)]
    secs = [f.seconds for f in fits]
    fit = fits[-1]
    hidden, out = fit.layers
    h = np.asarray(hidden.predict_proba(X))
    l1 = _compiled_fit(X, fit.targets, H, kind="dense", vocab_size=None)
    l2 = _compiled_fit(h, y, N, kind="dense", vocab_size=None)
    c1 = calibration_flops(hidden, X, fit.targets)
    c2 = calibration_flops(out, h, y)
    act = compiled_flops(_scores_jit.lower(hidden.weights, hidden.bias,
                                           jax.device_put(np.asarray(X, np.float32)),
                                           kind="dense", normalize="l1").compile())
    km = {"flops": rec.flops(), "fits": rec.fits}
    solves = l1["flops"] + l2["flops"] + c1["flops"] + c2["flops"] + (act or 0.0)
    sources = {l1["flops_source"], l2["flops_source"], c1["flops_source"], c2["flops_source"]}
    logits = layerwise.hand_forward(fit, X)
    loss = float(jnp.mean(inputs.cross_entropy(jnp.asarray(logits), jnp.asarray(y))))
    return {
        "seconds": float(np.median(secs)), "seconds_all": secs,
        "cluster_seconds": float(np.median([f.cluster_seconds for f in fits])),
        "solve_seconds": float(np.median([f.solve_seconds for f in fits])),
        "fit_explicit_seconds": float(np.median(secs)),
        "compile_seconds": max(0.0, first.seconds - float(np.median(secs))),
        "flops": solves + km["flops"], "solve_flops": solves, "kmeans": km,
        "flops_source": "xla + k-means count" if sources == {"xla"} else
                        "analytic + k-means count",
        "loss": loss, "fit": fit,
    }


# --------------------------------------------------------------------------- backprop side


def _make_runner(apply_fn, tx, batch_size: int | None):
    """A compiled loop of Adam steps that stops when every target is reached.

    ``run(state, hit, min_loss, last, X, y, key, targets, num_steps)`` runs at
    most ``num_steps`` steps of :func:`xsol.train.make_train_step`. Full batch:
    the loss each step computes anyway is the training loss of the parameters
    before its update, so ``hit[k]`` (the first step whose parameters reach
    ``targets[k]``) is exact at no extra cost. Minibatches: the full training
    loss is evaluated every :data:`EVAL_EVERY` steps (and that time is counted).
    """
    step_fn = make_train_step(apply_fn, tx, jit=False)

    def run(state, hit, min_loss, last, X, y, key, targets, num_steps):
        def cond(c):
            _, hit, _, last, i = c
            return (i < num_steps) & jnp.any(hit < 0) & jnp.isfinite(last)

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
            newly = (hit < 0) & (loss <= targets) & checked
            hit = jnp.where(newly, s.step, hit)
            mn = jnp.where(checked, jnp.minimum(mn, loss), mn)
            return s2, hit, mn, loss, i + 1

        s, hit, mn, last, _ = jax.lax.while_loop(
            cond, body, (state, hit, min_loss, last, jnp.int32(0)))
        return s, hit, mn, last

    return jax.jit(run, donate_argnums=0)


def _adam(learning_rate):
    # The rate lives in the optimizer state, so one compiled loop serves every rate.
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def _num_outputs(model) -> int:
    return int(getattr(model, "num_outputs", None) or model.num_classes)


_INIT_CACHE: dict = {}


def _init_fn(model):
    """``key -> TrainingState`` of ``model.init_params(key)`` and Adam, compiled once per model.

    Run eagerly, every operation of the initializers would compile on its own.
    """
    key = (repr(model), id(getattr(model, "kernel_init", None)),
           id(getattr(model, "bias_init", None)))
    if key not in _INIT_CACHE:
        _INIT_CACHE[key] = jax.jit(
            lambda k: create_train_state(model.init_params(k), _adam(0.01)))
    return _INIT_CACHE[key]


class BackpropRunner:
    """Adam from random init on one model and dataset, compiled once for every rate and seed.

    Attributes:
      step_flops: FLOPs of one compiled training step (XLA's count, or analytic).
      flops_source: ``"xla"`` or ``"analytic"``.
      compile_seconds: time to compile the training loop.
    """

    def __init__(self, model, X, y, targets, *, batch_size: int | None):
        self.model = model
        Xh = model.prepare(X)
        yh = inputs.check_labels(y, Xh.shape[0], _num_outputs(model))
        self.X, self.y = jnp.asarray(Xh), jnp.asarray(yh, jnp.int32)
        self.targets = jnp.asarray(np.asarray(targets, np.float32))
        self.batch_size = batch_size
        tx = _adam(0.01)
        self._init = _init_fn(model)
        key0 = jax.random.PRNGKey(0)
        state = jax.eval_shape(self._init, key0)
        T = len(targets)
        t0 = time.perf_counter()
        self.run_c = _make_runner(model.apply, tx, batch_size).lower(
            state, jnp.full((T,), -1, jnp.int32), jnp.float32(jnp.inf), jnp.float32(0),
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
        tx = _adam(0.01)
        state = self._init(jax.random.PRNGKey(0))
        b = self.batch_size
        xb, yb = (self.X, self.y) if b is None else (self.X[:b], self.y[:b])
        return compiled_flops(make_train_step(self.model.apply, tx).lower(state, xb, yb).compile())

    def run(self, learning_rate: float, seed: int, *, max_steps: int, max_seconds: float) -> dict:
        """One Adam run until all targets are reached or a cap is hit.

        Returns:
          ``hits`` (first step reaching each target, None if not reached),
          ``steps_run``, ``seconds`` (training steps only), ``seconds_per_step``,
          ``min_loss`` (lowest training loss seen), ``final_loss``, ``diverged``.
        """
        state = self._init(jax.random.PRNGKey(seed))
        # The rate is a leaf of the optimizer state (optax.inject_hyperparams).
        state.opt_state.hyperparams["learning_rate"] = jnp.asarray(
            learning_rate, state.opt_state.hyperparams["learning_rate"].dtype)
        T = int(self.targets.shape[0])
        hit = jnp.full((T,), -1, jnp.int32)
        mn, last = jnp.float32(jnp.inf), jnp.float32(0)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
        steps, seconds, chunk = 0, 0.0, 4
        while True:
            n = min(chunk, max_steps - steps)
            if steps > 0:  # stay within the time cap
                per = seconds / steps
                n = min(n, max(1, int((max_seconds - seconds) / max(per, 1e-9)) + 1))
            t = time.perf_counter()
            state, hit, mn, last = self.run_c(state, hit, mn, last, self.X, self.y, key,
                                              self.targets, jnp.int32(n))
            jax.block_until_ready(hit)
            seconds += time.perf_counter() - t
            steps = int(state.step)
            done = bool(np.all(np.asarray(hit) >= 0))
            if done or steps >= max_steps or seconds >= max_seconds or not np.isfinite(float(last)):
                break
            chunk = min(chunk * 2, 1024)
        hits = [int(h) if h >= 0 else None for h in np.asarray(hit)]
        return {"learning_rate": float(learning_rate), "seed": int(seed), "hits": hits,
                "steps_run": steps, "seconds": seconds,
                "seconds_per_step": seconds / max(steps, 1),
                "min_loss": float(mn), "final_loss": float(last),
                "diverged": not np.isfinite(float(last))}


def _sweep_key(run: dict):
    """Sort key of a sweep run: more targets reached, then fewer steps to the last of them."""
    reached = [h for h in run["hits"] if h is not None]
    if not reached:
        return (0, math.inf, run["min_loss"])
    return (-len(reached), max(reached), run["min_loss"])


def backprop_cost(runner: BackpropRunner, seeds, learning_rates, settings: CostSettings) -> dict:
    """Adam's runs: a learning-rate sweep on the first seed, then the other seeds at the best rate.

    A later rate of the sweep is capped at the best run's step count once that
    run reached every target (a slower run cannot win).
    """
    sweep, best = [], None
    for lr in learning_rates:
        cap = settings.max_steps
        if best is not None and all(h is not None for h in best["hits"]):
            cap = min(cap, max(best["hits"]) + 1)
        r = runner.run(lr, seeds[0], max_steps=cap, max_seconds=settings.max_seconds)
        r["capped_at"] = cap
        sweep.append(r)
        if best is None or _sweep_key(r) < _sweep_key(best):
            best = r
    runs = [best] + [runner.run(best["learning_rate"], s, max_steps=settings.max_steps,
                                max_seconds=settings.max_seconds) for s in seeds[1:]]
    return {"sweep": sweep, "learning_rates": [float(x) for x in learning_rates],
            "best_learning_rate": best["learning_rate"],
            "best_at_edge": best["learning_rate"] in (max(learning_rates), min(learning_rates)),
            "runs": runs, "step_flops": runner.step_flops,
            "step_flops_source": runner.flops_source, "compile_seconds": runner.compile_seconds,
            "max_steps": settings.max_steps, "max_seconds": settings.max_seconds}


def _censored_median(values, censored):
    """Median of values some of which are lower bounds; returns ``(median, is_lower_bound)``."""
    order = sorted(zip(values, censored), key=lambda vc: (vc[1], vc[0]))
    n = len(order)
    mid = [order[(n - 1) // 2], order[n // 2]]
    return float(np.mean([v for v, _ in mid])), any(c for _, c in mid)


def summarize_target(k: int, bp: dict, explicit_seconds: float, explicit_flops: float) -> dict:
    """Steps, time and FLOPs of backprop to target ``k`` (medians over seeds), and the ratios.

    A seed that did not reach the target contributes the cost it spent, as a
    lower bound; when such a seed decides the median, the ratio is a lower bound.
    """
    steps, secs, flops, cens, reached = [], [], [], [], []
    for r in bp["runs"]:
        h = r["hits"][k]
        n = r["steps_run"] if h is None else h
        steps.append(n)
        cens.append(h is None)
        if h is not None:
            reached.append(h)
        secs.append(n * r["seconds_per_step"])
        flops.append(n * bp["step_flops"])
    t_med, t_cens = _censored_median(secs, cens)
    f_med, f_cens = _censored_median(flops, cens)
    return {
        "reached": len(reached), "runs": len(cens),
        "steps": mean_std(reached) if reached else None,
        "steps_per_run": steps, "censored_per_run": cens,
        "backprop_seconds": t_med, "backprop_flops": f_med,
        "lower_bound": bool(t_cens or f_cens),
        "time_ratio": t_med / explicit_seconds if explicit_seconds > 0 else math.inf,
        "flops_ratio": f_med / explicit_flops if explicit_flops > 0 else math.inf,
        "max_steps_run": int(max(r["steps_run"] for r in bp["runs"])),
    }


def _finish(point: dict, runner: BackpropRunner, cfg: ReproduceConfig, lrs,
            settings: CostSettings) -> dict:
    bp = backprop_cost(runner, tuple(cfg.seeds), lrs, settings)
    for k, t in enumerate(point["targets"]):
        t.update(summarize_target(k, bp, t["explicit_seconds"], t["explicit_flops"]))
    point["backprop"] = bp
    return point


# --------------------------------------------------------------------------- points


def lm_point(X, y, V: int, cfg: ReproduceConfig, settings: CostSettings, *, axis: str,
             label: str) -> dict:
    """One bigram LM: explicit cost, the two targets, Adam to the targets."""
    exp = explicit_cost(X, y, V, kind="ids", vocab_size=V, smoothing=OPTIMUM_SMOOTHING,
                        repeats=settings.repeats)
    opt = fit_explicit(X, y, V, vocab_size=V, smoothing=OPTIMUM_SMOOTHING).nll(X, y)
    smoothed = fit_explicit(X, y, V, vocab_size=V, smoothing=cfg.lm_smoothing).nll(X, y)
    targets = [
        {"name": f"optimum +{100 * LM_TOLERANCE:g}%", "loss": opt * (1 + LM_TOLERANCE),
         "explicit_seconds": exp["seconds"], "explicit_flops": exp["flops"]},
        {"name": f"smoothed explicit (a={cfg.lm_smoothing:g})", "loss": smoothed,
         "explicit_seconds": exp["seconds"], "explicit_flops": exp["flops"]},
    ]
    point = {"axis": axis, "label": label, "model": f"bigram LM, V={V}", "M": V, "N": V,
             "weights": V * V, "examples": int(len(y)), "explicit": exp,
             "optimum_loss": opt, "smoothed_loss": smoothed, "targets": targets}
    runner = BackpropRunner(TokenLM(vocab_size=V, window=1), X, y,
                            [t["loss"] for t in targets], batch_size=settings.lm_batch_size)
    return _finish(point, runner, cfg, settings.lm_learning_rates, settings)


def pixel_point(task, cfg: ReproduceConfig, settings: CostSettings) -> dict:
    """One softmax layer on the image pixels: plain and calibrated explicit targets."""
    X, y, N = task.X_train, task.y_train, task.num_classes
    a = cfg.image_smoothing
    exp = explicit_cost(X, y, N, kind="dense", vocab_size=None, smoothing=a,
                        repeats=settings.repeats)
    sol = fit_explicit(X, y, N, smoothing=a, kind="dense")
    cal_seconds, _ = _median_seconds(lambda: jnp.float32(sol.calibrate(X, y).inverse_temperature),
                                     settings.repeats)
    cal = dict(calibration_flops(sol, X, y), seconds=cal_seconds)
    csol = sol.calibrate(X, y)
    targets = [
        {"name": "plain explicit", "loss": sol.nll(X, y), "explicit_seconds": exp["seconds"],
         "explicit_flops": exp["flops"]},
        {"name": "calibrated explicit", "loss": csol.nll(X, y),
         "explicit_seconds": exp["seconds"] + cal["seconds"],
         "explicit_flops": exp["flops"] + cal["flops"]},
    ]
    M = task.num_features
    point = {"axis": "single layer (pixels)", "label": f"{task.name} pixels",
             "model": f"softmax layer {M}→{N}", "M": M, "N": N, "weights": M * N,
             "examples": int(len(y)), "explicit": exp, "calibration": cal,
             "inverse_temperature": csol.inverse_temperature, "targets": targets}
    runner = BackpropRunner(SoftmaxRegression(num_features=M, num_classes=N), X, y,
                            [t["loss"] for t in targets], batch_size=cfg.batch_size)
    return _finish(point, runner, cfg, settings.image_learning_rates, settings)


def width_point(task, H: int, cfg: ReproduceConfig, settings: CostSettings) -> dict:
    """One network ``M -> H -> N``: the layer-wise explicit fit vs Adam to its training loss."""
    X, y, N, M = task.X_train, task.y_train, task.num_classes, task.num_features
    lw = layerwise_cost(X, y, H, N, smoothing=cfg.image_smoothing, seed=int(cfg.seeds[0]),
                        repeats=max(2, settings.repeats // 3))
    lw.pop("fit")
    targets = [{"name": "layer-wise explicit network", "loss": lw["loss"],
                "explicit_seconds": lw["seconds"], "explicit_flops": lw["flops"]}]
    point = {"axis": "hidden width", "label": f"H={H}", "model": f"MLP {M}→{H}→{N}",
             "M": M, "H": H, "N": N, "weights": M * H + H * N, "examples": int(len(y)),
             "explicit": lw, "targets": targets}
    runner = BackpropRunner(layerwise.mlp_for(task, H), X, y, [lw["loss"]],
                            batch_size=cfg.batch_size)
    return _finish(point, runner, cfg, settings.image_learning_rates, settings)


# --------------------------------------------------------------------------- verdict


def _xkey(axis: str) -> str:
    return "examples" if axis == "data size" else "weights"


def _series(points):
    """``{(axis, target name): [(point, target index)] sorted by size}``."""
    out = {}
    for p in points:
        for k, t in enumerate(p["targets"]):
            out.setdefault((p["axis"], t["name"]), []).append((p, k))
    for (axis, _), lst in out.items():
        lst.sort(key=lambda pk: pk[0][_xkey(axis)])
    return out


def _grows(first: dict, last: dict, metric: str) -> bool:
    # A lower bound at the largest size only strengthens growth; at the smallest it hides it.
    if first["lower_bound"]:
        return False
    return last[metric] >= GROWTH_MARGIN * first[metric]


def verdict(points) -> tuple[str, dict]:
    """The C6 verdict and what it rests on (the rule is stated in :func:`run`'s notes)."""
    cheaper = all(t["time_ratio"] > 1 and t["flops_ratio"] > 1
                  for p in points for t in p["targets"])
    not_cheaper = [f"{p['label']} / {t['name']}" for p in points for t in p["targets"]
                   if not (t["time_ratio"] > 1 and t["flops_ratio"] > 1)]
    growth = {}
    for (axis, name), lst in _series(points).items():
        if len(lst) < 2:
            continue
        first = lst[0][0]["targets"][lst[0][1]]
        last = lst[-1][0]["targets"][lst[-1][1]]
        growth[f"{axis} / {name}"] = {
            "time": _grows(first, last, "time_ratio"),
            "flops": _grows(first, last, "flops_ratio"),
            "first": {k: first[k] for k in ("time_ratio", "flops_ratio", "lower_bound")},
            "last": {k: last[k] for k in ("time_ratio", "flops_ratio", "lower_bound")},
        }
    grows = bool(growth) and all(g["time"] and g["flops"] for g in growth.values())
    if cheaper and grows:
        v = "holds"
    elif cheaper or grows:
        v = "partly"
    else:
        v = "does not hold"
    return v, {"cheaper_everywhere": cheaper, "not_cheaper": not_cheaper,
               "grows_everywhere": grows, "growth": growth}


# --------------------------------------------------------------------------- plot, tables


def plot_savings(points, path) -> str:
    """Savings ratios per growth axis (time solid, FLOPs dashed, log-y); triangles: lower bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes_names = list(dict.fromkeys(p["axis"] for p in points))
    fig, axs = plt.subplots(1, len(axes_names), figsize=(4.6 * len(axes_names), 3.9),
                            squeeze=False)
    series = _series(points)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, axis in zip(axs[0], axes_names):
        names = [n for (a, n) in series if a == axis]
        for ci, name in enumerate(names):
            lst = series[(axis, name)]
            x = [p[_xkey(axis)] for p, _ in lst]
            c = colors[ci % len(colors)]
            for metric, style, tag in (("time_ratio", "-", "time"), ("flops_ratio", "--", "FLOPs")):
                yv = [p["targets"][k][metric] for p, k in lst]
                lb = [p["targets"][k]["lower_bound"] for p, k in lst]
                ax.plot(x, yv, style, color=c, label=f"{tag}: {name}")
                exact = [(a, v) for a, v, b in zip(x, yv, lb) if not b]
                bound = [(a, v) for a, v, b in zip(x, yv, lb) if b]
                if exact:
                    ax.scatter(*zip(*exact), color=c, s=18)
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
    fig.suptitle("C6: savings of the explicit fit to equal training loss "
                 "(above 1: explicit cheaper; open triangles: lower bounds)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def _tables(points) -> list:
    explicit_rows, target_rows = [], []
    for p in points:
        e, bp = p["explicit"], p["backprop"]
        explicit_rows.append({
            "axis": p["axis"], "model": p["model"], "weights": p["weights"],
            "examples": p["examples"], "explicit_ms": 1e3 * e["seconds"],
            "fit_ms": 1e3 * e["fit_explicit_seconds"], "compile_s": e["compile_seconds"],
            "explicit_mflops": e["flops"] / 1e6, "flops_source": e["flops_source"],
            "adam_compile_s": bp["compile_seconds"],
            "adam_step_mflops": bp["step_flops"] / 1e6,
            "adam_ms_per_step": 1e3 * float(np.median([r["seconds_per_step"] for r in bp["runs"]])),
            "lr": bp["best_learning_rate"],
        })
        for t in p["targets"]:
            st = t["steps"]
            target_rows.append({
                "axis": p["axis"], "model": p["model"], "weights": p["weights"],
                "target": t["name"], "target_loss": t["loss"],
                "reached": f"{t['reached']}/{t['runs']}",
                "steps": (f"{st['mean']:.0f} ± {st['std']:.0f}" if st
                          else f"> {t['max_steps_run']}"),
                "steps_mean": st["mean"] if st else None, "steps_std": st["std"] if st else None,
                "backprop_ms": 1e3 * t["backprop_seconds"],
                "explicit_ms": 1e3 * t["explicit_seconds"],
                "backprop_mflops": t["backprop_flops"] / 1e6,
                "explicit_mflops": t["explicit_flops"] / 1e6,
                "time_ratio": t["time_ratio"], "flops_ratio": t["flops_ratio"],
                "bound": "≥ (not reached: lower bound)" if t["lower_bound"] else "",
            })
    t1 = Table(
        "C6 explicit cost per model (median of repeats, compile time excluded and listed) "
        "and Adam's cost per step",
        [("axis", "axis", None), ("model", "model", None), ("weights", "weights", "{:,}"),
         ("examples", "examples", "{:,}"), ("explicit_ms", "explicit ms", "{:.3f}"),
         ("fit_ms", "whole fit ms", "{:.2f}"), ("compile_s", "explicit compile s", "{:.2f}"),
         ("explicit_mflops", "explicit MFLOPs", "{:.3g}"), ("flops_source", "FLOPs from", None),
         ("adam_step_mflops", "Adam MFLOPs/step", "{:.3g}"),
         ("adam_ms_per_step", "Adam ms/step", "{:.3f}"),
         ("adam_compile_s", "Adam compile s", "{:.2f}"), ("lr", "Adam lr (best)", "{:g}")],
        explicit_rows)
    t2 = Table(
        "C6 Adam from random init to the target training loss vs the explicit fit: steps "
        "mean ± std over the seeds that reached it; time and FLOPs are medians over seeds; "
        "ratio = backprop / explicit (above 1: explicit cheaper)",
        [("axis", "axis", None), ("model", "model", None), ("target", "target", None),
         ("target_loss", "target loss", "{:.4f}"), ("reached", "reached", None),
         ("steps", "steps", None), ("backprop_ms", "backprop ms", "{:.1f}"),
         ("explicit_ms", "explicit ms", "{:.3f}"), ("backprop_mflops", "backprop MFLOPs", "{:.3g}"),
         ("explicit_mflops", "explicit MFLOPs", "{:.3g}"),
         ("time_ratio", "time ×", "{:.3g}"), ("flops_ratio", "FLOPs ×", "{:.3g}"),
         ("bound", "", None)],
        target_rows)
    return [t1, t2]


# --------------------------------------------------------------------------- run


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
        task = text_task(cfg.text_source, vocab_size=V, window=1, max_tokens=s.max_tokens)
        if task.vocab_size not in seen:  # a text with fewer words caps V
            seen.add(task.vocab_size)
            texts.append(task)
    dtask = text_task(cfg.text_source, vocab_size=s.data_vocab, window=1, max_tokens=s.max_tokens)
    image = tasks.image(cfg.image_datasets[0]) if cfg.image_datasets else None
    plan = [("vocabulary", t, 1.0) for t in texts]
    plan += [("data size", dtask, f) for f in s.fractions]
    if image is not None:
        plan.append(("single layer (pixels)", image, None))
        plan += [("hidden width", image, H) for H in s.widths if H >= image.num_classes]

    points, cache = [], {}
    bar = tqdm(plan, disable=not progress, desc="C6 cost", leave=False)
    for axis, task, arg in bar:
        t_point = time.perf_counter()
        if axis == "single layer (pixels)":
            bar.set_postfix_str("pixels")
            points.append(dict(pixel_point(task, cfg, s),
                               wall_seconds=time.perf_counter() - t_point))
            continue
        if axis == "hidden width":
            bar.set_postfix_str(f"H={arg}")
            points.append(dict(width_point(task, int(arg), cfg, s),
                               wall_seconds=time.perf_counter() - t_point))
            continue
        n = len(task.y_train)
        if axis == "data size":
            n = max(2, int(round(arg * n)))
        label = (f"V={task.vocab_size}" if axis == "vocabulary"
                 else f"{arg:g} of the tokens, V={task.vocab_size}")
        bar.set_postfix_str(label)
        key = (task.vocab_size, n)
        if key not in cache:
            cache[key] = lm_point(task.X_train[:n], task.y_train[:n], task.vocab_size, cfg, s,
                                  axis=axis, label=label)
            cache[key]["wall_seconds"] = time.perf_counter() - t_point
        points.append(dict(cache[key], axis=axis, label=label))
    bar.close()

    v, basis = verdict(points)
    plot = plot_savings(points, out_dir / "c6_savings.png")
    tables = _tables(points)

    ratios = [t["time_ratio"] for p in points for t in p["targets"]]
    fratios = [t["flops_ratio"] for p in points for t in p["targets"]]
    n_lb = sum(t["lower_bound"] for p in points for t in p["targets"])
    grow_txt = "; ".join(
        f"{k}: time ×{g['first']['time_ratio']:.3g} → ×{g['last']['time_ratio']:.3g}"
        f"{' (lower bound)' if g['last']['lower_bound'] else ''}, FLOPs "
        f"×{g['first']['flops_ratio']:.3g} → ×{g['last']['flops_ratio']:.3g} "
        f"({'grows' if g['time'] and g['flops'] else 'does not grow'})"
        for k, g in basis["growth"].items())
    summary = (
        f"backprop/explicit time ×{min(ratios):.3g}–{max(ratios):.3g}, FLOPs "
        f"×{min(fratios):.3g}–{max(fratios):.3g} over {len(points)} models"
        + (f" ({n_lb} of {len(ratios)} targets not reached within the cap: lower bounds)"
           if n_lb else "")
        + f"; explicit cheaper everywhere: {'yes' if basis['cheaper_everywhere'] else 'no'}"
        + (f" (not: {', '.join(basis['not_cheaper'])})" if basis["not_cheaper"] else "")
        + f"; savings grow with size on every axis: "
        f"{'yes' if basis['grows_everywhere'] else 'no'}")
    edge = [p["label"] for p in points if p["backprop"]["best_at_edge"]]
    batch_txt = ("full-batch steps" if s.lm_batch_size is None
                 else f"minibatches of {s.lm_batch_size}")
    img_batch = ("full-batch steps" if cfg.batch_size is None
                 else f"minibatches of {cfg.batch_size}")
    notes = [
        "Explicit cost: the compiled statistics step that `xsol.accumulate` runs, plus the "
        "compiled solve (`xsol.solve.explicit_weights`), on device-resident data, median of "
        f"{s.repeats} repeats after a warm-up; compile time is listed separately; 'whole fit' "
        "is the median of whole `fit_explicit` calls (host checks and transfers included). "
        "FLOPs are what XLA's cost analysis (`jit(f).lower(...).compile().cost_analysis()`) "
        "reports for those computations (an analytic count where it reports none; the table "
        "says which). For a calibrated target the temperature fit's time and FLOPs are added "
        "(Newton loop FLOPs: XLA's per-iteration count × the loop's iteration cap, an upper "
        "bound).",
        f"Backprop cost: Adam from a random initialization (Lecun normal), {batch_txt} for the "
        f"LMs and {img_batch} for the image models, until the training loss first reaches "
        f"the target (full batch: the loss every step computes is the training loss, so the "
        f"first step reaching the target is exact); cap {s.max_steps} steps and "
        f"{s.max_seconds:g} s of training per run. Learning rate: the fastest of "
        f"{tuple(s.lm_learning_rates)} (LMs) or {tuple(s.image_learning_rates)} (images), "
        f"chosen on seed {cfg.seeds[0]} (a later rate is stopped once it cannot be faster); "
        f"seeds {tuple(cfg.seeds)} then reuse it (they change the initialization). Time to "
        "target = steps × measured seconds per step (compile time excluded, as on the explicit "
        "side); FLOPs = XLA's FLOPs of one compiled training step "
        "(`xsol.train.make_train_step`, as compiled inside the training loop) × steps. "
        "Only the best "
        "rate's cost is charged to backprop, not the sweep's."
        + (f" The best rate was at an end of the sweep for: {'; '.join(edge)} (a faster "
           "rate may lie beyond it)." if edge else " The best rate was inside the sweep "
           "for every model."),
        f"Targets. Bigram LM: the explicit solution with pseudo-count {OPTIMUM_SMOOTHING:g} is "
        f"the exact training optimum, so the target is its loss + {100 * LM_TOLERANCE:g}% "
        f"(relative); the smoothed solution used elsewhere in this report "
        f"(a = {cfg.lm_smoothing:g}) gives a second target. Image pixels (one softmax layer): "
        "the plain explicit solution's loss, and the temperature-calibrated solution's loss. "
        "Hidden width: the training loss of the layer-wise explicit network "
        "(`layerwise.fit_layerwise`: class-conditioned k-means targets, both layers fitted "
        "and calibrated explicitly), reached by Adam training the same network "
        "(`layerwise.mlp_for`, softmax hidden layer) from random init. Its explicit time is "
        "the fit's own time (k-means included); its FLOPs add XLA's counts of both layers' "
        "statistics, solves, calibrations and hidden activations to a count for k-means, "
        "which runs in scikit-learn outside XLA: restarts × the iterations scikit-learn "
        "reports for the best restart × one Lloyd iteration (2BMk + Bk + BM), an estimate.",
        f"Growth axes: vocabulary (bigram LM over the first {s.max_tokens or 'all'} tokens of "
        f"the text, V in {tuple(t.vocab_size for t in texts)}, weights = V²); data size "
        f"(leading fractions {tuple(s.fractions)} of those training tokens at "
        f"V = {dtask.vocab_size}; plotted against the number of examples); hidden width "
        f"(H in {tuple(H for H in s.widths if image is None or H >= image.num_classes)} on "
        f"{image.name if image is not None else '-'}, weights = MH + HN).",
        "Verdict rule: *holds* if the explicit fit is cheaper (time and FLOPs ratios > 1) for "
        "every model and target AND, on every axis and target, both ratios at the largest "
        f"size are at least {GROWTH_MARGIN:g}× those at the smallest (a lower bound at the "
        "smallest size cannot show growth; one at the largest can); *partly* if only one of "
        "the two holds; *does not hold* otherwise. A target not reached within the cap gives "
        "a lower bound on the ratio (marked), never a ratio.",
        f"Growth per series (smallest → largest): {grow_txt}.",
        f"Wall time of this experiment: {time.perf_counter() - t_start:.1f} s "
        f"(backend {jax.default_backend()}).",
    ]
    data = {
        "settings": dataclasses.asdict(s),
        "optimum_smoothing": OPTIMUM_SMOOTHING,
        "lm_tolerance": LM_TOLERANCE,
        "growth_margin": GROWTH_MARGIN,
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
    )
