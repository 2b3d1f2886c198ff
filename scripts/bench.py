#!/usr/bin/env python
"""Benchmarks xsol's explicit solutions against read floors, numpy, scikit-learn and Adam.

Examples::

    python scripts/bench.py --quick --out /tmp/bench.json     # seconds, smoke sizes
    python scripts/bench.py --out bench.json                   # the full run (< 10 min)
    python scripts/bench.py --sections images counting         # a subset

On a GPU pass ``--peak-gbps`` (the device's memory bandwidth) to report the
fraction achieved. Timing targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import sys

from xsol.bench import SECTIONS, format_table, run_benchmarks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke sizes (seconds)")
    p.add_argument("--out", default=None, help="write the results as JSON to this path")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repetitions per candidate after warm-up (default 7; quick 3)")
    p.add_argument("--peak-gbps", type=float, default=None,
                   help="peak memory bandwidth of the device, for the achieved fraction")
    p.add_argument("--adam-seconds", type=float, default=None,
                   help="training-time budget per Adam run (default 60; quick 1)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=None,
                   help="run only these sections")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each section wait up to SECONDS for other processes to "
                        "leave the CPUs mostly idle (shared machines)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    a = p.parse_args(argv)
    res = run_benchmarks(quick=a.quick, repeats=a.repeats, out=a.out, peak_gbps=a.peak_gbps,
                         adam_seconds=a.adam_seconds, sections=a.sections, progress=not a.quiet,
                         wait_quiet=a.wait_quiet)
    print(format_table(res))
    if a.out:
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
