"""Scale-out of one-pass statistics: :func:`xsol.accumulate` against the number of devices.

Three workloads, each one pass of :func:`xsol.accumulate` (validated input,
the batch split over the local devices by ``shard_map``; token ids are counted
into one table per device, added once at the end of the pass; each device
reduces its share of dense rows in chunks whose sums the host adds):

* ``bigram``: a stream of i.i.d. Zipfian token ids (default ``10^7`` tokens,
  ``V = 2000``), windows of ``K = 1``, batches of ``2^20`` tokens;
* ``window3``: the same stream with ``K = 3`` windows;
* ``dense``: Fashion-MNIST-sized dense features, ``60000 x 784`` float32
  (uniform random values, 10 classes), one batch.

Each point (a workload at a device count) runs in a fresh Python subprocess
whose ``XLA_FLAGS`` force ``--xla_force_host_platform_device_count=n``
CPU devices (``n`` = 1, 2, 4). A point's time is the median over repeated
passes after a first (compiling) pass and a warm-up pass; its throughput is
tokens (or examples) per second of a pass, its ``per_batch_s`` the pass time
over its number of batches. Ratios are against the 1-device row of the same
workload measured in the same run: ``time_ratio`` = time(n) / time(1) and
``speedup`` = time(1) / time(n). Token counts are exact integers, so their
checksum must be the same at every device count (``counts_identical``).

Forced CPU devices share the machine's cores: ``n`` of them split the same
CPUs, so these figures measure what splitting the batch and adding the
devices' statistics cost, not a speedup from more hardware; on accelerators (or several
hosts) each device brings its own compute.

Rows with ``processes > 1`` come from that many JAX processes of one CPU
device each, started together on this machine (``jax.distributed``, a
coordinator on 127.0.0.1, :func:`run_process_point`): each counts its share
of the same batches and one all-reduce adds the shares (it is inside the
timed pass). They share the same 2 cores, too.

The table is built from a list of rows (:func:`summarize_rows`), so rows
measured elsewhere can be added to it: rows of runs with several JAX
processes (``jax.distributed``) carry ``processes > 1`` and the same fields
(see :data:`ROW_FIELDS`); pass them as ``extra_rows`` to :func:`run_scaleout`
or append them to ``rows`` and call :func:`summarize_rows` again.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable

#: A child process that runs this module's worker (the repository root on its path).
_WORKER = (f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parents[1])!r}); "
           "from benchmarks.scaleout import _main; _main()")

WORKLOADS = ("bigram", "window3", "dense")
DEVICE_COUNTS = (1, 2, 4)

#: The fields of one row (one workload at one device/process count).
ROW_FIELDS = {
    "workload": "'bigram', 'window3' or 'dense'",
    "processes": "JAX processes (1 here; jax.distributed runs add rows with more)",
    "devices": "devices in all processes together",
    "local_devices": "devices of one process",
    "device_kind": "e.g. 'forced CPU' (--xla_force_host_platform_device_count)",
    "unit": "'tokens' or 'examples'",
    "items": "tokens (windows) or examples of one pass",
    "batches": "batches of one pass",
    "batch_items": "tokens or examples per batch",
    "timings": "benchmarks.timing.summarize of one pass (median_s, first_s, ...)",
    "per_batch_s": "median pass time / batches",
    "throughput": "items per second of the median pass",
    "checksum": "sha1 of the counts (ids, exact) or the float sum of F (dense)",
    "error": "present when the point failed (then no timings)",
}


def default_config(quick: bool = False) -> dict:
    """Sizes of the section: the full scale, or seconds-long smoke sizes with ``quick``."""
    if quick:
        return {"tokens": 50_000, "vocab_size": 300, "batch_tokens": 1 << 14,
                "dense_examples": 2_000, "dense_features": 784, "dense_classes": 10,
                "dense_batch": 2_000, "devices": [1, 2], "processes": [2],
                "workloads": list(WORKLOADS),
                "repeats": 3, "timeout": 300, "process_per_workload": False}
    return {"tokens": 10_000_000, "vocab_size": 2000, "batch_tokens": 1 << 20,
            "dense_examples": 60_000, "dense_features": 784, "dense_classes": 10,
            "dense_batch": 60_000, "devices": list(DEVICE_COUNTS), "processes": [2],
            "workloads": list(WORKLOADS), "repeats": 5, "timeout": 900,
            "process_per_workload": True}


# -- one point, in its own process ------------------------------------------------------------


def _measure(workload: str, cfg: dict, repeats: int) -> dict:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    import xsol  # noqa: PLC0415
    from xsol import distributed  # noqa: PLC0415
    from benchmarks import tokens  # noqa: PLC0415
    from benchmarks.timing import time_interleaved  # noqa: PLC0415

    def share(batches):  # this process's batches (rows of a single batch): contiguous, in order
        if len(batches) == 1:
            X, y = batches[0]
            lo, hi = distributed.shard_bounds(len(y))
            return [(X[lo:hi], y[lo:hi])]
        lo, hi = distributed.shard_bounds(len(batches))
        return batches[lo:hi]

    def count(batches, num_classes, **kw):
        if jax.process_count() == 1:
            return xsol.accumulate(batches, num_classes, progress=False, **kw).cooc
        return distributed.accumulate_distributed(share(batches), num_classes, **kw).cooc

    row = {"workload": workload, "processes": jax.process_count(),
           "devices": jax.device_count(), "local_devices": jax.local_device_count(),
           "device_kind": ("forced CPU" if jax.default_backend() == "cpu"
                           else jax.devices()[0].device_kind)}
    if workload in ("bigram", "window3"):
        K = 1 if workload == "bigram" else 3
        V, n, B = int(cfg["vocab_size"]), int(cfg["tokens"]), int(cfg["batch_tokens"])
        X, y = tokens.windows(tokens.zipf_tokens(n + K, V, seed=0), K)
        batches = [(X[i:i + B], y[i:i + B]) for i in range(0, len(y), B)]

        def run():
            return count(batches, V, vocab_size=V)

        row.update(unit="tokens", items=int(len(y)), batch_items=B, window=K, vocab_size=V)
    elif workload == "dense":
        n, M = int(cfg["dense_examples"]), int(cfg["dense_features"])
        N, B = int(cfg["dense_classes"]), int(cfg["dense_batch"])
        rng = np.random.default_rng(0)
        X = rng.random((n, M), dtype=np.float32)
        y = rng.integers(0, N, n).astype(np.int32)
        batches = [(X[i:i + B], y[i:i + B]) for i in range(0, n, B)]

        def run():
            return count(batches, N)

        row.update(unit="examples", items=n, batch_items=B, features=M, classes=N)
    else:
        raise ValueError(f"unknown workload {workload!r}; choose from {WORKLOADS}")
    row["batches"] = len(batches)
    t = time_interleaved({"accumulate": run}, repeats)["accumulate"]
    F = np.asarray(run())
    row["timings"] = t
    row["per_batch_s"] = t["median_s"] / len(batches)
    row["throughput"] = row["items"] / t["median_s"]
    row["checksum"] = (hashlib.sha1(np.ascontiguousarray(F, np.int64).tobytes()).hexdigest()
                       if row["unit"] == "tokens" else float(F.sum(dtype=np.float64)))
    return row


def _run_spec(spec: dict) -> list[dict]:
    rows = []
    for w in spec["workloads"]:
        try:
            rows.append(_measure(w, spec["config"], int(spec["repeats"])))
        except Exception as e:  # noqa: BLE001 - one failed workload leaves the others
            rows.append({"workload": w, "processes": spec.get("processes", 1),
                         "devices": spec["devices"], "error": f"{type(e).__name__}: {e}"})
    return rows


def _main() -> None:
    spec = json.loads(sys.stdin.read())
    if spec.get("processes", 1) > 1:
        from xsol import distributed  # noqa: PLC0415

        distributed.initialize(spec["coordinator"], spec["processes"], spec["process_id"])
    print(json.dumps(_run_spec(spec)))


def forced_devices_env(n: int, env: dict | None = None) -> dict:
    """``env`` (default ``os.environ``) with ``n`` forced CPU devices and the CPU platform."""
    env = dict(os.environ if env is None else env)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_point(devices: int, workloads: list[str], config: dict, *, repeats: int,
              timeout: float = 900) -> list[dict]:
    """The rows of ``workloads`` measured in one fresh subprocess with ``devices`` CPU devices."""
    spec = {"devices": int(devices), "workloads": list(workloads), "config": config,
            "repeats": int(repeats)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", _WORKER], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=timeout,
                              env=forced_devices_env(devices))
    except subprocess.TimeoutExpired:
        return [{"workload": w, "processes": 1, "devices": devices,
                 "error": f"timed out after {timeout:.0f} s"} for w in workloads]
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
        return [{"workload": w, "processes": 1, "devices": devices,
                 "error": f"exit {proc.returncode}: {tail}"} for w in workloads]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    for r in rows:
        r["subprocess_wall_s"] = wall
    return rows


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_process_point(processes: int, workloads: list[str], config: dict, *, repeats: int,
                      timeout: float = 900) -> list[dict]:
    """The rows of ``workloads`` measured by ``processes`` JAX processes of one CPU device each.

    The processes start together (``jax.distributed`` with a coordinator on
    127.0.0.1); each counts its contiguous share of the same batches and
    :func:`xsol.distributed.accumulate_distributed` adds the shares with one
    all-reduce, so a timed pass includes the all-reduce and ends together in
    every process. The rows are process 0's.
    """
    import tempfile  # noqa: PLC0415

    address = f"127.0.0.1:{_free_port()}"
    procs = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(processes):
            spec = {"devices": processes, "processes": processes, "process_id": i,
                    "coordinator": address, "workloads": list(workloads), "config": config,
                    "repeats": int(repeats)}
            out_path, err_path = os.path.join(tmp, f"{i}.out"), os.path.join(tmp, f"{i}.err")
            with open(out_path, "w") as out, open(err_path, "w") as err:
                p = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                     stdout=out, stderr=err, text=True,
                                     env=forced_devices_env(1))
            p.stdin.write(json.dumps(spec))
            p.stdin.close()
            procs.append((p, out_path, err_path))
        outputs = []
        try:
            for p, out_path, err_path in procs:
                p.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
                outputs.append((p.returncode, open(out_path).read(), open(err_path).read()))
        except subprocess.TimeoutExpired:
            for p, _, _ in procs:
                p.kill()
                p.wait()
            return [{"workload": w, "processes": processes, "devices": processes,
                     "error": f"timed out after {timeout:.0f} s"} for w in workloads]
    code, out, err = outputs[0]
    failed = next(((c, e) for c, _, e in outputs if c != 0), None)
    if failed is not None:
        tail = " | ".join((failed[1] or "").strip().splitlines()[-3:])
        return [{"workload": w, "processes": processes, "devices": processes,
                 "error": f"exit {failed[0]}: {tail}"} for w in workloads]
    rows = json.loads(out.strip().splitlines()[-1])
    wall = time.perf_counter() - t0
    for r in rows:
        r["subprocess_wall_s"] = wall
        r["device_kind"] = "CPU process"
    return rows


# -- the table: from any list of rows -----------------------------------------------------------


def summarize_rows(rows: Iterable[dict]) -> dict:
    """Medians and ratios per workload from rows of :data:`ROW_FIELDS` (any source).

    The reference of a workload is its row with ``processes == 1`` and
    ``devices == 1``. Each row gets ``time_ratio`` (its median pass time over
    the reference's) and ``speedup`` (the inverse); both are ``None`` without
    a reference or for a failed row.

    Returns:
      ``{"rows": [...sorted by workload, processes, devices],
      "workloads": {name: {"reference_median_s", "counts_identical"}}}``;
      ``counts_identical`` (token workloads) says whether every row's exact
      counts have the same checksum.
    """
    order = {w: i for i, w in enumerate(WORKLOADS)}
    rows = sorted((dict(r) for r in rows),
                  key=lambda r: (order.get(r["workload"], len(order)), str(r["workload"]),
                                 r.get("processes", 1), r.get("devices", 1)))
    workloads: dict = {}
    for name in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == name]
        ok = [r for r in mine if "error" not in r]
        ref = next((r for r in ok if r.get("processes", 1) == 1 and r.get("devices") == 1), None)
        base = ref["timings"]["median_s"] if ref else None
        for r in mine:
            good = "error" not in r and base is not None
            r["time_ratio"] = r["timings"]["median_s"] / base if good else None
            r["speedup"] = base / r["timings"]["median_s"] if good else None
        sums = {r.get("checksum") for r in ok}
        workloads[name] = {
            "reference_median_s": base,
            "counts_identical": (len(sums) == 1 if ok and ok[0].get("unit") == "tokens"
                                 else None),
        }
    return {"rows": rows, "workloads": workloads}


def run_scaleout(config: dict | None = None, *, quick: bool = False, repeats: int | None = None,
                 say=None, plot_path: str | None = None,
                 extra_rows: Iterable[dict] = ()) -> dict:
    """Measures every workload at every device count and builds the table.

    Args:
      config: overrides of :func:`default_config` (sizes, ``devices``,
        ``processes`` (counts above 1 run :func:`run_process_point`),
        ``workloads``, ``repeats``, ``timeout``, ``process_per_workload``).
      quick: start from the smoke sizes.
      repeats: timed passes per point (default: the config's).
      say: a progress callback (``print``-like), or None.
      plot_path: where to write the figure (PNG), or None.
      extra_rows: rows measured elsewhere (e.g. with several JAX processes),
        added to the table as they are (see :data:`ROW_FIELDS`).

    Returns:
      ``{"config", "method", "caveat", "rows", "workloads"[, "plot"]}``.
    """
    cfg = {**default_config(quick), **{k: v for k, v in (config or {}).items() if v is not None}}
    reps = int(repeats or cfg["repeats"])
    bad = set(cfg["workloads"]) - set(WORKLOADS)
    if bad:
        raise ValueError(f"unknown workloads {sorted(bad)}; choose from {WORKLOADS}")
    rows: list[dict] = []
    groups = ([[w] for w in cfg["workloads"]] if cfg["process_per_workload"]
              else [list(cfg["workloads"])])
    for n in cfg["devices"]:
        for ws in groups:
            if say:
                say(f"scaleout: {', '.join(ws)} on {n} forced CPU device(s), a fresh subprocess")
            rows.extend(run_point(int(n), ws, cfg, repeats=reps, timeout=float(cfg["timeout"])))
    for n in cfg.get("processes") or ():
        for ws in groups:
            if say:
                say(f"scaleout: {', '.join(ws)} on {n} JAX processes of one CPU device each")
            rows.extend(run_process_point(int(n), ws, cfg, repeats=reps,
                                          timeout=float(cfg["timeout"])))
    table = summarize_rows(rows + list(extra_rows))
    res = {"config": {**cfg, "repeats": reps}, "method": method_text(), "caveat": caveat(),
           **table}
    if plot_path:
        res["plot"] = plot_scaleout(res, plot_path)
    return res


def method_text() -> str:
    """What is measured and how: this module docstring's first paragraphs, on one line."""
    return " ".join(" ".join(p.split()) for p in __doc__.split("\n\n")[1:4])


def caveat() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"forced CPU devices (--xla_force_host_platform_device_count) and JAX processes "
            f"started here share this machine's {cpus} CPU cores: n devices split the same cores, so the ratios show the cost of "
            "splitting each batch and adding the devices' statistics, not the speedup of more "
            "hardware")


def _fmt_s(s) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def format_scaleout(res: dict) -> str:
    """The table: one line per row, with medians, throughput and ratios to 1 device."""
    lines = [f"caveat: {res.get('caveat') or caveat()}",
             f"{'workload':9s} {'proc':>4s} {'dev':>4s} {'batches':>7s} {'pass (median)':>13s} "
             f"{'per batch':>10s} {'throughput':>17s} {'time/1dev':>9s} {'speedup':>7s}"]
    for r in res["rows"]:
        head = f"{r['workload']:9s} {r.get('processes', 1):>4d} {r.get('devices', 0):>4d}"
        if "error" in r:
            lines.append(f"{head}  error: {r['error'][:150]}")
            continue
        unit = "tok/s" if r["unit"] == "tokens" else "ex/s"
        tr = "-" if r.get("time_ratio") is None else f"{r['time_ratio']:.2f}x"
        sp = "-" if r.get("speedup") is None else f"{r['speedup']:.2f}x"
        lines.append(f"{head} {r['batches']:>7d} {_fmt_s(r['timings']['median_s']):>13s} "
                     f"{_fmt_s(r['per_batch_s']):>10s} {r['throughput'] / 1e6:>10.2f} M {unit:>5s} "
                     f"{tr:>9s} {sp:>7s}")
    for name, w in res.get("workloads", {}).items():
        if w.get("counts_identical") is not None:
            lines.append(f"  {name}: counts identical at every device count: "
                         f"{w['counts_identical']}")
    if res.get("plot"):
        lines.append(f"  plot: {res['plot']}")
    return "\n".join(lines)


def plot_scaleout(res: dict, path) -> str:
    """Throughput relative to one device against the device count, a line per workload."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from xsol.core.serialize import save_figure  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    devices = sorted({r.get("devices", 1) for r in res["rows"]})
    for i, name in enumerate(res.get("workloads", {})):
        for procs in sorted({r.get("processes", 1) for r in res["rows"]
                             if r["workload"] == name}):
            pts = [r for r in res["rows"] if r["workload"] == name
                   and r.get("processes", 1) == procs and "error" not in r]
            if not pts:
                continue
            label = name + ("" if procs == 1 else f", {procs} processes")
            ls = "-" if procs == 1 else "--"
            d = [r["devices"] for r in pts]
            axes[0].plot(d, [r["timings"]["median_s"] / r["batches"] for r in pts], marker="o",
                         color=f"C{i}", linestyle=ls, label=label)
            if all(r.get("speedup") is not None for r in pts):
                axes[1].plot(d, [r["speedup"] for r in pts], marker="o", color=f"C{i}",
                             linestyle=ls, label=label)
    axes[1].plot(devices, devices, color="gray", linewidth=0.8, linestyle=":", label="ideal")
    axes[0].set_ylabel("time per batch (s, median)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("speedup over 1 device (same run)")
    for ax in axes:
        ax.set_xlabel("devices")
        ax.set_xticks(devices)
        ax.legend(fontsize=8)
    fig.suptitle("xsol.accumulate scale-out (forced CPU devices share the same cores)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def main(argv=None) -> int:
    """``python -m benchmarks.scaleout [--quick] [--tokens N] [--devices 1 2 4] [--out F.json]``."""
    import argparse  # noqa: PLC0415

    from xsol.core.serialize import write_json  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tokens", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=None)
    p.add_argument("--batch-tokens", type=int, default=None)
    p.add_argument("--dense-examples", type=int, default=None)
    p.add_argument("--devices", type=int, nargs="+", default=None)
    p.add_argument("--processes", type=int, nargs="*", default=None,
                   help="JAX process counts above 1 to measure (default 2; none: no process rows)")
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", default=None, help="JSON results (the plot goes next to it)")
    a = p.parse_args(argv)
    config = {"tokens": a.tokens, "vocab_size": a.vocab_size, "batch_tokens": a.batch_tokens,
              "dense_examples": a.dense_examples, "devices": a.devices,
              "processes": a.processes, "workloads": a.workloads}
    if a.dense_examples:
        config["dense_batch"] = a.dense_examples
    plot = os.path.splitext(a.out)[0] + "_scaleout.png" if a.out else None
    t0 = time.perf_counter()
    res = run_scaleout(config, quick=a.quick, repeats=a.repeats, plot_path=plot,
                       say=lambda m: print(f"[{time.perf_counter() - t0:6.1f}s] {m}", flush=True))
    print(format_scaleout(res))
    if a.out:
        write_json(a.out, res)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
