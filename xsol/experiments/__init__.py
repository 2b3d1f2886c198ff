"""Experiments that test the claims of Williams & Zhao (2023) on real data.

One module per idea: :mod:`tasks` (datasets as classification tasks),
:mod:`summary` (means, spreads, paired tests), one module per claim group, and
:mod:`report` (markdown, plots, JSON). :func:`xsol.experiments.reproduce.run`
drives them; ``xsol reproduce`` is its command line.
"""
