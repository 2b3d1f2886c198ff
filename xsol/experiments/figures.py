"""Figures for the reproduction report: one panel per task or optimizer, mean over seeds.

:func:`plot_metric_by_task` and :func:`plot_by_rate` draw the claims read off
the shared runs (C1-C4); :func:`plot_by_optimizer` draws the learning-rate
sensitivity of the network claims (C5, C7).
"""

from __future__ import annotations

import numpy as np

from xsol.core.serialize import save_figure

INIT_STYLE = {
    "random": dict(color="tab:gray", label="Adam from random init"),
    "explicit": dict(color="tab:blue", label="Adam from explicit"),
    "calibrated": dict(color="tab:green", label="Adam from explicit + temperature"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _task_panels(names):
    """``(plt, fig, [(axes, task name)])``: one panel per task, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    return plt, fig, list(zip(axes[0], names))


def _log_x_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _finish(plt, fig, panels, path, title: str) -> str:
    panels[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def curves_over_seeds(seed_runs: list, init: str, metric: str):
    """``(steps, mean, std)`` of ``metric`` over the seeds' Adam runs from ``init``."""
    trajs = [r.adam[init] for r in seed_runs]
    steps = np.asarray(trajs[0].column("step"))
    values = np.stack([np.asarray(t.column(metric), np.float64) for t in trajs])
    return steps, values.mean(0), values.std(0)


def plot_metric_by_task(runs: dict, metric: str, inits, path, *, ylabel: str,
                        hlines=None, title: str = "", logy: bool = False) -> str:
    """One panel per task: ``metric`` vs step for each init (mean ± std over seeds).

    Args:
      runs: ``{task name: [SeedRuns]}``.
      metric: a trajectory column, e.g. ``"test_loss"`` or ``"cosine"``.
      inits: which Adam runs to draw (keys of :data:`INIT_STYLE`).
      path: PNG path.
      ylabel: y-axis label.
      hlines: ``{task: [(value, label, style dict), ...]}`` reference lines.
      title: figure title.
      logy: logarithmic y axis.

    Returns:
      ``path`` as a string.
    """
    plt, fig, panels = _task_panels(list(runs))
    for ax, name in panels:
        for init in inits:
            steps, mean, std = curves_over_seeds(runs[name], init, metric)
            x = np.maximum(steps, 0.8)  # step 0 on a log axis
            st = INIT_STYLE[init]
            ax.plot(x, mean, color=st["color"], label=st["label"])
            ax.fill_between(x, mean - std, mean + std, color=st["color"], alpha=0.2)
        for value, label, style in (hlines or {}).get(name, []):
            ax.axhline(value, label=label, **style)
        _log_x_axes(ax, name, "Adam step (step 0 drawn at 0.8)", ylabel)
        if logy:
            ax.set_yscale("log")
    return _finish(plt, fig, panels, path, title)


def plot_by_rate(curves: dict, path, *, ylabel: str, title: str = "", hline=None) -> str:
    """One panel per task: a quantity against the learning rate (log axis), mean ± std over seeds.

    Args:
      curves: ``{task: {label: (rates, values (seeds, rates), chosen rates)}}``;
        the chosen rates (one per seed) are marked on the curve.
      path: PNG path.
      ylabel: y-axis label.
      title: figure title.
      hline: ``(value, label)`` reference line drawn in every panel.

    Returns:
      ``path`` as a string.
    """
    plt, fig, panels = _task_panels(list(curves))
    for ax, name in panels:
        for label, (rates, values, chosen) in curves[name].items():
            v = np.asarray(values, np.float64)
            mean = np.nanmean(v, 0) if v.ndim == 2 else v
            std = np.nanstd(v, 0) if v.ndim == 2 else np.zeros_like(v)
            line, = ax.plot(rates, mean, marker=".", label=label)
            ax.fill_between(rates, mean - std, mean + std, color=line.get_color(), alpha=0.15)
            for c in sorted(set(chosen)):
                ax.plot([c], [mean[list(rates).index(c)]], marker="o", mfc="none", ms=9,
                        color=line.get_color())
        if hline is not None:
            ax.axhline(hline[0], color="k", ls="--", lw=0.8, label=hline[1])
        _log_x_axes(ax, name, "learning rate (circles: chosen on validation)", ylabel)
    return _finish(plt, fig, panels, path, title)


def plot_by_optimizer(rows: list, series, path, *, title: str, ylabel: str,
                      hlines=()) -> None:
    """One panel per optimizer: each series' mean figure against the learning rate (log axis).

    Args:
      rows: one dict per (optimizer, rate): ``optimizer``, ``lr`` and a value per series key.
      series: ``[(key, label)]``, the curves to draw.
      path: PNG path.
      title: figure title.
      ylabel: y-axis label.
      hlines: ``[(value, axhline keywords)]``, reference lines drawn in every panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    opts = list(dict.fromkeys(r["optimizer"] for r in rows))
    fig = Figure(figsize=(5.2 * len(opts), 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(opts), squeeze=False)[0]
    for ax, opt in zip(axes, opts):
        rs = [r for r in rows if r["optimizer"] == opt]
        for key, label in series:
            ax.plot([r["lr"] for r in rs], [r[key] for r in rs], marker="o", markersize=3,
                    label=label)
        for value, style in hlines:
            ax.axhline(value, **style)
        ax.set_xscale("log")
        ax.set_xlabel(f"learning rate ({opt})")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle(title)
    save_figure(fig, str(path), dpi=110)
