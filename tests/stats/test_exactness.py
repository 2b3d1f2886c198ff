"""The one-hot explicit solution is the exact optimum (docs/math.md case A)."""

import jax
import pytest
import jax.numpy as jnp
import numpy as np

import xsol
from xsol.optimize.optimum import fit_optimum, layer_loss
from token_streams import bigram_data


def test_bigram_explicit_equals_lbfgs_optimum(rng):
    V = 6
    ids = bigram_data(rng, V, 4000)
    X, y = ids[:-1], ids[1:]
    sol = xsol.fit_explicit(X, y, V, smoothing=0.0)
    assert int(jnp.min(sol.stats.cooc)) > 0, "test data must have no zero counts"
    explicit_loss = xsol.solvers.softmax_nll(sol.weights, sol.bias, X, y)
    opt = fit_optimum(X[:, None].astype(np.int32), y.astype(np.int32), V, kind="ids",
                      num_features=V, tol=1e-7, max_iter=2000)
    assert opt.grad_norm < 1e-5
    assert abs(explicit_loss - opt.loss) < 1e-5
    # The explicit loss is the entropy of the empirical conditionals.
    F = np.asarray(sol.stats.cooc, np.float64)
    cond_entropy = -np.sum(F * np.log(F / F.sum(1, keepdims=True))) / F.sum()
    assert abs(explicit_loss - cond_entropy) < 1e-5


def test_gradient_vanishes_at_explicit_weights(rng):
    V = 5
    ids = bigram_data(rng, V, 3000)
    X, y = ids[:-1, None].astype(np.int32), ids[1:].astype(np.int32)
    sol = xsol.fit_explicit(X, y, V, smoothing=0.0)
    gW, gb = jax.grad(layer_loss)((sol.weights, sol.bias), X, y, "ids", "l1")
    assert float(jnp.max(jnp.abs(gW))) < 1e-6
    # The bias gradient is the gap between predicted and empirical label frequencies: 0 too.
    assert float(jnp.max(jnp.abs(gb))) < 1e-6


def test_explicit_beats_any_perturbation_and_smoothing_costs_loss(rng):
    V = 5
    ids = bigram_data(rng, V, 2000)
    X, y = ids[:-1], ids[1:]
    exact = xsol.fit_explicit(X, y, V, smoothing=0.0)
    base = xsol.solvers.softmax_nll(exact.weights, exact.bias, X, y)
    for _ in range(5):
        W = exact.weights + 0.05 * rng.standard_normal(exact.weights.shape).astype(np.float32)
        assert xsol.solvers.softmax_nll(W, exact.bias, X, y) > base
    smoothed = xsol.fit_explicit(X, y, V, smoothing=5.0)
    assert smoothed.nll(X, y) > base


def test_window_solution_averages_block_log_conditionals(rng):
    V, K = 4, 3
    ids = rng.integers(0, V, 500)
    X = np.stack([ids[k : len(ids) - K + k] for k in range(K)], axis=1)
    y = ids[K:]
    sol = xsol.fit_explicit(X, y, V, smoothing=0.5)
    assert sol.weights.shape == (K * V, V)
    F = np.zeros((K * V, V))
    for t in range(len(y)):
        for k in range(K):
            F[k * V + X[t, k], y[t]] += 1
    np.testing.assert_array_equal(np.asarray(sol.stats.cooc), F)
    W = np.log(F + 0.5) - np.log(F.sum(1, keepdims=True) + V * 0.5)
    np.testing.assert_allclose(np.asarray(sol.weights), W, rtol=1e-5, atol=1e-6)
    z = np.mean([W[k * V + X[:, k]] for k in range(K)], axis=0)
    np.testing.assert_allclose(np.asarray(sol.logits(X)), z, rtol=1e-5, atol=1e-5)


def test_dense_solution_matches_numpy_formula(rng):
    X = rng.random((300, 7)).astype(np.float32)
    X[rng.random(X.shape) < 0.3] = 0
    y = rng.integers(0, 3, 300)
    sol = xsol.fit_explicit(X, y, 3, smoothing=0.1)
    Xn = X / X.sum(1, keepdims=True)
    F = Xn.T @ np.eye(3)[y]
    np.testing.assert_allclose(np.asarray(sol.stats.cooc), F, rtol=1e-5)
    W = np.log(F + 0.1) - np.log(F.sum(1, keepdims=True) + 3 * 0.1)
    np.testing.assert_allclose(np.asarray(sol.weights), W, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(sol.stats.label_counts), np.bincount(y, minlength=3))
    assert int(sol.stats.num_examples) == 300


def test_uint8_pixels_are_dense_and_equal_float_input(rng):
    X = rng.integers(0, 256, (200, 16)).astype(np.uint8)
    y = rng.integers(0, 4, 200)
    a = xsol.fit_explicit(X, y, 4)
    b = xsol.fit_explicit(X.astype(np.float32), y, 4)
    assert a.kind == "dense"
    np.testing.assert_allclose(np.asarray(a.weights), np.asarray(b.weights), rtol=1e-6)


def test_temperature_calibration_keeps_predictions_and_lowers_loss():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data[:1000].astype(np.float32), d.target[:1000]
    sol = xsol.fit_explicit(X, y, 10)
    cal = sol.calibrate(X, y)
    np.testing.assert_array_equal(sol.predict(X), cal.predict(X))
    assert cal.nll(X, y) < sol.nll(X, y) - 0.5
    assert cal.inverse_temperature > 1
    # beta is a stationary point of the 1-D loss.
    def loss(beta):
        return float(xsol.solvers.softmax_nll(beta * sol.weights, sol.bias, X, y))
    b = cal.inverse_temperature
    assert loss(b) <= min(loss(b * 0.97), loss(b * 1.03))
    assert abs(loss(b) - cal.nll(X, y)) < 1e-5


def test_prior_counted_once_is_calibrated_naive_bayes():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data[:1000].astype(np.float32), d.target[:1000]
    sol = xsol.fit_explicit(X, y, 10, smoothing=0.01)
    once = sol.calibrate(X, y, prior="once")
    a, F = 0.01, np.asarray(sol.stats.cooc, np.float64)
    log_lik = np.log((F + a) / (F.sum(0) + F.shape[0] * a))       # log P(pixel | class)
    n = np.bincount(y, minlength=10) + a
    Xn = X / X.sum(1, keepdims=True)
    expected = once.inverse_temperature * Xn @ log_lik + np.log(n / n.sum())
    got = np.asarray(once.logits(X))
    # Equal up to a constant per example (the -log(f_i + N a) row term).
    diff = got - expected
    np.testing.assert_allclose(diff - diff.mean(1, keepdims=True), 0, atol=2e-3)
    assert once.nll(X, y) <= sol.calibrate(X, y).nll(X, y) + 1e-3
    with pytest.raises(ValueError, match="prior must be"):
        sol.calibrate(X, y, prior="twice")
    raw = xsol.fit_explicit(X, y, 10, normalize="none")
    with pytest.raises(ValueError, match='needs normalize="l1"'):
        raw.calibrate(X, y, prior="once")


def test_host_solve_equals_the_compiled_formula():
    from xsol.solvers.dense import explicit_weights, explicit_weights_host

    rng = np.random.default_rng(3)
    F = rng.poisson(0.3, (37, 501)).astype(np.int32)
    F[5] = 0  # a row never seen
    for a in (0.0, 0.01, 1.0):
        if a == 0:
            F0 = F.copy()
            F0[F0 == 0] = 1
            F0[5] = 0
        else:
            F0 = F
        host = explicit_weights_host(F0, a, threads=3)
        ref = np.asarray(explicit_weights(jnp.asarray(F0), a))
        np.testing.assert_allclose(host, ref, rtol=1e-6, atol=1e-6)


def test_large_solves_take_the_host_path(monkeypatch):
    import importlib

    solve_mod = importlib.import_module("xsol.solvers.dense")

    rng = np.random.default_rng(4)
    X = rng.integers(0, 40, 3000)
    sol_ref = xsol.fit_explicit(X[:-1], X[1:], 40, vocab_size=40, smoothing=0.1)
    monkeypatch.setattr(solve_mod, "HOST_SOLVE_MIN_ENTRIES", 1)
    W, b = xsol.solve(sol_ref.stats, smoothing=0.1)
    np.testing.assert_allclose(np.asarray(W), np.asarray(sol_ref.weights), rtol=1e-6, atol=1e-6)
