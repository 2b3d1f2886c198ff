"""Explicit language models on token corpora of any length, in bounded memory.

:func:`fit_token_lm` takes a token-id file (the flat ``uint16``/``uint32``
layout GPT-style data pipelines write, or a ``.npy``) or an array, and in one
streamed pass over its training part counts every ``(window, next token)``
pair, solves the explicit weights

    W_ij = log(F_ij + a) - log(f_i + N a)

(the smoothed maximum-likelihood bigram model for ``K = 1``; Williams & Zhao,
2023, arXiv:2311.07498, for ``K > 1``), and scores a contiguous held-out tail
in a second streamed pass. Memory holds one chunk of windows plus the
statistics: the dense ``M x N`` counts and weights when they fit
(:mod:`xsol.lm.backend`), otherwise the sparse distinct pairs
(:class:`xsol.SparseExplicitLM`, whose chunks are counted separately and
merged). It never grows with the number of tokens counted or scored.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from xsol.core import defaults
from xsol.core.checks import positive_int
from xsol.stats.accumulation import accumulate
from xsol.data.token_files import held_out_cut, open_token_file
from xsol.data.token_windows import iter_token_windows
from xsol.solvers.explicit import DEFAULT_SMOOTHING, ExplicitSolution, solution_from_stats
from xsol.lm.backend import BackendChoice, choose_backend
from xsol.lm.counting import count_windows_host
from xsol.core.memory import check_fits
from xsol.core.process_memory import peak_rss_bytes
from xsol.stats.accumulators import count_dtype
from xsol.solvers.sparse import SparseExplicitLM
from xsol.stats.sparse import SparseStats, sparse_accumulate


#: Held-out windows scored at once. The scoring's working arrays (distinct
#: windows, looked-up entries) grow with it, so it is kept small.
SCORE_CHUNK_TOKENS = 1 << 18


@dataclasses.dataclass
class CorpusFit:
    """A language model fitted on a token corpus, and what it cost.

    Attributes:
      model: an :class:`xsol.ExplicitSolution` (dense) or :class:`xsol.SparseExplicitLM`.
      choice: the :class:`~xsol.lm.backend.BackendChoice` (dense or sparse, and why).
      vocab_size: ``V``.
      window: ``K``.
      smoothing: ``a``.
      train_tokens: tokens in the training part (its windows were counted).
      held_out_tokens: tokens in the held-out tail (0 when none was held out).
      held_out_nll: mean cross-entropy in nats on the held-out windows, or None.
      unigram_nll: the same for the smoothed unigram of the training targets,
        ``p_j = (n_j + a) / (n + N a)`` (a baseline that ignores the context).
      seconds: ``count`` (read and count), ``solve``, ``score`` and ``total``.
      peak_rss_bytes: the process's peak resident memory after the fit.
      source: the file name, or None for an array.
    """

    model: Any
    choice: BackendChoice
    vocab_size: int
    window: int
    smoothing: float
    train_tokens: int
    held_out_tokens: int
    held_out_nll: float | None
    unigram_nll: float | None
    seconds: dict
    peak_rss_bytes: int
    source: str | None = None

    @property
    def backend(self) -> str:
        return self.choice.backend

    @property
    def held_out_perplexity(self) -> float | None:
        """``exp(held_out_nll)``."""
        return None if self.held_out_nll is None else float(np.exp(self.held_out_nll))

    @property
    def unigram_perplexity(self) -> float | None:
        """``exp(unigram_nll)``."""
        return None if self.unigram_nll is None else float(np.exp(self.unigram_nll))

    @property
    def tokens_per_second(self) -> float:
        """Corpus tokens (training and held-out) per second of the whole fit."""
        return (self.train_tokens + self.held_out_tokens) / max(self.seconds["total"], 1e-12)

    def to_dict(self) -> dict:
        """Plain figures (no model), e.g. for JSON."""
        return dict(source=self.source, backend=self.backend, reason=self.choice.reason,
                    vocab_size=self.vocab_size, window=self.window, smoothing=self.smoothing,
                    train_tokens=self.train_tokens, held_out_tokens=self.held_out_tokens,
                    held_out_nll=self.held_out_nll, held_out_perplexity=self.held_out_perplexity,
                    unigram_perplexity=self.unigram_perplexity,
                    seconds=dict(self.seconds), tokens_per_second=self.tokens_per_second,
                    peak_rss_bytes=self.peak_rss_bytes)


def _progress(batches: Iterable, total: int, desc: str, enabled: bool) -> Iterator:
    """``batches`` unchanged, with a bar that counts windows (tokens) per second."""
    with tqdm(total=total, desc=desc, unit="tok", unit_scale=True, disable=not enabled,
              mininterval=0.5) as bar:
        for X, y in batches:
            yield X, y
            bar.update(len(y))


def _open(tokens, dtype) -> tuple[np.ndarray, str | None]:
    if isinstance(tokens, (str, os.PathLike)):
        return open_token_file(tokens, dtype), os.fspath(tokens)
    ids = np.asarray(tokens)
    if dtype is not None and ids.dtype != np.dtype(dtype):
        raise ValueError(f"dtype={dtype!r} given, but the token array has dtype {ids.dtype}")
    return ids, None


#: Cost of one look-up of the sparse form's window scoring (a binary search
#: over the seen pairs) in units of one exponential of a batched logsumexp.
LOOKUP_COST = 16


class _WindowScorer:
    """Scores a dense explicit solution of windows of ``K > 1`` tokens, batch by batch.

    Two exact ways, chosen per batch by their cost: the batched logits
    (``N`` exponentials per distinct window), or the sparse form of the same
    weights (``W = rowconst + D``, :mod:`xsol.stats.sparse`), whose cost is the seen
    entries of each window's rows (for ``K = 2``, of the shorter row). Large
    vocabularies favour the sparse form; small dense-ish ones the logits.
    """

    def __init__(self, model: ExplicitSolution):
        self.model = model
        self.sparse = SparseExplicitLM(SparseStats.from_dense(model.stats, model.vocab_size,
                                                              model.window), model.smoothing,
                                       model.normalize)

    def nll_per_example(self, X, y) -> np.ndarray:
        rows = self.sparse.window_rows(X)
        ctx, _ = self.sparse.unique_windows(rows)
        ip = self.sparse._indptr
        lengths = ip[ctx + 1] - ip[ctx]
        lookups = lengths.min(axis=1).sum() if ctx.shape[1] == 2 else lengths.sum()
        if lookups * LOOKUP_COST < len(ctx) * self.model.num_classes:
            return self.sparse.nll_per_example(X, y)
        return None  # the caller scores the batched logits

    def nll_sum(self, X, y) -> float:
        per = self.nll_per_example(X, y)
        if per is None:
            return self.model.nll(X, y) * len(y)
        return float(np.sum(per, dtype=np.float64))


def _scorer(model):
    """What scores a fitted model: a dense explicit window model through :class:`_WindowScorer`."""
    if isinstance(model, ExplicitSolution) and model.window and model.window > 1 \
            and model.inverse_temperature == 1.0 and model.smoothing > 0 \
            and not bool(jnp.any(model.bias != 0)):
        return _WindowScorer(model)
    return model


def held_out_nll_sum(model, batches: Iterable, unigram: np.ndarray | None = None):
    """Sum of the cross-entropies (float64) of a model over streamed ``(X, y)`` batches.

    Args:
      model: an :class:`xsol.ExplicitSolution` or :class:`xsol.SparseExplicitLM`.
      batches: ``(X, y)`` pairs.
      unigram: optional log-probabilities ``(N,)`` of a context-free baseline,
        scored on the same targets.

    Returns:
      ``(sum in nats, number of windows)``, or ``(sum, count, unigram sum)``
      when ``unigram`` is given.
    """
    total, count, uni = 0.0, 0, 0.0
    model = _scorer(model)
    for X, y in batches:
        if unigram is not None:
            uni -= float(np.sum(unigram[y], dtype=np.float64))
        if isinstance(model, SparseExplicitLM):
            total += float(np.sum(model.nll_per_example(X, y), dtype=np.float64))
        elif isinstance(model, _WindowScorer):
            total += model.nll_sum(X, y)
        else:
            total += model.nll(X, y) * len(y)
        count += len(y)
    return (total, count) if unigram is None else (total, count, uni)


def _unigram_log_probs(model, smoothing: float) -> np.ndarray:
    """``log p_j``, ``p_j = (n_j + a) / (n + N a)`` from the model's label counts, float64."""
    n = np.asarray(model.stats.label_counts, np.float64)
    return np.log(n + smoothing) - np.log(n.sum() + len(n) * smoothing)


def fit_token_lm(
    tokens,
    vocab_size: int,
    *,
    window: int = 1,
    held_out: float | None = defaults.HELD_OUT,
    smoothing: float = DEFAULT_SMOOTHING,
    backend: str = "auto",
    dtype=None,
    chunk_tokens: int = 1 << 22,
    progress: bool = False,
) -> CorpusFit:
    """Fits and evaluates the explicit K-window language model of a token corpus.

    One streamed pass counts the windows of the training part ``ids[:cut]``
    (dense integer counts, or sparse distinct pairs: :mod:`xsol.lm.backend`),
    the explicit weights are solved, and a second streamed pass scores the
    held-out tail ``ids[cut:]`` (windows never cross the cut). Memory: one
    chunk of windows plus the statistics and weights.

    Args:
      tokens: a token-id file path (raw ``uint16``/``uint32``, or ``.npy``: see
        :func:`xsol.data.open_token_file`) or a 1-D integer array.
      vocab_size: ``V``; every id must lie in ``[0, V)`` (the first one that
        does not is reported with its offset).
      window: ``K``, context tokens per example.
      held_out: fraction of the corpus held out at its end, in ``(0, 1)``, or
        None to score nothing.
      smoothing: additive smoothing ``a > 0``.
      backend: ``"auto"`` (dense when it fits the memory budget), ``"dense"`` or
        ``"sparse"``.
      dtype: item type of a raw token file (``"uint16"``, ``"uint32"``).
      chunk_tokens: windows per streamed chunk.
      progress: progress bars in tokens per second.

    Returns:
      A :class:`CorpusFit`.

    Raises:
      TokenFileError: an unreadable file, or an id out of range (with its offset).
      ValueError: bad arguments (held-out fraction outside ``(0, 1)``, window < 1...).
      MemoryBudgetError: ``backend="dense"`` forced where the matrices do not fit.
    """
    t_start = time.perf_counter()
    V = positive_int(vocab_size, "vocab_size")
    ids, source = _open(tokens, dtype)
    n = len(ids)
    cut = n if held_out is None else held_out_cut(n, held_out, window)
    choice = choose_backend(V, window, backend=backend)
    train = iter_token_windows(ids, window, start=0, stop=cut, chunk_tokens=chunk_tokens,
                               vocab_size=V, source=source)
    train = _progress(train, cut - window, f"count K={window} ({choice.backend})", progress)
    t0 = time.perf_counter()
    if choice.backend == "dense":
        check_fits("co-occurrence matrix", (window * V, V), jnp.dtype(count_dtype()).itemsize,
                   hint="use the sparse backend")
        if jax.default_backend() == "cpu":  # sorting beats a cache-missing scatter there
            stats = count_windows_host(train, V, V, window, total_windows=cut - window)
        else:
            stats = accumulate(train, V, vocab_size=V, kind="ids", progress=False)
        t_count = time.perf_counter() - t0
        t0 = time.perf_counter()
        model: Any = solution_from_stats(stats, kind="ids", smoothing=smoothing, vocab_size=V,
                                         window=window)
        model.weights.block_until_ready()
    else:
        stats = sparse_accumulate(train, V, V)
        t_count = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = SparseExplicitLM(stats, smoothing)
    t_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    nll = uni = None
    if cut < n:
        held = iter_token_windows(ids, window, start=cut, stop=n,
                                  chunk_tokens=min(chunk_tokens, SCORE_CHUNK_TOKENS),
                                  vocab_size=V, source=source)
        total, count, uni_total = held_out_nll_sum(
            model, _progress(held, n - cut - window, f"score K={window}", progress),
            _unigram_log_probs(model, smoothing))
        nll, uni = total / count, uni_total / count
    t_score = time.perf_counter() - t0
    seconds = dict(count=t_count, solve=t_solve, score=t_score,
                   total=time.perf_counter() - t_start)
    return CorpusFit(model, choice, V, int(window), float(smoothing), cut, n - cut, nll, uni,
                     seconds, peak_rss_bytes(), source)


def score_solution(model: ExplicitSolution | SparseExplicitLM, tokens, *, dtype=None,
                   chunk_tokens: int = 1 << 22) -> float:
    """Mean cross-entropy (nats) of a fitted token-window model on a whole token corpus, streamed."""
    ids, source = _open(tokens, dtype)
    V = int(model.vocab_size)
    K = int(model.window)
    total, count = held_out_nll_sum(
        model, iter_token_windows(ids, K, chunk_tokens=chunk_tokens, vocab_size=V, source=source))
    return total / count
