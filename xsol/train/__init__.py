"""Training with Optax, measured against the explicit solution.

* :mod:`~xsol.train.steps`: train states, optimizer steps and the one
  training loop (:func:`~xsol.train.steps.run_steps`).
* :mod:`~xsol.train.nnx_steps`: the same loop for NNX models (``nnx.Optimizer``).
* :mod:`~xsol.train.starts`: starting parameters and reference weights.
* :mod:`~xsol.train.evaluation`: batched loss, accuracy and gradient norm.
* :mod:`~xsol.train.loop`: :func:`train_and_evaluate` (trajectories of loss,
  accuracy and distance to reference weights).
* :mod:`~xsol.train.metrics`: row-centered cosine and distance (weights are
  defined only up to a constant per row).
* :mod:`~xsol.train.trajectory`: :class:`Trajectory`, a mapping of columns, JSON/CSV.
* :mod:`~xsol.train.plots`: loss and cosine against step (matplotlib, imported when used).
"""

from xsol.train.loop import train_and_evaluate
from xsol.train.metrics import row_centered_cosine, row_centered_distance, weight_agreement
from xsol.train.plots import plot_trajectories
from xsol.train.steps import TrainingState, create_train_state, make_train_step
from xsol.train.trajectory import Trajectory, log_steps

__all__ = ["Trajectory", "TrainingState", "create_train_state", "log_steps", "make_train_step",
           "plot_trajectories", "row_centered_cosine", "row_centered_distance",
           "train_and_evaluate", "weight_agreement"]
