"""The benchmark runs end to end at smoke size and writes the expected JSON (no timing asserts)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import SECTIONS, evaluate_targets, format_table
from benchmarks.scaling import run_point
from benchmarks.timing import time_interleaved

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_json_with_expected_keys(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "== targets" in proc.stdout
    res = json.loads(out.read_text())
    for key in ("machine", "config", "targets", "seconds", *SECTIONS):
        assert key in res, key
    m = res["machine"]
    for key in ("cpu_count", "jax_version", "devices", "backend", "load_average_start"):
        assert key in m
    fit = res["images"]["fit"]
    for name in ("floor_numpy_sum_f32", "floor_jax_sum_f32", "stats_f32", "fit_f32", "fit_u8",
                 "mnb_f32", "mnb_u8", "numpy_matmul_f32"):
        t = fit["timings"][name]
        assert t["median_s"] > 0 and t["compile_s"] >= 0 and t["repeats"] == 3
    assert fit["stats_vs_numpy_max_rel_error"] < 1e-5
    assert {"fit_f32_over_numpy_floor", "mnb_f32_over_fit_f32"} <= set(fit["ratios"])
    ttt = res["images"]["time_to_target"]
    assert set(ttt["explicit"]) >= {"plain", "calibrated", "fit_seconds", "calibrate_seconds"}
    assert "best_learning_rate" in ttt["adam"] and "rungs" in ttt["lbfgs"]
    for name in ("bigram", "window3"):
        c = res["counting"][name]
        assert c["counts_identical_to_bincount"] is True
        assert set(c["tokens_per_s"]) >= {"xsol_accumulate", "numpy_bincount"}
        lm = res["lm"][name]
        assert set(lm["ratios_adam_time_over_explicit"]) == {
            "explicit_train_loss", "within_1pct", "within_5pct"}
        assert lm["lower_bound_ratio_if_not_reached"] > 0
    for points in (res["scaling"]["data_size"], res["scaling"]["vocabulary"], res["sparse"]):
        for p in points:
            assert "error" not in p, p
            assert p.get("refused") or (p["warm_s"] > 0 and p["fit_peak_increase_bytes"] >= 0)
    assert res["sparse"][0]["dense_weights"] == "built"
    assert len(res["targets"]) == len(evaluate_targets(res))
    assert "== images" in format_table(res)


def test_time_interleaved_reports_compile_and_medians():
    calls = []
    t = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                         repeats=3, warmup=1)
    assert calls == ["a", "b"] * 5
    assert set(t["a"]) >= {"first_s", "median_s", "min_s", "compile_s", "times_s"}
    assert len(t["b"]["times_s"]) == 3


def test_scaling_point_in_a_subprocess_measures_its_own_peak():
    p = run_point({"method": "sparse", "tokens": 5000, "vocab_size": 100}, timeout=120)
    assert "error" not in p, p
    assert p["examples"] == 5000 and p["nnz"] > 0
    assert 0 <= p["fit_peak_increase_bytes"] < p["peak_rss_bytes"] < 2 << 30
