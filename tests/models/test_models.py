"""Flax models: explicit weights drop in unchanged; shapes, positivity, round trips, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

import xsol
from xsol.models.linen import MLP, SoftmaxRegression, TokenLM, layer_inputs


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600].astype(np.float32), y[:600]


def _apply(model, params, X):
    return np.asarray(model.apply({"params": params}, jnp.asarray(model.prepare(X))))


def test_softmax_regression_reproduces_explicit_logits(digits):
    X, y = digits
    sol = xsol.fit_explicit(X, y, 10)
    model = SoftmaxRegression(num_features=64, num_classes=10)
    for s in (sol, sol.calibrate(X, y)):
        params = model.from_explicit(s)
        np.testing.assert_allclose(_apply(model, params, X), np.asarray(s.logits(X)),
                                   rtol=1e-5, atol=1e-5)
    calibrated = sol.calibrate(X, y)
    assert calibrated.inverse_temperature > 2  # the check above would notice a missing scale
    params = model.from_explicit(calibrated)
    np.testing.assert_allclose(np.asarray(params["W"]), np.asarray(calibrated.scaled_weights()))


def test_token_lm_window_matches_explicit_layout(rng):
    V, K = 7, 3
    ids = rng.integers(0, V, 500)
    X = np.stack([ids[k:len(ids) - K + k] for k in range(K)], 1)
    y = ids[K:]
    sol = xsol.fit_explicit(X, y, V, vocab_size=V)
    model = TokenLM(vocab_size=V, window=K)
    params = model.from_explicit(sol)
    assert params["W"].shape == (K * V, V)
    np.testing.assert_allclose(_apply(model, params, X), np.asarray(sol.logits(X)), rtol=1e-6,
                               atol=1e-6)
    # Row k * V + id, averaged over the K positions (normalize="l1").
    W = np.asarray(params["W"])
    expected = np.mean([W[k * V + X[:, k]] for k in range(K)], axis=0)
    np.testing.assert_allclose(_apply(model, params, X), expected, rtol=1e-6, atol=1e-6)


def test_token_lm_accepts_flat_ids_for_a_bigram(rng):
    V = 5
    ids = rng.integers(0, V, 200)
    sol = xsol.fit_explicit(ids[:-1], ids[1:], V)
    model = TokenLM(vocab_size=V)
    flat = jnp.asarray(ids[:-1], jnp.int32)
    out = np.asarray(model.apply({"params": model.from_explicit(sol)}, flat))
    np.testing.assert_allclose(out, np.asarray(sol.logits(ids[:-1])), rtol=1e-6, atol=1e-6)


def test_random_init_is_seeded():
    model = SoftmaxRegression(num_features=8, num_classes=3)
    a, b, c = model.init_params(0), model.init_params(0), model.init_params(1)
    np.testing.assert_array_equal(np.asarray(a["W"]), np.asarray(b["W"]))
    assert not np.allclose(np.asarray(a["W"]), np.asarray(c["W"]))
    assert set(a) == {"W", "b"} and a["W"].shape == (8, 3) and a["b"].shape == (3,)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "relu"])
def test_mlp_shapes_and_positive_hidden_activations(digits, activation):
    X, _ = digits
    model = MLP(num_features=64, hidden=(20, 12), num_classes=10, activation=activation)
    params = model.init_params(0)
    assert jax.tree.map(jnp.shape, params) == {
        "layers_0": {"W": (64, 20), "b": (20,)},
        "layers_1": {"W": (20, 12), "b": (12,)},
        "layers_2": {"W": (12, 10), "b": (10,)},
    }
    # Larger weights so ReLU units are not all on or all off.
    params = jax.tree.map(lambda a: a * 30.0, params)
    hs = layer_inputs(model, params, X)
    assert [h.shape for h in hs] == [(600, 64), (600, 20), (600, 12)]
    for h in hs[1:]:
        assert float(jnp.min(h)) >= 0.0
    if activation == "relu":
        assert float(jnp.mean(hs[1] == 0)) > 0.05  # some units are off: ReLU really applied
    if activation == "softmax":
        np.testing.assert_allclose(np.asarray(hs[1].sum(1)), 1.0, rtol=1e-5)
    # The network's logits are the last layer applied to its input.
    W, b = model.layer_weights(params)[-1]
    last = xsol.core.inputs.linear_logits(W, b, hs[-1], "dense", model.hidden_normalize)
    np.testing.assert_allclose(_apply(model, params, X), np.asarray(last), rtol=1e-5, atol=1e-6)


def test_mlp_from_explicit_round_trip(digits, rng):
    X, y = digits
    model = MLP(num_features=64, hidden=(16,), num_classes=10, activation="sigmoid")
    pairs = [(rng.normal(size=(64, 16)).astype(np.float32), rng.normal(size=16).astype(np.float32)),
             (rng.normal(size=(16, 10)).astype(np.float32), rng.normal(size=10).astype(np.float32))]
    params = model.from_explicit(pairs)
    for (W, b), (W2, b2) in zip(pairs, model.layer_weights(params)):
        np.testing.assert_array_equal(W, np.asarray(W2))
        np.testing.assert_array_equal(b, np.asarray(b2))
    # Per-layer explicit solutions fitted on each layer's own inputs.
    hs = layer_inputs(model, params, X)
    hidden_code = rng.integers(0, 16, len(X))
    s0 = xsol.fit_explicit(np.asarray(hs[0]), hidden_code, 16)
    s1 = xsol.fit_explicit(np.asarray(hs[1]), y, 10).calibrate(np.asarray(hs[1]), y)
    p = model.from_explicit([s0, s1])
    np.testing.assert_allclose(np.asarray(p["layers_1"]["W"]), np.asarray(s1.scaled_weights()))
    # With the same bottom layer, the top layer reproduces s1's logits exactly.
    p["layers_0"] = params["layers_0"]
    np.testing.assert_allclose(_apply(model, p, X), np.asarray(s1.logits(np.asarray(hs[1]))),
                               rtol=1e-5, atol=1e-5)


def test_mlp_on_token_windows(rng):
    V, K = 6, 2
    X = rng.integers(0, V, (50, K))
    model = MLP(num_features=K * V, hidden=(4,), num_classes=V, input_kind="ids", window=K)
    params = model.init_params(0)
    assert params["layers_0"]["W"].shape == (K * V, 4)
    assert _apply(model, params, X).shape == (50, V)


def test_model_errors(digits, rng):
    X, y = digits
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(num_features=4, hidden=(3,), num_classes=2, activation="tanh")
    with pytest.raises(ValueError, match="hidden must be a sequence"):
        MLP(num_features=4, hidden=3, num_classes=2)
    with pytest.raises(ValueError, match="normalize must be one of"):
        SoftmaxRegression(num_features=4, num_classes=2, normalize="l2")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        SoftmaxRegression(num_features=4, num_classes=0)
    model = SoftmaxRegression(num_features=64, num_classes=10)
    with pytest.raises(ValueError, match=r"shape \(64, 9\), expected \(64, 10\)"):
        model.from_explicit(np.zeros((64, 9)))
    with pytest.raises(ValueError, match=r"bias has shape \(3,\)"):
        model.from_explicit((np.zeros((64, 10)), np.zeros(3)))
    with pytest.raises(ValueError, match="normalize='none'"):
        model.from_explicit(xsol.fit_explicit(X, y, 10, normalize="none"))
    ids = rng.integers(0, 5, 100)
    lm_sol = xsol.fit_explicit(ids[:-1], ids[1:], 5)
    with pytest.raises(ValueError, match="'ids' inputs"):
        SoftmaxRegression(num_features=5, num_classes=5).from_explicit(lm_sol)
    with pytest.raises(ValueError, match="window=1"):
        TokenLM(vocab_size=5, window=2).from_explicit(lm_sol)
    mlp = MLP(num_features=64, hidden=(8,), num_classes=10)
    with pytest.raises(ValueError, match="got 1 layers' weights, the model has 2"):
        mlp.from_explicit([np.zeros((64, 8))])
    with pytest.raises(ValueError, match="MLP layer 1"):
        mlp.from_explicit([np.zeros((64, 8)), np.zeros((8, 3))])
    with pytest.raises(ValueError, match="expects 64"):
        model.prepare(np.ones((3, 10)))
    with pytest.raises(ValueError, match="negative"):
        model.prepare(-np.ones((3, 64)))
    with pytest.raises(ValueError, match="window of 3 positions, the model expects 1"):
        TokenLM(vocab_size=5).prepare(np.zeros((4, 3), np.int32))
