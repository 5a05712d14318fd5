"""Sampling throughput: NeighborLoader, METIS + ClusterLoader and GraphSAINT on a large CSBM graph.

    python -m msgnn_lite.bench sampling                      # 1M nodes, ~20M edges
    python -m msgnn_lite.bench sampling --nodes 200000 --device cuda

Prints sampled edges per second of a two-hop [15, 10] neighbor sampler (batch 1024),
batches per second of ClusterLoader and of each GraphSAINT sampler, and the METIS
partitioning time (the first run partitions; later runs read the on-disk cache, use
--no-cache to time METIS again).
"""
from __future__ import annotations

import time

import torch

from ..cli import positive_float, positive_int
from ..data import make_csbm
from ..loader import NeighborLoader
from ..partition import ClusterData, ClusterLoader
from ..saint import GraphSAINTEdgeSampler, GraphSAINTNodeSampler, GraphSAINTRandomWalkSampler
from ..utils import resolve_device, seed_everything, sync, to_device
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--nodes", type=positive_int, default=1_000_000)
    parser.add_argument("--avg-degree", type=positive_float, default=20.0)
    parser.add_argument("--features", type=positive_int, default=32)
    parser.add_argument("--fanout", type=int, nargs="+", default=[15, 10])
    parser.add_argument("--batch-size", type=positive_int, default=1024)
    parser.add_argument("--batches", type=positive_int, default=30, help="timed batches per sampler")
    parser.add_argument("--num-parts", type=positive_int, default=1500)
    parser.add_argument("--clusters-per-batch", type=positive_int, default=20)
    parser.add_argument("--saint-nodes", type=positive_int, default=6000, help="node / edge draws per GraphSAINT batch")
    parser.add_argument("--walk-roots", type=positive_int, default=2000)
    parser.add_argument("--walk-length", type=positive_int, default=2)
    parser.add_argument("--no-cache", action="store_true", help="re-run METIS instead of reading the cache")
    parser.add_argument("--skip-cluster", action="store_true", help="skip METIS and ClusterLoader")
    add_device_argument(parser)


def _rate(loader, batches: int, device, count=lambda b: 1) -> tuple[float, float]:
    """(items per second, batches per second) over ``batches`` batches after one warm-up."""
    it = iter(loader)
    next(it)
    sync(device)
    t0 = time.perf_counter()
    items = 0
    done = 0
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        items += count(b)
        done += 1
    sync(device)
    dt = time.perf_counter() - t0
    return items / dt, done / dt


def run(args) -> int:
    dev = resolve_device(args.device)
    seed_everything(args.seed)
    t0 = time.perf_counter()
    data = make_csbm(args.nodes, args.avg_degree, 10, args.features, 0.8, seed=args.seed)
    print(f"graph: CSBM {data.num_nodes:,} nodes, {data.num_edges:,} edges, {args.features} features "
          f"({time.perf_counter() - t0:.1f} s to build); device: {dev}, {torch.get_num_threads()} CPU threads")
    data = to_device(data, dev)
    rows = []

    loader = NeighborLoader(data, args.fanout, batch_size=args.batch_size, shuffle=True)
    eps, bps = _rate(loader, args.batches, dev, count=lambda b: b.edge_index.size(1))
    rows.append((f"NeighborLoader {args.fanout} batch {args.batch_size}", f"{eps / 1e6:.2f} M sampled edges/s",
                 f"{bps:.1f} batches/s"))

    if not args.skip_cluster:
        data_cpu = to_device(data, "cpu")  # a copy: data itself stays on the device
        t0 = time.perf_counter()
        cd = ClusterData(data_cpu, args.num_parts, cache=not args.no_cache)
        part_s = time.perf_counter() - t0
        st = cd.stats
        rows.append((f"METIS {args.num_parts} parts", f"{part_s:.1f} s"
                     + (" (cache)" if not args.no_cache and cd.partition_time_s < part_s * 0.5 else ""),
                     f"edge cut {st['edge_cut_fraction']:.1%}, balance {st['balance']:.2f}"))
        if dev.type != "cpu":
            cd = ClusterData(data, args.num_parts, part=cd.part)
        cl = ClusterLoader(cd, batch_size=args.clusters_per_batch, shuffle=True)
        _, bps = _rate(cl, args.batches, dev)
        rows.append((f"ClusterLoader {args.clusters_per_batch} clusters/batch", f"{bps:.1f} batches/s", ""))

    for name, sampler in [
        (f"GraphSAINTNodeSampler {args.saint_nodes}", GraphSAINTNodeSampler(data, args.saint_nodes, num_steps=10**6)),
        (f"GraphSAINTEdgeSampler {args.saint_nodes}", GraphSAINTEdgeSampler(data, args.saint_nodes, num_steps=10**6)),
        (f"GraphSAINTRandomWalkSampler {args.walk_roots}x{args.walk_length}",
         GraphSAINTRandomWalkSampler(data, args.walk_roots, args.walk_length, num_steps=10**6)),
    ]:
        nps, bps = _rate(sampler, args.batches, dev, count=lambda b: b.num_nodes)
        rows.append((name, f"{bps:.1f} batches/s", f"{nps / 1e3:.0f} k nodes/s"))

    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:<28} {r[2]}")
    return 0
