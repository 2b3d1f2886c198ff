"""Optimization without backpropagation, and the reference optimum.

* :mod:`~xsol.optimize.refinement`: :func:`refine`, from the explicit solution
  to the optimum of the single-layer cross-entropy by forward passes only
  (Generalized Iterative Scaling, Darroch & Ratcliff 1972, or L-BFGS on the
  statistics gradient ``(X~^T P - F) / B + l2 W``).
* :mod:`~xsol.optimize.optimum`: the true optimum by full-batch L-BFGS (Optax),
  with an L2 penalty and a convergence flag.
"""

from xsol.optimize.optimum import Optimum, fit_optimum, layer_loss
from xsol.optimize.refinement import Refinement, RefineStep, gis_step, loss_and_gradient, refine

__all__ = ["Optimum", "RefineStep", "Refinement", "fit_optimum", "gis_step", "layer_loss",
           "loss_and_gradient", "refine"]
