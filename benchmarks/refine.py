"""The refinement benchmark: the race of :mod:`xsol.experiments.race` at benchmark scale.

The race itself (statistics L-BFGS and GIS against tuned Adam and Optax's
L-BFGS, passes and seconds to within a tolerance of the optimal training loss)
lives in the library, because ``xsol reproduce`` runs it too; this module is
what ``scripts/bench.py --only refine`` and ``scripts/bench_refine_fashion.py``
import.
"""

from xsol.experiments.race import *  # noqa: F401,F403
from xsol.experiments.race import __all__  # noqa: F401
