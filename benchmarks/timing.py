"""Timing and machine description for the benchmarks.

Every candidate is timed the same way: one first call (it includes JIT
compilation, reported separately as ``compile_s = first_s - median_s``), a
warm-up call, then ``repeats`` timed calls. The candidates of one comparison
run **interleaved** (round-robin), so a burst of load from other processes on
a shared machine hits all of them alike and their ratios stay meaningful.
Results are blocked on (``jax.block_until_ready``) before the clock stops.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import jax
import numpy as np


def block(x):
    """Waits for every JAX array in ``x`` (a no-op for numpy values)."""
    return jax.block_until_ready(x)


def _clock(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    block(fn())
    return time.perf_counter() - t0


def summarize(first: float, times: list[float]) -> dict:
    """``first_s``, ``median_s``, ``min_s``, ``compile_s`` and the raw ``times_s``."""
    med = float(np.median(times))
    return {
        "first_s": first,
        "median_s": med,
        "min_s": float(np.min(times)),
        "compile_s": max(0.0, first - med),
        "repeats": len(times),
        "times_s": [float(t) for t in times],
    }


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                     warmup: int = 1, pause: float = 0.05) -> dict[str, dict]:
    """Times several zero-argument callables round-robin; see the module docstring.

    ``pause`` seconds of sleep separate consecutive calls: thread pools
    (XLA's, OpenBLAS's) keep spinning for a while after their work ends, and
    without the pause one library's idle spinning slows the next call down
    (measured here: ``MultinomialNB.fit`` 6x slower right after an XLA call).

    Returns:
      ``{name: summarize(...)}``.
    """
    repeats = max(1, int(repeats))

    def clock(fn):
        if pause > 0:
            time.sleep(pause)
        return _clock(fn)

    first = {name: clock(fn) for name, fn in fns.items()}
    for _ in range(warmup):
        for fn in fns.values():
            clock(fn)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(clock(fn))
    return {name: summarize(first[name], times[name]) for name in fns}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other processes share the machine)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_busy_fraction(interval: float = 0.5) -> float | None:
    """Fraction of all CPUs busy over ``interval`` seconds (``/proc/stat``); None if unknown."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v), idle

    try:
        t0, i0 = read()
        time.sleep(interval)
        t1, i1 = read()
    except (OSError, ValueError, IndexError):
        return None
    total = t1 - t0
    return None if total <= 0 else 1.0 - (i1 - i0) / total


def wait_for_quiet(max_busy: float = 0.25, timeout: float = 60.0) -> dict:
    """Waits (up to ``timeout`` s) until other work leaves the CPUs mostly idle.

    On a shared machine a benchmark started while another process keeps a
    core busy measures the contention. Returns what was seen:
    ``{"waited_s", "busy_fraction", "quiet"}``.
    """
    t0 = time.perf_counter()
    busy = cpu_busy_fraction()
    while busy is not None and busy > max_busy and time.perf_counter() - t0 < timeout:
        time.sleep(2.0)
        busy = cpu_busy_fraction()
    return {"waited_s": time.perf_counter() - t0, "busy_fraction": busy,
            "quiet": busy is None or busy <= max_busy}


def machine_info() -> dict:
    """CPU count, CPU model, memory, library versions and the JAX devices."""
    import sklearn  # noqa: PLC0415

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    devices = jax.devices()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": _cpu_model(),
        "memory_bytes": _total_memory(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_version": jax.__version__,
        "numpy_version": np.__version__,
        "sklearn_version": sklearn.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devices],
        "device_kind": devices[0].device_kind if devices else None,
        "load_average_start": load_average(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
