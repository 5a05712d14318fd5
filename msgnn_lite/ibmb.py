"""Influence-based mini-batching, IBMB (Gasteiger, Qian & Günnemann, LoG 2022), in pure PyTorch.

A GNN's prediction for an *output* node depends mostly on a few nodes around it, and
personalized PageRank (PPR, :mod:`msgnn_lite.ppr`) measures how much. IBMB therefore
builds each mini-batch from a set of output nodes plus the *auxiliary* nodes with the
highest influence on them, takes the induced subgraph, and computes the loss on the
output nodes only. The batches are computed **once**, before training, and reused every
epoch: no sampling during training, and the same batches serve fast inference.

Two ways to choose them, with PyG's names (``torch_geometric.loader.IBMBNodeLoader`` /
``IBMBBatchLoader``, which need torch-sparse; these do not):

* :class:`IBMBNodeLoader` — *node-wise*: push-PPR from every output node keeps its top
  ``num_auxiliary_nodes``; output nodes are then merged into batches of at most
  ``num_nodes_per_batch`` outputs, strongest mutual PPR first (union-find under the size
  cap, :func:`merge_outputs`), and each batch is its outputs plus all their auxiliary nodes.
* :class:`IBMBBatchLoader` — *batch-wise*: METIS partitions (:mod:`msgnn_lite.partition`)
  fix the output sets; each set's auxiliary nodes are the top nodes of the
  *topic-sensitive* PPR of the whole set (power iteration, :func:`msgnn_lite.ppr.topic_ppr`).

Batch order (``batch_order``): ``"rand"`` (a new random order each epoch), ``"order"``
(a fixed tour that makes consecutive batches' label distributions as different as
possible: greedy steps to the unvisited batch with the largest symmetric KL divergence)
or ``"sample"`` (the next batch is drawn with probability proportional to that
divergence). The paper finds that the ordering reduces the gradient bias of
label-skewed consecutive batches.

Each batch is a ``Data`` laid out like PyG's seed-first loaders: ``n_id`` (output nodes
first), ``batch_size`` (number of outputs), ``output_node_mask``, ``e_id``, local
``edge_index`` and the node attributes sliced. Node sets are cached on disk (keyed by the
graph and every argument, written atomically, read with ``weights_only=True``).
:func:`ibmb_inference` runs any trained model over such batches.

Devices: the node sets are set-up work on the host (numba push-PPR, METIS, union-find; the
topic-sensitive PPR runs on the graph's device), computed once. The batches are then built on
the data's device: a loader on CPU data yields CPU batches, one on CUDA data CUDA batches,
with no host copies while iterating. The epoch order indexes the Python list of batches, so
it is drawn on the CPU (see ``generator``).
"""
from __future__ import annotations

import hashlib
import heapq
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_finite, check_index_range, check_labels, check_positive, check_positive_int
from .loader import check_loader_options, induced_subgraph, to_csr
from .partition import cache_dir, graph_key, metis_partition
from .ppr import HAVE_NUMBA, as_node_ids, check_alpha, check_eps, push_ppr, topic_ppr
from .sparse import take_rows as _take
from .utils import atomic_path, device_generator, load_cache, to_device

__all__ = ["merge_outputs", "node_wise_node_sets", "batch_wise_node_sets", "label_distributions",
           "symmetric_kl", "kl_tour", "IBMBNodeLoader", "IBMBBatchLoader", "ibmb_inference", "BATCH_ORDERS"]

BATCH_ORDERS = ("order", "sample", "rand")

if HAVE_NUMBA:
    import numba


# --------------------------------------------------------------------------------------
# Node-wise IBMB: merge output nodes by mutual PPR under a size cap.
# --------------------------------------------------------------------------------------

def _union_under_cap(a, b, cap, parent, size):
    """Visit the pairs ``(a[i], b[i])`` in the given order and join their groups when the
    joined group has at most ``cap`` members (union by size, path halving)."""
    for i in range(a.shape[0]):
        x = a[i]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[i]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x == y or size[x] + size[y] > cap:
            continue
        if size[x] < size[y]:
            x, y = y, x
        parent[y] = x
        size[x] += size[y]
    for i in range(parent.shape[0]):  # flatten: parent[i] is i's root
        x = i
        while parent[x] != x:
            x = parent[x]
        parent[i] = x


if HAVE_NUMBA:
    _union_under_cap = numba.njit(cache=True)(_union_under_cap)


def merge_outputs(output_nodes: Tensor, ppr_nodes: Tensor, ppr_scores: Tensor, max_outputs: int) -> list[Tensor]:
    """Group output nodes into batches of at most ``max_outputs`` by mutual PPR (the paper's
    union-find merging, with affinities taken from each output's top-k PPR list only).

    Every pair of output nodes ``(s, t)`` where ``t`` is among ``s``'s top PPR nodes gets the
    affinity ``ppr_s(t) + ppr_t(s)`` (PyG uses every pushed PPR entry instead, so fewer
    outputs stay singletons there). Pairs are visited strongest first and their groups
    joined (union-find) unless the joined group would exceed ``max_outputs``; the groups
    left are then packed into as few batches as fit the cap (largest first, each into the
    emptiest open batch). Returns one tensor of output-node ids per batch, every output
    node in exactly one. Union-find is host code: the inputs are copied to the CPU once and
    the batches returned on the device of ``output_nodes``.
    """
    max_outputs = check_positive_int(max_outputs, "num_nodes_per_batch")
    dev = output_nodes.device
    out = output_nodes.cpu().long()
    ppr_nodes, ppr_scores = ppr_nodes.cpu(), ppr_scores.cpu()
    m = out.numel()
    num_nodes = int(max(int(out.max()), int(ppr_nodes.max())) + 1)
    pos = torch.full((num_nodes,), -1, dtype=torch.long)
    pos[out] = torch.arange(m)
    rows = torch.arange(m).unsqueeze(1).expand_as(ppr_nodes)
    valid = ppr_nodes >= 0
    other = torch.where(valid, pos[ppr_nodes.clamp(min=0)], torch.full_like(ppr_nodes, -1))
    keep = (other >= 0) & (other != rows)
    a, b, w = rows[keep], other[keep], ppr_scores[keep].double()
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key, inv = torch.unique(lo * m + hi, return_inverse=True)  # symmetric affinity per pair
    aff = torch.zeros(key.numel(), dtype=torch.float64).index_add_(0, inv, w)
    order = torch.sort(-aff, stable=True).indices
    pa, pb = (key[order] // m).numpy(), (key[order] % m).numpy()
    parent, size = np.arange(m, dtype=np.int64), np.ones(m, dtype=np.int64)
    _union_under_cap(pa, pb, max_outputs, parent, size)
    roots = torch.from_numpy(parent)
    uniq, group = torch.unique(roots, return_inverse=True)
    sizes = torch.bincount(group, minlength=uniq.numel())
    # Pack the groups: largest first, each into the open batch with the most room.
    bins: list[list[int]] = []
    heap: list[tuple[int, int]] = []  # (-room, batch index)
    for g in torch.sort(-sizes, stable=True).indices.tolist():
        sz = int(sizes[g])
        if heap and -heap[0][0] >= sz:
            room, j = heapq.heappop(heap)
            bins[j].append(g)
            heapq.heappush(heap, (room + sz, j))
        else:
            bins.append([g])
            heapq.heappush(heap, (-(max_outputs - sz), len(bins) - 1))
    member = torch.sort(group, stable=True)
    starts = torch.zeros(uniq.numel() + 1, dtype=torch.long)
    torch.cumsum(sizes, 0, out=starts[1:])
    batches = []
    for groups in bins:
        idx = torch.cat([member.indices[starts[g]:starts[g + 1]] for g in groups])
        batches.append(torch.sort(out[idx]).values.to(dev))
    return batches


def node_wise_node_sets(edge_index: Tensor, num_nodes: int, output_nodes: Tensor, num_auxiliary_nodes: int,
                        num_nodes_per_batch: int, alpha: float = 0.25, eps: float = 2e-4,
                        backend: str = "auto") -> tuple[list[Tensor], list[Tensor], dict]:
    """Node-wise IBMB: ``(outputs per batch, node set per batch, timings)``.

    A batch's node set is its output nodes (first, ascending) followed by the union of
    their top-``num_auxiliary_nodes`` PPR nodes that are not outputs of the batch (ascending).
    Computed on the CPU (push-PPR and union-find are host code; the graph is copied there once);
    the tensors returned are on the device of ``edge_index``.
    """
    dev = edge_index.device
    t0 = time.perf_counter()
    ppr = push_ppr(edge_index.cpu(), num_nodes, output_nodes, alpha=alpha, eps=eps, topk=num_auxiliary_nodes,
                   backend=backend)
    t1 = time.perf_counter()
    outputs = merge_outputs(ppr.sources, ppr.nodes, ppr.scores, num_nodes_per_batch)
    row = torch.full((num_nodes,), -1, dtype=torch.long)
    row[ppr.sources] = torch.arange(ppr.sources.numel())
    node_sets = []
    for out in outputs:
        aux = ppr.nodes[row[out]].reshape(-1)
        node_sets.append(_outputs_first(out, aux[aux >= 0], num_nodes))
    timings = {"ppr_s": t1 - t0, "batching_s": time.perf_counter() - t1, "ppr_edge_visits": ppr.pushes,
               "ppr_backend": ppr.backend}
    return [o.to(dev) for o in outputs], [s.to(dev) for s in node_sets], timings


def _outputs_first(outputs: Tensor, aux: Tensor, num_nodes: int) -> Tensor:
    """``outputs`` followed by the distinct ids of ``aux`` that are not outputs (ascending)."""
    aux = torch.unique(aux)
    is_out = torch.zeros(num_nodes, dtype=torch.bool)
    is_out[outputs] = True
    return torch.cat([outputs, aux[~is_out[aux]]])


# --------------------------------------------------------------------------------------
# Batch-wise IBMB: METIS output sets, topic-sensitive PPR auxiliary nodes.
# --------------------------------------------------------------------------------------

def batch_wise_node_sets(edge_index: Tensor, num_nodes: int, output_nodes: Tensor, num_partitions: int,
                         batch_expand_ratio: float = 1.0, alpha: float = 0.25, approximate_ppr_iterations: int = 50,
                         seed: int = 0, device=None) -> tuple[list[Tensor], list[Tensor], dict]:
    """Batch-wise IBMB: ``(outputs per batch, node set per batch, timings)``.

    METIS splits the graph into ``num_partitions`` parts; the output nodes in a part form a
    batch (parts without outputs are dropped). The batch's node set is its outputs plus the
    highest-scoring nodes of the topic-sensitive PPR of those outputs, up to
    ``ceil(batch_expand_ratio * part size)`` nodes in all (PyG's ``batch_expand_ratio``).
    METIS and the batching run on the CPU, the PPR power iteration on ``device`` (default: the
    device of ``edge_index``); the tensors returned are on the device of ``edge_index``.
    """
    num_partitions = check_positive_int(num_partitions, "num_partitions")
    if num_partitions > num_nodes:
        raise ValueError(f"num_partitions={num_partitions} exceeds num_nodes={num_nodes}; "
                         "need num_partitions <= num_nodes")
    ratio = check_positive(batch_expand_ratio, "batch_expand_ratio")
    output_nodes = as_node_ids(output_nodes, num_nodes, "output_nodes")  # distinct ids in range, on the CPU
    dev = edge_index.device
    edge_index = edge_index.cpu()
    t0 = time.perf_counter()
    part = metis_partition(edge_index, num_nodes, num_partitions, seed=seed)
    t1 = time.perf_counter()
    out_part = part[output_nodes]
    order = torch.sort(out_part, stable=True)
    counts = torch.bincount(out_part, minlength=num_partitions)
    part_sizes = torch.bincount(part, minlength=num_partitions)
    outputs = [torch.sort(o).values for o in torch.split(output_nodes[order.indices], counts.tolist()) if o.numel()]
    budgets = [max(1, math.ceil(ratio * int(part_sizes[p]))) for p in range(num_partitions) if int(counts[p])]
    tops = topic_ppr(edge_index, num_nodes, outputs, alpha=alpha, num_iterations=approximate_ppr_iterations,
                     topk=budgets, device=dev if device is None else device)
    t2 = time.perf_counter()
    node_sets = []
    is_out = torch.zeros(num_nodes, dtype=torch.bool)
    for out, top, budget in zip(outputs, tops, budgets):
        top = top.cpu()
        is_out[out] = True
        aux = top[~is_out[top]][:max(0, budget - out.numel())]  # by descending score
        is_out[out] = False
        node_sets.append(torch.cat([out, torch.sort(aux).values]))
    timings = {"partition_s": t1 - t0, "ppr_s": t2 - t1, "batching_s": time.perf_counter() - t2}
    return [o.to(dev) for o in outputs], [s.to(dev) for s in node_sets], timings


# --------------------------------------------------------------------------------------
# Batch scheduling by label distributions.
# --------------------------------------------------------------------------------------

def label_distributions(outputs: list[Tensor], y: Tensor, num_classes: int | None = None,
                        smoothing: float = 1e-3) -> Tensor:
    """``[num_batches, num_classes]``: each batch's label histogram over its output nodes,
    normalized, with ``smoothing`` added so the KL divergence stays finite. On ``y``'s device.

    Unlabelled output nodes (``y = -1``) are left out of the histograms (a batch of unlabelled
    nodes only gets the uniform ``smoothing``); labels must lie in ``[0, num_classes)``."""
    if not isinstance(y, Tensor) or y.is_floating_point():
        raise TypeError(f"y must be an integer tensor of class ids (-1: unlabelled), got "
                        f"{y.dtype if isinstance(y, Tensor) else type(y).__name__}")
    y = y.view(-1)
    smoothing = check_finite(smoothing, "smoothing")
    if not outputs:
        raise ValueError("outputs is empty; it must list each batch's output nodes")
    if smoothing <= 0:
        raise ValueError(f"smoothing must be > 0 (it keeps the KL divergence finite), got {smoothing}")
    c = max(int(y.max()) + 1, 1) if num_classes is None else check_positive_int(num_classes, "num_classes")
    check_labels(y, num_classes=c, name="y")
    outs = [check_index_range(o, y.numel(), f"outputs[{i}]").to(y.device) for i, o in enumerate(outputs)]
    hist = torch.stack([torch.bincount(y[o][y[o] >= 0], minlength=c).double() for o in outs])
    hist = hist / hist.sum(1, keepdim=True).clamp(min=1) + smoothing
    return hist / hist.sum(1, keepdim=True)


def symmetric_kl(p: Tensor) -> Tensor:
    """Pairwise ``KL(p_i || p_j) + KL(p_j || p_i)`` between the rows of ``p``."""
    logp = p.log()
    cross = p @ logp.T  # cross[i, j] = sum_c p_i log p_j
    self_ = cross.diagonal()
    kl = self_.unsqueeze(1) - cross  # KL(p_i || p_j)
    return kl + kl.T


def kl_tour(divergence: Tensor, start: int = 0) -> Tensor:
    """A heuristic tour through all batches that keeps consecutive batches far apart:
    from ``start``, always step to the unvisited batch with the largest divergence. A greedy
    host loop (one ``argmax`` read per step), run once; the tour is on ``divergence``'s device."""
    d = divergence.clone().double()
    b = d.size(0)
    if not 0 <= start < b:
        raise ValueError(f"start must lie in [0, {b}), got {start}")
    visited = torch.zeros(b, dtype=torch.bool, device=d.device)
    tour = [start]
    visited[start] = True
    for _ in range(b - 1):
        row = d[tour[-1]].masked_fill(visited, -math.inf)
        nxt = int(row.argmax())
        tour.append(nxt)
        visited[nxt] = True
    return torch.tensor(tour, device=d.device)


# --------------------------------------------------------------------------------------
# The loaders.
# --------------------------------------------------------------------------------------

def _valid_cache(obj) -> bool:
    """The structure the IBMB loaders write: packed outputs and node sets, and their timings."""
    keys = ("outputs", "outputs_ptr", "node_sets", "node_sets_ptr")
    return (isinstance(obj, dict) and all(isinstance(obj.get(k), Tensor) for k in keys)
            and isinstance(obj.get("timings"), dict) and obj["outputs_ptr"].numel() == obj["node_sets_ptr"].numel()
            and int(obj["outputs_ptr"][-1]) == obj["outputs"].numel()
            and int(obj["node_sets_ptr"][-1]) == obj["node_sets"].numel())


_CACHE_VERSION = "2"  # bump when the node-set construction changes, so old caches are not reused


def _cache_key(kind: str, edge_index: Tensor, num_nodes: int, outputs: Tensor, args: dict) -> str:
    h = hashlib.sha1()
    h.update(f"{kind}/v{_CACHE_VERSION}".encode())
    h.update(graph_key(edge_index, num_nodes).encode())
    h.update(outputs.cpu().numpy().tobytes())
    h.update(json.dumps(args, sort_keys=True).encode())
    return h.hexdigest()[:24]


def _pack(sets: list[Tensor]) -> tuple[Tensor, Tensor]:
    ptr = torch.zeros(len(sets) + 1, dtype=torch.long)
    torch.cumsum(torch.tensor([s.numel() for s in sets]), 0, out=ptr[1:])
    return torch.cat(sets), ptr


def _unpack(flat: Tensor, ptr: Tensor) -> list[Tensor]:
    return [flat[ptr[i]:ptr[i + 1]] for i in range(ptr.numel() - 1)]


class _IBMBLoader:
    """Shared machinery: compute (or load) the node sets, build the batches once, iterate.

    ``compute(edge_index, num_nodes, outputs, **args)`` returns ``(outputs per batch, node set
    per batch, timings)``: :func:`node_wise_node_sets` or :func:`batch_wise_node_sets`."""

    kind = ""

    @staticmethod
    def _check_pyg_options(owner: str, return_edge_index_type: str, kwargs: dict, **features) -> None:
        """PyG's options without an equivalent here must keep their defaults: batches are
        never merged (``batch_size=1``), their order is ``batch_order``'s (``shuffle=False``)
        and ``edge_index`` is a tensor (``"adj"`` would need torch-sparse)."""
        batch_size, shuffle = kwargs.pop("batch_size", 1), kwargs.pop("shuffle", False)
        check_loader_options(owner, kwargs, return_edge_index_type=(return_edge_index_type, "edge_index"),
                             batch_size=(batch_size, 1), shuffle=(shuffle, False), **features)

    def __init__(self, data: Data, batch_order: str, input_nodes, args: dict, cache: bool, save_dir,
                 generator: torch.Generator | None, log: bool, compute):
        if batch_order not in BATCH_ORDERS:
            raise ValueError(f"batch_order must be one of {BATCH_ORDERS}, got {batch_order!r}")
        self.data = data
        self.batch_order = batch_order
        self.generator = device_generator(generator, "cpu")  # the epoch order is drawn on the host
        n = data.num_nodes
        self.output_nodes = as_node_ids(input_nodes, n, "input_nodes")
        edge_index = data.edge_index
        self.device = edge_index.device
        path = None
        t0 = time.perf_counter()
        if cache:
            folder = Path(save_dir) if save_dir is not None else cache_dir() / "ibmb"
            path = folder / f"{self.kind}_{_cache_key(self.kind, edge_index, n, self.output_nodes, args)}.pt"
        stored = load_cache(path, _valid_cache) if path is not None else None  # a damaged file is rebuilt
        if stored is not None:
            outputs = _unpack(stored["outputs"], stored["outputs_ptr"])
            node_sets = _unpack(stored["node_sets"], stored["node_sets_ptr"])
            self.timings = dict(stored["timings"])
            self.from_cache = True
        else:
            outputs, node_sets, self.timings = compute(edge_index.cpu(), n, self.output_nodes, **args)
            self.from_cache = False
            if path is not None:
                flat_o, ptr_o = _pack(outputs)
                flat_n, ptr_n = _pack(node_sets)
                with atomic_path(path) as tmp:
                    torch.save({"outputs": flat_o, "outputs_ptr": ptr_o, "node_sets": flat_n, "node_sets_ptr": ptr_n,
                                "timings": self.timings}, tmp)
        self.node_set_time_s = time.perf_counter() - t0
        if log:
            where = "read from the cache" if self.from_cache else "computed"
            print(f"{type(self).__name__}: {len(outputs)} batches {where} in {self.node_set_time_s:.2f} s")
        self.outputs, self.node_sets = outputs, node_sets
        t1 = time.perf_counter()
        self.batches = self._build_batches()
        self.timings["subgraph_s"] = time.perf_counter() - t1
        self._divergence: Tensor | None = None
        self._tour: Tensor | None = None

    def _build_batches(self) -> list[Data]:
        data = self.data
        dev = self.device
        csr = to_csr(data.edge_index, data.num_nodes, by="dst")
        assoc = torch.full((data.num_nodes,), -1, dtype=torch.long, device=dev)
        node_keys = [k for k, v in data.items() if isinstance(v, Tensor) and k != "edge_index" and data.is_node_attr(k)]
        edge_keys = [k for k, v in data.items() if isinstance(v, Tensor) and k != "edge_index" and data.is_edge_attr(k)]
        batches = []
        for out, nodes in zip(self.outputs, self.node_sets):
            n_id = nodes.to(dev)
            edge_index, e_id = induced_subgraph(csr, n_id, assoc)
            b = Data(edge_index=edge_index, n_id=n_id, e_id=e_id, num_nodes=n_id.numel())
            for key in node_keys:
                b[key] = _take(data[key], n_id)
            for key in edge_keys:
                b[key] = _take(data[key], e_id)
            b.batch_size = int(out.numel())
            mask = torch.zeros(n_id.numel(), dtype=torch.bool, device=dev)
            mask[:out.numel()] = True
            b.output_node_mask = mask
            batches.append(b)
        return batches

    # -- scheduling --------------------------------------------------------------------
    def divergence(self) -> Tensor:
        """Pairwise symmetric KL divergence of the batches' output-label distributions."""
        if self._divergence is None:
            y = getattr(self.data, "y", None)
            if y is None:
                raise ValueError("batch_order 'order'/'sample' needs data.y (labels of the output nodes)")
            self._divergence = symmetric_kl(label_distributions(self.outputs, y.cpu()))  # host scheduling
        return self._divergence

    def epoch_order(self) -> Tensor:
        """The batch indices for one epoch, according to ``batch_order`` (a CPU tensor: it
        indexes the list of batches, so drawing it on the host needs no device sync)."""
        b = len(self.batches)
        if self.batch_order == "rand" or b == 1:
            return torch.randperm(b, generator=self.generator)
        if self.batch_order == "order":
            if self._tour is None:
                self._tour = kl_tour(self.divergence())
            return self._tour
        d = self.divergence().double()  # "sample": next batch drawn proportionally to its divergence
        first = int(torch.randint(b, (1,), generator=self.generator))
        order, visited = [first], torch.zeros(b, dtype=torch.bool)
        visited[first] = True
        for _ in range(b - 1):
            w = d[order[-1]].masked_fill(visited, 0.0)
            if float(w.sum()) <= 0:
                w = (~visited).double()
            nxt = int(torch.multinomial(w, 1, generator=self.generator))
            order.append(nxt)
            visited[nxt] = True
        return torch.tensor(order)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for i in self.epoch_order().tolist():
            yield self.batches[i]

    @property
    def preprocess_time_s(self) -> float:
        """Seconds of preprocessing when the node sets were computed (PPR, partitioning,
        merging) plus the subgraph building of this run; a cached run reports the stored
        figures, and ``node_set_time_s`` what reading the cache took."""
        t = self.timings
        return sum(float(t.get(k, 0.0)) for k in ("ppr_s", "partition_s", "batching_s", "subgraph_s"))

    def stats(self) -> dict:
        """Batch count and sizes: outputs and nodes per batch, edges, overlap factor."""
        nodes = torch.tensor([b.num_nodes for b in self.batches], dtype=torch.float)
        outs = torch.tensor([b.batch_size for b in self.batches], dtype=torch.float)
        return {"batches": len(self.batches), "outputs_per_batch": float(outs.mean()),
                "max_outputs_per_batch": int(outs.max()), "nodes_per_batch": float(nodes.mean()),
                "edges_per_batch": float(np.mean([b.num_edges for b in self.batches])),
                "nodes_per_output": float(nodes.sum() / outs.sum())}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batches={len(self.batches)}, outputs={self.output_nodes.numel()}, "
                f"batch_order={self.batch_order!r})")


class IBMBNodeLoader(_IBMBLoader):
    """Node-wise IBMB batches (PyG's ``IBMBNodeLoader`` arguments).

    Parameters
    ----------
    data:
        A PyG ``Data`` (``edge_index``, and usually ``x``, ``y``, masks).
    batch_order:
        ``"order"`` (KL tour), ``"sample"`` (KL-weighted draws) or ``"rand"``.
    input_nodes:
        The output nodes: ids, a bool mask, or ``None`` (all nodes, e.g. for inference).
    num_auxiliary_nodes:
        Top PPR nodes kept per output node (``topk``; IBMB uses 16 on ogbn-arxiv).
    num_nodes_per_batch:
        The cap on output nodes per batch.
    alpha, eps:
        PPR teleport probability and push threshold (the paper's 0.25 and 2e-4; PyG's
        defaults are 0.2 and 1e-5).
    backend:
        Push-PPR backend, ``"auto"``/``"numba"``/``"numpy"`` (see :func:`~msgnn_lite.ppr.push_ppr`).
    cache, save_dir:
        Store the node sets on disk (default folder ``$MSGNN_CACHE/ibmb``) and reuse them.
    return_edge_index_type, ``**kwargs``:
        PyG's; only ``"edge_index"``, ``batch_size=1`` and ``shuffle=False`` (the order is
        ``batch_order``'s) are supported; DataLoader worker options are ignored.
    generator:
        Seeds the ``"rand"``/``"sample"`` orders. The order indexes the list of batches and is
        drawn on the CPU: a CPU generator is used as it is (the same stream on any data
        device); one of another device seeds a CPU generator from one draw
        (:func:`~msgnn_lite.utils.device_generator`).
    """

    kind = "node"

    def __init__(self, data: Data, batch_order: str = "order", input_nodes=None, num_auxiliary_nodes: int = 16,
                 num_nodes_per_batch: int = 1024, alpha: float = 0.25, eps: float = 2e-4,
                 return_edge_index_type: str = "edge_index", *, backend: str = "auto", cache: bool = True,
                 save_dir=None, generator: torch.Generator | None = None, log: bool = False, **kwargs):
        self._check_pyg_options("IBMBNodeLoader", return_edge_index_type, kwargs)
        args = {"num_auxiliary_nodes": check_positive_int(num_auxiliary_nodes, "num_auxiliary_nodes"),
                "num_nodes_per_batch": check_positive_int(num_nodes_per_batch, "num_nodes_per_batch"),
                "alpha": check_alpha(alpha), "eps": check_eps(eps)}
        if backend not in ("auto", "numba", "numpy"):
            raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
        self.backend = "numba" if backend == "auto" and HAVE_NUMBA else ("numpy" if backend == "auto" else backend)
        args["backend"] = self.backend  # the backends differ within the error bound: cache them apart
        super().__init__(data, batch_order, input_nodes, args, cache, save_dir, generator, log, node_wise_node_sets)


class IBMBBatchLoader(_IBMBLoader):
    """Batch-wise IBMB batches (PyG's ``IBMBBatchLoader`` arguments).

    ``num_partitions`` METIS parts fix the output sets; ``batch_expand_ratio`` sets a
    batch's node count relative to its part's size; ``alpha`` and
    ``approximate_ppr_iterations`` configure the topic-sensitive PPR power iteration.
    ``metis_input_node_weight`` (PyG's METIS node weights for the output nodes) is not
    implemented: only ``None``. ``seed`` seeds METIS. Other arguments as in :class:`IBMBNodeLoader`.
    """

    kind = "batch"

    def __init__(self, data: Data, batch_order: str = "order", num_partitions: int = 16, input_nodes=None,
                 batch_expand_ratio: float = 1.0, metis_input_node_weight: float | None = None, alpha: float = 0.25,
                 approximate_ppr_iterations: int = 50, return_edge_index_type: str = "edge_index", *,
                 seed: int = 0, cache: bool = True, save_dir=None, generator: torch.Generator | None = None,
                 log: bool = False, **kwargs):
        self._check_pyg_options("IBMBBatchLoader", return_edge_index_type, kwargs,
                                metis_input_node_weight=(metis_input_node_weight, None))
        args = {"num_partitions": check_positive_int(num_partitions, "num_partitions"),
                "batch_expand_ratio": float(batch_expand_ratio), "alpha": check_alpha(alpha),
                "approximate_ppr_iterations": check_positive_int(approximate_ppr_iterations,
                                                                 "approximate_ppr_iterations"),
                "seed": int(seed)}
        if args["num_partitions"] > data.num_nodes:
            raise ValueError(f"num_partitions={num_partitions} exceeds num_nodes={data.num_nodes}; "
                             "need num_partitions <= num_nodes")
        if not args["batch_expand_ratio"] > 0:
            raise ValueError(f"batch_expand_ratio must be > 0, got {batch_expand_ratio}")
        super().__init__(data, batch_order, input_nodes, args, cache, save_dir, generator, log,
                         lambda *a, **kw: batch_wise_node_sets(*a, device=data.edge_index.device, **kw))


@torch.no_grad()
def ibmb_inference(model: nn.Module, loader: _IBMBLoader, device=None) -> Tensor:
    """Run a trained model over precomputed IBMB batches; return ``[N, out]`` predictions,
    filled for the loader's output nodes (NaN elsewhere). Works for any model with
    ``forward(x, edge_index)`` or a msgnn_lite model (operators cached per batch)."""
    from .train import graph_input

    was_training = model.training
    model.eval()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    out = None
    for b in loader.batches:
        b = to_device(b, dev)  # a copy: the loader's own batches stay where they were built
        logits = model(b.x, graph_input(model, b))[:b.batch_size]
        if out is None:
            out = torch.full((loader.data.num_nodes, logits.size(1)), float("nan"), device=dev)
        out[b.n_id[:b.batch_size]] = logits
    model.train(was_training)
    return out
