"""Plots of trajectories are written as PNG files."""

import pytest

from xsol.train.plots import plot_trajectories
from xsol.train.trajectory import Trajectory

PNG = b"\x89PNG\r\n\x1a\n"


def _run(label, scale):
    rows = [{"step": s, "train_loss": 2.0 / (1 + scale * s), "cosine": s / (s + 10.0)}
            for s in (0, 1, 10, 100, 1000)]
    return Trajectory(rows=rows, meta={"label": label})


def test_plot_is_written(tmp_path):
    runs = {"warm start": _run("w", 1.0), "random init": _run("r", 0.1)}
    path = plot_trajectories(runs, tmp_path / "runs.png", title="digits")
    assert path == str(tmp_path / "runs.png")
    data = open(path, "rb").read()
    assert data.startswith(PNG) and len(data) > 5000


def test_plot_of_a_list_and_single_metric(tmp_path):
    path = plot_trajectories([_run("a", 1.0), _run("b", 2.0)], tmp_path / "one.png",
                             metrics=["train_loss"], log_x=False)
    assert open(path, "rb").read().startswith(PNG)


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match="no run has a column 'test_loss'"):
        plot_trajectories([_run("a", 1.0)], tmp_path / "x.png", metrics=["test_loss"])
    with pytest.raises(ValueError, match="metrics is empty"):
        plot_trajectories([_run("a", 1.0)], tmp_path / "x.png", metrics=[])
    with pytest.raises(ValueError, match="runs must be"):
        plot_trajectories(42, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no runs given"):
        plot_trajectories({}, tmp_path / "x.png")
