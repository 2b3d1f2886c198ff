"""Saving and loading: fitted solutions, language models and statistics on disk.

A saved object is a directory: its arrays in Orbax's format and its fields in
``xsol.json`` (no pickle: nothing loaded can run code). :func:`save` writes any
saved type; :func:`load` reads one back and validates it like user input.
"""

from xsol.io.checkpoint import CheckpointError, CheckpointExistsError, load, read_metadata, save

__all__ = ["CheckpointError", "CheckpointExistsError", "load", "read_metadata", "save"]
