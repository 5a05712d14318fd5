"""Every method of the package side by side, on the same graphs with the same budget.

    python -m msgnn_lite.bench compare                                  # Cora, Computers, CS (needs MSGNN_DATA)
    python -m msgnn_lite.bench compare --datasets csbm --csbm-nodes 1000000 --epochs 10
    python -m msgnn_lite.bench compare --datasets Cora --seeds 0 1 2 --methods "full batch" SGC GAS
    python -m msgnn_lite.bench compare --out docs/comparison     # also write <out>/<dataset>-<model>-s<seeds>.csv
    python -m msgnn_lite.bench compare --show docs/comparison/Computers-gcn-s0-1-2.csv   # README's tables
    python -m msgnn_lite.bench compare --merge A.csv B.csv --out docs/comparison   # one graph's runs, more seeds

For each graph: validation-selected test accuracy (mean and spread over seeds), seconds per
epoch, preprocessing, time to 97% of full batch's best validation accuracy (training alone and
with preprocessing), cold inference over every node, and the peak memory of a training epoch,
under the rule of :mod:`msgnn_lite.compare_all`. Prints one table per graph sorted by
``--sort`` and the Pareto fronts (accuracy vs time to target, accuracy vs memory).
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import pandas as pd
import torch

from ..cli import fraction, nonnegative_int, positive_float, positive_int
from ..compare_all import (BUDGETS, METHODS, Budget, budget_rows, check_and_time, compare_all, gap_to_full_batch,
                           pareto_front, summarize)
from ..data import FEATURE_NORMALIZATIONS, DatasetUnavailableError, load_dataset, make_csbm
from ..reorder import ORDERS
from ..results import _hardware
from ..utils import atomic_write, resolve_device, seed_everything
from ._common import add_device_argument

COLUMNS = ["family", "lr", "test_acc", "test_acc_std", "test_acc_min", "test_acc_max", "epoch_time_s", "preprocess_s", "time_to_target_s",
           "total_to_target_s", "inference_s", "peak_memory_mb", "seeds", "flagged"]
RUN_COLUMNS = ["method", "budget", "seed", "lr", "val_acc", "test_acc", "best_epoch", "epochs_run", "dead_units",
               "loss_rise", "grad_norm_max", "status", "cause"]


def add_arguments(parser) -> None:
    parser.add_argument("--datasets", nargs="+", default=["Cora", "Computers", "CS"],
                        help="graphs: names for msgnn_lite.data.load_dataset, or 'csbm' (synthetic, --csbm-nodes)")
    parser.add_argument("--csbm-nodes", type=positive_int, default=1_000_000)
    parser.add_argument("--methods", nargs="+", default=None, choices=list(METHODS), metavar="METHOD",
                        help=f"subset of: {', '.join(METHODS)} (default: all)")
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="epochs per method (default: 30 on Cora/CiteSeer/PubMed, 100 on Computers/CS, 10 on csbm)")
    parser.add_argument("--model", default="gcn", choices=("gcn", "sage"), help="model family of every method")
    parser.add_argument("--hidden", type=positive_int, default=64)
    parser.add_argument("--num-batches", type=positive_int, default=8,
                        help="steps per epoch of every mini-batch method under the common budget")
    parser.add_argument("--budgets", nargs="+", default=["recipe", "common"], choices=list(BUDGETS),
                        help="recipe: each paper's batch construction; common: --num-batches steps for everybody")
    parser.add_argument("--lrs", type=positive_float, nargs="+", default=[0.01, 0.05],
                        help="learning-rate grid every method gets; the best mean validation accuracy is kept")
    parser.add_argument("--features", default="auto", choices=("auto",) + FEATURE_NORMALIZATIONS,
                        help="feature preprocessing of every method (auto: the dataset's documented one, "
                             "msgnn_lite.data.feature_normalization_for)")
    parser.add_argument("--grad-norm", type=positive_float, default=None,
                        help="clip every optimizer step's gradients to this total norm (default: no clipping)")
    parser.add_argument("--target", type=fraction, default=0.97, help="fraction of full batch's best val acc")
    parser.add_argument("--reorder", default=None, choices=ORDERS,
                        help="renumber each graph once for locality before every method (msgnn_lite.reorder)")
    parser.add_argument("--sort", default="test_acc", choices=COLUMNS[1:-1], help="column to sort the table by")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for <dataset>-<model>-s<seeds>.csv, one row per (method, seed) (written atomically)")
    parser.add_argument("--show", type=Path, nargs="+", default=None, metavar="CSV",
                        help="print the Markdown tables (both budgets, gap to full batch with its 95%% interval) of "
                             "runs stored by --out, instead of running anything")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="CSV",
                        help="merge runs of one graph stored by --out with other seeds (one learning rate each) into "
                             "<out>/<dataset>-<model>-s<all seeds>.csv: the training check, the target and the times "
                             "to it are recomputed over all seeds (--target), nothing is trained")
    add_device_argument(parser)


DEFAULT_EPOCHS = {"Cora": 30, "CiteSeer": 30, "PubMed": 30, "csbm": 10}  # others (Computers, CS): 100


def load_graph(name: str, csbm_nodes: int, seed: int = 0):
    """A named benchmark graph, or the CSBM graph for ``name == "csbm"``."""
    if name.lower() == "csbm":
        data = make_csbm(csbm_nodes, 10.0, 10, 32, 0.8, seed=seed, feature_signal=0.5)
        data.name = f"csbm-{csbm_nodes // 1000}k"
        return data
    return load_dataset(name)


def table_for(runs: pd.DataFrame, sort: str = "test_acc") -> pd.DataFrame:
    """The per-method table of :func:`summarize`, sorted (accuracy high first, costs low first)."""
    table = summarize(runs)[COLUMNS]
    return table.sort_values(sort, ascending=sort != "test_acc" and sort != "seeds", na_position="last")


def markdown_tables(runs: pd.DataFrame, tolerance: float = 2.0) -> str:
    """Both budgets' tables of stored runs as Markdown: test accuracy (mean ± std over seeds),
    the gap to full batch on the same seed with its 95% interval, time to target with
    preprocessing and peak training memory; the verdict of "comparable to full batch"
    (within ``tolerance`` points below) for the recipe rows."""
    from ..results import Claim

    out = []
    for bud in [b for b in ("recipe", "common") if b in set(runs["budget"]) or b == "recipe"]:
        rows = budget_rows(runs, bud)
        t = table_for(rows)
        gaps = gap_to_full_batch(rows)
        out += [f"**{bud} budget**", "",
                "| method | lr | test acc (%) [min, max] | minus full batch (95% CI) | to target (s) | train memory (MB) "
                "| flagged runs (left out) | verdict |",
                "|---|---|---|---|---|---|---|---|"]
        for m, r in t.iterrows():
            gap, verdict = "", ""
            if m in gaps.index:
                g = gaps.loc[m]
                ci = f" [{g.ci_low:+.1f}, {g.ci_high:+.1f}]" if g.ci_low == g.ci_low else ""  # none from < 3 seeds
                gap = f"{g.gap:+.1f}{ci}"
                if m != "MLP":
                    verdict = Claim(m, 0.0, None, tolerance=tolerance, values=g.diffs,
                                    differs="not the paper's own dataset and tuning").verdict
            ttt = "missed" if pd.isna(r.total_to_target_s) else f"{r.total_to_target_s:.2f}"
            acc = ("no run trained" if r.seeds == 0 else f"{r.test_acc:.1f} (1 seed)" if r.seeds == 1 else
                   f"{r.test_acc:.1f} ± {r.test_acc_std:.1f} [{r.test_acc_min:.1f}, {r.test_acc_max:.1f}]")
            mem = "" if pd.isna(r.peak_memory_mb) else f"{r.peak_memory_mb:.0f}"
            out.append(f"| {m} | {r.lr:g} | {acc} | {gap} | {ttt if r.seeds else ''} | {mem} | {r.flagged} | {verdict} |")
        out.append("")
    return "\n".join(out)


def show(paths) -> int:
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--show: {path} is not a file; expected a CSV written by --out")
        runs = pd.read_csv(path)
        missing = {"method", "budget", "seed", "test_acc", "lr"} - set(runs.columns)
        if missing:
            raise ValueError(f"--show: {path} lacks the columns {sorted(missing)}; re-run the bench with --out")
        first = runs.iloc[0]
        grid_path = Path(path).with_name(Path(path).stem + "-grid.csv")
        grid = sorted(pd.read_csv(grid_path)["lr"].unique().tolist()) if grid_path.is_file() else "unknown"
        print(f"### {first['dataset']} ({first['epochs']} epochs, seeds {sorted(runs['seed'].unique().tolist())}, "
              f"learning-rate grid {grid}, {first.get('hardware', first.get('device'))}, "
              f"{str(first.get('written_utc', ''))[:10]})\n")
        print(markdown_tables(runs))
    return 0


MERGE_KEYS = ("dataset", "model", "epochs", "features", "lr")  # what every merged file must share


def merge(paths, out: Path, target_fraction: float = 0.97, csbm_nodes: int = 1_000_000) -> Path:
    """Merge stored runs of one graph (``--out`` files with disjoint seeds per method and budget)
    into one file set under ``out``: runs, grid and curves, with the training check, the target
    and the times to it recomputed over every seed (:func:`msgnn_lite.compare_all.check_and_time`).
    Each row keeps the ``hardware`` and ``written_utc`` of the run that wrote it."""
    if out is None:
        raise ValueError("--merge needs --out, the folder of the merged files")
    runs, grids, curves = [], [], []
    for path in map(Path, paths):
        companions = [path.with_name(path.stem + suffix) for suffix in ("-grid.csv", "-curves.csv")]
        for f in (path, *companions):
            if not f.is_file():
                raise FileNotFoundError(f"--merge: {f} is not a file; expected the three CSVs one --out run writes")
        runs.append(pd.read_csv(path))
        grids.append(pd.read_csv(companions[0]))
        curves.append(pd.read_csv(companions[1]))
        missing = {"method", "budget", "seed", "val_acc", "best_is_last", "preprocess_s", *MERGE_KEYS} - set(runs[-1].columns)
        if missing:
            raise ValueError(f"--merge: {path} lacks the columns {sorted(missing)}; re-run the bench with --out")
        if grids[-1]["lr"].nunique() != 1:
            raise ValueError(f"--merge: {path} was run with the learning-rate grid {sorted(grids[-1]['lr'].unique())}; "
                             "merging needs one rate per file (the rate kept depends on every seed: re-run together)")
    for key in MERGE_KEYS:
        values = sorted({str(v) for r in runs for v in r[key].unique()})
        if len(values) != 1:
            raise ValueError(f"--merge: the files differ in {key} ({values}); merge runs of one setting only")
    allruns = pd.concat(runs, ignore_index=True)
    dup = allruns.duplicated(["method", "budget", "seed"])
    if dup.any():
        raise ValueError(f"--merge: (method, budget, seed) repeated across the files: "
                         f"{allruns.loc[dup, ['method', 'budget', 'seed']].values.tolist()[:3]}; give disjoint seeds")
    allcurves = pd.concat(curves, ignore_index=True)
    by_run = {k: c.drop(columns=["method", "budget", "seed"]) for k, c in allcurves.groupby(["method", "budget", "seed"])}
    name = str(allruns["dataset"].iloc[0])
    if name.startswith("csbm-"):
        if name != f"csbm-{csbm_nodes // 1000}k":
            raise ValueError(f"--merge: the runs are on {name}; give its size with --csbm-nodes (got {csbm_nodes:,})")
        name = "csbm"
    data = load_graph(name, csbm_nodes)
    name = getattr(data, "name", name)
    merged = check_and_time(allruns.drop(columns=["target_val_acc"]), by_run, data, target_fraction)
    merged["target_val_acc"] = merged.attrs["target_val_acc"]
    seeds = "-".join(str(s) for s in sorted(allruns["seed"].unique()))
    stem = f"{name}-{allruns['model'].iloc[0]}-s{seeds}"
    path = atomic_write(Path(out) / f"{stem}.csv", merged.to_csv(index=False))
    atomic_write(Path(out) / f"{stem}-grid.csv", pd.concat(grids, ignore_index=True).to_csv(index=False))
    atomic_write(Path(out) / f"{stem}-curves.csv", allcurves.to_csv(index=False))
    print(f"merged {len(paths)} runs of {name} ({len(merged)} runs, seeds {seeds.replace('-', ' ')}; target "
          f"{merged.attrs['target_val_acc']:.1f}% validation accuracy) into {path}")
    return path


def run(args) -> int:
    if args.show:
        return show(args.show)
    if args.merge:
        merge(args.merge, args.out, args.target, args.csbm_nodes)
        return 0
    dev = resolve_device(args.device)
    print(f"device {dev}, {torch.get_num_threads()} CPU threads, {platform.machine()} {platform.system()}")
    for name in args.datasets:
        try:
            data = load_graph(name, args.csbm_nodes)
        except DatasetUnavailableError as err:
            print(f"\n{name}: skipped ({err})")
            continue
        epochs = args.epochs or DEFAULT_EPOCHS.get(name if name.lower() != "csbm" else "csbm", 100)
        budget = Budget(epochs=epochs, model=args.model, hidden=args.hidden, num_batches=args.num_batches,
                        features=args.features, grad_norm=args.grad_norm)
        print(f"\n## {getattr(data, 'name', name)}: {data.num_nodes:,} nodes, {data.num_edges:,} edges; "
              f"{args.model.upper()}, {epochs} epochs, {args.num_batches} steps per epoch, seeds {args.seeds}")
        seed_everything(args.seeds[0])
        t0 = time.perf_counter()
        runs, curves = compare_all(data, args.methods, budget=budget, seeds=tuple(args.seeds), target_fraction=args.target,
                              device=dev, reorder=args.reorder, budgets=args.budgets, lrs=args.lrs)
        print(f"features: {runs['features'].iloc[0]}; gradient clipping: {args.grad_norm or 'none'}; "
              f"target: {runs.attrs['target_val_acc']:.1f}% validation accuracy "
              f"({args.target:.0%} of full batch's); learning rates {args.lrs}; {time.perf_counter() - t0:.0f} s in all")
        for bud in args.budgets:
            table = table_for(budget_rows(runs, bud), args.sort)
            print(f"\n### budget: {bud}")
            with pd.option_context("display.width", 200, "display.max_columns", 20):
                print(table.round(3).to_string())
            for cost in ("total_to_target_s", "peak_memory_mb"):
                print(f"Pareto front (test acc vs {cost}): {', '.join(pareto_front(table, cost))}")
        print("\n### every run: did it train? (msgnn_lite.diagnostics)")
        with pd.option_context("display.width", 220, "display.max_columns", 20, "display.max_colwidth", 60):
            print(runs[RUN_COLUMNS].round(3).to_string(index=False))
        if args.out is not None:
            meta = dict(dataset=getattr(data, "name", name), model=args.model, epochs=epochs, device=str(dev),
                        hardware=_hardware(), target_val_acc=runs.attrs["target_val_acc"],
                        written_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            seeds = "-".join(str(s) for s in args.seeds)
            stem = (f"{getattr(data, 'name', name)}-{args.model}-s{seeds}" + (f"-{args.reorder}" if args.reorder else "")
                    + (f"-{args.features}" if args.features != "auto" else "")
                    + (f"-clip{args.grad_norm:g}" if args.grad_norm is not None else ""))
            grid = pd.DataFrame(runs.attrs["grid"]).assign(**meta)
            curve_rows = pd.concat([c.assign(method=m, budget=b, seed=s) for (m, b, s), c in curves.items()],
                                   ignore_index=True)
            path = atomic_write(Path(args.out) / f"{stem}.csv", runs.assign(**meta).to_csv(index=False))
            atomic_write(Path(args.out) / f"{stem}-grid.csv", grid.to_csv(index=False))
            atomic_write(Path(args.out) / f"{stem}-curves.csv", curve_rows.to_csv(index=False))
            print(f"runs written to {path} (the whole learning-rate grid: {stem}-grid.csv; "
                  f"the selected runs' validation curves: {stem}-curves.csv)")
    return 0
