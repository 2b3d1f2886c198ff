"""Property-based tests: random shapes, batch splits and dtypes against a NumPy float64 reference,
and generated bad inputs that must raise a clear error rather than return a number."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xsol
from xsol.stats.accumulation import BatchError

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _reference(X, y, N, normalize):
    """``F = X~^T onehot(y)`` and its sums in float64.

    Values below float32's smallest normal number (subnormals, < 1.2e-38) are
    zero on the device: XLA's CPU backend flushes them (so do GPUs).
    """
    X = np.asarray(X, np.float64)
    X = np.where(X < np.finfo(np.float32).tiny, 0.0, X)
    if normalize == "l1":
        s = X.sum(1, keepdims=True)
        X = np.divide(X, s, out=np.zeros_like(X), where=s > 0)
    F = X.T @ np.eye(N)[y]
    return F, F.sum(1), np.bincount(y, minlength=N)


@st.composite
def dense_problem(draw):
    B = draw(st.integers(1, 60))
    M = draw(st.integers(1, 12))
    N = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.uint8, np.bool_]))
    if dtype in (np.float32, np.float64):
        elements = st.floats(0, 50, width=32)
    elif dtype == np.uint8:
        elements = st.integers(0, 255)
    else:
        elements = st.booleans()
    X = draw(hnp.arrays(dtype, (B, M), elements=elements))
    y = draw(hnp.arrays(np.int64, (B,), elements=st.integers(0, N - 1)))
    cuts = sorted(draw(st.lists(st.integers(1, B - 1), max_size=4, unique=True))) if B > 1 else []
    normalize = draw(st.sampled_from(["l1", "none"]))
    return X, y, N, cuts, normalize


def test_subnormal_features_count_as_zero():
    X = np.array([[1e-45, 2e-45], [3.0, 1.0]], np.float32)  # row 0: subnormals only
    got = xsol.accumulate([(X, np.array([0, 1]))], 2, kind="dense", progress=False)
    np.testing.assert_allclose(np.asarray(got.cooc), [[0, 0.75], [0, 0.25]])
    assert int(got.num_examples) == 2  # the row still counts as an example


@SETTINGS
@given(dense_problem())
def test_batched_dense_statistics_equal_numpy_float64(problem):
    X, y, N, cuts, normalize = problem
    bounds = [0, *cuts, len(y)]
    batches = [(X[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    got = xsol.accumulate(batches, N, kind="dense", normalize=normalize, progress=False)
    one = xsol.accumulate([(X, y)], N, kind="dense", normalize=normalize, progress=False)
    F, f, n = _reference(X, y, N, normalize)
    scale = max(1.0, float(np.abs(F).max()))
    np.testing.assert_allclose(np.asarray(got.cooc), F, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(np.asarray(got.feature_totals), f, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_array_equal(np.asarray(got.label_counts), n)
    np.testing.assert_allclose(np.asarray(got.cooc), np.asarray(one.cooc), rtol=1e-5,
                               atol=1e-6 * scale)
    assert int(got.num_examples) == len(y)


@st.composite
def token_problem(draw):
    V = draw(st.integers(1, 30))
    K = draw(st.integers(1, 3))
    B = draw(st.integers(1, 80))
    X = draw(hnp.arrays(draw(st.sampled_from([np.int32, np.int64, np.uint16])), (B, K),
                        elements=st.integers(0, V - 1)))
    y = draw(hnp.arrays(np.int64, (B,), elements=st.integers(0, V - 1)))
    cuts = sorted(draw(st.lists(st.integers(1, B - 1), max_size=4, unique=True))) if B > 1 else []
    return X, y, V, K, cuts


@SETTINGS
@given(token_problem())
def test_token_counts_are_exact_for_any_split_and_merge(problem):
    X, y, V, K, cuts = problem
    bounds = [0, *cuts, len(y)]
    parts = [xsol.accumulate([(X[a:b], y[a:b])], V, vocab_size=V, progress=False)
             for a, b in zip(bounds[:-1], bounds[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged = xsol.stats.accumulators.merge(merged, p)
    F = np.zeros((K * V, V), np.int64)
    for k in range(K):
        np.add.at(F, (k * V + X[:, k].astype(np.int64), y), 1)
    np.testing.assert_array_equal(np.asarray(merged.cooc), F)
    sparse = xsol.stats.sparse_accumulate([(X[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
                                    V, buffer_keys=7)
    np.testing.assert_array_equal(np.asarray(sparse.to_dense().cooc), F)


def _bad_dense_inputs():
    good = np.ones((4, 3), np.float32)
    nan = good.copy()
    nan[1, 2] = np.nan
    neg = good.copy()
    neg[2, 0] = -0.5
    inf = good.copy()
    inf[0, 0] = np.inf
    return st.sampled_from([
        ("NaN", nan, np.arange(4) % 2, 2, {}),
        ("negative", neg, np.arange(4) % 2, 2, {}),
        ("infinity", inf, np.arange(4) % 2, 2, {}),
        ("label out of range", good, np.array([0, 1, 2, 5]), 3, {}),
        ("negative label", good, np.array([0, -1, 1, 0]), 2, {}),
        ("length mismatch", good, np.array([0, 1]), 2, {}),
        ("empty", good[:0], np.array([], int), 2, {}),
        ("1-D features", np.ones(4, np.float32), np.arange(4) % 2, 2, {"kind": "dense"}),
        ("fractional ids", good + 0.5, np.arange(4) % 2, 2, {"kind": "ids", "vocab_size": 3}),
        ("id out of range", np.array([[0], [9]]), np.array([0, 1]), 2, {"vocab_size": 3}),
        ("num_classes a string", good, np.arange(4) % 2, "3", {}),
        ("smoothing too small", good, np.arange(4) % 2, 2, {"smoothing": 1e-45}),
        ("smoothing negative", good, np.arange(4) % 2, 2, {"smoothing": -1.0}),
        ("unknown normalize", good, np.arange(4) % 2, 2, {"normalize": "l2"}),
        ("float labels", good, np.array([0.5, 1, 0, 1]), 2, {}),
    ])


@settings(max_examples=40, deadline=None)
@given(_bad_dense_inputs(), st.booleans())
def test_every_bad_input_raises_a_clear_error(case, streamed):
    name, X, y, N, kw = case
    with pytest.raises((ValueError, TypeError)) as e:
        if streamed and "smoothing" not in kw:
            xsol.accumulate([(X, y)], N, progress=False,
                            **{k: v for k, v in kw.items() if k != "smoothing"})
        else:
            xsol.fit_explicit(X, y, N, **kw)
    message = str(e.value)
    assert len(message) > 20, (name, message)  # says what was wrong, not a bare repr
    if isinstance(e.value, BatchError):
        assert message.startswith("batch 0:")
