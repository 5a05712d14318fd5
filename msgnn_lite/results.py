"""Paper-vs-ours records: each notebook writes one small JSON file of claims, and the
pipeline gathers them into ``runs/<profile>/summary.md`` and ``runs/<profile>/report.md``.

A row is a :class:`Claim`: what the paper reports, what we measured (with the per-seed
values when there are several seeds), the unit, and a verdict computed from a stated
tolerance and setting (never typed in by hand). The tolerance defines a region around the
paper's figure: ``[paper - tol, paper + tol]`` for a two-sided claim ("comparable to
full batch"), ``[paper - tol, inf)`` for higher-is-better, ``(-inf, paper + tol]`` for
lower-is-better. Our uncertainty is the 95% t-interval of the mean of ``values`` (for a
comparison, ``values`` are the per-seed differences). Then:

* ``"reproduced"``: the whole interval lies in the region, on the paper's setting (or an
  equivalent one);
* ``"partly"``: it does, but on a different dataset, metric, budget or hardware
  (``Claim.differs`` says how), or the claim was chosen after the runs were seen
  (``Claim.chosen_after`` says how; a best-of-several pick is biased upwards);
* ``"not reproduced"``: the whole interval lies outside the region;
* ``"inconclusive (n seeds)"``: the interval straddles the region's edge, or there are fewer
  than three measurements of a noisy quantity (a t-interval from two points has one degree of
  freedom and is 12.7 standard errors wide: no interval is drawn from it; ``noise_free=True``
  declares a quantity that does not depend on the seed, e.g. a byte count, whose single value
  is its interval);
* ``"not testable here"``: the claim needs data or hardware that is not at hand, or an
  implementation that could show the effect (``Claim.untestable`` says what), whatever we
  measured; ``"measured"``: the paper gives no number.

Ratios (speed-ups, memory savings) are judged on a log scale (``Claim(log_scale=True)``):
``ours`` is the geometric mean of the per-seed ratios and the interval is that of the mean
log ratio, mapped back (:func:`interval95` with ``log=True``). A ratio of 0.5 and one of 2 are
equally far from 1; their arithmetic mean, 1.25, is not.

Every record carries the id of the run that wrote it (``MSGNN_RUN_ID``, set by the
pipeline), so a summary can tell this run's records from ones left behind by another, and
every claim says where its numbers come from (``Claim.source``: this run, or a stored CSV
with the hardware of the run that wrote it).
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

__all__ = ["Claim", "VERDICTS", "MIN_INTERVAL_VALUES", "verdict", "verdict_kind", "interval95", "sanity_floor", "current_run_id", "reason", "sequential_seeds", "SEED_RULE", "results_dir", "record_results", "load_results",
           "claims_table"]

VERDICTS = ("reproduced", "partly", "inconclusive", "not reproduced", "baseline did not learn", "not testable here",
            "measured", "not measured")
"""The verdict kinds, in report order (an ``"inconclusive (n seeds)"`` verdict is of kind ``"inconclusive"``)."""


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


MIN_INTERVAL_VALUES = 3
"""The fewest values an interval is drawn from (two give one degree of freedom: t = 12.7)."""


def interval95(values, log: bool = False) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its 95% Student-t confidence interval;
    the interval is NaN for fewer than :data:`MIN_INTERVAL_VALUES` values.

    ``log=True`` is for ratios (all values > 0): the mean is the geometric mean and the
    interval is that of the mean log value, mapped back with ``exp``."""
    from scipy import stats

    v = [float(x) for x in values]
    if not v or any(math.isnan(x) for x in v):
        raise ValueError(f"values must be a non-empty list of numbers without NaN, got {values!r}")
    if log:
        if any(not x > 0 or math.isinf(x) for x in v):
            raise ValueError(f"values must be positive finite ratios for log=True, got {values!r}")
        mean, low, high = interval95([math.log(x) for x in v])
        return math.exp(mean), math.exp(low), math.exp(high)
    n = len(v)
    mean = sum(v) / n
    if n < MIN_INTERVAL_VALUES:
        return mean, float("nan"), float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


SEED_RULE = ("seeds are added one at a time, from 3, until every claim the seeds feed has a verdict other than "
             "inconclusive, or until the cap (10 seeds in the default profile); the same rule and cap for every "
             "claim that uses it, so 'inconclusive (10 seeds)' means the cap was hit")
"""The stopping rule of :func:`sequential_seeds`, as the report states it."""


def sequential_seeds(run_seed, claims_of, seeds, *, min_seeds: int = 3, max_seconds: float | None = None,
                     progress=None) -> tuple[list, list]:
    """Run ``run_seed(seed)`` for ``seeds`` in order, stopping once every claim is decided.

    ``claims_of(results)`` builds the claims (a list of :class:`Claim`) from the results so far;
    after each seed from the ``min_seeds``-th on, the loop stops when none of them is
    ``"inconclusive"``. ``len(seeds)`` is the cap, and ``max_seconds`` (if given) a second one:
    no seed is started after the first ``min_seeds`` once the runs have taken that long (the
    seed count then depends on the hardware; the claims state it). Returns ``(results, claims)``: the per-seed
    results and the claims built from all of them. The rule is :data:`SEED_RULE`: fixed and the
    same for every claim, so the stopping cannot be tuned per claim. (Stopping when a verdict is
    reached makes the intervals slightly optimistic, as any sequential test without a spending
    rule; the cap bounds it.)"""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; give the seeds to try, in order (their number is the cap)")
    if not isinstance(min_seeds, int) or min_seeds < 1:
        raise ValueError(f"min_seeds must be a positive integer, got {min_seeds!r}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
    results, claims = [], []
    t0 = time.perf_counter()
    for i, seed in enumerate(seeds):
        results.append(run_seed(seed))
        if i + 1 < min(min_seeds, len(seeds)):
            continue
        claims = claims_of(results)
        undecided = [c.quantity for c in claims if verdict_kind(c.verdict) == "inconclusive"]
        out_of_time = max_seconds is not None and time.perf_counter() - t0 >= max_seconds
        if progress is not None:
            progress(f"{i + 1} seed(s): " + (f"{len(undecided)} claim(s) undecided" if undecided else "all decided")
                     + (f"; {max_seconds:g} s spent" if undecided and out_of_time else ""))
        if not undecided or out_of_time:
            break
    return results, claims


def sanity_floor(baseline: float, mlp: float | None = None, num_classes: int | None = None, margin: float = 2.0,
                 name: str = "baseline", *, values=None, mlp_values=None, num_test: int | None = None) -> str:
    """``""`` when a baseline (test accuracy in percent, a mean over seeds) beats chance
    (``100 / num_classes``) and a graph-free MLP trained under the same budget by ``margin``
    points; otherwise the reason, with the numbers, to pass as ``Claim.baseline_failed``.

    With the baseline's per-seed ``values`` (three or more), it must beat them beyond its seed
    noise: the low end of its 95% interval must clear chance + ``margin``, and, with the MLP's
    per-seed ``mlp_values`` on the same seeds, the low end of the interval of the per-seed
    differences must clear ``margin`` (else the low end of the baseline's interval must clear
    ``mlp + margin``). A model at chance on a graph with nothing to learn can score a point or
    two above it on one test set; this keeps such a run from passing as a baseline.

    With a single run, ``num_test`` (the number of test nodes) gives the test set's own noise
    instead: the binomial standard error ``sqrt(p (1 - p) / num_test)`` of each accuracy, and
    the low ends of the 95% intervals of the baseline and of its difference to the MLP must
    clear the same bars. (Without either, the means are compared as they are.)"""
    vals = [float(v) for v in values] if values is not None else []
    if num_test is not None and (not isinstance(num_test, int) or num_test < 1):
        raise ValueError(f"num_test must be a positive number of test nodes, got {num_test!r}")

    def test_se(acc: float) -> float:  # binomial standard error of an accuracy in percent, in points
        p = min(max(float(acc) / 100.0, 0.0), 1.0)
        return 100.0 * math.sqrt(p * (1.0 - p) / num_test)

    if len(vals) >= MIN_INTERVAL_VALUES:
        low = interval95(vals)[1]
        shown = f"{name} {baseline:.1f}% (95% CI low {low:.1f}%, {len(vals)} seeds)"
    elif num_test:
        low = float(baseline) - 1.96 * test_se(baseline)
        shown = f"{name} {baseline:.1f}% (95% low {low:.1f}% from the noise of {num_test} test nodes, one run)"
    else:
        low, shown = float(baseline), f"{name} {baseline:.1f}%"
    if num_classes and not low >= 100.0 / num_classes + margin:
        return f"{shown} is not {margin:g} points above chance ({100.0 / num_classes:.1f}%)"
    mvals = [float(v) for v in mlp_values] if mlp_values is not None else []
    if len(vals) >= MIN_INTERVAL_VALUES and len(mvals) == len(vals):
        diff_mean, diff_low, _ = interval95([a - b for a, b in zip(vals, mvals)])
        if not diff_low >= margin:
            return (f"{name} minus a graph-free MLP is {diff_mean:+.1f} points (95% CI low {diff_low:+.1f}, "
                    f"{len(vals)} seeds), not {margin:g} points above it")
        return ""
    if mlp is not None and not _missing(mlp):
        if len(vals) < MIN_INTERVAL_VALUES and num_test:
            diff = float(baseline) - float(mlp)
            diff_low = diff - 1.96 * math.sqrt(test_se(baseline) ** 2 + test_se(mlp) ** 2)
            if not diff_low >= margin:
                return (f"{name} minus a graph-free MLP is {diff:+.1f} points (95% low {diff_low:+.1f} from the noise "
                        f"of {num_test} test nodes, one run), not {margin:g} points above it")
        elif not low >= float(mlp) + margin:
            return f"{shown} is not {margin:g} points above a graph-free MLP ({float(mlp):.1f}%)"
    return ""


def verdict_kind(v: str) -> str:
    """The kind of a verdict string (``"inconclusive (3 seeds)"`` -> ``"inconclusive"``)."""
    return "inconclusive" if v.startswith("inconclusive") else v


def verdict(paper: float | None, ours: float | None, tolerance: float = 0.0, higher_is_better: bool = True,
            differs: str = "", untestable: str = "", *, values=None, two_sided: bool = False,
            noise_free: bool = False, chosen_after: str = "", baseline_failed: str = "",
            log_scale: bool = False) -> str:
    """The verdict of one claim (see the module docstring for the rules).

    ``values``: our per-seed measurements (their mean is ``ours``); ``noise_free``: a single
    ``ours`` that does not depend on the seed. ``differs``: how our setting differs from the
    paper's, and ``chosen_after``: how the claim was picked after the runs; either turns a
    met claim into ``"partly"``. ``untestable``: why the claim cannot be tested here.
    ``baseline_failed``: the baseline the claim compares against did not learn (see
    :func:`sanity_floor`), so nothing is judged. ``log_scale``: the values are ratios, judged by
    the interval of their log (see :func:`interval95`)."""
    tolerance = float(tolerance)
    if tolerance < 0 or math.isnan(tolerance):
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if values is not None and len(values) and _missing(ours):
        ours = interval95(values, log=log_scale)[0]
    if untestable:
        return "not testable here"
    if baseline_failed:
        return "baseline did not learn"
    if _missing(paper):
        return "measured"
    if _missing(ours):
        return "not measured"
    n = len(values) if values is not None and len(values) else 1
    if n >= MIN_INTERVAL_VALUES:
        _, low, high = interval95(values, log=log_scale)
    elif noise_free:
        low = high = float(ours)
    else:
        return f"inconclusive ({n} seed{'s' if n > 1 else ''})"
    lo_ok = -math.inf if (not two_sided and not higher_is_better) else paper - tolerance
    hi_ok = math.inf if (not two_sided and higher_is_better) else paper + tolerance
    if high < lo_ok or low > hi_ok:
        return "not reproduced"
    if low < lo_ok or high > hi_ok:
        return f"inconclusive ({n} seeds)"
    return "partly" if (differs or chosen_after) else "reproduced"


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
    values: list | None = None  # per-seed values (for a comparison: per-seed differences); ours = their mean
    two_sided: bool = False  # "comparable to": the region is paper +- tolerance
    noise_free: bool = False  # a quantity that does not depend on the seed (a count, a size): one value suffices
    chosen_after: str = ""  # how the claim was picked after seeing the runs ("" = stated before)
    source: str = "this run"  # where the numbers come from: this run, or a stored CSV and its run's hardware
    baseline_failed: str = ""  # the compared-against baseline did not learn (numbers); no verdict is given
    log_scale: bool = False  # a ratio: geometric mean and the interval of the log ratio

    def __post_init__(self):
        if self.values is not None:
            self.values = [float(v) for v in self.values]
            if not self.values:
                raise ValueError(f"Claim {self.quantity!r}: values is empty; give the per-seed values or None")
            if _missing(self.ours):
                self.ours = interval95(self.values, log=self.log_scale)[0]

    @property
    def verdict(self) -> str:
        return verdict(self.paper, self.ours, self.tolerance, self.higher_is_better, self.differs, self.untestable,
                       values=self.values, two_sided=self.two_sided, noise_free=self.noise_free,
                       chosen_after=self.chosen_after, baseline_failed=self.baseline_failed, log_scale=self.log_scale)

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% interval of ``ours`` (None for fewer than :data:`MIN_INTERVAL_VALUES` values)."""
        if self.values is None or len(self.values) < MIN_INTERVAL_VALUES:
            return None
        return interval95(self.values, log=self.log_scale)[1:]

    def as_row(self) -> dict:
        row = asdict(self)
        row["verdict"] = self.verdict
        iv = self.interval
        row["ci_low"], row["ci_high"] = iv if iv else (None, None)
        row["n"] = len(self.values) if self.values else 1
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
    cannot be tested here; the 95% interval and the seeds; where the numbers come from."""
    parts = []
    if row.get("baseline_failed"):
        parts.append(f"baseline did not learn: {row['baseline_failed']}")
    if row.get("ci_low") is not None and not _missing(row.get("ci_low")):
        parts.append(f"95% CI [{row['ci_low']:.3g}, {row['ci_high']:.3g}], {row.get('n')} seeds")
    elif row.get("noise_free"):
        parts.append("does not depend on the seed")
    if row.get("chosen_after"):
        parts.append(f"chosen after the runs: {row['chosen_after']}")
    if row.get("source") and row.get("source") != "this run":
        parts.append(f"numbers from {row['source']}")
    if row.get("untestable"):
        parts.append(f"not testable here: {row['untestable']}")
    if row.get("differs"):
        parts.append(f"setting differs: {row['differs']}")
    if row.get("note"):
        parts.append(row["note"])
    return "; ".join(parts)
