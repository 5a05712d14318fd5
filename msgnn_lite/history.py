"""Historical embeddings: one ``[num_nodes, channels]`` store per layer, read with ``pull``
and written with ``push`` -- the memory behind GNNAutoScale (GAS) and VR-GCN.

A mini-batch GNN needs, at layer ``l``, the layer-``l`` embeddings of the batch's
neighbors. Recomputing them is what makes neighborhoods explode (notebook 02).
A history instead *remembers* the last value computed for every node::

    layer l input:   [ fresh rows of the batch | pulled rows of the halo ]
                       ^ computed now, exact     ^ read from History l (stale)
                       |
                       +--> push(fresh rows, batch ids) refreshes History l

* :meth:`History.pull` ``(n_id)`` returns the stored rows ``emb[n_id]`` as a new tensor
  (no gradient flows into a history; it is a constant for autograd), converted to the
  compute device and dtype.
* :meth:`History.push` ``(x, n_id)`` overwrites rows ``n_id`` with ``x.detach()``; rows not
  named keep their old (stale) values. A later ``pull`` of those ids returns exactly what was
  pushed (up to the storage dtype: ``float16`` keeps ~3 decimal digits).

The store may live on the GPU, or on the CPU (pinned when a GPU is present, as in the official
GAS code) to keep GPU memory for the model. With a pinned store and a CUDA model both copies are
asynchronous: ``pull`` gathers the rows into pinned memory and copies them with
``non_blocking=True``; ``push`` starts the copy of the fresh rows to pinned memory and writes
them into the store only when the store is next read or written (the host waits for that copy
then, not for the GPU's queue). ``age(n_id)`` says how many pushes ago each row was written, a
cheap staleness measure.

:func:`halo_operator` builds the batch operator that GAS and VR-GCN share: the rows of the
*full-graph* normalised adjacency for the in-batch nodes, with columns relabelled over
``n_id = [batch nodes, halo nodes]`` (in-batch nodes first). Using the full graph's rows is
what keeps a batch's GCN normalisation (degrees) identical to the full-batch model's.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .checks import check_index_range, check_positive_int
from .loader import _segment_arange
from .sparse import SparseAdjacency, _csr, take_rows
from .utils import resolve_device

__all__ = ["History", "check_node_ids", "halo_operator", "block_operator"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_node_ids(n_id, num_nodes: int, name: str = "n_id", distinct: bool = False) -> Tensor:
    """Check a 1-D integer tensor of node ids in ``[0, num_nodes)`` (optionally distinct):
    :func:`msgnn_lite.checks.check_index_range` for a tensor."""
    if not isinstance(n_id, Tensor):
        raise TypeError(f"{name} must be a 1-D integer tensor of node ids, got {type(n_id).__name__}")
    return check_index_range(n_id, num_nodes, name, distinct=distinct)


class History:
    """A per-layer embedding store of shape ``[num_nodes, num_channels]``.

    Parameters
    ----------
    num_nodes, num_channels:
        Rows (every node of the graph) and columns (the layer's width).
    device:
        Where the store lives: ``"cpu"`` (default; GAS's choice with a GPU model), ``"cuda"`` or
        ``"auto"``. :meth:`pull` copies rows to whichever device asks for them.
    dtype:
        Storage precision: ``torch.float32`` (default), ``torch.float16`` or ``torch.bfloat16``
        (half the bytes, ~1e-3 relative rounding) or ``torch.float64``.
    pin_memory:
        Page-lock a CPU store so that copies to and from a GPU run asynchronously. ``None``
        (default): pin when the store is on the CPU and CUDA is available. ``True`` without
        CUDA falls back to ordinary memory with a ``RuntimeWarning``.

    Rows start at zero (``age == -1``: never pushed). Node ids may live on any device; the
    hot path (:class:`msgnn_lite.gas.GASGNN`) checks them once per batch, moves them to the
    store's device and passes ``check=False``.
    """

    def __init__(self, num_nodes: int, num_channels: int, device="cpu", dtype: torch.dtype = torch.float32,
                 pin_memory: bool | None = None):
        self.num_nodes = check_positive_int(num_nodes, "num_nodes")
        self.num_channels = check_positive_int(num_channels, "num_channels")
        if dtype not in _DTYPES:
            raise TypeError(f"dtype must be one of {', '.join(map(str, _DTYPES))}, got {dtype!r}")
        self.device = resolve_device(device)
        if pin_memory is None:
            pin_memory = self.device.type == "cpu" and torch.cuda.is_available()
        if pin_memory and self.device.type != "cpu":
            raise ValueError(f"pin_memory=True needs a CPU history, got device={self.device}")
        if pin_memory and not torch.cuda.is_available():  # page-locked memory needs a CUDA driver
            warnings.warn("History(pin_memory=True): CUDA is not available, so the store is not pinned "
                          "(pinned memory only speeds up copies to a GPU); using ordinary memory",
                          RuntimeWarning, stacklevel=2)
            pin_memory = False
        self._emb = torch.zeros(self.num_nodes, self.num_channels, dtype=dtype, device=self.device)
        if pin_memory:
            self._emb = self._emb.pin_memory()
        self.pinned = bool(pin_memory)
        self.pushes = 0  # number of push calls so far
        self.last_push = torch.full((self.num_nodes,), -1, dtype=torch.int64, device=self.device)
        self._pending: list = []  # (ids, pinned rows, CUDA event): pushes whose copy to the host may be running

    @property
    def emb(self) -> Tensor:
        """The store itself (every pending push written in first)."""
        self._flush()
        return self._emb

    @property
    def dtype(self) -> torch.dtype:
        return self._emb.dtype

    def _ids(self, n_id, name: str = "n_id", check: bool = True) -> Tensor:
        if n_id is None:
            return torch.arange(self.num_nodes, device=self.device)
        if check:
            n_id = check_node_ids(n_id, self.num_nodes, name)
        return n_id.to(self.device)

    def _flush(self) -> None:
        """Write the pending asynchronous pushes into the store, oldest first."""
        for idx, rows, done in self._pending:
            done.synchronize()  # waits for that copy only, not for the GPU's whole queue
            self._emb.index_copy_(0, idx, rows)
        self._pending.clear()

    @torch.no_grad()
    def pull(self, n_id: Tensor | None = None, device=None, dtype: torch.dtype | None = torch.float32, *,
             check: bool = True) -> Tensor:
        """The stored rows ``emb[n_id]`` (all rows for ``None``) as a new tensor on ``device``
        (default: the store's) in ``dtype`` (default float32; ``None`` keeps the storage dtype).
        The result does not require grad: histories are constants for autograd. ``check=False``
        skips the id checks (ids already checked and on the store's device)."""
        self._flush()
        idx = self._ids(n_id, check=check)
        target = self.device if device is None else torch.device(device)
        dtype = dtype or self._emb.dtype
        if self.pinned and target.type == "cuda":  # gather into pinned memory, copy without blocking
            rows = torch.empty((idx.numel(), self.num_channels), dtype=self._emb.dtype, pin_memory=True)
            torch.index_select(self._emb, 0, idx, out=rows)
            return rows.to(target, non_blocking=True).to(dtype)
        return take_rows(self._emb, idx).to(device=target, dtype=dtype)

    @torch.no_grad()
    def push(self, x: Tensor, n_id: Tensor | None = None, *, check: bool = True) -> None:
        """Overwrite rows ``n_id`` (all rows for ``None``) with ``x.detach()``.

        ``x`` must have shape ``[len(n_id), num_channels]``; ids should be distinct (with
        duplicates, which row wins is unspecified). From a GPU into a pinned store the copy is
        asynchronous: the rows land in the store before its next read or write."""
        idx = self._ids(n_id, check=check)
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor of shape [{idx.numel()}, {self.num_channels}], got {type(x).__name__}")
        if x.dim() != 2 or x.size(0) != idx.numel() or x.size(1) != self.num_channels:
            raise ValueError(f"x must have shape [len(n_id), num_channels] = [{idx.numel()}, {self.num_channels}], "
                             f"got {list(x.shape)}")
        x = x.detach().to(dtype=self._emb.dtype)
        if self.pinned and x.is_cuda:
            rows = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
            rows.copy_(x, non_blocking=True)
            done = torch.cuda.Event()
            done.record(torch.cuda.current_stream(x.device))
            self._pending.append((idx, rows, done))
        else:
            self._flush()
            self._emb.index_copy_(0, idx, x.to(self.device))
        self.pushes += 1
        self.last_push.index_fill_(0, idx, self.pushes)

    def age(self, n_id: Tensor | None = None) -> Tensor:
        """Pushes since each row was last written (0: by the latest push; -1: never written)."""
        last = take_rows(self.last_push, self._ids(n_id))
        return torch.where(last < 0, last, self.pushes - last)

    def reset(self) -> None:
        """Zero every row and forget the push history."""
        self._flush()
        self._emb.zero_()
        self.last_push.fill_(-1)
        self.pushes = 0

    def nbytes(self) -> int:
        """Bytes of the embedding store (the bookkeeping ``last_push`` counter excluded)."""
        return self._emb.numel() * self._emb.element_size()

    def __repr__(self) -> str:
        return (f"History(num_nodes={self.num_nodes}, num_channels={self.num_channels}, dtype={self.dtype}, "
                f"device={self.device}{', pinned' if self.pinned else ''}, {self.nbytes() / 2**20:.1f} MB)")


def block_operator(nodes: Tensor, counts: Tensor, neighbors: Tensor, weights: Tensor, num_nodes: int,
                   normalization: str) -> tuple[Tensor, SparseAdjacency]:
    """Assemble a batch operator from per-row neighbor lists.

    Row ``i`` (node ``nodes[i]``) holds ``counts[i]`` entries: global column ids ``neighbors``
    (grouped by row, in the order of ``nodes``) with values ``weights``. Returns
    ``(n_id, op)``: ``n_id = [nodes, new]`` where ``new`` are the neighbors not in ``nodes``
    (sorted), and ``op`` a square ``len(n_id) x len(n_id)`` :class:`SparseAdjacency` whose
    first ``len(nodes)`` rows are the given rows (columns relabelled to positions in ``n_id``)
    and whose other rows are empty. ``(op @ h[n_id])[:len(nodes)]`` is then the aggregation."""
    dev = nodes.device
    in_batch = torch.zeros(num_nodes, dtype=torch.bool, device=dev)
    in_batch[nodes] = True
    new = torch.unique(neighbors[~take_rows(in_batch, neighbors)])
    n_id = torch.cat([nodes, new])
    assoc = torch.empty(num_nodes, dtype=torch.long, device=dev)
    assoc[n_id] = torch.arange(n_id.numel(), device=dev)
    local = take_rows(assoc, neighbors)
    m, b = n_id.numel(), nodes.numel()
    crow = torch.empty(m + 1, dtype=torch.long, device=dev)
    crow[0] = 0
    torch.cumsum(counts, 0, out=crow[1:b + 1])
    crow[b + 1:] = crow[b]
    return n_id, SparseAdjacency(_csr(crow, local, weights, m, m), normalization)


def halo_operator(adj: SparseAdjacency, nodes: Tensor) -> tuple[Tensor, SparseAdjacency]:
    """The batch operator of GAS: the rows of the full-graph operator ``adj`` for ``nodes``,
    over ``n_id = [nodes, halo]`` where the halo is every one-hop neighbor outside ``nodes``.

    ``(op @ h[n_id])[:len(nodes)] == (adj @ h)[nodes]`` exactly, for any ``h``: nothing of the
    graph is dropped, and GCN's degrees are the full graph's (see :func:`block_operator`).
    """
    if not isinstance(adj, SparseAdjacency):
        raise TypeError(f"adj must be a SparseAdjacency (msgnn_lite.sparse.build_adjacency), got {type(adj).__name__}")
    nodes = check_node_ids(nodes, adj.num_nodes, "nodes", distinct=True).to(adj.device)
    m = adj.matrix
    crow, col, val = m.crow_indices(), m.col_indices(), m.values()
    start = take_rows(crow, nodes)
    deg = take_rows(crow, nodes + 1) - start
    slots = torch.repeat_interleave(start, deg) + _segment_arange(deg)
    return block_operator(nodes, deg, take_rows(col, slots), take_rows(val, slots), adj.num_nodes,
                          adj.normalization)
