"""Means, spreads and confidence intervals over seeds, and how the report prints them.

One helper computes every mean and spread of the report, :func:`mean_std`;
:func:`interval` (the Student-t confidence interval that verdicts read) and
:func:`mean_of` (the mean of the finite values) are built on it. The interval
of a mean over ``n`` seeds is

    ``mean ± t_{(1 + level) / 2, n-1} * std / sqrt(n)``

(``std`` with ddof 1); with one seed there is no interval (``lo = hi = mean``).
Verdict rules and tests are in :mod:`xsol.experiments.verdicts`.
"""

from __future__ import annotations

import math

import numpy as np

#: Confidence level of every interval in the report.
CONFIDENCE = 0.95


def _floats(values) -> np.ndarray:
    """The values as float64 (None reads as NaN)."""
    return np.asarray([float("nan") if x is None else float(x) for x in values], np.float64)


def mean_std(values, *, finite: bool = False) -> dict:
    """``{"mean", "std", "n", "values"}`` of a list of numbers (std with ddof=1; 0 for n=1).

    Args:
      values: the numbers (one per seed).
      finite: drop NaN and infinite values first (otherwise they propagate).
    """
    v = _floats(values)
    if finite:
        v = v[np.isfinite(v)]
    return {
        "mean": float(v.mean()) if v.size else float("nan"),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "n": int(v.size),
        "values": v.tolist(),
    }


def mean_of(values) -> float:
    """The mean of the finite values (NaN when there is none)."""
    return mean_std(values, finite=True)["mean"]


def over_seeds(seed_runs, get) -> dict:
    """:func:`mean_std` of ``get(run)`` over the runs of the seeds."""
    return mean_std([get(r) for r in seed_runs])


def interval(values, level: float = CONFIDENCE) -> dict:
    """Mean, spread and Student-t confidence interval of values over seeds.

    Returns:
      ``{"mean", "std", "n", "lo", "hi", "values", "dropped"}`` (``std`` with
      ddof 1; ``lo = hi = mean`` for one value). NaN values are dropped and
      counted in ``"dropped"``.
    """
    v = _floats(values)
    s = mean_std(v, finite=True)
    dropped = int(v.size - s["n"])
    n, mean, std = s["n"], s["mean"], s["std"]
    if n == 0:
        std = float("nan")
    half = 0.0
    if n > 1:
        from scipy.stats import t

        half = float(t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return dict(mean=mean, std=std, n=n, lo=mean - half, hi=mean + half, values=s["values"],
                dropped=dropped)


def fmt(ms: dict, digits: int = 4) -> str:
    """``"mean ± std"`` for a :func:`mean_std` dict."""
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def fmt_interval(values, digits: int = 4, scale: float = 1.0, unit: str = "") -> str:
    """``"mean [lo, hi]"`` of :func:`interval`, each number times ``scale``, then ``unit``."""
    c = interval(values)
    return (f"{scale * c['mean']:.{digits}f}{unit} "
            f"[{scale * c['lo']:.{digits}f}, {scale * c['hi']:.{digits}f}]")


def fmt_span(ci: dict, digits: int = 4) -> str:
    """``"lo to hi"`` of an :func:`interval` (or any dict with ``lo`` and ``hi``)."""
    return f"{ci['lo']:.{digits}f} to {ci['hi']:.{digits}f}"
