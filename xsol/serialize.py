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


def write_json(path, obj, *, indent: int = 2) -> None:
    """Writes ``to_jsonable(obj)`` as strict JSON (no NaN), atomically.

    The text goes to a temporary file in the same directory, which then
    replaces ``path`` (``os.replace``): a failed write (a full disk, an
    interrupted run) leaves the previous file intact and no broken JSON.
    """
    import json
    import os
    import tempfile

    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
