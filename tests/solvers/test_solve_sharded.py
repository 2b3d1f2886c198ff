"""The row-sharded explicit solve: equal to the one-device weights, rows stay on their devices.

The multi-device checks run in one subprocess with 4 forced CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``); it reports each
check as JSON and the tests below assert on them. Input errors that need
no second device are checked in this process (1 device).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import xsol
from xsol.solvers.sharded import (
    explicit_weights_sharded,
    padded_rows,
    resolve_row_sharding,
    row_axes,
    row_sharding,
    shard_rows,
)
from xsol.stats.accumulators import CoocStats

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(r'''
    import json, math
    import numpy as np
    import jax, jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from flax import nnx
    import xsol
    from xsol.models import linen as models, nnx as nnx_models
    from xsol.solvers.dense import explicit_weights
    from xsol.solvers.sharded import explicit_weights_sharded, shard_rows
    from xsol.stats.accumulators import CoocStats

    out = {}
    assert len(jax.devices()) == 4
    rng = np.random.default_rng(0)
    auto = Mesh(np.array(jax.devices()), ("model",))
    explicit = jax.make_mesh((4,), ("model",))
    assert str(explicit.axis_types[0]).endswith("Explicit"), explicit.axis_types

    def stats_of(F):
        return CoocStats(F, F.sum(1), F.sum(0), np.int64(max(1, F.sum())))

    def shards(x):
        return sorted((s.index[0].indices(x.shape[0])[:2], tuple(s.data.shape), s.device.id)
                      for s in x.addressable_shards)

    def own_rows_only(x, n):
        """Each device holds exactly one block of shape (rows / n, N), the blocks tile the rows."""
        sh = shards(x)
        rows = x.shape[0] // n
        return (len(sh) == n and all(shape == (rows, x.shape[1]) for _, shape, _ in sh)
                and [lo for (lo, _), _, _ in sh] == list(range(0, x.shape[0], rows))
                and len({d for _, _, d in sh}) == n)

    def same(a, b):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))

    # -- token ids: counts from xsol.accumulate, V = 64, K = 2, 4 devices --------------------
    V, K = 64, 2
    ids = rng.integers(0, V, 5000).astype(np.int32)
    X = np.stack([ids[:-2], ids[1:-1]], 1)
    y = ids[2:]
    st = xsol.accumulate([(X, y)], V, vocab_size=V, progress=False)       # replicated on 4 devices
    st1 = xsol.accumulate([(X, y)], V, vocab_size=V, progress=False, devices=jax.devices()[:1])
    W1, b1 = xsol.solve(st1, smoothing=0.5)                                 # one device
    res = {}
    for name, mesh in (("auto", auto), ("explicit", explicit)):
        W, b = xsol.solve(st, smoothing=0.5, mesh=mesh)
        lm = models.TokenLM(V, K)
        params = lm.from_explicit((W, b))
        Xq = X[:300]
        ref = models.TokenLM(V, K).apply({"params": {"W": W1, "b": b1}}, Xq)
        nm = nnx_models.TokenLM.from_explicit((W, b), vocab_size=V, window=K)
        pspec = nnx.get_partition_spec(nnx.state(nm, nnx.Param))
        upd = nnx_models.TokenLM(V, K, rngs=0)
        nnx.update(upd, upd.explicit_params((W, b)))
        res[name] = {
            "equal": same(W, W1),
            "equal_explicit_weights": same(W, explicit_weights(jnp.asarray(st1.cooc), 0.5)),
            "spec": list(W.sharding.spec), "own_rows": own_rows_only(W, 4),
            "bias_replicated": b.sharding.is_fully_replicated and len(b.sharding.device_set) == 4,
            "linen_W_sharding_kept": params["W"].sharding == W.sharding,
            "linen_b_replicated": params["b"].sharding.is_fully_replicated
                                  and len(params["b"].sharding.device_set) == 4,
            "linen_logits_equal": same(jax.jit(lm.apply)({"params": params}, Xq), ref),
            "nnx_W_sharding_kept": nm.W[...].sharding == W.sharding,
            "nnx_partition_spec": list(pspec["W"].get_value()),
            "nnx_logits_equal": same(nm(Xq), ref),
            "nnx_jit_logits_equal": same(nnx.jit(lambda m, x: m(x))(nm, Xq), ref),
            "nnx_update_sharding_kept": upd.W[...].sharding == W.sharding,
            "nnx_update_logits_equal": same(upd(Xq), ref),
        }
    out["ids"] = res

    # -- host statistics are placed by rows, never whole on a device --------------------------
    F = np.asarray(st1.cooc)
    s = NamedSharding(auto, P("model", None))
    Fs = shard_rows(F, s)
    out["placement"] = {
        "host_own_rows": own_rows_only(Fs, 4), "host_values": same(Fs, F),
        "single_device_own_rows": own_rows_only(shard_rows(jnp.asarray(F), s), 4),
        "already_sharded_is_kept": shard_rows(Fs, s) is Fs,
        "sharded_kernel_equal": same(explicit_weights_sharded(Fs, 0.5), W1),
        "sharded_kernel_spec": list(explicit_weights_sharded(Fs, 0.5).sharding.spec),
        "host_stats_solve_equal": same(xsol.solve(st1._replace(cooc=F), smoothing=0.5,
                                                  sharding=s)[0], W1),
    }

    # -- dense features: float64 host statistics (Fashion-MNIST-like shapes, small) ----------
    Xd = rng.random((2000, 96)).astype(np.float32)
    yd = rng.integers(0, 10, 2000)
    sd = xsol.accumulate([(Xd, yd)], 10, progress=False, devices=jax.devices()[:1])
    Wd1, bd1 = xsol.solve(sd, smoothing=0.1)
    Wd, bd = xsol.solve(sd, smoothing=0.1, mesh=auto)
    reg = models.SoftmaxRegression(96, 10)
    pd = reg.from_explicit(Wd)                      # a bare W: zero bias, replicated
    zd = jax.jit(reg.apply)({"params": pd}, Xd[:200])
    zd1 = reg.apply({"params": {"W": Wd1, "b": bd1}}, Xd[:200])
    nd = nnx_models.SoftmaxRegression.from_explicit((Wd, bd))
    out["dense"] = {
        "equal": same(Wd, Wd1), "own_rows": own_rows_only(Wd, 4),
        "linen_W_sharding_kept": pd["W"].sharding == Wd.sharding,
        "linen_b_replicated": pd["b"].sharding.is_fully_replicated
                              and len(pd["b"].sharding.device_set) == 4,
        "linen_logits_max_abs_diff": float(np.max(np.abs(np.asarray(zd) - np.asarray(zd1)))),
        "nnx_W_sharding_kept": nd.W[...].sharding == Wd.sharding,
        "nnx_logits_max_abs_diff": float(np.max(np.abs(np.asarray(nd(Xd[:200]))
                                                       - np.asarray(zd1)))),
        "explicit_mesh_logits_max_abs_diff": float(np.max(np.abs(np.asarray(
            reg.apply({"params": reg.from_explicit(xsol.solve(sd, smoothing=0.1,
                                                               mesh=explicit))}, Xd[:200]))
            - np.asarray(zd1)))),
    }

    # -- rows that do not divide over the devices: padding ------------------------------------
    pad = {}
    Fu = rng.integers(0, 5, (10, 7)).astype(np.int32)     # 10 dense features, 4 devices
    try:
        xsol.solve(stats_of(Fu), smoothing=0.5, mesh=auto)
        pad["refused_without_pad"] = None
    except ValueError as e:
        pad["refused_without_pad"] = str(e)
    Wu1, _ = xsol.solve(stats_of(Fu), smoothing=0.5)
    Wu, bu = xsol.solve(stats_of(Fu), smoothing=0.5, mesh=auto, pad=True)
    Xu = rng.random((50, 10)).astype(np.float32)
    Xu_pad = np.pad(Xu, ((0, 0), (0, Wu.shape[0] - 10)))
    zu1 = models.SoftmaxRegression(10, 7).apply({"params": {"W": Wu1, "b": jnp.zeros(7)}}, Xu)
    regp = models.SoftmaxRegression(Wu.shape[0], 7)
    zu = jax.jit(regp.apply)({"params": regp.from_explicit((Wu, bu))}, Xu_pad)
    pad["dense"] = {
        "shape": list(Wu.shape), "own_rows": own_rows_only(Wu, 4),
        "first_rows_equal": same(np.asarray(Wu)[:10], Wu1),
        "padding_rows_are_minus_log_N": bool(np.allclose(np.asarray(Wu)[10:], -np.log(7),
                                                         rtol=1e-6)),
        "logits_max_abs_diff": float(np.max(np.abs(np.asarray(zu) - np.asarray(zu1)))),
    }
    # token ids, K = 3 blocks of V = 5 ids (15 rows): each block padded to V' = 8 (24 rows)
    Vs, Ks = 5, 3
    idu = rng.integers(0, Vs, 3000).astype(np.int32)
    Xs = np.stack([idu[:-3], idu[1:-2], idu[2:-1]], 1)
    ys = idu[3:]
    su = xsol.accumulate([(Xs, ys)], Vs, vocab_size=Vs, progress=False, devices=jax.devices()[:1])
    Ws1, bs1 = xsol.solve(su, smoothing=0.5)
    Ws, bs = xsol.solve(su, smoothing=0.5, mesh=explicit, pad=True, window=Ks)
    Vp = Ws.shape[0] // Ks
    Wnp = np.asarray(Ws).reshape(Ks, Vp, Vs)
    ref = models.TokenLM(Vs, Ks).apply({"params": {"W": Ws1, "b": bs1}}, Xs[:300])
    lmp = models.TokenLM(Vp, Ks, Vs)
    nmp = nnx_models.TokenLM.from_explicit((Ws, bs), vocab_size=Vp, window=Ks)
    pad["ids"] = {
        "shape": list(Ws.shape), "own_rows": own_rows_only(Ws, 4),
        "blocks_equal": same(Wnp[:, :Vs].reshape(-1, Vs), Ws1),
        "padding_rows_are_minus_log_N": bool(np.allclose(Wnp[:, Vs:], -np.log(Vs), rtol=1e-6)),
        "linen_logits_equal": same(jax.jit(lmp.apply)({"params": lmp.from_explicit((Ws, bs))},
                                                      Xs[:300]), ref),
        "nnx_logits_equal": same(nmp(Xs[:300]), ref),
        "nnx_W_sharding_kept": nmp.W[...].sharding == Ws.sharding,
    }
    out["pad"] = pad

    # -- a 2-D mesh: rows along one axis (replicated over the other) or along both ------------
    mesh2 = Mesh(np.array(jax.devices()).reshape(2, 2), ("data", "model"))
    Wm, _ = xsol.solve(st, smoothing=0.5, mesh=mesh2, axis="model")
    Wdm, _ = xsol.solve(st, smoothing=0.5, mesh=mesh2, axis=("data", "model"))
    out["mesh2d"] = {
        "model_equal": same(Wm, W1),
        "model_shard_shapes": sorted({tuple(s.data.shape) for s in Wm.addressable_shards}),
        "both_equal": same(Wdm, W1), "both_own_rows": own_rows_only(Wdm, 4),
    }

    # -- smoothing = 0: the same refusal as on one device, and the same weights --------------
    Fz = rng.integers(1, 5, (12, 6)).astype(np.int32)
    Fz[3] = 0                                   # an unseen feature is fine
    z = {"equal": same(xsol.solve(stats_of(Fz), smoothing=0, mesh=auto)[0],
                       xsol.solve(stats_of(Fz), smoothing=0)[0])}
    Fz[5, 2] = 0                                # a zero count of a seen feature is not
    try:
        xsol.solve(stats_of(Fz), smoothing=0, mesh=auto)
        z["refused"] = None
    except ValueError as e:
        z["refused"] = str(e)
    out["zero_smoothing"] = z

    # -- a matrix large enough for solve()'s NumPy host path on one device --------------------
    Fl = rng.integers(0, 50, (4096, 4096)).astype(np.int32)
    Wl = np.asarray(xsol.solve(stats_of(Fl), smoothing=0.5, mesh=auto)[0])
    Wh = np.asarray(xsol.solve(stats_of(Fl), smoothing=0.5)[0])       # NumPy log (host path)
    We = np.asarray(explicit_weights(jnp.asarray(Fl), 0.5))          # XLA, one device
    out["large"] = {"equal_xla": same(Wl, We),
                    "max_rel_diff_host": float(np.max(np.abs(Wl - Wh) / np.abs(Wh)))}
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    proc = subprocess.run([sys.executable, "-c", WORKER], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("mesh", ["auto", "explicit"])
def test_sharded_token_weights_equal_one_device_and_stay_sharded(four_devices, mesh):
    r = four_devices["ids"][mesh]
    assert r["equal"] and r["equal_explicit_weights"]          # bit for bit
    assert r["spec"] == ["model", None]
    assert r["own_rows"] and r["bias_replicated"]


@pytest.mark.parametrize("mesh", ["auto", "explicit"])
def test_token_models_keep_the_sharding_and_give_the_same_logits(four_devices, mesh):
    r = four_devices["ids"][mesh]
    assert r["linen_W_sharding_kept"] and r["linen_b_replicated"]
    assert r["linen_logits_equal"]
    assert r["nnx_W_sharding_kept"] and r["nnx_update_sharding_kept"]
    assert r["nnx_partition_spec"] == ["model", None]
    assert r["nnx_logits_equal"] and r["nnx_jit_logits_equal"] and r["nnx_update_logits_equal"]


def test_host_statistics_are_placed_by_rows(four_devices):
    r = four_devices["placement"]
    assert r["host_own_rows"] and r["host_values"] and r["single_device_own_rows"]
    assert r["already_sharded_is_kept"]
    assert r["sharded_kernel_equal"] and r["sharded_kernel_spec"] == ["model", None]
    assert r["host_stats_solve_equal"]


def test_dense_weights_and_models(four_devices):
    r = four_devices["dense"]
    assert r["equal"] and r["own_rows"]
    assert r["linen_W_sharding_kept"] and r["linen_b_replicated"] and r["nnx_W_sharding_kept"]
    # The matmul contracts over the sharded rows: per-device partial sums, then an
    # all-reduce, so the logits agree to float32 rounding rather than bit for bit.
    for k in ("linen_logits_max_abs_diff", "nnx_logits_max_abs_diff",
              "explicit_mesh_logits_max_abs_diff"):
        assert r[k] < 1e-5, (k, r[k])


def test_uneven_rows_are_refused_without_pad(four_devices):
    msg = four_devices["pad"]["refused_without_pad"]
    assert msg and "10 rows do not split evenly over the 4 devices" in msg and "pad=True" in msg


def test_uneven_dense_rows_are_padded_with_unseen_features(four_devices):
    r = four_devices["pad"]["dense"]
    assert r["shape"] == [12, 7] and r["own_rows"]
    assert r["first_rows_equal"] and r["padding_rows_are_minus_log_N"]
    assert r["logits_max_abs_diff"] < 1e-5      # inputs padded with zero columns


def test_uneven_token_rows_are_padded_per_window_block(four_devices):
    r = four_devices["pad"]["ids"]
    assert r["shape"] == [24, 5] and r["own_rows"]          # 3 blocks of V' = 8
    assert r["blocks_equal"] and r["padding_rows_are_minus_log_N"]
    assert r["linen_logits_equal"] and r["nnx_logits_equal"] and r["nnx_W_sharding_kept"]


def test_two_dimensional_mesh(four_devices):
    r = four_devices["mesh2d"]
    assert r["model_equal"] and r["both_equal"] and r["both_own_rows"]
    assert r["model_shard_shapes"] == [[64, 64]]             # 128 rows over 2, twice each


def test_zero_smoothing_sharded(four_devices):
    r = four_devices["zero_smoothing"]
    assert r["equal"]
    assert r["refused"] and "1 co-occurrence counts of seen features are zero" in r["refused"]


def test_large_matrix_against_both_one_device_kernels(four_devices):
    r = four_devices["large"]
    assert r["equal_xla"]                      # the XLA kernel: bit for bit
    assert r["max_rel_diff_host"] < 1e-6       # NumPy's float32 log: last-ulp differences


# -- input errors (one device suffices) ---------------------------------------------------------


def _stats(M=8, N=3):
    F = np.arange(M * N, dtype=np.int32).reshape(M, N) % 4 + 1
    return CoocStats(F, F.sum(1), F.sum(0), np.int64(F.sum()))


@pytest.fixture
def mesh1():
    return Mesh(np.array(jax.devices()[:1]), ("model",))


def test_mesh_without_the_axis_is_refused(mesh1):
    with pytest.raises(ValueError, match=r"no axis 'rows'.*its axes are \('model',\)"):
        xsol.solve(_stats(), mesh=mesh1, axis="rows")
    data_mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    with pytest.raises(ValueError, match=r"no axis 'model'.*pass axis="):
        xsol.solve(_stats(), mesh=data_mesh)              # the default axis is "model"
    with pytest.raises(ValueError, match="twice"):
        row_sharding(mesh1, ("model", "model"))


def test_sharding_that_is_not_row_wise_is_refused(mesh1):
    with pytest.raises(ValueError, match="splits the columns"):
        xsol.solve(_stats(), sharding=NamedSharding(mesh1, P(None, "model")))
    mesh2 = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("a", "b"))
    with pytest.raises(ValueError, match="splits the columns"):
        xsol.solve(_stats(), sharding=NamedSharding(mesh2, P("a", "b")))
    with pytest.raises(ValueError, match="does not split the rows"):
        xsol.solve(_stats(), sharding=NamedSharding(mesh1, P()))
    with pytest.raises(ValueError, match="does not split the rows"):
        xsol.solve(_stats(), sharding=NamedSharding(mesh1, P(None, None)))
    with pytest.raises(ValueError, match="3 entries"):
        row_axes(NamedSharding(mesh1, P("model", None, None)))


def test_sharding_of_the_wrong_type_is_refused(mesh1):
    single = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with pytest.raises(TypeError, match="NamedSharding"):
        xsol.solve(_stats(), sharding=single)
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        xsol.solve(_stats(), mesh=np.array(jax.devices()))
    with pytest.raises(TypeError, match="axis must be"):
        xsol.solve(_stats(), mesh=mesh1, axis=3)


def test_sharding_and_mesh_together_are_refused(mesh1):
    with pytest.raises(ValueError, match="either sharding= or mesh="):
        xsol.solve(_stats(), sharding=row_sharding(mesh1), mesh=mesh1)


def test_pad_and_window_without_sharding_are_refused():
    with pytest.raises(ValueError, match="sharded solve only"):
        xsol.solve(_stats(), pad=True)
    with pytest.raises(ValueError, match="sharded solve only"):
        xsol.solve(_stats(), window=2)


def test_bad_statistics_are_refused_before_sharding(mesh1):
    s = _stats()
    with pytest.raises(ValueError, match="matrix"):
        xsol.solve(s._replace(cooc=np.zeros((2, 3, 4))), mesh=mesh1)
    with pytest.raises(ValueError, match="no examples"):
        xsol.solve(s._replace(num_examples=np.int64(0)), mesh=mesh1)
    with pytest.raises(ValueError, match="smoothing"):
        xsol.solve(s, mesh=mesh1, smoothing=-1)
    with pytest.raises(ValueError, match="window=3 equal blocks"):
        xsol.solve(s, mesh=mesh1, window=3, pad=True)
    with pytest.raises(TypeError, match="row-sharded jax.Array"):
        explicit_weights_sharded(np.ones((4, 3)), 0.5)


def test_one_device_mesh_is_the_plain_solve(mesh1):
    s = _stats()
    W, b = xsol.solve(s, smoothing=0.5, mesh=mesh1)
    np.testing.assert_array_equal(np.asarray(W), np.asarray(xsol.solve(s, smoothing=0.5)[0]))
    assert W.sharding.spec == P("model", None) and b.shape == (3,)
    assert shard_rows(s.cooc, row_sharding(mesh1)).shape == (8, 3)
    assert resolve_row_sharding(None, None) is None


@pytest.mark.parametrize("M, n, K, expected", [
    (12, 4, 1, 12), (10, 4, 1, 12), (13, 4, 1, 16), (15, 4, 3, 24), (6, 4, 2, 8),
    (6, 2, 3, 6), (50257, 8, 1, 50264), (2 * 50257, 8, 2, 2 * 50260), (7, 1, 1, 7)])
def test_padded_rows(M, n, K, expected):
    assert padded_rows(M, n, K) == expected
    assert expected % n == 0 and expected % K == 0 and expected >= M
