"""Prints the table of bad inputs and what a user sees (docs/bad-inputs.md).

Each case runs the public call a user would make and records the exception's
type and first line, or the warning, so the table is what the code does today:

    python scripts/bad_inputs.py > docs/bad-inputs.md

It runs on 4 forced CPU devices (unless ``XLA_FLAGS`` is set), so the sharded
cases have devices to shard over.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def cases(tmp: str):
    import xsol
    from xsol.data import load_images, open_token_file, read_idx, write_idx, write_token_file
    from xsol.lm import fit_token_lm

    X = np.ones((4, 3), np.float32)
    y = np.array([0, 1, 0, 1])

    def with_(a, idx, v):
        a = a.copy()
        a[idx] = v
        return a

    ids = os.path.join(tmp, "ids.bin")
    tokens = np.arange(5000, dtype=np.uint16) % 50
    tokens[3210] = 60000
    write_token_file(ids, tokens, "uint16")
    odd = os.path.join(tmp, "odd.bin")
    open(odd, "wb").write(b"\x01\x00\x02")
    empty = os.path.join(tmp, "empty.bin")
    open(empty, "wb").close()
    badtxt = os.path.join(tmp, "bad.txt")
    open(badtxt, "wb").write(b"hello \xff world")
    tok = os.path.join(tmp, "tokenizer.json")
    open(tok, "w").write("{not json")
    big_idx = os.path.join(tmp, "train-images-idx3-ubyte")
    open(big_idx, "wb").write(bytes([0, 0, 8, 3]) + (10**9).to_bytes(4, "big")
                              + (1000).to_bytes(4, "big") * 2)

    def stream_fails():
        yield X, y
        raise OSError("disk went away")

    return [
        ("NaN in features", lambda: xsol.fit_explicit(with_(X, (1, 2), np.nan), y, 2)),
        ("negative feature", lambda: xsol.fit_explicit(with_(X, (2, 0), -0.5), y, 2)),
        ("label out of range", lambda: xsol.fit_explicit(X, np.array([0, 1, 2, 5]), 3)),
        ("labels and examples differ in number", lambda: xsol.fit_explicit(X, y[:2], 2)),
        ("empty data", lambda: xsol.fit_explicit(X[:0], y[:0], 2)),
        ("1-D features", lambda: xsol.fit_explicit(np.ones(4, np.float32), y, 2, kind="dense")),
        ("fractional token ids", lambda: xsol.fit_explicit(X + 0.7, y, 2, kind="ids",
                                                           vocab_size=3)),
        ("int64 pixels, kind='auto'", lambda: xsol.fit_explicit(
            np.ones((4, 64), np.int64), y, 2, vocab_size=2)),
        ("labels 1..N (no 0)", lambda: xsol.fit_explicit(X, y + 1)),
        ("one corrupt label 255", lambda: xsol.fit_explicit(X, np.array([0, 1, 255, 1]))),
        ("num_classes='3'", lambda: xsol.fit_explicit(X, y, "3")),
        ("smoothing=1e-45", lambda: xsol.fit_explicit(X, y, 2, smoothing=1e-45)),
        ("row sums past float32's max", lambda: xsol.fit_explicit(
            np.full((2, 3), 3e38, np.float32), np.array([0, 1]), 2, normalize="none")),
        ("a vocabulary too large for memory", lambda: xsol.stats.token_cooccurrence(10**6, 10**6)),
        ("a stream whose source fails", lambda: xsol.accumulate(stream_fails(), 2,
                                                                progress=False)),
        ("token id >= V in a token file", lambda: fit_token_lm(ids, 50)),
        ("token file size not a multiple of the item size", lambda: open_token_file(odd)),
        ("empty token file", lambda: open_token_file(empty)),
        ("held-out fraction 1.5", lambda: fit_token_lm(ids, 65536, held_out=1.5)),
        ("tokenizer file that does not parse", lambda: xsol.lm.fit_text_lm(badtxt,
                                                                         tokenizer=tok)),
        ("bad UTF-8 in a text file", lambda: xsol.lm.fit_text_lm(badtxt, workers=1)),
        ("IDX header larger than the file", lambda: read_idx(big_idx)),
        ("a directory given as an IDX file", lambda: read_idx(tmp)),
        ("0-image IDX file", lambda: (
            write_idx(big_idx, np.zeros((0, 2, 2), np.uint8)),
            write_idx(os.path.join(tmp, "train-labels-idx1-ubyte"), np.zeros(0, np.uint8)),
            write_idx(os.path.join(tmp, "t10k-images-idx3-ubyte"), np.zeros((1, 2, 2), np.uint8)),
            write_idx(os.path.join(tmp, "t10k-labels-idx1-ubyte"), np.zeros(1, np.uint8)),
            load_images("mnist", data_dir=tmp))),
        ("refine on negative features", lambda: xsol.refine(with_(X, (2, 0), -0.5), y, 2)),
        ("scikit-learn estimator on negative features",
         lambda: xsol.ExplicitSoftmaxClassifier().fit(with_(X, (2, 0), -0.5), y)),
        ("load a directory that holds no model", lambda: xsol.load(tmp)),
        ("save over an existing model", lambda: (
            xsol.save(xsol.fit_explicit(X, y, 2), os.path.join(tmp, "m")),
            xsol.save(xsol.fit_explicit(X, y, 2), os.path.join(tmp, "m")))),
        ("explicit head on a layer fed negative features", lambda: _head_negative(X, y)),
        ("accumulate(..., every=0) with a checkpoint folder", lambda: xsol.accumulate(
            [(X, y)], 2, progress=False, checkpoint_dir=os.path.join(tmp, "ck0"), every=0)),
        ("resuming a stream checkpoint of another run", lambda: _other_run(tmp, X, y)),
        ("a process index out of range", lambda: xsol.distributed.shard_bounds(10, index=3,
                                                                                count=2)),
        ("a sharded solve whose sharding splits the columns", lambda: _column_sharding(X, y)),
        ("a sharded solve whose rows do not divide over the devices", lambda: xsol.solve(
            xsol.fit_explicit(np.ones((4, 3), np.float32), y, 2).stats,
            mesh=_mesh(("model",)))),
        ("a tfds dataset not prepared, downloads off", lambda: _tfds_not_prepared(tmp)),
        ("predict_proba past the memory budget", lambda: (
            os.environ.__setitem__("XSOL_MEMORY_BUDGET", "1K"),
            xsol.fit_explicit(X, y, 2).predict_proba(np.ones((1000, 3), np.float32)))),
    ]


def _other_run(tmp, X, y):
    import xsol

    ck = os.path.join(tmp, "ck")
    xsol.accumulate([(X, y)] * 3, 2, progress=False, checkpoint_dir=ck, every=1,
                    fingerprint="train.bin v1")
    return xsol.accumulate([(X, y)] * 3, 2, progress=False, checkpoint_dir=ck, every=1,
                           fingerprint="train.bin v2")


def _mesh(names):
    import jax
    from jax.sharding import Mesh

    return Mesh(np.array(jax.devices()).reshape((-1,) + (1,) * (len(names) - 1)), names)


def _column_sharding(X, y):
    from jax.sharding import NamedSharding, PartitionSpec as P

    import xsol

    stats = xsol.fit_explicit(X, y, 2).stats
    return xsol.solve(stats, sharding=NamedSharding(_mesh(("model",)), P(None, "model")))


def _tfds_not_prepared(tmp):
    from xsol.data import tfds_source

    os.environ["XSOL_TFDS_DOWNLOAD"] = "0"
    try:
        return tfds_source.load_tfds_images("mnist", data_dir=os.path.join(tmp, "tfds"))
    finally:
        os.environ.pop("XSOL_TFDS_DOWNLOAD")


def _head_negative(X, y):
    from flax import nnx

    import xsol

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(3, 4, rngs=rngs)
            self.head = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x):
            return self.head(self.hidden(x))  # no activation: features of both signs

    return xsol.explicit_head(Net(nnx.Rngs(0)), layer="head", batches=[(X, y)])


CLI_CASES = [
    ("xsol fit --limit 0", ["fit", "--limit", "0"]),
    ("xsol fit --text --window 0", ["fit", "--text", "--window", "0"]),
    ("xsol reproduce --seeds -2", ["reproduce", "--seeds", "-2"]),
    ("xsol reproduce --lr-grid 0.1,-1", ["reproduce", "--lr-grid", "0.1,-1"]),
    ("xsol eval --model missing-dir --dataset digits", ["eval", "--model", "missing-dir",
                                                         "--dataset", "digits"]),
    ("xsol fit --smoothing 1e-45", ["fit", "--smoothing", "1e-45"]),
    ("xsol fit --dataset cifar", ["fit", "--dataset", "cifar"]),
    ("xsol fit --tokens missing.bin --vocab-size 10", ["fit", "--tokens", "missing.bin",
                                                        "--vocab-size", "10"]),
]


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[-1] if text.strip() else ""
    return line.replace("|", "\\|")[:220]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, call in cases(tmp):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    call()
                    seen = ("warning: " + _first_line(str(caught[-1].message))) if caught \
                        else "no error (a bug)"
                except Exception as e:  # noqa: BLE001 - we record what the user sees
                    seen = f"`{type(e).__name__}`: {_first_line(str(e))}"
            os.environ.pop("XSOL_MEMORY_BUDGET", None)
            rows.append((name, seen.replace(tmp, "<dir>")))
    for name, argv in CLI_CASES:
        r = subprocess.run([sys.executable, "-m", "xsol.cli", *argv], capture_output=True,
                           text=True)
        rows.append((f"`{name}`", f"exit {r.returncode}: {_first_line(r.stderr)}"))
    print("# Bad inputs and what the user sees\n")
    print("Generated by `python scripts/bad_inputs.py` (each call run as a user would make it; "
          "the cases are also tested in `tests/`). Messages are cut at 220 characters.\n")
    print("| input | what xsol says |")
    print("|---|---|")
    for name, seen in rows:
        print(f"| {name} | {seen} |")


if __name__ == "__main__":
    main()
