"""Datasets as softmax-layer tasks: inputs, labels, sizes, and per-seed resamples."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Task:
    """A classification problem for a softmax layer.

    Attributes:
      name: short name, e.g. ``"digits"`` or ``"text K=2"``.
      kind: ``"dense"`` (non-negative features) or ``"ids"`` (token windows).
      X_train, y_train, X_test, y_test: arrays (ids ``(B, K)`` int32 or dense ``(B, M)``).
      num_classes: ``N``.
      vocab_size: ``V`` for ids, else ``None``.
      window: ``K`` for ids, else ``None``.
      image_shape: e.g. ``(28, 28)`` for image tasks (for drawing weights).
      vocab: the token vocabulary for text tasks.
    """

    name: str
    kind: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    vocab_size: int | None = None
    window: int | None = None
    image_shape: tuple[int, int] | None = None
    vocab: object | None = None

    @property
    def num_features(self) -> int:
        """``M``: ``K * V`` for ids, the column count for dense features."""
        return self.window * self.vocab_size if self.kind == "ids" else self.X_train.shape[1]

    @property
    def is_lm(self) -> bool:
        return self.kind == "ids"

    def describe(self) -> str:
        size = (f"V={self.vocab_size}, K={self.window}" if self.is_lm
                else f"{self.num_features} features")
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} held-out "
                f"examples, {size}, {self.num_classes} classes")


def image_task(name: str, data_dir=None, *, limit: int | None = None,
               test_limit: int | None = None) -> Task:
    """An image dataset as a dense task (pixels as uint8 features).

    Args:
      name: ``"digits"``, ``"fashion_mnist"`` or ``"mnist"`` (see :func:`xsol.data.load_images`).
      data_dir: directory with IDX files, if any.
      limit: keep the first ``limit`` training images.
      test_limit: keep the first ``test_limit`` test images.
    """
    from xsol.data import load_images

    x_tr, y_tr, x_te, y_te = load_images(name, data_dir)
    shape = tuple(x_tr.shape[1:])
    x_tr, x_te = x_tr.reshape(len(x_tr), -1), x_te.reshape(len(x_te), -1)
    if limit:
        x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    if test_limit:
        x_te, y_te = x_te[:test_limit], y_te[:test_limit]
    N = int(max(y_tr.max(), y_te.max())) + 1
    return Task(name, "dense", x_tr, y_tr.astype(np.int32), x_te, y_te.astype(np.int32), N,
                image_shape=shape)


def text_task(source=None, *, vocab_size: int = 2000, window: int = 1, level: str = "word",
              keep_punctuation: bool = False, max_tokens: int | None = None,
              held_out: float = 0.1) -> Task:
    """A next-token task over a text: ``K`` previous tokens -> the next token.

    Punctuation is dropped by default: the embedded text (Python's documentation
    topics) is 43% punctuation tokens, mostly reStructuredText underlines.
    The stream is split contiguously (the last ``held_out`` fraction is
    held out, see :func:`xsol.data.split_tokens`) before windows are built.
    """
    from xsol.data import context_windows, load_text, split_tokens, tokenize

    ids, vocab = tokenize(load_text(source), level=level, vocab_size=vocab_size,
                          keep_punctuation=keep_punctuation)
    if max_tokens:
        ids = ids[:max_tokens]
    train, held = split_tokens(ids, held_out=held_out)
    Xtr, ytr = context_windows(train, window)
    Xte, yte = context_windows(held, window)
    V = len(vocab)
    name = f"text {level} K={window}"
    return Task(name, "ids", Xtr.astype(np.int32), ytr.astype(np.int32), Xte.astype(np.int32),
                yte.astype(np.int32), V, vocab_size=V, window=window, vocab=vocab)


#: Seed of the one fixed validation split of an image task.
VALIDATION_SEED = 20231113


def validation_split(task: Task, fraction: float) -> tuple[Task, tuple]:
    """Splits a task's training examples into a fitting part and a validation split.

    Learning rates, L2 penalties and other settings are chosen on the
    validation split, never on the held-out test examples. Language-model
    windows are split contiguously (the last ``fraction`` of the training
    windows, which directly precede the held-out text), so validation text is
    not interleaved with fitting text; image tasks use one fixed random split
    (:data:`VALIDATION_SEED`), the same for every seed and method.

    Returns:
      ``(fit_task, (X_val, y_val))``; ``fit_task`` keeps the test examples.

    Raises:
      ValueError: ``fraction`` outside ``(0, 1)`` or a split with no examples.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    n = len(task.y_train)
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise ValueError(f"{task.name}: a {fraction} validation split of {n} training examples "
                         "leaves one side empty")
    if task.is_lm:
        fit = np.arange(n - n_val)
        val = np.arange(n - n_val, n)
    else:
        order = np.random.default_rng(VALIDATION_SEED).permutation(n)
        fit, val = np.sort(order[n_val:]), np.sort(order[:n_val])
    fit_task = dataclasses.replace(task, X_train=task.X_train[fit], y_train=task.y_train[fit])
    return fit_task, (task.X_train[val], task.y_train[val])


def resample(task: Task, seed: int, fraction: float = 0.9) -> Task:
    """The task with a seeded random ``fraction`` of its training examples.

    Every method in an experiment sees the same resample for a given seed, so
    the spread across seeds includes the explicit solution's dependence on data.
    """
    if fraction >= 1.0:
        return task
    rng = np.random.default_rng(seed)
    n = len(task.y_train)
    keep = np.sort(rng.choice(n, size=max(1, int(round(fraction * n))), replace=False))
    return dataclasses.replace(task, X_train=task.X_train[keep], y_train=task.y_train[keep])
