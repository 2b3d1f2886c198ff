"""The fast paths give the same statistics as the plain ones.

Covers the chunked dense pass (cache-sized chunks, padded last chunk), the
zero-copy hand-over of aligned arrays and the numpy copy of unaligned ones,
the in-place (donated) token counting of ``accumulate`` and the one-pass range
checks of ids and labels.
"""

import importlib

import jax.numpy as jnp
import numpy as np
import pytest

import xsol
from xsol.core import inputs

acc_mod = importlib.import_module("xsol.stats.accumulation")


def _misaligned(a):
    buf = np.empty(a.nbytes + 64, np.uint8)
    off = (-buf.ctypes.data) % 64 + a.dtype.itemsize
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.bool_])
def test_chunked_dense_pass_equals_single_step(monkeypatch, rng, dtype):
    X = (rng.random((1037, 40)) * 5).astype(dtype)
    y = rng.integers(0, 7, 1037)
    monkeypatch.setattr(acc_mod, "DENSE_CHUNK_BYTES", 40 * 4 * 64)  # 64-row chunks
    assert acc_mod.chunk_rows(1037, 40, X.dtype.itemsize) == 64
    chunked = xsol.accumulate([(X, y)], 7, progress=False)
    monkeypatch.setattr(acc_mod, "DENSE_CHUNK_BYTES", 1 << 30)
    whole = xsol.accumulate([(X, y)], 7, progress=False)
    np.testing.assert_allclose(np.asarray(chunked.cooc), np.asarray(whole.cooc), rtol=2e-6,
                               atol=1e-7)
    np.testing.assert_array_equal(np.asarray(chunked.label_counts), np.bincount(y, minlength=7))
    assert int(chunked.num_examples) == 1037


def test_chunked_pass_still_refuses_bad_values_in_a_late_chunk(monkeypatch, rng):
    X = rng.random((500, 16)).astype(np.float32)
    X[431, 3] = -1.0
    monkeypatch.setattr(acc_mod, "DENSE_CHUNK_BYTES", 16 * 4 * 48)
    with pytest.raises(xsol.BatchError, match="negative values .*row 431"):
        xsol.accumulate([(X, rng.integers(0, 3, 500))], 3, progress=False)
    X[431, 3] = np.nan
    with pytest.raises(xsol.BatchError, match="NaN or infinity"):
        xsol.accumulate([(X, rng.integers(0, 3, 500))], 3, progress=False)


def test_unaligned_and_aligned_inputs_give_the_same_statistics(monkeypatch, rng):
    X = rng.random((300, 24)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    monkeypatch.setattr(acc_mod, "DENSE_CHUNK_BYTES", 24 * 4 * 32)
    a = inputs.aligned(X)
    b = _misaligned(X)
    assert inputs.is_aligned(a) and not inputs.is_aligned(b)
    assert inputs.aligned(a) is a
    sa = xsol.accumulate([(a, y)], 4, progress=False)
    # Unaligned (or not C-contiguous) input is streamed chunk by chunk through
    # the same kernel, one chunk per call: the same sums up to float32 rounding
    # (the compiled product of one chunk and of a batch of chunks may block the
    # additions differently).
    for other in (b, np.asfortranarray(X)):
        so = xsol.accumulate([(other, y)], 4, progress=False)
        np.testing.assert_allclose(np.asarray(sa.cooc), np.asarray(so.cooc), rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(sa.label_counts), np.asarray(so.label_counts))


def test_aligned_converts_and_aligns(rng):
    x = rng.integers(0, 100, (7, 3)).astype(np.int64)
    out = inputs.aligned(x, np.int32)
    assert out.dtype == np.int32 and inputs.is_aligned(out)
    np.testing.assert_array_equal(out, x)
    e = inputs.aligned_empty((5, 2), np.float32)
    assert e.shape == (5, 2) and inputs.is_aligned(e)


def test_accumulate_counts_ids_in_place_but_leaves_callers_state_intact(rng):
    V = 13
    ids = rng.integers(0, V, 2001)
    X, y = ids[:-1], ids[1:]
    first = xsol.accumulate([(X[:1000], y[:1000])], V, vocab_size=V, progress=False)
    kept = np.asarray(first.cooc).copy()
    resumed = xsol.accumulate([(X[1000:], y[1000:])], V, vocab_size=V, state=first,
                              progress=False)
    np.testing.assert_array_equal(np.asarray(first.cooc), kept)  # not donated away
    whole = xsol.fit_explicit(X, y, V, vocab_size=V).stats
    for a, b in zip(resumed, whole):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("K", [1, 3])
def test_update_and_accumulate_agree_with_histogram_for_large_and_small_tables(rng, K):
    # Small batch next to a large table (scatter sums) and a large batch (table sums).
    V = 40
    for B in (20, 5000):
        X = rng.integers(0, V, (B, K)).astype(np.int32)
        y = rng.integers(0, V, B).astype(np.int32)
        acc = xsol.stats.token_cooccurrence(V, V, K)
        s = acc.update(acc.init(), X, y)
        ref = np.zeros((K * V, V), np.int64)
        for k in range(K):
            np.add.at(ref, (k * V + X[:, k], y), 1)
        np.testing.assert_array_equal(np.asarray(s.cooc), ref)
        np.testing.assert_array_equal(np.asarray(s.feature_totals), ref.sum(1))
        np.testing.assert_array_equal(np.asarray(s.label_counts), np.bincount(y, minlength=V))
        a = xsol.accumulate([(X, y)], V, vocab_size=V, progress=False)
        for u, v in zip(a, s):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_padding_labels_count_nothing_in_batch_stats(rng):
    from xsol.stats import accumulators as st

    X = jnp.asarray(rng.integers(0, 5, (30, 2)).astype(np.int32))
    y = jnp.asarray(np.r_[rng.integers(0, 5, 20), np.full(10, 5)].astype(np.int32))
    b = st.token_batch_stats(X, y, 5, 5)
    ref = st.token_batch_stats(X[:20], y[:20], 5, 5)
    for u, v in zip(b, ref):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16])
def test_one_pass_range_checks(dtype):
    ok = np.array([0, 3, 4], dtype)
    assert inputs.check_ids(ok, 5).dtype == np.int32
    inputs.check_labels(ok, 3, 5)
    with pytest.raises(ValueError, match="token id 5 is outside"):
        inputs.check_ids(np.array([0, 5], dtype), 5)
    with pytest.raises(ValueError, match="label 5 is outside"):
        inputs.check_labels(np.array([0, 5], dtype), 2, 5)
    if np.issubdtype(dtype, np.signedinteger):
        with pytest.raises(ValueError, match="token id -1 is outside"):
            inputs.check_ids(np.array([0, -1], dtype), 5)
        with pytest.raises(ValueError, match="label -1 is outside"):
            inputs.check_labels(np.array([-1, 0], dtype), 2, None)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.bool_])
def test_dense_chunk_partials_are_the_per_chunk_products(rng, dtype):
    X = (rng.random((96, 10)) * 4).astype(dtype)
    y = rng.integers(0, 5, 96).astype(np.int32)
    y[7] = 5  # padding label: counts nothing
    for normalize in ("l1", "none"):
        P, x_min, finite = xsol.stats.accumulators.dense_chunk_partials(
            X, y, rows=32, num_classes=5, normalize=normalize)
        assert P.shape == (3, 5, 10) and bool(finite) and float(x_min) >= 0
        x = X.astype(np.float64)
        if normalize == "l1":
            s = x.sum(1, keepdims=True)
            x = x / np.where(s > 0, s, 1)
        onehot = np.eye(6)[y][:, :5]
        for c in range(3):
            ref = onehot[32 * c:32 * (c + 1)].T @ x[32 * c:32 * (c + 1)]
            np.testing.assert_allclose(np.asarray(P[c]), ref, rtol=1e-6, atol=1e-7)


def test_one_device_pass_with_a_last_partial_chunk_is_exact_for_counts(monkeypatch, rng):
    # Integer features, no normalization: every chunk sum is exact in float32 and
    # the float64 total is exact, past 2**24 in total.
    monkeypatch.setattr(acc_mod, "EXACT_CHUNK_ROWS", 64)
    X = rng.integers(200, 256, (1000, 3)).astype(np.uint8)
    X = np.repeat(X, 100, axis=0)  # 100k rows: column totals near 2.3e7 > 2**24
    y = (rng.random(len(X)) < 0.1) * rng.integers(1, 4, len(X))  # 90% in class 0
    assert acc_mod.dense_pass_rows(len(X), 3, 1) == 64 and len(X) % 64
    got = xsol.accumulate([(X, y)], 4, progress=False, normalize="none")
    ref = X.T.astype(np.int64) @ np.eye(4, dtype=np.int64)[y]
    assert ref.max() > 2 ** 24
    np.testing.assert_array_equal(np.asarray(got.cooc), ref)
    np.testing.assert_array_equal(np.asarray(got.feature_totals), ref.sum(1))
    np.testing.assert_array_equal(np.asarray(got.label_counts), np.bincount(y, minlength=4))


def test_a_bad_value_in_the_last_partial_chunk_is_refused(monkeypatch, rng):
    monkeypatch.setattr(acc_mod, "EXACT_CHUNK_ROWS", 64)
    X = rng.random((200, 5)).astype(np.float32)
    X[197, 2] = -0.5  # rows 192..199 are the partial chunk
    with pytest.raises(xsol.BatchError, match="negative values .*row 197"):
        xsol.accumulate([(X, rng.integers(0, 3, 200))], 3, progress=False)
    X[197, 2] = np.inf
    with pytest.raises(xsol.BatchError, match="NaN or infinity"):
        xsol.accumulate([(X, rng.integers(0, 3, 200))], 3, progress=False)
