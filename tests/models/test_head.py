"""explicit_head: the explicit weights of a dense layer of any Flax model, NNX and linen."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import xsol
from xsol.models import linen as linen_models
from xsol.models import nnx as nnx_models


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:1200], y[:1200], X[1200:], y[1200:]


def _batches(X, y, size=256):
    return [(X[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def _accuracy(logits, y):
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == y))


class TwoLayer(nnx.Module):
    """A two-layer NNX MLP with a ReLU hidden layer and a plain ``nnx.Linear`` head."""

    def __init__(self, rngs):
        self.hidden = nnx.Linear(64, 96, rngs=rngs)
        self.head = nnx.Linear(96, 10, rngs=rngs)

    def features(self, x):
        return jax.nn.relu(self.hidden(x))

    def __call__(self, x):
        return self.head(self.features(x))


class CNN(nn.Module):
    """A small linen CNN: conv + ReLU, flattened, a Dense head."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(10)(x)


def _images(X):
    return X.reshape(-1, 8, 8, 1)


def _cnn_features(params, X):
    h = nn.Conv(8, (3, 3)).apply({"params": params["Conv_0"]}, _images(X))
    return np.asarray(jax.nn.relu(h).reshape(len(X), -1))


# ----------------------------------------------------------------------------- NNX


def test_nnx_head_beats_random_and_equals_fit_explicit(digits):
    X, y, Xt, yt = digits
    model = TwoLayer(nnx.Rngs(0))
    random_acc = _accuracy(model(Xt), yt)
    state, sol = xsol.explicit_head(model, layer="head", batches=_batches(X, y),
                                    return_solution=True)
    assert isinstance(state, nnx.State)
    assert set(nnx.to_pure_dict(state)) == {"head"}
    nnx.update(model, state)
    explicit_acc = _accuracy(model(Xt), yt)
    assert explicit_acc > 0.75 and explicit_acc > random_acc + 0.4, (explicit_acc, random_acc)

    H = np.asarray(model.features(X))
    ref = xsol.fit_explicit(H, y, 10)
    np.testing.assert_allclose(np.asarray(model.head.kernel[...]), np.asarray(ref.weights),
                               atol=1e-5, rtol=0)
    np.testing.assert_array_equal(np.asarray(model.head.bias[...]), np.zeros(10))
    np.testing.assert_allclose(np.asarray(sol.stats.cooc), np.asarray(ref.stats.cooc),
                               rtol=1e-5, atol=1e-6)
    assert int(sol.stats.num_examples) == len(y)
    # A plain Linear on the raw features: logits sum(h) * (h~ W), the explicit predictions.
    Ht = np.asarray(model.features(Xt))
    np.testing.assert_allclose(np.asarray(model(Xt)),
                               Ht.sum(1, keepdims=True) * np.asarray(ref.logits(Ht)),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.argmax(np.asarray(model(Xt)), 1), ref.predict(Ht))


def test_nnx_normalize_none_gives_the_solutions_logits_exactly(digits):
    X, y, Xt, _ = digits
    model = TwoLayer(nnx.Rngs(1))
    nnx.update(model, xsol.explicit_head(model, layer=("head",), batches=_batches(X, y),
                                         normalize="none"))
    ref = xsol.fit_explicit(np.asarray(model.features(X)), y, 10, normalize="none")
    Ht = np.asarray(model.features(Xt))
    np.testing.assert_allclose(np.asarray(model(Xt)), np.asarray(ref.logits(Ht)), rtol=1e-4,
                               atol=1e-4)


def test_calibrate_fits_the_layers_own_logits(digits):
    X, y, Xt, yt = digits
    model = TwoLayer(nnx.Rngs(2))
    plain = xsol.explicit_head(model, layer="head", batches=_batches(X, y))
    calibrated, sol = xsol.explicit_head(model, layer="head", batches=lambda: iter(_batches(X, y)),
                                         calibrate=True, return_solution=True)
    W = np.asarray(plain["head"]["kernel"][...])
    Wc = np.asarray(calibrated["head"]["kernel"][...])
    beta = sol.inverse_temperature
    assert 0 < beta != 1.0
    np.testing.assert_allclose(Wc, beta * W, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(sol.scaled_weights()), Wc, rtol=1e-6)

    def nll(state):
        nnx.update(model, state)
        z = model(X)
        return float(jnp.mean(jax.nn.logsumexp(z, -1) - z[jnp.arange(len(y)), y]))

    nll_plain, pred_plain = nll(plain), np.argmax(np.asarray(model(Xt)), 1)
    nll_cal = nll(calibrated)
    assert nll_cal < nll_plain - 0.05
    np.testing.assert_array_equal(np.argmax(np.asarray(model(Xt)), 1), pred_plain)
    with pytest.raises(ValueError, match="reads the batches twice"):
        xsol.explicit_head(model, layer="head", batches=iter(_batches(X, y)), calibrate=True)


def test_nnx_xsol_layers_use_their_own_normalization(digits):
    X, y, Xt, _ = digits
    model = nnx_models.MLP(64, (32,), 10, activation="relu", rngs=nnx.Rngs(0))
    state, sol = xsol.explicit_head(model, layer="layers.1", batches=_batches(X, y),
                                    return_solution=True)
    assert set(nnx.to_pure_dict(state)["layers"][1]) == {"W", "b"}
    nnx.update(model, state)
    H = np.asarray(model.layer_inputs(Xt)[1])
    np.testing.assert_allclose(np.asarray(model(Xt)), np.asarray(sol.logits(H)), rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="normalizes its input with normalize='l1'"):
        xsol.explicit_head(model, layer="layers.1", batches=_batches(X, y), normalize="none")


def test_nnx_errors(digits):
    X, y, _, _ = digits
    model = TwoLayer(nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"no layer 'output'.*'head', 'hidden'"):
        xsol.explicit_head(model, layer="output", batches=_batches(X, y))
    # The hidden layer's input, X - 0.5, is mostly negative.
    shifted = [(Xb - 0.5, yb) for Xb, yb in _batches(X, y)]
    with pytest.raises(ValueError, match=r"negative in \d+\.\d+% of its entries.*ReLU") as e:
        xsol.explicit_head(model, layer="hidden", batches=shifted)
    frac = float(str(e.value).split("negative in ")[1].split("%")[0]) / 100
    assert frac == pytest.approx(np.mean(X[:256] - 0.5 < 0), abs=1e-4)
    with pytest.raises(ValueError, match="num_classes=12 but layer 'head' has 10 outputs"):
        xsol.explicit_head(model, layer="head", batches=_batches(X, y), num_classes=12)
    with pytest.raises(ValueError, match="batch 1: .*label"):
        xsol.explicit_head(model, layer="head",
                           batches=[(X[:10], y[:10]), (X[10:20], y[10:20] + 10)])
    with pytest.raises(ValueError, match="no batches"):
        xsol.explicit_head(model, layer="head", batches=[])
    with pytest.raises(ValueError, match="holds its own parameters"):
        xsol.explicit_head(model, {"head": {}}, layer="head", batches=_batches(X, y))


def test_a_layer_called_twice_is_refused(digits):
    X, y, _, _ = digits

    class Twice(nnx.Module):
        def __init__(self, rngs):
            self.square = nnx.Linear(64, 64, rngs=rngs)
            self.head = nnx.Linear(64, 10, rngs=rngs)

        def __call__(self, x):
            return self.head(jax.nn.relu(self.square(jax.nn.relu(self.square(x)))))

    with pytest.raises(ValueError, match="called 2 times"):
        xsol.explicit_head(Twice(nnx.Rngs(0)), layer="square", batches=_batches(X, y))


def test_a_one_pass_stream_is_enough(digits):
    X, y, _, _ = digits
    model = TwoLayer(nnx.Rngs(0))
    listed = xsol.explicit_head(model, layer="head", batches=_batches(X, y, 100))
    streamed = xsol.explicit_head(model, layer="head",
                                  batches=(b for b in _batches(X, y, 300)))
    np.testing.assert_allclose(np.asarray(streamed["head"]["kernel"][...]),
                               np.asarray(listed["head"]["kernel"][...]), atol=1e-5)


# ----------------------------------------------------------------------------- linen


def test_linen_cnn_head_beats_random_and_equals_fit_explicit(digits):
    X, y, Xt, yt = digits
    cnn = CNN()
    params = cnn.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)))["params"]
    random_acc = _accuracy(cnn.apply({"params": params}, _images(Xt)), yt)
    batches = [(_images(Xb), yb) for Xb, yb in _batches(X, y)]
    sub = xsol.explicit_head(cnn, params, layer="Dense_0", batches=batches)
    assert set(sub) == {"kernel", "bias"}
    assert sub["kernel"].shape == params["Dense_0"]["kernel"].shape
    new = xsol.models.replace_layer_params(params, "Dense_0", sub)
    assert new["Conv_0"] is params["Conv_0"] and new["Dense_0"] is not params["Dense_0"]
    explicit_acc = _accuracy(cnn.apply({"params": new}, _images(Xt)), yt)
    assert explicit_acc > 0.75 and explicit_acc > random_acc + 0.4, (explicit_acc, random_acc)

    ref = xsol.fit_explicit(_cnn_features(params, X), y, 10)
    np.testing.assert_allclose(np.asarray(sub["kernel"]), np.asarray(ref.weights), atol=1e-5,
                               rtol=0)
    np.testing.assert_array_equal(np.argmax(np.asarray(cnn.apply({"params": new}, _images(Xt))),
                                            1), ref.predict(_cnn_features(params, Xt)))
    # A path tuple and full variables give the same weights.
    again = xsol.explicit_head(cnn, {"params": params}, layer=("Dense_0",), batches=batches)
    np.testing.assert_array_equal(np.asarray(again["kernel"]), np.asarray(sub["kernel"]))


def test_linen_xsol_mlp_layer(digits):
    X, y, Xt, _ = digits
    model = linen_models.MLP(64, (32,), 10, activation="sigmoid")
    params = model.init_params(0)
    sub, sol = xsol.explicit_head(model, params, layer="layers_1", batches=_batches(X, y),
                                  return_solution=True)
    assert set(sub) == {"W", "b"}
    params = xsol.models.replace_layer_params(params, "layers_1", sub)
    H = np.asarray(linen_models.layer_inputs(model, params, Xt)[1])
    np.testing.assert_allclose(np.asarray(model.apply({"params": params}, Xt)),
                               np.asarray(sol.logits(H)), rtol=1e-5, atol=1e-5)


def test_linen_errors(digits):
    X, y, _, _ = digits
    cnn = CNN()
    params = cnn.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)))["params"]
    batches = [(_images(Xb), yb) for Xb, yb in _batches(X, y)]
    with pytest.raises(ValueError, match=r"no layer 'Dense_1'.*'Conv_0', 'Dense_0'"):
        xsol.explicit_head(cnn, params, layer="Dense_1", batches=batches)
    with pytest.raises(ValueError, match="'Conv_0' is not a dense layer"):
        xsol.explicit_head(cnn, params, layer="Conv_0", batches=batches)
    with pytest.raises(ValueError, match="needs its params"):
        xsol.explicit_head(cnn, layer="Dense_0", batches=batches)

    class NoReLU(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(8, (3, 3))(x).reshape(x.shape[0], -1)
            return nn.Dense(10, name="head")(x)

    model = NoReLU()
    p = model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)))["params"]
    with pytest.raises(ValueError,
                       match=r"'head' is negative in \d+\.\d+% .*ReLU, sigmoid or softmax"):
        xsol.explicit_head(model, p, layer="head", batches=batches)
