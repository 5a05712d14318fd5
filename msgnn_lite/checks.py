"""Input validation with error messages that name the argument and the expected form."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_edge_index", "check_positive_int", "check_mask", "check_fraction"]


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_fraction(value, name: str, low_open: bool = True, high_closed: bool = True) -> float:
    """Check that ``value`` lies in (0, 1] (default), (0, 1), [0, 1] or [0, 1)."""
    v = float(value)
    lo_ok = v > 0 if low_open else v >= 0
    hi_ok = v <= 1 if high_closed else v < 1
    if not (lo_ok and hi_ok):
        lo = "(0" if low_open else "[0"
        hi = "1]" if high_closed else "1)"
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {value}")
    return v


def check_edge_index(edge_index, num_nodes: int | None = None, name: str = "edge_index") -> Tensor:
    """Check a COO edge list: an integer tensor of shape [2, E] with ids in [0, num_nodes).

    Returns the tensor as int64 (a no-op when it already is).
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [2, num_edges], got {type(edge_index).__name__}")
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer node ids (int64 or int32), got dtype {edge_index.dtype}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, num_edges], got {list(edge_index.shape)}")
    if num_nodes is not None:
        num_nodes = check_positive_int(num_nodes, "num_nodes")
    if edge_index.numel() > 0:
        lo, hi = int(edge_index.min()), int(edge_index.max())
        if lo < 0:
            raise ValueError(f"{name} contains a negative node id ({lo}); ids must lie in [0, num_nodes)")
        if num_nodes is not None and hi >= num_nodes:
            raise ValueError(
                f"{name} contains node id {hi}, out of range for num_nodes={num_nodes}; ids must lie in [0, {num_nodes})"
            )
    return edge_index.long()


def check_mask(mask, num_nodes: int, name: str) -> Tensor:
    """Check a node mask: a bool tensor of length ``num_nodes`` selecting at least one node."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor of shape [num_nodes], got {getattr(mask, 'dtype', type(mask))}")
    if mask.dim() != 1 or mask.numel() != num_nodes:
        raise ValueError(f"{name} must have shape [{num_nodes}], got {list(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError(f"{name} is empty (selects no node); it must select at least one node")
    return mask
