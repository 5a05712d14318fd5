"""GAS's accuracy table on the graphs at hand, with GAS's own per-dataset settings.

    python -m msgnn_lite.bench gas --seeds 0 1 2 3 4 5 6 7 8 9 --out docs/gas_table   # ~35 min on 2 CPU cores
    python -m msgnn_lite.bench gas --datasets Cora CiteSeer --seeds 0 1 2            # a minute
    python -m msgnn_lite.bench gas --show docs/gas_table                             # the stored table

For each graph: a 2-layer GCN trained full batch and with GAS, and the graph-free MLP floor, with the
settings of GAS's reference code (:data:`msgnn_lite.gas.REFERENCE_GCN`: hidden width, dropout, METIS
parts and parts per batch, lr, weight decay, gradient clipping, 200 epochs, its feature preprocessing),
one seed per run (on Amazon and Coauthor also one random 20/30-per-class split per seed).
Validation-selected test accuracy, mean +- std and a 95% t-interval over the runs that trained
(:func:`msgnn_lite.diagnostics.add_training_status`; flagged runs are counted apart), beside the
paper's figure and the literature's full-batch GCN. ``--out`` writes ``<out>/<dataset>.csv`` after
each graph, one row per run, with the hardware and the time of writing.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from ..cli import nonnegative_int, positive_int
from ..data import FEATURE_NORMALIZATIONS, DatasetUnavailableError
from ..results import _hardware
from ..utils import atomic_write, resolve_device
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--datasets", nargs="+", default=["Cora", "CiteSeer", "CS", "Computers"],
                        help="GAS small benchmarks to run (Cora CiteSeer PubMed CS Physics Computers Photo)")
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=positive_int, default=None, help="default: the reference's 200")
    parser.add_argument("--features", choices=FEATURE_NORMALIZATIONS, default=None,
                        help="override the reference's feature preprocessing")
    parser.add_argument("--out", type=Path, default=None, help="folder for <dataset>.csv (one row per run)")
    parser.add_argument("--show", type=Path, default=None, metavar="FOLDER",
                        help="print the table of the runs stored in FOLDER instead of running anything")
    add_device_argument(parser)


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, method): the runs that trained as mean, std and 95% interval, beside the
    paper's GAS figure and the literature's full-batch GCN (:func:`msgnn_lite.gas.reference_table`)."""
    from ..gas import reference_table

    return reference_table(runs)


def show(folder: Path) -> int:
    files = sorted(Path(folder).glob("*.csv")) if Path(folder).is_dir() else []
    if not files:
        raise FileNotFoundError(f"--show: {folder} holds no <dataset>.csv; write one with --out")
    runs = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    print(f"{runs['hardware'].iloc[0]}, written {str(runs['written_utc'].max())[:10]}")
    print(table(runs).round(2).to_string())
    return 0


def run(args) -> int:
    from ..gas import REFERENCE_EPOCHS, reference_runs

    if args.show is not None:
        return show(args.show)
    dev = resolve_device(args.device)
    print(f"device {dev}, {torch.get_num_threads()} CPU threads")
    frames = []
    for name in args.datasets:
        t0 = time.perf_counter()
        try:
            runs = reference_runs(name, seeds=args.seeds, epochs=args.epochs or REFERENCE_EPOCHS,
                                  features=args.features, device=dev, progress=False)
        except DatasetUnavailableError as err:
            print(f"{name}: skipped ({err})")
            continue
        runs = runs.assign(epochs=args.epochs or REFERENCE_EPOCHS, hardware=_hardware(),
                           written_utc=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"))
        frames.append(runs)
        print(f"{name}: {len(runs)} runs in {time.perf_counter() - t0:.0f} s")
        if args.out is not None:
            print(f"  wrote {atomic_write(Path(args.out) / f'{runs.dataset.iloc[0]}.csv', runs.to_csv(index=False))}")
    if frames:
        print(table(pd.concat(frames, ignore_index=True)).round(2).to_string())
    return 0
