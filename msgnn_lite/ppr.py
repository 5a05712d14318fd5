"""Personalized PageRank (PPR): the influence score behind IBMB (notebook 06).

The PPR vector of a node ``s`` is the stationary distribution of a random walk that
starts at ``s``, follows a uniformly chosen out-edge at every step and jumps back to
``s`` with probability ``alpha``:

    ppr_s = alpha * sum_k (1 - alpha)^k  e_s W^k,        W = D^-1 A  (row-stochastic)

``ppr_s(v)`` is large for the nodes whose features reach ``s`` most strongly through a
GNN's message passing, which is why IBMB uses it to pick the auxiliary nodes of a batch.

Three ways to compute it, all here:

* :func:`push_ppr` — the **push method** of Andersen, Chung & Lang (2006), one source at a
  time: keep an estimate ``p`` and a residual ``r`` (start ``r = e_s``); while some node
  ``u`` holds ``r(u) >= eps * deg(u)``, move ``alpha * r(u)`` into ``p(u)`` and spread the
  rest over ``u``'s out-neighbours. Only the nodes near ``s`` are ever touched, and the
  total work is at most ``1 / (alpha * eps)`` edge visits per source, whatever the
  graph's size. On an undirected graph the result satisfies
  ``0 <= ppr_s(v) - p(v) < eps * deg(v)`` for every node (the test checks it). The loop
  runs in numba (compiled, parallel over sources) and, when numba is missing, in a
  vectorized numpy/scipy version that pushes every active node of many sources at once
  (same invariant, same bound).
* :func:`topic_ppr` — **topic-sensitive** PPR (Haveliwala, 2002) of a node *set*, by power
  iteration on the fast CSR operator of :mod:`msgnn_lite.sparse` (many sets at once, as
  the columns of a dense block; runs on a GPU unchanged). IBMB's batch-wise variant uses it.
* :func:`exact_ppr` — the dense linear solve ``alpha (I - (1 - alpha) W)^-1``, for tests and
  small examples only.

Nodes without out-edges get a self-loop (the walk waits there), in all three, so no
probability mass leaks.

Devices: :func:`topic_ppr` runs on the graph's device. The push loop and the dense solve are
CPU code (numba, numpy/scipy): they copy the graph to the CPU once, before the loop, and
return their results on the device of ``edge_index``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .checks import check_edge_index, check_positive_int
from .sparse import build_adjacency, propagate

__all__ = ["PPRTopK", "push_ppr", "topic_ppr", "exact_ppr", "transition_csr", "check_alpha", "check_eps",
           "HAVE_NUMBA"]

try:  # numba is a dependency; the numpy path keeps the module usable without it
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised by forcing backend="numpy" in the tests
    numba = None
    HAVE_NUMBA = False


def check_alpha(alpha) -> float:
    """The teleport probability must lie strictly between 0 and 1."""
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha (teleport probability) must lie in (0, 1), got {alpha}")
    return a


def check_eps(eps) -> float:
    e = float(eps)
    if not e > 0.0 or math.isinf(e):
        raise ValueError(f"eps (push threshold) must be a positive number, got {eps}")
    return e


def transition_csr(edge_index: Tensor, num_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-edge CSR ``(indptr, indices, out_degree)`` as numpy arrays, with a self-loop
    added to every node that has no out-edge. Duplicate edges are kept (they weigh double,
    as in ``W = D^-1 A`` with multi-edges). numpy arrays live on the host: a GPU
    ``edge_index`` is copied to the CPU once, here."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    ei = check_edge_index(edge_index, num_nodes).cpu()
    src, dst = ei[0], ei[1]
    deg = torch.bincount(src, minlength=num_nodes)
    dangling = (deg == 0).nonzero().view(-1)
    if dangling.numel():
        src, dst = torch.cat([src, dangling]), torch.cat([dst, dangling])
        deg[dangling] = 1
    order = torch.sort(src, stable=True).indices
    indptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    torch.cumsum(deg, 0, out=indptr[1:])
    return indptr.numpy(), dst[order].numpy().astype(np.int64), deg.numpy().astype(np.float64)


@dataclass
class PPRTopK:
    """The ``k`` highest approximate PPR scores of each source node.

    ``nodes[i, j]`` is the ``j``-th most influential node for ``sources[i]`` (``-1`` pads
    rows with fewer than ``k`` nodes of positive score) and ``scores[i, j]`` its score;
    rows are sorted by score, descending (ties by node id). ``pushes`` counts the edge
    visits of the push loop, ``seconds`` its wall time.
    """

    sources: Tensor
    nodes: Tensor
    scores: Tensor
    alpha: float
    eps: float
    backend: str
    pushes: int
    seconds: float

    @property
    def k(self) -> int:
        return int(self.nodes.size(1))

    def neighbors_of(self, i: int) -> tuple[Tensor, Tensor]:
        """Row ``i`` without padding: ``(nodes, scores)``."""
        keep = self.nodes[i] >= 0
        return self.nodes[i][keep], self.scores[i][keep]


# --------------------------------------------------------------------------------------
# The push loop. Written once as plain Python over numpy arrays; numba compiles it.
# --------------------------------------------------------------------------------------

def _push_source(indptr, indices, deg, s, alpha, eps, p, r, queued, seen, queue, touched):
    """Run the push method from source ``s``. ``p``, ``r`` (float), ``queued``, ``seen`` (bool)
    are length-N scratch arrays that are all zero on entry; ``queue`` and ``touched`` are
    int scratch arrays of length N. Returns ``(number of touched nodes, edge visits)``.
    The caller reads ``p`` at ``touched[:count]`` and then resets the scratch arrays there."""
    n = deg.shape[0]
    count = 0
    visits = 0
    r[s] = 1.0
    seen[s] = True
    touched[count] = s
    count += 1
    head = 0  # the queue is a ring buffer; a node is in it at most once (``queued``)
    size = 1
    queue[0] = s
    queued[s] = True
    while size > 0:
        u = queue[head]
        head += 1
        if head == n:
            head = 0
        size -= 1
        queued[u] = False
        ru = r[u]
        r[u] = 0.0
        p[u] += alpha * ru
        share = (1.0 - alpha) * ru / deg[u]
        for j in range(indptr[u], indptr[u + 1]):
            v = indices[j]
            if not seen[v]:
                seen[v] = True
                touched[count] = v
                count += 1
            r[v] += share
            if not queued[v] and r[v] >= eps * deg[v]:
                tail = head + size
                if tail >= n:
                    tail -= n
                queue[tail] = v
                queued[v] = True
                size += 1
        visits += indptr[u + 1] - indptr[u]
    return count, visits


def _topk_of_touched(p, touched, count, k, out_nodes, out_scores, row):
    """Write the ``k`` largest ``p`` among ``touched[:count]`` into row ``row`` (ties: lower id)."""
    cand = touched[:count].copy()
    cand.sort()  # ascending ids, so the stable sort below breaks ties by id
    vals = np.empty(count, dtype=np.float64)
    for i in range(count):
        vals[i] = -p[cand[i]]
    order = np.argsort(vals, kind="mergesort")
    m = min(k, count)
    for j in range(m):
        v = cand[order[j]]
        if p[v] <= 0.0:
            break
        out_nodes[row, j] = v
        out_scores[row, j] = p[v]


def _push_chunk(indptr, indices, deg, sources, alpha, eps, k, out_nodes, out_scores, lo, hi):
    n = deg.shape[0]
    p = np.zeros(n, dtype=np.float64)
    r = np.zeros(n, dtype=np.float64)
    queued = np.zeros(n, dtype=np.bool_)
    seen = np.zeros(n, dtype=np.bool_)
    queue = np.empty(n, dtype=np.int64)
    touched = np.empty(n, dtype=np.int64)
    visits = 0
    for i in range(lo, hi):
        count, v = _push_source(indptr, indices, deg, sources[i], alpha, eps, p, r, queued, seen, queue, touched)
        visits += v
        _topk_of_touched(p, touched, count, k, out_nodes, out_scores, i)
        for j in range(count):
            t = touched[j]
            p[t] = 0.0
            r[t] = 0.0
            seen[t] = False
    return visits


def _push_all(indptr, indices, deg, sources, alpha, eps, k, out_nodes, out_scores, num_chunks):
    m = sources.shape[0]
    visits = np.zeros(num_chunks, dtype=np.int64)
    step = (m + num_chunks - 1) // num_chunks
    for c in _prange(num_chunks):  # one scratch set per chunk: chunks run in parallel
        lo = c * step
        hi = min(m, lo + step)
        if lo < hi:
            visits[c] = _push_chunk(indptr, indices, deg, sources, alpha, eps, k, out_nodes, out_scores, lo, hi)
    return visits.sum()


if HAVE_NUMBA:  # compiled lazily on first call, cached on disk by numba
    _jit = numba.njit(cache=True, nogil=True)
    _push_source = _jit(_push_source)
    _topk_of_touched = _jit(_topk_of_touched)
    _push_chunk = _jit(_push_chunk)
    _prange = numba.prange
    _push_all = numba.njit(cache=True, parallel=True)(_push_all)
else:  # pragma: no cover
    _prange = range


# --------------------------------------------------------------------------------------
# The vectorized fallback: synchronous pushes of many sources at once with scipy.sparse.
# --------------------------------------------------------------------------------------

def _push_numpy(indptr, indices, deg, sources, alpha, eps, k, chunk: int = 2048):
    import scipy.sparse as sp

    n = deg.shape[0]
    W = sp.csr_matrix((np.repeat(1.0 / deg, np.diff(indptr)), indices, indptr), shape=(n, n))
    W.sum_duplicates()
    thresh = eps * deg
    m = sources.shape[0]
    out_nodes = np.full((m, k), -1, dtype=np.int64)
    out_scores = np.zeros((m, k), dtype=np.float64)
    visits = 0
    for lo in range(0, m, chunk):
        src = sources[lo:lo + chunk]
        b = src.shape[0]
        R = sp.csr_matrix((np.ones(b), (np.arange(b), src)), shape=(b, n))
        P = sp.csr_matrix((b, n))
        first = True
        while True:
            R.eliminate_zeros()
            coo = R.tocoo()
            # The source is always pushed once (as in the sequential loop), even when its
            # degree exceeds 1 / eps; afterwards only nodes above the threshold are.
            act = np.ones(coo.data.shape[0], dtype=bool) if first else coo.data >= thresh[coo.col]
            first = False
            if not act.any():
                break
            A = sp.csr_matrix((coo.data[act], (coo.row[act], coo.col[act])), shape=(b, n))
            visits += int(np.diff(indptr)[coo.col[act]].sum())
            P = P + alpha * A
            R = R - A + (1.0 - alpha) * (A @ W)
        P = P.tocoo()
        # Top-k per row, vectorized: sort by (row, -score, id), keep the first k of each row.
        order = np.lexsort((P.col, -P.data, P.row))
        rows, cols, vals = P.row[order], P.col[order], P.data[order]
        keep = vals > 0
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        starts = np.searchsorted(rows, np.arange(b))
        rank = np.arange(rows.shape[0]) - starts[rows]
        sel = rank < k
        out_nodes[lo + rows[sel], rank[sel]] = cols[sel]
        out_scores[lo + rows[sel], rank[sel]] = vals[sel]
    return out_nodes, out_scores, visits


def push_ppr(edge_index: Tensor, num_nodes: int, sources=None, alpha: float = 0.25, eps: float = 2e-4,
             topk: int = 16, backend: str = "auto") -> PPRTopK:
    """Approximate PPR of every node in ``sources`` by the push method; keep the top ``topk``.

    Parameters
    ----------
    edge_index, num_nodes:
        The graph (PyG's ``source -> target`` convention; walks follow out-edges).
    sources:
        Node ids (an index tensor, a bool mask, or ``None`` for all nodes).
    alpha:
        Teleport probability in (0, 1); IBMB's default 0.25.
    eps:
        Push threshold > 0 (IBMB's default 2e-4): the error is below ``eps * deg(v)`` on an
        undirected graph, and the work per source at most ``1 / (alpha * eps)`` edge visits.
    topk:
        How many of the highest-scoring nodes to keep per source (the source itself is
        usually the first).
    backend:
        ``"numba"`` (compiled, parallel over sources), ``"numpy"`` (vectorized scipy.sparse,
        for machines without numba) or ``"auto"`` (numba when installed).

    Both backends run on the CPU: the graph is copied there once, and ``sources``, ``nodes``
    and ``scores`` of the result are on the device of ``edge_index``.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    alpha, eps = check_alpha(alpha), check_eps(eps)
    topk = check_positive_int(topk, "topk")
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
    if backend == "numba" and not HAVE_NUMBA:
        raise ImportError("backend='numba' needs numba (pip install numba); use backend='numpy' or 'auto'")
    src = as_node_ids(sources, num_nodes, "sources")
    indptr, indices, deg = transition_csr(edge_index, num_nodes)
    k = min(topk, num_nodes)
    srcs = src.cpu().numpy().astype(np.int64)
    t0 = time.perf_counter()
    if backend == "numpy" or (backend == "auto" and not HAVE_NUMBA):
        nodes, scores, visits = _push_numpy(indptr, indices, deg, srcs, alpha, eps, k)
        used = "numpy"
    else:
        nodes = np.full((srcs.shape[0], k), -1, dtype=np.int64)
        scores = np.zeros((srcs.shape[0], k), dtype=np.float64)
        chunks = max(1, min(numba.get_num_threads() * 4, srcs.shape[0]))
        visits = _push_all(indptr, indices, deg, srcs, alpha, eps, k, nodes, scores, chunks)
        used = "numba"
    seconds = time.perf_counter() - t0
    dev = edge_index.device
    return PPRTopK(src.to(dev), torch.from_numpy(nodes).to(dev), torch.from_numpy(scores).float().to(dev), alpha, eps,
                   used, int(visits), seconds)


def as_node_ids(nodes, num_nodes: int, name: str) -> Tensor:
    """An index tensor (int64, 1-D, distinct ids in range) from ids, a bool mask or ``None`` (all).

    The result is on the CPU whatever the input's device: node-id sets are set-up data for the
    host-side PPR and batching code, and checking them reads their values anyway."""
    if nodes is None:
        return torch.arange(num_nodes)
    t = nodes if isinstance(nodes, Tensor) else torch.as_tensor(nodes)
    if t.dtype == torch.bool:
        if t.dim() != 1 or t.numel() != num_nodes:
            raise ValueError(f"{name} as a mask must have shape [{num_nodes}], got {list(t.shape)}")
        t = t.nonzero().view(-1)
    elif t.is_floating_point() or t.dim() != 1:
        raise TypeError(f"{name} must be a bool mask or a 1-D integer tensor of node ids, got "
                        f"dtype {t.dtype} and shape {list(t.shape)}")
    t = t.long().cpu()
    if t.numel() == 0:
        raise ValueError(f"{name} selects no node; it must select at least one")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or hi >= num_nodes:
        raise ValueError(f"{name} holds node id {lo if lo < 0 else hi}, out of range; ids must lie in "
                         f"[0, {num_nodes})")
    if torch.unique(t).numel() != t.numel():
        raise ValueError(f"{name} holds duplicate node ids; each node may appear once")
    return t


def _walk_operator(edge_index: Tensor, num_nodes: int, device, dtype=torch.float32):
    """The column form of one walk step, ``x_new[v] = sum_{u -> v} x[u] / deg(u)``, as a
    :class:`~msgnn_lite.sparse.SparseAdjacency` (dangling nodes keep their mass)."""
    ei = check_edge_index(edge_index, num_nodes).to(device)
    deg = torch.bincount(ei[0], minlength=num_nodes)
    dangling = (deg == 0).nonzero().view(-1)
    if dangling.numel():
        ei = torch.cat([ei, dangling.unsqueeze(0).repeat(2, 1)], 1)
        deg[dangling] = 1
    w = 1.0 / deg[ei[0]].to(dtype)
    return build_adjacency(ei, num_nodes, "sum", edge_weight=w, add_self_loops=False, dtype=dtype, device=device)


@torch.no_grad()
def topic_ppr(edge_index: Tensor, num_nodes: int, topics: list, alpha: float = 0.25, num_iterations: int = 50,
              topk: int | list[int] | None = None, chunk_size: int = 64, device=None):
    """Topic-sensitive PPR of node sets by power iteration on the CSR operator.

    For each set ``S`` in ``topics`` the teleport vector is uniform on ``S``, and
    ``x <- alpha * t_S + (1 - alpha) * W^T x`` is iterated ``num_iterations`` times (the
    error shrinks as ``(1 - alpha)^iterations``: 0.75^50 = 6e-7). ``chunk_size`` sets are
    processed at once as the columns of an ``[N, chunk]`` block, so memory is
    ``O(N * chunk_size)``.

    Returns the dense scores ``[N, len(topics)]`` when ``topk`` is None, else a list with,
    for each set, the ids of its ``topk`` (an int, or one int per set) highest-scoring
    nodes with a positive score, by descending score. It runs on ``device`` (default: the
    device of ``edge_index``), and so do its results.
    """
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    alpha = check_alpha(alpha)
    num_iterations = check_positive_int(num_iterations, "num_iterations")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    if not isinstance(topics, (list, tuple)) or len(topics) == 0:
        raise ValueError("topics must be a non-empty list of node-id tensors (one node set per topic)")
    sets = [as_node_ids(t, num_nodes, f"topics[{i}]") for i, t in enumerate(topics)]
    if topk is not None:
        ks = [topk] * len(sets) if isinstance(topk, int) else list(topk)
        if len(ks) != len(sets):
            raise ValueError(f"topk must be an int or one int per topic ({len(sets)}), got {len(ks)} values")
        ks = [min(check_positive_int(k, "topk"), num_nodes) for k in ks]
    dev = torch.device(device) if device is not None else edge_index.device
    op = _walk_operator(edge_index, num_nodes, dev)
    dense, tops = [], []
    for lo in range(0, len(sets), chunk_size):
        block = sets[lo:lo + chunk_size]
        tele = torch.zeros(num_nodes, len(block), device=dev)
        for j, s in enumerate(block):
            tele[s.to(dev), j] = 1.0 / s.numel()
        x = tele.clone()
        for _ in range(num_iterations):
            x = propagate(op, x).mul_(1.0 - alpha).add_(tele, alpha=alpha)
        if topk is None:
            dense.append(x)
        else:
            for j in range(len(block)):
                val, idx = torch.topk(x[:, j], ks[lo + j])
                tops.append(idx[val > 0])  # never nodes the walk cannot reach
    return torch.cat(dense, 1) if topk is None else tops


def exact_ppr(edge_index: Tensor, num_nodes: int, alpha: float = 0.25, sources: Tensor | None = None) -> Tensor:
    """Exact PPR rows ``alpha e_s^T (I - (1 - alpha) W)^-1`` (row ``i`` = PPR vector of source
    ``i``, or of ``sources[i]``), float64, on the device of ``edge_index``; for checking.

    Without ``sources``: the dense matrix of every source, a dense ``O(N^3)`` inverse (at most
    5,000 nodes). With ``sources``: the fixed point ``x = alpha e_s + (1 - alpha) W^T x``
    iterated on a scipy sparse matrix until the error bound ``(1 - alpha)^k`` (1-norm of each
    row) is below ``1e-13``, for graphs of any size. (A sparse LU solve is not used: on the
    expander-like graphs of this course its fill-in is nearly dense.)"""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    alpha = check_alpha(alpha)
    indptr, indices, deg = transition_csr(edge_index, num_nodes)
    rows = np.repeat(np.arange(num_nodes), np.diff(indptr))
    if sources is not None:
        import scipy.sparse as sp

        src = torch.as_tensor(sources).reshape(-1).cpu().numpy()
        if src.size == 0 or not np.issubdtype(src.dtype, np.integer) or src.min() < 0 or src.max() >= num_nodes:
            raise ValueError(f"sources must be a non-empty integer tensor of node ids in [0, {num_nodes}), "
                             f"got {sources!r}")
        Wt = sp.csr_matrix(((1 - alpha) / deg[rows], (indices, rows)), shape=(num_nodes, num_nodes))
        tele = np.zeros((num_nodes, src.size))
        tele[src, np.arange(src.size)] = alpha
        x = tele.copy()
        for _ in range(math.ceil(math.log(1e-13) / math.log(1 - alpha))):
            x = tele + Wt @ x
        return torch.from_numpy(np.ascontiguousarray(x.T)).to(edge_index.device)
    if num_nodes > 5000:
        raise ValueError(f"exact_ppr without sources is dense (O(N^3)); num_nodes={num_nodes} is too large (at most "
                         "5000): pass sources= for a sparse solve")
    W = np.zeros((num_nodes, num_nodes))
    np.add.at(W, (rows, indices), 1.0 / deg[rows])
    return torch.from_numpy(alpha * np.linalg.inv(np.eye(num_nodes) - (1 - alpha) * W)).to(edge_index.device)
