"""``xsol reproduce`` end to end at the tiny scale: a report with numbers for every claim."""

import json
import re

from xsol.cli import main


def test_reproduce_tiny_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["reproduce", "--tiny", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| C1:" in printed and "| C8:" in printed
    report = (out / "report.md").read_text()
    results = json.loads((out / "results.json").read_text())
    claims = {c["claim"]: c for c in results["claims"]}
    assert sorted(claims) == [f"C{i}" for i in range(1, 9)]
    for cid, c in claims.items():
        assert c["verdict"] in ("holds", "partly", "does not hold"), (cid, c["summary"])
        assert re.search(r"\d", c["summary"]), cid
        assert f"## {cid}:" in report
        assert c["tables"] and all(t["rows"] for t in c["tables"]), cid
        for png in c["plots"]:
            assert (out / png).stat().st_size > 3000, png
    settings = results["settings"]
    assert settings["config"]["seeds"] == [0, 1]
    assert settings["environment"]["jax"]
    assert list((out / "trajectories").glob("*.json"))
    # The bigram explicit solution is the optimum up to smoothing: a small gap.
    c1 = claims["C1"]["data"]
    bigram = next(v for k, v in c1.items() if "K=1" in k)
    assert 0 <= bigram["gap"]["mean"] < 0.1


def test_reproduce_rejects_an_unknown_scale():
    import pytest

    from xsol.experiments.config import ReproduceConfig

    with pytest.raises(ValueError, match="scale must be one of"):
        ReproduceConfig.for_scale("huge")
