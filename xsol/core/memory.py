"""Memory budgets: estimate what an array will need before allocating it.

A dense co-occurrence matrix or weight matrix of M x N entries needs
``M * N * itemsize`` bytes. xsol checks that figure against a budget before it
allocates, so a vocabulary too large for memory is refused with a message that
says how much was asked for and how much is available, instead of the process
being killed half-way through.
"""

from __future__ import annotations

import os

import jax


class MemoryBudgetError(ValueError):
    """Raised when an array would not fit in the memory budget."""


def available_bytes(device: jax.Device | None = None) -> int:
    """Bytes that one new array may reasonably use on ``device``.

    On accelerators with memory statistics (GPU, TPU) this is
    ``bytes_limit - bytes_in_use``. On the CPU it is the host's
    ``MemAvailable`` from ``/proc/meminfo`` (or total physical memory where that
    file does not exist). The environment variable ``XSOL_MEMORY_BUDGET``
    (bytes, or with a suffix K/M/G) overrides both.

    Args:
      device: the device the array will live on; defaults to ``jax.devices()[0]``.

    Returns:
      The number of bytes.
    """
    override = os.environ.get("XSOL_MEMORY_BUDGET")
    if override:
        return parse_bytes(override)
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
        except Exception:  # noqa: BLE001 - some backends do not implement it
            stats = {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_bytes(text: str) -> int:
    """Parses ``"123"``, ``"512M"``, ``"2G"`` (powers of 1024) into bytes."""
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if text and text[-1] in scale:
            return int(float(text[:-1]) * scale[text[-1]])
        return int(float(text))
    except ValueError:
        raise ValueError(
            f"cannot read a byte count from {text!r}: expected a number with an "
            "optional K, M, G or T suffix, e.g. '512M'"
        ) from None


def format_bytes(n: float) -> str:
    """Human-readable byte count, e.g. ``'16.0 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def check_fits(
    what: str,
    shape: tuple[int, ...],
    itemsize: int,
    *,
    copies: int = 1,
    budget: int | None = None,
    hint: str = "",
) -> int:
    """Refuses, before allocating, an array that would not fit in memory.

    Args:
      what: what the array is, for the message (e.g. ``"co-occurrence matrix"``).
      shape: the array's shape.
      itemsize: bytes per entry.
      copies: how many arrays of that size the computation holds at once.
      budget: bytes allowed; defaults to :func:`available_bytes`.
      hint: what to do instead, appended to the message.

    Returns:
      The bytes needed (``prod(shape) * itemsize * copies``).

    Raises:
      MemoryBudgetError: when the bytes needed exceed the budget.
    """
    needed = itemsize * copies
    for d in shape:
        needed *= int(d)
    budget = available_bytes() if budget is None else budget
    if needed > budget:
        dims = " x ".join(str(int(d)) for d in shape)
        msg = (
            f"the {what} ({dims}, {itemsize} bytes per entry"
            + (f", {copies} copies" if copies > 1 else "")
            + f") needs {format_bytes(needed)}, but only {format_bytes(budget)} "
            "is available"
        )
        if hint:
            msg += f"; {hint}"
        raise MemoryBudgetError(msg)
    return needed
