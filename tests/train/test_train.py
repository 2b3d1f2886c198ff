"""Training from explicit weights and from random init, and the trajectories it records."""

import jax
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import xsol
from token_streams import bigram_data
from xsol.models.linen import MLP, SoftmaxRegression, TokenLM
from xsol.train.evaluation import evaluate, stack_batches
from xsol.train.loop import train_and_evaluate
from xsol.train.steps import create_train_state, make_train_step

_TIMES = ("seconds", "wall_seconds")


def _train(*args, **kwargs):
    """``train_and_evaluate`` without a progress bar."""
    return train_and_evaluate(*args, progress=False, **kwargs)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:800], y[:800], X[800:1100], y[800:1100]


@pytest.fixture(scope="module")
def bigram():
    ids = bigram_data(np.random.default_rng(0), vocab_size=6, length=4000)
    X, y = ids[:-1], ids[1:]
    sol = xsol.fit_explicit(X, y, 6, smoothing=0)
    assert int(np.asarray(sol.stats.cooc).min()) > 0  # every bigram seen: the exact optimum
    return X, y, sol


def _without_times(traj):
    return [{k: v for k, v in r.items() if k not in _TIMES} for r in traj.rows]


@pytest.mark.parametrize("calibrated", [False, True])
def test_warm_start_step0_is_the_explicit_solution(digits, calibrated):
    X, y, Xt, yt = digits
    sol = xsol.fit_explicit(X, y, 10)
    if calibrated:
        sol = sol.calibrate(X, y)
    model = SoftmaxRegression(num_features=64, num_classes=10)
    _, traj = _train(model, sol, "adam", X, y, learning_rate=1e-2, steps=[0, 5], test=(Xt, yt))
    r0 = traj.at(0)
    ref = xsol.solvers.softmax_nll(sol.scaled_weights(), sol.bias, X, y)
    assert r0["train_loss"] == pytest.approx(ref, abs=1e-5)
    assert r0["test_loss"] == pytest.approx(sol.nll(Xt, yt), abs=1e-5)
    assert r0["test_accuracy"] == pytest.approx(sol.score(Xt, yt))
    assert r0["distance"] == 0.0
    assert r0["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert traj.at(5)["distance"] > 0
    assert traj.meta["init"] == ("explicit-calibrated" if calibrated else "explicit")


def test_warm_start_lm_step0_and_perplexity(bigram):
    X, y, sol = bigram
    _, traj = _train(TokenLM(vocab_size=6), sol, optax.sgd, X, y, learning_rate=0.1, steps=[0],
                     test=(X[:500], y[:500]))
    r0 = traj.at(0)
    ref = xsol.solvers.softmax_nll(sol.weights, sol.bias, X, y)
    assert r0["train_loss"] == pytest.approx(ref, abs=1e-5)
    assert r0["train_perplexity"] == pytest.approx(np.exp(r0["train_loss"]))
    assert r0["test_perplexity"] == pytest.approx(sol.perplexity(X[:500], y[:500]), rel=1e-5)
    assert r0["grad_norm"] < 1e-5  # the gradient vanishes at the exact optimum
    assert traj.meta["optimizer"] == "sgd" and traj.meta["learning_rate"] == 0.1


def test_explicit_bigram_optimum_is_not_improved_but_random_init_moves_toward_it(bigram):
    X, y, sol = bigram
    model = TokenLM(vocab_size=6)
    steps = [0, 10, 50, 150]
    _, warm = _train(model, sol, optax.adam, X, y, learning_rate=1e-3, steps=steps)
    loss0 = warm.at(0)["train_loss"]
    assert np.min(warm["train_loss"]) >= loss0 - 1e-5
    _, cold = _train(model, "random", optax.adam, X, y, learning_rate=5e-2, steps=steps,
                    reference=sol)
    assert cold.at(0)["cosine"] < 0.3
    assert cold.at(150)["cosine"] > 0.9
    assert cold.at(150)["distance"] < cold.at(0)["distance"]
    # Gradient descent from random init reaches, but does not beat, the explicit loss.
    assert cold.at(0)["train_loss"] > loss0 + 0.1
    assert cold.at(150)["train_loss"] >= loss0 - 1e-5
    assert cold.at(150)["train_loss"] < loss0 + 1e-3


def test_runs_are_reproducible_from_the_seed(bigram):
    X, y, sol = bigram
    model = TokenLM(vocab_size=6)
    kw = dict(learning_rate=3e-2, steps=[0, 3, 17], batch_size=32, reference=sol)
    p1, a = _train(model, "random", "adam", X, y, seed=5, **kw)
    p2, b = _train(model, "random", "adam", X, y, seed=5, **kw)
    _, c = _train(model, "random", "adam", X, y, seed=6, **kw)
    assert _without_times(a) == _without_times(b)
    jax.tree.map(np.testing.assert_array_equal, p1, p2)
    assert a.at(17)["train_loss"] != c.at(17)["train_loss"]
    # The same seed and init with another minibatch stream: only sampling differs.
    _, d = _train(model, model.init_params(5), "adam", X, y, seed=6, **kw)
    assert d.at(0)["train_loss"] == a.at(0)["train_loss"]
    assert d.at(17)["train_loss"] != a.at(17)["train_loss"]
    # Where the evaluations fall does not change the run.
    p3, e = _train(model, "random", "adam", X, y, seed=5,
                   **{**kw, "steps": [0, 1, 2, 9, 10, 17]})
    jax.tree.map(np.testing.assert_array_equal, p1, p3)
    assert e.at(17)["train_loss"] == a.at(17)["train_loss"]


def test_chunked_training_equals_single_jitted_steps(bigram):
    X, y, _ = bigram
    model = TokenLM(vocab_size=6)
    tx = optax.adam(1e-2)
    p_chunk, _ = _train(model, "random", tx, X, y, steps=[0, 4], seed=2)
    step = make_train_step(model.apply, tx)
    state = create_train_state(model.init_params(2), tx)
    Xj, yj = model.prepare(X), np.asarray(y, np.int32)
    for _ in range(4):
        state, metrics = step(state, Xj, yj)
    assert int(state.step) == 4 and float(metrics["grad_norm"]) > 0
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 p_chunk, state.params)


def test_minibatched_evaluation_equals_full_batch(digits):
    X, y, _, _ = digits
    model = SoftmaxRegression(num_features=64, num_classes=10)
    params = model.init_params(0)
    full = evaluate(model, params, stack_batches(X, y, None), with_grad=True)
    parts = evaluate(model, params, stack_batches(X, y, 300), with_grad=True)  # 800 = 300+300+200
    assert parts["loss"] == pytest.approx(full["loss"], rel=1e-6)
    assert parts["accuracy"] == full["accuracy"]
    assert parts["grad_norm"] == pytest.approx(full["grad_norm"], rel=1e-5)


def test_multilayer_trajectory_has_per_layer_distances(digits):
    X, y, Xt, yt = digits
    model = MLP(num_features=64, hidden=(12,), num_classes=10, activation="softmax")
    ref = model.init_params(1)
    params, traj = _train(model, "random", "adam", X, y, learning_rate=1e-2, steps=[0, 20],
                         reference=ref, batch_size=64, eval_batch_size=256)
    r0 = traj.at(0)
    for key in ("cosine", "distance", "cosine_0", "cosine_1", "distance_0", "distance_1"):
        assert key in r0
    assert -1.0 <= r0["cosine_0"] <= 1.0 and r0["cosine_0"] < 0.5
    assert traj.at(20)["train_loss"] < r0["train_loss"]
    same = _train(model, ref, "adam", X, y, learning_rate=1e-2, steps=[0], reference=ref)[1]
    assert same.at(0)["cosine_0"] == pytest.approx(1.0) and same.at(0)["distance_1"] == 0.0
    assert same.meta["init"] == "params"


def test_train_argument_errors(digits):
    X, y, _, _ = digits
    model = SoftmaxRegression(num_features=64, num_classes=10)
    with pytest.raises(ValueError, match="steps is empty"):
        _train(model, "random", "adam", X, y, learning_rate=1e-2, steps=[])
    with pytest.raises(ValueError, match="steps must be >= 0"):
        _train(model, "random", "adam", X, y, learning_rate=1e-2, steps=[-1, 5])
    with pytest.raises(ValueError, match="unknown Optax optimizer 'adamm'"):
        _train(model, "random", "adamm", X, y, learning_rate=1e-2, steps=3)
    with pytest.raises(ValueError, match="needs learning_rate"):
        _train(model, "random", optax.adam, X, y, steps=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        _train(model, "random", "sgd", X, y, learning_rate=0.1, steps=3, batch_size=0)
    with pytest.raises(ValueError, match="init must be 'random'"):
        _train(model, "explicit", "sgd", X, y, learning_rate=0.1, steps=3)
    with pytest.raises(ValueError, match="init params have shapes"):
        _train(model, {"W": np.zeros((3, 3)), "b": np.zeros(3)}, "sgd", X, y, learning_rate=0.1,
              steps=3)
    with pytest.raises(ValueError, match="test must be a pair"):
        _train(model, "random", "sgd", X, y, learning_rate=0.1, steps=3, test=X)
    with pytest.raises(ValueError, match="one label per example"):
        _train(model, "random", "sgd", X, y[:-1], learning_rate=0.1, steps=3)
