"""Shared fixtures: a small CSBM graph and the real datasets' data directory."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from msgnn_lite.data import make_csbm

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """The data directory with the raw benchmark files: ``$MSGNN_DATA``, else a writable
    copy of ``../shared/data`` beside the checkout; tests that need it skip otherwise."""
    env = os.environ.get("MSGNN_DATA")
    if env and (Path(env) / "Planetoid" / "Cora" / "raw").is_dir():
        return Path(env)
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        dst = tmp_path_factory.mktemp("data") / "data"
        shutil.copytree(shared, dst)
        for p in dst.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        return dst
    pytest.skip("no data directory: set MSGNN_DATA to a folder holding Planetoid/Cora/raw etc.")


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=["cpu", "cuda"])
def devices(request) -> torch.device:
    """Each device a test should pass on: the CPU always, CUDA where a GPU is present (the
    cuda case is skipped elsewhere, so CI on a CPU runs the cpu case and a GPU machine runs
    both). Build the test's inputs on this device: the package's rule is that code runs on the
    device of its inputs (CONTRIBUTING.md, "Devices")."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(request.param)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """A private cache folder (METIS partitions, GraphSAINT norms, IBMB node sets) for one test.
    Use it in a module with ``pytestmark = pytest.mark.usefixtures("tmp_cache")``."""
    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def small_graph():
    """A 600-node, 4-class CSBM graph (undirected, no self-loops)."""
    return make_csbm(600, 8, 4, 16, homophily=0.8, seed=0)


@pytest.fixture
def directed_graph():
    """A small directed graph with an isolated node and a self-loop, to catch transposition bugs."""
    edge_index = torch.tensor([[0, 1, 2, 2, 3, 4, 4, 1], [1, 2, 0, 3, 1, 0, 4, 3]])
    return edge_index, 6


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensor ops: one thread avoids oversubscription on a shared CPU. Use it in a
    module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
