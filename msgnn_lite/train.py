"""One training loop for every notebook: progress bar, early stopping on validation
accuracy, validation-selected test accuracy, and a per-epoch history table.

Model selection is honest: the reported ``test_acc`` is the test accuracy at the
epoch with the best validation accuracy (ties broken by lower validation loss),
never the maximum over test accuracies. ``max_test_acc`` is kept only so notebooks
can show the optimistic metric some papers report, labelled as such.

Full-batch training is the default; mini-batch techniques pass their own
``train_step`` (and, if needed, ``evaluate``) and reuse everything else.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from tqdm.auto import tqdm

from .checks import check_finite_loss, check_graph, check_mask, check_positive_int
from .memory import MB, measure_step
from .sparse import cached_adjacency
from .utils import resolve_device, seed_everything, sync, to_device

__all__ = ["TrainResult", "GradNormMonitor", "fit", "accuracy", "full_batch_step", "full_batch_evaluate", "graph_input", "minibatch_step",
           "time_to_target"]


@dataclass
class TrainResult:
    """What :func:`fit` returns. ``history`` has one row per epoch."""

    history: pd.DataFrame
    best_epoch: int
    best_val_acc: float
    test_acc: float
    max_test_acc: float
    train_time_s: float
    eval_time_s: float
    peak_memory_mb: float
    memory_kind: str
    best_state: dict = field(repr=False, default_factory=dict)

    @property
    def total_time_s(self) -> float:
        return self.train_time_s + self.eval_time_s

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def summary(self) -> dict:
        """The headline numbers as a flat dict (handy for building tables)."""
        return {"best_epoch": self.best_epoch, "epochs": self.epochs_run, "val_acc": self.best_val_acc,
                "test_acc": self.test_acc, "max_test_acc": self.max_test_acc,
                "train_time_s": self.train_time_s, "eval_time_s": self.eval_time_s,
                "epoch_time_s": self.train_time_s / max(self.epochs_run, 1), "peak_memory_mb": self.peak_memory_mb}


def time_to_target(curve, target: float, x: str = "train_time_s", y: str = "val_acc") -> float:
    """The project's one target rule: the cost (column ``x``, e.g. cumulative training time or
    work) at which the curve's ``y`` (validation accuracy) first reaches ``target``,
    interpolated linearly between the last evaluation below the target and the first at or
    above it (the first evaluation itself when it already meets the target, counted from 0).
    NaN if the target is never reached. Evaluations are the rows of ``curve`` (a DataFrame),
    in order; rows with a missing ``y`` are skipped.

    Interpolation keeps the figure from depending on the evaluation interval: with
    evaluations every 5 epochs, "first evaluation at or above" would round every run up to
    the next multiple of 5."""
    c = curve[[x, y]].dropna(subset=[y])
    xs, ys = c[x].to_numpy(dtype=float), c[y].to_numpy(dtype=float)
    hit = (ys >= target - 1e-12).nonzero()[0]
    if len(hit) == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(xs[0])
    x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
    return float(x0 + (x1 - x0) * (target - y0) / (y1 - y0)) if y1 > y0 else float(x1)


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    if logits.numel() == 0:
        return float("nan")
    return float((logits.argmax(dim=-1) == y).float().mean())


def graph_input(model: nn.Module, data: Data):
    """What the model's ``forward`` takes as its second argument for ``data``: the cached
    CSR operator for our fast models, the ``edge_index`` for any other model."""
    norm = getattr(model, "normalization", "edge_index")
    if norm is None:
        return None
    if norm == "edge_index":
        return data.edge_index
    return cached_adjacency(data.edge_index, data.num_nodes, norm)


def full_batch_step(model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
    """One full-graph gradient step on the training nodes; returns the loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    out = model(data.x, graph_input(model, data))
    loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def minibatch_step(loader, adjacency: Callable[[Data], object] | None = None):
    """A ``train_step`` for :func:`fit` that makes one optimizer step per mini-batch of ``loader``.

    The loss is taken where the batch says it belongs, following PyG's conventions:
    batches with a ``batch_size`` (NeighborLoader, the IBMB loaders: seed/output nodes
    first) use their first ``batch_size`` rows; other batches (Cluster-GCN, GraphSAINT)
    use their ``train_mask`` rows. Either way only nodes in ``train_mask`` count when the
    batch carries one. ``adjacency(batch)`` may supply the graph operator (e.g. a
    GraphSAINT sampler's normalized one); the default is the batch's ``edge_index``.
    Batches are moved to the model's device when they are elsewhere (build the loader on the
    device's data to avoid the copies). Returns an epoch function ``step(model, data, optimizer) -> mean loss``.
    """
    def step(model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        dev = next(model.parameters()).device
        total = torch.zeros((), dtype=torch.float64, device=dev)  # on the device: one host sync per epoch
        count = 0
        for b in loader:
            # the operator is built where the loader's graph lives, before the batch moves
            adj = adjacency(b) if adjacency is not None else None
            if b.edge_index.device != dev:  # a loader on CPU data, the model on a GPU: copy the batch
                b = to_device(b, dev)  # a copy: batches a loader keeps (IBMB) stay where they are
                adj = adj.to(dev) if adj is not None else None
            if "batch_size" in b:
                rows = torch.zeros(b.num_nodes, dtype=torch.bool, device=b.edge_index.device)
                rows[:b.batch_size] = True
                if "train_mask" in b:
                    rows &= b.train_mask
            else:
                rows = b.train_mask
            m = int(rows.sum())  # the batch's size decides whether it steps: a shape, so a sync is needed
            if m == 0:
                continue
            optimizer.zero_grad(set_to_none=True)
            out = model(b.x, adj if adj is not None else graph_input(model, b))
            loss = F.cross_entropy(out[rows], b.y[rows])
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * m
            count += m
        return float(total) / max(count, 1)
    return step


@torch.no_grad()
def full_batch_evaluate(model: nn.Module, data: Data) -> dict:
    """Accuracies on the three splits and the validation loss, from one full forward pass."""
    model.eval()
    out = model(data.x, graph_input(model, data))
    res = {f"{s}_acc": accuracy(out[data[f"{s}_mask"]], data.y[data[f"{s}_mask"]]) for s in ("train", "val", "test")}
    res["val_loss"] = float(F.cross_entropy(out[data.val_mask], data.y[data.val_mask]))
    return res


class GradNormMonitor:
    """Clips (``max_norm``) and records the total gradient norm at every step of ``optimizer``,
    whoever calls ``step()``: a step pre-hook, so every ``train_step`` is covered without a
    change. The largest norm since the last :meth:`read_and_reset` stays on the device (no
    host sync per step); reading it syncs once."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, max_norm: float | None = None):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.max_norm = max_norm
        self.largest: Tensor | None = None
        self._handle = optimizer.register_step_pre_hook(self._hook)

    def _hook(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return
        if self.max_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_norm)  # the norm before clipping
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads]))
        norm = norm.detach()
        self.largest = norm if self.largest is None else torch.maximum(self.largest, norm)

    def read_and_reset(self) -> float:
        out = float(self.largest) if self.largest is not None else float("nan")
        self.largest = None
        return out

    def remove(self) -> None:
        self._handle.remove()


def _check_label_range(y: Tensor, widths: list[int]) -> None:
    """Labels beyond the model's output width would only ever be counted as wrong (and crash the
    loss if a training node had one): refuse them after the first epoch, naming data.y."""
    if not widths or y.dim() != 1 or y.is_floating_point() or y.numel() == 0:
        return
    top = int(y.max())
    if top >= widths[0]:
        raise ValueError(f"data.y holds label {top}, out of range for the model's output ({widths[0]} classes); the "
                         f"model must have at least max(data.y) + 1 = {top + 1} outputs")


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get("MSGNN_PROGRESS", "1") not in ("0", "false", "False")


def fit(model: nn.Module, data: Data, *, epochs: int = 200, lr: float = 0.01, weight_decay: float = 5e-4,
        patience: int | None = None, device: str | torch.device = "auto", seed: int | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        train_step: Callable[[nn.Module, Data, torch.optim.Optimizer], float] | None = None,
        evaluate: Callable[[nn.Module, Data], dict] | None = None, eval_every: int = 1,
        measure_memory: bool = True, progress: bool | None = None, desc: str | None = None,
        reorder: str | None = None, grad_norm: float | None = None) -> TrainResult:
    """Train ``model`` on ``data`` and select the epoch by validation accuracy.

    Parameters
    ----------
    epochs, patience:
        At most ``epochs`` epochs; stop early after ``patience`` evaluations without a
        better validation accuracy (``None``: never stop early).
    device:
        ``"auto"`` picks a GPU when there is one. The model is moved there, and so is a shallow
        copy of ``data`` (the caller's graph is not moved). Loaders used by ``train_step`` keep
        the device of the data they were built on; their batches are moved to the model's.
    seed:
        Seeds dropout and any sampling done inside ``train_step``. Seed before building
        the model too (``seed_everything``) for identical initial weights.
    train_step, evaluate:
        Hooks for mini-batch methods; default to full-batch training and evaluation.
        ``evaluate`` must return ``train_acc``, ``val_acc``, ``test_acc`` (``val_loss`` optional).
    reorder:
        ``None`` (default) or a node order of :func:`msgnn_lite.reorder.reorder` (``"rcm"``,
        ``"partition"``, ...): the graph is renumbered once for locality before training, and
        ``train_step`` / ``evaluate`` receive the renumbered graph. Without dropout the run is the
        same as without reordering (up to float rounding); with dropout the seeded masks fall on
        other nodes, so it is an equally good but different run. A loader built beforehand on the
        original graph is not renumbered (build it on ``reorder(data, ...)[0]`` instead).
    grad_norm:
        ``None`` (default) or a positive number: before every optimizer step, whatever the
        ``train_step``, the gradients are scaled down to this total L2 norm if they are larger
        (``torch.nn.utils.clip_grad_norm_``; GAS's reference sets 1.0). Either way the history's
        ``grad_norm`` column holds each epoch's largest total gradient norm *before* clipping, and
        ``loss`` its mean training loss: the two signals of an overshooting first step.

    Integer features (``data.x`` of dtype int64, e.g. counts) are cast to float32 once, on a copy
    (the models themselves refuse integer input with a message saying to pass floats; a loader a
    ``train_step`` uses yields the dtype of the graph it was built on, so cast before building one).

    Returns a :class:`TrainResult`; the model is left with the best epoch's weights. The graph is
    checked first (:func:`msgnn_lite.checks.check_graph`), and a non-finite loss stops the run with
    :class:`msgnn_lite.checks.TrainingDivergedError` naming the epoch: a diverged run has no result.
    """
    epochs = check_positive_int(epochs, "epochs")
    eval_every = check_positive_int(eval_every, "eval_every")
    if patience is not None:
        patience = check_positive_int(patience, "patience")
    if grad_norm is not None and not (isinstance(grad_norm, (int, float)) and not isinstance(grad_norm, bool)
                                      and math.isfinite(grad_norm) and grad_norm > 0):
        raise ValueError(f"grad_norm must be None or a positive finite number (the largest total gradient norm), "
                         f"got {grad_norm!r}")
    for key in ("train_mask", "val_mask", "test_mask"):
        if key not in data:
            raise ValueError(f"data has no {key}; fit needs train_mask, val_mask and test_mask")
        check_mask(data[key], data.num_nodes, f"data.{key}")
    if "y" not in data or data.y is None:
        raise ValueError("data has no y; fit needs class labels data.y of shape [num_nodes]")
    check_graph(data)  # ids, lengths, finite features, labels (-1 = unlabelled, never in a split mask)
    dev = resolve_device(device)
    if reorder is not None:
        from .reorder import reorder as _reorder

        data = _reorder(data, reorder)[0]
    if seed is not None:
        seed_everything(seed)
    model = model.to(dev)
    data = to_device(data, dev)  # a copy: the caller's graph (and loaders built on it) stay where they are
    if isinstance(data.x, torch.Tensor) and not data.x.is_floating_point():
        data = copy.copy(data)  # integer (e.g. count) features: cast once; the caller's graph is untouched
        data.x = data.x.float()
    optimizer_given = optimizer
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_step = train_step or full_batch_step
    evaluate = evaluate or full_batch_evaluate
    norms = GradNormMonitor(model, optimizer, grad_norm)

    rows = []
    best = {"val_acc": -math.inf, "val_loss": math.inf, "epoch": 0, "test_acc": float("nan")}
    best_state = copy.deepcopy(model.state_dict())
    train_time = eval_time = 0.0
    peak = 0.0
    since_best = 0
    bar = tqdm(range(1, epochs + 1), desc=desc or type(model).__name__, disable=not _progress_enabled(progress),
               leave=False)
    widths: list[int] = []  # the model's output width, seen on the first forward pass
    hook = model.register_forward_hook(
        lambda m, i, o: widths.append(o.size(-1)) if not widths and isinstance(o, Tensor) and o.dim() == 2 else None)
    try:
        for epoch in bar:
            sync(dev)
            t0 = time.perf_counter()
            try:
                if measure_memory:
                    loss, report = measure_step(model, lambda: train_step(model, data, optimizer), optimizer, dev)
                    mem = report.peak / MB
                else:
                    loss, mem = train_step(model, data, optimizer), float("nan")
            except (IndexError, RuntimeError) as err:
                if "out of bounds" not in str(err) or "arget" not in str(err):
                    raise
                top = int(data.y.max())
                raise ValueError(f"data.y holds label {top}, out of range for the model's output ({err}); the model "
                                 f"must have at least max(data.y) + 1 = {top + 1} outputs") from err
            check_finite_loss(float(loss), epoch, desc or type(model).__name__, f"lr={lr}" if optimizer_given is None else "")
            gnorm = norms.read_and_reset()
            if epoch == 1:
                hook.remove()
                _check_label_range(data.y, widths)
            sync(dev)
            t1 = time.perf_counter()
            train_time += t1 - t0
            peak = max(peak, mem) if not math.isnan(mem) else peak
            row = {"epoch": epoch, "loss": loss, "grad_norm": gnorm, "epoch_time_s": t1 - t0, "peak_mem_mb": mem}
            if epoch % eval_every == 0 or epoch == epochs:
                metrics = evaluate(model, data)
                sync(dev)
                eval_time += time.perf_counter() - t1
                row.update(metrics)
                val, vloss = metrics["val_acc"], metrics.get("val_loss", math.inf)
                if val > best["val_acc"] or (val == best["val_acc"] and vloss < best["val_loss"]):
                    best = {"val_acc": val, "val_loss": vloss, "epoch": epoch, "test_acc": metrics["test_acc"]}
                    best_state = copy.deepcopy(model.state_dict())
                    since_best = 0
                else:
                    since_best += 1
                bar.set_postfix(loss=f"{loss:.3f}", val=f"{val:.3f}", best_test=f"{best['test_acc']:.3f}")
                if patience is not None and since_best >= patience:
                    rows.append(row)
                    break
            rows.append(row)
    finally:
        bar.close()
        norms.remove()
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    max_test = float(history["test_acc"].max()) if "test_acc" in history else float("nan")
    kind = "cuda_max_allocated" if dev.type == "cuda" else "saved_tensors+params+grads+optimizer"
    return TrainResult(history, int(best["epoch"]), float(best["val_acc"]), float(best["test_acc"]), max_test,
                       train_time, eval_time, peak, kind, best_state)
