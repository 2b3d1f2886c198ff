"""How much memory this process holds: the one reader of resident-set sizes.

On Linux the figures come from ``/proc/self/status``: ``VmRSS`` (resident now),
``VmHWM`` (the high-water mark of ``VmRSS``), ``RssAnon`` and ``RssFile`` (its
anonymous and file-backed parts). ``VmHWM`` belongs to the process's own
address space, so unlike ``getrusage``'s ``ru_maxrss`` it is not inherited
from a parent through ``fork``/``exec``, and :func:`reset_peak_rss` can restart
it. Elsewhere the peak falls back to ``ru_maxrss`` (bytes on macOS, KiB on
Linux).

This module uses the standard library only (no JAX), so benchmarks can ship
:func:`process_status`'s source to a child process that must not import xsol.
"""

from __future__ import annotations

import resource
import sys

__all__ = ["STATUS_FIELDS", "process_status", "peak_rss_bytes", "current_rss_bytes",
           "reset_peak_rss"]

#: The ``/proc/self/status`` fields :func:`process_status` reads by default.
STATUS_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")


def process_status(fields=("VmHWM", "VmRSS", "RssAnon", "RssFile")) -> dict:
    """``{field: bytes}`` for the named ``/proc/self/status`` fields (kB lines x 1024).

    A field the kernel does not report is absent; off Linux the dict is empty.
    Self-contained (no module-level names), so its source runs on its own.
    """
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in fields:
                    out[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far, in bytes (``VmHWM``, else ``ru_maxrss``)."""
    peak = process_status(("VmHWM",)).get("VmHWM")
    if peak is not None:
        return peak
    maxrss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return maxrss * (1 if sys.platform == "darwin" else 1024)


def current_rss_bytes() -> int:
    """The process's resident memory now, in bytes (``VmRSS``); 0 where unknown."""
    return process_status(("VmRSS",)).get("VmRSS", 0)


def reset_peak_rss() -> bool:
    """Restarts the peak mark at the current size (Linux ``clear_refs``); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
