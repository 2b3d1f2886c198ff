"""Optional access to tensorflow-datasets (tfds), imported lazily.

Nothing here imports tfds at module import time: `xsol.data` works without
it. Each function imports it on call and raises `TfdsUnavailableError` (an
`ImportError`) with the install command when it is missing. Failures inside
tfds (no network, unknown name, ...) propagate as tfds raises them; callers
that have other sources catch them and fall back.

The calls follow the documented tfds API: `tfds.load(name, split=...,
as_supervised=True, batch_size=-1)` returns whole splits as tensors, and
`tfds.as_numpy` turns tensors and datasets into numpy arrays and iterables.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = [
    "TfdsUnavailableError",
    "import_tfds",
    "load_tfds_images",
    "load_tfds_text",
    "tfds_num_examples",
    "iter_tfds_supervised",
]

INSTALL_HINT = "pip install tensorflow-datasets"


class TfdsUnavailableError(ImportError):
    """tensorflow-datasets is not installed (or failed to import)."""


def import_tfds():
    """Imports tensorflow_datasets.

    Returns:
      The `tensorflow_datasets` module.

    Raises:
      TfdsUnavailableError: it is not installed or its import failed; the
        message says how to install it.
    """
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415 (lazy on purpose)
    except Exception as e:  # ImportError, or a broken TensorFlow install
        raise TfdsUnavailableError(
            f"tensorflow-datasets is not available ({type(e).__name__}: {e}); "
            f"install it with: {INSTALL_HINT}"
        ) from e
    return tfds


def load_tfds_images(name: str, *, data_dir: str | None = None):
    """Loads the train and test splits of a tfds image dataset into memory.

    Args:
      name: a tfds dataset name with supervised (image, label) pairs, e.g.
        "mnist" or "fashion_mnist".
      data_dir: tfds's own data directory (None: tfds's default, which honours
        the TFDS_DATA_DIR environment variable).

    Returns:
      `(x_train, y_train, x_test, y_test)`: uint8 images with a trailing
      channel axis of size 1 removed (e.g. (60000, 28, 28)), int32 labels.

    Raises:
      TfdsUnavailableError: tfds is not installed.
      Exception: whatever tfds raises when it cannot download or prepare.
    """
    tfds = import_tfds()
    splits = tfds.load(
        name, split=["train", "test"], as_supervised=True, batch_size=-1, data_dir=data_dir
    )
    (x_tr, y_tr), (x_te, y_te) = tfds.as_numpy(splits)
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
      TfdsUnavailableError: tfds is not installed.
      KeyError: the dataset has no such feature.
      Exception: whatever tfds raises when it cannot download or prepare.
    """
    tfds = import_tfds()
    batch = tfds.as_numpy(tfds.load(name, split=split, batch_size=-1, data_dir=data_dir))
    if feature not in batch:
        raise KeyError(
            f"tfds dataset {name!r} has no feature {feature!r}; features: {sorted(batch)}"
        )
    texts = np.asarray(batch[feature]).reshape(-1)
    return "\n".join(t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts)


def tfds_num_examples(name: str, split: str = "train") -> int | None:
    """Number of examples in a tfds split, from its metadata, if tfds knows it.

    Args:
      name: a tfds dataset name.
      split: a split (expression).

    Returns:
      The count, or None when tfds is missing or cannot tell without preparing.
    """
    try:
        tfds = import_tfds()
        return int(tfds.builder(name).info.splits[split].num_examples)
    except Exception:
        return None


def iter_tfds_supervised(
    name: str,
    split: str,
    batch_size: int,
    *,
    flatten: bool = True,
    data_dir: str | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Streams (x, y) batches of a supervised tfds dataset through tf.data.

    Args:
      name: a tfds dataset name with (input, label) pairs.
      split: the tfds split (expression).
      batch_size: examples per batch (tf.data keeps the final short batch).
      flatten: reshape each example to one row (B, prod(shape)).
      data_dir: tfds's own data directory (None: tfds's default).

    Returns:
      An iterator of numpy `(x, y)` with uint8 (or the stored dtype) x and
      int32 y.
    """
    tfds = import_tfds()
    ds = tfds.load(name, split=split, as_supervised=True, batch_size=batch_size, data_dir=data_dir)
    for x, y in tfds.as_numpy(ds):
        x = np.asarray(x)
        if flatten:
            x = x.reshape(x.shape[0], -1)
        elif x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        yield x, _labels(y)


def _images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    return np.ascontiguousarray(x, dtype=np.uint8)


def _labels(y) -> np.ndarray:
    return np.asarray(y).astype(np.int32, copy=False).reshape(-1)
