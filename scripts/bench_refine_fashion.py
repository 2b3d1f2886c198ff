#!/usr/bin/env python
"""The ``refine`` benchmark on all of Fashion-MNIST (60k x 784), with its own budgets.

    python scripts/bench_refine_fashion.py --data-dir /usr/share/datasets/fashion-mnist \\
        --out benchmarks/refine-fashion-cpu-2core

Writes ``OUT.json``, ``OUT.txt`` (the table of :func:`benchmarks.refine.format_refine`)
and ``OUT.png`` (loss gap against passes). The settings are printed with the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's benchmarks/

from benchmarks import refine as bench
from benchmarks.timing import machine_info
from xsol.core.serialize import to_jsonable, write_json, write_text


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=bench.FASHION_DIR)
    p.add_argument("--out", default="refine-fashion")
    p.add_argument("--max-seconds", type=float, default=60.0,
                   help="time budget per method (per learning rate for Adam)")
    p.add_argument("--learning-rates", default="0.1,0.3,1,3",
                   help="Adam's grid, chosen by validation loss")
    a = p.parse_args(argv)
    from xsol import data

    f = data.load_images("fashion_mnist", a.data_dir, flatten=True)
    settings = bench.Settings(max_seconds=a.max_seconds,
                              learning_rates=tuple(float(v) for v in a.learning_rates.split(",")))
    task = bench.bench_task("fashion_mnist", f.x_train, f.y_train, f.x_test, f.y_test, 10,
                            kind="dense", settings=settings, say=print)
    res = {"settings": dataclasses.asdict(settings), "method": bench.METHOD_NOTE,
           "tasks": [task], "machine": machine_info()}
    res["plot"] = bench.plot_refine(res, f"{a.out}.png")
    text = bench.format_refine(res)
    print(text)
    write_text(f"{a.out}.txt", text + "\n")
    write_json(f"{a.out}.json", to_jsonable(res))


if __name__ == "__main__":
    main()
