"""Scoring a softmax layer in bounded memory.

A softmax layer ``z = beta * x~ W + b`` scored on ``B`` examples needs a
``B x N`` logits matrix if it is built at once: 52 GB for 6.6M tokens of text
and a 2,000-word vocabulary. Everything here holds at most one batch of
logits, ``rows x N`` with ``rows`` chosen from the memory budget
(:func:`rows_per_batch`), and adds per-batch sums into Python floats (float64)
on the host.

**Token ids with one position (K = 1).** The logits of an example are a row
of the (scaled) weights, ``z_t = beta W[x_t] + b``, so with the per-row
log-normalizer ``lse_i = logsumexp_j (beta W_ij + b_j)`` the loss is a gather:

    -log p(y_t | x_t) = lse[x_t] - beta W[x_t, y_t] - b[y_t]

``lse`` is needed only for the rows that occur, at most ``M x N`` work once,
then O(1) per example (:func:`nll_sum`).

**Everything else** (dense features, windows of K > 1 tokens): logits in
batches of ``rows`` examples, each padded to the same shape so one compiled
kernel serves every batch.

The inverse temperature (:func:`fit_inverse_temperature_batched`) is fitted
the same way: the damped Newton method of :mod:`xsol.solvers.temperature` on
the scalar ``beta``, with gradient and curvature summed over batches (or over
distinct rows, K = 1).
"""

from __future__ import annotations

import functools
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import inputs, memory
from xsol.solvers import temperature

#: Upper bound on the bytes of one batch of float32 logits (and its temporaries).
MAX_BATCH_BYTES = 256 << 20

#: Temporaries alive with a batch of logits (logits, exp, probabilities, scores).
_COPIES = 4


def rows_per_batch(num_classes: int, num_examples: int | None = None, *,
                   budget: int | None = None) -> int:
    """Examples per scoring batch: ``rows * N * 4 bytes * 4 copies`` within the budget.

    The budget is ``min(available / 8, MAX_BATCH_BYTES)`` (see
    :func:`xsol.core.memory.available_bytes`, ``XSOL_MEMORY_BUDGET``), so a batch of
    logits never takes more than an eighth of the free memory.

    Args:
      num_classes: ``N``.
      num_examples: ``B``; the result is at most ``B``.
      budget: bytes for one batch (default as above).

    Returns:
      A positive number of rows.
    """
    if budget is None:
        budget = min(memory.available_bytes() // 8, MAX_BATCH_BYTES)
    rows = max(1, int(budget) // (int(num_classes) * 4 * _COPIES))
    if num_examples is not None:
        rows = max(1, min(rows, int(num_examples)))
    return rows


def batch_spans(n: int, rows: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` spans of ``rows`` rows covering ``range(n)`` (the last one may be shorter)."""
    for lo in range(0, n, rows):
        yield lo, min(n, lo + rows)


def _pad(a: np.ndarray, rows: int, fill=0) -> np.ndarray:
    """``a`` padded along its first axis to ``rows`` with ``fill``."""
    if a.shape[0] == rows:
        return a
    out = np.full((rows,) + a.shape[1:], fill, a.dtype)
    out[: a.shape[0]] = a
    return out


def padded_slice(X, lo: int, hi: int, rows: int):
    """``X[lo:hi]`` padded to ``rows`` rows (host arrays padded on the host)."""
    part = X[lo:hi]
    if inputs.is_sparse(part):
        part = part.toarray()
    if isinstance(part, jax.Array):
        if part.shape[0] == rows:
            return part
        return jnp.concatenate([part, jnp.zeros((rows - part.shape[0],) + part.shape[1:],
                                                part.dtype)])
    return _pad(np.asarray(part), rows)


@functools.partial(jax.jit, static_argnames=("kind", "normalize"))
def _batch_logits(weights, bias, beta, X, *, kind, normalize):
    z = inputs.linear_logits(weights, jnp.zeros_like(bias), X, kind, normalize)
    return beta * z + bias


@functools.partial(jax.jit, static_argnames=("kind", "normalize"))
def _batch_sums(weights, bias, beta, X, y, count, *, kind, normalize):
    """Sum of cross-entropies and of correct predictions over the first ``count`` rows."""
    z = _batch_logits(weights, bias, beta, X, kind=kind, normalize=normalize)
    mask = jnp.arange(z.shape[0]) < count
    ce = inputs.cross_entropy(z, y)
    correct = (jnp.argmax(z, axis=-1) == y) & mask
    return jnp.sum(jnp.where(mask, ce, 0.0)), jnp.sum(correct)


@jax.jit
def _row_lse(weights, bias, beta, rows):
    """``logsumexp_j (beta W_ij + b_j)`` for the given rows."""
    return jax.nn.logsumexp(beta * weights[rows] + bias, axis=-1)


@jax.jit
def _gathered(weights, bias, beta, x, y):
    """``beta W[x_t, y_t] + b[y_t]`` per example."""
    return beta * weights[x, y] + bias[y]


def row_log_normalizers(weights, bias, rows, *, inverse_temperature: float = 1.0,
                        batch_rows: int | None = None) -> np.ndarray:
    """``lse_i = logsumexp_j (beta W_ij + b_j)`` for each ``i`` in ``rows``, float64.

    Computed in batches of ``batch_rows`` rows (default :func:`rows_per_batch`).
    """
    rows = np.asarray(rows, np.int32)
    N = int(weights.shape[1])
    step = batch_rows or rows_per_batch(N, len(rows))
    beta = jnp.float32(inverse_temperature)
    out = np.empty(len(rows), np.float64)
    for lo, hi in batch_spans(len(rows), step):
        r = _pad(rows[lo:hi], step)
        out[lo:hi] = np.asarray(_row_lse(weights, bias, beta, r))[: hi - lo]
    return out


def _gather_total(weights, bias, beta, x1: np.ndarray, y, batch_rows: int | None) -> float:
    """``sum_t (beta W[x_t, y_t] + b[y_t])`` in float64, in batches of gathers."""
    n = len(x1)
    step = batch_rows or max(1, min(n, 1 << 20))
    y = np.asarray(y, np.int32)
    total = 0.0
    for lo, hi in batch_spans(n, step):
        g = _gathered(weights, bias, beta, _pad(x1[lo:hi], step), _pad(y[lo:hi], step))
        total += float(np.sum(np.asarray(g)[: hi - lo], dtype=np.float64))
    return total


def _onehot_rows(X, kind: str) -> np.ndarray | None:
    """The row index of each example when every example is a single one-hot row (ids, K = 1)."""
    if kind != "ids" or X.shape[1] != 1:
        return None
    return np.asarray(X)[:, 0]


def nll_sum(weights, bias, X, y, *, kind: str, normalize: str = "l1",
            inverse_temperature: float = 1.0, batch_rows: int | None = None,
            with_accuracy: bool = False, rows_normalized: bool = False):
    """``sum_t -log softmax(beta x~_t W + b)[y_t]`` in float64, holding one batch of logits.

    Inputs must already be validated (:func:`xsol.solvers.explicit.prepare_inputs`):
    ids as int32 ``(B, K)``, dense features as ``(B, M)``.

    For ids with ``K = 1`` the loss is a gather from per-row log-normalizers
    (module docstring); accuracy needs every logit, so ``with_accuracy=True``
    takes the batched path.

    Args:
      weights: ``(M, N)``.
      bias: ``(N,)``.
      X: validated inputs.
      y: int32 labels ``(B,)``.
      kind: ``"ids"`` or ``"dense"``.
      normalize: ``"l1"`` or ``"none"``.
      inverse_temperature: ``beta``.
      batch_rows: examples per batch (default :func:`rows_per_batch`).
      with_accuracy: also count correct argmax predictions.
      rows_normalized: the caller knows ``lse_i = 0`` for every row (the rows
        of ``beta W + b`` are log-distributions, as for the explicit solution
        of one-hot inputs: ``sum_j (F_ij + a) / (f_i + N a) = 1``), so the
        loss is the gather alone; ids with ``K = 1`` only.

    Returns:
      The float64 sum of losses, or ``(sum, correct)`` with ``with_accuracy``.
    """
    weights, bias = jnp.asarray(weights), jnp.asarray(bias)
    n, N = int(X.shape[0]), int(weights.shape[1])
    beta = jnp.float32(inverse_temperature)
    x1 = None if with_accuracy else _onehot_rows(X, kind)
    if x1 is not None:
        if rows_normalized:
            return -_gather_total(weights, bias, beta, x1, y, batch_rows)
        counts = np.bincount(x1, minlength=int(weights.shape[0]))
        seen = np.flatnonzero(counts)
        lse = row_log_normalizers(weights, bias, seen, inverse_temperature=inverse_temperature,
                                  batch_rows=batch_rows)
        return float(np.dot(counts[seen].astype(np.float64), lse)) - _gather_total(
            weights, bias, beta, x1, y, batch_rows)
    step = batch_rows or rows_per_batch(N, n)
    total, correct = 0.0, 0
    for lo, hi in batch_spans(n, step):
        s, c = _batch_sums(weights, bias, beta, padded_slice(X, lo, hi, step),
                           padded_slice(y, lo, hi, step), hi - lo, kind=kind, normalize=normalize)
        total += float(s)
        correct += int(c)
    return (total, correct) if with_accuracy else total


@functools.partial(jax.jit, static_argnames=("kind", "normalize"))
def _batch_argmax(weights, bias, beta, X, *, kind, normalize):
    return jnp.argmax(_batch_logits(weights, bias, beta, X, kind=kind, normalize=normalize), -1)


def predict(weights, bias, X, *, kind: str, normalize: str = "l1",
            inverse_temperature: float = 1.0, batch_rows: int | None = None) -> np.ndarray:
    """``argmax_j z_tj`` per example (int64 numpy), one batch of logits at a time."""
    weights, bias = jnp.asarray(weights), jnp.asarray(bias)
    n = int(X.shape[0])
    beta = jnp.float32(inverse_temperature)
    x1 = _onehot_rows(X, kind)
    if x1 is not None and n > weights.shape[0]:
        # One argmax per distinct row, then a gather.
        seen = np.unique(x1)
        per_row = np.empty(int(weights.shape[0]), np.int64)
        step = batch_rows or rows_per_batch(int(weights.shape[1]), len(seen))
        for lo, hi in batch_spans(len(seen), step):
            r = _pad(seen[lo:hi].astype(np.int32), step)[:, None]
            per_row[seen[lo:hi]] = np.asarray(_batch_argmax(
                weights, bias, beta, r, kind=kind, normalize=normalize))[: hi - lo]
        return per_row[x1]
    step = batch_rows or rows_per_batch(int(weights.shape[1]), n)
    out = np.empty(n, np.int64)
    for lo, hi in batch_spans(n, step):
        out[lo:hi] = np.asarray(_batch_argmax(weights, bias, beta, padded_slice(X, lo, hi, step),
                                              kind=kind, normalize=normalize))[: hi - lo]
    return out


@functools.partial(jax.jit, static_argnames=("kind", "normalize", "log"))
def _batch_proba(weights, bias, beta, X, *, kind, normalize, log):
    z = _batch_logits(weights, bias, beta, X, kind=kind, normalize=normalize)
    return jax.nn.log_softmax(z, -1) if log else jax.nn.softmax(z, -1)


def predict_proba(weights, bias, X, *, kind: str, normalize: str = "l1",
                  inverse_temperature: float = 1.0, log: bool = False,
                  batch_rows: int | None = None) -> np.ndarray:
    """``softmax(z)`` (or ``log_softmax``), ``(B, N)`` float32 numpy, built batch by batch.

    The result itself is ``B x N``; it is refused before allocating
    (:class:`xsol.core.memory.MemoryBudgetError`) when it would not fit in memory.
    """
    weights, bias = jnp.asarray(weights), jnp.asarray(bias)
    n, N = int(X.shape[0]), int(weights.shape[1])
    memory.check_fits("probability matrix", (n, N), 4,
                      hint="score fewer rows at a time, or use nll/predict, which never "
                           "hold more than a batch")
    step = batch_rows or rows_per_batch(N, n)
    beta = jnp.float32(inverse_temperature)
    out = np.empty((n, N), np.float32)
    for lo, hi in batch_spans(n, step):
        out[lo:hi] = np.asarray(_batch_proba(weights, bias, beta, padded_slice(X, lo, hi, step),
                                             kind=kind, normalize=normalize, log=log))[: hi - lo]
    return out


@jax.jit
def _weighted_moments(scores, bias, beta, weight):
    """``(sum_t w_t E_p[s_t], sum_t w_t Var_p[s_t])``, from :func:`temperature.score_moments`."""
    mean_s, var_s = temperature.score_moments(scores, bias, beta)
    return jnp.sum(weight * mean_s), jnp.sum(weight * var_s)


@functools.partial(jax.jit, static_argnames=("kind", "normalize"))
def _batch_moments(weights, bias, beta, X, y, count, *, kind, normalize):
    s = _batch_logits(weights, jnp.zeros_like(bias), jnp.float32(1.0), X, kind=kind,
                      normalize=normalize)
    w = (jnp.arange(s.shape[0]) < count).astype(s.dtype)
    m, v = _weighted_moments(s, bias, beta, w)
    s_y = jnp.take_along_axis(s, y[:, None], axis=-1)[:, 0]
    return m, v, jnp.sum(w * s_y)


def fit_inverse_temperature_batched(weights, bias, X, y, *, kind: str, normalize: str = "l1",
                                    batch_rows: int | None = None,
                                    max_iter: int = temperature.MAX_NEWTON_STEPS,
                                    tol: float = temperature.STEP_TOLERANCE) -> float:
    """``argmin_{beta > 0} sum_t -log softmax(beta s_t + b)[y_t]`` with ``s_t = x~_t W``.

    The damped Newton method of :mod:`xsol.solvers.temperature`, with
    ``L'(beta) = (sum_t E_p[s_t] - s_t[y_t]) / B`` and
    ``L''(beta) = sum_t Var_p[s_t] / B`` summed over batches of examples (or,
    for ids with ``K = 1``, over the distinct rows, weighted by how often each
    occurs), so no more than one batch of logits is held. When every score
    fits in one batch they are computed once and the whole loop runs on the
    device (:func:`xsol.solvers.temperature.fit_inverse_temperature`).

    Args:
      weights: ``(M, N)``.
      bias: ``(N,)``.
      X: validated inputs (as for :func:`nll_sum`).
      y: int labels ``(B,)``.
      kind, normalize, batch_rows: as for :func:`nll_sum`.
      max_iter: the most Newton steps.
      tol: stop when a step is at most ``tol * beta``.

    Returns:
      ``beta`` (a Python float).
    """
    weights, bias = jnp.asarray(weights), jnp.asarray(bias)
    n, N = int(X.shape[0]), int(weights.shape[1])
    x1 = _onehot_rows(X, kind)
    y = np.asarray(y, np.int32)
    if x1 is not None:
        counts = np.bincount(x1, minlength=int(weights.shape[0]))
        seen = np.flatnonzero(counts).astype(np.int32)
        s_y_total = _gather_total(weights, jnp.zeros_like(bias), jnp.float32(1.0), x1, y,
                                  batch_rows)
        step = batch_rows or rows_per_batch(N, len(seen))
        groups = [(_pad(seen[lo:hi], step)[:, None], _pad(counts[seen[lo:hi]], step))
                  for lo, hi in batch_spans(len(seen), step)]

        def sums(beta):
            mean_sum = var_sum = 0.0
            for r, c in groups:
                m, v = _weighted_moments(_batch_logits(weights, jnp.zeros_like(bias),
                                                       jnp.float32(1.0), r, kind=kind,
                                                       normalize=normalize),
                                         bias, jnp.float32(beta), jnp.asarray(c, jnp.float32))
                mean_sum += float(m)
                var_sum += float(v)
            return mean_sum, var_sum, s_y_total
    else:
        step = batch_rows or rows_per_batch(N, n)
        if step >= n:  # every score fits in one batch: compute them once, Newton on device
            scores = _batch_logits(weights, jnp.zeros_like(bias), jnp.float32(1.0),
                                   padded_slice(X, 0, n, n), kind=kind, normalize=normalize)
            return temperature.fit_inverse_temperature(scores, bias, jnp.asarray(y))

        def sums(beta):
            mean_sum = var_sum = sy = 0.0
            for lo, hi in batch_spans(n, step):
                m, v, s = _batch_moments(weights, bias, jnp.float32(beta),
                                         padded_slice(X, lo, hi, step),
                                         padded_slice(y, lo, hi, step), hi - lo, kind=kind,
                                         normalize=normalize)
                mean_sum += float(m)
                var_sum += float(v)
                sy += float(s)
            return mean_sum, var_sum, sy

    def gradient_and_curvature(beta):
        mean_sum, var_sum, sy = sums(beta)
        return (mean_sum - sy) / n, var_sum / n

    return temperature.newton_on_host(gradient_and_curvature, 1.0, max_steps=max_iter, tol=tol)
