"""Claim C8: the explicit weights are interpretable.

For each task, the readout divergence of the explicit weights against the
optimum's and tuned Adam's; for images the weights drawn as images, for a
bigram the most likely next tokens. Read off the shared runs, judged as
:mod:`xsol.experiments.claims` describes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xsol.experiments import verdicts as V
from xsol.experiments.interpret import draw_weight_images, top_next_tokens
from xsol.experiments.report import ClaimResult, Table
from xsol.experiments.runs import lm_runs
from xsol.experiments.summary import fmt, fmt_interval, mean_std, over_seeds

TITLE = "explicit weights are interpretable"

C8_RULE = ("per task, the explicit weights' readout divergence (below) is compared, paired over "
           "seeds and Holm-corrected, with the optimum's and tuned Adam's (from random init): "
           "holds if significantly lower than both, partly if than one, does not hold if "
           "significantly higher than both, inconclusive otherwise. C8 combines the tasks.")
C8_OTHERS = (("optimum", "the optimum"), ("adam_random", "tuned Adam"))


def c8_task_verdict(tests: dict) -> str:
    """C8's verdict from Holm-corrected paired tests ``explicit - other`` (negative: explicit lower)."""
    lower = sum(t["significant"] and t["mean_diff"] < 0 for t in tests.values())
    higher = sum(t["significant"] and t["mean_diff"] > 0 for t in tests.values())
    if lower == len(tests):
        return "holds"
    if lower:
        return "partly"
    if higher == len(tests):
        return "does not hold"
    return "inconclusive"


def claim_c8(runs: dict, tasks: dict, out: Path, cfg) -> ClaimResult:
    """C8: explicit weights are interpretable (readout divergence; weights as images; top next tokens)."""
    tables, plots, data, status, parts = [], [], {}, {}, []
    rows = []
    for name, rs in runs.items():
        tests = {k: V.paired([r.readout["explicit"] for r in rs], [r.readout[k] for r in rs])
                 for k, _ in C8_OTHERS}
        V.with_holm(tests)
        status[name] = c8_task_verdict(tests)
        for k, label in (("explicit", "explicit"),) + C8_OTHERS:
            rows.append(dict(task=name, weights=label, d=fmt_interval([r.readout[k] for r in rs], 4),
                             t=fmt(over_seeds(rs, lambda r, k=k: r.template[k]), 3)
                             if rs[0].template else None))
        if rs[0].template:
            rows.append(dict(task=name, weights="one gradient step from zero", d=None,
                             t=fmt(over_seeds(rs, lambda r: r.template["one_step_from_zero"]), 3)))
        data[name] = dict(readout={k: V.interval([r.readout[k] for r in rs])
                                   for k in rs[0].readout},
                          tests=tests, template={k: mean_std([r.template[k] for r in rs])
                                                 for k in rs[0].template}, verdict=status[name])
        parts.append(f"{name}: " + "; ".join(
            V.difference(tests[k], "explicit", label, digits=3) for k, label in C8_OTHERS)
            + f" → {status[name]}")
        task = tasks.get(name)
        if rs[0].kind == "dense" and task is not None and task.image_shape:
            r0 = rs[0]
            plots.append(Path(draw_weight_images(
                {"explicit": r0.weights["explicit"], "optimum": r0.weights["optimum"],
                 "tuned Adam from random": r0.weights["adam_random"]},
                task.image_shape, out / f"c8_weights_{name}.png")).name)
    tables.append(Table(
        "Readout divergence D (nats, 95% interval; lower: each row reads as its feature's "
        "held-out label distribution) and, for images, the class-template correlation (a "
        "secondary figure: a single gradient step from zero already scores high on it).",
        [("task", "task", None), ("weights", "weights", None), ("d", "readout divergence D", None),
         ("t", "template correlation", None)], rows))
    lm = {k: v for k, v in lm_runs(runs).items() if v[0].weights["explicit"].shape[0]
          == v[0].weights["explicit"].shape[1]}
    if lm:
        name, rs = next(iter(lm.items()))
        vocab = tasks[name].vocab
        words = [w for w in vocab.tokens[1:] if w.isalpha()][:8]
        exp = top_next_tokens(rs[0].weights["explicit"], vocab, words)
        adam = top_next_tokens(rs[0].weights["adam_random"], vocab, words)
        agree = float(np.mean([exp[w][0][0] == adam[w][0][0] for w in words]))
        tables.append(Table(
            f"{name}: most likely next tokens of frequent words from the explicit weights (with "
            f"probabilities) and from tuned Adam's weights; the top token agrees for "
            f"{agree:.0%} of these words.",
            [("word", "word", None), ("explicit", "explicit: top next tokens", None),
             ("adam", "tuned Adam from random: top next tokens", None)],
            [dict(word=w, explicit=", ".join(f"{t} ({p:.2f})" for t, p in exp[w]),
                  adam=", ".join(t for t, _ in adam[w])) for w in words]))
        data[name].update(top_next_explicit=exp, top_next_adam=adam, top1_agreement=agree)
    verdict = V.combine(status.values())
    notes = [
        "Measure: any softmax layer predicts, for an input made of feature i alone, the label "
        "distribution softmax(W_i + b), its row's readout. The readout divergence is the "
        "feature-mass-weighted KL divergence from the held-out conditional label distribution "
        "of each feature (held-out co-occurrences, row-normalized) to that readout. It asks "
        "whether a row can be read on its own, and whether the reading holds on unseen data; "
        "unlike the template correlation it does not reward the first gradient step's direction.",
        "The explicit rows are these conditionals estimated on the training data, so for them D "
        "measures how well that reading carries over to unseen data; gradient-trained rows were "
        "never fitted to be read one feature at a time, and D says how far they are from it.",
    ]
    return ClaimResult("C8", TITLE, verdict, "; ".join(parts),
                       tables, plots, notes, data, rule=C8_RULE)
