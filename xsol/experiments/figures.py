"""Figures for the reproduction report: one panel per task, mean over seeds with a band."""

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


def _panels(plt, names):
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    return fig, axes[0]


def _finish(plt, fig, axes, path, title: str) -> str:
    axes[0].legend(fontsize=7)
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
    plt = _pyplot()
    names = list(runs)
    fig, axes = _panels(plt, names)
    for ax, name in zip(axes, names):
        for init in inits:
            steps, mean, std = curves_over_seeds(runs[name], init, metric)
            x = np.maximum(steps, 0.8)  # step 0 on a log axis
            st = INIT_STYLE[init]
            ax.plot(x, mean, color=st["color"], label=st["label"])
            ax.fill_between(x, mean - std, mean + std, color=st["color"], alpha=0.2)
        for value, label, style in (hlines or {}).get(name, []):
            ax.axhline(value, label=label, **style)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("Adam step (step 0 drawn at 0.8)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    return _finish(plt, fig, axes, path, title)


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
    plt = _pyplot()
    names = list(curves)
    fig, axes = _panels(plt, names)
    for ax, name in zip(axes, names):
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
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("learning rate (circles: chosen on validation)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    return _finish(plt, fig, axes, path, title)
