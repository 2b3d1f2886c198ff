"""Bad input gets a clear error naming what was wrong, and nothing computed is lost."""

import numpy as np
import pytest

import xsol
from xsol.core.memory import MemoryBudgetError, check_fits


def test_negative_features(rng):
    X = rng.random((20, 4)).astype(np.float32)
    X[3, 2] = -0.5
    with pytest.raises(ValueError, match=r"negative.*row 3, column 2.*x >= 0"):
        xsol.fit_explicit(X, np.zeros(20, int), 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features(rng, bad):
    X = rng.random((20, 4)).astype(np.float32)
    X[5, 1] = bad
    with pytest.raises(ValueError, match=r"(NaN or infinity|negative)"):
        xsol.fit_explicit(X, np.zeros(20, int), 2)


def test_nan_features_in_softmax_nll(rng):
    X = rng.random((5, 3)).astype(np.float32)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        xsol.solvers.softmax_nll(np.zeros((3, 2)), np.zeros(2), X, np.zeros(5, int))


@pytest.mark.parametrize("label", [-1, 3])
def test_labels_out_of_range(rng, label):
    y = np.zeros(10, int)
    y[4] = label
    with pytest.raises(ValueError, match=rf"label {label} is outside \[0, 3\)"):
        xsol.fit_explicit(rng.random((10, 2)), y, 3)


def test_ids_out_of_range():
    with pytest.raises(ValueError, match=r"token id 7 is outside \[0, 5\)"):
        xsol.fit_explicit(np.array([0, 7, 1]), np.array([1, 2, 3]), 5, vocab_size=5)
    with pytest.raises(ValueError, match=r"token id -2 is outside"):
        xsol.fit_explicit(np.array([0, -2, 1]), np.array([1, 2, 3]), 5)


def test_mismatched_lengths(rng):
    with pytest.raises(ValueError, match="X has 10 examples but y has 9 labels"):
        xsol.fit_explicit(rng.random((10, 3)), np.zeros(9, int), 2)


def test_mismatched_feature_width_between_batches(rng):
    batches = [(rng.random((4, 3)), np.zeros(4, int)), (rng.random((4, 5)), np.zeros(4, int))]
    with pytest.raises(xsol.BatchError, match="batch 1: features have 5 columns, expected 3"):
        xsol.accumulate(batches, 2, progress=False)


def test_weight_shape_mismatch_in_softmax_nll(rng):
    with pytest.raises(ValueError, match="X has 4 features but weights have 3 rows"):
        xsol.solvers.softmax_nll(np.zeros((3, 2)), np.zeros(2), rng.random((5, 4)), np.zeros(5, int))
    with pytest.raises(ValueError, match=r"bias \(N,\)"):
        xsol.solvers.softmax_nll(np.zeros((3, 2)), np.zeros(3), rng.random((5, 3)), np.zeros(5, int))


def test_empty_data():
    with pytest.raises(ValueError, match="empty"):
        xsol.fit_explicit(np.zeros((0, 4), np.float32), np.zeros(0, int), 2)
    with pytest.raises(ValueError, match="no batches: the data is empty"):
        xsol.accumulate(iter([]), 2, progress=False)
    with pytest.raises(ValueError, match="empty"):
        xsol.accumulate([(np.zeros((0, 3)), np.zeros(0, int))], 2, progress=False)


def test_bad_batch_keeps_earlier_statistics(rng):
    good = [(rng.integers(0, 5, 50), rng.integers(0, 5, 50)) for _ in range(3)]
    bad = (np.array([1, 9]), np.array([0, 0]))
    with pytest.raises(xsol.BatchError) as info:
        xsol.accumulate(good + [bad], 5, vocab_size=5, progress=False)
    e = info.value
    assert e.batch_index == 3
    assert int(e.stats.num_examples) == 150
    assert int(e.stats.cooc.sum()) == 150
    X = np.concatenate([g[0] for g in good])
    y = np.concatenate([g[1] for g in good])
    np.testing.assert_array_equal(np.asarray(e.stats.cooc), np.asarray(xsol.fit_explicit(X, y, 5).stats.cooc))
    # Resuming from the kept statistics with the rest of the stream works.
    more = xsol.accumulate([(np.array([1, 2]), np.array([0, 0]))], 5, vocab_size=5,
                           state=e.stats, progress=False)
    assert int(more.num_examples) == 152


def test_bad_dense_batch_keeps_earlier_statistics(rng):
    good = (rng.random((10, 3)).astype(np.float32), np.zeros(10, int))
    bad = good[0].copy()
    bad[2, 0] = np.nan
    with pytest.raises(xsol.BatchError, match="batch 1: features contain NaN") as info:
        xsol.accumulate([good, (bad, np.zeros(10, int))], 2, progress=False)
    assert int(info.value.stats.num_examples) == 10


def test_vocabulary_too_large_for_memory():
    with pytest.raises(MemoryBudgetError, match=r"co-occurrence matrix \(200000 x 200000.*needs 298.0 GiB"):
        xsol.stats.token_cooccurrence(200_000, 200_000)


def test_memory_budget_from_environment(monkeypatch, rng):
    monkeypatch.setenv("XSOL_MEMORY_BUDGET", "1K")
    with pytest.raises(MemoryBudgetError, match=r"only 1.0 KiB is available"):
        xsol.fit_explicit(rng.integers(0, 100, 50), rng.integers(0, 100, 50), 100)


def test_check_fits_reports_bytes():
    assert check_fits("x", (10, 10), 4, budget=400) == 400
    with pytest.raises(MemoryBudgetError, match="needs 404 B"):
        check_fits("x", (101,), 4, budget=400)


def test_zero_smoothing_with_zero_counts_is_refused():
    X = np.array([0, 0, 1, 1])
    y = np.array([0, 0, 0, 1])  # feature 0 never co-occurs with label 1
    with pytest.raises(ValueError, match=r"smoothing=0 but 1 co-occurrence counts .* -inf"):
        xsol.fit_explicit(X, y, 2, smoothing=0.0)
    with pytest.raises(ValueError, match="smoothing must be a finite number >= 0"):
        xsol.fit_explicit(X, y, 2, smoothing=-1.0)


def test_wrong_kind_and_normalize_options(rng):
    with pytest.raises(ValueError, match="kind must be"):
        xsol.fit_explicit(rng.random((4, 2)), np.zeros(4, int), 2, kind="sparse")
    with pytest.raises(ValueError, match="normalize must be one of"):
        xsol.fit_explicit(rng.random((4, 2)), np.zeros(4, int), 2, normalize="l2")
    with pytest.raises(TypeError, match="expected integer token ids"):
        xsol.fit_explicit(np.array(["a", "b"]), np.zeros(2, int), 2)


def test_token_ids_need_vocab_size_in_accumulate(rng):
    with pytest.raises(xsol.BatchError, match="vocab_size"):
        xsol.accumulate([(np.array([1, 2]), np.array([0, 1]))], 3, progress=False)


def test_float_labels_that_are_not_integers():
    with pytest.raises(TypeError, match="integer class labels"):
        xsol.fit_explicit(np.ones((3, 2)), np.array([0.5, 1, 0]), 2)


def test_ids_are_never_truncated():
    X = np.array([[0.0], [2.7], [1.0]])
    with pytest.raises(ValueError, match=r"whole numbers, got 2.7 at row 1"):
        xsol.fit_explicit(X, np.array([0, 1, 2]), 3, vocab_size=3, kind="ids")
    with pytest.raises(ValueError, match="whole numbers"):
        xsol.fit_explicit(np.array([[np.nan]]), np.array([0]), 3, vocab_size=3, kind="ids")
    whole = xsol.fit_explicit(np.array([[0.0], [2.0], [1.0]]), np.array([0, 1, 2]), 3,
                              vocab_size=3, kind="ids")
    ints = xsol.fit_explicit(np.array([[0], [2], [1]]), np.array([0, 1, 2]), 3, vocab_size=3)
    np.testing.assert_array_equal(np.asarray(whole.weights), np.asarray(ints.weights))


def test_guesses_are_never_silent():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 17, (50, 64)).astype(np.int64)  # digit pixels cast to int64
    y = rng.integers(0, 10, 50)
    with pytest.warns(UserWarning, match="taken as token ids.*kind='dense'"):
        xsol.fit_explicit(X, y, 10, vocab_size=17)
    sol = xsol.fit_explicit(X, y, 10, kind="dense")
    assert sol.weights.shape == (64, 10)
    Xf = X.astype(np.float32)
    with pytest.warns(UserWarning, match=r"labels never occur \(0\)"):
        xsol.fit_explicit(Xf, y + 1)  # labels 1..10
    y_bad = y.copy()
    y_bad[3] = 255
    with pytest.warns(UserWarning, match="far beyond the next largest"):
        xsol.fit_explicit(Xf, y_bad)
    import warnings as w

    with w.catch_warnings():
        w.simplefilter("error")
        xsol.fit_explicit(Xf, y, 10)  # nothing guessed: no warning
        xsol.fit_explicit(X[:, :2], y, 10, vocab_size=17)  # a short window of ids


def test_smoothing_and_sums_that_float32_cannot_hold_are_refused():
    X = np.eye(4, dtype=np.float32)
    y = np.arange(4)
    with pytest.raises(ValueError, match=r"smoothing 1e-45 is below 1.17549e-38"):
        xsol.fit_explicit(X, y, 4, smoothing=1e-45)
    with pytest.raises(ValueError, match="below"):
        xsol.SparseExplicitLM.fit(np.array([0, 1]), np.array([1, 0]), 2, smoothing=1e-40)
    huge = np.full((2, 3), 3e38, np.float32)
    with pytest.raises(ValueError, match=r"sums to 9e\+38, more than the largest float32"):
        xsol.fit_explicit(huge, np.array([0, 1]), 2, normalize="none")


def test_column_totals_past_float32_are_refused_and_defaults_agree():
    X = np.array([[2e38, 0.0], [2e38, 1.0]], np.float32)  # each row fits, the column does not
    with pytest.raises(ValueError, match=r"total count f_i = (inf|4e\+38) .* exceeds the largest float32"):
        xsol.fit_explicit(X, np.array([0, 1]), 2, normalize="none")
    rng = np.random.default_rng(0)
    Xd, yd = rng.random((50, 6)).astype(np.float32), rng.integers(0, 3, 50)
    sol = xsol.fit_explicit(Xd, yd, 3)
    W, _ = xsol.solve(sol.stats)  # one default smoothing for both
    np.testing.assert_allclose(np.asarray(W), np.asarray(sol.weights), rtol=1e-6)
    assert sol.smoothing == xsol.core.defaults.SMOOTHING


def test_seeds_mean_the_same_everywhere_and_names_do_not_shadow_flax():
    from xsol.experiments.config import parse_seeds

    assert parse_seeds("3") == (0, 1, 2) and parse_seeds("0,4,7") == (0, 4, 7)
    for bad in ("0", "-2", "1,1", "a"):
        with pytest.raises(ValueError):
            parse_seeds(bad)
    assert not hasattr(xsol.train, "TrainState") and hasattr(xsol.train, "TrainingState")
