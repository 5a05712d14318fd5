"""Did it train? The checks every run of the comparison harness gets, and the signals behind them.

A number from a run that did not train is not a result. Two flags, one rule for every method:

* **did not train**: the best validation accuracy does not beat the graph-free MLP's (the mean of
  its seeds under the same budget), or, where no MLP ran (or for the MLP itself), does not clear
  the majority class of the validation nodes by ``margin`` points;
* **unfinished**: the best validation accuracy came at the budget's last evaluation (and at no
  earlier one), so the run was still improving when the budget ended.

A flagged run is shown as such and never averaged into a mean (:func:`msgnn_lite.compare_all.summarize`).
Its cause, where the signals show one, comes with the flag:

* ``dead_units``: the fraction of hidden ReLU units that output zero for *every* node
  (:class:`DeadUnitMeter`); a large fraction means the first steps pushed the units' inputs
  below zero for good (an overshooting step: too large an input scale for the learning rate);
* ``loss_rise``: the largest training loss of the first epochs over the first epoch's, and
  ``grad_norm_max``: the largest total gradient norm before clipping (:func:`msgnn_lite.train.fit`
  records both per epoch).
"""
from __future__ import annotations

import math

import pandas as pd
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

__all__ = ["DeadUnitMeter", "dead_unit_fraction", "with_dead_units", "majority_rate", "loss_rise", "training_status",
           "add_training_status", "STATUSES", "DEAD_UNITS_CAUSE", "LOSS_RISE_CAUSE"]

STATUSES = ("ok", "did not train", "unfinished")
DEAD_UNITS_CAUSE = 0.5
"""A run with at least this fraction of dead hidden units gets "dead ReLUs" as its cause."""
LOSS_RISE_CAUSE = 1.5
"""A run whose training loss rose to at least this multiple of its first epoch's gets "overshoot" as its cause."""


def _hidden_layers(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs go into a ReLU: the hidden layers of the package's GCN / SAGE
    stacks (their BatchNorm when there is one), of GAS's GCN / SAGE models and of the MLP.
    Other models (reversible, GCNII, precomputed) have none that this meter knows: ``[]``."""
    from .gas import GASGNN
    from .models import MLP, _Stack

    if isinstance(model, (_Stack, GASGNN)) and getattr(model, "conv", "gcn") in ("gcn", "sage"):
        if len(model.convs) < 2:
            return []
        return list(model.norms) if model.norms is not None else list(model.convs[:-1])
    if isinstance(model, MLP):
        return list(model.taps)
    return []


class DeadUnitMeter:
    """Counts, over every forward pass inside the ``with`` block, which hidden units were ever
    positive. ``fraction()`` is the share of hidden units that never were (NaN for a model
    without known hidden layers, or before a forward pass). Works for batched inference too:
    a unit is alive if it fires for any node of any batch."""

    def __init__(self, model: nn.Module):
        self.layers = _hidden_layers(model)
        self.alive: list[Tensor | None] = [None] * len(self.layers)
        self._handles = []

    def _hook(self, i: int):
        def hook(module, inputs, out):
            if isinstance(out, Tensor) and out.dim() == 2 and out.size(0) > 0:
                fired = (out > 0).any(dim=0)
                self.alive[i] = fired if self.alive[i] is None else self.alive[i] | fired
        return hook

    def __enter__(self) -> "DeadUnitMeter":
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def fraction(self) -> float:
        seen = [a for a in self.alive if a is not None]
        if not seen:
            return float("nan")
        alive = torch.cat(seen)
        return float((~alive).float().mean())  # one host sync, after the forward passes


@torch.no_grad()
def dead_unit_fraction(model: nn.Module, forward) -> float:
    """The fraction of ``model``'s hidden units that output zero for every node in the forward
    pass ``forward()`` (e.g. ``lambda: model(data.x, data.edge_index)``), in eval mode."""
    was = model.training
    model.eval()
    try:
        with DeadUnitMeter(model) as meter:
            forward()
    finally:
        model.train(was)
    return meter.fraction()


def with_dead_units(evaluate=None):
    """An ``evaluate`` for :func:`msgnn_lite.train.fit` that adds ``dead_units`` (the fraction
    of hidden units dead on every node at this evaluation) to ``evaluate``'s metrics (default:
    :func:`msgnn_lite.train.full_batch_evaluate`), so the history shows when the units died."""
    from .train import full_batch_evaluate

    evaluate = evaluate or full_batch_evaluate

    def ev(model: nn.Module, data: Data) -> dict:
        with DeadUnitMeter(model) as meter:
            out = evaluate(model, data)
        out["dead_units"] = meter.fraction()
        return out
    return ev


def majority_rate(data: Data, split: str = "val") -> float:
    """The accuracy (percent) of always predicting the most common label of ``split``'s nodes."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    y = data.y[data[f"{split}_mask"]]
    y = y[y >= 0]
    if y.numel() == 0:
        return float("nan")
    return 100.0 * float(torch.bincount(y).max()) / y.numel()


def loss_rise(losses, first: int = 10) -> float:
    """The largest training loss of the first ``first`` epochs over the first epoch's (1.0 when
    the loss only fell; NaN without losses)."""
    ls = [float(v) for v in list(losses)[:first] if v is not None and math.isfinite(float(v))]
    if not ls or ls[0] <= 0:
        return float("nan")
    return max(ls) / ls[0]


def training_status(val_acc: float, *, best_is_last: bool, floor: float, margin: float = 0.0,
                    dead_units: float = float("nan"), rise: float = float("nan")) -> tuple[str, str]:
    """``(status, cause)`` of one run by the rule of this module: ``"did not train"`` when
    ``val_acc`` (percent) does not exceed ``floor + margin``; else ``"unfinished"`` when the
    best evaluation was the last one; else ``"ok"``. ``cause`` names what the signals show
    (dead ReLUs, an overshooting loss), or ``""``."""
    if not math.isfinite(val_acc):
        raise ValueError(f"val_acc must be a finite accuracy, got {val_acc!r}")
    if not (math.isfinite(floor) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"floor must be finite and margin finite and >= 0, got floor={floor!r}, margin={margin!r}")
    causes = []
    if math.isfinite(dead_units) and dead_units >= DEAD_UNITS_CAUSE:
        causes.append(f"{100 * dead_units:.0f}% of hidden ReLUs dead")
    if math.isfinite(rise) and rise >= LOSS_RISE_CAUSE:
        causes.append(f"loss rose {rise:.1f}x in its first epochs")
    if not val_acc > floor + margin:
        return "did not train", "; ".join(causes)
    if best_is_last:
        return "unfinished", "still improving at the budget's end"
    return "ok", ""


def add_training_status(runs: pd.DataFrame, data: Data, margin: float = 2.0) -> pd.DataFrame:
    """Add ``status`` and ``cause`` to every row of ``runs`` (:mod:`msgnn_lite.diagnostics`'s rule):
    a graph method must beat the graph-free MLP's mean validation accuracy (its seeds, same
    grid); the MLP, or every method when no MLP ran, must clear the validation nodes' majority
    class by ``margin`` points; and its best evaluation must not be the budget's last.

    ``runs`` needs ``method``, ``val_acc`` and ``best_is_last``; ``dead_units`` and ``loss_rise``
    (the signals named as a cause) are used when present. Used by :mod:`msgnn_lite.compare_all`
    and :func:`msgnn_lite.gas.reference_runs`."""
    runs = runs.copy()
    chance = majority_rate(data, "val")
    mlp = runs.loc[runs["method"] == "MLP", "val_acc"]
    statuses, causes, floors = [], [], []
    for r in runs.itertuples():
        use_mlp = r.method != "MLP" and len(mlp) > 0
        floor, m = (float(mlp.mean()), 0.0) if use_mlp else (chance, margin)
        st, cause = training_status(float(r.val_acc), best_is_last=bool(r.best_is_last), floor=floor, margin=m,
                                    dead_units=float(getattr(r, "dead_units", float("nan"))),
                                    rise=float(getattr(r, "loss_rise", float("nan"))))
        statuses.append(st)
        causes.append(cause)
        floors.append(floor + m)
    runs["status"], runs["cause"], runs["floor_val_acc"] = statuses, causes, floors
    return runs
