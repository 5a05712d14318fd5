"""GraphSAINT (Zeng et al., ICLR 2020) subgraph samplers in pure PyTorch, with PyG's names.

Each step samples a node set ``V_s`` and trains a full GCN on the subgraph it induces.
Three samplers, as in the paper:

* :class:`GraphSAINTNodeSampler`: ``batch_size`` node draws with probability
  proportional to the degree (``||A_{:,v}||^2`` of the unnormalized adjacency, the
  paper's choice), with replacement, duplicates merged;
* :class:`GraphSAINTEdgeSampler`: ``batch_size`` edge draws with ``p_(u,v)`` proportional to
  ``1/deg(u) + 1/deg(v)``; the node set is their end points;
* :class:`GraphSAINTRandomWalkSampler`: ``batch_size`` uniform roots, each followed by a
  uniform random walk of ``walk_length`` steps.

With ``sample_coverage > 0`` the sampler first draws subgraphs until every node has been
sampled ``sample_coverage`` times on average, counts how often each node (``C_v``) and
each edge (``C_(u,v)``) appears among ``M`` pre-samples, and attaches to every batch the
paper's normalization coefficients (Section 3.2, Algorithm 1):

* ``node_norm[v] = 1 / lambda_v`` with ``lambda_v = |V| C_v / M``: weighting each node's
  loss by it makes the mini-batch loss an unbiased estimate of the full-graph mean loss;
* ``edge_norm[(u,v)] = 1 / alpha_(u,v)`` with ``alpha_(u,v) = C_(u,v) / C_v`` (``v`` the
  aggregating node): scaling the full graph's normalized edge weight by it makes each
  sampled node's aggregation an unbiased estimate of its full-graph aggregation.

:meth:`GraphSAINTSampler.adjacency` builds that operator for a batch (the full graph's
normalized weights times ``edge_norm``; for ``"gcn"`` a self-loop is added to each node
that has none, as ``build_adjacency`` does, and self-loops are unscaled since
``alpha_(v,v) = 1``). The coefficients can be cached in ``save_dir``, as PyG's are.
:func:`normalized_loss` weights a batch's loss by ``node_norm``; :func:`normalized_step` is
GraphSAINT's training step (both coefficients) for :func:`~msgnn_lite.train.fit`.

Everything runs on the data's device: random numbers, coefficients and batches (a sampler on
CPU data yields CPU batches, one on CUDA data CUDA batches). The constructors take PyG's
parameters (see :mod:`msgnn_lite.loader`).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_edge_index, check_option, check_positive_int
from .loader import attribute_keys, check_loader_options, subgraph_batch
from .partition import graph_key
from .sparse import take_rows as _take
from .sparse import SparseAdjacency, _compress, _csr
from .utils import atomic_path, device_generator, load_cache, to_device

__all__ = ["GraphSAINTSampler", "GraphSAINTNodeSampler", "GraphSAINTEdgeSampler", "GraphSAINTRandomWalkSampler",
           "normalized_loss", "normalized_step"]


def _categorical(cdf: Tensor, num: int, generator: torch.Generator | None) -> Tensor:
    """``num`` draws from the distribution whose (unnormalized) CDF is ``cdf`` (inverse-CDF;
    unlike ``torch.multinomial`` it has no 2^24-category limit)."""
    u = torch.rand(num, dtype=cdf.dtype, device=cdf.device, generator=generator) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.numel() - 1)


class GraphSAINTSampler:
    """Base class: iterate to get ``num_steps`` batches (PyG's ``GraphSAINTSampler``).

    A batch is the subgraph induced by the sampled node set, a ``Data`` with node
    attributes sliced, local ``edge_index``, ``n_id``, ``e_id`` and, when
    ``sample_coverage > 0``, ``node_norm`` and ``edge_norm``.

    PyG's parameters, in its order: ``batch_size`` (roots, nodes or edges per sample),
    ``num_steps`` (batches per epoch), ``sample_coverage`` (pre-samples per node for the
    coefficients; 0: none), ``save_dir`` (cache the coefficients there and reuse them for
    the same graph and settings), ``log``; DataLoader worker options in ``**kwargs`` are
    ignored. msgnn_lite's own, keyword-only: ``generator`` for reproducible samples; one of
    another device than the data's (e.g. a seeded CPU generator for CUDA data) seeds a
    generator on the data's device (:func:`~msgnn_lite.utils.device_generator`).
    """

    def __init__(self, data: Data, batch_size: int, num_steps: int = 1, sample_coverage: int = 0, save_dir=None,
                 log: bool = False, *, generator: torch.Generator | None = None, **kwargs):
        check_loader_options(type(self).__name__, kwargs)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.num_steps = check_positive_int(num_steps, "num_steps")
        if isinstance(sample_coverage, bool) or not isinstance(sample_coverage, int) or sample_coverage < 0:
            raise ValueError(f"sample_coverage must be an integer >= 0, got {sample_coverage!r}")
        self.sample_coverage = sample_coverage
        self.data = data
        self.N = n = data.num_nodes
        self.E = data.edge_index.size(1)
        ei = check_edge_index(data.edge_index, n)
        self.device = ei.device
        self.generator = device_generator(generator, self.device)  # samples are drawn where the graph lives
        self.row, self.col = ei[0], ei[1]  # PyG flow: row = source, col = target
        # Incoming-edge CSR (rows = destination) for inducing subgraphs.
        order = torch.sort(self.col, stable=True).indices
        self._in_ptr = _compress(self.col[order], n)
        self._in_src = self.row[order]
        self._in_eid = order
        self.deg_in = self._in_ptr[1:] - self._in_ptr[:-1]
        self._assoc = torch.full((n,), -1, dtype=torch.long, device=self.device)
        is_loop = self.row == self.col
        self.has_loop = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.has_loop[self.row[is_loop]] = True
        self._keys = attribute_keys(data)
        self.node_norm: Tensor | None = None
        self.edge_norm: Tensor | None = None
        self.num_presamples = 0
        if sample_coverage > 0:
            path = None if save_dir is None else Path(save_dir).expanduser() / self._norm_filename()
            if path is None or not self._load_norm(path, log):
                self._compute_norm(log)
                if path is not None:
                    with atomic_path(path) as tmp:
                        torch.save({"settings": self._norm_settings(), "node_norm": self.node_norm.cpu(),
                                    "edge_norm": self.edge_norm.cpu(), "num_presamples": self.num_presamples}, tmp)

    # -- to be provided by subclasses -------------------------------------------------------
    def sample_nodes(self) -> Tensor:
        """Global ids of one sample's nodes (any order, duplicates allowed)."""
        raise TypeError(f"{type(self).__name__} must define sample_nodes()")

    # -- shared machinery ---------------------------------------------------------------------
    def induced(self, nodes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(n_id sorted, local edge_index, e_id)`` of the subgraph induced by ``nodes``."""
        n_id = torch.unique(nodes)
        start = _take(self._in_ptr, n_id)
        deg = _take(self._in_ptr, n_id + 1) - start
        total = int(deg.sum())
        tgt = torch.repeat_interleave(torch.arange(n_id.numel(), device=n_id.device), deg, output_size=total)
        starts = torch.cumsum(deg, 0) - deg
        slot = _take(start, tgt) + torch.arange(total, device=n_id.device) - _take(starts, tgt)
        src = _take(self._in_src, slot)
        assoc = self._assoc
        assoc[n_id] = torch.arange(n_id.numel(), device=n_id.device)
        loc = _take(assoc, src)
        assoc[n_id] = -1  # reset only what this sample touched
        keep = loc >= 0
        edge_index = torch.stack([loc[keep], tgt[keep]])
        return n_id, edge_index, _take(self._in_eid, slot[keep])

    def _norm_settings(self) -> str:
        """What the coefficients depend on: the graph, the sampler and its settings."""
        walk = f"_w{self.walk_length}" if hasattr(self, "walk_length") else ""
        return (f"{type(self).__name__.lower()}_{graph_key(self.data.edge_index, self.N)}"
                f"_b{self.batch_size}{walk}_c{self.sample_coverage}")

    def _norm_filename(self) -> str:
        return f"saint_{self._norm_settings()}.pt"

    def _load_norm(self, path: Path, log: bool) -> bool:
        def valid(obj) -> bool:  # the structure this class writes; anything else is a damaged file
            return (isinstance(obj, dict) and isinstance(obj.get("node_norm"), Tensor)
                    and isinstance(obj.get("edge_norm"), Tensor) and "num_presamples" in obj
                    and obj["node_norm"].numel() == self.N and obj["edge_norm"].numel() == self.E)
        stored = load_cache(path, lambda obj: isinstance(obj, dict) and (obj.get("settings") != self._norm_settings()
                                                                        or valid(obj)))
        if stored is None or stored.get("settings") != self._norm_settings():
            return False
        self.node_norm = stored["node_norm"].to(self.device)
        self.edge_norm = stored["edge_norm"].to(self.device)
        self.num_presamples = int(stored["num_presamples"])
        if log:
            print(f"GraphSAINT: normalization loaded from {path.name}")
        return True

    def _compute_norm(self, log: bool) -> None:
        node_count = torch.zeros(self.N, dtype=torch.float64, device=self.device)
        edge_count = torch.zeros(self.E, dtype=torch.float64, device=self.device)
        total, m = 0, 0
        while total < self.N * self.sample_coverage:
            n_id, _, e_id = self.induced(self.sample_nodes())
            node_count.index_add_(0, n_id, torch.ones(n_id.numel(), dtype=torch.float64, device=self.device))
            edge_count.index_add_(0, e_id, torch.ones(e_id.numel(), dtype=torch.float64, device=self.device))
            total += n_id.numel()
            m += 1
        self.num_presamples = m
        # alpha_(u,v) = C_(u,v) / C_v (v = target), lambda_v = |V| C_v / M.
        edge_norm = node_count[self.col] / edge_count
        edge_norm[torch.isnan(edge_norm) | torch.isinf(edge_norm)] = 0.1  # never sampled: PyG's fallback
        self.edge_norm = edge_norm.clamp_(0, 1e4).float()
        node_norm = m / (node_count * self.N)
        node_norm[torch.isinf(node_norm)] = 0.1
        self.node_norm = node_norm.float()
        if log:
            print(f"GraphSAINT: {m} pre-samples for coverage {self.sample_coverage}")

    def __len__(self) -> int:
        return self.num_steps

    def __iter__(self):
        for _ in range(self.num_steps):
            yield self.sample()

    def sample(self) -> Data:
        """One batch."""
        n_id, edge_index, e_id = self.induced(self.sample_nodes())
        batch = subgraph_batch(self.data, self._keys, edge_index, n_id, e_id)
        if self.node_norm is not None:
            batch.node_norm = self.node_norm[n_id]
            batch.edge_norm = self.edge_norm[e_id]
        return batch

    def _full_weights(self, normalization: str) -> tuple[Tensor, Tensor | None]:
        """Per-edge weights of the full graph's normalized operator and the weights of the
        self-loops it adds (``"gcn"`` only; zero where a node already has a loop)."""
        key = f"_w_{normalization}"
        if not hasattr(self, key):
            deg = self.deg_in.to(torch.float32)
            if normalization == "gcn":  # D^-1/2 (A+I) D^-1/2, a loop added only where there is none
                dinv = (deg + (~self.has_loop).float()).pow(-0.5)
                w, loop = dinv[self.row] * dinv[self.col], (dinv * dinv).masked_fill_(self.has_loop, 0.0)
            elif normalization in ("mean", "rw"):
                dinv = deg.reciprocal().masked_fill_(deg == 0, 0.0)
                w, loop = dinv[self.col], None
            elif normalization == "sum":
                w, loop = torch.ones(self.E, device=self.device), None
            else:
                check_option(normalization, "normalization", ("gcn", "mean", "rw", "sum"))
            setattr(self, key, (w, loop))
        return getattr(self, key)

    def adjacency(self, batch: Data, normalization: str = "gcn", use_norm: bool = True) -> SparseAdjacency:
        """The batch's graph operator: full-graph normalized weights of its edges, times
        ``edge_norm`` when ``use_norm`` (GraphSAINT's unbiased aggregator), plus, for ``"gcn"``,
        a self-loop for each node without one in the graph (existing loops are edges of the
        batch already). Pass it to a msgnn_lite model as ``model(batch.x, adj)``."""
        w_full, loop = self._full_weights(normalization)
        src, dst = batch.edge_index
        w = w_full[batch.e_id]
        if use_norm:
            if "edge_norm" not in batch:
                raise ValueError("batch has no edge_norm: build the sampler with sample_coverage > 0")
            w = w * batch.edge_norm
        if loop is not None:
            ar = (~self.has_loop[batch.n_id]).nonzero().view(-1)
            src, dst, w = torch.cat([src, ar]), torch.cat([dst, ar]), torch.cat([w, loop[batch.n_id[ar]]])
        order = torch.sort(dst, stable=True).indices
        n = batch.num_nodes
        return SparseAdjacency(_csr(_compress(dst[order], n), src[order], w[order], n, n), normalization)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, num_steps={self.num_steps}, " \
               f"sample_coverage={self.sample_coverage})"


class GraphSAINTNodeSampler(GraphSAINTSampler):
    """Node sampler: ``batch_size`` draws with probability proportional to the in-degree."""

    def sample_nodes(self) -> Tensor:
        if not hasattr(self, "_node_cdf"):
            self._node_cdf = torch.cumsum(self.deg_in.to(torch.float64), 0)
            if float(self._node_cdf[-1]) == 0:
                raise ValueError("GraphSAINTNodeSampler needs a graph with edges")
        return _categorical(self._node_cdf, self.batch_size, self.generator)


class GraphSAINTEdgeSampler(GraphSAINTSampler):
    """Edge sampler: ``batch_size`` edge draws with ``p_(u,v)`` proportional to ``1/deg(u) + 1/deg(v)``."""

    def sample_nodes(self) -> Tensor:
        if not hasattr(self, "_edge_cdf"):
            if self.E == 0:
                raise ValueError("GraphSAINTEdgeSampler needs a graph with edges")
            deg = self.deg_in.to(torch.float64).clamp(min=1)
            self._edge_cdf = torch.cumsum(1.0 / deg[self.row] + 1.0 / deg[self.col], 0)
        e = _categorical(self._edge_cdf, self.batch_size, self.generator)
        return torch.cat([self.row[e], self.col[e]])


class GraphSAINTRandomWalkSampler(GraphSAINTSampler):
    """Random-walk sampler: ``batch_size`` uniform roots, a uniform walk of ``walk_length``
    steps from each (a node without out-edges stays where it is; on a graph with no edges at all
    every walk stays at its root, so a batch is its roots)."""

    def __init__(self, data: Data, batch_size: int, walk_length: int, num_steps: int = 1, sample_coverage: int = 0,
                 save_dir=None, log: bool = False, *, generator: torch.Generator | None = None, **kwargs):
        self.walk_length = check_positive_int(walk_length, "walk_length")
        ei = check_edge_index(data.edge_index, data.num_nodes)
        order = torch.sort(ei[0], stable=True).indices
        self._out_ptr = _compress(ei[0][order], data.num_nodes)
        self._out_dst = ei[1][order]
        super().__init__(data, batch_size, num_steps, sample_coverage, save_dir, log, generator=generator, **kwargs)

    def sample_nodes(self) -> Tensor:
        cur = torch.randint(0, self.N, (self.batch_size,), device=self.device, generator=self.generator)
        if self.E == 0:  # no edge to follow: every walk stays at its root
            return cur.repeat(self.walk_length + 1)
        walk = [cur]
        for _ in range(self.walk_length):
            start = self._out_ptr[cur]
            deg = self._out_ptr[cur + 1] - start
            r = (torch.rand(cur.numel(), dtype=torch.float64, device=self.device, generator=self.generator)
                 * deg).long()
            nxt = self._out_dst[(start + torch.minimum(r, (deg - 1).clamp(min=0))).clamp(max=max(self.E - 1, 0))]
            cur = torch.where(deg > 0, nxt, cur)
            walk.append(cur)
        return torch.cat(walk)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, walk_length={self.walk_length}, " \
               f"num_steps={self.num_steps}, sample_coverage={self.sample_coverage})"


# -- GraphSAINT's normalized training step --------------------------------------------------

def normalized_loss(logits: Tensor, batch: Data) -> Tensor:
    """GraphSAINT's loss of a batch: ``sum_v node_norm[v] * CE(logits[v], y[v])`` over the batch's
    training nodes (all of its nodes when it has no ``train_mask``). Its expectation over
    batches is the full graph's summed training loss divided by ``N`` (Section 3.2). Computed
    on the logits' device without a host sync (no boolean indexing)."""
    if "node_norm" not in batch:
        raise ValueError("batch has no node_norm: build the sampler with sample_coverage > 0")
    per_node = F.cross_entropy(logits, batch.y, reduction="none", ignore_index=-1) * batch.node_norm  # -1: unlabelled
    if "train_mask" in batch:
        per_node = torch.where(batch.train_mask, per_node, torch.zeros_like(per_node))
    return per_node.sum()


def normalized_step(sampler: GraphSAINTSampler, normalization: str | None = None, per_labelled_node: bool = False):
    """A ``train_step`` for :func:`~msgnn_lite.train.fit`: one optimizer step per batch of
    ``sampler`` with GraphSAINT's unbiased aggregation (:meth:`GraphSAINTSampler.adjacency`,
    ``edge_norm``) and loss (:func:`normalized_loss`, ``node_norm``).

    ``normalization``: the batch operator's (``"gcn"``, ``"mean"``, ``"rw"`` or ``"sum"``);
    ``None`` (default) takes the model's own (``model.normalization``: ``"gcn"`` for a GCN,
    ``"mean"`` for GraphSAGE), since a model refuses an operator of another normalisation.

    The operator is built where the sampler's graph lives; a batch and its operator are then
    copied to the model's device if they are elsewhere (a sampler on CPU data, a model on a GPU).
    The epoch's loss (the mean over batches) is summed on the device and read once per epoch.

    ``per_labelled_node=True`` multiplies the loss by ``N / (number of training nodes)``, so it
    estimates the *mean* loss over the labelled training nodes instead of their sum divided by
    ``N``. The gradient's direction is the same; its scale is not, which matters with weight
    decay: with 200 labelled nodes among 13,752 the unscaled loss is 69 times smaller than
    the full-batch loss, and Adam's L2 term then dominates it.
    """
    if normalization is not None:
        check_option(normalization, "normalization", ("gcn", "mean", "rw", "sum"))
    scale = 1.0
    if per_labelled_node:
        mask = getattr(sampler.data, "train_mask", None)
        labelled = int(mask.sum()) if mask is not None else sampler.N
        if labelled == 0:
            raise ValueError("per_labelled_node=True needs training nodes: the sampler's data has an empty train_mask")
        scale = sampler.N / labelled

    def step(model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        dev = next(model.parameters()).device
        total = torch.zeros((), dtype=torch.float64, device=dev)
        norm = normalization or getattr(getattr(model, "module", model), "normalization", None) or "gcn"
        for b in sampler:
            adj = sampler.adjacency(b, norm)
            if b.edge_index.device != dev:
                b, adj = to_device(b, dev), adj.to(dev)
            optimizer.zero_grad(set_to_none=True)
            loss = normalized_loss(model(b.x, adj), b) * scale
            loss.backward()
            optimizer.step()
            total += loss.detach()
        return float(total) / len(sampler)
    return step
