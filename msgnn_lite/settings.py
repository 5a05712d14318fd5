"""One rule for the training settings that depend on the graph.

The notebooks were written on Cora (2,708 nodes, 7 classes, 140 labelled nodes). A reader who
runs one with ``-p dataset <another graph>`` should get a model that trains, not Cora's
numbers applied blindly to a graph five times larger. Every setting that depends on the graph
is therefore derived here, from the graph's size and label count, by one rule: **keep what the
notebook's Cora setting means, and scale it with the graph**.

* ``epochs``: the notebook's Cora budget, times one for every started ``NODES_PER_BUDGET``
  nodes (at most ``MAX_BUDGETS``). The graphs of this course with the usual 20-labels-per-class
  splits learn more slowly as they grow (a lower label rate, row-normalised features):
  notebook 02 needed 150 epochs on Amazon Computers (13,752 nodes) against 40 on Cora; the
  rule gives three budgets there (120). Training still keeps the epoch with the best validation
  accuracy, and ``patience`` (half of the epochs) stops a run that has not improved over half
  of its budget, so a graph that learns sooner stops sooner. (A shorter patience, half of
  Cora's budget, stopped the noisy sampled run on Computers at a third of its budget.)
* ``num_parts`` (METIS parts of Cluster-GCN and GAS): the notebook's parts on Cora, scaled with
  the number of nodes, so that a part keeps its number of nodes (the recipes fix the part
  *size*: about 150 nodes for Cluster-GCN).
* ``parts_per_batch``: scaled with ``num_parts``, so that an epoch keeps its number of
  optimizer steps.
* sampler sizes (:meth:`GraphSettings.scale`): a GraphSAINT subgraph's nodes, edges or walk
  roots, scaled like the parts, so that a subgraph keeps its share of the graph.
* ``hidden``: the notebook's width, and at least twice the number of classes.
* ``lr``: 0.01 (Adam), the value of every paper of the course for its shallow models; a
  notebook that trains a deep model keeps that paper's own rate. (Notebook 12 selects the rate
  on validation from a grid, the same grid for every method.)
* depth: the notebook's, not scaled. A layer adds a hop of receptive field whatever the graph's
  size, and the course's depths are the papers' own (2 layers for the shallow models; the deep
  ones are what notebooks 05 and 08 study).

:func:`for_graph` applies the rule; :meth:`GraphSettings.describe` says, in one line, what it
chose and why, for the notebook to print.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch_geometric.data import Data

from .checks import check_positive_int

__all__ = ["REFERENCE_NODES", "NODES_PER_BUDGET", "MAX_BUDGETS", "GraphSettings", "for_graph"]

REFERENCE_NODES = 2708  # Cora, on which the notebooks' settings were chosen
NODES_PER_BUDGET = 5000  # one more epoch budget per this many nodes (calibrated on notebook 02's Computers run)
MAX_BUDGETS = 4


@dataclass(frozen=True)
class GraphSettings:
    """The settings :func:`for_graph` chose for one graph."""

    graph: str
    num_nodes: int
    num_classes: int
    epochs: int
    patience: int
    lr: float
    hidden: int
    num_parts: int
    parts_per_batch: int

    def describe(self) -> str:
        budgets = self.epochs_budgets
        return (f"{self.graph} ({self.num_nodes:,} nodes, {self.num_classes} classes): {self.epochs} epochs at most "
                f"({budgets} Cora budget{'s' if budgets > 1 else ''}, patience {self.patience}), lr {self.lr:g}, "
                f"hidden {self.hidden}, {self.num_parts} parts, {self.parts_per_batch} per batch")

    def scale(self, size_on_cora: int) -> int:
        """A count chosen on Cora (a sampler's nodes, edges or roots per subgraph) scaled with
        the number of nodes, so that a subgraph keeps its share of the graph and an epoch its
        number of steps; at least 1, at most the number of nodes."""
        size_on_cora = check_positive_int(size_on_cora, "size_on_cora")
        return max(1, min(self.num_nodes, round(size_on_cora * self.num_nodes / REFERENCE_NODES)))

    @property
    def epochs_budgets(self) -> int:
        return min(MAX_BUDGETS, max(1, math.ceil(self.num_nodes / NODES_PER_BUDGET)))


def for_graph(data: Data, epochs: int, *, hidden: int = 64, num_parts: int = 20, parts_per_batch: int = 4,
              lr: float = 0.01) -> GraphSettings:
    """The settings for ``data`` from a notebook's Cora settings (``epochs``, ``hidden``,
    ``num_parts``, ``parts_per_batch``, ``lr``), by the rule of this module's docstring."""
    epochs = check_positive_int(epochs, "epochs")
    hidden = check_positive_int(hidden, "hidden")
    num_parts = check_positive_int(num_parts, "num_parts")
    parts_per_batch = check_positive_int(parts_per_batch, "parts_per_batch")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    n = int(data.num_nodes)
    num_classes = int(getattr(data, "num_classes", 0) or int(data.y.max()) + 1)
    budgets = min(MAX_BUDGETS, max(1, math.ceil(n / NODES_PER_BUDGET)))
    parts = max(2, min(n // 2, round(num_parts * n / REFERENCE_NODES)))
    per_batch = max(1, min(parts, round(parts_per_batch * parts / num_parts)))
    return GraphSettings(graph=str(getattr(data, "name", "graph")), num_nodes=n, num_classes=num_classes,
                         epochs=epochs * budgets, patience=max(1, epochs * budgets // 2), lr=float(lr),
                         hidden=max(hidden, 2 * num_classes), num_parts=parts, parts_per_batch=per_batch)
