"""Every training method of the package on one graph, under one budget and one rule.

This is the "which method should I use on my graph?" table of notebook 12 and
``python -m msgnn_lite.bench compare``. The rule extends :mod:`msgnn_lite.compare`'s:

* **Same model family and width.** A GCN (or, with ``Budget(model="sage")``, a
  GraphSAGE-mean model) of ``num_layers`` layers and ``hidden`` units wherever the method
  allows it. The exceptions are part of the method: VR-GCN's estimator
  assumes no dropout and GCN layers; RevGNN is the deep model (``deep_layers`` reversible GCN blocks);
  SGC is linear; SIGN, C&S's base and GLNN's student are MLPs on (propagated) features.
* **Same budget.** ``epochs`` passes over the training nodes; every mini-batch method makes
  about ``num_batches`` optimizer steps per epoch. Multiscale recipes get the same training
  *work*: ``epochs / (levels + 1)`` fine-graph epochs per level (each coarser level halves the
  nodes and doubles its epochs, :func:`~msgnn_lite.multiscale.paper_schedule`).
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
from .compare import make_train_step, time_to_target
from .memory import MB, SavedTensorMeter, optimizer_state_bytes, parameter_bytes
from .models import GCN, MLP, SAGE
from .train import TrainResult, accuracy, fit, full_batch_step
from .utils import resolve_device, seed_everything, sync, to_device

__all__ = ["Budget", "MethodRun", "METHODS", "run_method", "compare_all", "summarize", "pareto_front"]


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

    def __post_init__(self):
        for name in ("epochs", "hidden", "num_layers", "num_batches", "eval_every", "levels", "deep_layers", "hops"):
            check_positive_int(getattr(self, name), name)
        check_fraction(self.dropout, "dropout", low_open=False, high_closed=False)
        if self.model not in ("gcn", "sage"):
            raise ValueError(f"model must be 'gcn' or 'sage', got {self.model!r}")


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


def _classes(data: Data) -> int:
    return int(getattr(data, "num_classes", None) or int(data.y.max()) + 1)


def _curve(res: TrainResult, offset: float = 0.0) -> pd.DataFrame:
    h = res.history.copy()
    h["train_time_s"] = offset + h["epoch_time_s"].cumsum()
    return h.dropna(subset=["val_acc"]).reset_index(drop=True)[["epoch", "train_time_s", "val_acc", "test_acc"]]


def _fit(model, data, b: Budget, seed, dev, epochs=None, **kw) -> TrainResult:
    return fit(model, data, epochs=epochs or b.epochs, lr=kw.pop("lr", b.lr), weight_decay=kw.pop("wd", b.weight_decay),
               eval_every=b.eval_every, seed=seed, device=dev, measure_memory=False, progress=False, **kw)


def _run(res: TrainResult, model, data, preprocess_s=0.0, step=None, infer=None, note="", curve_offset=0.0,
         state_bytes: int = 0) -> MethodRun:
    def forward_all():  # a fresh edge list: the operator is rebuilt inside the timed call
        return model(data.x, data.edge_index.clone())
    return MethodRun(res.test_acc, res.best_val_acc, _curve(res, curve_offset), res.train_time_s / res.epochs_run,
                     preprocess_s, model, infer or forward_all, step or full_batch_step, data, state_bytes, note)


def _gcn(data: Data, b: Budget, dropout: float | None = None, model: str | None = None) -> nn.Module:
    cls = GCN if (model or b.model) == "gcn" else SAGE
    return cls(data.num_features, b.hidden, _classes(data), b.num_layers, dropout=b.dropout if dropout is None else dropout)


# ----------------------------------------------------------------------------- the methods


def _full_batch(data, b, seed, dev):
    model = _gcn(data, b)
    return _run(_fit(model, data, b, seed, dev), model, data)


def _minibatch(name: str):
    def run(data, b, seed, dev):
        prep = make_train_step(name, data, b.num_batches, seed=seed)
        seed_everything(seed)
        model = _gcn(data, b)
        res = _fit(model, data, b, seed, dev, train_step=prep.train_step)
        return _run(res, model, data, prep.preprocess_s, prep.train_step, note=f"{prep.batches} batches/epoch")
    return run


def _gas(data, b, seed, dev):
    from .gas import GASGNN, GASLoader, gas_train_step
    from .partition import ClusterData

    t0 = time.perf_counter()
    parts = min(4 * b.num_batches, data.num_nodes)
    gen = torch.Generator(device=data.edge_index.device).manual_seed(seed)
    loader = GASLoader(ClusterData(data, parts, seed=seed), batch_size=max(1, parts // b.num_batches), shuffle=True,
                       normalization="mean" if b.model == "sage" else "gcn", generator=gen)
    pre = time.perf_counter() - t0
    seed_everything(seed)
    model = GASGNN(data.num_nodes, data.num_features, b.hidden, _classes(data), b.num_layers, conv=b.model,
                   dropout=b.dropout, history_device=dev)
    step = gas_train_step(loader)
    res = _fit(model, data, b, seed, dev, train_step=step)
    return _run(res, model, data, pre, step, note=f"METIS {parts} parts, {parts // b.num_batches} per batch",
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
    batch = math.ceil(int(d.train_mask.sum()) / b.num_batches)
    step = vrgcn_train_step(sampler, hist, "cv", batch, gen)
    pre = time.perf_counter() - t0
    res = _fit(model, d, b, seed, dev, train_step=step)
    return _run(res, model, d, pre, step, note="fanout 2 with the control variate; no dropout (VR-GCN's estimator)",
                state_bytes=sum(h.emb.numel() * h.emb.element_size() for h in hist))


def _multiscale(method: str):
    def run(data, b, seed, dev):
        from .multiscale import train_multiscale

        seed_everything(seed)
        model = _gcn(data, b)
        n = max(1, b.epochs // (b.levels + 1))
        ms = train_multiscale(model, data, levels=b.levels, epochs=n, method=method, lr=b.lr,
                              weight_decay=b.weight_decay, seed=seed, device=dev, eval_every=b.eval_every,
                              progress=False)
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
            model, xs, lr = SGC(d.num_features, c), [hops[-1]], 0.05
        else:
            model, xs, lr = SIGN(d.num_features, b.hidden, c, b.hops, dropout=0.2), hops, b.lr
        batch = math.ceil(int(d.train_mask.sum()) / b.num_batches)
        pc = fit_precomputed(model, xs if kind == "SIGN" else xs[0], d, epochs=b.epochs, batch_size=batch, lr=lr,
                             eval_every=b.eval_every, device=dev, seed=seed, progress=False)

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
                        eval_every=b.eval_every, seed=seed, device=dev, progress=False)
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
    seed_everything(seed)
    run = runner(to_device(data, dev), budget, seed, dev)
    run.model.eval()
    with torch.no_grad():
        sync(dev)
        t0 = time.perf_counter()
        run.infer()
        sync(dev)
        inference_s = time.perf_counter() - t0
    row = {"method": name, "family": family, "seed": seed, "test_acc": 100 * run.test_acc,
           "val_acc": 100 * run.val_acc, "epoch_time_s": run.epoch_time_s,
           "train_time_s": float(run.curve["train_time_s"].iloc[-1]) if len(run.curve) else float("nan"),
           "preprocess_s": run.preprocess_s, "inference_s": inference_s,
           "peak_memory_mb": _peak_memory_mb(run, dev),
           "memory_kind": "cuda_max_allocated" if dev.type == "cuda" else "saved_tensors+params+grads+optimizer",
           "note": run.note}
    curve = run.curve.copy()
    curve["val_acc"] *= 100
    curve["test_acc"] *= 100
    return row, curve


def compare_all(data: Data, methods=None, *, budget: Budget | None = None, seeds=(0,), target_fraction: float = 0.97,
                device="auto", progress: bool | None = None, reorder: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Run ``methods`` (default: all of :data:`METHODS`) for every seed; return ``(runs, curves)``.

    ``runs`` has one row per (method, seed) with the columns of :func:`run_method` plus
    ``time_to_target_s`` (training time until validation accuracy first reaches
    ``target_fraction`` of full batch's mean best validation accuracy; NaN if never) and
    ``total_to_target_s`` (the same plus preprocessing). Full batch is always run first,
    since it defines the target. ``curves[(method, seed)]`` are the evaluation curves.
    ``reorder`` (e.g. ``"rcm"``, ``"partition"``; see :mod:`msgnn_lite.reorder`) renumbers the
    graph once, before every method, so the full-batch path and every loader see the same
    local order; the seconds it took are in ``runs.attrs["reorder_s"]`` (not charged to any method).
    """
    from tqdm.auto import tqdm

    from .train import _progress_enabled

    check_fraction(target_fraction, "target_fraction")
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be drawn from {list(METHODS)}, got {unknown}")
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    order = ["full batch"] + [m for m in methods if m != "full batch"]
    reorder_s = 0.0
    if reorder is not None:
        from .reorder import reorder as _reorder

        t0 = time.perf_counter()
        data = _reorder(data, reorder)[0]
        reorder_s = time.perf_counter() - t0
    rows, curves = [], {}
    jobs = [(m, s) for m in order for s in seeds]
    for m, s in tqdm(jobs, desc=f"compare on {getattr(data, 'name', 'graph')}", disable=not _progress_enabled(progress)):
        row, curve = run_method(m, data, budget, s, device)
        rows.append(row)
        curves[(m, s)] = curve
    runs = pd.DataFrame(rows)
    target = target_fraction * runs.loc[runs["method"] == "full batch", "val_acc"].mean()
    runs["time_to_target_s"] = [time_to_target(curves[(r.method, r.seed)], target) for r in runs.itertuples()]
    runs["total_to_target_s"] = runs["time_to_target_s"] + runs["preprocess_s"]
    if "full batch" not in methods:
        runs = runs[runs["method"] != "full batch"].reset_index(drop=True)
    runs.attrs["target_val_acc"] = target
    runs.attrs["reorder_s"] = reorder_s
    return runs, curves


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per method: mean test accuracy with its standard deviation over seeds, and
    the median of every cost (a method that missed the target in any seed gets NaN)."""
    g = runs.groupby("method", sort=False)
    out = pd.DataFrame({"family": g["family"].first(), "test_acc": g["test_acc"].mean(),
                        "test_acc_std": g["test_acc"].std(ddof=0), "val_acc": g["val_acc"].mean()})
    for col in ("epoch_time_s", "preprocess_s", "inference_s", "peak_memory_mb"):
        out[col] = g[col].median()
    for col in ("time_to_target_s", "total_to_target_s"):
        out[col] = g[col].apply(lambda s: s.median() if s.notna().all() else float("nan"))
    out["seeds"] = g.size()
    out.attrs.update(runs.attrs)
    return out


def pareto_front(table: pd.DataFrame, cost: str, score: str = "test_acc") -> list[str]:
    """The methods not dominated in (lower ``cost``, higher ``score``); NaN costs are skipped."""
    t = table[[cost, score]].dropna().sort_values([cost, score], ascending=[True, False])
    front, best = [], -math.inf
    for name, r in t.iterrows():
        if r[score] > best:
            front.append(name)
            best = r[score]
    return front
