"""The README's main command runs (at small size)."""

import json

import numpy as np
import pytest

from xsol.cli import main


def test_fit_digits_prints_table_and_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["fit", "--dataset", "digits", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "explicit (xsol, one pass)" in text and "LogisticRegression" in text
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    explicit = rows["explicit (xsol, one pass)"]
    assert explicit["test_accuracy"] > 0.8
    assert explicit["train_loss"] < rows["label prior only"]["train_loss"]


def test_fit_text_on_a_small_file(tmp_path, capsys):
    f = tmp_path / "t.txt"
    f.write_text("the cat sat on the mat . the dog sat on the log . " * 200)
    assert main(["fit", "--text", str(f), "--vocab-size", "20", "--window", "2"]) == 0
    text = capsys.readouterr().out
    assert "explicit, window K=2" in text


def test_unknown_dataset_is_a_clear_error(capsys):
    assert main(["fit", "--dataset", "cifar"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xsol: error:") and "digits" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="digits"):  # --debug shows the real exception
        main(["--debug", "fit", "--dataset", "cifar"])


def test_numeric_options_are_validated(capsys):
    for argv in (["fit", "--limit", "0"], ["fit", "--limit", "-5"], ["fit", "--text", "--window", "0"],
                 ["reproduce", "--seeds", "0"], ["reproduce", "--seeds", "-2"],
                 ["reproduce", "--lr-grid", "0.1,-1"], ["reproduce", "--lr-grid", "fast"],
                 ["fit", "--smoothing", "nan"], ["fit", "--smoothing", "-1"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert "expected" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("xsol ")


def test_outputs_are_written_atomically(tmp_path, monkeypatch):
    import json as json_mod

    from xsol.core import serialize

    target = tmp_path / "r.json"
    serialize.write_json(target, {"a": 1, "nan": float("nan")})
    assert json_mod.loads(target.read_text()) == {"a": 1, "nan": None}

    def broken_dumps(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr(serialize.json, "dumps", broken_dumps)
    with pytest.raises(OSError):
        serialize.write_json(target, {"a": 2})
    assert json_mod.loads(target.read_text())["a"] == 1  # the old file is intact
    with pytest.raises(RuntimeError):
        with serialize.atomic_open(target, "w") as f:
            f.write("{half")
            raise RuntimeError("interrupted")
    assert json_mod.loads(target.read_text())["a"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left behind


def test_a_baseline_that_cannot_run_is_skipped(capsys):
    from xsol.estimator.baselines import sklearn_baselines

    X = np.ones((5, 4))
    rows = sklearn_baselines(X, np.zeros(5, int), X, np.zeros(5, int), 1)
    lr = [r for r in rows if r["method"].startswith("LogisticRegression")][0]
    assert "class" in lr["skipped"]
    assert main(["fit", "--limit", "1"]) == 0  # one training image: explicit still printed
    out = capsys.readouterr().out
    assert "explicit (xsol, one pass)" in out and "skipped LogisticRegression" in out


def test_library_and_cli_tokenize_a_text_alike(capsys):
    import xsol
    from xsol.lm import fit_text_lm

    ids, _ = xsol.data.tokenize(xsol.data.load_text(None), vocab_size=2000)
    res = fit_text_lm(None, vocab_size=2000)
    assert res.num_tokens == len(ids)
    assert main(["fit", "--text", "--window", "1", "--no-progress"]) == 0
    assert f"text: {len(ids):,} word tokens" in capsys.readouterr().out
