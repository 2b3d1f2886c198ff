"""xsol's tfds path against the real tensorflow-datasets and TensorFlow, offline.

Nothing here reaches the network: every test runs with host name resolution
and connections to anything but the loopback address refused, tfds's GCS
look-ups off and its default data directory an empty temporary one. Data
comes from `tfds.testing.mock_data` (random examples of the real `mnist`,
`fashion_mnist`, `tiny_shakespeare` and `imdb_reviews` builders) or from
small builders defined here and prepared from local files in a `manual_dir`.
"""

import socket
import sys

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")  # several seconds, once for this module

import xsol  # noqa: E402
from xsol.data import (
    DatasetNotFoundError,
    TfdsUnavailableError,
    images,
    iter_text_chunks,
    iter_tfds_batches,
    load_images,
    load_text,
    read_idx,
    write_idx,
)
from xsol.data import tfds_source  # noqa: E402
from tensorflow_datasets.core import constants as tfds_constants  # noqa: E402
from tensorflow_datasets.core.download import downloader as tfds_downloader  # noqa: E402
from tensorflow_datasets.core.utils import gcs_utils  # noqa: E402

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", None}


# --- offline guard and tfds's default data directory -------------------------------


@pytest.fixture(scope="module", autouse=True)
def offline(tmp_path_factory):
    """Refuses name resolution and connections beyond loopback; records what was refused."""
    refused = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS:
            refused.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"network access is off in these tests ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL_HOSTS:
            refused.append(address[0])
            raise ConnectionRefusedError(f"network access is off in these tests ({address[0]})")
        return real_connect(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(gcs_utils, "_is_gcs_disabled", True)  # no gs://tfds-data look-ups
        # tfds reads its default data directory (TFDS_DATA_DIR) once, at import.
        mp.setattr(tfds_constants, "DATA_DIR", str(tmp_path_factory.mktemp("tfds_default")))
        mp.delenv("XSOL_DATA_DIR", raising=False)
        yield refused


@pytest.fixture
def default_data_dir(monkeypatch, tmp_path):
    """A fresh, empty tfds default data directory for one test."""
    d = tmp_path / "tfds_default"
    d.mkdir()
    monkeypatch.setattr(tfds_constants, "DATA_DIR", str(d))
    return d


# --- small builders prepared from local files --------------------------------------


class XsolDigitsIdx(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """scikit-learn's 8x8 digits, read from IDX files in the manual directory."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in manual_dir."

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep the files' order (tfds orders by key hash otherwise)
        )

    def _split_generators(self, dl_manager):
        d = dl_manager.manual_dir
        return {"train": self._generate_examples(d, "train"), "test": self._generate_examples(d, "t10k")}

    def _generate_examples(self, d, prefix):
        x = read_idx(d / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(d / f"{prefix}-labels-idx1-ubyte.gz")
        for i, (image, label) in enumerate(zip(x, y)):
            yield i, {"image": image[..., None], "label": int(label)}


class XsolTextFiles(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One example per *.txt file of the manual directory, in name order."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Put *.txt files in manual_dir."

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}), disable_shuffling=True
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(dl_manager.manual_dir)}

    def _generate_examples(self, d):
        for p in sorted(d.glob("*.txt")):
            yield p.name, {"text": p.read_text(encoding="utf-8")}


TEXTS = {
    "a.txt": "First Citizen:\nBefore we proceed any further, hear me speak.",
    "b.txt": "All:\nSpeak, speak. Grüße — “quoted”.",
    "c.txt": "First Citizen:\nYou are all resolved rather to die than to famish?",
}


def _prepare(builder_cls, data_dir, manual_dir):
    builder = builder_cls(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """A data_dir holding xsol_digits_idx, prepared from IDX files of load_images("digits")."""
    manual = tmp_path_factory.mktemp("digits_manual")
    data = load_images("digits")
    for role, arr in zip(images.IDX_FILENAMES, data):
        write_idx(manual / (images.IDX_FILENAMES[role] + ".gz"), arr.astype(np.uint8))
    data_dir = tmp_path_factory.mktemp("digits_data")
    _prepare(XsolDigitsIdx, data_dir, manual)
    return str(data_dir), data


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    """A data_dir holding xsol_text_files, prepared from TEXTS."""
    manual = tmp_path_factory.mktemp("text_manual")
    for name, text in TEXTS.items():
        (manual / name).write_text(text, encoding="utf-8")
    data_dir = tmp_path_factory.mktemp("text_data")
    _prepare(XsolTextFiles, data_dir, manual)
    return data_dir


def _cat(batches):
    xs, ys = zip(*batches)
    return np.concatenate(xs), np.concatenate(ys)


def _assert_stats_close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


# --- tfds.testing.mock_data: the real builders, random examples --------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_load_images_reads_tfds(name, tmp_path):
    with tfds.testing.mock_data(num_examples=23):
        x_ref, y_ref = _cat(tfds.as_numpy(tfds.load(name, split="train", as_supervised=True, batch_size=8)))
        data = load_images(name)
        flat = load_images(name, tmp_path / "no-idx-files-here", flatten=True)
    assert data.x_train.shape == data.x_test.shape == (23, 28, 28)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int32 and data.y_test.dtype == np.int32
    np.testing.assert_array_equal(data.x_train, x_ref[..., 0])
    np.testing.assert_array_equal(data.y_train, y_ref)
    assert set(np.unique(data.y_train)) <= set(range(10))
    assert flat.x_train.shape == (23, 784)
    np.testing.assert_array_equal(flat.x_train, data.x_train.reshape(23, -1))
    sol = xsol.fit_explicit(flat.x_train, flat.y_train, 10)
    assert np.asarray(sol.weights).shape == (784, 10)
    assert np.isfinite(np.asarray(sol.weights)).all()


def test_streamed_tfds_batches_equal_in_memory_fit():
    with tfds.testing.mock_data(num_examples=50):
        x, y, _, _ = tfds_source.load_tfds_images("mnist")
        batches = iter_tfds_batches("mnist", "train", 16)
        assert batches.total is None  # mock_data records no split sizes
        Xc, yc = _cat(batches)
        got = xsol.accumulate(batches, 10, progress=False)
        shaped = list(iter_tfds_batches("mnist", "train", 16, flatten=False, drop_remainder=True))
    assert [len(b) for b, _ in shaped] == [16, 16, 16] and shaped[0][0].shape == (16, 28, 28)
    assert Xc.dtype == np.uint8 and Xc.shape == (50, 784) and yc.dtype == np.int32
    np.testing.assert_array_equal(Xc, x.reshape(50, -1))
    np.testing.assert_array_equal(yc, y)
    _assert_stats_close(got, xsol.fit_explicit(x.reshape(50, -1), y, 10).stats)


@pytest.mark.parametrize("name", ["tiny_shakespeare", "imdb_reviews"])
def test_text_source_reads_tfds(name):
    with tfds.testing.mock_data(num_examples=5):
        ds = tfds.as_numpy(tfds.load(name, split="train", batch_size=2))
        want = "\n".join(t.decode("utf-8") for b in ds for t in b["text"])
        text = load_text(f"tfds:{name}")
        chunks = list(iter_text_chunks(name, 7))  # a bare known name works too
        with pytest.raises(KeyError, match="no feature 'content'"):
            load_text(f"tfds:{name}", feature="content")
    assert text == want and text.count("\n") >= 4
    assert "".join(chunks) == text and max(map(len, chunks)) <= 7


def test_whole_split_load_needs_no_recorded_size(monkeypatch):
    # Under mock_data tfds knows no split sizes; its batch_size=-1 would then
    # batch by sys.maxsize, which aborts the process in TensorFlow 2.21.
    monkeypatch.setattr(tfds_source, "CHUNK_EXAMPLES", 16)
    with tfds.testing.mock_data(num_examples=2 * 16 + 3):
        x, y, xt, yt = tfds_source.load_tfds_images("fashion_mnist")
        whole = tfds_source.load_tfds_images("fashion_mnist")
    assert x.shape == (35, 28, 28) and len(y) == len(x) == len(xt) == len(yt)
    np.testing.assert_array_equal(whole[0], x)


def test_empty_split_keeps_shape_and_dtype():
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, np.int64))).batch(4)
    x, y = tfds_source._concat_supervised(tfds, ds)
    assert x.shape == (0, 8, 8, 1) and x.dtype == np.uint8 and y.shape == (0,) and y.dtype == np.int64


# --- datasets prepared from local files (manual_dir), read back with data_dir ------


def test_prepared_images_read_back_exactly(digits_dir):
    data_dir, (x, y, xt, yt) = digits_dir
    got = tfds_source.load_tfds_images("xsol_digits_idx", data_dir=data_dir)
    for g, w in zip(got, (x, y, xt, yt)):
        np.testing.assert_array_equal(g, w)
    assert got[0].dtype == np.uint8 and got[1].dtype == np.int32 and got[0].shape == (1437, 8, 8)
    assert tfds_source.tfds_num_examples("xsol_digits_idx", "train", data_dir=data_dir) == 1437
    assert tfds_source.tfds_num_examples("xsol_digits_idx", "test[:50%]", data_dir=data_dir) == 180
    assert tfds_source.tfds_num_examples("xsol_digits_idx", "train") is None  # not in the default dir


def test_prepared_images_stream_into_accumulate(digits_dir):
    data_dir, (x, y, xt, yt) = digits_dir
    batches = iter_tfds_batches("xsol_digits_idx", "train", 200, data_dir=data_dir)
    assert len(batches) == 8 and batches.num_examples == 1437
    dropped = iter_tfds_batches("xsol_digits_idx", "train", 200, data_dir=data_dir, drop_remainder=True)
    assert len(dropped) == 7 and dropped.num_examples == 1400 and sum(len(b) for b, _ in dropped) == 1400
    X = x.reshape(len(x), -1)
    want = xsol.fit_explicit(X, y, 10)
    got = xsol.accumulate(batches, 10, progress=False, total=batches.total)
    _assert_stats_close(got, want.stats)
    acc = np.mean(np.argmax(xt.reshape(len(xt), -1) @ np.asarray(want.weights), axis=1) == yt)
    assert acc > 0.5  # the explicit solution on real digits, through tfds


def test_prepared_text_through_load_text(text_dir, monkeypatch):
    want = "\n".join(TEXTS[k] for k in sorted(TEXTS))
    assert tfds_source.load_tfds_text("xsol_text_files", data_dir=str(text_dir)) == want
    assert tfds_source.load_tfds_text("xsol_text_files", split="train[:1]", data_dir=str(text_dir)) == TEXTS["a.txt"]
    monkeypatch.setattr(tfds_constants, "DATA_DIR", str(text_dir))  # as TFDS_DATA_DIR would
    assert load_text("tfds:xsol_text_files") == want
    assert "".join(iter_text_chunks("tfds:xsol_text_files", 10)) == want


# --- process sharding ----------------------------------------------------------------


def test_shard_by_process_splits_between_processes(digits_dir, monkeypatch):
    import jax

    data_dir, (x, y, _, _) = digits_dir
    shares, stats = [], []
    for index in range(2):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        b = iter_tfds_batches("xsol_digits_idx", "train", 100, data_dir=data_dir, shard_by_process=True)
        assert b.num_examples == (719, 718)[index] and len(b) == 8
        shares.append(_cat(b))
        stats.append(xsol.accumulate(b, 10, progress=False))
        whole = iter_tfds_batches("xsol_digits_idx", "train", 100, data_dir=data_dir)
        assert whole.num_examples == 1437  # sharding only when asked
    X = np.concatenate([s[0] for s in shares])
    np.testing.assert_array_equal(X, x.reshape(len(x), -1))  # contiguous shares, in order
    np.testing.assert_array_equal(np.concatenate([s[1] for s in shares]), y)
    summed = [np.asarray(a) + np.asarray(b) for a, b in zip(*stats)]
    _assert_stats_close(summed, xsol.fit_explicit(X, y, 10).stats)


def test_split_for_process_with_explicit_process_args(digits_dir):
    data_dir, (x, _, _, _) = digits_dir
    parts = [tfds_source.split_for_process("train[:100]", process_index=i, process_count=3) for i in range(3)]
    sizes = [tfds_source.tfds_num_examples("xsol_digits_idx", p, data_dir=data_dir) for p in parts]
    assert sizes == [34, 33, 33]
    got = np.concatenate([_cat(iter_tfds_batches("xsol_digits_idx", p, 50, data_dir=data_dir))[0] for p in parts])
    np.testing.assert_array_equal(got, x[:100].reshape(100, -1))


# --- failures: the real library failing, and TensorFlow missing ---------------------


def _debian_fashion_mnist(monkeypatch, tmp_path):
    """Fashion-MNIST-shaped IDX files where load_images looks for Debian's package."""
    rng = np.random.default_rng(9)
    data = (
        rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 12).astype(np.uint8),
        rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, 5).astype(np.uint8),
    )
    deb = tmp_path / "deb"
    deb.mkdir()
    for role, arr in zip(images.IDX_FILENAMES, data):
        write_idx(deb / (images.IDX_FILENAMES[role] + ".gz"), arr)
    monkeypatch.setattr(images, "DEBIAN_FASHION_MNIST_DIR", str(deb))
    return data


def test_unprepared_dataset_without_downloads_falls_back(offline, default_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(tfds_source.DOWNLOAD_ENV, "0")
    assert not tfds_source.downloads_allowed()
    data = _debian_fashion_mnist(monkeypatch, tmp_path)
    before = len(offline)
    got = load_images("fashion_mnist")  # tfds: not prepared in the empty data dir
    for g, w in zip(got, data):
        np.testing.assert_array_equal(g, w)
    off = (r"is not prepared in tfds's default data directory and downloads are off "
           r"\(XSOL_TFDS_DOWNLOAD='0' or download=False\)")
    with pytest.raises(DatasetNotFoundError,
                       match=rf"tensorflow-datasets \(prepared data\): FileNotFoundError: .*'mnist' {off}") as e:
        load_images("mnist")
    assert "dataset-fashion-mnist" not in str(e.value)
    with pytest.raises(FileNotFoundError, match=f"'tiny_shakespeare' {off}"):
        load_text("tfds:tiny_shakespeare")
    with pytest.raises(FileNotFoundError, match=f"'mnist' is not prepared in {default_data_dir}"):
        list(iter_tfds_batches("mnist", "train", 8, data_dir=str(default_data_dir)))
    assert len(offline) == before  # nothing even looked up
    assert not any(default_data_dir.iterdir())


@pytest.mark.parametrize("value, allowed", [(None, True), ("1", True), ("0", False), (" Off ", False), ("no", False)])
def test_downloads_allowed_reads_the_environment(monkeypatch, value, allowed):
    if value is None:
        monkeypatch.delenv(tfds_source.DOWNLOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(tfds_source.DOWNLOAD_ENV, value)
    assert tfds_source.downloads_allowed() is allowed


def test_local_copies_come_before_a_download_that_fails(offline, default_data_dir, monkeypatch, tmp_path):
    # Downloads on, an empty data dir: tfds tries to download and the guard
    # refuses the host name look-ups. tfds's downloader would retry each file
    # 10 times with back-off; one try is enough here. The downloader is this
    # test's own, so that its threads are all done before the guard goes.
    from tensorflow_datasets.core.download import download_manager

    monkeypatch.delenv(tfds_source.DOWNLOAD_ENV, raising=False)
    monkeypatch.setattr(tfds_downloader, "MAX_RETRIES", 0)
    dl = tfds_downloader._Downloader()
    monkeypatch.setattr(download_manager, "get_downloader", lambda *a, **k: dl)
    data = _debian_fashion_mnist(monkeypatch, tmp_path)
    before = len(offline)
    try:
        got = load_images("fashion_mnist")  # the local Debian copy comes before any download
        for g, w in zip(got, data):
            np.testing.assert_array_equal(g, w)
        assert len(offline) == before
        with pytest.raises(DatasetNotFoundError,
                           match=r"tensorflow-datasets \(download\): ConnectionError") as e:
            load_images("mnist")
    finally:
        dl._executor.shutdown(wait=True)
    assert "storage.googleapis.com" in str(e.value) and "dataset-fashion-mnist" not in str(e.value)
    assert "storage.googleapis.com" in offline[before:]  # refused before any packet left


def test_tensorflow_is_kept_off_the_gpus():
    tfds_source.import_tfds()
    assert tf.config.get_visible_devices("GPU") == []  # JAX keeps them (a no-op on a CPU machine)


def test_tensorflow_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(TfdsUnavailableError, match="TensorFlow .* pip install tensorflow-datasets tensorflow"):
        iter_tfds_batches("mnist", "train", 3)
    with pytest.raises(TfdsUnavailableError, match="text source 'tfds:tiny_shakespeare' needs"):
        load_text("tfds:tiny_shakespeare")
    assert tfds_source.import_tfds(tensorflow=False) is tfds  # metadata look-ups do without
