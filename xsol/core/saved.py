"""The types that can be saved, and how each turns into arrays and fields.

A saved type registers itself in the module that defines it::

    register_saved_type("CoocStats", CoocStats, to_record=..., from_record=...)

* ``to_record(obj) -> (arrays, fields)``: ``arrays`` maps names to arrays
  (JAX, NumPy or scalars), ``fields`` maps names to JSON values;
* ``from_record(arrays, fields) -> obj``: the object back from them. It may
  raise ``KeyError`` for a missing field; the loader turns that into a message
  that names the field and the file.

:mod:`xsol.io` writes and reads any registered type by its registered name
(the ``object`` field on disk) and imports no model class: a new saved type
needs no change there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

__all__ = ["SavedType", "register_saved_type", "saved_type_of", "saved_type_named",
           "saved_type_names"]


@dataclasses.dataclass(frozen=True)
class SavedType:
    """A registered saved type.

    Attributes:
      name: the ``object`` name written to disk.
      cls: the class (an object is this type when ``type(obj) is cls``).
      to_record: ``obj -> (arrays, fields)``.
      from_record: ``(arrays, fields) -> obj``.
    """

    name: str
    cls: type
    to_record: Callable[[Any], tuple[dict, dict]]
    from_record: Callable[[dict, dict], Any]


_BY_NAME: dict[str, SavedType] = {}


def register_saved_type(name: str, cls: type, *, to_record, from_record) -> SavedType:
    """Registers ``cls`` as the saved type ``name``; returns its entry.

    Re-registering the same class under the same name (a module reloaded)
    replaces the entry.

    Raises:
      ValueError: another class already holds ``name``.
      TypeError: ``to_record`` or ``from_record`` is not callable.
    """
    if not (callable(to_record) and callable(from_record)):
        raise TypeError(f"saved type {name!r}: to_record and from_record must be callable")
    held = _BY_NAME.get(name)
    if held is not None and held.cls.__qualname__ != cls.__qualname__:
        raise ValueError(f"the saved-type name {name!r} is held by {held.cls.__qualname__}")
    entry = SavedType(name, cls, to_record, from_record)
    _BY_NAME[name] = entry
    return entry


def saved_type_of(obj) -> SavedType | None:
    """The entry whose class is exactly ``type(obj)``, or None."""
    for entry in _BY_NAME.values():
        if type(obj) is entry.cls:
            return entry
    return None


def saved_type_named(name: str) -> SavedType | None:
    """The entry registered as ``name``, or None."""
    return _BY_NAME.get(name)


def saved_type_names() -> tuple[str, ...]:
    """Every registered name, in registration order."""
    return tuple(_BY_NAME)
