"""load_images: local IDX directories, XSOL_DATA_DIR, tfds missing, Debian, digits, errors."""

import os
import sys

import numpy as np
import pytest

from xsol.data import DatasetNotFoundError, images, load_images, write_idx
from xsol.data.idx import iter_idx_chunks


def _fake_dataset(seed, n_train=12, n_test=5):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )


def _write_dataset(directory, data, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for role, arr in zip(images.IDX_FILENAMES, data):
        write_idx(directory / (images.IDX_FILENAMES[role] + suffix), arr)


def _check(loaded, data, flatten=False):
    assert len(loaded) == 4
    for got, want in zip(loaded, data):
        if flatten and want.ndim == 3:
            want = want.reshape(len(want), -1)
        np.testing.assert_array_equal(got, want)
    assert loaded[0].dtype == np.uint8 and loaded[2].dtype == np.uint8
    assert loaded[1].dtype == np.int32 and loaded[3].dtype == np.int32


@pytest.fixture
def no_other_sources(monkeypatch, tmp_path):
    """No tfds, no Debian package, no XSOL_DATA_DIR."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "no-such-debian-dir"))
    monkeypatch.delenv("XSOL_DATA_DIR", raising=False)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["flat", "subfolder"])
def test_load_from_data_dir(tmp_path, no_other_sources, gz, layout):
    data = _fake_dataset(0)
    _write_dataset(tmp_path / "mnist" if layout == "subfolder" else tmp_path, data, gz)
    _check(load_images("mnist", tmp_path), data)
    _check(load_images("mnist", str(tmp_path), flatten=True), data, flatten=True)
    assert load_images("mnist", tmp_path, flatten=True).x_train.shape == (12, 784)


def test_subfolder_wins_and_hyphen_spelling(tmp_path, no_other_sources):
    flat, fashion = _fake_dataset(1), _fake_dataset(2)
    _write_dataset(tmp_path, flat)
    _write_dataset(tmp_path / "fashion-mnist", fashion)
    _check(load_images("fashion_mnist", tmp_path), fashion)
    _check(load_images("Fashion-MNIST", tmp_path), fashion)
    _check(load_images("mnist", tmp_path), flat)  # files directly in the dir serve any name


def test_load_via_environment_variable(tmp_path, no_other_sources, monkeypatch):
    data = _fake_dataset(3)
    _write_dataset(tmp_path / "fashion_mnist", data)
    monkeypatch.setenv("XSOL_DATA_DIR", str(tmp_path))
    _check(load_images("fashion_mnist"), data)
    # An explicit data_dir takes precedence over the variable.
    other = _fake_dataset(4)
    _write_dataset(tmp_path / "elsewhere", other)
    _check(load_images("fashion_mnist", tmp_path / "elsewhere"), other)


def test_dotted_file_names(tmp_path, no_other_sources):
    data = _fake_dataset(5)
    for base, arr in zip(images.IDX_FILENAMES.values(), data):
        write_idx(tmp_path / base.replace("-idx", ".idx"), arr)
    _check(load_images("mnist", tmp_path), data)


def test_error_when_nothing_is_available(tmp_path, no_other_sources):
    with pytest.raises(DatasetNotFoundError) as e:
        load_images("fashion_mnist", tmp_path)
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for needle in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        str(tmp_path),
        "fashion_mnist/fashion-mnist/",
        "XSOL_DATA_DIR",
        "pip install tensorflow-datasets",
        "apt-get install dataset-fashion-mnist",
        "tensorflow-datasets (prepared data): TfdsUnavailableError",
    ]:
        assert needle in msg, needle


def test_error_mentions_env_var_when_unset_and_no_apt_for_mnist(no_other_sources):
    with pytest.raises(DatasetNotFoundError) as e:
        load_images("mnist")
    msg = str(e.value)
    assert "XSOL_DATA_DIR is not set" in msg and "pip install tensorflow-datasets" in msg
    assert "apt-get" not in msg


def test_incomplete_directory_is_reported(tmp_path, no_other_sources):
    data = _fake_dataset(6)
    _write_dataset(tmp_path, data)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetNotFoundError, match=r"incomplete .* not t10k-labels-idx1-ubyte\[\.gz\]"):
        load_images("mnist", tmp_path)


def test_mismatched_counts(tmp_path, no_other_sources):
    x, y, xt, yt = _fake_dataset(7)
    _write_dataset(tmp_path, (x, y[:-1], xt, yt))
    with pytest.raises(ValueError, match="holds 12 images but .* holds 11 labels"):
        load_images("mnist", tmp_path)


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="unknown image dataset 'cifar10'; known: mnist, fashion_mnist, digits"):
        load_images("cifar10")


def test_digits_split_is_deterministic():
    a = load_images("digits")
    b = load_images("digits", flatten=True)
    assert a.x_train.shape == (1437, 8, 8) and a.x_test.shape == (360, 8, 8)
    assert b.x_train.shape == (1437, 64) and b.x_test.shape == (360, 64)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int32
    assert a.x_train.max() == 16 and a.x_train.min() == 0
    np.testing.assert_array_equal(a.x_train.reshape(1437, -1), b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert set(np.unique(a.y_train)) == set(range(10))
    from sklearn.datasets import load_digits

    full = load_digits()
    perm = np.random.RandomState(0).permutation(1797)
    np.testing.assert_array_equal(a.y_test, full.target[perm[1437:]])


# Reading through the real tensorflow-datasets, and falling back when it fails:
# tests/data/test_data_tfds.py.


@pytest.mark.skipif(
    not os.path.isdir(images.DEBIAN_FASHION_MNIST_DIR), reason="Debian dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    monkeypatch.delenv("XSOL_DATA_DIR", raising=False)
    x, y, xt, yt = load_images("fashion_mnist")
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert np.bincount(y).tolist() == [6000] * 10
    files = images.find_idx_files(images.DEBIAN_FASHION_MNIST_DIR)
    first = next(iter_idx_chunks(files["train_images"], 100))
    np.testing.assert_array_equal(first, x[:100])
