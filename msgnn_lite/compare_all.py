"""The one comparison harness: every training method of the package on one graph, under one rule.

This is the "which method should I use on my graph?" table of notebook 12 and
``python -m msgnn_lite.bench compare``; notebook 06 and ``bench ibmb`` use its
:func:`compare_training` (the mini-batch methods alone) and :func:`compare_inference`.
The rule:

* **Same model family and width.** A GCN (or, with ``Budget(model="sage")``, a
  GraphSAGE-mean model) of ``num_layers`` layers and ``hidden`` units wherever the method
  allows it. The exceptions are part of the method: VR-GCN's estimator
  assumes no dropout and GCN layers; RevGNN is the deep model (``deep_layers`` reversible GCN blocks);
  SGC is linear; SIGN, C&S's base and GLNN's student are MLPs on (propagated) features.
* **Two budgets, both shown.** ``epochs`` passes over the training nodes for everybody. Under
  ``batches="common"`` every mini-batch method makes about ``num_batches`` optimizer steps per
  epoch (equal steps); under ``batches="recipe"`` each builds its batches as its paper does
  (:data:`RECIPES`: Cluster-GCN's clusters per batch, GraphSAINT's roots
  and coverage, GAS's parts per batch, NeighborLoader's batch size and fanouts, IBMB's batch
  sizes, VR-GCN's batch size). The other methods have no batches to build and run once for
  both (their rows have ``budget == "shared"``).
* **Same tuning effort.** Every method trains with each learning rate of the same small grid
  (``lrs``; the bench's default is ``0.01 0.05``) for every seed, and keeps the one with the
  best mean validation accuracy over the seeds; the grid's rows are kept in
  ``runs.attrs["grid"]``.
* **Same work for multiscale.** A multiscale recipe gets ``epochs / (levels + 1)`` fine-graph
  epochs per level (each coarser level halves the nodes and doubles its epochs,
  :func:`~msgnn_lite.multiscale.paper_schedule`).
* **One target rule.** Time to target is :func:`msgnn_lite.train.time_to_target` (interpolated
  between evaluations) at ``target_fraction`` of full batch's mean best validation accuracy.
* **Same evaluation schedule.** Full-graph validation every ``eval_every`` epochs, never
  counted as training time; the reported test accuracy is the validation-selected one.
* **Costs, reported separately.** Preprocessing (partitioning, PPR, precomputed hops, a
  GLNN teacher's training), seconds per epoch, time to a target validation accuracy (training
  time alone and with preprocessing), cold inference over every node (graph operators built
  inside the timed call), and the peak memory of one training epoch measured after training.
  On a CPU that is the :mod:`msgnn_lite.memory` count: the largest set of tensors saved for
  backward at one moment (the dataset's own tensors, resident for every method, excluded;
  a batch's gathered copy of them counted), plus parameters, gradients, optimizer state and
  the state a method keeps beside the model (GAS and VR-GCN histories, precomputed hops).
  On a GPU: ``torch.cuda.max_memory_allocated`` over that epoch.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_fraction, check_positive_int
from .data import FEATURE_NORMALIZATIONS, normalize_features, sparse_features
from .diagnostics import add_training_status, dead_unit_fraction, loss_rise, majority_rate  # noqa: F401 (re-exported)
from .ibmb import IBMBBatchLoader, IBMBNodeLoader, ibmb_inference
from .loader import NeighborLoader, layerwise_inference, sampled_gcn_operator
from .memory import MB, SavedTensorMeter, optimizer_state_bytes, parameter_bytes
from .models import GCN, MLP, SAGE
from .partition import ClusterData, ClusterLoader
from .saint import GraphSAINTRandomWalkSampler
from .train import TrainResult, accuracy, fit, full_batch_step, minibatch_step, time_to_target
from .utils import resolve_device, seed_everything, sync, to_device

__all__ = ["Budget", "MethodRun", "METHODS", "MINIBATCH_METHODS", "TRAINING_METHODS", "BUDGETS", "RECIPES",
           "make_train_step", "run_method", "compare_all", "compare_training", "compare_inference", "budget_rows",
           "gap_to_full_batch", "gap_claims", "prepare_graph", "add_training_status", "check_and_time", "trained_rows", "flag_counts",
           "summarize", "pareto_front", "time_to_target"]


@dataclass(frozen=True)
class Budget:
    """The common budget and model family (see the module docstring)."""

    epochs: int = 30
    model: str = "gcn"
    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.5
    lr: float = 0.01
    weight_decay: float = 5e-4
    num_batches: int = 8
    eval_every: int = 2
    levels: int = 2
    deep_layers: int = 8
    hops: int = 2
    batches: str = "common"
    features: str = "auto"
    grad_norm: float | None = None

    def __post_init__(self):
        for name in ("epochs", "hidden", "num_layers", "num_batches", "eval_every", "levels", "deep_layers", "hops"):
            check_positive_int(getattr(self, name), name)
        check_fraction(self.dropout, "dropout", low_open=False, high_closed=False)
        if self.model not in ("gcn", "sage"):
            raise ValueError(f"model must be 'gcn' or 'sage', got {self.model!r}")
        if self.batches not in BUDGETS:
            raise ValueError(f"batches must be one of {BUDGETS}, got {self.batches!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.features != "auto" and self.features not in FEATURE_NORMALIZATIONS:
            raise ValueError(f"features must be 'auto' or one of {FEATURE_NORMALIZATIONS}, got {self.features!r}")
        if self.grad_norm is not None and not (isinstance(self.grad_norm, (int, float)) and self.grad_norm > 0
                                               and math.isfinite(self.grad_norm)):
            raise ValueError(f"grad_norm must be None or a positive number, got {self.grad_norm!r}")


@dataclass
class MethodRun:
    """One trained method: its validation-selected result, costs, and how to re-run a step.

    ``curve`` has one row per evaluation with ``train_time_s`` (cumulative training time,
    preprocessing excluded) and ``val_acc``; ``infer()`` predicts every node cold;
    ``memory_step`` is a ``train_step`` (``(model, data, optimizer) -> loss``) run once after
    training to measure the peak memory of an epoch."""

    test_acc: float
    val_acc: float
    curve: pd.DataFrame
    epoch_time_s: float
    preprocess_s: float
    model: nn.Module
    infer: Callable[[], Tensor]
    memory_step: Callable | None
    memory_data: Data | None = None
    state_bytes: int = 0
    note: str = ""
    extra: dict = field(default_factory=dict)
    history: pd.DataFrame | None = None
    selection_curve: pd.DataFrame | None = None


def _classes(data: Data) -> int:
    return int(getattr(data, "num_classes", None) or int(data.y.max()) + 1)


def _curve(res: TrainResult, offset: float = 0.0) -> pd.DataFrame:
    h = res.history.copy()
    h["train_time_s"] = offset + h["epoch_time_s"].cumsum()
    return h.dropna(subset=["val_acc"]).reset_index(drop=True)[["epoch", "train_time_s", "val_acc", "test_acc"]]


def _fit(model, data, b: Budget, seed, dev, epochs=None, **kw) -> TrainResult:
    return fit(model, data, epochs=epochs or b.epochs, lr=kw.pop("lr", b.lr), weight_decay=kw.pop("wd", b.weight_decay),
               eval_every=b.eval_every, seed=seed, device=dev, measure_memory=False, progress=False,
               grad_norm=b.grad_norm, **kw)


def _run(res: TrainResult, model, data, preprocess_s=0.0, step=None, infer=None, note="", curve_offset=0.0,
         state_bytes: int = 0) -> MethodRun:
    def forward_all():  # a fresh edge list: the operator is rebuilt inside the timed call
        return model(data.x, data.edge_index.clone())
    return MethodRun(res.test_acc, res.best_val_acc, _curve(res, curve_offset), res.train_time_s / res.epochs_run,
                     preprocess_s, model, infer or forward_all, step or full_batch_step, data, state_bytes, note,
                     history=res.history)


def _gcn(data: Data, b: Budget, dropout: float | None = None, model: str | None = None) -> nn.Module:
    cls = GCN if (model or b.model) == "gcn" else SAGE
    return cls(data.num_features, b.hidden, _classes(data), b.num_layers, dropout=b.dropout if dropout is None else dropout)


# ----------------------------------------------------------------------------- batch construction


TRAINING_METHODS = ("full batch", "NeighborLoader", "Cluster-GCN", "GraphSAINT-RW", "IBMB node-wise",
                    "IBMB batch-wise")


@dataclass
class _Prepared:
    train_step: Callable | None
    preprocess_s: float
    batches: int
    setting: str = ""


BUDGETS = ("common", "recipe")
"""``"common"``: every mini-batch method makes about ``num_batches`` steps per epoch (equal steps).
``"recipe"``: each method builds its batches as its paper does (:data:`RECIPES`)."""

RECIPES = {
    "NeighborLoader": "GraphSAGE (Hamilton et al. 2017): batches of 512 seed nodes, fanouts [25, 10]; a GCN "
                      "aggregates with the full graph's degrees (msgnn_lite.loader.sampled_gcn_operator)",
    "Cluster-GCN": "Cluster-GCN (Chiang et al. 2019), Reddit setting: METIS clusters of about 150 nodes, "
                   "20 clusters per batch (at most a quarter of them, so an epoch has at least 4 steps)",
    "GraphSAINT-RW": "GraphSAINT (Zeng et al. 2020): random walks of length 2 from N/30 roots (Flickr's 3,000 "
                     "roots on 89k nodes), an epoch of N sampled nodes, node_norm-weighted loss and edge_norm "
                     "aggregation; coverage 20 (the paper's 50-100 costs 2.5-5x the pre-sampling on a CPU)",
    "GAS": "GAS (Fey et al. 2021), its Planetoid setting: 40 METIS parts, 10 per batch, full-graph degrees",
    "VR-GCN": "VR-GCN (Chen et al. 2018): batches of 1,000 training nodes, 2 sampled neighbours per layer "
              "with the control variate",
    "IBMB node-wise": "IBMB (Gasteiger et al. 2022): the 16 top-PPR auxiliary nodes of each output node, "
                      "batches of at most 1,024 output nodes",
    "IBMB batch-wise": "IBMB (Gasteiger et al. 2022): METIS output sets of about 1,024 training nodes "
                       "(at least 2), PPR-expanded",
}
"""What ``budget="recipe"`` uses for each mini-batch method, and where it comes from."""


def make_train_step(method: str, data: Data, num_batches: int, *, fanouts=(10, 5), num_auxiliary_nodes: int = 16,
                    batch_order: str = "order", seed: int = 0, cache: bool = True,
                    budget: str = "common", model: str = "gcn") -> _Prepared:
    """A ``train_step`` for :func:`~msgnn_lite.train.fit`.

    ``budget="common"``: about ``num_batches`` steps per epoch. ``fanouts`` is NeighborLoader's;
    ``num_auxiliary_nodes`` and ``batch_order`` IBMB's. Cluster-GCN uses ``4 * num_batches``
    METIS parts, 4 per batch; GraphSAINT-RW draws random walks of length 2 whose roots cover
    about ``num_nodes / num_batches`` nodes per step. ``budget="recipe"``: the paper's batch
    construction of :data:`RECIPES` (``num_batches`` and ``fanouts`` are then ignored).

    GraphSAINT trains with its own normalisation under both budgets (``edge_norm`` in the
    aggregation, ``node_norm`` in the loss, :func:`~msgnn_lite.saint.normalized_step`), scaled to
    estimate the mean loss over the labelled training nodes. NeighborLoader with a GCN
    (``model="gcn"``) aggregates with the full graph's degrees
    (:func:`~msgnn_lite.loader.sampled_gcn_operator`, an unbiased estimate of the full graph's
    aggregation); a GraphSAGE-mean model's sampled mean is one already.
    """
    from .saint import normalized_step

    if method not in TRAINING_METHODS:
        raise ValueError(f"method must be one of {TRAINING_METHODS}, got {method!r}")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    num_batches = check_positive_int(num_batches, "num_batches")
    recipe = budget == "recipe"
    train_nodes = data.train_mask.nonzero().view(-1)
    n_train = train_nodes.numel()
    gen = torch.Generator(device=data.edge_index.device).manual_seed(seed)
    t0 = time.perf_counter()
    if method == "full batch":
        return _Prepared(None, 0.0, 1, "the whole graph every step")
    if method == "NeighborLoader":
        fo, bs = ([25, 10], 512) if recipe else (list(fanouts), math.ceil(n_train / num_batches))
        loader = NeighborLoader(data, fo, batch_size=bs, input_nodes=train_nodes, shuffle=True, generator=gen)
        if model == "gcn":
            degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
            step = minibatch_step(loader, adjacency=lambda b: sampled_gcn_operator(b, degree))
            setting = f"{bs} seeds, fanouts {fo}, GCN normalised with the full graph's degrees"
        else:
            step, setting = minibatch_step(loader), f"{bs} seeds, fanouts {fo}"
    elif method == "Cluster-GCN":
        if recipe:
            parts = min(max(4, round(data.num_nodes / 150)), data.num_nodes)
            per = max(1, min(20, parts // 4))
        else:
            parts = min(4 * num_batches, data.num_nodes)
            per = max(1, parts // num_batches)
        loader = ClusterLoader(ClusterData(data, parts, seed=seed, cache=cache), batch_size=per, shuffle=True,
                               generator=gen)
        step, setting = minibatch_step(loader), f"METIS {parts} parts, {per} per batch"
    elif method == "GraphSAINT-RW":
        if recipe:
            roots = max(1, math.ceil(data.num_nodes / 30))
            steps = max(1, math.ceil(data.num_nodes / (3 * roots)))
            coverage = 20
        else:
            roots, steps, coverage = max(1, math.ceil(data.num_nodes / num_batches / 3)), num_batches, 20
        loader = GraphSAINTRandomWalkSampler(data, roots, walk_length=2, num_steps=steps,
                                             sample_coverage=coverage, generator=gen)
        step = normalized_step(loader, per_labelled_node=True)
        setting = f"{roots} roots x walk 2, {steps} steps, coverage {coverage}, node_norm loss + edge_norm"
    elif method == "IBMB node-wise":
        per = min(1024, n_train) if recipe else math.ceil(n_train / num_batches)
        loader = IBMBNodeLoader(data, batch_order, train_nodes, num_auxiliary_nodes=num_auxiliary_nodes,
                                num_nodes_per_batch=per, cache=cache, generator=gen)
        step, setting = minibatch_step(loader), f"top-{num_auxiliary_nodes} PPR, {per} outputs per batch"
    else:
        parts = max(2, math.ceil(n_train / 1024)) if recipe else num_batches
        loader = IBMBBatchLoader(data, batch_order, num_partitions=parts, input_nodes=train_nodes, seed=seed,
                                 cache=cache, generator=gen)
        step, setting = minibatch_step(loader), f"{parts} METIS output sets"
    pre = time.perf_counter() - t0
    if hasattr(loader, "preprocess_time_s"):  # a cached IBMB run still reports what computing took
        pre = max(pre, loader.preprocess_time_s)
    return _Prepared(step, pre, len(loader), f"{setting}; {len(loader)} batches/epoch")


def compare_training(data: Data, make_model: Callable[[], nn.Module], methods=TRAINING_METHODS, *, epochs: int,
                     num_batches: int, eval_every: int = 2, seeds=(0,), lr: float = 0.01, weight_decay: float = 0.0,
                     device="cpu", progress: bool | None = None, equal_steps: bool = False,
                     **method_kwargs) -> tuple[pd.DataFrame, dict, dict]:
    """Train every method for ``epochs`` epochs per seed; return ``(runs, curves, models)``.

    ``equal_steps=True`` gives the methods that make one optimizer step per epoch (full batch) the
    mini-batch methods' number of steps: ``epochs x num_batches`` epochs, evaluated every
    ``eval_every x num_batches`` of them (the same schedule in steps). Without it full batch makes
    ``num_batches`` times fewer steps, and an accuracy compared with it says so.

    ``runs`` has a row per (method, seed): validation-selected test accuracy, best
    validation accuracy, training time per epoch, preprocessing time, batches per epoch.
    ``curves[(method, seed)]`` is the history with a ``train_time_s`` column (cumulative
    training time at each evaluation) for accuracy-vs-time plots; ``models[(method, seed)]``
    the trained model (best validation epoch's weights).
    """
    rows, curves, models = [], {}, {}
    kind = "gcn" if getattr(make_model(), "normalization", None) == "gcn" else "other"  # which batch operator
    for method in methods:
        for seed in seeds:
            prep = make_train_step(method, data, num_batches, seed=seed, model=kind, **method_kwargs)
            seed_everything(seed)
            model = make_model()
            kw = {} if prep.train_step is None else {"train_step": prep.train_step}
            scale = num_batches if (equal_steps and prep.batches == 1) else 1
            res = fit(model, data, epochs=epochs * scale, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
                      eval_every=eval_every * scale, measure_memory=False, progress=progress, desc=method, **kw)
            h = res.history.copy()
            h["train_time_s"] = h["epoch_time_s"].cumsum()
            curves[(method, seed)] = h.dropna(subset=["val_acc"]).reset_index(drop=True)
            models[(method, seed)] = model
            rows.append({"method": method, "seed": seed, "test_acc": 100 * res.test_acc,
                         "val_acc": 100 * res.best_val_acc, "epoch_time_s": res.train_time_s / res.epochs_run,
                         "train_time_s": res.train_time_s, "preprocess_s": prep.preprocess_s,
                         "batches_per_epoch": prep.batches, "epochs_run": res.epochs_run,
                         "steps": res.epochs_run * prep.batches})
    return pd.DataFrame(rows), curves, models


def _timed(fn, device) -> tuple[object, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


@torch.no_grad()
def compare_inference(model: nn.Module, data: Data, nodes: Tensor, *, fanouts=(10, 5), num_auxiliary_nodes=16,
                      num_nodes_per_batch: int = 4096, batch_size: int = 4096, cache: bool = True,
                      device=None) -> pd.DataFrame:
    """Predict ``nodes`` with a trained model four ways; time each and score accuracy.

    * full-neighbour, layer-wise (exact, every node of every layer; PyG's ``inference``);
    * full-batch forward (exact; needs the whole graph's activations at once);
    * neighbour-sampled (``fanouts``, the query nodes as seeds);
    * IBMB node-wise batches over the query nodes, one row per ``num_auxiliary_nodes`` (an
      int or a list) (precomputed: their preprocessing is a
      separate column, as in the paper; the inference time includes building each batch's
      operator).

    Every method is timed cold: its graph operators are built inside the timed call.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    data = to_device(data, dev)
    nodes = nodes.to(dev)
    y = data.y[nodes]
    rows = []
    out, t = _timed(lambda: layerwise_inference(model, data, batch_size=batch_size), dev)
    rows.append(("full-neighbour layer-wise", t, 0.0, accuracy(out[nodes], y)))
    # Every method builds its graph operators inside the timed region: a fresh copy of the
    # edge list keeps the full-batch forward from reusing the operator cached during training.
    edge_index = data.edge_index.clone()
    out, t = _timed(lambda: model(data.x, edge_index), dev)
    rows.append(("full-batch forward", t, 0.0, accuracy(out[nodes], y)))
    gen = torch.Generator(device=data.edge_index.device).manual_seed(0)
    sampler = NeighborLoader(data, list(fanouts), batch_size=batch_size, input_nodes=nodes, generator=gen)

    def sampled():
        outs = [model(b.x, b.edge_index)[:b.batch_size] for b in sampler]
        return torch.cat(outs)
    out, t = _timed(sampled, dev)
    rows.append((f"neighbour-sampled {list(fanouts)}", t, 0.0, accuracy(out, y)))
    for k in ([num_auxiliary_nodes] if isinstance(num_auxiliary_nodes, int) else list(num_auxiliary_nodes)):
        t0 = time.perf_counter()
        loader = IBMBNodeLoader(data, "rand", nodes, num_auxiliary_nodes=k, num_nodes_per_batch=num_nodes_per_batch,
                                cache=cache)
        pre = max(time.perf_counter() - t0, loader.preprocess_time_s)
        out, t = _timed(lambda: ibmb_inference(model, loader), dev)
        rows.append((f"IBMB node-wise (top-{k})", t, pre, accuracy(out[nodes], y)))
    df = pd.DataFrame(rows, columns=["method", "inference_s", "preprocess_s", "accuracy"]).set_index("method")
    df["accuracy"] *= 100
    df["speedup_vs_layerwise"] = df.loc["full-neighbour layer-wise", "inference_s"] / df["inference_s"]
    return df


# ----------------------------------------------------------------------------- the methods


def _full_batch(data, b, seed, dev):
    model = _gcn(data, b)
    return _run(_fit(model, data, b, seed, dev), model, data)


def _minibatch(name: str):
    def run(data, b, seed, dev):
        prep = make_train_step(name, data, b.num_batches, seed=seed, budget=b.batches, model=b.model)
        seed_everything(seed)
        model = _gcn(data, b)
        res = _fit(model, data, b, seed, dev, train_step=prep.train_step)
        return _run(res, model, data, prep.preprocess_s, prep.train_step, note=prep.setting)
    return run


def _gas(data, b, seed, dev):
    from .gas import GASGNN, GASLoader, gas_train_step
    from .partition import ClusterData

    t0 = time.perf_counter()
    if b.batches == "recipe":  # GAS's Planetoid setting: 40 parts, 10 per batch
        parts, per = min(40, data.num_nodes), min(10, max(1, data.num_nodes // 4))
    else:
        parts = min(4 * b.num_batches, data.num_nodes)
        per = max(1, parts // b.num_batches)
    gen = torch.Generator(device=data.edge_index.device).manual_seed(seed)
    loader = GASLoader(ClusterData(data, parts, seed=seed), batch_size=per, shuffle=True,
                       normalization="mean" if b.model == "sage" else "gcn", generator=gen)
    pre = time.perf_counter() - t0
    seed_everything(seed)
    model = GASGNN(data.num_nodes, data.num_features, b.hidden, _classes(data), b.num_layers, conv=b.model,
                   dropout=b.dropout, history_device=dev)
    step = gas_train_step(loader)
    res = _fit(model, data, b, seed, dev, train_step=step)
    return _run(res, model, data, pre, step, note=f"METIS {parts} parts, {per} per batch; {len(loader)} batches/epoch",
                state_bytes=model.history_nbytes())


def _vrgcn(data, b, seed, dev):
    from .sparse import build_adjacency
    from .vrgcn import VRGCNSampler, fill_histories, make_histories, vrgcn_train_step

    seed_everything(seed)
    model = _gcn(data, b, dropout=0.0, model="gcn").to(dev)
    d = to_device(data, dev)
    t0 = time.perf_counter()
    adj = build_adjacency(d.edge_index, d.num_nodes, "gcn", device=dev)
    hist = make_histories(model, d.num_nodes, dev)
    fill_histories(model, d.x, adj, hist)
    gen = torch.Generator(device=dev).manual_seed(seed)
    sampler = VRGCNSampler(adj, b.num_layers, 2, exact=True, generator=gen)
    n_train = int(d.train_mask.sum())
    batch = min(1000, n_train) if b.batches == "recipe" else math.ceil(n_train / b.num_batches)
    step = vrgcn_train_step(sampler, hist, "cv", batch, gen)
    pre = time.perf_counter() - t0
    res = _fit(model, d, b, seed, dev, train_step=step)
    return _run(res, model, d, pre, step, note=f"batches of {batch}, fanout 2 with the control variate; no dropout (VR-GCN's estimator)",
                state_bytes=sum(h.emb.numel() * h.emb.element_size() for h in hist))


def _multiscale(method: str):
    def run(data, b, seed, dev):
        from .multiscale import train_multiscale

        seed_everything(seed)
        model = _gcn(data, b)
        n = max(1, b.epochs // (b.levels + 1))
        ms = train_multiscale(model, data, levels=b.levels, epochs=n, method=method, lr=b.lr,
                              weight_decay=b.weight_decay, seed=seed, device=dev, eval_every=b.eval_every,
                              progress=False, grad_norm=b.grad_norm)
        run = _run(ms.result, model, to_device(data, dev),
                   note=f"{b.levels} levels, {n}/{2 * n}/{4 * n}.. epochs, {ms.fine_epochs:.1f} fine-epoch equivalents")
        # seconds per fine-epoch equivalent of work, so the column compares like with like
        run.epoch_time_s = ms.result.train_time_s / max(ms.fine_epochs, 1e-9)
        return run
    return run


def _revgnn(data, b, seed, dev):
    from .revgnn import RevGNN

    seed_everything(seed)
    model = RevGNN(data.num_features, b.hidden, _classes(data), num_layers=b.deep_layers, num_groups=2,
                   dropout=b.dropout, conv=b.model)
    res = _fit(model, data, b, seed, dev)
    return _run(res, model, data, note=f"{b.deep_layers} reversible {b.model.upper()} blocks, 2 groups")


def _precomputed(kind: str):
    def run(data, b, seed, dev):
        from .precompute import SGC, SIGN, fit_precomputed, row_batch_step, sign_features
        from .sparse import build_adjacency

        d = to_device(data, dev)

        def features():
            return sign_features(d.x, build_adjacency(d.edge_index, d.num_nodes, "gcn"), b.hops)
        sync(dev)
        t0 = time.perf_counter()
        hops = features()
        sync(dev)
        pre = time.perf_counter() - t0
        seed_everything(seed)
        c = _classes(d)
        if kind == "SGC":
            model, xs, lr = SGC(d.num_features, c), [hops[-1]], b.lr
        else:
            model, xs, lr = SIGN(d.num_features, b.hidden, c, b.hops, dropout=0.2), hops, b.lr
        batch = math.ceil(int(d.train_mask.sum()) / b.num_batches)
        pc = fit_precomputed(model, xs if kind == "SIGN" else xs[0], d, epochs=b.epochs, batch_size=batch, lr=lr,
                             eval_every=b.eval_every, device=dev, seed=seed, progress=False, grad_norm=b.grad_norm)

        def infer():  # cold: the hops are recomputed from the raw graph
            h = features()
            return model([h[-1]] if kind == "SGC" else h)
        step = row_batch_step(xs, batch, torch.Generator(device=dev).manual_seed(seed))
        return _run(pc.result, model, d, pre, step, infer, note=f"{b.hops} hops precomputed; lr {lr}",
                    state_bytes=sum(x.numel() * x.element_size() for x in xs))
    return run


def _correct_and_smooth(data, b, seed, dev):
    from .precompute import correct_and_smooth
    from .sparse import build_adjacency

    seed_everything(seed)
    d = to_device(data, dev)
    base = MLP(d.num_features, b.hidden, _classes(d), 2, dropout=b.dropout)
    res = _fit(base, d, b, seed, dev)

    def infer():
        base.eval()
        adj = build_adjacency(d.edge_index, d.num_nodes, "sym")
        return correct_and_smooth(base(d.x).softmax(-1), d.y, d.train_mask, adj).smoothed
    with torch.no_grad():
        sync(dev)
        t0 = time.perf_counter()
        out = infer()
        sync(dev)
        cs_s = time.perf_counter() - t0
    val = accuracy(out[d.val_mask], d.y[d.val_mask])
    test = accuracy(out[d.test_mask], d.y[d.test_mask])
    run = _run(res, base, d, infer=infer, note=f"MLP base {100 * res.test_acc:.1f}%, then C&S ({cs_s:.2f} s)")
    run.selection_curve = run.curve.copy()  # the base's evaluations: did the base finish training?
    # after the base's last evaluation, one more point: the smoothed prediction
    last = run.curve.iloc[[-1]].copy()
    last["train_time_s"] += cs_s
    last["val_acc"], last["test_acc"] = val, test
    run.curve = pd.concat([run.curve, last], ignore_index=True)
    run.val_acc, run.test_acc = val, test
    return run


def _glnn(data, b, seed, dev):
    from .distill import distill_step, teacher_logits, train_student

    d = to_device(data, dev)
    t0 = time.perf_counter()
    teacher = _gcn(d, b)
    tres = _fit(teacher, d, b, seed, dev)
    soft = teacher_logits(teacher, d)
    pre = time.perf_counter() - t0
    seed_everything(seed)
    student = MLP(d.num_features, b.hidden, _classes(d), 2, dropout=b.dropout)
    res = train_student(student, d, soft, lam=0.0, epochs=b.epochs, lr=b.lr, weight_decay=b.weight_decay,
                        eval_every=b.eval_every, seed=seed, device=dev, progress=False, grad_norm=b.grad_norm)
    dd = copy.copy(d)
    dd.teacher_logits = soft
    return _run(res, student, dd, pre, distill_step(0.0), infer=lambda: student(d.x),
                note=f"teacher GCN {100 * tres.test_acc:.1f}% (its training is the preprocessing); MLP inference")


def _mlp(data, b, seed, dev):
    seed_everything(seed)
    model = MLP(data.num_features, b.hidden, _classes(data), 2, dropout=b.dropout)
    return _run(_fit(model, data, b, seed, dev), model, to_device(data, dev), infer=lambda: model(data.x),
                note="no graph: the reference every graph method must beat")


METHODS: dict[str, tuple[str, Callable]] = {
    "full batch": ("full batch", _full_batch),
    "NeighborLoader": ("sampling", _minibatch("NeighborLoader")),
    "Cluster-GCN": ("sampling", _minibatch("Cluster-GCN")),
    "GraphSAINT-RW": ("sampling", _minibatch("GraphSAINT-RW")),
    "GAS": ("historical embeddings", _gas),
    "VR-GCN": ("historical embeddings", _vrgcn),
    "IBMB node-wise": ("IBMB", _minibatch("IBMB node-wise")),
    "IBMB batch-wise": ("IBMB", _minibatch("IBMB batch-wise")),
    "coarse-to-fine (random)": ("multiscale", _multiscale("random")),
    "sub-to-full": ("multiscale", _multiscale("subgraph")),
    "RevGNN": ("deep / reversible", _revgnn),
    "SGC": ("precomputation", _precomputed("SGC")),
    "SIGN": ("precomputation", _precomputed("SIGN")),
    "C&S": ("precomputation", _correct_and_smooth),
    "GLNN": ("distillation", _glnn),
    "MLP": ("no graph", _mlp),
}
"""Every method: its name -> (family, runner). Runners share ``(data, budget, seed, device)``."""

MINIBATCH_METHODS = ("NeighborLoader", "Cluster-GCN", "GraphSAINT-RW", "GAS", "VR-GCN", "IBMB node-wise",
                     "IBMB batch-wise")
"""The methods whose batches differ between ``batches="common"`` and ``"recipe"``."""


def _peak_memory_mb(run: MethodRun, dev: torch.device) -> float:
    """Peak memory of one more training epoch on a copy of the trained model (untimed)."""
    model = copy.deepcopy(run.model).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    data = to_device(run.memory_data, dev)
    resident = [t for _, t in data() if isinstance(t, Tensor)]
    if dev.type == "cuda":
        sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    with SavedTensorMeter(exclude=list(model.parameters()) + resident) as meter:
        run.memory_step(model, data, opt)
    if dev.type == "cuda":
        sync(dev)
        return (torch.cuda.max_memory_allocated(dev) - base + parameter_bytes(model) + run.state_bytes) / MB
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    return (meter.peak_bytes + parameter_bytes(model) + grads + optimizer_state_bytes(opt) + run.state_bytes) / MB


def prepare_graph(data: Data, budget: Budget, device) -> Data:
    """The graph every method of a comparison trains on: on ``device``, features normalised by
    ``budget.features`` (:func:`msgnn_lite.data.normalize_features`; ``"auto"`` is the dataset's
    documented preprocessing) and stored as CSR when they are bag-of-words sparse (density under
    10%, :func:`msgnn_lite.data.sparse_features`: full batch, every loader's batches and the
    precomputed hops then use sparse products). A graph prepared once is returned unchanged."""
    return sparse_features(normalize_features(to_device(data, resolve_device(device)), budget.features))


def run_method(name: str, data: Data, budget: Budget | None = None, seed: int = 0, device="auto") -> tuple[dict, pd.DataFrame]:
    """Train ``name`` (a key of :data:`METHODS`) on ``data``; return ``(row, curve)``.

    ``row`` has the validation-selected ``test_acc`` and best ``val_acc`` (percent),
    ``epoch_time_s``, ``train_time_s``, ``preprocess_s``, ``inference_s`` (cold, every node) and
    ``peak_memory_mb``; ``curve`` the evaluations with cumulative ``train_time_s``."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {name!r}")
    budget = budget or Budget()
    dev = resolve_device(device)
    family, runner = METHODS[name]
    data = prepare_graph(data, budget, dev)
    seed_everything(seed)
    run = runner(data, budget, seed, dev)
    run.model.eval()
    with torch.no_grad():
        sync(dev)
        t0 = time.perf_counter()
        run.infer()
        sync(dev)
        inference_s = time.perf_counter() - t0
    sel = run.selection_curve if run.selection_curve is not None else run.curve
    vals = sel["val_acc"].to_numpy(dtype=float)
    best = int(vals.argmax()) if len(vals) else -1  # the first evaluation at the maximum
    hist = run.history if run.history is not None else pd.DataFrame()
    row = {"method": name, "family": family, "seed": seed, "lr": budget.lr,
           "budget": budget.batches if name in MINIBATCH_METHODS else "shared", "test_acc": 100 * run.test_acc,
           "val_acc": 100 * run.val_acc, "epoch_time_s": run.epoch_time_s,
           "train_time_s": float(run.curve["train_time_s"].iloc[-1]) if len(run.curve) else float("nan"),
           "preprocess_s": run.preprocess_s, "inference_s": inference_s,
           "peak_memory_mb": _peak_memory_mb(run, dev),
           "memory_kind": "cuda_max_allocated" if dev.type == "cuda" else "saved_tensors+params+grads+optimizer",
           "note": run.note,
           # did it train? (msgnn_lite.diagnostics): the signals; compare_all adds the status
           "best_epoch": int(sel["epoch"].iloc[best]) if best >= 0 else 0,
           "epochs_run": int(hist["epoch"].max()) if "epoch" in hist and len(hist) else 0,
           "best_is_last": bool(len(vals) > 1 and best == len(vals) - 1),
           "dead_units": dead_unit_fraction(run.model, run.infer),
           "loss_rise": loss_rise(hist["loss"]) if "loss" in hist else float("nan"),
           "grad_norm_max": float(hist["grad_norm"].max()) if "grad_norm" in hist else float("nan"),
           "grad_clip": budget.grad_norm if budget.grad_norm is not None else float("nan"),
           "features": getattr(data, "feature_normalization", "none")}
    curve = run.curve.copy()
    curve["val_acc"] *= 100
    curve["test_acc"] *= 100
    return row, curve


def compare_all(data: Data, methods=None, *, budget: Budget | None = None, seeds=(0,), target_fraction: float = 0.97,
                device="auto", progress: bool | None = None, reorder: str | None = None,
                budgets=None, lrs=None, decide: Callable | None = None, min_seeds: int = 3,
                max_seconds: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Run ``methods`` (default: all of :data:`METHODS`) for every budget, learning rate and
    seed; return ``(runs, curves)`` for each method's selected learning rate.

    ``budgets``: the batch budgets to run, a subset of ``("common", "recipe")`` (default:
    ``budget.batches`` alone); the mini-batch methods run once per budget, the others once
    (``budget == "shared"``). ``lrs``: the learning-rate grid every method gets (default:
    ``budget.lr`` alone); per (method, budget) the rate with the best mean validation accuracy
    over ``seeds`` is kept. ``runs`` has one row per (method, budget, seed) with the columns
    of :func:`run_method` plus ``time_to_target_s`` (training time until validation accuracy
    reaches ``target_fraction`` of full batch's mean best validation accuracy, interpolated
    between evaluations; NaN if never) and ``total_to_target_s`` (the same plus
    preprocessing). ``runs.attrs["grid"]`` holds every row of the grid as records
    (``pd.DataFrame(runs.attrs["grid"])``; learning rates not kept included). Full batch is always run first, since it defines the target.
    ``curves[(method, budget, seed)]`` are the evaluation curves.
    ``reorder`` (e.g. ``"rcm"``, ``"partition"``; see :mod:`msgnn_lite.reorder`) renumbers the
    graph once, before every method, so the full-batch path and every loader see the same
    local order; the seconds it took are in ``runs.attrs["reorder_s"]`` (not charged to any method).

    ``decide`` turns ``seeds`` into a cap: the seeds run one at a time, every method and budget
    on each, and after the ``min_seeds``-th the loop stops once none of the claims
    ``decide(runs)`` builds from the runs so far is inconclusive (the seed rule,
    :func:`msgnn_lite.results.sequential_seeds`, whose second cap is ``max_seconds``); e.g.
    ``decide=lambda runs: gap_claims(budget_rows(runs, "recipe"), "Cora", "recipe")``.
    """
    import dataclasses

    from tqdm.auto import tqdm

    from .train import _progress_enabled

    check_fraction(target_fraction, "target_fraction")
    budget = budget or Budget()
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be drawn from {list(METHODS)}, got {unknown}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    budgets = [budget.batches] if budgets is None else list(dict.fromkeys(budgets))
    if not budgets or any(x not in BUDGETS for x in budgets):
        raise ValueError(f"budgets must be a non-empty subset of {BUDGETS}, got {budgets}")
    if isinstance(lrs, (str, bytes)):
        raise ValueError(f"lrs must be a list of learning rates, got the string {lrs!r} "
                         "(with papermill pass a list as YAML: -y 'lrs: [0.01, 0.05]')")
    lrs = [budget.lr] if lrs is None else list(dict.fromkeys(float(x) for x in lrs))
    if not lrs or not all(x > 0 and math.isfinite(x) for x in lrs):
        raise ValueError(f"lrs must be a non-empty list of positive learning rates, got {lrs}")
    order = ["full batch"] + [m for m in methods if m != "full batch"]
    data = prepare_graph(data, budget, device)
    reorder_s = 0.0
    if reorder is not None:
        from .reorder import reorder as _reorder

        t0 = time.perf_counter()
        data = _reorder(data, reorder)[0]
        reorder_s = time.perf_counter() - t0
    jobs = [(m, bud, lr) for m in order for bud in (budgets if m in MINIBATCH_METHODS else budgets[:1]) for lr in lrs]
    bar = tqdm(total=len(jobs) * len(seeds), desc=f"compare on {getattr(data, 'name', 'graph')}",
               disable=not _progress_enabled(progress))

    def one_seed(s):
        rows, curves = [], {}
        for m, bud, lr in jobs:
            row, curve = run_method(m, data, dataclasses.replace(budget, batches=bud, lr=lr), s, device)
            rows.append(row)
            curves[(m, row["budget"], lr, s)] = curve
            bar.update(1)
        return rows, curves

    def assemble(parts):
        rows = sorted((r for part_rows, _ in parts for r in part_rows),   # method-major, as the tables read
                      key=lambda r: (order.index(r["method"]), budgets.index(r["budget"]) if r["budget"] in budgets else 0,
                                     lrs.index(r["lr"]), seeds.index(r["seed"])))
        all_curves = {k: c for _, part_curves in parts for k, c in part_curves.items()}
        return _select_and_check(rows, all_curves, data, methods, target_fraction, reorder_s, lrs)

    if decide is None:
        parts = [one_seed(s) for s in seeds]
    else:
        from .results import sequential_seeds

        parts, _ = sequential_seeds(one_seed, lambda parts: decide(assemble(parts)[0]), seeds, min_seeds=min_seeds,
                                    max_seconds=max_seconds)
    bar.close()
    return assemble(parts)


def _select_and_check(rows: list, all_curves: dict, data: Data, methods: list, target_fraction: float,
                      reorder_s: float, lrs: list) -> tuple[pd.DataFrame, dict]:
    """compare_all's runs from its grid rows: the learning rate kept per (method, budget), the
    training check, the target and the times to it."""
    grid = pd.DataFrame(rows)
    mean_val = grid.groupby(["method", "budget", "lr"], sort=False)["val_acc"].mean()
    best_lr = {key: mean_val.loc[key].idxmax() for key in dict.fromkeys(zip(grid["method"], grid["budget"]))}
    grid["selected"] = [best_lr[(r.method, r.budget)] == r.lr for r in grid.itertuples()]
    runs = grid[grid["selected"]].drop(columns="selected").reset_index(drop=True)
    curves = {(r.method, r.budget, r.seed): all_curves[(r.method, r.budget, r.lr, r.seed)] for r in runs.itertuples()}
    runs = check_and_time(runs, curves, data, target_fraction)
    target = runs.attrs["target_val_acc"]
    if "full batch" not in methods:
        runs = runs[runs["method"] != "full batch"].reset_index(drop=True)
    runs.attrs["target_val_acc"] = target
    runs.attrs["num_classes"] = _classes(data)
    runs.attrs["reorder_s"] = reorder_s
    runs.attrs["grid"] = grid.to_dict("records")  # plain records: pandas compares attrs when it copies frames
    runs.attrs["lrs"] = lrs
    return runs, curves


def check_and_time(runs: pd.DataFrame, curves: dict, data: Data, target_fraction: float = 0.97) -> pd.DataFrame:
    """The selected runs of a comparison with their training check (:func:`add_training_status`:
    ``status``, ``cause``, ``floor_val_acc``), the target (``target_fraction`` of the mean best
    validation accuracy of the full-batch runs that trained, in ``runs.attrs["target_val_acc"]``)
    and each run's ``time_to_target_s`` and ``total_to_target_s`` from ``curves[(method, budget,
    seed)]``. All three depend on every seed (the MLP's floor and full batch's target are means), so
    runs of one graph stored apart are merged by calling this on all of them together
    (``python -m msgnn_lite.bench compare --merge``)."""
    check_fraction(target_fraction, "target_fraction")
    missing = [k for k in zip(runs["method"], runs["budget"], runs["seed"]) if k not in curves]
    if missing:
        raise ValueError(f"curves has no evaluation curve for {missing[:3]} (method, budget, seed); give one per run")
    runs = add_training_status(runs.drop(columns=["status", "cause", "floor_val_acc"], errors="ignore"), data)
    fb = runs["method"] == "full batch"
    fb_ok = runs.loc[fb & (runs["status"] == "ok"), "val_acc"]
    target = target_fraction * (fb_ok.mean() if len(fb_ok) else runs.loc[fb, "val_acc"].mean())
    runs["time_to_target_s"] = [time_to_target(curves[(r.method, r.budget, r.seed)], target) for r in runs.itertuples()]
    runs["total_to_target_s"] = runs["time_to_target_s"] + runs["preprocess_s"]
    runs.attrs["target_val_acc"] = target
    return runs


def budget_rows(runs: pd.DataFrame, batches: str) -> pd.DataFrame:
    """The rows of one budget's table: the shared methods plus the mini-batch methods under
    ``batches`` (``"common"`` or ``"recipe"``)."""
    if batches not in BUDGETS:
        raise ValueError(f"batches must be one of {BUDGETS}, got {batches!r}")
    out = runs[runs["budget"].isin(["shared", batches])].reset_index(drop=True)
    out.attrs.update(runs.attrs)
    return out


def flag_counts(runs: pd.DataFrame) -> pd.Series:
    """Per method, the flagged runs as text (``"1 did not train, 1 unfinished"``; ``""`` if none)."""
    if "status" not in runs:
        return pd.Series("", index=pd.unique(runs["method"]))
    out = {}
    for m, g in runs.groupby("method", sort=False):
        counts = g.loc[g["status"] != "ok", "status"].value_counts()
        out[m] = ", ".join(f"{n} {st}" for st, n in counts.items())
    return pd.Series(out)


def trained_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that trained (``status == "ok"``, see :func:`add_training_status`); all of them
    for runs stored before the check existed (no ``status`` column)."""
    return runs[runs["status"] == "ok"] if "status" in runs else runs


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per method: mean test accuracy with its standard deviation over the seeds that
    trained, and the median of every cost (a method that missed the target in any seed gets NaN).
    Flagged runs (did not train, unfinished) are never averaged in: ``seeds`` counts the runs
    used, ``flagged`` says which were left out and why (a method with none left keeps its row,
    with NaN accuracy). ``runs`` must hold one budget per method: pass :func:`budget_rows` of a
    two-budget run."""
    if "budget" in runs and (runs.groupby("method")["budget"].nunique() > 1).any():
        raise ValueError("runs holds several budgets for one method; summarize budget_rows(runs, 'common') "
                         "or budget_rows(runs, 'recipe')")
    everyone = pd.unique(runs["method"])
    flags = flag_counts(runs)
    first = runs.groupby("method", sort=False)[["family"] + (["lr"] if "lr" in runs else [])].first()
    runs = trained_rows(runs)
    g = runs.groupby("method", sort=False)
    out = pd.DataFrame({"test_acc": g["test_acc"].mean(), "test_acc_std": g["test_acc"].std(ddof=1),
                        "test_acc_min": g["test_acc"].min(), "test_acc_max": g["test_acc"].max(),
                        "val_acc": g["val_acc"].mean()})
    for col in ("epoch_time_s", "preprocess_s", "inference_s", "peak_memory_mb"):
        out[col] = g[col].median()
    for col in ("time_to_target_s", "total_to_target_s"):
        out[col] = g[col].apply(lambda s: s.median() if s.notna().all() else float("nan"))
    out = out.reindex(everyone)
    out.insert(0, "family", first["family"].reindex(everyone))
    out.insert(1, "lr", first["lr"].reindex(everyone) if "lr" in first else float("nan"))
    out["seeds"] = g.size().reindex(everyone).fillna(0).astype(int)
    out["flagged"] = flags.reindex(everyone).fillna("")
    out.index.name = "method"
    out.attrs.update(runs.attrs)
    return out


def gap_to_full_batch(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method (of one budget's rows): test accuracy minus full batch's **on the same seed**,
    as a list of per-seed differences, their mean and 95% interval (points). Seeds a method
    or full batch lacks, or where either run was flagged (did not train, unfinished), are left out."""
    from .results import interval95

    if "budget" in runs and (runs.groupby("method")["budget"].nunique() > 1).any():
        raise ValueError("runs holds several budgets for one method; pass budget_rows(runs, ...)")
    runs = trained_rows(runs)
    fb = runs[runs["method"] == "full batch"].set_index("seed")["test_acc"]
    if fb.empty:
        raise ValueError("runs has no full batch rows: the gap needs full batch on the same seeds")
    rows = []
    for m, g in runs[runs["method"] != "full batch"].groupby("method", sort=False):
        g = g[g["seed"].isin(fb.index)]
        diffs = [float(r.test_acc - fb[r.seed]) for r in g.itertuples()]
        if not diffs:
            continue
        mean, lo, hi = interval95(diffs)
        rows.append({"method": m, "family": g["family"].iloc[0], "gap": mean, "ci_low": lo, "ci_high": hi,
                     "seeds": len(diffs), "diffs": diffs})
    return pd.DataFrame(rows).set_index("method")


def gap_claims(runs: pd.DataFrame, dataset: str, budget: str, *, tolerance: float = 2.0, source: str = "this run",
               margin: float = 2.0, command: str = "", skip=("MLP",)) -> list:
    """The papers' shared claim, "accuracy comparable to full-batch training", as one
    :class:`~msgnn_lite.results.Claim` per method of one budget's rows: the per-seed
    differences to full batch must lie no more than ``tolerance`` points below zero (the 95%
    interval decides; see :mod:`msgnn_lite.results`). No verdict is given when full batch
    did not beat the graph-free MLP (if it ran) and chance by ``margin`` points. Flagged runs
    (:func:`add_training_status`) are left out and named in the claim's note; a method with no
    seed where both it and full batch trained gets "not measured", never a verdict."""
    from .results import Claim, sanity_floor

    fb_runs = runs.loc[runs["method"] == "full batch"]
    if "status" in fb_runs and (fb_runs["status"] == "ok").any():
        fb_runs = fb_runs[fb_runs["status"] == "ok"]  # the floor judges the full-batch runs that trained
    fb = fb_runs.set_index("seed")["test_acc"].sort_index()
    mlp = runs.loc[runs["method"] == "MLP"].set_index("seed")["test_acc"].reindex(fb.index)
    classes = runs.attrs.get("num_classes")
    failed = sanity_floor(float(fb.mean()), float(mlp.mean()) if mlp.notna().any() else None, classes, margin,
                          name=f"full batch on {dataset}", values=fb.tolist(),
                          mlp_values=mlp.tolist() if mlp.notna().all() else None)
    batches = "each paper's batch construction" if budget == "recipe" else "equal steps per epoch"
    flags = flag_counts(runs)
    gaps = gap_to_full_batch(runs)
    claims = []
    for m in pd.unique(runs["method"]):
        if m in skip or m == "full batch":
            continue
        left_out = f"; left out (did it train?): {flags[m]}" if flags.get(m) else ""
        differs = (f"{dataset}, {budget} budget ({batches}), one learning-rate grid for all; "
                   "the paper tunes its own setting on its own datasets")
        quantity = f"{m} minus full batch, test acc, {dataset} ({budget} budget)"
        if m not in gaps.index:  # no seed where both the method and full batch trained
            claims.append(Claim(quantity, 0.0, None, "points", tolerance, differs=differs, source=source,
                                note=f"no seed where both trained{left_out}", command=command))
            continue
        claims.append(Claim(quantity, 0.0, None, "points", tolerance, values=gaps.loc[m, "diffs"], differs=differs,
                            note=f"full batch {fb.mean():.1f}%{left_out}", source=source, baseline_failed=failed,
                            command=command))
    return claims


def pareto_front(table: pd.DataFrame, cost: str, score: str = "test_acc") -> list[str]:
    """The methods not dominated in (lower ``cost``, higher ``score``); NaN costs are skipped."""
    t = table[[cost, score]].dropna().sort_values([cost, score], ascending=[True, False])
    front, best = [], -math.inf
    for name, r in t.iterrows():
        if r[score] > best:
            front.append(name)
            best = r[score]
    return front
