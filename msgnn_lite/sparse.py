"""The fast propagation path: a graph operator stored once as a torch sparse CSR matrix.

PyG's default message passing on an ``edge_index`` gathers a feature row per edge
and scatters it back, materialising an ``[E, F]`` tensor every layer and every
backward pass. A sparse-matrix product ``A @ X`` streams the CSR arrays instead,
which on a CPU is several times faster and needs no ``[E, F]`` buffer. This module

* builds the (normalized) adjacency as CSR once (:func:`build_adjacency`),
* caches it per graph, normalization and device (:func:`cached_adjacency`), and
* multiplies with a custom autograd function whose backward uses a cached CSR of
  ``A^T`` (built on first use), so nothing but the output is kept for backward.

Conventions follow PyG (``flow="source_to_target"``): for an edge ``j -> i`` stored
as ``edge_index[:, e] = (j, i)``, row ``i`` of the operator holds column ``j``.
"""
from __future__ import annotations

import warnings
import weakref

import torch
from torch import Tensor

from .checks import check_edge_index, check_edge_weight, check_option, check_positive_int

__all__ = ["SparseAdjacency", "build_adjacency", "cached_adjacency", "propagate", "take_rows", "NORMALIZATIONS"]

NORMALIZATIONS = ("gcn", "mean", "sum", "sym", "rw")


def take_rows(src: Tensor, index: Tensor) -> Tensor:
    """``src[index]`` along dim 0. ``index_select`` is several times faster than advanced
    indexing for large gathers on a CPU (and far faster on oversubscribed cores); a CSR
    matrix (e.g. bag-of-words features) gives a CSR matrix of the chosen rows; other sparse
    tensors fall back to indexing. The result is on ``src``'s device (``index`` is moved there
    when it lives elsewhere). Shared by the samplers, partitions and coarsening.

    ``index`` must be a 1-D integer tensor of rows in ``[0, src.size(0))``. On the hot path the
    range costs nothing: an id out of range is caught when the gather fails (on a CPU) and
    reported naming ``index``, the range and the offending ids; on a GPU the kernel's
    device-side assert stops it (checking first would need a host sync per call)."""
    if not isinstance(src, Tensor) or not isinstance(index, Tensor):
        raise TypeError(f"take_rows(src, index) needs two tensors, got {type(src).__name__} and "
                        f"{type(index).__name__}")
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise TypeError(f"index must be an integer tensor of row ids, got dtype {index.dtype}")
    if index.device != src.device:  # e.g. CPU ids of a partition, rows of a graph on a GPU
        index = index.to(src.device, non_blocking=True)
    try:
        if src.layout == torch.sparse_csr and src.dim() == 2:
            return _csr_rows(src, index)
        if src.layout != torch.strided:
            return src[index]
        return src.index_select(0, index)
    except (IndexError, RuntimeError) as err:
        rows = src.size(0) if src.dim() else 0
        if index.dim() != 1:
            raise ValueError(f"index must be a 1-D tensor of row ids, got shape {list(index.shape)}") from err
        if index.numel():
            lo, hi = torch.stack(torch.aminmax(index)).tolist()
            if lo < 0 or hi >= rows:
                raise IndexError(f"index holds row id {lo if lo < 0 else hi}, out of range; take_rows(src, index) "
                                 f"gathers rows of src, whose ids lie in [0, {rows})") from None
        raise


def _csr_rows(src: Tensor, index: Tensor) -> Tensor:
    """Rows ``index`` of a 2-D CSR matrix, as CSR (torch has no CSR row indexing)."""
    crow, col, val = src.crow_indices(), src.col_indices(), src.values()
    index = index.to(crow.device)
    start = crow.index_select(0, index)
    counts = crow.index_select(0, index + 1) - start
    total = int(counts.sum())
    first = torch.cumsum(counts, 0) - counts
    slots = torch.repeat_interleave(start - first, counts, output_size=total) + torch.arange(total, device=crow.device)
    out_crow = torch.zeros(index.numel() + 1, dtype=crow.dtype, device=crow.device)
    torch.cumsum(counts, 0, out=out_crow[1:])
    return _csr(out_crow, col.index_select(0, slots), val.index_select(0, slots), index.numel(), src.size(1))


def _csr(crow: Tensor, col: Tensor, val: Tensor, n_rows: int, n_cols: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, val, (n_rows, n_cols), check_invariants=False)


def _compress(rows: Tensor, n_rows: int) -> Tensor:
    """CSR row pointer from sorted row ids."""
    if rows.is_cuda:  # bincount reads the maximum back to the host; a search on sorted ids does not
        return torch.searchsorted(rows, torch.arange(n_rows + 1, device=rows.device))
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(torch.bincount(rows, minlength=n_rows), 0, out=crow[1:])
    return crow


class SparseAdjacency:
    """A fixed graph operator ``A`` (``num_nodes x num_nodes``) held as CSR, with its
    transpose built lazily for the backward pass.

    Use :func:`build_adjacency` to make one, ``adj @ x`` (or :func:`propagate`) to apply it.
    """

    def __init__(self, matrix: Tensor, normalization: str, symmetric: bool = False):
        self.matrix = matrix
        self.normalization = normalization
        self.symmetric = symmetric
        self._transpose: Tensor | None = matrix if symmetric else None

    @property
    def num_nodes(self) -> int:
        return int(self.matrix.size(0))

    @property
    def nnz(self) -> int:
        return int(self.matrix.values().numel())

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def nbytes(self) -> int:
        """Bytes held by the CSR arrays (and the transpose, once built)."""
        def size(m: Tensor) -> int:
            return sum(t.numel() * t.element_size() for t in (m.crow_indices(), m.col_indices(), m.values()))
        total = size(self.matrix)
        if self._transpose is not None and self._transpose is not self.matrix:
            total += size(self._transpose)
        return total

    def transpose(self) -> Tensor:
        """CSR of ``A^T`` (cached)."""
        if self._transpose is None:
            m = self.matrix
            crow, col, val = m.crow_indices(), m.col_indices(), m.values()
            row = torch.repeat_interleave(torch.arange(m.size(0), device=m.device), crow[1:] - crow[:-1])
            order = torch.sort(col, stable=True).indices  # rows stay sorted within each column
            self._transpose = _csr(_compress(col[order], m.size(1)), row[order], val[order], m.size(1), m.size(0))
        return self._transpose

    def to(self, device) -> "SparseAdjacency":
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device == self.device:
            return self
        out = SparseAdjacency(self.matrix.to(device), self.normalization, self.symmetric)
        if self._transpose is not None and not self.symmetric:
            out._transpose = self._transpose.to(device)
        return out

    def __matmul__(self, x: Tensor) -> Tensor:
        return propagate(self, x)

    def __repr__(self) -> str:
        return (f"SparseAdjacency(num_nodes={self.num_nodes}, nnz={self.nnz}, "
                f"normalization={self.normalization!r}, device={self.device})")


class _SpMM(torch.autograd.Function):
    """``y = A @ x`` with ``dx = A^T @ dy``; saves no tensor for backward."""

    @staticmethod
    def forward(ctx, x: Tensor, adj: SparseAdjacency) -> Tensor:  # type: ignore[override]
        ctx.adj = adj
        return torch.sparse.mm(adj.matrix, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return torch.sparse.mm(ctx.adj.transpose(), grad.contiguous()), None


def propagate(adj: SparseAdjacency, x: Tensor) -> Tensor:
    """Apply the graph operator: ``A @ x`` for ``x`` of shape ``[num_nodes, F]``."""
    if x.dim() != 2 or x.size(0) != adj.num_nodes:
        raise ValueError(f"x must have shape [{adj.num_nodes}, F] to match the adjacency, got {list(x.shape)}")
    if x.dtype != adj.matrix.dtype:
        raise TypeError(f"x has dtype {x.dtype} but the adjacency holds {adj.matrix.dtype}")
    if x.requires_grad and torch.is_grad_enabled():
        return _SpMM.apply(x, adj)
    return torch.sparse.mm(adj.matrix, x)


def build_adjacency(edge_index: Tensor, num_nodes: int, normalization: str = "gcn",
                    edge_weight: Tensor | None = None, add_self_loops: bool | None = None,
                    dtype: torch.dtype = torch.float32, device=None) -> SparseAdjacency:
    """Build a graph operator as CSR from a COO ``edge_index`` (PyG's ``source_to_target`` flow).

    ``normalization``:

    * ``"gcn"``: ``D^-1/2 (A + I) D^-1/2`` with in-degrees, exactly as PyG's ``gcn_norm``
      (self-loops added unless ``add_self_loops=False``; existing self-loops are kept as edges).
    * ``"sym"``: the same without self-loops.
    * ``"mean"``: each row divided by the node's in-degree (PyG's ``aggr="mean"``); rows of
      isolated nodes are zero.
    * ``"rw"``: alias of ``"mean"``.
    * ``"sum"``: plain ``A`` (PyG's ``aggr="add"``).

    Cost: one stable sort of the edges (skipped when they are already sorted by
    destination), a few linear passes, no Python loop.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    check_option(normalization, "normalization", NORMALIZATIONS)
    edge_index = check_edge_index(edge_index, num_nodes)
    device = torch.device(device) if device is not None else edge_index.device
    edge_index = edge_index.to(device)
    src, dst = edge_index[0], edge_index[1]
    if edge_weight is None:
        w = torch.ones(src.numel(), dtype=dtype, device=device)
    else:
        check_edge_weight(edge_weight, src.numel(), nonnegative=normalization != "sum")
        w = edge_weight.to(device=device, dtype=dtype)
    if add_self_loops is None:
        add_self_loops = normalization == "gcn"
    if add_self_loops:  # PyG's add_remaining_self_loops: a loop for each node that has none
        is_loop = src == dst
        has_loop = torch.zeros(num_nodes, dtype=torch.bool, device=device)
        has_loop[src[is_loop]] = True
        loop = (~has_loop).nonzero().view(-1)
        src = torch.cat([src, loop])
        dst = torch.cat([dst, loop])
        w = torch.cat([w, torch.ones(loop.numel(), dtype=dtype, device=device)])
    # Sort by destination (the CSR row), stably so sources keep their order within a row.
    if dst.numel() > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        order = torch.sort(dst, stable=True).indices
        src, dst, w = src[order], dst[order], w[order]
        del order
    deg = torch.zeros(num_nodes, dtype=dtype, device=device).index_add_(0, dst, w)
    if normalization in ("gcn", "sym"):
        dinv = deg.pow(-0.5)
        dinv.masked_fill_(torch.isinf(dinv), 0.0)
        w = dinv[src] * w * dinv[dst]
    elif normalization in ("mean", "rw"):
        dinv = deg.reciprocal()
        dinv.masked_fill_(torch.isinf(dinv), 0.0)
        w = w * dinv[dst]
    matrix = _csr(_compress(dst, num_nodes), src, w, num_nodes, num_nodes)
    return SparseAdjacency(matrix, normalization)


# id(edge_index) -> (weak reference to it, {key: SparseAdjacency}). Tensors compare
# element-wise, so a WeakKeyDictionary cannot hold them; a finalizer drops the entry.
_CACHE: dict[int, tuple[weakref.ref, dict]] = {}


def _cache_entry(edge_index: Tensor) -> dict:
    ident = id(edge_index)
    hit = _CACHE.get(ident)
    if hit is not None and hit[0]() is edge_index:
        return hit[1]
    entry: dict = {}
    _CACHE[ident] = (weakref.ref(edge_index), entry)
    weakref.finalize(edge_index, _CACHE.pop, ident, None)
    return entry


def cached_adjacency(edge_index: Tensor, num_nodes: int, normalization: str = "gcn", device=None,
                     **kwargs) -> SparseAdjacency:
    """:func:`build_adjacency`, memoised per ``edge_index`` tensor, size, normalization,
    device and options. The cache entry disappears with the ``edge_index`` tensor.

    The key includes the tensor's version counter, so an in-place edit rebuilds.
    """
    device = torch.device(device) if device is not None else edge_index.device
    key = (int(num_nodes), normalization, str(device), edge_index._version,
           tuple(sorted((k, v) for k, v in kwargs.items() if not isinstance(v, Tensor))))
    if any(isinstance(v, Tensor) for v in kwargs.values()):  # weighted graphs are not memoised
        return build_adjacency(edge_index, num_nodes, normalization, device=device, **kwargs)
    entry = _cache_entry(edge_index)
    if key not in entry:
        entry[key] = build_adjacency(edge_index, num_nodes, normalization, device=device, **kwargs)
    return entry[key]
