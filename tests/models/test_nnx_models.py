"""NNX models: the linen models' logits, explicit constructors, and training with nnx.Optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import xsol
from xsol.models import linen as linen_models
from xsol.models.nnx import MLP, SoftmaxRegression, TokenLM

_TIMES = ("seconds", "wall_seconds")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:800].astype(np.float32), y[:800], X[800:1100].astype(np.float32), y[800:1100]


@pytest.fixture(scope="module")
def tokens():
    ids = np.random.default_rng(0).integers(0, 7, 600)
    K = 3
    X = np.stack([ids[k:len(ids) - K + k] for k in range(K)], 1)
    return X, ids[K:]


def _train(*args, **kwargs):
    return xsol.train.train_and_evaluate(*args, progress=False, **kwargs)


def _linen_logits(module, params, X):
    return np.asarray(module.apply({"params": params}, jnp.asarray(X)))


# ----------------------------------------------------------------------------- logits


def test_softmax_regression_matches_linen_and_explicit(digits):
    X, y, _, _ = digits
    model = SoftmaxRegression(64, 10, rngs=nnx.Rngs(0))
    lin = linen_models.SoftmaxRegression(64, 10)
    np.testing.assert_array_equal(np.asarray(model(X)),
                                  _linen_logits(lin, model.linen_params(), X))
    sol = xsol.fit_explicit(X, y, 10)
    for s in (sol, sol.calibrate(X, y)):
        m = SoftmaxRegression.from_explicit(s)
        assert (m.num_features, m.num_classes, m.normalize) == (64, 10, "l1")
        np.testing.assert_allclose(np.asarray(m(X)), np.asarray(s.logits(X)), rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_array_equal(np.asarray(m(X)),
                                      _linen_logits(lin, lin.from_explicit(s), X))
    # explicit_params loads into an existing model; from_linen is the way back.
    nnx.update(model, model.explicit_params(sol))
    np.testing.assert_array_equal(np.asarray(model.W[...]), np.asarray(sol.weights))
    back = SoftmaxRegression.from_linen(lin, lin.from_explicit(sol))
    np.testing.assert_array_equal(np.asarray(back(X)), np.asarray(model(X)))
    assert model.linen() == lin


def test_token_lm_matches_linen(tokens):
    X, y = tokens
    sol = xsol.fit_explicit(X, y, 7, vocab_size=7)
    model = TokenLM.from_explicit(sol)
    assert (model.vocab_size, model.window, model.num_outputs) == (7, 3, 7)
    lin = linen_models.TokenLM(vocab_size=7, window=3)
    np.testing.assert_array_equal(np.asarray(model(jnp.asarray(X, jnp.int32))),
                                  _linen_logits(lin, lin.from_explicit(sol), X))
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(X, jnp.int32))),
                               np.asarray(sol.logits(X)), rtol=1e-6, atol=1e-6)
    bigram = TokenLM(5, rngs=1)
    flat = jnp.asarray([0, 4, 2], jnp.int32)
    np.testing.assert_array_equal(np.asarray(bigram(flat)),
                                  _linen_logits(linen_models.TokenLM(5), bigram.linen_params(),
                                                flat))


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "softmax"])
def test_mlp_matches_linen_for_the_same_params(digits, activation):
    X, _, _, _ = digits
    model = MLP(64, (24, 12), 10, activation=activation, rngs=nnx.Rngs(4))
    lin = model.linen()
    params = model.linen_params()
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, lin.init_params(0))
    np.testing.assert_array_equal(np.asarray(model(X)), _linen_logits(lin, params, X))
    for a, b in zip(model.layer_inputs(X), linen_models.layer_inputs(lin, params, X)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # And the other way: linen params into an NNX model.
    lp = lin.init_params(7)
    np.testing.assert_array_equal(np.asarray(MLP.from_linen(lin, lp)(X)),
                                  _linen_logits(lin, lp, X))


def test_mlp_from_explicit_per_layer(digits):
    X, y, _, _ = digits
    model = MLP(64, (16,), 10, activation="relu", rngs=nnx.Rngs(0))
    s0 = xsol.fit_explicit(X, np.argmax(X[:, :16], 1), 16)  # a 16-way target code
    H = np.asarray(model.layer_inputs(X)[1])
    s1 = xsol.fit_explicit(H, y, 10)
    built = MLP.from_explicit([s0, s1], activation="relu")
    assert built.sizes == [64, 16, 10] and built.layer_normalizations() == ["l1", "l1"]
    lin = linen_models.MLP(64, (16,), 10, activation="relu")
    np.testing.assert_array_equal(np.asarray(built(X)),
                                  _linen_logits(lin, lin.from_explicit([s0, s1]), X))
    Ws = built.layer_weights()
    np.testing.assert_array_equal(np.asarray(Ws[1][0]), np.asarray(s1.weights))


def test_config_errors_mirror_linen(digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        SoftmaxRegression(64, 0)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP(64, (8,), 10, activation="tanh")
    with pytest.raises(ValueError, match="hidden must be a sequence"):
        MLP(64, 8, 10)
    sol = xsol.fit_explicit(X, y, 10, normalize="none")
    with pytest.raises(ValueError, match="normalize='none' but the layer uses normalize='l1'"):
        SoftmaxRegression(64, 10).explicit_params(sol)
    with pytest.raises(ValueError, match=r"weights have shape \(64, 10\), expected \(64, 9\)"):
        SoftmaxRegression(64, 9).explicit_params(sol.weights)


def test_init_params_is_seeded_and_leaves_the_model(digits):
    model = SoftmaxRegression(64, 10, rngs=nnx.Rngs(0))
    W = np.asarray(model.W[...])
    a, b = model.init_params(1), model.init_params(1)
    np.testing.assert_array_equal(np.asarray(a["W"][...]), np.asarray(b["W"][...]))
    assert not np.array_equal(np.asarray(a["W"][...]), W)
    np.testing.assert_array_equal(np.asarray(model.W[...]), W)
    np.testing.assert_array_equal(np.asarray(model.init_params(0)["W"][...]), W)


# ----------------------------------------------------------------------------- training


def _rows(traj):
    return [{k: v for k, v in r.items() if k not in _TIMES} for r in traj.rows]


def test_same_trajectory_as_linen_from_the_explicit_init(digits):
    X, y, Xt, yt = digits
    sol = xsol.fit_explicit(X, y, 10)
    kw = dict(steps=list(range(21)), learning_rate=1e-2, test=(Xt, yt))
    lp, lt = _train(linen_models.SoftmaxRegression(64, 10), sol, "adam", X, y, **kw)
    model = SoftmaxRegression(64, 10, rngs=nnx.Rngs(5))
    W0 = np.asarray(model.W[...])
    trained, nt = _train(model, sol, optax.adam(1e-2), X, y, **kw)
    assert isinstance(trained, SoftmaxRegression) and trained is not model
    np.testing.assert_array_equal(np.asarray(model.W[...]), W0)  # the caller's model is kept
    assert nt.meta["framework"] == "nnx" and nt.meta["model"] == "SoftmaxRegression"
    assert nt.meta["init"] == "explicit"
    a, b = _rows(lt), _rows(nt)
    assert [r["step"] for r in b] == list(range(21))
    for r, s in zip(a, b):
        assert set(r) == set(s)
        for k in r:
            assert s[k] == pytest.approx(r[k], abs=1e-5), (r["step"], k)
    assert b[-1]["train_loss"] < b[0]["train_loss"] - 0.05  # it trains
    np.testing.assert_allclose(np.asarray(trained.W[...]), np.asarray(lp["W"]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(trained.b[...]), np.asarray(lp["b"]), atol=1e-5)


def test_minibatch_mlp_and_token_lm_train_like_linen(digits, tokens):
    X, y, _, _ = digits
    model = MLP(64, (16,), 10, activation="relu", rngs=nnx.Rngs(3))
    kw = dict(steps=[0, 4, 8], learning_rate=0.5, batch_size=32, seed=2)
    _, lt = _train(model.linen(), model.linen_params(), "sgd", X, y, **kw)
    trained, nt = _train(model, "model", "sgd", X, y, **kw)
    for r, s in zip(_rows(lt), _rows(nt)):
        assert s["train_loss"] == pytest.approx(r["train_loss"], abs=1e-5)
    assert nt.meta["init"] == "model"
    assert _rows(nt)[0]["train_loss"] != _rows(nt)[-1]["train_loss"]

    Xi, yi = tokens
    sol = xsol.fit_explicit(Xi, yi, 7, vocab_size=7)
    _, tt = _train(TokenLM.from_explicit(sol), sol, "adam", Xi, yi, steps=[0, 2],
                   learning_rate=1e-2)
    assert tt.at(0)["train_loss"] == pytest.approx(sol.nll(Xi, yi), abs=1e-5)
    assert "train_perplexity" in tt.at(2)


def test_nnx_init_choices_and_errors(digits):
    X, y, _, _ = digits
    model = SoftmaxRegression(64, 10)
    state = model.init_params(3)
    _, t1 = _train(model, state, "adam", X, y, steps=[0], learning_rate=1e-2)
    _, t2 = _train(model, nnx.to_pure_dict(state), "adam", X, y, steps=[0], learning_rate=1e-2)
    _, t3 = _train(model, "random", "adam", X, y, steps=[0], learning_rate=1e-2, seed=3)
    assert t1.meta["init"] == "params"
    assert t1.at(0)["train_loss"] == t2.at(0)["train_loss"] == t3.at(0)["train_loss"]
    _, tz = _train(model, "zeros", "adam", X, y, steps=[0], learning_rate=1e-2)
    assert tz.at(0)["train_loss"] == pytest.approx(np.log(10), abs=1e-6)
    with pytest.raises(ValueError, match="init params have shapes"):
        _train(model, {"W": np.zeros((3, 10)), "b": np.zeros(10)}, "adam", X, y, steps=[0],
               learning_rate=1e-2)

    class Plain(nnx.Module):
        def __init__(self):
            self.lin = nnx.Linear(64, 10, rngs=nnx.Rngs(0))

        def __call__(self, x):
            return self.lin(x)

    with pytest.raises(ValueError, match="xsol model interface"):
        _train(Plain(), "model", "adam", X, y, steps=[0], learning_rate=1e-2)
