"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import statistics
import time

import torch

from ..cli import device, nonnegative_int
from ..utils import sync

__all__ = ["timeit", "add_device_argument"]


def timeit(fn, device: torch.device, repeat: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto", type=device,
                        help="'auto' (GPU if present), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
