"""Sphinx configuration for the xsol documentation.

Build with ``docs/build.sh`` (warnings are errors). The API pages document the
real modules, so xsol and its dependencies must be importable: install the
package with its ``docs`` extra (``pip install -e ".[docs]"``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the checkout's xsol, even when it is not installed

# JAX on the CPU, quietly: importing the modules must not look for accelerators.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

project = "xsol"
author = "the xsol authors"
copyright = "the xsol authors"

try:
    import xsol

    release = xsol.__version__
except Exception:  # pragma: no cover - the build then fails on autodoc anyway
    release = "0.1.0"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",  # Markdown pages (it loads myst-parser) and the notebook
    "sphinxcontrib.mermaid",
]

# No network at build time: no intersphinx. Links to JAX, NumPy or Flax objects
# in signatures are plain text.

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "build.sh", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]

# -- MyST (Markdown) ----------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-section-title) links
myst_fence_as_directive = ["mermaid"]  # ```mermaid blocks render here as on GitHub

# -- MyST-NB (the notebook) ---------------------------------------------------
# The notebook is shown as committed, never run: it trains models and may
# download MNIST.
nb_execution_mode = "off"

# -- autodoc + napoleon (Google-style docstrings) ------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
autodoc_preserve_defaults = True  # defaults as written, e.g. nn.initializers.zeros_init()
napoleon_google_docstring = True
napoleon_numpy_docstring = True  # scikit-learn's convention, for the estimator
napoleon_use_rtype = False
napoleon_attr_annotations = False  # no internal names (jax.jaxlib._jax.Array)

# -- HTML ---------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"xsol {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Explicit, backpropagation-free solutions for softmax layers, in JAX",
    "fixed_sidebar": True,
}


# -- Cross-references to re-exported names ------------------------------------
# Every stage package re-exports its public names (``xsol.stats.accumulate`` is
# ``xsol.stats.accumulation.accumulate``), and docstrings name objects the way
# users reach them, or by the module they import (``inputs.linear_logits``).
# The API pages document each object once, in the module that defines it, so a
# reference that Sphinx does not find is looked up in Python and sent to the
# object's home.


def _lookup(dotted: str):
    """The object named ``dotted`` (a module path then attributes), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _home(obj) -> str | None:
    """The dotted path where ``obj`` is defined (and documented)."""
    if isinstance(obj, type(sys)):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}.{qualname}"


def _resolve_reexport(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    if not target.split(".")[0].isidentifier():
        return None
    module = node.get("py:module")
    klass = node.get("py:class")
    candidates = []
    if module and klass:
        candidates.append(f"{module}.{klass}.{target}")
    if module:
        candidates.append(f"{module}.{target}")
    candidates.append(target)
    domain = env.get_domain("py")
    for name in candidates:
        if not name.startswith("xsol"):
            continue
        obj = _lookup(name)
        home = _home(obj) if obj is not None else None
        if home is None or home == name:
            continue
        new = node.deepcopy()
        new["reftarget"] = home
        found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                    home, new, contnode)
        if found is not None:
            return found
        found = domain.resolve_any_xref(env, node["refdoc"], app.builder, home, new, contnode)
        if found:
            return found[0][1]
    # Last, a short name from an xsol docstring that is documented exactly once
    # (``SparseExplicitLM`` named in a stage below the one that defines it).
    if module and module.startswith("xsol") and "." not in target:
        objtypes = domain.objtypes_for_role(node["reftype"]) or []
        matches = [m for m in domain.find_obj(env, None, None, target, None, 1)
                   if m[1].objtype in objtypes]
        if len(matches) == 1:
            new = node.deepcopy()
            new["reftarget"] = matches[0][0]
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                       matches[0][0], new, contnode)
    return None


def _skip_member(app, what, name, obj, skip, options):
    """Leaves out class members that are not xsol's own documentation.

    * The fields of a ``NamedTuple`` (their docstring is "Alias for field number
      N"): the class's ``Attributes`` section already describes them.
    * Functions that a base class or a default value brings from another
      library (scikit-learn's ``set_*_request`` methods, an initializer given as
      a field's default): their docstrings are not xsol's.
    """
    if skip or what != "class":
        return None
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith("Alias for field number"):
        return True
    module = getattr(obj, "__module__", None)
    if callable(obj) and isinstance(module, str) and not module.startswith("xsol"):
        return True
    return None


def _clean_signature(app, what, name, obj, options, signature, return_annotation):
    """Replaces reprs such as ``<function zeros>`` in a signature by ``...``.

    Flax linen modules are dataclasses whose defaults (initializers) have no
    source text; their repr would keep Sphinx from parsing the signature.
    """
    while signature and re.search(r"<[^<>]*>", signature):
        signature = re.sub(r"<[^<>]*>", "...", signature)  # innermost first
    return signature, return_annotation


# -- The `xsol` command's help, generated from its parser ----------------------


class CommandHelp(SphinxDirective):
    """``xsol-help [SUBCOMMAND]``: the output of ``xsol [SUBCOMMAND] --help``."""

    optional_arguments = 1

    def run(self):
        from xsol.cli import build_parser

        os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal's width
        parser = build_parser()
        if self.arguments:
            (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            parser = sub.choices[self.arguments[0]]
        text = parser.format_help()
        return [nodes.literal_block(text, text, language="text")]


def setup(app):
    app.connect("missing-reference", _resolve_reexport)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-signature", _clean_signature)
    app.add_directive("xsol-help", CommandHelp)
