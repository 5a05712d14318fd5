"""Graph coarsening by node selection (Gal et al., TMLR 2025, Algorithms 3-5).

A coarse graph keeps ``m`` of the ``N`` nodes. Written with a selection operator
``P`` (``N x m``, one 1 per column, at the kept node), the coarse graph is

* adjacency ``A_c = P^T A^k P`` -- ``k`` is the paper's *connectivity enhancement*:
  with ``k > 1`` two kept nodes are joined when a walk of length ``k`` joins them in
  the fine graph, so sparse selections stay connected;
* features ``x_c = P^T x`` (the kept rows), labels and masks restricted the same way.

Selection methods (:data:`METHODS`):

* ``"random"``: ``m`` nodes uniformly at random (resampled every epoch by the trainer);
* ``"topk"``: the ``m`` nodes of highest degree (deterministic, ties by node id);
* ``"subgraph"``: ego-networks -- all nodes within ``hops`` hops of random seed
  nodes, seeds added until ``m`` nodes are covered (the outermost ring is trimmed at
  random so exactly ``m`` are kept); this is the paper's "sub-to-full" graph;
* ``"alternate"``: ``"random"`` on even epochs, ``"subgraph"`` on odd ones.

``P^T A^k P`` is computed without ever forming an ``N x N`` dense matrix: the kept
rows of ``A`` (an ``m x N`` sparse matrix) are multiplied ``k - 1`` times by sparse
``A`` and the last product keeps only the kept columns. With ``k = 1`` it is a
vectorized edge filter. Everything is pure PyTorch and runs on a GPU too.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data

from .checks import check_edge_index, check_fraction, check_positive_int
from .sparse import take_rows as _take

__all__ = [
    "METHODS",
    "num_kept",
    "level_sizes",
    "selection_matrix",
    "select_nodes",
    "power_adjacency",
    "coarsen",
    "coarsen_hierarchy",
    "method_for_epoch",
]

METHODS = ("random", "topk", "subgraph", "alternate")


def num_kept(num_nodes: int, ratio: float) -> int:
    """Nodes kept when coarsening ``num_nodes`` nodes by ``ratio`` (at least one)."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    ratio = check_fraction(ratio, "ratio")
    return max(1, min(num_nodes, int(round(ratio * num_nodes))))


def level_sizes(num_nodes: int, levels: int, ratio: float = 0.5, min_nodes: int = 2) -> list[int]:
    """Node counts of a hierarchy ``[N, m_1, ..., m_L]``; raises if a level would have
    fewer than ``min_nodes`` nodes (more levels than the graph allows)."""
    levels = check_positive_int(levels, "levels", minimum=0)
    sizes = [check_positive_int(num_nodes, "num_nodes")]
    for level in range(1, levels + 1):
        sizes.append(num_kept(sizes[-1], ratio))
        if sizes[-1] < min_nodes:
            allowed = level - 1
            raise ValueError(
                f"levels={levels} is more than the graph allows: with ratio={ratio}, level {level} would keep "
                f"{sizes[-1]} of {num_nodes} nodes (fewer than {min_nodes}); use levels <= {allowed}"
            )
    return sizes


def selection_matrix(keep: Tensor, num_nodes: int) -> Tensor:
    """The selection operator ``P`` as a sparse COO ``[num_nodes, len(keep)]`` matrix
    (``P[keep[j], j] = 1``), for teaching and tests; the library never multiplies by it."""
    keep = keep.long()
    m = keep.numel()
    idx = torch.stack([keep, torch.arange(m, device=keep.device)])
    return torch.sparse_coo_tensor(idx, torch.ones(m, device=keep.device), (num_nodes, m)).coalesce()


def method_for_epoch(method: str, epoch: int) -> str:
    """The concrete selection used at ``epoch``: ``"alternate"`` -> random/subgraph."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "alternate":
        return "random" if epoch % 2 == 0 else "subgraph"
    return method


def _where(mask: Tensor) -> Tensor:
    """Indices of the true entries of a 1-D bool mask."""
    return torch.nonzero(mask).view(-1)


def _masked(t: Tensor, mask: Tensor) -> Tensor:
    """``t[mask]`` for a 1-D bool mask (through ``index_select``, see :func:`_take`)."""
    return torch.index_select(t, 0, _where(mask))


def _degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    return torch.bincount(edge_index[1], minlength=num_nodes)


def _select_subgraph(edge_index: Tensor, num_nodes: int, m: int, hops: int, generator: torch.Generator) -> Tensor:
    """Ego-networks of random seeds (multi-source BFS up to ``hops``), exactly ``m`` nodes."""
    device = edge_index.device
    src, dst = edge_index[0], edge_index[1]
    order = torch.randperm(num_nodes, generator=generator).to(device)  # seed priority
    tiebreak = torch.rand(num_nodes, generator=generator).to(device)
    far = hops + 1
    dist = torch.full((num_nodes,), far, dtype=torch.long, device=device)
    avg_deg = max(edge_index.size(1) / num_nodes, 1.0)
    n_new = max(1, min(m, int(m / (avg_deg + 1) ** hops)))
    taken = 0
    while True:
        seeds = order[taken:taken + n_new]
        taken += seeds.numel()
        dist[seeds] = 0
        frontier = torch.zeros(num_nodes, dtype=torch.bool, device=device)
        frontier[seeds] = True
        for h in range(1, hops + 1):  # relax only from nodes whose distance just improved
            nb = _masked(dst, _take(frontier, src))
            nb = _masked(nb, _take(dist, nb) > h)
            frontier = torch.zeros(num_nodes, dtype=torch.bool, device=device)
            frontier[nb] = True
            dist[nb] = h
            if nb.numel() == 0:
                break
        covered = int((dist <= hops).sum())
        if covered >= m or taken >= num_nodes:
            break
        n_new = min(num_nodes - taken, max(n_new, int(math.ceil(n_new * (m - covered) / max(covered, 1)))))
    # Keep nodes by increasing distance; the last ring is trimmed at random.
    key = dist.to(tiebreak.dtype) + tiebreak
    return torch.sort(torch.topk(key, m, largest=False).indices).values


def select_nodes(edge_index: Tensor, num_nodes: int, m: int, method: str = "random", *, hops: int = 2,
                 epoch: int = 0, generator: torch.Generator | None = None) -> Tensor:
    """The ``m`` kept node ids (sorted) for a selection ``method`` (see :data:`METHODS`).

    ``generator`` (a CPU ``torch.Generator``) drives the random methods; ``epoch``
    picks the branch of ``"alternate"``.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    m = check_positive_int(m, "m")
    if m > num_nodes:
        raise ValueError(f"m must be <= num_nodes={num_nodes}, got {m}")
    hops = check_positive_int(hops, "hops", minimum=0)
    concrete = method_for_epoch(method, epoch)
    device = edge_index.device
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if concrete == "random":
        return torch.sort(torch.randperm(num_nodes, generator=generator)[:m]).values.to(device)
    if concrete == "topk":  # highest degree first, ties by the smaller id (stable sort)
        deg = _degree(edge_index, num_nodes)
        return torch.sort(torch.sort(deg, descending=True, stable=True).indices[:m]).values
    return _select_subgraph(edge_index, num_nodes, m, hops, generator)


def _coalesce(rows: Tensor, cols: Tensor, w: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sum duplicate (row, col) entries; output sorted by row, then column."""
    key = rows * n + cols
    uniq, inv = torch.unique(key, return_inverse=True)
    out = torch.zeros(uniq.numel(), dtype=w.dtype, device=w.device).index_add_(0, inv, w)
    return uniq // n, uniq % n, out


def power_adjacency(edge_index: Tensor, num_nodes: int, keep: Tensor, k: int = 1, *, self_loops: bool = True,
                    edge_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``P^T A^k P`` for the kept nodes ``keep``, as ``(edge_index_c, weight_c)``.

    ``A[i, j]`` is the weight of the edge ``j -> i`` (PyG's ``source_to_target``
    convention); with ``self_loops=True`` the operator is ``A + I`` (as in the GCN
    operator), so ``A^k`` links nodes within ``k`` hops. ``weight_c`` counts walks
    (weighted by ``edge_weight``); the returned ``edge_index_c`` uses coarse ids
    ``0..m-1`` (position in ``keep``), includes the diagonal when present, and is
    sorted by destination, then source. No ``N x N`` dense matrix is formed.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    k = check_positive_int(k, "k")
    device = edge_index.device
    keep = keep.long().to(device)
    m = keep.numel()
    src, dst = edge_index[0], edge_index[1]
    w = torch.ones(src.numel(), device=device) if edge_weight is None else edge_weight.to(device).float()
    if self_loops:
        loop = torch.arange(num_nodes, device=device)
        src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
        w = torch.cat([w, torch.ones(num_nodes, device=device)])
    pos = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
    pos[keep] = torch.arange(m, device=device)
    if k == 1:
        psrc, pdst = _take(pos, src), _take(pos, dst)
        mask = (psrc >= 0) & (pdst >= 0)
        idx = _where(mask)
        rows, cols, vals = _coalesce(_take(pdst, idx), _take(psrc, idx), _take(w, idx), m)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            a = torch.sparse_coo_tensor(torch.stack([dst, src]), w, (num_nodes, num_nodes)).coalesce()
            psrc, pdst = _take(pos, src), _take(pos, dst)
            r = pdst >= 0  # the kept rows of A: an m x N sparse matrix
            r = _where(r)
            b = torch.sparse_coo_tensor(torch.stack([_take(pdst, r), _take(src, r)]), _take(w, r),
                                        (m, num_nodes)).coalesce()
            for _ in range(k - 2):
                b = torch.sparse.mm(b, a).coalesce()
            c = psrc >= 0  # the kept columns of A: N x m
            c = _where(c)
            a_cols = torch.sparse_coo_tensor(torch.stack([_take(dst, c), _take(psrc, c)]), _take(w, c),
                                             (num_nodes, m)).coalesce()
            out = torch.sparse.mm(b, a_cols).coalesce()
        rows, cols = out.indices()
        vals = out.values()
        nz = _where(vals != 0)
        rows, cols, vals = _take(rows, nz), _take(cols, nz), _take(vals, nz)
    return torch.stack([cols, rows]), vals


def _gather_rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x[idx]`` for a dense or CSR ``x`` with sorted ``idx`` (CSR rows gathered
    without densifying, and without ``repeat_interleave``, slow on a busy CPU)."""
    if x.layout != torch.sparse_csr:
        return _take(x, idx)
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    n_rows, nnz = x.size(0), val.numel()
    counts = _take(crow, idx + 1) - _take(crow, idx)
    new_crow = torch.zeros(idx.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(counts, 0, out=new_crow[1:])
    # row of every stored entry: +1 at each row start, then a running sum
    starts = torch.zeros(nnz + 1, dtype=torch.long, device=crow.device)
    starts.index_add_(0, crow[1:-1].long(), torch.ones(n_rows - 1, dtype=torch.long, device=crow.device))
    row_of = torch.cumsum(starts[:nnz], 0)
    kept = torch.zeros(n_rows, dtype=torch.bool, device=crow.device)
    kept[idx] = True
    take = _where(_take(kept, row_of))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(new_crow, _take(col, take), _take(val, take), (idx.numel(), x.size(1)),
                                       check_invariants=False)


def coarsen(data: Data, keep: Tensor | None = None, *, ratio: float = 0.5, method: str = "random", k: int = 1,
            hops: int = 2, epoch: int = 0, generator: torch.Generator | None = None,
            self_loops: bool = True, weighted: bool = False) -> Data:
    """One coarsening step: the graph on the kept nodes, ``A_c = P^T A^k P``, ``x_c = P^T x``.

    Pass ``keep`` (node ids) or let ``method`` select ``round(ratio * N)`` nodes. The
    result holds ``x``, ``y``, the masks, ``edge_index`` (without self-loops; the
    model's normalization adds its own), ``edge_weight`` (walk counts) if ``weighted``,
    and ``node_ids``: for each coarse node, its id in the *original* graph (composed
    through earlier coarsenings).
    """
    n = int(data.num_nodes)
    k = check_positive_int(k, "k")
    if keep is None:
        keep = select_nodes(data.edge_index, n, num_kept(n, ratio), method, hops=hops, epoch=epoch,
                            generator=generator)
    keep = keep.long().to(data.edge_index.device)
    ei, w = power_adjacency(data.edge_index, n, keep, k, self_loops=self_loops,
                            edge_weight=getattr(data, "edge_weight", None))
    off_diag = _where(ei[0] != ei[1])
    out = Data(edge_index=torch.index_select(ei, 1, off_diag), num_nodes=keep.numel())
    if weighted:
        out.edge_weight = _take(w, off_diag)
    if data.x is not None:
        out.x = _gather_rows(data.x, keep)
    for key in ("y", "train_mask", "val_mask", "test_mask"):
        if key in data and data[key] is not None:
            out[key] = _take(data[key], keep)
    parent_ids = getattr(data, "node_ids", None)
    out.node_ids = _take(parent_ids, keep) if parent_ids is not None else keep
    if hasattr(data, "num_classes"):
        out.num_classes = data.num_classes
    return out


def coarsen_hierarchy(data: Data, levels: int, *, ratio: float = 0.5, method: str = "random", k: int = 1,
                      hops: int = 2, epoch: int = 0, generator: torch.Generator | None = None,
                      min_nodes: int = 2, self_loops: bool = True) -> list[Data]:
    """``[G_0, G_1, ..., G_L]`` with ``G_0 = data`` and ``G_{l+1} = coarsen(G_l)`` (nested:
    every level keeps a subset of the previous one's nodes, ``ratio`` of them).

    Raises if ``levels`` is more than the graph allows (a level below ``min_nodes``).
    """
    check_fraction(ratio, "ratio")
    k = check_positive_int(k, "k")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    level_sizes(int(data.num_nodes), levels, ratio, min_nodes)
    out = [data]
    for _ in range(levels):
        out.append(coarsen(out[-1], ratio=ratio, method=method, k=k, hops=hops, epoch=epoch, generator=generator,
                           self_loops=self_loops))
    return out
