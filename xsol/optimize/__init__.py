"""Optimization without backpropagation, and the reference optimum.

* :mod:`~xsol.optimize.refinement`: :func:`refine`, from the explicit solution
  to the optimum of the single-layer cross-entropy by forward passes only.
* :mod:`~xsol.optimize.gradient`: the loss and its statistics gradient
  ``(X~^T P - F) / B + l2 W`` (:func:`loss_and_gradient`), one forward pass each.
* :mod:`~xsol.optimize.gis`: Generalized Iterative Scaling (Darroch & Ratcliff
  1972), ``W <- W + log((F + a) / (E + a))``.
* :mod:`~xsol.optimize.lbfgs`: L-BFGS preconditioned by GIS's curvature bound.
* :mod:`~xsol.optimize.history`: the record of a run's passes and its stopping tests.
* :mod:`~xsol.optimize.optimum`: the true optimum by full-batch L-BFGS (Optax),
  with an L2 penalty and a convergence flag.
"""

from xsol.optimize.gis import gis_step
from xsol.optimize.gradient import loss_and_gradient
from xsol.optimize.history import RefineStep
from xsol.optimize.optimum import Optimum, fit_optimum, layer_loss
from xsol.optimize.refinement import Refinement, refine

__all__ = ["Optimum", "RefineStep", "Refinement", "fit_optimum", "gis_step", "layer_loss",
           "loss_and_gradient", "refine"]
