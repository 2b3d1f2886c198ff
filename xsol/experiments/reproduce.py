"""``xsol reproduce``: every claim measured, written up as a report.

:func:`run` loads the configured tasks, computes the shared runs once
(:mod:`xsol.experiments.runs`), derives each claim's result, runs the
multi-layer (C5, C7), cost (C6) and beyond-the-paper experiments, and writes ``report.md``,
``results.json``, PNG plots and every trajectory (JSON and CSV) to the output
folder.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import sys
import time
import traceback
from pathlib import Path

import jax

from xsol.experiments import claims
from xsol.experiments.config import ReproduceConfig, TaskCache
from xsol.experiments.report import ClaimResult, write_report
from xsol.experiments.runs import run_all
from xsol.experiments.stages import ReportFolder
from xsol.experiments.tuning import tuning_section


def environment() -> dict:
    """Versions and device, for the record."""
    import flax
    import numpy
    import optax
    import sklearn

    import xsol

    dev = jax.devices()[0]
    return dict(
        xsol=xsol.__version__, jax=jax.__version__, flax=flax.__version__,
        optax=optax.__version__, numpy=numpy.__version__, sklearn=sklearn.__version__,
        python=platform.python_version(), platform=platform.platform(),
        backend=jax.default_backend(), device=str(dev), device_kind=dev.device_kind,
        device_count=jax.device_count(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def _load_tasks(cfg: ReproduceConfig, cache: TaskCache, log) -> tuple[list, list]:
    tasks, skipped = [], []
    for name in cfg.image_datasets:
        try:
            tasks.append(cache.image(name))
        except FileNotFoundError as e:  # an unavailable dataset is reported, not fatal
            skipped.append(dict(task=name, reason=str(e).splitlines()[0]))
            log(f"skipping {name}: {str(e).splitlines()[0]}")
    tasks += cache.texts()
    return tasks, skipped


def _guarded(claim: str, title: str, fn, log) -> ClaimResult:
    """Runs one experiment; a failure becomes a 'not run' section instead of losing the report."""
    t0 = time.perf_counter()
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - the report must still be written
        log(f"{claim} failed: {e!r}")
        return ClaimResult(claim, title, "not run", f"the experiment failed: {e!r}",
                           notes=["```\n" + traceback.format_exc() + "```"],
                           data={"failed": True})
    result.data.setdefault("experiment_seconds", time.perf_counter() - t0)
    return result


def run(cfg: ReproduceConfig, *, progress: bool = True, log=print, overwrite: bool = False,
        resume: bool = False) -> dict:
    """Runs every experiment at ``cfg`` and writes the report.

    Each stage (the shared runs, then each claim) is kept in the output folder
    as soon as it finishes and the partial report is rewritten, so a stopped
    run keeps its finished stages and ``status.json`` says it is incomplete
    (:mod:`xsol.experiments.stages`).

    Args:
      cfg: the configuration.
      progress: progress bars.
      log: where messages go.
      overwrite: replace an earlier report in ``cfg.out_dir``.
      resume: finish an interrupted run in ``cfg.out_dir`` (same configuration),
        skipping its finished stages.

    Returns:
      ``{"report": path, "json": path, "results": [ClaimResult], "seconds": s}``.

    Raises:
      ReportFolderError: the output folder is not empty (and neither
        ``overwrite`` nor ``resume``), or belongs to a run with other settings.
    """
    t_start = time.perf_counter()
    out = Path(cfg.out_dir)
    folder = ReportFolder.open(out, dataclasses.asdict(cfg), overwrite=overwrite, resume=resume)
    if folder.stages:
        log(f"resuming: {', '.join(folder.stages)} already finished")
    try:
        return _run_stages(cfg, folder, out, progress, log, t_start)
    except BaseException as e:
        folder.write_status(complete=False, error=f"{type(e).__name__}: {e}")
        raise


def _run_stages(cfg, folder: ReportFolder, out: Path, progress, log, t_start) -> dict:
    cache = TaskCache(cfg)
    tasks, skipped = _load_tasks(cfg, cache, log)
    for t in tasks:
        log(t.describe())
    shared = folder.stage("runs", lambda: run_all(tasks, cfg, cache, progress=progress))
    runs, setups = shared["runs"], shared["setups"]
    traj_dir = out / "trajectories"
    traj_dir.mkdir(exist_ok=True)
    for name, rs in runs.items():
        for r in rs:
            for opt, by_start in r.grids.items():
                for init in by_start:
                    traj = r.tuned(opt, init)
                    stem = f"{name.replace(' ', '_').replace('=', '')}_seed{r.seed}_{opt}_{init}"
                    traj.to_json(traj_dir / f"{stem}.json")
                    traj.to_csv(traj_dir / f"{stem}.csv")
    by_name = {t.name: t for t in tasks}
    # Called through the package at run time, so that each claim is looked up when it runs.
    experiments = {
        "C1": lambda: claims.claim_c1(runs, out, cfg),
        "C2": lambda: claims.claim_c2(runs, out, cfg),
        "C3": lambda: claims.claim_c3(runs, out, cfg),
        "C4": lambda: claims.claim_c4(runs, out, cfg),
        "C5": lambda: claims.run_c5(cfg, cache, out, progress=progress),
        "C6": lambda: _cost(cfg, cache, out, progress),
        "C7": lambda: claims.run_c7(cfg, cache, out, progress=progress),
        "C8": lambda: claims.claim_c8(runs, by_name, out, cfg),
        "Beyond": lambda: claims.run_beyond(cfg, cache, out, progress=False),
    }

    def settings(complete: bool) -> dict:
        return dict(config=dataclasses.asdict(cfg), environment=environment(),
                    skipped_tasks=skipped, tasks=[t.describe() for t in tasks],
                    command=" ".join(sys.argv), seconds=time.perf_counter() - t_start,
                    complete=complete, finished_stages=list(folder.stages))

    notes, tables, plots, data = tuning_section(runs, setups, out, cfg)
    setup = dict(title="How the baselines were tuned and the optima found", notes=notes,
                 tables=tables, plots=plots, data=data)
    results = []
    for claim, title in claims.ORDER:
        if folder.done(claim):
            result = folder.load(claim)
        else:
            result = _guarded(claim, title, experiments[claim], log)
            if not result.data.get("failed"):  # a failed experiment is retried on --resume
                folder.save(claim, result)
        results.append(result)
        write_report(out, results, settings(complete=False), setup=setup)
    paths = write_report(out, results, settings(complete=True), setup=setup)
    folder.write_status(complete=True)
    log("")
    log("| claim | verdict | evidence |")
    log("|---|---|---|")
    for r in results:
        log(f"| {r.claim}: {r.title} | {r.verdict} | {r.summary} |")
    log(f"\nreport: {paths['report']}  ({time.perf_counter() - t_start:.0f} s)")
    return dict(paths, results=results, seconds=time.perf_counter() - t_start)


def _cost(cfg, cache, out, progress) -> ClaimResult:
    return claims.run_c6(cfg, cache, out, progress=progress)
