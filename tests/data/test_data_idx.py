"""IDX reading and writing: round trips, chunked reads, corrupt files."""

import gzip
import struct

import numpy as np
import pytest

from xsol.data import idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype(tmp_path, dtype, suffix):
    a = _sample(dtype, (7, 5, 3))
    p = tmp_path / f"a-idx3{suffix}"
    idx.write_idx(p, a)
    raw = p.read_bytes()
    if suffix:
        assert raw[:2] == b"\x1f\x8b"
        raw = gzip.decompress(raw)
    # The header is exactly as the format says, and the data big-endian.
    assert raw[:4] == bytes([0, 0, CODES[dtype], 3])
    assert struct.unpack(">3I", raw[4:16]) == (7, 5, 3)
    assert raw[16:] == a.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    b = idx.read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable and b.flags.c_contiguous
    assert b.ctypes.data % 64 == 0


@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 0, 3), (2, 1, 2, 3)])
def test_round_trip_shapes(tmp_path, shape):
    a = _sample(np.int16, shape, seed=1)
    idx.write_idx(tmp_path / "s", a)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "s"), a)
    h = idx.read_idx_header(tmp_path / "s")
    assert h.shape == shape and h.offset == 4 + 4 * len(shape) and not h.gzipped


def test_gzip_is_detected_from_content_not_name(tmp_path):
    a = _sample(np.uint8, (4, 4))
    idx.write_idx(tmp_path / "x.gz", a)
    (tmp_path / "x-plain-name").write_bytes((tmp_path / "x.gz").read_bytes())
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "x-plain-name"), a)
    assert idx.read_idx_header(tmp_path / "x-plain-name").gzipped


def test_bool_is_written_as_uint8(tmp_path):
    idx.write_idx(tmp_path / "b", np.array([True, False, True]))
    b = idx.read_idx(tmp_path / "b")
    assert b.dtype == np.uint8 and b.tolist() == [1, 0, 1]


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.uint16, np.complex64])
def test_write_rejects_unsupported_dtype(tmp_path, dtype):
    with pytest.raises(ValueError, match="cannot write dtype"):
        idx.write_idx(tmp_path / "z", np.zeros(3, dtype=dtype))


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_iter_idx_chunks_equals_read_idx(tmp_path, suffix, chunk):
    a = _sample(np.float32, (10, 2, 3), seed=2)
    p = tmp_path / f"c{suffix}"
    idx.write_idx(p, a)
    parts = list(idx.iter_idx_chunks(p, chunk))
    assert [len(q) for q in parts] == [min(chunk, 10 - i) for i in range(0, 10, chunk)]
    assert all(q.dtype == np.float32 and q.dtype.isnative for q in parts)
    np.testing.assert_array_equal(np.concatenate(parts), a)


def test_iter_idx_chunks_bad_chunk_size(tmp_path):
    idx.write_idx(tmp_path / "c", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        list(idx.iter_idx_chunks(tmp_path / "c", 0))


# --- corrupt files -----------------------------------------------------------


def _write(tmp_path, name, data, gz=False):
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if gz else data)
    return p


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic(tmp_path, gz):
    p = _write(tmp_path, "bad", b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc", gz)
    with pytest.raises(ValueError, match="not an IDX file") as e:
        idx.read_idx(p)
    assert str(p) in str(e.value) and "01 02 08 01" in str(e.value)


def test_text_file_is_not_idx(tmp_path):
    p = _write(tmp_path, "readme.txt", b"hello world\n")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx.read_idx(p)


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unknown_dtype_code(tmp_path, code):
    p = _write(tmp_path, "bad", bytes([0, 0, code, 1]) + struct.pack(">I", 1) + b"\x00" * 8)
    with pytest.raises(ValueError, match=f"unknown IDX dtype code 0x{code:02X}") as e:
        idx.read_idx(p)
    assert "0x08 (uint8)" in str(e.value) and "0x0E (float64)" in str(e.value)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_header(tmp_path, gz):
    p = _write(tmp_path, "short", b"\x00\x00", gz)
    with pytest.raises(ValueError, match="truncated IDX file: expected 4 bytes"):
        idx.read_idx(p)
    p = _write(tmp_path, "short2", b"\x00\x00\x08\x03" + struct.pack(">I", 5), gz)
    with pytest.raises(ValueError, match=r"expected 12 bytes of header \(3 dimension sizes\), found 4"):
        idx.read_idx(p)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path, gz):
    a = _sample(np.int32, (4, 3))
    good = tmp_path / "good"
    idx.write_idx(good, a)
    p = _write(tmp_path, "trunc", good.read_bytes()[:-5], gz)
    with pytest.raises(ValueError, match=r"truncated IDX file: expected 48 bytes .* found 43") as e:
        idx.read_idx(p)
    assert str(p) in str(e.value)
    with pytest.raises(ValueError, match="truncated IDX file"):
        list(idx.iter_idx_chunks(p, 2))


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_data(tmp_path, gz):
    good = tmp_path / "good"
    idx.write_idx(good, np.arange(6, dtype=np.uint8))
    p = _write(tmp_path, "long", good.read_bytes() + b"\x00", gz)
    with pytest.raises(ValueError, match="longer than its header says: expected exactly 6"):
        idx.read_idx(p)
    with pytest.raises(ValueError, match="longer than its header says"):
        list(idx.iter_idx_chunks(p, 4))


def test_truncated_gzip_stream(tmp_path):
    good = tmp_path / "good.gz"
    idx.write_idx(good, _sample(np.uint8, (50, 50)), compresslevel=0)
    p = _write(tmp_path, "cut.gz", good.read_bytes()[:-100])
    with pytest.raises(ValueError) as e:
        idx.read_idx(p)
    assert str(p) in str(e.value)


def test_files_name_themselves_in_errors(tmp_path):
    import struct

    from xsol.data import read_idx, write_idx

    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 10**9, 1000, 1000)
                  + b"\0" * 100)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated.*header declares"):
        read_idx(p)
    with pytest.raises(ValueError, match="is a directory; expected an IDX file"):
        read_idx(tmp_path)
    write_idx(p, np.zeros((0, 4, 4), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(0, np.uint8))
    for split in ("t10k",):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.zeros(2, np.uint8))
    from xsol.data import load_images

    with pytest.raises(ValueError, match="holds 0 images"):
        load_images("mnist", data_dir=tmp_path)
