"""Node reordering for locality: renumber a graph's nodes once so that neighbours get
nearby ids.

``A @ X`` on a CSR operator reads one feature row per stored edge. With random node
ids those rows are scattered over the whole feature matrix and almost every read
misses the CPU caches, so the product runs at the speed of random memory access. If
neighbours have nearby ids, consecutive rows of ``A`` touch overlapping, nearby rows
of ``X`` and the same product streams from cache. Reordering is a one-off
permutation of the graph (features, labels, masks and edges together); models are
permutation-equivariant, so outputs are the same up to that permutation
(:func:`restore` maps them back).

Orders (:data:`ORDERS`):

* ``"rcm"``: reverse Cuthill-McKee (``scipy.sparse.csgraph.reverse_cuthill_mckee``), a
  breadth-first order that keeps the bandwidth of the adjacency small;
* ``"partition"``: nodes grouped by a METIS partition (``msgnn_lite.partition``), in
  their original order inside each part -- the order Cluster-GCN's batches see;
* ``"degree"``: by decreasing degree (hubs first, their rows stay hot), for comparison;
* ``"random"``: a seeded random permutation, to *remove* locality (the worst case).

Convention: ``perm[new_id] = old_id``; :func:`restore` turns rows in the new order
back into the old order (``out_old = restore(out_new, perm)``).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from .checks import check_edge_index, check_permutation, check_positive_int
from .sparse import take_rows

__all__ = ["ORDERS", "node_order", "permute_graph", "reorder", "restore", "inverse_permutation", "edge_span"]

ORDERS = ("rcm", "partition", "degree", "random")


def inverse_permutation(perm: Tensor) -> Tensor:
    """``inv`` with ``inv[perm[i]] = i`` (old id -> new id)."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device, dtype=perm.dtype)
    return inv


def _scipy_csr(edge_index: Tensor, num_nodes: int):
    import scipy.sparse as sp

    ei = edge_index.cpu().numpy()
    ones = np.ones(ei.shape[1], dtype=np.int8)
    return sp.csr_matrix((ones, (ei[1], ei[0])), shape=(num_nodes, num_nodes))


def node_order(edge_index: Tensor, num_nodes: int, method: str = "rcm", *, num_parts: int | None = None,
               seed: int = 0) -> Tensor:
    """The new order of the nodes as ``perm`` (``perm[new_id] = old_id``), on ``edge_index``'s device.

    ``method``: one of :data:`ORDERS`. ``num_parts`` (``"partition"`` only): METIS parts,
    default ``max(2, num_nodes // 4096)`` (a part's features then fit in a core's cache at
    moderate widths). ``"rcm"`` treats the graph as undirected.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    device = edge_index.device
    if method not in ORDERS:
        raise ValueError(f"method must be one of {ORDERS}, got {method!r}")
    if method == "random":
        perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))
    elif method == "degree":
        deg = torch.bincount(edge_index[1].cpu(), minlength=num_nodes)
        perm = torch.sort(deg, descending=True, stable=True).indices
    elif method == "rcm":
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        a = _scipy_csr(edge_index, num_nodes)
        perm = torch.from_numpy(reverse_cuthill_mckee((a + a.T).tocsr(), symmetric_mode=True).astype(np.int64))
    else:
        from .partition import metis_partition

        parts = max(2, num_nodes // 4096) if num_parts is None else check_positive_int(num_parts, "num_parts")
        part = metis_partition(edge_index.cpu(), num_nodes, parts, seed=seed).cpu()
        perm = torch.sort(part, stable=True).indices
    return perm.to(device)


def permute_graph(data: Data, perm: Tensor) -> Data:
    """A copy of ``data`` with node ``perm[i]`` renamed ``i``.

    Node-level tensors (first dimension ``num_nodes``: ``x`` -- dense or CSR --, ``y``, masks,
    ...) are permuted; ``edge_index`` is relabelled and sorted by destination, then source
    (the CSR order of :func:`msgnn_lite.sparse.build_adjacency`), and edge-level tensors
    (keys containing ``"edge"``) follow their edges. Other attributes are shared.
    """
    n = int(data.num_nodes)
    perm = perm.long().to(data.edge_index.device)
    if perm.dim() != 1 or perm.numel() != n:
        raise ValueError(f"perm must have shape [{n}] (one entry per node), got {list(perm.shape)}")
    if not torch.equal(torch.sort(perm).values, torch.arange(n, device=perm.device)):
        raise ValueError("perm must be a permutation of 0..num_nodes-1")
    inv = inverse_permutation(perm)
    src, dst = take_rows(inv, data.edge_index[0]), take_rows(inv, data.edge_index[1])
    order = torch.sort(dst * n + src).indices
    out = copy.copy(data)
    out.edge_index = torch.stack([take_rows(src, order), take_rows(dst, order)])
    num_edges = int(order.numel())
    for key, value in data.items():
        if key == "edge_index" or not isinstance(value, Tensor) or value.dim() == 0:
            continue
        if data.is_edge_attr(key) and value.size(0) == num_edges:
            out[key] = take_rows(value, order)
        elif data.is_node_attr(key) and value.size(0) == n:
            out[key] = take_rows(value, perm.to(value.device))
        else:
            raise ValueError(f"data.{key} is neither a node nor an edge attribute of this graph (shape "
                             f"{list(value.shape)}); remove it or permute it yourself before reordering")
    out.num_nodes = n
    return out


def reorder(data: Data, method: str = "rcm", **kwargs) -> tuple[Data, Tensor]:
    """Renumber ``data``'s nodes by :func:`node_order` (``method`` and its keyword arguments).

    Returns ``(data_perm, perm)``: the permuted graph (:func:`permute_graph`) and
    ``perm[new_id] = old_id``. Train and evaluate on ``data_perm``; map node outputs back with
    ``restore(out, perm)``.
    """
    perm = node_order(data.edge_index, int(data.num_nodes), method, **kwargs)
    return permute_graph(data, perm), perm


def restore(out: Tensor, perm: Tensor) -> Tensor:
    """Rows of ``out`` (in the reordered numbering) back in the original order."""
    if out.size(0) != perm.numel():
        raise ValueError(f"out has {out.size(0)} rows but perm has {perm.numel()} entries")
    check_permutation(perm, out.size(0), "perm")
    result = torch.empty_like(out)
    result[perm.to(out.device)] = out
    return result


def edge_span(edge_index: Tensor, num_nodes: int, window: int = 4096) -> dict:
    """How local the id order is: ``median |source id - destination id|`` of the edges and
    ``within_window``, the fraction of edges whose ends lie at most ``window`` ids apart
    (rows a cache can hold at once). Random ids give a median near ``0.29 * num_nodes``."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    if edge_index.size(1) == 0:
        raise ValueError("edge_index has no edges; the span is undefined")
    gap = (edge_index[0] - edge_index[1]).abs()
    return {"median": int(gap.median()), "within_window": float((gap <= window).float().mean())}
