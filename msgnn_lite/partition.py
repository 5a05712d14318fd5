"""Cluster-GCN (Chiang et al., 2019) in pure PyTorch: METIS partitions through ``pymetis``,
cached on disk, and stochastic multi-cluster mini-batches, with PyG's names.

``ClusterData(data, num_parts=1500)`` partitions the graph once (METIS, k-way; the
result is cached under ``save_dir``, else ``$MSGNN_CACHE`` or ``~/.cache/msgnn_lite``,
keyed by a hash of the graph and ``num_parts``, written atomically) and sorts the nodes
by part. Both classes take PyG's constructor parameters (see :mod:`msgnn_lite.loader`).
``ClusterLoader(cluster_data, batch_size=20, shuffle=True)`` then yields, per step,
the subgraph induced by ``batch_size`` random clusters: the edges *between* the chosen
clusters are restored, as the paper's stochastic multiple partitions do. One epoch
visits every node exactly once.

:func:`partition_stats` reports a partition's edge cut and balance;
:func:`random_partition` gives the baseline with the same part sizes;
:func:`diag_enhanced_adjacency` is the paper's diagonal enhancement
``A' = (D+I)^-1 (A+I)``, ``A' + lambda diag(A')`` (its Eq. 11).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from .checks import check_edge_index, check_finite, check_index_range, check_positive_int
from .loader import _segment_arange, attribute_keys, check_loader_options, subgraph_batch
from .sparse import take_rows as _take
from .sparse import SparseAdjacency, _compress, _csr
from .utils import atomic_path, device_generator, load_cache

__all__ = ["cache_dir", "graph_key", "metis_partition", "random_partition", "partition_stats", "ClusterData",
           "ClusterLoader", "diag_enhanced_adjacency"]


def cache_dir() -> Path:
    """``$MSGNN_CACHE`` if set, else ``~/.cache/msgnn_lite``."""
    env = os.environ.get("MSGNN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "msgnn_lite"


def graph_key(edge_index: Tensor, num_nodes: int) -> str:
    """A content hash of the graph (its edge list and node count)."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    h = hashlib.sha1()
    h.update(str(num_nodes).encode())
    h.update(edge_index.detach().cpu().contiguous().long().numpy().tobytes())
    return h.hexdigest()[:20]


def _metis_csr(edge_index: Tensor, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric, loop-free, duplicate-free adjacency (what METIS requires) as CSR arrays."""
    ei = edge_index.cpu()
    src, dst = torch.cat([ei[0], ei[1]]), torch.cat([ei[1], ei[0]])
    keep = src != dst
    key = torch.unique(src[keep] * num_nodes + dst[keep])  # sorted by (src, dst), duplicates gone
    src, dst = key // num_nodes, key % num_nodes
    xadj = _compress(src, num_nodes)
    return xadj.numpy().astype(np.int64), dst.numpy().astype(np.int64)


def metis_partition(edge_index: Tensor, num_nodes: int, num_parts: int, recursive: bool = False, seed: int = 0,
                    cache: bool = True, log: bool = False, save_dir=None, filename: str | None = None) -> Tensor:
    """Node -> part (``[num_nodes]`` int64) from METIS on the symmetrized graph.

    With ``cache=True`` the result is stored in ``save_dir`` (default ``cache_dir()/partitions/``)
    under ``filename`` (default: a name made of the graph's hash, ``num_parts``, ``recursive``
    and ``seed``), and reused next time if it was computed for the same graph and settings.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    num_parts = check_positive_int(num_parts, "num_parts")
    if num_parts > num_nodes:
        raise ValueError(f"num_parts={num_parts} exceeds num_nodes={num_nodes}; need num_parts <= num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.long)
    path = None
    if cache:
        settings = f"{graph_key(edge_index, num_nodes)}_p{num_parts}_{'rec' if recursive else 'kway'}_s{seed}"
        path = Path(save_dir).expanduser() if save_dir is not None else cache_dir() / "partitions"
        path = path / (filename or f"metis_{settings}.pt")
        stored = load_cache(path, lambda obj: isinstance(obj, (Tensor, dict)))  # a damaged file is rebuilt
        if stored is not None:
            if isinstance(stored, Tensor):  # files written before the settings were recorded
                stored = {"part": stored, "settings": settings if filename is None else None}
            part = stored.get("part")
            if (stored.get("settings") == settings and isinstance(part, Tensor) and part.numel() == num_nodes
                    and part.dtype == torch.long and (num_nodes == 0 or (int(part.min()) >= 0
                                                                         and int(part.max()) < num_parts))):
                if log:
                    print(f"METIS partition loaded from the cache ({path.name})")
                return part
            if log:
                print(f"{path.name} holds another graph's partition; recomputing")
    try:
        import pymetis
    except ImportError as err:  # pragma: no cover - pymetis is a dependency
        raise ImportError("ClusterData needs pymetis (pip install pymetis)") from err
    t0 = time.perf_counter()
    xadj, adjncy = _metis_csr(edge_index, num_nodes)
    opts = pymetis.Options(seed=seed)
    if hasattr(pymetis, "CSRAdjacency"):
        res = pymetis.part_graph(num_parts, pymetis.CSRAdjacency(xadj, adjncy), recursive=recursive, options=opts)
    else:  # older pymetis
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            res = pymetis.part_graph(num_parts, xadj=xadj, adjncy=adjncy, recursive=recursive, options=opts)
    part = torch.from_numpy(np.asarray(res[1], dtype=np.int64))
    if log:
        print(f"METIS: {num_parts} parts of {num_nodes:,} nodes in {time.perf_counter() - t0:.1f} s")
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save({"part": part, "settings": settings}, tmp)
    return part


def random_partition(num_nodes: int, num_parts: int, sizes: Tensor | None = None, seed: int = 0) -> Tensor:
    """A uniformly random node -> part assignment: balanced, or with the given part ``sizes``
    (e.g. METIS's, for a like-for-like comparison)."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    num_parts = check_positive_int(num_parts, "num_parts")
    if num_parts > num_nodes:
        raise ValueError(f"num_parts={num_parts} exceeds num_nodes={num_nodes}; need num_parts <= num_nodes")
    if sizes is None:
        sizes = torch.full((num_parts,), num_nodes // num_parts, dtype=torch.long)
        sizes[: num_nodes % num_parts] += 1
    sizes = torch.as_tensor(sizes, dtype=torch.long)
    if sizes.numel() != num_parts or int(sizes.sum()) != num_nodes or bool((sizes < 0).any()):
        raise ValueError(f"sizes must be {num_parts} non-negative counts summing to num_nodes={num_nodes}")
    gen = torch.Generator().manual_seed(seed)
    part = torch.empty(num_nodes, dtype=torch.long)
    part[torch.randperm(num_nodes, generator=gen)] = torch.repeat_interleave(torch.arange(num_parts), sizes)
    return part


def partition_stats(edge_index: Tensor, part: Tensor, num_parts: int | None = None) -> dict:
    """Edge cut and balance of a partition.

    ``edge_cut``: number of edges (as stored, so an undirected edge counts twice) whose ends
    lie in different parts; ``edge_cut_fraction``: the same over all edges;
    ``balance``: largest part size over the mean part size (1.0 = perfectly balanced).

    ``part`` holds one cluster id per node (``num_nodes`` entries, ids in ``[0, num_parts)``);
    ``edge_index`` may refer only to those nodes.
    """
    if not isinstance(part, Tensor) or part.dim() != 1 or part.is_floating_point() or part.dtype == torch.bool:
        got = f"{part.dtype} {list(part.shape)}" if isinstance(part, Tensor) else type(part).__name__
        raise TypeError(f"part must be a 1-D integer tensor with one cluster id per node, got {got}")
    if part.numel() == 0:
        raise ValueError("part is empty; it must hold one cluster id per node")
    edge_index = check_edge_index(edge_index)
    if edge_index.numel():
        hi = int(edge_index.max())
        if hi >= part.numel():
            raise ValueError(f"part has {part.numel()} entries but edge_index refers to node {hi}; part must hold "
                             f"one cluster id per node (num_nodes >= {hi + 1} entries)")
    if num_parts is None:
        num_parts = int(part.max()) + 1
    else:
        num_parts = check_positive_int(num_parts, "num_parts")
    check_index_range(part, num_parts, "part", what="cluster id")
    part = part.to(edge_index.device)
    cut = int((part[edge_index[0]] != part[edge_index[1]]).sum())
    sizes = torch.bincount(part, minlength=num_parts)
    return {"num_parts": num_parts, "edge_cut": cut, "edge_cut_fraction": cut / max(edge_index.size(1), 1),
            "balance": float(sizes.max()) / (part.numel() / num_parts),
            "min_part": int(sizes.min()), "max_part": int(sizes.max())}


class ClusterData:
    """Partition ``data`` into ``num_parts`` clusters (METIS) and sort its nodes by cluster.

    Attributes: ``part`` (node -> cluster, original order), ``perm`` (cluster-sorted order
    -> original id), ``partptr`` (cluster ``c`` holds sorted positions
    ``partptr[c]:partptr[c+1]``), ``stats`` (edge cut and balance, see :func:`partition_stats`)
    and ``partition_time_s`` (0 when read from the cache is about the load time).

    The parameters are PyG's ``torch_geometric.loader.ClusterData``'s, in its order:
    ``recursive`` (METIS recursive bisection instead of k-way), ``save_dir`` and ``filename``
    (where the partition is cached; default: ``cache_dir()/partitions``, a name keyed by the
    graph), ``log``. ``sparse_format`` (``"csr"`` or ``"csc"``) is accepted: it is how PyG
    stores the permuted graph and changes no batch here. ``keep_inter_cluster_edges`` only
    affects PyG's ``cluster_data[i]``; here ``cluster_data[i]`` keeps the edges inside
    cluster ``i`` (PyG's default) and :class:`ClusterLoader` restores the edges between the
    clusters of a batch, as PyG's does.

    msgnn_lite's own options (keyword-only): ``seed`` (METIS seed), ``cache`` (``False``:
    never read or write a cache file) and ``part`` (use another partition, e.g.
    :func:`random_partition`).
    """

    def __init__(self, data: Data, num_parts: int, recursive: bool = False, save_dir=None, filename: str | None = None,
                 log: bool = False, keep_inter_cluster_edges: bool = False, sparse_format: str = "csr", *,
                 seed: int = 0, cache: bool = True, part: Tensor | None = None):
        check_loader_options("ClusterData", {}, keep_inter_cluster_edges=(keep_inter_cluster_edges, False))
        if sparse_format not in ("csr", "csc"):
            raise ValueError(f"sparse_format must be 'csr' or 'csc', got {sparse_format!r}")
        n = data.num_nodes
        self.num_parts = check_positive_int(num_parts, "num_parts")
        if self.num_parts > n:
            raise ValueError(f"num_parts={num_parts} exceeds the graph's num_nodes={n}; need num_parts <= num_nodes")
        edge_index = check_edge_index(data.edge_index, n)
        t0 = time.perf_counter()
        if part is None:
            part = metis_partition(edge_index, n, self.num_parts, recursive=recursive, seed=seed, cache=cache, log=log,
                                   save_dir=save_dir, filename=filename)
        else:
            part = torch.as_tensor(part, dtype=torch.long)
            if part.numel() != n or int(part.min()) < 0 or int(part.max()) >= self.num_parts:
                raise ValueError(f"part must assign each of the {n} nodes a cluster in [0, {self.num_parts})")
        self.partition_time_s = time.perf_counter() - t0
        self.data = data
        dev = edge_index.device
        self.part = part.to(dev)
        self.perm = torch.sort(self.part, stable=True).indices  # sorted position -> original id
        sizes = torch.bincount(self.part, minlength=self.num_parts)
        self.partptr = torch.zeros(self.num_parts + 1, dtype=torch.long, device=dev)
        torch.cumsum(sizes, 0, out=self.partptr[1:])
        self.rank = torch.empty_like(self.perm)  # node -> its position inside its cluster
        self.rank[self.perm] = torch.arange(n, device=dev) - self.partptr[self.part[self.perm]]
        # Incoming-edge CSR over original ids (rows = destination).
        dst = edge_index[1]
        order = torch.sort(dst, stable=True).indices if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()) \
            else torch.arange(dst.numel(), device=dev)
        self.rowptr = _compress(dst[order], n)
        self.col = edge_index[0][order]
        self.e_id = order
        self.stats = partition_stats(edge_index, self.part, self.num_parts)
        self._keys = attribute_keys(data)

    def __len__(self) -> int:
        return self.num_parts

    def __getitem__(self, idx: int) -> Data:
        """Cluster ``idx`` alone: the subgraph induced by its nodes (PyG's ``cluster_data[idx]``)."""
        if not -self.num_parts <= int(idx) < self.num_parts:
            raise IndexError(f"cluster index {idx} out of range for {self.num_parts} clusters")
        return self._subgraph(torch.tensor([int(idx) % self.num_parts], device=self.partptr.device))

    def subgraph(self, clusters) -> Data:
        """The subgraph induced by the union of ``clusters`` (edges between them included),
        nodes cluster after cluster, with ``n_id`` (original ids) and ``e_id``. ``clusters``:
        distinct cluster ids (a tensor or a list) in ``[0, num_parts)``, checked."""
        clusters = check_index_range(clusters, self.num_parts, "clusters", what="cluster id", distinct=True)
        return self._subgraph(clusters)

    def _subgraph(self, clusters: Tensor) -> Data:
        dev = self.partptr.device
        clusters = clusters.to(dev)
        sizes = self.partptr[clusters + 1] - self.partptr[clusters]
        # Sorted positions of the chosen clusters' nodes, cluster after cluster.
        pos = torch.repeat_interleave(self.partptr[clusters], sizes) + _segment_arange(sizes)
        n_id = _take(self.perm, pos)
        # Local id of a node = offset of its cluster in the batch + its rank inside the cluster.
        chosen = torch.full((self.num_parts,), -1, dtype=torch.long, device=dev)
        chosen[clusters] = torch.cumsum(sizes, 0) - sizes
        start = _take(self.rowptr, n_id)
        deg = _take(self.rowptr, n_id + 1) - start
        tgt = torch.repeat_interleave(torch.arange(n_id.numel(), device=dev), deg)
        slot = _take(start, tgt) + _segment_arange(deg)
        src = _take(self.col, slot)
        off = _take(chosen, _take(self.part, src))
        keep = off >= 0
        edge_index = torch.stack([off[keep] + _take(self.rank, src[keep]), tgt[keep]])
        return subgraph_batch(self.data, self._keys, edge_index, n_id, _take(self.e_id, slot[keep]))

    def cluster_sizes(self) -> Tensor:
        return self.partptr[1:] - self.partptr[:-1]

    def __repr__(self) -> str:
        s = self.stats
        return (f"ClusterData(num_parts={self.num_parts}, edge_cut_fraction={s['edge_cut_fraction']:.3f}, "
                f"balance={s['balance']:.2f})")


def diag_enhanced_adjacency(edge_index: Tensor, num_nodes: int, diag_lambda: float) -> SparseAdjacency:
    """Cluster-GCN's diagonal enhancement (Eq. 11): ``A~ = (D+I)^-1 (A+I)``, then
    ``A~ + lambda * diag(A~)``. Returned as an operator usable by any msgnn_lite model."""
    if not diag_lambda >= 0:  # also refuses NaN
        raise ValueError(f"diag_lambda must be >= 0, got {diag_lambda}")
    n = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, n)  # the CSR below is built without invariant checks
    dev = edge_index.device
    src, dst = edge_index[0], edge_index[1]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    loop = torch.arange(n, device=dev)
    src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
    deg = torch.bincount(dst, minlength=n).float()  # = in-degree + 1
    w = 1.0 / deg[dst]
    w = torch.where(src == dst, w * (1.0 + diag_lambda), w)
    order = torch.sort(dst, stable=True).indices
    return SparseAdjacency(_csr(_compress(dst[order], n), src[order], w[order], n, n), "gcn")


class ClusterLoader:
    """Stochastic multi-cluster batches of a :class:`ClusterData` (PyG's ``ClusterLoader``).

    Each batch is the subgraph induced by ``batch_size`` clusters (between-cluster edges of
    the chosen clusters restored), as a ``Data`` with ``x``, ``y``, masks and other node
    attributes sliced, local ``edge_index``, ``n_id`` (original node ids) and ``e_id``.
    ``batch_size``, ``shuffle`` and ``drop_last`` are the DataLoader options PyG passes
    through; worker options (``num_workers``, ...) are accepted and ignored. msgnn_lite's
    own options, keyword-only: with ``diag_lambda`` set, ``batch.adj`` holds the diagonally
    enhanced operator; ``generator`` makes the cluster order reproducible.
    """

    def __init__(self, cluster_data: ClusterData, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, *, diag_lambda: float | None = None,
                 generator: torch.Generator | None = None, **kwargs):
        check_loader_options("ClusterLoader", kwargs)
        if not isinstance(cluster_data, ClusterData):
            raise TypeError(f"cluster_data must be a ClusterData, got {type(cluster_data).__name__}")
        self.cluster_data = cluster_data
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if self.batch_size > cluster_data.num_parts:
            raise ValueError(f"batch_size={batch_size} exceeds num_parts={cluster_data.num_parts}")
        if diag_lambda is not None:
            diag_lambda = check_finite(diag_lambda, "diag_lambda")
        self.shuffle, self.drop_last, self.diag_lambda = shuffle, drop_last, diag_lambda
        self.generator = device_generator(generator, cluster_data.partptr.device)  # draws where the clusters live
        self._node_keys, self._edge_keys = cluster_data._keys

    def __len__(self) -> int:
        p = self.cluster_data.num_parts
        return p // self.batch_size if self.drop_last else math.ceil(p / self.batch_size)

    def __iter__(self):
        cd = self.cluster_data
        dev = cd.partptr.device
        order = torch.randperm(cd.num_parts, device=dev, generator=self.generator) if self.shuffle \
            else torch.arange(cd.num_parts, device=dev)
        for i in range(len(self)):  # a slice of a permutation: distinct ids in range, no check needed
            yield self._batch(order[i * self.batch_size:(i + 1) * self.batch_size])

    def batch(self, clusters) -> Data:
        """The subgraph induced by the union of ``clusters`` (distinct cluster ids, checked)."""
        cd = self.cluster_data
        return self._batch(check_index_range(clusters, cd.num_parts, "clusters", what="cluster id", distinct=True))

    def _batch(self, clusters: Tensor) -> Data:
        out = self.cluster_data._subgraph(clusters)
        if self.diag_lambda is not None:
            out.adj = diag_enhanced_adjacency(out.edge_index, out.num_nodes, self.diag_lambda)
        return out
