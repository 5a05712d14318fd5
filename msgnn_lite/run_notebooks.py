"""The main job: execute every notebook in order with papermill and gather the results.

    python -m msgnn_lite.run_notebooks [--profile default|full|smoke] [--only 01 03] [--output runs/] [--device cuda]
    python -m msgnn_lite.run_notebooks --store          # refresh the stored outputs in notebooks/

Each notebook runs with ``profile`` (and ``device``, when ``--device`` is given) injected as
parameters, its executed copy goes to
``<output>/<profile>/<name>.ipynb``, and the results file it writes (see
:mod:`msgnn_lite.results`, tagged with this run's id) is gathered into
``<output>/<profile>/summary.md`` and the reproduction report ``<output>/<profile>/report.md``
(see :mod:`msgnn_lite.report`). A failing notebook is reported with its name and failing
cell; the others still run, and the exit code is non-zero. A complete ``--store`` run in which
every notebook succeeded also rewrites the committed ``docs/reproduction_report.md``, so the
stored notebooks (notebook 12 embeds the report) and the committed report come from one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import cli
from .cli import positive_int
from .notebook import PROFILES
from .report import render_report, render_summary
from .results import load_results
from .utils import atomic_path, atomic_write, repo_root, resolve_device

__all__ = ["discover", "run", "main", "render_summary", "render_report", "KERNEL_ARGUMENTS"]

# ipykernel logs a transport warning at every kernel start ("Kernel is running over TCP
# without encryption"); the kernel is local and private to this run, so its own log is
# kept to errors. Warnings raised by notebook code still appear in the cells' outputs.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]

COMMITTED_REPORT = Path("docs/reproduction_report.md")
"""The committed reproduction report: a complete, clean ``--store`` run rewrites it."""


def discover(notebooks_dir: Path, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order, optionally only some numbers."""
    found = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {o.zfill(2) for o in only}
        unknown = wanted - {p.name[:2] for p in found}
        if unknown:
            raise ValueError(f"--only: no notebook numbered {', '.join(sorted(unknown))} in {notebooks_dir.name}/")
        found = [p for p in found if p.name[:2] in wanted]
    return found


def _failing_cell(err) -> str:
    exec_count = getattr(err, "exec_count", None)
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    where = f"cell [{exec_count}]" if exec_count is not None else "a cell"
    return f"{where}: {ename}: {str(evalue).splitlines()[0] if evalue else ''}"


def _clean_metadata(path: Path) -> None:
    """Drop papermill's per-run metadata (paths, timestamps) and any saved widget state (a
    progress bar's, megabytes of it, which a static page cannot show) from a stored notebook."""
    nb = json.loads(path.read_text())
    nb.get("metadata", {}).pop("papermill", None)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    atomic_write(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def run(profile: str = "default", only: list[str] | None = None, output: Path | None = None,
        store: bool = False, timeout: int | None = None, device: str | None = None) -> int:
    """Execute the notebooks; return the number that failed. ``device`` (e.g. ``"cuda"``) is
    passed to every notebook's ``device`` parameter; ``None`` keeps each notebook's ``"auto"``."""
    root = repo_root()
    nb_dir = root / "notebooks"
    notebooks = discover(nb_dir, only)  # checked before anything is written
    if device is not None:
        resolve_device(device)  # a clear error now (e.g. cuda on a machine without it), not in every notebook
    out_dir = (output or root / "runs") / profile
    results = out_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    for stale in results.glob("*.json"):
        if not only or stale.name[:2] in {o.zfill(2) for o in only}:
            stale.unlink()
    run_id = f"{profile}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    saved_env = {k: os.environ.get(k) for k in ("MSGNN_RESULTS_DIR", "MSGNN_RUN_ID", "MSGNN_DATA", "MPLBACKEND",
                                                "MSGNN_PROGRESS")}
    os.environ["MSGNN_RESULTS_DIR"] = str(results)
    os.environ["MSGNN_RUN_ID"] = run_id
    if os.environ.get("MSGNN_DATA"):  # kernels run in notebooks/: make a relative path absolute
        os.environ["MSGNN_DATA"] = str(Path(os.environ["MSGNN_DATA"]).expanduser().resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")
    if store:  # stored outputs hold results, not progress-bar widgets (a static page shows them stuck at 0%)
        os.environ["MSGNN_PROGRESS"] = "0"
    try:
        status = _execute(notebooks, out_dir, nb_dir, profile, store, timeout, device)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    records = load_results(results, on_error="warn")  # a damaged file must not hide the others
    summary = render_summary(profile, status, records, run_id)
    atomic_write(out_dir / "summary.md", summary)
    report = render_report(profile, records, run_id, status)
    atomic_write(out_dir / "report.md", report)
    print(summary)
    for name in ("summary.md", "report.md"):
        try:
            shown = (out_dir / name).resolve().relative_to(root)
        except ValueError:
            shown = out_dir / name
        print(f"{name[:-3]} written to {shown}")
    failed = sum(1 for s in status if s[1] != "ok")
    if store and not only and not failed:
        # a complete, clean refresh of the stored notebooks: the committed report comes from the same run, so it
        # holds the rows notebook 12 embeds (tests/test_report_copy.py)
        atomic_write(root / COMMITTED_REPORT, report)
        print(f"report also written to {COMMITTED_REPORT} (a complete --store run)")
    return failed


def _execute(notebooks: list[Path], out_dir: Path, nb_dir: Path, profile: str, store: bool,
             timeout: int | None, device: str | None = None) -> list[tuple]:
    """Run each notebook with papermill; return ``(name, "ok"|"FAILED", seconds, failing cell)`` rows."""
    import papermill as pm
    from tqdm.auto import tqdm

    status = []
    bar = tqdm(notebooks, desc=f"notebooks ({profile})", unit="nb")
    for nb in bar:
        bar.set_postfix_str(nb.name)
        target = nb if store else out_dir / nb.name
        params = {} if store else {"profile": profile}
        if device is not None:
            params["device"] = device
        t0 = time.perf_counter()
        try:
            with atomic_path(target) as tmp:
                pm.execute_notebook(str(nb), str(tmp), parameters=params, cwd=str(nb_dir), kernel_name="python3",
                                    progress_bar=False, log_output=False, execution_timeout=timeout,
                                    extra_arguments=KERNEL_ARGUMENTS)
            if store:
                _clean_metadata(target)
            status.append((nb.stem, "ok", time.perf_counter() - t0, ""))
        except Exception as err:  # noqa: BLE001 - report and go on with the other notebooks
            msg = _failing_cell(err)
            status.append((nb.stem, "FAILED", time.perf_counter() - t0, msg))
            tqdm.write(f"FAILED {nb.name}: {msg}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m msgnn_lite.run_notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="default",
                        help="smoke: every code path at toy sizes (tests only; its numbers mean nothing)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers to run, e.g. --only 00 01")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: runs/)")
    parser.add_argument("--store", action="store_true",
                        help="execute in place with the default profile, refreshing the stored outputs")
    parser.add_argument("--timeout", type=positive_int, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--device", default=None, metavar="DEVICE", type=cli.device,
                        help="device for every notebook: auto, cpu, cuda, cuda:1, mps (default: each notebook's 'auto')")
    args = parser.parse_args(argv)
    if args.store and args.profile != "default":
        parser.error("--store keeps default-profile outputs only; drop --profile")
    if args.store and args.device not in (None, "cpu"):
        parser.error("--store keeps the stored outputs of CPU runs; drop --device (or use --device cpu)")
    failed = run(args.profile, args.only, args.output, args.store, args.timeout, args.device)
    return 1 if failed else 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main, "python -m msgnn_lite.run_notebooks"))
