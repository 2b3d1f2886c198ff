"""Reading explicit weights (claim C8): weights as images, and top next tokens.

For dense inputs, row ``i`` of the explicit ``W`` is ``log P(label | feature i)``;
centering it over labels, ``W_ij - mean_j W_ij``, says how much pixel ``i``
favors class ``j`` over the others, which can be drawn as one image per class.
A measurable proxy for "interpretable": the correlation of each class's
centered weight image with that class's mean input minus the overall mean
input (its template). For a bigram LM, row ``i`` is ``log P(next | word i)``
and its largest entries are the most likely next tokens.

The readout divergence (:func:`readout_divergence`) is C8's measure. Any
softmax layer ``(W, b)`` predicts, for an input made of feature ``i`` alone
(``x~ = e_i``), the label distribution ``p_i = softmax(W_i + b)``: the row's
readout. It is measured against what held-out data say about feature ``i``,
``q_i = F'_i / f'_i`` (the held-out co-occurrences ``F'`` of the feature with
each label, normalized), weighted by the feature's held-out mass:

    ``D = sum_i f'_i KL(q_i || p_i) / sum_i f'_i``  (nats; rows with ``f'_i = 0`` skipped).

Low ``D`` means each row can be read, on its own, as the conditional label
distribution of its feature, and that reading holds on data the weights did
not see. Unlike the template correlation, which a single gradient step from
zero already maximizes (that step is ``F - f 1^T / N``, the templates
themselves), it does not reward weights for pointing in the first gradient's
direction.
"""

from __future__ import annotations

import numpy as np

from xsol.core.serialize import save_figure


def centered(W) -> np.ndarray:
    """``W - mean_j W_ij``: row-centered weights (docs/math.md, identifiability)."""
    W = np.asarray(W, np.float64)
    return W - W.mean(axis=1, keepdims=True)


def template_correlation(W, X, y, num_classes: int) -> np.ndarray:
    """Per-class Pearson correlation between centered weights and class templates.

    Template of class ``j``: ``mean(x~ | y = j) - mean(x~)`` with ``x~ = x / sum(x)``.

    Returns:
      ``(N,)`` correlations (``nan`` for a class absent from ``y``).
    """
    X = np.asarray(X, np.float64)
    s = X.sum(1, keepdims=True)
    Xn = np.divide(X, s, out=np.zeros_like(X), where=s > 0)
    overall = Xn.mean(0)
    C = centered(W)
    out = np.full(num_classes, np.nan)
    for j in range(num_classes):
        m = y == j
        if m.any():
            t = Xn[m].mean(0) - overall
            out[j] = np.corrcoef(C[:, j], t)[0, 1]
    return out


def readout_divergence(W, b, F) -> float:
    """``D = sum_i f_i KL(q_i || softmax(W_i + b)) / sum_i f_i`` with ``q_i = F_i / f_i`` (module docstring).

    Args:
      W: weights ``(M, N)``.
      b: bias ``(N,)``.
      F: held-out co-occurrences ``(M, N)`` (counts or normalized mass).

    Returns:
      The divergence in nats (float64 arithmetic).
    """
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64).reshape(1, -1)
    F = np.asarray(F, np.float64)
    if W.shape != F.shape:
        raise ValueError(f"weights {W.shape} and held-out co-occurrences {F.shape} differ in shape")
    f = F.sum(1)
    rows = f > 0
    if not rows.any():
        raise ValueError("the held-out co-occurrences are all zero")
    Z = W[rows] + b
    Z = Z - Z.max(1, keepdims=True)
    log_p = Z - np.log(np.exp(Z).sum(1, keepdims=True))
    q = F[rows] / f[rows, None]
    nz = q > 0
    kl_terms = np.where(nz, q * (np.log(np.where(nz, q, 1.0)) - log_p), 0.0)
    return float(np.sum(f[rows] * kl_terms.sum(1)) / f[rows].sum())


def draw_weight_images(weights: dict, image_shape, path, class_names=None) -> str:
    """One row per weight matrix, one 2-D image per class, saved as PNG.

    Args:
      weights: ``{title: W}`` with ``W`` of shape ``(H * W_img, N)``.
      image_shape: ``(H, W_img)``.
      path: output PNG path.
      class_names: labels for the columns.

    Returns:
      ``path`` as a string.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = list(weights)
    N = np.asarray(weights[titles[0]]).shape[1]
    fig, axes = plt.subplots(len(titles), N, figsize=(1.3 * N, 1.5 * len(titles) + 0.4),
                             squeeze=False)
    for r, title in enumerate(titles):
        C = centered(weights[title])
        lim = np.percentile(np.abs(C), 99) or 1.0
        for j in range(N):
            ax = axes[r, j]
            ax.imshow(C[:, j].reshape(image_shape), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(str(class_names[j]) if class_names is not None else str(j), fontsize=8)
            if j == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.suptitle("row-centered weights per class (red: favors the class)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


def top_next_tokens(W, vocab, words, k: int = 5) -> dict:
    """For each word, the ``k`` tokens with the largest weights in its row.

    Args:
      W: bigram weights ``(V, V)`` (row = previous token).
      vocab: an :class:`xsol.data.Vocabulary`.
      words: tokens to look up.
      k: how many next tokens.

    Returns:
      ``{word: [(token, probability), ...]}`` with probabilities ``softmax(W_i)``.
    """
    W = np.asarray(W, np.float64)
    out = {}
    for w in words:
        i = vocab.id_of(w)
        row = W[i]
        p = np.exp(row - row.max())
        p /= p.sum()
        top = np.argsort(-row, kind="stable")[:k]
        out[w] = [(vocab.tokens[t], float(p[t])) for t in top]
    return out
