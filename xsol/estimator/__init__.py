"""The scikit-learn face of xsol.

* :mod:`~xsol.estimator.classifier`: :class:`ExplicitSoftmaxClassifier`, a
  scikit-learn classifier (``fit``/``partial_fit`` over the same statistics).
* :mod:`~xsol.estimator.baselines`: scikit-learn baselines scored the same way.
"""

from xsol.estimator.classifier import ExplicitSoftmaxClassifier

__all__ = ["ExplicitSoftmaxClassifier"]
