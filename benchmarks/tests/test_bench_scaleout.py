"""The scale-out benchmark section runs end to end at smoke size (structure, not timings)."""

import json

from benchmarks import SECTIONS, format_table, run_benchmarks
from benchmarks import scaleout
from benchmarks.run import ALL_SECTIONS, OPTIONAL_SECTIONS


def test_scaleout_is_an_optional_section():
    assert "scaleout" in OPTIONAL_SECTIONS and "scaleout" in ALL_SECTIONS
    assert "scaleout" not in SECTIONS


def test_quick_scaleout_section_writes_rows_ratios_and_a_plot(tmp_path):
    out = tmp_path / "bench.json"
    res = run_benchmarks(quick=True, sections=["scaleout"], out=str(out), progress=False)
    s = json.loads(out.read_text())["scaleout"]
    assert set(s) >= {"config", "method", "caveat", "rows", "workloads", "plot"}
    assert "share" in s["caveat"] and "cores" in s["caveat"]
    devices = s["config"]["devices"]
    assert devices == [1, 2]
    assert s["config"]["processes"] == [2]
    rows = s["rows"]
    assert len(rows) == len(scaleout.WORKLOADS) * (len(devices) + 1)
    for r in rows:
        assert "error" not in r, r
        if r["processes"] == 1:
            assert r["local_devices"] == r["devices"]  # the forced count
        else:  # two jax.distributed processes of one device each, all-reduce in the pass
            assert r["processes"] == r["devices"] == 2 and r["local_devices"] == 1
        assert r["timings"]["median_s"] > 0 and r["timings"]["repeats"] == 3
        assert r["throughput"] > 0 and r["per_batch_s"] > 0 and r["batches"] >= 1
        assert r["unit"] == ("examples" if r["workload"] == "dense" else "tokens")
        if r["devices"] == 1:
            assert r["time_ratio"] == 1.0 and r["speedup"] == 1.0
        else:
            assert r["time_ratio"] > 0 and abs(r["time_ratio"] * r["speedup"] - 1) < 1e-9
    assert {r["batches"] for r in rows if r["workload"] == "bigram"} == {4}  # 50k / 2^14
    for name in ("bigram", "window3"):
        # exact at every device and process count
        assert s["workloads"][name]["counts_identical"] is True
    assert s["workloads"]["dense"]["counts_identical"] is None
    assert (tmp_path / "bench_scaleout.png").stat().st_size > 0
    text = format_table(res)
    assert "== scale-out" in text and "caveat: forced CPU devices" in text
    assert "time/1dev" in text and "bigram" in text


def test_rows_from_elsewhere_join_the_table():
    def row(w, procs, devs, median, checksum="c"):
        return {"workload": w, "processes": procs, "devices": devs, "local_devices": devs // procs,
                "unit": "tokens", "items": 100, "batches": 2, "batch_items": 50,
                "timings": {"median_s": median}, "per_batch_s": median / 2,
                "throughput": 100 / median, "checksum": checksum}

    local = [row("bigram", 1, 1, 2.0), row("bigram", 1, 2, 1.0)]
    extra = [row("bigram", 2, 2, 0.5), row("bigram", 2, 4, 0.25, checksum="other")]
    t = scaleout.summarize_rows(local + extra)
    got = [(r["processes"], r["devices"], r["speedup"]) for r in t["rows"]]
    assert got == [(1, 1, 1.0), (1, 2, 2.0), (2, 2, 4.0), (2, 4, 8.0)]
    assert t["workloads"]["bigram"] == {"reference_median_s": 2.0, "counts_identical": False}
    text = scaleout.format_scaleout({**t, "caveat": "c"})
    assert text.count("bigram") >= 4
    # no 1-device, 1-process row: no ratios, and a failed row is shown as such
    t = scaleout.summarize_rows([row("dense", 1, 2, 1.0),
                                 {"workload": "dense", "processes": 1, "devices": 4,
                                  "error": "boom"}])
    assert all(r["time_ratio"] is None for r in t["rows"])
    assert "error: boom" in scaleout.format_scaleout({**t, "caveat": "c"})


def test_forced_devices_env_replaces_an_existing_count():
    env = scaleout.forced_devices_env(
        4, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_foo=1"})
    assert env["XLA_FLAGS"].split() == ["--xla_foo=1",
                                        "--xla_force_host_platform_device_count=4"]
    assert env["JAX_PLATFORMS"] == "cpu"
