"""The program each process runs in tests/distributed/test_distributed.py (not a test module itself).

    python tests/distributed_worker.py multi PROCESS_ID NUM_PROCESSES PORT WORKDIR
    python tests/distributed_worker.py devices WORKDIR      # one process, forced host devices

Reads the data test_distributed.py wrote to WORKDIR, runs every scenario, and
writes each result to WORKDIR/out/<scenario>-p<process>.npz (the four
CoocStats fields) and the messages of the expected errors to
WORKDIR/out/messages-p<process>.json
(messages-devices.json for the devices run).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

V, WINDOW, CLASSES = 37, 2, 10


def save(out, name, pid, stats):
    np.savez(os.path.join(out, f"{name}-p{pid}.npz"),
             **{k: np.asarray(v) for k, v in stats._asdict().items()})


def expect_error(messages, name, fn, kind=Exception):
    try:
        fn()
    except kind as e:
        messages[name] = f"{type(e).__name__}: {e}"
    else:
        messages[name] = "no error"


def multi(pid: int, n: int, port: int, work: str) -> None:
    import xsol.distributed as xd

    t0 = time.perf_counter()
    me = xd.initialize(f"127.0.0.1:{port}", n, pid)
    assert me == (pid, n), me
    import xsol
    from xsol.data import Vocabulary

    out = os.path.join(work, "out")
    tokens, textdir = os.path.join(work, "tokens.bin"), os.path.join(work, "text")
    images, labels = os.path.join(work, "images.idx"), os.path.join(work, "labels.idx")
    messages = {}

    share = xd.shard_token_file_windows(tokens, WINDOW, vocab_size=V, chunk_tokens=1000)
    save(out, "tokens", pid, xd.accumulate_distributed(share, V, vocab_size=V))

    share = xd.shard_idx_batches(images, labels, 128)
    save(out, "idx_l1", pid, xd.accumulate_distributed(share, CLASSES))

    share = xd.shard_idx_batches(images + ".gz", labels + ".gz", 100)
    save(out, "idx_none_gather", pid,
         xd.accumulate_distributed(share, CLASSES, normalize="none", method="gather"))

    vocab = Vocabulary.load(os.path.join(work, "vocab.json"))
    share = xd.shard_text_windows(textdir, vocab, WINDOW, 300, chunk_chars=256)
    save(out, "text", pid, xd.accumulate_distributed(share, len(vocab), vocab_size=len(vocab)))

    # Stream checkpoints shared by both processes: stop early (a different
    # number of batches in each process), then rerun to the end.
    ck = os.path.join(work, "ck")
    share = xd.shard_token_file_windows(tokens, WINDOW, vocab_size=V, chunk_tokens=400)
    part = xd.accumulate_distributed(share, V, vocab_size=V, checkpoint_dir=ck, every=4,
                                     limit=10 + 3 * pid)
    save(out, "ck_partial", pid, part)

    from counting_stream import Counting  # the rerun must start from each process's own position

    counting = Counting(share)
    save(out, "ck_full", pid, xd.accumulate_distributed(counting, V, vocab_size=V,
                                                        checkpoint_dir=ck, every=4))
    messages["ck_batches"] = len(share)
    messages["ck_read"] = counting.read

    # Statistics of another shape in one process: both refuse, naming it.
    other = xd.shard_token_file_windows(tokens, 1 + pid, vocab_size=V, chunk_tokens=5000)
    local = xsol.accumulate(other, V, vocab_size=V, progress=False)
    expect_error(messages, "shape_mismatch", lambda: xd.allreduce_stats(local))

    # A process that fails makes the other stop too, with or without checkpoints.
    def bad_batches(fail_at):
        good = xd.shard_token_file_windows(tokens, WINDOW, vocab_size=V, chunk_tokens=300)
        for i, (X, y) in enumerate(good):
            if pid == 1 and i == fail_at:
                X = X.copy()
                X[0, 0] = V + 5
            yield X, y

    expect_error(messages, "failure",
                 lambda: xd.accumulate_distributed(bad_batches(2), V, vocab_size=V))
    expect_error(messages, "failure_ck",
                 lambda: xd.accumulate_distributed(bad_batches(5), V, vocab_size=V,
                                                   checkpoint_dir=os.path.join(work, "ck_fail"),
                                                   every=2))
    # ... and the run goes on afterwards.
    share = xd.shard_token_file_windows(tokens, WINDOW, vocab_size=V, chunk_tokens=1000)
    after = xd.accumulate_distributed(share, V, vocab_size=V)
    save(out, "after_failure", pid, after)
    if pid == 1:  # Orbax writes host arrays from process 0 only
        expect_error(messages, "save_from_1",
                     lambda: xsol.io.checkpoint.save(after, os.path.join(work, "from1")))
    messages["seconds"] = time.perf_counter() - t0
    with open(os.path.join(out, f"messages-p{pid}.json"), "w") as f:
        json.dump(messages, f)


def devices(work: str) -> None:
    import jax

    import xsol
    import xsol.distributed as xd
    from xsol.data import iter_idx_batches, iter_token_file_windows

    assert jax.device_count() == 4 and jax.process_count() == 1, jax.devices()
    out = os.path.join(work, "out")
    tokens = os.path.join(work, "tokens.bin")
    images, labels = os.path.join(work, "images.idx"), os.path.join(work, "labels.idx")
    messages = {}
    # Four shares counted apart, one part per device, summed by one psum over the 4 devices.
    parts = [xsol.accumulate(xd.shard_token_file_windows(tokens, WINDOW, vocab_size=V,
                                                         chunk_tokens=1000, index=i, count=4),
                             V, vocab_size=V, progress=False) for i in range(4)]
    save(out, "dev_parts_psum", 0, xd.allreduce_stats(parts, method="psum"))
    save(out, "dev_parts_gather", 0, xd.allreduce_stats(parts, method="gather"))
    whole = iter_token_file_windows(tokens, WINDOW, vocab_size=V, chunk_tokens=1000)
    save(out, "dev_tokens", 0, xd.accumulate_distributed(whole, V, vocab_size=V))
    dense = iter_idx_batches(images, labels, 128)
    save(out, "dev_idx_l1", 0, xd.accumulate_distributed(dense, CLASSES))
    save(out, "dev_idx_l1_one_device", 0,
         xsol.accumulate(dense, CLASSES, devices=jax.devices()[:1], progress=False))
    expect_error(messages, "too_many_parts", lambda: xd.allreduce_stats(parts + parts[:1]))
    with open(os.path.join(out, "messages-devices.json"), "w") as f:
        json.dump(messages, f)


if __name__ == "__main__":
    if sys.argv[1] == "multi":
        multi(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        devices(sys.argv[2])
    print("worker done", flush=True)
