"""Means and spreads across seeds, and how the report prints them.

Intervals, tests and verdict rules are in :mod:`xsol.experiments.verdicts`.
"""

from __future__ import annotations

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
