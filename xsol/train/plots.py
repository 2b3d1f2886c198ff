"""Plots of training trajectories (matplotlib, imported only when a plot is made).

Figures are drawn with matplotlib's object-oriented API on an Agg canvas, so
no global backend is switched and nothing is shown: the figure goes straight
to a PNG file.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from xsol.core.serialize import save_figure
from xsol.train.trajectory import stack_labels

_TITLES = {
    "train_loss": "training loss (nats)",
    "test_loss": "held-out loss (nats)",
    "train_accuracy": "training accuracy",
    "test_accuracy": "held-out accuracy",
    "train_perplexity": "training perplexity",
    "test_perplexity": "held-out perplexity",
    "grad_norm": "gradient norm",
    "cosine": "row-centered cosine to explicit weights",
    "distance": "row-centered relative distance to explicit weights",
}


def plot_trajectories(
    runs,
    path,
    *,
    metrics: Sequence[str] = ("train_loss", "cosine"),
    x: str = "step",
    log_x: bool | str = "auto",
    title: str | None = None,
    dpi: int = 120,
) -> str:
    """Draws one panel per metric with one line per run, and saves it as PNG.

    Args:
      runs: a :class:`xsol.train.trajectory.Trajectory`, a list of them (legend from
        each ``label``) or a dict ``{label: Trajectory}``.
      path: the PNG file to write.
      metrics: row keys to plot, one panel each (e.g. ``"train_loss"``,
        ``"test_loss"``, ``"test_accuracy"``, ``"cosine"``, ``"distance"``,
        ``"cosine_0"``). A run that lacks a metric is left out of that panel.
      x: the row key on the x axis (``"step"``, ``"seconds"``, ...).
      log_x: ``True`` for a log x axis (``symlog`` with a linear part in
        ``[0, 1]``, so step 0 stays visible), ``False`` for linear, ``"auto"``
        for log when the positive x values span two decades or more.
      title: a title over the panels.
      dpi: resolution of the PNG.

    Returns:
      ``path`` as a string.
    """
    items = stack_labels(runs)
    metrics = list(metrics)
    if not metrics:
        raise ValueError("metrics is empty; name at least one column to plot, e.g. 'train_loss'")
    for m in metrics + [x]:
        if not any(m in t.columns() for _, t in items):
            cols = sorted({k for _, t in items for k in t.columns()})
            raise ValueError(f"no run has a column {m!r}; columns are {cols}")
    if log_x == "auto":
        xs = np.concatenate([t.column(x) for _, t in items if x in t.columns()])
        pos = xs[np.isfinite(xs) & (xs > 0)]
        log_x = bool(pos.size) and pos.max() / pos.min() >= 100
    elif not isinstance(log_x, bool):
        raise ValueError(f"log_x must be True, False or 'auto', got {log_x!r}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0 * len(metrics), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics):
        for label, t in items:
            if m not in t.columns() or x not in t.columns():
                continue
            ax.plot(t.column(x), t.column(m), marker="o", markersize=3, label=label)
        if log_x:
            ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel(x)
        ax.set_ylabel(_TITLES.get(m, m))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    path = os.fspath(path)
    save_figure(fig, path, dpi=dpi)
    return path
