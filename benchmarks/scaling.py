"""Time and peak memory of the explicit LM fit against data size and vocabulary.

Each point runs in a fresh Python subprocess, so its peak memory is its own:

* ``peak_rss_bytes``: the process's high-water resident set size (Linux
  ``VmHWM``), which includes the Python/JAX runtime and the token data;
* ``fit_peak_increase_bytes``: the high-water mark during the first fit minus
  the resident size just before it, i.e. the extra memory the fit needed at
  its peak. The mark is restarted just before the fit (``/proc/self/clear_refs``),
  so nothing earlier (imports, generating the data) can set it.

Two methods: ``"dense"`` (:func:`xsol.fit_explicit`: an ``M x N`` count
table and weight matrix; refused up front with ``MemoryBudgetError`` when it
would not fit) and ``"sparse"`` (:meth:`xsol.solvers.sparse.SparseExplicitLM.fit`).
Times: ``first_s`` (includes compilation for the dense method) and ``warm_s``
(a second fit on the same data).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

#: A child process that runs this module's worker (the repository root on its path).
_WORKER = (f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parents[1])!r}); "
           "from benchmarks.scaling import _main; _main()")


def _run_point(spec: dict) -> dict:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import xsol  # noqa: PLC0415
    from xsol.solvers import sparse  # noqa: PLC0415
    from benchmarks import tokens  # noqa: PLC0415
    from xsol.core.process_memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss  # noqa: PLC0415
    from xsol.core.memory import MemoryBudgetError  # noqa: PLC0415

    n, V, K = int(spec["tokens"]), int(spec["vocab_size"]), int(spec.get("window", 1))
    method = spec["method"]
    ids = tokens.zipf_tokens(n + K, V, seed=int(spec.get("seed", 0)))
    X, y = tokens.windows(ids, K)
    held = None
    if spec.get("score_examples"):
        hid = tokens.zipf_tokens(int(spec["score_examples"]) + K, V, seed=1)
        held = tokens.windows(hid, K)
    del ids
    out = {**spec, "examples": int(X.shape[0])}

    def fit():
        if method == "dense":
            sol = xsol.fit_explicit(X, y, V, vocab_size=V)
            jax.block_until_ready(sol.weights)
            return sol
        return sparse.SparseExplicitLM.fit(X, y, V)

    try:
        out["peak_reset"] = reset_peak_rss()
        out["rss_before_bytes"] = current_rss_bytes()
        t0 = time.perf_counter()
        model = fit()
        out["first_s"] = time.perf_counter() - t0
        out["fit_peak_increase_bytes"] = peak_rss_bytes() - out["rss_before_bytes"]
        del model
        t0 = time.perf_counter()
        model = fit()
        out["warm_s"] = time.perf_counter() - t0
        out["refused"] = None
    except MemoryBudgetError as e:
        out["refused"] = str(e)
        model = None
    if model is not None and method == "sparse":
        out["nnz"] = model.stats.nnz
        out["solution_bytes"] = model.nbytes
        if held is not None:
            t0 = time.perf_counter()
            out["held_out_perplexity"] = model.perplexity(*held)
            out["score_s"] = time.perf_counter() - t0
            out["score_examples"] = int(held[0].shape[0])
            t0 = time.perf_counter()
            ids_top, probs = model.top_next(held[0][0], 5)
            out["top_next_s"] = time.perf_counter() - t0
            out["top_next_example"] = {"context": held[0][0].tolist(),
                                       "ids": ids_top.tolist(),
                                       "probabilities": [float(p) for p in probs]}
        if spec.get("dense_weights"):
            try:
                model.dense_weights()
                out["dense_weights"] = "built"
            except MemoryBudgetError as e:
                out["dense_weights"] = f"refused: {e}"
    if model is not None and method == "dense":
        out["table_bytes"] = int(np.prod(model.weights.shape)) * 4
    out["peak_rss_bytes"] = peak_rss_bytes()
    return out


def _main() -> None:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(_run_point(spec)))


def run_point(spec: dict, timeout: float = 600) -> dict:
    """Runs one point in a fresh subprocess; returns its result (or the error)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _WORKER], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {**spec, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["subprocess_wall_s"] = wall
    return res


def run_scaling(points: list[dict], timeout: float = 600, *,
                in_process: bool = False) -> list[dict]:
    """:func:`run_point` for each spec ``{"method", "tokens", "vocab_size"[, "window", ...]}``.

    ``in_process=True`` runs the points in this process instead (fast, for
    smoke tests; the peak mark is still restarted before each fit, but memory
    this process already holds is not returned to the system between points).
    """
    if in_process:
        return [{**_run_point(p), "in_process": True} for p in points]
    return [run_point(p, timeout) for p in points]


def default_points(quick: bool) -> dict[str, list[dict]]:
    """Data size 1x..16x (V = 2000) and vocabulary 1k..64k (1M tokens), dense and sparse."""
    if quick:
        return {
            "data_size": [{"method": "dense", "tokens": n, "vocab_size": 200} for n in
                          (20_000, 40_000)],
            "vocabulary": [{"method": "sparse", "tokens": 20_000, "vocab_size": v}
                           for v in (100, 400)],
        }
    base = 1_000_000
    data = [{"method": m, "tokens": base * f, "vocab_size": 2000}
            for f in (1, 2, 4, 8, 16) for m in ("dense", "sparse")]
    vocab = [{"method": m, "tokens": base, "vocab_size": v}
             for v in (1024, 4096, 16384, 65536) for m in ("dense", "sparse")]
    return {"data_size": data, "vocabulary": vocab}
