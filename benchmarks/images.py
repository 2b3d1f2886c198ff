"""Explicit fit on images against the read-pass floor and one-pass/iterative baselines.

What is timed (all on the same in-memory numpy arrays, aligned to 64 bytes so
the CPU device shares them without a copy; an unaligned float32 copy is timed
too, for reference):

* ``floor_numpy_sum``: ``X.sum()``, one numpy read pass (the memory floor).
* ``floor_jax_sum``: ``jnp.sum`` of the same array on the device (all cores).
* ``stats``: ``xsol.accumulate([(X, y)], N)``: the validated statistics pass.
* ``fit``: ``xsol.fit_explicit(X, y, N)``: checks, statistics pass and solve.
* ``mnb``: ``sklearn.naive_bayes.MultinomialNB(alpha=0.01).fit(X, y)``.
* ``numpy_matmul``: ``X.T @ onehot(y)`` (numpy, float32 one-hot).
* ``part_*`` (float32, where the fit's time goes): the three reads of ``X``
  inside the one-device statistics pass (:func:`xsol.stats.accumulators.dense_chunk_partials`)
  compiled alone on the same chunked view: the row sums, the minimum and the
  batched product with a precomputed ``A``.

The float32 and the uint8 candidates are timed as two interleaved groups.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import xsol
from xsol.core import inputs
from benchmarks import convergence
from benchmarks.timing import time_interleaved

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def load_fashion(quick: bool = False, seed: int = 0):
    """Fashion-MNIST as flat uint8 ``(n, 784)`` arrays via :func:`xsol.data.load_images`.

    Falls back to random uint8 images (marked in ``source``) when the dataset
    is not installed. ``quick`` takes 500 training and 200 test images.

    Returns:
      ``(X_train, y_train, X_test, y_test, source)``.
    """
    from xsol import data  # noqa: PLC0415

    try:
        d = data.load_images("fashion_mnist", FASHION_DIR if os.path.isdir(FASHION_DIR) else None,
                             flatten=True)
        Xtr, ytr, Xte, yte = d.x_train, d.y_train, d.x_test, d.y_test
        source = "fashion_mnist"
    except Exception as e:  # noqa: BLE001 - any missing-data error: fall back
        rng = np.random.default_rng(seed)
        n = 3000 if quick else 60000
        Xtr = rng.integers(0, 256, (n, 784), dtype=np.uint8)
        ytr = rng.integers(0, 10, n).astype(np.int32)
        Xte = rng.integers(0, 256, (n // 6, 784), dtype=np.uint8)
        yte = rng.integers(0, 10, n // 6).astype(np.int32)
        source = f"synthetic uint8 (fashion_mnist unavailable: {type(e).__name__})"
    if quick:
        Xtr, ytr, Xte, yte = Xtr[:500], ytr[:500], Xte[:200], yte[:200]
    return (inputs.aligned(Xtr), inputs.aligned(ytr, np.int32), inputs.aligned(Xte),
            inputs.aligned(yte, np.int32), source)


def _unaligned_copy(X: np.ndarray) -> np.ndarray:
    buf = np.empty(X.nbytes + 64, np.uint8)
    off = (-buf.ctypes.data) % 64 + X.dtype.itemsize  # aligned + one element: misaligned
    out = buf[off:off + X.nbytes].view(X.dtype).reshape(X.shape)
    out[...] = X
    return out


def _fit_parts(Xf: np.ndarray, y: np.ndarray, num_classes: int) -> dict:
    """The three reads of the one-device dense pass, each compiled alone (module docstring)."""
    from xsol.stats.accumulation import dense_pass_rows  # noqa: PLC0415

    rows = min(dense_pass_rows(*Xf.shape, Xf.dtype.itemsize), Xf.shape[0])
    full = Xf.shape[0] // rows * rows
    Xc = Xf[:full]
    shape = (full // rows, rows, Xf.shape[1])
    s = Xc.reshape(shape).sum(axis=2)
    At = np.zeros((shape[0], num_classes, rows), np.float32)
    yc = y[:full].reshape(shape[:2])
    np.put_along_axis(At, yc[:, None, :], (1 / np.where(s > 0, s, 1))[:, None, :], axis=1)
    At = inputs.aligned(At)
    row_sums = jax.jit(lambda X: X.reshape(shape).sum(axis=2))
    minimum = jax.jit(lambda X: X.reshape(shape).min(axis=2).min())
    product = jax.jit(lambda X, A: jax.lax.dot_general(
        A, X.reshape(shape), (((2,), (1,)), ((0,), (0,))), precision=jax.lax.Precision.HIGHEST))
    return {
        "part_row_sums_f32": lambda: row_sums(Xc).block_until_ready(),
        "part_minimum_f32": lambda: minimum(Xc).block_until_ready(),
        "part_product_f32": lambda: product(Xc, At).block_until_ready(),
    }


def bench_explicit_fit(Xu8: np.ndarray, y: np.ndarray, num_classes: int, *, repeats: int,
                       peak_gbps: float | None = None) -> dict:
    """Interleaved timings of the explicit fit and its references (module docstring)."""
    from sklearn.naive_bayes import MultinomialNB  # noqa: PLC0415

    Xf = inputs.aligned(Xu8, np.float32)
    Xf_un = _unaligned_copy(Xf)
    onehot = np.eye(num_classes, dtype=np.float32)[y]
    Xf_dev = jax.device_put(Xf)
    jsum = jax.jit(jnp.sum)
    N = num_classes

    def fit(X):
        return lambda: xsol.fit_explicit(X, y, N).weights

    def stats(X):
        return lambda: xsol.accumulate([(X, y)], N, progress=False).cooc

    parts = _fit_parts(Xf, y, N)

    f32 = {
        "floor_numpy_sum_f32": lambda: Xf.sum(),
        "floor_jax_sum_f32": lambda: jsum(Xf_dev),
        "stats_f32": stats(Xf),
        "fit_f32": fit(Xf),
        "fit_f32_unaligned": fit(Xf_un),
        "mnb_f32": lambda: MultinomialNB(alpha=0.01).fit(Xf, y),
        "numpy_matmul_f32": lambda: Xf.T @ onehot,
        **parts,
    }
    u8 = {
        "floor_numpy_sum_u8": lambda: Xu8.sum(),
        "stats_u8": stats(Xu8),
        "fit_u8": fit(Xu8),
        "mnb_u8": lambda: MultinomialNB(alpha=0.01).fit(Xu8, y),
    }
    # Two groups: MultinomialNB on uint8 (a mixed-type product outside BLAS)
    # leaves the process in a state that slows the float32 fit's BLAS call
    # 5x when the two are interleaved.
    t = {**time_interleaved(f32, repeats), **time_interleaved(u8, repeats)}
    med = {k: v["median_s"] for k, v in t.items()}
    nbytes = {"f32": Xf.nbytes, "u8": Xu8.nbytes}
    bandwidth = {}
    for name, m in med.items():
        kind = "u8" if name.endswith("u8") else "f32"
        if name.startswith(("floor", "stats", "fit", "part")) and "unaligned" not in name:
            gbps = nbytes[kind] / m / 1e9
            bandwidth[name] = {"gb_per_s": gbps}
            if peak_gbps:
                bandwidth[name]["fraction_of_peak"] = gbps / peak_gbps
    ratios = {
        "fit_f32_over_numpy_floor": med["fit_f32"] / med["floor_numpy_sum_f32"],
        "stats_f32_over_numpy_floor": med["stats_f32"] / med["floor_numpy_sum_f32"],
        "fit_f32_over_jax_floor": med["fit_f32"] / med["floor_jax_sum_f32"],
        "mnb_f32_over_fit_f32": med["mnb_f32"] / med["fit_f32"],
        "mnb_u8_over_fit_u8": med["mnb_u8"] / med["fit_u8"],
        "numpy_matmul_over_fit_f32": med["numpy_matmul_f32"] / med["fit_f32"],
        "fit_u8_over_numpy_floor_f32": med["fit_u8"] / med["floor_numpy_sum_f32"],
        "fit_u8_over_numpy_floor_u8": med["fit_u8"] / med["floor_numpy_sum_u8"],
        "fit_f32_unaligned_over_aligned": med["fit_f32_unaligned"] / med["fit_f32"],
        "parts_sum_over_fit_f32": sum(med[k] for k in parts) / med["fit_f32"],
    }
    # Equivalence check: the statistics are what the one-hot product gives.
    got = np.asarray(xsol.accumulate([(Xf, y)], N, progress=False, normalize="none").cooc)
    ref = Xf.T.astype(np.float64) @ onehot
    rel = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
    return {
        "shape": list(Xf.shape),
        "bytes": nbytes,
        "timed_on": "64-byte-aligned numpy arrays (shared with the CPU device without a copy); "
                    "fit_f32_unaligned: the same data misaligned by one element",
        "timings": t,
        "bandwidth": bandwidth,
        "ratios": ratios,
        "stats_vs_numpy_max_rel_error": rel,
    }


def bench_time_to_target(Xtr_u8, ytr, Xte_u8, yte, num_classes: int, fit_seconds: float, *,
                         quick: bool, adam_seconds: float, lbfgs_seconds: float) -> dict:
    """Adam and L-BFGS against the plain and the calibrated explicit solutions.

    Targets: the explicit solution's training loss (plain and calibrated) and
    its test accuracy (the same for both: calibration does not change
    predictions). Ratios are ``optimizer time / explicit time``, with the
    calibrated solution's time including :meth:`xsol.ExplicitSolution.calibrate`.
    """
    from xsol.models import linen as models  # noqa: PLC0415

    Xtr = inputs.aligned(Xtr_u8, np.float32)
    Xte = inputs.aligned(Xte_u8, np.float32)
    sol = xsol.fit_explicit(Xtr, ytr, num_classes)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        cal = sol.calibrate(Xtr, ytr)
        times.append(time.perf_counter() - t0)
    calibrate_s = float(np.median(times))
    plain = {"train_loss": sol.nll(Xtr, ytr), "test_loss": sol.nll(Xte, yte),
             "test_accuracy": sol.score(Xte, yte), "train_accuracy": sol.score(Xtr, ytr)}
    calibrated = {"train_loss": cal.nll(Xtr, ytr), "test_loss": cal.nll(Xte, yte),
                  "test_accuracy": cal.score(Xte, yte),
                  "inverse_temperature": cal.inverse_temperature}
    targets = {
        "plain_train_loss": ("train_loss", plain["train_loss"], "<="),
        "calibrated_train_loss": ("train_loss", calibrated["train_loss"], "<="),
        "test_accuracy": ("test_accuracy", plain["test_accuracy"], ">="),
    }

    model = models.SoftmaxRegression(Xtr.shape[1], num_classes)
    Xtr_d, ytr_d = jnp.asarray(Xtr), jnp.asarray(ytr)
    from xsol.train import loop as train  # noqa: PLC0415

    tr_data = train.stack_batches(Xtr_d, ytr_d, None)
    te_data = train.stack_batches(jnp.asarray(Xte), jnp.asarray(yte), None)

    def evaluate(params):
        a = train.evaluate(model, params, tr_data)
        b = train.evaluate(model, params, te_data)
        return {"train_loss": a["loss"], "test_accuracy": b["accuracy"]}

    adam = convergence.adam_time_to_targets(
        model, Xtr_d, ytr_d, evaluate, targets, primary="train_loss",
        learning_rates=(0.1,) if quick else (0.01, 0.03, 0.1, 0.3), batch_size=None,
        sweep_seconds=adam_seconds / 6, budget_seconds=adam_seconds,
        max_steps=20 if quick else 100_000, first_chunk=5 if quick else 10)

    s = Xtr.sum(1, keepdims=True)
    Xtr_l1 = Xtr / np.where(s > 0, s, 1)
    s = Xte.sum(1, keepdims=True)
    Xte_l1 = Xte / np.where(s > 0, s, 1)

    def evaluate_sk(m):
        P = np.clip(m.predict_proba(Xtr_l1)[np.arange(len(ytr)), ytr], 1e-300, None)
        return {"train_loss": float(-np.mean(np.log(P))),
                "test_accuracy": float(np.mean(m.predict(Xte_l1) == yte))}

    lbfgs = convergence.lbfgs_time_to_targets(
        Xtr_l1, ytr, evaluate_sk, targets,
        ladder=(2,) if quick else (5, 10, 20, 40, 80, 160, 320, 640),
        budget_seconds=lbfgs_seconds)

    explicit_s = {"plain": fit_seconds, "calibrated": fit_seconds + calibrate_s}
    ratios = {}
    for opt, res in (("adam", adam["best"]["reached"]), ("lbfgs", lbfgs["reached"])):
        for target, sol_kind in (("plain_train_loss", "plain"),
                                 ("calibrated_train_loss", "calibrated"),
                                 ("test_accuracy", "plain"), ("test_accuracy", "calibrated")):
            r = res.get(target)
            key = f"{opt}_{target}" + ("_vs_calibrated" if target == "test_accuracy"
                                       and sol_kind == "calibrated" else "")
            ratios[key] = None if r is None else r["seconds"] / explicit_s[sol_kind]
    return {
        "explicit": {"plain": plain, "calibrated": calibrated, "fit_seconds": fit_seconds,
                     "calibrate_seconds": calibrate_s},
        "targets": {k: {"metric": m, "threshold": v, "direction": d}
                    for k, (m, v, d) in targets.items()},
        "adam": adam,
        "lbfgs": lbfgs,
        "ratios_time_over_explicit": ratios,
    }
