"""A report folder that keeps every finished stage of ``xsol reproduce``.

The folder holds ``status.json`` (the configuration, each stage's state, and
whether the whole run is complete) and ``stages/``, one pickle per finished
stage (the shared training runs, then each claim's result). A stage is saved
the moment it finishes, and the partial report is rewritten with it, so a
run stopped at any point keeps what it finished and says it is incomplete.
``--resume`` reloads the finished stages and runs only the rest; the
configuration must be the one the folder was started with.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

from xsol.core.serialize import atomic_open, to_jsonable, write_json

STATUS = "status.json"
STAGES = "stages"


class ReportFolderError(ValueError):
    """The output folder cannot be used as asked (not empty, another run's, ...)."""


@dataclasses.dataclass
class ReportFolder:
    """The output folder of one ``xsol reproduce`` run.

    Attributes:
      path: the folder.
      config: the run's configuration, as plain JSON data.
      stages: ``{name: "done"}`` for each finished stage.
    """

    path: Path
    config: dict
    stages: dict

    @classmethod
    def open(cls, path, config: dict, *, overwrite: bool = False,
             resume: bool = False) -> "ReportFolder":
        """Prepares ``path`` for a run with ``config``.

        A missing or empty folder is used as is. A non-empty folder is refused
        unless ``overwrite`` (only a folder an earlier ``xsol reproduce`` made,
        recognized by its ``status.json``, is emptied) or ``resume`` (the same
        configuration must have started it).

        Raises:
          ReportFolderError: what was wrong, and the options that would help.
        """
        if overwrite and resume:
            raise ReportFolderError("--overwrite and --resume exclude each other")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ReportFolderError(f"--out {path} is a file, expected a folder")
        config = to_jsonable(config)
        entries = sorted(p.name for p in path.iterdir()) if path.exists() else []
        status = path / STATUS
        if entries and not (overwrite or resume):
            raise ReportFolderError(
                f"output folder {path} is not empty ({len(entries)} entries, e.g. "
                f"{', '.join(entries[:3])}); pass --overwrite to replace an earlier report "
                "there, --resume to finish an interrupted one, or choose another --out")
        if entries and not status.is_file():
            raise ReportFolderError(
                f"output folder {path} is not empty and was not written by xsol reproduce "
                f"(no {STATUS}); choose another --out")
        stages: dict = {}
        if entries and resume:
            old = json.loads(status.read_text())
            if old.get("config") != config:
                changed = sorted(k for k in set(old.get("config", {})) | set(config)
                                 if old.get("config", {}).get(k) != config.get(k))
                raise ReportFolderError(
                    f"cannot resume {path}: it was started with other settings "
                    f"({', '.join(changed)} differ); rerun with those settings or use --overwrite")
            stages = {k: v for k, v in old.get("stages", {}).items()
                      if v == "done" and (path / STAGES / f"{k}.pkl").is_file()}
        elif entries:  # overwrite an earlier report
            for p in path.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        (path / STAGES).mkdir(parents=True, exist_ok=True)
        folder = cls(path, config, stages)
        folder.write_status(complete=False)
        return folder

    def write_status(self, *, complete: bool, error: str | None = None) -> None:
        write_json(self.path / STATUS, dict(config=self.config, stages=self.stages,
                                            complete=complete, error=error))

    def done(self, name: str) -> bool:
        return self.stages.get(name) == "done"

    def load(self, name: str):
        with open(self.path / STAGES / f"{name}.pkl", "rb") as f:
            return pickle.load(f)

    def save(self, name: str, value) -> None:
        """Keeps a finished stage (atomically) and marks it done in ``status.json``."""
        with atomic_open(self.path / STAGES / f"{name}.pkl", "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.stages[name] = "done"
        self.write_status(complete=False)

    def stage(self, name: str, compute):
        """``compute()``'s result, loaded when the stage was finished earlier, else computed and kept."""
        if self.done(name):
            return self.load(name)
        value = compute()
        self.save(name, value)
        return value


def describe(path) -> str:
    """One line on a report folder's state, for messages."""
    status = Path(path) / STATUS
    if not status.is_file():
        return f"{path}: no {STATUS}"
    s = json.loads(status.read_text())
    done = [k for k, v in s.get("stages", {}).items() if v == "done"]
    state = "complete" if s.get("complete") else "incomplete"
    return f"{path}: {state}; finished stages: {', '.join(done) or 'none'}"


__all__ = ["ReportFolder", "ReportFolderError", "describe", "STATUS", "STAGES"]
