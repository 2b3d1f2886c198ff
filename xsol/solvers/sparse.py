"""Explicit solutions for large vocabularies, stored and scored sparsely.

A bigram language model over ``V = 64k`` tokens has ``V^2 = 4.3e9`` weights, 16
GiB in float32, yet 10M tokens of text contain only a few million distinct
pairs. This module never builds the dense matrix unless asked to.

The statistics are :class:`xsol.stats.SparseStats` (exact integer counts of
the seen pairs only).

**Solution.** With additive smoothing ``a > 0`` the explicit weights
(docs/math.md section 1, A) are

    W_ij = log(F_ij + a) - log(f_i + N a)

For an unseen pair (``F_ij = 0``) this is ``log a - log(f_i + N a)``, a constant
per row. :class:`SparseExplicitLM` stores that row constant (``M`` numbers) and,
for each seen pair, the correction ``d_ij = log(F_ij + a) - log a =
log1p(F_ij / a) > 0``; ``W = rowconst[:, None] + D`` with ``D`` sparse.

**Scoring without the dense matrix.** The logits of an example whose window
has feature rows ``r_1..r_K`` are ``z_j = c sum_k W[r_k, j]`` (``c = 1/K`` for
``normalize="l1"``, ``1`` for ``"none"``), i.e. ``z_j = C + g_j`` with
``C = c sum_k rowconst[r_k]`` and ``g_j = c sum_k d[r_k, j]``, which is zero
outside the union ``S`` of the rows' seen columns. Hence

    logsumexp_j z_j = C + log(N + sum_{j in S} expm1(g_j))

and the cross-entropy of label ``y`` is
``log(N + sum_{j in S} expm1(g_j)) - g_y``: it costs the number of seen
entries in the window's rows, not ``N``. For ``K = 1`` the rows are normalized
distributions and this reduces to ``log(f_i + N a) - log(F_iy + a)``.

Everything here runs in numpy on the host (sorting keys is what dominates);
the dense weights, when they fit, are handed over as a JAX array.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import jax.numpy as jnp
import numpy as np

from xsol.core import defaults, inputs, memory
from xsol.core.saved import register_saved_type
from xsol.solvers.formula import check_next_token_query, check_smoothing
from xsol.stats.sparse import (SparseStats, sparse_cooccurrence, sparse_stats_from_record,
                               sparse_stats_record)

#: Default additive smoothing ``a`` (the same default as :func:`xsol.fit_explicit`).
DEFAULT_SMOOTHING = defaults.SMOOTHING

#: Entries gathered at once when scoring windows of several tokens (bounds memory).
_SCORE_CHUNK = 1 << 22


class SparseExplicitLM:
    """The explicit solution of a token-window softmax layer, stored sparsely.

    ``W = rowconst[:, None] + D``: ``rowconst_i = log a - log(f_i + N a)`` and
    ``D_ij = log1p(F_ij / a)`` on the seen pairs only (see the module docstring).
    The bias is zero, as for :func:`xsol.solve`.

    Args:
      stats: :class:`SparseStats`.
      smoothing: ``a > 0`` (unseen pairs need a finite weight).
      normalize: ``"l1"`` (average the ``K`` rows, as :func:`xsol.fit_explicit`
        does for token ids) or ``"none"`` (sum them).
    """

    def __init__(self, stats: SparseStats, smoothing: float = DEFAULT_SMOOTHING,
                 normalize: str = "l1"):
        smoothing = check_smoothing(smoothing)
        if not smoothing > 0:
            raise ValueError(
                f"smoothing must be a finite number > 0 for the sparse solution (unseen "
                f"pairs get log(a)), got {smoothing}"
            )
        if stats.num_examples == 0:
            raise ValueError("the statistics hold no examples; count some data first")
        self.stats = stats
        self.smoothing = smoothing
        self.normalize = inputs.check_normalize(normalize)
        N = stats.num_classes
        self.row_log_norm = np.log(stats.feature_totals + N * smoothing)
        self.row_const = math.log(smoothing) - self.row_log_norm
        self.corrections = np.log1p(stats.counts / smoothing)
        self._indptr = stats.indptr()
        self._cols = stats.cols

    @classmethod
    def fit(cls, X, y, vocab_size: int, num_classes: int | None = None, *,
            smoothing: float = DEFAULT_SMOOTHING, normalize: str = "l1") -> "SparseExplicitLM":
        """:func:`sparse_cooccurrence` then the sparse explicit solution."""
        return cls(sparse_cooccurrence(X, y, vocab_size, num_classes), smoothing, normalize)


    @property
    def vocab_size(self) -> int:
        return self.stats.vocab_size

    @property
    def num_classes(self) -> int:
        return self.stats.num_classes

    @property
    def window(self) -> int:
        return self.stats.window

    @property
    def nbytes(self) -> int:
        """Bytes held (statistics plus the solution's arrays)."""
        return self.stats.nbytes + sum(a.nbytes for a in (
            self.row_log_norm, self.row_const, self.corrections, self._indptr, self._cols))

    def _scale(self) -> float:
        return 1.0 / self.window if self.normalize == "l1" else 1.0

    # -- dense form ---------------------------------------------------------

    def dense_weights(self, *, check_memory: bool = True):
        """The dense ``(M, N)`` float32 weights (a JAX array), when they fit.

        Equal to ``xsol.solve(stats.to_dense(), smoothing=a)[0]`` up to float32
        rounding.

        Raises:
          MemoryBudgetError: the matrix (a numpy and a JAX copy) would not fit.
        """
        M, N = self.stats.num_features, self.num_classes
        if check_memory:
            memory.check_fits("explicit weight matrix", (M, N), 4, copies=2,
                              hint="score and query the sparse solution directly "
                                   "(nll, perplexity, top_next)")
        W = np.empty((M, N), np.float32)
        W[...] = self.row_const.astype(np.float32)[:, None]
        rows = self.stats.rows
        W.reshape(-1)[self.stats.keys] = self.row_const[rows] + self.corrections
        return jnp.asarray(W)

    # -- scoring ------------------------------------------------------------

    def window_rows(self, X) -> np.ndarray:
        X = inputs.check_ids(X, self.vocab_size)
        if X.shape[1] != self.window:
            raise ValueError(f"X has a window of {X.shape[1]} positions, expected {self.window}")
        return X.astype(np.int64) + np.arange(self.window, dtype=np.int64) * self.vocab_size

    def _lookup(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``D[rows, cols]`` (zero where unseen)."""
        keys = self.stats.keys
        q = rows * self.num_classes + cols
        if not len(keys):
            return np.zeros(q.shape)
        pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
        return np.where(keys[pos] == q, self.corrections[pos], 0.0)

    def _union_sums(self, ctx_rows: np.ndarray) -> np.ndarray:
        """For each window (rows ``(U, K)``): ``sum_{j in S} expm1(g_j)``, float64 ``(U,)``.

        Windows are taken in groups whose seen entries (about
        :data:`_SCORE_CHUNK`) and ``G x N`` buffer both stay bounded; within a
        group, ``g`` is added up per (window, label) with one ``bincount`` and
        the touched cells are the non-zero ones (every correction is ``> 0``).
        """
        U, K = ctx_rows.shape
        N = self.num_classes
        c = self._scale()
        ip = self._indptr
        lengths = (ip[ctx_rows + 1] - ip[ctx_rows]).sum(axis=1)
        out = np.zeros(U)
        max_group = max(1, (2 * _SCORE_CHUNK) // N)
        cum = np.cumsum(lengths)
        total_all = int(cum[-1]) if U else 0
        cuts = np.searchsorted(cum, np.arange(1, total_all // _SCORE_CHUNK + 1) * _SCORE_CHUNK,
                               side="right")
        bounds = np.unique(np.concatenate([[0], cuts, np.arange(0, U, max_group), [U]]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            r = ctx_rows[lo:hi].reshape(-1)
            starts, seg = ip[r], ip[r + 1] - ip[r]
            total = int(seg.sum())
            if total == 0:
                continue
            owner = np.repeat(np.arange(hi - lo).repeat(K), seg)
            offs = np.repeat(starts - np.cumsum(seg) + seg, seg) + np.arange(total)
            cell = owner * N + self._cols[offs]
            G = np.bincount(cell, weights=self.corrections[offs], minlength=(hi - lo) * N)
            touched = np.flatnonzero(G)
            out[lo:hi] = np.bincount(touched // N, weights=np.expm1(c * G[touched]),
                                     minlength=hi - lo)
        return out

    def _row_expm1_sums(self) -> np.ndarray:
        """``A_r = sum_{j seen in row r} expm1(c d_rj)`` for every row (computed once)."""
        if getattr(self, "_row_sums_cache", None) is None:
            e = np.expm1(self._scale() * self.corrections)
            sums = np.zeros(self.stats.num_features)
            lengths = np.diff(self._indptr)
            nonempty = lengths > 0
            sums[nonempty] = np.add.reduceat(e, self._indptr[:-1][nonempty]) if e.size else 0.0
            self._row_sums_cache = sums
        return self._row_sums_cache

    def _pair_sums(self, ctx_rows: np.ndarray) -> np.ndarray:
        """:meth:`_union_sums` for windows of two rows, by their intersection.

        With ``e_rj = expm1(c d_rj)`` (zero where unseen) and
        ``A_r = sum_j e_rj``, the union sum of a window ``(r, s)`` is

            sum_j expm1(c (d_rj + d_sj)) = A_r + A_s + sum_{j seen in both} e_rj e_sj

        since ``(1 + e_rj)(1 + e_sj) - 1 = e_rj + e_sj + e_rj e_sj``. Only the
        columns seen in *both* rows need a look-up: each window costs the seen
        entries of its shorter row (each looked up in the other by binary
        search), not of their union, which for Zipfian text is far smaller
        (a frequent word's row holds thousands of seen successors).
        """
        A = self._row_expm1_sums()
        U = ctx_rows.shape[0]
        out = A[ctx_rows[:, 0]] + A[ctx_rows[:, 1]]
        ip, N, c = self._indptr, self.num_classes, self._scale()
        lengths = ip[ctx_rows + 1] - ip[ctx_rows]
        short = np.where(lengths[:, 0] <= lengths[:, 1], 0, 1)
        r_short = ctx_rows[np.arange(U), short]
        r_long = ctx_rows[np.arange(U), 1 - short]
        seg = lengths[np.arange(U), short]
        cum = np.cumsum(seg)
        total_all = int(cum[-1]) if U else 0
        cuts = np.searchsorted(cum, np.arange(1, total_all // _SCORE_CHUNK + 1) * _SCORE_CHUNK,
                               side="right")
        bounds = np.unique(np.concatenate([[0], cuts, [U]]))
        keys = self.stats.keys
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            s = seg[lo:hi]
            total = int(s.sum())
            if total == 0:
                continue
            owner = np.repeat(np.arange(lo, hi), s)
            offs = np.repeat(ip[r_short[lo:hi]] - np.cumsum(s) + s, s) + np.arange(total)
            q = r_long[owner] * N + self._cols[offs]
            pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
            hit = keys[pos] == q
            prod = np.expm1(c * self.corrections[offs[hit]]) * np.expm1(
                c * self.corrections[pos[hit]])
            out[lo:hi] += np.bincount(owner[hit] - lo, weights=prod, minlength=hi - lo)
        return out

    def unique_windows(self, rows: np.ndarray):
        """Distinct windows (rows ``(U, K)``) and, per example, the index of its window."""
        K = rows.shape[1]
        M = self.stats.num_features
        if M ** K < 1 << 62:
            code = np.zeros(rows.shape[0], np.int64)
            for k in range(K):
                code = code * M + rows[:, k]
            uniq, first, inverse = np.unique(code, return_index=True, return_inverse=True)
            return rows[first], inverse.reshape(-1)
        ctx, inverse = np.unique(rows, axis=0, return_inverse=True)
        return ctx, inverse.reshape(-1)

    def nll_per_example(self, X, y) -> np.ndarray:
        """Cross-entropy in nats of each example, float64, shape ``(B,)``."""
        rows = self.window_rows(X)
        y = inputs.check_labels(y, rows.shape[0], self.num_classes).astype(np.int64)
        N, a = self.num_classes, self.smoothing
        if self.window == 1:
            # Normalized rows: -W_iy = log(f_i + N a) - log(F_iy + a).
            r = rows[:, 0]
            return self.row_log_norm[r] - np.log(self.stats.count(r, y) + a)
        g_y = self._scale() * sum(self._lookup(rows[:, k], y) for k in range(self.window))
        ctx, inverse = self.unique_windows(rows)
        s = self._pair_sums(ctx) if self.window == 2 else self._union_sums(ctx)
        return np.log(N + s)[inverse] - g_y

    def nll(self, X, y) -> float:
        """Mean cross-entropy in nats, equal to the dense solution's (``xsol.solvers.softmax_nll``)."""
        return float(np.mean(self.nll_per_example(X, y)))

    def perplexity(self, X, y) -> float:
        """``exp(nll)``."""
        return float(np.exp(self.nll(X, y)))

    def log_probs(self, context) -> np.ndarray:
        """``log softmax(z)`` over all ``N`` labels for one window of ``K`` ids, float64."""
        rows = self.window_rows(np.asarray(context).reshape(1, -1))[0]
        c = self._scale()
        z = np.full(self.num_classes, c * self.row_const[rows].sum())
        for r in rows:
            lo, hi = self._indptr[r], self._indptr[r + 1]
            z[self._cols[lo:hi]] += c * self.corrections[lo:hi]
        m = z.max()
        return z - (m + np.log(np.exp(z - m).sum()))

    def top_next(self, context, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable next tokens after a window (an id when ``K = 1``).

        Only the seen entries of the window's rows can beat the row constant,
        so the ranking needs the union of those entries; ties among unseen
        tokens are broken by id.

        Returns:
          ``(ids, probabilities)``, each of length ``min(k, N)``, most probable first.
        """
        context, k = check_next_token_query(context, k, self.window)
        rows = self.window_rows(context.reshape(1, -1))[0]
        c = self._scale()
        cols = np.concatenate([self._cols[self._indptr[r]:self._indptr[r + 1]] for r in rows])
        vals = np.concatenate([self.corrections[self._indptr[r]:self._indptr[r + 1]]
                               for r in rows])
        seen, inv = np.unique(cols, return_inverse=True)
        g = c * np.bincount(inv, weights=vals, minlength=len(seen))
        lse = np.log(self.num_classes + np.expm1(g).sum())  # relative to C
        order = np.lexsort((seen, -g))
        ids = seen[order][:k]
        logp = g[order][:k] - lse
        if len(ids) < k:
            unseen = np.setdiff1d(np.arange(min(self.num_classes, len(seen) + k)), seen)
            extra = unseen[: k - len(ids)]
            ids = np.concatenate([ids, extra])
            logp = np.concatenate([logp, np.full(len(extra), -lse)])
        return ids.astype(np.int64), np.exp(logp)


def _record(model: SparseExplicitLM) -> tuple[dict, dict]:
    arrays, fields = sparse_stats_record(model.stats)
    return arrays, dict(fields, smoothing=float(model.smoothing), normalize=model.normalize)


def _from_record(arrays: dict, fields: dict) -> SparseExplicitLM:
    # the row constants and corrections are a deterministic function of the counts
    return SparseExplicitLM(sparse_stats_from_record(arrays, fields), float(fields["smoothing"]),
                            fields["normalize"])


register_saved_type("SparseExplicitLM", SparseExplicitLM, to_record=_record,
                    from_record=_from_record)
