"""IBMB: push-PPR throughput, inference and training against the other mini-batch methods.

    python -m msgnn_lite.bench ibmb                       # CSBM 500k nodes + Amazon Computers
    python -m msgnn_lite.bench ibmb --nodes 2000000 --device cuda

1. push-PPR (numba) from the training nodes of a CSBM graph: output nodes per second;
2. inference for a set of query nodes with one trained GCN: full-neighbour layer-wise,
   full-batch, neighbour-sampled and IBMB (precomputed batches; preprocessing separate);
3. training on Amazon Computers (50/25/25 split; needs MSGNN_DATA, else a 50k-node CSBM):
   seconds per epoch and training time to a common validation target for full batch,
   NeighborLoader, Cluster-GCN, GraphSAINT-RW and IBMB, all with the same GCN, the same
   number of steps per epoch and the same evaluation schedule (not timed).
"""
from __future__ import annotations

import time

import torch

from ..cli import fraction, positive_float, positive_int
from ..compare_all import compare_inference, compare_training, time_to_target
from ..data import DatasetUnavailableError, load_dataset, make_csbm, split_fraction
from ..models import GCN
from ..ppr import push_ppr
from ..train import fit
from ..utils import resolve_device, seed_everything, to_device
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--nodes", type=positive_int, default=500_000, help="CSBM nodes for PPR and inference")
    parser.add_argument("--avg-degree", type=positive_float, default=10.0)
    parser.add_argument("--queries", type=positive_int, default=10_000, help="query (test) nodes for inference")
    parser.add_argument("--topk", type=positive_int, default=16, help="auxiliary nodes per output node")
    parser.add_argument("--inference-topk", type=positive_int, nargs="+", default=[16, 64],
                        help="auxiliary nodes per query node for IBMB inference (one row each)")
    parser.add_argument("--eps", type=positive_float, default=2e-4)
    parser.add_argument("--alpha", type=fraction, default=0.25)
    parser.add_argument("--epochs", type=positive_int, default=20, help="training epochs per method")
    parser.add_argument("--num-batches", type=positive_int, default=8, help="steps per epoch of every mini-batch method")
    parser.add_argument("--no-cache", action="store_true", help="recompute PPR batches and partitions")
    add_device_argument(parser)


def run(args) -> int:
    dev = resolve_device(args.device)
    seed_everything(args.seed)
    cache = not args.no_cache
    t0 = time.perf_counter()
    big = make_csbm(args.nodes, args.avg_degree, 10, 32, 0.8, seed=args.seed, feature_signal=0.5)
    print(f"CSBM: {big.num_nodes:,} nodes, {big.num_edges:,} edges ({time.perf_counter() - t0:.1f} s); "
          f"device {dev}, {torch.get_num_threads()} CPU threads")

    train_nodes = big.train_mask.nonzero().view(-1)
    ppr = push_ppr(big.edge_index, big.num_nodes, train_nodes, alpha=args.alpha, eps=args.eps, topk=args.topk)
    print(f"\n1. push-PPR ({ppr.backend}, alpha {args.alpha}, eps {args.eps}, top-{args.topk}) from "
          f"{train_nodes.numel():,} output nodes: {ppr.seconds:.2f} s = "
          f"{train_nodes.numel() / ppr.seconds:,.0f} output nodes/s, {ppr.pushes / train_nodes.numel():,.0f} "
          "edge visits per node")

    big = to_device(big, dev)
    seed_everything(args.seed)
    model = GCN(32, 64, 10, dropout=0.2)
    res = fit(model, big, epochs=30, lr=0.01, weight_decay=0.0, eval_every=10, measure_memory=False, device=dev,
              progress=False)
    gen = torch.Generator().manual_seed(args.seed)
    test = big.test_mask.nonzero().view(-1).cpu()
    queries = test[torch.randperm(test.numel(), generator=gen)[:args.queries]].sort().values
    inf = compare_inference(model, big, queries, num_auxiliary_nodes=args.inference_topk, cache=cache)
    print(f"\n2. inference for {queries.numel():,} query nodes (GCN 2x64 trained full-batch, test acc "
          f"{100 * res.test_acc:.1f}%):")
    print(inf.round(3).to_string())

    try:
        data = split_fraction(load_dataset("Computers"), 0.5, 0.25, seed=args.seed)
        name = "Amazon Computers (50/25/25)"
    except DatasetUnavailableError:
        data = make_csbm(50_000, 20, 10, 64, 0.7, seed=args.seed, feature_signal=0.5, train_ratio=0.5,
                         val_ratio=0.25)
        name = "CSBM 50k (no MSGNN_DATA)"
    data = to_device(data, dev)
    runs, curves, _ = compare_training(
        data, lambda: GCN(data.num_features, 128, int(data.y.max()) + 1, dropout=0.3), epochs=args.epochs,
        num_batches=args.num_batches, eval_every=2, device=dev, progress=False, cache=cache,
        num_auxiliary_nodes=args.topk)
    target = 0.97 * runs["val_acc"].max() / 100
    runs["time_to_target_s"] = [time_to_target(curves[(m, s)], target) for m, s in zip(runs.method, runs.seed)]
    runs = runs.set_index("method")
    ib = runs.loc["IBMB node-wise"]
    runs["ibmb_epoch_speedup"] = runs["epoch_time_s"] / ib["epoch_time_s"]
    runs["ibmb_convergence_speedup"] = runs["time_to_target_s"] / ib["time_to_target_s"]
    print(f"\n3. training on {name}: GCN 2x128, {args.epochs} epochs, {args.num_batches} steps/epoch, "
          f"target = 97% of the best validation accuracy ({100 * target:.1f}%):")
    cols = ["test_acc", "val_acc", "epoch_time_s", "preprocess_s", "time_to_target_s", "ibmb_epoch_speedup",
            "ibmb_convergence_speedup"]
    print(runs[cols].round(3).to_string())
    return 0
