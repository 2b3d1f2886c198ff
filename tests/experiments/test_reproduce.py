"""``xsol reproduce`` end to end at the tiny scale: a report with numbers for every claim."""

import json
import re

import pytest

from xsol.cli import main


def test_reproduce_tiny_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["reproduce", "--tiny", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| C1:" in printed and "| C8:" in printed
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    claims = {c["claim"]: c for c in results["claims"]}
    assert list(claims) == [f"C{i}" for i in range(1, 9)] + ["Beyond"]
    for cid, c in claims.items():
        assert c["verdict"] in ("holds", "partly", "inconclusive", "does not hold"), \
            (cid, c["summary"])
        assert c["rule"], cid
        assert re.search(r"\d", c["summary"]), cid
        assert f"## {cid}:" in report
        assert c["tables"] and all(t["rows"] for t in c["tables"]), cid
        for png in c["plots"]:
            assert (out / png).stat().st_size > 3000, png
    settings = results["settings"]
    assert settings["config"]["seeds"] == [0, 1]
    assert settings["environment"]["jax"]
    assert list((out / "trajectories").glob("*.json"))
    # The bigram explicit solution is the optimum up to smoothing: a small gap,
    # smaller still at the best smoothing of the grid.
    c1 = claims["C1"]["data"]
    bigram = next(v for k, v in c1.items() if "K=1" in k)
    assert 0 <= bigram["relative_gap_best_smoothing"]["mean"] <= bigram["relative_gap"]["mean"] < 0.1
    # The tuning is in the report: grid, chosen rates, optimum penalties.
    assert "Learning rates chosen on the validation split" in report
    assert results["setup"]["data"]
    assert (out / "tuning_validation_loss.png").exists()


def test_reproduce_rejects_an_unknown_scale():
    import pytest

    from xsol.experiments.config import ReproduceConfig

    with pytest.raises(ValueError, match="scale must be one of"):
        ReproduceConfig.for_scale("huge")


def test_reproduce_keeps_finished_stages_and_resumes(tmp_path, capsys, monkeypatch):


    from xsol.experiments import claims

    out = tmp_path / "rep"
    (out / "stale").mkdir(parents=True)
    assert main(["reproduce", "--tiny", "--out", str(out), "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    (out / "stale").rmdir()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(claims, "claim_c8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        from xsol.experiments.config import ReproduceConfig
        from xsol.experiments.reproduce import run

        run(ReproduceConfig.for_scale("tiny", out_dir=str(out)), progress=False, log=lambda *_: None)
    status = json.loads((out / "status.json").read_text())
    assert status["complete"] is False and "KeyboardInterrupt" in status["error"]
    assert {"runs", "C1", "C6", "C7"} <= set(status["stages"]) and "C8" not in status["stages"]
    assert "**Incomplete:**" in (out / "report.md").read_text()
    monkeypatch.undo()

    assert main(["reproduce", "--tiny", "--out", str(out), "--no-progress", "--resume"]) == 0
    log = capsys.readouterr().out
    assert "resuming: runs, C1" in log
    status = json.loads((out / "status.json").read_text())
    assert status["complete"] is True and {"C8", "Beyond"} <= set(status["stages"])
    assert "Incomplete" not in (out / "report.md").read_text()
    # Other settings cannot resume this folder; --overwrite starts over.
    assert main(["reproduce", "--tiny", "--out", str(out), "--no-progress", "--resume",
                 "--steps", "7"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["reproduce", "--tiny", "--out", str(out), "--no-progress", "--overwrite"]) == 0
