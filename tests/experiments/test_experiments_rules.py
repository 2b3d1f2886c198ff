"""Verdict rules and computed sentences: opposite numbers flip the verdict and the words.

The claims are fed synthetic runs (no training), so each test states the
numbers it feeds and the sentence it expects.
"""

import math

import numpy as np
import pytest

from xsol.experiments import claims
from xsol.experiments import verdicts as V
from xsol.experiments.interpret import readout_divergence
from xsol.experiments.runs import SeedRuns
from xsol.experiments.sweep import GridRun
from xsol.train.trajectory import Trajectory

# ------------------------------------------------------------------ verdicts


def test_against_uses_the_interval_not_the_mean():
    assert V.against([0.010, 0.011, 0.012], 0.02, side="below") == "holds"
    assert V.against([0.030, 0.031, 0.032], 0.02, side="below") == "does not hold"
    # Mean 0.019 is below 0.02, but the interval contains it: no cliff.
    assert V.against([0.010, 0.028, 0.019], 0.02, side="below") == "inconclusive"
    assert V.against([0.6, 0.61, 0.62], 0.5, side="above") == "holds"
    assert V.against([0.4, 0.41, 0.42], 0.5, side="above") == "does not hold"
    with pytest.raises(ValueError, match="side"):
        V.against([1.0], 0.5, side="left")


def test_combine_and_holm():
    assert V.combine(["holds", "holds"]) == "holds"
    assert V.combine(["does not hold", "does not hold"]) == "does not hold"
    assert V.combine(["holds", "does not hold"]) == "partly"
    assert V.combine(["inconclusive", "does not hold"]) == "inconclusive"
    assert V.combine(["not run"]) == "not run"
    adj = V.holm([0.01, 0.04, 0.03])
    assert adj == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(V.holm([float("nan"), 0.01])[0])


def test_chance_is_the_majority_training_label():
    assert V.chance_accuracy([0, 1, 1, 2], [1, 1, 0, 2]) == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        V.chance_accuracy([], [1])


def test_sentences_flip_with_their_numbers():
    assert "is lower than" in V.compare("A", 1.0, "B", 2.0)
    assert "is higher than" in V.compare("A", 2.0, "B", 1.0)
    assert "equal to" in V.compare("A", 1.0, "B", 1.0)
    assert "rises from" in V.change("x", 1.0, 2.0) and "falls from" in V.change("x", 2.0, 1.0)
    up = V.with_holm({"t": V.paired([2.0, 2.1, 2.2], [1.0, 1.0, 1.05])})["t"]
    down = V.with_holm({"t": V.paired([1.0, 1.0, 1.05], [2.0, 2.1, 2.2])})["t"]
    assert "A is higher than B" in V.difference(up, "A", "B")
    assert "A is lower than B" in V.difference(down, "A", "B")
    same = V.paired([1.0, 2.0, 3.0], [1.1, 1.9, 3.05])
    assert "not significant" in V.difference(same, "A", "B")


def test_one_summary_helper_behind_means_and_intervals():
    from xsol.experiments import summary

    values = [0.1, 0.2, float("nan"), 0.3]
    ci = summary.interval(values)
    ms = summary.mean_std(values, finite=True)
    assert (ci["mean"], ci["std"], ci["n"], ci["values"]) == (ms["mean"], ms["std"], ms["n"],
                                                               ms["values"])
    assert ci["dropped"] == 1 and ci["lo"] < ci["mean"] < ci["hi"]
    assert summary.mean_of(values) == ci["mean"] == pytest.approx(0.2)
    assert math.isnan(summary.mean_std(values)["mean"])  # without finite=True NaN propagates
    assert V.interval is summary.interval  # the verdicts read the same intervals
    one = summary.interval([0.5])
    assert one["lo"] == one["hi"] == 0.5 and one["std"] == 0.0
    empty = summary.interval([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["std"])
    assert summary.fmt_interval([0.01, 0.02, 0.03], 2, 100, "%").startswith("2.00% [")
    assert summary.fmt_span(dict(lo=0.1, hi=0.25)) == "0.1000 to 0.2500"


# ------------------------------------------------------------------ synthetic runs


def _traj(rows):
    return Trajectory(rows=rows, meta={})


def _grid(traj_per_rate, rates=(0.1, 1.0)):
    return GridRun("adam", "x", list(rates), traj_per_rate, [], 0.0)


def _runs(*, kind="dense", explicit_acc=0.9, optimum_acc=0.95, cos=(0.0, 0.8, 0.7),
          readout=(0.1, 1.0, 2.0), train_change=-0.01, seeds=4):
    out = []
    for s in range(seeds):
        e = 1e-3 * s
        steps = [0, 10, 100]
        base = dict(train_loss=1.0, test_loss=1.0, test_accuracy=0.5, val_loss=1.0)

        def traj(cosines, change):
            return _traj([dict(base, step=st, cosine=c + e,
                               train_loss=1.0 + (change * i / 2),
                               test_loss=1.0, test_accuracy=0.5)
                          for i, (st, c) in enumerate(zip(steps, cosines))])

        grids = {"adam": {st: _grid([traj(cos, train_change), traj(cos, train_change)])
                          for st in ("random", "explicit", "calibrated")}}
        chosen = {"adam": {st: 1 for st in ("random", "explicit", "calibrated")}}
        m = lambda acc: dict(test_accuracy=acc + e, test_loss=0.5, train_loss=0.5,  # noqa: E731
                             test_perplexity=2.0)
        out.append(SeedRuns(
            task="t", seed=s, kind=kind, num_classes=10, chance=0.1,
            explicit=m(explicit_acc), calibrated=m(explicit_acc), prior_once=m(explicit_acc),
            optimum=dict(m(optimum_acc), l2=1e-5, cosine_to_explicit=0.6, reason="gradient",
                         converged=True, iterations=10, grad_norm=1e-6),
            smoothing=[], grids=grids, chosen=chosen,
            adam={st: grids["adam"][st].trajectories[1] for st in grids["adam"]},
            weights={}, readout=dict(zip(("explicit", "optimum", "adam_random"),
                                         (v + e * (i + 1) for i, v in enumerate(readout)))),
            template={}))
    return {"t": out}


def test_c2_verdict_and_summary_flip(tmp_path):
    near = claims.claim_c2(_runs(explicit_acc=0.945, optimum_acc=0.95), tmp_path, _Cfg())
    far = claims.claim_c2(_runs(explicit_acc=0.2, optimum_acc=0.95), tmp_path, _Cfg())
    above = claims.claim_c2(_runs(explicit_acc=0.97, optimum_acc=0.95), tmp_path, _Cfg())
    assert near.verdict == "holds" and far.verdict == "does not hold"
    assert "is lower than the optimum's" in far.summary
    assert "is higher than the optimum's" in above.summary
    assert near.rule and "2 points" in near.rule


def test_c4_verdict_and_notes_flip(tmp_path):
    toward = claims.claim_c4(_runs(cos=(0.0, 0.8, 0.7)), tmp_path, _Cfg())
    away = claims.claim_c4(_runs(cos=(0.0, 0.1, 0.05)), tmp_path, _Cfg())
    assert toward.verdict == "holds" and away.verdict == "does not hold"
    assert "falls to 0.70" in toward.notes[0]
    stays = claims.claim_c4(_runs(cos=(0.0, 0.3, 0.8)), tmp_path, _Cfg())
    assert "stays there to the end" in stays.notes[0]
    assert "is higher than the final cosine" in away.notes[0]
    assert "is lower than the final cosine" in toward.notes[0]


def test_c3_marginal_or_not(tmp_path):
    small = claims.claim_c3(_runs(train_change=-0.01), tmp_path, _Cfg())
    large = claims.claim_c3(_runs(train_change=-0.5), tmp_path, _Cfg())
    assert small.verdict == "holds" and large.verdict == "does not hold"
    assert claims.c3_case([-0.01, -0.012, -0.011], [0.0, 0.001, 0.0], is_lm=False) == "holds"
    assert claims.c3_case([-0.3, -0.31, -0.3], [0.0, 0.001, 0.0], is_lm=False) == "does not hold"
    assert claims.c3_case([-0.01, -0.012, -0.011], [0.05, 0.06, 0.05], is_lm=False) \
        == "does not hold"


def test_c8_verdict_and_sentences_flip(tmp_path):
    lower = claims.claim_c8(_runs(readout=(0.1, 1.0, 2.0)), {}, tmp_path, _Cfg())
    higher = claims.claim_c8(_runs(readout=(3.0, 1.0, 2.0)), {}, tmp_path, _Cfg())
    assert lower.verdict == "holds" and higher.verdict == "does not hold"
    assert "explicit is lower than the optimum" in lower.summary
    assert "explicit is higher than the optimum" in higher.summary


def test_c1_task_rule():
    assert claims.c1_task_verdict([0.001, 0.002, 0.0015], True) == "holds"
    # Not converged: the gap is a lower bound, so a small one proves nothing.
    assert claims.c1_task_verdict([0.001, 0.002, 0.0015], False) == "inconclusive"
    # ... but a lower bound above the threshold is enough to reject.
    assert claims.c1_task_verdict([0.10, 0.11, 0.12], False) == "does not hold"


def test_c2_rule_partly_and_inconclusive():
    assert claims.c2_task_verdict([0.10, 0.11, 0.12], [0.8, 0.82, 0.81]) == "partly"
    assert claims.c2_task_verdict([0.10, 0.11, 0.12], [0.2, 0.22, 0.21]) == "does not hold"
    assert claims.c2_task_verdict([0.0, 0.04, 0.02], [0.9, 0.95, 0.97]) == "inconclusive"


class _Cfg:
    steps = 100
    image_smoothing = 0.01
    lm_smoothing = 0.01
    seeds = (0, 1, 2, 3)
    resample_fraction = 0.9


# ------------------------------------------------------------------ C8's measure


def test_readout_divergence_is_zero_for_the_held_out_conditionals():
    rng = np.random.default_rng(0)
    F = rng.integers(1, 20, size=(6, 4)).astype(float)
    W = np.log(F / F.sum(1, keepdims=True))
    assert readout_divergence(W, np.zeros(4), F) == pytest.approx(0.0, abs=1e-12)
    assert readout_divergence(np.zeros((6, 4)), np.zeros(4), F) > 0.01
    F[2] = 0  # a feature never seen in held-out data carries no weight
    assert np.isfinite(readout_divergence(W, np.zeros(4), F))
    with pytest.raises(ValueError, match="differ in shape"):
        readout_divergence(W[:3], np.zeros(4), F)
    with pytest.raises(ValueError, match="all zero"):
        readout_divergence(W, np.zeros(4), np.zeros_like(F))


def test_later_seeds_reuse_the_most_frequent_choice():
    from xsol.experiments.runs import reused_rates

    runs = _runs(seeds=3)["t"]
    runs[0].chosen["adam"]["random"] = 0
    runs[1].chosen["adam"]["random"] = 1
    runs[2].chosen["adam"]["random"] = 1
    rates = reused_rates(runs)
    assert rates[("adam", "random")] == 1.0  # two of three seeds chose the grid's 1.0
    assert rates[("adam", "explicit")] == 1.0
    runs[2].chosen["adam"]["random"] = 0
    runs[1].chosen["adam"]["random"] = 0
    assert reused_rates(runs[:2])[("adam", "random")] == 0.1
    # A tie goes to the smaller rate.
    runs[1].chosen["adam"]["random"] = 1
    assert reused_rates(runs[:2])[("adam", "random")] == 0.1
