"""Multiscale GNN training (Gal et al., TMLR 2025): coarse-to-fine, sub-to-full and
multiscale gradients, with honest cost accounting.

* :func:`train_multiscale` (Algorithm 1): train on the coarsest graph of a hierarchy
  first, then on each finer level, then on the full graph, with the paper's schedule
  of ``n * 2**l`` epochs at level ``l`` (its code) and **one** optimizer carried across
  levels. ``method="subgraph"`` gives *sub-to-full* (:func:`sub_to_full`); random,
  top-k and alternating selections give *coarse-to-fine* (:func:`coarse_to_fine`).
  Coarse graphs come from :mod:`msgnn_lite.coarsening`; random ones are resampled
  every epoch. Every evaluation runs on the **full** graph, and the test accuracy
  is selected by validation accuracy (:func:`msgnn_lite.train.fit`).
* :func:`multiscale_loss` (Algorithm 2): the telescoping (multilevel Monte Carlo)
  estimator ``grad L_0 ~ grad L_L + sum_l [grad L_l - grad L_{l+1}]``, each
  difference on a small coupled batch, and -- for comparison -- the official code's
  ``|L_fine - L_coarse|`` form, whose gradient is ``sign(L_f - L_c) (grad L_f - grad L_c)``:
  it flips the correction's sign whenever the fine loss is the smaller one, so it
  is biased. :func:`multiscale_gradient_step` trains with either, and
  :func:`train_multiscale_gradient` uses it as a training method (same evaluation and
  accounting as coarse-to-fine; ``{"method": "gradient"}`` in :func:`compare_methods`).
* :class:`Work`: the work of a step counted from the graph sizes and layer widths
  (sparse edge multiply-adds and dense multiply-adds), so a run reports
  *fine-graph-epoch equivalents* as well as seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_fraction, check_positive_int, trusted
from .coarsening import METHODS, coarsen, coarsest, level_sizes, method_for_epoch, num_kept, select_nodes
from .sparse import SparseAdjacency, build_adjacency
from .train import TrainResult, fit
from .utils import device_generator, resolve_device, to_device

__all__ = [
    "Work",
    "forward_work",
    "step_work",
    "paper_schedule",
    "MultiscaleTrainer",
    "MultiscaleResult",
    "train_multiscale",
    "coarse_to_fine",
    "sub_to_full",
    "train_full",
    "graph_loss",
    "multiscale_loss",
    "multiscale_gradient_step",
    "train_multiscale_gradient",
    "flat_grad",
    "masked_loss",
    "evaluate_full",
    "gradient_study",
    "compare_methods",
    "summarize_runs",
]

GRADIENT_FORMS = ("telescoping", "abs", "coarse")


# --------------------------------------------------------------------------- work accounting
@dataclass
class Work:
    """Multiply-adds of some computation: ``edge_ops`` (sparse ``A @ X``: one per stored
    edge per feature) and ``dense_macs`` (feature transforms ``X W``)."""

    edge_ops: float = 0.0
    dense_macs: float = 0.0

    @property
    def total(self) -> float:
        return self.edge_ops + self.dense_macs

    def __add__(self, other: "Work") -> "Work":
        return Work(self.edge_ops + other.edge_ops, self.dense_macs + other.dense_macs)

    def __mul__(self, factor: float) -> "Work":
        return Work(self.edge_ops * factor, self.dense_macs * factor)

    __rmul__ = __mul__


def _layer_dims(model: nn.Module) -> list[tuple[int, int, int]]:
    """(in, out, number of weight matrices) per layer; graph layers flagged by conv lists."""
    convs = getattr(model, "convs", None)
    if convs is not None:
        out = []
        for conv in convs:
            mats = 2 if getattr(conv, "lin_r", None) is not None else 1
            out.append((conv.in_channels, conv.out_channels, mats))
        return out
    return [(lin.in_features, lin.out_features, 1) for lin in model.modules() if isinstance(lin, nn.Linear)]


def forward_work(model: nn.Module, num_nodes: int, nnz: int, x_nnz: int | None = None) -> Work:
    """Work of one forward pass of ``model`` on a graph with ``num_nodes`` nodes and an
    operator with ``nnz`` stored entries (self-loops included).

    Follows the layers' own order of operations: a graph layer propagates the narrower
    of its two widths; a sparse input (``x_nnz`` stored features) costs ``x_nnz * out``
    in the first layer instead of ``num_nodes * in * out``.
    """
    work = Work()
    graph = getattr(model, "convs", None) is not None
    for i, (fin, fout, mats) in enumerate(_layer_dims(model)):
        sparse_in = i == 0 and x_nnz is not None
        rows = x_nnz if sparse_in else num_nodes * fin
        work.dense_macs += rows * fout * mats
        if graph:
            width = fout if (fout <= fin or sparse_in) else fin
            work.edge_ops += nnz * width
    return work


def step_work(model: nn.Module, num_nodes: int, nnz: int, x_nnz: int | None = None) -> Work:
    """Work of a training step: forward plus backward, counted as 3x the forward pass
    (the backward computes gradients for the inputs and the weights of every layer)."""
    return forward_work(model, num_nodes, nnz, x_nnz) * 3.0


def _x_nnz(x: Tensor) -> int | None:
    return int(x.values().numel()) if x.layout == torch.sparse_csr else None


_SYMMETRIC_NORMS = ("gcn", "sym", "sum")


def _is_undirected(edge_index: Tensor, num_nodes: int) -> bool:
    key = torch.sort(edge_index[0] * num_nodes + edge_index[1]).values
    rev = torch.sort(edge_index[1] * num_nodes + edge_index[0]).values
    return bool(torch.equal(key, rev))


def _operator(model: nn.Module, g: Data, undirected: bool | None = None):
    """The model's graph operator for ``g``; marked symmetric (no transpose to build
    for backward) when the graph is undirected and the normalization symmetric."""
    norm = getattr(model, "normalization", None)
    if norm is None:
        return None
    adj = build_adjacency(g.edge_index, int(g.num_nodes), norm, device=g.edge_index.device)
    if norm in _SYMMETRIC_NORMS:
        if undirected is None:
            undirected = _is_undirected(g.edge_index, int(g.num_nodes))
        if undirected:
            adj = SparseAdjacency(adj.matrix, adj.normalization, symmetric=True)
    return adj


def _where(mask: Tensor) -> Tensor:
    """The indices of a bool mask's true entries (a host read: their number)."""
    return torch.nonzero(mask).view(-1)


def _select(t: Tensor, mask: Tensor) -> Tensor:
    """``t[mask]`` through ``index_select`` (fast on a busy CPU, see coarsening._take)."""
    return torch.index_select(t, 0, _where(mask))


def masked_loss(out: Tensor, g: Data, mask: Tensor) -> Tensor:
    """Mean cross-entropy of ``out`` on the nodes of ``mask``."""
    return F.cross_entropy(_select(out, mask), _select(g.y, mask))


@torch.no_grad()
def evaluate_full(model: nn.Module, data: Data, adj=None) -> dict:
    """Accuracies on the three splits and the validation loss on the full graph."""
    model.eval()
    out = model(data.x, adj if adj is not None else _operator(model, data))
    values = [(_select(out, data[f"{split}_mask"]).argmax(-1) == _select(data.y, data[f"{split}_mask"])).float().mean()
              for split in ("train", "val", "test")]
    values.append(masked_loss(out, data, data.val_mask).float())
    train, val, test, val_loss = torch.stack(values).tolist()  # one host read
    return {"train_acc": train, "val_acc": val, "test_acc": test, "val_loss": val_loss}


def _nnz(adj, g: Data) -> int:
    return adj.nnz if adj is not None else int(g.edge_index.size(1))


# --------------------------------------------------------------------------- coarse-to-fine
def paper_schedule(levels: int, epochs: int) -> list[tuple[int, int]]:
    """``[(L, n*2^L), ..., (1, 2n), (0, n)]``: coarsest level first, ``n * 2**l`` epochs at
    level ``l`` (the official code's schedule). Each level then costs about ``n``
    fine-graph epochs of work when the ratio is 1/2."""
    levels = check_positive_int(levels, "levels", minimum=0)
    epochs = check_positive_int(epochs, "epochs")
    return [(lvl, epochs * 2**lvl) for lvl in range(levels, -1, -1)]


class MultiscaleTrainer:
    """A ``train_step`` for :func:`msgnn_lite.train.fit` that walks a level schedule.

    Call ``k``-th time -> the epoch ``k``: it builds (or reuses) the graph of that
    epoch's level, takes one full-batch step on it with the shared optimizer, and
    records the level, the graph size and the :class:`Work` done.

    ``resample_every``: a random or subgraph selection is drawn afresh every this many
    epochs (``1``, the paper's setting, draws one per epoch). Building a coarse graph and
    its normalized operator can cost as much as a training step on it (see the cost table of
    ``python -m msgnn_lite.bench multiscale --large``), so drawing less often is what makes
    coarse epochs cheap in wall time; top-k graphs are deterministic and always reused.

    Coarse graphs are drawn on ``data``'s device with a generator of that device (seeded by
    ``seed``; on the CPU the same stream as ``torch.Generator().manual_seed(seed)``). A step reads
    one number back to the host, its loss: a graph's training nodes are listed once per draw.
    A step on a coarse graph without training nodes is skipped (loss 0, no work).
    """

    def __init__(self, data: Data, schedule: list[tuple[int, int]], *, ratio: float = 0.5, method: str = "random",
                 k: int = 1, hops: int = 2, seed: int = 0, resample_every: int = 1):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.ratio = check_fraction(ratio, "ratio")
        self.k = check_positive_int(k, "k")
        self.hops = check_positive_int(hops, "hops", minimum=0)
        self.resample_every = check_positive_int(resample_every, "resample_every")
        self.method = method
        self._drawn: dict = {}
        self.schedule = list(schedule)
        if not self.schedule:
            raise ValueError("schedule is empty; it must list (level, epochs) pairs")
        self.levels = max(lvl for lvl, _ in self.schedule)
        level_sizes(int(data.num_nodes), self.levels, self.ratio)  # clear error if too many levels
        self.generator = device_generator(torch.Generator().manual_seed(seed), data.edge_index.device)
        self.epoch_levels = [lvl for lvl, n in self.schedule for _ in range(check_positive_int(n, "schedule epochs"))]
        self.epoch = 0
        self.records: list[dict] = []
        self._fixed: dict = {}
        self._full_adj = None
        self._full_train: Tensor | None = None
        self.undirected = _is_undirected(data.edge_index, int(data.num_nodes))

    @property
    def total_epochs(self) -> int:
        return len(self.epoch_levels)

    def graph_for(self, data: Data, level: int, epoch: int) -> Data:
        """The level-``level`` graph at ``epoch`` (random selections are resampled)."""
        if level == 0:
            return data
        concrete = method_for_epoch(self.method, epoch)
        if concrete == "topk":  # deterministic: build once
            key = (level, id(data))
            if key not in self._fixed:
                self._fixed[key] = coarsest(data, level, ratio=self.ratio, method="topk", k=self.k)
            return self._fixed[key]
        return coarsest(data, level, ratio=self.ratio, method=concrete, k=self.k, hops=self.hops,
                        generator=self.generator)

    def _coarse(self, model: nn.Module, data: Data, level: int, epoch: int):
        """The coarse graph of this epoch, its operator and its training nodes, drawn again
        only every ``resample_every`` epochs (top-k: built once)."""
        concrete = method_for_epoch(self.method, epoch)
        key = (level, concrete)
        drawn = self._drawn.get(key)
        if drawn is None or (concrete != "topk" and epoch - drawn[0] >= self.resample_every):
            g = self.graph_for(data, level, epoch)
            drawn = (epoch, g, _operator(model, g, self.undirected), _where(g.train_mask))
            # keep only this level's graphs: the schedule never returns to a coarser level
            self._drawn = {kk: v for kk, v in self._drawn.items() if kk[0] == level}
            self._drawn[key] = drawn
        return drawn[1:]

    def __call__(self, model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
        epoch = self.epoch
        level = self.epoch_levels[min(epoch, len(self.epoch_levels) - 1)]
        self.epoch += 1
        model.train()
        if level == 0:  # the full graph's operator is built once
            g = data
            if self._full_adj is None:
                self._full_adj = _operator(model, data, self.undirected)
            if self._full_train is None:
                self._full_train = _where(data.train_mask)
            adj, train = self._full_adj, self._full_train
        else:
            g, adj, train = self._coarse(model, data, level, epoch)
        record = {"level": level, "nodes": int(g.num_nodes), "nnz": _nnz(adj, g)}
        if train.numel() == 0:  # no labelled node survived this coarsening: skip the step (loss 0, no work;
            record["work"] = Work()  # a NaN would read as a diverged run in fit)
            self.records.append(record)
            return 0.0
        optimizer.zero_grad(set_to_none=True)
        out = model(g.x, adj)
        loss = F.cross_entropy(torch.index_select(out, 0, train), torch.index_select(g.y, 0, train))
        loss.backward()
        optimizer.step()
        record["work"] = step_work(model, record["nodes"], record["nnz"], _x_nnz(g.x))
        self.records.append(record)
        return float(loss.detach())


@dataclass
class MultiscaleResult:
    """A multiscale run: the :class:`~msgnn_lite.train.TrainResult` (validation-selected
    test accuracy on the full graph), its history extended with ``level``, ``nodes`` and
    cumulative ``train_work`` / ``fine_epochs`` (fine-graph-epoch equivalents), and the totals."""

    result: TrainResult
    history: pd.DataFrame
    method: str
    levels: int
    schedule: list
    fine_step_work: Work
    train_work: Work
    eval_work: Work
    extra: dict = field(default_factory=dict)

    @property
    def fine_epochs(self) -> float:
        """Training work in fine-graph-epoch equivalents."""
        return self.train_work.total / self.fine_step_work.total

    def to_target(self, val_acc: float) -> dict:
        """Training time and work until the full-graph validation accuracy first reaches
        ``val_acc``, interpolated between evaluations (the project's one target rule,
        :func:`msgnn_lite.train.time_to_target`; ``nan`` if it never does)."""
        from .train import time_to_target

        h = self.history.dropna(subset=["val_acc"])
        t = time_to_target(h, val_acc, x="cum_train_time_s")
        if t != t:
            return {"epoch": float("nan"), "train_time_s": float("nan"), "fine_epochs": float("nan")}
        hit = h.index[h["val_acc"] >= val_acc - 1e-12]
        return {"epoch": int(h.loc[hit[0], "epoch"]), "train_time_s": t,
                "fine_epochs": time_to_target(h, val_acc, x="fine_epochs")}

    def summary(self) -> dict:
        s = self.result.summary()
        s.update({"method": self.method, "levels": self.levels, "fine_epochs": self.fine_epochs,
                  "eval_fine_epochs": self.eval_work.total / self.fine_step_work.total})
        return s


def train_multiscale(model: nn.Module, data: Data, *, levels: int, epochs: int, method: str = "random",
                     ratio: float = 0.5, k: int = 1, hops: int = 2, schedule: list[tuple[int, int]] | None = None,
                     resample_every: int = 1,
                     lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0, device="auto",
                     eval_every: int = 1, patience: int | None = None, progress: bool | None = None,
                     desc: str | None = None, grad_norm: float | None = None) -> MultiscaleResult:
    """Coarse-to-fine / sub-to-full training (Algorithm 1).

    ``levels``: number of coarse levels ``L`` (``0`` = plain full-graph training);
    ``epochs``: ``n``, the full-graph epochs; level ``l`` gets ``n * 2**l`` epochs
    (:func:`paper_schedule`) unless ``schedule`` lists ``(level, epochs)`` pairs.
    ``ratio`` (in (0, 1]) is the fraction of nodes kept per level, ``k`` the
    connectivity enhancement ``P^T A^k P``, ``hops`` the ego-network radius of
    ``"subgraph"``, ``resample_every`` how often a random or subgraph selection is redrawn
    (:class:`MultiscaleTrainer`). One Adam optimizer is carried across all levels; every
    evaluation is on the full graph. The model is left with the best epoch's weights.
    ``grad_norm`` clips every step's gradients (see :func:`~msgnn_lite.train.fit`).
    """
    levels = check_positive_int(levels, "levels", minimum=0)
    schedule = paper_schedule(levels, epochs) if schedule is None else list(schedule)
    if schedule and max(lvl for lvl, _ in schedule) > levels:
        raise ValueError(f"schedule uses a level above levels={levels}")
    dev = resolve_device(device)
    data = to_device(data, dev)
    trainer = MultiscaleTrainer(data, schedule, ratio=ratio, method=method, k=k, hops=hops, seed=seed,
                                resample_every=resample_every)
    full_adj = _operator(model, data, trainer.undirected)
    trainer._full_adj = full_adj
    res = fit(model, data, epochs=trainer.total_epochs, lr=lr, weight_decay=weight_decay, patience=patience,
              device=dev, seed=seed, train_step=trainer, evaluate=lambda m, d: evaluate_full(m, d, full_adj),
              eval_every=eval_every, measure_memory=False, progress=progress, desc=desc or f"{method} L={levels}",
              grad_norm=grad_norm)
    return _result(model, data, full_adj, res, trainer.records, method, levels, schedule)


def _result(model: nn.Module, data: Data, full_adj, res: TrainResult, records: list[dict], method: str,
            levels: int, schedule: list) -> MultiscaleResult:
    """A :class:`MultiscaleResult` from ``fit``'s result and one record per step
    (``work`` and, optionally, ``level`` / ``nodes``)."""
    fine = step_work(model, int(data.num_nodes), _nnz(full_adj, data), _x_nnz(data.x))
    hist = res.history.copy()
    recs = records[:len(hist)]
    for key in ("level", "nodes"):
        if recs and key in recs[0]:
            hist[key] = [r[key] for r in recs]
    step_totals = [r["work"].total for r in recs]
    hist["fine_epochs"] = pd.Series(step_totals, dtype=float).cumsum().values / fine.total
    hist["cum_train_time_s"] = hist["epoch_time_s"].cumsum()
    train_work = sum((r["work"] for r in recs), Work())
    n_evals = int(hist["val_acc"].notna().sum()) if "val_acc" in hist else 0
    eval_work = forward_work(model, int(data.num_nodes), _nnz(full_adj, data), _x_nnz(data.x)) * n_evals
    return MultiscaleResult(res, hist, method, levels, schedule, fine, train_work, eval_work)


def coarse_to_fine(model: nn.Module, data: Data, *, levels: int, epochs: int, method: str = "random",
                   **kwargs) -> MultiscaleResult:
    """Coarse-to-fine training on coarsened graphs (``method`` random, topk or alternate)."""
    return train_multiscale(model, data, levels=levels, epochs=epochs, method=method, **kwargs)


def sub_to_full(model: nn.Module, data: Data, *, levels: int, epochs: int, **kwargs) -> MultiscaleResult:
    """Sub-to-full training: the same schedule on ego-network subgraphs."""
    return train_multiscale(model, data, levels=levels, epochs=epochs, method="subgraph", **kwargs)


def train_full(model: nn.Module, data: Data, *, epochs: int, **kwargs) -> MultiscaleResult:
    """The single-level baseline (plain full-graph training) with the same accounting."""
    return train_multiscale(model, data, levels=0, epochs=epochs, **kwargs)


# --------------------------------------------------------------------------- multiscale gradients
def graph_loss(model: nn.Module, g: Data) -> tuple[Tensor, Work]:
    """Mean cross-entropy on ``g``'s training nodes (``0`` with no work if it has none)."""
    if not bool(g.train_mask.any()):
        return torch.zeros((), device=g.y.device), Work()
    adj = _operator(model, g)
    out = model(g.x, adj)
    loss = masked_loss(out, g, g.train_mask)
    return loss, step_work(model, int(g.num_nodes), _nnz(adj, g), _x_nnz(g.x))


def _as_list(value, levels: int, name: str) -> list[float]:
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * max(levels, 1)
    if len(vals) < levels:
        raise ValueError(f"{name} must give one value per level (>= {levels}), got {len(vals)}")
    return [check_fraction(v, name) for v in vals]


def multiscale_loss(model: nn.Module, data: Data, *, levels: int, ratio: float = 0.5, batch_ratio=1.0,
                    method: str = "random", k: int = 1, hops: int = 2, form: str = "telescoping",
                    generator: torch.Generator | None = None) -> tuple[Tensor, Work]:
    """A loss whose gradient is the multiscale gradient estimate of Algorithm 2.

    ``telescoping`` (multilevel Monte Carlo)::

        L_L(G_L)  +  sum_{l=0}^{L-1} [ L_l(B_l) - L_{l+1}(C_l) ]

    ``G_L`` is a fresh level-``L`` graph (the "large batch": all of the coarsest
    graph). For each ``l``, ``B_l`` is a subgraph (ego-networks, ``batch_ratio`` of the
    nodes; the whole graph when ``batch_ratio=1``) of a fresh level-``l`` graph, and
    ``C_l`` its own coarsening: the same batch one level coarser, so the difference is
    small and cheap. With ``batch_ratio=1`` each term's expectation telescopes and the
    estimator is unbiased for ``grad L_0``; ``levels=0`` is exactly the plain loss.

    ``abs`` (the official code): ``L_L + sum_l |L_l(B_l) - L_{l+1}(C_l)|``. Its gradient
    multiplies each correction by ``sign(L_l - L_{l+1})``, i.e. *subtracts* it whenever
    the fine loss is the smaller one; kept only for comparison.

    ``coarse``: only ``L_L(G_L)`` (plain coarse training's gradient), and ``levels=0`` with
    ``batch_ratio < 1``: the plain gradient on one ego-subgraph batch -- the baselines
    at equal cost.

    Returns ``(loss, work)``; call ``loss.backward()``.
    """
    levels = check_positive_int(levels, "levels", minimum=0)
    if form not in GRADIENT_FORMS:
        raise ValueError(f"form must be one of {GRADIENT_FORMS}, got {form!r}")
    check_fraction(ratio, "ratio")
    batches = _as_list(batch_ratio, levels, "batch_ratio")
    level_sizes(int(data.num_nodes), levels, ratio)
    # random numbers on the graph's device (the CPU generator itself for a CPU graph)
    gen = device_generator(generator if generator is not None else torch.Generator().manual_seed(0),
                           data.edge_index.device)
    if levels == 0:  # the plain gradient (on a subgraph batch when batch_ratio < 1)
        if batches[0] < 1.0:
            n = int(data.num_nodes)
            keep = select_nodes(data.edge_index, n, num_kept(n, batches[0]), "subgraph", hops=hops, generator=gen)
            with trusted():  # select_nodes' ids are distinct and in range
                return graph_loss(model, coarsen(data, keep, k=1))
        return graph_loss(model, data)
    total, work = graph_loss(model, coarsest(data, levels, ratio=ratio, method=method, k=k, hops=hops, generator=gen))
    if form == "coarse":
        return total, work
    for lvl in range(levels):
        g = coarsest(data, lvl, ratio=ratio, method=method, k=k, hops=hops, generator=gen) if lvl > 0 else data
        if batches[lvl] < 1.0:
            n = int(g.num_nodes)
            keep = select_nodes(g.edge_index, n, num_kept(n, batches[lvl]), "subgraph", hops=hops, generator=gen)
            with trusted():  # select_nodes' ids are distinct and in range
                g = coarsen(g, keep, k=1)
        if int(g.num_nodes) < 2:
            continue
        c = coarsen(g, ratio=ratio, method=method, k=k, hops=hops, generator=gen)
        fine_loss, w_f = graph_loss(model, g)
        coarse_loss, w_c = graph_loss(model, c)
        diff = fine_loss - coarse_loss
        total = total + (diff if form == "telescoping" else diff.abs())
        work = work + w_f + w_c
    return total, work


def flat_grad(model: nn.Module) -> Tensor:
    """All parameter gradients as one vector (zeros where a gradient is missing)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()])


class multiscale_gradient_step:  # noqa: N801 (used like a function: a train_step for fit)
    """A ``train_step`` for :func:`msgnn_lite.train.fit` that descends along the
    multiscale gradient estimate (:func:`multiscale_loss`); records the work per step.

    ``generator`` is a CPU generator seeded by ``seed``; on another device the draws use one
    generator of that device derived from it once (:func:`~msgnn_lite.utils.device_generator`)."""

    def __init__(self, *, levels: int, ratio: float = 0.5, batch_ratio=0.25, method: str = "random", k: int = 1,
                 hops: int = 2, form: str = "telescoping", seed: int = 0):
        self.kwargs = dict(levels=levels, ratio=ratio, batch_ratio=batch_ratio, method=method, k=k, hops=hops,
                           form=form)
        self.generator = torch.Generator().manual_seed(seed)
        self._device_generator: torch.Generator | None = None
        self.work: list[Work] = []

    def _generator(self, device: torch.device) -> torch.Generator:
        gen = self._device_generator
        if gen is None or gen.device.type != device.type:
            gen = self._device_generator = device_generator(self.generator, device)
        return gen

    def __call__(self, model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss, work = multiscale_loss(model, data, generator=self._generator(data.edge_index.device), **self.kwargs)
        if loss.requires_grad:
            loss.backward()
            optimizer.step()
        self.work.append(work)
        value = float(loss.detach())  # the step's one host read
        return value if math.isfinite(value) else float("nan")


def train_multiscale_gradient(model: nn.Module, data: Data, *, levels: int, epochs: int, ratio: float = 0.5,
                              batch_ratio=0.25, method: str = "random", k: int = 1, hops: int = 2,
                              form: str = "telescoping", lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0,
                              device="auto", eval_every: int = 1, patience: int | None = None,
                              progress: bool | None = None, desc: str | None = None) -> MultiscaleResult:
    """Training with the multiscale gradient estimator (Algorithm 2) as the optimizer's gradient:
    ``epochs`` steps of :class:`multiscale_gradient_step`, each on fresh coarse graphs and
    ego-subgraph batches, with the same full-graph evaluation, model selection and work/time
    accounting as :func:`train_multiscale` (so :func:`compare_methods` can put it beside
    coarse-to-fine). ``levels=0`` with ``batch_ratio < 1`` is plain subgraph-batch training."""
    epochs = check_positive_int(epochs, "epochs")
    dev = resolve_device(device)
    data = to_device(data, dev)
    step = multiscale_gradient_step(levels=levels, ratio=ratio, batch_ratio=batch_ratio, method=method, k=k,
                                    hops=hops, form=form, seed=seed)
    full_adj = _operator(model, data)
    res = fit(model, data, epochs=epochs, lr=lr, weight_decay=weight_decay, patience=patience, device=dev,
              seed=seed, train_step=step, evaluate=lambda m, d: evaluate_full(m, d, full_adj),
              eval_every=eval_every, measure_memory=False, progress=progress,
              desc=desc or f"multiscale gradient L={levels}")
    records = [{"work": w} for w in step.work]
    return _result(model, data, full_adj, res, records, f"gradient ({form})", levels, [])


def gradient_study(model: nn.Module, data: Data, estimators: dict, samples: int = 50, seed: int = 0) -> pd.DataFrame:
    """Bias and variance of gradient estimators against the exact full-graph gradient.

    ``estimators`` maps a name to keyword arguments of :func:`multiscale_loss` (``levels``,
    ``ratio``, ``batch_ratio``, ``method``, ``form``, ...). The model is moved to ``data``'s device and put in eval mode
    (no dropout; BatchNorm uses its running statistics) so the only randomness is the
    graph sampling, drawn on that device. For each estimator, over ``samples`` draws:

    * ``cost``: mean work per draw in fine-gradient units;
    * ``bias``: ``|E g - g_0| / |g_0|`` (includes Monte Carlo error ``~ sqrt(var / samples)``);
    * ``variance``: ``E |g - E g|^2 / |g_0|^2``;
    * ``mc_noise``: ``sqrt(variance / samples)``, the ``bias`` an unbiased estimator shows from
      its draws alone (the expected norm of the mean's error; over many gradient coordinates the
      norm concentrates near it);
    * ``bias_over_noise``: ``bias / mc_noise``; near 1 is what an unbiased estimator gives, well
      above 1 (say 2 or more) is a bias the draws can tell from noise;
    * ``mse_equal_cost``: ``bias^2 + variance * cost``, the relative squared error when a
      budget of one exact gradient is spent averaging independent draws;
    * ``cosine``: mean cosine similarity of a single draw with ``g_0``.
    """
    samples = check_positive_int(samples, "samples", minimum=2)
    model.to(data.edge_index.device).eval()
    model.zero_grad(set_to_none=True)
    loss0, work0 = graph_loss(model, data)
    loss0.backward()
    exact = flat_grad(model).clone()
    norm = float(exact.norm())
    rows = []
    for name, kwargs in estimators.items():
        gen = device_generator(torch.Generator().manual_seed(seed), data.edge_index.device)
        grads, costs = [], []
        for _ in range(samples):
            model.zero_grad(set_to_none=True)
            loss, work = multiscale_loss(model, data, generator=gen, **kwargs)
            if loss.requires_grad:
                loss.backward()
            grads.append(flat_grad(model).clone())
            costs.append(work.total / work0.total)
        g = torch.stack(grads)
        mean = g.mean(0)
        bias = float((mean - exact).norm()) / norm
        var = float(((g - mean) ** 2).sum(1).mean()) / norm**2
        cost = sum(costs) / len(costs)
        cos = float(F.cosine_similarity(g, exact.unsqueeze(0), dim=1).mean())
        noise = math.sqrt(var / samples)
        rows.append({"estimator": name, "cost": cost, "bias": bias, "variance": var, "mc_noise": noise,
                     "bias_over_noise": bias / noise if noise > 0 else float("nan"),
                     "mse_equal_cost": bias**2 + var * cost, "cosine": cos})
    model.zero_grad(set_to_none=True)
    return pd.DataFrame(rows)


def compare_methods(data: Data, make_model, configs: list[dict], *, epochs: int, seeds=(0,), lr: float = 1e-3,
                    weight_decay: float = 0.0, ratio: float = 0.5, k: int = 1, hops: int = 2, eval_every: int = 5,
                    target_fraction: float = 0.99, target_tol: float = 0.0, device="auto",
                    progress: bool | None = None):
    """Full-graph training against multiscale configurations at an equal work budget.

    ``make_model()`` builds a fresh model (seeded here before each call). The baseline
    trains ``epochs`` full-graph epochs; a configuration ``{"method": ..., "levels": L}``
    uses the paper's schedule with ``n = round(epochs / (L + 1))`` fine epochs, so its
    total training work is about the baseline's (each level costs ~``n`` fine epochs).
    A configuration may override ``k`` (its method is then labelled ``"<method> k=<k>"``) and
    ``resample_every`` (labelled ``"<method> redraw <r>"``);
    ``{"method": "gradient", "levels": L, "batch_ratio": b}`` trains with the multiscale
    gradient estimator (:func:`train_multiscale_gradient`, ``epochs`` steps; optional
    ``"select"``: the coarsening method, default random).
    The *target* is ``target_fraction`` (in (0, 1]; default 99 %) of the baseline's best
    validation accuracy, minus ``target_tol`` (absolute, default 0), so that the comparison
    is not decided by the baseline's last small improvement; ``*_to_target`` columns give the training work (fine-epoch equivalents) and time
    until the full-graph validation accuracy first reaches it, and ``speedup_work`` /
    ``speedup_time`` the baseline's figures divided by the method's.

    ``data`` is moved to ``device`` once (a copy; the caller's graph stays where it is), so the
    runs share it rather than each copying it again.

    Returns ``(runs, histories)``: one row per (configuration, seed), and each run's history.
    """
    from .utils import seed_everything

    device = resolve_device(device)
    data = to_device(data, device)
    epochs = check_positive_int(epochs, "epochs")
    target_fraction = check_fraction(target_fraction, "target_fraction")
    if not target_tol >= 0:
        raise ValueError(f"target_tol must be >= 0, got {target_tol}")
    rows, histories = [], {}
    for seed in seeds:
        seed_everything(seed)
        base = train_full(make_model(), data, epochs=epochs, lr=lr, weight_decay=weight_decay, seed=seed,
                          device=device, eval_every=eval_every, progress=progress, desc="full graph")
        target = target_fraction * base.result.best_val_acc - target_tol
        base_hit = base.to_target(target)
        runs = [("full graph", 0, base)]
        for cfg in configs:
            method, levels = cfg["method"], int(cfg["levels"])
            cfg_k = int(cfg.get("k", k))
            redraw = int(cfg.get("resample_every", 1))
            seed_everything(seed)
            if method == "gradient":  # the estimator as the training gradient, one step per baseline epoch
                res = train_multiscale_gradient(
                    make_model(), data, levels=levels, epochs=int(cfg.get("epochs", epochs)), ratio=ratio,
                    batch_ratio=cfg.get("batch_ratio", 0.25), method=cfg.get("select", "random"), k=cfg_k,
                    hops=hops, lr=lr, weight_decay=weight_decay, seed=seed, device=device, eval_every=eval_every,
                    progress=progress, desc=f"gradient L={levels}")
                method = "gradient"
            else:
                n = max(1, int(round(epochs / (levels + 1))))
                res = train_multiscale(make_model(), data, levels=levels, epochs=n, method=method, ratio=ratio,
                                       k=cfg_k, hops=hops, lr=lr, weight_decay=weight_decay, seed=seed,
                                       device=device, eval_every=eval_every, progress=progress,
                                       desc=f"{method} L={levels}", resample_every=redraw)
            if cfg_k != k:
                method = f"{method} k={cfg_k}"
            if redraw != 1:
                method = f"{method} redraw {redraw}"
            runs.append((method, levels, res))
        for method, levels, res in runs:
            hit = res.to_target(target)
            rows.append({"method": method, "levels": levels, "seed": seed,
                         "test_acc": res.result.test_acc, "max_test_acc (paper metric)": res.result.max_test_acc,
                         "val_acc": res.result.best_val_acc, "fine_epochs": res.fine_epochs,
                         "train_time_s": res.result.train_time_s, "eval_time_s": res.result.eval_time_s,
                         "target_val_acc": target, "fine_epochs_to_target": hit["fine_epochs"],
                         "time_to_target_s": hit["train_time_s"],
                         "speedup_work": base_hit["fine_epochs"] / hit["fine_epochs"],
                         "speedup_time": base_hit["train_time_s"] / hit["train_time_s"]})
            histories[(method, levels, seed)] = res.history
    return pd.DataFrame(rows), histories


def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of :func:`compare_methods` runs."""
    cols = ["test_acc", "max_test_acc (paper metric)", "val_acc", "fine_epochs", "train_time_s", "eval_time_s",
            "fine_epochs_to_target", "time_to_target_s", "speedup_work", "speedup_time"]
    g = runs.groupby(["method", "levels"], sort=False)
    out = g[cols].mean()
    out.insert(1, "test_acc_std", g["test_acc"].std(ddof=0))
    out.insert(0, "seeds", g.size())
    out["reached_target"] = g["fine_epochs_to_target"].apply(lambda s: int(s.notna().sum()))
    return out.reset_index()
