"""Datasets: the real benchmarks through PyG's own classes (offline-capable), and
seeded contextual stochastic block models (CSBM) of any size for scaling studies.

The data directory is ``root`` if given, else the ``MSGNN_DATA`` environment
variable, else ``~/.cache/msgnn_lite/data``. Below it the layout is the one PyG's
dataset classes expect::

    <dir>/Planetoid/Cora/raw/ind.cora.*      <dir>/Amazon/Computers/raw/*.npz
    <dir>/Planetoid/CiteSeer/raw/...         <dir>/Coauthor/CS/raw/*.npz
    <dir>/ogb/...                            (OGB, downloaded by the ``ogb`` package)
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import warnings
import shutil
import socket
import urllib.error
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Data

from .checks import check_edge_index, check_finite, check_fraction, check_positive, check_positive_int

__all__ = [
    "DATASETS",
    "DatasetUnavailableError",
    "DatasetIntegrityError",
    "RAW_SHA256",
    "verify_raw_files",
    "data_dir",
    "load_dataset",
    "make_csbm",
    "make_local_csbm",
    "per_class_split",
    "parse_csbm_spec",
    "split_fraction",
    "edge_homophily",
    "describe",
    "sparse_features",
    "FEATURE_NORMALIZATIONS",
    "feature_normalization_for",
    "normalize_features",
]

# name -> (PyG class path, root sub-folder, argument for the class, needs a seeded split)
_PYG = {
    "Cora": ("Planetoid", "Planetoid", "Cora", False),
    "CiteSeer": ("Planetoid", "Planetoid", "CiteSeer", False),
    "PubMed": ("Planetoid", "Planetoid", "PubMed", False),
    "Computers": ("Amazon", "Amazon", "Computers", True),
    "Photo": ("Amazon", "Amazon", "Photo", True),
    "CS": ("Coauthor", "Coauthor", "CS", True),
    "Physics": ("Coauthor", "Coauthor", "Physics", True),
}
_OGB = ("ogbn-arxiv", "ogbn-products", "ogbn-proteins")
DATASETS: tuple[str, ...] = tuple(_PYG) + _OGB
_ALIASES = {n.lower(): n for n in DATASETS}
_ALIASES.update({"amazon-computers": "Computers", "coauthor-cs": "CS", "citeseer": "CiteSeer", "pubmed": "PubMed"})


class DatasetUnavailableError(FileNotFoundError):
    """The dataset's files are not in the data directory and could not be downloaded."""


class DatasetIntegrityError(ValueError):
    """A raw file of a dataset is not the published one (truncated, damaged or replaced)."""


# SHA-256 of the raw files as their authors publish them (Planetoid: the planetoid repository's
# data/; Amazon and Coauthor: Shchur et al.'s gnn-benchmark npz files, byte-identical to what PyG
# downloads). A file that differs would load as a *different* graph (a truncated test.index gives
# a test set of 500 nodes instead of 1000), so it is refused before PyG reads it.
_PLANETOID = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
RAW_SHA256: dict[str, dict[str, str]] = {
    "Cora": dict(zip((f"ind.cora.{s}" for s in _PLANETOID), (
        "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
        "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875"))),
    "CiteSeer": dict(zip((f"ind.citeseer.{s}" for s in _PLANETOID), (
        "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
        "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4"))),
    "Computers": {"amazon_electronics_computers.npz":
                  "736ba1d9fd85eac2da83a5ad25c463f04b0031a6ca01563f90a7099d9e8ffb2c"},
    "CS": {"ms_academic_cs.npz": "933c745734e78908c7eb77172a673fee0503f30e26e5a99b36814d88534c42e3"},
}
_STAMP = ".msgnn-raw-sha256"  # in processed/: the digest of the raw files it was made from


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_raw_files(name: str, raw: Path) -> str | None:
    """Check every raw file of dataset ``name`` in ``raw`` against its published SHA-256.

    Returns one digest of all of them (what ``processed/`` is stamped with), or ``None`` for a
    dataset whose checksums this package does not know. Raises :class:`DatasetIntegrityError`
    naming the dataset, the file and what to do when a file is missing or differs."""
    known = RAW_SHA256.get(name)
    if known is None:
        return None
    total = hashlib.sha256()
    for fname, expected in sorted(known.items()):
        path = raw / fname
        if not path.is_file():
            raise DatasetIntegrityError(
                f"dataset {name!r}: raw file {path} is missing (the folder holds some of the dataset's files but "
                f"not this one); copy all of {', '.join(sorted(known))} into {raw}")
        got = _sha256(path)
        if got != expected:
            raise DatasetIntegrityError(
                f"dataset {name!r}: raw file {path} is damaged or not the published file ({path.stat().st_size:,} "
                f"bytes, SHA-256 {got[:16]}..., expected {expected[:16]}...); copy it again from the original "
                f"(e.g. the project's shared data folder, whose SHA256SUMS lists the values) and delete "
                f"{raw.parent / 'processed'} if it exists")
        total.update(f"{fname}={got};".encode())
    return total.hexdigest()


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root``, else ``$MSGNN_DATA``, else ``~/.cache/msgnn_lite/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MSGNN_DATA")
    if env:
        path = Path(env).expanduser()
        if not path.is_absolute() and not path.exists():
            # a path relative to the checkout, used from a notebook kernel that runs in notebooks/
            from .utils import repo_root

            candidate = repo_root() / path
            if candidate.exists():
                return candidate
        return path
    return Path.home() / ".cache" / "msgnn_lite" / "data"


def _canonical(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in _ALIASES:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}, "
                         f"or a synthetic graph {CSBM_SPEC_FORM!r}")
    return _ALIASES[name.lower()]


# A synthetic graph by name, so that a notebook's ``dataset`` parameter can name one:
# "csbm:nodes=3000,classes=5,features=24" (every key optional; the defaults below).
CSBM_SPEC_FORM = "csbm:nodes=N,classes=C,features=F,degree=D,homophily=H,signal=S,seed=K"
CSBM_DEFAULTS = {"nodes": 5000, "classes": 5, "features": 32, "degree": 10.0, "homophily": 0.8, "signal": 1.0,
                 "seed": 0}


def parse_csbm_spec(name: str) -> dict | None:
    """The parameters of a synthetic dataset name (``"csbm"`` or ``"csbm:key=value,..."``), or
    ``None`` when ``name`` is not one. A malformed spec raises ``ValueError`` naming the key."""
    if not isinstance(name, str) or name.split(":", 1)[0].strip().lower() != "csbm":
        return None
    spec = dict(CSBM_DEFAULTS)
    body = name.split(":", 1)[1] if ":" in name else ""
    for item in filter(None, (part.strip() for part in body.split(","))):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or key not in CSBM_DEFAULTS:
            raise ValueError(f"dataset {name!r}: {item!r} is not one of "
                             f"{', '.join(k + '=...' for k in CSBM_DEFAULTS)} (form: {CSBM_SPEC_FORM!r})")
        kind = type(CSBM_DEFAULTS[key])
        try:
            spec[key] = kind(value) if kind is float else int(value)
        except ValueError:
            raise ValueError(f"dataset {name!r}: {key} must be {'a number' if kind is float else 'an integer'}, "
                             f"got {value!r}") from None
    return spec


def _load_csbm(name: str, spec: dict, split_seed: int, train_per_class: int, val_per_class: int) -> Data:
    data = make_csbm(spec["nodes"], spec["degree"], spec["classes"], spec["features"], spec["homophily"],
                     seed=spec["seed"], feature_signal=spec["signal"])
    data.train_mask, data.val_mask, data.test_mask = per_class_split(data.y, train_per_class, val_per_class,
                                                                     seed=split_seed)
    data.name = "csbm:" + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.items())
    return data


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


_LOCK_TIMEOUT_S = 900.0


@contextlib.contextmanager
def _dataset_lock(folder: Path, name: str):
    """Hold an inter-process lock while PyG downloads or processes ``folder/name``.

    PyG writes ``processed/data.pt`` in place, so a second process (another notebook of a
    classroom sharing one data folder, papermill workers) that loads the same dataset for the
    first time at the same moment could read a half-written file. With the lock, the second
    one waits and then reads the finished file. In a folder where no lock file can be created
    (read-only data) nobody can write processed files either, so no lock is needed.
    """
    from filelock import FileLock, Timeout

    path = folder / f".{name}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=_LOCK_TIMEOUT_S)
        lock.acquire()
    except Timeout as err:
        raise DatasetUnavailableError(
            f"dataset {name!r}: another process has been preparing {folder / name} for over "
            f"{_LOCK_TIMEOUT_S:.0f} s (lock file {path}); if no other process is running, delete that file") from err
    except OSError:
        lock = None  # read-only data folder: nothing can be written there, so nothing to lock
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _drop_stale_processed(name: str, processed: Path, digest: str | None) -> None:
    """Delete ``processed/`` when it was not made from the raw files now present (no stamp, or
    another digest): a graph processed from a damaged file would otherwise outlive the fix."""
    if digest is None or not processed.is_dir():
        return
    stamp = processed / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    shutil.rmtree(processed, ignore_errors=True)


def _stamp(processed: Path, digest: str | None) -> None:
    if digest is not None and processed.is_dir():
        from .utils import atomic_write

        atomic_write(processed / _STAMP, digest + "\n")


def _construct(cls, folder: Path, arg: str, name: str, had_raw: bool):
    """``cls(folder, arg)``; a processed file PyG cannot read (a damaged ``processed/data.pt``)
    is reported, deleted and rebuilt once from the raw files."""
    try:
        return cls(str(folder), arg)
    except (PermissionError, DatasetIntegrityError):
        raise
    except Exception as err:  # noqa: BLE001 - torch.load / pickle / zip errors of a damaged file
        processed = folder / arg / "processed"
        if not had_raw or not processed.is_dir():
            raise
        warnings.warn(f"dataset {name!r}: the processed files in {processed} could not be read "
                      f"({type(err).__name__}: {str(err).splitlines()[0][:120]}); deleting them and processing the "
                      f"raw files again", RuntimeWarning, stacklevel=3)
        shutil.rmtree(processed, ignore_errors=True)
        try:
            return cls(str(folder), arg)
        except Exception as err2:  # noqa: BLE001
            raise DatasetIntegrityError(
                f"dataset {name!r}: PyG could not process the raw files in {folder / arg / 'raw'} "
                f"({type(err2).__name__}: {err2}); copy them again from the original") from err2


def load_dataset(name: str, root: str | os.PathLike | None = None, split_seed: int = 0,
                 train_per_class: int = 20, val_per_class: int = 30) -> Data:
    """Load a node-classification benchmark as a PyG ``Data`` with boolean masks.

    * ``"Cora"``, ``"CiteSeer"``, ``"PubMed"``: PyG's ``Planetoid`` with the public split.
    * ``"Computers"``, ``"Photo"`` (Amazon) and ``"CS"``, ``"Physics"`` (Coauthor): PyG's
      classes with a seeded split of ``train_per_class`` training and ``val_per_class``
      validation nodes per class, the rest for testing (Shchur et al., 2018).
    * ``"ogbn-arxiv"``, ``"ogbn-products"``, ``"ogbn-proteins"``: through the optional
      ``ogb`` package, with OGB's official split.
    * ``"csbm"`` or ``"csbm:nodes=3000,classes=5,features=24,degree=8,homophily=0.7,signal=1,seed=1"``
      (any subset of the keys; :data:`CSBM_DEFAULTS` for the rest): a seeded synthetic graph
      (:func:`make_csbm`) with the same per-class split as Amazon and Coauthor, so that a
      notebook's ``dataset`` parameter can name a graph none of them was written for. Its
      ``name`` lists every parameter.

    The returned ``Data`` also carries ``name`` and ``num_classes``. If the raw files
    are not in the data directory, PyG downloads them; with no network this raises
    :class:`DatasetUnavailableError` naming the folder and ``MSGNN_DATA``.

    Integrity: the raw files of Cora, CiteSeer, Computers and CS are checked against their
    published SHA-256 (:data:`RAW_SHA256`) before PyG reads them; a missing or differing file
    raises :class:`DatasetIntegrityError` naming it. ``processed/`` is stamped with the digest of
    the raw files it was made from and rebuilt when they change; a processed file that cannot be
    read is reported, deleted and rebuilt. First loads from several processes at once are safe
    (a lock file per dataset).
    """
    spec = parse_csbm_spec(name)
    if spec is not None:
        return _load_csbm(name, spec, split_seed, train_per_class, val_per_class)
    canonical = _canonical(name)
    base = data_dir(root)
    if canonical in _OGB:
        return _load_ogb(canonical, base)
    cls_name, sub, arg, needs_split = _PYG[canonical]
    import torch_geometric.datasets as pyg_datasets

    cls = getattr(pyg_datasets, cls_name)
    folder = base / sub
    raw = folder / arg / "raw"
    had_raw = raw.is_dir() and any(raw.iterdir())
    created = next((p for p in (base, folder, folder / arg, raw) if not p.exists()), None)
    try:
        with _socket_timeout(30), _dataset_lock(folder, arg):
            digest = verify_raw_files(canonical, raw) if had_raw else None
            _drop_stale_processed(canonical, folder / arg / "processed", digest)
            dataset = _construct(cls, folder, arg, canonical, had_raw)
            if not had_raw:  # just downloaded: check what came, then stamp processed/
                digest = verify_raw_files(canonical, raw)
            _stamp(folder / arg / "processed", digest)
    except PermissionError as err:
        raise DatasetUnavailableError(
            f"dataset {canonical!r}: PyG could not write its processed files under {folder} ({err}). "
            f"Point MSGNN_DATA at a writable copy of the data directory."
        ) from err
    except DatasetIntegrityError:
        raise
    except Exception as err:  # noqa: BLE001 - any download failure (urllib, fsspec, aiohttp ...)
        if had_raw:
            raise
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)  # leave nothing half-downloaded behind
        raise DatasetUnavailableError(
            f"dataset {canonical!r}: its raw files are not in {raw} and downloading them failed "
            f"({type(err).__name__}: {err}). Put the raw files there, or set MSGNN_DATA (or pass root=) to a "
            f"data directory that holds {sub}/{arg}/raw/ -- for example a copy of the project's shared data folder."
        ) from err
    data = dataset[0]
    data.num_classes = int(dataset.num_classes)
    if needs_split:
        train, val, test = per_class_split(data.y, train_per_class, val_per_class, seed=split_seed)
        data.train_mask, data.val_mask, data.test_mask = train, val, test
    data.name = canonical
    return data


def _load_ogb(name: str, base: Path) -> Data:
    try:
        from ogb.nodeproppred import PygNodePropPredDataset
    except ImportError as err:
        raise ImportError(
            f"dataset {name!r} needs the optional 'ogb' package: pip install 'msgnn-lite[ogb]' (or pip install ogb)"
        ) from err
    try:
        with _socket_timeout(60), _dataset_lock(base / "ogb", name):
            dataset = PygNodePropPredDataset(name=name, root=str(base / "ogb"))
    except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not in {base / 'ogb'} and downloading it failed ({err}); "
            f"set MSGNN_DATA (or pass root=) to a data directory holding ogb/{name.replace('-', '_')}/"
        ) from err
    data = dataset[0]
    split = dataset.get_idx_split()
    n = data.num_nodes
    for key, idx in (("train_mask", split["train"]), ("val_mask", split["valid"]), ("test_mask", split["test"])):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[idx] = True
        data[key] = mask
    if name == "ogbn-proteins":  # multi-label: 112 binary tasks, features from edge attributes
        data.y = data.y.float()
        data.num_classes = int(data.y.size(1))
    else:
        data.y = data.y.view(-1)
        data.num_classes = int(data.y.max()) + 1
    data.name = name
    return data


def per_class_split(y: Tensor, train_per_class: int = 20, val_per_class: int = 30, seed: int = 0):
    """Seeded split with a fixed number of training and validation nodes per class.

    Returns boolean masks ``(train, val, test)``; test is every remaining labelled node.
    Label ``-1`` marks an unlabelled node: it is in none of the three masks.
    """
    train_per_class = check_positive_int(train_per_class, "train_per_class")
    val_per_class = check_positive_int(val_per_class, "val_per_class", minimum=0)
    from .checks import check_labels

    gen = torch.Generator().manual_seed(seed)
    if isinstance(y, Tensor) and y.dim() == 2 and y.size(1) == 1:
        y = y.view(-1)
    y = check_labels(y, name="y").cpu()
    n = y.numel()
    train = torch.zeros(n, dtype=torch.bool)
    val = torch.zeros(n, dtype=torch.bool)
    for c in torch.unique(y[y >= 0]).tolist():  # -1 = unlabelled: in no split
        idx = (y == c).nonzero().view(-1)
        if idx.numel() < train_per_class + val_per_class:
            raise ValueError(
                f"class {c} has {idx.numel()} nodes, fewer than train_per_class + val_per_class = "
                f"{train_per_class + val_per_class}"
            )
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train[idx[:train_per_class]] = True
        val[idx[train_per_class:train_per_class + val_per_class]] = True
    test = ~(train | val) & (y >= 0)
    return train, val, test


def split_fraction(data: Data, train: float = 0.5, val: float = 0.25, seed: int = 0) -> Data:
    """A copy of ``data`` with a seeded random split: a ``train`` fraction of the nodes for
    training, ``val`` for validation, the rest for testing (the fully supervised setting of
    Cluster-GCN, GraphSAINT and IBMB). The graph and features are shared, not copied."""
    check_fraction(train, "train", high_closed=False)
    check_fraction(val, "val", high_closed=False)
    if train + val >= 1:
        raise ValueError(f"train + val must be < 1 (the rest is the test set), got {train + val}")
    n = data.num_nodes
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(n * train), int(n * val)
    out = copy.copy(data)
    for key, idx in [("train_mask", perm[:n_train]), ("val_mask", perm[n_train:n_train + n_val]),
                     ("test_mask", perm[n_train + n_val:])]:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[idx] = True
        out[key] = mask.to(data.edge_index.device)
    return out


def make_csbm(num_nodes: int, avg_degree: float, num_classes: int, num_features: int, homophily: float,
              seed: int = 0, feature_signal: float = 1.0, train_ratio: float = 0.1, val_ratio: float = 0.1,
              window: int | None = None, shuffle_ids: bool = True) -> Data:
    """A contextual stochastic block model: a seeded synthetic node-classification graph.

    Each node gets a class (balanced), Gaussian features ``x = mu_y + noise`` with
    class means of norm ``feature_signal`` and unit noise, and about
    ``num_nodes * avg_degree / 2`` undirected edges, a fraction ``homophily`` of them
    between nodes of the same class (uniform within that constraint). The graph is
    undirected (both directions stored), has no self-loops or duplicate edges, and
    its ``edge_index`` is sorted by destination, then source. Masks split the nodes
    at random into ``train_ratio`` / ``val_ratio`` / rest.

    Locality (optional): with ``window=w`` the same-class partner of a node at
    position ``p`` is drawn uniformly from the ``2w`` positions ``p +- 1..w`` of its class
    block (wrapping inside the block) -- a ring-like "spatial" graph whose communities
    are contiguous, as in meshes and road or citation networks ordered by locality.
    ``shuffle_ids`` (default) gives the nodes random ids (position -> id is a seeded
    permutation, so the locality is hidden); ``shuffle_ids=False`` keeps id = position.
    Cross-class edges stay uniform (long-range). See :func:`make_local_csbm`.

    Fully vectorized: 1M nodes with average degree 20 take seconds.
    """
    n = check_positive_int(num_nodes, "num_nodes", minimum=2)
    c = check_positive_int(num_classes, "num_classes")
    f = check_positive_int(num_features, "num_features")
    h = float(homophily)
    if not 0.0 <= h <= 1.0:
        raise ValueError(f"homophily must lie in [0, 1], got {homophily}")
    if c > n // 2:
        raise ValueError(f"num_classes={c} is too many for num_nodes={n}; need at least 2 nodes per class")
    if c == 1 and h < 1.0:
        raise ValueError("homophily < 1 needs num_classes >= 2 (edges between classes)")
    avg_degree = check_positive(avg_degree, "avg_degree")
    feature_signal = check_finite(feature_signal, "feature_signal")
    check_fraction(train_ratio, "train_ratio")
    check_fraction(val_ratio, "val_ratio", low_open=False)
    if train_ratio + val_ratio >= 1:
        raise ValueError(f"train_ratio + val_ratio must be < 1, got {train_ratio + val_ratio}")
    if window is not None:
        window = check_positive_int(window, "window")

    gen = torch.Generator().manual_seed(seed)
    # Class blocks in "position" space: positions [start_k, start_k + size_k) hold class k.
    sizes = torch.full((c,), n // c, dtype=torch.long)
    sizes[: n % c] += 1
    starts = torch.cumsum(sizes, 0) - sizes
    pos_class = torch.repeat_interleave(torch.arange(c), sizes)
    # position -> node id (random ids hide any locality; id = position keeps it)
    perm = torch.randperm(n, generator=gen) if shuffle_ids else torch.arange(n)

    m = int(round(n * avg_degree / 2))
    m_in = int(round(h * m))
    m_out = m - m_in
    max_in = int((sizes * (sizes - 1) // 2).sum()) if window is None else \
        int(torch.minimum(sizes * window, sizes * (sizes - 1) // 2).sum())
    max_out = n * (n - 1) // 2 - max_in
    if m_in > 0.5 * max_in or (m_out > 0 and m_out > 0.5 * max_out):
        raise ValueError(
            f"avg_degree={avg_degree} is too dense for num_nodes={n} with homophily={h}: "
            f"the model samples sparse graphs (at most half of the possible pairs of each kind"
            + (f"; window={window} allows {window} same-class pairs per node)" if window is not None else ")")
        )

    def sample(count: int, intra: bool) -> Tensor:
        """Sample ``count`` distinct undirected pairs (as sorted keys lo * n + hi)."""
        keys = torch.empty(0, dtype=torch.long)
        need = count
        for _ in range(20):
            if need <= 0:
                break
            draw = int(need * 1.05) + 16
            u = torch.randint(0, n, (draw,), generator=gen)
            k = pos_class[u]
            if intra and window is not None:  # a same-class node within +-window positions
                r = torch.randint(0, 2 * window, (draw,), generator=gen)
                delta = torch.where(r < window, r + 1, r - 2 * window)  # in [-w, -1] or [1, w]
                v = starts[k] + (u - starts[k] + delta) % sizes[k]
                ok = torch.nonzero(v != u).view(-1)  # a block no larger than the window can wrap onto u
                u, v = u[ok], v[ok]
            elif intra:  # another node of the same class, never u itself
                off = torch.randint(0, 2**62, (draw,), generator=gen) % (sizes[k] - 1)
                v = starts[k] + (u - starts[k] + 1 + off) % sizes[k]
            else:  # a node of any other class
                r = torch.randint(0, 2**62, (draw,), generator=gen) % (n - sizes[k])
                v = torch.where(r < starts[k], r, r + sizes[k])
            del k
            lo, hi = torch.minimum(u, v), torch.maximum(u, v)
            keys = torch.unique(torch.cat([keys, lo * n + hi]))
            need = count - keys.numel()
        if keys.numel() > count:
            keys = keys[torch.randperm(keys.numel(), generator=gen)[:count]]
        return keys

    keys = torch.cat([sample(m_in, True), sample(m_out, False)]) if m_out > 0 else sample(m_in, True)
    a = perm[keys // n]
    b = perm[keys % n]
    del keys
    # Both directions, sorted by (destination, source): CSR-friendly for the fast path.
    directed = torch.cat([a * n + b, b * n + a])
    del a, b
    directed = torch.sort(directed).values
    edge_index = torch.stack([directed % n, directed // n])  # row 0 source, row 1 destination
    del directed

    y = torch.empty(n, dtype=torch.long)
    y[perm] = pos_class
    means = torch.randn(c, f, generator=gen)
    means = feature_signal * means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)
    x = torch.randn(n, f, generator=gen)
    x += means[y]

    order = torch.randperm(n, generator=gen)
    n_train = max(1, int(round(train_ratio * n)))
    n_val = int(round(val_ratio * n))
    train_mask = torch.zeros(n, dtype=torch.bool)
    val_mask = torch.zeros(n, dtype=torch.bool)
    train_mask[order[:n_train]] = True
    val_mask[order[n_train:n_train + n_val]] = True
    test_mask = ~(train_mask | val_mask)
    data = Data(x=x, edge_index=edge_index, y=y, train_mask=train_mask, val_mask=val_mask, test_mask=test_mask)
    data.num_classes = c
    data.name = f"CSBM(n={n}, deg={avg_degree}, h={h})"
    return data


def make_local_csbm(num_nodes: int, avg_degree: float = 10.0, num_classes: int = 10, num_features: int = 32,
                    homophily: float = 0.8, window: int = 16, shuffle_ids: bool = False, seed: int = 0,
                    feature_signal: float = 0.5, train_ratio: float = 0.1, val_ratio: float = 0.1) -> Data:
    """A CSBM with locality: :func:`make_csbm` with ``window`` (same-class edges join nodes
    at most ``window`` positions apart inside contiguous class blocks) and, by default,
    ids that keep that order (``shuffle_ids=False``). A fraction ``homophily`` of the edges
    is local, the rest joins random nodes of other classes. Random node selection keeps
    the band structure (half the nodes, half the degree), so coarse graphs look like the
    fine one; 2M nodes with average degree 10 take a few seconds."""
    data = make_csbm(num_nodes, avg_degree, num_classes, num_features, homophily, seed=seed,
                     feature_signal=feature_signal, train_ratio=train_ratio, val_ratio=val_ratio, window=window,
                     shuffle_ids=shuffle_ids)
    data.name = f"local CSBM(n={num_nodes}, deg={avg_degree}, h={homophily}, window={window})"
    return data


def edge_homophily(edge_index: Tensor, y: Tensor) -> float:
    """Fraction of edges whose two endpoints share a label."""
    edge_index = check_edge_index(edge_index, y.numel())
    if edge_index.size(1) == 0:
        raise ValueError("edge_index has no edges; edge homophily is undefined")
    return float((y[edge_index[0]] == y[edge_index[1]]).float().mean())


def describe(data: Data) -> dict:
    """Deterministic summary statistics of a node-classification graph (for tables and tests).

    A graph without labels (no ``y``) or without features is described too: ``classes`` and
    ``features`` are then 0 and ``edge_homophily`` is left out."""
    n = int(data.num_nodes)
    e = int(data.edge_index.size(1))
    out = {
        "name": getattr(data, "name", "graph"),
        "nodes": n,
        "edges": e,
        "avg_degree": round(e / n, 2),
        "features": int(data.x.size(1)) if data.x is not None else 0,
    }
    y = data.y if "y" in data and isinstance(data.y, torch.Tensor) else None
    if isinstance(getattr(data, "num_classes", None), int):
        out["classes"] = data.num_classes
    elif y is not None and y.numel() and not y.is_floating_point():
        out["classes"] = int(y.max()) + 1
    else:
        out["classes"] = 0  # a graph without labels
    for key in ("train_mask", "val_mask", "test_mask"):
        if key in data:
            out[key.replace("_mask", "")] = int(data[key].sum())
    if y is not None and y.dim() == 1 and y.numel() == n and e > 0:
        out["edge_homophily"] = round(edge_homophily(data.edge_index, data.y), 3)
    return out


def sparse_features(data: Data, max_density: float = 0.1) -> Data:
    """Return a shallow copy of ``data`` whose ``x`` is a CSR tensor, if it is sparse enough.

    Bag-of-words features (Cora: 1.3% non-zeros) then cost ~100x less in dropout and
    in the first layer's product. Denser features are left as they are.
    """
    x = data.x
    if x is None or x.layout != torch.strided:
        return data
    density = float((x != 0).float().mean())
    if density > max_density:
        return data
    out = copy.copy(data)
    out.x = x.to_sparse_csr()
    return out


FEATURE_NORMALIZATIONS = ("none", "sum", "l2")
"""``"none"``: raw features. ``"sum"``: every row divided by its sum (PyG's ``NormalizeFeatures``,
Kipf & Welling's preprocessing of the Planetoid bag-of-words). ``"l2"``: every row scaled to unit
L2 norm."""

_FEATURE_NORMALIZATION = {name: "l2" for name in ("Cora", "CiteSeer", "PubMed", "Computers", "Photo", "CS", "Physics")}


def feature_normalization_for(data: Data) -> str:
    """The project's documented feature preprocessing for ``data`` (by its ``name``), which the
    comparison harness applies to every method alike:

    * the bag-of-words graphs of the course (Planetoid: Cora, CiteSeer, PubMed; Amazon:
      Computers, Photo; Coauthor: CS, Physics): ``"l2"``, every row at unit L2 norm. Raw Amazon
      rows hold many ones (Computers: a median of 204, row L2 norm 14.3): with Adam at lr 0.01 the
      first steps overshoot and most hidden ReLU units die, worst on sampled batches (notebook 12,
      section 3, measures it). Row sums (``"sum"``, PyG's ``NormalizeFeatures``) shrink every
      value to ~1/204 and do not learn in 100 epochs at that rate; gradient clipping leaves most
      units dead. Unit-L2 rows train every run on Computers, CS, Cora and CiteSeer.
      docs/feature_study.md holds the experiment (``python -m msgnn_lite.bench compare
      --features none|sum|l2 [--grad-norm 1]``) and its output.
    * anything else (synthetic CSBM, OGB's dense embeddings): ``"none"``.
    """
    return _FEATURE_NORMALIZATION.get(str(getattr(data, "name", "")), "none")


def normalize_features(data: Data, how: str = "auto") -> Data:
    """A shallow copy of ``data`` with its rows of ``x`` normalised (dense or CSR ``x``).

    ``how``: one of :data:`FEATURE_NORMALIZATIONS`, or ``"auto"`` for
    :func:`feature_normalization_for`. An all-zero row stays zero. The copy records what was done
    in ``feature_normalization`` (a graph already normalised is returned as it is)."""
    if how == "auto":
        how = feature_normalization_for(data)
    if how not in FEATURE_NORMALIZATIONS:
        raise ValueError(f"how must be 'auto' or one of {FEATURE_NORMALIZATIONS}, got {how!r}")
    done = getattr(data, "feature_normalization", None)
    if done is not None:
        if done != how:
            raise ValueError(f"data's features were already normalised with {done!r}; normalise the raw graph "
                             f"with {how!r} instead")
        return data
    out = copy.copy(data)
    out.feature_normalization = how
    x = data.x
    if how == "none" or x is None:
        return out
    if not x.is_floating_point():
        raise TypeError(f"data.x must hold floating-point features to be normalised, got {x.dtype}")
    if x.layout == torch.sparse_csr:
        vals = x.values()
        rows = torch.repeat_interleave(torch.arange(x.size(0), device=vals.device), x.crow_indices().diff(),
                                       output_size=vals.numel())
        per_row = torch.zeros(x.size(0), dtype=vals.dtype, device=vals.device)
        per_row.index_add_(0, rows, vals if how == "sum" else vals * vals)
        scale = per_row if how == "sum" else per_row.sqrt()
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        out.x = torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), vals / scale[rows], x.shape)
        return out
    if x.layout != torch.strided:
        raise TypeError(f"data.x must be dense or CSR to be normalised, got layout {x.layout}")
    scale = x.sum(dim=1, keepdim=True) if how == "sum" else torch.linalg.vector_norm(x, dim=1, keepdim=True)
    out.x = x / torch.where(scale == 0, torch.ones_like(scale), scale)
    return out
