"""Stream checkpoints: ``xsol.accumulate(..., checkpoint_dir=..., every=...)`` saves and resumes.

A run killed with SIGKILL mid-stream (twice, at random batches) and then
resumed gives exactly the statistics of one uninterrupted pass; checkpoints of
another run are refused, naming what differs.
"""

import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

import xsol
from xsol.data import Batches, iter_array_batches, iter_token_file_windows, write_token_file
from xsol.distributed import StreamCheckpointError

from counting_stream import Counting

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
V = 31

CHILD = r"""
import sys, time
import xsol
from xsol.data import iter_token_file_windows

path, ck, V = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = iter_token_file_windows(path, 2, vocab_size=V, chunk_tokens=200)


class Slow:
    # the same batches as `b`, announced on stdout one by one, slowly
    batch_size, num_examples, seekable = b.batch_size, b.num_examples, True

    def __len__(self):
        return len(b)

    def __iter__(self):
        return self.iter_from(0)

    def iter_from(self, k):
        for j, xy in enumerate(b.iter_from(k), k):
            print(j, flush=True)
            time.sleep(0.01)
            yield xy


xsol.accumulate(Slow(), V, vocab_size=V, progress=False, checkpoint_dir=ck, every=5)
print("finished", flush=True)
"""


def identical(a, b):
    return all(np.asarray(u).dtype == np.asarray(v).dtype and np.array_equal(u, v)
               for u, v in zip(a, b))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("resume") / "tokens.bin")
    write_token_file(path, np.random.default_rng(1).integers(0, V, 20_003), "uint16")
    return path


def windows(path):
    return iter_token_file_windows(path, 2, vocab_size=V, chunk_tokens=200)


def committed(ck) -> bool:
    """Whether ``ck`` holds a complete checkpoint (a step folder Orbax renamed into place)."""
    return os.path.isdir(ck) and any(n.isdigit() for n in os.listdir(ck))


def run_until_killed(tokens, ck, pick):
    """Starts the child; kills it with SIGKILL once it announces batch ``pick(start)`` (or
    the first batch after it with a complete checkpoint on disk), ``start`` being the batch
    it resumes at."""
    p = subprocess.Popen([sys.executable, "-c", CHILD, tokens, ck, str(V)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT))
    try:
        seen, target = [], None
        for line in p.stdout:
            if line.strip() == "finished":
                break
            seen.append(int(line))
            if len(seen) == 2:  # batch 0 (the shapes) and then where this run starts
                target = pick(seen[1])
            if target is not None and seen[-1] >= target and committed(ck):
                p.send_signal(signal.SIGKILL)
                break
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=60)
        p.stdout.close()
    assert p.returncode == -signal.SIGKILL, (p.returncode, seen)
    return seen


def test_killed_twice_mid_stream_then_resumed_is_exact(tokens, tmp_path):
    ck = str(tmp_path / "ck")
    total = len(windows(tokens))
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    first = run_until_killed(tokens, ck, lambda start: rnd.randint(12, total // 2))
    assert first[1] == 1  # nothing to resume: it counted from batch 1 on
    second = run_until_killed(tokens, ck, lambda start: rnd.randint(start + 7, total - 5))
    # the second run resumed from a checkpoint of the first (a multiple of every=5)
    assert second[0] == 0 and second[1] >= 5 and second[1] % 5 == 0, (first, second)
    assert second[1] <= first[-1] + 1
    stream = Counting(windows(tokens))
    resumed = xsol.accumulate(stream, V, vocab_size=V, progress=False, checkpoint_dir=ck,
                              every=5)
    position = total + 1 - stream.read  # it read batch 0, then from its position on
    assert position >= second[1] and position % 5 == 0, (first, second, stream.read)
    assert identical(resumed, xsol.accumulate(windows(tokens), V, vocab_size=V, progress=False))


def test_stopped_then_resumed_token_ids_and_dense(tmp_path, rng):
    X = rng.integers(0, 12, (3000, 3))
    y = rng.integers(0, 7, 3000)
    ref = xsol.accumulate(iter_array_batches(X, y, 64), 7, vocab_size=12, progress=False)
    ck = str(tmp_path / "ids")
    part = xsol.accumulate(iter_array_batches(X, y, 64), 7, vocab_size=12, progress=False,
                           checkpoint_dir=ck, every=4, limit=19)
    assert int(part.num_examples) == 19 * 64
    stream = Counting(iter_array_batches(X, y, 64))
    full = xsol.accumulate(stream, 7, vocab_size=12, progress=False, checkpoint_dir=ck, every=4)
    assert identical(full, ref)
    assert stream.read == 1 + len(stream) - 19  # batch 0 for the shapes, then a seek to 19

    Xd = rng.random((2500, 9)).astype(np.float32)
    ref = xsol.accumulate(iter_array_batches(Xd, y[:2500], 100), 7, progress=False)
    ck = str(tmp_path / "dense")
    xsol.accumulate(iter_array_batches(Xd, y[:2500], 100), 7, progress=False,
                    checkpoint_dir=ck, every=3, limit=11)
    full = xsol.accumulate(iter_array_batches(Xd, y[:2500], 100), 7, progress=False,
                           checkpoint_dir=ck, every=3)
    assert identical(full, ref)  # the same float64 additions in the same order
    assert isinstance(full.cooc, np.ndarray) and full.cooc.dtype == np.float64


def test_stream_without_seek_is_advanced(tmp_path, rng):
    X = rng.integers(0, 5, (900, 1))
    y = rng.integers(0, 3, 900)
    read = []

    def gen():
        for i in range(0, 900, 50):
            read.append(i // 50)
            yield X[i:i + 50], y[i:i + 50]

    ck = str(tmp_path / "ck")
    xsol.accumulate(gen(), 3, vocab_size=5, progress=False, checkpoint_dir=ck, every=2, limit=7)
    read.clear()
    got = xsol.accumulate(gen(), 3, vocab_size=5, progress=False, checkpoint_dir=ck, every=2)
    assert read == list(range(18))  # a plain generator is read through, not recounted
    ref = xsol.accumulate(iter_array_batches(X, y, 50), 3, vocab_size=5, progress=False)
    assert identical(got, ref)


def test_finished_run_reruns_to_the_same_statistics(tmp_path, rng):
    X = rng.integers(0, 8, (640, 2))
    y = rng.integers(0, 4, 640)
    ck = str(tmp_path / "ck")
    first = xsol.accumulate(iter_array_batches(X, y, 64), 4, vocab_size=8, progress=False,
                            checkpoint_dir=ck, every=3)
    stream = Counting(iter_array_batches(X, y, 64))
    again = xsol.accumulate(stream, 4, vocab_size=8, progress=False, checkpoint_dir=ck, every=3)
    assert identical(first, again) and stream.read == 1


def test_a_refused_batch_keeps_the_last_checkpoint(tmp_path, rng):
    X = rng.integers(0, 6, (1000, 2))
    y = rng.integers(0, 3, 1000)

    class Bad(Counting):  # the same stream with an id out of range in batch 7
        def iter_from(self, k):
            for i, (a, b) in enumerate(super().iter_from(k), k):
                if i == 7:
                    a = a.copy()
                    a[0, 0] = 99
                yield a, b

    ck = str(tmp_path / "ck")
    with pytest.raises(xsol.BatchError, match="batch 7"):
        xsol.accumulate(Bad(iter_array_batches(X, y, 50)), 3, vocab_size=6, progress=False,
                        checkpoint_dir=ck, every=3)
    stream = Counting(iter_array_batches(X, y, 50))
    got = xsol.accumulate(stream, 3, vocab_size=6, progress=False, checkpoint_dir=ck, every=3)
    assert stream.read == 1 + 20 - 6  # resumed at the checkpoint of batch 6
    assert identical(got, xsol.accumulate(iter_array_batches(X, y, 50), 3, vocab_size=6,
                                          progress=False))


# --- checkpoints of another run are refused -------------------------------------------------


@pytest.fixture
def written(tmp_path, rng):
    """A checkpoint of token ids (window 2, V=10, N=4) and one of dense features (M=6, l1)."""
    X = rng.integers(0, 10, (400, 2))
    y = rng.integers(0, 4, 400)
    Xd = rng.random((400, 6))
    ids, dense = str(tmp_path / "ids"), str(tmp_path / "dense")
    xsol.accumulate(iter_array_batches(X, y, 50), 4, vocab_size=10, progress=False,
                    checkpoint_dir=ids, every=2, limit=5, fingerprint="tokens v1")
    xsol.accumulate(iter_array_batches(Xd, y, 50), 4, progress=False, checkpoint_dir=dense,
                    every=2, limit=5)
    return dict(X=X, y=y, Xd=Xd, ids=ids, dense=dense)


@pytest.mark.parametrize("change, expected", [
    (dict(vocab_size=11), "vocabulary size (V): 10 in the checkpoint, 11 in this run"),
    (dict(num_classes=5), "number of classes (N): 4 in the checkpoint, 5 in this run"),
    (dict(window=1), "window (K): 2 in the checkpoint, 1 in this run"),
    (dict(fingerprint="tokens v2"), "data fingerprint: 'tokens v1' in the checkpoint, "
                                    "'tokens v2' in this run"),
    (dict(data=True), "first batch's contents (digest)"),
    (dict(batch_size=40), "number of batches: 8 in the checkpoint, 10 in this run"),
    (dict(state=True), "examples in the starting state: 0 in the checkpoint, 400 in this run"),
])
def test_token_checkpoint_of_another_run_is_refused(written, change, expected):
    X, y = written["X"], written["y"]
    if change.get("window") == 1:
        X = X[:, :1]
    if change.get("data"):
        X = (X + 1) % 10
    state = None
    if change.get("state"):
        state = xsol.accumulate(iter_array_batches(X, y, 50), 4, vocab_size=10, progress=False)
    batches = iter_array_batches(X, y, change.get("batch_size", 50))
    with pytest.raises(StreamCheckpointError) as e:
        xsol.accumulate(batches, change.get("num_classes", 4),
                        vocab_size=change.get("vocab_size", 10), progress=False, state=state,
                        checkpoint_dir=written["ids"], every=2,
                        fingerprint=change.get("fingerprint", "tokens v1"))
    msg = str(e.value)
    assert expected in msg, msg
    assert msg.startswith(f"refusing to resume from the stream checkpoint in {written['ids']}")
    assert "a new checkpoint_dir" in msg


@pytest.mark.parametrize("change, expected", [
    (dict(normalize="none"), "normalization: 'l1' in the checkpoint, 'none' in this run"),
    (dict(columns=5), "number of features (M): 6 in the checkpoint, 5 in this run"),
    (dict(ids=True), "kind of inputs: 'dense' in the checkpoint, 'ids' in this run"),
    (dict(fingerprint="x"), "data fingerprint: None in the checkpoint, 'x' in this run"),
])
def test_dense_checkpoint_of_another_run_is_refused(written, change, expected):
    Xd, y = written["Xd"][:, :change.get("columns", 6)], written["y"]
    kw = dict(normalize=change.get("normalize", "l1"))
    if change.get("ids"):
        Xd, kw = written["X"][:, :1], dict(vocab_size=10)
    with pytest.raises(StreamCheckpointError, match="refusing to resume") as e:
        xsol.accumulate(iter_array_batches(Xd, y, 50), 4, progress=False,
                        checkpoint_dir=written["dense"], every=2,
                        fingerprint=change.get("fingerprint"), **kw)
    assert expected in str(e.value), str(e.value)


def test_stream_shorter_than_the_checkpoint_is_refused(written, tmp_path):
    X, y = written["X"], written["y"]

    def gen(n):  # a plain generator of n batches: nothing tells its length in advance
        yield from ((X[i:i + 50], y[i:i + 50]) for i in range(0, 50 * n, 50))

    ck = str(tmp_path / "gen")
    xsol.accumulate(gen(8), 4, vocab_size=10, progress=False, checkpoint_dir=ck, every=2,
                    limit=5)
    with pytest.raises(StreamCheckpointError, match="holds 5 batches but this stream ended "
                                                     "after 3: the data changed"):
        xsol.accumulate(gen(3), 4, vocab_size=10, progress=False, checkpoint_dir=ck, every=2)
    with pytest.raises(StreamCheckpointError, match="holds 5 batches, more than limit=3"):
        xsol.accumulate(iter_array_batches(X, y, 50), 4, vocab_size=10, progress=False,
                        checkpoint_dir=written["ids"], every=2, fingerprint="tokens v1",
                        limit=3)


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("every", [0, -2, 2.5, "3", True])
def test_bad_every(tmp_path, every):
    with pytest.raises(StreamCheckpointError, match="every must be a positive number of "
                                                    f"batches between checkpoints, got {every!r}"):
        xsol.accumulate([(np.zeros((2, 1), int), np.zeros(2, int))], 2, vocab_size=2,
                        checkpoint_dir=str(tmp_path / "ck"), every=every, progress=False)


@pytest.mark.parametrize("kwargs, expected", [
    (dict(every=3), "every and fingerprint need checkpoint_dir"),
    (dict(fingerprint="a"), "every and fingerprint need checkpoint_dir"),
    (dict(checkpoint_dir="CK"), "checkpoint_dir needs every"),
    (dict(checkpoint_dir="CK", every=2, fingerprint=3), "fingerprint must be a string"),
    (dict(checkpoint_dir="CK", every=2, fingerprint="x" * 1001),
     "fingerprint has 1001 characters, more than 1000"),
    (dict(checkpoint_dir=5, every=2), "checkpoint_dir must be a path, got int"),
])
def test_bad_checkpoint_arguments(tmp_path, kwargs, expected):
    if kwargs.get("checkpoint_dir") == "CK":
        kwargs["checkpoint_dir"] = str(tmp_path / "ck")
    with pytest.raises(StreamCheckpointError, match=expected):
        xsol.accumulate([(np.zeros((2, 1), int), np.zeros(2, int))], 2, vocab_size=2,
                        progress=False, **kwargs)


def test_folder_of_something_else_is_refused(tmp_path):
    batches = [(np.zeros((2, 1), int), np.zeros(2, int))]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StreamCheckpointError, match="is a file; expected a folder"):
        xsol.accumulate(batches, 2, vocab_size=2, progress=False, checkpoint_dir=str(f), every=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(StreamCheckpointError, match=r"not a stream checkpoint folder \(it holds "
                                                    r"notes.txt\)"):
        xsol.accumulate(batches, 2, vocab_size=2, progress=False, checkpoint_dir=str(other),
                        every=1)
    model = tmp_path / "model"
    xsol.io.checkpoint.save(xsol.accumulate(batches, 2, vocab_size=2, progress=False), model)
    with pytest.raises(StreamCheckpointError, match="holds a saved model or statistics"):
        xsol.accumulate(batches, 2, vocab_size=2, progress=False, checkpoint_dir=str(model),
                        every=1)
    assert sorted(os.listdir(other)) == ["notes.txt"]  # nothing written there


def test_empty_stream_error(tmp_path):
    with pytest.raises(xsol.EmptyStreamError, match="no batches"):
        xsol.accumulate([], 2, vocab_size=2, progress=False, checkpoint_dir=str(tmp_path / "c"),
                        every=1)
    assert issubclass(xsol.EmptyStreamError, ValueError)


def test_batches_iter_from():
    X, y = np.arange(10)[:, None], np.arange(10)
    b = iter_array_batches(X, y, 3)
    assert b.seekable and [len(x) for x, _ in b.iter_from(2)] == [3, 1]
    plain = Batches(lambda: iter(list(b)), batch_size=3)
    assert not plain.seekable
    assert np.array_equal(next(plain.iter_from(3))[1], [9])
    assert list(plain.iter_from(7)) == []
    with pytest.raises(ValueError, match="start must be a non-negative batch index, got -1"):
        b.iter_from(-1)
