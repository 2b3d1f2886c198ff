"""To the optimum with and without backpropagation: passes and seconds to a loss gap.

For one softmax layer and one L2 penalty ``l2`` the training loss
``L(W, b) = mean cross-entropy + l2/2 ||W||^2`` has one optimum ``L*``, found
by :func:`xsol.optimize.optimum.fit_optimum` run long (its gradient max-norm is
reported, and any method that goes lower moves the reference down). Each
method runs from its start and is scored by the passes over the training
data and the wall seconds it needs to bring ``(L - L*) / L*`` below
``tolerance`` (1e-3), and by the test accuracy of the weights at that point:

* ``gis`` and ``lbfgs`` from the explicit solution and from zero:
  :func:`xsol.refine` (forward passes only; the pass that gathers the
  co-occurrences ``F`` counts as one pass and its seconds, with the explicit
  solve for the explicit start, are included).
* ``adam``: Optax Adam from zero, full batch (one step = one pass: a forward
  and a backward pass over all the data). Its learning rate is chosen from a
  stated log-spaced grid by the validation loss at the end of the budget, on
  a validation split held out of the training set (every method trains on the
  rest); the chosen run is the one reported, the others are listed.
* ``optax_lbfgs``: :func:`optax.lbfgs` full batch with its zoom line search,
  the iteration :func:`xsol.optimize.optimum.fit_optimum` runs, stepped one iteration
  at a time; its passes are the line search's function-and-gradient
  evaluations (plus one at the start), from zero and from the explicit
  solution (whose statistics pass is counted as for ``lbfgs``).

Every method starts from the same explicit weights, row- and column-centered
(the same probabilities, the smallest penalty: see :mod:`xsol.optimize.refinement`).
Compilation is excluded from every clock (each computation runs once on
throwaway inputs first); evaluations of the test accuracy are off the clock.
A run stops at its pass or time budget, or once its gap is below
``stop_gap``.

The methods themselves, their settings and how a run is scored are in
:mod:`xsol.experiments.race_methods`; this module runs them all on one task
(:func:`bench_task`), compares them (:func:`compare`) and reports the race
(:func:`format_refine`, :func:`plot_refine`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import inputs
from xsol.experiments.race_methods import (DEFAULT_L2, TOLERANCE, Settings, accuracy, gap,
                                           run_adam, run_optax_lbfgs, run_refine_method)
from xsol.optimize.optimum import fit_optimum, layer_loss
from xsol.optimize.refinement import refine
from xsol.solvers.explicit import fit_explicit

__all__ = ['BACKPROP_FREE', 'DEFAULT_L2', 'METHODS', 'METHOD_NOTE', 'Settings', 'TOLERANCE',
           'bench_task', 'compare', 'format_refine', 'plot_refine', 'run_adam',
           'run_optax_lbfgs', 'run_refine_method']

#: Method keys and their labels, backprop-free ones first.
METHODS = {
    "gis_explicit": "GIS from explicit",
    "gis_zeros": "GIS from zero",
    "lbfgs_explicit": "stats L-BFGS from explicit",
    "lbfgs_zeros": "stats L-BFGS from zero",
    "adam": "Adam from zero (tuned lr)",
    "optax_lbfgs_zeros": "optax L-BFGS from zero",
    "optax_lbfgs_explicit": "optax L-BFGS from explicit",
}
BACKPROP_FREE = ("gis_explicit", "gis_zeros", "lbfgs_explicit", "lbfgs_zeros")

#: How the methods are run and counted, in a few sentences (for reports).
METHOD_NOTE = (
    "Backprop-free: GIS and L-BFGS on co-occurrence statistics (xsol.refine: forward passes "
    "only), from the explicit solution and from zero. With backpropagation: Adam from zero, "
    "full batch, its learning rate chosen from the grid by the validation loss at the end of "
    "its budget (a validation split held out of the training set; every method trains on the "
    "rest); optax L-BFGS with its zoom line search (fit_optimum's iteration), from zero and "
    "from the explicit solution. One pass is one pass over the training data: a statistics or "
    "forward pass, one full-batch Adam step (forward and backward), one L-BFGS function-and-"
    "gradient evaluation; the pass that gathers the statistics counts for the backprop-free "
    "schemes and for every start from the explicit solution. Explicit starts are row- and "
    "column-centered (the same probabilities, the smallest penalty). Compilation is excluded "
    "from every clock; test accuracy is measured off the clock on the weights where the "
    "tolerance was first met. The reference optimum L* is fit_optimum's loss at the same l2.")


# ------------------------------------------------------------------------------ one task


def _centered(W, b, *, kind: str, X):
    """Row means of ``W`` removed, column means moved into ``b`` (when every example sums to 1)."""
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    W = W - W.mean(axis=1, keepdims=True)
    if kind == "ids" or bool(np.all(np.asarray(X).sum(axis=1, dtype=np.float64) > 0)):
        m = W.mean(axis=0)
        W, b = W - m[None, :], b + m
    return W.astype(np.float32), b.astype(np.float32)


def _split(X, y, fraction: float, seed: int, kind: str):
    n = len(y)
    k = max(1, int(round(fraction * n)))
    if kind == "ids":  # the tail of the token stream
        idx = np.arange(n)
    else:
        idx = np.random.default_rng(seed).permutation(n)
    fit, val = np.sort(idx[:-k]), np.sort(idx[-k:])
    return X[fit], y[fit], X[val], y[val]


def bench_task(name: str, X_train, y_train, X_test, y_test, num_classes: int, *, kind: str,
               vocab_size: int | None = None, settings: Settings = Settings(),
               say=None) -> dict:
    """Every method of the module docstring on one task; a JSON-ready dict.

    Args:
      name: the task's name.
      X_train, y_train, X_test, y_test: dense non-negative features or token
        windows ``(B, K)``, and int labels.
      num_classes: ``N``.
      kind: ``"dense"`` or ``"ids"``.
      vocab_size: ``V`` for ids.
      settings: budgets and grids.
      say: progress callback (a function of one string), or None.
    """
    say = say or (lambda msg: None)
    N = int(num_classes)
    if settings.max_train is not None:
        X_train, y_train = X_train[:settings.max_train], y_train[:settings.max_train]
    Xfit, yfit, Xval, yval = _split(np.asarray(X_train), np.asarray(y_train, np.int32),
                                    settings.validation_fraction, settings.seed, kind)
    Xfit, yfit = inputs.aligned(Xfit), inputs.aligned(yfit, np.int32)
    if kind == "ids":
        V = int(vocab_size)
        K = int(Xfit.shape[1])
        M = K * V
    else:
        V, K, M = None, None, int(Xfit.shape[1])
    test = (np.asarray(X_test) if kind != "ids" else inputs.aligned(X_test, np.int32),
            np.asarray(y_test, np.int32))
    l2 = settings.l2

    say(f"{name}: reference optimum (fit_optimum, up to {settings.optimum_iterations} iterations)")
    t = time.perf_counter()
    opt = fit_optimum(Xfit, yfit, N, kind=kind, num_features=M, l2=l2,
                      max_iter=settings.optimum_iterations, tol=1e-6)
    optimum = {"loss": opt.loss, "grad_max": opt.grad_norm, "iterations": opt.iterations,
               "iteration_cap": settings.optimum_iterations,
               "converged": opt.grad_norm <= 1e-6, "seconds": time.perf_counter() - t,
               "test_accuracy": accuracy(opt.weights, opt.bias, *test, kind)}
    ref = opt.loss
    target = ref * (1 + settings.tolerance)

    # Compile every kernel once on these shapes, off the clock.
    sol = fit_explicit(Xfit, yfit, N, kind=kind, vocab_size=V)
    refine(Xfit, yfit, N, kind=kind, vocab_size=V, max_passes=1, stats=sol.stats)
    t = time.perf_counter()
    sol = fit_explicit(Xfit, yfit, N, kind=kind, vocab_size=V)
    jax.block_until_ready(sol.weights)
    explicit_seconds = time.perf_counter() - t
    start = _centered(sol.weights, sol.bias, kind=kind, X=Xfit)

    def train_loss(params):
        return float(layer_loss(params, jnp.asarray(Xfit), jnp.asarray(yfit), kind, "l1", l2))

    explicit = {"train_loss": train_loss((sol.weights, sol.bias)),
                "centered_train_loss": train_loss(start), "seconds": explicit_seconds,
                "test_accuracy": accuracy(sol.weights, sol.bias, *test, kind)}
    explicit["gap"] = gap(explicit["train_loss"], ref)
    explicit["centered_gap"] = gap(explicit["centered_train_loss"], ref)

    methods = {}
    for key in BACKPROP_FREE:
        method, init = key.split("_")
        say(f"{name}: {METHODS[key]}")
        methods[key] = run_refine_method(method, init, Xfit, yfit, N, kind=kind, vocab_size=V,
                                         l2=l2, ref=ref, target=target, settings=settings,
                                         test=test)
    say(f"{name}: Adam, learning rates {settings.learning_rates}")
    methods["adam"] = run_adam(Xfit, yfit, Xval, yval, N, kind=kind, num_features=M, l2=l2,
                               ref=ref, target=target, settings=settings, test=test)
    say(f"{name}: optax L-BFGS from zero and from the explicit solution")
    methods["optax_lbfgs_zeros"] = run_optax_lbfgs(Xfit, yfit, N, kind=kind, num_features=M,
                                                   l2=l2, ref=ref, target=target,
                                                   settings=settings, test=test)
    methods["optax_lbfgs_explicit"] = run_optax_lbfgs(
        Xfit, yfit, N, kind=kind, num_features=M, l2=l2, ref=ref, target=target,
        settings=settings, test=test, init=start, startup_seconds=explicit_seconds,
        startup_passes=1)
    for k, m in methods.items():
        m["label"] = METHODS[k]

    below = min(min(m["losses"]) for m in methods.values() if m["losses"])
    return {
        "task": name, "kind": kind, "num_classes": N, "num_features": M, "vocab_size": V,
        "window": K, "train_examples": int(len(yfit)), "validation_examples": int(len(yval)),
        "test_examples": int(len(test[1])), "l2": l2, "tolerance": settings.tolerance,
        "optimum": optimum, "target_loss": target, "explicit": explicit,
        "lowest_loss_seen": below,
        "reference_note": ("a method went below fit_optimum's loss by more than 1e-6 relative"
                           if below < ref * (1 - 1e-6) else "fit_optimum's loss is the lowest"),
        "methods": methods, "comparison": compare(methods),
    }


def compare(methods: dict) -> dict:
    """The best backprop-free method (fewest passes to the target, then seconds) against Adam."""
    free = [(k, methods[k]["reached"]) for k in BACKPROP_FREE if methods.get(k, {}).get("reached")]
    adam = methods.get("adam", {}).get("reached")
    if not free:
        return {"best_backprop_free": None, "fewer_passes": False, "less_time": False,
                "adam_reached": adam is not None}
    key, r = min(free, key=lambda kr: (kr[1]["passes"], kr[1]["seconds"]))
    fastest_key, fastest = min(free, key=lambda kr: kr[1]["seconds"])
    return {
        "best_backprop_free": key, "passes": r["passes"], "seconds": r["seconds"],
        "fastest_backprop_free": fastest_key, "fastest_seconds": fastest["seconds"],
        "adam_reached": adam is not None,
        "adam_passes": None if adam is None else adam["passes"],
        "adam_seconds": None if adam is None else adam["seconds"],
        "fewer_passes": adam is None or r["passes"] < adam["passes"],
        "less_time": adam is None or fastest["seconds"] < adam["seconds"],
        "pass_ratio": None if adam is None else adam["passes"] / r["passes"],
        "time_ratio": None if adam is None else adam["seconds"] / fastest["seconds"],
    }


# ------------------------------------------------------------------------------ report


def _fmt_reached(r) -> str:
    if r is None:
        return "not reached in budget"
    return f"{r['passes']:>5d} passes {r['seconds']:8.3f} s  test acc {r['test_accuracy']:.4f}"


def format_refine(res: dict) -> str:
    """A text table: per task and method, passes and seconds to the tolerance, test accuracy."""
    s = res["settings"]
    lines = [f"loss gap (L - L*) / L* <= {s['tolerance']:g} at l2 = {s['l2']:g}; budget "
             f"{s['max_passes']} passes / {s['max_seconds']:g} s per method; Adam lr grid "
             f"{tuple(s['learning_rates'])} chosen by validation loss"]
    for t in res["tasks"]:
        o = t["optimum"]
        lines.append(f"\n  {t['task']}: {t['train_examples']} train / {t['validation_examples']} "
                     f"validation / {t['test_examples']} test; L* = {o['loss']:.6f} "
                     f"(fit_optimum {o['iterations']} iterations, grad max {o['grad_max']:.1e}, "
                     f"{o['seconds']:.1f} s, test acc {o['test_accuracy']:.4f}); explicit gap "
                     f"{t['explicit']['gap']:.3g} (centered {t['explicit']['centered_gap']:.3g}), "
                     f"test acc {t['explicit']['test_accuracy']:.4f}")
        for k, m in t["methods"].items():
            extra = f" (lr {m['learning_rate']:g})" if k == "adam" else ""
            lines.append(f"    {m['label'] + extra:34s} {_fmt_reached(m['reached'])}   final gap "
                         f"{m['final_gap']:.1e}")
        sweep = t["methods"].get("adam", {}).get("sweep") or []
        if sweep:
            lines.append("    Adam sweep (lr: validation loss, passes to tolerance): " + "; ".join(
                f"{w['learning_rate']:g}: {w['validation_loss']:.4f}, "
                + ("not reached" if w["reached_passes"] is None else str(w["reached_passes"]))
                for w in sweep))
        c = t["comparison"]
        if c["best_backprop_free"]:
            lines.append(
                f"    best backprop-free: {METHODS[c['best_backprop_free']]} "
                f"({c['passes']} passes); "
                f"fastest {METHODS[c['fastest_backprop_free']]} ({c['fastest_seconds']:.3f} s); "
                + ("Adam not reached" if not c["adam_reached"] else
                   f"Adam / best: {c['pass_ratio']:.1f}x passes, {c['time_ratio']:.1f}x time"))
    return "\n".join(lines)


def plot_refine(res: dict, path) -> str:
    """Log-scale loss gap against passes, a panel per task (:func:`xsol.core.serialize.save_figure`)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from xsol.core.serialize import save_figure  # noqa: PLC0415

    tasks = res["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    styles = {"gis_explicit": ("C0", "-"), "gis_zeros": ("C0", ":"),
              "lbfgs_explicit": ("C1", "-"), "lbfgs_zeros": ("C1", ":"), "adam": ("C2", "-"),
              "optax_lbfgs_zeros": ("C3", ":"), "optax_lbfgs_explicit": ("C3", "-")}
    for ax, t in zip(axes[0], tasks):
        ref = t["optimum"]["loss"]
        for k, m in t["methods"].items():
            if not m["passes"]:
                continue
            gap = np.maximum((np.asarray(m["losses"]) - ref) / abs(ref), 1e-8)
            color, ls = styles.get(k, ("k", "-"))
            label = m["label"] + (f" {m['learning_rate']:g}" if k == "adam" else "")
            ax.plot(m["passes"], gap, color=color, linestyle=ls, label=label)
        ax.axhline(t["tolerance"], color="gray", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passes over the training data")
        ax.set_ylabel("(L - L*) / L*")
        ax.set_title(t["task"], fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)
