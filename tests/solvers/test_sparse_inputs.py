"""SciPy sparse feature matrices (a CountVectorizer's output) fit and score like dense ones."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

import xsol
from xsol.data import load_text


@pytest.fixture(scope="module")
def docs():
    text = load_text(None)
    paragraphs = [p for p in text.split("\n\n") if len(p) > 200][:400]
    labels = np.array([hash(p.split()[0].lower()) % 3 for p in paragraphs])
    return paragraphs, labels


def test_count_matrices_fit_and_score_like_dense(docs, monkeypatch):
    import xsol.solvers.scoring as scoring

    texts, y = docs
    X = CountVectorizer(max_features=500).fit_transform(texts)  # CSR, int64
    assert sp.issparse(X)
    monkeypatch.setattr(scoring, "MAX_BATCH_BYTES", 500 * 4 * 4 * 37)  # 37 rows per batch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sparse int64 matrix is features, unambiguously
        sol = xsol.fit_explicit(X, y, 3)
    ref = xsol.fit_explicit(X.toarray().astype(np.float32), y, 3)
    np.testing.assert_allclose(np.asarray(sol.weights), np.asarray(ref.weights), rtol=1e-5,
                               atol=1e-6)
    assert sol.nll(X, y) == pytest.approx(ref.nll(X.toarray().astype(np.float32), y), rel=1e-6)
    np.testing.assert_array_equal(sol.predict(X.tocsc()), ref.predict(X.toarray()))
    assert sol.calibrate(X, y).inverse_temperature == pytest.approx(
        ref.calibrate(X.toarray().astype(np.float32), y).inverse_temperature, rel=1e-4)


def test_bad_sparse_input_is_refused(docs):
    texts, y = docs
    X = CountVectorizer(max_features=50).fit_transform(texts).astype(np.float64)
    bad = X.copy()
    bad.data[3] = -1.0
    with pytest.raises(ValueError, match="negative values"):
        xsol.fit_explicit(bad, y, 3)
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        xsol.fit_explicit(bad, y, 3)
    with pytest.raises(TypeError, match="features, not token ids"):
        xsol.fit_explicit(X, y, 3, kind="ids")
    with pytest.raises(ValueError, match="empty"):
        xsol.fit_explicit(X[:0], y[:0], 3)
