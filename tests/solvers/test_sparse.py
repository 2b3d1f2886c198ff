"""Sparse statistics and the sparse explicit LM agree exactly with the dense ones."""

import jax.numpy as jnp
import numpy as np
import pytest

import xsol
from xsol.core.memory import MemoryBudgetError
from xsol.solvers.sparse import SparseExplicitLM
from xsol.stats.sparse import SparseStats, sparse_accumulate, sparse_cooccurrence


def _windows(ids, K):
    X = np.lib.stride_tricks.sliding_window_view(ids[:-1], K)
    return np.ascontiguousarray(X), ids[K:]


@pytest.fixture
def stream(rng):
    return rng.integers(0, 9, 2500)


@pytest.mark.parametrize("K", [1, 2, 3])
def test_sparse_stats_equal_dense_stats_exactly(stream, K):
    V = 9
    X, y = _windows(stream, K)
    sp = sparse_cooccurrence(X, y, V)
    dense = xsol.fit_explicit(X, y, V, vocab_size=V).stats
    for got, want in zip(sp.to_dense(), dense):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert sp.counts.dtype == np.int64 and sp.keys.dtype == np.int64
    assert np.all(np.diff(sp.keys) > 0) and np.all(sp.counts > 0)
    assert sp.nnz == int(np.count_nonzero(np.asarray(dense.cooc)))
    assert sp.num_features == K * V


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("normalize", ["l1", "none"])
def test_sparse_nll_and_weights_equal_dense(rng, stream, K, normalize):
    V, a = 9, 0.3
    X, y = _windows(stream, K)
    lm = SparseExplicitLM.fit(X, y, V, smoothing=a, normalize=normalize)
    sol = xsol.fit_explicit(X, y, V, vocab_size=V, smoothing=a, normalize=normalize)
    np.testing.assert_allclose(np.asarray(lm.dense_weights()), np.asarray(sol.weights),
                               rtol=1e-6, atol=1e-6)
    Xt, yt = _windows(rng.integers(0, V, 400), K)
    want = xsol.solvers.softmax_nll(sol.weights, sol.bias, Xt, yt, normalize=normalize)
    assert abs(lm.nll(Xt, yt) - want) < 1e-5
    assert abs(lm.perplexity(Xt, yt) - np.exp(want)) < 1e-4 * np.exp(want)
    logp = np.asarray(jnp.log(sol.predict_proba(Xt[:1]))[0]) if normalize == "l1" else None
    if logp is not None:
        np.testing.assert_allclose(lm.log_probs(Xt[0]), logp, atol=1e-5)
        ids, probs = lm.top_next(Xt[0], 4)
        np.testing.assert_allclose(probs, np.sort(np.exp(logp))[::-1][:4], atol=1e-6)
        np.testing.assert_allclose(np.exp(logp)[ids], probs, atol=1e-6)


def test_top_next_fills_with_unseen_tokens(rng):
    V = 50
    X = np.array([3, 3, 3, 7]); y = np.array([5, 5, 9, 1])
    lm = SparseExplicitLM.fit(X, y, V, smoothing=0.5)
    ids, probs = lm.top_next(3, 5)
    assert list(ids[:2]) == [5, 9] and len(ids) == 5
    assert probs[0] > probs[1] > probs[2] == probs[4]
    assert set(ids[2:]).isdisjoint({5, 9})
    np.testing.assert_allclose(probs[0], (2 + 0.5) / (3 + V * 0.5))
    with pytest.raises(ValueError, match="context must hold 1"):
        lm.top_next([3, 4])


def test_merge_is_exact_associative_and_matches_one_pass(rng):
    V, K = 11, 2
    X, y = _windows(rng.integers(0, V, 3001), K)
    parts = [sparse_cooccurrence(X[i:i + 700], y[i:i + 700], V) for i in range(0, len(y), 700)]
    whole = sparse_cooccurrence(X, y, V)
    a, b, c = parts[:3]
    left, right = a.merge(b).merge(c), a.merge(b.merge(c))
    for f in ("keys", "counts", "feature_totals", "label_counts"):
        np.testing.assert_array_equal(getattr(left, f), getattr(right, f))
    streamed = sparse_accumulate(((X[i:i + 300], y[i:i + 300]) for i in range(0, len(y), 300)), V)
    for f in ("keys", "counts", "feature_totals", "label_counts"):
        np.testing.assert_array_equal(getattr(streamed, f), getattr(whole, f))
    assert streamed.num_examples == whole.num_examples == len(y)
    with pytest.raises(ValueError, match="different shapes"):
        a.merge(sparse_cooccurrence(X[:10, :1], y[:10], V))


def test_memory_refusal_names_sizes_and_the_sparse_way(monkeypatch, rng):
    V = 300
    X = rng.integers(0, V, 1000); y = rng.integers(0, V, 1000)
    lm = SparseExplicitLM.fit(X, y, V)
    monkeypatch.setenv("XSOL_MEMORY_BUDGET", "100K")
    with pytest.raises(MemoryBudgetError, match=r"explicit weight matrix \(300 x 300.*sparse"):
        lm.dense_weights()
    with pytest.raises(MemoryBudgetError, match=r"co-occurrence matrix \(300 x 300"):
        lm.stats.to_dense()
    # Scoring never needs the dense matrix.
    assert np.isfinite(lm.nll(X[:50], y[:50]))


def test_large_vocabulary_without_dense_matrix(monkeypatch):
    V = 65536
    rng = np.random.default_rng(3)
    ids = rng.integers(0, V, 200_001)
    monkeypatch.setenv("XSOL_MEMORY_BUDGET", "256M")  # far below the 16 GiB dense matrix
    lm = SparseExplicitLM.fit(ids[:-1], ids[1:], V)
    assert lm.stats.nnz <= 200_000 and lm.nbytes < 64 << 20
    assert np.isfinite(lm.perplexity(ids[:1000], ids[1:1001]))
    with pytest.raises(MemoryBudgetError):
        lm.dense_weights()


@pytest.mark.parametrize("bad, match", [
    (lambda X, y: (X + 100, y), "token id 1[0-9]+ is outside"),
    (lambda X, y: (X - 100, y), "token id -[0-9]+ is outside"),
    (lambda X, y: (X, y + 100), "label 1[0-9]+ is outside"),
    (lambda X, y: (X[:0], y[:0]), "empty"),
    (lambda X, y: (X, y[:-1]), "one label per example"),
    (lambda X, y: (X.astype(float), y), "must be integers"),
])
def test_bad_input_is_refused_clearly(rng, bad, match):
    X, y = rng.integers(0, 9, 50), rng.integers(0, 9, 50)
    Xb, yb = bad(X, y)
    with pytest.raises((ValueError, TypeError), match=match):
        sparse_cooccurrence(Xb, yb, 9)


def test_bad_solution_arguments(rng):
    s = sparse_cooccurrence(rng.integers(0, 5, 20), rng.integers(0, 5, 20), 5)
    with pytest.raises(ValueError, match="smoothing must be a finite number > 0"):
        SparseExplicitLM(s, smoothing=0)
    with pytest.raises(ValueError, match="normalize"):
        SparseExplicitLM(s, normalize="l2")
    lm = SparseExplicitLM(s)
    with pytest.raises(ValueError, match="window of 2 positions, expected 1"):
        lm.nll(np.zeros((3, 2), int), np.zeros(3, int))
    with pytest.raises(ValueError, match="no batches"):
        sparse_accumulate([], 5)
    with pytest.raises(ValueError, match="batch 1: token id 7"):
        sparse_accumulate([(np.array([1]), np.array([2])), (np.array([7]), np.array([2]))], 5)
    assert isinstance(s, SparseStats)


def test_dense_and_sparse_lms_answer_top_next_alike():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 30, 3000)
    for K in (1, 2):
        X, y = xsol.data.context_windows(ids, K)
        dense = xsol.fit_explicit(X, y, 30, vocab_size=30, smoothing=0.1)
        sparse = SparseExplicitLM.fit(X, y, 30, smoothing=0.1)
        ctx = X[7]
        d_ids, d_p = dense.top_next(ctx if K > 1 else ctx[0], 5)
        s_ids, s_p = sparse.top_next(ctx if K > 1 else ctx[0], 5)
        np.testing.assert_array_equal(d_ids, s_ids)
        np.testing.assert_allclose(d_p, s_p, rtol=1e-5)
    with pytest.raises(ValueError, match="must hold 2 token"):
        dense.top_next([1, 2, 3])
