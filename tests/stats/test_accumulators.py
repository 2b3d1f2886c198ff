"""Accumulators: exact integer counts, associativity, batch-size and device-count invariance."""

import json
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import xsol


def _tree_equal(a, b):
    for x, z in zip(a, b):
        assert x.dtype == z.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(z))


def test_merge_of_updates_equals_sequential_updates_for_ids(rng):
    V, K = 30, 2
    acc = xsol.stats.token_cooccurrence(V, V, window=K)
    a = rng.integers(0, V, (257, K)).astype(np.int32), rng.integers(0, V, 257).astype(np.int32)
    b = rng.integers(0, V, (100, K)).astype(np.int32), rng.integers(0, V, 100).astype(np.int32)
    s0 = acc.init()
    merged = acc.merge(acc.update(s0, *a), acc.update(s0, *b))
    sequential = acc.update(acc.update(s0, *a), *b)
    _tree_equal(merged, sequential)
    assert jnp.issubdtype(merged.cooc.dtype, jnp.integer)
    assert int(merged.num_examples) == 357
    assert int(merged.cooc.sum()) == 357 * K
    np.testing.assert_array_equal(np.asarray(merged.feature_totals), np.asarray(merged.cooc.sum(1)))


@pytest.mark.parametrize("batch_size", [1, 7, 128, 1000])
def test_batch_size_does_not_change_counts(rng, batch_size):
    V = 17
    ids = rng.integers(0, V, 1001)
    X, y = ids[:-1], ids[1:]
    ref = xsol.fit_explicit(X, y, V).stats
    batches = [(X[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    got = xsol.accumulate(batches, V, vocab_size=V, progress=False)
    _tree_equal(got, ref)
    np.testing.assert_array_equal(np.asarray(ref.cooc), np.histogram2d(X, y, bins=(V, V), range=((0, V), (0, V)))[0])


def test_dense_batches_sum_to_the_whole(rng):
    X = rng.random((500, 12)).astype(np.float32)
    y = rng.integers(0, 5, 500)
    whole = xsol.fit_explicit(X, y, 5).stats
    parts = xsol.accumulate(((X[i : i + 64], y[i : i + 64]) for i in range(0, 500, 64)), 5,
                            progress=False)
    np.testing.assert_allclose(np.asarray(parts.cooc), np.asarray(whole.cooc), rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(parts.label_counts), np.asarray(whole.label_counts))
    # Running totals live on the host in float64 (counters int64): exact past 2**24.
    assert parts.cooc.dtype == np.float64 and parts.label_counts.dtype == np.int64


def test_dense_totals_stay_exact_past_2_24_and_2_31():
    X = np.full((4096, 3), 255, np.uint8)
    y = np.zeros(4096, np.int32)
    batches = [(X, y)] * 20  # 20 * 4096 * 255 = 20.9M > 2**24 per cell
    got = xsol.accumulate(batches, 2, normalize="none", progress=False)
    ref = 20 * 4096 * 255.0
    assert float(got.cooc[0, 0]) == ref and float(got.feature_totals[0]) == ref
    # Resuming from saved statistics near 2**31 examples: counters do not wrap.
    big = got._replace(num_examples=np.int64(2**31 - 10),
                       label_counts=np.array([2**31 - 10, 0], np.int64))
    more = xsol.accumulate([(X[:100], y[:100])], 2, normalize="none", state=big,
                           progress=False)
    assert int(more.num_examples) == 2**31 + 90 and int(more.label_counts[0]) == 2**31 + 90
    assert float(more.cooc[0, 0]) == ref + 100 * 255


def test_accumulate_resumes_from_a_saved_state(rng, tmp_path):
    V = 9
    ids = rng.integers(0, V, 600)
    X, y = ids[:-1], ids[1:]
    first = xsol.accumulate([(X[:300], y[:300])], V, vocab_size=V, progress=False)
    path = tmp_path / "stats.npz"
    np.savez(path, **first._asdict())
    loaded = xsol.stats.CoocStats(**dict(np.load(path)))
    resumed = xsol.accumulate([(X[300:], y[300:])], V, vocab_size=V, state=loaded, progress=False)
    _tree_equal(resumed, xsol.fit_explicit(X, y, V).stats)


def test_counts_identical_across_device_counts(tmp_path):
    """Run the same stream on 1 and on 3 (forced) CPU devices: identical integer counts."""
    script = textwrap.dedent(
        """
        import json, sys, numpy as np, jax, xsol
        rng = np.random.default_rng(1)
        V = 23
        ids = rng.integers(0, V, 5003)
        X = np.stack([ids[:-2], ids[1:-1]], 1); y = ids[2:]
        batches = [(X[i:i + 500], y[i:i + 500]) for i in range(0, len(y), 500)]
        s = xsol.accumulate(batches, V, vocab_size=V, progress=False)
        d = xsol.accumulate([(X.astype(np.float32) / V, y)], V, progress=False)
        # A refused batch keeps the counts of the batches before it (every device's).
        bad = batches[:4] + [(X[:10], np.full(10, V + 5))] + batches[4:]
        try:
            xsol.accumulate(bad, V, vocab_size=V, progress=False)
        except xsol.BatchError as e:
            kept = e.stats
        before = xsol.accumulate(batches[:4], V, vocab_size=V, progress=False)
        # A dense batch large enough for every device's share of chunks plus a tail:
        # integer pixels without normalization sum exactly on any device count.
        P = rng.integers(0, 256, (20000, 5)).astype(np.uint8)
        yP = rng.integers(0, 4, 20000)
        big = xsol.accumulate([(P, yP)], 4, normalize="none", progress=False)
        Pf = P.astype(np.float32)
        Pf[777, 2] = -1.0  # in the devices' shares, not the tail
        try:
            xsol.accumulate([(Pf, yP)], 4, progress=False)
            refused = False
        except xsol.BatchError as e:
            refused = "row 777" in str(e)
        print(json.dumps({"devices": jax.local_device_count(),
                          "cooc": np.asarray(s.cooc).tolist(),
                          "totals": np.asarray(s.feature_totals).tolist(),
                          "labels": np.asarray(s.label_counts).tolist(),
                          "n": int(s.num_examples),
                          "kept": all(np.array_equal(np.asarray(a), np.asarray(b))
                                      for a, b in zip(kept, before)),
                          "dense": np.asarray(d.cooc).tolist(),
                          "big": np.asarray(big.cooc).tolist(), "refused": refused}))
        """
    )
    out = {}
    for n in (1, 3):
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        out[n] = json.loads(r.stdout.strip().splitlines()[-1])
    assert out[1]["devices"] == 1 and out[3]["devices"] == 3
    for field in ("cooc", "totals", "labels"):
        assert out[1][field] == out[3][field]
    assert out[1]["n"] == out[3]["n"] == 5001
    assert out[1]["kept"] and out[3]["kept"]
    np.testing.assert_allclose(out[1]["dense"], out[3]["dense"], rtol=1e-5)
    assert out[1]["big"] == out[3]["big"]  # exact: integer sums below 2**24 per chunk
    assert out[1]["refused"] and out[3]["refused"]


def test_int64_counts_under_x64(tmp_path):
    script = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "import numpy as np, xsol\n"
        "s = xsol.fit_explicit(np.array([0, 1, 1]), np.array([1, 0, 1]), 2).stats\n"
        "print(s.cooc.dtype, s.num_examples.dtype)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["int64", "int64"]
