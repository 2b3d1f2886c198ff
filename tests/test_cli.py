"""The README's main command runs (at small size)."""

import json

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


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="digits"):
        main(["fit", "--dataset", "cifar"])
