import urllib.error

import pytest
import torch

from msgnn_lite import data as D
from msgnn_lite.data import DatasetUnavailableError, describe, edge_homophily, load_dataset, make_csbm, make_local_csbm

REPO_SHARED = __import__("pathlib").Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.mark.parametrize("name,nodes,edges,classes,split", [
    ("Cora", 2708, 10556, 7, (140, 500, 1000)),
    ("CiteSeer", 3327, 9104, 6, (120, 500, 1000)),
])
def test_planetoid_loads_offline_with_public_split(data_root, name, nodes, edges, classes, split):
    d = load_dataset(name, root=data_root)
    assert (d.num_nodes, d.edge_index.size(1), d.num_classes) == (nodes, edges, classes)
    assert (int(d.train_mask.sum()), int(d.val_mask.sum()), int(d.test_mask.sum())) == split
    assert d.name == name


@pytest.mark.parametrize("name,nodes,classes", [("Computers", 13752, 10), ("CS", 18333, 15)])
def test_shchur_datasets_get_a_seeded_per_class_split(data_root, name, nodes, classes):
    a = load_dataset(name, root=data_root, split_seed=1)
    b = load_dataset(name, root=data_root, split_seed=1)
    c = load_dataset(name, root=data_root, split_seed=2)
    assert a.num_nodes == nodes and a.num_classes == classes
    assert int(a.train_mask.sum()) == 20 * classes and int(a.val_mask.sum()) == 30 * classes
    for k in range(classes):  # exactly 20 / 30 per class
        assert int((a.train_mask & (a.y == k)).sum()) == 20
        assert int((a.val_mask & (a.y == k)).sum()) == 30
    assert not bool((a.train_mask & a.val_mask).any()) and not bool((a.train_mask & a.test_mask).any())
    assert bool((a.train_mask | a.val_mask | a.test_mask).all())
    assert torch.equal(a.train_mask, b.train_mask) and not torch.equal(a.train_mask, c.train_mask)


def test_env_var_selects_the_data_directory(data_root, monkeypatch):
    monkeypatch.setenv("MSGNN_DATA", str(data_root))
    assert D.data_dir() == data_root
    assert load_dataset("cora").num_nodes == 2708  # names are case-insensitive


@pytest.mark.parametrize("name,target,folder", [
    ("Cora", "torch_geometric.io.fs.cp", "Planetoid"),
    ("Computers", "torch_geometric.datasets.amazon.download_url", "Amazon"),
])
def test_offline_without_files_names_dataset_folder_and_env_var(tmp_path, monkeypatch, name, target, folder):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (simulated)")

    monkeypatch.setattr(target, no_network)
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(name, root=tmp_path)
    msg = str(info.value)
    assert f"'{name}'" in msg and "MSGNN_DATA" in msg and str(tmp_path) in msg
    assert not (tmp_path / folder).exists()  # nothing half-made left behind


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'Kora'.*Cora.*CiteSeer"):
        load_dataset("Kora")


def test_ogb_without_the_package_says_how_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("ogb"):
            raise ImportError("No module named 'ogb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="msgnn-lite\\[ogb\\]"):
        load_dataset("ogbn-arxiv", root=tmp_path)


@pytest.mark.parametrize("h", [0.0, 0.3, 0.8, 1.0])
def test_csbm_homophily_degree_and_structure(h):
    d = make_csbm(5000, 12, 5, 8, homophily=h, seed=3)
    assert abs(edge_homophily(d.edge_index, d.y) - h) <= 0.02
    assert abs(d.edge_index.size(1) / d.num_nodes - 12) < 0.05
    src, dst = d.edge_index
    assert not bool((src == dst).any()), "self-loop"
    keys = src * d.num_nodes + dst
    assert keys.unique().numel() == keys.numel(), "duplicate edge"
    rev = torch.sort(dst * d.num_nodes + src).values
    assert torch.equal(torch.sort(keys).values, rev), "not undirected"
    assert bool((dst[1:] >= dst[:-1]).all()), "not sorted by destination"
    counts = torch.bincount(d.y)
    assert int(counts.max() - counts.min()) <= 1  # balanced classes


def test_csbm_is_seeded_and_features_are_class_dependent():
    a = make_csbm(2000, 6, 3, 16, 0.7, seed=5)
    b = make_csbm(2000, 6, 3, 16, 0.7, seed=5)
    c = make_csbm(2000, 6, 3, 16, 0.7, seed=6)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.edge_index, c.edge_index)
    a2 = make_csbm(2000, 6, 3, 16, 0.7, seed=5, feature_signal=4.0)
    means = torch.stack([a2.x[a2.y == k].mean(0) for k in range(3)])
    assert torch.cdist(means, means).fill_diagonal_(10).min() > 3.0  # class means ~4 apart
    assert (int(a.train_mask.sum()), int(a.val_mask.sum())) == (200, 200)


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_nodes=0), "num_nodes"),
    (dict(homophily=1.5), "homophily"),
    (dict(num_classes=600), "num_classes"),
    (dict(avg_degree=-1), "avg_degree"),
    (dict(avg_degree=900), "too dense"),
    (dict(train_ratio=0.0), "train_ratio"),
    (dict(num_features=2.5), "num_features"),
])
def test_csbm_bad_arguments(kwargs, match):
    args = dict(num_nodes=1000, avg_degree=5, num_classes=4, num_features=8, homophily=0.5)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        make_csbm(**args)


def test_describe_is_deterministic(small_graph):
    s = describe(small_graph)
    assert s["nodes"] == 600 and s["classes"] == 4 and s["edges"] == small_graph.edge_index.size(1)
    assert s == describe(small_graph)


def test_sparse_features_keep_values(data_root):
    d = load_dataset("Cora", root=data_root)
    s = D.sparse_features(d)
    assert s.x.layout == torch.sparse_csr and torch.equal(s.x.to_dense(), d.x)
    assert d.x.layout == torch.strided  # the original is untouched


def test_split_fraction_partitions_the_nodes_and_leaves_the_original(small_graph):
    from msgnn_lite.data import split_fraction

    out = split_fraction(small_graph, 0.5, 0.25, seed=3)
    masks = torch.stack([out.train_mask, out.val_mask, out.test_mask]).long()
    assert bool((masks.sum(0) == 1).all())  # every node in exactly one split
    assert [int(m.sum()) for m in masks] == [300, 150, 150]
    assert torch.equal(split_fraction(small_graph, 0.5, 0.25, seed=3).train_mask, out.train_mask)
    assert not torch.equal(out.train_mask, small_graph.train_mask)  # the input keeps its own split
    assert out.x is small_graph.x
    with pytest.raises(ValueError, match="train \\+ val"):
        split_fraction(small_graph, 0.7, 0.3)
    with pytest.raises(ValueError, match="train"):
        split_fraction(small_graph, 0.0, 0.3)


@pytest.mark.parametrize("h,window", [(0.8, 12), (1.0, 16), (0.5, 32)])
def test_local_csbm_statistics_match_the_arguments(h, window):
    d = make_local_csbm(20_000, 10, num_classes=5, num_features=8, homophily=h, window=window, seed=2)
    assert abs(edge_homophily(d.edge_index, d.y) - h) <= 0.02
    assert abs(d.edge_index.size(1) / d.num_nodes - 10) < 0.05
    src, dst = d.edge_index
    assert not bool((src == dst).any())
    keys = src * d.num_nodes + dst
    assert keys.unique().numel() == keys.numel()
    assert torch.equal(torch.sort(keys).values, torch.sort(dst * d.num_nodes + src).values)  # undirected
    # same-class edges join ids at most `window` apart (up to the wrap at a class block's ends)
    same = d.y[src] == d.y[dst]
    gap = (src - dst).abs()[same]
    assert float((gap <= window).float().mean()) > 0.99
    assert torch.equal(d.y, torch.sort(d.y).values)  # ordered ids: classes are contiguous blocks


def test_local_csbm_shuffled_ids_hide_the_locality_and_are_seeded():
    a = make_local_csbm(10_000, 8, homophily=1.0, window=8, shuffle_ids=True, seed=4)
    b = make_local_csbm(10_000, 8, homophily=1.0, window=8, shuffle_ids=True, seed=4)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert float(((a.edge_index[0] - a.edge_index[1]).abs() <= 8).float().mean()) < 0.01
    with pytest.raises(ValueError, match="window"):
        make_local_csbm(1000, 8, window=0)
    with pytest.raises(ValueError, match="window=4 allows 4"):  # 4 same-class edges per node need window >= 8
        make_local_csbm(1000, 10, homophily=0.8, window=4)


def _load_in_subprocess(root, barrier, queue):
    from msgnn_lite.data import load_dataset

    barrier.wait()  # both processes start processing the fresh dataset at the same moment
    try:
        d = load_dataset("Cora", root=root)
        queue.put(("ok", int(d.num_nodes), int(d.edge_index.size(1)), float(d.x.sum()), int(d.test_mask.sum())))
    except Exception as err:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(err).__name__}: {err}"))


def test_two_processes_loading_a_fresh_dataset_at_once_both_succeed(data_root, tmp_path):
    """PyG writes processed/ in place; without the lock the second process can read a
    half-written file ("PytorchStreamReader failed reading zip archive")."""
    import multiprocessing as mp
    import shutil

    raw = tmp_path / "Planetoid" / "Cora" / "raw"
    shutil.copytree(data_root / "Planetoid" / "Cora" / "raw", raw)
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_load_in_subprocess, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(r[0] == "ok" for r in results), results
    assert results[0] == results[1] == ("ok", 2708, 10556, results[0][3], 1000)
    assert (tmp_path / "Planetoid" / "Cora" / "processed").is_dir()


def test_a_folder_where_no_lock_file_can_be_made_still_loads(data_root, monkeypatch):
    """A read-only data folder (processed files already there): the lock file cannot be
    created, and loading goes on without it (nothing can be written there anyway)."""
    import filelock

    from msgnn_lite.data import load_dataset

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", self.lock_file)

    load_dataset("Cora", root=data_root)
    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    assert load_dataset("Cora", root=data_root).num_nodes == 2708


def _cora_copy(data_root, tmp_path):
    import shutil

    shutil.copytree(data_root / "Planetoid" / "Cora" / "raw", tmp_path / "Planetoid" / "Cora" / "raw")
    return tmp_path / "Planetoid" / "Cora"


@pytest.mark.parametrize("fname", ["ind.cora.test.index", "ind.cora.x", "ind.cora.graph"])
def test_a_truncated_raw_file_is_refused_naming_dataset_and_file(data_root, tmp_path, fname):
    """Half of test.index used to load as a different graph (test set of 500 nodes)."""
    cora = _cora_copy(data_root, tmp_path)
    path = cora / "raw" / fname
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(D.DatasetIntegrityError, match=rf"'Cora'.*{fname}.*damaged.*copy it again"):
        load_dataset("Cora", root=tmp_path)


def test_a_missing_raw_file_is_named(data_root, tmp_path):
    cora = _cora_copy(data_root, tmp_path)
    (cora / "raw" / "ind.cora.ty").unlink()
    with pytest.raises(D.DatasetIntegrityError, match=r"ind.cora.ty is missing"):
        load_dataset("Cora", root=tmp_path)


def test_a_damaged_processed_file_is_reported_and_rebuilt(data_root, tmp_path):
    _cora_copy(data_root, tmp_path)
    good = load_dataset("Cora", root=tmp_path)
    [processed] = [p for p in (tmp_path / "Planetoid" / "Cora" / "processed").glob("*.pt") if "data" in p.name]
    processed.write_bytes(processed.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match=r"'Cora'.*processed.*could not be read.*processing the raw files again"):
        again = load_dataset("Cora", root=tmp_path)
    assert torch.equal(again.x, good.x) and torch.equal(again.edge_index, good.edge_index)


def test_processed_files_made_from_other_raw_files_are_rebuilt(data_root, tmp_path):
    """A graph processed from a damaged raw file must not outlive the re-copied raw file."""
    cora = _cora_copy(data_root, tmp_path)
    good = load_dataset("Cora", root=tmp_path)
    (cora / "processed" / D._STAMP).write_text("another digest\n")  # as if made from other raw files
    marker = cora / "processed" / "marker"
    marker.write_text("stale")
    again = load_dataset("Cora", root=tmp_path)
    assert not marker.exists(), "processed/ was not rebuilt"
    assert int(again.test_mask.sum()) == 1000 and torch.equal(again.x, good.x)


def test_known_checksums_match_the_shared_data_folder(data_root):
    sums = {}
    for line in (REPO_SHARED / "SHA256SUMS").read_text().splitlines() if REPO_SHARED.is_dir() else []:
        digest, path = line.split()
        sums[path.split("/")[-1]] = digest
    if not sums:
        pytest.skip("no shared data folder beside the checkout")
    for name, files in D.RAW_SHA256.items():
        for fname, digest in files.items():
            assert sums[fname] == digest, f"{name}: {fname}"


def test_a_synthetic_graph_by_name_is_seeded_split_and_named():
    from msgnn_lite.data import CSBM_DEFAULTS, load_dataset, parse_csbm_spec

    d = load_dataset("csbm:nodes=1200,classes=4,features=12,degree=6,seed=3")
    assert (d.num_nodes, d.num_features, d.num_classes) == (1200, 12, 4)
    assert int(d.train_mask.sum()) == 4 * 20 and int(d.val_mask.sum()) == 4 * 30   # the per-class split
    assert not (d.train_mask & d.val_mask).any() and not (d.train_mask & d.test_mask).any()
    again = load_dataset(d.name)                     # the name lists every parameter: it reloads the same graph
    assert again.name == d.name and torch.equal(again.edge_index, d.edge_index) and torch.equal(again.x, d.x)
    assert parse_csbm_spec("CSBM") == CSBM_DEFAULTS and parse_csbm_spec("Cora") is None
    other = load_dataset("csbm:nodes=1200,classes=4,features=12,degree=6,seed=4")
    assert not torch.equal(other.edge_index, d.edge_index)


@pytest.mark.parametrize("name, match", [("csbm:nodes=abc", "nodes must be an integer"),
                                         ("csbm:colour=red", "colour=red"), ("csbm:homophily", "homophily"),
                                         ("csbm:homophily=high", "homophily must be a number")])
def test_a_malformed_synthetic_name_says_the_form(name, match):
    from msgnn_lite.data import load_dataset

    with pytest.raises(ValueError, match=match):
        load_dataset(name)
