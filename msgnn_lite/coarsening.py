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
``A`` and the last product keeps only the kept columns (sparse-sparse products;
cuSPARSE's SpGEMM on a GPU). With ``k = 1`` it is a vectorized edge filter. Neither
sorts anything when the graph's edges come sorted by destination, then source (the
order PyG's datasets and this package's graphs come in, and the order of every coarse
graph made here): the factors are built already sorted, the loops of ``A + I`` are
slotted in place, and a one-pass check replaces ``coalesce``.

Devices: everything runs on the device of the graph. Random numbers are drawn there,
with a generator of that device (:func:`msgnn_lite.utils.device_generator` turns a
seeded CPU generator into one); a CPU graph with a CPU generator gives the same draws
as ever. A draw reads a handful of numbers back to the host (edge counts, the seeds a
subgraph needs), none per hop.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data

from .checks import check_edge_index, check_fraction, check_positive_int, check_unique, checks_enabled
from .sparse import take_rows as _take
from .utils import device_generator

__all__ = [
    "METHODS",
    "num_kept",
    "level_sizes",
    "selection_matrix",
    "select_nodes",
    "power_adjacency",
    "coarsen",
    "coarsen_hierarchy",
    "coarsest",
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


def check_keep(keep, num_nodes: int, name: str = "keep") -> Tensor:
    """Kept node ids: a 1-D integer tensor of distinct ids in ``[0, num_nodes)``, at least one.
    A repeated id would make two coarse nodes of one fine node, one of them without its edges."""
    if not isinstance(keep, Tensor) or keep.is_floating_point() or keep.dtype == torch.bool or keep.dim() != 1:
        raise TypeError(f"{name} must be a 1-D integer tensor of node ids, got "
                        f"{getattr(keep, 'dtype', type(keep).__name__)} of shape {list(getattr(keep, 'shape', []))}")
    if keep.numel() == 0:
        raise ValueError(f"{name} is empty; keep at least one node")
    if not checks_enabled():  # ids drawn by select_nodes inside a training step: trusted, no host reads
        return keep.long()
    lo, hi = torch.aminmax(keep)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= num_nodes:
        raise ValueError(f"{name} holds id {lo if lo < 0 else hi}, outside [0, {num_nodes})")
    return check_unique(keep.long(), name)


def selection_matrix(keep: Tensor, num_nodes: int) -> Tensor:
    """The selection operator ``P`` as a sparse COO ``[num_nodes, len(keep)]`` matrix
    (``P[keep[j], j] = 1``), for teaching and tests; the library never multiplies by it."""
    keep = check_keep(keep, check_positive_int(num_nodes, "num_nodes"))
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


def _generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator:
    """The generator to draw with on ``device``: ``generator`` (or a CPU one seeded with 0)
    moved there by :func:`~msgnn_lite.utils.device_generator` (unchanged on the CPU)."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    return device_generator(generator, device)


def _in_degree(dst: Tensor, num_nodes: int) -> Tensor:
    """In-degrees (``bincount`` on the CPU; ``index_add_`` elsewhere, as CUDA's ``bincount``
    reads the largest id back to the host to size its output)."""
    if dst.device.type == "cpu":
        return torch.bincount(dst, minlength=num_nodes)
    return torch.zeros(num_nodes, dtype=torch.long, device=dst.device).index_add_(0, dst, torch.ones_like(dst))


def _seeds_taken(best: Tensor, num_nodes: int, m: int, n_new: int) -> int:
    """How many seeds (in priority order) the subgraph selection takes.

    Seeds are added in rounds until ``m`` nodes are covered: ``n_new`` at first, then as
    many as the coverage so far suggests are still missing. ``best[v]`` is the priority of
    the best seed within ``hops`` of ``v``, so the first ``t`` seeds cover ``(best < t).sum()``
    nodes. One host read per round (usually two or three), none per hop.
    """
    taken = 0
    while True:
        taken = min(num_nodes, taken + n_new)
        covered = int((best < taken).sum())
        if covered >= m or taken >= num_nodes:
            return taken
        n_new = min(num_nodes - taken, max(n_new, int(math.ceil(n_new * (m - covered) / max(covered, 1)))))


def _select_subgraph(edge_index: Tensor, num_nodes: int, m: int, hops: int, generator: torch.Generator) -> Tensor:
    """Ego-networks of random seeds (a multi-source BFS up to ``hops``), exactly ``m`` nodes.

    Every node is a potential seed with a random priority. ``hops`` rounds of a min-scatter
    over the edges give, for each node ``v`` and each ``d <= hops``, the best priority within
    ``d`` hops of ``v`` (``reach[d]``); no Python loop per seed or per frontier. Once the number
    of seeds ``t`` is known, a node's BFS distance to the chosen seeds is the first ``d`` with
    ``reach[d][v] < t``. Nodes are kept by increasing distance; the last ring is trimmed at
    random (the same draw as the former frontier-by-frontier BFS).
    """
    device = edge_index.device
    src, dst = edge_index[0], edge_index[1]
    order = torch.randperm(num_nodes, generator=generator, device=device)  # seed priority
    tiebreak = torch.rand(num_nodes, generator=generator, device=device)
    dtype = torch.int32 if num_nodes < 2**31 else torch.long  # half the memory traffic of int64
    priority = torch.empty(num_nodes, dtype=dtype, device=device)
    priority[order] = torch.arange(num_nodes, dtype=dtype, device=device)
    reach = [priority]
    for _ in range(hops):  # a fixed number of vectorized hops, no host read inside
        reach.append(reach[-1].scatter_reduce(0, dst, _take(reach[-1], src), reduce="amin", include_self=True))
    avg_deg = max(edge_index.size(1) / num_nodes, 1.0)
    n_new = max(1, min(m, int(m / (avg_deg + 1) ** hops)))
    taken = _seeds_taken(reach[-1], num_nodes, m, n_new)
    dist = torch.stack(reach).ge(taken).sum(0)  # BFS distance to the taken seeds; hops + 1 = beyond
    key = dist.to(tiebreak.dtype) + tiebreak
    return torch.sort(torch.topk(key, m, largest=False, sorted=False).indices).values


def select_nodes(edge_index: Tensor, num_nodes: int, m: int, method: str = "random", *, hops: int = 2,
                 epoch: int = 0, generator: torch.Generator | None = None) -> Tensor:
    """The ``m`` kept node ids (sorted, on ``edge_index``'s device) for a selection ``method``
    (see :data:`METHODS`).

    ``generator`` drives the random methods (default: a CPU generator seeded with 0); the
    random numbers are drawn on ``edge_index``'s device, with ``generator`` itself when it is
    of that device, else with one derived from it (:func:`~msgnn_lite.utils.device_generator`).
    ``epoch`` picks the branch of ``"alternate"``.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    m = check_positive_int(m, "m")
    if m > num_nodes:
        raise ValueError(f"m must be <= num_nodes={num_nodes}, got {m}")
    hops = check_positive_int(hops, "hops", minimum=0)
    concrete = method_for_epoch(method, epoch)
    device = edge_index.device
    if concrete == "topk":  # highest degree first, ties by the smaller id (stable sort)
        deg = _in_degree(edge_index[1], num_nodes)
        return torch.sort(torch.sort(deg, descending=True, stable=True).indices[:m]).values
    generator = _generator(generator, device)
    if concrete == "random":
        return torch.sort(torch.randperm(num_nodes, generator=generator, device=device)[:m]).values
    return _select_subgraph(edge_index, num_nodes, m, hops, generator)


def _coalesce(rows: Tensor, cols: Tensor, w: Tensor, n_cols: int) -> tuple[Tensor, Tensor, Tensor]:
    """Entries sorted by row, then column, duplicates summed. Entries already in that order
    (checked in one pass, the usual case) are returned as they are, with no sort."""
    key = rows * n_cols + cols
    if key.numel() < 2 or bool((key[1:] > key[:-1]).all()):
        return rows, cols, w
    if not bool((key[1:] >= key[:-1]).all()):
        key, order = torch.sort(key)
        rows, cols, w = _take(rows, order), _take(cols, order), _take(w, order)
    first = torch.ones_like(key, dtype=torch.bool)  # the first entry of each (row, col)
    torch.ne(key[1:], key[:-1], out=first[1:])
    run = torch.cumsum(first, 0) - 1
    idx = _where(first)
    w = torch.zeros(idx.numel(), dtype=w.dtype, device=w.device).index_add_(0, run, w)
    return _take(rows, idx), _take(cols, idx), w


def _add_diagonal(rows: Tensor, cols: Tensor, w: Tensor, diag_col: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Entries sorted by row, then column, with one more entry of weight 1 in each row ``r``
    where ``diag_col[r] >= 0``, at column ``diag_col[r]`` (the loops of ``A + I``), kept in order
    without a sort: an entry moves right by the loops of earlier rows, plus one if its row's
    loop comes before it; the loops fill the free slots. Duplicates are summed."""
    has = diag_col >= 0
    before = torch.cumsum(has, 0) - has.long()  # loops in earlier rows
    d = _take(diag_col, rows)
    at = torch.arange(rows.numel(), device=rows.device) + _take(before, rows) + ((cols > d) & (d >= 0)).long()
    loop_rows = _where(has)
    free = torch.ones(rows.numel() + loop_rows.numel(), dtype=torch.bool, device=rows.device)
    free[at] = False
    loop_at = _where(free)
    merged = []
    ones = torch.ones(loop_rows.numel(), dtype=w.dtype, device=w.device)
    for x, y in ((rows, loop_rows), (cols, _take(diag_col, loop_rows)), (w, ones)):
        out = torch.empty(free.numel(), dtype=x.dtype, device=x.device)
        out[at], out[loop_at] = x, y
        merged.append(out)
    return tuple(merged)


def _sparse(rows: Tensor, cols: Tensor, w: Tensor, shape: tuple[int, int]) -> Tensor:
    """A sparse matrix from entries sorted by row, then column, without duplicates: marked
    coalesced, so nothing sorts them again. (torch's sparse-sparse product of such matrices
    returns its result sorted the same way on the CPU, cheaper than a CSR product followed by
    a sort of its unsorted columns; on a GPU both run cuSPARSE's SpGEMM.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse support is in beta"
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), w, shape, is_coalesced=True)


def _coarse_entries(edge_index: Tensor, num_nodes: int, keep: Tensor, k: int, self_loops: bool,
                    edge_weight: Tensor | None, diagonal: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``P^T A^k P`` as ``(rows, cols, values)`` in coarse ids, sorted by row (destination),
    then column (source); ``diagonal=False`` leaves out the diagonal (what :func:`coarsen` keeps)."""
    device = edge_index.device
    m = keep.numel()
    src, dst = edge_index[0], edge_index[1]
    w = None if edge_weight is None else edge_weight.to(device).float()

    def weights(idx: Tensor) -> Tensor:  # the weights of the edges idx (ones for an unweighted graph)
        return torch.ones(idx.numel(), device=device) if w is None else _take(w, idx)

    pos = torch.full((num_nodes,), -1, dtype=torch.long, device=device)
    pos[keep] = torch.arange(m, device=device)
    psrc, pdst = _take(pos, src), _take(pos, dst)
    if k == 1:  # the edges between kept nodes (and the loops A + I adds on the diagonal)
        inside = (psrc >= 0) & (pdst >= 0)
        if not diagonal:
            inside &= psrc != pdst
        idx = _where(inside)
        rows, cols, vals = _coalesce(_take(pdst, idx), _take(psrc, idx), weights(idx), m)
        if diagonal and self_loops:
            rows, cols, vals = _coalesce(*_add_diagonal(rows, cols, vals, torch.arange(m, device=device)), m)
        return rows, cols, vals
    r = _where(pdst >= 0)  # the kept rows of A (m x N) and its kept columns (N x m)
    b = _coalesce(_take(pdst, r), _take(src, r), weights(r), num_nodes)
    c = _where(psrc >= 0)
    c = _coalesce(_take(dst, c), _take(psrc, c), weights(c), m)
    if self_loops:  # A + I: a loop at each kept node
        b = _coalesce(*_add_diagonal(*b, keep), num_nodes)
        c = _coalesce(*_add_diagonal(*c, pos), m)
    b = _sparse(*b, (m, num_nodes))
    if k > 2:
        a = _coalesce(dst, src, weights(torch.arange(src.numel(), device=device)), num_nodes)
        if self_loops:
            a = _coalesce(*_add_diagonal(*a, torch.arange(num_nodes, device=device)), num_nodes)
        a = _sparse(*a, (num_nodes, num_nodes))
        for _ in range(k - 2):
            b = torch.sparse.mm(b, a).coalesce()
    out = torch.sparse.mm(b, _sparse(*c, (num_nodes, m))).coalesce()  # a no-op on the CPU
    (rows, cols), vals = out.indices(), out.values()
    stored = vals != 0
    if not diagonal:
        stored &= rows != cols
    nz = _where(stored)
    return _take(rows, nz), _take(cols, nz), _take(vals, nz)


def power_adjacency(edge_index: Tensor, num_nodes: int, keep: Tensor, k: int = 1, *, self_loops: bool = True,
                    edge_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``P^T A^k P`` for the kept nodes ``keep``, as ``(edge_index_c, weight_c)``.

    ``A[i, j]`` is the weight of the edge ``j -> i`` (PyG's ``source_to_target``
    convention); with ``self_loops=True`` the operator is ``A + I`` (as in the GCN
    operator), so ``A^k`` links nodes within ``k`` hops. ``weight_c`` counts walks
    (weighted by ``edge_weight``); the returned ``edge_index_c`` uses coarse ids
    ``0..m-1`` (position in ``keep``), includes the diagonal when present, and is
    sorted by destination, then source. No ``N x N`` dense matrix is formed; the result
    is on ``edge_index``'s device.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    k = check_positive_int(k, "k")
    keep = check_keep(keep, num_nodes).to(edge_index.device)
    rows, cols, vals = _coarse_entries(edge_index, num_nodes, keep, k, self_loops, edge_weight, diagonal=True)
    return torch.stack([cols, rows]), vals


def _gather_rows(x: Tensor, idx: Tensor) -> Tensor:
    """``x[idx]`` for a dense or CSR ``x`` (CSR rows gathered without densifying; for a
    sorted ``idx``, without ``repeat_interleave``, slow on a busy CPU)."""
    if x.layout != torch.sparse_csr or (idx.numel() > 1 and bool((idx[1:] < idx[:-1]).any())):
        return _take(x, idx)  # (take_rows gathers CSR rows in any order)
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


def _structure(edge_index: Tensor, n: int, keep: Tensor | None, *, ratio: float, method: str, k: int, hops: int,
               epoch: int, generator: torch.Generator | None, self_loops: bool, edge_weight: Tensor | None,
               weighted: bool) -> tuple[Data, Tensor]:
    """The coarse graph's edges (``edge_index`` without the diagonal, ``edge_weight`` if
    ``weighted``, ``num_nodes``) and the kept ids; ``edge_index`` is taken as valid."""
    if keep is None:
        keep = select_nodes(edge_index, n, num_kept(n, ratio), method, hops=hops, epoch=epoch, generator=generator)
    else:
        keep = check_keep(keep, n)
    keep = keep.long().to(edge_index.device)
    rows, cols, w = _coarse_entries(edge_index, n, keep, k, self_loops, edge_weight, diagonal=False)
    out = Data(edge_index=torch.stack([cols, rows]), num_nodes=keep.numel())
    if weighted:
        out.edge_weight = w
    return out, keep


def _restrict(out: Data, data: Data, keep: Tensor) -> Data:
    """``out`` with the rows ``keep`` of ``data``'s features, labels and masks, and ``node_ids``."""
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


def coarsen(data: Data, keep: Tensor | None = None, *, ratio: float = 0.5, method: str = "random", k: int = 1,
            hops: int = 2, epoch: int = 0, generator: torch.Generator | None = None,
            self_loops: bool = True, weighted: bool = False) -> Data:
    """One coarsening step: the graph on the kept nodes, ``A_c = P^T A^k P``, ``x_c = P^T x``.

    Pass ``keep`` (node ids) or let ``method`` select ``round(ratio * N)`` nodes. The
    result holds ``x``, ``y``, the masks, ``edge_index`` (without self-loops; the
    model's normalization adds its own; sorted by destination, then source), ``edge_weight``
    (walk counts) if ``weighted``, and ``node_ids``: for each coarse node, its id in the
    *original* graph (composed through earlier coarsenings). Everything is on ``data``'s device.
    """
    n = int(data.num_nodes)
    k = check_positive_int(k, "k")
    edge_index = check_edge_index(data.edge_index, n)
    out, keep = _structure(edge_index, n, keep, ratio=ratio, method=method, k=k, hops=hops, epoch=epoch,
                           generator=generator, self_loops=self_loops, edge_weight=getattr(data, "edge_weight", None),
                           weighted=weighted)
    return _restrict(out, data, keep)


def _check_hierarchy(data: Data, levels: int, ratio: float, k: int, method: str, min_nodes: int) -> tuple[Tensor, int]:
    """Check a hierarchy's arguments and ``data``'s edges once; return the edges (int64) and ``k``."""
    check_fraction(ratio, "ratio")
    k = check_positive_int(k, "k")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    level_sizes(int(data.num_nodes), levels, ratio, min_nodes)
    return check_edge_index(data.edge_index, int(data.num_nodes)), k


def coarsen_hierarchy(data: Data, levels: int, *, ratio: float = 0.5, method: str = "random", k: int = 1,
                      hops: int = 2, epoch: int = 0, generator: torch.Generator | None = None,
                      min_nodes: int = 2, self_loops: bool = True) -> list[Data]:
    """``[G_0, G_1, ..., G_L]`` with ``G_0 = data`` and ``G_{l+1} = coarsen(G_l)`` (nested:
    every level keeps a subset of the previous one's nodes, ``ratio`` of them), on ``data``'s device.

    Raises if ``levels`` is more than the graph allows (a level below ``min_nodes``).
    """
    edge_index, k = _check_hierarchy(data, levels, ratio, k, method, min_nodes)
    if generator is not None:  # one stream on the graph's device for all levels
        generator = device_generator(generator, edge_index.device)
    out = [data]
    for _ in range(levels):
        g = out[-1]
        coarse, keep = _structure(edge_index if g is data else g.edge_index, int(g.num_nodes), None, ratio=ratio,
                                  method=method, k=k, hops=hops, epoch=epoch, generator=generator,
                                  self_loops=self_loops, edge_weight=getattr(g, "edge_weight", None), weighted=False)
        out.append(_restrict(coarse, g, keep))
    return out


def coarsest(data: Data, levels: int, *, ratio: float = 0.5, method: str = "random", k: int = 1, hops: int = 2,
             epoch: int = 0, generator: torch.Generator | None = None, min_nodes: int = 2,
             self_loops: bool = True) -> Data:
    """``coarsen_hierarchy(data, levels, ...)[-1]`` (the same graph from the same draws), cheaper:
    the intermediate levels get their edges only; features, labels and masks are gathered once,
    for the last level, from ``data``. What a trainer that redraws coarse graphs needs."""
    edge_index, k = _check_hierarchy(data, levels, ratio, k, method, min_nodes)
    if generator is not None:
        generator = device_generator(generator, edge_index.device)
    g, ids = data, None
    for _ in range(levels):
        g, keep = _structure(edge_index if g is data else g.edge_index, int(g.num_nodes), None, ratio=ratio,
                             method=method, k=k, hops=hops, epoch=epoch, generator=generator, self_loops=self_loops,
                             edge_weight=getattr(g, "edge_weight", None), weighted=False)
        ids = keep if ids is None else _take(ids, keep)
    return data if ids is None else _restrict(g, data, ids)
