"""Moved to :mod:`xsol.experiments.claims.beyond`; this name stays importable for old callers."""

from xsol.experiments.claims.beyond import CLAIM, RULE, TITLE, run, settings_for

__all__ = ["CLAIM", "RULE", "TITLE", "run", "settings_for"]
