#!/usr/bin/env python
"""Runs notebooks/xsol_mnist.ipynb top to bottom at its defaults and prints the wall time.

The install cell only prints its pip command (``XSOL_INSTALL_DRY_RUN=1``), as
on a runtime where xsol is already installed. On a CPU runtime the notebook
skips the claim-by-claim report unless ``--report`` is given.

Example::

    python scripts/notebook_time.py --dataset fashion_mnist   # offline: Debian's Fashion-MNIST
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "xsol_mnist.ipynb"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None,
                   help="XSOL_NOTEBOOK_DATASET (default: the notebook's, mnist)")
    p.add_argument("--scale", default=None, choices=("tiny", "quick", "full"),
                   help="XSOL_NOTEBOOK_SCALE (default: the notebook's, quick)")
    p.add_argument("--report", action="store_true", help="also run the report (XSOL_NOTEBOOK_REPORT=1)")
    args = p.parse_args(argv)
    import nbformat  # noqa: PLC0415
    from nbclient import NotebookClient  # noqa: PLC0415

    os.environ["XSOL_INSTALL_DRY_RUN"] = "1"
    for name, value in (("XSOL_NOTEBOOK_DATASET", args.dataset), ("XSOL_NOTEBOOK_SCALE", args.scale),
                        ("XSOL_NOTEBOOK_REPORT", "1" if args.report else None)):
        if value is not None:
            os.environ[name] = value
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": d}}).execute()
        seconds = time.perf_counter() - t0
    print(f"{NOTEBOOK.name}: {seconds:.1f} s top to bottom "
          f"(dataset {args.dataset or 'default'}, scale {args.scale or 'default'}, "
          f"report {'on' if args.report else 'the notebook default'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
