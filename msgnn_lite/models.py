"""GCN and GraphSAGE layers and models on the fast CSR propagation path.

The layers keep PyG's parameter names (``GCNConv.lin`` + ``bias``, ``SAGEConv.lin_l`` +
``lin_r``), so a state dict moves between ``torch_geometric.nn.GCNConv`` /
``SAGEConv`` and these classes unchanged, and the outputs agree to float tolerance.
A layer's ``forward(x, adj)`` takes either a :class:`~msgnn_lite.sparse.SparseAdjacency`
(built once, reused every step) or a plain ``edge_index`` (converted and cached). A ready
operator must carry the normalisation the layer aggregates with (``GCNConv``: ``"gcn"``,
``SAGEConv``: ``"mean"`` or its alias ``"rw"``), and ``x`` must hold floating-point features:
both are refused with a message otherwise (two attribute checks per forward, no tensor read).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_float_features, check_fraction, check_normalization, check_positive_int
from .sparse import SparseAdjacency, cached_adjacency, propagate

__all__ = ["GCNConv", "SAGEConv", "GCN", "SAGE", "MLP", "as_adjacency", "feature_dropout", "linear"]


def _is_sparse(x: Tensor) -> bool:
    return x.layout in (torch.sparse_csr, torch.sparse_coo)


def feature_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout that also accepts sparse (CSR) feature matrices.

    Bag-of-words features (Cora, CiteSeer) are ~99% zeros; dropping only the stored
    values draws ~100x fewer random numbers than dense dropout, with the same result
    in distribution (a zero stays zero either way).
    """
    if not training or p == 0.0:
        return x
    if x.layout == torch.sparse_csr:
        vals = x.values()
        keep = torch.rand_like(vals) >= p
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), vals * keep / (1.0 - p), x.shape,
                                           check_invariants=False)
    if x.layout != torch.strided:
        raise TypeError(f"feature_dropout supports dense and CSR features, got layout {x.layout}")
    return F.dropout(x, p, True)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` for a dense or sparse ``x``."""
    out = torch.sparse.mm(x, weight.t()) if _is_sparse(x) else F.linear(x, weight)
    return out + bias if bias is not None else out


def as_adjacency(adj, num_nodes: int, normalization: str, owner: str = "the model") -> SparseAdjacency:
    """Accept a ready :class:`SparseAdjacency` or an ``edge_index`` (cached conversion).

    A ready operator must have been built with ``normalization`` (the one ``owner`` aggregates
    with; :func:`msgnn_lite.checks.check_normalization`): a GCN given a ``"sum"`` or ``"mean"``
    operator would otherwise run and aggregate with the wrong weights."""
    if isinstance(adj, SparseAdjacency):
        if adj.num_nodes != num_nodes:
            raise ValueError(f"adjacency has {adj.num_nodes} nodes but x has {num_nodes} rows")
        check_normalization(adj, normalization, owner)
        return adj
    if isinstance(adj, Tensor):
        return cached_adjacency(adj, num_nodes, normalization)
    raise TypeError(f"adj must be a SparseAdjacency or an edge_index tensor, got {type(adj).__name__}")


class GCNConv(nn.Module):
    """Kipf & Welling's graph convolution ``D^-1/2 (A+I) D^-1/2 X W + b``."""

    normalization = "gcn"

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.lin.weight)  # PyG's glorot
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, adj) -> Tensor:
        check_float_features(x)
        adj = as_adjacency(adj, x.size(0), self.normalization, type(self).__name__)
        # Multiply by W on the narrower side of the layer: A (X W) == (A X) W.
        if self.out_channels <= self.in_channels or _is_sparse(x):
            out = propagate(adj, linear(x, self.lin.weight))
        else:
            out = self.lin(propagate(adj, x))
        return out + self.bias if self.bias is not None else out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels})"


class SAGEConv(nn.Module):
    """GraphSAGE with mean aggregation: ``W_l mean_{j in N(i)} x_j + b + W_r x_i``."""

    normalization = "mean"

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, root_weight: bool = True):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.lin_l = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False) if root_weight else None

    def reset_parameters(self) -> None:
        self.lin_l.reset_parameters()
        if self.lin_r is not None:
            self.lin_r.reset_parameters()

    def forward(self, x: Tensor, adj) -> Tensor:
        check_float_features(x)
        adj = as_adjacency(adj, x.size(0), self.normalization, type(self).__name__)
        if self.out_channels < self.in_channels or _is_sparse(x):  # aggregate the narrower side
            out = propagate(adj, linear(x, self.lin_l.weight))
            if self.lin_l.bias is not None:
                out = out + self.lin_l.bias
        else:
            out = self.lin_l(propagate(adj, x))
        if self.lin_r is not None:
            out = out + linear(x, self.lin_r.weight)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels})"


class _Stack(nn.Module):
    """``num_layers`` graph convolutions with ReLU, dropout and optional BatchNorm between."""

    conv_cls: type = GCNConv

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5, batch_norm: bool = False, input_dropout: float | None = None):
        super().__init__()
        num_layers = check_positive_int(num_layers, "num_layers")
        check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(self.conv_cls(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(d) for d in dims[1:-1]) if batch_norm else None
        self.dropout = dropout
        self.input_dropout = dropout if input_dropout is None else input_dropout
        self.normalization = self.conv_cls.normalization

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        for norm in self.norms or []:
            norm.reset_parameters()

    def forward(self, x: Tensor, adj) -> Tensor:
        check_float_features(x)  # integer features: a message saying to pass floats (fit casts them)
        if isinstance(adj, Tensor):  # convert an edge_index once for all layers
            adj = cached_adjacency(adj, x.size(0), self.normalization)
        else:
            adj = as_adjacency(adj, x.size(0), self.normalization, type(self).__name__)
        x = feature_dropout(x, self.input_dropout, self.training)
        for i, conv in enumerate(self.convs):
            x = conv(x, adj)
            if i < len(self.convs) - 1:
                if self.norms is not None:
                    x = self.norms[i](x)
                x = F.relu(x)
                x = F.dropout(x, self.dropout, self.training)
        return x


class GCN(_Stack):
    """A multi-layer GCN (Kipf & Welling, 2017) on the fast path."""

    conv_cls = GCNConv


class SAGE(_Stack):
    """A multi-layer GraphSAGE-mean model (Hamilton et al., 2017) on the fast path."""

    conv_cls = SAGEConv


class MLP(nn.Module):
    """A plain MLP on node features (ignores the graph): the graph-free baseline."""

    normalization = None

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        num_layers = check_positive_int(num_layers, "num_layers")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        # parameter-free taps on the hidden pre-activations (the linear layers are applied
        # functionally, for CSR inputs), so forward hooks see them: msgnn_lite.diagnostics
        self.taps = nn.ModuleList(nn.Identity() for _ in dims[1:-1])
        self.dropout = dropout

    def forward(self, x: Tensor, adj=None) -> Tensor:
        check_float_features(x)
        for i, lin in enumerate(self.lins):
            x = feature_dropout(x, self.dropout, self.training)
            x = linear(x, lin.weight, lin.bias)
            if i < len(self.lins) - 1:
                x = F.relu(self.taps[i](x))
        return x
