"""Small shared helpers: device choice, seeding, atomic file writes and project paths."""
from __future__ import annotations

import contextlib
import copy
import os
import random
import statistics
import tempfile
import time
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
    "to_device",
    "device_generator",
    "load_cache",
    "timeit",
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


def to_device(data, device: torch.device | str):
    """``data`` on ``device`` without moving the caller's object.

    PyG's ``Data.to`` works *in place* (it returns the same object), so ``data = data.to(dev)``
    inside a function would also move the caller's graph, and with it every loader or
    partition that holds a reference to it. This returns a shallow copy whose tensors are on
    ``device`` (no copy at all for tensors already there); the caller's ``data`` is untouched.
    """
    dev = torch.device(device)
    if all(t.device == dev for t in _tensors(data)):
        return data
    return copy.copy(data).to(dev)


def _tensors(data):
    for _, value in data:
        if isinstance(value, torch.Tensor):
            yield value


def device_generator(generator: torch.Generator | None, device: torch.device | str) -> torch.Generator | None:
    """A ``torch.Generator`` usable for random numbers on ``device``.

    ``None`` stays ``None`` (torch's global generator of that device). A generator already on
    ``device``'s type is returned as it is. A generator of another device (typically a seeded CPU
    generator handed to a loader whose data is on a GPU) seeds a new generator on ``device``
    from one draw, so the run is still reproducible and the random numbers are made where they
    are used, with no host-to-device copies.
    """
    if generator is None:
        return None
    dev = torch.device(device)
    if generator.device.type == dev.type:
        return generator
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device=dev).manual_seed(seed)


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


def load_cache(path: str | os.PathLike, valid=None):
    """Read a cache file written with ``torch.save`` (loaded with ``weights_only=True``).

    Returns the stored object, or ``None`` when there is nothing usable: no file, or a file that
    cannot be read or whose content ``valid(obj)`` rejects (truncated, damaged, an older format).
    A damaged file is reported once with a warning that names it, then deleted, so that the
    caller rebuilds it and the next run does not trip over it again.
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        problem = None if valid is None or valid(obj) else "unexpected content"
    except Exception as err:  # noqa: BLE001 - zip, pickle, EOF, OS errors of a damaged file
        obj, problem = None, f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
    if problem is None:
        return obj
    warnings.warn(f"cache file {path} is damaged or unreadable ({problem}); deleting it and rebuilding",
                  RuntimeWarning, stacklevel=2)
    with contextlib.suppress(OSError):
        path.unlink()
    return None


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
