"""Precomputation: propagate the features once, then train a graph-free model on rows.

A GCN interleaves propagation (``A @ H``) with learned transforms, so every epoch pays
for ``L`` sparse products over the whole graph. **SGC** (Wu et al., 2019) drops the
non-linearities: ``softmax(A^k X W)`` is a logistic regression on the *precomputed*
features ``A^k X``. **SIGN** (Frasca et al., 2020) keeps every hop, ``[X, AX, ..., A^k X]``,
and trains an "inception" MLP on them: one linear branch per hop, concatenated, then an
MLP. Either way the graph is touched **once**, before training; training and inference
are mini-batches of independent rows, as cheap as an MLP's.

**Correct & Smooth** (Huang et al., 2021) post-processes any base predictor with two
label propagations: *correct* spreads the base model's residual errors on the training
nodes over the graph (with "autoscale"), *smooth* spreads the corrected predictions
(training nodes set to their true labels). Both are ``G <- (1 - alpha) G0 + alpha A G``,
iterated.

This module

* computes ``A^k X`` and the SIGN hops on the fast CSR core (:func:`sgc_features`,
  :func:`sign_features`); a sparse (CSR) ``X`` stays sparse for hop 0, where a sparse
  product is cheaper, and is made dense for the propagated hops, which fill in;
* gives the models (:class:`SGC`, :class:`SIGN`) and a ``train_step``/``evaluate`` pair for
  :func:`~msgnn_lite.train.fit` over mini-batches of precomputed rows (:func:`fit_precomputed`);
* implements Correct & Smooth (:func:`label_propagation`, :func:`correct`, :func:`smooth`,
  :func:`correct_and_smooth`).

Everything runs on the device of its inputs: the hops on the operator's, the mini-batches of
rows on the features' (random orders drawn there too), Correct & Smooth on the operator's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_features, check_finite, check_fraction, check_mask, check_positive_int, checks_enabled
from .models import GCN, feature_dropout, linear
from .sparse import SparseAdjacency, build_adjacency, cached_adjacency, propagate, take_rows
from .train import TrainResult, accuracy, fit
from .utils import device_generator, resolve_device, seed_everything, sync, to_device

__all__ = ["sgc_features", "sign_features", "SGC", "SIGN", "fit_precomputed", "row_batch_step", "Precomputed",
           "label_propagation", "correct", "smooth", "correct_and_smooth", "CorrectAndSmooth", "compare_with_gcn"]


def _check_hops(k, name: str = "k") -> int:
    return check_positive_int(k, name, minimum=0)


def _check_x(x: Tensor, adj: SparseAdjacency, name: str = "x") -> None:
    if not isinstance(adj, SparseAdjacency):
        raise TypeError(f"adj must be a SparseAdjacency (msgnn_lite.sparse.build_adjacency), got {type(adj).__name__}")
    if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != adj.num_nodes:
        shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor of shape [{adj.num_nodes}, F] matching adj, got {shape}")
    check_features(x, adj.num_nodes, name)  # NaN or inf would spread to every neighbour, hop after hop


def _dense(x: Tensor) -> Tensor:
    return x.to_dense() if x.layout != torch.strided else x


@torch.no_grad()
def sign_features(x: Tensor, adj: SparseAdjacency, k: int, keep_sparse: bool = True) -> list[Tensor]:
    """The SIGN hops ``[X, A X, A^2 X, ..., A^k X]`` (``k + 1`` tensors), computed with
    ``k`` sparse products on the CSR operator ``adj``.

    A CSR ``x`` (bag-of-words) is returned as is for hop 0 when ``keep_sparse`` (a linear
    layer on it is a sparse product, ~1% of the dense cost); the propagated hops are dense
    (after one hop a row mixes its neighbours' words and fills in).
    """
    k = _check_hops(k)
    _check_x(x, adj)
    hops = [x if (keep_sparse or x.layout == torch.strided) else _dense(x)]
    h = _dense(x).to(adj.matrix.dtype) if k > 0 else None
    for _ in range(k):
        h = propagate(adj, h)
        hops.append(h)
    return hops


@torch.no_grad()
def sgc_features(x: Tensor, adj: SparseAdjacency, k: int) -> Tensor:
    """SGC's features ``A^k X``. ``k = 0`` returns ``x`` itself (sparse or dense)."""
    return sign_features(x, adj, k)[-1]


class SGC(nn.Module):
    """Simple graph convolution: one linear layer (logistic regression) on ``A^k X``.

    ``forward`` takes the precomputed features (a tensor, dense or CSR), not the graph.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        self.dropout = check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        self.lin = nn.Linear(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, (list, tuple)):  # a one-hop feature list, as fit_precomputed passes it
            x = x[-1]
        return linear(feature_dropout(x, self.dropout, self.training), self.lin.weight, self.lin.bias)


class SIGN(nn.Module):
    """SIGN's inception model: hop ``i`` goes through its own linear branch
    ``X_i W_i``; the branches are concatenated, passed through ReLU and dropout, and an
    MLP (``num_layers`` linear layers) maps them to the classes.

    ``forward(xs)`` takes the list of ``num_hops + 1`` precomputed feature tensors.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_hops: int,
                 num_layers: int = 2, dropout: float = 0.5, input_dropout: float = 0.0):
        super().__init__()
        self.num_hops = _check_hops(num_hops, "num_hops")
        check_positive_int(in_channels, "in_channels")
        check_positive_int(hidden_channels, "hidden_channels")
        check_positive_int(out_channels, "out_channels")
        num_layers = check_positive_int(num_layers, "num_layers")
        self.dropout = check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        self.input_dropout = check_fraction(input_dropout, "input_dropout", low_open=False, high_closed=False)
        self.branches = nn.ModuleList(nn.Linear(in_channels, hidden_channels) for _ in range(self.num_hops + 1))
        dims = [(self.num_hops + 1) * hidden_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        if len(xs) != self.num_hops + 1:
            raise ValueError(f"xs must hold num_hops + 1 = {self.num_hops + 1} feature tensors, got {len(xs)}")
        h = torch.cat([linear(feature_dropout(x, self.input_dropout, self.training), b.weight, b.bias)
                       for x, b in zip(xs, self.branches)], dim=1)
        for lin in self.lins:
            h = F.dropout(F.relu(h), self.dropout, self.training)
            h = lin(h)
        return h


@dataclass
class Precomputed:
    """What :func:`fit_precomputed` returns: the training result and the model's logits on every node."""

    result: TrainResult
    logits: Tensor


def _rows(xs: list[Tensor], index: Tensor) -> list[Tensor]:
    return [take_rows(x, index) for x in xs]


def row_batch_step(features: Sequence[Tensor], batch_size: int, generator: torch.Generator | None = None):
    """A ``train_step`` for :func:`~msgnn_lite.train.fit` on precomputed ``features`` (a list of
    ``[N, F]`` hop tensors): one epoch of shuffled mini-batches of ``batch_size`` training rows.
    The model receives a list of row-slices; the graph is never touched.

    The shuffle is drawn on the features' device, with ``generator`` if given (one of another
    device seeds a generator there, :func:`~msgnn_lite.utils.device_generator`; a CPU generator
    for CPU features is used as it is). The epoch's loss is summed on the device (in float64,
    the same sum as Python floats) and read once per epoch, not once per batch."""
    batch_size = check_positive_int(batch_size, "batch_size")
    xs = list(features)
    dev = xs[0].device
    generator = device_generator(generator, dev)

    def step(m: nn.Module, d: Data, optimizer: torch.optim.Optimizer) -> float:
        m.train()
        train_idx = d.train_mask.nonzero().view(-1)
        perm = torch.randperm(train_idx.numel(), generator=generator, device=dev)
        order = train_idx[perm.to(train_idx.device)]
        total = torch.zeros((), dtype=torch.float64, device=order.device)
        for s in range(0, order.numel(), batch_size):
            idx = order[s:s + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(_rows(xs, idx)), d.y[idx])
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * idx.numel()
        return float(total) / max(order.numel(), 1)
    return step


def fit_precomputed(model: nn.Module, features: Tensor | Sequence[Tensor], data: Data, *, epochs: int = 100,
                    batch_size: int = 10_000, lr: float = 0.01, weight_decay: float = 0.0, eval_every: int = 1,
                    patience: int | None = None, device: str | torch.device = "auto", seed: int = 0,
                    eval_batch_size: int = 200_000, progress: bool | None = None, desc: str | None = None,
                    grad_norm: float | None = None) -> Precomputed:
    """Train ``model`` (SGC or SIGN) on precomputed ``features`` with :func:`~msgnn_lite.train.fit`.

    Each epoch shuffles the training rows (seeded) and makes one optimizer step per
    ``batch_size`` rows; evaluation runs the model over all rows in chunks of
    ``eval_batch_size`` (no graph needed). ``features`` is a tensor (SGC) or a list of hop
    tensors (SIGN); the model receives a list of row-slices either way (SGC uses the last).
    Returns the :class:`~msgnn_lite.train.TrainResult` (validation-selected test accuracy;
    the graph is never touched) and the selected model's logits on every node (on ``device``).
    The features are copied to ``device``; the caller's ``data`` is not moved. ``grad_norm``
    clips every step's gradients (see :func:`~msgnn_lite.train.fit`).
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
    xs = [features] if isinstance(features, Tensor) else list(features)
    if not xs:
        raise ValueError("features must be a tensor or a non-empty list of tensors")
    for i, x in enumerate(xs):
        if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) != data.num_nodes:
            shape = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"features[{i}] must have shape [{data.num_nodes}, F] (one row per node), got {shape}")
    dev = resolve_device(device)
    xs = [x.to(dev) for x in xs]
    # The graph is not needed any more: hand fit a Data with no edges (nothing to move).
    no_edges = torch.empty(2, 0, dtype=torch.long, device=data.y.device)
    rows = Data(y=data.y, train_mask=data.train_mask, val_mask=data.val_mask, test_mask=data.test_mask,
                edge_index=no_edges, num_nodes=data.num_nodes)
    gen = torch.Generator().manual_seed(seed)

    def logits_all(m: nn.Module) -> Tensor:
        n = xs[0].size(0)
        if n <= eval_batch_size:
            return m(xs)
        return torch.cat([m(_rows(xs, torch.arange(s, min(s + eval_batch_size, n), device=dev)))
                          for s in range(0, n, eval_batch_size)])

    train_step = row_batch_step(xs, batch_size, gen)

    @torch.no_grad()
    def evaluate(m: nn.Module, d: Data) -> dict:
        m.eval()
        out = logits_all(m)
        res = {f"{s}_acc": accuracy(out[d[f"{s}_mask"]], d.y[d[f"{s}_mask"]]) for s in ("train", "val", "test")}
        res["val_loss"] = float(F.cross_entropy(out[d.val_mask], d.y[d.val_mask]))
        return res

    result = fit(model, rows, epochs=epochs, lr=lr, weight_decay=weight_decay, patience=patience, device=dev,
                 seed=seed, train_step=train_step, evaluate=evaluate, eval_every=eval_every, measure_memory=False,
                 progress=progress, desc=desc or type(model).__name__, grad_norm=grad_norm)
    model.eval()
    with torch.no_grad():
        logits = logits_all(model)
    return Precomputed(result, logits)


# ----------------------------------------------------------------------------- Correct & Smooth


def _check_alpha(alpha, name: str) -> float:
    try:
        return check_fraction(alpha, name, low_open=False, high_closed=True)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {alpha!r}") from None


def _check_labels(y: Tensor, n: int, num_classes: int, train_mask: Tensor, name: str = "y_true") -> Tensor:
    """Integer class ids ``[n]``; on the training rows (the only ones read) in ``[0, num_classes)``."""
    if not isinstance(y, Tensor) or y.dim() != 1 or y.numel() != n or y.is_floating_point():
        shape = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"{name} must be an integer tensor of shape [{n}] (class ids), got {shape}")
    check_mask(train_mask, n, "train_mask")
    if checks_enabled():
        lo, hi = torch.stack(torch.aminmax(y[train_mask.to(y.device)])).tolist()  # one host read, set-up code
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} holds label {lo if lo < 0 else hi} on a training node (train_mask); the "
                             f"training labels must lie in [0, {num_classes}), the {num_classes} classes of y_soft")
    return y


def _check_soft(y_soft: Tensor, adj: SparseAdjacency) -> None:
    if not isinstance(adj, SparseAdjacency):
        raise TypeError(f"adj must be a SparseAdjacency (msgnn_lite.sparse.build_adjacency), got {type(adj).__name__}")
    if not isinstance(y_soft, Tensor) or y_soft.dim() != 2 or y_soft.size(0) != adj.num_nodes:
        shape = list(y_soft.shape) if isinstance(y_soft, Tensor) else type(y_soft).__name__
        raise ValueError(f"y_soft must have shape [{adj.num_nodes}, num_classes] (one row of class probabilities "
                         f"per node), got {shape}")
    check_features(y_soft, adj.num_nodes, "y_soft")


@torch.no_grad()
def label_propagation(y0: Tensor, adj: SparseAdjacency, alpha: float, num_layers: int = 50,
                      post_step=None) -> Tensor:
    """Iterate ``G <- (1 - alpha) G0 + alpha A G`` from ``G = G0`` for ``num_layers`` steps.

    With ``num_layers -> inf`` this converges to ``(1 - alpha) (I - alpha A)^-1 G0`` (for a
    normalized ``A`` with spectral radius <= 1 and ``alpha < 1``). ``post_step(G)`` is
    applied after every step (C&S clamps there). ``alpha = 0`` returns ``G0``. Runs on
    ``adj``'s device (``y0`` is copied there if it is elsewhere).
    """
    alpha = _check_alpha(alpha, "alpha")
    num_layers = check_positive_int(num_layers, "num_layers", minimum=0)
    _check_x(y0, adj, "y0")
    y0 = _dense(y0).to(device=adj.device, dtype=adj.matrix.dtype)
    g = y0.clone()
    for _ in range(num_layers):
        g = alpha * propagate(adj, g) + (1 - alpha) * y0
        if post_step is not None:
            g = post_step(g)
    return g


def _one_hot(y: Tensor, num_classes: int, dtype) -> Tensor:
    return F.one_hot(y, num_classes).to(dtype)


def _on_operator(adj: SparseAdjacency, y_soft: Tensor, y_true: Tensor, train_mask: Tensor):
    """``y_soft`` (in the operator's dtype), ``y_true`` and ``train_mask`` on ``adj``'s device,
    where C&S runs (no copy for tensors already there), and the mask as a ``[N, 1]`` column
    for ``torch.where`` (row selection without the host sync of boolean indexing). Labels
    outside the training rows are never read: they are set to 0 (they may be unknown, e.g. -1)."""
    dev = adj.device
    y_soft = y_soft.to(device=dev, dtype=adj.matrix.dtype)
    train_mask = train_mask.to(dev)
    y_true = y_true.to(dev).masked_fill(~train_mask, 0)
    return y_soft, y_true, train_mask, train_mask.unsqueeze(1)


@torch.no_grad()
def correct(y_soft: Tensor, y_true: Tensor, train_mask: Tensor, adj: SparseAdjacency, alpha: float,
            num_layers: int = 50, autoscale: bool = True, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """C&S's *correct* step. Returns ``(corrected, residual)``.

    The residual ``E`` is ``onehot(y) - y_soft`` on the training nodes and zero elsewhere;
    it is propagated (``alpha``, clamped to [-1, 1]) and added back. ``autoscale`` rescales
    each node's propagated error to the mean absolute training error (per node, as in the
    paper); otherwise the training rows are reset to ``E`` after every step and the result
    is ``y_soft + scale * propagated``.

    Runs on ``adj``'s device (inputs elsewhere are copied there); the outputs are on it.
    """
    _check_soft(y_soft, adj)
    n, c = y_soft.shape
    y_true = _check_labels(y_true, n, c, train_mask)
    scale = check_finite(scale, "scale")
    y_soft, y_true, train_mask, rows = _on_operator(adj, y_soft, y_true, train_mask)
    # onehot(y) - y_soft on the training rows, 0 elsewhere (y_true of other rows is never used)
    residual = torch.where(rows, _one_hot(y_true, c, y_soft.dtype) - y_soft, torch.zeros_like(y_soft))
    if autoscale:
        err = label_propagation(residual, adj, alpha, num_layers, post_step=lambda g: g.clamp(-1.0, 1.0))
        sigma = residual[train_mask].abs().sum() / train_mask.sum()  # mean absolute error of a training row
        norm = err.abs().sum(dim=1, keepdim=True)
        factor = torch.where(norm > 0, sigma / norm.clamp_min(1e-30), torch.ones_like(norm))
        factor = torch.where(factor > 1000, torch.ones_like(factor), factor)
        return y_soft + factor * err, residual
    err = label_propagation(residual, adj, alpha, num_layers, post_step=lambda g: torch.where(rows, residual, g))
    return y_soft + float(scale) * err, residual


@torch.no_grad()
def smooth(y_soft: Tensor, y_true: Tensor, train_mask: Tensor, adj: SparseAdjacency, alpha: float,
           num_layers: int = 50, keep_train_labels: bool = True) -> Tensor:
    """C&S's *smooth* step: set the training rows to their one-hot labels, then propagate
    (``alpha``, clamped to [0, 1]). With ``keep_train_labels`` the training rows of the
    result are the known labels again (they are given; propagation only blurs them).
    Runs on ``adj``'s device (inputs elsewhere are copied there); the output is on it."""
    _check_soft(y_soft, adj)
    n, c = y_soft.shape
    y_true = _check_labels(y_true, n, c, train_mask)
    y_soft, y_true, train_mask, rows = _on_operator(adj, y_soft, y_true, train_mask)
    known = _one_hot(y_true, c, y_soft.dtype)  # used on the training rows only
    g0 = torch.where(rows, known, y_soft)
    out = label_propagation(g0, adj, alpha, num_layers, post_step=lambda g: g.clamp(0.0, 1.0))
    return torch.where(rows, known, out) if keep_train_labels else out


@dataclass
class CorrectAndSmooth:
    """The three stages of :func:`correct_and_smooth` (all ``[num_nodes, num_classes]``)."""

    base: Tensor
    corrected: Tensor
    smoothed: Tensor
    residual: Tensor
    seconds: float


def correct_and_smooth(y_soft: Tensor, y_true: Tensor, train_mask: Tensor, adj: SparseAdjacency, *,
                       correct_alpha: float = 0.8, smooth_alpha: float = 0.8, num_correct_layers: int = 50,
                       num_smooth_layers: int = 50, autoscale: bool = True, scale: float = 1.0,
                       keep_train_labels: bool = True) -> CorrectAndSmooth:
    """Correct & Smooth on top of a base model's class probabilities ``y_soft``.

    ``y_soft`` should be probabilities (e.g. ``logits.softmax(-1)``); ``adj`` the
    symmetric-normalized operator ``D^-1/2 A D^-1/2`` (``normalization="sym"``) as in the
    paper. Returns every stage, so a notebook can score base, corrected and smoothed.
    Runs on ``adj``'s device: ``y_soft``, ``y_true`` and ``train_mask`` are copied there if
    they are elsewhere (e.g. CPU logits with a GPU graph), and every stage is returned there.
    """
    for a, name in ((correct_alpha, "correct_alpha"), (smooth_alpha, "smooth_alpha")):
        _check_alpha(a, name)
    t0 = time.perf_counter()
    corrected, residual = correct(y_soft, y_true, train_mask, adj, correct_alpha, num_correct_layers,
                                  autoscale=autoscale, scale=scale)
    smoothed = smooth(corrected, y_true, train_mask, adj, smooth_alpha, num_smooth_layers,
                      keep_train_labels=keep_train_labels)
    sync(adj.device)
    return CorrectAndSmooth(y_soft, corrected, smoothed, residual, time.perf_counter() - t0)




# ----------------------------------------------------------------------------- scaling comparison


def compare_with_gcn(data: Data, *, k: int = 2, hidden: int = 64, gcn_epochs: int = 20, epochs: int = 20,
                     batch_size: int = 10_000, eval_every: int = 2, target_fraction: float = 0.95,
                     device: str | torch.device = "auto", seed: int = 0):
    """SGC and SIGN (precompute ``k`` hops once, then mini-batches of rows) against a
    full-batch 2-layer GCN on the same graph, the same validation metric and schedule.

    Returns ``(table, curves)``: per method the precomputation time, seconds per training
    epoch, total training time, validation-selected test accuracy, and the time to reach
    ``target_fraction`` of the lowest best validation accuracy of the three (so every
    method can reach it), counting precomputation for SGC/SIGN. ``curves[name]`` is the
    history with a cumulative ``train_time_s`` (precomputation included). Evaluation is
    never counted. Used by notebook 09 and ``python -m msgnn_lite.bench precompute``.
    """
    check_fraction(target_fraction, "target_fraction")
    dev = resolve_device(device)
    data = to_device(data, dev)
    c = int(getattr(data, "num_classes", int(data.y.max()) + 1))
    f = int(data.x.size(1))
    sync(dev)
    t0 = time.perf_counter()
    adj = build_adjacency(data.edge_index, data.num_nodes, "gcn")
    hops = sign_features(data.x, adj, k)
    sync(dev)
    pre = time.perf_counter() - t0
    runs = {}
    seed_everything(seed)
    runs["SGC"] = (fit_precomputed(SGC(f, c), hops[-1], data, epochs=epochs, batch_size=batch_size, lr=0.05,
                                   eval_every=eval_every, device=dev, seed=seed, progress=False).result, pre)
    seed_everything(seed)
    runs["SIGN"] = (fit_precomputed(SIGN(f, hidden, c, k, dropout=0.2), hops, data, epochs=epochs,
                                    batch_size=batch_size, lr=0.01, eval_every=eval_every, device=dev, seed=seed,
                                    progress=False).result, pre)
    del hops
    seed_everything(seed)
    gcn = GCN(f, hidden, c, num_layers=2, dropout=0.2)
    sync(dev)
    t0 = time.perf_counter()
    cached_adjacency(data.edge_index, data.num_nodes, "gcn")  # the GCN's operator, built once (timed as its prep)
    sync(dev)
    gcn_prep = time.perf_counter() - t0
    runs["GCN (full batch)"] = (fit(gcn, data, epochs=gcn_epochs, lr=0.01, weight_decay=0.0, eval_every=eval_every,
                                    measure_memory=False, device=dev, seed=seed, progress=False), gcn_prep)
    target = target_fraction * min(r.best_val_acc for r, _ in runs.values())
    rows, curves = [], {}
    for name, (r, prep) in runs.items():
        h = r.history.copy()
        h["train_time_s"] = prep + h["epoch_time_s"].cumsum()
        h = h.dropna(subset=["val_acc"])
        curves[name] = h
        hit = h[h["val_acc"] >= target]
        rows.append({"method": name, "precompute_s": prep, "epoch_time_s": r.train_time_s / r.epochs_run,
                     "epochs": r.epochs_run, "train_time_s": r.train_time_s, "val_acc": 100 * r.best_val_acc,
                     "test_acc": 100 * r.test_acc,
                     "time_to_target_s": float(hit["train_time_s"].iloc[0]) if len(hit) else float("nan")})
    table = pd.DataFrame(rows).set_index("method")
    table.attrs["target_val_acc"] = 100 * target
    return table, curves
