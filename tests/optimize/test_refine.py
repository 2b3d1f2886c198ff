"""Refinement to the optimum by forward passes: GIS and preconditioned L-BFGS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from sklearn.datasets import load_digits

import xsol
from xsol.optimize import refine as refine_fn
from xsol.experiments import race as bench
from xsol.optimize.optimum import fit_optimum, layer_loss
from xsol.optimize import Refinement, RefineStep, gis_step, loss_and_gradient

L2 = 1e-3


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y.astype(np.int32)


@pytest.fixture(scope="module")
def windows():
    """A random K = 2 token-window task: V = 15 ids, next token from a noisy rule."""
    rng = np.random.default_rng(0)
    V, n = 15, 3000
    X = rng.integers(0, V, (n, 2)).astype(np.int32)
    y = np.where(rng.random(n) < 0.6, (X[:, 0] + 2 * X[:, 1]) % V, rng.integers(0, V, n))
    return X, y.astype(np.int32), V


@pytest.fixture(scope="module")
def digits_optimum(digits):
    X, y = digits
    return fit_optimum(X, y, 10, kind="dense", l2=L2, max_iter=2000, tol=1e-7)


@pytest.fixture(scope="module")
def windows_optimum(windows):
    X, y, V = windows
    return fit_optimum(X, y, V, kind="ids", num_features=2 * V, l2=L2, max_iter=2000, tol=1e-7)


@pytest.mark.parametrize("method", ["lbfgs", "gis"])
@pytest.mark.parametrize("init", ["explicit", "zeros"])
def test_reaches_the_optimum_on_digits(digits, digits_optimum, method, init):
    X, y = digits
    r = refine_fn(X, y, 10, method=method, init=init, l2=L2, max_passes=300)
    assert isinstance(r, Refinement)
    assert r.converged, r.reason
    assert abs(r.loss - digits_optimum.loss) <= 1e-3 * digits_optimum.loss
    # The reported loss is the loss of the returned weights.
    z = xsol.solvers.softmax_nll(r.weights, r.bias, X, y) + 0.5 * L2 * float(jnp.sum(r.weights ** 2))
    assert z == pytest.approx(r.loss, rel=1e-5)
    assert r.passes == len(r.losses) == len(r.pass_seconds) == len(r.accepted)
    assert r.loss == pytest.approx(r.best_losses[-1], rel=1e-6)


@pytest.mark.parametrize("method", ["lbfgs", "gis"])
def test_reaches_the_optimum_on_token_windows(windows, windows_optimum, method):
    X, y, V = windows
    r = refine_fn(X, y, V, vocab_size=V, method=method, l2=L2, max_passes=300)
    assert r.kind == "ids" and r.window == 2 and r.weights.shape == (2 * V, V)
    assert abs(r.loss - windows_optimum.loss) <= 1e-3 * windows_optimum.loss
    assert r.converged, r.reason


def test_plain_lbfgs_reaches_the_optimum_too(digits, digits_optimum):
    X, y = digits
    r = refine_fn(X, y, 10, l2=L2, precondition=False, max_passes=300)
    assert abs(r.loss - digits_optimum.loss) <= 1e-3 * digits_optimum.loss


def test_gis_decreases_the_loss_monotonically_without_penalty(digits, windows):
    X, y = digits
    for data in ((X, y, 10, {}), (windows[0], windows[1], windows[2], {"vocab_size": 15})):
        Xd, yd, N, kw = data
        r = refine_fn(Xd, yd, N, method="gis", l2=0.0, max_passes=40, **kw)
        L = r.losses
        assert len(L) >= 10 and r.accepted.all()
        # Non-increasing up to the float32 resolution of the per-example losses.
        assert np.all(np.diff(L) <= 1e-7 * L[:-1]), np.diff(L).max()
        assert L[-1] < L[0]


def test_gis_monotone_with_penalty(digits):
    X, y = digits
    r = refine_fn(X, y, 10, method="gis", l2=1e-4, max_passes=40)
    assert np.all(np.diff(r.losses) <= 1e-7 * r.losses[:-1])


def test_first_gis_step_from_zero_is_the_explicit_solution(digits):
    X, y = digits
    r = refine_fn(X, y, 10, method="gis", init="zeros", l2=0.0, max_passes=2)
    sol = xsol.fit_explicit(X, y, 10)
    diff = np.asarray(r.weights, np.float64) - np.asarray(sol.weights, np.float64)
    np.testing.assert_allclose(diff, np.log(10), atol=2e-5)
    np.testing.assert_array_equal(np.asarray(r.bias), 0.0)


def test_gis_step_solves_the_penalized_bound():
    rng = np.random.default_rng(1)
    F = rng.random((7, 4)) * 5
    E = rng.random((7, 4)) * 5
    E[0, 0] = 0.0
    W = rng.normal(size=(7, 4))
    B, l2 = 50, 0.3
    d = gis_step(F, E, W, l2=l2, num_examples=B, smoothing=0.0)
    h = E * np.exp(d) + B * l2 * (W + d) - F
    np.testing.assert_allclose(h, 0.0, atol=1e-9)


@pytest.mark.parametrize("normalize", ["l1", "none"])
@pytest.mark.parametrize("rows", [None, 7])
def test_statistics_gradient_equals_autodiff_dense(digits, normalize, rows):
    X, y = digits
    X, y = X[:300], y[:300]
    rng = np.random.default_rng(0)
    scale = 1.0 if normalize == "l1" else 0.01
    W = (rng.normal(size=(64, 10)) * scale).astype(np.float32)
    b = rng.normal(size=10).astype(np.float32)
    loss, GW, gb = loss_and_gradient(W, b, X, y, 10, l2=L2, normalize=normalize, batch_rows=rows)
    ref_loss, (rW, rb) = jax.value_and_grad(layer_loss)(
        (jnp.asarray(W), jnp.asarray(b)), jnp.asarray(X), jnp.asarray(y), "dense", normalize, L2)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5)
    np.testing.assert_allclose(GW, np.asarray(rW), atol=1e-5)
    np.testing.assert_allclose(gb, np.asarray(rb), atol=1e-5)


@pytest.mark.parametrize("normalize", ["l1", "none"])
@pytest.mark.parametrize("K", [1, 2, 3])
def test_statistics_gradient_equals_autodiff_ids(windows, normalize, K):
    rng = np.random.default_rng(K)
    V = 15
    X = rng.integers(0, V, (500, K)).astype(np.int32)
    y = rng.integers(0, V, 500).astype(np.int32)
    W = rng.normal(size=(K * V, V)).astype(np.float32)
    b = rng.normal(size=V).astype(np.float32)
    loss, GW, gb = loss_and_gradient(W, b, X, y, V, vocab_size=V, l2=L2, normalize=normalize,
                                     batch_rows=64)
    ref_loss, (rW, rb) = jax.value_and_grad(layer_loss)(
        (jnp.asarray(W), jnp.asarray(b)), jnp.asarray(X), jnp.asarray(y), "ids", normalize, L2)
    assert loss == pytest.approx(float(ref_loss), rel=1e-5)
    np.testing.assert_allclose(GW, np.asarray(rW), atol=1e-5)
    np.testing.assert_allclose(gb, np.asarray(rb), atol=1e-5)


def test_not_converged_when_max_passes_is_too_small(digits):
    X, y = digits
    for method in ("lbfgs", "gis"):
        r = refine_fn(X, y, 10, method=method, l2=L2, max_passes=2)
        assert not r.converged
        assert r.passes == 2
        assert "max_passes" in r.reason


def test_callback_sees_every_pass_and_can_stop(digits):
    X, y = digits
    seen = []

    def cb(step):
        assert isinstance(step, RefineStep)
        seen.append(step)
        return step.passes == 5

    r = refine_fn(X, y, 10, l2=L2, callback=cb, max_passes=100)
    assert len(seen) == 5 == r.passes
    assert not r.converged and "callback" in r.reason
    assert [s.loss for s in seen] == list(r.losses)


def test_solution_scores_like_the_refined_weights(digits):
    X, y = digits
    r = refine_fn(X[:1200], y[:1200], 10, l2=L2, max_passes=50)
    sol = r.solution()
    assert isinstance(sol, xsol.ExplicitSolution)
    np.testing.assert_array_equal(np.asarray(sol.weights), np.asarray(r.weights))
    assert r.score(X[1200:], y[1200:]) == sol.score(X[1200:], y[1200:])
    assert r.predict(X[1200:]).shape == (len(X) - 1200,)
    np.testing.assert_allclose(r.predict_proba(X[1200:]).sum(1), 1.0, rtol=1e-5)
    assert r.nll(X[:1200], y[:1200]) == pytest.approx(
        xsol.solvers.softmax_nll(r.weights, r.bias, X[:1200], y[:1200]), rel=1e-6)


def test_inputs_other_forms_agree(digits):
    X, y = digits
    X, y = X[:400], y[:400]
    dense = refine_fn(X, y, 10, l2=L2, max_passes=15)
    sparse = refine_fn(scipy.sparse.csr_matrix(X), y, 10, l2=L2, max_passes=15, batch_rows=64)
    np.testing.assert_allclose(sparse.losses, dense.losses, rtol=1e-5)
    sol = xsol.fit_explicit(X, y, 10)
    given = refine_fn(X, y, 10, l2=L2, max_passes=15, stats=sol.stats)
    assert refine_fn(X, y, 10, init="zeros", max_passes=1,
                     stats=sol.stats).statistics_seconds == 0.0
    np.testing.assert_allclose(given.losses, dense.losses, rtol=1e-6)
    for init in (sol, (sol.weights, sol.bias)):
        r = refine_fn(X, y, 10, l2=L2, max_passes=15, init=init)
        np.testing.assert_allclose(r.losses, dense.losses, rtol=1e-6)


def test_bad_inputs_are_refused(digits):
    X, y = digits
    X, y = X[:100], y[:100]
    bad = X.copy()
    bad[3, 5] = -1.0
    with pytest.raises(ValueError, match="negative"):
        refine_fn(bad, y, 10)
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        refine_fn(bad, y, 10)
    with pytest.raises(ValueError, match="outside"):
        refine_fn(X, np.where(y == 0, 10, y), 10)
    with pytest.raises(ValueError, match="labels"):
        refine_fn(X, y[:50], 10)
    with pytest.raises(ValueError, match="empty"):
        refine_fn(X[:0], y[:0], 10)
    with pytest.raises(ValueError, match="method"):
        refine_fn(X, y, 10, method="adam")
    with pytest.raises(ValueError, match="normalize"):
        refine_fn(X, y, 10, method="gis", normalize="none")
    with pytest.raises(ValueError, match="max_passes"):
        refine_fn(X, y, 10, max_passes=0)
    with pytest.raises(ValueError, match="l2"):
        refine_fn(X, y, 10, l2=-1.0)
    with pytest.raises(ValueError, match="initial weights"):
        refine_fn(X, y, 10, init=(np.zeros((3, 10)), np.zeros(10)))
    with pytest.raises(ValueError, match="init"):
        refine_fn(X, y, 10, init="random")
    with pytest.raises(ValueError, match="stats"):
        refine_fn(X, y, 10, stats=xsol.fit_explicit(X[:50], y[:50], 10).stats)
    with pytest.raises(ValueError, match="token id"):
        refine_fn(np.array([[0, 1], [2, 30]]), np.array([0, 1]), 5, vocab_size=5)
    with pytest.raises(ValueError, match="GIS with l2=0 and smoothing=0"):
        refine_fn(X, y, 10, method="gis", init="zeros", smoothing=0.0)
    with pytest.raises(ValueError, match="weights must be"):
        loss_and_gradient(np.zeros((3, 10)), np.zeros(10), X, y, 10)


def test_beyond_experiment_at_tiny_scale(tmp_path):
    from xsol.experiments.claims.beyond import run
    from xsol.experiments.config import ReproduceConfig, TaskCache
    from xsol.experiments.report import ClaimResult

    cfg = ReproduceConfig.for_scale("tiny")
    res = run(cfg, TaskCache(cfg), tmp_path, progress=False)
    assert isinstance(res, ClaimResult)
    assert res.claim == "Beyond"
    assert res.verdict in ("holds", "partly", "does not hold")
    assert res.tables and res.plots
    for p in res.plots:
        assert (tmp_path / p).is_file()
    tasks = res.data["tasks"]
    assert len(tasks) == 2 and any("K=2" in t["task"] for t in tasks)
    for t in tasks:
        assert set(t["methods"]) == set(bench.METHODS)
        for m in t["methods"].values():
            assert m["passes"] == sorted(m["passes"]) and len(m["passes"]) == len(m["losses"])
            assert np.all(np.diff(m["seconds"]) >= 0)
            if m["reached"]:
                assert m["reached"]["train_loss"] <= t["target_loss"]
                assert 0 <= m["reached"]["test_accuracy"] <= 1
    wins = [bool(t["comparison"]["best_backprop_free"]) and t["comparison"]["fewer_passes"]
            and t["comparison"]["less_time"] for t in tasks]
    expected = "holds" if all(wins) else ("partly" if any(wins) else "does not hold")
    assert res.verdict == expected
    assert f"on {sum(wins)} of 2 tasks" in res.summary
    text = bench.format_refine({"settings": res.data["settings"], "tasks": tasks})
    assert "passes" in text and tasks[0]["task"] in text
