"""Claim C5 at tiny scale: layer-wise explicit networks, fine-tuning, the report pieces."""

import math

import numpy as np
import pytest

from xsol.experiments import layerwise
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import VERDICTS
from xsol.experiments.tasks import resample
from xsol.models import layer_inputs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = ReproduceConfig.for_scale("tiny", image_datasets=("digits",))
    tasks = TaskCache(cfg)
    out = tmp_path_factory.mktemp("c5")
    return cfg, tasks, out, layerwise.run(cfg, tasks, out, progress=False)


def test_claim_result_is_complete(tiny):
    cfg, _, out, result = tiny
    assert result.claim == "C5"
    assert result.verdict in VERDICTS and result.verdict != "not run"
    assert result.summary and result.notes
    assert any("Verdict rule" in n for n in result.notes)
    main = result.tables[0]
    titles = {row["method"] for row in main.rows}
    assert titles == {title for _, title, _ in layerwise.METHODS}
    for row in main.rows:
        for key in ("acc", "acc_std", "loss", "loss_std"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row["method"], key)
    backprop = {title for _, title, b in layerwise.METHODS if b}
    for row in main.rows:
        assert (row["backprop_s"] is not None) == (row["method"] in backprop)
    assert len(result.tables[1].rows) == len(cfg.hidden_widths)
    assert result.plots and all((out / p).is_file() for p in result.plots)
    assert all("/" not in p for p in result.plots)  # relative to the output folder
    per_seed = result.data["per_seed"][f"digits H={cfg.hidden_widths[0]}"]
    assert [r["seed"] for r in per_seed] == list(cfg.seeds)
    assert "test_accuracy" in per_seed[0]["methods"]["random"]
    assert per_seed[0]["trajectories"]["finetuned"]["rows"][-1]["step"] == cfg.steps


def test_layerwise_network_without_backprop_is_well_above_chance(tiny):
    _, _, _, result = tiny
    for s in result.data["summaries"]:
        assert s["chance"] < 0.2
        assert s["methods"]["layerwise"]["test_accuracy"]["mean"] > 0.5
        assert s["methods"]["layerwise_once"]["test_accuracy"]["mean"] > 0.5


def test_mlp_reproduces_hand_computed_forward_pass(tiny):
    _, _, _, result = tiny
    for cell in result.data["per_seed"].values():
        for r in cell:
            for key in ("layerwise", "layerwise_once", "kmeans"):
                row = r["methods"][key]
                assert row["forward_max_abs_diff"] < 1e-3
                assert abs(row["test_accuracy"] - row["hand_test_accuracy"]) <= 1.5 / 360
                assert row["test_loss"] == pytest.approx(row["hand_test_loss"], abs=1e-4)


def test_finetuning_starts_at_the_explicit_network(tiny):
    _, _, _, result = tiny
    for cell in result.data["per_seed"].values():
        for r in cell:
            m = r["methods"]
            assert m["finetuned"]["start_test_accuracy"] == pytest.approx(
                m["layerwise"]["test_accuracy"], abs=1.5 / 360)
            assert m["finetuned"]["start_test_loss"] == pytest.approx(
                m["layerwise"]["test_loss"], abs=1e-4)


def test_hidden_targets_and_direct_check(tiny):
    cfg, tasks, _, _ = tiny
    t = resample(tasks.image("digits"), 0, cfg.resample_fraction)
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


def test_prior_once_is_an_ordinary_softmax_layer(tiny):
    cfg, tasks, _, _ = tiny
    import xsol

    t = resample(tasks.image("digits"), 0, cfg.resample_fraction)
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
