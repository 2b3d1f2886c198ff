"""Corpus-scale language models: a token file or raw text to a fitted, evaluated model.

What is measured, each run in a fresh Python subprocess (so that its memory
is its own) that reads a JSON spec on stdin and prints its figures as JSON:

* ``tokens``: :func:`xsol.lm.fit_token_lm` on a token-id file (the Zipfian
  Markov corpus of :func:`write_markov_corpus`), ``held_out=0.01``, for each
  corpus size, vocabulary ``V`` and window ``K``. The time is end to end, in
  the child, from before the file is opened to the held-out perplexity
  (JIT compilation included: a fresh process pays it).
* ``text``: ``xsol.lm.fit_text_lm`` (word level) on raw text, the embedded
  text tiled to each size (:func:`write_tiled_text`; being tiled, its
  distinct pairs saturate after the first copy). One call fits every window;
  the vocabulary pass, the encoding pass and each fit are reported.
* ``baselines`` (K = 1, what a Python user writes instead; the child imports
  only numpy, and NLTK for the second): ``counter``: the ids as a list
  (``np.fromfile(...).tolist()``), ``collections.Counter(zip(ids[:-1],
  ids[1:]))`` over the training part and the held-out perplexity of the
  Lidstone bigram ``(F_ij + a) / (f_i + V a)`` in plain Python; ``nltk``:
  ``nltk.lm.Lidstone(a, 2)`` fitted on the training bigrams as one sentence of
  string tokens (vocabulary: every id, so NLTK's ``len(vocab)`` is ``V + 1``
  with its ``<UNK>``), and its ``perplexity`` on the held-out bigrams (at most
  ``nltk_score_max`` of them; beyond that the scoring time is extrapolated
  linearly, and the record says so). Each runs under a time limit and an
  address-space limit; once a size does not finish, larger ones are skipped.

Memory: ``peak_rss_bytes`` is the child's high-water resident size
(``VmHWM``); ``fit_peak_increase_bytes`` is that minus the resident size
after ``import xsol`` (or numpy, for the baselines), i.e. what the run added.
``getrusage``'s ``ru_maxrss`` is recorded as well (``ru_maxrss_bytes``), but
on Linux a child started by ``subprocess`` inherits its parent's high-water
mark through ``fork``/``exec``, so it can overstate a small child. A sampler
thread also records the largest anonymous and file-backed resident sizes
seen (every 10 ms): the pages of a memory-mapped token file count towards
RSS (reclaimable page cache), which is why the flatness rule below allows
for the file's size.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

from xsol.core.process_memory import process_status
from xsol.core.serialize import atomic_open

#: The Zipfian Markov chain's defaults (see :func:`write_markov_corpus`).
MARKOV_FOLLOW = 0.75
MARKOV_EXPONENT = 1.1
MARKOV_UNIGRAM_EXPONENT = 1.0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_GUIDE_BITS = 20  # the draw's guide table: 2**20 buckets of the 32-bit uniform

_MB = 1_000_000


# ---------------------------------------------------------------------------
# Data synthesis
# ---------------------------------------------------------------------------

def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on a uint64 array, in place (wrapping arithmetic)."""
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


def _position_hashes(seed: int, start: int, stop: int) -> np.ndarray:
    """``H_t = splitmix64(key + (t + 1) * 0x9E3779B97F4A7C15)`` for ``t`` in ``[start, stop)``."""
    key = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64))[0]
    z = np.arange(start + 1, stop + 1, dtype=np.uint64)
    z *= _GOLDEN
    z += key
    return _splitmix64(z)


class _ZipfDraw:
    """``Z(U) = #{r : T[r] <= U}`` for 32-bit uniform integers ``U``, with ``T`` below.

    ``T[r] = round(2**32 * C(r))``, ``C`` the Zipfian CDF ``sum_{k <= r} (k + 1)**-s /
    sum_{k < V} (k + 1)**-s`` and ``T[V - 1] = 2**32``, so ``Z(U)`` is in ``[0, V)``
    and ``P(Z = r) = (T[r] - T[r - 1]) / 2**32``. Computed exactly with a guide
    table (the answer at each bucket's start) and a few vectorized steps.
    """

    def __init__(self, V: int, exponent: float):
        w = np.arange(1, V + 1, dtype=np.float64) ** -float(exponent)
        c = np.cumsum(w)
        T = np.rint(c / c[-1] * 2.0**32).astype(np.uint64)
        T[-1] = np.uint64(1 << 32)
        self.T = T
        starts = np.arange(1 << _GUIDE_BITS, dtype=np.uint64) << np.uint64(32 - _GUIDE_BITS)
        self.guide = np.searchsorted(T, starts, side="right").astype(np.int64)

    def __call__(self, U: np.ndarray) -> np.ndarray:
        r = self.guide[U >> np.uint64(32 - _GUIDE_BITS)]
        idx = np.flatnonzero(self.T[r] <= U)
        while idx.size:
            r[idx] += 1
            idx = idx[self.T[r[idx]] <= U[idx]]
        return r


def _coprime_multipliers(rng: np.random.Generator, V: int) -> np.ndarray:
    """``A_v`` uniform over ``[1, V)`` conditioned on ``gcd(A_v, V) = 1`` (1 when ``V < 3``)."""
    if V < 3:
        return np.ones(V, np.int64)
    A = rng.integers(1, V, V, dtype=np.int64)
    bad = np.flatnonzero(np.gcd(A, V) != 1)
    while bad.size:
        A[bad] = rng.integers(1, V, bad.size, dtype=np.int64)
        bad = bad[np.gcd(A[bad], V) != 1]
    return A


def _token_dtype(vocab_size: int, dtype) -> np.dtype:
    if dtype is None:
        dtype = "uint16" if vocab_size <= (1 << 16) else "uint32"
    dt = np.dtype(dtype).newbyteorder("<")
    if (dt.kind, dt.itemsize) not in (("u", 2), ("u", 4), ("i", 4)):
        raise ValueError(f"dtype must be 'uint16', 'uint32' or 'int32', got {dtype!r}")
    if vocab_size - 1 > np.iinfo(dt).max:
        raise ValueError(f"ids up to {vocab_size - 1} do not fit in {dt.name}")
    return dt


def write_markov_corpus(path, num_tokens: int, vocab_size: int, *, seed: int = 0, dtype=None,
                        follow: float = MARKOV_FOLLOW, exponent: float = MARKOV_EXPONENT,
                        unigram_exponent: float = MARKOV_UNIGRAM_EXPONENT,
                        chunk_tokens: int = 1 << 20) -> int:
    """Writes a Zipfian Markov-chain corpus of token ids, streamed in chunks.

    The generative rule (``V`` = ``vocab_size``, ``p`` = ``follow``, ``s`` =
    ``exponent``, ``s0`` = ``unigram_exponent``):

    * Per-token permutations: ``rng = numpy.random.default_rng(seed)`` draws,
      in this order, ``P = rng.permutation(V)``, ``B = rng.integers(0, V, V)``
      and ``A`` (``rng.integers(1, V, V)``, entries with ``gcd(A_v, V) != 1``
      redrawn from the same generator until none is left). Token ``v``'s
      successors in rank order are ``pi_v(r) = P[(A_v r + B_v) mod V]``, a
      permutation of the vocabulary.
    * Uniforms: for position ``t``, ``H_t = splitmix64(k + (t + 1) g)`` (64-bit
      wrapping arithmetic, ``g = 0x9E3779B97F4A7C15``, ``k = splitmix64(seed)``,
      splitmix64 the output function ``z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
      z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31``); ``C_t = H_t >> 32``
      and ``U_t = H_t & (2**32 - 1)``.
    * Zipfian draws: ``Z_s(U) = #{r : T_s[r] <= U}`` with ``T_s[r] =
      round(2**32 C_s(r))``, ``C_s`` the CDF of ``P(r) ~ (r + 1)**-s`` on ``[0, V)``
      and ``T_s[V - 1] = 2**32``.
    * The chain: ``x_0 = Z_s0(U_0)``; for ``t >= 1``, if ``C_t < p 2**32``, ``x_t =
      pi_{x_{t-1}}(Z_s(U_t))`` (a successor of the previous token, Zipfian over
      its own permutation of the vocabulary), else ``x_t = Z_s0(U_t)`` (the
      global Zipfian unigram, id 0 the most frequent).

    So every token has its own next-token distribution, and the number of
    distinct pairs keeps growing with the corpus (heavy tails), as in real
    text. ``H_t`` depends only on ``(seed, t)`` and the chain's state only on
    the previous token, so the file does not depend on ``chunk_tokens``, and
    a shorter corpus is a prefix of a longer one with the same parameters.
    Runs of successor steps are resolved one depth at a time (all positions
    ``d`` steps after their last unigram draw at once), so generation is
    vectorized numpy; memory is ``O(chunk_tokens + 2**20 + V)``.

    Args:
      path: the file to write (replaced): raw little-endian ids, or ``.npy``
        when the name ends with ``.npy``.
      num_tokens: ``n >= 1``.
      vocab_size: ``V >= 1``.
      seed: the generator's seed (a non-negative integer).
      dtype: ``"uint16"`` (the default for ``V <= 65536``), ``"uint32"`` (the
        default above) or ``"int32"``.
      follow: ``p``, the probability of a successor step, in ``[0, 1]``.
      exponent: ``s``, of the successor ranks.
      unigram_exponent: ``s0``, of the global unigram.
      chunk_tokens: tokens generated and written per step (no effect on the file).

    Returns:
      The number of tokens written.
    """
    n, V = int(num_tokens), int(vocab_size)
    if n < 1 or V < 1:
        raise ValueError(f"num_tokens and vocab_size must be positive, got {n} and {V}")
    if not 0.0 <= follow <= 1.0:
        raise ValueError(f"follow must be a probability in [0, 1], got {follow}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    chunk = int(chunk_tokens)
    if chunk < 1:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    dt = _token_dtype(V, dtype)
    rng = np.random.default_rng(int(seed))
    P = rng.permutation(V).astype(np.int64)
    B = rng.integers(0, V, V, dtype=np.int64)
    A = _coprime_multipliers(rng, V)
    succ, unigram = _ZipfDraw(V, exponent), _ZipfDraw(V, unigram_exponent)
    threshold = np.uint64(min(int(round(follow * 2**32)), 1 << 32))

    p = os.fspath(path)
    with atomic_open(p, "wb") as f:
        if p.lower().endswith(".npy"):
            header = np.lib.format.header_data_from_array_1_0(np.empty(0, dt))
            header["shape"] = (n,)
            np.lib.format.write_array_header_1_0(f, header)
        carry = -1
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            H = _position_hashes(int(seed), s, e)
            U = H & _LOW32
            fol = (H >> np.uint64(32)) < threshold
            if s == 0:
                fol[0] = False
            # x[0] is the previous chunk's last token; x[i + 1] is position s + i.
            x = np.empty(e - s + 1, np.int64)
            x[0] = carry
            resets = np.flatnonzero(~fol)
            x[resets + 1] = unigram(U[resets])
            steps = np.flatnonzero(fol)
            if steps.size:
                pos = np.arange(e - s, dtype=np.int64)
                last = np.maximum.accumulate(np.where(fol, -1, pos))
                depth = (pos - last)[steps]  # successor steps since the last unigram draw
                if depth.max() < (1 << 16):
                    depth = depth.astype(np.uint16)  # sorted by a radix sort
                order = np.argsort(depth, kind="stable")
                bounds = np.cumsum(np.bincount(depth))
                steps, ranks = steps[order], succ(U[steps])[order]
                for d in range(1, len(bounds)):
                    i, r = steps[bounds[d - 1]:bounds[d]], ranks[bounds[d - 1]:bounds[d]]
                    prev = x[i]  # position s + i - 1, resolved at depth d - 1
                    x[i + 1] = P[(A[prev] * r + B[prev]) % V]
            carry = int(x[-1])
            f.write(x[1:].astype(dt).tobytes())
    return n


def write_tiled_text(path, num_bytes: int) -> int:
    """Writes the embedded text (``xsol.data.load_text(None)``) tiled to exactly ``num_bytes``.

    Copies of the text (UTF-8, each followed by ``"\\n\\n"``) are repeated and
    the last one cut at a character boundary at or before ``num_bytes``, then
    padded with ``"\\n"`` to the exact size, so the file is valid UTF-8. Being
    tiled, the text repeats: its distinct pairs stop growing after the first
    copy (about 0.5 MB).

    Returns:
      The number of bytes written.
    """
    from xsol.data import load_text  # noqa: PLC0415

    total = int(num_bytes)
    if total < 1:
        raise ValueError(f"num_bytes must be positive, got {num_bytes}")
    block = (load_text(None) + "\n\n").encode("utf-8")
    p = os.fspath(path)
    with atomic_open(p, "wb") as f:
        left = total
        while left >= len(block):
            f.write(block)
            left -= len(block)
        if left:
            cut = left
            while cut > 0 and (block[cut] & 0xC0) == 0x80:  # inside a multibyte character
                cut -= 1
            f.write(block[:cut] + b"\n" * (left - cut))
    return total


def distinct_pairs(ids: np.ndarray, window: int = 1) -> int:
    """Distinct ``(position k, token, next token)`` triples of the K-windows of ``ids``."""
    a = np.asarray(ids, np.int64)
    V = int(a.max()) + 1
    keys = [(k * V + a[k:len(a) - window + k]) * V + a[window:] for k in range(window)]
    return int(np.unique(np.concatenate(keys)).size)


# ---------------------------------------------------------------------------
# Child processes (their code is sent with ``python -c``: a baseline child
# imports numpy and NLTK only, an xsol child ``xsol`` and what it needs)
# ---------------------------------------------------------------------------

def _start_sampler(interval=0.01):
    """Samples ``RssAnon`` and ``RssFile`` in a thread; returns ``finish() -> their maxima``."""
    import threading  # noqa: PLC0415

    peak = {"RssAnon": 0, "RssFile": 0}
    stop = threading.Event()

    def sample():
        s = process_status()
        for k in peak:
            peak[k] = max(peak[k], s.get(k, 0))

    def loop():
        while not stop.is_set():
            sample()
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def finish():
        stop.set()
        thread.join()
        sample()
        return dict(peak)

    return finish


def _kind_tokens(spec):
    """xsol on a token file: ``fit_token_lm`` to the held-out perplexity."""
    import xsol  # noqa: F401, PLC0415
    from xsol.lm import fit_token_lm  # noqa: PLC0415

    def run():
        fit = fit_token_lm(spec["path"], spec["vocab_size"], window=spec["window"],
                           held_out=spec["held_out"], smoothing=spec["smoothing"],
                           backend=spec["backend"], dtype=spec.get("dtype"))
        fit.held_out_perplexity  # noqa: B018 - the end of the timed span
        return fit

    def details(fit):
        d = fit.to_dict()
        d["reported_peak_rss_bytes"] = d.pop("peak_rss_bytes")
        d["dense_bytes"] = fit.choice.dense_bytes
        d["budget_bytes"] = fit.choice.budget
        if fit.backend == "dense":
            import jax.numpy as jnp  # noqa: PLC0415

            d["distinct_pairs"] = int(jnp.count_nonzero(fit.model.stats.cooc))
            d["model_bytes"] = fit.choice.dense_bytes
        else:
            d["distinct_pairs"] = int(fit.model.stats.nnz)
            d["model_bytes"] = int(fit.model.nbytes)
        return d

    return run, details


def _kind_text(spec):
    """xsol on raw text: ``fit_text_lm`` (word level), every window in one call."""
    import xsol  # noqa: F401, PLC0415
    from xsol.lm import fit_text_lm  # noqa: PLC0415

    def run():
        tf = fit_text_lm(spec["path"], vocab_size=spec["vocab_size"],
                         windows=tuple(spec["windows"]), held_out=spec["held_out"],
                         smoothing=spec["smoothing"], level="word", backend=spec["backend"])
        [f.held_out_perplexity for f in tf.fits]  # noqa: B018
        return tf

    def details(tf):
        fits = []
        for f in tf.fits:
            d = f.to_dict()
            d["reported_peak_rss_bytes"] = d.pop("peak_rss_bytes")
            fits.append(d)
        return {"num_tokens": int(tf.num_tokens), "seconds": dict(tf.seconds), "fits": fits,
                "reported_peak_rss_bytes": getattr(tf, "peak_rss_bytes", None)}

    return run, details


def _kind_counter(spec):
    """Plain Python: ``collections.Counter`` of the training bigrams, Lidstone perplexity."""
    import collections  # noqa: PLC0415
    import math  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    V, a = spec["vocab_size"], spec["smoothing"]

    def run():
        ids = np.fromfile(spec["path"], dtype=spec["dtype"]).tolist()
        n = len(ids)
        cut = n - round(n * spec["held_out"])
        train, held = ids[:cut], ids[cut:]
        t0 = time.perf_counter()
        pairs = collections.Counter(zip(train[:-1], train[1:]))
        context = collections.Counter(train[:-1])
        t_count = time.perf_counter() - t0
        t0 = time.perf_counter()
        Va, nll, m = V * a, 0.0, 0
        for pair in zip(held[:-1], held[1:]):
            nll -= math.log((pairs.get(pair, 0) + a) / (context.get(pair[0], 0) + Va))
            m += 1
        return {"train_tokens": cut, "held_out_tokens": n - cut, "held_out_windows": m,
                "held_out_perplexity": math.exp(nll / m), "distinct_pairs": len(pairs),
                "seconds": {"count": t_count, "score": time.perf_counter() - t0}}

    return run, lambda r: r


def _kind_nltk(spec):
    """``nltk.lm.Lidstone(a, 2)`` on the training bigrams (strings); held-out perplexity."""
    import numpy as np  # noqa: PLC0415
    from nltk.lm import Lidstone  # noqa: PLC0415

    V, a = spec["vocab_size"], spec["smoothing"]

    def run():
        ids = np.fromfile(spec["path"], dtype=spec["dtype"]).tolist()
        toks = [str(i) for i in ids]
        n = len(toks)
        cut = n - round(n * spec["held_out"])
        train, held = toks[:cut], toks[cut:]
        t0 = time.perf_counter()
        lm = Lidstone(a, 2)
        lm.fit([list(zip(train[:-1], train[1:]))], vocabulary_text=[str(i) for i in range(V)])
        t_fit = time.perf_counter() - t0
        held_pairs = list(zip(held[:-1], held[1:]))
        scored = held_pairs[:spec["nltk_score_max"]]
        t0 = time.perf_counter()
        ppl = lm.perplexity(scored)
        t_score = time.perf_counter() - t0
        return {"train_tokens": cut, "held_out_tokens": n - cut,
                "held_out_windows": len(held_pairs), "scored_windows": len(scored),
                "held_out_perplexity": ppl, "vocabulary_length": len(lm.vocab),
                "seconds": {"fit": t_fit, "score": t_score}}

    return run, lambda r: r


def _child_main():
    """Reads a spec on stdin, runs it once and prints the figures as one JSON line."""
    import json  # noqa: PLC0415
    import resource  # noqa: PLC0415
    import sys  # noqa: PLC0415

    spec = json.loads(sys.stdin.read())
    limit = spec.get("memory_limit_bytes")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
    kinds = {"tokens": _kind_tokens, "text": _kind_text, "counter": _kind_counter,
             "nltk": _kind_nltk}

    def measure():
        run, details = kinds[spec["kind"]](spec)
        base = process_status()
        finish = _start_sampler()
        t0 = time.perf_counter()
        obj = run()
        wall = time.perf_counter() - t0
        sampled = finish()
        end = process_status()
        out = {"wall_s": wall,
               "rss_after_import_bytes": base.get("VmRSS"),
               "rss_anon_after_import_bytes": base.get("RssAnon"),
               "rss_file_after_import_bytes": base.get("RssFile"),
               "peak_rss_bytes": end.get("VmHWM"),
               "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               "sampled_peak_anon_bytes": sampled["RssAnon"],
               "sampled_peak_file_bytes": sampled["RssFile"]}
        if out["peak_rss_bytes"] is not None and out["rss_after_import_bytes"] is not None:
            out["fit_peak_increase_bytes"] = out["peak_rss_bytes"] - out["rss_after_import_bytes"]
        out.update(details(obj))
        return out

    try:
        out = measure()
    except MemoryError:
        out = None  # reported below, once the frames holding the run's memory are gone
    if out is None:
        out = {"out_of_memory": True,
               "error": f"MemoryError under the {limit / 2**30:.1f} GiB address-space limit"
               if limit else "MemoryError"}
    print(json.dumps(out))


_CHILD_FUNCTIONS = (process_status, _start_sampler, _kind_tokens, _kind_text, _kind_counter,
                    _kind_nltk, _child_main)


def child_code() -> str:
    """The source a measurement child runs (``python -c``): the child functions, then the main."""
    parts = ["import time"] + [textwrap.dedent(inspect.getsource(f)) for f in _CHILD_FUNCTIONS]
    return "\n\n".join(parts) + "\n\n_child_main()\n"


def run_child(spec: dict, timeout: float) -> dict:
    """Runs one measurement in a fresh subprocess; its figures, or why there are none.

    Returns:
      The child's JSON plus ``subprocess_wall_s``; on failure ``error`` (and
      ``timed_out`` / ``out_of_memory`` where that is why).
    """
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", child_code()], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timed_out": True, "error": f"did not finish within {timeout:g} s"}
    wall = time.perf_counter() - t0
    lines = (proc.stdout or "").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
        killed = proc.returncode == -9
        return {"error": f"exit {proc.returncode}"
                + (" (killed: out of memory?)" if killed else "") + (f": {tail}" if tail else ""),
                "out_of_memory": killed or "MemoryError" in tail}
    res = json.loads(lines[-1])
    res["subprocess_wall_s"] = wall
    return res


# ---------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------

def default_config(quick: bool = False) -> dict:
    """Sizes and limits: the full scale, or ``quick`` (about a minute)."""
    cfg = {
        "sizes": [1_000_000, 10_000_000, 30_000_000, 100_000_000],
        "vocab": [2000, 32000, 50257],
        "windows": [1, 2],
        "backends": ["auto"],
        "text_sizes_mb": [5, 20, 60, 200],
        "text_vocab": 32000,
        "baseline_vocab": 32000,
        "baseline_timeout": 600.0,
        "baseline_memory_bytes": None,  # None: half the machine's memory
        "nltk_score_max": 100_000,
        "timeout": 3600.0,
        "held_out": 0.01,
        "smoothing": 0.01,
        "seed": 0,
        "workdir": None,
        "keep_data": False,
    }
    if quick:
        cfg.update(sizes=[200_000, 1_000_000], vocab=[2000, 32000], text_sizes_mb=[1],
                   baseline_timeout=60.0, timeout=600.0)
    return cfg


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def _markov_file(workdir: str, n: int, V: int, seed: int) -> tuple[str, str]:
    dt = _token_dtype(V, None)
    return os.path.join(workdir, f"markov_n{n}_V{V}_seed{seed}.{dt.name}"), dt.name


def _ensure(path: str, size: int, make) -> dict:
    """Makes ``path`` unless a file of ``size`` bytes is already there (a kept workdir)."""
    if os.path.exists(path) and os.path.getsize(path) == size:
        return {"path": path, "bytes": size, "reused": True}
    t0 = time.perf_counter()
    make()
    return {"path": path, "bytes": os.path.getsize(path), "reused": False,
            "seconds": time.perf_counter() - t0}


def _speed(tokens, seconds):
    return None if not seconds else tokens / seconds


def _by_size(records):
    return sorted(records, key=lambda r: r["tokens"])


def run_corpus(config: dict | None = None, *, quick: bool = False, plot_path: str | None = None,
               say=None, wait_quiet: float = 0.0) -> dict:
    """Runs the corpus section; returns its JSON-ready figures.

    Args:
      config: overrides of :func:`default_config` (``sizes``, ``vocab``,
        ``windows``, ``backends``, ``text_sizes_mb``, ``text_vocab``,
        ``baseline_vocab``, ``baseline_timeout``, ``baseline_memory_bytes``,
        ``nltk_score_max``, ``timeout``, ``workdir``, ``keep_data``, ...); a
        value of None keeps the default.
      quick: start from the quick scale.
      plot_path: where to draw tokens/s against corpus size (PNG), or None.
      say: a function taking progress lines, or None.
      wait_quiet: before each run, wait up to this many seconds for other
        processes to leave the CPUs mostly idle; each record's ``contention``
        says what was seen (the load average, and the busy fraction when waiting).

    Returns:
      ``{"config", "method", "data", "tokens", "text", "baselines", "checks",
      "ratios", "targets", "plot", "seconds"}``.
    """
    from benchmarks.timing import load_average, wait_for_quiet  # noqa: PLC0415

    t_start = time.perf_counter()
    say = say or (lambda msg: None)

    def measure(spec, timeout):
        seen = wait_for_quiet(timeout=wait_quiet) if wait_quiet > 0 else {}
        r = run_child(spec, timeout)
        r["contention"] = {**seen, "load_average_after": load_average()}
        return r

    cfg = default_config(quick)
    cfg.update({k: v for k, v in (config or {}).items() if v is not None})
    if not cfg["baseline_memory_bytes"]:
        cfg["baseline_memory_bytes"] = _total_memory() // 2
    sizes = sorted(int(n) for n in cfg["sizes"])
    common = {"held_out": float(cfg["held_out"]), "smoothing": float(cfg["smoothing"])}

    own_dir = cfg["workdir"] is None
    workdir = tempfile.mkdtemp(prefix="xsol-corpus-") if own_dir else os.fspath(cfg["workdir"])
    os.makedirs(workdir, exist_ok=True)
    cfg["workdir"] = workdir
    made: list[str] = []
    res: dict = {"config": cfg, "method": " ".join(" ".join(__doc__.split("\n\n")[1:3]).split()),
                 "data": {"markov": [], "text": []}, "tokens": [], "text": [],
                 "baselines": {"counter": [], "nltk": []}}
    res["data"]["markov_rule"] = (
        f"Zipfian Markov chain (write_markov_corpus): with probability {MARKOV_FOLLOW} a "
        f"successor of the previous token, Zipfian (s = {MARKOV_EXPONENT}) over that token's "
        f"own permutation of the vocabulary, else a global Zipfian unigram (s = "
        f"{MARKOV_UNIGRAM_EXPONENT}); seed {cfg['seed']}; smaller corpora are prefixes of larger")
    res["data"]["text_rule"] = ("the embedded text (Python's documentation topics, about 0.5 MB) "
                                "tiled to each size: its distinct pairs saturate after one copy")

    def corpus_file(n, V):
        path, dt = _markov_file(workdir, n, V, int(cfg["seed"]))
        if path not in made:
            info = _ensure(path, n * np.dtype(dt).itemsize,
                           lambda: write_markov_corpus(path, n, V, seed=int(cfg["seed"])))
            made.append(path)
            res["data"]["markov"].append({"tokens": n, "vocab_size": V, "dtype": dt, **info})
        return path, dt

    try:
        # (a) token files
        for V in [int(v) for v in cfg["vocab"]]:
            for n in sizes:
                path, dt = corpus_file(n, V)
                for K in [int(k) for k in cfg["windows"]]:
                    for backend in cfg["backends"]:
                        say(f"corpus: xsol {n:,} tokens, V={V}, K={K}, backend {backend}")
                        spec = {"kind": "tokens", "path": path, "dtype": dt, "vocab_size": V,
                                "window": K, "backend": backend, **common}
                        r = measure(spec, cfg["timeout"])
                        fallback = None
                        if backend == "auto" and "MemoryBudgetError" in r.get("error", ""):
                            why = r["error"].split("MemoryBudgetError:", 1)[-1].strip()
                            fallback = ("backend='auto' chose dense, then the fit was refused "
                                        f"({why}); measured with backend='sparse'")
                            say(f"corpus: {fallback}")
                            r = measure({**spec, "backend": "sparse"}, cfg["timeout"])
                        rec = {"tokens": n, "vocab_size": V, "window": K,
                               "backend_asked": backend, "file_bytes": os.path.getsize(path),
                               "fallback": fallback, **r}
                        rec["tokens_per_s"] = _speed(n, r.get("wall_s"))
                        res["tokens"].append(rec)

        # baselines (K = 1)
        Vb = int(cfg["baseline_vocab"])
        for kind in ("counter", "nltk"):
            stopped = None
            for n in sizes:
                if stopped:
                    res["baselines"][kind].append({"tokens": n, "vocab_size": Vb,
                                                   "skipped": stopped})
                    continue
                path, dt = corpus_file(n, Vb)
                say(f"corpus: baseline {kind}, {n:,} tokens, V={Vb} "
                    f"(limit {cfg['baseline_timeout']:.0f} s)")
                r = measure({"kind": kind, "path": path, "dtype": dt, "vocab_size": Vb,
                             "nltk_score_max": int(cfg["nltk_score_max"]),
                             "memory_limit_bytes": int(cfg["baseline_memory_bytes"]), **common},
                            cfg["baseline_timeout"])
                rec = {"tokens": n, "vocab_size": Vb, **r}
                if "error" in r:
                    stopped = f"not run: {kind} did not finish at {n:,} tokens ({r['error']})"
                else:
                    rec["end_to_end_s"] = r["wall_s"]
                    if kind == "nltk" and r["scored_windows"] < r["held_out_windows"]:
                        extra = r["seconds"]["score"] * (
                            r["held_out_windows"] / max(r["scored_windows"], 1) - 1)
                        rec["end_to_end_s"] = r["wall_s"] + extra
                        rec["note"] = (f"perplexity on the first {r['scored_windows']:,} of "
                                       f"{r['held_out_windows']:,} held-out bigrams; scoring "
                                       "time extrapolated linearly to all of them")
                    rec["tokens_per_s"] = _speed(n, rec["end_to_end_s"])
                res["baselines"][kind].append(rec)

        # (b) raw text
        for mb in [float(m) for m in cfg["text_sizes_mb"]]:
            nbytes = int(round(mb * _MB))
            path = os.path.join(workdir, f"tiled_{nbytes}.txt")
            if path not in made:
                info = _ensure(path, nbytes, lambda p=path, b=nbytes: write_tiled_text(p, b))
                made.append(path)
                res["data"]["text"].append({"megabytes": mb, **info})
            say(f"corpus: xsol text {mb:g} MB, V<={cfg['text_vocab']}, K={cfg['windows']}")
            r = measure({"kind": "text", "path": path, "vocab_size": int(cfg["text_vocab"]),
                         "windows": [int(k) for k in cfg["windows"]],
                         "backend": cfg["backends"][0], **common}, cfg["timeout"])
            rec = {"megabytes": mb, "bytes": nbytes, **r}
            if "error" not in r:
                s = r["seconds"]
                prep = s.get("vocabulary", 0.0) + s.get("encode", 0.0)
                rec["end_to_end_s_by_window"] = {
                    str(f["window"]): prep + f["seconds"]["total"] for f in r["fits"]}
                rec["tokens_per_s_by_window"] = {
                    k: _speed(r["num_tokens"], v) for k, v in rec["end_to_end_s_by_window"].items()}
                rec["tokens_per_s"] = _speed(r["num_tokens"], r["wall_s"])
            res["text"].append(rec)
    finally:
        if not cfg["keep_data"]:
            for p in made:
                try:
                    os.unlink(p)
                except OSError:
                    pass
            if own_dir:
                shutil.rmtree(workdir, ignore_errors=True)

    res["checks"] = _checks(res)
    res["ratios"] = _ratios(res)
    res["targets"] = corpus_targets(res)
    res["plot"] = None
    if plot_path:
        try:
            res["plot"] = plot_corpus(res, plot_path)
        except Exception as e:  # noqa: BLE001 - a missing plot must not lose the figures
            res["plot_error"] = f"{type(e).__name__}: {e}"
    res["seconds"] = time.perf_counter() - t_start
    return res


def _ok(rec) -> bool:
    return "error" not in rec and "skipped" not in rec


def _xsol_run(res, n, V, K):
    for r in res["tokens"]:
        if (r["tokens"], r["vocab_size"], r["window"]) == (n, V, K) and _ok(r):
            return r
    return None


def _checks(res) -> dict:
    """Counter perplexity == xsol's (K = 1), relative difference <= 1e-6, at every common size."""
    out = []
    for b in res["baselines"]["counter"]:
        if not _ok(b):
            continue
        x = _xsol_run(res, b["tokens"], b["vocab_size"], 1)
        if x is None or x.get("held_out_perplexity") is None:
            continue
        rel = abs(x["held_out_perplexity"] - b["held_out_perplexity"]) / b["held_out_perplexity"]
        out.append({"tokens": b["tokens"], "vocab_size": b["vocab_size"], "backend": x["backend"],
                    "xsol": x["held_out_perplexity"], "counter": b["held_out_perplexity"],
                    "relative_difference": rel, "equal": rel <= 1e-6})
    nl = []
    for b in res["baselines"]["nltk"]:
        c = next((c for c in res["baselines"]["counter"]
                  if c["tokens"] == b["tokens"] and _ok(c)), None)
        if _ok(b) and c is not None:
            nl.append({"tokens": b["tokens"], "nltk": b["held_out_perplexity"],
                       "counter": c["held_out_perplexity"],
                       "relative_difference": abs(b["held_out_perplexity"]
                                                  - c["held_out_perplexity"])
                       / c["held_out_perplexity"],
                       "note": "NLTK's vocabulary has V + 1 entries (<UNK>)"
                               + ("; it scores a subsample" if b.get("note") else "")
                               + ", so it differs slightly"})
    return {"counter_equals_xsol_k1": out, "nltk_vs_counter": nl,
            "all_equal": bool(out) and all(c["equal"] for c in out)}


def _ratios(res) -> dict:
    """Baseline time / xsol time (K = 1, same corpus) at the largest size each baseline finished."""
    out = {}
    for kind, recs in res["baselines"].items():
        done = [r for r in recs if _ok(r)]
        if not done:
            out[kind] = {"ratio": None, "note": "the baseline finished at no size"}
            continue
        b = max(done, key=lambda r: r["tokens"])
        x = _xsol_run(res, b["tokens"], b["vocab_size"], 1)
        if x is None:
            out[kind] = {"ratio": None, "tokens": b["tokens"],
                         "note": "no xsol K = 1 run at that size and V"}
            continue
        out[kind] = {"tokens": b["tokens"], "vocab_size": b["vocab_size"], "backend": x["backend"],
                     "baseline_s": b["end_to_end_s"], "xsol_s": x["wall_s"],
                     "ratio": b["end_to_end_s"] / x["wall_s"], "note": b.get("note")}
    return out


#: The slack of the flatness rule: allocator and runtime noise between two runs.
FLAT_SLACK_BYTES = 32 << 20
#: Sparse statistics: peak working memory per stored byte (sorting and merging copies).
SPARSE_WORK_FACTOR = 3.0
#: Dense statistics: the share of the dense matrices the peak may grow by.
DENSE_GROWTH_FRACTION = 0.10

FLAT_RULE = (
    "peak memory is flat when, between the smallest corpus of one (V, K, backend) whose "
    "training windows fill fit_token_lm's streamed chunk (chunk_tokens windows; below that "
    "the chunk's buffers grow with the corpus, by design), or the smallest corpus when fewer "
    "than two do, and the largest, the peak RSS increase over the RSS after import grows by "
    "at most: the growth "
    "of the token file (its memory-mapped pages count as resident, reclaimable page cache) + "
    f"{DENSE_GROWTH_FRACTION:.0%} of the dense counts and weights (dense), or "
    f"{SPARSE_WORK_FACTOR:g}x the growth of the sparse statistics and solution, which grow "
    f"with the distinct pairs (sparse) + {FLAT_SLACK_BYTES >> 20} MiB slack")


def _target(name, value, op, threshold, unit, note=None):
    if value is None:
        return {"target": name, "ratio": None, "met": None, "note": note or "not measured",
                "section": "corpus"}
    met = value <= threshold if op == "<=" else value >= threshold
    return {"target": name, "ratio": value, "threshold": threshold, "op": op, "met": met,
            "unit": unit, "note": note, "section": "corpus"}


def corpus_targets(res: dict) -> list[dict]:
    """The corpus targets, measured: flat memory, speeds (M tokens/s) and the NLTK speed-up."""
    from xsol.lm import fit_token_lm  # noqa: PLC0415

    chunk = inspect.signature(fit_token_lm).parameters["chunk_tokens"].default
    out = []
    groups: dict = {}
    for r in res["tokens"]:
        if _ok(r) and r.get("fit_peak_increase_bytes") is not None:
            groups.setdefault((r["vocab_size"], r["window"], r["backend"]), []).append(r)
    for (V, K, backend), recs in sorted(groups.items()):
        recs = _by_size(recs)
        if len(recs) < 2:
            continue
        full = [r for r in recs if r["train_tokens"] - K >= chunk]
        lo, hi = (full if len(full) >= 2 else recs)[0], recs[-1]
        below = "" if len(full) >= 2 else f"; below one chunk ({chunk:,} windows)"
        growth = hi["fit_peak_increase_bytes"] - lo["fit_peak_increase_bytes"]
        if backend == "dense":
            stats = DENSE_GROWTH_FRACTION * hi["dense_bytes"]
        else:
            stats = SPARSE_WORK_FACTOR * max(0, hi["model_bytes"] - lo["model_bytes"])
        allowed = (hi["file_bytes"] - lo["file_bytes"]) + stats + FLAT_SLACK_BYTES
        out.append(_target(
            f"peak memory flat in corpus length (V={V}, K={K}, {backend})", growth / allowed,
            "<=", 1.0, "growth / allowed",
            f"{lo['tokens']:,} -> {hi['tokens']:,} tokens: +{_mib(lo['fit_peak_increase_bytes'])}"
            f" -> +{_mib(hi['fit_peak_increase_bytes'])}, allowed growth {_mib(allowed)}{below}"))
    largest = max((r["tokens"] for r in res["tokens"]), default=None)
    d = _xsol_run(res, largest, 32000, 1)
    if d is not None and d["backend"] == "dense":
        out.append(_target("id file -> dense K=1 V=32k >= 50M tokens/s end to end",
                           d["tokens_per_s"] / 1e6, ">=", 50.0, "M tokens/s",
                           f"{largest:,} tokens"))
    else:
        why = (f"the V=32000 K=1 run at {largest:,} tokens used the {d['backend']} backend"
               if d is not None else "no V=32000 K=1 run")
        out.append(_target("id file -> dense K=1 V=32k >= 50M tokens/s end to end", None, ">=",
                           50.0, "M tokens/s", why))
    sp = [r for r in res["tokens"] if _ok(r) and r["tokens"] == largest and r["window"] == 1
          and r["backend"] == "sparse"]
    if sp:
        worst = min(sp, key=lambda r: r["tokens_per_s"])
        out.append(_target("id file -> sparse K=1 >= 10M tokens/s end to end",
                           worst["tokens_per_s"] / 1e6, ">=", 10.0, "M tokens/s",
                           f"slowest sparse K=1 run at {largest:,} tokens "
                           f"(V={worst['vocab_size']})"))
    else:
        out.append(_target("id file -> sparse K=1 >= 10M tokens/s end to end", None, ">=", 10.0,
                           "M tokens/s", "no sparse K=1 run at the largest size"))
    txt = [r for r in res["text"] if _ok(r) and "1" in r.get("tokens_per_s_by_window", {})]
    if txt:
        t = max(txt, key=lambda r: r["bytes"])
        out.append(_target("raw text -> K=1 model >= 5M tokens/s (tokenization included)",
                           t["tokens_per_s_by_window"]["1"] / 1e6, ">=", 5.0, "M tokens/s",
                           f"{t['megabytes']:g} MB, {t['num_tokens']:,} tokens: vocabulary + "
                           "encode + K=1 fit"))
    else:
        out.append(_target("raw text -> K=1 model >= 5M tokens/s (tokenization included)", None,
                           ">=", 5.0, "M tokens/s", "no raw-text run finished"))
    nr = res.get("ratios", {}).get("nltk", {})
    out.append(_target(">= 100x faster than nltk.lm (largest size it finishes)", nr.get("ratio"),
                       ">=", 100.0, "x",
                       f"{nr['tokens']:,} tokens" if nr.get("ratio") else nr.get("note")))
    return out


# ---------------------------------------------------------------------------
# Report and plot
# ---------------------------------------------------------------------------

def _mib(b):
    return "-" if b is None else f"{b / 2**20:,.0f} MiB"


def _secs(s):
    return "-" if s is None else (f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s")


def _mtok(v):
    return "-" if v is None else f"{v / 1e6:.2f}"


def _ppl(v):
    return "-" if v is None else f"{v:.4f}"


def _count(n):
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:g}{unit}"
    return str(n)


def _row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(head, rows):
    return [_row(head), _row(["---"] * len(head))] + [_row(r) for r in rows]


def format_corpus(res: dict) -> str:
    """The corpus section as markdown tables."""
    lines = ["### id file -> fitted, held-out-evaluated model (`fit_token_lm`, a subprocess each)",
             "", "Data: " + res["data"]["markov_rule"] + ".", ""]
    rows = []
    for r in res["tokens"]:
        head = [_count(r["tokens"]), r["vocab_size"], r["window"]]
        if not _ok(r):
            rows.append(head + [r.get("backend_asked"), "error: " + r.get("error", "")[:80]]
                        + ["-"] * 6)
            continue
        backend = r["backend"] + (" (fallback)" if r.get("fallback") else "")
        rows.append(head + [backend, _secs(r["wall_s"]), _mtok(r["tokens_per_s"]),
                            _mib(r["peak_rss_bytes"]), "+" + _mib(r["fit_peak_increase_bytes"]),
                            _ppl(r["held_out_perplexity"]), _count(r.get("distinct_pairs"))])
    lines += _table(["tokens", "V", "K", "backend", "end to end", "M tok/s", "peak RSS",
                     "over import", "held-out ppl", "distinct pairs"], rows)
    for r in res["tokens"]:
        if r.get("fallback"):
            lines.append(f"\n(fallback) {_count(r['tokens'])} tokens, V={r['vocab_size']}, "
                         f"K={r['window']}: {r['fallback']}")

    lines += ["", "### baselines (K = 1, V = {}; plain Python `Counter`, `nltk.lm.Lidstone`)"
              .format(res["config"]["baseline_vocab"]), ""]
    rows = []
    for kind, recs in res["baselines"].items():
        for r in recs:
            if "skipped" in r:
                rows.append([kind, _count(r["tokens"]), "skipped", "-", "-", "-", r["skipped"]])
            elif "error" in r:
                rows.append([kind, _count(r["tokens"]), r["error"], "-", "-", "-", ""])
            else:
                rows.append([kind, _count(r["tokens"]), _secs(r["end_to_end_s"]),
                             _mtok(r["tokens_per_s"]), "+" + _mib(r["fit_peak_increase_bytes"]),
                             _ppl(r["held_out_perplexity"]), r.get("note") or ""])
    lines += _table(["baseline", "tokens", "end to end", "M tok/s", "peak over import",
                     "held-out ppl", "note"], rows)

    lines += ["", "### raw text -> models (`fit_text_lm`, word level; " + res["data"]["text_rule"]
              + ")", ""]
    rows = []
    for r in res["text"]:
        if not _ok(r):
            rows.append([f"{r['megabytes']:g}", "error: " + r.get("error", "")[:80]] + ["-"] * 8)
            continue
        s = r["seconds"]
        fits = " / ".join(f"K={f['window']} {f['backend']} {_secs(f['seconds']['total'])}"
                          for f in r["fits"])
        ppl = " / ".join(_ppl(f["held_out_perplexity"]) for f in r["fits"])
        speeds = " / ".join(f"K={k} {_mtok(v)}" for k, v in r["tokens_per_s_by_window"].items())
        rows.append([f"{r['megabytes']:g}", _count(r["num_tokens"]), r["fits"][0]["vocab_size"],
                     _secs(s.get("vocabulary")), _secs(s.get("encode")), fits,
                     _secs(r["wall_s"]), speeds, _mib(r["peak_rss_bytes"]), ppl])
    lines += _table(["MB", "tokens", "V", "vocabulary pass", "encode", "fits", "whole call",
                     "M tok/s (text -> model)", "peak RSS", "held-out ppl"], rows)

    ch = res.get("checks", {})
    lines += ["", "### checks and ratios", ""]
    for c in ch.get("counter_equals_xsol_k1", []):
        lines.append(f"- Counter perplexity == xsol's (K=1, {_count(c['tokens'])} tokens, "
                     f"{c['backend']}): {c['counter']:.6f} vs {c['xsol']:.6f}, relative "
                     f"difference {c['relative_difference']:.1e} -> "
                     + ("EQUAL" if c["equal"] else "DIFFERENT (> 1e-6)"))
    for c in ch.get("nltk_vs_counter", []):
        lines.append(f"- NLTK perplexity vs Counter ({_count(c['tokens'])} tokens): "
                     f"{c['nltk']:.4f} vs {c['counter']:.4f} ({c['note']})")
    for kind, r in res.get("ratios", {}).items():
        if r.get("ratio") is None:
            lines.append(f"- xsol vs {kind}: - ({r.get('note')})")
        else:
            lines.append(f"- xsol vs {kind} at {_count(r['tokens'])} tokens (K=1, "
                         f"V={r['vocab_size']}, {r['backend']}), {kind} time / xsol time: "
                         f"{_secs(r['baseline_s'])} / {_secs(r['xsol_s'])} = "
                         f"{r['ratio']:.3g}x" + (f" ({r['note']})" if r.get("note") else ""))
    lines += ["", "Flatness rule: " + FLAT_RULE + ".", ""]
    rows = []
    for t in res.get("targets", []):
        state = "met" if t["met"] else "MISSED" if t["met"] is False else "-"
        val = "-" if t["ratio"] is None else f"{t['ratio']:.3g} {t.get('unit', '')}".strip()
        thr = f"{t['op']} {t['threshold']:g}" if t.get("op") else "-"
        rows.append([t["target"], val, thr, state, t.get("note") or ""])
    lines += _table(["target", "measured", "threshold", "", "note"], rows)
    if res.get("plot"):
        lines += ["", f"plot: {res['plot']}"]
    return "\n".join(lines)


def plot_corpus(res: dict, path) -> str:
    """Log-log plot of tokens/s against corpus size: each xsol configuration and the baselines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    series: dict = {}
    for r in res["tokens"]:
        if _ok(r):
            series.setdefault(f"xsol V={r['vocab_size']} K={r['window']} ({r['backend']})",
                              []).append((r["tokens"], r["tokens_per_s"]))
    for r in res["text"]:
        if _ok(r):
            for k, v in r["tokens_per_s_by_window"].items():
                series.setdefault(f"xsol raw text K={k} (tiled)", []).append((r["num_tokens"], v))
    for kind, recs in res["baselines"].items():
        for r in recs:
            if _ok(r):
                series.setdefault(f"{kind} V={r['vocab_size']} K=1", []).append(
                    (r["tokens"], r["tokens_per_s"]))
    for label, pts in series.items():
        pts.sort()
        style = "--" if label.startswith(("counter", "nltk")) else "-"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=3,
                label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("corpus tokens")
    ax.set_ylabel("tokens / s, end to end")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="x-small")
    ax.set_title("corpus -> fitted, held-out-evaluated bigram / K-window model")
    path = os.fspath(path)
    fig.savefig(path, dpi=120)
    return path


def parse_count(text: str) -> int:
    """``"200k"``, ``"1M"``, ``"1.5G"`` or ``"30000"`` as an int."""
    t = str(text).strip()
    scale = {"k": 10**3, "K": 10**3, "m": 10**6, "M": 10**6, "g": 10**9, "G": 10**9}
    if t and t[-1] in scale:
        return int(round(float(t[:-1]) * scale[t[-1]]))
    return int(float(t))


__all__ = ["write_markov_corpus", "write_tiled_text", "distinct_pairs", "run_corpus",
           "run_child", "child_code", "default_config", "corpus_targets", "format_corpus",
           "plot_corpus", "parse_count", "FLAT_RULE"]

