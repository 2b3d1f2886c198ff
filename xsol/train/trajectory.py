"""A training trajectory: rows of measurements at chosen steps, plus metadata.

A :class:`Trajectory` is plain data: ``rows`` is a list of dicts (one per
recorded step, numbers only) and ``meta`` a dict describing the run (optimizer,
learning rate, seed, how the parameters were initialized, ...). It saves to
JSON (rows and metadata) and CSV (rows only) and loads back from either.

:func:`log_steps` makes the usual record schedule: step 0 and steps spaced
evenly in ``log(step)`` up to a total.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Sequence

import numpy as np

from xsol.core.checks import positive_int
from xsol.core.serialize import atomic_open


def log_steps(total: int, num: int = 20) -> list:
    """``0`` and about ``num`` integer steps spaced evenly in log-scale up to ``total``.

    Args:
      total: the last step (included), ``>= 0``.
      num: how many log-spaced points to aim for (duplicates after rounding
        are dropped).

    Returns:
      A sorted list of distinct ints starting at 0 and ending at ``total``.
    """
    total = int(total)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    num = positive_int(num, "num", "log-spaced points")
    if total == 0:
        return [0]
    pts = np.unique(np.round(np.logspace(0, np.log10(total), num)).astype(int))
    return sorted({0, total, *(int(p) for p in pts)})


def check_steps(steps) -> list:
    """Validates a record schedule: an int total (-> :func:`log_steps`) or a list of steps.

    Returns:
      Sorted distinct non-negative ints.
    """
    if isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        return log_steps(int(steps))
    try:
        out = sorted({int(s) for s in steps})
    except TypeError as e:
        raise ValueError(f"steps must be an int or a sequence of ints, got {steps!r}") from e
    if not out:
        raise ValueError("steps is empty; give at least one step to record (e.g. [0, 100])")
    if out[0] < 0:
        raise ValueError(f"steps must be >= 0, got {out[0]}")
    return out


def _clean(v):
    """Numbers as JSON-safe Python values (non-finite floats -> None)."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclasses.dataclass
class Trajectory(Mapping):
    """Measurements taken during one training run: a read-only mapping of columns.

    ``traj["test_loss"]`` is the column as a float array (NaN where a row lacks
    it); ``traj.keys()``, ``list(traj)``, ``"cosine" in traj`` and ``dict(traj)``
    work as for any mapping. ``len(traj)`` is the number of columns;
    :attr:`num_rows` the number of recorded steps.

    Attributes:
      rows: one dict per recorded step; keys such as ``step``,
        ``train_loss``, ``test_loss``, ``test_accuracy``, ``grad_norm``,
        ``distance``, ``cosine``, ``seconds`` (see :func:`xsol.train.loop.train_and_evaluate`).
      meta: a dict describing the run (``optimizer``, ``learning_rate``,
        ``seed``, ``init``, ``label``, ...).
    """

    rows: list = dataclasses.field(default_factory=list)
    meta: dict = dataclasses.field(default_factory=dict)

    def columns(self) -> list:
        """All row keys (the columns), in first-seen order."""
        seen = {}
        for r in self.rows:
            for k in r:
                seen.setdefault(k, None)
        return list(seen)

    def __iter__(self):
        return iter(self.columns())

    def __len__(self) -> int:
        return len(self.columns())

    @property
    def num_rows(self) -> int:
        """Number of recorded steps."""
        return len(self.rows)

    __hash__ = None  # a mutable dataclass

    def column(self, key: str) -> np.ndarray:
        """The values of ``key`` over the rows (NaN where a row lacks it)."""
        if key not in self.columns():
            raise KeyError(f"no column {key!r}; columns are {self.columns()}")
        return np.array([np.nan if r.get(key) is None else r[key] for r in self.rows], float)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.column(key)

    @property
    def label(self) -> str:
        """A short name for legends, ``meta["label"]`` or ``"<init> <optimizer>"``."""
        if self.meta.get("label"):
            return str(self.meta["label"])
        parts = [str(self.meta[k]) for k in ("init", "optimizer") if self.meta.get(k)]
        return " ".join(parts) or "run"

    def at(self, step: int) -> dict:
        """The row recorded at ``step``."""
        for r in self.rows:
            if r.get("step") == step:
                return r
        raise KeyError(f"step {step} was not recorded; recorded steps are {self.column('step')}")

    def to_dict(self) -> dict:
        """``{"meta": ..., "rows": ...}`` with non-finite floats as ``None``."""
        return {
            "meta": {k: _clean(v) for k, v in self.meta.items()},
            "rows": [{k: _clean(v) for k, v in r.items()} for r in self.rows],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Trajectory":
        rows = [{k: (float("nan") if v is None else v) for k, v in r.items()} for r in d["rows"]]
        return cls(rows=rows, meta=dict(d.get("meta", {})))

    def to_json(self, path) -> str:
        """Writes rows and metadata as JSON (strict: NaN/inf become ``null``); returns the path."""
        path = os.fspath(path)
        with atomic_open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path

    @classmethod
    def from_json(cls, path) -> "Trajectory":
        """Loads a trajectory written by :meth:`to_json` (``null`` -> NaN)."""
        with open(os.fspath(path)) as f:
            return cls.from_dict(json.load(f))

    def to_csv(self, path) -> str:
        """Writes the rows as CSV (one column per key, empty cells for missing); returns the path.

        The metadata is not written (use :meth:`to_json` to keep it).
        """
        path = os.fspath(path)
        keys = self.columns()
        with atomic_open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, restval="")
            w.writeheader()
            for r in self.rows:
                w.writerow({k: ("" if _clean(v) is None else _clean(v)) for k, v in r.items()})
        return path

    @classmethod
    def from_csv(cls, path, meta: dict | None = None) -> "Trajectory":
        """Loads rows written by :meth:`to_csv` (ints stay ints, empty cells become NaN)."""
        rows = []
        with open(os.fspath(path), newline="") as f:
            for rec in csv.DictReader(f):
                rows.append({k: _parse_number(v) for k, v in rec.items()})
        return cls(rows=rows, meta=dict(meta or {}))


def _parse_number(s: str):
    if s == "":
        return float("nan")
    try:
        return int(s)
    except ValueError:
        return float(s)


def stack_labels(runs) -> list:
    """``[(label, Trajectory), ...]`` from a dict ``{label: traj}`` or a list of trajectories."""
    if isinstance(runs, Trajectory):
        return [(runs.label, runs)]
    if isinstance(runs, dict):
        items = list(runs.items())
    elif isinstance(runs, Sequence):
        items = [(t.label, t) for t in runs]
    else:
        raise ValueError("runs must be a Trajectory, a dict {label: Trajectory} or a list of them")
    if not items:
        raise ValueError("no runs given")
    for label, t in items:
        if not isinstance(t, Trajectory):
            raise ValueError(f"run {label!r} is a {type(t).__name__}, expected a Trajectory")
    return items
