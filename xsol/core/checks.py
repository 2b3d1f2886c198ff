"""Small argument checks, written once and shared by every stage.

Each check names the argument, says what was expected and what came, and
returns the value in its canonical Python type, so a caller writes
``window = positive_int(window, "window", "tokens of context")``.

``bool`` is refused where an integer is expected (``True`` is an ``int`` in
Python but never a count), and so are floats and strings (``3.0`` and ``"3"``
are refused by name rather than silently truncated).
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_integer", "positive_int", "optional_positive_int", "nonnegative_int"]


def is_integer(value) -> bool:
    """True for a Python or NumPy integer that is not a ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _describe(what: str) -> str:
    return f" ({what})" if what else ""


def positive_int(value, name: str, what: str = "", *, error: type[Exception] = ValueError) -> int:
    """``value`` as an ``int >= 1``.

    Args:
      value: the argument to check.
      name: its name, as the caller's signature spells it.
      what: what it counts, for the message (e.g. ``"windows per chunk"``).
      error: the exception class raised (``ValueError`` unless the caller's
        contract says otherwise).

    Raises:
      error: ``value`` is not an integer, is a ``bool``, or is below 1.
    """
    if not is_integer(value) or value < 1:
        raise error(f"{name} must be a positive integer{_describe(what)}, got {value!r}")
    return int(value)


def optional_positive_int(value, name: str, what: str = "", *, none_means: str = "",
                          error: type[Exception] = ValueError) -> int | None:
    """``None`` or ``value`` as an ``int >= 1``.

    Args:
      none_means: what ``None`` stands for, for the message (e.g. ``"all CPUs"``).

    Raises:
      error: ``value`` is neither ``None`` nor a positive integer.
    """
    if value is None:
        return None
    if not is_integer(value) or value < 1:
        meaning = f" ({none_means})" if none_means else ""
        raise error(f"{name} must be a positive integer{_describe(what)} or None{meaning}, "
                    f"got {value!r}")
    return int(value)


def nonnegative_int(value, name: str, what: str = "", *, error: type[Exception] = ValueError) -> int:
    """``value`` as an ``int >= 0``.

    Raises:
      error: ``value`` is not an integer, is a ``bool``, or is negative.
    """
    if not is_integer(value) or value < 0:
        raise error(f"{name} must be a non-negative integer{_describe(what)}, got {value!r}")
    return int(value)

