"""Experiments that test the claims of Williams & Zhao (2023) on real data.

Laid out like an example project: :mod:`~xsol.experiments.config` (the
settings), :mod:`~xsol.experiments.reproduce` (the runner, behind
``xsol reproduce``), one module per claim in :mod:`xsol.experiments.claims`,
and the parts they share: :mod:`~xsol.experiments.tasks` (datasets as
classification tasks), :mod:`~xsol.experiments.runs` (the shared runs of
C1-C4 and C8), :mod:`~xsol.experiments.sweep` and
:mod:`~xsol.experiments.tuning` (learning-rate sweeps and how they were
tuned), :mod:`~xsol.experiments.summary` (means and intervals over seeds),
:mod:`~xsol.experiments.verdicts` (verdict rules and computed sentences),
:mod:`~xsol.experiments.layerwise` (the layer-wise explicit fit of C5-C7),
:mod:`~xsol.experiments.cells` and :mod:`~xsol.experiments.grid_choice` (what
the network claims run and how they choose learning rates),
:mod:`~xsol.experiments.figures` and :mod:`~xsol.experiments.report` (plots,
markdown and JSON).
"""
