"""Coarsening by node selection: P^T A^k P against the dense computation, the
selection methods' properties, and clear errors for bad arguments."""
import pytest
import torch

from msgnn_lite.coarsening import (
    METHODS,
    coarsen,
    coarsen_hierarchy,
    level_sizes,
    method_for_epoch,
    num_kept,
    power_adjacency,
    select_nodes,
    selection_matrix,
)
from msgnn_lite.data import make_csbm


@pytest.fixture(scope="module")
def graph():
    return make_csbm(60, 4, 3, 5, 0.8, seed=3)


def _dense(edge_index, n):
    a = torch.zeros(n, n, dtype=torch.float64)
    a.index_put_((edge_index[1], edge_index[0]), torch.ones(edge_index.size(1), dtype=torch.float64), accumulate=True)
    return a


@pytest.mark.parametrize("method", ["random", "topk", "subgraph"])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("self_loops", [True, False])
def test_power_adjacency_equals_dense(graph, method, k, self_loops):
    n = graph.num_nodes
    keep = select_nodes(graph.edge_index, n, 25, method, generator=torch.Generator().manual_seed(k))
    ei, w = power_adjacency(graph.edge_index, n, keep, k, self_loops=self_loops)
    a = _dense(graph.edge_index, n) + (torch.eye(n, dtype=torch.float64) if self_loops else 0)
    p = selection_matrix(keep, n).to_dense().double()
    expected = p.T @ torch.linalg.matrix_power(a, k) @ p
    got = torch.zeros(25, 25, dtype=torch.float64)
    got[ei[1], ei[0]] = w.double()
    torch.testing.assert_close(got, expected)
    assert bool((w != 0).all())  # only the support is stored


def test_power_adjacency_directed_convention():
    # edges 0 -> 1 -> 2 (source_to_target): A^2 links 0 -> 2 only in that direction
    ei = torch.tensor([[0, 1], [1, 2]])
    out, w = power_adjacency(ei, 3, torch.tensor([0, 2]), 2, self_loops=False)
    assert out.tolist() == [[0], [1]] and w.tolist() == [1.0]


@pytest.mark.parametrize("method", ["random", "subgraph"])
def test_random_methods_keep_requested_count_and_resample(graph, method):
    n = graph.num_nodes
    gen = torch.Generator().manual_seed(0)
    draws = [select_nodes(graph.edge_index, n, 20, method, generator=gen) for _ in range(4)]
    for keep in draws:
        assert keep.numel() == 20 and keep.unique().numel() == 20
        assert bool((keep[1:] > keep[:-1]).all())
    assert any(not torch.equal(draws[0], d) for d in draws[1:])  # resampled every call


def test_topk_keeps_highest_degree(graph):
    n = graph.num_nodes
    deg = torch.bincount(graph.edge_index[1], minlength=n)
    keep = select_nodes(graph.edge_index, n, 15, "topk")
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[keep] = False
    assert int(deg[keep].min()) >= int(deg[dropped].max())
    assert torch.equal(keep, select_nodes(graph.edge_index, n, 15, "topk"))  # deterministic


def test_subgraph_is_ego_networks(graph):
    n = graph.num_nodes
    keep = select_nodes(graph.edge_index, n, 30, "subgraph", hops=1, generator=torch.Generator().manual_seed(1))
    # a 1-hop ego selection: most kept nodes have a kept neighbour (it is local, not uniform)
    sub = coarsen(graph, keep)
    has_nb = torch.bincount(sub.edge_index[1], minlength=30) > 0
    assert float(has_nb.float().mean()) > 0.8


def test_alternate_switches_methods():
    assert [method_for_epoch("alternate", e) for e in range(4)] == ["random", "subgraph", "random", "subgraph"]


def test_coarsen_restricts_everything(graph):
    keep = torch.tensor([1, 4, 9, 20, 33, 59])
    g = coarsen(graph, keep)
    assert torch.equal(g.x, graph.x[keep]) and torch.equal(g.y, graph.y[keep])
    for key in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(g[key], graph[key][keep])
    assert g.num_nodes == 6 and torch.equal(g.node_ids, keep)
    assert bool((g.edge_index[0] != g.edge_index[1]).all())
    # sparse CSR features are gathered without densifying, with identical values
    sparse = graph.clone()
    sparse.x = (graph.x * (graph.x > 1)).to_sparse_csr()
    gs = coarsen(sparse, keep)
    assert gs.x.layout == torch.sparse_csr
    assert torch.equal(gs.x.to_dense(), sparse.x.to_dense()[keep])


def test_hierarchy_is_nested_with_halving_sizes(graph):
    levels = coarsen_hierarchy(graph, 3, generator=torch.Generator().manual_seed(0))
    assert [g.num_nodes for g in levels] == [60, 30, 15, 8]
    for fine, coarse in zip(levels[:-1], levels[1:]):
        fine_ids = getattr(fine, "node_ids", torch.arange(fine.num_nodes))
        assert bool(torch.isin(coarse.node_ids, fine_ids).all())
    assert torch.equal(levels[-1].x, graph.x[levels[-1].node_ids])


def test_ratio_one_keeps_the_graph(graph):
    g = coarsen(graph, ratio=1.0, method="topk")
    assert g.num_nodes == graph.num_nodes
    key = lambda ei: torch.sort(ei[0] * 1000 + ei[1]).values  # noqa: E731
    assert torch.equal(key(g.edge_index), key(graph.edge_index))


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_bad_ratio_raises(graph, ratio):
    with pytest.raises(ValueError, match="ratio"):
        coarsen(graph, ratio=ratio)
    with pytest.raises(ValueError, match="ratio"):
        num_kept(10, ratio)


def test_bad_k_and_method_raise(graph):
    with pytest.raises(ValueError, match="k must be"):
        power_adjacency(graph.edge_index, graph.num_nodes, torch.arange(5), 0)
    with pytest.raises(ValueError, match="k must be"):
        coarsen_hierarchy(graph, 1, k=0)
    with pytest.raises(ValueError, match="method"):
        coarsen_hierarchy(graph, 1, method="graclus")
    assert set(METHODS) == {"random", "topk", "subgraph", "alternate"}


def test_too_many_levels_raise(graph):
    assert level_sizes(60, 4) == [60, 30, 15, 8, 4]
    with pytest.raises(ValueError, match="levels=7 is more than the graph allows"):
        coarsen_hierarchy(graph, 7)
