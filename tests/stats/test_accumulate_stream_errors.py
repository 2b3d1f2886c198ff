"""A failing source keeps what was counted; resuming gives the uninterrupted result."""

import itertools

import numpy as np
import pytest

import xsol
from xsol.stats.accumulation import BatchError


def _batches(seed=0, n=6, B=50, M=8):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 5, (B, M)).astype(np.float32), rng.integers(0, 3, B))
            for _ in range(n)]


def _ids(seed=0, n=6, B=40):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 20, (B, 2)), rng.integers(0, 20, B)) for _ in range(n)]


@pytest.mark.parametrize("make,kw", [(_batches, {}), (_ids, {"vocab_size": 20})])
def test_source_failure_keeps_the_counts_and_resumes_exactly(make, kw):
    batches = make()
    N = 3 if not kw else 20

    def failing():
        yield from batches[:4]
        raise OSError("disk went away")

    with pytest.raises(BatchError, match="batch 4: the data source failed: OSError") as e:
        xsol.accumulate(failing(), N, progress=False, **kw)
    assert e.value.batch_index == 4
    resumed = xsol.accumulate(batches[4:], N, state=e.value.stats, progress=False, **kw)
    whole = xsol.accumulate(batches, N, progress=False, **kw)
    for a, b in zip(resumed, whole):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert int(e.value.stats.num_examples) == sum(len(y) for _, y in batches[:4])


def test_failure_before_any_batch_has_no_stats():
    def broken():
        raise RuntimeError("cannot open")
        yield  # noqa: unreachable - makes this a generator

    with pytest.raises(BatchError, match="batch 0") as e:
        xsol.accumulate(broken(), 3, progress=False)
    assert e.value.stats is None


def test_limit_ends_an_infinite_stream():
    batches = _batches()
    endless = itertools.cycle(batches)
    got = xsol.accumulate(endless, 3, limit=len(batches), progress=False)
    ref = xsol.accumulate(batches, 3, progress=False)
    np.testing.assert_allclose(np.asarray(got.cooc), np.asarray(ref.cooc), rtol=1e-6)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="limit must be a positive"):
            xsol.accumulate(batches, 3, limit=bad, progress=False)


def test_truncated_idx_file_keeps_earlier_chunks(tmp_path):
    from xsol.data import iter_idx_batches, write_idx

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (1000, 4, 4)).astype(np.uint8)
    labels = rng.integers(0, 10, 1000).astype(np.uint8)
    write_idx(tmp_path / "x", images)
    write_idx(tmp_path / "y", labels)
    data = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(data[: 16 + 700 * 16])  # 700 of 1000 images
    with pytest.raises(BatchError) as e:
        xsol.accumulate(iter_idx_batches(tmp_path / "x", tmp_path / "y", 100), 10,
                        progress=False)
    assert e.value.stats is not None and int(e.value.stats.num_examples) >= 600
