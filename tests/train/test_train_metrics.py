"""Row-centered distance and cosine: invariances and known values."""

import numpy as np
import pytest

from xsol.train.metrics import (

    center_rows,

    row_centered_cosine,

    row_centered_distance,

    weight_agreement,

)


@pytest.fixture
def W(rng):
    return rng.normal(size=(12, 5)).astype(np.float32)


def test_invariant_to_a_constant_per_row(W, rng):
    R = rng.normal(size=W.shape).astype(np.float32)
    c = rng.normal(size=(12, 1)).astype(np.float32) * 10
    d = rng.normal(size=(12, 1)).astype(np.float32) * 10
    for f in (row_centered_cosine, row_centered_distance):
        np.testing.assert_allclose(float(f(W + c, R + d)), float(f(W, R)), rtol=1e-4)
    # A constant per column is not a symmetry: it must change the figures.
    col = rng.normal(size=(1, 5)).astype(np.float32) * 3
    assert abs(float(row_centered_cosine(W + col, R)) - float(row_centered_cosine(W, R))) > 1e-3


def test_known_values(W):
    assert float(row_centered_cosine(W, W)) == pytest.approx(1.0, abs=1e-6)
    assert float(row_centered_cosine(-W, W)) == pytest.approx(-1.0, abs=1e-6)
    assert float(row_centered_cosine(3.0 * W + 7.0, W)) == pytest.approx(1.0, abs=1e-6)
    assert float(row_centered_distance(W, W)) == 0.0
    assert float(row_centered_distance(-W, W)) == pytest.approx(2.0, rel=1e-6)
    assert float(row_centered_distance(3.0 * W, W)) == pytest.approx(2.0, rel=1e-6)
    assert float(row_centered_distance(np.zeros_like(W), W)) == pytest.approx(1.0, rel=1e-6)
    # Orthogonal after centering: cosine 0, distance sqrt(2) for equal norms.
    A = np.array([[1.0, -1.0, 0.0, 0.0]], np.float32)
    B = np.array([[0.0, 0.0, 1.0, -1.0]], np.float32)
    assert float(row_centered_cosine(A, B)) == pytest.approx(0.0, abs=1e-7)
    assert float(row_centered_distance(A, B)) == pytest.approx(np.sqrt(2), rel=1e-6)


def test_degenerate_cases(W):
    const = np.full_like(W, -np.log(5.0))  # e.g. rows of an unseen feature: -log N
    np.testing.assert_array_equal(np.asarray(center_rows(const)), 0.0)
    assert float(row_centered_cosine(const, W)) == 0.0
    assert np.isnan(float(row_centered_distance(W, const)))


def test_weight_agreement_folds_the_bias_of_l1_layers(W, rng):
    b = rng.normal(size=5).astype(np.float32)
    # x~ (W - 1 b^T) + b == x~ W for L1-normalized x~: the same function.
    moved = [(W - b[None, :], b)]
    ref = [(W, np.zeros(5, np.float32))]
    folded = weight_agreement(moved, ref, ["l1"])
    assert folded["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert folded["distance"] == pytest.approx(0.0, abs=1e-5)
    plain = weight_agreement(moved, ref, ["l1"], fold_bias=False)
    assert plain["cosine"] < 0.999
    # Without L1-normalized inputs the bias is not interchangeable: never folded.
    assert weight_agreement(moved, ref, ["none"])["cosine"] == pytest.approx(plain["cosine"])


def test_weight_agreement_per_layer(W, rng):
    V = rng.normal(size=(5, 3)).astype(np.float32)
    z5, z3 = np.zeros(5, np.float32), np.zeros(3, np.float32)
    row = weight_agreement([(W, z5), (-V, z3)], [(W, z5), (V, z3)], ["l1", "l1"])
    assert row["cosine_0"] == pytest.approx(1.0, abs=1e-6)
    assert row["cosine_1"] == pytest.approx(-1.0, abs=1e-6)
    a, v = np.sum(np.asarray(center_rows(W)) ** 2), np.sum(np.asarray(center_rows(V)) ** 2)
    assert row["cosine"] == pytest.approx((a - v) / (a + v), rel=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        weight_agreement([(W, z5)], [(W[:3], z5)], ["l1"])
    with pytest.raises(ValueError, match="one of each per layer"):
        weight_agreement([(W, z5)], [(W, z5), (V, z3)], ["l1"])
