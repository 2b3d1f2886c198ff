#!/usr/bin/env bash
# Builds the HTML documentation into docs/_build/html; any warning fails the build.
# PYTHON selects the interpreter (default: python), e.g. PYTHON=.venv/bin/python.
# Needs xsol with its docs extra: pip install -e ".[docs]".
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
