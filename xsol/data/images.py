"""Image classification datasets: MNIST, Fashion-MNIST and scikit-learn's digits.

`load_images(name)` returns `(x_train, y_train, x_test, y_test)` as numpy
arrays: uint8 images and int32 labels. The sources, tried in order:

* "mnist", "fashion_mnist":
    1. local IDX files in a directory: `data_dir`, else the environment
       variable `XSOL_DATA_DIR`. The four standard files
       `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
       `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each plain or with
       `.gz`) are looked for first in `<dir>/<name>/` (for fashion_mnist also
       `<dir>/fashion-mnist/`), then directly in `<dir>/`. Files placed
       directly in `<dir>` are taken for whichever name is asked for, so keep
       MNIST and Fashion-MNIST in their own subfolders when you have both.
    2. tensorflow-datasets, when importable and the dataset is already
       prepared in its data directory (no download).
    3. fashion_mnist only: Debian's package `dataset-fashion-mnist`, which
       installs the IDX files in `/usr/share/datasets/fashion-mnist/`.
    4. tensorflow-datasets again, now allowed to download and prepare (unless
       `XSOL_TFDS_DOWNLOAD=0`). Offline, tfds's downloader retries for minutes
       before it fails, so every local copy is tried first.
* "digits": scikit-learn's bundled 8x8 digits (1797 images, values 0..16),
  always available offline. Split by a fixed permutation
  (`numpy.random.RandomState(0)`, whose stream numpy keeps frozen): the first
  1437 permuted images (80%) train, the remaining 360 test.

When no source works, `DatasetNotFoundError` (a `FileNotFoundError`) says
what was tried and exactly which files to put where, or what to install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from xsol.data import tfds_source
from xsol.data.idx import read_idx

__all__ = [
    "IMAGE_DATASETS",
    "IDX_FILENAMES",
    "DEBIAN_FASHION_MNIST_DIR",
    "DATA_DIR_ENV",
    "DatasetNotFoundError",
    "ImageData",
    "find_idx_files",
    "load_idx_dataset",
    "load_images",
]

#: Names `load_images` knows.
IMAGE_DATASETS = ("mnist", "fashion_mnist", "digits")

#: Standard IDX file names (without `.gz`), by role.
IDX_FILENAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Where Debian's `dataset-fashion-mnist` package installs its files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: Environment variable naming a directory of local datasets.
DATA_DIR_ENV = "XSOL_DATA_DIR"

_DIGITS_TRAIN = 1437  # 80% of 1797
_DIGITS_SEED = 0


class DatasetNotFoundError(FileNotFoundError):
    """No source could provide the requested dataset; the message says how to fix it."""


class ImageData(NamedTuple):
    """A train/test image classification split (a 4-tuple).

    Attributes:
      x_train: uint8 images, (n_train, H, W) or (n_train, H*W).
      y_train: int32 labels, (n_train,).
      x_test: uint8 images, (n_test, H, W) or (n_test, H*W).
      y_test: int32 labels, (n_test,).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    if key not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; known: {', '.join(IMAGE_DATASETS)}")
    return key


def _subfolders(name: str) -> list[str]:
    return [name] + ([name.replace("_", "-")] if "_" in name else [])


def _find_one(directory: Path, base: str) -> Path | None:
    # Standard names, plain or gzipped, plus the common "train-images.idx3-ubyte" spelling.
    dotted = base.replace("-idx", ".idx", 1)
    for cand in (base, base + ".gz", dotted, dotted + ".gz"):
        p = directory / cand
        if p.is_file():
            return p
    return None


def find_idx_files(directory: str | os.PathLike, name: str | None = None) -> dict[str, Path] | None:
    """Looks for the four standard IDX files of a dataset.

    Args:
      directory: where to look.
      name: the dataset name; when given, `<directory>/<name>/` (and the
        hyphenated spelling, e.g. `fashion-mnist/`) is searched before
        `<directory>` itself.

    Returns:
      A dict role -> path (roles as in `IDX_FILENAMES`) from the first folder
      holding all four files, or None when no folder holds any of them.

    Raises:
      DatasetNotFoundError: a folder holds some of the files but not all (the
        message lists the missing ones), which is a mistake worth reporting
        rather than silently using another source.
    """
    root = Path(directory)
    folders = [root / sub for sub in _subfolders(name)] if name else []
    folders.append(root)
    for folder in folders:
        if not folder.is_dir():
            continue
        found = {role: _find_one(folder, base) for role, base in IDX_FILENAMES.items()}
        present = {r: p for r, p in found.items() if p is not None}
        if len(present) == len(IDX_FILENAMES):
            return present
        if present:
            missing = [IDX_FILENAMES[r] + "[.gz]" for r in IDX_FILENAMES if r not in present]
            raise DatasetNotFoundError(
                f"incomplete IDX dataset in {folder}: found "
                f"{', '.join(p.name for p in present.values())} but not {', '.join(missing)}"
            )
    return None


def load_idx_dataset(files: dict[str, Path], *, flatten: bool = False) -> ImageData:
    """Reads the four IDX files of an image dataset and checks they agree.

    Args:
      files: role -> path, as returned by `find_idx_files`.
      flatten: return images as rows (n, H*W) instead of (n, H, W).

    Returns:
      An `ImageData` with uint8 images and int32 labels.

    Raises:
      ValueError: a malformed file, images that are not 3-D uint8, labels
        that are not 1-D, or image and label counts that differ.
    """
    out = []
    for split in ("train", "test"):
        ip, lp = files[f"{split}_images"], files[f"{split}_labels"]
        x, y = read_idx(ip), read_idx(lp)
        if x.ndim != 3 or x.dtype != np.uint8:
            raise ValueError(f"{ip}: expected uint8 images of shape (n, H, W), got {x.dtype} {x.shape}")
        if y.ndim != 1:
            raise ValueError(f"{lp}: expected labels of shape (n,), got shape {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"{ip} holds {len(x)} images but {lp} holds {len(y)} labels")
        if len(x) == 0:
            raise ValueError(f"{ip}: the file holds 0 images; expected at least one "
                             f"({split} split)")
        if flatten:
            x = x.reshape(len(x), -1)
        out += [x, y.astype(np.int32, copy=False)]
    return ImageData(*out)


def _load_digits(flatten: bool) -> ImageData:
    from sklearn.datasets import load_digits  # noqa: PLC0415 (keeps import light)

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)  # values are integers 0..16
    labels = bunch.target.astype(np.int32)
    if flatten:
        images = images.reshape(len(images), -1)
    perm = np.random.RandomState(_DIGITS_SEED).permutation(len(images))
    tr, te = perm[:_DIGITS_TRAIN], perm[_DIGITS_TRAIN:]
    return ImageData(images[tr], labels[tr], images[te], labels[te])


def _not_found_message(name: str, tried: list[str]) -> str:
    files = ", ".join(f + ".gz" for f in IDX_FILENAMES.values())
    sub = "/".join(_subfolders(name))
    lines = [
        f"dataset {name!r} is not available. Tried:",
        *(f"  - {t}" for t in tried),
        "To make it available, do one of:",
        f"  1. put the four IDX files ({files}; plain or gzipped) in a directory D, "
        f"directly or in D/{sub}/, then pass data_dir=D or set the environment "
        f"variable {DATA_DIR_ENV}=D;",
        f"  2. {tfds_source.INSTALL_HINT} (or the 'data' extra of xsol); it downloads "
        f"{name!r} on first use, which needs network access;",
    ]
    if name == "fashion_mnist":
        lines.append(
            "  3. on Debian/Ubuntu: apt-get install dataset-fashion-mnist "
            f"(installs the files in {DEBIAN_FASHION_MNIST_DIR})."
        )
    return "\n".join(lines)


def _from_tfds(key: str, flatten: bool, tried: list[str], *, download: bool) -> ImageData | None:
    """The dataset from tfds (prepared only, or allowed to download), else None with ``tried`` noted."""
    try:
        x_tr, y_tr, x_te, y_te = tfds_source.load_tfds_images(key, download=download)
    except Exception as e:  # missing, not prepared, or cannot download/prepare
        what = "download" if download else "prepared data"
        tried.append(f"tensorflow-datasets ({what}): {type(e).__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''}")
        return None
    if flatten:
        x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    return ImageData(x_tr, y_tr, x_te, y_te)


def load_images(
    name: str, data_dir: str | os.PathLike | None = None, *, flatten: bool = False
) -> ImageData:
    """Loads an image classification dataset as numpy arrays.

    Args:
      name: "mnist", "fashion_mnist" (or "fashion-mnist") or "digits".
      data_dir: a directory with the dataset's IDX files (directly or in a
        `<name>/` subfolder); None uses the environment variable
        `XSOL_DATA_DIR` when set. Ignored for "digits".
      flatten: return images as rows: (n, 784) for the 28x28 datasets,
        (n, 64) for digits.

    Returns:
      `ImageData(x_train, y_train, x_test, y_test)`, a 4-tuple of numpy arrays.
      Images are uint8 of shape (n, 28, 28) (MNIST: 60000 train, 10000 test),
      or (n, 8, 8) with values 0..16 for digits (1437 train, 360 test);
      labels are int32 class ids 0..9.

    Raises:
      ValueError: an unknown name (the message lists the known ones), or
        malformed IDX files.
      DatasetNotFoundError: no source has the dataset; the message lists what
        was tried and how to provide it.
    """
    key = _canonical(name)
    if key == "digits":
        return _load_digits(flatten)

    tried: list[str] = []
    directory = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if directory is not None:
        files = find_idx_files(directory, key)
        if files is not None:
            return load_idx_dataset(files, flatten=flatten)
        origin = "data_dir" if data_dir is not None else DATA_DIR_ENV
        why = "no IDX files there" if os.path.isdir(directory) else "no such directory"
        tried.append(f"local IDX files in {directory} ({origin}): {why}")
    else:
        tried.append(f"local IDX files: no data_dir given and {DATA_DIR_ENV} is not set")

    # Local copies before any download: tfds's prepared data, then Debian's
    # package; only then may tfds download (offline, its downloader retries
    # for minutes before it gives up).
    found = _from_tfds(key, flatten, tried, download=False)
    if found is not None:
        return found
    if key == "fashion_mnist":
        files = (find_idx_files(DEBIAN_FASHION_MNIST_DIR)
                 if os.path.isdir(DEBIAN_FASHION_MNIST_DIR) else None)
        if files is not None:
            return load_idx_dataset(files, flatten=flatten)
        tried.append(f"Debian package dataset-fashion-mnist: {DEBIAN_FASHION_MNIST_DIR} not found")
    tfds_missing = any("tensorflow-datasets" in t and "TfdsUnavailableError" in t for t in tried)
    if not tfds_missing and tfds_source.downloads_allowed():
        found = _from_tfds(key, flatten, tried, download=True)
        if found is not None:
            return found

    raise DatasetNotFoundError(_not_found_message(key, tried))
