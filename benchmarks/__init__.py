"""Benchmarks of xsol's explicit solutions: speed against floors and baselines, and scale.

:func:`run_benchmarks` runs everything and returns a JSON-ready dict;
:func:`format_table` prints it. ``scripts/bench.py`` is the command line.
Modules: :mod:`~benchmarks.timing` (interleaved medians, machine info),
:mod:`~benchmarks.images`, :mod:`~benchmarks.tokens`,
:mod:`~benchmarks.convergence` (time to targets for Adam and L-BFGS),
:mod:`~benchmarks.scaling` (time and peak memory per subprocess).
"""

from benchmarks.run import SECTIONS, TARGETS, evaluate_targets, format_table, run_benchmarks

__all__ = ["SECTIONS", "TARGETS", "evaluate_targets", "format_table", "run_benchmarks"]
