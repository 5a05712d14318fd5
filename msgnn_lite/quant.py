"""Degree-Quant: quantization-aware training (QAT) for GNNs (Tailor, Fernandez-Marques & Lane, ICLR 2021).

Quantization stores a tensor as small integers ``q`` with a scale ``s`` and a zero point ``z``:
``x ~ s (q - z)``, ``q`` in ``[qmin, qmax]`` (``bits`` bits). *Quantization-aware training*
simulates this in the forward pass (**fake quantization**: quantize, then dequantize at once)
so the weights learn to live with the rounding, and passes gradients through the rounding
unchanged (the **straight-through estimator**, STE), except where a value was clipped.

Why GNNs are harder than CNNs (the paper's diagnosis): the output of an aggregation grows
with a node's in-degree, so a few high-degree nodes stretch the activation ranges. A range
wide enough for them leaves few levels for everyone else; a narrow one clips them. And the
gradient of a clipped or coarsely rounded high-degree node is poor, which hurts training.
Degree-Quant answers with two pieces, both implemented here:

* **percentile ranges** tracked with momentum (``percentile=99.9``: the 0.1th and 99.9th
  percentiles, ignoring outliers) instead of min/max; and
* **stochastic protection**: at every training step each node is kept in full precision
  with a probability that rises with its in-degree from ``p_min`` to ``p_max``
  (:func:`protection_probability`); at inference every node is quantized.

What is quantized here, per layer: the layer input, the weights (symmetric, per tensor), the
messages (the transformed features ``x W``) and the aggregated output, all per tensor. The
normalised adjacency's coefficients stay in FP32 (an integer kernel would fold them into the
scales). :func:`integer_linear` runs the dense part of a trained INT8 layer in real integer
arithmetic (``torch._int_mm``: int8 x int8 -> int32) and :func:`quantized_state_dict` packs
the weights into ``bits``-bit bytes to measure the model's size honestly.

Devices: quantization-aware training runs on the device of its inputs, without host syncs
per layer once the ranges are tracked (protection probabilities by sort and search, not
``bincount``; range state mirrored on the host). :func:`integer_forward` runs where ``x`` is.
:func:`int8_inference_timings` is CPU-only by design: it times CPU inference, on copies of the
models and data moved to the CPU (the caller's stay on their device).
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import (check_edge_index, check_finite, check_float_features, check_fraction, check_positive,
                     check_positive_int)
from .models import as_adjacency, feature_dropout, linear
from .sparse import SparseAdjacency, cached_adjacency, propagate
from .utils import device_generator, to_device

__all__ = [
    "BITS", "check_bits", "check_probability", "check_percentile", "qrange", "quant_params", "fake_quantize",
    "quantize", "dequantize", "Quantizer", "fake_quantize_weight", "in_degree", "adjacency_in_degree",
    "protection_probability", "sample_protection", "QGCNConv", "QSAGEConv", "QGCN", "QSAGE",
    "pack_bits", "unpack_bits", "quantized_state_dict", "state_bytes", "model_size_bytes", "integer_linear",
    "integer_forward", "qat_configs", "train_qat_grid", "int8_inference_timings",
]

BITS = (2, 16)  # the bit widths this module accepts


# ----------------------------------------------------------------------------- argument checks

def check_bits(bits, name: str = "bits") -> int:
    """``bits`` as an int in [2, 16]."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{name} must be an integer in [{BITS[0]}, {BITS[1]}], got {bits!r}")
    if not BITS[0] <= bits <= BITS[1]:
        raise ValueError(f"{name} must be an integer in [{BITS[0]}, {BITS[1]}], got {bits}")
    return bits


def check_probability(p, name: str) -> float:
    """A probability in [0, 1]."""
    try:
        v = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a probability in [0, 1], got {p!r}") from None
    if not 0.0 <= v <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return v


def check_percentile(p, name: str = "percentile") -> float | None:
    """``None`` (min/max ranges) or a percentile in (0, 100), e.g. 99.9."""
    if p is None:
        return None
    try:
        v = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be None (min/max) or a number in (0, 100) such as 99.9, got {p!r}") from None
    if not 0.0 < v < 100.0 or v == 50.0:
        raise ValueError(f"{name} must be None (min/max) or a number in (0, 100) other than 50, such as 99.9; "
                         f"got {p}")
    return v


# ----------------------------------------------------------------------------- uniform quantization

def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """Integer range: symmetric ``[-(2^(b-1)-1), 2^(b-1)-1]`` (zero point 0, so ``-x`` maps to
    ``-q``), asymmetric ``[0, 2^b - 1]`` (all ``2^b`` levels, zero point anywhere)."""
    bits = check_bits(bits)
    if symmetric:
        m = 2 ** (bits - 1) - 1
        return -m, m
    return 0, 2 ** bits - 1


def quant_params(lo, hi, bits: int, symmetric: bool) -> tuple[Tensor, Tensor]:
    """Scale and zero point that map the real range ``[lo, hi]`` onto ``bits``-bit integers.

    The range is first widened to contain 0, so that zero (padding, ReLU output, dropped
    features) is represented exactly. Symmetric: ``s = max(|lo|, |hi|) / qmax``, ``z = 0``.
    Asymmetric: ``s = (hi - lo) / (qmax - qmin)``, ``z = round(qmin - lo / s)``.

    ``lo`` and ``hi`` must be finite (checked: one host read for tensors). The training path
    (:class:`Quantizer`, :func:`fake_quantize_weight`) uses the unchecked twin, whose tensors
    stay on their device and are never read back (a quantizer's range is kept finite by
    :meth:`Quantizer.observe`), so it runs every step without a host sync.
    """
    check_finite(lo, "lo")
    check_finite(hi, "hi")
    return _quant_params(lo, hi, bits, symmetric)


def _quant_params(lo, hi, bits: int, symmetric: bool) -> tuple[Tensor, Tensor]:
    qmin, qmax = qrange(bits, symmetric)
    lo = torch.as_tensor(lo, dtype=torch.float32).clamp(max=0.0)
    hi = torch.as_tensor(hi, dtype=torch.float32).clamp(min=0.0)
    tiny = torch.finfo(torch.float32).tiny * 2 ** 10
    if symmetric:
        scale = (torch.maximum(-lo, hi) / qmax).clamp(min=tiny)
        zero_point = torch.zeros_like(scale)
    else:
        scale = ((hi - lo) / (qmax - qmin)).clamp(min=tiny)
        zero_point = torch.round(qmin - lo / scale).clamp(qmin, qmax)
    return scale, zero_point


def _check_grid(scale, zero_point) -> None:
    """A quantization grid: a finite scale ``> 0`` and a finite zero point (numbers or tensors)."""
    check_positive(scale, "scale")
    check_finite(zero_point, "zero_point")


class _FakeQuantSTE(torch.autograd.Function):
    """Round-to-grid forward; straight-through backward, zero where the input was clipped."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, zero_point: Tensor,  # type: ignore[override]
                qmin: int, qmax: int) -> Tensor:
        q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
        lo, hi = (qmin - zero_point) * scale, (qmax - zero_point) * scale
        ctx.save_for_backward((x >= lo) & (x <= hi))  # one bool per element
        return (q - zero_point) * scale

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quantize(x: Tensor, scale, zero_point, bits: int, symmetric: bool = False) -> Tensor:
    """``s (clamp(round(x / s) + z, qmin, qmax) - z)``: quantize and dequantize in one go.

    Inside the representable range the error is at most ``s / 2``; outside it values are
    clipped to the nearest end. The gradient is the straight-through estimator: identity
    inside the range, zero for clipped elements. ``scale`` must be finite and ``> 0`` and
    ``zero_point`` finite (checked; the training path uses the unchecked twin).
    """
    _check_grid(scale, zero_point)
    return _fake_quantize(x, scale, zero_point, bits, symmetric)


def _fake_quantize(x: Tensor, scale, zero_point, bits: int, symmetric: bool = False) -> Tensor:
    qmin, qmax = qrange(bits, symmetric)
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    zero_point = torch.as_tensor(zero_point, dtype=x.dtype, device=x.device)
    return _FakeQuantSTE.apply(x, scale, zero_point, qmin, qmax)


def quantize(x: Tensor, scale, zero_point, bits: int, symmetric: bool = False) -> Tensor:
    """The integers themselves: int8 storage up to 8 bits (asymmetric codes shifted by
    ``-2^(b-1)`` so they fit a signed byte; the zero point moves with them), int16 above
    8 bits (asymmetric 16-bit codes in int32). ``scale`` must be finite and ``> 0`` (a zero
    scale would send every value to an end of the range) and ``zero_point`` finite; ``x`` must be
    finite (a NaN has no integer code: casting it gives an arbitrary one)."""
    _check_grid(scale, zero_point)
    check_finite(x, "x")
    return _quantize(x, scale, zero_point, bits, symmetric)


def _quantize(x: Tensor, scale, zero_point, bits: int, symmetric: bool = False) -> Tensor:
    qmin, qmax = qrange(bits, symmetric)
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    if bits <= 8:
        shift = 0 if symmetric else 2 ** (bits - 1)
        return (q - shift).to(torch.int8)
    return q.to(torch.int16 if symmetric or bits < 16 else torch.int32)


def dequantize(q: Tensor, scale, zero_point, bits: int, symmetric: bool = False) -> Tensor:
    """Inverse of :func:`quantize`: ``s (q - z)`` as float32."""
    _check_grid(scale, zero_point)
    bits = check_bits(bits)
    shift = 0 if symmetric or bits > 8 else 2 ** (bits - 1)
    return (q.float() + shift - zero_point) * scale


def fake_quantize_weight(weight: Tensor, bits: int) -> Tensor:
    """Weights: symmetric, per tensor, range from the current weights' largest magnitude
    (no state: the range always matches the weights being used)."""
    m = weight.detach().abs().max()
    scale, zp = _quant_params(-m, m, bits, symmetric=True)
    return _fake_quantize(weight, scale, zp, bits, symmetric=True)


# ----------------------------------------------------------------------------- range tracking

class Quantizer(nn.Module):
    """Fake-quantize activations with a range tracked during training.

    * ``percentile=None``: the batch range is its min and max; ``percentile=99.9``: its 0.1th
      and 99.9th percentiles (estimated on at most ``sample_size`` elements drawn with a fixed
      seed, so training stays deterministic).
    * The tracked range is an exponential moving average: ``r <- r + momentum (r_batch - r)``,
      initialised with the first batch. ``momentum=1`` keeps only the latest batch.
    * ``forward(x, protect)``: rows with ``protect[i] = True`` pass through in full precision
      and do not take part in the range estimate (they are the outliers being protected);
      the other rows are quantized. In ``eval()`` mode nothing is protected and the range is
      frozen. Before any training step the range of the input itself is used (not stored).
    * A training batch holding a NaN or an infinity is skipped by the range update
      (:meth:`observe`): the tracked range never holds a non-finite value.

    Whether a range is tracked is the ``initialized`` buffer; it is read on the host only until
    it is seen set (after that, training and inference steps do not sync on it). Loading a
    state dict makes it read again.
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, percentile: float | None = None,
                 momentum: float = 0.01, sample_size: int = 2 ** 18):
        super().__init__()
        self.bits = check_bits(bits)
        self.symmetric = bool(symmetric)
        self.percentile = check_percentile(percentile)
        self.momentum = check_fraction(momentum, "momentum")
        self.sample_size = check_positive_int(sample_size, "sample_size", minimum=2)
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self._tracking = False  # host mirror of ``initialized``, once it is known to be set

    def _is_tracking(self) -> bool:
        """Whether a range is tracked (a host read of the buffer only while it was not seen set)."""
        if not self._tracking:
            self._tracking = bool(self.initialized)
        return self._tracking

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._tracking = False  # the loaded buffer decides again

    def batch_range(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(low, high) of ``x``: min/max or the percentile pair."""
        flat = x.detach().reshape(-1).float()
        if self.percentile is None:
            return flat.min(), flat.max()
        if flat.numel() > self.sample_size:
            gen = torch.Generator(device=flat.device).manual_seed(0)
            idx = torch.randint(0, flat.numel(), (self.sample_size,), generator=gen, device=flat.device)
            flat = flat.index_select(0, idx)
        p = max(self.percentile, 100.0 - self.percentile) / 100.0
        n = flat.numel()
        tail = n - min(n, max(1, math.ceil(p * n))) + 1  # the k_hi-th smallest is the tail-th largest
        if 4 * tail > n:  # wide tails: an O(n) selection
            return flat.kthvalue(tail).values, flat.kthvalue(n + 1 - tail).values
        return flat.topk(tail, largest=False).values.max(), flat.topk(tail).values.min()  # narrow tails: cheaper

    @torch.no_grad()
    def observe(self, x: Tensor) -> None:
        """Update the tracked range with a batch of values.

        A batch that holds a NaN or an infinity is skipped: the tracked range (and
        ``initialized``) stay as they were, so the state never holds a non-finite value and later
        batches are quantized on a sound grid. The test is on the batch's own range (a NaN or an
        infinity makes its min or max non-finite), on the device, with no host read."""
        if x.numel() == 0:
            return
        lo, hi = self.batch_range(x)
        ok = torch.isfinite(lo) & torch.isfinite(hi)
        if not self._is_tracking():
            self.lo.copy_(torch.where(ok, lo, self.lo))
            self.hi.copy_(torch.where(ok, hi, self.hi))
            self.initialized.logical_or_(ok)
            self._tracking = False  # read again next time: a skipped first batch leaves it unset
        else:
            self.lo.add_(torch.where(ok, self.momentum * (lo - self.lo), torch.zeros_like(self.lo)))
            self.hi.add_(torch.where(ok, self.momentum * (hi - self.hi), torch.zeros_like(self.hi)))

    def params(self, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Scale and zero point of the tracked range (of ``x`` if nothing was tracked yet)."""
        if self._is_tracking() or x is None:
            lo, hi = self.lo, self.hi
        else:
            lo, hi = self.batch_range(x)
        return _quant_params(lo, hi, self.bits, self.symmetric)

    def forward(self, x: Tensor, protect: Tensor | None = None) -> Tensor:
        if x.layout == torch.sparse_csr:
            return self._forward_csr(x, protect)
        if x.layout != torch.strided:
            raise TypeError(f"Quantizer needs a dense or CSR tensor, got layout {x.layout}")
        if not self.training:
            protect = None
        if protect is not None and (protect.dtype != torch.bool or protect.shape != x.shape[:1]):
            raise ValueError(f"protect must be a bool tensor of shape [{x.size(0)}], got "
                             f"{protect.dtype} {list(protect.shape)}")
        if self.training:
            self.observe(x if protect is None else x[~protect])
        scale, zp = self.params(x)
        out = _fake_quantize(x, scale, zp, self.bits, self.symmetric)
        if protect is not None:
            out = torch.where(protect.view(-1, *([1] * (x.dim() - 1))), x, out)
        return out

    def _forward_csr(self, x: Tensor, protect: Tensor | None) -> Tensor:
        """Sparse (CSR) features, e.g. bag-of-words: quantize the stored values; the implicit
        zeros are exact because every range contains 0. Ranges come from the stored values."""
        crow = x.crow_indices()
        rows = None
        if protect is not None and self.training:
            if protect.dtype != torch.bool or protect.shape != x.shape[:1]:
                raise ValueError(f"protect must be a bool tensor of shape [{x.size(0)}], got "
                                 f"{protect.dtype} {list(protect.shape)}")
            rows = torch.repeat_interleave(torch.arange(x.size(0), device=x.device), crow[1:] - crow[:-1],
                                           output_size=x.values().numel())  # known size: no host sync
        vals = self.forward(x.values(), None if rows is None else protect[rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(crow, x.col_indices(), vals, x.shape, check_invariants=False)

    def extra_repr(self) -> str:
        rng = "min/max" if self.percentile is None else f"percentile={self.percentile}"
        return f"bits={self.bits}, {'symmetric' if self.symmetric else 'asymmetric'}, {rng}, momentum={self.momentum}"


# ----------------------------------------------------------------------------- stochastic protection

def in_degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    """In-degree of every node (edges ``j -> i`` stored as ``(j, i)``, PyG's flow)."""
    num_nodes = check_positive_int(num_nodes, "num_nodes")
    edge_index = check_edge_index(edge_index, num_nodes)  # an id >= num_nodes would lengthen the result
    return torch.bincount(edge_index[1], minlength=num_nodes)


def adjacency_in_degree(adj: SparseAdjacency) -> Tensor:
    """Stored entries per row of a CSR operator: the in-degree (plus one for an added self-loop,
    which shifts every node alike and so leaves :func:`protection_probability` unchanged)."""
    crow = adj.matrix.crow_indices()
    return crow[1:] - crow[:-1]


def protection_probability(degree: Tensor, p_min: float = 0.0, p_max: float = 0.1) -> Tensor:
    """Degree-Quant's per-node protection probability.

    ``p_i = p_min + (p_max - p_min) * F(d_i)`` with ``F`` the empirical distribution of the
    in-degrees (the fraction of nodes whose degree is at most ``d_i``). It is monotone in the
    degree, equal for equal degrees, ``p_max`` for the highest degree, and never below
    ``p_min``; ranking by degree rather than scaling by it keeps one hub from squashing all
    other nodes' probabilities to ``p_min``.
    """
    p_min = check_probability(p_min, "p_min")
    p_max = check_probability(p_max, "p_max")
    if p_min > p_max:
        raise ValueError(f"p_min must be <= p_max, got p_min={p_min}, p_max={p_max}")
    if degree.dim() != 1 or degree.numel() == 0 or degree.is_floating_point():
        raise ValueError(f"degree must be a non-empty 1-D integer tensor, got {degree.dtype} {list(degree.shape)}")
    if bool((degree < 0).any()):
        raise ValueError("degree must be non-negative")
    return _protection_probability(degree, p_min, p_max)


def _protection_probability(degree: Tensor, p_min: float, p_max: float) -> Tensor:
    """:func:`protection_probability` without the argument checks. ``F(d_i)``, the number of
    degrees ``<= d_i`` over ``N``, is found by sorting and searching rather than with
    ``bincount``, which reads the largest degree back to the host on a GPU: no sync per step."""
    at_most = torch.searchsorted(torch.sort(degree).values, degree, right=True)
    return p_min + (p_max - p_min) * (at_most.float() / degree.numel())


def sample_protection(prob: Tensor, training: bool = True, generator: torch.Generator | None = None) -> Tensor | None:
    """One Bernoulli draw per node: ``True`` = kept in full precision this step. At
    evaluation (``training=False``) returns ``None``: nobody is protected. The draws are made
    on ``prob``'s device; a ``generator`` of another device seeds one there
    (:func:`~msgnn_lite.utils.device_generator`; pass one of ``prob``'s device in a loop)."""
    if not training:
        return None
    generator = device_generator(generator, prob.device)
    return torch.rand(prob.shape, generator=generator, device=prob.device) < prob


# ----------------------------------------------------------------------------- quantized layers

class _QConv(nn.Module):
    normalization = "gcn"

    def _quantizers(self, bits, percentile, momentum, symmetric):
        self.bits = check_bits(bits)
        kw = dict(bits=bits, percentile=percentile, momentum=momentum, symmetric=symmetric)
        self.q_in, self.q_msg, self.q_agg = Quantizer(**kw), Quantizer(**kw), Quantizer(**kw)

    def __repr__(self) -> str:
        q = self.q_in
        rng = "min/max" if q.percentile is None else f"p{q.percentile}"
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, bits={self.bits}, {rng})"


class QGCNConv(_QConv):
    """:class:`~msgnn_lite.models.GCNConv` with fake-quantized input, weight, messages ``x W``
    and aggregated output ``A (x W)``. Same parameter names (``lin.weight``, ``bias``), so an FP32
    ``GCNConv`` state dict loads with ``strict=False`` (the quantizer ranges start untracked)."""

    normalization = "gcn"

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, bits: int = 8,
                 percentile: float | None = None, momentum: float = 0.01, symmetric: bool = False):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._quantizers(bits, percentile, momentum, symmetric)
        nn.init.xavier_uniform_(self.lin.weight)

    def forward(self, x: Tensor, adj, protect: Tensor | None = None) -> Tensor:
        check_float_features(x)
        adj = as_adjacency(adj, x.size(0), self.normalization, type(self).__name__)
        x = self.q_in(x, protect)
        h = self.q_msg(linear(x, fake_quantize_weight(self.lin.weight, self.bits)), protect)
        out = self.q_agg(propagate(adj, h), protect)
        return out + self.bias if self.bias is not None else out


class QSAGEConv(_QConv):
    """:class:`~msgnn_lite.models.SAGEConv` (mean) with the same quantization points: input,
    both weights, messages ``x W_l`` and the aggregated mean. Parameter names ``lin_l``, ``lin_r``."""

    normalization = "mean"

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, bits: int = 8,
                 percentile: float | None = None, momentum: float = 0.01, symmetric: bool = False):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.lin_l = nn.Linear(in_channels, out_channels, bias=bias)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)
        self._quantizers(bits, percentile, momentum, symmetric)

    def forward(self, x: Tensor, adj, protect: Tensor | None = None) -> Tensor:
        check_float_features(x)
        adj = as_adjacency(adj, x.size(0), self.normalization, type(self).__name__)
        x = self.q_in(x, protect)
        h = self.q_msg(linear(x, fake_quantize_weight(self.lin_l.weight, self.bits)), protect)
        out = self.q_agg(propagate(adj, h), protect)
        if self.lin_l.bias is not None:
            out = out + self.lin_l.bias
        return out + linear(x, fake_quantize_weight(self.lin_r.weight, self.bits))


class _QStack(nn.Module):
    """Quantized convolutions with ReLU and dropout between, and Degree-Quant's protection.

    ``p_max = 0`` and ``percentile=None`` give plain QAT; ``p_min=0, p_max=0.1,
    percentile=99.9`` Degree-Quant. Each training forward draws one protection mask per node
    from the in-degree of the graph operator and applies it in every layer; ``eval()``
    quantizes every node.
    """

    conv_cls: type = QGCNConv

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5, bits: int = 8, percentile: float | None = None, momentum: float = 0.01,
                 p_min: float = 0.0, p_max: float = 0.0, symmetric: bool = False):
        super().__init__()
        num_layers = check_positive_int(num_layers, "num_layers")
        check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        self.p_min, self.p_max = check_probability(p_min, "p_min"), check_probability(p_max, "p_max")
        if self.p_min > self.p_max:
            raise ValueError(f"p_min must be <= p_max, got p_min={p_min}, p_max={p_max}")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
        self.convs = nn.ModuleList(self.conv_cls(a, b, bits=bits, percentile=percentile, momentum=momentum,
                                                 symmetric=symmetric) for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout
        self.bits = check_bits(bits)
        self.normalization = self.conv_cls.normalization

    def protection(self, adj: SparseAdjacency) -> Tensor | None:
        """This step's protection mask (``None`` in eval mode or when ``p_max = 0``)."""
        if not self.training or self.p_max == 0.0:
            return None
        return sample_protection(_protection_probability(adjacency_in_degree(adj), self.p_min, self.p_max))

    def forward(self, x: Tensor, adj, protect: Tensor | None = None) -> Tensor:
        check_float_features(x)
        adj = cached_adjacency(adj, x.size(0), self.normalization) if isinstance(adj, Tensor) \
            else as_adjacency(adj, x.size(0), self.normalization, type(self).__name__)
        if protect is None:
            protect = self.protection(adj)
        x = feature_dropout(x, self.dropout, self.training)  # dense or CSR features
        for i, conv in enumerate(self.convs):
            x = conv(x, adj, protect)
            if i < len(self.convs) - 1:
                x = F.dropout(F.relu(x), self.dropout, self.training)
        return x


class QGCN(_QStack):
    """A quantization-aware multi-layer GCN."""

    conv_cls = QGCNConv


class QSAGE(_QStack):
    """A quantization-aware multi-layer GraphSAGE-mean model."""

    conv_cls = QSAGEConv


# ----------------------------------------------------------------------------- size on disk

def pack_bits(q: Tensor, bits: int) -> Tensor:
    """Pack integer codes of ``bits`` in {2, 4, 8} bits into bytes (``8 // bits`` codes per
    uint8, little end first). ``q`` holds signed codes in ``[-2^(b-1), 2^(b-1))``."""
    bits = check_bits(bits)
    if bits not in (2, 4, 8):
        raise ValueError(f"bits must be 2, 4 or 8 for byte packing, got {bits}")
    per = 8 // bits
    if q.is_floating_point() or q.is_complex():
        raise TypeError(f"q must hold integer codes (e.g. int8 from quantize), got dtype {q.dtype}")
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if q.numel() and (int(q.min()) < lo or int(q.max()) > hi):
        raise ValueError(f"q holds codes outside [{lo}, {hi}], the range of {bits}-bit signed codes "
                         f"(min {int(q.min())}, max {int(q.max())}); they would wrap around silently")
    u = (q.reshape(-1).to(torch.int16) + 2 ** (bits - 1)).to(torch.uint8)  # offset codes to [0, 2^b)
    pad = (-u.numel()) % per
    if pad:
        u = torch.cat([u, u.new_zeros(pad)])
    u = u.view(-1, per)
    out = torch.zeros(u.size(0), dtype=torch.uint8, device=q.device)
    for k in range(per):
        out |= u[:, k] << (k * bits)
    return out


def unpack_bits(packed: Tensor, bits: int, numel: int) -> Tensor:
    """Inverse of :func:`pack_bits`: the first ``numel`` signed codes as int8."""
    bits = check_bits(bits)
    if bits not in (2, 4, 8):
        raise ValueError(f"bits must be 2, 4 or 8 for byte packing, got {bits}")
    per, mask = 8 // bits, 2 ** bits - 1
    parts = [(packed >> (k * bits)) & mask for k in range(per)]
    codes = torch.stack(parts, 1).reshape(-1)[:numel]
    return (codes.to(torch.int16) - 2 ** (bits - 1)).to(torch.int8)


def quantized_state_dict(model: nn.Module, bits: int) -> dict[str, Tensor]:
    """What an integer deployment stores: every weight matrix as packed ``bits``-bit codes
    plus its FP32 scale; vectors (biases) in FP32 (an integer kernel would keep them as int32:
    the same 4 bytes); each activation quantizer's scale and zero point (FP32).
    ``bits = 32`` returns the FP32 parameters unchanged for comparison."""
    if bits == 32:
        return {k: v.detach() for k, v in model.named_parameters()}
    bits = check_bits(bits)
    out: dict[str, Tensor] = {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            m = p.detach().abs().max()
            scale, _ = _quant_params(-m, m, bits, symmetric=True)
            q = _quantize(p.detach(), scale, 0.0, bits, symmetric=True)
            out[name + ".codes"] = pack_bits(q, bits) if bits in (2, 4, 8) else q
            out[name + ".scale"] = scale.reshape(1)
        else:
            out[name] = p.detach().float()
    for name, mod in model.named_modules():
        if isinstance(mod, Quantizer):
            scale, zp = mod.params()
            out[name + ".scale_zero_point"] = torch.stack([scale, zp])
    return out


def state_bytes(state: dict[str, Tensor]) -> int:
    """Bytes of the tensors in a state dict."""
    return sum(t.numel() * t.element_size() for t in state.values())


def model_size_bytes(model: nn.Module, bits: int) -> int:
    """Size of ``model`` stored with ``bits``-bit weights (32: FP32), from real packed tensors."""
    return state_bytes(quantized_state_dict(model, bits))


# ----------------------------------------------------------------------------- real integer inference

def _int8_matmul(a: Tensor, b_t: Tensor) -> Tensor:
    """int8 ``a [M, K]`` @ int8 ``b_t.T`` -> int32 ``[M, N]``; ``b_t`` is ``[N, K]`` (a weight).
    ``torch._int_mm`` on the CPU takes any shape; CUDA's kernel needs M > 16 and K, N multiples
    of 8, so there the operands are padded with zeros (which add nothing)."""
    if a.device.type == "cuda":
        m, k = a.shape
        n = b_t.size(0)
        pk, pn, pm = (-k) % 8, (-n) % 8, max(0, 17 - m)
        a = F.pad(a, (0, pk, 0, pm))
        b_t = F.pad(b_t, (0, pk, 0, pn))
        return torch._int_mm(a, b_t.t())[:m, :n]
    return torch._int_mm(a, b_t.t())


def integer_linear(x_q: Tensor, x_scale, x_zero_point, w_q: Tensor, w_scale, bits: int = 8) -> Tensor:
    """``dequant(x) @ dequant(w).T`` computed in integers: int8 x int8 -> int32 accumulate, then one
    float rescale. ``x_q`` from :func:`quantize` (asymmetric, int8-shifted), ``w_q`` symmetric.

    With ``x ~ s_x (q_x - z_x)`` and ``w ~ s_w q_w``:
    ``x w^T = s_x s_w (q_x q_w^T - z_x 1 q_w^T)``, the correction being a per-column sum of ``q_w``.
    Exact in int32 while ``K * 127 * 128 < 2^31`` (K up to ~130k input features).
    """
    if bits > 8:
        raise ValueError(f"bits must be <= 8 for int8 kernels, got {bits}")
    if x_q.dtype != torch.int8 or w_q.dtype != torch.int8:
        raise TypeError(f"x_q and w_q must be int8 (from quantize(..., bits<=8)), got {x_q.dtype}, {w_q.dtype}")
    shift = 2 ** (bits - 1)
    zp = (torch.as_tensor(x_zero_point) - shift).to(torch.int32).to(x_q.device)  # zero point of the shifted codes
    acc = _int8_matmul(x_q, w_q)
    acc = acc - zp * w_q.to(torch.int32).sum(1)
    return acc.float() * (torch.as_tensor(x_scale, device=x_q.device) * torch.as_tensor(w_scale, device=x_q.device))


@torch.no_grad()
def integer_forward(model: _QStack, x: Tensor, adj, x_q: Tensor | None = None) -> Tensor:
    """Inference of a trained :class:`QGCN` / :class:`QSAGE` (``bits <= 8``) with every dense
    product ``x W`` in int8 arithmetic. Equal to ``model.eval()(x, adj)`` up to float rounding.

    ``x_q``: the input features already quantized with the first layer's input quantizer
    (features are static data, so a deployment stores them as int8 once); otherwise they are
    quantized here. The sparse aggregation runs on the dequantized messages in FP32 (torch has
    no integer sparse kernel).
    """
    if not isinstance(model, _QStack):
        raise TypeError(f"model must be a QGCN or QSAGE, got {type(model).__name__}")
    if model.bits > 8:
        raise ValueError(f"integer_forward needs a model with bits <= 8, got bits={model.bits}")
    model.eval()
    bits = model.bits
    if x.layout != torch.strided:
        x = x.to_dense()
    adj = cached_adjacency(adj, x.size(0), model.normalization) if isinstance(adj, Tensor) \
        else as_adjacency(adj, x.size(0), model.normalization)

    def int_lin(xq, s, z, weight):
        m = weight.abs().max()
        ws, _ = _quant_params(-m, m, bits, symmetric=True)  # unchecked twins: no host read per layer
        return integer_linear(xq, s, z, _quantize(weight, ws, 0.0, bits, symmetric=True), ws, bits)

    for i, conv in enumerate(model.convs):
        s, z = conv.q_in.params(x)
        if i == 0 and x_q is not None:
            q = x_q
        else:
            q = _quantize(x, s, z, bits)
        first = conv.lin.weight if isinstance(conv, QGCNConv) else conv.lin_l.weight
        h = conv.q_msg(int_lin(q, s, z, first))
        out = conv.q_agg(propagate(adj, h))
        if isinstance(conv, QGCNConv):
            out = out + conv.bias if conv.bias is not None else out
        else:
            if conv.lin_l.bias is not None:
                out = out + conv.lin_l.bias
            out = out + int_lin(q, s, z, conv.lin_r.weight)
        x = F.relu(out) if i < len(model.convs) - 1 else out
    return x


# ----------------------------------------------------------------------------- experiments (notebook 11, bench)

def qat_configs(p_min: float = 0.0, p_max: float = 0.1, percentile: float = 99.9, bits=(8, 4)) -> dict:
    """The compared set-ups: FP32, plain QAT (min/max ranges, no protection) and Degree-Quant
    (percentile ranges + stochastic protection) at each bit width. ``None`` means FP32."""
    p_min, p_max = check_probability(p_min, "p_min"), check_probability(p_max, "p_max")
    if p_min > p_max:
        raise ValueError(f"p_min must be <= p_max, got p_min={p_min}, p_max={p_max}")
    percentile = check_percentile(percentile)
    bits = [check_bits(b, "bits") for b in (bits if isinstance(bits, (list, tuple)) else [bits])]
    out: dict = {"FP32": None}
    for b in bits:
        out[f"QAT INT{b}"] = dict(bits=b)
        out[f"DQ INT{b}"] = dict(bits=b, percentile=percentile, p_min=p_min, p_max=p_max)
    return out


def train_qat_grid(data, configs: dict, seeds, arch: str = "GCN", hidden: int = 64, epochs: int = 200,
                   lr: float = 0.01, weight_decay: float = 5e-4, momentum: float = 0.01, device="auto",
                   keep: set | None = None, mlp: bool = False):
    """Train every configuration with every seed (same initial weights per seed across
    configurations); returns ``(runs, models)``: a DataFrame with one row per run
    (validation-selected ``test_acc`` in %) and the trained models whose ``(config, seed)``
    is in ``keep`` (on ``device``). A copy of ``data`` is moved to ``device`` once for all runs.
    ``mlp=True`` adds, per seed, a graph-free FP32 MLP of the same width under the same budget
    (model ``"MLP (no graph)"``): the floor a quantized GNN's comparison is judged above."""
    import pandas as pd

    from .models import GCN, MLP, SAGE
    from .train import fit
    from .utils import resolve_device, seed_everything

    if arch not in ("GCN", "SAGE"):
        raise ValueError(f"arch must be 'GCN' or 'SAGE', got {arch!r}")
    device = resolve_device(device)
    data = to_device(data, device)
    fp_cls, q_cls = (GCN, QGCN) if arch == "GCN" else (SAGE, QSAGE)
    classes = int(getattr(data, "num_classes", int(data.y.max()) + 1))
    rows, models = [], {}
    runs = list(configs.items()) + ([("MLP (no graph)", "mlp")] if mlp else [])
    for label, cfg in runs:
        for s in seeds:
            seed_everything(int(s))
            model = (MLP(data.num_features, hidden, classes) if cfg == "mlp" else
                     fp_cls(data.num_features, hidden, classes) if cfg is None else
                     q_cls(data.num_features, hidden, classes, momentum=momentum, **cfg))
            res = fit(model, data, epochs=epochs, lr=lr, weight_decay=weight_decay, measure_memory=False,
                      device=device, seed=int(s), desc=f"{arch} {label}")
            rows.append({"dataset": getattr(data, "name", "graph"), "arch": arch, "model": label, "seed": int(s),
                         "test_acc": 100 * res.test_acc, "val_acc": 100 * res.best_val_acc,
                         "best_epoch": res.best_epoch, "epoch_ms": 1000 * res.train_time_s / res.epochs_run})
            if keep and (label, int(s)) in keep:
                models[(label, int(s))] = model
    return pd.DataFrame(rows), models


def int8_inference_timings(fp_model: nn.Module, q_model: _QStack, data, repeat: int = 5):
    """CPU inference time of an FP32 model and of an INT8 :class:`QGCN`/:class:`QSAGE` run with
    :func:`integer_forward`, on the whole graph, plus the first layer's dense product alone.
    Returns a DataFrame (seconds, speedup vs the FP32 dense forward, test accuracy in %).

    CPU-only by design (the question is int8 kernels for CPU deployment): the models are
    *copied* to the CPU, so models trained on a GPU stay there, and so is the data."""
    import copy

    import pandas as pd

    from .utils import timeit
    from .train import accuracy

    cpu = torch.device("cpu")
    fp_model, q_model = copy.deepcopy(fp_model).to(cpu).eval(), copy.deepcopy(q_model).to(cpu).eval()
    data = to_device(data, cpu)
    x = data.x.to_dense() if data.x.layout != torch.strided else data.x
    x_csr = x.to_sparse_csr()
    adj = cached_adjacency(data.edge_index, data.num_nodes, q_model.normalization)
    fp_adj = cached_adjacency(data.edge_index, data.num_nodes, getattr(fp_model, "normalization", "gcn"))
    conv0 = q_model.convs[0]
    s, z = conv0.q_in.params()
    x_q = quantize(x, s, z, q_model.bits)
    w = (conv0.lin if isinstance(conv0, QGCNConv) else conv0.lin_l).weight.detach()
    ws, _ = quant_params(-w.abs().max(), w.abs().max(), q_model.bits, symmetric=True)
    w_q = quantize(w, ws, 0.0, q_model.bits, symmetric=True)
    test = data.test_mask
    cases = {
        "FP32 forward (dense features)": (lambda: fp_model(x, fp_adj), True),
        "FP32 forward (CSR features)": (lambda: fp_model(x_csr, fp_adj), True),
        "INT8 fake-quant simulation": (lambda: q_model(x, adj), True),
        "INT8 integer forward": (lambda: integer_forward(q_model, x, adj), True),
        "INT8 integer forward (int8 features stored)": (lambda: integer_forward(q_model, x, adj, x_q=x_q), True),
        "first layer x W: FP32 GEMM": (lambda: F.linear(x, w), False),
        "first layer x W: int8 GEMM (torch._int_mm)": (lambda: torch._int_mm(x_q, w_q.t()), False),
    }
    rows = []
    with torch.no_grad():
        for name, (fn, is_model) in cases.items():
            t = timeit(fn, cpu, repeat=repeat)
            acc = 100 * accuracy(fn()[test], data.y[test]) if is_model else float("nan")
            rows.append({"case": name, "seconds": t, "test_acc": acc})
    df = pd.DataFrame(rows).set_index("case")
    df["speedup"] = float("nan")
    df.loc[df.index[:5], "speedup"] = df.seconds.iloc[0] / df.seconds.iloc[:5]
    df.loc[df.index[5:], "speedup"] = df.seconds.iloc[5] / df.seconds.iloc[5:]
    return df
