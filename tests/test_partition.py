"""METIS partitions and Cluster-GCN batches: coverage, induced edges, edge cut, cache."""
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.partition import (ClusterData, ClusterLoader, diag_enhanced_adjacency, metis_partition,
                                  partition_stats, random_partition)
from msgnn_lite.utils import to_device


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path))


@pytest.fixture(scope="module")
def graph():
    return make_csbm(4000, 10, 5, 8, 0.9, seed=2)


def test_epoch_covers_every_node_once_and_restores_between_cluster_edges(graph, devices):
    graph = to_device(graph, devices)
    cd = ClusterData(graph, num_parts=23)
    loader = ClusterLoader(cd, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 5
    n = graph.num_nodes
    edges = set((graph.edge_index[0] * n + graph.edge_index[1]).tolist())
    seen = []
    for b in loader:
        assert b.edge_index.device == b.x.device == b.n_id.device == graph.x.device, "batches stay on the data's device"
        seen.append(b.n_id)
        g = b.n_id[b.edge_index]
        assert set((g[0] * n + g[1]).tolist()) <= edges
        assert torch.equal(graph.edge_index[:, b.e_id], g)
        # Exactly the induced subgraph of the batch's nodes (between-cluster edges included).
        inside = torch.zeros(n, dtype=torch.bool, device=graph.x.device)
        inside[b.n_id] = True
        assert b.edge_index.size(1) == int((inside[graph.edge_index[0]] & inside[graph.edge_index[1]]).sum())
        assert len(torch.unique(cd.part[b.n_id])) in (3, 5)  # 23 = 4 x 5 + 3
        assert torch.equal(b.x, graph.x[b.n_id]) and torch.equal(b.y, graph.y[b.n_id])
    seen = torch.cat(seen)
    assert seen.numel() == n and torch.unique(seen).numel() == n


def _grid_with_shortcuts(side=60, shortcuts=200, seed=0):
    """A 2-D grid (local structure, like real graphs' communities) plus random long edges."""
    idx = torch.arange(side * side).view(side, side)
    right = torch.stack([idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)])
    down = torch.stack([idx[:-1].reshape(-1), idx[1:].reshape(-1)])
    g = torch.Generator().manual_seed(seed)
    rand = torch.randint(0, side * side, (2, shortcuts), generator=g)
    rand = rand[:, rand[0] != rand[1]]
    ei = torch.cat([right, down, rand], 1)
    return torch.cat([ei, ei.flip(0)], 1), side * side


def test_metis_cuts_far_fewer_edges_than_random():
    edge_index, n = _grid_with_shortcuts()
    part = metis_partition(edge_index, n, 16)
    sizes = torch.bincount(part, minlength=16)
    rand = random_partition(n, 16, sizes=sizes, seed=0)
    assert torch.equal(torch.bincount(rand, minlength=16), sizes)
    m, r = partition_stats(edge_index, part, 16), partition_stats(edge_index, rand, 16)
    assert r["edge_cut_fraction"] > 0.85  # random: ~ (1 - 1/16) of edges cut
    assert m["edge_cut_fraction"] < 0.2 * r["edge_cut_fraction"]
    assert m["balance"] < 1.1


def test_partition_is_cached_atomically(graph, tmp_path):
    part = metis_partition(graph.edge_index, graph.num_nodes, 8)
    files = list((tmp_path / "partitions").glob("metis_*_p8_*.pt"))
    assert len(files) == 1 and not list((tmp_path / "partitions").glob(".*tmp*"))
    cached = torch.load(files[0], weights_only=True)
    assert torch.equal(cached["part"], part)
    cached["part"] = torch.zeros_like(part)
    torch.save(cached, files[0])  # a cached file is really what gets used
    assert int(metis_partition(graph.edge_index, graph.num_nodes, 8).max()) == 0
    torch.save(cached["part"], files[0])  # the older format (a bare tensor) is still read
    assert int(metis_partition(graph.edge_index, graph.num_nodes, 8).max()) == 0


def test_save_dir_and_filename_as_in_pyg(graph, tmp_path):
    """PyG's ClusterData(data, num_parts, recursive, save_dir, filename): the partition is stored
    there and reused, but a file left by another graph is recomputed, not trusted."""
    folder = tmp_path / "mine"
    a = ClusterData(graph, 8, False, folder, "metis.pt")
    assert (folder / "metis.pt").exists() and not (tmp_path / "partitions").exists()
    stored = torch.load(folder / "metis.pt", weights_only=True)
    stored["part"] = (a.part + 1) % 8  # a relabelled partition: same graph and settings, so it is used
    torch.save(stored, folder / "metis.pt")
    assert torch.equal(ClusterData(graph, 8, save_dir=folder, filename="metis.pt").part, (a.part + 1) % 8)
    other = make_csbm(graph.num_nodes, 10, 5, 8, 0.9, seed=3)
    c = ClusterData(other, 8, save_dir=folder, filename="metis.pt")
    assert not torch.equal(c.part, (a.part + 1) % 8)
    assert torch.equal(c.part, metis_partition(other.edge_index, other.num_nodes, 8, cache=False))


def test_cluster_data_item_is_one_cluster_induced(graph):
    cd = ClusterData(graph, num_parts=6)
    for i in (0, 5, -1):
        b = cd[i]
        assert torch.equal(b.n_id.sort().values, (cd.part == i % 6).nonzero().view(-1))
        inside = cd.part == i % 6
        assert b.edge_index.size(1) == int((inside[graph.edge_index[0]] & inside[graph.edge_index[1]]).sum())
        assert torch.equal(graph.edge_index[:, b.e_id], b.n_id[b.edge_index])
    with pytest.raises(IndexError):
        cd[6]


def test_diag_enhancement(graph):
    adj = diag_enhanced_adjacency(graph.edge_index, graph.num_nodes, diag_lambda=1.0).matrix.to_dense()
    deg = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes).float() + 1
    torch.testing.assert_close(adj.diagonal(), 2.0 / deg)
    torch.testing.assert_close(adj.sum(1), 1.0 + 1.0 / deg)  # rows of A~ sum to 1, plus lambda * diag


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="num_parts"):
        ClusterData(graph, num_parts=graph.num_nodes + 1)
    with pytest.raises(ValueError, match="num_parts"):
        ClusterData(graph, num_parts=0)
    cd = ClusterData(graph, num_parts=4)
    with pytest.raises(ValueError, match="batch_size"):
        ClusterLoader(cd, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        ClusterLoader(cd, batch_size=5)
    with pytest.raises(ValueError, match="part"):
        ClusterData(graph, num_parts=4, part=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="sparse_format"):
        ClusterData(graph, num_parts=4, sparse_format="coo")
    with pytest.raises(NotImplementedError, match="keep_inter_cluster_edges"):
        ClusterData(graph, num_parts=4, keep_inter_cluster_edges=True)
    with pytest.raises(TypeError, match="positional"):  # msgnn_lite's own options (diag_lambda) are keyword-only
        ClusterLoader(cd, 2, True, False, 1.0)
