"""The notebook runs end to end (at tiny scale, on the embedded digits)."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "xsol_mnist.ipynb"


def test_notebook_executes_at_tiny_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("XSOL_NOTEBOOK_SCALE", "tiny")
    monkeypatch.setenv("XSOL_NOTEBOOK_OUT", str(tmp_path / "report"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test accuracy" in outputs
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # weights, trajectories, report plots
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "trajectories.png").stat().st_size > 5000
