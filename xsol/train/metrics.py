"""How far a layer's weights are from reference (explicit) weights.

For one-hot and L1-normalized inputs the logits do not change when a constant
is added to a row of ``W`` (every example's features sum to 1, so every logit
moves by the same amount; docs/math.md "Identifiability"). Weights are therefore
compared after row-centering,

    C(W)_ij = W_ij - (1/N) sum_j' W_ij',

with the relative Frobenius distance and the cosine

    distance(W, W*) = ||C(W) - C(W*)||_F / ||C(W*)||_F
    cosine(W, W*)   = <C(W), C(W*)> / (||C(W)||_F ||C(W*)||_F).

Both are unchanged by per-row constants added to either matrix. The cosine is
0 when either centered matrix is 0 (no direction); the distance is NaN when
``C(W*)`` is 0 (no scale to be relative to).

Folding the bias. With L1-normalized inputs (``sum_i x~_i = 1``) the bias is
interchangeable with a vector added to every row: ``x~ W + b = x~ (W + 1 b^T)``.
Explicit weights carry the label prior inside ``W`` (their ``b`` is 0) while
gradient descent may put it in ``b``, so comparing ``W`` alone can report a
difference the logits do not have. :func:`weight_agreement` therefore compares
the effective weights ``W + 1 b^T`` of layers whose input is L1-normalized
(``fold_bias=True``, the default), and ``W`` itself otherwise.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def center_rows(W: jax.Array) -> jax.Array:
    """``C(W) = W - mean_j W_ij``: each row minus its mean over the labels.

    A constant row (e.g. the ``-log N`` row of a feature never seen) centers
    to exactly 0, not to the rounding error of its mean.
    """
    W = jnp.asarray(W, jnp.float32)
    C = W - W.mean(axis=1, keepdims=True)
    constant = W.max(axis=1, keepdims=True) == W.min(axis=1, keepdims=True)
    return jnp.where(constant, 0.0, C)


def _centered_dot_norms(W, W_ref):
    A, B = center_rows(W), center_rows(W_ref)
    return jnp.vdot(A, B), jnp.vdot(A, A), jnp.vdot(B, B), jnp.vdot(A - B, A - B)


@jax.jit
def row_centered_distance(W: jax.Array, W_ref: jax.Array) -> jax.Array:
    """``||C(W) - C(W*)||_F / ||C(W*)||_F`` (NaN when ``C(W*) = 0``).

    Args:
      W: ``(M, N)``.
      W_ref: the reference ``W*``, ``(M, N)``.

    Returns:
      A float32 scalar.
    """
    _, _, bb, dd = _centered_dot_norms(W, W_ref)
    return jnp.where(bb > 0, jnp.sqrt(dd) / jnp.sqrt(jnp.where(bb > 0, bb, 1.0)), jnp.nan)


@jax.jit
def row_centered_cosine(W: jax.Array, W_ref: jax.Array) -> jax.Array:
    """``<C(W), C(W*)> / (||C(W)||_F ||C(W*)||_F)`` (0 when either is 0).

    Args:
      W: ``(M, N)``.
      W_ref: ``(M, N)``.

    Returns:
      A float32 scalar in ``[-1, 1]``.
    """
    ab, aa, bb, _ = _centered_dot_norms(W, W_ref)
    denom = jnp.sqrt(aa) * jnp.sqrt(bb)
    cos = jnp.where(denom > 0, ab / jnp.where(denom > 0, denom, 1.0), 0.0)
    return jnp.clip(cos, -1.0, 1.0)


def comparable_weights(W: jax.Array, b: jax.Array, fold_bias: bool) -> jax.Array:
    """``W + 1 b^T`` when ``fold_bias`` (for L1-normalized inputs), else ``W``."""
    W = jnp.asarray(W, jnp.float32)
    return W + jnp.asarray(b, jnp.float32)[None, :] if fold_bias else W


@jax.jit
def _agreement(layers, refs, folds):
    out = []
    for (W, b), (R, c), fold in zip(layers, refs, folds):
        A = W + b[None, :] * fold
        B = R + c[None, :] * fold
        out.append(_centered_dot_norms(A, B))
    return out


def weight_agreement(layers, reference_layers, normalizations, *, fold_bias: bool = True) -> dict:
    """Row-centered distance and cosine of each layer to its reference.

    Args:
      layers: ``[(W_l, b_l), ...]`` (e.g. ``model.layer_weights(params)``).
      reference_layers: the reference ``[(W*_l, b*_l), ...]``, same shapes.
      normalizations: each layer's input normalization (``"l1"``/``"none"``);
        with ``fold_bias`` the bias is folded into ``W`` for ``"l1"`` layers.
      fold_bias: compare ``W + 1 b^T`` instead of ``W`` where the input is
        L1-normalized (see the module docstring).

    Returns:
      ``{"distance": d, "cosine": c}`` for one layer. For several layers the
      same two keys hold the figures for all layers' centered matrices taken
      together as one vector, and ``distance_<l>``/``cosine_<l>`` each
      layer's own. Python floats.
    """
    if not (len(layers) == len(reference_layers) == len(normalizations)):
        raise ValueError(
            f"got {len(layers)} layers, {len(reference_layers)} reference layers and "
            f"{len(normalizations)} normalizations; expected one of each per layer"
        )
    for l, ((W, _), (R, _)) in enumerate(zip(layers, reference_layers)):
        if W.shape != R.shape:
            raise ValueError(
                f"layer {l}: weights {W.shape} and reference {R.shape} differ in shape")
    folds = tuple(jnp.float32(bool(fold_bias) and n == "l1") for n in normalizations)
    layers = [(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32)) for W, b in layers]
    refs = [(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32)) for W, b in reference_layers]
    sums = [tuple(float(v) for v in t) for t in jax.device_get(_agreement(layers, refs, folds))]

    def figures(ab, aa, bb, dd):
        dist = (dd ** 0.5) / (bb ** 0.5) if bb > 0 else float("nan")
        cos = ab / ((aa ** 0.5) * (bb ** 0.5)) if aa > 0 and bb > 0 else 0.0
        cos = min(1.0, max(-1.0, cos))  # float rounding can step just past +-1
        return dist, cos

    total = [sum(s[k] for s in sums) for k in range(4)]
    dist, cos = figures(*total)
    row = {"distance": dist, "cosine": cos}
    if len(sums) > 1:
        for l, s in enumerate(sums):
            row[f"distance_{l}"], row[f"cosine_{l}"] = figures(*s)
    return row
