"""The notebook runs end to end (at tiny scale, on the embedded digits)."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "xsol_mnist.ipynb"


def test_notebook_executes_at_tiny_scale(tmp_path, monkeypatch):
    monkeypatch.setenv("XSOL_NOTEBOOK_SCALE", "tiny")
    monkeypatch.setenv("XSOL_NOTEBOOK_OUT", str(tmp_path / "report"))
    monkeypatch.setenv("XSOL_NOTEBOOK_REPORT", "1")  # on CPU the report runs only when asked
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    # The install cell runs its own code path and prints the pip command it would run.
    monkeypatch.setenv("XSOL_INSTALL_DRY_RUN", "1")
    monkeypatch.setenv("XSOL_SOURCE", "git+https://example.invalid/xsol.git")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test accuracy" in outputs
    install = next(line for line in outputs.splitlines() if line.startswith("install:"))
    assert "pip install -q xsol[data,plots" in install
    assert "@ git+https://example.invalid/xsol.git" in install
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # weights, trajectories, report plots
    assert (tmp_path / "report" / "report.md").exists()
    assert (tmp_path / "trajectories.png").stat().st_size > 5000


def test_install_cell_picks_jax_extras_for_the_runtime():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c.source for c in nb.cells if "def install_command" in c.source)
    ns = {}
    exec(cell.split("\ngpu =")[0], ns)  # the definitions, without running pip
    cmd = ns["install_command"]
    assert cmd("git+https://x/y.git", True, False)[-1] == "xsol[data,plots,cuda] @ git+https://x/y.git"
    assert cmd(".", False, True)[-1] == ".[data,plots,tpu]"
    assert cmd(".", False, False)[-1] == ".[data,plots]"
    assert cmd(".", False, False)[1:4] == ["-m", "pip", "install"]
