"""Honest memory accounting for a training step, on a CPU as well as a GPU.

On a GPU the allocator knows the peak: ``torch.cuda.max_memory_allocated``. A CPU has
no such counter, so we count what dominates GNN training memory directly:

* **activations**: the bytes of the distinct tensor storages that autograd saves for
  the backward pass, counted with :func:`torch.autograd.graph.saved_tensors_hooks`
  (parameters excluded, counted below; a storage saved twice counts once);
* **parameters**, their **gradients**, and the **optimizer state** (e.g. Adam's two moments).

Their sum is a lower bound on the step's peak (it leaves out transient buffers
freed inside a kernel and the graph structure, which :meth:`SparseAdjacency.nbytes`
reports), and it is exactly the part that grows with depth, width and batch size.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["SavedTensorMeter", "parameter_bytes", "optimizer_state_bytes", "MemoryReport", "measure_step"]

MB = 1024**2


def _storage_key(t: torch.Tensor):
    """(identity, bytes, device) of the memory behind ``t``; a sparse tensor counts its index
    and value arrays, not its dense shape."""
    if t.layout in (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc):
        parts = (t.crow_indices(), t.col_indices(), t.values()) if t.layout in (torch.sparse_csr, torch.sparse_bsr) \
            else (t.ccol_indices(), t.row_indices(), t.values())
        return t.values().data_ptr(), sum(p.numel() * p.element_size() for p in parts), t.device
    if t.layout == torch.sparse_coo:
        t = t.coalesce() if not t.is_coalesced() else t
        return t.values().data_ptr(), t.indices().nbytes + t.values().nbytes, t.device
    try:
        storage = t.untyped_storage()
        return storage.data_ptr(), storage.nbytes(), t.device
    except (RuntimeError, NotImplementedError):  # other storage-less tensors
        return id(t), t.numel() * t.element_size(), t.device


class SavedTensorMeter(contextlib.AbstractContextManager):
    """Count the bytes autograd saves for backward inside a ``with`` block.

    ``exclude`` is an iterable of tensors (typically ``model.parameters()``) whose
    storages are not counted. After the block, ``bytes`` holds the total of distinct
    storages, ``peak_bytes`` the most bytes saved at any one moment (for a block with
    several forward/backward passes, e.g. a mini-batch epoch, the largest pass), and
    ``count`` the number of saved tensors.
    """

    def __init__(self, exclude=()):
        self._excluded = {_storage_key(t)[0] for t in exclude}
        self._live: dict = {}  # storage key -> number of live saved tensors that use it
        self._live_bytes = 0
        self.peak_bytes = 0
        self.bytes = 0
        self.count = 0
        self._ctx = None

    def _release(self, key, nbytes: int) -> None:
        left = self._live.get(key, 0) - 1
        if left > 0:
            self._live[key] = left
        elif self._live.pop(key, None) is not None:
            self._live_bytes -= nbytes

    def pack(self, t: torch.Tensor):
        """The pack hook: count ``t``'s storage unless a live saved tensor already uses it.

        Deduplication is by storage address among tensors that are still saved, so an
        address that the allocator reuses after a saved tensor was freed counts again."""
        self.count += 1
        key, nbytes, _ = _storage_key(t)
        if key not in self._excluded:
            live = self._live.get(key, 0)
            if live == 0:
                self.bytes += nbytes
                self._live_bytes += nbytes
                self.peak_bytes = max(self.peak_bytes, self._live_bytes)
            self._live[key] = live + 1
            weakref.finalize(t, self._release, key, nbytes)
        return t

    def __enter__(self):
        self._live.clear()
        self._live_bytes = self.peak_bytes = self.bytes = self.count = 0
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        return False


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters (buffers such as BatchNorm statistics included)."""
    return sum(p.numel() * p.element_size() for p in model.parameters()) + \
        sum(b.numel() * b.element_size() for b in model.buffers())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes of tensors in the optimizer's state (Adam: two moments per parameter)."""
    if optimizer is None:
        return 0
    total = 0
    for state in optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
    return total


@dataclass
class MemoryReport:
    """Memory of one training step, in bytes (``cuda_peak`` only on a GPU)."""

    activations: int
    parameters: int
    gradients: int
    optimizer: int
    cuda_peak: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Activations + parameters + gradients + optimizer state."""
        return self.activations + self.parameters + self.gradients + self.optimizer

    @property
    def peak(self) -> int:
        """The CUDA peak where measured, else the counted total."""
        return self.cuda_peak if self.cuda_peak is not None else self.total

    def as_dict(self, unit: int = MB) -> dict:
        out = {"activations": self.activations / unit, "parameters": self.parameters / unit,
               "gradients": self.gradients / unit, "optimizer": self.optimizer / unit, "total": self.total / unit}
        if self.cuda_peak is not None:
            out["cuda_peak"] = self.cuda_peak / unit
        return out


def measure_step(model: nn.Module, step, optimizer: torch.optim.Optimizer | None = None,
                 device: torch.device | str | None = None) -> tuple[object, MemoryReport]:
    """Run ``step()`` (forward + backward [+ optimizer step]) once and report its memory.

    Returns ``(step's return value, MemoryReport)``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    with SavedTensorMeter(exclude=model.parameters()) as meter:
        out = step()
    cuda_peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        cuda_peak = int(torch.cuda.max_memory_allocated(device))
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    report = MemoryReport(meter.bytes, parameter_bytes(model), grads, optimizer_state_bytes(optimizer), cuda_peak)
    return out, report
