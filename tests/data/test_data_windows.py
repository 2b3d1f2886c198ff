"""Context windows and the contiguous train/held-out split."""

import numpy as np
import pytest

from xsol.data import context_windows, split_tokens


def _slow_windows(ids, k):
    xs, ys = [], []
    for t in range(len(ids) - k):
        xs.append([ids[t + j] for j in range(k)])
        ys.append(ids[t + k])
    return np.array(xs, dtype=np.int32).reshape(-1, k), np.array(ys, dtype=np.int32)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 49])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16])
def test_windows_match_slow_reference(k, dtype):
    ids = np.random.default_rng(k).integers(0, 30, 50).astype(dtype)
    X, y = context_windows(ids, k)
    Xr, yr = _slow_windows(ids.tolist(), k)
    assert X.dtype == np.int32 and y.dtype == np.int32
    assert X.shape == (50 - k, k) and y.shape == (50 - k,)
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
    assert X.flags.c_contiguous and X.flags.writeable


def test_column_zero_is_oldest():
    X, y = context_windows([10, 11, 12, 13], 2)
    assert X.tolist() == [[10, 11], [11, 12]] and y.tolist() == [12, 13]


def test_view_mode_shares_memory():
    ids = np.arange(10, dtype=np.int32)
    X, y = context_windows(ids, 3, copy=False)
    assert np.shares_memory(X, ids) and not X.flags.writeable
    np.testing.assert_array_equal(X, _slow_windows(list(range(10)), 3)[0])


@pytest.mark.parametrize("k", [0, -1, 1.5, True, None])
def test_bad_window(k):
    with pytest.raises(ValueError, match="window must be a positive integer"):
        context_windows(np.arange(5), k)


@pytest.mark.parametrize("k", [5, 6])
def test_window_too_long(k):
    with pytest.raises(ValueError, match=rf"window \({k}\) must be smaller than the number of tokens \(5\)"):
        context_windows(np.arange(5), k)


def test_bad_ids():
    with pytest.raises(ValueError, match="1-D"):
        context_windows(np.zeros((3, 3), np.int32), 1)
    with pytest.raises(ValueError, match="integers"):
        context_windows(np.zeros(5), 1)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*31\)"):
        context_windows(np.array([0, -1, 2]), 1)


def test_split_is_contiguous_and_deterministic():
    ids = np.arange(100)
    tr, te = split_tokens(ids, held_out=0.1)
    assert tr.tolist() == list(range(90)) and te.tolist() == list(range(90, 100))
    tr, te = split_tokens(ids, 0.25)
    assert len(tr) == 75 and len(te) == 25 and tr.dtype == np.int32
    # Windows built per part never use a token of the other part.
    Xtr, ytr = context_windows(tr, 3)
    assert Xtr.max() < 75 and ytr.max() < 75
    Xte, _ = context_windows(te, 3)
    assert Xte.min() >= 75


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, "0.1"])
def test_split_bad_fraction(frac):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_tokens(np.arange(10), frac)


def test_split_too_short():
    with pytest.raises(ValueError, match="both parts must be non-empty"):
        split_tokens(np.arange(3), 0.1)
