"""Settings of a reproduction run, at three scales, and the tasks it loads once."""

from __future__ import annotations

import dataclasses
import functools

from xsol.experiments.sweep import lr_grid
from xsol.experiments.tasks import Task, image_task, text_task, validation_split


@dataclasses.dataclass(frozen=True)
class ReproduceConfig:
    """Everything that decides what ``xsol reproduce`` measures.

    Attributes:
      scale: ``"tiny"`` (seconds; tests), ``"quick"`` (minutes on 2 CPU cores,
        embedded data), ``"full"`` (real runs; GPU/TPU welcome).
      image_datasets: image tasks, e.g. ``("digits", "fashion_mnist", "mnist")``.
      data_dir: directory with IDX files (else tfds / system locations).
      image_limit: keep the first ``image_limit`` training images (None: all).
      test_limit: keep the first ``test_limit`` test images (None: all).
      text_source: text for the language-model tasks (None: the embedded text).
      vocab_size: word vocabulary cap (including ``<unk>``).
      windows: context windows ``K`` for the language-model tasks.
      max_tokens: truncate the token stream (None: all).
      seeds: one run per seed; a seed picks a resample of the fitting part
        (``resample_fraction`` of it), the random init and the minibatches.
      resample_fraction: fraction of the fitting examples each seed keeps.
      validation_fraction: the part of the training examples set aside to
        choose learning rates and penalties (:func:`validation_split`).
      steps: optimizer steps per gradient run.
      lr_grid: learning rates every gradient baseline is swept over (log grid;
        chosen on the validation split, :mod:`xsol.experiments.sweep`).
      optimizers: the tuned baselines (keys of ``sweep.OPTIMIZERS``).
      lm_sweep_seeds: language-model tasks: how many seeds sweep the whole
        grid; later seeds train at the rate those chose most often (each
        language-model step updates a ``K V x V`` matrix, so a sweep per seed
        is the run's largest cost). None: every seed sweeps.
      batch_size: minibatch size for image tasks (None: full batch).
      lm_batch_size: minibatch size for language models (None: full batch).
      optimum_l2_grid: L2 penalties for the optimum of image tasks (chosen on
        the validation split; image data can be separable, where the
        unpenalized optimum does not exist).
      optimum_max_iter: L-BFGS iteration cap of the image tasks' optima.
      lm_optimum_max_iter: the same for language models (each iteration
        scores every training window against a ``K V x V`` matrix).
      smoothing_grid: smoothing values across which C1's gap is reported.
      hidden_widths: hidden-layer widths for the multi-layer experiments.
      lm_smoothing: additive smoothing for the language models.
      image_smoothing: additive smoothing for dense features.
      out_dir: where the report goes.
    """

    scale: str = "quick"
    image_datasets: tuple = ("digits",)
    data_dir: str | None = None
    image_limit: int | None = None
    test_limit: int | None = None
    text_source: str | None = None
    vocab_size: int = 500
    windows: tuple = (1, 2)
    max_tokens: int | None = None
    seeds: tuple = (0, 1, 2, 3, 4)
    resample_fraction: float = 0.9
    validation_fraction: float = 0.15
    steps: int = 300
    lr_grid: tuple = lr_grid(1e-4, 100.0, 1)
    optimizers: tuple = ("adam", "sgd_momentum")
    lm_sweep_seeds: int | None = 1
    batch_size: int | None = None
    lm_batch_size: int | None = 4096
    optimum_l2_grid: tuple = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4)
    optimum_max_iter: int = 1000
    lm_optimum_max_iter: int = 300
    smoothing_grid: tuple = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    hidden_widths: tuple = (32,)
    lm_smoothing: float = 0.01
    image_smoothing: float = 0.01
    out_dir: str = "xsol-report"

    @classmethod
    def for_scale(cls, scale: str, **overrides) -> "ReproduceConfig":
        """The defaults of a scale, with ``overrides`` (None values are ignored)."""
        presets = {
            "tiny": dict(vocab_size=300, windows=(1,), max_tokens=20000, seeds=(0, 1),
                         steps=40, hidden_widths=(16,), image_limit=600,
                         lr_grid=lr_grid(1e-2, 100.0, 1), optimum_l2_grid=(1e-6, 1e-4),
                         optimum_max_iter=200, lm_optimum_max_iter=100,
                         smoothing_grid=(1e-3, 1e-1)),
            "quick": dict(),
            "full": dict(image_datasets=("digits", "fashion_mnist"), vocab_size=2000,
                         windows=(1, 2, 3), seeds=tuple(range(10)), steps=3000,
                         hidden_widths=(64, 256), batch_size=None,
                         lr_grid=lr_grid(1e-4, 100.0, 2), optimum_max_iter=3000,
                         lm_optimum_max_iter=1000,
                         lm_sweep_seeds=None),
        }
        if scale not in presets:
            raise ValueError(f"scale must be one of {tuple(presets)}, got {scale!r}")
        values = dict(presets[scale], scale=scale)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class TaskCache:
    """Loads each task once per run (datasets, tokenization, windows)."""

    def __init__(self, cfg: ReproduceConfig):
        self.cfg = cfg

    @functools.lru_cache(maxsize=None)
    def image(self, name: str) -> Task:
        """The image task ``name`` at the configured limits."""
        return image_task(name, self.cfg.data_dir, limit=self.cfg.image_limit,
                          test_limit=self.cfg.test_limit)

    @functools.lru_cache(maxsize=None)
    def text(self, window: int) -> Task:
        """The word-level next-token task with a ``window``-token context."""
        return text_task(self.cfg.text_source, vocab_size=self.cfg.vocab_size, window=window,
                         max_tokens=self.cfg.max_tokens)

    @functools.lru_cache(maxsize=None)
    def split(self, name: str) -> tuple:
        """``(fit_task, (X_val, y_val))`` for the loaded task ``name`` (:func:`validation_split`)."""
        task = self._by_name()[name]
        return validation_split(task, self.cfg.validation_fraction)

    def _by_name(self) -> dict:
        tasks = {}
        for n in self.cfg.image_datasets:
            try:
                tasks[self.image(n).name] = self.image(n)
            except FileNotFoundError:
                pass
        for k in self.cfg.windows:
            tasks[self.text(k).name] = self.text(k)
        return tasks

    def images(self) -> list:
        return [self.image(n) for n in self.cfg.image_datasets]

    def texts(self) -> list:
        return [self.text(k) for k in self.cfg.windows]


def parse_seeds(text: str) -> tuple:
    """The ``--seeds`` option, the same in ``xsol reproduce`` and ``scripts/reproduce.py``.

    ``"5"`` means five seeds, ``0..4``; ``"0,3,7"`` means exactly those seeds.

    Raises:
      ValueError: a count below 1, a negative or repeated seed, or not integers.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--seeds takes a count (e.g. 5) or a comma-separated list of seeds "
                         f"(e.g. 0,1,2), got {text!r}") from None
    if len(values) == 1 and "," not in str(text):
        if values[0] < 1:
            raise ValueError(f"--seeds {values[0]}: a count of seeds must be at least 1")
        return tuple(range(values[0]))
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise ValueError(f"--seeds {text!r}: expected distinct seeds >= 0")
    return tuple(values)
