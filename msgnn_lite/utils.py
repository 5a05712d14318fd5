"""Small shared helpers: device choice, seeding, atomic file writes and project paths."""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "seed_everything",
    "atomic_write",
    "atomic_path",
    "repo_root",
    "figures_dir",
    "sync",
]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (or ``None``) into the best available device.

    ``"auto"`` picks CUDA when present, then Apple's MPS, then the CPU. Any other
    value is passed to :class:`torch.device`; asking for CUDA on a machine without
    it raises a clear error instead of failing later inside a kernel.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so CPU runs repeat exactly."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sync(device: torch.device | str) -> None:
    """Wait for queued kernels on ``device`` (needed before reading a wall clock on a GPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success.

    Readers never see a half-written file: either the old content or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write text or bytes to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            tmp.write_text(content, encoding="utf-8")
    return Path(path)


def repo_root() -> Path:
    """The project checkout: ``MSGNN_ROOT`` if set, else the folder above this package
    when it holds ``notebooks/`` (an editable install), else the current folder."""
    env = os.environ.get("MSGNN_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir():
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "msgnn_lite").is_dir() and (candidate / "notebooks").is_dir():
            return candidate
    return cwd


def figures_dir() -> Path:
    """Where figures go: ``MSGNN_FIGURES`` if set, else ``<repo>/figures``."""
    env = os.environ.get("MSGNN_FIGURES")
    path = Path(env) if env else repo_root() / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
