"""Batch streams: arrays, IDX files, chunked text, tfds; equal to the in-memory path."""

import io
import sys

import numpy as np
import pytest

from xsol.data import (

    Batches,

    SizedBatches,

    context_windows,

    iter_array_batches,

    iter_idx_batches,

    iter_text_windows,

    iter_tfds_batches,

    load_text,

    rebatch,

    tokenize,

    write_idx,

)

TEXT = (
    "It was the best of times, it was the worst of times; it was the age of wisdom, "
    "it was the age of foolishness... Don't   split\tO'Brien's  words!\n\n"
    "Ünïcödé wörds, tabs\tand\r\nnewlines — dashes -- and “quotes”.\n"
) * 3


def _cat(batches):
    xs, ys = zip(*batches)
    return np.concatenate(xs), np.concatenate(ys)


# --- arrays ----------------------------------------------------------------------


@pytest.mark.parametrize("bs", [1, 3, 10, 11, 100])
@pytest.mark.parametrize("drop", [False, True])
def test_array_batches(bs, drop):
    X, y = np.arange(20).reshape(10, 2), np.arange(10)
    b = iter_array_batches(X, y, bs, drop_remainder=drop)
    sizes = [len(xb) for xb, _ in b]
    full, rest = divmod(10, bs)
    assert sizes == [bs] * full + ([rest] if rest and not drop else [])
    assert len(b) == b.total == len(sizes)
    if sizes:
        Xc, yc = _cat(b)  # re-iterable: a second pass gives the same batches
        np.testing.assert_array_equal(Xc, X[: len(Xc)])
        np.testing.assert_array_equal(yc, y[: len(yc)])


def test_array_batches_errors():
    with pytest.raises(ValueError, match="same number of examples.*\\(5, 2\\).*\\(4,\\)"):
        iter_array_batches(np.zeros((5, 2)), np.zeros(4), 2)
    for bad in [0, -1, 2.0, None]:
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            iter_array_batches(np.zeros((5, 2)), np.zeros(5), bad)


def test_rebatch_irregular_blocks():
    blocks = [(np.arange(a, b), np.arange(a, b) * 10) for a, b in [(0, 3), (3, 3), (3, 4), (4, 12), (12, 13)]]
    out = list(rebatch(blocks, 5))
    assert [len(x) for x, _ in out] == [5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in out]), np.arange(13))
    np.testing.assert_array_equal(np.concatenate([y for _, y in out]), np.arange(13) * 10)
    assert [len(x) for x, _ in rebatch(blocks, 5, drop_remainder=True)] == [5, 5]


# --- IDX files -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("bs", [1, 4, 7, 50])
def test_idx_batches_equal_in_memory(tmp_path, suffix, bs):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (23, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 23).astype(np.uint8)
    write_idx(tmp_path / f"img{suffix}", x)
    write_idx(tmp_path / f"lab{suffix}", y)
    b = iter_idx_batches(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}", bs)
    assert isinstance(b, SizedBatches) and len(b) == -(-23 // bs) and b.num_examples == 23
    batches = list(b)
    assert all(len(xb) == bs for xb, _ in batches[:-1])
    Xc, yc = _cat(batches)
    assert Xc.shape == (23, 784) and Xc.dtype == np.uint8 and yc.dtype == np.int32
    np.testing.assert_array_equal(Xc, x.reshape(23, -1))
    np.testing.assert_array_equal(yc, y)
    Xs, _ = _cat(iter_idx_batches(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}", bs, flatten=False))
    np.testing.assert_array_equal(Xs, x)
    kept = list(iter_idx_batches(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}", bs, drop_remainder=True))
    assert sum(len(xb) for xb, _ in kept) == (23 // bs) * bs


def test_idx_batches_errors(tmp_path):
    write_idx(tmp_path / "img", np.zeros((5, 2, 2), np.uint8))
    write_idx(tmp_path / "lab", np.zeros(4, np.uint8))
    write_idx(tmp_path / "lab2d", np.zeros((5, 2), np.uint8))
    with pytest.raises(ValueError, match="holds 5 examples but .* holds 4 labels"):
        iter_idx_batches(tmp_path / "img", tmp_path / "lab", 2)
    with pytest.raises(ValueError, match="expected 1-D labels"):
        iter_idx_batches(tmp_path / "img", tmp_path / "lab2d", 2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        iter_idx_batches(tmp_path / "img", tmp_path / "lab", 0)
    # A truncated data section is reported when the stream reaches it.
    write_idx(tmp_path / "lab5", np.zeros(5, np.uint8))
    (tmp_path / "cut").write_bytes((tmp_path / "img").read_bytes()[:-3])
    b = iter_idx_batches(tmp_path / "cut", tmp_path / "lab5", 2)
    with pytest.raises(ValueError, match="truncated IDX file"):
        list(b)


# --- text ------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 17, 64, 10_000])
def test_text_windows_equal_in_memory(tmp_path, level, k, chunk):
    path = tmp_path / "t.txt"
    path.write_text(TEXT, encoding="utf-8")
    ids, vocab = tokenize(load_text(path), level, vocab_size=25)
    X, y = context_windows(ids, k)
    b = iter_text_windows(path, vocab, k, 13, chunk_chars=chunk)
    assert isinstance(b, Batches) and not hasattr(b, "__len__") and b.total is None
    batches = list(b)
    assert all(len(xb) == 13 for xb, _ in batches[:-1]) and 0 < len(batches[-1][0]) <= 13
    Xc, yc = _cat(batches)
    assert Xc.dtype == np.int32 and yc.dtype == np.int32
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(yc, y)


def test_text_windows_words_across_every_cut(tmp_path):
    # A text without repeated separators: every chunk size cuts some word.
    text = "alpha beta gamma delta's epsilon, zeta eta theta"
    ids, vocab = tokenize(text)
    X, y = context_windows(ids, 2)
    for chunk in range(1, len(text) + 2):
        Xc, yc = _cat(iter_text_windows(io.StringIO(text), vocab, 2, 4, chunk_chars=chunk))
        np.testing.assert_array_equal(Xc, X, err_msg=f"chunk={chunk}")
        np.testing.assert_array_equal(yc, y)


def test_text_windows_directory_and_embedded(tmp_path):
    (tmp_path / "a.txt").write_text("one two three", encoding="utf-8")
    (tmp_path / "b.txt").write_text("four five", encoding="utf-8")
    ids, vocab = tokenize(load_text(tmp_path))
    Xc, yc = _cat(iter_text_windows(tmp_path, vocab, 2, 3, chunk_chars=4))
    X, y = context_windows(ids, 2)
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(yc, y)
    # The embedded text (first 20k chars, for speed) through a file object.
    text = load_text()[:20_000]
    ids, vocab = tokenize(text, vocab_size=300)
    X, y = context_windows(ids, 2)
    Xc, yc = _cat(iter_text_windows(io.StringIO(text), vocab, 2, 1000, chunk_chars=777))
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(yc, y)


def test_file_object_streams_once():
    _, vocab = tokenize("a b c d")
    b = iter_text_windows(io.StringIO("a b c d"), vocab, 1, 2)
    assert len(list(b)) == 2
    with pytest.raises(RuntimeError, match="only once"):
        list(b)


def test_text_windows_drop_remainder(tmp_path):
    ids, vocab = tokenize(TEXT)
    n = len(ids) - 2
    kept = list(iter_text_windows(io.StringIO(TEXT), vocab, 2, 10, drop_remainder=True))
    assert all(len(xb) == 10 for xb, _ in kept) and len(kept) == n // 10


def test_text_windows_errors(tmp_path):
    _, vocab = tokenize("a b c d")
    for bad in [0, -2, 1.0]:
        with pytest.raises(ValueError, match="window must be a positive integer"):
            iter_text_windows(io.StringIO("a b"), vocab, bad, 4)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        iter_text_windows(io.StringIO("a b"), vocab, 1, 0)
    with pytest.raises(ValueError, match="chunk_chars must be a positive integer"):
        iter_text_windows(io.StringIO("a b"), vocab, 1, 4, chunk_chars=0)
    with pytest.raises(FileNotFoundError):
        iter_text_windows(tmp_path / "missing.txt", vocab, 1, 4)
    with pytest.raises(TypeError, match="vocab must be"):
        iter_text_windows(io.StringIO("a b"), {"a": 1}, 1, 4)
    with pytest.raises(ValueError, match="text is empty"):
        list(iter_text_windows(io.StringIO(""), vocab, 1, 4))
    with pytest.raises(ValueError, match=r"window \(3\) must be smaller than the number of tokens \(3\)"):
        list(iter_text_windows(io.StringIO("a b c"), vocab, 3, 4))


# --- tfds: its absence here; the real library in test_data_tfds.py ---------------


def test_tfds_batches_without_tfds(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match="pip install tensorflow-datasets"):
        iter_tfds_batches("mnist", "train", 3)


# --- the same statistics as the in-memory path ------------------------------------


def test_streamed_token_statistics_equal_fit_explicit(tmp_path):
    xsol = pytest.importorskip("xsol")
    if not hasattr(xsol, "accumulate"):
        pytest.skip("xsol.accumulate not available")
    path = tmp_path / "t.txt"
    path.write_text(TEXT * 4, encoding="utf-8")
    ids, vocab = tokenize(load_text(path), vocab_size=40)
    X, y = context_windows(ids, 2)
    V = len(vocab)
    want = xsol.fit_explicit(X, y, V, vocab_size=V).stats
    got = xsol.accumulate(iter_text_windows(path, vocab, 2, 64, chunk_chars=29), V, vocab_size=V, progress=False)
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_streamed_pixel_statistics_equal_fit_explicit(tmp_path):
    xsol = pytest.importorskip("xsol")
    if not hasattr(xsol, "accumulate"):
        pytest.skip("xsol.accumulate not available")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 300).astype(np.uint8)
    write_idx(tmp_path / "img.gz", x)
    write_idx(tmp_path / "lab.gz", y)
    want = xsol.fit_explicit(x.reshape(300, -1), y.astype(np.int32), 10).stats
    got = xsol.accumulate(iter_idx_batches(tmp_path / "img.gz", tmp_path / "lab.gz", 64), 10, progress=False)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
