"""Token counting and language-model benchmarks.

* Counting: exact bigram / K-token-window counts with xsol against
  ``numpy.bincount`` on the same pairs, in tokens per second.
* Time to equal training loss: the explicit LM's fit time against Adam (from
  zero weights) reaching the explicit solution's training loss.

Synthetic data:

* :func:`zipf_tokens`: i.i.d. ids with ``P(id = r) ~ 1 / (r + 1)`` (a Zipfian
  unigram, as word frequencies are); used for counting speed.
* :func:`zipf_markov_tokens`: ``x_{t+1} = (x_t + z_t) mod V`` with Zipfian
  ``z_t``: every previous token has its own (shifted Zipfian) next-token
  distribution, so a bigram model has something to learn; used for Adam.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import xsol
from xsol.core import inputs
from benchmarks import convergence
from benchmarks.timing import time_interleaved


def _zipf_cdf(V: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, V + 1, dtype=np.float64) ** exponent
    return np.cumsum(p) / p.sum()


def zipf_tokens(n: int, vocab_size: int, seed: int = 0, exponent: float = 1.0) -> np.ndarray:
    """``n`` i.i.d. Zipfian ids in ``[0, V)`` (id 0 the most frequent), int32, aligned."""
    rng = np.random.default_rng(seed)
    cdf = _zipf_cdf(vocab_size, exponent)
    out = inputs.aligned_empty((n,), np.int32)
    step = 1 << 20  # in chunks, so generating data does not set the peak memory
    for i in range(0, n, step):
        ids = np.searchsorted(cdf, rng.random(min(step, n - i)), side="right")
        np.minimum(ids, vocab_size - 1, out=ids)
        out[i:i + len(ids)] = ids
    return out


def zipf_markov_tokens(n: int, vocab_size: int, seed: int = 0,
                       exponent: float = 1.1) -> np.ndarray:
    """``x_{t+1} = (x_t + z_t) mod V`` with i.i.d. Zipfian steps ``z_t``; int32, aligned."""
    out = inputs.aligned_empty((n,), np.int32)
    carry = 0
    step = 1 << 20
    steps = zipf_tokens(n, vocab_size, seed, exponent)
    for i in range(0, n, step):
        c = np.cumsum(steps[i:i + step], dtype=np.int64) + carry
        out[i:i + len(c)] = c % vocab_size
        carry = int(c[-1]) % vocab_size
    return out


def windows(ids: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: ``X[t] = ids[t:t+K]`` (contiguous, aligned int32), ``y[t] = ids[t+K]``."""
    X = np.lib.stride_tricks.sliding_window_view(ids[:-1], K)
    return inputs.aligned(X, np.int32), inputs.aligned(ids[K:], np.int32)


def real_text_ids(vocab_size: int = 2000) -> tuple[np.ndarray, str] | tuple[None, str]:
    """Word ids of xsol's embedded text (Python's documentation topics), if available."""
    try:
        from xsol import data  # noqa: PLC0415

        ids, vocab = data.tokenize(data.embedded_text(), vocab_size=vocab_size)
        return inputs.aligned(np.asarray(ids), np.int32), f"embedded text, {len(vocab)} ids"
    except Exception as e:  # noqa: BLE001
        return None, f"unavailable ({type(e).__name__}: {e})"


def bench_counting(X: np.ndarray, y: np.ndarray, V: int, *, repeats: int, label: str) -> dict:
    """Exact counts of ``(window, next)`` pairs: xsol vs ``numpy.bincount``.

    Candidates (interleaved):
      ``xsol_accumulate``: ``xsol.accumulate([(X, y)], V, vocab_size=V)``,
        validated (host range checks) and counted on the device.
      ``xsol_update_resident``: the compiled accumulator update alone on
        device-resident arrays.
      ``numpy_bincount``: flat keys ``(k V + X[:, k]) V + y`` built in numpy
        (int64) and ``np.bincount(keys, minlength=K V V)``.
      ``numpy_bincount_keys_prebuilt``: the ``bincount`` alone.
    """
    B, K = X.shape
    acc = xsol.stats.token_cooccurrence(V, V, K)
    Xd, yd = jax.device_put(X), jax.device_put(y)
    offs = (np.arange(K, dtype=np.int64) * V)[None, :]

    def np_keys():
        return ((X + offs) * V + y[:, None].astype(np.int64)).reshape(-1)

    keys = np_keys()
    fns = {
        "xsol_accumulate": lambda: xsol.accumulate([(X, y)], V, vocab_size=V,
                                                   progress=False).cooc,
        "xsol_update_resident": lambda: acc.update(acc.init(), Xd, yd).cooc,
        "numpy_bincount": lambda: np.bincount(np_keys(), minlength=K * V * V),
        "numpy_bincount_keys_prebuilt": lambda: np.bincount(keys, minlength=K * V * V),
    }
    t = time_interleaved(fns, repeats)
    got = np.asarray(xsol.accumulate([(X, y)], V, vocab_size=V, progress=False).cooc)
    exact = bool(np.array_equal(got.reshape(-1), np.bincount(keys, minlength=K * V * V)))
    med = {k: v["median_s"] for k, v in t.items()}
    return {
        "data": label,
        "examples": int(B),
        "window": int(K),
        "vocab_size": int(V),
        "timings": t,
        "tokens_per_s": {k: B / m for k, m in med.items()},
        "updates_per_s": {k: B * K / m for k, m in med.items()},
        "ratios": {
            "numpy_bincount_over_xsol_accumulate": med["numpy_bincount"] / med["xsol_accumulate"],
            "numpy_bincount_over_xsol_update": med["numpy_bincount"] / med["xsol_update_resident"],
            "numpy_bincount_prebuilt_over_xsol_update":
                med["numpy_bincount_keys_prebuilt"] / med["xsol_update_resident"],
        },
        "counts_identical_to_bincount": exact,
    }


def bench_lm_adam(ids: np.ndarray, V: int, K: int, *, repeats: int, label: str,
                  adam_seconds: float, quick: bool, batch_size: int = 4096,
                  learning_rates=(0.03, 0.1, 0.3, 1.0)) -> dict:
    """Explicit LM fit time vs Adam's time to the explicit solution's training loss.

    The explicit solution is :func:`xsol.fit_explicit` with its default
    smoothing; targets are its training loss ``L`` and, for context,
    ``1.01 L`` and ``1.05 L``. Adam trains :class:`xsol.models.linen.TokenLM` from
    zero weights on minibatches of ``batch_size`` (drawn with replacement).
    """
    from xsol.models import linen as models
    from xsol.train import loop as train  # noqa: PLC0415

    X, y = windows(ids, K)
    t = time_interleaved({"fit_explicit": lambda: xsol.fit_explicit(
        X, y, V, vocab_size=V).weights}, repeats)
    fit_s = t["fit_explicit"]["median_s"]
    sol = xsol.fit_explicit(X, y, V, vocab_size=V)
    loss = sol.nll(X, y)
    targets = {
        "explicit_train_loss": ("train_loss", loss, "<="),
        "within_1pct": ("train_loss", loss * 1.01, "<="),
        "within_5pct": ("train_loss", loss * 1.05, "<="),
    }
    model = models.TokenLM(V, window=K)
    Xd, yd = jnp.asarray(X), jnp.asarray(y)
    data = train.stack_batches(Xd, yd, 8192)

    def evaluate(params):
        return {"train_loss": train.evaluate(model, params, data)["loss"]}

    adam = convergence.adam_time_to_targets(
        model, Xd, yd, evaluate, targets, primary="train_loss",
        learning_rates=learning_rates[-2:-1] if quick else learning_rates,
        batch_size=min(batch_size, X.shape[0]),
        sweep_seconds=adam_seconds / 8, budget_seconds=adam_seconds,
        max_steps=20 if quick else 1_000_000, first_chunk=10 if quick else 50, growth=1.5)
    reached = adam["best"]["reached"]
    ratios = {k: (None if r is None else r["seconds"] / fit_s) for k, r in reached.items()}
    best = adam["best"]
    return {
        "data": label,
        "examples": int(X.shape[0]),
        "window": int(K),
        "vocab_size": int(V),
        "explicit": {"fit_seconds": fit_s, "fit_timing": t["fit_explicit"],
                     "train_loss": loss, "smoothing": sol.smoothing},
        "adam": adam,
        "ratios_adam_time_over_explicit": ratios,
        "lower_bound_ratio_if_not_reached": best["train_seconds"] / fit_s,
        "adam_final_train_loss": best["final"]["train_loss"] if best["final"] else None,
    }


def tile_to(ids: np.ndarray, n: int) -> np.ndarray:
    """``ids`` repeated to length ``n`` (aligned int32)."""
    reps = -(-n // len(ids))
    return inputs.aligned(np.tile(ids, reps)[:n], np.int32)


def time_once(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0
