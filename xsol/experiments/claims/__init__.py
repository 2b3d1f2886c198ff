"""The claims of Williams & Zhao (2023), one module each, in the order of the report.

=======  ===========================================================  ==========================
claim    what it says                                                 module
=======  ===========================================================  ==========================
C1       the explicit LM solution is near-optimal                     :mod:`.c1_near_optimal`
C2       it generalizes to positive-valued features                   :mod:`.c2_positive_features`
C3       backprop from it improves it only a little                   :mod:`.c3_small_improvement`
C4       random init moves toward it                                  :mod:`.c4_toward_explicit`
C5       layer-wise explicit solutions work in multi-layer networks   :mod:`.c5_layerwise`
C6       computational savings grow with model size                   :mod:`.c6_cost`
C7       warm start + backprop finds better optima                    :mod:`.c7_warm_start`
C8       explicit weights are interpretable                           :mod:`.c8_interpretable`
Beyond   the optimum without backpropagation                          :mod:`.beyond`
=======  ===========================================================  ==========================

C1-C4 and C8 are read off the shared runs (:mod:`xsol.experiments.runs`):
each claim function takes ``{task name: [SeedRuns per seed]}`` and returns a
:class:`xsol.experiments.report.ClaimResult` whose verdict follows its rule,
applied with the confidence intervals of :mod:`xsol.experiments.verdicts` (a
result whose interval contains its threshold is *inconclusive*). Gradient
baselines are read at the learning rate chosen on the validation split
(:mod:`xsol.experiments.tuning`). Every sentence that states a direction is
computed from the numbers it describes. C5, C7 and Beyond run their own
experiments. :data:`ORDER` is the list
:func:`xsol.experiments.reproduce.run` follows; the names below are the ones
it calls.
"""

from xsol.experiments.claims import (
    beyond,
    c1_near_optimal,
    c2_positive_features,
    c3_small_improvement,
    c4_toward_explicit,
    c5_layerwise,
    c6_cost,
    c6_cost,
    c7_warm_start,
    c8_interpretable,
)
from xsol.experiments.claims.c1_near_optimal import C1_RULE, c1_task_verdict, claim_c1
from xsol.experiments.claims.c2_positive_features import C2_RULE, c2_task_verdict, claim_c2
from xsol.experiments.claims.c3_small_improvement import C3_RULE, c3_case, claim_c3
from xsol.experiments.claims.c4_toward_explicit import C4_RULE, c4_case, claim_c4
from xsol.experiments.claims.c5_layerwise import run_c5
from xsol.experiments.claims.c6_cost import run as run_c6
from xsol.experiments.claims.c7_warm_start import run_c7
from xsol.experiments.claims.c8_interpretable import C8_RULE, c8_task_verdict, claim_c8
from xsol.experiments.claims.beyond import run as run_beyond

#: Every claim in report order: ``(claim, title)``.
ORDER = (
    ("C1", c1_near_optimal.TITLE),
    ("C2", c2_positive_features.TITLE),
    ("C3", c3_small_improvement.TITLE),
    ("C4", c4_toward_explicit.TITLE),
    ("C5", c5_layerwise.TITLE),
    ("C6", c6_cost.TITLE),
    ("C7", c7_warm_start.TITLE),
    ("C8", c8_interpretable.TITLE),
    ("Beyond", beyond.TITLE),
)

__all__ = [
    "ORDER",
    "C1_RULE", "c1_task_verdict", "claim_c1",
    "C2_RULE", "c2_task_verdict", "claim_c2",
    "C3_RULE", "c3_case", "claim_c3",
    "C4_RULE", "c4_case", "claim_c4",
    "run_c5", "run_c6", "run_c7",
    "C8_RULE", "c8_task_verdict", "claim_c8",
    "run_beyond",
]
