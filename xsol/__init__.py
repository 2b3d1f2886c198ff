"""xsol: explicit, backpropagation-free solutions for softmax layers, in JAX.

For a softmax layer fed non-negative features, the weights gradient descent
searches for can be written down from co-occurrence counts gathered in one
pass: ``W_ij = log(F_ij + a) - log(f_i + N a)`` with ``F = X~^T Y`` (Williams &
Zhao, 2023, arXiv:2311.07498; the derivation is in ``docs/math.md``).

The front door:

* :func:`fit_explicit` -- explicit weights for in-memory arrays, an
  :class:`ExplicitSolution` (a registered pytree).
* :func:`accumulate` then :func:`solve` -- the same over a stream of batches
  (``checkpoint_dir=``: checkpointed, resumable).
* :class:`SparseExplicitLM` -- language models over large vocabularies, sparsely.
* :func:`refine` -- from the explicit solution to the optimum by forward passes only.
* :func:`explicit_head` -- the explicit output layer of any Flax model (NNX or linen).
* :class:`ExplicitSoftmaxClassifier` -- a scikit-learn classifier.
* :func:`save` / :func:`load` -- any fitted object or statistics on disk.

Everything else lives in its stage, bottom to top: :mod:`xsol.data`,
:mod:`xsol.stats`, :mod:`xsol.solvers`, :mod:`xsol.optimize`,
:mod:`xsol.models`, :mod:`xsol.train`, then :mod:`xsol.lm`,
:mod:`xsol.distributed`, :mod:`xsol.io` (and :mod:`xsol.experiments`, the
claim-by-claim reproduction behind ``xsol reproduce``). ``import xsol`` loads
the data, statistics and solver stages (JAX and NumPy); the others, and
Flax, Optax, Orbax, scikit-learn and matplotlib, load on first use.
"""

from __future__ import annotations

import importlib

from xsol import data, solvers, stats
from xsol.core.memory import MemoryBudgetError
from xsol.solvers import ExplicitSolution, SparseExplicitLM, fit_explicit, solve
from xsol.stats import BatchError, EmptyStreamError, StreamCheckpointError, accumulate

__version__ = "0.1.0"

#: Names loaded on first use: ``name -> (module, attribute or None for the module itself)``.
_LAZY = {
    "refine": ("xsol.optimize.refinement", "refine"),
    "explicit_head": ("xsol.models.head", "explicit_head"),
    "save": ("xsol.io.checkpoint", "save"),
    "load": ("xsol.io.checkpoint", "load"),
    "ExplicitSoftmaxClassifier": ("xsol.estimator.classifier", "ExplicitSoftmaxClassifier"),
    "optimize": ("xsol.optimize", None),
    "models": ("xsol.models", None),
    "train": ("xsol.train", None),
    "lm": ("xsol.lm", None),
    "distributed": ("xsol.distributed", None),
    "io": ("xsol.io", None),
    "estimator": ("xsol.estimator", None),
    "experiments": ("xsol.experiments", None),
    "core": ("xsol.core", None),
}

__all__ = [
    # fitting
    "fit_explicit",
    "ExplicitSolution",
    "SparseExplicitLM",
    "accumulate",
    "solve",
    "refine",
    "explicit_head",
    "ExplicitSoftmaxClassifier",
    # files
    "save",
    "load",
    # errors
    "BatchError",
    "EmptyStreamError",
    "MemoryBudgetError",
    "StreamCheckpointError",
    # the stages
    "data",
    "stats",
    "solvers",
    "optimize",
    "models",
    "train",
    "lm",
    "distributed",
    "io",
]


def __getattr__(name: str):
    """Loads a lazily exported name (PEP 562) on first access."""
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'xsol' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
