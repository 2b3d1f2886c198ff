"""ExplicitSoftmaxClassifier: scikit-learn's checks, pipelines, partial_fit, refinement."""

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import xsol
from xsol import ExplicitSoftmaxClassifier

#: Checks expected to fail, with the reason. (The estimator also declares
#: ``poor_score`` for ``normalize="l1"``: see ``__sklearn_tags__``.)
EXPECTED_FAILED_CHECKS = {
    "check_decision_proba_consistency": (
        "the check fits on make_blobs data with negative values without applying the "
        "positive_only tag, and the estimator refuses negative features; the same "
        "consistency on non-negative data is test_decision_and_proba_rank_alike"),
}


@parametrize_with_checks([ExplicitSoftmaxClassifier(),
                          ExplicitSoftmaxClassifier(refine="lbfgs", l2=1e-2)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_decision_and_proba_rank_alike():
    X, y = make_blobs(n_samples=100, random_state=0, n_features=4, centers=[(2, 2), (4, 4)],
                      cluster_std=1.0, shuffle=True)
    X = X - X.min()
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    clf = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    d = clf.decision_function(Xte)
    assert d.shape == (len(Xte),)
    np.testing.assert_array_equal(rankdata(clf.predict_proba(Xte)[:, 1]), rankdata(d))
    np.testing.assert_array_equal(clf.predict(Xte), clf.classes_[(d > 0).astype(int)])


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def test_matches_fit_explicit(digits):
    Xtr, Xte, ytr, yte = digits
    clf = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    sol = xsol.fit_explicit(Xtr.astype(np.float32), ytr, 10)
    np.testing.assert_allclose(clf.weights_, np.asarray(sol.weights), atol=1e-5)
    assert clf.score(Xte, yte) == pytest.approx(sol.score(Xte.astype(np.float32), yte))
    assert clf.n_features_in_ == 64
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    P = clf.predict_proba(Xte)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(P), clf.predict_log_proba(Xte), atol=1e-10)
    assert clf.decision_function(Xte).shape == (len(Xte), 10)
    assert isinstance(clf.solution_, xsol.ExplicitSolution)
    assert clf.solution_.score(Xte.astype(np.float32), yte) == pytest.approx(clf.score(Xte, yte))


def test_pipeline_and_grid_search(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = Pipeline([("scale", MinMaxScaler(clip=True)), ("clf", ExplicitSoftmaxClassifier())])
    pipe.fit(Xtr, ytr)
    assert pipe.score(Xte, yte) > 0.8
    search = GridSearchCV(pipe, {"clf__smoothing": [1e-3, 1e-2, 1e-1, 1.0]}, cv=3)
    search.fit(Xtr, ytr)
    assert search.best_params_["clf__smoothing"] in (1e-3, 1e-2, 1e-1, 1.0)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert search.score(Xte, yte) > 0.8


def test_string_and_non_contiguous_labels(digits):
    Xtr, Xte, ytr, yte = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    clf = ExplicitSoftmaxClassifier().fit(Xtr, names[ytr])
    assert set(clf.classes_) == set(names)
    pred = clf.predict(Xte)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    ref = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    assert clf.score(Xte, names[yte]) == pytest.approx(ref.score(Xte, yte))
    odd = ExplicitSoftmaxClassifier().fit(Xtr, 10 * ytr + 3)
    np.testing.assert_array_equal(odd.predict(Xte), 10 * ref.predict(Xte) + 3)


def test_partial_fit_in_two_halves_equals_fit(digits):
    Xtr, _, ytr, _ = digits
    half = len(Xtr) // 2
    whole = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    parts = ExplicitSoftmaxClassifier()
    parts.partial_fit(Xtr[:half], ytr[:half], classes=np.arange(10))
    parts.partial_fit(Xtr[half:], ytr[half:])
    np.testing.assert_allclose(parts.weights_, whole.weights_, atol=1e-6)
    np.testing.assert_allclose(parts.stats_.cooc, whole.stats_.cooc, rtol=1e-6)
    assert int(parts.stats_.num_examples) == len(Xtr)
    with pytest.raises(ValueError, match="classes must be passed"):
        ExplicitSoftmaxClassifier().partial_fit(Xtr, ytr)
    with pytest.raises(ValueError, match="not in classes"):
        parts.partial_fit(Xtr[:5], np.full(5, 11))
    # With refine set, partial_fit keeps the explicit solution.
    r = ExplicitSoftmaxClassifier(refine="lbfgs", l2=1e-4)
    r.partial_fit(Xtr, ytr, classes=np.arange(10))
    np.testing.assert_allclose(r.weights_, whole.weights_, atol=1e-6)


def test_refinement_lowers_the_training_loss(digits):
    Xtr, Xte, ytr, yte = digits
    l2 = 1e-5
    explicit = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    refined = ExplicitSoftmaxClassifier(refine="lbfgs", l2=l2, n_iter=300).fit(Xtr, ytr)
    assert refined.converged_ and refined.n_iter_ > 0

    def nll(clf):
        return -np.mean(clf.predict_log_proba(Xtr)[np.arange(len(ytr)), ytr])

    assert nll(refined) < 0.5 * nll(explicit)
    assert refined.score(Xtr, ytr) > explicit.score(Xtr, ytr)
    gis = ExplicitSoftmaxClassifier(refine="gis", l2=l2, n_iter=20)
    with pytest.warns(Warning, match="did not converge"):
        gis.fit(Xtr, ytr)
    assert nll(gis) < nll(explicit)
    calibrated = ExplicitSoftmaxClassifier(calibrate=True).fit(Xtr, ytr)
    assert calibrated.inverse_temperature_ > 1
    assert nll(calibrated) < nll(explicit)
    np.testing.assert_array_equal(calibrated.predict(Xte), explicit.predict(Xte))


def test_sparse_input_equals_dense(digits):
    import scipy.sparse

    Xtr, Xte, ytr, _ = digits
    dense = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    sparse = ExplicitSoftmaxClassifier().fit(scipy.sparse.csr_matrix(Xtr), ytr)
    np.testing.assert_allclose(sparse.weights_, dense.weights_, atol=1e-6)
    np.testing.assert_allclose(sparse.predict_proba(scipy.sparse.csr_matrix(Xte)),
                               dense.predict_proba(Xte), atol=1e-6)


def test_clear_errors(digits):
    Xtr, _, ytr, _ = digits
    bad = Xtr.astype(float).copy()
    bad[2, 3] = -0.5
    with pytest.raises(ValueError, match="Negative values in data passed to "
                                         "ExplicitSoftmaxClassifier.fit"):
        ExplicitSoftmaxClassifier().fit(bad, ytr)
    clf = ExplicitSoftmaxClassifier().fit(Xtr, ytr)
    with pytest.raises(ValueError, match="Negative values.*predict"):
        clf.predict(bad)
    with pytest.raises(ValueError, match="refine"):
        ExplicitSoftmaxClassifier(refine="adam").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="normalize"):
        ExplicitSoftmaxClassifier(normalize="l2").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="smoothing"):
        ExplicitSoftmaxClassifier(smoothing=-1).fit(Xtr, ytr)
    with pytest.raises(ValueError, match="features"):
        clf.predict(Xtr[:, :10])
