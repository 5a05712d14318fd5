"""The report a reader sees in notebook 12 is the committed one.

Notebook 12 embeds the reproduction report of the run it belongs to; docs/reproduction_report.md
is assembled from the same run by ``make reproduce``. If one of them is refreshed without the
other, the two disagree (notebook 06's figures once differed between them). Every claim row of
notebook 12's stored copy must therefore appear, character for character, in the committed report.
No execution: the stored notebook is read as JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NB12 = ROOT / "notebooks" / "12_comparison.ipynb"
REPORT = ROOT / "docs" / "reproduction_report.md"


def claim_rows(markdown: str) -> list[str]:
    """The claim rows of a rendered report (``| notebook | claim | ... |``, eight columns)."""
    return [line.strip() for line in markdown.splitlines()
            if line.startswith("| ") and line.count("|") == 9 and not line.startswith("| notebook")]


def embedded_report() -> str:
    nb = json.loads(NB12.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell.get("source", ""))
        if cell["cell_type"] == "code" and src.strip() == "display(Markdown(report))":
            for out in cell.get("outputs", []):
                md = out.get("data", {}).get("text/markdown")
                if md:
                    return "".join(md) if isinstance(md, list) else md
    raise AssertionError("notebook 12 has no stored output of `display(Markdown(report))`; re-run it")


def test_notebook_12_shows_the_committed_report():
    embedded, committed = claim_rows(embedded_report()), set(claim_rows(REPORT.read_text(encoding="utf-8")))
    assert len(embedded) >= 50, f"notebook 12's stored report has only {len(embedded)} claim rows"
    stale = [r for r in embedded if r not in committed]
    assert not stale, (f"{len(stale)} of {len(embedded)} claim rows of notebook 12's stored report are not in "
                       "docs/reproduction_report.md: re-run the notebooks and the report from one run "
                       "(make reproduce), e.g.\n  " + "\n  ".join(r[:200] for r in stale[:5]))


def test_claim_rows_parser():
    md = ("| notebook | claim | paper | ours | unit | verdict | reason | reproduce with |\n|---|---|---|---|---|---|---|---|\n"
          "| 01_full | GCN acc | 81.5 | 81.9 | % | reproduced | r | `cmd` |\n| verdict | claims |\n")
    assert claim_rows(md) == ["| 01_full | GCN acc | 81.5 | 81.9 | % | reproduced | r | `cmd` |"]
