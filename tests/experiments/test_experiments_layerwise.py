"""Claims C5 and C7 at tiny scale: layer-wise explicit networks, tuned backprop, the rules."""

import math

import numpy as np
import pytest

from xsol.experiments import grid_choice, layerwise, verdicts
from xsol.experiments.claims import c5_layerwise
from xsol.experiments.claims import c5_rule
from xsol.experiments.claims import c7_warm_start
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import VERDICTS
from xsol.experiments.tasks import resample, validation_split
from xsol.models.linen import layer_inputs


@pytest.fixture(scope="module")
def cfg():
    return ReproduceConfig.for_scale("tiny", image_datasets=("digits",))


@pytest.fixture(scope="module")
def cache(cfg):
    return TaskCache(cfg)


@pytest.fixture(scope="module")
def c5(cfg, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("c5")
    return out, c5_layerwise.run_c5(cfg, cache, out, progress=False)


@pytest.fixture(scope="module")
def c7(cfg, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("c7")
    return out, c7_warm_start.run_c7(cfg, cache, out, progress=False)


# ---------------------------------------------------------------- C5, measured


def test_c5_result_is_complete(cfg, c5):
    out, result = c5
    assert result.claim == "C5"
    assert result.verdict in VERDICTS and result.verdict != "not run"
    assert result.summary and result.notes
    assert "wide margin" in result.rule and "Holm" in result.rule
    assert f"{cfg.steps} steps" in result.rule
    main = result.tables[0]
    titles = {row["method"] for row in main.rows}
    assert {t for _, t in c5_layerwise.EXPLICIT} <= titles
    assert {f"{t} + backprop" for _, t in c5_layerwise.TRAINED} <= titles
    assert len(main.rows) == len(c5_layerwise.EXPLICIT) + len(c5_layerwise.TRAINED) * len(cfg.optimizers)
    for row in main.rows:
        for key in ("acc", "acc_std", "loss", "loss_std"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row["method"], key)
        assert (row["backprop_s"] is not None) == row["method"].endswith("+ backprop")
    parts = result.data["parts"]
    assert {p["part"] for p in parts} == {"a", "b", "c"}
    assert len(parts) == len(cfg.hidden_widths) * (2 + len(cfg.optimizers))
    assert all(p["verdict"] in VERDICTS for p in parts)
    assert result.verdict == c5_rule.c5_verdict(parts)
    assert result.summary == c5_rule.c5_summary(parts)
    assert result.plots and all((out / p).is_file() for p in result.plots)
    assert all("/" not in p for p in result.plots)  # relative to the output folder
    assert any(p.endswith("_lr.png") for p in result.plots)  # the sensitivity plot
    per_seed = result.data["per_seed"][f"digits H={cfg.hidden_widths[0]}"]
    assert [r["seed"] for r in per_seed] == list(cfg.seeds)
    assert per_seed[0]["trajectories"]["finetuned/adam"]["rows"][-1]["step"] == cfg.steps


def test_every_backprop_run_is_tuned_on_validation(cfg, c5):
    _, result = c5
    for cell in result.data["per_seed"].values():
        for r in cell:
            for key, _ in c5_layerwise.TRAINED:
                assert set(r["methods"][key]) == set(cfg.optimizers)
                for opt, row in r["methods"][key].items():
                    assert row["grid"] == list(cfg.lr_grid)
                    val = np.asarray(row["by_lr"]["val_loss"], float)
                    i = row["lr_index"]
                    assert row["learning_rate"] == cfg.lr_grid[i]
                    assert val[i] == np.nanmin(np.where(np.isfinite(val), val, np.nan))
                    assert row["at_edge"] == (i in (0, len(cfg.lr_grid) - 1))
                    assert row["test_accuracy"] == row["by_lr"]["test_accuracy"][i]
    lr_table = result.tables[3]
    assert len(lr_table.rows) == len(c5_layerwise.TRAINED) * len(cfg.optimizers)
    for row in lr_table.rows:
        assert row["grid"] == ", ".join(f"{v:g}" for v in cfg.lr_grid)
        assert ("widen" in row["edge"]) == (not row["edge"].startswith("0/"))
    sens = result.data["sensitivity"]
    assert len(sens) == len(cfg.lr_grid) * len(cfg.optimizers)


def test_chance_is_the_majority_training_label(cfg, cache, c5):
    _, result = c5
    fit, _ = validation_split(cache.image("digits"), cfg.validation_fraction)
    per_seed = result.data["per_seed"][f"digits H={cfg.hidden_widths[0]}"]
    for r in per_seed:
        t = resample(fit, r["seed"], cfg.resample_fraction)
        assert r["chance"] == verdicts.chance_accuracy(t.y_train, t.y_test)


def test_layerwise_network_without_backprop_is_well_above_chance(c5):
    _, result = c5
    for n in result.data["numbers"]:
        assert max(n["chance"]) < 0.2
        assert np.mean(n["acc"]["layerwise"]) > 0.5
        assert np.mean(n["acc"]["layerwise_once"]) > 0.5


def test_mlp_reproduces_hand_computed_forward_pass(c5):
    _, result = c5
    for cell in result.data["per_seed"].values():
        for r in cell:
            for key in ("layerwise", "layerwise_once", "kmeans"):
                row = r["methods"][key]
                assert row["forward_max_abs_diff"] < 1e-3
                assert abs(row["test_accuracy"] - row["hand_test_accuracy"]) <= 1.5 / 360
                assert row["test_loss"] == pytest.approx(row["hand_test_loss"], abs=1e-4)


def test_finetuning_starts_at_the_explicit_network(cfg, c5):
    _, result = c5
    for cell in result.data["per_seed"].values():
        for r in cell:
            m = r["methods"]
            for opt in cfg.optimizers:
                assert m["finetuned"][opt]["start_test_accuracy"] == pytest.approx(
                    m["layerwise"]["test_accuracy"], abs=1.5 / 360)
                assert m["finetuned"][opt]["start_test_loss"] == pytest.approx(
                    m["layerwise"]["test_loss"], abs=1e-4)


def test_hidden_targets_and_direct_check(cfg, cache):
    t = resample(cache.image("digits"), 0, cfg.resample_fraction)
    H, N = 16, t.num_classes
    targets, owner = layerwise.class_conditioned_clusters(t.X_train, t.y_train, H, N, seed=0)
    assert targets.min() >= 0 and targets.max() < H
    # every cluster belongs to one class, and its examples all carry that label
    np.testing.assert_array_equal(owner[targets], t.y_train)
    counts = np.bincount(owner, minlength=N)
    assert counts.sum() == H and counts.min() == H // N and counts.max() == H // N + 1
    fit = layerwise.fit_layerwise(t.X_train, t.y_train, H, N, targets=targets, owner=owner)
    model = layerwise.mlp_for(t, H)
    params = model.from_explicit(fit.layers)
    z = np.asarray(model.apply({"params": params}, model.prepare(t.X_test)))
    np.testing.assert_allclose(z, layerwise.hand_forward(fit, t.X_test), atol=1e-4)
    h = np.asarray(layer_inputs(model, params, model.prepare(t.X_test))[1])
    np.testing.assert_allclose(h, np.asarray(fit.layers[0].predict_proba(t.X_test)), atol=1e-5)
    np.testing.assert_allclose(h.sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="at least one hidden unit per class"):
        layerwise.clusters_per_class(t.y_train, 8, N)


def test_two_hidden_layers_fitted_layer_by_layer(cfg, cache):
    t = resample(cache.image("digits"), 0, cfg.resample_fraction)
    N = t.num_classes
    fit = layerwise.fit_layerwise(t.X_train, t.y_train, (16, 12), N, seed=0)
    assert len(fit.layers) == 3 and len(fit.hidden_targets) == 2
    # layer 2's targets are class-conditioned clusters of layer 1's activations
    owner2 = fit.hidden_owners[1]
    np.testing.assert_array_equal(owner2[fit.hidden_targets[1]], t.y_train)
    assert fit.hidden_targets[1].max() < 12
    model = layerwise.mlp_for(t, (16, 12))
    assert model.hidden == (16, 12)
    params = model.from_explicit(fit.layers)
    X = model.prepare(t.X_test)
    z = np.asarray(model.apply({"params": params}, X))
    np.testing.assert_allclose(z, layerwise.hand_forward(fit, t.X_test), atol=1e-4)
    hs = layer_inputs(model, params, X)
    ref = layerwise.hidden_activations(fit, t.X_test)
    for h, r in zip(hs[1:], ref):
        np.testing.assert_allclose(np.asarray(h), r, atol=1e-5)
    row = layerwise.network_row(model, fit, t)
    assert row["test_accuracy"] > 0.5 and row["forward_prediction_mismatches"] <= 1
    with pytest.raises(ValueError, match="2 hidden layers"):
        layerwise.fit_layerwise(t.X_train, t.y_train, (16, 12), N, targets=[fit.targets])


def test_prior_once_is_an_ordinary_softmax_layer(cfg, cache):
    import xsol

    t = resample(cache.image("digits"), 0, cfg.resample_fraction)
    sol = xsol.fit_explicit(t.X_train, t.y_train, t.num_classes)
    once = layerwise.count_prior_once(sol, t.X_train, t.y_train)
    assert once.inverse_temperature > 1
    # it is an ordinary softmax layer: weights beta (W - 1 log c^T), bias log p
    z = np.asarray(once.logits(t.X_test))
    F = np.asarray(sol.stats.cooc, float)
    log_c = np.log(F.sum(0) + F.shape[0] * sol.smoothing)
    n = np.asarray(sol.stats.label_counts, float) + sol.smoothing
    log_p = np.log(n / n.sum())
    Xn = t.X_test / t.X_test.sum(1, keepdims=True)
    expected = once.inverse_temperature * (Xn @ (np.asarray(sol.weights) - log_c)) + log_p
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-4)
    # W - 1 log c^T is the smoothed log-likelihood log P^(i|k) up to a constant per row
    L = np.asarray(sol.weights) - log_c
    lik = np.log(F + sol.smoothing) - np.log(F.sum(0) + F.shape[0] * sol.smoothing)
    d = L - lik
    np.testing.assert_allclose(d, np.repeat(d[:, :1], d.shape[1], 1), atol=1e-4)


# ---------------------------------------------------------------- C7, measured


def test_c7_result_is_complete(cfg, c7):
    out, result = c7
    assert result.claim == "C7"
    assert result.title == "warm start + backprop finds better optima"
    assert result.verdict in VERDICTS and result.verdict != "not run"
    assert "early stopping" in result.rule and "Holm" in result.rule
    assert f"{c7_warm_start.DEPTH} softmax hidden layers" in result.rule
    parts = result.data["parts"]
    assert len(parts) == 2 * len(cfg.optimizers) * len(cfg.hidden_widths)
    assert result.verdict == c7_warm_start.c7_verdict(parts)
    assert result.summary == c7_warm_start.c7_summary(parts)
    assert result.plots and all((out / p).is_file() for p in result.plots)
    assert result.data["settings"]["depth"] == 2
    sens = result.data["sensitivity"]
    assert len(sens) == len(cfg.lr_grid) * len(cfg.optimizers)


def test_c7_runs_are_tuned_and_early_stopped(cfg, c7):
    _, result = c7
    total = c7_warm_start.budget(cfg)
    for cell in result.data["per_seed"].values():
        for r in cell:
            for key, _ in c7_warm_start.STARTS:
                for opt in cfg.optimizers:
                    row = r["starts"][key][opt]
                    assert row["status"] in ("converged", "not converged", "diverged")
                    assert row["learning_rate"] in cfg.lr_grid
                    i = row["chosen"]
                    val = row["by_lr"]["val_loss"]
                    ok = [j for j, s in enumerate(row["by_lr"]["status"]) if s != "diverged"]
                    assert val[i] == min(val[j] for j in ok)
                    assert 0 <= row["step"] <= row["stop_step"] <= total
                    assert set(row["budgets"]) == set(c7_warm_start.budgets(cfg))
            # the warm start begins at the layer-wise explicit network
            for opt in cfg.optimizers:
                starts = r["starts"]["warm"][opt]["by_lr"]["start_test_loss"]
                assert starts[0] == pytest.approx(r["explicit"]["warm"]["test_loss"], abs=1e-4)
            assert r["explicit"]["warm"]["forward_max_abs_diff"] < 1e-3


# ------------------------------------------- rules: pure functions, flipped numbers


def _c5_cell(good: bool):
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.004, 5)  # noqa: E731
    hi, lo = 0.9 + noise(), 0.8 + noise()
    acc = {"layerwise": hi if good else 0.3 + noise(), "single": lo if good else hi,
           "finetuned/adam": 0.95 + noise() if good else 0.85 + noise(),
           "random/adam": 0.9 + noise()}
    return dict(name="digits H=32", chance=[0.1] * 5, margin=[0.55] * 5,
                acc={k: list(v) for k, v in acc.items()})


def test_c5_verdict_and_sentences_follow_the_numbers():
    good = c5_rule.c5_parts([_c5_cell(True)], ["adam"], 300)
    bad = c5_rule.c5_parts([_c5_cell(False)], ["adam"], 300)
    assert [p["verdict"] for p in good] == ["holds"] * 3
    assert [p["verdict"] for p in bad] == ["does not hold"] * 3
    assert c5_rule.c5_verdict(good) == "holds"
    assert c5_rule.c5_verdict(bad) == "does not hold"
    s_good, s_bad = c5_rule.c5_summary(good), c5_rule.c5_summary(bad)
    assert "layer-wise explicit accuracy (0.9" in s_good
    assert "is higher than the wide margin" in s_good
    assert "is lower than the wide margin" in s_bad
    assert "is higher than single-layer explicit" in s_good
    assert "is lower than single-layer explicit" in s_bad
    ft = np.mean(_c5_cell(True)["acc"]["finetuned/adam"])
    assert f"Adam from layer-wise explicit ({ft:.3f})" in s_good
    assert "is higher than Adam from random" in s_good
    assert "is lower than Adam from random" in s_bad
    assert s_good.count(": holds") == 3 and s_bad.count(": does not hold") == 3
    # one part failing: partly
    mixed = _c5_cell(True)
    mixed["acc"]["single"] = [0.99] * 5
    parts = c5_rule.c5_parts([mixed], ["adam"], 300)
    assert [p["verdict"] for p in parts] == ["holds", "does not hold", "holds"]
    assert c5_rule.c5_verdict(parts) == "partly"


def test_c5_interval_containing_the_threshold_is_inconclusive():
    cell = _c5_cell(True)
    # fine-tuned − random straddles −0.005 widely
    cell["acc"]["finetuned/adam"] = list(np.asarray(cell["acc"]["random/adam"])
                                         + [0.05, -0.06, 0.04, -0.05, 0.01])
    parts = c5_rule.c5_parts([cell], ["adam"], 300)
    c = [p for p in parts if p["part"] == "c"][0]
    assert c["value_lo"] < c["threshold"] < c["value_hi"]
    assert c["verdict"] == "inconclusive"
    assert c5_rule.c5_verdict(parts) == "partly"


def test_c5_parts_are_holm_corrected():
    parts = c5_rule.c5_parts([_c5_cell(True), _c5_cell(False)], ["adam"], 300)
    raw = [p["p_value"] for p in parts]
    assert [p["p_holm"] for p in parts] == pytest.approx(verdicts.holm(raw))
    assert all(p["p_holm"] >= p["p_value"] for p in parts)


def _c7_cell(warm_better: bool, cold_converged: bool = True, warm_converged: bool = True):
    rng = np.random.default_rng(1)
    noise = lambda: rng.normal(0, 0.003, 5)  # noqa: E731
    good, poor = 0.10 + noise(), 0.25 + noise()
    return dict(name="digits 64-32-32-10", optimizer="adam",
                loss={"warm": list(good if warm_better else poor),
                      "cold": list(poor if warm_better else good)},
                acc={"warm": list((0.97 if warm_better else 0.90) + noise()),
                     "cold": list((0.90 if warm_better else 0.97) + noise())},
                converged={"warm": [warm_converged] + [True] * 4,
                           "cold": [cold_converged] + [True] * 4})


def test_c7_verdict_and_sentences_follow_the_numbers():
    good = c7_warm_start.c7_parts([_c7_cell(True)])
    bad = c7_warm_start.c7_parts([_c7_cell(False)])
    assert [p["verdict"] for p in good] == ["holds", "holds"]
    assert [p["verdict"] for p in bad] == ["does not hold", "does not hold"]
    assert c7_warm_start.c7_verdict(good) == "holds" and c7_warm_start.c7_verdict(bad) == "does not hold"
    s_good, s_bad = c7_warm_start.c7_summary(good), c7_warm_start.c7_summary(bad)
    assert "held-out loss at convergence (0.10" in s_good
    assert "is lower than from the cold start (0.25" in s_good
    assert "is higher than from the cold start (0.10" in s_bad
    assert "held-out accuracy at convergence (0.97" in s_good
    assert "is lower than from the cold start (0.97" in s_bad
    # equal optima (a tiny difference, tightly measured) is not a better optimum
    same = _c7_cell(True)
    same["loss"]["cold"] = list(np.asarray(same["loss"]["warm"]) + 0.001)
    parts = c7_warm_start.c7_parts([same])
    assert parts[0]["verdict"] == "does not hold"


def test_c7_needs_the_start_that_could_close_the_gap_to_converge():
    # warm ahead, cold unconverged: cold could still catch up
    parts = c7_warm_start.c7_parts([_c7_cell(True, cold_converged=False)])
    assert [p["verdict"] for p in parts] == ["inconclusive", "inconclusive"]
    assert c7_warm_start.c7_verdict(parts) == "inconclusive"
    assert ("the cold start, which could still close the gap, did not converge within the "
            "budget on 1/5 seeds") in c7_warm_start.c7_summary(parts)
    # warm ahead and unconverged: more steps can only help it, the verdict stands
    parts = c7_warm_start.c7_parts([_c7_cell(True, warm_converged=False)])
    assert [p["verdict"] for p in parts] == ["holds", "holds"]
    # warm behind and unconverged: it could still close the gap
    parts = c7_warm_start.c7_parts([_c7_cell(False, warm_converged=False)])
    assert [p["verdict"] for p in parts] == ["inconclusive", "inconclusive"]
    assert "the warm start, which could still close the gap" in c7_warm_start.c7_summary(parts)


def test_early_stopping_rule():
    steps = list(range(0, 110, 10))
    falling_then_flat = [2.0, 1.0, 0.5, 0.4, 0.4, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45]
    es = grid_choice.early_stop(steps, falling_then_flat, patience_steps=30)
    assert es == dict(index=3, step=30, stop_step=60, status="converged")
    falling = [2.0 - 0.1 * i for i in range(11)]
    es = grid_choice.early_stop(steps, falling, patience_steps=30)
    assert es["status"] == "not converged" and es["step"] == 100
    # improvements below min_delta do not reset patience, but the best checkpoint is kept
    creeping = [1.0] + [1.0 - 1e-5 * i for i in range(1, 11)]
    es = grid_choice.early_stop(steps, creeping, patience_steps=30, min_delta=1e-3)
    assert es["status"] == "converged" and es["stop_step"] == 30 and es["step"] == 30
    nan = [1.0, 0.5, float("nan")] + [0.1] * 8
    es = grid_choice.early_stop(steps, nan, patience_steps=30)
    assert es["status"] == "diverged" and es["step"] == 10


def test_single_seed_point_decides():
    t = verdicts.threshold_test([0.7], 0.5, side="above")
    assert verdicts.part_verdict(t) == "holds"
    t = verdicts.threshold_test([0.3], 0.5, side="above")
    assert verdicts.part_verdict(t) == "does not hold"
    t = verdicts.threshold_test([0.3, 0.31], 0.5, side="below")
    t["p_holm"] = t["p_value"]
    assert verdicts.part_verdict(t) in ("holds", "inconclusive")


def test_results_go_into_the_report(c5, c7, tmp_path):
    import json

    from xsol.experiments.report import write_report

    paths = write_report(tmp_path, [c5[1], c7[1]], {})
    text = open(paths["report"], encoding="utf-8").read()
    assert text.count("*Rule:*") == 2
    claims = json.load(open(paths["json"], encoding="utf-8"))["claims"]
    assert [c["claim"] for c in claims] == ["C5", "C7"]
    assert all(c["rule"] for c in claims)
