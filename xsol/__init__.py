"""xsol: explicit, backpropagation-free solutions for softmax layers, in JAX.

For a softmax layer fed non-negative features, the weights gradient descent
searches for can be written down from co-occurrence counts gathered in one
pass: ``W_ij = log F_ij - log f_i`` (Williams & Zhao, 2023, arXiv:2311.07498).

Main entry points:

* :func:`fit_explicit` -- explicit weights for in-memory arrays.
* :func:`accumulate` then :func:`solve` -- the same over a stream of batches.
* :func:`token_cooccurrence`, :func:`feature_cooccurrence` -- the pure
  ``init``/``update``/``merge`` accumulators underneath.
* :func:`softmax_nll` -- the cross-entropy of any softmax layer's weights.
"""

from xsol import data
from xsol.accumulate import BatchError, accumulate
from xsol.explicit import (
    DEFAULT_SMOOTHING,
    ExplicitSolution,
    fit_explicit,
    softmax_nll,
    solution_from_stats,
)
from xsol.memory import MemoryBudgetError
from xsol.solve import explicit_weights, solve
from xsol.stats import (
    Accumulator,
    CoocStats,
    feature_cooccurrence,
    merge,
    token_cooccurrence,
)
from xsol.temperature import fit_inverse_temperature

__version__ = "0.1.0"

__all__ = [
    "Accumulator",
    "BatchError",
    "CoocStats",
    "DEFAULT_SMOOTHING",
    "ExplicitSolution",
    "MemoryBudgetError",
    "accumulate",
    "data",
    "explicit_weights",
    "feature_cooccurrence",
    "fit_explicit",
    "fit_inverse_temperature",
    "merge",
    "softmax_nll",
    "solution_from_stats",
    "solve",
    "token_cooccurrence",
]
