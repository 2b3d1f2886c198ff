"""One-pass and iterative baselines from scikit-learn, scored like xsol's solutions.

* Multinomial naive Bayes (``MultinomialNB``): the closest one-pass relative of
  the explicit solution (docs/math.md section 1, B).
* Multinomial logistic regression (``LogisticRegression``, lbfgs): the same
  softmax layer trained to (near) convergence on raw or normalized features.
"""

from __future__ import annotations

import time
import warnings

import numpy as np


def _nll(proba: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(proba[np.arange(len(y)), y], 1e-300, None)
    return float(-np.mean(np.log(p)))


def _full_proba(model, X, num_classes):
    """``predict_proba`` with a column for every label (classes absent in training get 0)."""
    P = np.zeros((X.shape[0], num_classes))
    P[:, model.classes_] = model.predict_proba(X)
    return P


def sklearn_baselines(X_train, y_train, X_test, y_test, num_classes, *, normalize=True,
                      max_iter=1000, seed=0):
    """Fits MultinomialNB and LogisticRegression and scores them.

    Args:
      X_train, y_train, X_test, y_test: dense non-negative features and labels.
      num_classes: ``N``.
      normalize: feed ``x / sum(x)`` (as xsol does) instead of raw features.
      max_iter: iteration cap for lbfgs.
      seed: random state.

    Returns:
      A list of dicts with keys ``method``, ``fit_seconds``, ``train_loss``,
      ``test_loss``, ``train_accuracy``, ``test_accuracy``. A baseline that
      cannot be fitted (e.g. one class, for logistic regression) gets a row
      with ``skipped`` (the reason) instead of the figures; the other rows
      are unaffected.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    def prep(X):
        X = np.asarray(X, np.float64).reshape(len(X), -1)
        if normalize:
            s = X.sum(1, keepdims=True)
            X = np.divide(X, s, out=np.zeros_like(X), where=s > 0)
        return X

    Xtr, Xte = prep(X_train), prep(X_test)
    rows = []
    for name, model in (
        ("MultinomialNB (sklearn)", MultinomialNB(alpha=1e-2)),
        ("LogisticRegression lbfgs (sklearn)",
         LogisticRegression(C=1e4, max_iter=max_iter, random_state=seed)),
    ):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Xtr, y_train)
        except ValueError as e:  # scikit-learn's refusal: too few classes or examples
            rows.append(dict(method=name, skipped=str(e).splitlines()[0]))
            continue
        dt = time.perf_counter() - t0
        Ptr, Pte = _full_proba(model, Xtr, num_classes), _full_proba(model, Xte, num_classes)
        rows.append(dict(
            method=name, fit_seconds=dt,
            train_loss=_nll(Ptr, y_train), test_loss=_nll(Pte, y_test),
            train_accuracy=float(np.mean(Ptr.argmax(1) == y_train)),
            test_accuracy=float(np.mean(Pte.argmax(1) == y_test)),
        ))
    return rows
