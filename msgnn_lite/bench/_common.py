"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

from ..cli import device, nonnegative_int
from ..utils import sync, timeit  # noqa: F401 - timeit lives in the library; re-exported for the benches

__all__ = ["timeit", "add_device_argument"]


def add_device_argument(parser) -> None:
    parser.add_argument("--device", default="auto", type=device,
                        help="'auto' (GPU if present), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
