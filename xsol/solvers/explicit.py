"""In-memory entry points: ``fit_explicit``, ``ExplicitSolution``, ``softmax_nll``.

scikit-learn-shaped: ``fit_explicit(X, y)`` returns a fitted object with
``logits``, ``predict_proba``, ``predict``, ``score`` (accuracy) and ``nll``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from xsol.core import defaults, inputs, memory
from xsol.core.saved import register_saved_type

from xsol.solvers import scoring
from xsol.stats.accumulation import accumulate
from xsol.stats.batches import BatchError
from xsol.solvers.dense import solve
from xsol.solvers.formula import check_next_token_query
from xsol.stats.accumulators import CoocStats

#: Default additive smoothing ``a`` (a pseudo-count per cell): :data:`xsol.core.defaults.SMOOTHING`.
DEFAULT_SMOOTHING = defaults.SMOOTHING


def _logits(weights, bias, X, kind, normalize):
    return linear_logits_compiled(weights, bias, X, kind=kind, normalize=normalize)


#: :func:`xsol.core.inputs.linear_logits`, compiled (``kind``, ``normalize`` static).
linear_logits_compiled = jax.jit(inputs.linear_logits, static_argnames=("kind", "normalize"))


def prepare_inputs(X, kind: str, *, vocab_size: int | None = None):
    """Validates ``X`` for scoring; returns ``(X, kind)`` ready for :func:`inputs.linear_logits`."""
    X = inputs.as_host_array(X)
    kind = inputs.infer_kind(X, kind)
    if inputs.is_sparse(X):
        return inputs.check_sparse_features(X), kind
    if X.shape[0] == 0:
        raise ValueError("X is empty (0 examples); expected at least one example")
    if kind == "ids":
        return inputs.check_ids(X, vocab_size), kind
    inputs.check_dense_shape(X)
    inputs.check_dense_values(X)
    return X, kind


def softmax_nll(weights, bias, X, y, *, kind: str = "auto", normalize: str = "l1") -> float:
    """Mean cross-entropy ``-1/B sum_t log softmax(x~_t W + b)[y_t]`` of a softmax layer.

    Inputs follow the fitting conventions (:mod:`xsol.core.inputs`): integer ids of
    shape ``(B,)``/``(B, K)`` index ``K`` one-hot blocks of ``W`` (``V = M / K``
    rows each); dense ``(B, M)`` features are normalized by ``normalize``.

    Args:
      weights: ``(M, N)``.
      bias: ``(N,)``.
      X: ids or dense features.
      y: int labels ``(B,)`` in ``[0, N)``.
      kind: ``"auto"``, ``"ids"`` or ``"dense"``.
      normalize: ``"l1"`` or ``"none"``.

    Returns:
      The mean negative log-likelihood in nats (a Python float), summed in
      float64 over batches of logits sized from the memory budget
      (:mod:`xsol.solvers.scoring`).
    """
    weights = jnp.asarray(weights)
    bias = jnp.asarray(bias)
    if weights.ndim != 2 or bias.shape != (weights.shape[1],):
        raise ValueError(
            f"weights must be (M, N) and bias (N,); got {weights.shape} and {bias.shape}"
        )
    kind = inputs.infer_kind(X, kind)
    normalize = inputs.check_normalize(normalize)
    X_shape = np.shape(X)
    if kind == "ids":
        K = 1 if len(X_shape) == 1 else X_shape[1]
        if weights.shape[0] % K:
            raise ValueError(
                f"weights have {weights.shape[0]} rows, not a multiple of the window K={K}"
            )
        X, _ = prepare_inputs(X, kind, vocab_size=weights.shape[0] // K)
    else:
        X, _ = prepare_inputs(X, kind)
        if X.shape[1] != weights.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features but weights have {weights.shape[0]} rows"
            )
    y = inputs.check_labels(y, X.shape[0], weights.shape[1])
    return scoring.nll_sum(weights, bias, X, y, kind=kind, normalize=normalize) / X.shape[0]


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["weights", "bias", "stats"],
    meta_fields=["kind", "normalize", "smoothing", "vocab_size", "window",
                 "inverse_temperature", "rows_normalized"],
)
@dataclasses.dataclass(frozen=True)
class ExplicitSolution:
    """Explicit weights of a softmax layer and how to apply them.

    An immutable JAX pytree: ``weights``, ``bias`` and ``stats`` are its leaves
    and the settings are static, so a solution passes through ``jax.jit``,
    ``jax.vmap`` and ``jax.device_put`` (e.g. with a sharding) as one value.
    Methods that change something (:meth:`calibrate`) return a new solution.

    Attributes:
      weights: ``W``, ``(M, N)`` float32 (``M = K * V`` for token windows).
      bias: ``b``, ``(N,)`` float32 (zeros: see :mod:`xsol.solvers.dense`).
      stats: the :class:`xsol.stats.CoocStats` the weights were solved from.
      kind: ``"ids"`` or ``"dense"``.
      normalize: per-example normalization used in fitting and scoring.
      smoothing: the additive smoothing ``a``.
      vocab_size: ``V`` for ids, else ``None``.
      window: ``K`` for ids, else ``None``.
      inverse_temperature: scale applied to ``x~ W`` in :meth:`logits`
        (1 unless :meth:`calibrate` was called).
    """

    weights: jax.Array
    bias: jax.Array
    stats: CoocStats
    kind: str
    normalize: str
    smoothing: float
    vocab_size: int | None = None
    window: int | None = None
    inverse_temperature: float = 1.0
    #: True when every row of ``W`` is a log-distribution (``logsumexp_j W_ij = 0``
    #: exactly, in exact arithmetic): the explicit solution of one-hot inputs
    #: (ids, ``K = 1``) with ``b = 0``. Set by :func:`fit_explicit`; a calibrated
    #: copy (:meth:`calibrate`) has it False.
    rows_normalized: bool = dataclasses.field(default=False, repr=False, compare=False)

    def __repr__(self) -> str:
        M, N = self.weights.shape
        extra = f", vocab_size={self.vocab_size}, window={self.window}" if self.kind == "ids" else ""
        return (f"ExplicitSolution(weights=({M}, {N}), kind={self.kind!r}{extra}, "
                f"normalize={self.normalize!r}, smoothing={self.smoothing:g}, "
                f"inverse_temperature={self.inverse_temperature:g}, "
                f"examples={int(self.stats.num_examples)})")

    @property
    def num_classes(self) -> int:
        return int(self.weights.shape[1])

    def _prepare(self, X):
        X, _ = prepare_inputs(X, self.kind, vocab_size=self.vocab_size)
        if self.kind == "ids" and X.shape[1] != self.window:
            raise ValueError(f"X has a window of {X.shape[1]} positions, expected {self.window}")
        if self.kind == "dense" and X.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"X has {X.shape[1]} features, expected {self.weights.shape[0]}"
            )
        return X

    def _score_kw(self) -> dict:
        return dict(kind=self.kind, normalize=self.normalize,
                    inverse_temperature=self.inverse_temperature)

    def scores(self, X) -> jax.Array:
        """Unscaled scores ``x~ W`` (no bias, no temperature), ``(B, N)``.

        The whole ``B x N`` matrix: refused (:class:`xsol.core.memory.MemoryBudgetError`)
        before allocating when it would not fit; the other methods score in batches.
        """
        X = self._prepare(X)
        memory.check_fits("score matrix", (X.shape[0], self.num_classes), 4, copies=2,
                          hint="use nll/score/predict, which never hold more than a batch")
        return _logits(self.weights, jnp.zeros_like(self.bias), X, self.kind, self.normalize)

    def logits(self, X) -> jax.Array:
        """Logits ``beta * x~ W + b``, shape ``(B, N)`` (the whole matrix, see :meth:`scores`)."""
        return self.inverse_temperature * self.scores(X) + self.bias

    def predict_proba(self, X, *, batch_rows: int | None = None) -> np.ndarray:
        """``softmax(logits(X))``, ``(B, N)`` float32 NumPy, computed batch by batch.

        Refused before allocating when the ``B x N`` result would not fit in memory.
        """
        X = self._prepare(X)
        return scoring.predict_proba(self.weights, self.bias, X, batch_rows=batch_rows,
                                     **self._score_kw())

    def predict_log_proba(self, X, *, batch_rows: int | None = None) -> np.ndarray:
        """``log_softmax(logits(X))``, ``(B, N)`` float32 NumPy (see :meth:`predict_proba`)."""
        X = self._prepare(X)
        return scoring.predict_proba(self.weights, self.bias, X, log=True,
                                     batch_rows=batch_rows, **self._score_kw())

    def predict(self, X, *, batch_rows: int | None = None) -> np.ndarray:
        """The most probable label per example, ``(B,)`` int64 NumPy, one batch at a time."""
        X = self._prepare(X)
        return scoring.predict(self.weights, self.bias, X, batch_rows=batch_rows,
                               **self._score_kw())

    def score(self, X, y, *, batch_rows: int | None = None) -> float:
        """Accuracy of :meth:`predict` against ``y``."""
        pred = self.predict(X, batch_rows=batch_rows)
        y = inputs.check_labels(y, pred.shape[0], self.num_classes)
        return float(np.mean(pred == y))

    def nll(self, X, y, *, batch_rows: int | None = None) -> float:
        """Mean cross-entropy in nats of :meth:`logits` on ``(X, y)``.

        Never holds more than one batch of logits (:func:`xsol.solvers.scoring.nll_sum`;
        for token ids with ``K = 1`` a gather from per-row log-normalizers);
        the sum is accumulated in float64.
        """
        X = self._prepare(X)
        y = inputs.check_labels(y, X.shape[0], self.num_classes)
        total = scoring.nll_sum(self.weights, self.bias, X, y, batch_rows=batch_rows,
                                rows_normalized=self.rows_normalized
                                and self.inverse_temperature == 1.0, **self._score_kw())
        return total / X.shape[0]

    def perplexity(self, X, y, *, batch_rows: int | None = None) -> float:
        """``exp(nll)``, the usual language-model figure."""
        return float(np.exp(self.nll(X, y, batch_rows=batch_rows)))

    def calibrate(self, X, y, *, prior: str = "scaled") -> "ExplicitSolution":
        """A copy with the inverse temperature ``beta`` fitted on ``(X, y)``.

        ``prior="scaled"`` (default): logits ``beta * x~ W + b``; predictions do
        not change, the cross-entropy drops (see :mod:`xsol.solvers.temperature`).

        ``prior="once"``: the explicit weights factor as
        ``W_ik = log P^(i | k) + log c_k - log(f_i + N a)`` with the smoothed
        likelihood ``P^(i | k) = (F_ik + a) / c_k`` and ``c_k = sum_i F_ik + M a``,
        so ``log c_k``, the label's (unnormalized) log prior, sits inside every
        row and a fitted ``beta`` would scale it too. This variant removes it
        from ``W`` and adds the prior once as the bias:
        ``logits = beta * x~ (W - 1 log c^T) + log p`` with
        ``p_k = (n_k + a) / (n + N a)``. It needs inputs whose normalized
        features sum to 1 (``normalize="l1"``); it can change predictions
        (it is calibrated multinomial naive Bayes).

        Args:
          X: inputs to fit ``beta`` on (usually the training inputs).
          y: their labels.
          prior: ``"scaled"`` or ``"once"``.

        Returns:
          A new :class:`ExplicitSolution` (same statistics).
        """
        if prior not in ("scaled", "once"):
            raise ValueError(f"prior must be 'scaled' or 'once', got {prior!r}")
        base = dataclasses.replace(self, inverse_temperature=1.0, rows_normalized=False)
        if prior == "once":
            if self.normalize != "l1":
                raise ValueError(
                    'prior="once" needs normalize="l1" (features summing to 1 per example); '
                    f"this solution uses normalize={self.normalize!r}"
                )
            a = self.smoothing
            F = np.asarray(self.stats.cooc, np.float64)
            log_c = np.log(F.sum(axis=0) + F.shape[0] * a)
            n = np.asarray(self.stats.label_counts, np.float64) + a
            with np.errstate(divide="ignore"):
                log_p = np.log(n / n.sum())
            base = dataclasses.replace(
                base, weights=self.weights - jnp.asarray(log_c, jnp.float32)[None, :],
                bias=jnp.asarray(np.maximum(log_p, -1e30), jnp.float32))
        X = base._prepare(X)
        y = inputs.check_labels(y, X.shape[0], self.num_classes)
        beta = scoring.fit_inverse_temperature_batched(base.weights, base.bias, X, y,
                                                       kind=self.kind, normalize=self.normalize)
        return dataclasses.replace(base, inverse_temperature=beta)

    def top_next(self, context, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most probable next tokens after a window of ``K`` ids (an id when ``K = 1``).

        The same query as :meth:`xsol.SparseExplicitLM.top_next`, from the dense
        weights: ``softmax(logits)`` of the one window, ties broken by id.

        Returns:
          ``(ids, probabilities)``, each of length ``min(k, N)``, most probable first.
        """
        if self.kind != "ids":
            raise ValueError("top_next is a language-model query; this solution has dense "
                             "features (use predict_proba)")
        context, k = check_next_token_query(context, k, self.window)
        p = self.predict_proba(context.reshape(1, -1))[0].astype(np.float64)
        order = np.lexsort((np.arange(len(p)), -p))[:k]
        return order.astype(np.int64), p[order]


    def scaled_weights(self) -> jax.Array:
        """``beta * W``: the weights a plain softmax layer needs to reproduce :meth:`logits`."""
        return self.inverse_temperature * self.weights


def fit_explicit(
    X,
    y,
    num_classes: int | None = None,
    *,
    vocab_size: int | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    normalize: str = "l1",
    kind: str = "auto",
    progress: bool = False,
) -> ExplicitSolution:
    """Fits the explicit softmax-layer solution to in-memory arrays, in one pass.

    ``W_ij = log(F_ij + a) - log(f_i + N a)``, ``b = 0``, with ``F = X~^T Y``
    (see :mod:`xsol.solvers.dense`).

    Args:
      X: integer token ids of shape ``(B,)`` or ``(B, K)`` (a K-token window,
        one one-hot block per position), or dense non-negative features
        ``(B, M)`` (float, uint8 or bool). See :func:`xsol.core.inputs.infer_kind`.
      y: int labels ``(B,)`` (the next token for a language model).
      num_classes: ``N``; default ``max(y) + 1``. Pass it for language models
        (``N = V``) so unseen labels still get a column.
      vocab_size: ``V`` for ids; default ``max(max(X) + 1, N)`` (so a language
        model given ``num_classes=V`` gets ``V`` rows per position).
      smoothing: additive smoothing ``a >= 0`` (default :data:`DEFAULT_SMOOTHING`).
      normalize: ``"l1"`` (``x / sum(x)``) or ``"none"`` (dense features; for
        ids ``"l1"`` means averaging the ``K`` blocks' rows).
      kind: ``"auto"``, ``"ids"`` or ``"dense"``.
      progress: show a progress bar.

    Returns:
      An :class:`ExplicitSolution`.
    """
    X, kind = inputs.host_examples(X, kind)
    normalize = inputs.check_normalize(normalize)
    y = inputs.check_labels(y, np.shape(X)[0], num_classes)
    if num_classes is None:
        num_classes = inputs.infer_num_classes(y)
    V = None
    if kind == "ids":
        # accumulate() validates the ids; only the default V needs a look at them here.
        V = int(vocab_size) if vocab_size is not None else max(int(np.max(X)) + 1, int(num_classes))
    batches = [(X, y)]
    if inputs.is_sparse(X):  # densified a batch of rows at a time, never whole
        X = inputs.check_sparse_features(X)
        rows = scoring.rows_per_batch(X.shape[1])
        batches = ((X[i:i + rows].toarray(), y[i:i + rows]) for i in range(0, X.shape[0], rows))
    try:
        stats = accumulate(batches, num_classes, vocab_size=V, kind=kind, normalize=normalize,
                           progress=progress)
    except BatchError as e:  # one in-memory batch: report the problem, not the batch index
        raise ValueError(str(e).removeprefix("batch 0: ")) from None
    W, b = solve(stats, smoothing=smoothing)
    window = None if kind != "ids" else (1 if len(np.shape(X)) == 1 else int(np.shape(X)[1]))
    return _with_row_flag(ExplicitSolution(W, b, stats, kind, normalize, float(smoothing), V,
                                           window))


def _with_row_flag(sol: ExplicitSolution) -> ExplicitSolution:
    """Marks one-hot explicit solutions, whose rows are log-distributions (see the field)."""
    return dataclasses.replace(
        sol, rows_normalized=sol.kind == "ids" and sol.window == 1 and sol.smoothing > 0)


def solution_from_stats(stats: CoocStats, *, kind: str, normalize: str = "l1",
                        smoothing: float = DEFAULT_SMOOTHING, vocab_size: int | None = None,
                        window: int | None = None) -> ExplicitSolution:
    """An :class:`ExplicitSolution` from statistics gathered by :func:`xsol.accumulate`."""
    W, b = solve(stats, smoothing=smoothing)
    return _with_row_flag(ExplicitSolution(W, b, stats, kind, normalize, float(smoothing),
                                           vocab_size, window))



def _record(sol: ExplicitSolution) -> tuple[dict, dict]:
    fields = dict(kind=sol.kind, normalize=sol.normalize, smoothing=float(sol.smoothing),
                  vocab_size=sol.vocab_size, window=sol.window,
                  inverse_temperature=float(sol.inverse_temperature),
                  rows_normalized=bool(sol.rows_normalized), num_classes=sol.num_classes)
    return dict(weights=sol.weights, bias=sol.bias, **sol.stats._asdict()), fields


def _from_record(arrays: dict, fields: dict) -> ExplicitSolution:
    stats = CoocStats(*(arrays[k] for k in CoocStats._fields))
    return ExplicitSolution(
        arrays["weights"], arrays["bias"], stats, fields["kind"], fields["normalize"],
        float(fields["smoothing"]), fields["vocab_size"], fields["window"],
        float(fields["inverse_temperature"]), bool(fields["rows_normalized"]))


register_saved_type("ExplicitSolution", ExplicitSolution, to_record=_record,
                    from_record=_from_record)
