"""VR-GCN (Chen, Zhu & Song, ICML 2018): historical activations as a control variate, so that
neighbor sampling with a fanout as small as 2 gives low-variance estimates.

A GCN layer aggregates ``(A h)_v = sum_u A_vu h_u`` over all neighbors ``u`` of ``v``.

* **Plain neighbor sampling (NS)** draws ``k = min(deg_v, fanout)`` distinct neighbors
  uniformly and rescales: ``sum_{u in sample} (deg_v / k) A_vu h_u``. Each neighbor is in
  the sample with probability ``k / deg_v``, so this is unbiased -- but its variance is
  that of ``h`` itself, large for ``fanout = 2``.
* **Control variate (CV)** keeps a history ``h_bar`` of every node's last activation and
  samples only the *difference*: ``sum_{u in sample} (deg_v / k) A_vu (h_u - h_bar_u) +
  sum_u A_vu h_bar_u``. The second sum uses every neighbor but only stored values (no
  recursion, no gradient); the first is unbiased for ``A (h - h_bar)`` and small when
  the history is recent. With exact histories (``h_bar = h``) it is exact.

:func:`sampled_rows` builds the rescaled sampled operator (reusing
:func:`msgnn_lite.loader.sample_neighbors`), :func:`cv_aggregate` / :func:`ns_aggregate` are
the two estimators for one layer, :class:`VRGCNSampler` samples a batch's layer-wise
receptive field and :func:`vr_forward` runs a :class:`msgnn_lite.models.GCN` through it
(the first layer is exact under CV: its "history" is the input features themselves).
Dropout is not supported (the paper's CVD variant is left out).

Devices: the sampler draws on its operator's device (a generator of another device seeds one
there, see :func:`msgnn_lite.utils.device_generator`); ``vr_forward`` gathers the features where
they live and moves only the batch's rows to the model; the histories may live on the host.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_positive_int
from .history import History, block_operator, check_node_ids, halo_operator
from .loader import CSRGraph, sample_neighbors
from .models import GCN, MLP, linear
from .sparse import SparseAdjacency, build_adjacency, propagate, take_rows
from .utils import device_generator, to_device

__all__ = ["operator_csr", "sampled_rows", "ns_aggregate", "cv_aggregate", "VRBatch", "VRGCNSampler",
           "make_histories", "fill_histories", "vr_forward", "vrgcn_train_step", "gradient_error",
           "gradient_study", "accuracy_runs"]

ESTIMATORS = ("cv", "ns")


def _check_fanout(fanout) -> int:
    if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < 1:
        raise ValueError(f"fanout must be an integer >= 1 (neighbors sampled per node), got {fanout!r}")
    return fanout


def _check_estimator(estimator) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be 'cv' (control variate) or 'ns' (plain sampling), got {estimator!r}")
    return estimator


def operator_csr(adj: SparseAdjacency) -> CSRGraph:
    """The CSR of ``adj`` as a :class:`~msgnn_lite.loader.CSRGraph` whose ``e_id`` is the
    position of each entry in ``adj``'s value array (so samples can look up ``A_vu``)."""
    m = adj.matrix
    return CSRGraph(m.crow_indices(), m.col_indices(), torch.arange(m.values().numel(), device=adj.device),
                    adj.num_nodes)


def sampled_rows(adj: SparseAdjacency, nodes: Tensor, fanout: int, generator: torch.Generator | None = None,
                 csr: CSRGraph | None = None) -> tuple[Tensor, SparseAdjacency]:
    """The unbiased sampled operator for the rows ``nodes`` of ``adj``.

    Each node ``v`` keeps ``k_v = min(deg_v, fanout)`` distinct neighbors drawn uniformly
    (without replacement) with weights ``A_vu * deg_v / k_v``. Returns ``(n_id, op)`` laid out
    as :func:`msgnn_lite.history.block_operator`: ``n_id = [nodes, newly reached neighbors]``
    and ``(op @ h[n_id])[:len(nodes)]`` estimates ``(adj @ h)[nodes]``."""
    if not isinstance(adj, SparseAdjacency):
        raise TypeError(f"adj must be a SparseAdjacency, got {type(adj).__name__}")
    fanout = _check_fanout(fanout)
    nodes = check_node_ids(nodes, adj.num_nodes, "nodes", distinct=True).to(adj.device)
    csr = operator_csr(adj) if csr is None else csr
    target, nbr, slot = sample_neighbors(csr, nodes, fanout, generator=device_generator(generator, adj.device))
    deg = take_rows(csr.deg, nodes)
    count = deg.clamp(max=fanout)
    scale = (deg.to(adj.matrix.dtype) / count.clamp_min(1).to(adj.matrix.dtype))
    weight = take_rows(adj.matrix.values(), slot) * take_rows(scale, target)
    return block_operator(nodes, count, nbr, weight, adj.num_nodes, adj.normalization)


def ns_aggregate(adj: SparseAdjacency, nodes: Tensor, h: Tensor, fanout: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """Plain neighbor-sampling estimate of ``(adj @ h)[nodes]`` (``h``: all nodes' rows, on
    ``adj``'s device)."""
    n_id, op = sampled_rows(adj, nodes, fanout, generator)
    return propagate(op, take_rows(h, n_id))[:nodes.numel()]


def cv_aggregate(adj: SparseAdjacency, nodes: Tensor, h: Tensor, h_bar: Tensor, fanout: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """VR-GCN's control-variate estimate of ``(adj @ h)[nodes]``:
    ``A_sampled (h - h_bar) + A h_bar`` (``h``, ``h_bar``: all nodes' rows)."""
    if h_bar.shape != h.shape:
        raise ValueError(f"h_bar must have the shape of h {list(h.shape)}, got {list(h_bar.shape)}")
    n_id, op = sampled_rows(adj, nodes, fanout, generator)
    b = nodes.numel()
    sampled = propagate(op, take_rows(h, n_id) - take_rows(h_bar, n_id))[:b]
    e_id, exact = halo_operator(adj, nodes)
    return sampled + propagate(exact, take_rows(h_bar, e_id))[:b]


@dataclass
class VRBatch:
    """A batch's layer-wise receptive field for an ``L``-layer model.

    ``n_id``: global ids, nested prefixes ``S_L subset S_{L-1} subset ... subset S_0``
    (``S_L`` = the seeds first); ``sizes[l] = |S_l|``. ``sampled[l - 1]`` is layer ``l``'s
    sampled operator (rows ``S_l``, columns ``S_{l-1}``); ``exact[l - 1]`` is
    ``(ids, op)``, the :func:`halo_operator` of ``S_l`` (every neighbor), for the CV term."""

    n_id: Tensor
    sizes: list[int]
    sampled: list[SparseAdjacency]
    exact: list[tuple[Tensor, SparseAdjacency]]

    @property
    def batch_size(self) -> int:
        return self.sizes[-1]


class VRGCNSampler:
    """Samples :class:`VRBatch` es: ``fanout`` neighbors per node and layer, drawn afresh at
    every layer (top-down from the seeds), from the full-graph ``adj`` (``"gcn"``
    normalisation for a GCN). ``exact=True`` also builds the CV operators. Batches live on
    ``adj``'s device, and so does the random generator (``generator`` of another device seeds
    one there, once)."""

    def __init__(self, adj: SparseAdjacency, num_layers: int, fanout: int, exact: bool = True,
                 generator: torch.Generator | None = None):
        if not isinstance(adj, SparseAdjacency):
            raise TypeError(f"adj must be a SparseAdjacency, got {type(adj).__name__}")
        self.adj, self.num_layers, self.fanout = adj, check_positive_int(num_layers, "num_layers"), _check_fanout(fanout)
        self.exact, self.generator = exact, device_generator(generator, adj.device)
        self.csr = operator_csr(adj)

    def sample(self, seeds: Tensor) -> VRBatch:
        nodes = check_node_ids(seeds, self.adj.num_nodes, "seeds", distinct=True).to(self.adj.device)
        sampled, exact, sizes = [], [], [nodes.numel()]
        for _ in range(self.num_layers):  # layer L first
            if self.exact:
                exact.append(halo_operator(self.adj, nodes))
            nodes, op = sampled_rows(self.adj, nodes, self.fanout, self.generator, self.csr)
            sampled.append(op)
            sizes.append(nodes.numel())
        return VRBatch(nodes, sizes[::-1], sampled[::-1], exact[::-1])


def _check_gcn(model: nn.Module) -> None:
    if not isinstance(model, GCN) or model.norms is not None:
        raise TypeError("model must be a msgnn_lite.models.GCN without batch norm (VR-GCN is derived for GCN layers)")


def make_histories(model: GCN, num_nodes: int, device="cpu", dtype: torch.dtype = torch.float32) -> list[History]:
    """One :class:`History` per hidden activation ``H_1`` to ``H_{L-1}`` of ``model``."""
    _check_gcn(model)
    return [History(num_nodes, conv.out_channels, device, dtype) for conv in list(model.convs)[:-1]]


@torch.no_grad()
def fill_histories(model: GCN, x: Tensor, adj: SparseAdjacency, histories: list[History]) -> None:
    """Push the exact full-graph activations ``H_1`` to ``H_{L-1}`` of the current weights."""
    _check_gcn(model)
    h = x
    for conv, hist in zip(model.convs, histories):
        h = F.relu(conv(h, adj))
        hist.push(h)


def vr_forward(model: GCN, x: Tensor, batch: VRBatch, histories: list[History] | None = None,
               estimator: str = "cv", push: bool = True) -> Tensor:
    """Logits of the batch's seeds with every aggregation estimated by ``estimator``.

    ``"ns"``: ``A_sampled h`` at every layer. ``"cv"``: layer 1 exact (``A x``), layer
    ``l > 1``: ``A_sampled (h - h_bar) + A h_bar`` with ``h_bar`` pulled from ``histories``;
    the fresh activations are pushed (after use) when ``push``. ``x``: all nodes' features.
    """
    _check_gcn(model)
    estimator = _check_estimator(estimator)
    num_layers = len(model.convs)
    if len(batch.sampled) != num_layers:
        raise ValueError(f"batch was sampled for {len(batch.sampled)} layers, the model has {num_layers}")
    if estimator == "cv" and (histories is None or len(histories) != num_layers - 1):
        raise ValueError(f"histories must be a list of {num_layers - 1} History objects for estimator='cv'")
    if estimator == "cv" and not batch.exact:
        raise ValueError("the batch has no exact operators; sample it with VRGCNSampler(exact=True) for 'cv'")
    dev = model.convs[0].lin.weight.device
    n_id, sizes = batch.n_id, batch.sizes
    h = take_rows(x, n_id.to(x.device)).to(dev)  # S_0's features (dense or CSR)
    pushes = []
    for l, conv in enumerate(model.convs, start=1):
        rows, weight = sizes[l], conv.lin.weight
        op = batch.sampled[l - 1].to(dev)
        # Transform, then aggregate: A (h W) == (A h) W, and h may be a sparse (CSR) feature matrix.
        if estimator == "ns":
            u = propagate(op, linear(h, weight))[:rows]
        elif l == 1:  # the input layer's "history" is x itself: exact aggregation
            ids, ex = batch.exact[0]
            u = propagate(ex.to(dev), linear(take_rows(x, ids.to(x.device)).to(dev), weight))[:rows]
        else:
            hist = histories[l - 2]
            h_bar = hist.pull(n_id[:sizes[l - 1]], device=dev, dtype=h.dtype)
            ids, ex = batch.exact[l - 1]
            # A h_bar uses every neighbor but only stored rows: no gradient into the history (W still gets one)
            mean = propagate(ex.to(dev), linear(hist.pull(ids, device=dev, dtype=h.dtype), weight))[:rows]
            u = propagate(op, linear(h - h_bar, weight))[:rows] + mean
        z = u + conv.bias if conv.bias is not None else u
        if l == num_layers:
            break
        h = F.relu(z)
        pushes.append((l, h.detach(), n_id[:rows]))
    if push and histories is not None:
        for l, value, ids in pushes:
            histories[l - 1].push(value, ids)
    return z


def vrgcn_train_step(sampler: VRGCNSampler, histories: list[History] | None, estimator: str = "cv",
                     batch_size: int = 64, generator: torch.Generator | None = None):
    """A ``train_step`` for :func:`msgnn_lite.train.fit`: one epoch over the training nodes
    in shuffled batches of ``batch_size`` seeds, shuffled on the sampler's device. The loss
    is summed on the model's device and read once per epoch."""
    estimator = _check_estimator(estimator)
    batch_size = check_positive_int(batch_size, "batch_size")
    generator = device_generator(generator, sampler.adj.device)

    def step(model: GCN, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        train = data.train_mask.nonzero().view(-1).to(sampler.adj.device)
        train = train[torch.randperm(train.numel(), device=train.device, generator=generator)]
        total = torch.zeros((), dtype=torch.float64, device=next(model.parameters()).device)
        for i in range(0, train.numel(), batch_size):
            seeds = train[i:i + batch_size]
            batch = sampler.sample(seeds)
            optimizer.zero_grad(set_to_none=True)
            out = vr_forward(model, data.x, batch, histories, estimator)
            loss = F.cross_entropy(out, data.y[seeds.to(data.y.device)].to(out.device))
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * seeds.numel()
        return float(total) / train.numel()
    return step


def _flat_grad(model: nn.Module) -> Tensor:
    return torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1)
                      for p in model.parameters()])


def gradient_error(model: GCN, data: Data, seeds: Tensor, histories: list[History], fanouts=(2, 5, 10),
                   samples: int = 20, generator: torch.Generator | None = None) -> pd.DataFrame:
    """Relative error ``||g_hat - g|| / ||g||`` of the stochastic gradient of the seeds' loss
    against the exact full-graph gradient ``g``, for each fanout and estimator.

    Returns one row per (estimator, fanout): the mean relative error of single samples
    (``rel_error``: what one SGD step sees) and of the average of ``samples`` gradients
    (``rel_error_of_mean``: the bias that averaging does not remove). Histories are not
    modified."""
    _check_gcn(model)
    samples = check_positive_int(samples, "samples")
    adj = build_adjacency(data.edge_index, data.num_nodes, "gcn", device=data.x.device)
    seeds = seeds.to(data.y.device)
    loss_of = lambda out: F.cross_entropy(out, data.y[seeds])  # noqa: E731
    model.zero_grad(set_to_none=True)
    loss_of(model(data.x, adj)[seeds]).backward()
    exact = _flat_grad(model)
    rows = []
    for fanout in fanouts:
        sampler = VRGCNSampler(adj, len(model.convs), fanout, generator=generator)
        for estimator in ESTIMATORS:
            errs, acc = [], torch.zeros_like(exact)
            for _ in range(samples):
                model.zero_grad(set_to_none=True)
                loss_of(vr_forward(model, data.x, sampler.sample(seeds), histories, estimator, push=False)).backward()
                g = _flat_grad(model)
                acc += g
                errs.append(float((g - exact).norm() / exact.norm()))
            rows.append({"estimator": estimator, "fanout": fanout, "rel_error": sum(errs) / len(errs),
                         "rel_error_std": float(torch.tensor(errs).std()) if len(errs) > 1 else 0.0,
                         "rel_error_of_mean": float((acc / samples - exact).norm() / exact.norm())})
    model.zero_grad(set_to_none=True)
    return pd.DataFrame(rows)


def gradient_study(data: Data, fanouts=(2, 5, 10), hidden_channels: int = 16, num_layers: int = 2,
                   warmup_epochs: int = 30, lag: int = 3, samples: int = 20, lr: float = 0.01,
                   seed: int = 0, device="auto") -> pd.DataFrame:
    """:func:`gradient_error` at a realistic point of training: a dropout-free GCN is trained
    full batch for ``warmup_epochs`` steps, the histories are filled with its exact activations,
    ``lag`` more steps make them stale (as they are after a few SGD steps in VR-GCN), and the
    gradient of the loss on all training nodes is estimated ``samples`` times per fanout."""
    from .train import full_batch_step
    from .utils import resolve_device, seed_everything

    dev = resolve_device(device)
    data = to_device(data, dev)
    seed_everything(seed)
    model = GCN(data.num_features, hidden_channels, int(data.y.max()) + 1, num_layers, dropout=0.0).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    adj = build_adjacency(data.edge_index, data.num_nodes, "gcn", device=dev)
    hist = make_histories(model, data.num_nodes, dev)
    for epoch in range(warmup_epochs + lag):
        if epoch == warmup_epochs:
            fill_histories(model, data.x, adj, hist)
        full_batch_step(model, data, opt)
    seeds = data.train_mask.nonzero().view(-1)
    gen = torch.Generator(device=dev).manual_seed(seed)
    return gradient_error(model, data, seeds, hist, fanouts, samples, gen)


def accuracy_runs(data: Data, fanout: int = 2, hidden_channels: int = 16, num_layers: int = 2,
                  batch_size: int = 35, seeds=(0, 1, 2), epochs: int = 100, lr: float = 0.01,
                  weight_decay: float = 5e-4, device="auto", progress: bool | None = None,
                  mlp: bool = False) -> pd.DataFrame:
    """Validation-selected test accuracy of a dropout-free GCN trained full batch, with plain
    neighbor sampling (``fanout`` per node and layer) and with VR-GCN's control variate (same
    fanout; histories start from one exact pass). One row per (method, seed). ``mlp=True``
    adds a graph-free ``"MLP"`` of the same width and budget, the floor a baseline must clear
    (:func:`msgnn_lite.results.sanity_floor`)."""
    from .train import fit
    from .utils import resolve_device, seed_everything

    dev = resolve_device(device)
    data = to_device(data, dev)
    adj = build_adjacency(data.edge_index, data.num_nodes, "gcn", device=dev)
    rows = []
    for seed in seeds:
        for method in ("full batch", f"NS fanout {fanout}", f"VR-GCN (CV) fanout {fanout}") + (("MLP",) if mlp else ()):
            seed_everything(seed)
            if method == "MLP":
                model = MLP(data.num_features, hidden_channels, int(data.y.max()) + 1, num_layers, dropout=0.0)
            else:
                model = GCN(data.num_features, hidden_channels, int(data.y.max()) + 1, num_layers, dropout=0.0)
            kw = {}
            if method not in ("full batch", "MLP"):
                gen = torch.Generator(device=dev).manual_seed(seed)
                cv = method.startswith("VR")
                hist = make_histories(model, data.num_nodes, dev) if cv else None
                if cv:
                    fill_histories(model.to(dev), data.x, adj, hist)
                sampler = VRGCNSampler(adj, num_layers, fanout, exact=cv, generator=gen)
                kw["train_step"] = vrgcn_train_step(sampler, hist, "cv" if cv else "ns", batch_size, gen)
            res = fit(model, data, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed, device=dev,
                      measure_memory=False, progress=progress, desc=f"{method} s{seed}", **kw)
            rows.append({"method": method, "seed": seed, "test_acc": 100 * res.test_acc,
                         "max_test_acc": 100 * res.max_test_acc, "val_acc": 100 * res.best_val_acc,
                         "best_epoch": res.best_epoch, "epoch_ms": 1000 * res.train_time_s / res.epochs_run})
    return pd.DataFrame(rows)
