"""The (task, hidden width) cells of the network claims (C5, C7), and every seed of each.

Both claims run every configured image task at every hidden width of
``cfg.hidden_widths`` that gives each class a hidden unit (``H >= N``), on
the task's one validation split (:func:`split_of`), once per seed
(:func:`run_cells`); :func:`plan_cells` says which cells run and why the
others do not.
"""

from __future__ import annotations

import dataclasses

from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import ClaimResult
from xsol.experiments.summary import mean_of
from xsol.experiments.tasks import Task, validation_split


def slug(name: str) -> str:
    """``name`` with every character that is not a letter or digit replaced by ``_``."""
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


@dataclasses.dataclass
class CellPlan:
    """Which (task, width) cells a network claim runs.

    Attributes:
      cells: ``[(task, H)]`` to run.
      loaded: the image tasks that could be loaded.
      skipped: ``{"task", "reason"}`` for each task whose data was not found.
      too_narrow: ``{"task", "hidden"}`` for each width below the task's class count.
    """

    cells: list
    loaded: list
    skipped: list
    too_narrow: list

    def not_run(self, claim: str, title: str, rule: str) -> ClaimResult:
        """The claim's result when no cell can run."""
        why = "no image task could be loaded" if not self.loaded else "every hidden width is < N"
        return ClaimResult(claim, title, "not run", why, rule=rule,
                           data=dict(skipped=self.skipped, too_narrow=self.too_narrow))

    def notes(self, why_narrow: str = "") -> list:
        """Report sentences naming the skipped tasks and widths (``why_narrow`` explains the latter)."""
        notes = []
        if self.skipped:
            notes.append("Skipped (data not found): "
                         + ", ".join(d["task"] for d in self.skipped) + ".")
        if self.too_narrow:
            notes.append(f"Skipped widths below the class count{why_narrow}: " + ", ".join(
                f"{d['task']} H={d['hidden']}" for d in self.too_narrow) + ".")
        return notes


def plan_cells(cfg: ReproduceConfig, tasks: TaskCache) -> CellPlan:
    """Loads the image tasks of ``cfg`` and pairs each with the widths it can take."""
    loaded, skipped = [], []
    for name in cfg.image_datasets:
        try:
            loaded.append(tasks.image(name))
        except FileNotFoundError as e:
            skipped.append(dict(task=name, reason=str(e).splitlines()[0]))
    cells, too_narrow = [], []
    for task in loaded:
        for H in cfg.hidden_widths:
            if int(H) < task.num_classes:
                too_narrow.append(dict(task=task.name, hidden=int(H)))
            else:
                cells.append((task, int(H)))
    return CellPlan(cells, loaded, skipped, too_narrow)


def split_of(cfg: ReproduceConfig, tasks: TaskCache, task: Task) -> tuple:
    """``(fit_task, (X_val, y_val))``: the cache's validation split of ``task``."""
    try:
        return tasks.split(task.name)
    except (KeyError, FileNotFoundError, AttributeError):
        return validation_split(task, cfg.validation_fraction)


def run_cells(cells, cfg: ReproduceConfig, tasks: TaskCache, run_seed, *, desc: str,
              progress: bool) -> dict:
    """``{(task name, H): [run_seed(fit_task, H, seed, cfg, val) per seed]}`` over the cells.

    Each task is split once (:func:`split_of`); every seed of every (task,
    width) cell trains on that split's fitting part.
    """
    from tqdm.auto import tqdm

    splits = {task.name: split_of(cfg, tasks, task) for task, _ in cells}
    work = [(task, H, seed) for task, H in cells for seed in cfg.seeds]
    results = {}
    with tqdm(work, desc=desc, disable=not progress) as bar:
        for task, H, seed in bar:
            bar.set_postfix_str(f"{task.name} H={H} seed {seed}")
            fit_task, val = splits[task.name]
            results.setdefault((task.name, H), []).append(run_seed(fit_task, H, seed, cfg, val))
    return results


def per_seed(results: dict, seeds, keys) -> dict:
    """Every seed's ``keys`` and trajectories (as dicts) by cell, for ``results.json``."""
    return {
        f"{name} H={H}": [
            dict(seed=seed, **{k: r[k] for k in keys},
                 trajectories={k: tr.to_dict() for k, tr in r["trajectories"].items()
                               if tr is not None})
            for seed, r in zip(seeds, cell)]
        for (name, H), cell in results.items()
    }


def rates_text(rows: list, none: str = "–") -> str:
    """The learning rate of each seed's row (``none`` where every rate diverged)."""
    return ", ".join(none if x["learning_rate"] is None else f"{x['learning_rate']:g}"
                     for x in rows)


#: The table columns of :func:`lr_choice`'s keys.
LR_CHOICE_COLUMNS = [("grid", "grid", None), ("chosen", "chosen per seed", None),
                     ("edge", "at grid edge", None), ("grid_s", "grid s", "{:.2f}")]


def lr_choice(rows: list, none: str = "–") -> dict:
    """The grid, the rate each seed chose, how many chose an edge, and the grid's mean seconds."""
    edge = sum(bool(x["at_edge"]) for x in rows)
    return dict(grid=", ".join(f"{v:g}" for v in rows[0]["grid"]), chosen=rates_text(rows, none),
                edge=f"{edge}/{len(rows)}" + (" ⚠ widen the grid" if edge else ""),
                grid_s=mean_of([x["grid_seconds"] for x in rows]))
