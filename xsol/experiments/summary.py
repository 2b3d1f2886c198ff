"""Means, spreads and paired tests across seeds."""

from __future__ import annotations

import math

import numpy as np


def mean_std(values) -> dict:
    """``{"mean", "std", "n", "values"}`` of a list of numbers (std with ddof=1; 0 for n=1)."""
    v = np.asarray([float(x) for x in values], np.float64)
    return {
        "mean": float(v.mean()) if v.size else float("nan"),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "n": int(v.size),
        "values": v.tolist(),
    }


def fmt(ms: dict, digits: int = 4) -> str:
    """``"mean ± std"`` for a :func:`mean_std` dict."""
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def paired_test(a, b) -> dict:
    """Paired comparison of two methods over the same seeds.

    Returns the mean difference ``a - b``, how many seeds had ``a > b``, and the
    two-sided p-value of the paired t-test (scipy's ``ttest_rel``; ``nan`` when
    fewer than two seeds or all differences are equal).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = a - b
    p = float("nan")
    if d.size >= 2 and np.ptp(d) > 0:
        from scipy.stats import ttest_rel

        p = float(ttest_rel(a, b).pvalue)
    return {
        "mean_diff": float(d.mean()),
        "a_greater": int(np.sum(d > 0)),
        "n": int(d.size),
        "p_value": p,
    }


def significance_phrase(test: dict, alpha: float = 0.05) -> str:
    """A short sentence on a :func:`paired_test` result."""
    p = test["p_value"]
    p_txt = "p n/a" if math.isnan(p) else f"p = {p:.3g}"
    verdict = "significant" if (not math.isnan(p) and p < alpha) else "not significant"
    return (f"difference {test['mean_diff']:+.4f} ({test['a_greater']}/{test['n']} seeds "
            f"positive; paired t-test {p_txt}, {verdict} at {alpha})")
