"""The run summary and the reproduction report, rendered from the notebooks' results records.

``python -m msgnn_lite.run_notebooks`` writes both for every run:

* ``runs/<profile>/summary.md``: the notebooks of this run (status, runtime, failing cell)
  and the claims they recorded. Records left behind by another run (e.g. notebooks not in
  ``--only``) are listed apart, with their run id and date, never mixed in.
* ``runs/<profile>/report.md``: the reproduction report, one row per paper claim: the
  paper's figure, ours, the verdict and its reason, the hardware and profile, and the
  command that reproduces it; verdict counts on top.
"""
from __future__ import annotations

from collections import Counter

from .results import MIN_INTERVAL_VALUES, SEED_RULE, VERDICTS, reason, verdict_kind

__all__ = ["split_by_run", "render_summary", "render_report", "render_headlines", "HEADLINES", "main"]

# The source papers' headline claims, in course order: (paper, the claim in words, notebook number,
# the start of the claim's ``quantity`` in that notebook's records). The report opens with one row each.
HEADLINES = [
    ("Cluster-GCN (Chiang et al. 2019)", "a Cluster-GCN step needs far less memory (2.2 vs 11.2 GB on Amazon2M)", "03",
     "memory saving of a Cluster-GCN step"),
    ("Cluster-GCN", "accuracy comparable to full-batch training", "03", "Cluster-GCN - full-batch test acc"),
    ("GraphSAINT (Zeng et al. 2020)", "normalised subgraph aggregation is unbiased (Prop. 3.1)", "04",
     "|bias| of normalized aggregation"),
    ("GraphSAINT", "accuracy comparable to full-batch training", "04", "SAINT-RW (normalized) - full-batch test acc"),
    ("GAS (Fey et al. 2021)", "GCN accuracy table, Cora 82.29", "05", "GAS GCN test acc, Cora, GAS's settings"),
    ("GAS", "GCN accuracy table, CiteSeer 71.18", "05", "GAS GCN test acc, CiteSeer, GAS's settings"),
    ("GAS", "on par with full-batch training", "05", "GAS - full-batch test acc, CS, GAS's settings"),
    ("IBMB (Gasteiger et al. 2022)", "up to 130x faster inference at similar accuracy", "06", "inference speedup at similar accuracy"),
    ("IBMB", "up to 18x faster training epochs", "06", "training time per epoch: NeighborLoader / IBMB"),
    ("IBMB", "up to 17x faster to a target accuracy", "06", "time to target: fastest other method / IBMB"),
    ("Multiscale training (Gal et al. 2025)", "coarse-to-fine trains faster at equal accuracy", "07",
     "local CSBM 1M nodes: time speedup to 99% of the baseline's best val acc, subgraph L=2"),
    ("Multiscale training", "equal or better accuracy than full-graph training", "07", "Cora: best multiscale"),
    ("RevGNN (Li et al. 2021)", "activation memory flat in depth", "08", "RevGNN activation memory, 1000 vs 10 layers"),
    ("RevGNN", "a 1000-layer GNN trains", "08", "1000-layer RevGNN test accuracy"),
    ("RevGNN", "RevGNN-Deep 87.74 ROC-AUC on ogbn-proteins", "12", "RevGNN-Deep (1001 layers)"),
    ("SGC (Wu et al. 2019)", "Cora 81.0 on the public split", "09", "SGC test accuracy, Cora"),
    ("SGC", "CiteSeer 71.9 on the public split", "09", "SGC test accuracy, CiteSeer"),
    ("SIGN (Frasca et al. 2020)", "competitive with a GNN at a fraction of the cost", "12", "SIGN minus full batch, test acc, CS"),
    ("C&S (Huang et al. 2021)", "an MLP + C&S matches or beats GNNs", "09", "MLP + C&S minus GCN, Cora"),
    ("GLNN (Zhang et al. 2022)", "a distilled MLP reaches the GNN's accuracy", "10",
     "GLNN (distilled MLP), Cora test acc (production)"),
    ("GLNN", "146x-273x faster inference than the GNN", "10", "inference speedup GNN / GLNN"),
    ("Degree-Quant (Tailor et al. 2021)", "INT8 as accurate as FP32", "11", "DQ INT8 - FP32 test accuracy (Cora"),
    ("Degree-Quant", "beats plain QAT, most at INT4", "11", "DQ INT4 - plain QAT INT4 (Cora"),
    ("Degree-Quant", "4.7x faster INT8 inference", "11", "INT8 inference speedup on CPU (whole GCN"),
]


def _settle(c: dict) -> str:
    """What would settle a headline claim, from its verdict and reason (never typed per claim)."""
    kind = verdict_kind(c.get("verdict", ""))
    if kind in ("reproduced", "not reproduced"):
        return "settled here" + (f"; on the paper's own setting: {c['differs']}" if c.get("differs") else "")
    if kind == "partly":
        return "the paper's setting: " + (c.get("differs") or c.get("chosen_after") or "see the reason")
    if kind == "inconclusive":
        n = c.get("n") or 1
        if n < MIN_INTERVAL_VALUES:
            return f"at least {MIN_INTERVAL_VALUES} seeds (this figure has {n})"
        return (f"more seeds or a tighter setting: the 95% interval [{c.get('ci_low'):.3g}, {c.get('ci_high'):.3g}] of "
                f"{n} seeds straddles the tolerance's edge")
    if kind.startswith("not testable"):
        return c.get("untestable", "")
    if kind == "baseline did not learn":
        return "a baseline that learns: " + c.get("baseline_failed", "")
    if kind == "not measured":
        return "a run that trains (every run was flagged)"
    return "a figure in the paper to compare with (it states the claim in words)"


def render_headlines(claims: list[tuple[dict, dict]]) -> list[str]:
    """The headline table: one row per entry of :data:`HEADLINES` whose claim this run recorded."""
    lines = ["| paper | headline claim | paper's figure | ours | verdict | what would settle it |",
             "|---|---|---|---|---|---|"]
    for paper, words, nb, prefix in HEADLINES:
        hit = next((c for res, c in claims if res["notebook"][:2] == nb and c["quantity"].startswith(prefix)), None)
        if hit is None:
            lines.append(f"| {paper} | {_cell(words)} | - | not run | - | run notebook {nb} |")
            continue
        ours = _fmt(hit.get("ours"))
        if hit.get("ci_low") is not None and hit.get("ci_low") == hit.get("ci_low"):
            ours += f" [{hit['ci_low']:.3g}, {hit['ci_high']:.3g}], {hit.get('n')} seeds"
        unit = hit.get("unit", "")
        lines.append(f"| {paper} | {_cell(words)} ({_cell(hit['quantity'])}) | {_fmt(hit.get('paper'))} {_cell(unit)} "
                     f"| {ours} {_cell(unit)} | {hit.get('verdict', '')} | {_cell(_settle(hit))} |")
    return lines


def split_by_run(records: list[dict], run_id: str | None) -> tuple[list[dict], list[dict]]:
    """``(this run's records, older ones)``; with ``run_id=None`` every record is current."""
    if run_id is None:
        return list(records), []
    current = [r for r in records if r.get("run_id") == run_id]
    return current, [r for r in records if r.get("run_id") != run_id]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if v != v else f"{v:.4g}"
    return str(v)


def _cell(text) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def _claim_rows(records: list[dict], with_run: bool = False) -> list[str]:
    head = "| notebook | quantity | paper | ours | unit | verdict | note |"
    sep = "|---|---|---|---|---|---|---|"
    if with_run:
        head, sep = head + " run | written (UTC) |", sep + "---|---|"
    lines = [head, sep]
    for res in records:
        for c in res.get("claims", []):
            line = (f"| {res['notebook']} | {_cell(c['quantity'])} | {_fmt(c.get('paper'))} | {_fmt(c.get('ours'))} "
                    f"| {_cell(c.get('unit', ''))} | {c.get('verdict', '')} | {_cell(reason(c))} |")
            if with_run:
                line += f" {res.get('run_id', 'unknown')} | {res.get('written_utc', 'unknown')} |"
            lines.append(line)
    return lines


def render_summary(profile: str, status: list[tuple], results: list[dict], run_id: str | None = None) -> str:
    """The summary as Markdown: one row per notebook run, then this run's paper-vs-ours
    claims, then (marked as such) any records of other runs found in the results folder."""
    current, older = split_by_run(results, run_id)
    title = f"# msgnn-lite results, profile `{profile}`"
    lines = [title, ""] + ([f"Run `{run_id}`.", ""] if run_id else [])
    lines += ["## Notebooks", "", "| notebook | status | runtime (s) | failing cell |", "|---|---|---|---|"]
    for name, state, secs, msg in status:
        lines.append(f"| {name} | {state} | {secs:.0f} | {_cell(msg)} |")
    lines += ["", "## Paper vs ours", ""]
    lines += _claim_rows(current) if current else ["No claims were recorded by this run."]
    if older:
        lines += ["", "## Older records (not from this run)", "",
                  "Results files left by earlier runs of notebooks this run did not execute; "
                  "they may not match the current code.", ""]
        lines += _claim_rows(older, with_run=True)
    return "\n".join(lines) + "\n"


def _command(res: dict, claim: dict, profile: str) -> str:
    if claim.get("command"):
        return claim["command"]
    nb = res["notebook"][:2]
    return f"make reproduce ONLY={nb}" + ("" if profile == "default" else f" PROFILE={profile}")


def render_report(profile: str, results: list[dict], run_id: str | None = None, status: list[tuple] | None = None
                  ) -> str:
    """The reproduction report as Markdown (this run's records only; older ones are named
    but not judged)."""
    current, older = split_by_run(results, run_id)
    claims = [(res, c) for res in current for c in res.get("claims", [])]
    counts = Counter(verdict_kind(c.get("verdict", "")) for _, c in claims)
    hardware = sorted({res.get("hardware", "unknown") for res in current})
    lines = [f"# Reproduction report, profile `{profile}`", ""]
    runs = sorted({res.get("run_id", "unknown") for res in current})
    if run_id:
        lines.append(f"Run `{run_id}`; hardware: {', '.join(hardware) or 'unknown'}.")
    else:
        dates = sorted(res["written_utc"] for res in current if res.get("written_utc"))
        lines.append(f"Assembled from {len(runs)} run(s) of the notebooks ({', '.join(f'`{r}`' for r in runs)}), "
                     f"written {dates[0][:10] if dates else '?'} to {dates[-1][:10] if dates else '?'}; "
                     f"hardware: {', '.join(hardware) or 'unknown'}.")
    lines += ["", "## The papers' headline claims", "",
              "One row per headline claim of each source paper, with the setting it was tested on and what would "
              "settle it where this run does not. Every row is one of the claims listed in full below.", ""]
    lines += render_headlines(claims)
    lines += ["", f"Seeds: where a notebook adds seeds until its claims decide, {SEED_RULE}.", "",
              "## Every claim", ""]
    lines += ["Verdicts: **reproduced** = the 95% interval of our figure (over seeds) lies within the stated "
              "tolerance of the paper's, on the paper's setting (or an equivalent one); **partly** = it meets it on a different dataset, metric, "
              "budget or hardware, or it was picked after the runs (the reason says which); **inconclusive (n "
              "seeds)** = the 95% interval of our mean straddles the tolerance's edge, or a noisy quantity was "
              "measured fewer than three times (no interval is drawn from two points); ratios (speed-ups, memory "
              "savings) are judged by the interval of their log, around their geometric mean; **not reproduced** = the whole interval misses it (the reason says whether the "
              "setting differed); **baseline did not learn** = the method it is compared with did not beat a "
              "graph-free MLP and chance, so nothing is judged; **not testable here** = the claim needs data or hardware that "
              "is not at hand, or an implementation that could show the effect; **measured** = the paper gives no number to compare with; **not measured** = no run of the "
              "method trained (every seed flagged by the \"did it train?\" check of msgnn_lite.diagnostics), so there "
              "is no figure to judge.", ""]
    lines.append("| verdict | claims |")
    lines.append("|---|---|")
    for v in VERDICTS:
        if counts.get(v):
            lines.append(f"| {v} | {counts[v]} |")
    lines += ["", "| notebook | claim | paper | ours | unit | verdict | reason | reproduce with |",
              "|---|---|---|---|---|---|---|---|"]
    for res, c in claims:
        lines.append(f"| {res['notebook']} | {_cell(c['quantity'])} | {_fmt(c.get('paper'))} | {_fmt(c.get('ours'))} "
                     f"| {_cell(c.get('unit', ''))} | {c.get('verdict', '')} | {_cell(reason(c))} "
                     f"| `{_cell(_command(res, c, profile))}` |")
    failed = [s for s in (status or []) if s[1] != "ok"]
    if failed:
        lines += ["", "**Notebooks that failed in this run** (their claims are missing above): "
                  + ", ".join(f"{name} ({_cell(msg)})" for name, _, _, msg in failed) + "."]
    if older:
        lines += ["", "Not judged here (records of other runs): "
                  + ", ".join(f"{r['notebook']} (run {r.get('run_id', 'unknown')})" for r in older) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m msgnn_lite.report [results folder] [--out report.md]``: render the report
    from every record in a results folder (each row names its run when they differ)."""
    import argparse
    from pathlib import Path

    from .results import load_results, results_dir
    from .utils import atomic_write

    parser = argparse.ArgumentParser(prog="python -m msgnn_lite.report", description=main.__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=None,
                        help="folder of results files (default: runs/<profile>/results)")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--out", type=Path, default=None, help="write the report here (atomically) instead of stdout")
    args = parser.parse_args(argv)
    folder = args.results or results_dir(args.profile)
    records = load_results(folder)
    if not records:
        parser.error(f"no results files in {folder}: run `make reproduce` first")
    text = render_report(args.profile, records)
    if args.out:
        atomic_write(args.out, text)
        print(f"report written to {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    from .cli import run_main

    raise SystemExit(run_main(main, "python -m msgnn_lite.report"))
