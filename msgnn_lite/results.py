"""Paper-vs-ours records: each notebook writes one small JSON file of claims, and the
pipeline gathers them into ``runs/<profile>/summary.md`` and ``runs/<profile>/report.md``.

A row is a :class:`Claim`: what the paper reports, what we measured, the unit, and a
verdict computed from a stated tolerance and setting (never typed in by hand):

* ``"reproduced"``: ours meets the paper's figure within the tolerance, on the paper's
  setting (or an equivalent one);
* ``"partly"``: ours meets it, but on a different dataset, metric, budget or hardware
  (``Claim.differs`` says how);
* ``"not reproduced"``: ours misses it (``differs`` then says whether the setting differed);
* ``"not testable offline"``: the claim needs data or hardware that is not at hand
  (``Claim.untestable`` says what); ``"measured"``: the paper gives no number.

Every record carries the id of the run that wrote it (``MSGNN_RUN_ID``, set by the
pipeline), so a summary can tell this run's records from ones left behind by another.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .utils import atomic_write, repo_root

__all__ = ["Claim", "VERDICTS", "verdict", "current_run_id", "reason", "results_dir", "record_results", "load_results",
           "claims_table"]

VERDICTS = ("reproduced", "partly", "not reproduced", "not testable offline", "measured", "not measured")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def verdict(paper: float | None, ours: float | None, tolerance: float = 0.0, higher_is_better: bool = True,
            differs: str = "", untestable: str = "") -> str:
    """The verdict of one claim (see the module docstring for the rules).

    ``differs``: how our setting differs from the paper's (empty: the same setting), which
    turns a met claim into ``"partly"``. ``untestable``: why the claim cannot be tested here
    (data or hardware not at hand), which makes it ``"not testable offline"`` when nothing
    was measured."""
    if untestable and _missing(ours):
        return "not testable offline"
    if _missing(paper):
        return "measured"
    if _missing(ours):
        return "not measured"
    ok = ours >= paper - tolerance if higher_is_better else ours <= paper + tolerance
    if not ok:
        return "not reproduced"
    return "partly" if differs else "reproduced"


@dataclass
class Claim:
    """One paper-vs-ours row."""

    quantity: str
    paper: float | None
    ours: float | None
    unit: str = ""
    tolerance: float = 0.0
    higher_is_better: bool = True
    note: str = ""
    differs: str = ""  # how our setting differs from the paper's ("" = the paper's setting)
    untestable: str = ""  # why the claim cannot be tested here ("" = it can)
    command: str = ""  # the command that reproduces our figure (default: the notebook's)

    @property
    def verdict(self) -> str:
        return verdict(self.paper, self.ours, self.tolerance, self.higher_is_better, self.differs, self.untestable)

    def as_row(self) -> dict:
        row = asdict(self)
        row["verdict"] = self.verdict
        return row


def results_dir(profile: str = "default") -> Path:
    """``$MSGNN_RESULTS_DIR`` (set by the pipeline) or ``<repo>/runs/<profile>/results``."""
    env = os.environ.get("MSGNN_RESULTS_DIR")
    return Path(env) if env else repo_root() / "runs" / profile / "results"


def current_run_id() -> str:
    """``$MSGNN_RUN_ID`` (set by the pipeline for one run of the notebooks), else an id for
    this interactive process (its start time and pid)."""
    env = os.environ.get("MSGNN_RUN_ID")
    if env:
        return env
    global _INTERACTIVE_ID
    if _INTERACTIVE_ID is None:
        _INTERACTIVE_ID = f"interactive-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    return _INTERACTIVE_ID


_INTERACTIVE_ID: str | None = None


def _hardware() -> str:
    import torch

    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} + {cpu}"
    return cpu


def record_results(notebook: str, claims: list[Claim], profile: str = "default", extra: dict | None = None) -> str:
    """Write the notebook's claims to ``<results_dir>/<notebook>.json`` atomically, with the
    run id, the time (UTC) and the hardware.

    Returns the file name (not a machine path) for printing."""
    if not claims:
        raise ValueError("claims is empty; a results file needs at least one Claim")
    payload = {"notebook": notebook, "profile": profile, "run_id": current_run_id(),
               "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "hardware": _hardware(),
               "claims": [c.as_row() for c in claims], "extra": extra or {}}
    path = results_dir(profile) / f"{notebook}.json"
    atomic_write(path, json.dumps(payload, indent=2, default=float) + "\n")
    return path.name


class ResultsFileError(ValueError):
    """A results file that is not a readable record (truncated, edited by hand, another format)."""


def load_results(directory: str | Path, on_error: str = "raise") -> list[dict]:
    """All results files in ``directory``, in notebook order.

    A file that is not valid JSON or lacks a record's fields raises :class:`ResultsFileError`
    naming it (``on_error="raise"``), or is skipped with a warning naming it (``"warn"``)."""
    import warnings

    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file; expected a folder of results files (*.json)")
    out = []
    for p in sorted(directory.glob("*.json")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(rec, dict) or not isinstance(rec.get("claims"), list) or "notebook" not in rec:
                raise ValueError("not a results record (needs 'notebook' and a list of 'claims')")
        except (ValueError, UnicodeDecodeError) as err:
            msg = (f"results file {p} is damaged or not a results record ({str(err).splitlines()[0]}); "
                   f"re-run its notebook (make reproduce ONLY={p.name[:2]}) or delete the file")
            if on_error == "raise":
                raise ResultsFileError(msg) from None
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            continue
        out.append(rec)
    return out


def claims_table(claims: list[Claim] | list[dict], digits: int = 2) -> pd.DataFrame:
    """A paper-vs-ours table for display in a notebook."""
    rows = [c.as_row() if isinstance(c, Claim) else dict(c) for c in claims]
    for r in rows:
        r["note"] = reason(r)
    df = pd.DataFrame(rows)[["quantity", "paper", "ours", "unit", "verdict", "note"]]
    return df.round({"paper": digits, "ours": digits})


def reason(row: dict) -> str:
    """A claim row's note with its setting: how it differs from the paper's, or why it
    cannot be tested here."""
    parts = []
    if row.get("untestable"):
        parts.append(f"not testable here: {row['untestable']}")
    if row.get("differs"):
        parts.append(f"setting differs: {row['differs']}")
    if row.get("note"):
        parts.append(row["note"])
    return "; ".join(parts)
