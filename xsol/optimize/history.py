"""The record of a refinement run: its passes, its callback and its stopping tests.

Every forward pass of :func:`xsol.refine` is recorded (:class:`Recorder`):
its loss, the gradient's max-norm, whether its point was accepted and its
seconds; the ``callback`` sees a :class:`RefineStep` after each pass.

Convergence: after a pass at an accepted point, the run has converged when
the gradient's max-norm (over ``W`` and ``b``) is at most ``gtol`` **and**
the loss changed by at most ``rtol`` relative to the previous accepted point,
``|L_prev - L| <= rtol |L|`` (:func:`converged`). It stops without
converging after ``max_passes`` passes, or when ``callback`` returns True
(:class:`StopRun`).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm


class RefineStep(NamedTuple):
    """What a ``callback`` sees after each pass.

    Attributes:
      passes: passes done so far (this one included).
      loss: the (penalized) mean loss at the point this pass evaluated.
      grad_max: the gradient's max-norm there.
      weights: that point's ``W`` (float64 NumPy; do not modify).
      bias: that point's ``b`` (float64 NumPy).
      accepted: whether the point became the current iterate (L-BFGS line-search
        trial points that were rejected are passes too).
      seconds: wall seconds of this pass (host algebra included, callback excluded).
    """

    passes: int
    loss: float
    grad_max: float
    weights: np.ndarray
    bias: np.ndarray
    accepted: bool
    seconds: float


class StopRun(Exception):
    """Raised by the recorder when the callback asks to stop."""


class Recorder:
    """Counts passes, keeps the history, times passes and calls the callback.

    A pass's seconds run from the end of the previous pass (its callback
    excluded) to the end of this one, so the host algebra between passes
    (GIS steps, the L-BFGS recursion) is counted with the pass that follows.
    """

    def __init__(self, max_passes, callback, progress, method):
        self.max_passes = max_passes
        self.callback = callback
        self.passes = 0
        self.losses, self.grad_maxes, self.accepted, self.seconds = [], [], [], []
        self.bar = tqdm(total=max_passes, disable=not progress, desc=f"refine ({method})",
                        unit="pass")
        self._t = time.perf_counter()

    def done(self, loss, gmax, W, b, accepted) -> None:
        """Records one pass and calls the callback; raises :class:`StopRun` when it asks to stop."""
        dt = time.perf_counter() - self._t
        self.passes += 1
        self.losses.append(float(loss))
        self.grad_maxes.append(float(gmax))
        self.accepted.append(bool(accepted))
        self.seconds.append(dt)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.6g}", grad=f"{gmax:.2g}")
        if self.callback is not None and self.callback(
                RefineStep(self.passes, float(loss), float(gmax), W, b, bool(accepted), dt)):
            raise StopRun
        self._t = time.perf_counter()

    @property
    def exhausted(self) -> bool:
        """Whether ``max_passes`` passes are done."""
        return self.passes >= self.max_passes

    def close(self):
        """Closes the progress bar."""
        self.bar.close()


class Point:
    """The current (accepted) iterate ``(W, b)``, its loss and gradient max-norm."""

    def __init__(self, W, b):
        self.W, self.b = W, b
        self.loss = math.inf
        self.gmax = math.inf

    def result(self, converged, reason):
        """What a method returns: ``(W, b, loss, grad_max, converged, reason)``."""
        return self.W, self.b, self.loss, self.gmax, converged, reason


def converged(loss, prev, gmax, rtol, gtol) -> bool:
    """``gmax <= gtol`` and ``|prev - loss| <= rtol |loss|`` (False before a previous point)."""
    return gmax <= gtol and prev is not None and abs(prev - loss) <= rtol * max(abs(loss), 1e-300)


def max_passes_reason(record) -> str:
    """The stopping reason when ``record`` has used its ``max_passes``."""
    return f"max_passes ({record.max_passes}) reached"
