"""Reversible GNNs (RevGNN): activation memory that does not grow with depth.

Li, Müller, Ghanem & Koltun, "Training Graph Neural Networks with 1000 Layers" (ICML 2021).

A *grouped reversible block* splits the ``C`` node-feature channels into ``G`` groups
``X_1 .. X_G`` and computes (``f_i`` = norm -> ReLU -> dropout -> graph convolution)::

    Y_0 = X_2 + ... + X_G
    Y_i = X_i + f_i(Y_{i-1})          for i = 1 .. G

Its input is recovered exactly from its output, group by group in reverse::

    X_i = Y_i - f_i(Y_{i-1})          for i = G .. 2
    X_1 = Y_1 - f_1(X_2 + ... + X_G)

so a stack of ``L`` blocks need not keep any activation for the backward pass.
:class:`ReversibleStack` runs the whole stack as *one* autograd function: the forward
pass keeps only the last output; the backward pass walks the blocks from the top and,
group by group, evaluates each branch ``f_i`` once with autograd on: that one value both
reconstructs the block's input (the inverse) and carries the gradient, and is freed
before the next group. Activation memory is that of one branch, whatever ``L`` is; the
price is one extra forward evaluation per block. A plain Python loop (no recursion, no
per-layer host sync) handles any depth.

Dropout masks must be identical in the forward pass, the inverse and the
recomputation. Each block draws its mask from its own integer seed (8 bytes per
layer instead of an ``N x C`` mask), so the backward pass regenerates it exactly.
``shared_dropout_mask=True`` reuses one mask for every block, as the paper's code does.

On a GPU nothing in the per-layer loops waits for the device: the per-layer seeds are drawn
once per step on the CPU generator (host integers, no device tensor read back), each mask is
drawn on the activations' device from a generator reused per device and thread (reseeding a
generator is a host operation; creating one per layer is not free), and no value is read
back from the device inside the forward or backward sweep.

BatchNorm: the forward pass updates the running statistics once; the inverse and the
recomputation normalize with the batch statistics without touching them.

Training 1000 layers from scratch: ``RevGNN(gate=T/L, identity_init=1.0, input_norm=True)``
adds a learnable scalar gate per block (ReZero / SkipInit; at ``T/L`` the stack integrates
``dh/dt = f(h)`` over time ``T`` at any depth), identity-mapped branch weights at
initialisation (GCNII) and a normalised encoder output. The block, its inverse and the
exact reversible gradients are unchanged (the gate is one more branch parameter).

Also here: :class:`ResGNN` (the plain pre-activation residual GNN of DeeperGCN, same
skeleton; its activations grow linearly with depth), weight tying
(``RevGNN(weight_tying=True)``: one block applied ``L`` times), and
:func:`measure_training_step` (activation / parameter / optimizer memory and time of
one step, including the transient memory of RevGNN's per-block recomputation).
The deep-equilibrium variant lives in :mod:`msgnn_lite.deq`.
"""
from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_fraction, check_option, check_positive_int
from .memory import MB, SavedTensorMeter, measure_step
from .models import GCNConv, SAGEConv, as_adjacency, feature_dropout, linear
from .sparse import SparseAdjacency, cached_adjacency, propagate
from .utils import sync, to_device

__all__ = ["Norm", "RevBlock", "ResBlock", "ReversibleStack", "reversible_stack", "dropout_mask", "RevGNN", "ResGNN",
           "StepMeasurement", "measure_training_step", "memory_vs_depth", "NORMS", "CONVS"]

NORMS = ("batch", "layer", "none")
CONVS = {"gcn": GCNConv, "sage": SAGEConv}


class Norm(nn.Module):
    """BatchNorm / LayerNorm / identity whose BatchNorm can skip the running-statistics
    update (``update_stats=False``), for the inverse and the recomputation."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        self.kind = check_option(kind, "norm", NORMS)
        self.norm = {"batch": lambda: nn.BatchNorm1d(channels), "layer": lambda: nn.LayerNorm(channels),
                     "none": lambda: None}[kind]()

    def reset_parameters(self) -> None:
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, x: Tensor, update_stats: bool = True) -> Tensor:
        if self.norm is None:
            return x
        if self.kind == "batch" and self.training and not update_stats:
            n = self.norm
            return F.batch_norm(x, None, None, n.weight, n.bias, True, 0.0, n.eps)
        return self.norm(x)


_mask_generators = threading.local()  # per thread (autograd's backward may run on its own): device -> Generator


def _seeded_generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``: one object per device and thread, reseeded
    at each call (same numbers as a fresh ``torch.Generator(device).manual_seed(seed)``)."""
    cache = getattr(_mask_generators, "by_device", None)
    if cache is None:
        cache = _mask_generators.by_device = {}
    gen = cache.get(device)
    if gen is None:
        gen = cache[device] = torch.Generator(device=device)
    return gen.manual_seed(seed)


def dropout_mask(like: Tensor, p: float, seed: int | None = None) -> Tensor:
    """A dropout mask (0 or ``1/(1-p)``) shaped like ``like``, on its device; reproducible from
    ``seed`` (``None``: the global generator). ``rand < keep`` is ~3x faster than ``bernoulli_``
    on a CPU."""
    gen = None if seed is None else _seeded_generator(like.device, seed)
    keep = torch.rand(like.shape, generator=gen, device=like.device, dtype=like.dtype) >= p
    return keep.to(like.dtype).div_(1.0 - p)


def group_sum(parts) -> Tensor:
    """``parts[0] + parts[1] + ...`` without Python's ``sum`` start value (one add fewer)."""
    out = parts[0]
    for t in parts[1:]:
        out = out + t
    return out


class RevBlock(nn.Module):
    """A grouped reversible block: ``G`` branches ``f_i`` (norm -> ReLU -> dropout -> conv)
    on ``channels / G`` channels each. ``forward`` and ``inverse`` take the dropout seed."""

    def __init__(self, channels: int, num_groups: int = 2, dropout: float = 0.0, norm: str = "batch",
                 conv: str = "gcn", gate: float | None = None):
        super().__init__()
        channels = check_positive_int(channels, "channels")
        num_groups = check_positive_int(num_groups, "num_groups", minimum=2)
        if channels % num_groups != 0:
            raise ValueError(f"num_groups={num_groups} must divide the hidden channels ({channels}); "
                             f"pick hidden_channels as a multiple of num_groups")
        self.dropout = check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        conv_cls = CONVS[check_option(conv, "conv", CONVS)]
        c = channels // num_groups
        self.channels, self.num_groups = channels, num_groups
        self.norms = nn.ModuleList(Norm(norm, c) for _ in range(num_groups))
        self.convs = nn.ModuleList(conv_cls(c, c) for _ in range(num_groups))
        self.normalization = conv_cls.normalization
        # ReZero / SkipInit: a learnable scalar on the branches, Y_i = X_i + gate * f_i(Y_{i-1}).
        # Initialised at 0, a stack of any depth starts as the identity map (a shallow model).
        self.gate_init = None if gate is None else float(gate)
        self.gate = None if gate is None else nn.Parameter(torch.tensor(self.gate_init))

    def reset_parameters(self) -> None:
        for n, c in zip(self.norms, self.convs):
            n.reset_parameters()
            c.reset_parameters()
        if self.gate is not None:
            with torch.no_grad():
                self.gate.fill_(self.gate_init)

    def _masks(self, x: Tensor, key):
        """The groups' dropout masks from ``key``: ``None`` (no dropout), an int seed (the
        mask is regenerated from it, exactly) or a ready ``[N, C]`` mask tensor."""
        if not self.training or self.dropout == 0.0 or key is None:
            return [None] * self.num_groups
        mask = key if isinstance(key, Tensor) else dropout_mask(x, self.dropout, key)
        return mask.chunk(self.num_groups, dim=-1)

    def branch(self, i: int, x: Tensor, adj, mask: Tensor | None, update_stats: bool = True) -> Tensor:
        """``f_i(x)``: norm -> ReLU -> dropout (the given mask) -> graph convolution (x the gate)."""
        norm, conv = self.norms[i], self.convs[i]
        if norm.kind == "layer":  # direct calls: this runs 3 x groups x layers times per step
            h = F.layer_norm(x, norm.norm.normalized_shape, norm.norm.weight, norm.norm.bias, norm.norm.eps)
        else:
            h = norm(x, update_stats)
        h = F.relu(h)
        if mask is not None:
            h = h * mask
        if type(conv) is GCNConv and isinstance(adj, SparseAdjacency):  # square GCN branch: A (h W) + b
            out = propagate(adj, F.linear(h, conv.lin.weight))
            if conv.bias is not None:
                out = out + conv.bias
        else:
            out = conv(h, adj)
        return out if self.gate is None else out * self.gate

    def forward(self, x: Tensor, adj, seed=None, update_stats: bool = True) -> Tensor:
        """``seed``: the dropout key (``None``, an int seed or a mask tensor, see ``_masks``)."""
        xs = x.chunk(self.num_groups, dim=-1)
        masks = self._masks(x, seed)
        y = group_sum(xs[1:])
        ys = []
        for i in range(self.num_groups):
            y = xs[i] + self.branch(i, y, adj, masks[i], update_stats)
            ys.append(y)
        return torch.cat(ys, dim=-1)

    def inverse(self, y: Tensor, adj, seed=None) -> Tensor:
        """Recover the block's input from its output (no statistics updated)."""
        ys = y.chunk(self.num_groups, dim=-1)
        masks = self._masks(y, seed)
        xs = [None] * self.num_groups
        for i in range(self.num_groups - 1, 0, -1):
            xs[i] = ys[i] - self.branch(i, ys[i - 1], adj, masks[i], update_stats=False)
        xs[0] = ys[0] - self.branch(0, group_sum(xs[1:]), adj, masks[0], update_stats=False)
        return torch.cat(xs, dim=-1)

    def backward_step(self, y: Tensor, grad_y: Tensor, adj, seed, grads: list, index: dict):
        """Reconstruct the input from the output ``y`` and back-propagate ``grad_y`` through
        the block in the same sweep: each branch ``f_i`` is evaluated once, with autograd
        on, and serves both the inverse (``X_i = Y_i - f_i(Y_{i-1})``) and the gradient.
        Only one branch's graph is alive at a time. Parameter gradients are added into
        ``grads[index[id(p)]]``. Returns ``(grad of the input, the input)``."""
        G = self.num_groups
        ys = y.chunk(G, dim=-1)
        g = list(grad_y.chunk(G, dim=-1))  # dL/dY_i, completed from the top group down
        masks = self._masks(y, seed)
        xs = [None] * G
        grad_sum = None
        for i in range(G - 1, -1, -1):  # the inverse's order is also the backward order
            with torch.enable_grad():
                u = (ys[i - 1] if i > 0 else group_sum(xs[1:])).detach().requires_grad_(True)
                out = self.branch(i, u, adj, masks[i], update_stats=False)
                params = [p for p in self.branch_parameters(i) if p.requires_grad]
                du, *dps = torch.autograd.grad(out, [u, *params], g[i], allow_unused=True)
            xs[i] = ys[i] - out.detach()
            del out
            for p, dp in zip(params, dps):
                if dp is not None:
                    k = index[id(p)]
                    grads[k] = dp if grads[k] is None else grads[k] + dp
            if i > 0:
                g[i - 1] = g[i - 1] + du  # Y_{i-1} feeds f_i
            else:
                grad_sum = du  # the sum X_2 + ... + X_G feeds f_1
        grad_x = torch.cat([g[0]] + [gi + grad_sum for gi in g[1:]], dim=-1)
        return grad_x, torch.cat(xs, dim=-1)

    def branch_parameters(self, i: int):
        """The parameters of branch ``f_i`` (its norm, its convolution and the block's gate)."""
        gate = [] if self.gate is None else [self.gate]
        return [*self.norms[i].parameters(), *self.convs[i].parameters(), *gate]


def _identity(t: Tensor) -> Tensor:
    return t


class ReversibleStack(torch.autograd.Function):
    """``y = blocks[L-1](...(blocks[0](x)))`` keeping only ``y`` for backward.

    ``params`` are the distinct parameters of the blocks (tied blocks share them);
    their gradients are accumulated over every block that uses them.
    """

    @staticmethod
    def forward(ctx, x, adj, blocks, seeds, stats, *params):  # type: ignore[override]
        for block, seed in zip(blocks, seeds):
            x = block(x, adj, seed, update_stats=True)
        ctx.adj, ctx.blocks, ctx.stats, ctx.params = adj, blocks, stats, params
        # Keep the output, plus any dropout-mask tensor (one shared mask: saved once).
        slot = {}  # id(mask) -> position in saved_tensors
        for s in seeds:
            if isinstance(s, Tensor):
                slot.setdefault(id(s), (len(slot), s))
        masks = [m for _, m in slot.values()]
        ctx.seeds = [("mask", slot[id(s)][0]) if isinstance(s, Tensor) else s for s in seeds]
        ctx.save_for_backward(x, *masks)
        return x

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        y, *masks = ctx.saved_tensors
        seeds = [masks[s[1]] if isinstance(s, tuple) else s for s in ctx.seeds]
        y = y.detach()
        index = {id(p): k for k, p in enumerate(ctx.params)}
        grads: list = [None] * len(ctx.params)
        # Every block has the same shapes, so the transient memory of one block's
        # recomputation is counted on the first (top) one; the others run under identity
        # hooks (which also hide the recomputation from any outer saved-tensor meter).
        counter = SavedTensorMeter(exclude=ctx.params)
        for k, (block, seed) in enumerate(zip(reversed(ctx.blocks), reversed(seeds))):
            with torch.autograd.graph.saved_tensors_hooks(counter.pack if k == 0 else _identity, _identity):
                grad_y, y = block.backward_step(y, grad_y, ctx.adj, seed, grads, index)
        ctx.stats["recompute_bytes"] = counter.bytes
        return (grad_y, None, None, None, None, *grads)


def reversible_stack(x: Tensor, adj, blocks, seeds, params, stats: dict | None = None) -> Tensor:
    """Apply ``blocks`` in order with O(1) activation memory (see :class:`ReversibleStack`)."""
    return ReversibleStack.apply(x, adj, list(blocks), list(seeds), {} if stats is None else stats, *params)


class _DeepGNN(nn.Module):
    """Shared skeleton: input dropout -> Linear encoder -> ``num_layers`` blocks ->
    norm -> ReLU -> dropout -> Linear decoder."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
                 dropout: float, input_dropout: float | None, norm: str, conv: str, input_norm: bool = False):
        super().__init__()
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.hidden_channels = check_positive_int(hidden_channels, "hidden_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.dropout = check_fraction(dropout, "dropout", low_open=False, high_closed=False)
        self.input_dropout = self.dropout if input_dropout is None else \
            check_fraction(input_dropout, "input_dropout", low_open=False, high_closed=False)
        check_option(norm, "norm", NORMS)
        self.normalization = CONVS[check_option(conv, "conv", CONVS)].normalization
        self.encoder = nn.Linear(in_channels, hidden_channels)
        # Optional parameter-free LayerNorm on the encoded features: the residual stream
        # starts at unit scale whatever the input features' scale (row-normalised
        # bag-of-words encode to ~0.01), so hundreds of branch updates do not drown it.
        self.input_norm = bool(input_norm)
        self.out_norm = Norm(norm, hidden_channels)
        self.decoder = nn.Linear(hidden_channels, out_channels)

    def _scale_branches(self, init_scale: float | None) -> None:
        """Multiply the blocks' convolution weights by ``init_scale`` (``None``:
        ``1/sqrt(num_layers)``, which starts the residual stream with O(1) variance at any
        depth, Fixup / SkipInit style). A value below 1 keeps the sum of hundreds of
        branches from drowning the encoded input at the start of training."""
        scale = self.num_layers ** -0.5 if init_scale is None else float(init_scale)
        self.init_scale = scale
        with torch.no_grad():
            for name, p in self.blocks.named_parameters():
                if ".convs." in f".{name}" or ".conv." in f".{name}":
                    if p.dim() > 1:
                        p.mul_(scale)

    def _identity_init(self, beta: float) -> None:
        """GCNII's identity mapping (Chen et al., 2020) as an initialisation: branch
        convolution weights ``W <- beta * I + (1 - beta) * W``. With ``beta = 1`` and small
        gates the stack starts as a smooth graph diffusion of the encoded features
        (``h <- h + gate * A relu(norm(h))``), the propagation a GNN needs, instead of a sum
        of random maps that cancel out."""
        self.identity_init = float(check_fraction(beta, "identity_init", low_open=False))
        if self.identity_init == 0.0:
            return
        with torch.no_grad():
            for name, p in self.blocks.named_parameters():
                if (".convs." in f".{name}" or ".conv." in f".{name}") and p.dim() == 2 and p.size(0) == p.size(1):
                    p.mul_(1.0 - self.identity_init).add_(torch.eye(p.size(0), dtype=p.dtype, device=p.device),
                                                         alpha=self.identity_init)

    def _adjacency(self, x: Tensor, adj) -> SparseAdjacency:
        if isinstance(adj, Tensor):
            return cached_adjacency(adj, x.size(0), self.normalization)
        return as_adjacency(adj, x.size(0), self.normalization)

    def encode(self, x: Tensor) -> Tensor:
        x = feature_dropout(x, self.input_dropout, self.training)
        h = linear(x, self.encoder.weight, self.encoder.bias)
        return F.layer_norm(h, h.shape[-1:]) if self.input_norm else h

    def decode(self, h: Tensor) -> Tensor:
        h = F.relu(self.out_norm(h))
        h = F.dropout(h, self.dropout, self.training)
        return self.decoder(h)


class RevGNN(_DeepGNN):
    """RevGNN: ``num_layers`` grouped reversible blocks between a Linear encoder and decoder.

    Parameters
    ----------
    num_groups:
        ``G`` >= 2 channel groups per block; must divide ``hidden_channels``. Each branch
        is a ``hidden/G -> hidden/G`` convolution, so a block has ``1/G`` of the
        parameters of a full-width layer.
    weight_tying:
        One block's weights shared by all ``num_layers`` applications.
    reversible:
        ``False`` runs the same network with ordinary autograd (every activation kept):
        the reference for the memory trick, same weights, same dropout masks.
    shared_dropout_mask:
        ``True`` (default, the paper's code): one ``[N, C]`` dropout mask per step, shared
        by all blocks. ``False``: an independent mask per block, regenerated in the
        backward pass from an 8-byte seed. Either way the backward pass sees exactly
        the forward pass's masks.
    conv:
        ``"gcn"`` or ``"sage"`` on the fast CSR propagation path.
    init_scale:
        Factor on the branch convolutions' initial (Glorot) weights; ``None``: ``1/sqrt(num_layers)``.
    gate:
        ``None`` (default): the paper's block. A number: each block gets a learnable scalar
        gate on its branches, ``Y_i = X_i + gate * f_i(Y_{i-1})``, initialised to this value.
        ``gate=0`` is ReZero / SkipInit: the stack starts as the identity map, so a
        1000-layer model starts as the shallow encoder -> decoder network and grows its
        depth's contribution as training proceeds. See :meth:`parameter_groups` for a
        separate learning rate for the gates. With ``L`` layers, ``gate=T/L`` makes the
        stack an explicit-Euler integration of ``dh/dt = f(h)`` over "time" ``T``
        whatever ``L`` is (the neural-ODE view of deep residual networks).
    identity_init:
        ``beta`` in [0, 1]: initialise the branch weights at ``beta * I + (1 - beta) * W_glorot``
        (GCNII's identity mapping). 0 (default): plain Glorot.
    input_norm:
        Parameter-free LayerNorm on the encoder's output (default ``False``).

    After each reversible backward pass, ``last_stats["recompute_bytes"]`` holds the
    largest activation memory of one block's recomputation.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 8,
                 num_groups: int = 2, dropout: float = 0.5, input_dropout: float | None = None,
                 norm: str = "batch", conv: str = "gcn", weight_tying: bool = False, reversible: bool = True,
                 shared_dropout_mask: bool = True, init_scale: float | None = 1.0, gate: float | None = None,
                 identity_init: float = 0.0, input_norm: bool = False):
        super().__init__(in_channels, hidden_channels, out_channels, num_layers, dropout, input_dropout, norm, conv,
                         input_norm)
        num_groups = check_positive_int(num_groups, "num_groups", minimum=2)
        if hidden_channels % num_groups != 0:
            raise ValueError(f"num_groups={num_groups} must divide hidden_channels={hidden_channels}")
        self.num_groups = num_groups
        self.weight_tying = bool(weight_tying)
        self.reversible = bool(reversible)
        self.shared_dropout_mask = bool(shared_dropout_mask)
        n_blocks = 1 if self.weight_tying else self.num_layers
        self.blocks = nn.ModuleList(RevBlock(hidden_channels, num_groups, dropout, norm, conv, gate)
                                    for _ in range(n_blocks))
        self._scale_branches(init_scale)
        self._identity_init(identity_init)
        self.last_stats: dict = {}

    def block_sequence(self) -> list:
        """The block applied at each of the ``num_layers`` layers (the same one when tied)."""
        return [self.blocks[0]] * self.num_layers if self.weight_tying else list(self.blocks)

    def _dropout_keys(self, h: Tensor) -> list:
        """Per layer: ``None`` (no dropout), one ``[N, C]`` mask shared by all layers (drawn on
        ``h``'s device), or an int seed per layer, all drawn at once on the CPU generator: host
        integers, so nothing is read back from a GPU."""
        if not self.training or self.dropout == 0.0:
            return [None] * self.num_layers
        if self.shared_dropout_mask:
            return [dropout_mask(h, self.dropout)] * self.num_layers
        return torch.randint(0, 2**62, (self.num_layers,)).tolist()

    def forward(self, x: Tensor, adj) -> Tensor:
        adj = self._adjacency(x, adj)
        h = self.encode(x)
        blocks, seeds = self.block_sequence(), self._dropout_keys(h)
        params = [p for p in self.blocks.parameters() if p.requires_grad]
        if self.reversible and torch.is_grad_enabled() and (h.requires_grad or params):
            h = reversible_stack(h, adj, blocks, seeds, params, self.last_stats)
        else:
            for block, seed in zip(blocks, seeds):
                h = block(h, adj, seed)
        return self.decode(h)

    def parameter_groups(self, gate_lr: float | None = None, weight_decay: float = 0.0) -> list:
        """Optimizer parameter groups: the gates (learning rate ``gate_lr`` when given, no
        weight decay) and everything else (``weight_decay``)::

            torch.optim.Adam(model.parameter_groups(gate_lr=0.05, weight_decay=5e-4), lr=0.01)
        """
        gates = [b.gate for b in self.blocks if b.gate is not None]
        ids = set(map(id, gates))
        rest = [p for p in self.parameters() if id(p) not in ids]
        groups = [{"params": rest, "weight_decay": weight_decay}]
        if gates:
            groups.append({"params": gates, "weight_decay": 0.0, **({} if gate_lr is None else {"lr": gate_lr})})
        return groups

    def extra_repr(self) -> str:
        return (f"num_layers={self.num_layers}, hidden={self.hidden_channels}, groups={self.num_groups}, "
                f"tied={self.weight_tying}, reversible={self.reversible}")


class ResBlock(nn.Module):
    """DeeperGCN's pre-activation residual block ``x + conv(dropout(relu(norm(x))))``."""

    def __init__(self, channels: int, dropout: float = 0.0, norm: str = "batch", conv: str = "gcn"):
        super().__init__()
        self.norm = Norm(norm, channels)
        self.conv = CONVS[check_option(conv, "conv", CONVS)](channels, channels)
        self.dropout = dropout

    def forward(self, x: Tensor, adj) -> Tensor:
        h = F.dropout(F.relu(self.norm(x)), self.dropout, self.training)
        return x + self.conv(h, adj)


class ResGNN(_DeepGNN):
    """The plain residual GNN (ResGNN / DeeperGCN res+) with RevGNN's skeleton: full-width
    ``hidden -> hidden`` convolutions, every activation kept for backward."""

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 8,
                 dropout: float = 0.5, input_dropout: float | None = None, norm: str = "batch", conv: str = "gcn",
                 init_scale: float | None = 1.0):
        super().__init__(in_channels, hidden_channels, out_channels, num_layers, dropout, input_dropout, norm, conv)
        self.blocks = nn.ModuleList(ResBlock(hidden_channels, dropout, norm, conv) for _ in range(self.num_layers))
        self._scale_branches(init_scale)

    def forward(self, x: Tensor, adj) -> Tensor:
        adj = self._adjacency(x, adj)
        h = self.encode(x)
        for block in self.blocks:
            h = block(h, adj)
        return self.decode(h)


@dataclass
class StepMeasurement:
    """Memory (bytes) and time of one full-batch training step."""

    activations: int
    recompute: int
    parameters: int
    gradients: int
    optimizer: int
    cuda_peak: int | None
    time_s: float
    loss: float

    @property
    def activation_total(self) -> int:
        """Saved-for-backward bytes plus the transient recomputation of one block."""
        return self.activations + self.recompute

    @property
    def param_state(self) -> int:
        """Parameters + gradients + optimizer state."""
        return self.parameters + self.gradients + self.optimizer

    def as_dict(self, unit: int = MB) -> dict:
        out = {"activations": self.activations / unit, "recompute": self.recompute / unit,
               "activation_total": self.activation_total / unit, "parameters": self.parameters / unit,
               "gradients": self.gradients / unit, "optimizer": self.optimizer / unit,
               "param_state": self.param_state / unit, "time_s": self.time_s, "loss": self.loss}
        if self.cuda_peak is not None:
            out["cuda_peak"] = self.cuda_peak / unit
        return out


def measure_training_step(model: nn.Module, data, optimizer: torch.optim.Optimizer | None = None,
                          lr: float = 1e-3) -> StepMeasurement:
    """One full-batch training step (forward, backward, Adam step) on ``data`` (already on
    the model's device), with its memory split into activations (bytes saved for
    backward; for RevGNN plus the largest per-block recomputation), parameters,
    gradients and optimizer state, the CUDA peak on a GPU, and the wall time."""
    device = next(model.parameters()).device
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    adj = cached_adjacency(data.edge_index, data.num_nodes, model.normalization)
    model.train()
    stats = getattr(model, "last_stats", None)
    if stats is not None:
        stats.clear()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        out = model(data.x, adj)
        loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    sync(device)
    t0 = time.perf_counter()
    loss, report = measure_step(model, step, optimizer, device)
    sync(device)
    elapsed = time.perf_counter() - t0
    recompute = int(stats.get("recompute_bytes", 0)) if stats is not None else 0
    return StepMeasurement(report.activations, recompute, report.parameters, report.gradients, report.optimizer,
                           report.cuda_peak, elapsed, loss)


def memory_vs_depth(data, depths, hidden_channels: int = 32, num_groups: int = 2, dropout: float = 0.0,
                    norm: str = "layer", models=("ResGNN", "RevGNN"), max_activation_mb: float = 2048.0,
                    device: str | torch.device = "cpu", seed: int = 0, progress: bool | None = None):
    """One training step per (model, depth) on ``data``: the rows of the paper's
    memory-vs-depth figure, measured. Returns a DataFrame with one row per point and
    the columns of :meth:`StepMeasurement.as_dict` (MB, s) plus ``model``, ``depth``,
    ``measured``. A ResGNN whose activations would exceed ``max_activation_mb``
    (predicted from its measured per-layer growth) is not run: its row holds the linear
    extrapolation, with ``measured=False``."""
    import pandas as pd
    from tqdm.auto import tqdm

    from .train import _progress_enabled
    from .utils import resolve_device, seed_everything

    dev = resolve_device(device)
    data = to_device(data, dev)
    classes = {"ResGNN": ResGNN, "RevGNN": RevGNN}
    rows = []
    todo = [(name, d) for name in models for d in sorted(depths)]
    for name, depth in tqdm(todo, desc="memory vs depth", disable=not _progress_enabled(progress), leave=False):
        done = [r for r in rows if r["model"] == name and r["measured"]]
        if name == "ResGNN" and len(done) >= 2:
            (a, b) = done[-2], done[-1]
            per_layer = (b["activations"] - a["activations"]) / (b["depth"] - a["depth"])
            predicted = b["activations"] + per_layer * (depth - b["depth"])
            if predicted > max_activation_mb:
                scale = depth / b["depth"]
                rows.append({"model": name, "depth": depth, "measured": False, "activations": predicted,
                             "recompute": 0.0, "activation_total": predicted,
                             "parameters": b["parameters"] * scale, "gradients": b["gradients"] * scale,
                             "optimizer": b["optimizer"] * scale, "param_state": b["param_state"] * scale,
                             "time_s": b["time_s"] * scale, "loss": float("nan")})
                continue
        if dev.type == "cuda":  # measure each point on a clean device: nothing of the previous model left
            gc.collect()
            torch.cuda.empty_cache()
        seed_everything(seed)
        kw = dict(num_groups=num_groups) if name == "RevGNN" else {}
        model = classes[name](data.num_features, hidden_channels, int(data.num_classes), num_layers=depth,
                              dropout=dropout, norm=norm, **kw).to(dev)
        if not done:  # the first depth of each model: warm up (adjacency transpose, allocator)
            measure_training_step(model, data)
        m = measure_training_step(model, data)
        rows.append({"model": name, "depth": depth, "measured": True, **m.as_dict()})
        del model
    return pd.DataFrame(rows)
