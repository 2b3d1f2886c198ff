"""Dense token-window counts on the host CPU, by sorting.

``F[k V + X[t, k], y_t] += 1`` for every window ``t`` and position ``k``:
the exact integer statistics of :func:`xsol.stats.token_cooccurrence`, gathered
differently. On a CPU, a scatter-add of one count per token into a large
table (``V = 32k``: 4 GiB) misses the cache on nearly every token. Here each
chunk's flat keys ``(k V + X[t, k]) N + y_t`` are sorted instead (NumPy's
vectorized integer sort), equal keys become one ``(key, count)`` pair, and the
table is updated once per distinct key, in increasing address order. Chunks
are sorted on every core at once (NumPy releases the GIL while it sorts); the
table updates run one at a time, so the counts are exact and identical to
the scatter's.

On accelerators :func:`xsol.accumulate` (a jitted scatter-add) is the fast
path; :func:`xsol.lm.fit_token_lm` picks this one only on the CPU.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import jax
import numpy as np

from xsol.core.inputs import aligned_empty
from xsol.solvers.dense import available_cpus
from xsol.stats.sparse import (
    count_sorted,
    count_feature_totals,
    key_dtype,
    count_labels,
    write_keys,
)
from xsol.stats.accumulators import CoocStats, count_dtype, max_count


def _chunk_pairs(X: np.ndarray, y: np.ndarray, V: int, N: int):
    """Sorted distinct flat keys of one chunk and their counts, plus row and label counts."""
    B, K = X.shape
    keys = np.empty(B * K, key_dtype(K * V * N))
    write_keys(X, y, V, N, keys)
    keys.sort()
    uniq, counts = count_sorted(keys)
    return uniq, counts, count_feature_totals(X, V), count_labels(y, N), B


def count_windows_host(batches: Iterable, vocab_size: int, num_classes: int, window: int, *,
                       total_windows: int | None = None,
                       workers: int | None = None) -> CoocStats:
    """Exact dense :class:`xsol.stats.CoocStats` of validated token windows, counted on the host.

    Args:
      batches: ``(X, y)`` with ``X`` int32 ``(B, K)`` ids in ``[0, V)`` and ``y``
        int32 ``(B,)`` in ``[0, N)``, already validated (e.g. by
        :func:`xsol.data.iter_token_windows` with ``vocab_size``).
      vocab_size: ``V``.
      num_classes: ``N``.
      window: ``K``.
      total_windows: the number of windows, when known, to refuse up front a
        stream whose counts would overflow the count dtype.
      workers: threads sorting chunks (default: the CPUs available).

    Returns:
      Statistics in :func:`xsol.stats.accumulators.count_dtype`, as JAX arrays sharing the
      host buffers (64-byte aligned, so the CPU device takes them without a copy).

    Raises:
      ValueError: counts that would overflow the count dtype.
    """
    V, N, K = int(vocab_size), int(num_classes), int(window)
    limit = max_count()
    if total_windows is not None and total_windows * K > limit:
        raise ValueError(
            f"{total_windows:,} windows of {K} tokens would exceed {limit:,}, the largest count "
            "of the count dtype; enable 64-bit counts with "
            "jax.config.update('jax_enable_x64', True)")
    dtype = np.dtype(count_dtype())
    table = aligned_empty((K * V * N,), dtype)
    table[:] = 0
    totals = np.zeros(K * V, np.int64)
    labels = np.zeros(N, np.int64)
    n = 0
    workers = workers or available_cpus()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []

        def drain(keep: int):
            nonlocal n
            while len(pending) > keep:
                keys, counts, rows, labs, B = pending.pop(0).result()
                table[keys] += counts.astype(dtype)  # distinct keys: a plain fancy add
                totals[:] += rows
                labels[:] += labs
                n += B
                if n * K > limit:
                    raise ValueError(
                        f"counts would exceed {limit:,}, the largest count of {dtype.name}; "
                        "enable 64-bit counts with jax.config.update('jax_enable_x64', True)")

        for X, y in batches:
            pending.append(pool.submit(_chunk_pairs, X, y, V, N))
            drain(workers)
        drain(0)
    return CoocStats(
        jax.device_put(table.reshape(K * V, N)),
        jax.device_put(totals.astype(dtype)),
        jax.device_put(labels.astype(dtype)),
        jax.device_put(np.asarray(n, dtype)),
    )
