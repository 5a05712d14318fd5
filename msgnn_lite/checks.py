"""Input validation with error messages that name the argument and the expected form.

One layer for every public entry point that takes a graph (:func:`check_graph`): edge ids,
node attributes of length ``num_nodes``, finite features, labels in range (``-1`` = unlabelled,
never selected by a split mask), finite non-negative edge weights, unique ids, permutations.
And the small checks every public function and class runs on its arguments: finite numbers
(:func:`check_finite`), positive scales (:func:`check_positive`), ids in range
(:func:`check_index_range`), lengths (:func:`check_length`), known options
(:func:`check_option`), an operator's normalisation matching the model
(:func:`check_normalization`) and floating-point features (:func:`check_float_features`).
Each message names the argument, the expected form and the value given.
Each check is one vectorised pass. Trusted inner loops switch them off with
``with trusted():`` (or the environment variable ``MSGNN_CHECKS=0``).
"""
from __future__ import annotations

import contextlib
import math
import os

import torch
from torch import Tensor

__all__ = ["check_edge_index", "check_positive_int", "check_mask", "check_fraction", "check_graph",
           "check_labels", "check_features", "check_edge_weight", "check_unique", "check_permutation",
           "check_finite_loss", "check_finite", "check_positive", "check_index_range", "check_length",
           "check_option", "check_normalization", "check_float_features", "first_repeat", "NORMALIZATION_ALIASES",
           "TrainingDivergedError", "trusted", "checks_enabled"]

_TRUSTED = 0


def checks_enabled() -> bool:
    """False inside :func:`trusted` or with ``MSGNN_CHECKS=0``: the data checks are skipped."""
    return _TRUSTED == 0 and os.environ.get("MSGNN_CHECKS", "1") not in ("0", "false", "False")


@contextlib.contextmanager
def trusted():
    """Skip the data checks (:func:`check_graph` and friends) inside the block, for inner
    loops over inputs that were checked once already. Argument checks (sizes, names) stay on."""
    global _TRUSTED
    _TRUSTED += 1
    try:
        yield
    finally:
        _TRUSTED -= 1


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite: the run has no result to report."""


def check_finite_loss(loss: float, epoch: int, where: str = "training", hint: str = "") -> float:
    """Raise :class:`TrainingDivergedError` when ``loss`` (a float read once per epoch) is not
    finite, naming the epoch and the likely causes; return it otherwise."""
    if math.isfinite(loss):
        return loss
    raise TrainingDivergedError(
        f"{where} diverged at epoch {epoch}: the loss is {loss}. Likely causes: a learning rate too high"
        f"{' (' + hint + ')' if hint else ''}, non-finite features or edge weights, or labels out of range. "
        f"No accuracy is reported from a diverged run.")


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


def _is_real_number(value) -> bool:
    try:
        import numpy as np

        real = (int, float, np.integer, np.floating)
    except ImportError:  # pragma: no cover
        real = (int, float)
    return isinstance(value, real) and not isinstance(value, bool)


def check_finite(value, name: str):
    """A finite real number (returned as a float), or a tensor whose values are all finite
    (returned as it is; the values are read only while checks are enabled)."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number or tensor, got dtype {value.dtype}")
        if checks_enabled() and value.is_floating_point() and value.numel():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                shown = float(value) if value.numel() == 1 else f"{bad} NaN or infinite value(s)"
                raise ValueError(f"{name} must be finite, got {shown}")
        return value
    if not _is_real_number(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return v


def check_positive(value, name: str):
    """A finite number ``> 0`` (a scale, a degree, a temperature), or a tensor of them."""
    value = check_finite(value, name)
    if isinstance(value, Tensor):
        if checks_enabled() and value.numel() and bool((value <= 0).any()):
            shown = float(value) if value.numel() == 1 else f"a minimum of {float(value.min()):g}"
            raise ValueError(f"{name} must be finite and > 0, got {shown}")
        return value
    if value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return value


def check_option(value, name: str, choices):
    """One of ``choices`` (a tuple, or a dict whose keys are the options)."""
    options = tuple(choices)
    try:
        known = value in options
    except TypeError:  # e.g. an unhashable value against a dict's keys
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_length(value, length: int, name: str, what: str = "entries") -> Tensor:
    """A tensor of ``length`` rows (``what`` says what a row is, e.g. "one cluster id per node")."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor with {length} {what}, got {type(value).__name__}")
    got = value.size(0) if value.dim() else 1
    if value.dim() == 0 or got != length:
        raise ValueError(f"{name} must have {length} {what}, got shape {list(value.shape)}")
    return value


def check_index_range(ids, size: int, name: str, what: str = "node id", distinct: bool = False) -> Tensor:
    """Ids as a 1-D int64 tensor with every value in ``[0, size)`` (``distinct``: none twice).

    ``ids`` may be a tensor, a list or an int. Out of range is an :class:`IndexError` naming
    ``name``, the id and the range; the values are read (one host read) while checks are enabled."""
    if not isinstance(ids, Tensor):
        if isinstance(ids, bool) or not isinstance(ids, (int, list, tuple, range)) and not _is_real_number(ids):
            raise TypeError(f"{name} must be a 1-D integer tensor of {what}s, got {type(ids).__name__}")
        ids = torch.as_tensor(ids)
        if ids.dim() == 0:
            ids = ids.view(1)
        if ids.numel() == 0:
            ids = ids.long()
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must be a 1-D integer tensor of {what}s (int64), got dtype {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of {what}s, got shape {list(ids.shape)}")
    if checks_enabled() and ids.numel():
        lo, hi = torch.stack(torch.aminmax(ids)).tolist()  # one host read, also for ids on a GPU
        if lo < 0 or hi >= size:
            raise IndexError(f"{name} holds {what} {lo if lo < 0 else hi}, out of range; {what}s must lie in "
                             f"[0, {size})")
        first = first_repeat(ids) if distinct else None
        if first is not None:
            raise ValueError(f"{name} must hold distinct {what}s, got {what} {first} more than once")
    return ids.long()


NORMALIZATION_ALIASES = {"gcn": ("gcn",), "sym": ("sym",), "mean": ("mean", "rw"), "rw": ("mean", "rw"),
                         "sum": ("sum",)}
"""The operator normalisations a model built for a normalisation accepts (``"rw"`` is
``"mean"``)."""


def check_normalization(adj, expected: str, owner: str, name: str = "adj") -> None:
    """An operator (anything with a ``normalization`` attribute, e.g. a
    :class:`~msgnn_lite.sparse.SparseAdjacency`) built with the normalisation ``owner`` (a model or
    layer) aggregates with. A string comparison: cheap enough for every forward."""
    got = getattr(adj, "normalization", None)
    if got == expected or got in NORMALIZATION_ALIASES.get(expected, ()):
        return
    raise ValueError(f"{name} is an operator with normalization={got!r}, but {owner} aggregates with "
                     f"normalization={expected!r}; build it with build_adjacency(edge_index, num_nodes, "
                     f"{expected!r}), or pass the edge_index and let the model build its operator")


def check_float_features(x, name: str = "x") -> Tensor:
    """Features a layer multiplies by float weights: a floating-point tensor (a dtype check only)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of node features, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point features, got dtype {x.dtype}; pass {name}.float() "
                        f"(msgnn_lite.train.fit casts integer features itself)")
    return x


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
        lo, hi = torch.aminmax(edge_index)  # one pass, one read back
        lo, hi = int(lo), int(hi)
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


def check_features(x, num_nodes: int | None = None, name: str = "data.x") -> Tensor:
    """Node features: ``[num_nodes, F]`` (dense or sparse), every stored value finite."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [num_nodes, num_features], got {type(x).__name__}")
    if num_nodes is not None and x.size(0) != num_nodes:
        raise ValueError(f"{name} has {x.size(0)} rows but the graph has num_nodes={num_nodes}; "
                         f"it must have shape [{num_nodes}, num_features]")
    if not checks_enabled() or not x.is_floating_point():
        return x
    values = x.values() if x.layout in (torch.sparse_coo, torch.sparse_csr) else x
    if values.numel() and not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s); features must be finite "
                         f"(impute or drop them first, e.g. torch.nan_to_num)")
    return x


def check_labels(y, num_nodes: int | None = None, num_classes: int | None = None, name: str = "data.y") -> Tensor:
    """Class labels: integer ``[num_nodes]`` with values in ``[0, num_classes)``, or ``-1`` for an
    unlabelled node."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer class ids, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class ids (int64), got dtype {y.dtype}; for class ids stored "
                        f"as floats use y.long()")
    if y.dim() != 1:
        raise ValueError(f"{name} must have shape [num_nodes], got {list(y.shape)}"
                         + ("; use y.view(-1)" if y.dim() == 2 and y.size(1) == 1 else ""))
    if num_nodes is not None and y.numel() != num_nodes:
        raise ValueError(f"{name} has {y.numel()} entries but the graph has num_nodes={num_nodes}")
    if not checks_enabled() or y.numel() == 0:
        return y
    lo, hi = int(y.min()), int(y.max())
    if lo < -1:
        raise ValueError(f"{name} contains label {lo}; labels must be class ids >= 0, or -1 for an unlabelled node")
    if num_classes is not None and hi >= num_classes:
        raise ValueError(f"{name} contains label {hi}, out of range for {num_classes} classes; "
                         f"labels must lie in [0, {num_classes}) (or be -1 for unlabelled)")
    return y


def check_edge_weight(edge_weight, num_edges: int, name: str = "edge_weight", nonnegative: bool = True) -> Tensor:
    """Edge weights: ``[num_edges]``, finite, and non-negative where a degree normalization
    takes their square root or divides by their sum."""
    if not isinstance(edge_weight, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [{num_edges}], got {type(edge_weight).__name__}")
    if edge_weight.dim() != 1 or edge_weight.numel() != num_edges:
        raise ValueError(f"{name} must have shape [{num_edges}], got {list(edge_weight.shape)}")
    if not checks_enabled() or num_edges == 0:
        return edge_weight
    if not bool(torch.isfinite(edge_weight).all()):
        raise ValueError(f"{name} holds NaN or infinite weights; every edge weight must be finite")
    if nonnegative and bool((edge_weight < 0).any()):
        raise ValueError(f"{name} holds negative weights (min {float(edge_weight.min()):g}); a degree "
                         f"normalization needs weights >= 0 (use normalization='sum' for signed weights)")
    return edge_weight


def first_repeat(ids: Tensor) -> int | None:
    """The smallest value ``ids`` holds more than once, or ``None`` (one sort, one host read)."""
    if ids.numel() < 2:
        return None
    k = ids.reshape(-1).sort().values
    dup = k[1:][k[1:] == k[:-1]]
    return int(dup[0]) if dup.numel() else None


def check_unique(ids: Tensor, name: str) -> Tensor:
    """Node ids that must not repeat (a node listed twice would be counted twice or lose edges)."""
    if checks_enabled():
        first = first_repeat(ids)
        if first is not None:
            raise ValueError(f"{name} lists node {first} more than once; its ids must be distinct")
    return ids


def check_permutation(perm, n: int, name: str = "perm") -> Tensor:
    """A permutation of ``0..n-1`` (every id exactly once)."""
    if not isinstance(perm, Tensor) or perm.is_floating_point() or perm.dim() != 1:
        raise TypeError(f"{name} must be a 1-D integer tensor holding a permutation of 0..{n - 1}")
    if perm.numel() != n:
        raise ValueError(f"{name} has {perm.numel()} entries; a permutation of {n} rows needs {n}")
    if checks_enabled() and n:
        seen = torch.zeros(n, dtype=torch.bool, device=perm.device)
        if int(perm.min()) < 0 or int(perm.max()) >= n:
            raise ValueError(f"{name} holds ids outside [0, {n}); it must be a permutation of 0..{n - 1}")
        seen[perm] = True
        if not bool(seen.all()):
            raise ValueError(f"{name} is not a permutation: {int((~seen).sum())} id(s) never appear and others repeat")
    return perm


# node attributes whose first dimension must be num_nodes (PyG otherwise treats a tensor of the
# wrong length as a graph-level attribute, and loaders would silently drop it)
_NODE_KEYS = ("x", "y", "pos", "n_id", "train_mask", "val_mask", "test_mask")


def check_graph(data, name: str = "data", *, num_classes: int | None = None, features: bool = True,
                labels: bool = True) -> None:
    """Check a PyG ``Data`` once before training or batching: ``edge_index`` ids in range,
    node attributes of length ``num_nodes``, finite features, labels in range (``-1`` =
    unlabelled, and then no split mask may select the node), split masks boolean."""
    n = data.num_nodes
    if n is None:
        raise ValueError(f"{name} has no num_nodes (and no x to infer it from)")
    check_edge_index(data.edge_index, n, f"{name}.edge_index")
    for key, value in data.items():
        if not isinstance(value, Tensor) or value.dim() == 0:
            continue
        if (key in _NODE_KEYS or key.endswith("_mask")) and value.size(0) != n:
            raise ValueError(f"{name}.{key} has {value.size(0)} rows but {name} has num_nodes={n}; a node "
                             f"attribute must have one row per node")
        if "edge_weight" in data and key == "edge_weight":
            check_edge_weight(value, data.edge_index.size(1), f"{name}.edge_weight", nonnegative=False)
    if not checks_enabled():
        return
    if features and "x" in data and data.x is not None:
        check_features(data.x, n, f"{name}.x")
    y = data.y if "y" in data else None
    if labels and isinstance(y, Tensor) and not y.is_floating_point() and y.dim() == 1:
        if num_classes is None and "num_classes" in data and isinstance(data["num_classes"], int):
            num_classes = data["num_classes"]
        check_labels(y, n, num_classes, f"{name}.y")
        unlabelled = y < 0
        if bool(unlabelled.any()):
            for key in ("train_mask", "val_mask", "test_mask"):
                if key in data and isinstance(data[key], Tensor) and data[key].dtype == torch.bool:
                    hit = int((data[key] & unlabelled).sum())
                    if hit:
                        raise ValueError(f"{name}.{key} selects {hit} unlabelled node(s) (y = -1); split masks "
                                         f"must select labelled nodes only (see msgnn_lite.data.per_class_split)")
    elif labels and isinstance(y, Tensor):
        check_labels(y, n, num_classes, f"{name}.y")  # raises the clear dtype / shape error
