"""Fast CSR propagation vs PyG's default edge_index path (forward and forward+backward),
with and without a node reordering for locality.

    python -m msgnn_lite.bench propagate --nodes 1000000 --degree 20 --features 64
    python -m msgnn_lite.bench propagate --graph local --orders random rcm partition none

Builds a graph (``--graph csbm``: a CSBM with random ids and no locality at all;
``--graph local``: :func:`msgnn_lite.data.make_local_csbm`, whose ids follow its
communities), then, for every order of ``--orders`` (:mod:`msgnn_lite.reorder`;
``none`` keeps the generated ids, ``random`` shuffles them), renumbers the graph once and
times one GCN layer and one GraphSAGE-mean layer (``features -> features``) on msgnn_lite's
cached CSR operator (``torch.sparse.mm`` with a cached transpose for backward). PyG's
``GCNConv`` / ``SAGEConv`` on ``edge_index`` (gather + scatter, its default path) runs on
the first order of the list, with the same weights; PyG's GCNConv runs with ``cached=True``
so that neither side pays for the normalization inside the loop. Prints edges per second,
the speedup over PyG, the reordering's one-off cost and how local each order is
(:func:`msgnn_lite.reorder.edge_span`), and checks the outputs agree.
"""
from __future__ import annotations

import time

import torch

from ..cli import positive_float, positive_int, unit_interval
from ..data import make_csbm, make_local_csbm
from ..models import GCNConv, SAGEConv
from ..reorder import ORDERS, edge_span, reorder
from ..sparse import build_adjacency
from ..utils import resolve_device, seed_everything, sync
from ._common import add_device_argument, timeit


def add_arguments(parser) -> None:
    parser.add_argument("--nodes", type=positive_int, default=1_000_000)
    parser.add_argument("--degree", type=positive_float, default=20.0)
    parser.add_argument("--features", type=positive_int, default=64)
    parser.add_argument("--repeat", type=positive_int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--layers", nargs="+", default=["sage", "gcn"], choices=["sage", "gcn"])
    parser.add_argument("--graph", default="csbm", choices=["csbm", "local"],
                        help="csbm: random graph, random ids; local: make_local_csbm (window 16, ids in order)")
    parser.add_argument("--orders", nargs="+", default=["none", "rcm"], choices=("none",) + ORDERS,
                        help="node orders to time (none = as generated); PyG runs on the first one")
    parser.add_argument("--homophily", type=unit_interval, default=0.8)
    add_device_argument(parser)


def _fwd(conv, x, graph):
    with torch.no_grad():
        conv(x, graph)


def _fwd_bwd(conv, x, graph):
    x.grad = None
    for p in conv.parameters():
        p.grad = None
    conv(x, graph).sum().backward()


def _time_layer(kind, features, edge_index, x, n, device, repeat, pyg_cls=None):
    """(build s, transpose s, fwd s, fwd+bwd s[, PyG fwd, PyG fwd+bwd, max |ours - PyG|])."""
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
    ours = (SAGEConv if kind == "sage" else GCNConv)(features, features).to(device)
    out = [t_build, t_transpose, timeit(lambda: _fwd(ours, x, adj), device, repeat),
           timeit(lambda: _fwd_bwd(ours, x, adj), device, repeat)]
    if pyg_cls is not None:
        pyg = (pyg_cls(features, features) if kind == "sage" else pyg_cls(features, features, cached=True)).to(device)
        pyg.load_state_dict(ours.state_dict())
        with torch.no_grad():
            err = float((ours(x, adj) - pyg(x, edge_index)).abs().max())
        out += [timeit(lambda: _fwd(pyg, x, edge_index), device, repeat),
                timeit(lambda: _fwd_bwd(pyg, x, edge_index), device, repeat), err]
    return out


def run(args) -> int:
    from torch_geometric.nn import GCNConv as PyGGCNConv, SAGEConv as PyGSAGEConv

    device = resolve_device(args.device)
    seed_everything(args.seed)
    t0 = time.perf_counter()
    if args.graph == "local":
        data = make_local_csbm(args.nodes, args.degree, num_classes=10, num_features=args.features,
                               homophily=args.homophily, seed=args.seed)
    else:
        data = make_csbm(args.nodes, args.degree, num_classes=10, num_features=args.features,
                         homophily=args.homophily, seed=args.seed)
    t_graph = time.perf_counter() - t0
    n, e = data.num_nodes, data.edge_index.size(1)
    print(f"graph: {data.name}, {n:,} nodes, {e:,} directed edges, {args.features} features "
          f"(generated in {t_graph:.1f} s); device: {device}, torch threads: {torch.get_num_threads()}")

    rows, pyg_rows = [], {}
    for i, order in enumerate(args.orders):
        t0 = time.perf_counter()
        g = data if order == "none" else reorder(data, order, seed=args.seed)[0]
        t_order = time.perf_counter() - t0
        span = edge_span(g.edge_index, n)
        print(f"order {order}: {t_order:.1f} s once; median |src - dst| id gap {span['median']:,}, "
              f"{span['within_window']:.0%} of edges within 4096 ids", flush=True)
        edge_index = g.edge_index.to(device)
        x = g.x.detach().to(device).requires_grad_(True)  # a fresh leaf: data.x itself stays untouched
        del g
        for kind in args.layers:
            pyg_cls = (PyGSAGEConv if kind == "sage" else PyGGCNConv) if i == 0 else None
            res = _time_layer(kind, args.features, edge_index, x, n, device, args.repeat, pyg_cls)
            rows.append((kind, order, *res[:4]))
            print(f"  {kind}: forward {res[2]:.3f} s ({e / res[2] / 1e6:.1f}M edges/s), forward+backward "
                  f"{res[3]:.3f} s ({e / res[3] / 1e6:.1f}M edges/s)", flush=True)
            if pyg_cls is not None:
                pyg_rows[kind] = (order, *res[4:])
        del edge_index, x

    print()
    print(f"{'layer':<6} {'path':<26} {'fwd s':>8} {'fwd Medges/s':>13} {'fwd+bwd s':>10} "
          f"{'fwd+bwd Medges/s':>17} {'x PyG fwd':>10} {'x PyG f+b':>10}")
    for kind in args.layers:
        porder, pf, pb, err = pyg_rows[kind]
        print(f"{kind:<6} {'PyG edge_index (' + porder + ')':<26} {pf:8.3f} {e / pf / 1e6:13.1f} {pb:10.3f} "
              f"{e / pb / 1e6:17.1f} {1.0:10.1f} {1.0:10.1f}")
        for k, order, t_build, t_tr, of, ob in rows:
            if k == kind:
                print(f"{kind:<6} {'msgnn_lite CSR (' + order + ')':<26} {of:8.3f} {e / of / 1e6:13.1f} {ob:10.3f} "
                      f"{e / ob / 1e6:17.1f} {pf / of:10.1f} {pb / ob:10.1f}")
        first = next(r for r in rows if r[0] == kind)
        print(f"{kind:<6} max |ours - PyG| = {err:.1e}; CSR build {first[2]:.2f} s (+ transpose "
              f"{first[3]:.2f} s, once)")
    return 0
