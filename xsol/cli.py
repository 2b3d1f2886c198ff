"""The ``xsol`` command line.

* ``xsol reproduce --quick``: every claim of Williams & Zhao (2023) measured
  on the embedded data, written up as a report with tables and plots.
* ``xsol fit --dataset digits``: explicit weights on an image dataset, scored
  next to scikit-learn baselines.
* ``xsol fit --text [SOURCE]``: an explicit K-token-window language model on a
  text (the embedded default when no source is given), held-out perplexity
  next to a unigram baseline.
* ``xsol fit ... --out DIR``: also save the fitted model (:mod:`xsol.io.checkpoint`);
  ``xsol eval --model DIR ...`` scores it on other data.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from xsol.core import defaults


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xsol")
    except PackageNotFoundError:
        return "unknown"


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
    from xsol.estimator.baselines import sklearn_baselines
    from xsol.data import load_images

    x_tr, y_tr, x_te, y_te = load_images(args.dataset, args.data_dir, flatten=True)
    if args.limit:
        x_tr, y_tr = x_tr[: args.limit], y_tr[: args.limit]
    from xsol.core.inputs import infer_num_classes

    N = infer_num_classes(np.concatenate([y_tr, y_te]).astype(np.int64))
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
    for r in rows:
        if r.get("skipped"):
            print(f"skipped {r['method']}: {r['skipped']}")
    result = dict(dataset=args.dataset, rows=rows)
    if args.out:
        result["model_dir"] = _save_model(
            args, sol, "the explicit solution (one pass, no temperature)",
            info=dict(data="images", dataset=args.dataset, num_features=int(x_tr.shape[1]),
                      train_examples=len(x_tr), test_accuracy=rows[0]["test_accuracy"],
                      test_loss=rows[0]["test_loss"]))
    return result


def _lm_table(fits, *, unigram: bool = True) -> str:
    rows = []
    if unigram and fits and fits[0].unigram_perplexity is not None:
        rows.append(dict(method="unigram (smoothed counts)", test_ppl=fits[0].unigram_perplexity))
    for f in fits:
        rows.append(dict(method=f"explicit, window K={f.window}", backend=f.backend,
                         count=f.seconds["count"], solve=f.seconds["solve"],
                         score=f.seconds["score"], total=f.seconds["total"],
                         rate=f.tokens_per_second / 1e6, test_ppl=f.held_out_perplexity))
    return _table(rows, [("method", "model", None), ("backend", "backend", None),
                         ("count", "count s", "{:.2f}"), ("solve", "solve s", "{:.2f}"),
                         ("score", "score s", "{:.2f}"), ("total", "total s", "{:.2f}"),
                         ("rate", "M tokens/s", "{:.1f}"),
                         ("test_ppl", "held-out perplexity", "{:.2f}")])


def _backend(args) -> str:
    return "dense" if args.dense else "sparse" if args.sparse else "auto"


def _peak_line() -> str:
    from xsol.lm import peak_rss_bytes
    from xsol.core.memory import format_bytes

    return f"peak memory (resident): {format_bytes(peak_rss_bytes())}"


def fit_tokens(args) -> dict:
    """Explicit K-window language models on a token-id file, streamed."""
    from xsol.data import open_token_file
    from xsol.lm import choose_backend, fit_token_lm

    if args.vocab_size is None:
        raise ValueError("--tokens needs --vocab-size V (every id in the file must be below V)")
    ids = open_token_file(args.tokens, args.dtype)
    print(f"tokens: {args.tokens}: {len(ids):,} ids ({ids.dtype}), vocabulary {args.vocab_size:,}, "
          f"held out {args.held_out:g} (the tail), smoothing={args.smoothing}")
    fits = []
    for K in range(1, args.window + 1):
        print(f"K={K}: {choose_backend(args.vocab_size, K, backend=_backend(args)).reason}")
        fits.append(fit_token_lm(args.tokens, args.vocab_size, window=K, held_out=args.held_out,
                                 smoothing=args.smoothing, backend=_backend(args),
                                 dtype=args.dtype, progress=not args.no_progress))
    print(_lm_table(fits))
    print(_peak_line())
    result = dict(tokens=args.tokens, vocab_size=args.vocab_size, fits=[f.to_dict() for f in fits])
    if args.out:
        result["model_dir"] = _save_lm(args, fits[-1], dict(data="tokens", tokens=args.tokens,
                                                             dtype=args.dtype))
    return result


def fit_text(args) -> dict:
    """Explicit K-window language models on a text, streamed twice (vocabulary, then ids)."""
    from xsol.lm import fit_text_lm

    held_out = args.held_out
    source = args.text if args.text != "embedded" else None
    result = fit_text_lm(source, vocab_size=args.vocab_size or 2000,
                         windows=range(1, args.window + 1), held_out=held_out,
                         tokenizer=args.tokenizer, level=args.level,
                         keep_punctuation=args.punctuation, smoothing=args.smoothing,
                         backend=_backend(args), tokens_path=args.save_tokens,
                         encoding=args.encoding, errors=args.encoding_errors,
                         progress=not args.no_progress)
    f0 = result.fits[0]
    what = (f"tokenizer {args.tokenizer}" if args.tokenizer else f"{args.level} tokens")
    print(f"text: {result.num_tokens:,} {what} ({f0.train_tokens:,} train / "
          f"{f0.held_out_tokens:,} held-out), vocabulary {result.vocab_size:,}, "
          f"smoothing={args.smoothing}; vocabulary pass {result.seconds['vocabulary']:.2f} s, "
          f"encoding pass {result.seconds['encode']:.2f} s, "
          f"{result.tokens_per_second / 1e6:.2f}M tokens/s end to end")
    for f in result.fits:
        print(f"K={f.window}: {f.choice.reason}")
    print(_lm_table(result.fits))
    print(_peak_line())
    out = dict(text=args.text, **result.to_dict())
    if args.out:
        out["model_dir"] = _save_lm(args, result.fits[-1],
                                    dict(data="text", text=args.text, tokenizer=args.tokenizer,
                                         level=args.level),
                                    vocabulary=result.encoder)
    return out


def _save_model(args, model, what: str, *, info: dict, vocabulary=None) -> str:
    """Saves ``model`` to ``--out`` and says where; returns the directory."""
    from xsol.io.checkpoint import save

    path = save(model, args.out, vocabulary=vocabulary, info=info, overwrite=args.overwrite)
    print(f"model: saved {what} ({type(model).__name__}) to {path}")
    return str(path)


def _save_lm(args, fit, info: dict, *, vocabulary=None) -> str:
    """Saves the language model of the largest window to ``--out``."""
    info = dict(info, held_out=args.held_out, held_out_perplexity=fit.held_out_perplexity,
                backend=fit.backend)
    what = f"the K={fit.window} model ({fit.backend})"
    if vocabulary is not None:
        what += f" with its {getattr(vocabulary, 'name', 'vocabulary')}"
    return _save_model(args, fit.model, what, info=info, vocabulary=vocabulary)


def _describe_model(model) -> str:
    if getattr(model, "kind", "ids") == "dense":
        M, N = model.weights.shape
        return f"{type(model).__name__}, {M} features, {N} classes"
    return (f"{type(model).__name__}, window K={model.window}, vocabulary "
            f"{model.vocab_size:,}")


def evaluate(args) -> dict:
    """Scores a model saved by ``fit --out`` (or ``save``) on held-out data."""
    from xsol.io import checkpoint

    meta = checkpoint.read_metadata(args.model)
    if meta["object"] not in ("ExplicitSolution", "SparseExplicitLM"):
        raise ValueError(f"{args.model} holds statistics ({meta['object']}), not a model; "
                         "eval needs a model saved by xsol fit --out or xsol.save(solution, PATH)")
    _check_model(args, meta)  # before the arrays are read
    model = checkpoint.load(args.model)
    print(f"model: {args.model} ({_describe_model(model)})")
    result = _eval_images(args, model) if args.dataset else _eval_lm(args, model)
    return dict(model=str(args.model), object=meta["object"], **result)


def _check_model(args, meta: dict) -> None:
    """The model fits the data asked for: a classifier for --dataset, an LM otherwise."""
    if args.dataset:
        if meta.get("kind") != "dense":
            raise ValueError(f"the model in {args.model} is a language model over token ids; "
                             "evaluate it with --text FILE or --tokens FILE")
        if args.window is not None:
            raise ValueError("--window applies to language models; the model in "
                             f"{args.model} is an image classifier")
        return
    if meta.get("kind") != "ids":
        raise ValueError(f"the model in {args.model} is an image classifier (dense features); "
                         "evaluate it with --dataset NAME")
    if meta.get("num_classes") != meta.get("vocab_size"):
        raise ValueError(f"the model in {args.model} predicts {meta.get('num_classes')} labels "
                         f"from a vocabulary of {meta.get('vocab_size')}; it is not a "
                         "language model")
    if args.window is not None and args.window != meta.get("window"):
        raise ValueError(f"--window {args.window} does not match the model in {args.model}, "
                         f"whose window is K={meta.get('window')}")


def _eval_images(args, model) -> dict:
    from xsol.data import load_images

    _, _, x, y = load_images(args.dataset, args.data_dir, flatten=True)
    M, N = model.weights.shape
    if x.shape[1] != M:
        raise ValueError(f"the {args.dataset} test images have {x.shape[1]} features, but the "
                         f"model in {args.model} takes {M}; evaluate it on the dataset it was "
                         "fitted on")
    if len(y) and int(np.max(y)) >= N:
        raise ValueError(f"the {args.dataset} test labels go up to {int(np.max(y))}, but the "
                         f"model in {args.model} has {N} classes")
    acc, loss = model.score(x, y), model.nll(x, y)
    print(f"{args.dataset} test: {len(y):,} examples, accuracy {acc:.4f}, loss {loss:.4f} nats")
    return dict(dataset=args.dataset, examples=len(y), accuracy=acc, loss=loss)


def _score_ids(args, model, path, dtype, what: str) -> dict:
    from xsol.data import open_token_file
    from xsol.lm import score_solution

    n, K = len(open_token_file(path, dtype)), int(model.window)
    if n <= K:
        raise ValueError(f"{what} holds {n} token(s); the model's window K={K} needs at least "
                         f"{K + 1} to score one next token")
    loss = score_solution(model, path, dtype=dtype)
    return dict(tokens=n, examples=n - K, loss=loss, perplexity=float(np.exp(loss)))


def _eval_lm(args, model) -> dict:
    import os
    import tempfile

    from xsol.io import checkpoint
    from xsol.data import encode_text_to_file, open_token_file

    V = int(model.vocab_size)
    if args.tokens:
        if args.vocab_size is not None and args.vocab_size != V:
            raise ValueError(f"--vocab-size {args.vocab_size:,} does not match the model in "
                             f"{args.model}, whose vocabulary has {V:,} ids")
        res = dict(tokens_file=args.tokens, **_score_ids(args, model, args.tokens, args.dtype,
                                                         args.tokens))
    else:
        if args.vocab_size is not None or args.dtype is not None:
            raise ValueError("--vocab-size and --dtype describe a --tokens file; with --text "
                             "the model's own vocabulary encodes the text")
        encoder = checkpoint.load_encoder(args.model)
        if encoder is None:
            raise ValueError(f"the model in {args.model} has no vocabulary (it was fitted on "
                             "token ids); evaluate it with --tokens FILE")
        if int(encoder.vocab_size) != V:
            raise ValueError(f"the vocabulary stored in {args.model} has "
                             f"{encoder.vocab_size:,} ids, the model {V:,}")
        with tempfile.TemporaryDirectory(prefix="xsol-eval-") as tmp:
            path = os.path.join(tmp, "ids.bin")
            dtype = "uint16" if V <= 1 << 16 else "uint32"
            encode_text_to_file(args.text, path, encoder, dtype=dtype, encoding=args.encoding,
                                errors=args.encoding_errors, progress=not args.no_progress)
            unknown = None
            if hasattr(encoder, "vocab"):  # the built-in vocabulary maps unknown tokens to 0
                unknown = int(np.count_nonzero(open_token_file(path, dtype) == 0))
            res = dict(text=args.text, encoder=encoder.name,
                       **_score_ids(args, model, path, dtype, f"the text {args.text}"),
                       unknown_tokens=unknown)
    unk = "" if res.get("unknown_tokens") is None else (
        f" ({res['unknown_tokens'] / res['tokens']:.1%} <unk>)")
    print(f"{res.get('text') or res['tokens_file']}: {res['tokens']:,} tokens{unk}, "
          f"{res['examples']:,} next tokens scored, loss {res['loss']:.4f} nats, "
          f"perplexity {res['perplexity']:.2f}")
    return res


def _parse(text: str, convert, expected: str):
    """``convert(text)``, or the argparse error ``expected <expected>, got '<text>'``."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _positive_int(text: str) -> int:
    v = _parse(text, int, "a positive integer")
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _seeds(text: str) -> tuple:
    from xsol.experiments.config import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected {e}") from None


def _fraction(text: str) -> float:
    v = _parse(text, float, "a fraction in (0, 1)")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {v:g}")
    return v


def _smoothing(text: str) -> float:
    v = _parse(text, float, "a number >= 0")
    if not (v >= 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    if 0 < v < np.finfo(np.float32).tiny:
        raise argparse.ArgumentTypeError(
            f"smoothing {v:g} is below the smallest normal float32 "
            f"({np.finfo(np.float32).tiny:g}); it would round to 0 in the weights")
    return v


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xsol", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit explicit weights and score them against baselines")
    src = fit.add_mutually_exclusive_group()
    src.add_argument("--dataset", default="digits",
                     help="image dataset: digits (embedded), fashion_mnist, mnist")
    src.add_argument("--text", nargs="?", const="embedded", default=None,
                     help="fit a language model on a text file, directory or tfds name "
                          "(no value: the embedded text), streamed twice")
    src.add_argument("--tokens", default=None, metavar="FILE",
                     help="fit a language model on a token-id file: flat little-endian "
                          "uint16/uint32 ids (--dtype) or a .npy; needs --vocab-size")
    fit.add_argument("--data-dir", default=None, help="directory with IDX files")
    fit.add_argument("--limit", type=_positive_int, default=None,
                     help="use the first N training images")
    fit.add_argument("--smoothing", type=_smoothing, default=defaults.SMOOTHING,
                     help=f"additive smoothing a (default {defaults.SMOOTHING}, "
                          "xsol.core.defaults.SMOOTHING)")
    fit.add_argument("--normalize", choices=("l1", "none"), default=defaults.NORMALIZE)
    fit.add_argument("--level", choices=("word", "char"), default=defaults.LEVEL)
    fit.add_argument("--vocab-size", type=_positive_int, default=None,
                     help="V: the vocabulary cap for --text (default 2000; ignored with "
                          "--tokenizer), the id range for --tokens (required)")
    fit.add_argument("--dtype", choices=("uint16", "uint32", "int32"), default=None,
                     help="item type of a raw --tokens file (default uint16)")
    fit.add_argument("--held-out", type=_fraction, default=defaults.HELD_OUT,
                     help=f"fraction held out at the end of the corpus, for --tokens and --text "
                          f"(default {defaults.HELD_OUT})")
    fit.add_argument("--tokenizer", default=None, metavar="JSON",
                     help="a Hugging Face tokenizers file (tokenizer.json) for --text, "
                          "instead of the built-in word/char tokenizer")
    fit.add_argument("--save-tokens", default=None, metavar="FILE",
                     help="--text: keep the encoded ids in this token file")
    fit.add_argument("--encoding", default="utf-8", help="text file encoding")
    fit.add_argument("--encoding-errors", choices=("strict", "replace", "ignore"),
                     default="strict", help="what to do with bytes the encoding cannot "
                                            "decode (default: stop with an error)")
    which = fit.add_mutually_exclusive_group()
    which.add_argument("--dense", action="store_true",
                       help="force dense statistics (default: dense when they fit in memory)")
    which.add_argument("--sparse", action="store_true",
                       help="force sparse statistics (only the distinct pairs seen)")
    fit.add_argument("--no-progress", action="store_true", help="no progress bars")
    fit.add_argument("--punctuation", action="store_true",
                     help="keep punctuation marks as tokens (word level)")
    fit.add_argument("--window", type=_positive_int, default=None,
                     help="fit windows K = 1..WINDOW (language models; default 2 for --text, "
                          "1 for --tokens)")
    fit.add_argument("--json", default=None, help="also write the results to this JSON file")
    fit.add_argument("--out", default=None, metavar="DIR",
                     help="save the fitted model to this directory (for --text/--tokens: the "
                          "model of the largest window, with the text's vocabulary); score it "
                          "later with xsol eval --model DIR")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace an earlier model in --out (a non-empty folder is refused)")

    ev = sub.add_parser("eval", help="score a saved model (fit --out) on held-out data")
    ev.add_argument("--model", required=True, metavar="DIR", help="a model directory")
    data = ev.add_mutually_exclusive_group(required=True)
    data.add_argument("--text", default=None, metavar="SOURCE",
                      help="a text file, directory of *.txt or tfds:NAME, encoded with the "
                           "model's vocabulary (language models fitted with --text)")
    data.add_argument("--tokens", default=None, metavar="FILE",
                      help="a token-id file (raw uint16/uint32/int32 or .npy)")
    data.add_argument("--dataset", default=None,
                      help="an image dataset's test split: digits, fashion_mnist, mnist")
    ev.add_argument("--data-dir", default=None, help="directory with IDX files (--dataset)")
    ev.add_argument("--vocab-size", type=_positive_int, default=None,
                    help="V of the --tokens file (default: the model's; must match it)")
    ev.add_argument("--dtype", choices=("uint16", "uint32", "int32"), default=None,
                    help="item type of a raw --tokens file (default uint16)")
    ev.add_argument("--window", type=_positive_int, default=None,
                    help="the window K expected of the model (checked)")
    ev.add_argument("--encoding", default="utf-8", help="text file encoding")
    ev.add_argument("--encoding-errors", choices=("strict", "replace", "ignore"),
                    default="strict", help="what to do with bytes the encoding cannot decode")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.add_argument("--json", default=None, help="also write the results to this JSON file")

    rep = sub.add_parser("reproduce", help="measure every claim and write a report")
    scale = rep.add_mutually_exclusive_group()
    scale.add_argument("--quick", dest="scale", action="store_const", const="quick",
                       help="embedded data, a few minutes on 2 CPU cores (default)")
    scale.add_argument("--tiny", dest="scale", action="store_const", const="tiny",
                       help="seconds: a smoke test of the whole pipeline")
    scale.add_argument("--full", dest="scale", action="store_const", const="full",
                       help="real runs: digits + Fashion-MNIST, 10 seeds, 3000 steps")
    rep.add_argument("--datasets", default=None,
                     help="comma-separated image datasets (digits, fashion_mnist, mnist)")
    rep.add_argument("--data-dir", default=None, help="directory with IDX files")
    rep.add_argument("--image-limit", type=_positive_int, default=None, help="first N training images")
    rep.add_argument("--text", default=None, help="text for the LMs (file, directory, tfds:NAME)")
    rep.add_argument("--vocab-size", type=_positive_int, default=None)
    rep.add_argument("--windows", default=None, help="comma-separated LM windows K, e.g. 1,2,3")
    rep.add_argument("--seeds", type=_seeds, default=None,
                     help="a count (5: seeds 0..4) or a comma-separated list (0,3,7)")
    rep.add_argument("--steps", type=_positive_int, default=None,
                     help="steps per gradient run (every baseline, every learning rate)")
    rep.add_argument("--lr-grid", type=_rates, default=None,
                     help="comma-separated learning rates every baseline is swept over "
                          "(default: the scale's log grid)")
    rep.add_argument("--batch-size", type=_positive_int, default=None, help="image minibatch size")
    rep.add_argument("--hidden", default=None, help="comma-separated hidden widths (C5)")
    rep.add_argument("--out", default="xsol-report", help="output folder (default xsol-report)")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    again = rep.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true",
                       help="replace an earlier report in --out (a non-empty folder is refused)")
    again.add_argument("--resume", action="store_true",
                       help="finish an interrupted report in --out, skipping its finished stages")
    rep.set_defaults(scale="quick")
    return parser


def _ints(text):
    return None if text is None else tuple(int(v) for v in text.split(",") if v.strip())


def _rates(text):
    try:
        rates = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive learning rates, e.g. 1e-3,1e-2,0.1, got {text!r}"
        ) from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive learning rates, got {text!r}")
    return tuple(sorted(set(rates)))


def reproduce(args) -> dict:
    """Runs :func:`xsol.experiments.reproduce.run` with the command line's settings."""
    from xsol.experiments.config import ReproduceConfig
    from xsol.experiments.reproduce import run

    cfg = ReproduceConfig.for_scale(
        args.scale,
        image_datasets=tuple(args.datasets.split(",")) if args.datasets else None,
        data_dir=args.data_dir, image_limit=args.image_limit, text_source=args.text,
        vocab_size=args.vocab_size, windows=_ints(args.windows),
        seeds=args.seeds, steps=args.steps, lr_grid=args.lr_grid,
        batch_size=args.batch_size, hidden_widths=_ints(args.hidden), out_dir=args.out,
    )
    return run(cfg, progress=not args.no_progress, overwrite=args.overwrite, resume=args.resume)


def _run(args) -> int:
    if args.command == "fit":
        if args.window is None:
            args.window = 1 if args.tokens else 2
        if args.out:  # refused before the fit, not after it
            from xsol.io.checkpoint import check_target

            check_target(args.out, overwrite=args.overwrite)
        if args.tokens:
            result = fit_tokens(args)
        elif args.text:
            result = fit_text(args)
        else:
            result = fit_images(args)
        if args.json:
            from xsol.core.serialize import write_json

            write_json(args.json, result)
        return 0
    if args.command == "eval":
        result = evaluate(args)
        if args.json:
            from xsol.core.serialize import write_json

            write_json(args.json, result)
        return 0
    if args.command == "reproduce":
        reproduce(args)
        return 0
    return 2


#: Errors that describe bad input or a missing resource: one line, exit 2.
_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError,
                ImportError)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except _USER_ERRORS as e:
        if args.debug:
            raise
        print(f"xsol: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xsol: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
