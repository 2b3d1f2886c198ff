"""Bounded-memory scoring equals the all-logits-at-once computation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

import xsol
from xsol.core import inputs
from xsol.solvers import scoring, temperature
from xsol.core.memory import MemoryBudgetError


def _full_nll(W, b, X, y, kind, beta=1.0):
    z = beta * np.asarray(inputs.linear_logits(jnp.asarray(W), jnp.zeros_like(jnp.asarray(b)),
                                               jnp.asarray(X), kind, "l1"), np.float64) + np.asarray(b)
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    return float(np.mean(lse - z[np.arange(len(y)), y])), z


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:1200].astype(np.float32), y[:1200], X[1200:].astype(np.float32), y[1200:]


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.default_rng(0)
    ids = rng.zipf(1.5, 6000) % 50
    return ids.astype(np.int32)


@pytest.mark.parametrize("rows", [None, 1, 7, 64])
def test_dense_scoring_matches_full_logits(digits, rows):
    Xtr, ytr, Xte, yte = digits
    sol = xsol.fit_explicit(Xtr, ytr, 10).calibrate(Xtr, ytr)
    ref, z = _full_nll(sol.weights, sol.bias, Xte, yte, "dense", sol.inverse_temperature)
    assert sol.nll(Xte, yte, batch_rows=rows) == pytest.approx(ref, rel=1e-6)
    np.testing.assert_array_equal(sol.predict(Xte, batch_rows=rows), z.argmax(1))
    P = sol.predict_proba(Xte, batch_rows=rows)
    assert isinstance(P, np.ndarray) and P.shape == (len(Xte), 10)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.log(P), sol.predict_log_proba(Xte, batch_rows=rows), atol=1e-4)


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("rows", [None, 5, 333])
def test_token_scoring_matches_full_logits(tokens, K, rows):
    V = 50
    X, y = xsol.data.context_windows(tokens[:4000], K)
    Xh, yh = xsol.data.context_windows(tokens[4000:], K)
    sol = xsol.fit_explicit(X, y, V, vocab_size=V, smoothing=0.1)
    for beta in (1.0, 2.5):
        s = sol if beta == 1.0 else dataclasses.replace(sol, inverse_temperature=beta)
        ref, z = _full_nll(s.weights, s.bias, Xh, yh, "ids", beta)
        # K = 1 scores by a gather from per-row log-normalizers: float64 sums, 1e-6 relative.
        assert s.nll(Xh, yh, batch_rows=rows) == pytest.approx(ref, rel=1e-6)
        np.testing.assert_array_equal(s.predict(Xh, batch_rows=rows), z.argmax(1))
    assert sol.perplexity(Xh, yh) == pytest.approx(np.exp(_full_nll(
        sol.weights, sol.bias, Xh, yh, "ids")[0]), rel=1e-6)


@pytest.mark.parametrize("K", [1, 2])
def test_calibration_matches_full_batch_newton(tokens, digits, K):
    V = 50
    X, y = xsol.data.context_windows(tokens, K)
    sol = xsol.fit_explicit(X, y, V, vocab_size=V, smoothing=0.1)
    ref = temperature.fit_inverse_temperature(
        inputs.linear_logits(sol.weights, jnp.zeros(V), jnp.asarray(X.reshape(len(X), -1)),
                             "ids", "l1"), sol.bias, jnp.asarray(y))
    got = scoring.fit_inverse_temperature_batched(sol.weights, sol.bias, X.reshape(len(X), -1),
                                                  y, kind="ids", batch_rows=97)
    assert got == pytest.approx(ref, rel=1e-4)
    Xtr, ytr, _, _ = digits
    d = xsol.fit_explicit(Xtr, ytr, 10)
    ref = temperature.fit_inverse_temperature(d.scores(Xtr), d.bias, jnp.asarray(ytr))
    assert d.calibrate(Xtr, ytr).inverse_temperature == pytest.approx(ref, rel=1e-4)


def test_softmax_nll_is_batched_and_float64(tokens):
    V = 50
    X, y = xsol.data.context_windows(tokens, 2)
    sol = xsol.fit_explicit(X, y, V, vocab_size=V)
    ref, _ = _full_nll(sol.weights, sol.bias, X, y, "ids")
    assert xsol.solvers.softmax_nll(sol.weights, sol.bias, X, y) == pytest.approx(ref, rel=1e-6)


def test_rows_per_batch_follows_the_budget(monkeypatch):
    assert scoring.rows_per_batch(1000, budget=16_000) == 1
    assert scoring.rows_per_batch(1000, budget=160_000) == 10
    assert scoring.rows_per_batch(10, 3, budget=1 << 30) == 3
    monkeypatch.setenv("XSOL_MEMORY_BUDGET", "8M")
    assert scoring.rows_per_batch(1000) == (1 << 20) // 16000


def test_whole_matrices_are_refused_before_allocating(digits, monkeypatch):
    Xtr, ytr, Xte, yte = digits
    sol = xsol.fit_explicit(Xtr, ytr, 10)
    monkeypatch.setenv("XSOL_MEMORY_BUDGET", "1K")
    with pytest.raises(MemoryBudgetError, match="probability matrix"):
        sol.predict_proba(Xte)
    with pytest.raises(MemoryBudgetError, match="score matrix"):
        sol.logits(Xte)
    # Batched methods still work with a tiny budget (one row at a time).
    assert np.isfinite(sol.nll(Xte, yte))


def test_one_hot_explicit_rows_are_log_distributions(tokens):
    V = 50
    X, y = xsol.data.context_windows(tokens, 1)
    sol = xsol.fit_explicit(X, y, V, vocab_size=V, smoothing=0.1)
    assert sol.rows_normalized
    lse = scoring.row_log_normalizers(sol.weights, sol.bias, np.arange(V))
    np.testing.assert_allclose(lse, 0.0, atol=2e-6)
    ref, _ = _full_nll(sol.weights, sol.bias, X, y, "ids")
    assert sol.nll(X, y) == pytest.approx(ref, rel=1e-6)
    cal = sol.calibrate(X, y)
    assert not cal.rows_normalized  # its rows are no longer normalized
    assert cal.nll(X, y) < sol.nll(X, y)


def test_short_repr(digits):
    Xtr, ytr, _, _ = digits
    r = repr(xsol.fit_explicit(Xtr, ytr, 10))
    assert len(r) < 200 and "(64, 10)" in r and "dense" in r


def test_host_and_device_newton_agree():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(400, 7)).astype(np.float32)
    bias = rng.normal(size=7).astype(np.float32)
    y = rng.integers(0, 7, 400).astype(np.int32)
    device = temperature.fit_inverse_temperature(scores, bias, y)

    def grad_curv(beta):
        mean_s, var_s = temperature.score_moments(jnp.asarray(scores), jnp.asarray(bias),
                                                  jnp.float32(beta))
        s_y = scores[np.arange(400), y]
        return float(np.mean(np.asarray(mean_s, np.float64) - s_y)), float(np.mean(var_s))

    host = temperature.newton_on_host(grad_curv)
    assert host == pytest.approx(device, rel=1e-4)
    assert temperature.newton_step(1e9, 1.0, 2.0, xp=np) == pytest.approx(1.0)  # damped: halves
    assert temperature.newton_step(-1e9, 1.0, 2.0, xp=np) == pytest.approx(-8.0)  # grows 5x
