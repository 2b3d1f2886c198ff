"""Saved types register themselves; xsol.io saves any registered type."""

import dataclasses

import numpy as np
import pytest

import xsol
from xsol.core import saved
from xsol.io import checkpoint


def test_the_library_types_are_registered_where_they_are_defined():
    names = set(saved.saved_type_names())
    assert {"ExplicitSolution", "SparseExplicitLM", "CoocStats", "SparseStats"} <= names
    assert saved.saved_type_named("ExplicitSolution").cls is xsol.ExplicitSolution
    assert saved.saved_type_named("CoocStats").cls is xsol.stats.CoocStats


def test_the_checkpoint_module_imports_no_saved_class():
    src = open(checkpoint.__file__).read()
    for module in ("xsol.solvers", "xsol.stats", "xsol.models"):
        assert f"from {module}" not in src and f"import {module}" not in src


@dataclasses.dataclass
class _Counts:
    table: np.ndarray
    label: str


def test_a_new_type_saves_and_loads_without_touching_io(tmp_path):
    saved.register_saved_type(
        "TestCounts", _Counts,
        to_record=lambda c: ({"table": c.table}, {"label": c.label}),
        from_record=lambda arrays, fields: _Counts(arrays["table"], fields["label"]))
    try:
        obj = _Counts(np.arange(6, dtype=np.int64).reshape(2, 3), "six")
        xsol.save(obj, tmp_path / "c")
        back = xsol.load(tmp_path / "c", expect="TestCounts")
        assert isinstance(back, _Counts) and back.label == "six"
        np.testing.assert_array_equal(back.table, obj.table)
        assert back.table.dtype == np.int64
    finally:
        saved._BY_NAME.pop("TestCounts", None)  # noqa: SLF001 - test cleanup of the registry
    with pytest.raises(checkpoint.CheckpointError, match="TestCounts"):
        xsol.load(tmp_path / "c")


def test_a_name_is_held_by_one_class():
    class Other:
        pass

    with pytest.raises(ValueError, match="held by"):
        saved.register_saved_type("CoocStats", Other, to_record=lambda o: ({}, {}),
                                  from_record=lambda a, f: Other())
    with pytest.raises(TypeError, match="callable"):
        saved.register_saved_type("X", Other, to_record=None, from_record=None)


def test_an_unregistered_object_is_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="cannot save a _Counts; expected one of"):
        xsol.save(_Counts(np.zeros(1), "x"), tmp_path / "d")
