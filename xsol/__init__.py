"""xsol: explicit, backpropagation-free solutions for softmax layers, in JAX.

For a softmax layer fed non-negative features, the weights gradient descent
searches for can be written down from co-occurrence counts gathered in one
pass: ``W_ij = log F_ij - log f_i`` (Williams & Zhao, 2023, arXiv:2311.07498).

Main entry points:

* :func:`fit_explicit` -- explicit weights for in-memory arrays.
* :func:`accumulate` then :func:`solve` -- the same over a stream of batches
  (``checkpoint_dir=``: checkpointed, resumable).
* :mod:`xsol.distributed` -- the accumulation over several JAX processes
  (:func:`accumulate_distributed`, :func:`allreduce_stats`, per-process shares).
* :func:`token_cooccurrence`, :func:`feature_cooccurrence` -- the pure
  ``init``/``update``/``merge`` accumulators underneath.
* :func:`softmax_nll` -- the cross-entropy of any softmax layer's weights.
* :func:`refine` -- from the explicit solution to the optimum by forward passes
  only (GIS or preconditioned L-BFGS on co-occurrence statistics).
* :class:`ExplicitSoftmaxClassifier` -- a scikit-learn classifier.
* :func:`explicit_head` -- explicit weights for a dense layer (e.g. the
  classification head) of any Flax model, NNX or linen.
* :mod:`xsol.nnx_models` -- the models of :mod:`xsol.models` in ``flax.nnx``.
* :mod:`xsol.lm` -- explicit language models on token files and raw text of any size.
* ``solution.save(path)`` / :func:`load` -- fitted models and statistics on
  disk (:mod:`xsol.checkpoint`).
* :mod:`xsol.scoring` -- scoring in bounded memory; :mod:`xsol.defaults` -- the defaults.
"""

from xsol import data, defaults
from xsol.accumulate import BatchError, EmptyStreamError, accumulate
from xsol.explicit import (
    DEFAULT_SMOOTHING,
    ExplicitSolution,
    fit_explicit,
    softmax_nll,
    solution_from_stats,
)
from xsol.head import explicit_head, replace_layer_params
from xsol.memory import MemoryBudgetError
from xsol.metrics import row_centered_cosine, row_centered_distance, weight_agreement
from xsol.models import MLP, SoftmaxRegression, TokenLM, layer_inputs
from xsol import nnx_models
from xsol.plots import plot_trajectories
from xsol.refine import Refinement, loss_and_gradient, refine
from xsol.solve import explicit_weights, solve
from xsol.sparse import SparseExplicitLM, SparseStats, sparse_accumulate, sparse_cooccurrence
from xsol.stats import (
    Accumulator,
    CoocStats,
    feature_cooccurrence,
    merge,
    token_cooccurrence,
)
from xsol.temperature import fit_inverse_temperature
from xsol import distributed
from xsol.distributed import StreamCheckpointError, accumulate_distributed, allreduce_stats
from xsol.train import TrainingState, create_train_state, make_train_step, train_and_evaluate
from xsol.trajectory import Trajectory, log_steps

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "SparseExplicitLM",
    "SparseStats",
    "sparse_accumulate",
    "sparse_cooccurrence",
    "SoftmaxRegression",
    "TokenLM",
    "TrainingState",
    "Trajectory",
    "create_train_state",
    "layer_inputs",
    "log_steps",
    "make_train_step",
    "plot_trajectories",
    "Refinement",
    "loss_and_gradient",
    "refine",
    "row_centered_cosine",
    "row_centered_distance",
    "train_and_evaluate",
    "weight_agreement",
    "Accumulator",
    "BatchError",
    "CoocStats",
    "DEFAULT_SMOOTHING",
    "ExplicitSoftmaxClassifier",
    "ExplicitSolution",
    "MemoryBudgetError",
    "accumulate",
    "accumulate_distributed",
    "allreduce_stats",
    "data",
    "distributed",
    "EmptyStreamError",
    "StreamCheckpointError",
    "explicit_head",
    "explicit_weights",
    "feature_cooccurrence",
    "fit_explicit",
    "fit_inverse_temperature",
    "load",
    "merge",
    "nnx_models",
    "replace_layer_params",
    "softmax_nll",
    "solution_from_stats",
    "solve",
    "token_cooccurrence",
]

from xsol import lm, scoring  # noqa: E402 - after the names they build on
from xsol.estimator import ExplicitSoftmaxClassifier  # noqa: E402
from xsol.checkpoint import load  # noqa: E402
