"""GraphSAGE-style neighbor sampling in pure PyTorch, with PyG's names and batch layout.

``NeighborLoader(data, num_neighbors=[15, 10], batch_size=1024, input_nodes=data.train_mask)``
yields one :class:`~torch_geometric.data.Data` per mini-batch, exactly as PyG's
``torch_geometric.loader.NeighborLoader`` does, without pyg-lib or torch-sparse:

* ``n_id``: the global ids of the sampled nodes, the ``batch_size`` seed nodes first,
  then the nodes first reached at hop 1, hop 2, ... (sorted by id within a hop);
* ``e_id``: the global ids (positions in ``data.edge_index``) of the sampled edges;
* ``edge_index``: the sampled edges ``neighbor -> node`` relabelled to local ids;
* ``x``, ``y`` and the masks sliced to ``n_id``; ``batch_size``, ``input_id``,
  ``num_sampled_nodes`` and ``num_sampled_edges`` (per hop).

Sampling is uniform without replacement per node and hop (``-1``: all neighbors), done
for the whole frontier at once on the CSR of incoming edges: nodes whose degree is at
most the fanout keep all their edges, the others draw a uniform ``k``-subset with a
vectorized Robert Floyd algorithm (``k`` tensor operations, no Python loop over nodes).
Everything stays on the device of ``data``, so it runs on a GPU unchanged.

:func:`layerwise_inference` is the standard way to evaluate a sampled model on every
node: one layer at a time over all nodes with all their neighbors, in node batches,
so memory is ``O(N x hidden)`` instead of the ``fanout^L`` receptive field.

**PyG drop-in.** This module exports every loader and sampler under PyG's names, so a
script switches between ``torch_geometric.loader`` and ``msgnn_lite.loader`` by changing
one import: :class:`NeighborLoader` (here), ``ClusterData`` and ``ClusterLoader`` (from
:mod:`msgnn_lite.partition`), ``GraphSAINTSampler`` and its node, edge and random-walk
subclasses (:mod:`msgnn_lite.saint`), ``IBMBNodeLoader`` and ``IBMBBatchLoader``
(:mod:`msgnn_lite.ibmb`). Their constructors take PyG's parameters in PyG's order with
PyG's defaults (``log`` defaults to ``False``: msgnn_lite is quiet). Options of
``torch.utils.data.DataLoader`` that PyG passes through ``**kwargs`` are accepted:
``batch_size``, ``shuffle``, ``drop_last`` and ``generator`` act as in PyG; worker options
such as ``num_workers`` or ``pin_memory`` change nothing, since batches are built,
vectorized, in the main process on the data's device. PyG features that have no
equivalent here (temporal or weighted sampling, disjoint subgraphs, ...) raise
``NotImplementedError`` when set to anything but their default. msgnn_lite's own
options come after PyG's, keyword-only.
"""
from __future__ import annotations

import importlib
import math

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import (check_edge_index, check_features, check_graph, check_index_range, check_positive_int,
                     checks_enabled, first_repeat)
from .sparse import SparseAdjacency, _csr, build_adjacency
from .sparse import take_rows as _take
from .utils import device_generator

__all__ = ["CSRGraph", "to_csr", "sample_neighbors", "induced_subgraph", "NeighborLoader", "layerwise_inference",
           "sampled_gcn_operator",
           "receptive_field_size", "ClusterData", "ClusterLoader", "GraphSAINTSampler", "GraphSAINTNodeSampler",
           "GraphSAINTEdgeSampler", "GraphSAINTRandomWalkSampler", "IBMBNodeLoader", "IBMBBatchLoader"]

# PyG's names defined in other modules, imported on first use (those modules import this one).
_REEXPORTS = {"ClusterData": "partition", "ClusterLoader": "partition", "GraphSAINTSampler": "saint",
              "GraphSAINTNodeSampler": "saint", "GraphSAINTEdgeSampler": "saint",
              "GraphSAINTRandomWalkSampler": "saint", "IBMBNodeLoader": "ibmb", "IBMBBatchLoader": "ibmb"}


def __getattr__(name: str):
    if name in _REEXPORTS:
        return getattr(importlib.import_module(f".{_REEXPORTS[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_REEXPORTS))


# torch DataLoader options that PyG's loaders pass through **kwargs and that change nothing here.
_WORKER_OPTIONS = frozenset({"num_workers", "pin_memory", "pin_memory_device", "persistent_workers", "prefetch_factor",
                             "timeout", "worker_init_fn", "multiprocessing_context", "in_order"})


def check_loader_options(owner: str, kwargs: dict, **pyg_features) -> None:
    """Validate what a PyG-named constructor received beyond what it implements.

    ``kwargs`` may hold only DataLoader worker options (ignored; batches are built in the
    main process); each ``pyg_features`` entry is ``name=(value, default)`` for a PyG
    parameter without an equivalent here, which must keep its default.
    """
    unknown = sorted(set(kwargs) - _WORKER_OPTIONS)
    if unknown:
        raise TypeError(f"{owner} got unexpected keyword argument(s) {unknown}; besides its own parameters it "
                        f"accepts torch DataLoader's worker options {sorted(_WORKER_OPTIONS)} (ignored)")
    for name, (value, default) in pyg_features.items():
        if value is not default and value != default:
            raise NotImplementedError(f"{owner}: {name}={value!r} is a PyG feature msgnn_lite does not implement; "
                                      f"leave it at its default {default!r}")


def attribute_keys(data: Data) -> tuple[list[str], list[str]]:
    """The node-level and edge-level tensor attributes of ``data`` (besides ``edge_index``).

    Every loader calls this once at construction, so it is also where the graph is checked
    (:func:`msgnn_lite.checks.check_graph`, labels excepted): a node attribute of the wrong
    length would otherwise be taken for a graph-level one and silently left out of the batches."""
    check_graph(data, labels=False)
    keys = [k for k, v in data.items() if isinstance(v, Tensor) and k != "edge_index"]
    return [k for k in keys if data.is_node_attr(k)], [k for k in keys if data.is_edge_attr(k)]


def subgraph_batch(data: Data, keys: tuple[list[str], list[str]], edge_index: Tensor, n_id: Tensor,
                   e_id: Tensor) -> Data:
    """A batch ``Data``: local ``edge_index``, ``n_id``, ``e_id``, and ``data``'s node and edge
    attributes (``keys``, from :func:`attribute_keys`) sliced to them."""
    batch = Data(edge_index=edge_index, n_id=n_id, e_id=e_id, num_nodes=n_id.numel())
    for key in keys[0]:
        batch[key] = _take(data[key], n_id)
    for key in keys[1]:
        batch[key] = _take(data[key], e_id)
    return batch


class CSRGraph:
    """Incoming-edge CSR of a graph: the in-neighbors of node ``i`` are
    ``col[rowptr[i]:rowptr[i+1]]`` and ``e_id`` maps each CSR slot back to its column
    in the original ``edge_index`` (PyG's ``source_to_target`` flow)."""

    def __init__(self, rowptr: Tensor, col: Tensor, e_id: Tensor, num_nodes: int):
        self.rowptr, self.col, self.e_id, self.num_nodes = rowptr, col, e_id, num_nodes

    @property
    def deg(self) -> Tensor:
        return self.rowptr[1:] - self.rowptr[:-1]

    def to(self, device) -> "CSRGraph":
        return CSRGraph(self.rowptr.to(device), self.col.to(device), self.e_id.to(device), self.num_nodes)


def to_csr(edge_index: Tensor, num_nodes: int, by: str = "dst") -> CSRGraph:
    """Group the edges by destination (``by="dst"``: in-neighbors, what message passing
    aggregates) or by source (``by="src"``: out-neighbors, what a random walk follows)."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    if by not in ("dst", "src"):
        raise ValueError(f"by must be 'dst' or 'src', got {by!r}")
    key, other = (edge_index[1], edge_index[0]) if by == "dst" else (edge_index[0], edge_index[1])
    if key.numel() > 1 and not bool((key[1:] >= key[:-1]).all()):
        perm = torch.sort(key, stable=True).indices
    else:
        perm = torch.arange(key.numel(), device=key.device)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=key.device)
    torch.cumsum(torch.bincount(key, minlength=num_nodes), 0, out=rowptr[1:])
    return CSRGraph(rowptr, other[perm], perm, num_nodes)


def _segment_arange(counts: Tensor) -> Tensor:
    """``[0..c0-1, 0..c1-1, ...]`` for non-negative ``counts``."""
    total = int(counts.sum())
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(total, device=counts.device) - torch.repeat_interleave(starts, counts, output_size=total)


def _floyd_sample(deg: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """For each row, a uniform random ``k``-subset of ``range(deg[row])`` (``deg >= k``),
    as a ``[rows, k]`` tensor. Robert Floyd's algorithm, vectorized over rows: for
    ``j = d-k .. d-1`` draw ``t ~ U{0..j}``; keep ``t`` unless already chosen, else take ``j``.
    Every ``k``-subset is equally likely."""
    m = deg.numel()
    out = torch.empty(m, k, dtype=torch.long, device=deg.device)
    for i in range(k):
        j = deg - k + i  # [m]
        t = (torch.rand(m, dtype=torch.float64, device=deg.device, generator=generator) * (j + 1)).long()
        t = torch.minimum(t, j)  # guards the float edge case rand*(j+1) == j+1
        if i > 0:
            taken = (out[:, :i] == t.unsqueeze(1)).any(1)
            t = torch.where(taken, j, t)
        out[:, i] = t
    return out


def sample_neighbors(csr: CSRGraph, nodes: Tensor, fanout: int, replace: bool = False,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Sample up to ``fanout`` in-neighbors of each of ``nodes`` (``-1``: all of them).

    Returns ``(target, neighbor, e_id)``: ``target`` indexes into ``nodes`` (position of
    the node that received the edge), ``neighbor`` is the global id of the sampled
    neighbor and ``e_id`` the edge's column in the original ``edge_index``. Edges are
    grouped by target in the order of ``nodes``. Without replacement a node of degree
    ``d`` gets ``min(d, fanout)`` distinct edges; with ``replace=True`` exactly ``fanout``
    (none when ``d = 0``).
    """
    if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < -1:
        raise ValueError(f"fanout must be an integer >= 0 or -1 (all neighbors), got {fanout!r}")
    start = _take(csr.rowptr, nodes)
    deg = _take(csr.rowptr, nodes + 1) - start
    if fanout == -1:
        counts = deg
    elif replace:
        counts = torch.where(deg > 0, torch.full_like(deg, fanout), deg)
    else:
        counts = torch.clamp(deg, max=fanout)
    offset = _segment_arange(counts)  # all-neighbor offsets; overwritten below where sampled
    if fanout > 0 and (replace or fanout != -1):
        if replace:
            sel = (deg > 0).nonzero().view(-1)
            dsel = _take(deg, sel).unsqueeze(1)
            draw = (torch.rand(sel.numel(), fanout, dtype=torch.float64, device=deg.device, generator=generator)
                    * dsel).long()
            draw = torch.minimum(draw, dsel - 1)
        else:
            sel = (deg > fanout).nonzero().view(-1)
            draw = _floyd_sample(_take(deg, sel), fanout, generator) if sel.numel() else None
        if sel.numel():
            first = _take(torch.cumsum(counts, 0) - counts, sel)
            slots = first.unsqueeze(1) + torch.arange(fanout, device=deg.device)
            offset[slots.view(-1)] = draw.reshape(-1)
    target = torch.repeat_interleave(torch.arange(nodes.numel(), device=nodes.device), counts,
                                     output_size=offset.numel())
    pos = _take(start, target) + offset
    return target, _take(csr.col, pos), _take(csr.e_id, pos)


def induced_subgraph(csr: CSRGraph, n_id: Tensor, assoc: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The edges among the nodes ``n_id`` (distinct global ids), relabelled to positions in
    ``n_id``: returns ``(edge_index, e_id)``. Cost is the in-degree sum of ``n_id``, not the
    graph's edge count. ``assoc`` is an optional all ``-1`` scratch vector of length
    ``num_nodes`` (reused across calls; it is all ``-1`` again on return)."""
    dev = csr.rowptr.device
    n_id = check_index_range(n_id, csr.num_nodes, "n_id", distinct=True).to(dev)  # once per call: set-up code
    own = assoc is None
    if own:
        assoc = torch.full((csr.num_nodes,), -1, dtype=torch.long, device=dev)
    assoc[n_id] = torch.arange(n_id.numel(), device=dev)
    try:
        start = _take(csr.rowptr, n_id)
        deg = _take(csr.rowptr, n_id + 1) - start
        tgt = torch.repeat_interleave(torch.arange(n_id.numel(), device=dev), deg)
        slot = _take(start, tgt) + _segment_arange(deg)
        src = _take(assoc, _take(csr.col, slot))
        keep = src >= 0
        edge_index = torch.stack([src[keep], tgt[keep]])
        e_id = _take(csr.e_id, slot[keep])
    finally:
        if not own:
            assoc[n_id] = -1
    return edge_index, e_id


_WHY_DISTINCT = ("a batch holds each node once (n_id lists distinct nodes, and the sampled edges are "
                 "relabelled through one local id per node), so a seed may repeat across batches but not "
                 "within one")


def check_seeds(seeds, num_nodes: int, name: str = "seeds") -> Tensor:
    """The seeds of one batch: node ids in ``[0, num_nodes)``, none twice (see ``_WHY_DISTINCT``)."""
    seeds = check_index_range(seeds, num_nodes, name)
    if checks_enabled():
        v = first_repeat(seeds)
        if v is not None:
            raise ValueError(f"{name} lists node {v} more than once; {_WHY_DISTINCT}")
    return seeds


def _as_index(input_nodes, num_nodes: int, device) -> Tensor:
    if input_nodes is None:
        return torch.arange(num_nodes, device=device)
    if not isinstance(input_nodes, Tensor):
        input_nodes = torch.as_tensor(input_nodes)
    if input_nodes.dtype == torch.bool:
        if input_nodes.dim() != 1 or input_nodes.numel() != num_nodes:
            raise ValueError(f"input_nodes as a mask must have shape [{num_nodes}], got {list(input_nodes.shape)}")
        idx = input_nodes.nonzero().view(-1)
    else:
        if input_nodes.is_floating_point() or input_nodes.dim() != 1:
            raise TypeError("input_nodes must be a bool mask or a 1-D integer tensor of node ids")
        idx = input_nodes.long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_nodes):
            raise ValueError(f"input_nodes holds ids outside [0, {num_nodes})")
    if idx.numel() == 0:
        raise ValueError("input_nodes selects no node; it must select at least one")
    return idx.to(device)


class NeighborLoader:
    """Mini-batches of sampled ``L``-hop neighborhoods (Hamilton et al., 2017), PyG-compatible.

    The parameters are PyG's ``torch_geometric.loader.NeighborLoader``'s, in its order.

    Parameters
    ----------
    data:
        A PyG ``Data`` with ``edge_index`` (and usually ``x``, ``y``, masks). Node-level
        tensors (first dimension ``num_nodes``) are sliced into each batch; edge-level ones
        (``edge_attr``, ``edge_weight``) are sliced by ``e_id``.
    num_neighbors:
        Fanout per hop, e.g. ``[15, 10]``; ``-1`` takes all neighbors at that hop.
    input_nodes:
        Seeds: a bool mask, an index tensor or ``None`` (all nodes). An index tensor may list a
        node more than once (to oversample a class, or to draw one node many times): copies go
        to different batches. A batch holds each node once, so two copies of a node in the same
        batch are refused at construction (without ``shuffle``: copies closer than
        ``batch_size``; with ``shuffle``: more copies of a node than batches in an epoch). With
        repeats and ``shuffle`` the epoch's batches differ in size by at most one.
    replace:
        Sample with replacement (default: without, as GraphSAGE and PyG).
    transform:
        A callable applied to each batch (PyG's ``transform``).
    is_sorted, filter_per_worker:
        Accepted and ignored (the CSR is built once; there are no workers).
    input_time, subgraph_type, disjoint, temporal_strategy, time_attr, weight_attr, transform_sampler_output, neighbor_sampler, directed:
        PyG features without an equivalent here: only their defaults are accepted.
    batch_size, shuffle, drop_last:
        Seed nodes per batch; shuffle the seeds each epoch; drop the last incomplete batch
        (DataLoader options, keyword-only as in PyG).
    generator:
        A ``torch.Generator`` for reproducible shuffling and sampling; one of another device
        than the data's (e.g. a seeded CPU generator for CUDA data) seeds a generator on the
        data's device (:func:`msgnn_lite.utils.device_generator`). Default: the global RNG
        (seeded by ``seed_everything``).
    ``**kwargs``:
        DataLoader worker options (``num_workers``, ``pin_memory``, ...), ignored.
    """

    def __init__(self, data: Data, num_neighbors, input_nodes=None, input_time=None, replace: bool = False,
                 subgraph_type: str = "directional", disjoint: bool = False, temporal_strategy: str = "uniform",
                 time_attr: str | None = None, weight_attr: str | None = None, transform=None,
                 transform_sampler_output=None, is_sorted: bool = False, filter_per_worker: bool | None = None,
                 neighbor_sampler=None, directed: bool = True, *, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, generator: torch.Generator | None = None, **kwargs):
        check_loader_options("NeighborLoader", kwargs, input_time=(input_time, None),
                             subgraph_type=(str(getattr(subgraph_type, "value", subgraph_type)), "directional"),
                             disjoint=(disjoint, False), temporal_strategy=(temporal_strategy, "uniform"),
                             time_attr=(time_attr, None), weight_attr=(weight_attr, None),
                             transform_sampler_output=(transform_sampler_output, None),
                             neighbor_sampler=(neighbor_sampler, None), directed=(directed, True))
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be a callable applied to each batch, got {type(transform).__name__}")
        if not isinstance(num_neighbors, (list, tuple)) or len(num_neighbors) == 0:
            raise ValueError("num_neighbors must be a non-empty list of fanouts such as [15, 10], "
                             f"got {num_neighbors!r}")
        for hop, k in enumerate(num_neighbors):
            if isinstance(k, bool) or not isinstance(k, int) or k < -1:
                raise ValueError(f"num_neighbors[{hop}] must be an integer >= 0 or -1 (all neighbors), got {k!r}")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.data = data
        self.num_neighbors = list(num_neighbors)
        self.shuffle, self.replace, self.drop_last = shuffle, replace, drop_last
        self.transform = transform
        n = data.num_nodes
        self.device = data.edge_index.device
        self.generator = device_generator(generator, self.device)  # random numbers drawn where the graph lives
        self.csr = to_csr(data.edge_index, n, by="dst")
        self.input_nodes = _as_index(input_nodes, n, self.device)
        self._repeats = self._check_repeats()
        self._assoc = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self._keys = attribute_keys(data)

    def _check_repeats(self) -> bool:
        """Seeds may repeat across batches (oversampling a class, drawing a node many times), never
        within one. Checked once here, so the batches need no per-batch check: without shuffling the
        fixed batches are checked; with shuffling each node must repeat at most once per batch of the
        epoch (:meth:`_spread_batches` then places its copies in different batches)."""
        seeds, bs, n = self.input_nodes, self.batch_size, self.data.num_nodes
        if bs == 1 or seeds.numel() < 2 or torch.unique(seeds).numel() == seeds.numel():
            return False
        if not self.shuffle:
            batch = torch.arange(seeds.numel(), device=seeds.device) // bs
            key = first_repeat(batch * n + seeds)
            if key is not None:
                raise ValueError(f"input_nodes lists node {key % n} twice within batch {key // n} (batch_size={bs}, "
                                 f"shuffle=False); {_WHY_DISTINCT}. Place the copies at least batch_size apart, or "
                                 f"use shuffle=True (copies then go to different batches) or batch_size=1")
            return True
        num_batches = len(self)
        counts = torch.unique(seeds, return_counts=True)
        most = int(counts[1].max())
        if num_batches and most > num_batches:
            node = int(counts[0][counts[1].argmax()])
            raise ValueError(f"input_nodes lists node {node} {most} times, but an epoch has only {num_batches} "
                             f"batches of batch_size={bs}; {_WHY_DISTINCT}. Use a smaller batch_size (at most "
                             f"{seeds.numel() // most}) or fewer copies")
        return True

    def _spread_batches(self) -> list[Tensor]:
        """One epoch's batches of shuffled seeds when some seeds repeat: the distinct nodes in a
        random order with each node's copies next to each other, dealt round-robin into the
        epoch's batches, so the copies of a node (at most one per batch, checked at construction)
        land in different batches. Batches then differ in size by at most one (all ``batch_size``
        with ``drop_last``); without repeats this is the same as a plain shuffle."""
        seeds, gen = self.input_nodes, self.generator
        num_batches = len(self)
        shuffled = seeds[torch.randperm(seeds.numel(), device=seeds.device, generator=gen)]
        _, group = torch.unique(shuffled, return_inverse=True)
        rank = torch.randperm(int(group.max()) + 1, device=seeds.device, generator=gen)[group]
        grouped = shuffled[torch.sort(rank, stable=True).indices]
        if self.drop_last:
            grouped = grouped[:num_batches * self.batch_size]
        slot = torch.arange(grouped.numel(), device=seeds.device) % num_batches
        sizes = torch.bincount(slot, minlength=num_batches).tolist()
        return list(torch.split(grouped[torch.sort(slot, stable=True).indices], sizes))

    def __len__(self) -> int:
        n = self.input_nodes.numel()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        seeds = self.input_nodes
        if self.shuffle and self._repeats:
            batches = self._spread_batches()
        else:
            if self.shuffle:
                perm = torch.randperm(seeds.numel(), device=seeds.device, generator=self.generator)
                seeds = seeds[perm]
            batches = (seeds[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self)))
        for batch in batches:  # checked at construction: ids in range, none twice within a batch
            yield self._sample(batch)

    def sample_nodes(self, seeds) -> tuple[Tensor, Tensor, Tensor, list[int], list[int]]:
        """The sampling alone: ``(n_id, local edge_index, e_id, nodes per hop, edges per hop)``.

        ``seeds``: distinct node ids (a tensor or a list) in ``[0, num_nodes)``."""
        return self._sample_nodes(check_seeds(seeds, self.data.num_nodes))

    def _sample_nodes(self, seeds: Tensor) -> tuple[Tensor, Tensor, Tensor, list[int], list[int]]:
        assoc = self._assoc
        seeds = seeds.to(self.device)
        n_ids = [seeds]
        assoc[seeds] = torch.arange(seeds.numel(), device=self.device)
        frontier, frontier_start, total = seeds, 0, seeds.numel()
        rows, cols, eids = [], [], []
        nodes_per_hop, edges_per_hop = [seeds.numel()], []
        try:
            for k in self.num_neighbors:
                target, nbr, e_id = sample_neighbors(self.csr, frontier, k, self.replace, self.generator)
                new = nbr[_take(assoc, nbr) < 0]
                new = torch.unique(new)
                assoc[new] = torch.arange(total, total + new.numel(), device=self.device)
                rows.append(_take(assoc, nbr))
                cols.append(target + frontier_start)
                eids.append(e_id)
                n_ids.append(new)
                nodes_per_hop.append(new.numel())
                edges_per_hop.append(e_id.numel())
                frontier, frontier_start, total = new, total, total + new.numel()
            n_id = torch.cat(n_ids)
        finally:
            assoc[torch.cat(n_ids)] = -1  # reset only what this batch touched
        edge_index = torch.stack([torch.cat(rows), torch.cat(cols)])
        return n_id, edge_index, torch.cat(eids), nodes_per_hop, edges_per_hop

    def sample(self, seeds) -> Data:
        """One batch for the given seed nodes: distinct global ids (a tensor or a list) in
        ``[0, num_nodes)``, checked (an id out of range is an ``IndexError`` naming ``seeds``)."""
        return self._sample(check_seeds(seeds, self.data.num_nodes))

    def _sample(self, seeds: Tensor) -> Data:
        n_id, edge_index, e_id, nph, eph = self._sample_nodes(seeds)
        batch = subgraph_batch(self.data, self._keys, edge_index, n_id, e_id)
        batch.batch_size = int(seeds.numel())
        batch.input_id = seeds
        batch.num_sampled_nodes = nph
        batch.num_sampled_edges = eph
        return self.transform(batch) if self.transform is not None else batch

    def __repr__(self) -> str:
        return (f"NeighborLoader(num_neighbors={self.num_neighbors}, batch_size={self.batch_size}, "
                f"num_seeds={self.input_nodes.numel()}, shuffle={self.shuffle})")


def sampled_gcn_operator(batch: Data, degree: Tensor) -> SparseAdjacency:
    """The GCN operator of a :class:`NeighborLoader` batch, normalised with the **full graph's**
    degrees: an unbiased estimate of the full graph's aggregation for every node whose
    neighbours the batch sampled (the seeds, and each hop but the last).

    PyG's ``GCNConv`` on a sampled batch normalises ``D^-1/2 (A+I) D^-1/2`` on the batch's own
    edges, so a node sees its *sampled* degree and the last hop's nodes look like degree-0
    nodes: the rows of the operator no longer sum to what they do on the full graph, and on a
    dense graph (Amazon Computers: average degree 36, fanouts [25, 10]) the seeds' inputs grow
    several times larger than in full-batch training (notebook 12 measures both). Here the
    weight of a sampled edge ``j -> i`` is ``(d_i / s_i) / sqrt((d_i + 1)(d_j + 1))`` (``d``:
    full-graph in-degrees, ``degree``; ``s_i``: the neighbours of ``i`` the batch sampled,
    uniformly without replacement) and every node keeps its self-loop ``1 / (d_i + 1)``. The
    expectation over the sampling of each sampled row equals the full operator's row; when the
    fanout covers a node's degree the row is exact.

    ``degree`` is ``degree[v]``, the in-degree of every node of the full graph (e.g.
    ``torch.bincount(data.edge_index[1], minlength=data.num_nodes)``), on the batch's device.
    For :func:`~msgnn_lite.train.minibatch_step`'s ``adjacency`` hook."""
    if "n_id" not in batch:
        raise ValueError("batch has no n_id; sampled_gcn_operator takes a NeighborLoader batch")
    if not isinstance(degree, Tensor) or degree.dim() != 1:
        raise ValueError(f"degree must be a 1-D tensor of full-graph in-degrees, got "
                         f"{type(degree).__name__ if not isinstance(degree, Tensor) else list(degree.shape)}")
    n = batch.num_nodes
    src, dst = batch.edge_index[0], batch.edge_index[1]
    deg = _take(degree, batch.n_id).to(torch.float32)
    sampled = torch.bincount(dst, minlength=n).to(torch.float32)
    scale = deg / sampled.clamp(min=1.0)  # d_i / s_i (0 / 1 = 0 where nothing was sampled)
    tilde = deg + 1.0
    weight = _take(scale, dst) / torch.sqrt(_take(tilde, src) * _take(tilde, dst))
    loops = torch.arange(n, device=dst.device)
    edges = torch.cat([batch.edge_index, torch.stack([loops, loops])], dim=1)
    adj = build_adjacency(edges, n, "sum", edge_weight=torch.cat([weight, 1.0 / tilde]), add_self_loops=False)
    return SparseAdjacency(adj.matrix, "gcn")


def receptive_field_size(data: Data, num_neighbors, seeds: Tensor, generator=None) -> list[int]:
    """Cumulative number of distinct nodes touched after each hop when sampling
    ``num_neighbors`` from ``seeds`` (``-1``: the full ``L``-hop neighborhood)."""
    seeds = check_seeds(seeds, data.num_nodes)
    loader = NeighborLoader(data, num_neighbors, batch_size=max(int(seeds.numel()), 1), generator=generator)
    _, _, _, nph, _ = loader.sample_nodes(seeds)
    out, acc = [], 0
    for c in nph:
        acc += c
        out.append(acc)
    return out


@torch.no_grad()
def layerwise_inference(model: nn.Module, data: Data, batch_size: int = 4096, device=None,
                        x: Tensor | None = None, progress: bool = False) -> Tensor:
    """Exact full-neighbor inference of a msgnn_lite ``GCN``/``SAGE`` stack on every node,
    one layer at a time in node batches (PyG's ``model.inference(x_all, subgraph_loader)``).

    Each layer's output for a batch of nodes uses the rows of the *full-graph*
    normalized adjacency (so GCN's degrees are the true ones), gathered with all
    neighbors. Memory: two ``[N, hidden]`` tensors plus one batch's neighborhood.
    Returns the logits ``[N, out]`` on ``device`` (default: the model's device).
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if not hasattr(model, "convs"):
        raise TypeError("layerwise_inference needs a msgnn_lite GCN/SAGE model (with .convs)")
    was_training = model.training
    model.eval()
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    n = data.num_nodes
    full = build_adjacency(data.edge_index.to(dev), n, model.normalization).matrix
    crow, colidx, vals = full.crow_indices(), full.col_indices(), full.values()
    h = check_features(data.x if x is None else x, n, "x" if x is not None else "data.x")
    if h.layout != torch.strided:  # sparse bag-of-words features: rows are gathered densely
        h = h.to_dense()
    assoc = torch.full((n,), -1, dtype=torch.long, device=dev)
    from tqdm.auto import tqdm

    num_layers = len(model.convs)
    for i, conv in enumerate(model.convs):
        outs = []
        for start in tqdm(range(0, n, batch_size), disable=not progress, leave=False, desc=f"layer {i + 1}"):
            rows = torch.arange(start, min(start + batch_size, n), device=dev)
            lo, hi = int(crow[rows[0]]), int(crow[rows[-1] + 1])
            nbr = colidx[lo:hi]
            w = vals[lo:hi]
            extra = torch.unique(nbr[(nbr < rows[0]) | (nbr > rows[-1])])
            n_id = torch.cat([rows, extra])
            assoc[n_id] = torch.arange(n_id.numel(), device=dev)
            src = assoc[nbr]
            assoc[n_id] = -1
            m = n_id.numel()
            ptr = torch.zeros(m + 1, dtype=torch.long, device=dev)
            ptr[1:rows.numel() + 1] = crow[rows + 1] - lo
            ptr[rows.numel() + 1:] = hi - lo
            adj = SparseAdjacency(_csr(ptr, src, w, m, m), model.normalization)
            out = conv(h[n_id.to(h.device)].to(dev), adj)[:rows.numel()]
            if i < num_layers - 1:
                if getattr(model, "norms", None) is not None:
                    out = model.norms[i](out)
                out = torch.relu(out)
            outs.append(out)
        h = torch.cat(outs)
    model.train(was_training)
    return h
