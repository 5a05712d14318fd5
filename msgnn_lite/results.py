"""Paper-vs-ours records: each notebook writes one small JSON file of claims, and the
pipeline gathers them into ``runs/<profile>/summary.md``.

A row is a :class:`Claim`: what the paper reports, what we measured, the unit, and a
verdict computed from a stated tolerance (never typed in by hand).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .utils import atomic_write, repo_root

__all__ = ["Claim", "verdict", "results_dir", "record_results", "load_results", "claims_table"]


def verdict(paper: float | None, ours: float, tolerance: float = 0.0, higher_is_better: bool = True) -> str:
    """``"reproduced"`` if ours is at least as good as the paper's figure within
    ``tolerance`` (in the claim's unit), ``"not reproduced"`` otherwise;
    ``"measured"`` when the paper gives no number to compare with."""
    if paper is None or (isinstance(paper, float) and math.isnan(paper)):
        return "measured"
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return "not measured"
    ok = ours >= paper - tolerance if higher_is_better else ours <= paper + tolerance
    return "reproduced" if ok else "not reproduced"


@dataclass
class Claim:
    """One paper-vs-ours row."""

    quantity: str
    paper: float | None
    ours: float
    unit: str = ""
    tolerance: float = 0.0
    higher_is_better: bool = True
    note: str = ""

    @property
    def verdict(self) -> str:
        return verdict(self.paper, self.ours, self.tolerance, self.higher_is_better)

    def as_row(self) -> dict:
        row = asdict(self)
        row["verdict"] = self.verdict
        return row


def results_dir(profile: str = "default") -> Path:
    """``$MSGNN_RESULTS_DIR`` (set by the pipeline) or ``<repo>/runs/<profile>/results``."""
    env = os.environ.get("MSGNN_RESULTS_DIR")
    return Path(env) if env else repo_root() / "runs" / profile / "results"


def record_results(notebook: str, claims: list[Claim], profile: str = "default", extra: dict | None = None) -> str:
    """Write the notebook's claims to ``<results_dir>/<notebook>.json`` atomically.

    Returns the file name (not a machine path) for printing."""
    if not claims:
        raise ValueError("claims is empty; a results file needs at least one Claim")
    payload = {"notebook": notebook, "profile": profile, "claims": [c.as_row() for c in claims],
               "extra": extra or {}}
    path = results_dir(profile) / f"{notebook}.json"
    atomic_write(path, json.dumps(payload, indent=2, default=float) + "\n")
    return path.name


def load_results(directory: str | Path) -> list[dict]:
    """All results files in ``directory``, in notebook order."""
    return [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]


def claims_table(claims: list[Claim] | list[dict], digits: int = 2) -> pd.DataFrame:
    """A paper-vs-ours table for display in a notebook."""
    rows = [c.as_row() if isinstance(c, Claim) else dict(c) for c in claims]
    df = pd.DataFrame(rows)[["quantity", "paper", "ours", "unit", "verdict", "note"]]
    return df.round({"paper": digits, "ours": digits})
