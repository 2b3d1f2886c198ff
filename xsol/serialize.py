"""Plain JSON for results: numpy scalars and arrays, dataclasses, non-finite floats."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


def to_jsonable(x):
    """``x`` as JSON-safe Python data.

    Dicts (keys as strings), lists and tuples recursively; numpy scalars and
    arrays as Python numbers and lists; dataclass instances as dicts;
    non-finite floats as ``None``; any other object as its ``str``.
    """
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)
