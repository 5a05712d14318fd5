"""Training and inference comparisons of the mini-batch methods under one rule.

Every method trains the same model family from the same initial weights with the same
optimizer, and is evaluated on the **same schedule** (full-graph evaluation every
``eval_every`` epochs, never counted as training time), so evaluation cannot decide who
wins. Preprocessing (partitioning, PPR, pre-sampling) is timed separately, as the
papers report it. Batch budgets are matched: every mini-batch method makes about
``num_batches`` optimizer steps per epoch.

Used by notebook 06 and ``python -m msgnn_lite.bench ibmb``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_positive_int
from .ibmb import IBMBBatchLoader, IBMBNodeLoader, ibmb_inference
from .loader import NeighborLoader, layerwise_inference
from .partition import ClusterData, ClusterLoader
from .saint import GraphSAINTRandomWalkSampler
from .train import accuracy, fit, minibatch_step
from .utils import seed_everything, sync, to_device

__all__ = ["TRAINING_METHODS", "make_train_step", "compare_training", "time_to_target", "compare_inference"]

TRAINING_METHODS = ("full batch", "NeighborLoader", "Cluster-GCN", "GraphSAINT-RW", "IBMB node-wise",
                    "IBMB batch-wise")


@dataclass
class _Prepared:
    train_step: Callable | None
    preprocess_s: float
    batches: int


def make_train_step(method: str, data: Data, num_batches: int, *, fanouts=(10, 5), num_auxiliary_nodes: int = 16,
                    batch_order: str = "order", seed: int = 0, cache: bool = True) -> _Prepared:
    """A ``train_step`` for :func:`~msgnn_lite.train.fit` with about ``num_batches`` steps per epoch.

    ``fanouts`` is NeighborLoader's; ``num_auxiliary_nodes`` and ``batch_order`` IBMB's.
    Cluster-GCN uses ``4 * num_batches`` METIS parts, 4 per batch; GraphSAINT-RW draws
    random walks of length 2 whose roots cover about ``num_nodes / num_batches`` nodes per step.
    """
    if method not in TRAINING_METHODS:
        raise ValueError(f"method must be one of {TRAINING_METHODS}, got {method!r}")
    num_batches = check_positive_int(num_batches, "num_batches")
    train_nodes = data.train_mask.nonzero().view(-1)
    gen = torch.Generator(device=data.edge_index.device).manual_seed(seed)
    t0 = time.perf_counter()
    if method == "full batch":
        return _Prepared(None, 0.0, 1)
    if method == "NeighborLoader":
        loader = NeighborLoader(data, list(fanouts), batch_size=math.ceil(train_nodes.numel() / num_batches),
                                input_nodes=train_nodes, shuffle=True, generator=gen)
        step = minibatch_step(loader)
    elif method == "Cluster-GCN":
        parts = min(4 * num_batches, data.num_nodes)
        loader = ClusterLoader(ClusterData(data, parts, seed=seed, cache=cache), batch_size=max(1, parts // num_batches),
                               shuffle=True, generator=gen)
        step = minibatch_step(loader)
    elif method == "GraphSAINT-RW":
        roots = max(1, math.ceil(data.num_nodes / num_batches / 3))
        loader = GraphSAINTRandomWalkSampler(data, roots, walk_length=2, num_steps=num_batches, sample_coverage=20,
                                             generator=gen)
        step = minibatch_step(loader, adjacency=loader.adjacency)
    elif method == "IBMB node-wise":
        loader = IBMBNodeLoader(data, batch_order, train_nodes, num_auxiliary_nodes=num_auxiliary_nodes,
                                num_nodes_per_batch=math.ceil(train_nodes.numel() / num_batches), cache=cache,
                                generator=gen)
        step = minibatch_step(loader)
    else:
        loader = IBMBBatchLoader(data, batch_order, num_partitions=num_batches, input_nodes=train_nodes, seed=seed,
                                 cache=cache, generator=gen)
        step = minibatch_step(loader)
    pre = time.perf_counter() - t0
    if hasattr(loader, "preprocess_time_s"):  # a cached IBMB run still reports what computing took
        pre = max(pre, loader.preprocess_time_s)
    return _Prepared(step, pre, len(loader))


def compare_training(data: Data, make_model: Callable[[], nn.Module], methods=TRAINING_METHODS, *, epochs: int,
                     num_batches: int, eval_every: int = 2, seeds=(0,), lr: float = 0.01, weight_decay: float = 0.0,
                     device="cpu", progress: bool | None = None, **method_kwargs) -> tuple[pd.DataFrame, dict, dict]:
    """Train every method for ``epochs`` epochs per seed; return ``(runs, curves, models)``.

    ``runs`` has a row per (method, seed): validation-selected test accuracy, best
    validation accuracy, training time per epoch, preprocessing time, batches per epoch.
    ``curves[(method, seed)]`` is the history with a ``train_time_s`` column (cumulative
    training time at each evaluation) for accuracy-vs-time plots; ``models[(method, seed)]``
    the trained model (best validation epoch's weights).
    """
    rows, curves, models = [], {}, {}
    for method in methods:
        for seed in seeds:
            prep = make_train_step(method, data, num_batches, seed=seed, **method_kwargs)
            seed_everything(seed)
            model = make_model()
            kw = {} if prep.train_step is None else {"train_step": prep.train_step}
            res = fit(model, data, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
                      eval_every=eval_every, measure_memory=False, progress=progress, desc=method, **kw)
            h = res.history.copy()
            h["train_time_s"] = h["epoch_time_s"].cumsum()
            curves[(method, seed)] = h.dropna(subset=["val_acc"]).reset_index(drop=True)
            models[(method, seed)] = model
            rows.append({"method": method, "seed": seed, "test_acc": 100 * res.test_acc,
                         "val_acc": 100 * res.best_val_acc, "epoch_time_s": res.train_time_s / res.epochs_run,
                         "train_time_s": res.train_time_s, "preprocess_s": prep.preprocess_s,
                         "batches_per_epoch": prep.batches})
    return pd.DataFrame(rows), curves, models


def time_to_target(curve: pd.DataFrame, target: float) -> float:
    """Cumulative training time at the first evaluation with ``val_acc >= target`` (NaN if never)."""
    hit = curve[curve["val_acc"] >= target]
    return float(hit["train_time_s"].iloc[0]) if len(hit) else float("nan")


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

    Every method is timed cold: its graph operators are built inside the timed call.
    * neighbour-sampled (``fanouts``, the query nodes as seeds);
    * IBMB node-wise batches over the query nodes, one row per ``num_auxiliary_nodes`` (an
      int or a list) (precomputed: their preprocessing is a
      separate column, as in the paper; the inference time includes building each batch's
      operator).
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
