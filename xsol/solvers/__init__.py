"""Solvers: explicit weights from statistics, and their scoring.

``W_ij = log(F_ij + a) - log(f_i + N a)`` (docs/math.md): the exact optimum for
one-hot inputs (the maximum-likelihood bigram model, smoothed), the
generalization of Williams & Zhao (2023, arXiv:2311.07498) for L1-normalized
non-negative features.

* :mod:`~xsol.solvers.dense`: :func:`solve` and :func:`explicit_weights` (dense ``W``).
* :mod:`~xsol.solvers.sharded`: the same with ``W``'s rows sharded over devices.
* :mod:`~xsol.solvers.sparse`: :class:`SparseExplicitLM`, stored and scored sparsely.
* :mod:`~xsol.solvers.explicit`: :func:`fit_explicit` and :class:`ExplicitSolution`.
* :mod:`~xsol.solvers.scoring`: the cross-entropy in bounded memory.
* :mod:`~xsol.solvers.temperature`: the fitted inverse temperature (one scalar).
"""

from xsol.solvers.dense import check_smoothing, explicit_weights, solve
from xsol.solvers.explicit import (
    DEFAULT_SMOOTHING,
    ExplicitSolution,
    fit_explicit,
    softmax_nll,
    solution_from_stats,
)
from xsol.solvers.sparse import SparseExplicitLM
from xsol.solvers.temperature import fit_inverse_temperature

__all__ = [
    "DEFAULT_SMOOTHING",
    "ExplicitSolution",
    "SparseExplicitLM",
    "check_smoothing",
    "explicit_weights",
    "fit_explicit",
    "fit_inverse_temperature",
    "softmax_nll",
    "solution_from_stats",
    "solve",
]
