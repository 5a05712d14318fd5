"""Fast CSR propagation vs PyG's default edge_index path (forward and forward+backward).

    python -m msgnn_lite.bench propagate --nodes 1000000 --degree 20 --features 64

Builds a CSBM graph, then times one GCN layer and one GraphSAGE-mean layer
(``features -> features``) both ways on the same weights: msgnn_lite's cached CSR
operator (``torch.sparse.mm`` with a cached transpose for backward) and PyG's
``GCNConv`` / ``SAGEConv`` on ``edge_index`` (gather + scatter). PyG's GCNConv runs
with ``cached=True`` so that neither side pays for the normalization inside the loop.
Prints edges per second and the speedup, and checks the outputs agree.
"""
from __future__ import annotations

import time

import torch

from ..data import make_csbm
from ..models import GCNConv, SAGEConv
from ..sparse import build_adjacency
from ..utils import resolve_device, seed_everything, sync
from ._common import add_device_argument, timeit


def add_arguments(parser) -> None:
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--degree", type=float, default=20.0)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--layers", nargs="+", default=["sage", "gcn"], choices=["sage", "gcn"])
    add_device_argument(parser)


def _fwd(conv, x, graph):
    with torch.no_grad():
        conv(x, graph)


def _fwd_bwd(conv, x, graph):
    x.grad = None
    for p in conv.parameters():
        p.grad = None
    conv(x, graph).sum().backward()


def run(args) -> int:
    from torch_geometric.nn import GCNConv as PyGGCNConv, SAGEConv as PyGSAGEConv

    device = resolve_device(args.device)
    seed_everything(args.seed)
    t0 = time.perf_counter()
    data = make_csbm(args.nodes, args.degree, num_classes=10, num_features=args.features, homophily=0.8,
                     seed=args.seed)
    t_graph = time.perf_counter() - t0
    n, e = data.num_nodes, data.edge_index.size(1)
    edge_index = data.edge_index.to(device)
    x = data.x.to(device).requires_grad_(True)
    del data
    print(f"graph: CSBM, {n:,} nodes, {e:,} directed edges, {args.features} features "
          f"(generated in {t_graph:.1f} s); device: {device}, torch threads: {torch.get_num_threads()}")

    rows = []
    for kind in args.layers:
        norm = "mean" if kind == "sage" else "gcn"
        sync(device)
        t0 = time.perf_counter()
        adj = build_adjacency(edge_index, n, norm)
        sync(device)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        adj.transpose()
        sync(device)
        t_transpose = time.perf_counter() - t0
        ours = (SAGEConv if kind == "sage" else GCNConv)(args.features, args.features).to(device)
        pyg = (PyGSAGEConv(args.features, args.features) if kind == "sage"
               else PyGGCNConv(args.features, args.features, cached=True)).to(device)
        pyg.load_state_dict(ours.state_dict())
        with torch.no_grad():
            err = float((ours(x, adj) - pyg(x, edge_index)).abs().max())
        timings = {}
        for name, conv, graph in (("msgnn_lite CSR", ours, adj), ("PyG edge_index", pyg, edge_index)):
            timings[name] = (timeit(lambda: _fwd(conv, x, graph), device, args.repeat),
                             timeit(lambda: _fwd_bwd(conv, x, graph), device, args.repeat))
        (of, ob), (pf, pb) = timings["msgnn_lite CSR"], timings["PyG edge_index"]
        rows.append((kind, t_build, t_transpose, of, ob, pf, pb, err))
        del adj, ours, pyg

    print()
    print(f"{'layer':<6} {'path':<16} {'fwd s':>8} {'fwd Medges/s':>13} {'fwd+bwd s':>10} {'fwd+bwd Medges/s':>17}")
    for kind, t_build, t_tr, of, ob, pf, pb, err in rows:
        print(f"{kind:<6} {'msgnn_lite CSR':<16} {of:8.3f} {e / of / 1e6:13.1f} {ob:10.3f} {e / ob / 1e6:17.1f}")
        print(f"{kind:<6} {'PyG edge_index':<16} {pf:8.3f} {e / pf / 1e6:13.1f} {pb:10.3f} {e / pb / 1e6:17.1f}")
        print(f"{kind:<6} speedup: forward {pf / of:.1f}x, forward+backward {pb / ob:.1f}x; "
              f"CSR build {t_build:.2f} s (+ transpose {t_tr:.2f} s, once); max |ours - PyG| = {err:.1e}")
    return 0
