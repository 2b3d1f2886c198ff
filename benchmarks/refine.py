"""The refinement benchmark: the race of :mod:`xsol.experiments.race` at benchmark scale.

The race itself (statistics L-BFGS and GIS against tuned Adam and Optax's
L-BFGS, passes and seconds to within a tolerance of the optimal training loss)
lives in the library, because ``xsol reproduce`` runs it too; this module adds
the benchmark's tasks (:func:`load_tasks`) and section (:func:`run_refine`),
and is what ``scripts/bench.py --only refine`` and
``scripts/bench_refine_fashion.py`` import.
"""

import dataclasses
import os

import numpy as np

from xsol import data
from xsol.experiments.race import *  # noqa: F401,F403
from xsol.experiments.race import METHOD_NOTE, Settings, bench_task, plot_refine
from xsol.experiments.race import __all__ as _race_all

__all__ = [*_race_all, "FASHION_DIR", "load_tasks", "run_refine"]

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def load_tasks(quick: bool, *, data_dir: str | None = None, say=None) -> list[dict]:
    """digits, Fashion-MNIST (when present; a subset with ``quick``) and a K=2 text LM."""
    say = say or (lambda msg: None)
    tasks = []
    d = data.load_images("digits", None, flatten=True)
    tasks.append(dict(name="digits", X_train=d.x_train, y_train=d.y_train, X_test=d.x_test,
                      y_test=d.y_test, num_classes=10, kind="dense"))
    fdir = data_dir or (FASHION_DIR if os.path.isdir(FASHION_DIR) else None)
    try:
        f = data.load_images("fashion_mnist", fdir, flatten=True)
    except Exception as e:  # noqa: BLE001 - absent data: the section runs without it
        say(f"fashion_mnist skipped: {type(e).__name__}: {str(e).splitlines()[0]}")
    else:
        n_tr, n_te = (3000, 1000) if quick else (None, None)
        tasks.append(dict(name="fashion_mnist" + (f" (first {n_tr})" if quick else ""),
                          X_train=f.x_train[:n_tr], y_train=f.y_train[:n_tr],
                          X_test=f.x_test[:n_te], y_test=f.y_test[:n_te], num_classes=10,
                          kind="dense"))
    V, max_tokens = (200, 12000) if quick else (500, None)
    ids, vocab = data.tokenize(data.load_text(None), vocab_size=V)
    if max_tokens:
        ids = ids[:max_tokens]
    train, held = data.split_tokens(ids, held_out=0.1)
    Xtr, ytr = data.context_windows(train, 2)
    Xte, yte = data.context_windows(held, 2)
    Vt = len(vocab)
    tasks.append(dict(name=f"text K=2 (V={Vt}, {len(ids)} tokens)", X_train=Xtr.astype(np.int32),
                      y_train=ytr.astype(np.int32), X_test=Xte.astype(np.int32),
                      y_test=yte.astype(np.int32), num_classes=Vt, kind="ids", vocab_size=Vt))
    return tasks


def run_refine(quick: bool = False, *, data_dir: str | None = None, say=None,
               plot_path: str | None = None, settings: Settings | None = None) -> dict:
    """The ``refine`` benchmark section: every task of :func:`load_tasks`, a JSON-ready dict.

    Returns:
      ``{"settings", "method", "tasks": [bench_task(...)...], "plot"}``.
    """
    settings = settings or (Settings.quick() if quick else Settings())
    results = []
    for t in load_tasks(quick, data_dir=data_dir, say=say):
        results.append(bench_task(t["name"], t["X_train"], t["y_train"], t["X_test"],
                                  t["y_test"], t["num_classes"], kind=t["kind"],
                                  vocab_size=t.get("vocab_size"), settings=settings, say=say))
    res = {"settings": dataclasses.asdict(settings), "method": METHOD_NOTE, "tasks": results}
    if plot_path:
        res["plot"] = plot_refine(res, plot_path)
    return res
