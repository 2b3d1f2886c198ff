"""Saving and loading fitted models and their statistics (Orbax arrays + a JSON description).

A checkpoint is a directory::

    DIR/
      xsol.json       what the directory holds (written last, see below)
      arrays/         the arrays: an Orbax checkpoint (``StandardCheckpointHandler``)
      tokenizer.json  only for a text model encoded by a Hugging Face tokenizer

Which objects can be saved is not written here: each saved type registers
itself where it is defined (:func:`xsol.core.saved.register_saved_type`, with
the functions that turn it into arrays and JSON fields and back), so this
module imports no model class and a new saved type needs no change here.
What the library's types store:

* :class:`xsol.ExplicitSolution`: arrays ``weights``, ``bias`` and its
  statistics ``cooc``, ``feature_totals``, ``label_counts``, ``num_examples``;
  in ``xsol.json`` its ``kind``, ``normalize``, ``smoothing``, ``vocab_size``,
  ``window``, ``inverse_temperature`` and ``rows_normalized``.
* :class:`xsol.SparseExplicitLM`: the arrays of its :class:`xsol.stats.SparseStats`
  (``keys``, ``counts``, ``feature_totals``, ``label_counts``); in ``xsol.json``
  ``smoothing``, ``normalize``, ``vocab_size``, ``num_classes``, ``window``,
  ``num_examples``. The sparse solution (row constants, corrections) is a
  deterministic function of these and is recomputed on load.
* :class:`xsol.stats.CoocStats`: arrays ``cooc``, ``feature_totals``,
  ``label_counts``, ``num_examples``.
* :class:`xsol.stats.SparseStats`: as for the sparse model, without ``smoothing``
  and ``normalize``.

``xsol.json`` also holds ``format`` (``"xsol-checkpoint"``), ``format_version``,
``xsol_version``, ``object`` (the class name), ``arrays`` (each array's shape
and dtype, checked on load), ``vocabulary`` (tokens, counts and tokenizer
settings of a text model's :class:`xsol.data.Vocabulary`, else null),
``tokenizer`` (the tokenizer file's name, else null) and ``info`` (free JSON
given to :func:`save`, e.g. where the data came from).

Arrays are written from host NumPy copies (no device or sharding recorded)
and read back as NumPy in their saved dtype, so a round trip is bit-exact on
any machine. A save writes everything into a hidden sibling directory and
renames it into place at the end, so an interrupted save never leaves a
directory that loads; ``xsol.json``, written last, is what makes one valid.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core.saved import saved_type_named, saved_type_names, saved_type_of
from xsol.core.serialize import to_jsonable
from xsol.data.encoders import HFTokenizerEncoder, WordEncoder, load_tokenizer
from xsol.data.vocab import Vocabulary

#: The ``format`` field of every checkpoint's ``xsol.json``.
FORMAT = "xsol-checkpoint"
#: The newest format version this code reads and the one it writes.
FORMAT_VERSION = 1
#: The description file and the Orbax folder inside a checkpoint.
METADATA_FILE = "xsol.json"
ARRAYS_DIR = "arrays"
TOKENIZER_FILE = "tokenizer.json"



def saved_objects() -> tuple[str, ...]:
    """The names of the types that can be saved (each registers itself with
    :func:`xsol.core.saved.register_saved_type` where it is defined)."""
    return saved_type_names()


class CheckpointError(ValueError):
    """A directory that is not a checkpoint this code can load, or a refused save."""


class CheckpointExistsError(CheckpointError, FileExistsError):
    """Saving would replace a non-empty directory (pass ``overwrite=True``)."""


def _ocp():
    try:
        import orbax.checkpoint as ocp  # noqa: PLC0415 - heavy, only needed to save/load
    except ImportError as e:  # pragma: no cover - a dependency of flax
        raise ImportError("saving and loading models needs orbax-checkpoint: "
                          "pip install orbax-checkpoint") from e
    return ocp


def _this_process_only(ocp):
    """Orbax options for a save or load done by this process alone.

    In a run over several JAX processes (``jax.distributed``), Orbax would
    otherwise wait at barriers for every process; here one process (e.g.
    process 0, after an all-reduce gave every process the same statistics)
    saves or loads on its own. In a single process these are Orbax's defaults.
    """
    me = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})


def _xsol_version() -> str:
    import xsol  # noqa: PLC0415 - the package is fully imported by the time this runs

    return xsol.__version__


# --- what an object stores --------------------------------------------------------------


def _container(x) -> str:
    """How an array is held, so that a load gives back the same kind of object."""
    if isinstance(x, jax.Array):
        return "jax"
    if isinstance(x, np.ndarray):
        return "numpy"
    return "numpy-scalar" if isinstance(x, np.generic) else "python"


def _describe(obj) -> tuple[str, tuple[dict, dict], dict]:
    """``(object name, ({name: NumPy array}, {name: container}), JSON fields)`` of an object."""
    entry = saved_type_of(obj)
    if entry is None:
        raise TypeError(f"cannot save a {type(obj).__name__}; expected one of "
                        f"{', '.join(saved_objects())}")
    tree, fields = entry.to_record(obj)
    arrays = {k: np.asarray(v) for k, v in tree.items()}
    return entry.name, (arrays, {k: _container(v) for k, v in tree.items()}), dict(fields)


def _vocabulary_entry(vocabulary, vocab_size) -> tuple[dict | None, str | None, str | None]:
    """``(vocabulary JSON, tokenizer file text, encoder name)`` of what encodes the model's text."""

    if vocabulary is None:
        return None, None, None
    if isinstance(vocabulary, WordEncoder):
        vocabulary = vocabulary.vocab
    if isinstance(vocabulary, Vocabulary):
        size, entry, text = len(vocabulary), json.loads(vocabulary.to_json()), None
    elif isinstance(vocabulary, HFTokenizerEncoder):
        size, entry, text = vocabulary.vocab_size, None, vocabulary.tokenizer.to_str()
    else:
        raise TypeError("vocabulary must be a xsol.data.Vocabulary, a WordEncoder or a "
                        f"HFTokenizerEncoder, got {type(vocabulary).__name__}")
    if vocab_size is None or int(size) != int(vocab_size):
        raise ValueError(f"the vocabulary has {size} ids but the model's vocab_size is "
                         f"{vocab_size}; save the vocabulary the model was fitted with")
    return entry, text, getattr(vocabulary, "name", None)


# --- saving -----------------------------------------------------------------------------


def check_target(path, *, overwrite: bool = False) -> Path:
    """Whether ``path`` may receive a checkpoint; returns it as a ``Path``.

    Allowed: a path that does not exist, an empty directory, or (with
    ``overwrite``) an earlier checkpoint. Any other non-empty directory is
    refused even with ``overwrite``, so a mistyped path never deletes data.

    Raises:
      CheckpointExistsError: a non-empty directory without ``overwrite``.
      CheckpointError: a file, or a non-empty directory that is not a checkpoint.
    """
    path = Path(os.fspath(path))
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save a model to {path}: it is a file, expected a "
                              "directory (new or empty)")
    if path.is_dir() and any(path.iterdir()):
        if not (path / METADATA_FILE).is_file():
            raise CheckpointError(
                f"refusing to save a model to {path}: the directory is not empty and is not "
                f"an xsol checkpoint (no {METADATA_FILE}); choose a new directory")
        if not overwrite:
            raise CheckpointExistsError(
                f"refusing to replace the model in {path}: the directory is not empty "
                "(pass overwrite=True, or --overwrite on the command line)")
    return path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _check_saving_process() -> None:
    """Refuses a save from a process other than 0 of a multi-process run."""
    jax = sys.modules.get("jax")
    if jax is None or not jax.distributed.is_initialized():
        return
    if jax.process_index() != 0:
        raise CheckpointError(
            f"this is process {jax.process_index()} of {jax.process_count()}: in a run over "
            "several processes save from process 0 (jax.process_index() == 0), which Orbax "
            "writes host arrays from; every process holds the same statistics after "
            "xsol.distributed.allreduce_stats")


def save(obj, path, *, vocabulary=None, info: dict | None = None,
         overwrite: bool = False) -> Path:
    """Writes ``obj`` to the checkpoint directory ``path`` (module docstring).

    Args:
      obj: an :class:`xsol.ExplicitSolution`, :class:`xsol.SparseExplicitLM`,
        :class:`xsol.stats.CoocStats` or :class:`xsol.stats.SparseStats`.
      path: the directory to create (its parents are created too).
      vocabulary: for a text language model, what encodes its text: a
        :class:`xsol.data.Vocabulary`, a ``WordEncoder`` or a Hugging Face
        ``HFTokenizerEncoder`` (its size must equal the model's ``vocab_size``).
      info: JSON-safe data stored as the ``info`` field.
      overwrite: replace an earlier checkpoint at ``path``.

    Returns:
      ``path`` as a ``Path``.

    Raises:
      CheckpointExistsError, CheckpointError: see :func:`check_target`; also a
        save from a process other than 0 of a multi-process JAX run.
      TypeError: an object or vocabulary of an unknown type.
    """
    name, (arrays, containers), fields = _describe(obj)
    _check_saving_process()
    entry, tokenizer_text, encoder_name = _vocabulary_entry(vocabulary, fields.get("vocab_size"))
    path = check_target(path, overwrite=overwrite)
    meta = dict(format=FORMAT, format_version=FORMAT_VERSION, xsol_version=_xsol_version(),
                object=name,
                arrays={k: dict(shape=list(a.shape), dtype=a.dtype.name, type=containers[k])
                        for k, a in arrays.items()},
                **fields, vocabulary=entry,
                tokenizer=TOKENIZER_FILE if tokenizer_text is not None else None,
                encoder=encoder_name, info=to_jsonable(info or {}))
    text = json.dumps(meta, indent=1, ensure_ascii=False, allow_nan=False)
    parent = path.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    tmp, old = parent / f".{path.name}.tmp-{tag}", parent / f".{path.name}.old-{tag}"
    tmp.mkdir()
    moved = False
    try:
        stored = {k: a for k, a in arrays.items() if a.size}  # Orbax refuses empty arrays
        if stored:
            ocp = _ocp()
            local = _this_process_only(ocp)
            with ocp.Checkpointer(ocp.StandardCheckpointHandler(multiprocessing_options=local),
                                  multiprocessing_options=local) as ckptr:
                ckptr.save((tmp / ARRAYS_DIR).absolute(), args=ocp.args.StandardSave(stored))
        if tokenizer_text is not None:
            (tmp / TOKENIZER_FILE).write_text(tokenizer_text, encoding="utf-8")
        with open(tmp / METADATA_FILE, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if path.is_dir():  # empty, or an earlier checkpoint being replaced
            os.rename(path, old)
            moved = True
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not path.exists():
            os.rename(old, path)
        raise
    if moved:
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(parent)
    return path


# --- loading ----------------------------------------------------------------------------


def read_metadata(path) -> dict:
    """The checked contents of ``path/xsol.json``.

    Raises:
      CheckpointError: no such directory, no or unreadable ``xsol.json``,
        another format, or a format version newer than :data:`FORMAT_VERSION`.
    """
    path = Path(os.fspath(path))
    expected = "expected a model directory written by xsol (save(), or xsol fit --out)"
    if not path.exists():
        raise CheckpointError(f"no model at {path}: the directory does not exist; {expected}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; {expected}")
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise CheckpointError(f"{path} is not an xsol checkpoint: {METADATA_FILE} is missing; "
                              f"{expected}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {meta_path} ({e}); {expected}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{meta_path} has format {found!r}, expected {FORMAT!r}; "
                              f"{expected}")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{meta_path} has format_version {version!r}, expected an "
                              f"integer from 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by xsol {meta.get('xsol_version', '?')} in checkpoint format "
            f"version {version}; this xsol ({_xsol_version()}) reads versions up to "
            f"{FORMAT_VERSION}: upgrade xsol to load it")
    if saved_type_named(meta.get("object")) is None:
        raise CheckpointError(f"{meta_path} holds an object {meta.get('object')!r}, expected "
                              f"one of {', '.join(saved_objects())}")
    return meta


def _expected_names(expect) -> tuple[str, ...]:
    items = expect if isinstance(expect, (tuple, list)) else (expect,)
    names = tuple(e if isinstance(e, str) else getattr(e, "__name__", str(e)) for e in items)
    unknown = [n for n in names if saved_type_named(n) is None]
    if unknown:
        raise ValueError(f"expect must name {', '.join(saved_objects())}, got {unknown[0]!r}")
    return names


def _restore_arrays(path: Path, meta: dict) -> dict[str, np.ndarray]:
    try:
        spec = {k: (tuple(v["shape"]), np.dtype(v["dtype"])) for k, v in meta["arrays"].items()}
        containers = {k: v.get("type", "numpy") for k, v in meta["arrays"].items()}
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path / METADATA_FILE}: malformed 'arrays' entry ({e!r})") from None
    stored = {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items() if int(np.prod(s))}
    out = {k: np.zeros(s, d) for k, (s, d) in spec.items() if not int(np.prod(s))}
    if stored:
        ocp = _ocp()
        local = _this_process_only(ocp)
        try:
            with ocp.Checkpointer(ocp.StandardCheckpointHandler(multiprocessing_options=local),
                                  multiprocessing_options=local) as ckptr:
                got = ckptr.restore((path / ARRAYS_DIR).absolute(),
                                    args=ocp.args.StandardRestore(stored))
        except Exception as e:  # Orbax/TensorStore raise many types for damaged files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"cannot read the arrays of {path} from {path / ARRAYS_DIR} "
                                  f"({first}); the checkpoint is incomplete or damaged") from e
        out.update({k: np.asarray(v) for k, v in got.items()})
    for k, (s, d) in spec.items():
        a = out.get(k)
        if a is None or a.shape != s or a.dtype != d:
            found = None if a is None else f"{a.shape} {a.dtype}"
            raise CheckpointError(f"{path}: array {k!r} is {found}, expected {s} {d.name} as "
                                  f"{METADATA_FILE} records")
    return {k: _revive(a, containers[k], k, path) for k, a in out.items()}


def _revive(a: np.ndarray, container: str, name: str, path: Path):
    """``a`` held as it was when saved: a JAX array, a NumPy array or scalar, a Python number."""
    if container == "jax":
        return _to_jax(a, name, path)
    if container == "numpy":
        return a
    if container in ("numpy-scalar", "python") and a.ndim == 0:
        return a[()] if container == "numpy-scalar" else a.item()
    raise CheckpointError(f"{path / METADATA_FILE}: array {name!r} has an unknown type "
                          f"{container!r} (expected jax, numpy, numpy-scalar or python)")


def _to_jax(a: np.ndarray, name: str, path: Path):
    """``a`` as a JAX array of the same values; 64-bit data without x64 mode only when exact."""

    if a.dtype.itemsize == 8 and not jax.config.jax_enable_x64:
        if np.issubdtype(a.dtype, np.integer):
            lim = np.iinfo(np.int32)
            if a.size and (a.min() < lim.min or a.max() > lim.max):
                raise CheckpointError(
                    f"{path}: array {name!r} holds 64-bit counts beyond int32; enable "
                    "jax.config.update('jax_enable_x64', True) before loading it")
            a = a.astype(np.int32)
        else:
            raise CheckpointError(f"{path}: array {name!r} is {a.dtype}; enable "
                                  "jax.config.update('jax_enable_x64', True) before loading it")
    return jnp.asarray(a)


def _build(meta: dict, arrays: dict, path: Path):
    """The registered type's ``from_record`` on the restored arrays and the JSON fields."""
    return saved_type_named(meta["object"]).from_record(arrays, meta)


def load(path, *, expect=None):
    """Reads an object written by :func:`save`.

    Args:
      path: the checkpoint directory.
      expect: optionally the class (or class name), or a tuple of them, the
        caller needs: anything else is refused with a message naming both.

    Returns:
      The :class:`xsol.ExplicitSolution`, :class:`xsol.SparseExplicitLM`,
      :class:`xsol.stats.CoocStats` or :class:`xsol.stats.SparseStats`, with arrays
      bit-identical to the saved ones.

    Raises:
      CheckpointError: see :func:`read_metadata`; also the wrong object for
        ``expect``, and missing or damaged arrays or fields.
    """
    path = Path(os.fspath(path))
    meta = read_metadata(path)
    if expect is not None:
        names = _expected_names(expect)
        if meta["object"] not in names:
            raise CheckpointError(f"{path} holds a {meta['object']}, expected "
                                  f"{' or '.join(names)}")
    arrays = _restore_arrays(path, meta)
    try:
        return _build(meta, arrays, path)
    except KeyError as e:
        raise CheckpointError(f"{path / METADATA_FILE} lacks the field {e.args[0]!r} a "
                              f"{meta['object']} needs; the checkpoint is damaged") from None


def load_vocabulary(path):
    """The :class:`xsol.data.Vocabulary` stored with a text model, or None."""

    entry = read_metadata(path).get("vocabulary")
    return None if entry is None else Vocabulary.from_json(json.dumps(entry))


def load_encoder(path) -> Any:
    """What encodes a text model's text: a ``WordEncoder`` (its vocabulary), an
    ``HFTokenizerEncoder`` (its ``tokenizer.json``), or None for a model fitted on ids.
    """
    meta = read_metadata(path)
    if meta.get("tokenizer"):
        enc = load_tokenizer(Path(os.fspath(path)) / meta["tokenizer"])
        if meta.get("encoder"):
            enc.name = meta["encoder"]
        return enc
    vocab = load_vocabulary(path)
    return None if vocab is None else WordEncoder(vocab)
