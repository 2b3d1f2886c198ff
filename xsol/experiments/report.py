"""Claim results, and the report they make: ``report.md``, ``results.json``, PNGs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from xsol.experiments.verdicts import VERDICTS
from xsol.core.serialize import to_jsonable, write_json, write_text


@dataclasses.dataclass
class Table:
    """A table: ``columns`` is a list of ``(key, title, format)``; rows are dicts."""

    caption: str
    columns: list
    rows: list

    def markdown(self) -> str:
        head = "| " + " | ".join(t for _, t, _ in self.columns) + " |"
        sep = "|" + "|".join("---" for _ in self.columns) + "|"
        lines = [f"*{self.caption}*", "", head, sep]
        for r in self.rows:
            cells = []
            for key, _, fmt in self.columns:
                v = r.get(key)
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    cells.append("–")
                elif fmt:
                    cells.append(fmt.format(v))
                else:
                    cells.append(str(v))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


@dataclasses.dataclass
class ClaimResult:
    """What one experiment found about one claim.

    Attributes:
      claim: ``"C1"`` ... ``"C8"``.
      title: the claim in a few words.
      verdict: one of :data:`VERDICTS`.
      summary: one line with the numbers behind the verdict.
      tables: :class:`Table` list.
      plots: PNG file names (relative to the output folder).
      notes: further sentences (method, caveats).
      data: everything measured, for ``results.json``.
      rule: the verdict rule, printed beside the verdict.
    """

    claim: str
    title: str
    verdict: str
    summary: str
    tables: list = dataclasses.field(default_factory=list)
    plots: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)
    rule: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def write_report(out_dir, results: list, settings: dict, *, title: str = "xsol reproduce",
                 setup: dict | None = None) -> dict:
    """Writes ``report.md`` and ``results.json`` into ``out_dir``.

    ``setup`` is an optional section placed before the claims:
    ``{"title", "notes", "tables", "plots", "data"}`` (how baselines were tuned).

    Returns:
      ``{"report": path, "json": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if settings.get("complete") is False:
        lines += [f"**Incomplete:** this run stopped or is still running; finished stages: "
                  f"{', '.join(settings.get('finished_stages', [])) or 'none'}. "
                  "`xsol reproduce --resume` with the same settings finishes it.", ""]
    lines += [
        "Claims of Williams & Zhao (2023), arXiv:2311.07498, measured on real data. "
        "Each section gives the setting, a table (mean ± standard deviation over seeds "
        "unless stated), plots, and a one-line verdict: *holds*, *partly*, *inconclusive* "
        "(the confidence interval contains the rule's threshold) or *does not hold*, beside "
        "the rule that decides it.",
        "",
        "## Verdicts",
        "",
        "| claim | verdict | rule | evidence |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.claim}: {r.title} | **{r.verdict}** | {r.rule or '–'} | {r.summary} |")
    lines += ["", "## Settings", "", "```", json.dumps(to_jsonable(settings), indent=2), "```", ""]
    if setup:
        lines += [f"## {setup.get('title', 'Setup')}", ""]
        for note in setup.get("notes", []):
            lines += [note, ""]
        for t in setup.get("tables", []):
            lines += [t.markdown(), ""]
        for p in setup.get("plots", []):
            lines += [f"![setup]({p})", ""]
    for r in results:
        lines += [f"## {r.claim}: {r.title}", "", f"**Verdict: {r.verdict}.** {r.summary}", ""]
        if r.rule:
            lines += [f"*Rule:* {r.rule}", ""]
        for note in r.notes:
            lines += [note, ""]
        for t in r.tables:
            lines += [t.markdown(), ""]
        for p in r.plots:
            lines += [f"![{r.claim}]({p})", ""]
    report = out / "report.md"
    write_text(report, "\n".join(lines))
    payload = {
        "settings": settings,
        "setup": None if not setup else {
            "notes": setup.get("notes", []), "plots": setup.get("plots", []),
            "tables": [{"caption": t.caption, "rows": t.rows} for t in setup.get("tables", [])],
            "data": setup.get("data", {})},
        "claims": [
            {
                "claim": r.claim,
                "title": r.title,
                "verdict": r.verdict,
                "rule": r.rule,
                "summary": r.summary,
                "notes": r.notes,
                "plots": r.plots,
                "tables": [{"caption": t.caption, "rows": t.rows} for t in r.tables],
                "data": r.data,
            }
            for r in results
        ],
    }
    js = out / "results.json"
    write_json(js, payload)
    return {"report": os.fspath(report), "json": os.fspath(js)}
