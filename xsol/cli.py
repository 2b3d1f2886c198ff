"""The ``xsol`` command line.

* ``xsol reproduce --quick``: every claim of Williams & Zhao (2023) measured
  on the embedded data, written up as a report with tables and plots.
* ``xsol fit --dataset digits``: explicit weights on an image dataset, scored
  next to scikit-learn baselines.
* ``xsol fit --text [SOURCE]``: an explicit K-token-window language model on a
  text (the embedded default when no source is given), held-out perplexity
  next to a unigram baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _table(rows, columns) -> str:
    """A GitHub-markdown table of ``rows`` (dicts) over ``columns`` ((key, title, fmt))."""
    head = "| " + " | ".join(t for _, t, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            cells.append("" if v is None else (fmt.format(v) if fmt else str(v)))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])


def fit_images(args) -> dict:
    """Explicit solution on an image dataset vs scikit-learn baselines."""
    import xsol
    from xsol.baselines import sklearn_baselines
    from xsol.data import load_images

    x_tr, y_tr, x_te, y_te = load_images(args.dataset, args.data_dir, flatten=True)
    if args.limit:
        x_tr, y_tr = x_tr[: args.limit], y_tr[: args.limit]
    N = int(max(y_tr.max(), y_te.max())) + 1
    t0 = time.perf_counter()
    sol = xsol.fit_explicit(x_tr, y_tr, N, smoothing=args.smoothing, normalize=args.normalize)
    sol.weights.block_until_ready()
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = sol.calibrate(x_tr, y_tr)
    t_cal = time.perf_counter() - t0 + t_fit

    def row(name, s, secs):
        return dict(method=name, fit_seconds=secs, train_loss=s.nll(x_tr, y_tr),
                    test_loss=s.nll(x_te, y_te), train_accuracy=s.score(x_tr, y_tr),
                    test_accuracy=s.score(x_te, y_te))

    prior = np.bincount(y_tr, minlength=N) / len(y_tr)
    rows = [
        row("explicit (xsol, one pass)", sol, t_fit),
        row(f"explicit + temperature (beta={cal.inverse_temperature:.1f})", cal, t_cal),
        *sklearn_baselines(x_tr, y_tr, x_te, y_te, N, normalize=args.normalize == "l1"),
        dict(method="label prior only", train_loss=float(-np.mean(np.log(prior[y_tr]))),
             test_loss=float(-np.mean(np.log(np.clip(prior[y_te], 1e-12, None)))),
             train_accuracy=float(np.mean(y_tr == prior.argmax())),
             test_accuracy=float(np.mean(y_te == prior.argmax()))),
    ]
    cols = [("method", "method", None), ("fit_seconds", "fit s", "{:.3f}"),
            ("train_loss", "train loss", "{:.4f}"), ("test_loss", "test loss", "{:.4f}"),
            ("train_accuracy", "train acc", "{:.4f}"), ("test_accuracy", "test acc", "{:.4f}")]
    print(f"{args.dataset}: {len(x_tr)} train / {len(x_te)} test examples, "
          f"{x_tr.shape[1]} features, {N} classes, normalize={args.normalize}, "
          f"smoothing={args.smoothing}")
    print(_table(rows, cols))
    return dict(dataset=args.dataset, rows=rows)


def fit_text(args) -> dict:
    """Explicit K-window language model on a text vs a unigram baseline."""
    import xsol
    from xsol.data import context_windows, load_text, split_tokens, tokenize

    text = load_text(args.text if args.text != "embedded" else None)
    ids, vocab = tokenize(text, level=args.level, vocab_size=args.vocab_size,
                          keep_punctuation=args.punctuation)
    train, held = split_tokens(ids, held_out=0.1)
    V = len(vocab)
    rows = []
    uni = (np.bincount(train, minlength=V) + args.smoothing) / (len(train) + V * args.smoothing)
    rows.append(dict(method="unigram (smoothed counts)",
                     train_ppl=float(np.exp(-np.mean(np.log(uni[train])))),
                     test_ppl=float(np.exp(-np.mean(np.log(uni[held]))))))
    for K in range(1, args.window + 1):
        Xtr, ytr = context_windows(train, K)
        Xte, yte = context_windows(held, K)
        t0 = time.perf_counter()
        sol = xsol.fit_explicit(Xtr, ytr, V, vocab_size=V, smoothing=args.smoothing)
        sol.weights.block_until_ready()
        dt = time.perf_counter() - t0
        rows.append(dict(method=f"explicit, window K={K}", fit_seconds=dt,
                         train_ppl=sol.perplexity(Xtr, ytr), test_ppl=sol.perplexity(Xte, yte)))
    print(f"text: {len(ids)} {args.level} tokens ({len(train)} train / {len(held)} held-out), "
          f"vocabulary {V}, smoothing={args.smoothing}")
    print(_table(rows, [("method", "model", None), ("fit_seconds", "fit s", "{:.3f}"),
                        ("train_ppl", "train perplexity", "{:.2f}"),
                        ("test_ppl", "held-out perplexity", "{:.2f}")]))
    return dict(text=args.text, vocab_size=V, rows=rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xsol", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit explicit weights and score them against baselines")
    src = fit.add_mutually_exclusive_group()
    src.add_argument("--dataset", default="digits",
                     help="image dataset: digits (embedded), fashion_mnist, mnist")
    src.add_argument("--text", nargs="?", const="embedded", default=None,
                     help="fit a language model on a text file, directory or tfds name "
                          "(no value: the embedded text)")
    fit.add_argument("--data-dir", default=None, help="directory with IDX files")
    fit.add_argument("--limit", type=int, default=None, help="use the first N training images")
    fit.add_argument("--smoothing", type=float, default=None,
                     help="additive smoothing a (default 0.01 for images, 0.1 for text)")
    fit.add_argument("--normalize", choices=("l1", "none"), default="l1")
    fit.add_argument("--level", choices=("word", "char"), default="word")
    fit.add_argument("--vocab-size", type=int, default=2000)
    fit.add_argument("--punctuation", action="store_true",
                     help="keep punctuation marks as tokens (word level)")
    fit.add_argument("--window", type=int, default=2, help="largest window K for text")
    fit.add_argument("--json", default=None, help="also write the results to this JSON file")

    rep = sub.add_parser("reproduce", help="measure every claim and write a report")
    scale = rep.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick",
                       help="embedded data, a few minutes on 2 CPU cores (default)")
    scale.add_argument("--tiny", dest="scale", action="store_const", const="tiny",
                       help="seconds: a smoke test of the whole pipeline")
    scale.add_argument("--full", dest="scale", action="store_const", const="full",
                       help="real runs: digits + Fashion-MNIST, 5 seeds, 3000 steps")
    rep.add_argument("--datasets", default=None,
                     help="comma-separated image datasets (digits, fashion_mnist, mnist)")
    rep.add_argument("--data-dir", default=None, help="directory with IDX files")
    rep.add_argument("--image-limit", type=int, default=None, help="first N training images")
    rep.add_argument("--text", default=None, help="text for the LMs (file, directory, tfds:NAME)")
    rep.add_argument("--vocab-size", type=int, default=None)
    rep.add_argument("--windows", default=None, help="comma-separated LM windows K, e.g. 1,2,3")
    rep.add_argument("--seeds", type=int, default=None, help="number of seeds")
    rep.add_argument("--steps", type=int, default=None, help="Adam steps per run")
    rep.add_argument("--batch-size", type=int, default=None, help="image minibatch size")
    rep.add_argument("--hidden", default=None, help="comma-separated hidden widths (C5)")
    rep.add_argument("--out", default="xsol-report", help="output folder (default xsol-report)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.set_defaults(scale="quick")
    return parser


def _ints(text):
    return None if text is None else tuple(int(v) for v in text.split(",") if v.strip())


def reproduce(args) -> dict:
    """Runs :func:`xsol.experiments.reproduce.run` with the command line's settings."""
    from xsol.experiments.config import ReproduceConfig
    from xsol.experiments.reproduce import run

    cfg = ReproduceConfig.for_scale(
        args.scale,
        image_datasets=tuple(args.datasets.split(",")) if args.datasets else None,
        data_dir=args.data_dir, image_limit=args.image_limit, text_source=args.text,
        vocab_size=args.vocab_size, windows=_ints(args.windows),
        seeds=tuple(range(args.seeds)) if args.seeds else None, steps=args.steps,
        batch_size=args.batch_size, hidden_widths=_ints(args.hidden), out_dir=args.out,
    )
    return run(cfg, progress=not args.no_progress)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "fit":
        if args.smoothing is None:
            args.smoothing = 0.1 if args.text else 0.01
        result = fit_text(args) if args.text else fit_images(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    if args.command == "reproduce":
        reproduce(args)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
