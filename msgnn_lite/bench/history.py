"""Historical embeddings: GAS vs full batch vs Cluster-GCN accuracy, step memory vs graph size and
depth, and VR-GCN's gradient error with and without the control variate.

    python -m msgnn_lite.bench history                         # default profile, ~3 min on 2 CPU cores
    python -m msgnn_lite.bench history --seeds 0 1 2 3 4 --computers-seeds 3 --epochs 200
    python -m msgnn_lite.bench history --skip-accuracy --sizes 100000 1000000 3000000 --device cuda

Accuracy: 2-layer GCN (hidden 16; Computers: hidden 64, raw features, no weight decay), METIS
into 40 parts, batches of 10 parts (GAS's small-benchmark setting), validation-selected test
accuracy, mean +- std over seeds. Memory: one training step (CPU: saved tensors + parameters +
gradients + optimizer state; GPU: CUDA peak) on CSBM graphs, full batch vs one GAS batch of
--batch-nodes in-batch nodes; the histories' bytes are printed apart. Each method is measured
alone (on a GPU the previous measurement's tensors are freed first): the GAS figure holds the
model, its optimizer state and the batch + halo, while the graph and histories stay on the host.
Needs the data directory (MSGNN_DATA) for Cora, CiteSeer and Amazon Computers.
"""
from __future__ import annotations

import time

import pandas as pd
import torch

from ..cli import nonnegative_int, positive_int
from ..utils import resolve_device
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2], help="seeds for Cora and CiteSeer")
    parser.add_argument("--computers-seeds", type=nonnegative_int, default=1, help="seeds for Amazon Computers (slow on a CPU)")
    parser.add_argument("--epochs", type=positive_int, default=100, help="epochs for Cora / CiteSeer")
    parser.add_argument("--computers-epochs", type=positive_int, default=50)
    parser.add_argument("--sizes", type=positive_int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000],
                        help="CSBM node counts for the memory study")
    parser.add_argument("--depths", type=positive_int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--depth-nodes", type=positive_int, default=100_000)
    parser.add_argument("--batch-nodes", type=positive_int, default=1024, help="in-batch nodes of the GAS batch")
    parser.add_argument("--fanouts", type=positive_int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--skip-accuracy", action="store_true")
    add_device_argument(parser)


def _accuracy(args, dev) -> pd.DataFrame:
    import torch_geometric.transforms as T

    from .. import gas
    from ..data import load_dataset, sparse_features

    frames = []
    for name in ("Cora", "CiteSeer", "Computers"):
        t0 = time.perf_counter()
        if name == "Computers":
            data = load_dataset(name, split_seed=args.seed)
            df = gas.accuracy_runs(data, hidden_channels=64, weight_decay=0.0, epochs=args.computers_epochs,
                                   seeds=tuple(range(args.seed, args.seed + args.computers_seeds)), device=dev,
                                   progress=False)
        else:
            data = sparse_features(T.NormalizeFeatures()(load_dataset(name)))
            df = gas.accuracy_runs(data, epochs=args.epochs, seeds=tuple(args.seeds), device=dev, progress=False)
        df["dataset"] = name
        frames.append(df)
        print(f"  {name}: {time.perf_counter() - t0:.0f} s")
    return pd.concat(frames)


def run(args) -> int:
    from .. import gas, vrgcn

    dev = resolve_device(args.device)
    print(f"device: {dev}, {torch.get_num_threads()} CPU threads")
    t_start = time.perf_counter()
    if not args.skip_accuracy:
        print("accuracy (validation-selected test accuracy, %):")
        acc = _accuracy(args, dev)
        table = acc.groupby(["dataset", "method"], sort=False).test_acc.agg(["mean", "std", "count"])
        print(table.round(2).to_string())

    t0 = time.perf_counter()
    mem = gas.memory_study(sizes=args.sizes, depths=args.depths, depth_nodes=args.depth_nodes,
                           batch_nodes=args.batch_nodes, seed=args.seed, device=dev, progress=False)
    print(f"\nstep memory (MB; {'CUDA peak' if dev.type == 'cuda' else 'saved tensors + params + grads + Adam'}), "
          f"GAS batch of {args.batch_nodes} in-batch nodes + halo ({time.perf_counter() - t0:.0f} s):")
    wide = mem.pivot_table(index=["study", "nodes", "layers"], columns="method",
                           values=["step_mb", "history_mb", "batch_nodes"], sort=False)
    out = pd.DataFrame({"full batch MB": wide[("step_mb", "full batch")], "GAS MB": wide[("step_mb", "GAS")],
                        "GAS batch+halo nodes": wide[("batch_nodes", "GAS")].astype(int),
                        "history MB (CPU)": wide[("history_mb", "GAS")]})
    out["full / GAS"] = out["full batch MB"] / out["GAS MB"]
    print(out.round(1).to_string())
    size = mem[(mem.study == "size") & (mem.method == "GAS")].set_index("nodes")
    if len(size) > 1:  # GAS's promise: the same batch costs the same memory whatever the graph's size
        first = size.iloc[0]
        print(f"GAS step vs the {size.index[0]:,}-node graph (each method measured alone; goal on a GPU: "
              f"within 1.3x from 100k to 1M nodes): " +
              ", ".join(f"{n:,} nodes {r.step_mb / first.step_mb:.2f}x memory for "
                        f"{r.batch_nodes / first.batch_nodes:.2f}x batch+halo nodes" for n, r in size.iterrows()))

    import torch_geometric.transforms as T

    from ..data import load_dataset, sparse_features

    try:
        cora = sparse_features(T.NormalizeFeatures()(load_dataset("Cora")))
    except FileNotFoundError as err:
        print(f"\nVR-GCN study skipped: {err}")
        return 0
    t0 = time.perf_counter()
    grad = vrgcn.gradient_study(cora, fanouts=tuple(args.fanouts), seed=args.seed, device=dev)
    print(f"\nVR-GCN: relative error of the stochastic gradient vs the exact one, Cora, 2-layer GCN, "
          f"histories 3 steps stale, 20 samples ({time.perf_counter() - t0:.0f} s):")
    print(grad.pivot(index="fanout", columns="estimator", values="rel_error").round(3).to_string())
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0
