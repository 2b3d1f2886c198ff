"""Verdict rules, confidence intervals and computed sentences, shared by every claim.

A claim's verdict is read off a quantity measured on several seeds against a
threshold. Thresholds are not cliffs: the verdict uses the two-sided 95%
confidence interval of the mean over seeds (Student's t, ``n - 1`` degrees of
freedom, :func:`xsol.experiments.summary.interval`),

    ``mean ± t_{0.975, n-1} * std / sqrt(n)``,

and says *holds* only when the whole interval is on the claim's side,
*does not hold* when the whole interval is on the other side, and
*inconclusive* when the interval contains the threshold. With one seed there
is no interval and the point decides (the report says ``n = 1``).

Several comparisons inside one claim are corrected for multiplicity with
Holm's step-down method (Holm 1979): the ``i``-th smallest of ``m`` p-values
is multiplied by ``m - i + 1`` and the sequence made non-decreasing.

A rule made of parts (C5, C7) tests each part's per-seed quantity against its
threshold (:func:`threshold_test`), Holm-corrects the parts as one family and
decides each (:func:`decide`, :func:`part_verdict`); :func:`both` joins two
conditions that must both hold.

Chance has one definition everywhere: the held-out accuracy of always
predicting the most frequent training label (:func:`chance_accuracy`).

Sentences that state a direction ("higher", "lower", "faster") are made by
:func:`compare` and :func:`change` from the numbers they describe, so the
sentence flips when the numbers do.
"""

from __future__ import annotations

import math

import numpy as np

from xsol.experiments.summary import CONFIDENCE, interval, mean_of

#: Every verdict a claim can have.
VERDICTS = ("holds", "partly", "inconclusive", "does not hold", "not run")
#: Significance level of every test in the report (after Holm's correction).
ALPHA = 0.05
#: How a rule made of parts combines them (:func:`parts_verdict`), as printed.
PARTS_COMBINE = ("Verdict: every part holds → holds; every part fails → does not hold; some "
                 "hold → partly; otherwise inconclusive.")
#: "At least as good as" in held-out accuracy: a difference above minus this
#: (half a percentage point) counts as a tie (C5, C7).
TIE_TOLERANCE = 0.005


def chance_accuracy(y_train, y_test) -> float:
    """Held-out accuracy of always predicting the most frequent training label.

    Args:
      y_train: training labels (ints).
      y_test: held-out labels.

    Returns:
      ``mean(y_test == argmax bincount(y_train))``.

    Raises:
      ValueError: empty label arrays.
    """
    y_train = np.asarray(y_train).ravel()
    y_test = np.asarray(y_test).ravel()
    if y_train.size == 0 or y_test.size == 0:
        raise ValueError("chance_accuracy needs non-empty training and held-out labels")
    majority = np.bincount(y_train.astype(np.int64)).argmax()
    return float(np.mean(y_test == majority))


def against(values, threshold: float, *, side: str) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` for a threshold rule.

    Args:
      values: the quantity on each seed.
      threshold: the rule's threshold.
      side: ``"below"`` (the claim holds when the quantity is below the
        threshold) or ``"above"``.
    """
    if side not in ("below", "above"):
        raise ValueError(f"side must be 'below' or 'above', got {side!r}")
    ci = interval(values)
    if ci["n"] == 0:
        return "inconclusive"
    lo, hi = ci["lo"], ci["hi"]
    good_all = hi < threshold if side == "below" else lo > threshold
    bad_all = lo >= threshold if side == "below" else hi <= threshold
    if good_all:
        return "holds"
    if bad_all:
        return "does not hold"
    return "inconclusive"


def combine(verdicts) -> str:
    """One verdict from the verdicts of a claim's parts.

    All *holds* -> holds; all *does not hold* -> does not hold; some *holds*
    -> partly; otherwise (some part inconclusive, none holds) -> inconclusive.
    Parts that were not run are ignored; nothing run -> not run.
    """
    vs = [v for v in verdicts if v != "not run"]
    if not vs:
        return "not run"
    if all(v == "holds" for v in vs):
        return "holds"
    if all(v == "does not hold" for v in vs):
        return "does not hold"
    if any(v in ("holds", "partly") for v in vs):
        return "partly"
    return "inconclusive"


def holm(p_values) -> list:
    """Holm-adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray([float(x) for x in p_values], np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out.tolist()


def paired(a, b) -> dict:
    """Paired comparison of ``a - b`` over the same seeds.

    Returns:
      ``{"mean_diff", "lo", "hi", "a_greater", "n", "p_value"}``: the mean
      difference with its confidence interval, how many seeds had ``a > b``,
      and the two-sided paired t-test p-value (NaN for fewer than two seeds or
      constant differences).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs equal lengths, got {a.shape} and {b.shape}")
    d = a - b
    ci = interval(d)
    p = float("nan")
    finite = d[np.isfinite(d)]
    if finite.size >= 2 and np.ptp(finite) > 0:
        from scipy.stats import ttest_1samp

        p = float(ttest_1samp(finite, 0.0).pvalue)
    elif finite.size >= 2 and finite[0] != 0:
        p = 0.0  # every seed shows the same nonzero difference
    return dict(mean_diff=ci["mean"], lo=ci["lo"], hi=ci["hi"], a_greater=int(np.sum(d > 0)),
                n=int(d.size), p_value=p)


def with_holm(tests: dict) -> dict:
    """Adds ``p_holm`` (Holm-adjusted over all ``tests``) and ``significant`` to each test."""
    keys = list(tests)
    adjusted = holm([tests[k]["p_value"] for k in keys])
    for k, p in zip(keys, adjusted):
        tests[k]["p_holm"] = p
        tests[k]["significant"] = bool(np.isfinite(p) and p < ALPHA)
    return tests


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"


def compare(name_a: str, a: float, name_b: str, b: float, *, digits: int = 3,
            higher: str = "higher", lower: str = "lower", tie: float = 0.0) -> str:
    """``"A (0.87) is lower than B (0.97)"``, the direction computed from ``a`` and ``b``.

    ``tie``: differences up to this size read "equal to".
    """
    if not (math.isfinite(a) and math.isfinite(b)):
        return f"{name_a} ({_num(a, digits)}) cannot be compared with {name_b} ({_num(b, digits)})"
    if abs(a - b) <= tie:
        word = "equal to"
    else:
        word = f"{higher} than" if a > b else f"{lower} than"
    return f"{name_a} ({_num(a, digits)}) is {word} {name_b} ({_num(b, digits)})"


def change(name: str, before: float, after: float, *, digits: int = 3, relative: bool = False,
           up: str = "rises", down: str = "falls") -> str:
    """``"the loss falls from 0.5 to 0.4 (-20.0%)"``, direction computed."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return f"{name} goes from {_num(before, digits)} to {_num(after, digits)}"
    if after == before:
        return f"{name} stays at {_num(after, digits)}"
    word = up if after > before else down
    tail = ""
    if relative and before != 0:
        tail = f" ({100 * (after - before) / abs(before):+.1f}%)"
    return f"{name} {word} from {_num(before, digits)} to {_num(after, digits)}{tail}"


def difference(test: dict, name_a: str, name_b: str, *, digits: int = 4,
               higher: str = "higher", lower: str = "lower") -> str:
    """A sentence on a :func:`paired` test (after :func:`with_holm` when available).

    ``"A is lower than B by 0.0123 (95% CI 0.0100 to 0.0146; 5/5 seeds; Holm p = 0.002)"``
    or ``"... no significant difference ..."``; the direction is the sign of the mean.
    """
    d = test["mean_diff"]
    p = test.get("p_holm", test["p_value"])
    p_txt = "p n/a" if not math.isfinite(p) else (
        f"{'Holm ' if 'p_holm' in test else ''}p = {p:.2g}")
    ci = f"{int(100 * CONFIDENCE)}% CI {_num(test['lo'], digits)} to {_num(test['hi'], digits)}"
    if not math.isfinite(d):
        return f"{name_a} vs {name_b}: no finite difference"
    direction = higher if d > 0 else lower if d < 0 else "equal to"
    sig = math.isfinite(p) and p < ALPHA
    base = (f"{name_a} is {direction}{' than' if d else ''} {name_b} by {abs(d):.{digits}f} "
            f"({ci}; {test['a_greater']}/{test['n']} seeds {name_a} > {name_b}; {p_txt})")
    return base if sig else base + ", not significant"


def both(a: str, b: str) -> str:
    """Verdict of a rule made of two conditions that must both hold."""
    if "does not hold" in (a, b):
        return "does not hold"
    if a == b == "holds":
        return "holds"
    return "inconclusive"


def threshold_test(values, threshold, *, side: str = "above", **info) -> dict:
    """A per-seed quantity against its threshold: the paired t-test of ``values - threshold``.

    Args:
      values: the quantity on each seed.
      threshold: a number, or one per seed (e.g. a margin above each seed's chance).
      side: ``"above"`` (the claim needs the quantity above the threshold) or ``"below"``.
      info: more keys for the result (names, means for sentences).

    Returns:
      :func:`paired` of ``values`` and the threshold plus ``side``,
      ``threshold`` (its mean), ``values``, ``mean`` and the quantity's
      confidence interval ``value_lo``/``value_hi``.
    """
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    v = np.asarray([float(x) for x in values], np.float64)
    thr = np.broadcast_to(np.asarray(threshold, np.float64), v.shape).astype(np.float64)
    test = paired(v, thr)
    ci = interval(v)
    test.update(side=side, threshold=float(np.mean(thr)) if thr.size else float("nan"),
                values=v.tolist(), mean=ci["mean"], value_lo=ci["lo"], value_hi=ci["hi"])
    test.update(info)
    return test


def part_verdict(test: dict) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` for a :func:`threshold_test`.

    Significant (Holm-adjusted p below :data:`ALPHA`, so the quantity's
    interval excludes the threshold) on the claim's side: holds; on the other
    side: does not hold; otherwise inconclusive. With one seed the point
    decides. A test with ``forced`` set (e.g. a run that did not
    converge) takes that verdict.
    """
    if test.get("forced"):
        return test["forced"]
    d = test["mean_diff"]
    if not math.isfinite(d) or d == 0:
        return "inconclusive"
    good = d > 0 if test["side"] == "above" else d < 0
    if test["n"] < 2:
        return "holds" if good else "does not hold"
    p = test.get("p_holm", test["p_value"])
    if math.isfinite(p) and p < ALPHA:
        return "holds" if good else "does not hold"
    return "inconclusive"


def decide(parts: list) -> list:
    """Holm-adjusts the parts' p-values as one family and sets each part's ``verdict``."""
    family = {i: p for i, p in enumerate(parts)}
    with_holm(family)
    for p in parts:
        p["verdict"] = part_verdict(p)
    return parts


def _p_text(test: dict) -> str:
    p = test.get("p_holm", test.get("p_value", float("nan")))
    if test.get("n", 0) < 2:
        return "n = 1, the point decides"
    return f"Holm p = {p:.2g}" if math.isfinite(p) else "p n/a"


def part_sentence(part: dict, digits: int = 3) -> str:
    """One computed sentence for a rule part: the comparison, the interval, the verdict."""
    head = compare(part["name_a"], part["a"], part["name_b"], part["b"], digits=digits,
                   higher=part.get("higher", "higher"), lower=part.get("lower", "lower"))
    sign = "+" if part.get("quantity") else ""
    f = lambda x: f"{x:{sign}.{digits + 1}f}"  # noqa: E731
    ci = f"{int(100 * CONFIDENCE)}% CI {f(part['value_lo'])} to {f(part['value_hi'])}"
    body = (f"{part.get('quantity') or 'mean'} {f(part['mean'])} ({ci}) against threshold "
            f"{f(part['threshold'])}")
    tail = f"; {part['reason']}" if part.get("reason") else ""
    return f"{head}; {body}, {_p_text(part)}{tail}: {part['verdict']}"


def parts_verdict(parts: list) -> str:
    """A rule's verdict from its decided parts: :func:`combine` of their verdicts."""
    return combine([p["verdict"] for p in parts])


def parts_summary(parts: list, *, labelled: bool = False) -> str:
    """A rule's one-line evidence: every part's :func:`part_sentence`, grouped by cell.

    ``labelled`` puts each part's name first, e.g. ``"(a) ..."``.
    """
    by_cell = {}
    for p in parts:
        label = f"({p['part']}) " if labelled else ""
        by_cell.setdefault(p["cell"], []).append(label + part_sentence(p))
    return " ".join(f"{cell}: " + "; ".join(s) + "." for cell, s in by_cell.items())


def reported_test(a, b, **info) -> dict:
    """:func:`paired` of ``a - b`` with ``info`` and the two means, for a sentence beside a rule."""
    test = paired(a, b)
    test.update(info)
    test.update(a=mean_of(a), b=mean_of(b))
    return test
