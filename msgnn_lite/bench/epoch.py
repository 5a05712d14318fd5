"""Seconds per full-batch training epoch with dense and with CSR (sparse) features.

    python -m msgnn_lite.bench epoch                          # CS, Computers, Cora (needs MSGNN_DATA)
    python -m msgnn_lite.bench epoch --datasets CS --epochs 20 --hidden 64

Bag-of-words features are mostly zeros (Coauthor CS: 6,805 columns, under 1% non-zero). Kept
dense, the first layer's product and its dropout touch every zero; as CSR
(:func:`msgnn_lite.data.sparse_features`, what the comparison harness's ``prepare_graph`` does
below 10% density) they cost in proportion to the non-zeros. For each graph this trains the
same 2-layer GCN (same seed, features at unit L2 norm as the harness uses them) with :func:`~msgnn_lite.train.fit`
on both layouts and prints the density, the seconds per epoch (training only, evaluation not
counted) of each, the speedup, and each first epoch's loss (close, not equal: dropout draws its
masks differently on the two layouts).
"""
from __future__ import annotations

import copy

import torch

from ..cli import positive_int
from ..data import DatasetUnavailableError, load_dataset, normalize_features
from ..models import GCN
from ..train import fit
from ..utils import resolve_device, seed_everything
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--datasets", nargs="+", default=["CS", "Computers", "Cora"],
                        help="graphs for msgnn_lite.data.load_dataset")
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs timed per layout")
    parser.add_argument("--hidden", type=positive_int, default=64)
    add_device_argument(parser)


def epoch_seconds(data, hidden: int, epochs: int, device) -> tuple[float, float]:
    """Seconds per training epoch of a seeded 2-layer GCN on ``data``, and its first epoch's loss."""
    seed_everything(0)
    model = GCN(data.num_features, hidden, int(data.num_classes), 2)
    res = fit(model, data, epochs=epochs, device=device, seed=0, measure_memory=False, progress=False, eval_every=epochs)
    return res.train_time_s / res.epochs_run, float(res.history["loss"].iloc[0])


def run(args) -> int:
    dev = resolve_device(args.device)
    print(f"device {dev}, {torch.get_num_threads()} CPU threads; {args.epochs} epochs per layout, GCN 2x{args.hidden}")
    print(f"{'graph':<10} {'features':>9} {'non-zero %':>10} {'dense s/epoch':>14} {'CSR s/epoch':>12} "
          f"{'speedup':>8}  first-epoch loss (dense, CSR)")
    for name in args.datasets:
        try:
            data = normalize_features(load_dataset(name), "auto")
        except DatasetUnavailableError as err:
            print(f"{name}: skipped ({err})")
            continue
        density = float((data.x != 0).float().mean())
        sparse = copy.copy(data)
        sparse.x = data.x.to_sparse_csr()
        dense_s, dense_loss = epoch_seconds(data, args.hidden, args.epochs, dev)
        csr_s, csr_loss = epoch_seconds(sparse, args.hidden, args.epochs, dev)
        print(f"{name:<10} {data.num_features:>9,} {100 * density:>10.2f} {dense_s:>14.4g} {csr_s:>12.4g} "
              f"{dense_s / csr_s:>7.1f}x  {dense_loss:.4f}, {csr_loss:.4f}")
    return 0
