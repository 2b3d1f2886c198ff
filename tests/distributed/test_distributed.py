"""Several processes on JAX's distributed runtime: shares, the all-reduce, the launcher.

Two local CPU processes (a coordinator on 127.0.0.1) and one process with
four forced host devices run tests/distributed_worker.py in subprocesses,
started together; their results are compared here with one process counting
everything.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import xsol
import xsol.distributed as xd
from xsol.data import (
    build_vocabulary,
    context_windows,
    iter_array_batches,
    iter_idx_batches,
    iter_token_file_windows,
    load_text,
    split_text,
    write_idx,
    write_token_file,
)

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
WORKER = os.path.join(TESTS, "distributed_worker.py")
LAUNCHER = os.path.join(ROOT, "scripts", "accumulate_distributed.py")
V, WINDOW, CLASSES = 37, 2, 10
#: Dense float statistics: shares cut at the single pass's batches differ only
#: in the order of float64 additions (see xsol.distributed.allreduce_stats).
ALIGNED_RTOL = 1e-12
#: Batches split across another number of devices reduce other float32 chunks.
DEVICES_RTOL = 1e-6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_texts(folder):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "don't", "naïve", "x", "end.", "Ünïcode", "a-b", "42"]
    for j, sep in enumerate([" ", "\r\n", "\n\t"]):
        text = sep.join(rng.choice(words, 400 + 50 * j)) + ("\r\n" if j == 0 else "")
        with open(os.path.join(folder, f"part{j}.txt"), "w", encoding="utf-8", newline="") as f:
            f.write(text)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("distributed"))
    rng = np.random.default_rng(0)
    write_token_file(os.path.join(d, "tokens.bin"), rng.integers(0, V, 30_001), "uint16")
    images = rng.integers(0, 256, (2000, 5, 5), dtype=np.uint8)
    images[7] = 0  # an all-zero example
    labels = rng.integers(0, CLASSES, 2000).astype(np.uint8)
    for suffix in ("", ".gz"):
        write_idx(os.path.join(d, "images.idx" + suffix), images)
        write_idx(os.path.join(d, "labels.idx" + suffix), labels)
    write_texts(os.path.join(d, "text"))
    text = load_text(os.path.join(d, "text"))
    build_vocabulary(split_text(text), vocab_size=20).save(os.path.join(d, "vocab.json"))
    os.makedirs(os.path.join(d, "out"))
    return d


def _env(devices: int = 1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env.pop("XLA_FLAGS", None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _run_all(procs, logs, timeout=240):
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        text = open(log, encoding="utf-8", errors="replace").read()
        assert p.returncode == 0, f"{p.args} exited with {p.returncode}:\n{text[-4000:]}"


@pytest.fixture(scope="module")
def ran(work):
    """Runs the two-process worker and the four-device worker, at the same time."""
    port, procs, logs = free_port(), [], []
    cmds = [[sys.executable, WORKER, "multi", str(i), "2", str(port), work] for i in range(2)]
    cmds.append([sys.executable, WORKER, "devices", work])
    for k, cmd in enumerate(cmds):
        log = os.path.join(work, f"worker{k}.log")
        logs.append(log)
        with open(log, "w") as f:
            procs.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                          env=_env(4 if k == 2 else 1), cwd=ROOT))
    _run_all(procs, logs)
    return work


def load(work, name, pid=0):
    with np.load(os.path.join(work, "out", f"{name}-p{pid}.npz")) as z:
        return xsol.stats.CoocStats(*(z[k] for k in xsol.stats.CoocStats._fields))


def messages(work, pid=0):
    name = "messages-devices.json" if pid == "devices" else f"messages-p{pid}.json"
    with open(os.path.join(work, "out", name)) as f:
        return json.load(f)


def assert_identical(a, b):
    for name, u, v in zip(xsol.stats.CoocStats._fields, a, b):
        u, v = np.asarray(u), np.asarray(v)
        assert u.dtype == v.dtype and u.shape == v.shape, name
        assert np.array_equal(u, v), name


def assert_close(a, b, rtol):
    """Integer fields identical, float fields within ``rtol``; returns the worst relative error."""
    worst = 0.0
    for name, u, v in zip(xsol.stats.CoocStats._fields, a, b):
        u, v = np.asarray(u), np.asarray(v)
        assert u.dtype == v.dtype and u.shape == v.shape, name
        if np.issubdtype(u.dtype, np.integer):
            assert np.array_equal(u, v), name
        else:
            err = np.abs(u - v) / np.maximum(np.abs(v), 1e-300)
            worst = max(worst, float(err.max()))
            np.testing.assert_allclose(u, v, rtol=rtol, atol=0, err_msg=name)
    return worst


def reference_tokens(work, chunk=1000):
    b = iter_token_file_windows(os.path.join(work, "tokens.bin"), WINDOW, vocab_size=V,
                                chunk_tokens=chunk)
    return xsol.accumulate(b, V, vocab_size=V, progress=False)


def reference_idx(work, batch, normalize):
    b = iter_idx_batches(os.path.join(work, "images.idx"), os.path.join(work, "labels.idx"),
                         batch)
    return xsol.accumulate(b, CLASSES, normalize=normalize, progress=False)


# --- two processes ---------------------------------------------------------------------


def test_two_processes_token_ids_bit_identical(ran):
    ref = reference_tokens(ran)
    for pid in (0, 1):
        assert_identical(load(ran, "tokens", pid), ref)
        assert_identical(load(ran, "after_failure", pid), ref)


def test_two_processes_dense_within_stated_tolerance(ran):
    ref = reference_idx(ran, 128, "l1")
    p0, p1 = load(ran, "idx_l1", 0), load(ran, "idx_l1", 1)
    assert_identical(p0, p1)  # every process ends with the same statistics
    worst = assert_close(p0, ref, ALIGNED_RTOL)
    assert worst < ALIGNED_RTOL
    # integer-valued features without normalization: exact, through the host all-gather too
    ref = reference_idx(ran, 100, "none")
    for pid in (0, 1):
        assert_identical(load(ran, "idx_none_gather", pid), ref)


def test_two_processes_text_shares_bit_identical(ran):
    vocab = xsol.data.Vocabulary.load(os.path.join(ran, "vocab.json"))
    X, y = context_windows(vocab.encode(load_text(os.path.join(ran, "text"))), WINDOW)
    ref = xsol.accumulate(iter_array_batches(X, y, 500), len(vocab), vocab_size=len(vocab),
                          progress=False)
    for pid in (0, 1):
        assert_identical(load(ran, "text", pid), ref)


def test_two_processes_resume_each_from_its_own_position(ran):
    ref = reference_tokens(ran, chunk=400)
    total = 0
    for pid in (0, 1):
        m = messages(ran, pid)
        assert_identical(load(ran, "ck_full", pid), ref)
        # each process read its first batch, then only the batches after its own position
        assert m["ck_read"] == 1 + m["ck_batches"] - (10 + 3 * pid)
        total += m["ck_batches"]
        part = load(ran, "ck_partial", pid)
        assert int(part.num_examples) < int(ref.num_examples)
    assert total == len(iter_token_file_windows(os.path.join(ran, "tokens.bin"), WINDOW,
                                                chunk_tokens=400))


def test_two_processes_refuse_together(ran):
    m0, m1 = messages(ran, 0), messages(ran, 1)
    for m in (m0, m1):
        assert m["shape_mismatch"].startswith("ValueError")
        assert "process 1 has a (74, 37)" in m["shape_mismatch"]
        assert "process 0" in m["shape_mismatch"]
    # process 1's bad batch: its own BatchError; process 0 is told and stops too
    assert m1["failure"].startswith("BatchError") and "batch 2" in m1["failure"]
    assert m0["failure"].startswith("RuntimeError") and "process 1 failed" in m0["failure"]
    assert m1["failure_ck"].startswith("BatchError") and "batch 5" in m1["failure_ck"]
    assert m0["failure_ck"].startswith("RuntimeError") and "process 1 failed" in m0["failure_ck"]
    assert m1["save_from_1"].startswith("CheckpointError: this is process 1 of 2: in a run over "
                                        "several processes save from process 0")


# --- one process, four devices ----------------------------------------------------------


def test_four_devices_psum_bit_identical(ran):
    ref = reference_tokens(ran)
    assert_identical(load(ran, "dev_parts_psum"), ref)
    assert_identical(load(ran, "dev_parts_gather"), ref)
    assert_identical(load(ran, "dev_tokens"), ref)
    assert messages(ran, "devices")["too_many_parts"].startswith(
        "ValueError: 5 local statistics to sum but this process has 4 devices")


def test_four_devices_dense_within_stated_tolerance(ran):
    four, one = load(ran, "dev_idx_l1"), load(ran, "dev_idx_l1_one_device")
    assert assert_close(four, one, DEVICES_RTOL) < DEVICES_RTOL
    assert assert_close(one, reference_idx(ran, 128, "l1"), 0) == 0


# --- the launcher -------------------------------------------------------------------------


def _launcher():
    spec = importlib.util.spec_from_file_location("accumulate_distributed", LAUNCHER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launcher_two_processes_saves_from_process_0(work):
    port, out = free_port(), os.path.join(work, "cli_out")
    procs, logs = [], []
    for i in range(2):
        log = os.path.join(work, f"cli{i}.log")
        logs.append(log)
        with open(log, "w") as f:
            procs.append(subprocess.Popen(
                [sys.executable, LAUNCHER, "--token-file", os.path.join(work, "tokens.bin"),
                 "--window", str(WINDOW), "--vocab-size", str(V), "--chunk-tokens", "1000",
                 "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                 "--process-id", str(i), "--out", out],
                stdout=f, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT))
    _run_all(procs, logs)
    assert "statistics saved to" in open(logs[0]).read()
    assert "saved" not in open(logs[1]).read()
    assert_identical(xsol.load(out, expect="CoocStats"), reference_tokens(work))


@pytest.mark.parametrize("argv, expected", [
    (["--process-id", "2", "--num-processes", "2", "--coordinator", "127.0.0.1:1"],
     "--process-id 2 is out of range for 2 processes"),
    (["--num-processes", "0", "--process-id", "0", "--coordinator", "127.0.0.1:1"],
     "--num-processes must be >= 1"),
    (["--num-processes", "2", "--process-id", "0"], "go together"),
    (["--auto-cluster", "--num-processes", "2"], "--auto-cluster finds"),
    (["--every", "3"], "--checkpoint-dir and --every go together"),
])
def test_launcher_refuses_bad_arguments(argv, expected, capsys, tmp_path):
    mod = _launcher()
    base = ["--token-file", "t.bin", "--vocab-size", "5", "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as e:
        mod.main(base + argv)
    assert e.value.code == 2
    assert expected in capsys.readouterr().err


def test_launcher_needs_vocab_size_and_vocab(capsys, tmp_path):
    mod = _launcher()
    for argv, expected in ([["--token-file", "t.bin"], "--token-file needs --vocab-size"],
                           [["--text", "t.txt"], "--text needs --vocab"]):
        with pytest.raises(SystemExit):
            mod.main(argv + ["--out", str(tmp_path / "o")])
        assert expected in capsys.readouterr().err


def test_launcher_one_process(work, tmp_path, capsys):
    out = tmp_path / "one"
    assert _launcher().main(["--idx", os.path.join(work, "images.idx"),
                             os.path.join(work, "labels.idx"), "--batch-size", "128",
                             "--out", str(out)]) == 0
    assert "2000 examples from 1 process (1 devices)" in capsys.readouterr().out
    assert_identical(xsol.load(out), reference_idx(work, 128, "l1"))


# --- shares, in this process ---------------------------------------------------------------


@pytest.mark.parametrize("n, count, multiple", [(10, 3, 1), (10, 3, 4), (7, 7, 1), (0, 2, 1),
                                                (1000, 4, 128), (5, 8, 1)])
def test_shard_bounds_cover_everything_once(n, count, multiple):
    bounds = [xd.shard_bounds(n, index=i, count=count, multiple=multiple) for i in range(count)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(lo % multiple == 0 for lo, _ in bounds[: -1] if lo < n)
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= multiple


@pytest.mark.parametrize("index, count, expected", [
    (2, 2, "process index 2 is out of range for 2 processes"),
    (-1, 2, "process index -1 is out of range"),
    ("1", 2, "out of range for 2 processes"),
    (0, 0, "the process count must be a positive integer, got 0"),
    (True, 2, "out of range"),
])
def test_bad_process_index_or_count(index, count, expected):
    with pytest.raises(ValueError, match=expected):
        xd.check_process(index, count)
    with pytest.raises(ValueError, match=expected):
        xd.shard_bounds(10, index=index, count=count)


def test_shard_bounds_bad_sizes():
    with pytest.raises(ValueError, match="non-negative integer, got -1"):
        xd.shard_bounds(-1, index=0, count=1)
    with pytest.raises(ValueError, match="multiple must be a positive integer, got 0"):
        xd.shard_bounds(5, index=0, count=1, multiple=0)


def test_token_file_shares_concatenate_to_the_whole(work):
    path = os.path.join(work, "tokens.bin")
    whole = [np.concatenate(a) for a in zip(*iter_token_file_windows(
        path, 3, part="train", held_out=0.1, chunk_tokens=700))]
    for count in (1, 3, 5):
        shares = [xd.shard_token_file_windows(path, 3, part="train", held_out=0.1,
                                              chunk_tokens=700, index=i, count=count)
                  for i in range(count)]
        got = [np.concatenate([b[j] for s in shares for b in s]) for j in (0, 1)]
        assert np.array_equal(got[0], whole[0]) and np.array_equal(got[1], whole[1])
        assert all(s.seekable for s in shares)
    # with 3 shares of 39 chunks of 700 windows, each starts on a chunk of the whole stream
    assert all(len(b[0]) == 700 for b in list(shares[0])[:-1])


def test_token_file_share_errors(work):
    path = os.path.join(work, "tokens.bin")
    with pytest.raises(ValueError, match="out of range for 2 processes"):
        xd.shard_token_file_windows(path, 1, index=5, count=2)
    tiny = os.path.join(work, "tiny.bin")
    write_token_file(tiny, np.arange(4), "uint16")
    with pytest.raises(ValueError, match="2 windows cannot be shared by 3 processes"):
        xd.shard_token_file_windows(tiny, 2, index=0, count=3)
    with pytest.raises(ValueError, match="needs held_out"):
        xd.shard_token_file_windows(path, 1, part="train", index=0, count=1)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_shares_concatenate_to_the_whole_and_seek(work, suffix):
    images, labels = (os.path.join(work, n + suffix) for n in ("images.idx", "labels.idx"))
    whole = list(iter_idx_batches(images, labels, 128))
    shares = [xd.shard_idx_batches(images, labels, 128, index=i, count=3) for i in range(3)]
    got = [b for s in shares for b in s]
    assert len(got) == len(whole)  # the very batches of one pass
    for (a, b), (c, d) in zip(got, whole):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    # a share jumps to a batch without reading the ones before (a seek for plain files)
    later = list(shares[1].iter_from(2))
    first = len(shares[0])
    assert np.array_equal(later[0][0], whole[first + 2][0])
    assert len(later) == len(shares[1]) - 2
    with pytest.raises(ValueError, match="2000 examples cannot be shared by 3000 processes"):
        xd.shard_idx_batches(images, labels, 128, index=0, count=3000)


@pytest.mark.parametrize("level", ["word", "char"])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_text_shares_concatenate_to_the_whole(work, level, count):
    folder = os.path.join(work, "text")
    text = load_text(folder)
    vocab = build_vocabulary(split_text(text, level), vocab_size=30, level=level)
    X, y = context_windows(vocab.encode(text), 3)
    shares = [xd.shard_text_windows(folder, vocab, 3, 64, chunk_chars=50, index=i, count=count)
              for i in range(count)]
    got = [b for s in shares for b in s]
    assert np.array_equal(np.concatenate([b[0] for b in got]), X)
    assert np.array_equal(np.concatenate([b[1] for b in got]), y)
    # one file: its shares too
    one = os.path.join(folder, "part1.txt")
    X, y = context_windows(vocab.encode(load_text(one)), 3)
    got = [b for i in range(count) for b in xd.shard_text_windows(one, vocab, 3, 1000,
                                                                    index=i, count=count)]
    assert np.array_equal(np.concatenate([b[0] for b in got]), X)


def test_text_share_errors(work):
    vocab = xsol.data.Vocabulary.load(os.path.join(work, "vocab.json"))
    folder = os.path.join(work, "text")
    with pytest.raises(ValueError, match="'utf-16' does not"):
        xd.shard_text_windows(folder, vocab, 1, 10, encoding="utf-16", index=0, count=2)
    with pytest.raises(ValueError, match="needs a text file or a directory"):
        xd.shard_text_windows(None, vocab, 1, 10, index=0, count=2)
    with pytest.raises(ValueError, match="out of range for 2 processes"):
        xd.shard_text_windows(folder, vocab, 1, 10, index=2, count=2)


# --- the all-reduce and start-up, in this process -----------------------------------------------


def test_allreduce_in_one_process_keeps_the_statistics(rng):
    X = rng.integers(0, 9, (500, 2))
    y = rng.integers(0, 4, 500)
    ids = xsol.accumulate(iter_array_batches(X, y, 64), 4, vocab_size=9, progress=False)
    for method in ("psum", "gather", "auto"):
        got = xd.allreduce_stats(ids, method=method)
        assert isinstance(got.cooc, jax.Array)
        assert_identical(got, ids)
    dense = xsol.accumulate(iter_array_batches(rng.random((300, 5)), y[:300], 64), 4,
                            progress=False)
    got = xd.allreduce_stats(dense)
    assert isinstance(got.cooc, np.ndarray) and isinstance(got.num_examples, np.int64)
    assert_identical(got, dense)


def test_allreduce_bad_input(rng):
    X = rng.integers(0, 9, (50, 1))
    s = xsol.accumulate(iter_array_batches(X, X[:, 0] % 3, 64), 3, vocab_size=9, progress=False)
    with pytest.raises(ValueError, match="method must be 'auto', 'psum' or 'gather', got 'ring'"):
        xd.allreduce_stats(s, method="ring")
    with pytest.raises(ValueError, match="no process has statistics"):
        xd.allreduce_stats(None)
    with pytest.raises(ValueError, match="2 local statistics to sum but this process has 1"):
        xd.allreduce_stats([s, s])
    with pytest.raises(TypeError, match="allreduce_stats needs CoocStats, got str"):
        xd.allreduce_stats(["not stats"])
    with pytest.raises(ValueError, match="feature_totals has shape"):
        xd.allreduce_stats(s._replace(feature_totals=s.feature_totals[:3]))


@pytest.mark.parametrize("kwargs, expected", [
    (dict(coordinator_address="127.0.0.1:1", num_processes=2, process_id=2),
     "process_id 2 is out of range for 2 processes"),
    (dict(coordinator_address="127.0.0.1:1", num_processes=0, process_id=0),
     "num_processes must be an integer >= 1, got 0"),
    (dict(coordinator_address="localhost", num_processes=2, process_id=0),
     "coordinator_address must be 'host:port'"),
    (dict(coordinator_address="h:99999", num_processes=2, process_id=0),
     "coordinator_address must be 'host:port'"),
    (dict(num_processes=2, process_id=0), "are given together"),
    (dict(coordinator_address="127.0.0.1:1", process_id=-1, num_processes=2),
     "process_id must be an integer >= 0, got -1"),
])
def test_initialize_refuses_bad_arguments(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        xd.initialize(**kwargs)


def test_initialize_one_process_starts_nothing():
    assert xd.initialize(num_processes=1) == (0, 1)
    assert xd.initialize("127.0.0.1:5", 1, 0) == (0, 1)
    assert not jax.distributed.is_initialized()
