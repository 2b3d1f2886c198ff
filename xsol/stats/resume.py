"""Checkpoints of a stream being accumulated (statistics and position), and resuming them.

``xsol.accumulate(batches, ..., checkpoint_dir=DIR, every=N)`` saves, every
``N`` batches and once at the end, the statistics counted so far and the
number of batches they hold (the position), with Orbax: an
``orbax.checkpoint.CheckpointManager`` writing asynchronously (the arrays are
copied to the host before the next batch is counted; the files are written
in the background; the last two checkpoints are kept). Each checkpoint is
written to a temporary folder and renamed into place when complete, so a run
killed at any moment (even ``SIGKILL`` during a save) leaves the previous
complete checkpoint. Rerunning with the same arguments restores the latest
one and skips the batches it holds: a source that can seek
(:meth:`xsol.data.Batches.iter_from`: arrays, IDX files, token files) jumps
there; any other iterable is read and dropped up to there. The result is the
same as one uninterrupted pass: bit-identical for token ids.

A checkpoint is refused, with an error naming every difference, when it
was written for another run: another kind of input, number of features or
classes, vocabulary size, window, normalization, count dtype, number of
processes, or other data. The data are told apart by the caller's
``fingerprint`` (any string, e.g. a file's name, size and modification
time) and by what ``accumulate`` sees itself: the number of batches, the
batch size and number of examples the source declares, the first batch's
shape and dtype, a digest of its first megabyte, and the number of examples
in a starting ``state``.

Several processes (``jax.distributed``): saving is collective, as Orbax
requires. Every process's statistics and position are rows of global
arrays over one device per process (:func:`xsol.distributed.process_mesh`),
written by their owners into one directory that every process can read (a
shared file system or a bucket), and on resume each process gets back its
own row. Processes save together: each time one reaches a multiple of
``every`` (or its end) it joins a round; a process whose stream has ended
keeps joining rounds until every process has ended. A process that raises
tells the others at their next round, and they raise too.

Layout of ``DIR``: Orbax step folders ``0/``, ``1/``, ... (one per save
round), each with ``stats/`` (arrays ``cooc``, ``feature_totals``,
``label_counts``, ``num_examples``, ``position``: one row per process;
64-bit values stored as pairs of uint32) and ``meta/`` (JSON: the format,
the run's configuration and each process's data description).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from xsol.core.checks import is_integer
from xsol.stats.collectives import gather_ints, process_mesh
from xsol.stats.accumulators import CoocStats

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_FINGERPRINT",
    "StreamCheckpointError",
    "StreamCheckpoint",
    "check_every",
    "check_fingerprint",
    "describe_source",
]

FORMAT = "xsol-stream-checkpoint"
FORMAT_VERSION = 1
#: The longest ``fingerprint`` string accepted (pass a hash of a longer description).
MAX_FINGERPRINT = 1000
_SOURCE_BYTES = 4096
_DIGEST_BYTES = 1 << 20
_RUNNING, _DONE, _FAILED = 0, 1, 2
_ORBAX_TMP = ".orbax-checkpoint-tmp"

_CONFIG_LABELS = {
    "kind": "kind of inputs",
    "num_features": "number of features (M)",
    "num_classes": "number of classes (N)",
    "vocab_size": "vocabulary size (V)",
    "window": "window (K)",
    "normalize": "normalization",
    "dtypes": "dtypes of the statistics (64-bit counts need jax_enable_x64 in both runs)",
    "process_count": "number of processes",
}
_SOURCE_LABELS = {
    "fingerprint": "data fingerprint",
    "num_batches": "number of batches",
    "batch_size": "batch size",
    "num_examples": "number of examples",
    "first_batch_shape": "first batch's shape",
    "first_batch_dtype": "first batch's dtype",
    "first_batch_digest": "first batch's contents (digest)",
    "start_examples": "examples in the starting state",
}


class StreamCheckpointError(ValueError):
    """A stream checkpoint that cannot be used: another run's, a foreign folder, bad arguments."""


def check_every(every) -> int:
    """``every`` (batches between checkpoints) as a positive int.

    Raises:
      StreamCheckpointError: not a positive integer.
    """
    if not is_integer(every) or every < 1:
        raise StreamCheckpointError(
            f"every must be a positive number of batches between checkpoints, got {every!r}")
    return int(every)


def check_fingerprint(fingerprint) -> str | None:
    """``fingerprint`` checked: None or a string of at most :data:`MAX_FINGERPRINT` characters."""
    if fingerprint is None:
        return None
    if not isinstance(fingerprint, str):
        raise StreamCheckpointError(f"fingerprint must be a string describing the data (or None), "
                                    f"got {type(fingerprint).__name__}")
    if len(fingerprint) > MAX_FINGERPRINT:
        raise StreamCheckpointError(
            f"fingerprint has {len(fingerprint)} characters, more than {MAX_FINGERPRINT}; pass "
            "a hash of a longer description")
    return fingerprint


def describe_source(batches, X, y, *, fingerprint: str | None, start_examples: int) -> dict:
    """What a stream checkpoint records of its data (see the module docstring).

    Args:
      batches: the iterable given to ``accumulate``.
      X, y: its first batch, as validated.
      fingerprint: the caller's description, or None.
      start_examples: examples in the starting ``state`` (0 without one).
    """
    def declared(name):
        v = getattr(batches, name, None)
        return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None

    try:
        n = int(len(batches)) if hasattr(batches, "__len__") else None
    except TypeError:
        n = None
    X, y = np.ascontiguousarray(np.asarray(X)), np.ascontiguousarray(np.asarray(y))
    h = hashlib.blake2b(digest_size=12)
    h.update(X.reshape(-1).view(np.uint8)[:_DIGEST_BYTES].tobytes())
    h.update(y.astype(np.int64).reshape(-1).view(np.uint8)[:_DIGEST_BYTES].tobytes())
    return {"fingerprint": fingerprint, "num_batches": n, "batch_size": declared("batch_size"),
            "num_examples": declared("num_examples"), "first_batch_shape": list(X.shape),
            "first_batch_dtype": X.dtype.name, "first_batch_digest": h.hexdigest(),
            "start_examples": int(start_examples)}


def _config(acc, state: CoocStats) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": acc.kind,
            "num_features": acc.num_features, "num_classes": acc.num_classes,
            "vocab_size": acc.vocab_size, "window": acc.window,
            "normalize": acc.normalize if acc.kind == "dense" else None,
            "dtypes": {k: np.dtype(getattr(state, k).dtype).name for k in CoocStats._fields},
            "process_count": jax.process_count()}


def _shapes(config: dict) -> dict:
    M, N = config["num_features"], config["num_classes"]
    return {"cooc": (M, N), "feature_totals": (M,), "label_counts": (N,), "num_examples": ()}


def _to_row(a: np.ndarray) -> np.ndarray:
    """``a`` as stored: 64-bit values as pairs of uint32 (trailing axis), others as they are."""
    a = np.asarray(a, order="C")  # (not ascontiguousarray: it makes scalars 1-D)
    return a.reshape(a.shape + (1,)).view(np.uint32) if a.dtype.itemsize == 8 else a


def _row_spec(shape: tuple, dtype: np.dtype) -> tuple[tuple, np.dtype]:
    return (shape + (2,), np.dtype(np.uint32)) if dtype.itemsize == 8 else (shape, dtype)


def _from_row(row: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    row = np.asarray(row, order="C")
    return row.view(dtype).reshape(shape) if dtype.itemsize == 8 else row.astype(dtype)


def _differences(stored: dict, current: dict, labels: dict) -> list[str]:
    out = []
    for key, label in labels.items():
        a, b = stored.get(key), current.get(key)
        if a != b:
            out.append(f"{label}: {a!r} in the checkpoint, {b!r} in this run")
    return out


def _gather_json(value: dict) -> list:
    """Every process's JSON-able ``value``, in process order (a collective)."""
    text = json.dumps(value).encode()
    if len(text) > _SOURCE_BYTES:  # pragma: no cover - the fingerprint is capped
        raise StreamCheckpointError("the data description is too long to store")
    row = np.frombuffer(text.ljust(_SOURCE_BYTES, b"\0"), np.uint8)
    if jax.process_count() == 1:
        rows = row[None]
    else:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        rows = np.asarray(multihost_utils.process_allgather(row))
    return [json.loads(r.tobytes().rstrip(b"\0").decode()) for r in rows]


def _is_local(path: str) -> bool:
    return "://" not in path


class StreamCheckpoint:
    """The stream checkpoints of one ``accumulate`` call (module docstring).

    ``accumulate`` calls :meth:`restore` after validating the first batch,
    :meth:`skip` when there is something to resume, :meth:`counted` after
    each batch, :meth:`finish` at the end of the stream, and :meth:`close`
    (a context manager) in every case.
    """

    def __init__(self, directory, every, *, fingerprint: str | None = None):
        if directory is None:
            raise StreamCheckpointError("every and fingerprint need checkpoint_dir, the folder "
                                        "the stream checkpoints are written to")
        if not isinstance(directory, (str, os.PathLike)):
            raise StreamCheckpointError(f"checkpoint_dir must be a path, got "
                                        f"{type(directory).__name__}")
        if every is None:
            raise StreamCheckpointError("checkpoint_dir needs every, the number of batches "
                                        "between two checkpoints (e.g. every=100)")
        self.every = check_every(every)
        self.fingerprint = check_fingerprint(fingerprint)
        path = os.fspath(directory)
        self.directory = os.path.abspath(path) if _is_local(path) else path
        if _is_local(path) and os.path.exists(path) and not os.path.isdir(path):
            raise StreamCheckpointError(f"checkpoint_dir {path} is a file; expected a folder "
                                        "(new, empty, or holding this run's stream checkpoints)")
        self._manager = None
        self._mesh = None
        self._config: dict | None = None
        self._step = 0
        self._saved: int | None = None
        self._over = False  # no collective round is left to join

    # --- the protocol ------------------------------------------------------------------

    def restore(self, acc, state: CoocStats, X, y, batches) -> tuple[int, CoocStats]:
        """``(position, statistics)`` of the latest checkpoint; ``(0, state)`` when there is none.

        Checks the checkpoint against this run first (see the module
        docstring); a collective in a run over several processes.

        Raises:
          StreamCheckpointError: the folder holds something else, or a
            checkpoint of another run (naming every difference).
        """
        config = _config(acc, state)
        source = describe_source(batches, X, y, fingerprint=self.fingerprint,
                                 start_examples=int(state.num_examples))
        has_steps = self._check_folder()
        self._exchange(_RUNNING)
        config["sources"] = _gather_json(source)
        self._config = config
        self._open()
        step = self._manager.latest_step() if has_steps or not _is_local(self.directory) else None
        if step is None:
            return 0, state
        ocp = _ocp()
        where = f"{self.directory} (step {step})"
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # a step folder written by something else, or damaged
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StreamCheckpointError(f"cannot read {where} as an xsol stream checkpoint "
                                        f"({first}); expected a folder written by "
                                        "accumulate(checkpoint_dir=...)") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else meta
            raise StreamCheckpointError(f"{where} is not an xsol stream checkpoint (format "
                                        f"{found!r}, expected {FORMAT!r})")
        version = meta.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version > FORMAT_VERSION:
            raise StreamCheckpointError(f"{where} has stream checkpoint format version "
                                        f"{meta.get('format_version')!r}; this xsol reads up to "
                                        f"{FORMAT_VERSION}: upgrade xsol to resume it")
        diffs = _differences(meta, config, _CONFIG_LABELS)
        stored = meta.get("sources")
        me = jax.process_index()
        if isinstance(stored, list) and len(stored) == len(config["sources"]):
            diffs += _differences(stored[me] if isinstance(stored[me], dict) else {}, source,
                                  _SOURCE_LABELS)
        flags = gather_ints([1 if diffs else 0])[:, 0]
        if diffs:
            raise StreamCheckpointError(self._refusal(diffs))
        if flags.any():
            raise StreamCheckpointError(
                f"process {int(np.flatnonzero(flags)[0])} refuses the checkpoint in "
                f"{self.directory}: it was written for other data or arguments there (see its "
                "own error)")
        shapes = _shapes(self._config)
        dtypes = {k: np.dtype(v) for k, v in self._config["dtypes"].items()}
        specs = {k: _row_spec(shapes[k], dtypes[k]) for k in CoocStats._fields}
        specs["position"] = _row_spec((), np.dtype(np.int64))
        count = jax.process_count()
        sharding = NamedSharding(self._mesh, P("proc"))
        abstract = {k: jax.ShapeDtypeStruct((count,) + s, d, sharding=sharding)
                    for k, (s, d) in specs.items()}
        try:
            got = self._manager.restore(step, args=ocp.args.Composite(
                stats=ocp.args.StandardRestore(abstract)))["stats"]
        except Exception as e:  # Orbax/TensorStore raise many types for damaged files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StreamCheckpointError(f"cannot read the arrays of {where} ({first}); the "
                                        "checkpoint is damaged: delete it to start over") from e
        rows = {k: np.asarray(v.addressable_data(0))[0] for k, v in got.items()}
        stats = {k: _from_row(rows[k], shapes[k], dtypes[k]) for k in CoocStats._fields}
        position = int(_from_row(rows["position"], (), np.dtype(np.int64)))
        if acc.kind == "ids":  # fresh device arrays: the driver updates them in place
            state = CoocStats(*(jnp.asarray(stats[k]) for k in CoocStats._fields))
        else:
            state = CoocStats(stats["cooc"], stats["feature_totals"], stats["label_counts"],
                              np.int64(stats["num_examples"]))
        self._step, self._saved = step + 1, position
        return position, state

    def skip(self, batches, source, position: int, limit: int | None = None):
        """The iterator of the batches from ``position`` on; ``source`` has yielded batch 0.

        Raises:
          StreamCheckpointError: the stream holds fewer batches than the
            checkpoint, or ``limit`` is below the checkpoint's position.
        """
        if limit is not None and position > limit:
            raise StreamCheckpointError(
                f"the checkpoint in {self.directory} already holds {position} batches, more "
                f"than limit={limit}; pass limit >= {position}, or a new checkpoint_dir")
        n = None
        if hasattr(batches, "__len__"):
            try:
                n = int(len(batches))
            except TypeError:
                n = None
        if n is not None and n < position:
            raise StreamCheckpointError(
                f"the checkpoint in {self.directory} holds {position} batches but this stream "
                f"has {n}: the data changed; pass a new checkpoint_dir to start over")
        if getattr(batches, "seekable", False):
            return batches.iter_from(position)
        for j in range(1, position):
            try:
                next(source)
            except StopIteration:
                raise StreamCheckpointError(
                    f"the checkpoint in {self.directory} holds {position} batches but this "
                    f"stream ended after {j}: the data changed; pass a new checkpoint_dir to "
                    "start over") from None
        return source

    def counted(self, position: int, state: CoocStats) -> None:
        """After each batch: saves when ``position`` is a multiple of ``every``."""
        if position % self.every == 0:
            self._round(_RUNNING, position, state)

    def finish(self, position: int, state: CoocStats) -> None:
        """At the end of the stream: the final save (and, with several processes, the
        rounds until every process has ended), then waits until the files are written."""
        while not self._round(_DONE, position, state):
            pass
        self._over = True
        if self._manager is not None:
            self._manager.wait_until_finished()

    def close(self, exc: BaseException | None = None) -> None:
        """Waits for pending saves and closes; after an error, tells the other processes."""
        try:
            if exc is not None and not self._over and jax.process_count() > 1:
                self._over = True
                gather_ints([_FAILED, 0])
        finally:
            if self._manager is not None:
                manager, self._manager = self._manager, None
                manager.wait_until_finished()
                manager.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exc)
        return False

    # --- internals -----------------------------------------------------------------------

    def _refusal(self, diffs: list[str]) -> str:
        return (f"refusing to resume from the stream checkpoint in {self.directory}: it was "
                f"written for another run ({'; '.join(diffs)}). Pass the arguments and data it "
                "was written for to resume it, or a new checkpoint_dir (or delete this one) to "
                "start over")

    def _check_folder(self) -> bool:
        """Whether the folder holds step folders; refuses a folder holding anything else."""
        if not _is_local(self.directory) or not os.path.isdir(self.directory):
            return not _is_local(self.directory)
        names = [n for n in os.listdir(self.directory) if _ORBAX_TMP not in n]
        steps = [n for n in names if re.fullmatch(r"\d+", n)]
        other = sorted(set(names) - set(steps))
        if other:
            what = (" (it holds a saved model or statistics: xsol.json)" if "xsol.json" in other
                    else f" (it holds {', '.join(other[:3])}{', ...' if len(other) > 3 else ''})")
            raise StreamCheckpointError(
                f"checkpoint_dir {self.directory} is not a stream checkpoint folder{what}; "
                "expected a new or empty folder, or one written by "
                "accumulate(checkpoint_dir=...)")
        return bool(steps)

    def _open(self) -> None:
        ocp = _ocp()
        self._mesh = process_mesh()
        # Every process named: Orbax then waits at the coordination service's
        # barriers instead of running JAX collectives of its own, from its
        # background threads too, which could interleave with this module's.
        every_process = ocp.options.MultiprocessingOptions(
            primary_host=0, active_processes=set(range(jax.process_count())))
        if _is_local(self.directory):
            os.makedirs(self.directory, exist_ok=True)
        else:  # pragma: no cover - a bucket
            from etils import epath  # noqa: PLC0415 - an Orbax dependency

            epath.Path(self.directory).mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=True,
                                               create=False,
                                               multiprocessing_options=every_process)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={
                "stats": ocp.StandardCheckpointHandler(multiprocessing_options=every_process),
                "meta": ocp.JsonCheckpointHandler(multiprocessing_options=every_process)})

    def _exchange(self, status: int, changed: int = 0) -> np.ndarray:
        """Every process's ``(status, changed)``; raises when another process failed."""
        rows = gather_ints([status, changed])
        failed = np.flatnonzero(rows[:, 0] == _FAILED)
        if len(failed) and status != _FAILED:
            self._over = True
            raise RuntimeError(
                f"process {int(failed[0])} failed while accumulating (see its own error); "
                f"stopping too. The stream checkpoints in {self.directory} keep every "
                "process's last saved position")
        return rows

    def _round(self, status: int, position: int, state: CoocStats) -> bool:
        """One save round: saves when any process moved; returns whether every process ended."""
        rows = self._exchange(status, int(position != self._saved))
        if rows[:, 1].any():
            self._save(position, state)
        return bool((rows[:, 0] == _DONE).all())

    def _save(self, position: int, state: CoocStats) -> None:
        ocp = _ocp()
        rows = {k: _to_row(np.array(getattr(state, k), copy=True)) for k in CoocStats._fields}
        rows["position"] = _to_row(np.asarray(position, np.int64))
        count = jax.process_count()
        sharding = NamedSharding(self._mesh, P("proc"))
        arrays = {k: jax.make_array_from_process_local_data(sharding, v[None], (count,) + v.shape)
                  for k, v in rows.items()}
        self._manager.save(self._step, args=ocp.args.Composite(
            stats=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(self._config)))
        self._step += 1
        self._saved = position


def _ocp() -> Any:
    import orbax.checkpoint as ocp  # noqa: PLC0415 - heavy, only needed with checkpoint_dir

    return ocp
