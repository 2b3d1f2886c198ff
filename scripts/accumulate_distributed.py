"""Co-occurrence statistics of a data set over several JAX processes; process 0 saves them.

Every process runs this same command with its own ``--process-id`` (or with
``--auto-cluster`` on a Cloud TPU VM pod slice, SLURM or Open MPI, where JAX
finds the three values itself). Each reads its own share of the data (a range
of windows of a token file, of rows of IDX files, of bytes of a text),
counts it with ``xsol.accumulate`` on its local devices, and one all-reduce
over every device of every process sums the shares; process 0 then writes
the statistics with ``xsol.io.checkpoint.save`` (load them with ``xsol.load``).

    # two processes on one machine (CPU: collectives over Gloo)
    python scripts/accumulate_distributed.py --token-file train.bin --window 1 \\
        --vocab-size 50257 --coordinator 127.0.0.1:8476 --num-processes 2 \\
        --process-id 0 --out stats &
    python scripts/accumulate_distributed.py ... --process-id 1 --out stats

With ``--checkpoint-dir DIR --every N`` the stream is checkpointed every N
batches and a rerun of the same commands resumes (each process from its own
position). Exit status 0 on success, 2 for bad arguments, 1 for any other error.
"""

from __future__ import annotations

import argparse
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="accumulate_distributed.py",
        description="Accumulates xsol co-occurrence statistics over several JAX processes "
                    "(jax.distributed); process 0 saves them with xsol.io.checkpoint.save.")
    data = p.add_argument_group("data (exactly one source)")
    src = data.add_mutually_exclusive_group(required=True)
    src.add_argument("--token-file", metavar="PATH",
                     help="a token-id file: raw little-endian ids (see --dtype) or .npy")
    src.add_argument("--idx", nargs=2, metavar=("IMAGES", "LABELS"),
                     help="a pair of IDX files (plain or gzipped), e.g. MNIST's")
    src.add_argument("--text", metavar="PATH",
                     help="a text file or a directory of *.txt files (needs --vocab)")
    data.add_argument("--window", type=int, default=1,
                      help="context tokens per example, K (token file, text; default 1)")
    data.add_argument("--vocab-size", type=int,
                      help="V, ids lie in [0, V) (required with --token-file)")
    data.add_argument("--dtype", default=None,
                      help="stored dtype of a raw token file: uint16 (default), uint32, int32")
    data.add_argument("--part", choices=("all", "train", "held_out"), default="all",
                      help="the part of a token file (default all)")
    data.add_argument("--held-out", type=float, default=None,
                      help="the fraction held out at the end of a token file (with --part)")
    data.add_argument("--chunk-tokens", type=int, default=1 << 22,
                      help="windows per batch of a token file (default 4194304)")
    data.add_argument("--batch-size", type=int, default=8192,
                      help="examples per batch of IDX files or text (default 8192)")
    data.add_argument("--normalize", choices=("l1", "none"), default="l1",
                      help="per-example normalization of dense features (default l1)")
    data.add_argument("--vocab", metavar="VOCAB.json",
                      help="the vocabulary of --text, saved with xsol.data.Vocabulary.save")
    data.add_argument("--num-classes", type=int, default=None,
                      help="N (default: V for token files and text, max label + 1 for IDX)")
    run = p.add_argument_group("processes")
    run.add_argument("--coordinator", metavar="HOST:PORT",
                     help="address of process 0, reachable from every process")
    run.add_argument("--num-processes", type=int, default=None, help="number of processes")
    run.add_argument("--process-id", type=int, default=None, help="this process's index")
    run.add_argument("--auto-cluster", action="store_true",
                     help="let JAX find coordinator, count and index (Cloud TPU VM, SLURM, "
                          "Open MPI)")
    run.add_argument("--local-device-ids", default=None, metavar="I,J,...",
                     help="the local devices this process uses (e.g. 0 for one process per GPU)")
    run.add_argument("--x64", action="store_true",
                     help="64-bit counts (jax_enable_x64), for more than 2**31 - 1 per cell")
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR",
                     help="where process 0 saves the statistics (a new or empty directory)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace earlier statistics saved at --out")
    out.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                     help="stream checkpoints, shared by every process; a rerun resumes")
    out.add_argument("--every", type=int, default=None,
                     help="batches between two stream checkpoints (with --checkpoint-dir)")
    out.add_argument("--fingerprint", default=None,
                     help="a description of the data stored with the stream checkpoints")
    out.add_argument("--progress", action="store_true", help="show a progress bar")
    return p


def _check(p: argparse.ArgumentParser, args) -> None:
    given = [args.coordinator is not None, args.num_processes is not None,
             args.process_id is not None]
    if args.auto_cluster and any(given):
        p.error("--auto-cluster finds --coordinator, --num-processes and --process-id itself; "
                "pass either --auto-cluster or those three")
    if any(given) and not all(given) and not (args.num_processes == 1 and not given[0]):
        p.error("--coordinator, --num-processes and --process-id go together (or use "
                "--auto-cluster)")
    if args.num_processes is not None and args.num_processes < 1:
        p.error(f"--num-processes must be >= 1, got {args.num_processes}")
    if args.process_id is not None and args.num_processes is not None and \
            not 0 <= args.process_id < args.num_processes:
        p.error(f"--process-id {args.process_id} is out of range for {args.num_processes} "
                f"processes: expected 0 <= id < {args.num_processes}")
    if args.token_file is not None and args.vocab_size is None:
        p.error("--token-file needs --vocab-size (ids lie in [0, V))")
    if args.text is not None and args.vocab is None:
        p.error("--text needs --vocab, a vocabulary saved with xsol.data.Vocabulary.save")
    if (args.checkpoint_dir is None) != (args.every is None):
        p.error("--checkpoint-dir and --every go together")
    for name in ("window", "batch_size", "chunk_tokens", "every", "num_classes", "vocab_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.local_device_ids is not None:
        try:
            args.local_device_ids = [int(v) for v in args.local_device_ids.split(",")]
        except ValueError:
            p.error(f"--local-device-ids must be comma-separated integers, got "
                    f"{args.local_device_ids!r}")


def _share(args):
    """``(batches, num_classes, vocab_size, description)`` of this process's share."""
    from xsol.data import shards  # noqa: PLC0415

    if args.token_file is not None:
        b = shards.shard_token_file_windows(
            args.token_file, args.window, dtype=args.dtype, part=args.part,
            held_out=args.held_out, chunk_tokens=args.chunk_tokens, vocab_size=args.vocab_size)
        return b, args.num_classes or args.vocab_size, args.vocab_size, \
            f"token file {args.token_file} ({args.part}), window {args.window}"
    if args.idx is not None:
        n = args.num_classes
        if n is None:
            from xsol.data import read_idx  # noqa: PLC0415

            n = int(read_idx(args.idx[1]).max()) + 1
        b = shards.shard_idx_batches(args.idx[0], args.idx[1], args.batch_size)
        return b, n, None, f"IDX files {args.idx[0]} {args.idx[1]}"
    from xsol.data import Vocabulary  # noqa: PLC0415

    vocab = Vocabulary.load(args.vocab)
    b = shards.shard_text_windows(args.text, vocab, args.window, args.batch_size)
    return b, args.num_classes or len(vocab), len(vocab), \
        f"text {args.text}, vocabulary {args.vocab}, window {args.window}"


def main(argv=None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    _check(p, args)
    import jax  # noqa: PLC0415

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    from xsol.stats import collectives as runtime  # noqa: PLC0415 - before any computation

    if args.auto_cluster:
        me = runtime.initialize(local_device_ids=args.local_device_ids)
    elif args.num_processes in (None, 1):
        me = runtime.Process(0, 1)
    else:
        me = runtime.initialize(args.coordinator, args.num_processes, args.process_id,
                                local_device_ids=args.local_device_ids)
    import xsol  # noqa: PLC0415
    from xsol.io import checkpoint  # noqa: PLC0415

    refused = ""
    if me.index == 0:  # refuse a bad --out before counting, in every process
        try:
            checkpoint.check_target(args.out, overwrite=args.overwrite)
        except checkpoint.CheckpointError as e:
            refused = str(e)
    if runtime.gather_ints([1 if refused else 0])[:, 0].any():
        print(f"error: {refused or 'process 0 refused --out (see its error)'}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    batches, num_classes, vocab_size, what = _share(args)
    stats = xsol.distributed.accumulate_distributed(
        batches, num_classes, vocab_size=vocab_size, normalize=args.normalize,
        progress=args.progress, checkpoint_dir=args.checkpoint_dir, every=args.every,
        fingerprint=args.fingerprint)
    seconds = time.perf_counter() - t0
    if me.index == 0:
        path = checkpoint.save(stats, args.out, overwrite=args.overwrite, info=dict(
            source=what, processes=me.count, devices=jax.device_count(),
            seconds=round(seconds, 3)))
        print(f"{int(stats.num_examples)} examples from {me.count} "
              f"process{'es' if me.count > 1 else ''} "
              f"({jax.device_count()} devices) in {seconds:.2f} s; statistics saved to {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
