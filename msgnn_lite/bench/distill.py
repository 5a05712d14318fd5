"""Distillation to MLPs (GLNN): accuracy of teacher / MLP / distilled MLP, inference latency with
neighbour fetching, and representation distillation (KD vs KD + LSP / GSP).

    python -m msgnn_lite.bench distill                        # Cora + CSBM 500k nodes
    python -m msgnn_lite.bench distill --nodes 2000000 --seeds 10 --device cuda

1. GLNN on Cora (CPF split, 20/30 labelled nodes per class; needs MSGNN_DATA, else a 20k-node CSBM):
   SAGE teacher, plain MLP and distilled MLP, transductive and on GLNN's inductive split
   (20% of the test nodes held out from the teacher's graph);
2. latency to predict 1 .. 1000 random query nodes on a CSBM graph: a 2-layer SAGE with its exact
   2-hop neighbourhood fetched per request (and with [15, 10] sampling) vs an MLP on the query
   nodes' features;
3. a 2x32 SAGE student distilled from a 3x256 SAGE teacher on Cora: CE alone, logit KD, KD + LSP,
   KD + GSP.
"""
from __future__ import annotations

import time

import pandas as pd
import torch

from ..cli import positive_float, positive_int, unit_interval
from ..data import DatasetUnavailableError, load_dataset, make_csbm, sparse_features
from ..distill import glnn_experiment, inference_latency, representation_experiment
from ..models import MLP, SAGE
from ..utils import resolve_device, seed_everything, to_device
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", default="Cora", help="graph for the accuracy parts (Cora, CiteSeer, ...)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="runs per model (GLNN reports 10)")
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--lam", type=unit_interval, default=0.0, help="GLNN's lambda: weight of the true-label term")
    parser.add_argument("--temperature", type=positive_float, default=1.0)
    parser.add_argument("--teacher-model", choices=["gcn", "sage"], default="gcn",
                        help="the representation-distillation teacher (3x256)")
    parser.add_argument("--teacher-lr", type=positive_float, default=0.001)
    parser.add_argument("--nodes", type=positive_int, default=500_000, help="CSBM nodes for the latency measurement")
    parser.add_argument("--avg-degree", type=positive_float, default=20.0)
    parser.add_argument("--features", type=positive_int, default=128)
    parser.add_argument("--queries", type=positive_int, nargs="+", default=[1, 10, 100, 1000],
                        help="query nodes per request")
    parser.add_argument("--repeat", type=positive_int, default=5, help="timed calls per latency (median)")
    parser.add_argument("--skip-representation", action="store_true", help="skip part 3")
    add_device_argument(parser)


def run(args) -> int:
    dev = resolve_device(args.device)
    seed_everything(args.seed)
    seeds = list(range(args.seed, args.seed + args.seeds))
    try:
        data = sparse_features(load_dataset(args.dataset))
        name = f"{data.name} (CPF split)"
    except DatasetUnavailableError:
        data = make_csbm(20_000, 5, 7, 64, 0.8, seed=args.seed, feature_signal=1.0)
        name = "CSBM 20k (no MSGNN_DATA)"
    data = to_device(data, dev)
    print(f"device {dev}, {torch.get_num_threads()} CPU threads")

    t0 = time.perf_counter()
    runs = glnn_experiment(data, seeds, lam=args.lam, temperature=args.temperature, epochs=args.epochs, device=dev)
    table = runs.groupby(["setting", "model"], sort=False).acc.agg(["mean", "std"])
    table = table.apply(lambda r: f"{r['mean']:.2f} ± {r['std']:.2f}", axis=1).unstack("model")
    print(f"\n1. GLNN on {name}, {len(seeds)} seeds, lambda {args.lam}, T {args.temperature} "
          f"({time.perf_counter() - t0:.0f} s); test accuracy (%), paper (Cora): SAGE 79.29, MLP 58.98, GLNN 78.28")
    print(table.to_string())

    t0 = time.perf_counter()
    big = to_device(make_csbm(args.nodes, args.avg_degree, 10, args.features, 0.8, seed=args.seed), dev)
    seed_everything(args.seed)
    gnn = SAGE(args.features, 128, 10).to(dev)
    mlp = MLP(args.features, 128, 10).to(dev)
    lat = pd.concat([inference_latency(gnn, mlp, big, args.queries, fanouts=(-1, -1), repeat=args.repeat,
                                       seed=args.seed),
                     inference_latency(gnn, mlp, big, args.queries, fanouts=(15, 10), repeat=args.repeat,
                                       seed=args.seed)])
    lat = lat.drop_duplicates(subset=["query_nodes", "model"]).sort_values(["query_nodes", "model"])
    print(f"\n2. inference latency on CSBM ({big.num_nodes:,} nodes, {big.num_edges:,} edges; "
          f"{time.perf_counter() - t0:.0f} s); 2x128 SAGE vs 2x128 MLP; paper: GLNN 146x-273x faster "
          "(ogbn-products)")
    print(lat.round(4).to_string(index=False))

    if not args.skip_representation:
        t0 = time.perf_counter()
        rep = representation_experiment(data, seeds, epochs=args.epochs, teacher_model=args.teacher_model,
                                        teacher_lr=args.teacher_lr, device=dev)
        agg = rep.groupby("model", sort=False).acc.agg(["mean", "std"])
        agg["median best epoch"] = rep.groupby("model", sort=False).best_epoch.median()
        kd = rep[rep.model.str.endswith(": KD")].set_index("seed").acc
        agg["minus KD (pp)"] = [float((g.set_index("seed").acc - kd).mean()) for _, g in
                                rep.groupby("model", sort=False)]
        print(f"\n3. representation distillation on {name}, {len(seeds)} seeds ({time.perf_counter() - t0:.0f} s); "
              "test accuracy (%):")
        print(agg.round(2).to_string())
    return 0
