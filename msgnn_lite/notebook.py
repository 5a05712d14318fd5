"""What every notebook does in its first code cell, in one call."""
from __future__ import annotations

import platform

import torch

from .plotting import set_style
from .utils import resolve_device

__all__ = ["PROFILES", "setup", "by_profile", "environment_report"]

PROFILES = ("default", "full", "smoke")
"""``default``: minutes on a CPU, the stored outputs; ``full``: the papers' sizes (a GPU);
``smoke``: every code path at toy sizes, for the tests (``tests/test_any_graph.py``); its
numbers mean nothing."""

_SAME_AS_DEFAULT = object()


def by_profile(profile: str, default, full, smoke=_SAME_AS_DEFAULT):
    """Pick the value for ``profile``: the small CPU-friendly one, the paper-sized one, or, for
    the ``smoke`` profile, ``smoke`` (the default value where none is given)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "smoke":
        return default if smoke is _SAME_AS_DEFAULT else smoke
    return default if profile == "default" else full


def setup(profile: str = "default", device: str = "auto", seed: int = 0) -> torch.device:
    """Check the profile, set the plotting style, seed, and return the device to use."""
    from .utils import seed_everything

    by_profile(profile, None, None)
    set_style()
    seed_everything(seed)
    return resolve_device(device)


def environment_report(device: torch.device | str = "cpu") -> dict:
    """Versions and hardware, for the record at the top of a notebook."""
    import torch_geometric

    dev = torch.device(device)
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "device": str(dev),
        "cpu_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(dev)
        out["gpu_memory_gb"] = round(torch.cuda.get_device_properties(dev).total_memory / 1024**3, 1)
    return out
