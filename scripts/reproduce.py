#!/usr/bin/env python
"""Long reproduction runs for GPU/TPU machines (or patient CPUs).

Calls :func:`xsol.experiments.reproduce.run`; every flag maps to a field of
:class:`xsol.experiments.config.ReproduceConfig`. Examples:

    # MNIST through tensorflow-datasets on a GPU, 10 seeds, 3000 steps per tuned baseline
    python scripts/reproduce.py --scale full --datasets digits,mnist --out runs/mnist

    # Fashion-MNIST from local IDX files, wider hidden layers, a larger vocabulary
    python scripts/reproduce.py --scale full --datasets fashion_mnist --data-dir ~/data \\
        --hidden 64,256,1024 --vocab-size 4000 --text tfds:tiny_shakespeare --out runs/fashion
"""

from __future__ import annotations

import argparse

from xsol.experiments.config import ReproduceConfig, parse_seeds
from xsol.experiments.reproduce import run


def _floats(text):
    return None if text is None else tuple(float(v) for v in text.split(",") if v.strip())


def _ints(text):
    return None if text is None else tuple(int(v) for v in text.split(",") if v.strip())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=("tiny", "quick", "full"), default="full")
    p.add_argument("--datasets", default=None, help="comma-separated: digits,fashion_mnist,mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--image-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--text", default=None, help="file, directory or tfds:NAME (default: embedded)")
    p.add_argument("--vocab-size", type=int, default=None)
    p.add_argument("--windows", default=None, help="e.g. 1,2,3")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--seeds", type=parse_seeds, default=None,
                   help="a count (5: seeds 0..4) or a comma-separated list (0,3,7), as in "
                        "xsol reproduce")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr-grid", default=None,
                   help="learning rates every baseline is swept over, e.g. 1e-3,1e-2,0.1,1 "
                        "(default: the scale's log grid)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lm-batch-size", type=int, default=None)
    p.add_argument("--hidden", default=None, help="hidden widths, e.g. 64,256")
    p.add_argument("--lm-smoothing", type=float, default=None)
    p.add_argument("--image-smoothing", type=float, default=None)
    p.add_argument("--out", default="xsol-report")
    p.add_argument("--no-progress", action="store_true")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true",
                       help="replace an earlier report in --out")
    again.add_argument("--resume", action="store_true",
                       help="finish an interrupted report in --out")
    a = p.parse_args(argv)
    cfg = ReproduceConfig.for_scale(
        a.scale,
        image_datasets=tuple(a.datasets.split(",")) if a.datasets else None,
        data_dir=a.data_dir, image_limit=a.image_limit, test_limit=a.test_limit,
        text_source=a.text, vocab_size=a.vocab_size, windows=_ints(a.windows),
        max_tokens=a.max_tokens, seeds=a.seeds, steps=a.steps,
        lr_grid=_floats(a.lr_grid), batch_size=a.batch_size, lm_batch_size=a.lm_batch_size,
        hidden_widths=_ints(a.hidden), lm_smoothing=a.lm_smoothing,
        image_smoothing=a.image_smoothing, out_dir=a.out,
    )
    run(cfg, progress=not a.no_progress, overwrite=a.overwrite, resume=a.resume)


if __name__ == "__main__":
    main()
