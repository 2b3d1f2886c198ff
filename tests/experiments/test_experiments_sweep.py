"""Learning-rate sweeps, validation splits and the optimum's convergence flag."""

import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import xsol
from xsol.experiments.sweep import lr_grid, train_grid
from xsol.experiments.tasks import Task, validation_split
from xsol.models.linen import SoftmaxRegression
from xsol.optimize.optimum import fit_optimum


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y.astype(np.int32)


def test_lr_grid_is_log_spaced():
    assert lr_grid(1e-2, 1.0, 1) == (0.01, 0.1, 1.0)
    assert lr_grid(1e-3, 10.0, 2)[1] == pytest.approx(10 ** -2.5, rel=1e-2)
    with pytest.raises(ValueError, match="low <= high"):
        lr_grid(1.0, 0.1)


def test_grid_equals_single_runs_and_chooses_on_validation(digits):
    X, y = digits
    model = SoftmaxRegression(num_features=64, num_classes=10)
    sol = xsol.fit_explicit(X[:1000], y[:1000], 10)
    rates = (0.01, 1.0, 1e4)
    g = train_grid(model, sol, "adam", rates, X[:1000], y[:1000], steps=[0, 5, 30],
                   validation=(X[1000:1300], y[1000:1300]), test=(X[1300:], y[1300:]),
                   batch_size=128, seed=4)
    params, single = xsol.train.train_and_evaluate(model, sol, optax.adam, X[:1000], y[:1000],
                                             learning_rate=1.0, steps=[0, 5, 30],
                                             test=(X[1300:], y[1300:]), batch_size=128, seed=4,
                                             progress=False)
    mine = g.trajectories[1]
    for key in ("train_loss", "test_loss", "test_accuracy", "cosine"):
        np.testing.assert_allclose(mine[key], single[key], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g.final_params[1]["W"], params["W"], rtol=1e-4, atol=1e-5)
    val = g.values("val_loss")
    assert g.choose() == int(np.nanargmin(val))
    assert "val_accuracy" in mine.rows[-1] and mine.rows[-1]["val_loss"] == val[1]
    assert g.at_edge(0) and g.at_edge(2) and not g.at_edge(1)


def test_choose_never_picks_a_diverged_rate():
    from xsol.experiments.sweep import GridRun
    from xsol.train.trajectory import Trajectory

    trajs = [Trajectory(rows=[{"step": 1, "val_loss": v}]) for v in (0.5, float("nan"), 0.2)]
    g = GridRun("adam", "random", [0.1, 1.0, 10.0], trajs, [], 0.0)
    assert g.choose() == 2
    bad = GridRun("adam", "random", [1.0], [Trajectory(rows=[{"step": 1, "val_loss": np.inf}])],
                  [], 0.0)
    with pytest.raises(ValueError, match="diverged"):
        bad.choose()
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_grid(SoftmaxRegression(num_features=2, num_classes=2), "random", "rmsprop", [0.1],
                   np.ones((4, 2)), np.array([0, 1, 0, 1]), steps=1)


def test_validation_split_is_contiguous_for_text_and_fixed_for_images():
    ids = np.arange(100).reshape(-1, 1).astype(np.int32)
    lm = Task("text", "ids", ids, ids[:, 0] % 7, ids[:5], ids[:5, 0], 7, vocab_size=100, window=1)
    fit, (Xv, yv) = validation_split(lm, 0.2)
    assert fit.X_train[-1, 0] == 79 and Xv[0, 0] == 80 and len(yv) == 20
    img = Task("img", "dense", np.arange(200.0).reshape(100, 2), np.arange(100) % 3,
               np.ones((3, 2)), np.zeros(3, int), 3)
    a, (Xa, _) = validation_split(img, 0.25)
    b, (Xb, _) = validation_split(img, 0.25)
    np.testing.assert_array_equal(Xa, Xb)
    assert len(set(a.X_train[:, 0]) & set(Xa[:, 0])) == 0 and len(Xa) == 25
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        validation_split(img, 1.0)


def test_optimum_reports_how_it_stopped(digits):
    X, y = digits
    capped = fit_optimum(X[:500], y[:500], 10, kind="dense", l2=1e-4, max_iter=3, tol=1e-9)
    assert capped.reason == "iteration cap" and not capped.converged
    done = fit_optimum(X[:500], y[:500], 10, kind="dense", l2=1e-3, max_iter=500, tol=1e-4)
    assert done.converged and done.grad_norm <= 1e-4
    # The cross-entropy excludes the penalty.
    penalty = 0.5 * 1e-3 * float(np.sum(np.asarray(done.weights) ** 2))
    assert done.loss == pytest.approx(done.cross_entropy + penalty, rel=1e-4)
    with pytest.raises(ValueError, match="l2 must be"):
        fit_optimum(X[:10], y[:10], 10, kind="dense", l2=-1.0)


def test_training_subset_only_between_the_ends(digits):
    X, y = digits
    model = SoftmaxRegression(num_features=64, num_classes=10)
    kw = dict(steps=[0, 3, 10], batch_size=64, seed=1)
    full = train_grid(model, "random", "adam", [0.1], X[:800], y[:800], **kw)
    part = train_grid(model, "random", "adam", [0.1], X[:800], y[:800], train_eval_rows=100, **kw)
    a, b = full.trajectories[0]["train_loss"], part.trajectories[0]["train_loss"]
    np.testing.assert_allclose(a[[0, 2]], b[[0, 2]], rtol=1e-6)
    assert a[1] != b[1]
    assert "subset of 100" in part.trajectories[0].meta["train_eval"]
