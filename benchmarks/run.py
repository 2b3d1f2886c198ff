"""``run_benchmarks``: every xsol benchmark in one run, as a JSON-ready dict.

Sections (each can be skipped): ``images`` (explicit fit vs floors and
baselines; time to the explicit numbers), ``counting`` (tokens/s vs
``numpy.bincount``), ``lm`` (explicit fit vs Adam to equal training loss),
``scaling`` (time and peak memory vs data size and vocabulary) and ``sparse``
(V = 64k bigram and K = 3 windows on 10M tokens). Targets are evaluated on
the ratios measured in this run and reported, never asserted.

One more section runs only when selected (it needs a quiet machine, minutes
to an hour, and gigabytes of disk and memory at full scale): ``corpus``
(:mod:`benchmarks.corpus`: token files of 1M-100M tokens and 5-200 MB of raw
text to fitted, held-out-evaluated language models, a subprocess each, against
plain-Python ``Counter`` and ``nltk.lm`` baselines; its own targets) and
``refine`` (:mod:`benchmarks.refine`: passes and seconds to within 1e-3 of the
optimal training loss for backprop-free refinement from the explicit solution
against Adam and L-BFGS; about 2 minutes with ``quick``, tens of minutes at full
scale with Fashion-MNIST), and ``scaleout`` (:mod:`benchmarks.scaleout`: time per
batch and throughput of ``xsol.accumulate`` on token ids and dense features
against 1, 2 and 4 forced CPU devices, a subprocess each; a few minutes at full
scale).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

from benchmarks import corpus as corpus_bench
from benchmarks import images, scaling, tokens
from benchmarks import refine as refine_bench
from benchmarks.timing import cpu_busy_fraction, load_average, machine_info, wait_for_quiet
from xsol.core.serialize import to_jsonable

SECTIONS = ("images", "counting", "lm", "scaling", "sparse")
#: Sections that run only when selected by name.
OPTIONAL_SECTIONS = ("corpus", "refine", "scaleout")
ALL_SECTIONS = SECTIONS + OPTIONAL_SECTIONS

#: The targets: (name, JSON path of a ratio, comparison, threshold, meaning).
TARGETS = (
    ("explicit fit <= 2.0x read floor (float32)",
     ("images", "fit", "ratios", "fit_f32_over_numpy_floor"), "<=", 2.0),
    ("explicit fit <= 1.5x read floor (float32, goal)",
     ("images", "fit", "ratios", "fit_f32_over_numpy_floor"), "<=", 1.5),
    ("explicit fit <= 2.0x read floor (uint8)",
     ("images", "fit", "ratios", "fit_u8_over_numpy_floor_u8"), "<=", 2.0),
    ("explicit fit <= 1.5x read floor (uint8, goal)",
     ("images", "fit", "ratios", "fit_u8_over_numpy_floor_u8"), "<=", 1.5),
    ("explicit fit >= 5x faster than MultinomialNB (float32)",
     ("images", "fit", "ratios", "mnb_f32_over_fit_f32"), ">=", 5.0),
    ("explicit fit >= 5x faster than MultinomialNB (uint8)",
     ("images", "fit", "ratios", "mnb_u8_over_fit_u8"), ">=", 5.0),
    ("bigram counting >= numpy.bincount speed (validated accumulate)",
     ("counting", "bigram", "ratios", "numpy_bincount_over_xsol_accumulate"), ">=", 1.0),
    ("K=3 counting >= numpy.bincount speed (validated accumulate)",
     ("counting", "window3", "ratios", "numpy_bincount_over_xsol_accumulate"), ">=", 1.0),
    ("bigram LM: Adam time to explicit loss >= 100x fit",
     ("lm", "bigram", "ratios_adam_time_over_explicit", "explicit_train_loss"), ">=", 100.0),
    ("K=3 LM: Adam time to explicit loss >= 100x fit",
     ("lm", "window3", "ratios_adam_time_over_explicit", "explicit_train_loss"), ">=", 100.0),
)


def _get(d, path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def evaluate_targets(results: dict) -> list[dict]:
    """Each target with its measured ratio and whether it was met.

    For the LM targets an unreached loss gives ``met = True`` when Adam's
    whole budget already exceeds the target ratio (``ratio`` is then the lower
    bound ``budget / fit time`` and ``bound`` says so). The ``corpus``
    section's targets (:func:`benchmarks.corpus.corpus_targets`, measured
    values in their own units) follow when that section ran.
    """
    out = []
    for name, path, op, thr in TARGETS:
        value = _get(results, path)
        bound = None
        if value is None and path[0] == "lm":
            value = _get(results, ("lm", path[1], "lower_bound_ratio_if_not_reached"))
            bound = "lower bound: Adam did not reach the loss within its budget"
        if value is None:
            out.append({"target": name, "ratio": None, "met": None, "note": "not measured"})
            continue
        met = value <= thr if op == "<=" else value >= thr
        out.append({"target": name, "ratio": value, "threshold": thr, "op": op, "met": met,
                    "note": bound})
    if isinstance(results.get("corpus"), dict):
        out.extend(results["corpus"].get("targets") or [])
    return out


def run_benchmarks(*, quick: bool = False, repeats: int | None = None, out: str | None = None,
                   peak_gbps: float | None = None, adam_seconds: float | None = None,
                   sections: Iterable[str] | None = None, progress: bool = True,
                   wait_quiet: float = 0.0, corpus: dict | None = None) -> dict:
    """Runs the benchmarks and returns (and optionally writes) the results.

    Args:
      quick: small smoke sizes (seconds in total).
      repeats: timed repetitions per candidate after warm-up (default 7, quick 3).
      out: path of a JSON file to write.
      peak_gbps: the device's peak memory bandwidth; bandwidth figures then
        include the fraction of it achieved.
      adam_seconds: training-time budget of each LM Adam run (default 45 s, quick
        0.5 s); the image runs get a third of it (L-BFGS half), the real-text LM half.
      sections: subset of :data:`ALL_SECTIONS` (default: :data:`SECTIONS`;
        ``"corpus"`` runs only when named).
      progress: print what runs.
      wait_quiet: before each section, wait up to this many seconds for the
        CPUs to be mostly idle (other processes on a shared machine); what
        was seen is recorded under ``"contention"``.
      corpus: options of the ``corpus`` section (overrides of
        :func:`benchmarks.corpus.default_config`, whose scale follows
        ``quick``). Its plot is written next to ``out`` (``<out>_corpus.png``).
        The ``refine`` section's plot goes to ``<out>_refine.png``, the
        ``scaleout`` section's to ``<out>_scaleout.png``.

    Returns:
      ``{"machine", "config", <section>..., "targets", "seconds"}``.
    """
    t_start = time.perf_counter()
    repeats = int(repeats or (3 if quick else 7))
    adam_s = float(adam_seconds or (0.5 if quick else 45.0))
    sections = tuple(sections or SECTIONS)
    bad = set(sections) - set(ALL_SECTIONS)
    if bad:
        raise ValueError(f"unknown sections {sorted(bad)}; choose from {ALL_SECTIONS}")

    def say(msg):
        if progress:
            print(f"[bench {time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    res: dict = {"machine": machine_info(),
                 "config": {"quick": quick, "repeats": repeats, "adam_seconds": adam_s,
                            "peak_gbps": peak_gbps, "sections": list(sections),
                            "wait_quiet_s": wait_quiet, "corpus": corpus},
                 "contention": {}}

    def settle(section):
        if wait_quiet > 0:
            seen = wait_for_quiet(timeout=wait_quiet)
        else:
            seen = {"waited_s": 0.0, "busy_fraction": cpu_busy_fraction(0.2)}
        seen["load_average"] = load_average()
        res["contention"][section] = seen

    if "images" in sections:
        settle("images")
        say("images: explicit fit vs floor and baselines")
        Xtr, ytr, Xte, yte, source = images.load_fashion(quick)
        fit = images.bench_explicit_fit(Xtr, ytr, 10, repeats=repeats, peak_gbps=peak_gbps)
        say("images: Adam and L-BFGS to the explicit numbers")
        ttt = images.bench_time_to_target(
            Xtr, ytr, Xte, yte, 10, fit["timings"]["fit_f32"]["median_s"], quick=quick,
            adam_seconds=adam_s / 3, lbfgs_seconds=adam_s / 2)
        res["images"] = {"data": source, "fit": fit, "time_to_target": ttt}

    if "counting" in sections:
        settle("counting")
        n = 50_000 if quick else 10_000_000
        V = 300 if quick else 2000
        ids = tokens.zipf_tokens(n + 3, V)
        res["counting"] = {}
        for name, K in (("bigram", 1), ("window3", 3)):
            say(f"counting: {name}, {n} tokens")
            X, y = tokens.windows(ids, K)
            res["counting"][name] = tokens.bench_counting(
                X, y, V, repeats=repeats, label=f"i.i.d. Zipfian ids, V={V}")
        real, what = tokens.real_text_ids(2000)
        if real is not None:
            say("counting: real text")
            Vr = int(real.max()) + 1
            X, y = tokens.windows(tokens.tile_to(real, n + 1), 1)
            res["counting"]["real_text_bigram"] = tokens.bench_counting(
                X, y, Vr, repeats=repeats,
                label=f"{what}, {len(real)} tokens tiled to {n}")
        else:
            res["counting"]["real_text_bigram"] = {"skipped": what}

    if "lm" in sections:
        settle("lm")
        n = 3_000 if quick else 200_000
        V = 100 if quick else 2000
        ids = tokens.zipf_markov_tokens(n + 3, V)
        res["lm"] = {}
        for name, K in (("bigram", 1), ("window3", 3)):
            say(f"lm: {name} explicit vs Adam ({adam_s:g} s budget)")
            res["lm"][name] = tokens.bench_lm_adam(
                ids, V, K, repeats=repeats, label=f"Zipfian Markov chain, V={V}, {n} tokens",
                adam_seconds=adam_s, quick=quick)
        real, what = tokens.real_text_ids(V)
        if real is not None and not quick:
            say("lm: real-text bigram explicit vs Adam")
            res["lm"]["real_text_bigram"] = tokens.bench_lm_adam(
                real, int(real.max()) + 1, 1, repeats=repeats,
                label=f"{what}, {len(real)} tokens", adam_seconds=adam_s / 2, quick=quick)

    if "scaling" in sections:
        settle("scaling")
        pts = scaling.default_points(quick)
        res["scaling"] = {"method": " ".join(scaling.__doc__.split("\n\n")[1].split()),
                          "in_process": quick}
        for name, points in pts.items():
            say(f"scaling: {name} ({len(points)} points"
                + (", in process)" if quick else ", a subprocess each)"))
            res["scaling"][name] = scaling.run_scaling(points, in_process=quick)

    if "sparse" in sections:
        settle("sparse")
        n = 20_000 if quick else 10_000_000
        V = 1024 if quick else 65536
        specs = [
            {"method": "sparse", "tokens": n, "vocab_size": V, "window": 1,
             "score_examples": 2_000 if quick else 200_000, "dense_weights": True},
            {"method": "sparse", "tokens": n, "vocab_size": V, "window": 3,
             "score_examples": 100 if quick else 2_000},
            {"method": "dense", "tokens": n, "vocab_size": V, "window": 1},
        ]
        say(f"sparse: V={V}, {n} tokens")
        res["sparse"] = scaling.run_scaling(specs, in_process=quick)

    if "corpus" in sections:
        settle("corpus")
        say("corpus: token files and raw text to fitted models, and baselines")
        plot = os.path.splitext(out)[0] + "_corpus.png" if out else None
        res["corpus"] = corpus_bench.run_corpus(corpus, quick=quick, plot_path=plot, say=say,
                                                wait_quiet=wait_quiet)

    if "refine" in sections:
        settle("refine")
        say("refine: to the optimum with and without backpropagation")
        plot = os.path.splitext(out)[0] + "_refine.png" if out else None
        res["refine"] = refine_bench.run_refine(quick=quick, say=say, plot_path=plot)

    if "scaleout" in sections:
        settle("scaleout")
        say("scaleout: xsol.accumulate against the local device count")
        from benchmarks import (
            scaleout as scaleout_bench,
        )  # noqa: PLC0415 - lazily, so `python -m benchmarks.scaleout` runs cleanly

        plot = os.path.splitext(out)[0] + "_scaleout.png" if out else None
        res["scaleout"] = scaleout_bench.run_scaleout(quick=quick, repeats=repeats, say=say,
                                                      plot_path=plot)

    res["targets"] = evaluate_targets(res)
    res["machine"]["load_average_end"] = load_average()
    res["seconds"] = time.perf_counter() - t_start
    if out:
        with open(out, "w") as f:
            json.dump(to_jsonable(res), f, indent=1)
    return res


def _fmt_s(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _fmt_b(b):
    if b is None:
        return "-"
    return f"{b / 2**20:.0f} MiB"


def format_table(res: dict) -> str:
    """A plain-text summary: timings, ratios, the targets and the scaling points."""
    lines = []
    m = res.get("machine", {})
    lines.append(f"machine: {m.get('usable_cpus')} CPUs ({m.get('cpu_model')}), "
                 f"jax {m.get('jax_version')}, devices {m.get('devices')}, "
                 f"load {m.get('load_average_start')} -> {m.get('load_average_end')}")
    cont = res.get("contention") or {}
    if cont:
        lines.append("CPU busy before each section (other processes): " + ", ".join(
            f"{k} {v['busy_fraction']:.0%}" if v.get("busy_fraction") is not None else f"{k} ?"
            for k, v in cont.items()))
    img = res.get("images")
    if img:
        f = img["fit"]
        lines.append(f"\n== images: {img['data']} {f['shape']} (median of "
                     f"{res['config']['repeats']}, compile = first - median)")
        for k, v in f["timings"].items():
            bw = f["bandwidth"].get(k, {}).get("gb_per_s")
            lines.append(f"  {k:28s} {_fmt_s(v['median_s']):>10s}   compile {_fmt_s(v['compile_s']):>9s}"
                         + (f"   {bw:6.1f} GB/s" if bw else ""))
        for k, v in f["ratios"].items():
            lines.append(f"  {k:40s} {v:8.2f}")
        t = img["time_to_target"]
        ex = t["explicit"]
        lines.append(f"  explicit: train loss {ex['plain']['train_loss']:.4f} (calibrated "
                     f"{ex['calibrated']['train_loss']:.4f}, beta "
                     f"{ex['calibrated']['inverse_temperature']:.2f}), test acc "
                     f"{ex['plain']['test_accuracy']:.4f}; calibrate {_fmt_s(ex['calibrate_seconds'])}")
        a = t["adam"]
        lines.append(f"  Adam (full batch, lr {a['best_learning_rate']}, {a['best']['steps']} steps, "
                     f"{a['best']['train_seconds']:.1f} s of {a['budget']['seconds']:.0f} s budget):")
        for k, r in a["best"]["reached"].items():
            lines.append(f"    {k:26s} " + ("not reached" if r is None else
                                             f"{r['steps']} steps, {_fmt_s(r['seconds'])}"))
        lb = t["lbfgs"]
        lines.append(f"  L-BFGS (sklearn, ladder up to max_iter {lb['rungs'][-1]['max_iter']}, "
                     f"{lb['spent_seconds']:.1f} s):")
        for k, r in lb["reached"].items():
            lines.append(f"    {k:26s} " + ("not reached" if r is None else
                                             f"max_iter {r['max_iter']}, {_fmt_s(r['seconds'])}"))
        for k, v in t["ratios_time_over_explicit"].items():
            lines.append(f"    ratio {k:44s} " + ("not reached" if v is None else f"{v:10.1f}x"))
    cnt = res.get("counting")
    if cnt:
        lines.append("\n== token counting (tokens/s; ratio = bincount time / xsol time)")
        for name, c in cnt.items():
            if "skipped" in c:
                lines.append(f"  {name}: skipped ({c['skipped']})")
                continue
            lines.append(f"  {name}: {c['examples']} examples, K={c['window']}, V={c['vocab_size']}"
                         f" ({c['data']}); exact: {c['counts_identical_to_bincount']}")
            for k, v in c["timings"].items():
                lines.append(f"    {k:30s} {_fmt_s(v['median_s']):>10s}  "
                             f"{c['tokens_per_s'][k] / 1e6:7.1f} M tokens/s   compile "
                             f"{_fmt_s(v['compile_s'])}")
            for k, v in c["ratios"].items():
                lines.append(f"    {k:44s} {v:6.2f}")
    lm = res.get("lm")
    if lm:
        lines.append("\n== LM: explicit fit vs Adam to equal training loss")
        for name, r in lm.items():
            a = r["adam"]
            lines.append(f"  {name}: {r['examples']} examples, K={r['window']}, V={r['vocab_size']} "
                         f"({r['data']})")
            lines.append(f"    explicit fit {_fmt_s(r['explicit']['fit_seconds'])}, train loss "
                         f"{r['explicit']['train_loss']:.4f}; Adam lr {a['best_learning_rate']} "
                         f"(sweep {[s['learning_rate'] for s in a['sweep']]}), "
                         f"{a['best']['steps']} steps / {a['best']['train_seconds']:.1f} s, final "
                         f"loss {r['adam_final_train_loss']:.4f}")
            for k, v in r["ratios_adam_time_over_explicit"].items():
                reached = a["best"]["reached"][k]
                lines.append(f"    {k:22s} " + (
                    f"not reached within {a['best']['steps']} steps / "
                    f"{a['best']['train_seconds']:.1f} s (ratio > "
                    f"{r['lower_bound_ratio_if_not_reached']:.0f}x)" if v is None else
                    f"{reached['steps']} steps, {_fmt_s(reached['seconds'])}: {v:.0f}x"))
    sc = res.get("scaling")
    if sc:
        lines.append("\n== scaling (fresh subprocess per point; peak = max RSS increase "
                     "over the RSS before the fit)")
        for name in ("data_size", "vocabulary"):
            for p in sc.get(name, []):
                lines.append(_fmt_point(p))
    sp = res.get("sparse")
    if sp:
        lines.append("\n== large vocabulary")
        for p in sp:
            lines.append(_fmt_point(p))
            if p.get("held_out_perplexity") is not None:
                lines.append(f"      held-out perplexity {p['held_out_perplexity']:.1f} on "
                             f"{p['score_examples']} examples in {_fmt_s(p['score_s'])}; "
                             f"top_next {_fmt_s(p['top_next_s'])}")
            if p.get("dense_weights"):
                lines.append(f"      dense_weights: {p['dense_weights'][:160]}")
    if res.get("corpus"):
        lines.append("\n== corpus-scale language models (fresh subprocess per run)\n")
        lines.append(corpus_bench.format_corpus(res["corpus"]))
    if res.get("refine"):
        lines.append("\n== refinement to the optimum: passes and seconds to the tolerance\n")
        lines.append(refine_bench.format_refine(res["refine"]))
    if res.get("scaleout"):
        from benchmarks import scaleout as scaleout_bench  # noqa: PLC0415

        lines.append("\n== scale-out: xsol.accumulate against the device count "
                     "(fresh subprocess per point; ratios to 1 device in this run)")
        lines.append(scaleout_bench.format_scaleout(res["scaleout"]))
    if res.get("targets"):
        lines.append("\n== targets (measured in this run)")
        for t in res["targets"]:
            r = t["ratio"]
            lines.append(f"  [{'MET ' if t['met'] else 'MISS' if t['met'] is False else ' -- '}] "
                         f"{t['target']:62s} " + ("-" if r is None else f"{r:8.2f}")
                         + (f" {t['unit']}" if t.get("unit") else "")
                         + (f"  ({t['note']})" if t.get("note") else ""))
    lines.append(f"\ntotal {res.get('seconds', 0):.0f} s")
    return "\n".join(lines)


def _fmt_point(p: dict) -> str:
    head = (f"  {p['method']:6s} tokens {p['tokens']:>9d}  V {p['vocab_size']:>6d}  "
            f"K {p.get('window', 1)}: ")
    if p.get("error"):
        return head + f"error: {p['error']}"
    if p.get("refused"):
        return head + "refused: " + p["refused"][:150]
    extra = f", nnz {p['nnz']}" if "nnz" in p else ""
    return head + (f"first {_fmt_s(p.get('first_s'))}, warm {_fmt_s(p.get('warm_s'))}, "
                   f"peak +{_fmt_b(p.get('fit_peak_increase_bytes'))} "
                   f"(max RSS {_fmt_b(p.get('peak_rss_bytes'))}){extra}")
