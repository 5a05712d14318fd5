"""GNNAutoScale (GAS; Fey, Lenssen, Weichert & Leskovec, ICML 2021) in pure PyTorch.

A GAS batch is a few METIS clusters (the *in-batch* nodes, first in ``n_id``) plus their
one-hop neighbors (the *halo*). Every layer

1. computes the in-batch nodes exactly, with the rows of the **full-graph** operator
   (:func:`~msgnn_lite.history.halo_operator`: all edges kept, full-graph degrees),
2. **pushes** the fresh in-batch embeddings into that layer's :class:`~msgnn_lite.history.History`,
3. **pulls** the halo's embeddings from the history (computed in earlier batches, so stale)
   and feeds ``[fresh | pulled]`` to the next layer.

So a batch never expands beyond one hop, whatever the depth: memory is that of the batch
and its halo (plus the histories, which live in CPU memory in the paper), while every edge
of the graph is used. With the whole graph as one batch the halo is empty and GAS *is*
full-batch training (the tests check outputs and gradients); with fresh histories the
mini-batch output equals the full-graph output.

:class:`GASGNN` runs a GCN, GraphSAGE or GCNII (Chen et al., 2020) stack of any depth and
has the same parameter names as :class:`msgnn_lite.models.GCN` / ``SAGE``;
``model(x, adj)`` without ``n_id`` is the plain full-graph model (used for evaluation, and
on a batch subgraph it is Cluster-GCN). :class:`GASLoader` yields the batches;
:func:`gas_train_step` plugs into :func:`msgnn_lite.train.fit` (the Cluster-GCN baseline on the same
clusters uses :func:`msgnn_lite.train.minibatch_step`).

On a GPU, GAS keeps what grows with the graph on the host: build the :class:`GASLoader` on CPU
data (features, labels, the full-graph operator stay there; its batches are pinned) and keep the
histories on the CPU (the default; pinned). :func:`gas_train_step` then copies only each batch's
rows (batch + halo) and its batch operator to the model's GPU, without blocking the host, and
reads the loss once per epoch. :func:`step_memory` measures each method on a clean device.
"""
from __future__ import annotations

import gc
import math
import time

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_fraction, check_positive_int
from .diagnostics import dead_unit_fraction, loss_rise
from .history import History, check_node_ids, halo_operator
from .loader import _segment_arange
from .memory import measure_step
from .models import MLP, GCNConv, SAGEConv, as_adjacency, feature_dropout, linear
from .partition import ClusterData, ClusterLoader
from .sparse import build_adjacency, cached_adjacency, propagate, take_rows
from .train import full_batch_step, graph_input, minibatch_step
from .utils import resolve_device, to_device

__all__ = ["GCNIIConv", "GASGNN", "GASLoader", "gas_train_step", "history_staleness",
           "step_memory", "accuracy_runs", "reference_runs", "reference_table", "REFERENCE_GCN",
           "PAPER_GAS_GCN", "LITERATURE_GCN", "staleness_run", "memory_study"]

CONVS = ("gcn", "sage", "gcnii")


class GCNIIConv(nn.Module):
    """GCNII's layer (Chen et al., 2020): initial residual and identity mapping,
    ``h = (1 - alpha) A x + alpha x0``, ``out = (1 - beta) h + beta h W`` with
    ``beta = log(theta / layer + 1)``. Deep stacks of it keep improving where GCN collapses,
    which is where GAS's exact-in-the-limit histories matter most."""

    normalization = "gcn"

    def __init__(self, channels: int, layer: int, alpha: float = 0.1, theta: float = 0.5):
        super().__init__()
        self.channels = check_positive_int(channels, "channels")
        layer = check_positive_int(layer, "layer")
        self.alpha = check_fraction(alpha, "alpha", low_open=False)
        if not theta > 0:
            raise ValueError(f"theta must be > 0, got {theta}")
        self.beta = math.log(theta / layer + 1.0)
        self.lin = nn.Linear(channels, channels, bias=False)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: Tensor, x0: Tensor, adj) -> Tensor:
        adj = as_adjacency(adj, x.size(0), self.normalization)
        h = (1.0 - self.alpha) * propagate(adj, x) + self.alpha * x0
        return (1.0 - self.beta) * h + self.beta * self.lin(h)

    def __repr__(self) -> str:
        return f"GCNIIConv({self.channels}, alpha={self.alpha}, beta={self.beta:.3f})"


class GASGNN(nn.Module):
    """A GCN / GraphSAGE / GCNII stack with one :class:`History` per hidden layer.

    Parameters
    ----------
    num_nodes:
        Nodes of the whole graph (rows of each history).
    in_channels, hidden_channels, out_channels, num_layers:
        Widths and the number of message-passing layers (any depth >= 1). ``"gcnii"`` adds an
        input and an output linear layer around its ``num_layers`` propagation layers.
    conv:
        ``"gcn"``, ``"sage"`` (mean aggregation) or ``"gcnii"`` (``alpha``, ``theta``).
    dropout:
        Dropout on the input features and between layers (applied after push/pull, as GAS).
    history_device, history_dtype, pin_memory:
        Where and how the ``num_layers - 1`` histories are stored (see :class:`History`).

    ``forward(x, adj)``: the full-graph model (``adj`` a :class:`SparseAdjacency` or an
    ``edge_index`` for ``x``'s rows). ``forward(x, adj, n_id, batch_size)``: a GAS batch,
    ``x = features[n_id]``, ``adj`` from :func:`halo_operator`, in-batch nodes first;
    returns the ``batch_size`` in-batch rows.
    """

    def __init__(self, num_nodes: int, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, conv: str = "gcn", dropout: float = 0.5, alpha: float = 0.1,
                 theta: float = 0.5, history_device="cpu", history_dtype: torch.dtype = torch.float32,
                 pin_memory: bool | None = None):
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
        num_layers = check_positive_int(num_layers, "num_layers")
        self.dropout = check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        self.input_dropout = self.dropout
        self.conv = conv
        self.normalization = "mean" if conv == "sage" else "gcn"
        if conv == "gcnii":
            self.lins = nn.ModuleList([nn.Linear(in_channels, hidden_channels), nn.Linear(hidden_channels, out_channels)])
            self.convs = nn.ModuleList(GCNIIConv(hidden_channels, i + 1, alpha, theta) for i in range(num_layers))
        else:
            cls = GCNConv if conv == "gcn" else SAGEConv
            dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
            self.convs = nn.ModuleList(cls(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = None  # same state-dict layout as msgnn_lite.models.GCN / SAGE
        # A plain list, not a ModuleList: histories are state, not parameters; model.to() leaves them.
        self.histories = [History(num_nodes, hidden_channels, history_device, history_dtype, pin_memory)
                          for _ in range(num_layers - 1)]
        self.num_nodes = num_nodes

    def history_nbytes(self) -> int:
        """Bytes held by all histories together."""
        return sum(h.nbytes() for h in self.histories)

    def reset_histories(self) -> None:
        for h in self.histories:
            h.reset()

    def forward(self, x: Tensor, adj, n_id: Tensor | None = None, batch_size: int | None = None,
                push: bool = True, _hidden: list | None = None) -> Tensor:
        if isinstance(adj, Tensor):  # an edge_index: convert once for all layers
            adj = cached_adjacency(adj, x.size(0), self.normalization)
        mini = n_id is not None
        if mini:
            n_id = check_node_ids(n_id, self.num_nodes, "n_id")
            if n_id.numel() != x.size(0):
                raise ValueError(f"n_id must hold one id per row of x ({x.size(0)}), got {n_id.numel()}")
            b = check_positive_int(batch_size, "batch_size")
            if b > x.size(0):
                raise ValueError(f"batch_size must be at most the number of rows of x ({x.size(0)}), got {b}")
            if self.histories:  # checked once here, moved once to where the histories live
                n_id = n_id.to(self.histories[0].device)
        elif batch_size is not None:
            raise ValueError("batch_size needs n_id (the global ids of x's rows); leave both out for full-graph use")
        x = feature_dropout(x, self.input_dropout, self.training)
        x0 = None
        if self.conv == "gcnii":
            x = x0 = F.relu(linear(x, self.lins[0].weight, self.lins[0].bias))
            x = F.dropout(x, self.dropout, self.training)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            h = conv(x, x0, adj) if x0 is not None else conv(x, adj)
            if i == last:
                break
            h = F.relu(h)
            if mini:  # in-batch rows are exact; the halo (disjoint from the batch) comes from the history
                h = h[:b]
                halo = self.histories[i].pull(n_id[b:], device=h.device, dtype=h.dtype, check=False)
                if push:  # after the pull: a push from a GPU completes asynchronously
                    self.histories[i].push(h, n_id[:b], check=False)
                h = torch.cat([h, halo])
            if _hidden is not None:
                _hidden.append(h.detach())
            x = F.dropout(h, self.dropout, self.training)
        if self.conv == "gcnii":
            h = F.dropout(F.relu(h), self.dropout, self.training)
            h = self.lins[1](h)
        return h[:b] if mini else h

    @torch.no_grad()
    def hidden_embeddings(self, x: Tensor, adj) -> list[Tensor]:
        """The exact full-graph embeddings that the histories approximate (eval mode)."""
        was = self.training
        self.eval()
        out: list[Tensor] = []
        self(x, adj, _hidden=out)
        self.train(was)
        return out

    @torch.no_grad()
    def refresh_histories(self, x: Tensor, adj) -> None:
        """Push every node's exact (eval-mode) embeddings into the histories."""
        for hist, h in zip(self.histories, self.hidden_embeddings(x, adj)):
            hist.push(h)


class GASLoader(ClusterLoader):
    """GAS batches: ``batch_size`` clusters of a :class:`ClusterData` plus their one-hop halo.

    Each batch is a ``Data`` with ``n_id`` (in-batch nodes first, cluster after cluster, then
    the halo sorted by id), ``batch_size`` (in-batch count), ``adj`` (the
    :func:`halo_operator` of the full-graph operator with the given ``normalization``) and
    the node attributes (``x``, ``y``, masks) sliced to ``n_id``. One epoch visits every
    node once as an in-batch node. Cluster order and batching are :class:`ClusterLoader`'s.

    Batches live where ``cluster_data``'s graph lives (GAS on a GPU: keep it on the CPU, so
    that only batches travel). ``pin_memory`` (``None``: when the graph is on the CPU and CUDA
    is available) page-locks the batches' dense node attributes for asynchronous copies.
    """

    def __init__(self, cluster_data: ClusterData, batch_size: int = 1, shuffle: bool = True,
                 normalization: str = "gcn", generator: torch.Generator | None = None,
                 pin_memory: bool | None = None):
        super().__init__(cluster_data, batch_size, shuffle=shuffle, generator=generator)
        data = cluster_data.data
        self.adj = build_adjacency(data.edge_index, data.num_nodes, normalization)
        if pin_memory is None:
            pin_memory = self.adj.device.type == "cpu" and torch.cuda.is_available()
        self.pin_memory = bool(pin_memory)

    def _batch(self, clusters: Tensor) -> Data:
        """The batch made of ``clusters`` (cluster ids, checked by :meth:`ClusterLoader.batch`) and their halo."""
        cd = self.cluster_data
        clusters = clusters.to(cd.partptr.device)
        sizes = cd.partptr[clusters + 1] - cd.partptr[clusters]
        nodes = take_rows(cd.perm, torch.repeat_interleave(cd.partptr[clusters], sizes) + _segment_arange(sizes))
        n_id, adj = halo_operator(self.adj, nodes)
        out = Data(n_id=n_id, num_nodes=n_id.numel())
        for key in self._node_keys:
            value = take_rows(cd.data[key], n_id)
            out[key] = value.pin_memory() if self.pin_memory and value.layout == torch.strided else value
        out.batch_size = int(nodes.numel())
        out.adj = adj
        return out

    def __repr__(self) -> str:
        return f"GASLoader({len(self)} batches of {self.batch_size} clusters, {self.adj.num_nodes:,} nodes)"


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def gas_train_step(loader: GASLoader):
    """A ``train_step`` for :func:`msgnn_lite.train.fit`: one epoch of GAS batches.

    Batches without training nodes still run forward (without a gradient) so that their
    nodes' histories are refreshed. Returns the training-node-weighted mean loss.

    A batch is copied to the model's device (features, labels and the batch operator of
    batch + halo; ``n_id`` stays with the histories). For batches on the host, counting the
    training nodes is a host operation, so the loop never waits for the GPU: the loss is
    summed on the device and read once per epoch."""
    def step(model: GASGNN, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        dev = _model_device(model)
        total = torch.zeros((), dtype=torch.float64, device=dev)
        count = 0
        for b in loader:
            b_size = b.batch_size
            mask = b.train_mask[:b_size]
            k = int(mask.sum())  # a host read for host batches; a shape for the rows below
            x, adj = b.x.to(dev, non_blocking=True), b.adj.to(dev)
            if k == 0:
                with torch.no_grad():
                    model(x, adj, n_id=b.n_id, batch_size=b_size)
                continue
            rows = mask.nonzero().view(-1).to(dev, non_blocking=True)
            y = b.y[:b_size].to(dev, non_blocking=True).index_select(0, rows)
            optimizer.zero_grad(set_to_none=True)
            out = model(x, adj, n_id=b.n_id, batch_size=b_size)
            loss = F.cross_entropy(out.index_select(0, rows), y)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * k
            count += k
        return float(total) / max(count, 1)
    return step


@torch.no_grad()
def history_staleness(model: GASGNN, x: Tensor, adj) -> list[float]:
    """Per history: ``||H_bar - H|| / ||H||`` over all nodes, where ``H`` are the exact
    full-graph embeddings of the current weights (eval mode) and ``H_bar`` the stored ones."""
    out = []
    for hist, fresh in zip(model.histories, model.hidden_embeddings(x, adj)):
        stored = hist.pull(device=fresh.device)
        out.append(float((stored - fresh).norm() / fresh.norm().clamp_min(1e-12)))
    return out


def _release_device_memory(dev: torch.device) -> None:
    """On a GPU, free what earlier measurements left behind (unreachable tensors, reference
    cycles included, then the allocator's cached blocks). The CPU measure counts the step's
    own tensors only, so there is nothing to free there."""
    if dev.type == "cuda":
        gc.collect()
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()


def step_memory(model: GASGNN, data: Data, batch: Data | None = None, device="auto") -> dict:
    """Memory (bytes) and time of one training step on all training nodes of ``data``
    (``batch=None``: full batch) or on one GAS ``batch``, with :func:`msgnn_lite.memory.measure_step`
    (CPU: saved tensors + parameters + gradients + optimizer state; GPU: CUDA peak).

    Returns ``{"step_bytes", "activation_bytes", "history_bytes", "time_s", "nodes"}``;
    the histories' bytes are reported apart (they are CPU memory in GAS, not GPU memory).

    Each call measures one method in isolation: on a GPU it starts by freeing what earlier calls
    left (``gc``, ``torch.cuda.empty_cache``) and the CUDA peak is counted from there, so it holds
    the method's own persistent device state (the model and its optimizer state; for the full
    batch also a copy of the graph and its operator, which are freed on return) plus the step.
    The GAS batch is moved inside the step; the caller's ``data`` and ``batch`` are not moved.
    Pass ``data``/``batch`` on the CPU: tensors of the caller's already on the GPU count too."""
    dev = resolve_device(device)
    _release_device_memory(dev)
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    if batch is None:
        data = to_device(data, dev)
        graph_input(model, data)  # build (and cache) the operator outside the measurement

        def step():
            return full_batch_step(model, data, opt)
        nodes = data.num_nodes
    else:
        loader = [batch]
        step = lambda: gas_train_step(loader)(model, data, opt)  # noqa: E731
        nodes = batch.num_nodes
    t0 = time.perf_counter()
    _, rep = measure_step(model, step, opt, dev)
    elapsed = time.perf_counter() - t0
    return {"step_bytes": rep.peak, "activation_bytes": rep.activations,
            "history_bytes": model.history_nbytes() if batch is not None else 0, "time_s": elapsed, "nodes": nodes}


def accuracy_runs(data: Data, conv: str = "gcn", num_layers: int = 2, hidden_channels: int = 16,
                  num_parts: int = 40, parts_per_batch: int = 10, seeds=(0, 1, 2), epochs: int = 200,
                  lr: float = 0.01, weight_decay: float = 5e-4, dropout: float = 0.5, patience: int | None = None,
                  methods=("full batch", "GAS", "Cluster-GCN"), device="auto", progress: bool | None = None,
                  grad_norm: float | None = None, decay_last_layer: bool = True, fill_histories: bool = False,
                  **model_kwargs) -> pd.DataFrame:
    """Validation-selected test accuracy of full-batch, GAS and Cluster-GCN training of the
    same model on ``data``, one row per (method, seed). GAS and Cluster-GCN share one
    METIS partition into ``num_parts`` clusters, ``parts_per_batch`` clusters per batch.
    ``"MLP"`` in ``methods`` adds the graph-free floor (same width, depth, dropout and budget;
    :func:`msgnn_lite.results.sanity_floor`).

    ``grad_norm`` clips every step (:func:`msgnn_lite.train.fit`); ``decay_last_layer=False``
    exempts the output layer from weight decay and ``fill_histories=True`` fills GAS's histories
    with one full-graph inference before the first step, both as GAS's reference code does
    (:data:`REFERENCE_GCN`). Each row also has ``epochs_run`` and ``best_is_last`` (the best
    epoch was the budget's last) for :func:`msgnn_lite.diagnostics.training_status`."""
    from .train import fit
    from .utils import seed_everything

    known = ("full batch", "GAS", "Cluster-GCN", "MLP")
    for m in methods:
        if m not in known:
            raise ValueError(f"methods must be drawn from {known}, got {m!r}")
    dev = resolve_device(device)
    # The clusters, GAS's loader and histories stay with the caller's (host) graph: only batches go to
    # the device. fit evaluates on this one device copy of the graph.
    on_device = to_device(data, dev)
    cd = ClusterData(data, num_parts) if set(methods) & {"GAS", "Cluster-GCN"} else None
    num_classes = int(data.y.max()) + 1
    rows = []
    for seed in seeds:
        for method in methods:
            seed_everything(seed)
            if method == "MLP":
                model = MLP(data.num_features, hidden_channels, num_classes, num_layers, dropout=dropout)
            else:
                model = GASGNN(data.num_nodes, data.num_features, hidden_channels, num_classes, num_layers,
                               conv=conv, dropout=dropout, **model_kwargs)
            gen = torch.Generator(device=cd.partptr.device).manual_seed(seed) if cd is not None else None
            if method == "GAS":
                kw = {"train_step": gas_train_step(GASLoader(cd, parts_per_batch, True, model.normalization, gen))}
            elif method == "Cluster-GCN":
                kw = {"train_step": minibatch_step(ClusterLoader(cd, parts_per_batch, True, generator=gen))}
            else:
                kw = {}
            if fill_histories and method == "GAS":
                model.refresh_histories(data.x, graph_input(model, data))
            opt = None
            if not decay_last_layer:
                output_layer = (model.lins if isinstance(model, MLP) or conv == "gcnii" else model.convs)[-1]
                last = set(map(id, output_layer.parameters()))
                params = list(model.parameters())
                opt = torch.optim.Adam([{"params": [p for p in params if id(p) not in last], "weight_decay": weight_decay},
                                        {"params": [p for p in params if id(p) in last], "weight_decay": 0.0}], lr=lr)
            res = fit(model, on_device, epochs=epochs, lr=lr, weight_decay=weight_decay, patience=patience,
                      seed=seed, device=dev, measure_memory=False, progress=progress, desc=f"{method} s{seed}",
                      optimizer=opt, grad_norm=grad_norm, **kw)
            last_epoch = int(res.history["epoch"].iloc[-1])
            rows.append({"method": method, "seed": seed, "test_acc": 100 * res.test_acc,
                         "max_test_acc": 100 * res.max_test_acc, "val_acc": 100 * res.best_val_acc,
                         "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                         "best_is_last": bool(res.epochs_run > 1 and res.best_epoch == last_epoch),
                         "dead_units": dead_unit_fraction(model, lambda: model(on_device.x, graph_input(model, on_device))),
                         "loss_rise": loss_rise(res.history["loss"]),
                         "epoch_ms": 1000 * res.train_time_s / res.epochs_run})
    return pd.DataFrame(rows)


#: GAS's own settings for a 2-layer GCN on the small benchmarks, from its reference code
#: (pyg_autoscale, ``small_benchmark/conf/model/gcn.yaml``, and the features its ``get_data`` gives:
#: row-sum normalised on Planetoid, raw on Amazon and Coauthor). Common to all: 2 layers, dropout
#: 0.5 on the input and between layers, lr 0.01, no weight decay on the output layer, 200
#: epochs, 20 runs (on Amazon and Coauthor one random 20/30-per-class split per run), the
#: histories filled by one full-graph inference before training, validation-selected test accuracy.
REFERENCE_GCN = {
    "Cora": dict(hidden_channels=16, num_parts=40, parts_per_batch=10, weight_decay=5e-4, grad_norm=1.0, features="sum"),
    "CiteSeer": dict(hidden_channels=16, num_parts=24, parts_per_batch=8, weight_decay=5e-4, grad_norm=None,
                     features="sum"),
    "PubMed": dict(hidden_channels=16, num_parts=8, parts_per_batch=4, weight_decay=5e-4, grad_norm=1.0, features="sum"),
    "CS": dict(hidden_channels=64, num_parts=2, parts_per_batch=1, weight_decay=1e-3, grad_norm=1.0, features="none"),
    "Physics": dict(hidden_channels=64, num_parts=4, parts_per_batch=2, weight_decay=1e-3, grad_norm=None,
                    features="none"),
    "Computers": dict(hidden_channels=64, num_parts=32, parts_per_batch=16, weight_decay=1e-3, grad_norm=1.0,
                      features="none"),
    "Photo": dict(hidden_channels=64, num_parts=32, parts_per_batch=16, weight_decay=1e-3, grad_norm=None,
                  features="none"),
}
REFERENCE_EPOCHS = 200
REFERENCE_RUNS = 20


#: The paper's GAS figure for a 2-layer GCN (mean, std over runs; GAS's table of small benchmarks, GCN
#: column): the figures this project could take from the paper. The table has no Amazon Computers GCN
#: figure, and no Coauthor CS one could be taken here: ``None``.
PAPER_GAS_GCN = {"Cora": (82.29, 0.76), "CiteSeer": (71.18, 0.97), "CS": None, "Computers": None}
#: The literature's full-batch GCN on the same splits: Kipf & Welling (2017), Table 2 (public Planetoid
#: splits; no std given) and Shchur et al. (2018), Table 2 (20/30 per class, random splits).
LITERATURE_GCN = {"Cora": (81.5, None, "Kipf & Welling 2017"), "CiteSeer": (70.3, None, "Kipf & Welling 2017"),
                  "CS": (91.1, 0.5, "Shchur et al. 2018"), "Computers": (82.6, 2.4, "Shchur et al. 2018")}


def reference_table(runs: pd.DataFrame, tolerance: float = 1.0) -> pd.DataFrame:
    """One row per (dataset, method) of :func:`reference_runs`' rows: test accuracy of the runs that
    trained (``status == "ok"``) as mean, std, min, max and 95% t-interval, how many runs were used and
    flagged, and for GAS the per-seed difference to full batch (seeds where both trained) with its
    interval. ``paper`` is :data:`PAPER_GAS_GCN`'s figure for GAS and :data:`LITERATURE_GCN`'s for full
    batch; ``verdict`` is :func:`msgnn_lite.results.verdict` within +- ``tolerance`` points (two-sided),
    and for ``GAS - full batch`` the paper's "on par" as 0 +- ``tolerance``."""
    from .results import interval95, verdict

    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        ok = frame[frame["status"] == "ok"]
        for method, g in frame.groupby("method", sort=False):
            used = ok[ok["method"] == method]["test_acc"]
            mean, low, high = interval95(used) if len(used) else (float("nan"),) * 3
            if method == "GAS":
                ref = PAPER_GAS_GCN.get(dataset)
            elif method == "full batch":
                ref = LITERATURE_GCN.get(dataset)
            else:
                ref = None
            paper = ref[0] if ref else None
            rows.append({"dataset": dataset, "method": method, "test_acc": mean,
                         "std": float(used.std(ddof=1)) if len(used) > 1 else float("nan"),
                         "min": float(used.min()) if len(used) else float("nan"),
                         "max": float(used.max()) if len(used) else float("nan"),
                         "ci_low": low, "ci_high": high, "runs": len(used), "flagged": len(g) - len(used),
                         "paper": paper, "verdict": verdict(paper, mean if len(used) else None, tolerance,
                                                            values=used.tolist() or None, two_sided=True)})
        both = ok[ok["method"].isin(["GAS", "full batch"])].pivot(index="seed", columns="method", values="test_acc")
        if {"GAS", "full batch"} <= set(both.columns):
            diff = (both["GAS"] - both["full batch"]).dropna()
            if len(diff):
                mean, low, high = interval95(diff)
                rows.append({"dataset": dataset, "method": "GAS - full batch", "test_acc": mean,
                             "std": float(diff.std(ddof=1)) if len(diff) > 1 else float("nan"),
                             "min": float(diff.min()), "max": float(diff.max()), "ci_low": low, "ci_high": high,
                             "runs": len(diff), "flagged": 0, "paper": 0.0,
                             "verdict": verdict(0.0, mean, tolerance, values=diff.tolist(), two_sided=True)})
    return pd.DataFrame(rows).set_index(["dataset", "method"])


def reference_runs(name: str, seeds=tuple(range(REFERENCE_RUNS)), epochs: int = REFERENCE_EPOCHS,
                   methods=("full batch", "GAS", "MLP"), features: str | None = None, device="auto",
                   progress: bool | None = None, root=None) -> pd.DataFrame:
    """GAS's accuracy table on one graph with the reference code's settings (:data:`REFERENCE_GCN`):
    one row per (method, seed) as :func:`accuracy_runs`, plus ``dataset``, ``features`` and the
    training check (``status``, ``cause``: :func:`msgnn_lite.diagnostics.add_training_status`,
    the MLP being the floor). Seed ``s`` trains on split ``s`` (Amazon, Coauthor; Planetoid has
    one public split). ``features`` overrides the reference's preprocessing (``"l2"``, ...)."""
    from .data import load_dataset, normalize_features, sparse_features
    from .diagnostics import add_training_status

    canonical = {k.lower(): k for k in REFERENCE_GCN}.get(str(name).lower())
    if canonical is None:
        raise ValueError(f"name must be one of GAS's small benchmarks {list(REFERENCE_GCN)}, got {name!r}")
    settings = dict(REFERENCE_GCN[canonical])
    how = settings.pop("features") if features is None else features
    settings.pop("features", None)
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    frames, first = [], None
    for seed in seeds:
        data = sparse_features(normalize_features(load_dataset(canonical, root=root, split_seed=seed), how))
        first = data if first is None else first
        df = accuracy_runs(data, seeds=(seed,), epochs=epochs, methods=methods, device=device, progress=progress,
                           decay_last_layer=False, fill_histories=True, lr=0.01, dropout=0.5, num_layers=2, **settings)
        frames.append(df)
    out = add_training_status(pd.concat(frames, ignore_index=True), first)
    out.insert(0, "dataset", canonical)
    out.insert(1, "features", how)
    return out


def staleness_run(data: Data, num_parts: int = 40, parts_per_batch: int = 10, num_layers: int = 3,
                  hidden_channels: int = 64, conv: str = "gcn", epochs: int = 50, lr: float = 0.01,
                  weight_decay: float = 5e-4, dropout: float = 0.0, seed: int = 0, device="auto",
                  progress: bool | None = None) -> pd.DataFrame:
    """Train with GAS and record, after every epoch, each history's relative distance to the
    exact embeddings of the current weights (:func:`history_staleness`) beside the accuracies.
    ``dropout=0`` by default so that the distance is staleness, not dropout noise. Returns
    :func:`~msgnn_lite.train.fit`'s per-epoch history with columns ``staleness_1 ..``."""
    from .train import fit, full_batch_evaluate
    from .utils import seed_everything

    dev = resolve_device(device)
    cd = ClusterData(data, num_parts)  # the loader and the histories stay on the host; batches travel
    seed_everything(seed)
    model = GASGNN(data.num_nodes, data.num_features, hidden_channels, int(data.y.max()) + 1, num_layers, conv=conv,
                   dropout=dropout)
    loader = GASLoader(cd, parts_per_batch, True, model.normalization,
                       torch.Generator(device=cd.partptr.device).manual_seed(seed))
    data = to_device(data, dev)  # for the full-graph evaluation

    def evaluate(model, data):
        out = full_batch_evaluate(model, data)
        stale = history_staleness(model, data.x, graph_input(model, data))
        out.update({f"staleness_{i + 1}": s for i, s in enumerate(stale)})
        return out

    res = fit(model, data, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed, device=dev,
              train_step=gas_train_step(loader), evaluate=evaluate, measure_memory=False, progress=progress,
              desc="GAS staleness")
    return res.history


def memory_study(sizes=(), depths=(), depth_nodes: int = 100_000, num_layers: int = 2, batch_nodes: int = 1024,
                 hidden_channels: int = 64, num_features: int = 32, avg_degree: float = 20.0, seed: int = 0,
                 device="auto", progress: bool | None = None) -> pd.DataFrame:
    """Memory of one training step, full batch vs one GAS batch, on CSBM graphs
    (:func:`msgnn_lite.data.make_csbm`): for each of ``sizes`` (``num_layers`` layers) and for
    each of ``depths`` (``depth_nodes`` nodes). The GAS batch is ``batch_nodes`` in-batch nodes
    (one cluster of a random partition, see below) plus its halo.

    A CSBM graph's edges are random within and across classes: there is no locality for METIS
    to find (and METIS on 1M nodes takes minutes), so the clusters are random; the halo is then
    about ``batch_nodes x avg_degree`` nodes -- the worst case for GAS. One row per measurement
    with ``step_mb``, ``activation_mb``, ``history_mb`` and the batch's node count."""
    from tqdm.auto import tqdm

    from .data import make_csbm
    from .partition import random_partition
    from .train import _progress_enabled
    from .utils import seed_everything

    dev = resolve_device(device)
    jobs = [("size", n, num_layers) for n in sizes] + [("depth", depth_nodes, d) for d in depths]
    rows, graphs = [], {}
    for study, n, layers in tqdm(jobs, desc="memory", disable=not _progress_enabled(progress), leave=False):
        if n not in graphs:
            graphs.clear()
            graphs[n] = make_csbm(n, avg_degree, 10, num_features, 0.8, seed=seed)
        data = graphs[n]
        parts = max(n // batch_nodes, 1)
        cd = ClusterData(data, parts, part=random_partition(n, parts, seed=seed))
        batch = next(iter(GASLoader(cd, 1, shuffle=False)))
        for method in ("full batch", "GAS"):
            seed_everything(seed)
            model = GASGNN(n, num_features, hidden_channels, 10, layers, dropout=0.5, history_device="cpu")
            m = step_memory(model, data, None if method == "full batch" else batch, dev)
            del model  # step_memory frees it (and the full batch's device copy) before the next measurement
            rows.append({"study": study, "nodes": n, "layers": layers, "method": method,
                         "batch_nodes": m["nodes"], "step_mb": m["step_bytes"] / 2**20,
                         "activation_mb": m["activation_bytes"] / 2**20, "history_mb": m["history_bytes"] / 2**20,
                         "time_s": m["time_s"]})
    return pd.DataFrame(rows)
