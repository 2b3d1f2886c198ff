"""Optional access to tensorflow-datasets (tfds), imported lazily.

Nothing here imports tfds at module import time: `xsol.data` works without
it. Each function imports it on call and raises `TfdsUnavailableError` (an
`ImportError`) with the install command when it is missing. Failures inside
tfds (no network, unknown name, ...) propagate as tfds raises them; callers
that have other sources catch them and fall back.

The calls follow the documented tfds API: `tfds.load(name, split=...,
as_supervised=True, batch_size=...)` returns `tf.data` datasets, which
`tfds.as_numpy` turns into iterables of numpy arrays; so every function here
needs TensorFlow as well (the `data` extra installs both). Whole splits are
read in batches of `CHUNK_EXAMPLES` examples and concatenated, rather than
with tfds's `batch_size=-1`: when a split's size is not recorded (e.g. under
`tfds.testing.mock_data`) tfds then batches by `sys.maxsize`, which aborts
the whole process in recent TensorFlow versions.

tfds downloads and prepares a dataset on first use. On a machine without
network that attempt fails only after tfds's downloader has retried each
file ten times with back-off (minutes); set the environment variable
`XSOL_TFDS_DOWNLOAD=0` there so that only datasets already prepared in the
data directory are read and anything else fails at once (callers with other
sources then fall back immediately).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

__all__ = [
    "TfdsUnavailableError",
    "CHUNK_EXAMPLES",
    "DOWNLOAD_ENV",
    "downloads_allowed",
    "import_tfds",
    "load_tfds_images",
    "load_tfds_text",
    "tfds_num_examples",
    "split_for_process",
    "iter_tfds_supervised",
]

INSTALL_HINT = "pip install tensorflow-datasets tensorflow importlib-resources"

#: Examples per tf.data batch when a whole split is loaded into memory.
CHUNK_EXAMPLES = 4096

#: The environment variable that, set to "0" (or "false", "no", "off"), stops tfds
#: from downloading; only datasets already prepared in the data directory are read.
DOWNLOAD_ENV = "XSOL_TFDS_DOWNLOAD"


class TfdsUnavailableError(ImportError):
    """tensorflow-datasets or TensorFlow is not installed (or failed to import)."""


def import_tfds(*, tensorflow: bool = True):
    """Imports tensorflow_datasets (and TensorFlow, which its `tf.data` path needs).

    Args:
      tensorflow: also import TensorFlow, and hide the GPUs from it (JAX keeps
        them). tfds itself imports it only when a dataset is read through
        `tf.data` (`tfds.load`, `tfds.as_numpy`), which is how every reader
        here works; metadata look-ups do without.

    Returns:
      The `tensorflow_datasets` module.

    Raises:
      TfdsUnavailableError: tfds (or, when asked, TensorFlow) is not installed
        or its import failed; the message says how to install it.
    """
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415 (lazy on purpose)
    except Exception as e:  # ImportError, or a broken install
        raise _unavailable("tensorflow-datasets", e) from e
    if tensorflow:
        try:
            import tensorflow as tf  # noqa: PLC0415 (tfds reads through tf.data)
        except Exception as e:
            raise _unavailable("TensorFlow (which tensorflow-datasets reads with)", e) from e
        _hide_gpus_from(tf)
    return tfds


_gpus_hidden = False


def _hide_gpus_from(tf) -> None:
    """Keeps TensorFlow off the GPUs (tf.data runs on the CPU).

    Otherwise TensorFlow's first operation would reserve most of each GPU's
    memory, which JAX needs. Does nothing once TensorFlow has initialized its
    devices (then it is too late to change), or a second time.
    """
    global _gpus_hidden
    if _gpus_hidden:
        return
    _gpus_hidden = True
    try:
        tf.config.set_visible_devices([], "GPU")
    except Exception:  # noqa: BLE001 - devices already initialized, or no such API
        pass


def downloads_allowed() -> bool:
    """Whether tfds may download and prepare datasets (see `DOWNLOAD_ENV`).

    Returns:
      False when the environment variable `XSOL_TFDS_DOWNLOAD` is "0",
      "false", "no" or "off" (any case); True otherwise, including unset.
    """
    return os.environ.get(DOWNLOAD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _unavailable(what: str, e: Exception) -> TfdsUnavailableError:
    return TfdsUnavailableError(
        f"{what} is not available ({type(e).__name__}: {e}); install it with: {INSTALL_HINT}"
    )


def load_tfds_images(name: str, *, data_dir: str | None = None, download: bool | None = None):
    """Loads the train and test splits of a tfds image dataset into memory.

    Args:
      name: a tfds dataset name with supervised (image, label) pairs, e.g.
        "mnist" or "fashion_mnist".
      data_dir: tfds's own data directory (None: tfds's default, which honours
        the TFDS_DATA_DIR environment variable).
      download: whether tfds may download and prepare the dataset (None:
        `downloads_allowed()`); False reads only a dataset already prepared.

    Returns:
      `(x_train, y_train, x_test, y_test)`: uint8 images with a trailing
      channel axis of size 1 removed (e.g. (60000, 28, 28)), int32 labels.

    Raises:
      TfdsUnavailableError: tfds or TensorFlow is not installed.
      FileNotFoundError: downloads are off (`DOWNLOAD_ENV`) and the dataset
        is not prepared in the data directory.
      Exception: whatever tfds raises when it cannot download or prepare.
    """
    tfds = import_tfds()
    train, test = _load(
        tfds, name, split=["train", "test"], as_supervised=True, batch_size=CHUNK_EXAMPLES,
        data_dir=data_dir, download=download,
    )
    x_tr, y_tr = _concat_supervised(tfds, train)
    x_te, y_te = _concat_supervised(tfds, test)
    return _images(x_tr), _labels(y_tr), _images(x_te), _labels(y_te)


def load_tfds_text(
    name: str, *, split: str = "train", feature: str = "text", data_dir: str | None = None
) -> str:
    """Loads one split of a tfds text dataset as a single string.

    Args:
      name: a tfds dataset name, e.g. "tiny_shakespeare" (whose train split is
        a single example holding the whole text).
      split: the tfds split (expression), e.g. "train" or "train[:10%]".
      feature: the string feature holding the text ("text" for tiny_shakespeare,
        lm1b and imdb_reviews).
      data_dir: tfds's own data directory (None: tfds's default).

    Returns:
      The examples' texts, decoded as UTF-8 and joined with "\\n" in dataset
      order.

    Raises:
      TfdsUnavailableError: tfds or TensorFlow is not installed.
      KeyError: the dataset has no such feature.
      FileNotFoundError: downloads are off (`DOWNLOAD_ENV`) and the dataset
        is not prepared in the data directory.
      Exception: whatever tfds raises when it cannot download or prepare.
    """
    tfds = import_tfds()
    ds = _load(tfds, name, split=split, batch_size=CHUNK_EXAMPLES, data_dir=data_dir)
    spec = ds.element_spec
    if not isinstance(spec, dict) or feature not in spec:
        features = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise KeyError(f"tfds dataset {name!r} has no feature {feature!r}; features: {features}")
    texts = []
    for batch in tfds.as_numpy(ds):
        texts.extend(np.asarray(batch[feature]).reshape(-1).tolist())
    return "\n".join(t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts)


def tfds_num_examples(name: str, split="train", *, data_dir: str | None = None) -> int | None:
    """Number of examples in a tfds split, from its metadata, if tfds knows it.

    Args:
      name: a tfds dataset name.
      split: a split (expression, or a sub-split such as `split_for_process`
        returns).
      data_dir: tfds's own data directory (None: tfds's default).

    Returns:
      The count, or None when tfds is missing or cannot tell without preparing
      (the dataset is not prepared in the data directory).
    """
    try:
        tfds = import_tfds(tensorflow=False)
        return int(tfds.builder(name, data_dir=data_dir).info.splits[split].num_examples)
    except Exception:
        return None


def split_for_process(split="train", *, process_index: int | None = None, process_count: int | None = None):
    """This process's share of a split, for runs over several JAX processes.

    A thin wrapper over `tfds.split_for_jax_process`: the split is cut into
    `process_count` contiguous, non-overlapping parts of sizes differing by at
    most one (e.g. 11 examples over 3 processes: 4, 4, 3), so that together
    the processes read every example exactly once.

    Args:
      split: a tfds split (expression), e.g. "train" or "train[:80%]".
      process_index: this process's index (None: `jax.process_index()`).
      process_count: the number of processes (None: `jax.process_count()`).

    Returns:
      A split argument for `tfds.load` (and `tfds_num_examples`).

    Raises:
      TfdsUnavailableError: tfds is not installed.
    """
    tfds = import_tfds(tensorflow=False)
    return tfds.split_for_jax_process(split, process_index=process_index, process_count=process_count)


def iter_tfds_supervised(
    name: str,
    split,
    batch_size: int,
    *,
    flatten: bool = True,
    data_dir: str | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Streams (x, y) batches of a supervised tfds dataset through tf.data.

    Args:
      name: a tfds dataset name with (input, label) pairs.
      split: the tfds split (expression, or a sub-split object).
      batch_size: examples per batch (tf.data keeps the final short batch).
      flatten: reshape each example to one row (B, prod(shape)).
      data_dir: tfds's own data directory (None: tfds's default).

    Returns:
      An iterator of numpy `(x, y)` with uint8 (or the stored dtype) x and
      int32 y.
    """
    tfds = import_tfds()
    ds = _load(tfds, name, split=split, as_supervised=True, batch_size=batch_size, data_dir=data_dir)
    for x, y in tfds.as_numpy(ds):
        x = np.asarray(x)
        if flatten:
            x = x.reshape(x.shape[0], -1)
        elif x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        yield x, _labels(y)


def _load(tfds, name: str, *, data_dir, download: bool | None = None, **kwargs):
    """`tfds.load`, downloading only when `download` (None: `downloads_allowed()`)."""
    download = downloads_allowed() if download is None else bool(download)
    try:
        return tfds.load(name, data_dir=data_dir, download=download, **kwargs)
    except AssertionError as e:  # what tfds raises for a dataset that is not prepared
        if download:
            raise
        where = data_dir if data_dir is not None else "tfds's default data directory"
        raise FileNotFoundError(
            f"tfds dataset {name!r} is not prepared in {where} and downloads are off "
            f"({DOWNLOAD_ENV}={os.environ.get(DOWNLOAD_ENV)!r} or download=False): {e}"
        ) from e


def _concat_supervised(tfds, ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds):
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    if not xs:  # an empty split: empty arrays of the stored shape and dtype
        x_spec, y_spec = ds.element_spec
        xs = [np.zeros((0, *x_spec.shape[1:]), x_spec.dtype.as_numpy_dtype)]
        ys = [np.zeros((0,), y_spec.dtype.as_numpy_dtype)]
    return np.concatenate(xs), np.concatenate(ys)


def _images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    return np.ascontiguousarray(x, dtype=np.uint8)


def _labels(y) -> np.ndarray:
    return np.asarray(y).astype(np.int32, copy=False).reshape(-1)
