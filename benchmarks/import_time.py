"""The cost of ``import xsol`` against ``import jax``, measured side by side.

Each import runs in a fresh interpreter; the two alternate, ``repeats`` times
each, and the medians and their ratio are printed (the target: at most 1.3x).
Run it as ``python benchmarks/import_time.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def time_import(module: str) -> float:
    """Wall seconds of ``python -c "import MODULE"`` in a fresh interpreter."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - t0


def measure(repeats: int = 5) -> dict:
    """Median seconds of ``import jax`` and ``import xsol`` (interleaved) and their ratio."""
    jax_s, xsol_s = [], []
    for _ in range(repeats):
        jax_s.append(time_import("jax"))
        xsol_s.append(time_import("xsol"))
    j, x = statistics.median(jax_s), statistics.median(xsol_s)
    return {"import_jax_s": j, "import_xsol_s": x, "ratio": x / j, "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    r = measure(parser.parse_args().repeats)
    print(f"import jax  {r['import_jax_s']:.3f} s (median of {r['repeats']})")
    print(f"import xsol {r['import_xsol_s']:.3f} s (median of {r['repeats']})")
    print(f"ratio {r['ratio']:.2f}x (target <= 1.30x): {'met' if r['ratio'] <= 1.3 else 'missed'}")


if __name__ == "__main__":
    main()
