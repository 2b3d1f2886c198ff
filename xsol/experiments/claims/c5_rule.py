"""Claim C5's rule: a pure function of the per-seed numbers of every (task, width) cell.

For every cell: (a) the layer-wise explicit network beats chance by a wide
margin; (b) it is at least as good as the single-layer explicit solution;
(c) for each optimizer, fine-tuning from it is at least as good as backprop
from random init at equal budget. :func:`c5_parts` tests each part against
its threshold (Holm-corrected over all parts), :func:`c5_verdict` combines
them, :func:`c5_summary` says why, :func:`c5_rule` prints the rule;
:func:`c5_reported` makes the comparisons reported beside it. The
experiment that measures the numbers is
:mod:`xsol.experiments.claims.c5_layerwise`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from xsol.experiments import verdicts
from xsol.experiments.summary import mean_of
from xsol.experiments.sweep import OPTIMIZER_TITLES
from xsol.experiments.verdicts import TIE_TOLERANCE, decide, threshold_test

#: "Beats chance by a wide margin": at least halfway from chance to perfect.
MARGIN_FRACTION = 0.5


def _diff(a, b) -> list:
    return (np.asarray(a, np.float64) - np.asarray(b, np.float64)).tolist()


def c5_parts(cells: list, optimizers: Sequence[str], steps: int) -> list:
    """The parts of C5's rule for every cell, decided with Holm's correction over all of them.

    Args:
      cells: one dict per (task, width): ``name``, ``chance`` and ``margin``
        (per seed), and ``acc``: per-seed held-out accuracy by method key,
        backprop methods as ``"<key>/<optimizer>"``.
      optimizers: the optimizers of the backprop runs.
      steps: their budget (for the sentences).

    Returns:
      A list of :func:`threshold_test` dicts with ``cell``, ``part`` and ``verdict``.
    """
    parts = []
    for c in cells:
        acc = c["acc"]
        parts.append(threshold_test(
            acc["layerwise"], c["margin"], side="above", cell=c["name"], part="a",
            name_a="layer-wise explicit accuracy", a=mean_of(acc["layerwise"]),
            name_b="the wide margin", b=mean_of(c["margin"])))
        parts.append(threshold_test(
            _diff(acc["layerwise"], acc["single"]), -TIE_TOLERANCE, side="above", cell=c["name"],
            part="b", quantity="difference", name_a="layer-wise explicit",
            a=mean_of(acc["layerwise"]), name_b="single-layer explicit", b=mean_of(acc["single"])))
        for opt in optimizers:
            ft, rd = acc[f"finetuned/{opt}"], acc[f"random/{opt}"]
            title = OPTIMIZER_TITLES.get(opt, opt)
            parts.append(threshold_test(
                _diff(ft, rd), -TIE_TOLERANCE, side="above", cell=c["name"], part="c",
                optimizer=opt, quantity="difference",
                name_a=f"{title} from layer-wise explicit", a=mean_of(ft),
                name_b=f"{title} from random init ({steps} steps, each at its tuned lr)",
                b=mean_of(rd)))
    return decide(parts)


def c5_verdict(parts: list) -> str:
    """C5's verdict: :func:`verdicts.combine` of its parts' verdicts."""
    return verdicts.parts_verdict(parts)


def c5_summary(parts: list) -> str:
    """C5's one-line evidence: every part's computed sentence, grouped by cell."""
    return verdicts.parts_summary(parts, labelled=True)


def c5_reported(cells: list, optimizers: Sequence[str]) -> list:
    """Comparisons reported beside the rule (their own Holm family): paired differences."""
    tests = []
    for c in cells:
        acc, loss = c["acc"], c["loss"]
        pairs = [("accuracy", acc["layerwise"], acc["kmeans"], "class clusters",
                  "k-means clusters"),
                 ("accuracy", acc["layerwise_once"], acc["single_once"],
                  "layer-wise explicit (prior once)", "single-layer explicit (prior once)")]
        for opt in optimizers:
            title = OPTIMIZER_TITLES.get(opt, opt)
            pairs += [
                ("accuracy", acc["layerwise"], acc[f"single_trained/{opt}"],
                 "layer-wise explicit (no backprop)", f"single softmax layer + {title}"),
                ("accuracy", acc["layerwise"], acc[f"random/{opt}"],
                 "layer-wise explicit (no backprop)", f"random init + {title}"),
                ("accuracy", acc[f"finetuned/{opt}"], acc[f"single_trained/{opt}"],
                 f"layer-wise explicit + {title}", f"single softmax layer + {title}"),
                ("accuracy", acc[f"finetuned_once/{opt}"], acc[f"random/{opt}"],
                 f"layer-wise explicit (prior once) + {title}", f"random init + {title}"),
                ("loss", loss[f"finetuned/{opt}"], loss[f"random/{opt}"],
                 f"layer-wise explicit + {title}", f"random init + {title}"),
            ]
        tests += [verdicts.reported_test(a, b, cell=c["name"], what=what, name_a=name_a,
                                         name_b=name_b) for what, a, b, name_a, name_b in pairs]
    verdicts.with_holm({i: t for i, t in enumerate(tests)})
    return tests


def c5_rule(optimizers: Sequence[str], steps: int) -> str:
    """C5's rule, as printed beside the verdict."""
    opts = " and ".join(OPTIMIZER_TITLES.get(o, o) for o in optimizers)
    return (
        "The claim as written: layer-wise explicit solutions work in multi-layer networks. For "
        "every task and hidden width: (a) the layer-wise explicit network, without backprop, "
        "has a held-out accuracy above the wide margin, chance + "
        f"{MARGIN_FRACTION:g} × (1 − chance), chance = held-out accuracy of the majority "
        "training label; (b) it is at least as good as the single-layer explicit solution it "
        f"generalizes: accuracy difference above −{TIE_TOLERANCE:g}; (c) for each optimizer "
        f"({opts}), fine-tuning from it is at least as good as random-init backprop at equal "
        f"budget ({steps} steps), each start at its own learning rate chosen on the validation "
        f"split: accuracy difference above −{TIE_TOLERANCE:g}. Each part tests the per-seed "
        "quantity against its threshold (paired t-test over seeds, Holm-corrected over all "
        "parts): it holds when significantly on the claim's side, does not hold when "
        "significantly on the other side, and is inconclusive when its confidence interval "
        "contains the threshold. " + verdicts.PARTS_COMBINE
    )
