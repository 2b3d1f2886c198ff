#!/usr/bin/env python
"""Benchmarks xsol's explicit solutions against read floors, numpy, scikit-learn and Adam.

Examples::

    python scripts/bench.py --quick --out /tmp/bench.json     # seconds, smoke sizes
    python scripts/bench.py --out bench.json                   # the full run (< 10 min)
    python scripts/bench.py --sections images counting         # a subset
    python scripts/bench.py --only corpus --quick --out /tmp/c.json  # corpus section, ~1 min
    python scripts/bench.py --only corpus --wait-quiet 600 --out corpus.json  # full scale
    python scripts/bench.py --only refine --quick --out /tmp/r.json  # refinement, ~2 min
    python scripts/bench.py --only scaleout --out /tmp/s.json  # accumulate vs 1/2/4 devices

On a GPU pass ``--peak-gbps`` (the device's memory bandwidth) to report the
fraction achieved. Timing targets are reported, not asserted.

The ``refine`` section (passes and seconds to the optimal training loss:
GIS and L-BFGS on co-occurrence statistics against Adam and L-BFGS with
backpropagation, on digits, Fashion-MNIST when present and a K=2 text LM)
runs only when named.

The ``corpus`` section (token files and raw text to fitted language models,
against plain-Python ``Counter`` and ``nltk.lm``) runs only when named. At
full scale (1M-100M tokens, V up to 50257, 5-200 MB of text, baselines up to
600 s each) it takes up to an hour and needs about 1.5 GB of disk under
``--workdir`` and 10+ GB of free memory (the dense V = 32000 matrices); run it
on a quiet machine. Its ``--corpus-*``, ``--text-*`` and ``--baseline-*``
options override the scale that ``--quick`` selects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's benchmarks/

from benchmarks import format_table, run_benchmarks
from benchmarks.corpus import parse_count
from benchmarks.run import ALL_SECTIONS, SECTIONS
from xsol.core.memory import parse_bytes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke sizes (seconds)")
    p.add_argument("--out", default=None, help="write the results as JSON to this path")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repetitions per candidate after warm-up (default 7; quick 3)")
    p.add_argument("--peak-gbps", type=float, default=None,
                   help="peak memory bandwidth of the device, for the achieved fraction")
    p.add_argument("--adam-seconds", type=float, default=None,
                   help="training-time budget per Adam run (default 60; quick 1)")
    p.add_argument("--sections", "--only", nargs="+", choices=ALL_SECTIONS, default=None,
                   help=f"run only these sections (default: {' '.join(SECTIONS)}; "
                        "'corpus', 'refine' and 'scaleout' run only when named)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each section wait up to SECONDS for other processes to "
                        "leave the CPUs mostly idle (shared machines)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    c = p.add_argument_group("corpus section (defaults: full scale, or the --quick scale)")
    c.add_argument("--corpus-sizes", nargs="+", type=parse_count, default=None, metavar="N",
                   help="token-file sizes, e.g. 1M 10M 30M 100M (quick: 200k 1M)")
    c.add_argument("--corpus-vocab", nargs="+", type=int, default=None, metavar="V",
                   help="vocabulary sizes (default 2000 32000 50257; quick 2000 32000)")
    c.add_argument("--corpus-windows", nargs="+", type=int, default=None, metavar="K",
                   help="context windows K (default 1 2)")
    c.add_argument("--corpus-backends", nargs="+", choices=("auto", "dense", "sparse"),
                   default=None, help="fit_token_lm backends to measure (default auto)")
    c.add_argument("--corpus-timeout", type=float, default=None, metavar="SECONDS",
                   help="time limit of one xsol run (default 3600; quick 600)")
    c.add_argument("--text-sizes", nargs="+", type=float, default=None, metavar="MB",
                   help="raw-text sizes in MB (10^6 bytes; default 5 20 60 200, quick 1)")
    c.add_argument("--text-vocab", type=int, default=None,
                   help="word vocabulary cap of the raw-text runs (default 32000)")
    c.add_argument("--baseline-timeout", type=float, default=None, metavar="SECONDS",
                   help="time limit of one baseline run (default 600; quick 60); larger sizes "
                        "are skipped once one does not finish")
    c.add_argument("--baseline-vocab", type=int, default=None,
                   help="V of the baseline corpora (default 32000)")
    c.add_argument("--baseline-memory", type=parse_bytes, default=None, metavar="BYTES",
                   help="address-space limit of a baseline run, e.g. 12G (default: half the "
                        "machine's memory)")
    c.add_argument("--nltk-score-max", type=int, default=None,
                   help="held-out bigrams NLTK scores; its scoring time is extrapolated "
                        "beyond (default 100000)")
    c.add_argument("--workdir", default=None,
                   help="where the token and text files go (default: a temporary directory "
                        "under /tmp, deleted at the end)")
    c.add_argument("--keep-data", action="store_true",
                   help="keep the generated files (a later run with the same --workdir "
                        "reuses them)")
    a = p.parse_args(argv)
    corpus = {"sizes": a.corpus_sizes, "vocab": a.corpus_vocab, "windows": a.corpus_windows,
              "backends": a.corpus_backends, "timeout": a.corpus_timeout,
              "text_sizes_mb": a.text_sizes, "text_vocab": a.text_vocab,
              "baseline_timeout": a.baseline_timeout, "baseline_vocab": a.baseline_vocab,
              "baseline_memory_bytes": a.baseline_memory, "nltk_score_max": a.nltk_score_max,
              "workdir": a.workdir, "keep_data": a.keep_data or None}
    res = run_benchmarks(quick=a.quick, repeats=a.repeats, out=a.out, peak_gbps=a.peak_gbps,
                         adam_seconds=a.adam_seconds, sections=a.sections, progress=not a.quiet,
                         wait_quiet=a.wait_quiet,
                         corpus={k: v for k, v in corpus.items() if v is not None})
    print(format_table(res))
    if a.out:
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
