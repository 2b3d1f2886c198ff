"""Several JAX processes adding their statistics: start-up and the all-reduce.

Every process runs the same program. :func:`initialize` starts JAX's own
distributed runtime (``jax.distributed.initialize``: a coordinator at
``host:port`` that every process dials); each process then reads its own
share of the data (:mod:`xsol.data.shards`), counts it with
:func:`xsol.accumulate` (each batch split across the process's local devices),
and :func:`allreduce_stats` adds every process's :class:`xsol.stats.CoocStats` with
one ``psum`` over a global mesh of every device of every process, so that
every process ends with the same statistics. :func:`accumulate_distributed`
is the three steps in one call.

On the CPU, JAX runs the cross-process collectives over Gloo (TCP), its
default (``jax_cpu_collectives_implementation``); GPUs use NCCL and TPUs
their interconnect, with nothing to configure here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from xsol.stats.accumulators import CoocStats

__all__ = [
    "Process",
    "initialize",
    "process_mesh",
    "global_mesh",
    "gather_ints",
    "allreduce_stats",
    "report_failure",
]

#: What :func:`gather_ints` exchanges to tell processes apart: a process with
#: statistics, one whose stream was empty, one that raised.
_OK, _EMPTY, _FAILED = 0, 1, 2

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})$")


class Process(NamedTuple):
    """This process's place in a run: ``index`` in ``[0, count)``."""

    index: int
    count: int


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_address(address) -> str:
    m = _ADDRESS.match(address) if isinstance(address, str) else None
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"coordinator_address must be 'host:port' with a port from 1 to 65535, "
                         f"e.g. '10.0.0.1:8476', got {address!r}")
    return address


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, local_device_ids=None,
               initialization_timeout: int = 300) -> Process:
    """Starts JAX's distributed runtime for a run over several processes.

    Call it first, before any JAX computation, in every process, with the same
    ``coordinator_address`` and ``num_processes`` and each its own
    ``process_id``. Process 0 serves as the coordinator at that address (it
    must be reachable from every process). With all three arguments None,
    JAX detects them (Cloud TPU VMs, SLURM, Open MPI); with
    ``num_processes=1`` there is nothing to start and nothing is started.

    Args:
      coordinator_address: ``"host:port"`` of process 0.
      num_processes: the number of processes, >= 1.
      process_id: this process's index, ``0 <= process_id < num_processes``.
      local_device_ids: the local devices this process uses (e.g. ``[0]`` for
        one process per GPU); None: all of them.
      initialization_timeout: seconds to wait for every process to join.

    Returns:
      This process's :class:`Process` ``(index, count)``.

    Raises:
      ValueError: a malformed address, a count below 1, a process index out of
        range, only some of the three given, or a runtime already started
        with other values.
      RuntimeError: JAX computations ran before this call (JAX's own error).
    """
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        if num_processes is not None and not given[0]:
            n = _check_int("num_processes", num_processes, 1)
            if n == 1 and process_id in (None, 0):
                return Process(0, 1)
        raise ValueError(
            "coordinator_address, num_processes and process_id are given together (or all "
            "left None for JAX to detect them on a TPU VM, SLURM or Open MPI); got "
            f"coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, "
            f"process_id={process_id!r}")
    if all(given):
        _check_address(coordinator_address)
        n = _check_int("num_processes", num_processes, 1)
        i = _check_int("process_id", process_id, 0)
        if i >= n:
            raise ValueError(f"process_id {i} is out of range for {n} processes: expected "
                             f"0 <= process_id < {n}")
        if n == 1:
            return Process(0, 1)
        if jax.distributed.is_initialized():
            have = Process(jax.process_index(), jax.process_count())
            if have != (i, n):
                raise ValueError(f"JAX's distributed runtime already runs as process {have.index} "
                                 f"of {have.count}, not {i} of {n}")
            return have
        _use_cpu_collectives()
        jax.distributed.initialize(coordinator_address, n, i, local_device_ids=local_device_ids,
                                   initialization_timeout=initialization_timeout)
    elif not jax.distributed.is_initialized():
        _use_cpu_collectives()
        jax.distributed.initialize(local_device_ids=local_device_ids,
                                   initialization_timeout=initialization_timeout)
    return Process(jax.process_index(), jax.process_count())


def _use_cpu_collectives() -> None:
    """Cross-process collectives for CPU devices: Gloo, unless another is chosen."""
    try:
        if jax.config.jax_cpu_collectives_implementation is None:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:  # pragma: no cover - a JAX without the option
        pass


def _devices_by_process() -> list[list]:
    out: list[list] = [[] for _ in range(jax.process_count())]
    for d in sorted(jax.devices(), key=lambda d: d.id):
        out[d.process_index].append(d)
    return out


def process_mesh() -> Mesh:
    """A 1-D mesh ``("proc",)`` of one device per process (its first), in process order."""
    return Mesh(np.array([ds[0] for ds in _devices_by_process()]), ("proc",))


def global_mesh() -> Mesh:
    """A 1-D mesh ``("all",)`` of every device of every process, grouped by process."""
    return Mesh(np.array([d for ds in _devices_by_process() for d in ds]), ("all",))


def gather_ints(values) -> np.ndarray:
    """Every process's small int32 vector ``values``, stacked in process order: ``(P, k)``.

    A collective: every process calls it at the same point. In a single
    process, ``values[None]`` without communication.
    """
    a = np.asarray(values, np.int32).reshape(-1)
    if jax.process_count() == 1:
        return a[None]
    from jax.experimental import multihost_utils  # noqa: PLC0415

    return np.asarray(multihost_utils.process_allgather(a)).reshape(jax.process_count(), -1)


# --- the all-reduce ----------------------------------------------------------------------

_DTYPES = ("int32", "int64", "float32", "float64")


def _describe(parts: list[CoocStats]) -> list[int]:
    """``[M, N, dtype codes...]`` of statistics, checked equal across ``parts``."""
    rows = []
    for s in parts:
        if not isinstance(s, CoocStats):
            raise TypeError(f"allreduce_stats needs CoocStats, got {type(s).__name__}")
        shape = np.shape(s.cooc)
        if len(shape) != 2:
            raise ValueError(f"the co-occurrence matrix must be 2-D (M, N), got shape {shape}")
        M, N = shape
        want = {"feature_totals": (M,), "label_counts": (N,), "num_examples": ()}
        for name, sh in want.items():
            if tuple(np.shape(getattr(s, name))) != sh:
                raise ValueError(f"{name} has shape {tuple(np.shape(getattr(s, name)))}, expected "
                                 f"{sh} for a ({M}, {N}) co-occurrence matrix")
        codes = []
        for name in CoocStats._fields:
            dt = np.dtype(getattr(s, name).dtype).name
            if dt not in _DTYPES:
                raise ValueError(f"{name} has dtype {dt}; expected one of {', '.join(_DTYPES)}")
            codes.append(_DTYPES.index(dt))
        rows.append([M, N, *codes])
    if any(r != rows[0] for r in rows):
        raise ValueError("the local statistics to sum differ in shape or dtype: "
                         + "; ".join(_spell(r) for r in rows))
    return rows[0]


def _status_row(status: int, desc: list[int] | None = None) -> list[int]:
    """What the all-reduce's first exchange sends: a status, then ``[M, N, 4 dtype codes]``."""
    return [status] + (list(desc) if desc else [0] * (2 + len(CoocStats._fields)))


def _spell(row) -> str:
    M, N, *codes = (int(v) for v in row)
    return (f"a ({M}, {N}) co-occurrence matrix of {_DTYPES[codes[0]]}, counts of "
            f"{_DTYPES[codes[2]]}")


def _wide(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64 if np.issubdtype(dtype, np.floating) else np.int64)


@functools.lru_cache(maxsize=8)
def _psum_over(mesh: Mesh):
    spec = (P("all"),) * 4

    def local(*xs):
        return tuple(jax.lax.psum(x, "all") for x in xs)

    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=(P(),) * 4))


def _sum_psum(parts: list[dict], shapes: dict, dtypes: dict) -> dict:
    """Sum over every device of every process: each local device holds one part (or zeros)."""
    mesh = global_mesh()
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    if len(parts) > len(local):
        raise ValueError(f"{len(parts)} local statistics to sum but this process has "
                         f"{len(local)} devices; expected at most one per local device")
    sharding = NamedSharding(mesh, P("all"))
    with jax.enable_x64(True):
        args = []
        for name in CoocStats._fields:
            shape, dt = shapes[name], dtypes[name]
            pieces = [jax.device_put(parts[k][name][None], d) if k < len(parts)
                      else jnp.zeros((1,) + shape, dt, device=d) for k, d in enumerate(local)]
            args.append(jax.make_array_from_single_device_arrays(
                (mesh.devices.size,) + shape, sharding, pieces))
        out = _psum_over(mesh)(*args)
        return {name: np.array(o.addressable_data(0))[0]
                for name, o in zip(CoocStats._fields, out)}


def _sum_gather(parts: list[dict], shapes: dict, dtypes: dict) -> dict:
    """The same sum as an all-gather of 64-bit values (as uint32 pairs) added on the host.

    For backends without 64-bit collectives (TPUs): the bits travel unchanged
    and every process adds them in process order, so all get the same sums.
    """
    out = {}
    for name in CoocStats._fields:
        shape, dt = shapes[name], dtypes[name]
        local = np.zeros(shape, dt)
        for p in parts:
            local = local + p[name]
        bits = np.ascontiguousarray(local).reshape(shape + (1,)).view(np.uint32)
        if jax.process_count() == 1:
            every = bits[None]
        else:
            from jax.experimental import multihost_utils  # noqa: PLC0415

            every = np.asarray(multihost_utils.process_allgather(bits))
        rows = every.view(dt).reshape((-1,) + shape)
        total = np.zeros(shape, dt)
        for r in rows:
            total = total + r
        out[name] = total
    return out


def allreduce_stats(stats: CoocStats | Sequence[CoocStats] | None, *,
                    method: str = "auto") -> CoocStats:
    """The sum of every process's :class:`CoocStats`; every process gets the same result.

    Statistics are sums, so merging is the entrywise sum of the four fields
    (``cooc``, ``feature_totals``, ``label_counts``, ``num_examples``) over
    processes. A collective: every process calls it once, at the same point.

    ``method="psum"`` places each process's statistics on its first local
    device (zeros on its others) as one global array over every device of
    every process (:func:`global_mesh`) and adds them with one jit-compiled
    ``psum``, in 64-bit (int64 counts, float64 sums) whatever the input
    dtype, then casts back. ``"gather"`` all-gathers the 64-bit values and
    adds them on the host in process order (for TPUs, which have no float64
    collectives). ``"auto"`` (the default): ``"gather"`` on TPUs, else ``"psum"``.

    Exactness: integer fields (every field of token-id statistics, and the
    label and example counts of dense ones) are exact, bit-identical to one
    process counting everything. Float fields are float64 sums added in
    another order than one pass adds them: they agree with a single-process
    pass to a relative ``1e-12`` when each share's batches are the same as
    that pass's batches (the shard helpers of :mod:`xsol.data.shards`
    cut shares at batch boundaries), and to a relative ``1e-6`` otherwise
    (dense batches are reduced in float32 chunks before the float64 totals).

    Args:
      stats: this process's statistics; a list of up to one per local device
        (summed too); or None when this process had no data (it then
        contributes zeros of the others' shape).
      method: ``"auto"``, ``"psum"`` or ``"gather"``.

    Returns:
      The summed statistics, of the input's kind: JAX arrays in the input's
      dtypes for token-id statistics (as :func:`xsol.accumulate` returns
      them), NumPy float64/int64 host arrays for dense ones.

    Raises:
      ValueError: statistics of different shapes or dtypes in two processes
        (naming both), an unknown ``method``, more local statistics than
        local devices, no process with statistics, or a sum beyond int32
        counts without ``jax_enable_x64``.
      TypeError: something other than CoocStats.
    """
    if method not in ("auto", "psum", "gather"):
        raise ValueError(f"method must be 'auto', 'psum' or 'gather', got {method!r}")
    parts = [] if stats is None else [stats] if isinstance(stats, CoocStats) else list(stats)
    try:
        desc = _describe(parts) if parts else None
        status = _OK if parts else _EMPTY
    except (TypeError, ValueError):
        gather_ints(_status_row(_FAILED))
        raise
    rows = gather_ints(_status_row(status, desc))
    _check_rows(rows, "statistics")
    present = [r for r in rows if r[0] == _OK]
    if not present:
        raise ValueError("no process has statistics to sum: every process's stream was empty")
    M, N, *codes = (int(v) for v in present[0][1:])
    shapes = {"cooc": (M, N), "feature_totals": (M,), "label_counts": (N,), "num_examples": ()}
    given = {name: np.dtype(_DTYPES[c]) for name, c in zip(CoocStats._fields, codes)}
    wide = {name: _wide(dt) for name, dt in given.items()}
    host = [{name: np.asarray(getattr(s, name)).astype(wide[name]) for name in CoocStats._fields}
            for s in parts]
    if method == "auto":
        method = "gather" if any(d.platform == "tpu" for d in jax.devices()) else "psum"
    total = (_sum_psum if method == "psum" else _sum_gather)(host, shapes, wide)
    as_jax = bool(parts) and isinstance(parts[0].cooc, jax.Array)
    if not parts:  # adopt the container of the others: JAX arrays for integer cooc (ids)
        as_jax = np.issubdtype(given["cooc"], np.integer)
    out = []
    for name in CoocStats._fields:
        a, dt = total[name], given[name]
        if np.issubdtype(dt, np.integer) and a.size and a.max() > np.iinfo(dt).max:
            raise ValueError(
                f"the summed {name} reach {int(a.max())}, more than {dt.name} holds; enable "
                "64-bit counts with jax.config.update('jax_enable_x64', True) in every process")
        a = a.astype(dt)
        out.append(jnp.asarray(a) if as_jax else (dt.type(a) if a.ndim == 0 else a))
    return CoocStats(*out)


def _check_rows(rows: np.ndarray, what: str) -> None:
    """Raises in every process when one failed or two disagree (rows from :func:`gather_ints`)."""
    failed = [p for p, r in enumerate(rows) if r[0] == _FAILED]
    if failed:
        raise RuntimeError(f"process {failed[0]} failed before the {what} were summed (see its "
                           "own error); nothing was summed")
    present = [(p, r[1:]) for p, r in enumerate(rows) if r[0] == _OK]
    for p, r in present[1:]:
        if not np.array_equal(r, present[0][1]):
            raise ValueError(f"process {p} has {_spell(r)} but process {present[0][0]} has "
                             f"{_spell(present[0][1])}; every process must accumulate the same "
                             "kind of batches (window, vocabulary, features, labels, x64 mode)")


def report_failure() -> None:
    """Tells the other processes that this one failed, so that their all-reduce stops.

    Call it in a process whose own accumulation raised, before re-raising: the
    other processes, waiting in :func:`allreduce_stats`, then raise a
    ``RuntimeError`` naming this process instead of waiting for it. Does
    nothing in a single process.
    """
    if jax.process_count() > 1:
        gather_ints(_status_row(_FAILED))
