"""Claim C6 (computational savings): the measured pieces at tiny scale, and the verdict and
sentences as pure functions of measured points."""

import json
import math

import numpy as np
import pytest

from xsol.experiments import (backprop_cost, cost_report, explicit_cost, flops, savings,
                              verdicts)
from xsol.experiments.claims import c6_cost as cost
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import VERDICTS, write_report
from xsol.models.linen import TokenLM

TINY = ReproduceConfig.for_scale("tiny")


@pytest.fixture(scope="module")
def c6(tmp_path_factory):
    out = tmp_path_factory.mktemp("c6")
    return cost.run(TINY, TaskCache(TINY), out, progress=False), out


def test_verdict_rule_tables_and_plot(c6):
    result, out = c6
    assert result.claim == "C6"
    assert result.verdict in VERDICTS and result.verdict != "not run"
    assert result.rule == cost.RULE and "FLOPs" in result.rule and "slope" in result.rule
    assert len(result.tables) == 4
    for table in result.tables:
        assert table.rows
        assert "|" in table.markdown()
    for row in result.tables[2].rows:
        for key in ("time_ratio", "flops_ratio", "backprop_ms", "explicit_ms", "target_loss"):
            assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0, key
    assert result.plots == ["c6_savings.png"]
    assert (out / "c6_savings.png").stat().st_size > 1000
    points = result.data["points"]
    assert {"vocabulary", "data size", "hidden width", "single layer (pixels)"} <= {
        p["axis"] for p in points}
    # The verdict is the pure rule applied to the recorded points, FLOPs and time separately.
    v, basis = cost.verdict(points)
    assert v == result.verdict
    assert set(basis["measures"]) == {"flops", "time"}
    assert v == verdicts.combine([basis["verdicts"]["flops"], basis["verdicts"]["time"]])
    assert result.summary == cost_report.summary_text(v, basis)
    # The vocabulary series reads more tokens at the larger vocabulary.
    vocab = sorted((p for p in points if p["axis"] == "vocabulary"), key=lambda p: p["M"])
    assert len(vocab) >= 2 and vocab[-1]["examples"] > vocab[0]["examples"]
    # Everything goes into results.json, with the rule.
    paths = write_report(out, [result], {"scale": "tiny"})
    claims = json.loads(open(paths["json"]).read())["claims"]
    assert claims[0]["claim"] == "C6" and claims[0]["data"]["points"]
    assert claims[0]["rule"] == cost.RULE


def test_costs_are_counted_per_seed(c6):
    result, _ = c6
    n = len(TINY.seeds)
    for p in result.data["points"]:
        e = p["explicit"]
        assert e["flops"] > 0 and e["seconds"] > 0 and len(e["seconds_per_seed"]) == n
        for t in p["targets"]:
            assert t["runs"] == n
            for m in savings.MEASURES:
                d = t[m]
                assert len(d["ratio"]) == len(d["censored"]) == len(d["explicit"]) == n
                assert all(x > 0 for x in d["explicit"])
                assert d["optimizer"] in TINY.optimizers and d["learning_rate"] in TINY.lr_grid
            if not t["lower_bound"]:
                assert t["reached"] >= 1
        for r in p["backprop"]["runs"]:
            for h in r["hits"]:
                assert h is None or h < r["steps_run"]
        if p["axis"] == "hidden width":
            # The layer-wise time is reported as clustering + solves.
            assert e["cluster_seconds"] >= 0 and e["solve_seconds"] > 0
            assert len(e["cluster_seconds_per_seed"]) == n
            assert savings.NO_CLUSTERING in p["targets"][0]


def test_learning_rates_come_from_the_grid_for_every_optimizer(c6):
    result, _ = c6
    grid = [float(g) for g in TINY.lr_grid]
    assert result.data["lr_grid"] == grid
    for p in result.data["points"]:
        bp = p["backprop"]
        assert bp["grid"] == grid and bp["tuning_seed"] == TINY.seeds[0]
        assert set(bp["optimizers"]) == set(TINY.optimizers)
        for name, o in bp["optimizers"].items():
            tried = [r["learning_rate"] for r in o["tried"]]
            assert tried and set(tried) <= set(grid)
            assert all(r["seed"] == TINY.seeds[0] for r in o["tried"])
            for lr, edge in zip(o["chosen"], o["at_edge"]):
                assert lr in tried
                assert edge == (lr in (grid[0], grid[-1]))
    notes = " ".join(result.notes)
    assert "cfg.lr_grid" in notes and "validation" in notes


def test_no_run_beats_the_lm_optimum(c6):
    """For a bigram LM the explicit solution is the training optimum: no run goes below it."""
    result, _ = c6
    lm = [p for p in result.data["points"] if p["axis"] in ("vocabulary", "data size")]
    assert lm
    for p in lm:
        opt = p["optimum_loss"]
        assert opt <= p["smoothed_loss"] + 1e-6
        assert p["targets"][0]["loss"] == pytest.approx(opt * (1 + cost.LM_TOLERANCE))
        runs = p["backprop"]["runs"] + [r for o in p["backprop"]["optimizers"].values()
                                        for r in o["tried"]]
        for r in runs:
            if not r["diverged"]:
                assert r["min_loss"] >= opt - 2e-3, (p["label"], r["learning_rate"], opt)
        # Backprop reaches within 1% of the optimum here, so the loss check is not vacuous.
        assert p["targets"][0]["reached"] >= 1


@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum"])
def test_step_flops_match_a_step_compiled_alone(rng, optimizer):
    ids = rng.integers(0, 20, size=(500, 1)).astype(np.int32)
    y = rng.integers(0, 20, size=500).astype(np.int32)
    runner = backprop_cost.BackpropRunner(TokenLM(vocab_size=20), ids, y, [0.0], batch_size=None,
                                 optimizer=optimizer)
    alone = runner.step_flops_alone()
    assert runner.flops_source == "xla" and alone
    assert runner.step_flops == pytest.approx(alone, rel=0.1)
    run = runner.run(0.3, 0, max_steps=7, max_seconds=10)
    assert run["steps_run"] == 7 and run["hits"] == [None] and run["optimizer"] == optimizer


def test_a_run_stops_once_it_cannot_beat_the_cheapest(rng):
    ids = rng.integers(0, 20, size=(500, 1)).astype(np.int32)
    y = rng.integers(0, 20, size=500).astype(np.int32)
    runner = backprop_cost.BackpropRunner(TokenLM(vocab_size=20), ids, y, [0.0], batch_size=None)
    # The cheapest run so far reached the (unreachable here) target in 5 steps' FLOPs.
    beat = [(5 * runner.step_flops, 0.0)]
    run = runner.run(0.3, 0, max_steps=500, max_seconds=30, beat=beat)
    assert run["stopped"] == "cannot beat the cheapest run" and run["steps_run"] <= 6
    # A target not asked for is never pending.
    run = runner.run(0.3, 0, max_steps=500, max_seconds=30, needed=[False])
    assert run["stopped"] == "reached" and run["steps_run"] == 0 and run["hits"] == [None]


def test_compiled_flops_reads_dicts_and_lists():
    class Fake:
        def __init__(self, ca):
            self.ca = ca

        def cost_analysis(self):
            return self.ca

    assert flops.compiled_flops(Fake({"flops": 10.0})) == 10.0
    assert flops.compiled_flops(Fake([{"flops": 4.0}, {"flops": 6.0}])) == 10.0
    assert flops.compiled_flops(Fake({})) is None
    assert flops.compiled_flops(Fake(None)) is None


def test_censored_median_and_seed_medians():
    assert backprop_cost._censored_median([1.0, 2.0, 3.0], [False, False, False]) == (2.0, False)
    # The median seed did not reach the target: the median is a lower bound.
    assert backprop_cost._censored_median([1.0, 5.0, 4.0], [False, True, True])[1] is True
    assert explicit_cost.seed_medians([1, 2, 3, 10, 20, 30], 2) == [2.0, 20.0]


# --------------------------------------------------------------------------- pure rule


SEED_NOISE = (1.0, 1.03, 0.98, 1.02)


def _noise(shift):
    """Seed noise of a few percent, in a different order at every size."""
    n = len(SEED_NOISE)
    return [SEED_NOISE[(s + shift) % n] for s in range(n)]


def _target(name, flops, time, censored=None, no_clustering=None, shift=0):
    n = len(SEED_NOISE)
    censored = censored or [False] * n
    t = {"name": name,
         "flops": {"ratio": [flops * e for e in _noise(shift)], "censored": list(censored)},
         "time": {"ratio": [time * e for e in _noise(shift + 1)], "censored": list(censored)}}
    if no_clustering is not None:
        t[savings.NO_CLUSTERING] = {"ratio": [no_clustering * e for e in _noise(shift + 2)],
                                 "censored": [False] * n}
    return t


def _points(flops_growth, time_growth, *, base=10.0, censored_small=False, cluster_share=0.5,
            no_clustering_growth=None):
    """Three series of three sizes each; the ratio grows by ``growth`` per size step."""
    points = []
    for axis, key in (("vocabulary", "weights"), ("data size", "examples"),
                      ("hidden width", "weights")):
        for i, size in enumerate((100, 1000, 10000)):
            cens = [censored_small and i == 0] * len(SEED_NOISE)
            nc = None
            if axis == "hidden width":
                g = time_growth if no_clustering_growth is None else no_clustering_growth
                nc = base * g ** i
            p = {"axis": axis, "label": f"{axis} {size}", "model": f"{axis} model {size}",
                 "weights": size, "examples": size,
                 "targets": [_target("t", base * flops_growth ** i, base * time_growth ** i,
                                     cens, nc, shift=i)]}
            if axis == "vocabulary":
                share = 0.3 + 0.2 * i if flops_growth >= 1 else 0.7 - 0.2 * i
                p["explicit"] = {"solve_flops": share, "stats_flops": 1 - share}
            if axis == "hidden width":
                c = cluster_share if i == 0 else 1 - cluster_share
                p["explicit"] = {"seconds": 1.0, "cluster_seconds": c, "solve_seconds": 1 - c}
            points.append(p)
    points.append({"axis": "single layer (pixels)", "label": "pixels", "weights": 640,
                   "examples": 500, "targets": [_target("plain", base, base)]})
    return points


def test_growing_savings_hold_and_the_sentences_say_so():
    v, basis = cost.verdict(_points(3.0, 2.0))
    assert v == "holds"
    assert basis["verdicts"] == {"flops": "holds", "time": "holds"}
    for m in savings.MEASURES:
        g = basis["measures"][m]["grows"]
        assert set(g["axes"].values()) == {"holds"}
        assert all(p["slope"] > 0 and p["lo"] > 0 for p in g["parts"].values())
    s = cost_report.summary_text(v, basis)
    assert "grow with vocabulary, data size and hidden width" in s
    assert "cheaper in 10 of 10" in s and "do not grow" not in s and "disagree" not in s
    growth = [cost_report.growth_sentence(k, g, "flops")
              for k, g in basis["measures"]["flops"]["grows"]["parts"].items()]
    assert all(" grow from " in x and ": grows" in x for x in growth)
    comp = cost_report.component_sentences(_points(3.0, 2.0))
    assert any("solve's share" in c and "rises" in c for c in comp)


def test_shrinking_savings_do_not_hold_and_the_sentences_flip():
    pts = _points(1 / 3.0, 1 / 2.0, base=0.5)
    v, basis = cost.verdict(pts)
    assert v == "does not hold"
    assert basis["verdicts"] == {"flops": "does not hold", "time": "does not hold"}
    s = cost_report.summary_text(v, basis)
    assert "do not grow with vocabulary, data size and hidden width" in s
    assert "cheaper in 0 of 10" in s and "grow with" not in s.replace("do not grow with", "")
    growth = [cost_report.growth_sentence(k, g, "time")
              for k, g in basis["measures"]["time"]["grows"]["parts"].items()]
    assert all(" shrink from " in x and ": does not grow" in x for x in growth)
    comp = cost_report.component_sentences(pts)
    assert any("solve's share" in c and "falls" in c for c in comp)


def test_one_measure_holding_gives_partly_and_names_the_disagreement():
    v, basis = cost.verdict(_points(3.0, 1 / 2.0, base=50.0))
    assert basis["verdicts"]["flops"] == "holds"
    assert basis["verdicts"]["time"] == "partly"  # cheaper everywhere, but shrinking
    assert v == "partly"
    s = cost_report.summary_text(v, basis)
    assert "The measures disagree (FLOPs holds, wall time partly)" in s
    assert "the wall time savings do not grow with" in s
    assert "the FLOPs savings grow with" in s


def test_a_flat_ratio_is_inconclusive_not_a_cliff():
    # The ratio barely moves (x1.01 per size step) within seed noise of a few percent.
    v, basis = cost.verdict(_points(1.01, 1.0, base=5.0))
    g = basis["measures"]["flops"]["grows"]
    assert set(g["axes"].values()) == {"inconclusive"}
    assert basis["verdicts"]["flops"] == "partly"  # cheaper holds, growth inconclusive
    assert "are inconclusive in vocabulary, data size and hidden width" in cost_report.summary_text(
        v, basis)


def test_lower_bounds_at_the_small_sizes_cannot_show_growth():
    v, basis = cost.verdict(_points(3.0, 2.0, censored_small=True))
    for part in basis["measures"]["flops"]["grows"]["parts"].values():
        assert part["verdict"] == "inconclusive" and part["censored_small"]
    # Lower bounds can still show that the explicit fit is cheaper.
    assert basis["measures"]["flops"]["cheaper"]["verdict"] == "holds"
    # ... but never that it is not.
    part = savings.cheaper_part([0.5, 0.5, 0.5], [True, False, False])
    assert part["verdict"] == "inconclusive"
    assert savings.cheaper_part([0.5, 0.5, 0.5], [False] * 3)["verdict"] == "does not hold"


def test_clustering_sentence_follows_the_numbers():
    # Time shrinks with the clustering and grows without it: the sentence says it changes.
    _, basis = cost.verdict(_points(3.0, 1 / 2.0, base=50.0, no_clustering_growth=2.0))
    s = cost_report.clustering_sentence(basis)
    assert s.startswith("Excluding the clustering changes")
    assert "grows: does not hold with it, holds without it" in s
    # The same growth with and without: unchanged.
    _, basis = cost.verdict(_points(3.0, 2.0, base=50.0))
    assert cost_report.clustering_sentence(basis).startswith(
        "Excluding the clustering leaves the hidden-width wall-time verdicts unchanged")
    # The clustering's share: rises or falls with the numbers.
    up = cost_report.component_sentences(_points(3.0, 2.0, cluster_share=0.2))
    down = cost_report.component_sentences(_points(3.0, 2.0, cluster_share=0.8))
    assert any("clustering's share" in c and "rises from 20 to 80" in c for c in up)
    assert any("clustering's share" in c and "falls from 80 to 20" in c for c in down)


def test_growth_part_slope_and_one_seed():
    g = savings.growth_part([10, 100], [[1.0], [10.0]], [[False], [False]])
    assert g["slope"] == pytest.approx(1.0) and g["n"] == 1 and g["verdict"] == "holds"
    g = savings.growth_part([10, 100], [[10.0], [1.0]], [[False], [False]])
    assert g["slope"] == pytest.approx(-1.0) and g["verdict"] == "does not hold"
    with pytest.raises(ValueError):
        savings.growth_part([10, 10], [[1.0], [2.0]], [[False], [False]])


def test_edge_sentence_follows_the_chosen_rates():
    def point(label, chosen, edge):
        return {"label": label, "model": label, "examples": 10, "targets": [{"name": "t"}],
                "backprop": {"grid": [0.1, 1.0, 10.0],
                             "optimizers": {"adam": {"chosen": [chosen], "at_edge": [edge]}},
                             "winners": {"flops": [("adam", chosen)],
                                         "time": [("adam", chosen)]}}}

    inside = cost_report.lr_sentences([point("a", 1.0, False)])
    assert inside == ["Every chosen rate lies inside the grid."]
    (s,) = cost_report.lr_sentences([point("a", 10.0, True), point("b", 1.0, False)])
    assert "Adam at 10, the top of the grid, for 1 of 2 model-targets (a / t)" in s
    assert "charged baseline for 1 of them" in s
    (s,) = cost_report.lr_sentences([point("a", 0.1, True)])
    assert "the bottom of the grid, for every model-target (1)" in s
