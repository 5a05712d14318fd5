"""A deep-equilibrium GNN (DEQ): an "infinitely deep" weight-tied RevGNN block.

Bai, Kolter & Koltun, "Deep Equilibrium Models" (NeurIPS 2019), as used for GNNs in
Li, Müller, Ghanem & Koltun, "Training Graph Neural Networks with 1000 Layers" (ICML 2021).

Instead of stacking ``L`` tied layers, solve for the fixed point ``z* = F(z*; h)`` of one
grouped block whose skip connection is replaced by the *input injection* ``h`` (the
encoded node features)::

    Y_0 = Z_2 + ... + Z_G,    Y_i = h_i + f_i(Y_{i-1}),    F(Z; h) = [Y_1, ..., Y_G]

* forward: plain fixed-point iteration ``z <- F(z)`` without autograd, until the
  relative change is below ``tol`` (or ``max_iter``);
* backward (implicit function theorem): the gradient ``g`` of the loss w.r.t. ``z*``
  solves ``g = J^T g + dL/dz*`` with ``J = dF/dz`` at ``z*``, again by fixed-point
  iteration on vector-Jacobian products; then one differentiable application of ``F``
  carries ``g`` to the parameters and to ``h``.

Memory is that of one or two block evaluations, whatever the number of iterations.
The dropout mask is drawn once per forward pass and used in every iteration (the map
must not change while we solve for its fixed point).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .checks import check_fraction, check_positive_int
from .revgnn import RevBlock, _DeepGNN, dropout_mask, group_sum

__all__ = ["fixed_point", "DEQGNN"]


def _relative_change(fz: Tensor, z: Tensor) -> Tensor:
    return torch.linalg.vector_norm(fz - z) / (torch.linalg.vector_norm(fz) + 1e-12)


def fixed_point(f, z0: Tensor, max_iter: int = 50, tol: float = 1e-4) -> tuple[Tensor, int, float]:
    """Iterate ``z <- f(z)`` from ``z0`` until ``|f(z) - z| <= tol * |f(z)|`` or ``max_iter``.

    Returns ``(z, iterations, relative residual)``. Checking the residual reads one number
    from the device per iteration. On a GPU the next iterate is queued before that number is
    read, so the host waits for iteration ``k``'s residual while iteration ``k + 1`` runs and the
    device never idles; at convergence that speculative iterate is dropped, so the result and the
    count are those of the plain loop (which the CPU runs, with no wasted iteration).
    """
    speculate = z0.is_cuda
    z, res, k = z0, float("inf"), 0
    fz = f(z)
    for k in range(1, max_iter + 1):
        residual = _relative_change(fz, z)
        ahead = f(fz) if speculate and k < max_iter else None  # queued before the host read
        res = float(residual)
        z = fz
        if res <= tol or k == max_iter:
            break
        fz = ahead if ahead is not None else f(z)
    return z, k, res


class DEQGNN(_DeepGNN):
    """Encoder -> equilibrium of one grouped block (input injection) -> decoder.

    Parameters beyond :class:`~msgnn_lite.revgnn.RevGNN`'s: ``max_iter``/``tol`` for the
    forward solver, ``backward_max_iter``/``backward_tol`` for the implicit backward
    (defaults: the same), ``init_scale`` for the branch convolutions' initial weights.
    After each call ``last_stats`` holds the iterations and final
    residuals of both solves.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_groups: int = 2,
                 dropout: float = 0.5, input_dropout: float | None = None, norm: str = "batch", conv: str = "gcn",
                 max_iter: int = 30, tol: float = 1e-4, backward_max_iter: int | None = None,
                 backward_tol: float | None = None, init_scale: float = 0.5):
        super().__init__(in_channels, hidden_channels, out_channels, 1, dropout, input_dropout, norm, conv)
        self.block = RevBlock(hidden_channels, num_groups, dropout, norm, conv)
        # F must be a contraction near its fixed point for both solves to converge. The
        # normalized branch is scale-invariant in its input, so a tiny injection (e.g.
        # encoded bag-of-words) makes F expansive: normalize h, and start the branch
        # convolutions at `init_scale` x their Glorot scale.
        self.in_norm = nn.LayerNorm(hidden_channels, elementwise_affine=False)
        self.init_scale = float(init_scale)
        self.reset_parameters()
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = check_fraction(tol, "tol")
        self.backward_max_iter = check_positive_int(backward_max_iter or max_iter, "backward_max_iter")
        self.backward_tol = check_fraction(backward_tol or tol, "backward_tol")
        self.last_stats: dict = {}

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.decoder.reset_parameters()
        self.out_norm.reset_parameters()
        self.block.reset_parameters()
        with torch.no_grad():
            for conv in self.block.convs:
                for p in conv.parameters():
                    if p.dim() > 1:
                        p.mul_(self.init_scale)

    def implicit_map(self, z: Tensor, h: Tensor, adj, mask: Tensor | None, update_stats: bool = False) -> Tensor:
        """``F(z; h)``: the grouped block with ``h`` injected in place of its skip connection."""
        b = self.block
        zs, hs = z.chunk(b.num_groups, dim=-1), h.chunk(b.num_groups, dim=-1)
        masks = mask.chunk(b.num_groups, dim=-1) if mask is not None else [None] * b.num_groups
        y, ys = group_sum(zs[1:]), []
        for i in range(b.num_groups):
            y = hs[i] + b.branch(i, y, adj, masks[i], update_stats)
            ys.append(y)
        return torch.cat(ys, dim=-1)

    def forward(self, x: Tensor, adj) -> Tensor:
        adj = self._adjacency(x, adj)
        h = self.in_norm(self.encode(x))
        mask = dropout_mask(h, self.dropout) if self.training and self.dropout > 0 else None
        with torch.no_grad():
            z, iters, res = fixed_point(lambda z: self.implicit_map(z, h, adj, mask), torch.zeros_like(h),
                                        self.max_iter, self.tol)
        self.last_stats = {"forward_iters": iters, "forward_residual": res}
        if torch.is_grad_enabled():
            z = self.implicit_map(z, h, adj, mask, update_stats=True)  # re-attach h and the weights
            z0 = z.detach().requires_grad_(True)
            f0 = self.implicit_map(z0, h.detach(), adj, mask)  # for J^T g products at z*

            def implicit_backward(grad: Tensor) -> Tensor:
                def vjp_step(g):
                    return torch.autograd.grad(f0, z0, g, retain_graph=True)[0] + grad
                g, k, r = fixed_point(vjp_step, grad, self.backward_max_iter, self.backward_tol)
                self.last_stats.update(backward_iters=k, backward_residual=r)
                return g

            z.register_hook(implicit_backward)
        return self.decode(z)

    def extra_repr(self) -> str:
        return (f"hidden={self.hidden_channels}, groups={self.block.num_groups}, "
                f"max_iter={self.max_iter}, tol={self.tol}")
