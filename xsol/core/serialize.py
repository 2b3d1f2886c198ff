"""Plain JSON for results: numpy scalars and arrays, dataclasses, non-finite floats."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile

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


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """``open(path, mode)`` that only replaces ``path`` once everything is written.

    The file is written under a temporary name in the same directory, flushed
    to disk, then renamed over ``path`` (``os.replace``, atomic on POSIX). If
    the block raises (a full disk, an interrupt) the temporary file is removed
    and any previous ``path`` is left intact: never a half-written file.

    Yields:
      The open temporary file.
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open writes files; mode must contain 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # the permissions open() would give, not mkstemp's 0600
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def save_figure(fig, path, **kwargs) -> None:
    """``fig.savefig(path)`` atomically (:func:`atomic_open`); the format follows the suffix."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or None
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, **kwargs)


def write_json(path, obj, *, indent: int = 2) -> None:
    """Writes ``to_jsonable(obj)`` as strict JSON (no NaN: non-finite numbers
    become ``null``), atomically (:func:`atomic_open`): a failed write leaves
    the previous file intact and no broken JSON.
    """
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)
    write_text(path, text)
