"""Trajectories: record schedules and JSON/CSV round trips."""

import json
import math

import numpy as np
import pytest

from xsol.train.trajectory import Trajectory, check_steps, log_steps


def _traj():
    rows = [
        {"step": 0, "train_loss": 2.302585092994046, "cosine": 0.125, "distance": float("nan")},
        {"step": 10, "train_loss": 1.0000000000000002, "cosine": 0.9, "distance": 0.3,
         "cosine_0": -1.0},
    ]
    return Trajectory(rows=rows, meta={"optimizer": "adam", "learning_rate": 0.01, "seed": 3,
                                       "init": "random", "batch_size": None})


def _same_rows(a, b):
    assert len(a) == len(b)
    for r, s in zip(a, b):
        for k in set(r) | set(s):
            x, z = r.get(k, math.nan), s.get(k, math.nan)
            assert (math.isnan(x) and math.isnan(z)) or x == z, (k, x, z)


def test_json_round_trip(tmp_path):
    t = _traj()
    path = t.to_json(tmp_path / "run.json")
    with open(path) as f:
        raw = f.read()
    assert "NaN" not in raw  # strict JSON: non-finite values are null
    assert json.loads(raw)["rows"][0]["distance"] is None
    u = Trajectory.from_json(path)
    assert u.meta == t.meta
    _same_rows(u.rows, t.rows)
    assert isinstance(u.rows[1]["step"], int)


def test_csv_round_trip(tmp_path):
    t = _traj()
    path = t.to_csv(tmp_path / "run.csv")
    header = open(path).readline().strip().split(",")
    assert header == ["step", "train_loss", "cosine", "distance", "cosine_0"]
    u = Trajectory.from_csv(path, meta=t.meta)
    _same_rows(u.rows, t.rows)
    assert u.rows[1]["step"] == 10 and isinstance(u.rows[1]["step"], int)


def test_columns_and_lookup():
    t = _traj()
    np.testing.assert_array_equal(t["step"], [0, 10])
    assert np.isnan(t.column("cosine_0")[0])
    assert t.at(10)["cosine"] == 0.9
    assert t.label == "random adam"
    with pytest.raises(KeyError, match="no column 'accuracy'"):
        t.column("accuracy")
    with pytest.raises(KeyError, match="step 5 was not recorded"):
        t.at(5)


def test_record_schedules():
    s = log_steps(1000, num=10)
    assert s[0] == 0 and s[-1] == 1000 and s == sorted(set(s))
    assert {1, 10, 100} <= set(s)
    assert log_steps(0) == [0]
    assert check_steps(100) == log_steps(100)
    assert check_steps([5, 0, 5, 3]) == [0, 3, 5]
    with pytest.raises(ValueError, match="steps is empty"):
        check_steps([])
    with pytest.raises(ValueError, match=">= 0"):
        check_steps([3, -2])
    with pytest.raises(ValueError, match="sequence of ints"):
        check_steps(None)


def test_trajectory_is_a_mapping_of_columns():
    from collections.abc import Mapping

    from xsol.train.trajectory import Trajectory

    t = Trajectory(rows=[{"step": 0, "loss": 2.0}, {"step": 10, "loss": 1.0, "cosine": 0.5}])
    assert isinstance(t, Mapping)
    assert list(t.keys()) == ["step", "loss", "cosine"] == list(t)
    assert "cosine" in t and "nope" not in t and len(t) == 3 and t.num_rows == 2
    np.testing.assert_array_equal(dict(t)["loss"], [2.0, 1.0])
    assert np.isnan(t["cosine"][0])
    with pytest.raises(KeyError, match="no column 'nope'"):
        t["nope"]
