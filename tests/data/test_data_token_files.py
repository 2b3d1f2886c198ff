"""Token-id files (raw uint16/uint32 and .npy) streamed as next-token windows."""

import os
import subprocess
import sys

import numpy as np
import pytest

from xsol.data import (

    SizedBatches,

    TokenFileError,

    context_windows,

    held_out_cut,

    iter_token_file_windows,

    iter_token_windows,

    open_token_file,

    write_token_file,

)
from xsol.core.align import is_aligned

N = 200  # tokens per test file


def _ids(n=N, V=50, seed=0):
    return np.random.default_rng(seed).integers(0, V, n)


def _concat(batches):
    parts = list(batches)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), parts


@pytest.fixture(params=["uint16", "uint32", "npy"])
def token_file(request, tmp_path):
    """(path, dtype to open it with, the ids) for each layout."""
    ids = _ids()
    if request.param == "npy":
        path = tmp_path / "tokens.npy"
        np.save(path, ids.astype(np.int64))
        return path, None, ids
    path = tmp_path / "train.bin"
    ids.astype("<" + {"uint16": "u2", "uint32": "u4"}[request.param]).tofile(path)
    return path, request.param, ids


@pytest.mark.parametrize("k", [1, 2, 3, 6])
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_windows_match_context_windows(token_file, k, chunk):
    path, dtype, ids = token_file
    b = iter_token_file_windows(path, k, dtype=dtype, chunk_tokens=chunk, vocab_size=50)
    X, y, parts = _concat(b)
    Xr, yr = context_windows(ids, k)
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
    assert isinstance(b, SizedBatches)
    assert len(b) == len(parts) == -(-(N - k) // chunk)
    assert b.num_examples == N - k
    for x, yy in parts:
        assert len(x) <= chunk and x.shape == (len(yy), k)
        assert x.dtype == np.int32 and yy.dtype == np.int32
        assert is_aligned(x) and is_aligned(yy)
    # re-iterable: a second pass gives the same windows
    X2, y2, _ = _concat(b)
    np.testing.assert_array_equal(X2, Xr)
    np.testing.assert_array_equal(y2, yr)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_train_and_held_out_parts(token_file, k, chunk):
    path, dtype, ids = token_file
    cut = held_out_cut(N, 0.25, k)
    assert cut == N - 50
    got = {}
    for part, sl in (("train", ids[:cut]), ("held_out", ids[cut:]), ("all", ids)):
        b = iter_token_file_windows(path, k, dtype=dtype, part=part, held_out=0.25, chunk_tokens=chunk)
        X, y, parts = _concat(b)
        Xr, yr = context_windows(sl, k)
        np.testing.assert_array_equal(X, Xr)
        np.testing.assert_array_equal(y, yr)
        assert all(len(x) <= chunk for x, _ in parts)
        got[part] = X, y
    # no window crosses the cut: the training targets end at token cut - 1, the
    # held-out contexts start at token cut, and the K crossing windows are in neither
    (Xt, yt), (Xh, yh) = got["train"], got["held_out"]
    assert (len(yt), len(yh)) == (cut - k, N - cut - k)
    assert yt[-1] == ids[cut - 1] and Xh[0].tolist() == ids[cut:cut + k].tolist()


def test_windows_of_a_slice_and_of_plain_arrays():
    ids = _ids(101).astype(np.int64)
    X, y, _ = _concat(iter_token_windows(ids, 3, start=10, stop=90, chunk_tokens=9))
    Xr, yr = context_windows(ids[10:90], 3)
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
    X, y, _ = _concat(iter_token_windows(list(range(5)), 1))
    assert X.tolist() == [[0], [1], [2], [3]] and y.tolist() == [1, 2, 3, 4]


def test_open_token_file_maps_read_only(tmp_path):
    ids = _ids()
    path = tmp_path / "t.bin"
    ids.astype("<u2").tofile(path)
    m = open_token_file(path)
    assert isinstance(m, np.memmap) and m.ndim == 1 and not m.flags.writeable
    assert m.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(m, ids)
    ids.astype("<i4").tofile(path)
    np.testing.assert_array_equal(open_token_file(path, "int32"), ids)
    np.testing.assert_array_equal(open_token_file(path, np.uint32), ids)


@pytest.mark.parametrize("suffix", [".bin", ".npy"])
def test_write_round_trip_and_default_dtype(tmp_path, suffix):
    path = tmp_path / ("a" + suffix)
    small = _ids(1000, V=65536)
    small[3] = 65535
    assert write_token_file(path, small) == 1000
    m = open_token_file(path)
    assert m.dtype.newbyteorder("=") == np.uint16
    np.testing.assert_array_equal(m, small)
    if suffix == ".bin":
        assert os.path.getsize(path) == 2000

    big = small.copy()
    big[7] = 65536
    assert write_token_file(path, big) == 1000  # replaces the file
    m = open_token_file(path, None if suffix == ".npy" else "uint32")
    assert m.dtype.newbyteorder("=") == np.uint32
    np.testing.assert_array_equal(m, big)

    write_token_file(path, [1, 2, 3], dtype="int32")
    m = open_token_file(path, "int32")
    assert m.dtype.newbyteorder("=") == np.int32 and m.tolist() == [1, 2, 3]
    assert sorted(os.listdir(tmp_path)) == ["a" + suffix]  # no temporary file left


def test_write_refuses_bad_ids_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "t.bin"
    write_token_file(path, [1, 2, 3])
    with pytest.raises(TokenFileError, match=r"id -1 at position 1 .*uint16"):
        write_token_file(path, [5, -1, 2])
    with pytest.raises(TokenFileError, match=r"id 70000 at position 2 does not fit in uint16"):
        write_token_file(path, [5, 1, 70000], dtype="uint16")
    with pytest.raises(TokenFileError, match="does not fit in uint32"):
        write_token_file(path, [2**32])
    with pytest.raises(TokenFileError, match="integers"):
        write_token_file(path, [1.5, 2.0])
    with pytest.raises(TokenFileError, match="1-D"):
        write_token_file(path, [[1, 2]])
    with pytest.raises(TokenFileError, match="no ids"):
        write_token_file(path, [])
    with pytest.raises(TokenFileError, match="unknown token dtype 'int8'"):
        write_token_file(path, [1], dtype="int8")
    assert open_token_file(path).tolist() == [1, 2, 3]
    assert os.listdir(tmp_path) == ["t.bin"]


def test_id_out_of_vocabulary_names_file_and_offset(tmp_path):
    ids = _ids(1000, V=50)
    ids[537] = 50  # in the 6th chunk of 100 windows
    ids[900] = 77
    path = tmp_path / "train.bin"
    ids.astype("<u2").tofile(path)
    b = iter_token_file_windows(path, 2, chunk_tokens=100, vocab_size=50)
    seen = 0
    with pytest.raises(TokenFileError) as e:
        for x, _ in b:
            seen += len(x)
    msg = str(e.value)
    assert str(path) in msg and e.value.path == str(path)
    assert "id 50 at token offset 537, byte offset 1074" in msg
    assert "[0, 50)" in msg and "vocab_size=50" in msg
    assert seen == 500  # the first five chunks were yielded

    # the offset counts from the file's start, not from the held-out cut
    b = iter_token_file_windows(path, 2, part="held_out", held_out=0.2, chunk_tokens=30, vocab_size=50)
    with pytest.raises(TokenFileError, match=r"id 77 at token offset 900, byte offset 1800"):
        list(b)


def test_id_out_of_range_in_npy_and_arrays(tmp_path):
    ids = _ids(300, V=50).astype(np.int32)
    ids[250] = -3
    path = tmp_path / "t.npy"
    np.save(path, ids)
    # 128-byte .npy header + 4 bytes * 250
    with pytest.raises(TokenFileError, match=r"t\.npy: token id -3 at token offset 250, byte offset 1128"):
        list(iter_token_file_windows(path, 1, chunk_tokens=64))
    with pytest.raises(TokenFileError, match=r"^token id -3 at token offset 250 is outside \[0, 2\d+\)"):
        list(iter_token_windows(ids, 1, chunk_tokens=64))
    with pytest.raises(TokenFileError, match=r"^mine: token id 1099511627776 at token offset 3 is outside"):
        list(iter_token_windows(np.array([1, 2, 3, 2**40, 4], np.int64), 1, source="mine"))
    big = np.array([1, 2, 3, 2**31, 4], np.uint32)
    with pytest.raises(TokenFileError, match="2147483648 at token offset 3"):
        list(iter_token_windows(big, 1))


def test_raw_size_not_a_multiple_of_the_item_size(tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\x01\x00\x02\x00\x03")
    with pytest.raises(TokenFileError, match=r"odd\.bin: 5 bytes is not a multiple of 2 bytes"):
        open_token_file(path)
    path.write_bytes(b"\x01\x00\x02\x00\x03\x00")
    with pytest.raises(TokenFileError, match=r"6 bytes is not a multiple of 4 bytes.*written as uint16"):
        open_token_file(path, "uint32")


def test_bad_paths_and_dtypes(tmp_path):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(TokenFileError, match=r"empty\.bin: the file is empty \(0 bytes\)"):
        open_token_file(empty)
    with pytest.raises(TokenFileError, match="is a directory") as e:
        open_token_file(tmp_path)
    assert e.value.path == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        open_token_file(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        list(iter_token_file_windows(tmp_path / "missing.bin", 1))
    ok = tmp_path / "ok.bin"
    ok.write_bytes(b"\x00" * 8)
    with pytest.raises(TokenFileError, match=r"ok\.bin: unknown token dtype 'float32'"):
        open_token_file(ok, "float32")
    with pytest.raises(TokenFileError, match="unknown token dtype 'nonsense'"):
        open_token_file(ok, "nonsense")


def test_bad_npy_files(tmp_path):
    floats = tmp_path / "f.npy"
    np.save(floats, np.array([1.0, 2.0]))
    with pytest.raises(TokenFileError, match=r"f\.npy: holds dtype float64; expected integer"):
        open_token_file(floats)
    two_d = tmp_path / "m.npy"
    np.save(two_d, np.zeros((3, 2), np.int32))
    with pytest.raises(TokenFileError, match=r"m\.npy: holds an array of shape \(3, 2\); expected a 1-D"):
        open_token_file(two_d)
    zero = tmp_path / "z.npy"
    np.save(zero, np.zeros(0, np.uint16))
    with pytest.raises(TokenFileError, match=r"z\.npy: holds 0 tokens"):
        open_token_file(zero)
    ints = tmp_path / "i.npy"
    np.save(ints, np.arange(5, dtype=np.int64))
    assert open_token_file(ints, "int64").tolist() == list(range(5))
    with pytest.raises(TokenFileError, match=r"i\.npy: holds dtype int64 but dtype='uint16'"):
        open_token_file(ints, "uint16")
    raw = tmp_path / "raw.npy"
    raw.write_bytes(np.arange(4, dtype="<u2").tobytes())
    with pytest.raises(TokenFileError, match=r"raw\.npy: not a \.npy file"):
        open_token_file(raw)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, 0.0, 1.0, float("nan"), None, True, "0.1"])
def test_held_out_fraction_must_lie_strictly_inside(fraction):
    with pytest.raises(ValueError, match=r"held_out must be a fraction strictly between 0 and 1.*got"):
        held_out_cut(100, fraction)


def test_held_out_cut_rounding_and_small_parts(tmp_path):
    assert held_out_cut(100, 0.1) == 90
    assert held_out_cut(10, 0.25) == 8  # round(2.5) == 2, as split_tokens
    assert held_out_cut(10, 0.2, window=1) == 8
    with pytest.raises(ValueError, match=r"held-out part 2; each needs more than 2"):
        held_out_cut(10, 0.2, window=2)
    with pytest.raises(ValueError, match=r"training part would hold 1 tokens"):
        held_out_cut(10, 0.9)
    path = tmp_path / "t.bin"
    write_token_file(path, _ids(20))
    for fraction in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=f"got {fraction!r}"):
            iter_token_file_windows(path, 1, part="train", held_out=fraction)
    with pytest.raises(ValueError, match="part='held_out' needs held_out"):
        iter_token_file_windows(path, 1, part="held_out")
    with pytest.raises(ValueError, match="part must be"):
        iter_token_file_windows(path, 1, part="test", held_out=0.1)


def test_argument_errors(tmp_path):
    ids = np.arange(10)
    with pytest.raises(ValueError, match="window"):
        iter_token_windows(ids, 0)
    with pytest.raises(ValueError, match=r"window \(10\) must be smaller than the number of tokens \(10"):
        iter_token_windows(ids, 10)
    with pytest.raises(ValueError, match="chunk_tokens"):
        iter_token_windows(ids, 1, chunk_tokens=0)
    with pytest.raises(ValueError, match="stop <= len"):
        iter_token_windows(ids, 1, stop=11)
    with pytest.raises(ValueError, match="start must be"):
        iter_token_windows(ids, 1, start=-1)
    with pytest.raises(ValueError, match="integers"):
        iter_token_windows(ids.astype(float), 1)
    with pytest.raises(ValueError, match="vocab_size"):
        iter_token_windows(ids, 1, vocab_size=0)
    path = tmp_path / "short.bin"
    write_token_file(path, [1, 2])
    with pytest.raises(TokenFileError, match=r"short\.bin: holds 2 tokens; window 2"):
        iter_token_file_windows(path, 2)


def test_signed_ids_with_small_dtype_and_large_vocabulary():
    ids = np.array([1, 2, -5, 3], np.int16)
    with pytest.raises(TokenFileError, match="id -5 at token offset 2"):
        list(iter_token_windows(ids, 1, vocab_size=100_000))
    X, y, _ = _concat(iter_token_windows(np.array([1, 2, 300, 3], np.int16), 1, vocab_size=100_000))
    assert y.tolist() == [2, 300, 3]


def test_token_files_module_does_not_import_jax():
    code = (
        "import sys, types\n"
        "sys.modules['jax'] = None\n"
        "pkg = types.ModuleType('xsol'); pkg.__path__ = ['xsol']; sys.modules['xsol'] = pkg\n"
        "import xsol.data.token_files, xsol.core.align, xsol.data\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
