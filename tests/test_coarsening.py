"""Coarsening by node selection: P^T A^k P against the dense computation, the
selection methods' properties, and clear errors for bad arguments.

Every test that builds graphs takes the ``devices`` fixture: its inputs are on that device,
and the outputs must be there too, with the same properties as on the CPU."""
import math

import pytest
import torch

from msgnn_lite.coarsening import (
    METHODS,
    coarsen,
    coarsen_hierarchy,
    coarsest,
    level_sizes,
    method_for_epoch,
    num_kept,
    power_adjacency,
    select_nodes,
    selection_matrix,
)
from msgnn_lite.data import make_csbm
from msgnn_lite.utils import to_device


@pytest.fixture(scope="module")
def cpu_graph():
    return make_csbm(60, 4, 3, 5, 0.8, seed=3)


@pytest.fixture
def graph(cpu_graph, devices):
    return to_device(cpu_graph, devices)


def _gen(device, seed):
    """A seeded generator of ``device`` (used as it is by the selection methods)."""
    return torch.Generator(device=device).manual_seed(seed)


def _dense(edge_index, n, weight=None):
    a = torch.zeros(n, n, dtype=torch.float64)
    w = torch.ones(edge_index.size(1), dtype=torch.float64) if weight is None else weight.double().cpu()
    a.index_put_((edge_index[1].cpu(), edge_index[0].cpu()), w, accumulate=True)
    return a


def _assert_sorted_coalesced(edge_index, m):
    """Sorted by destination, then source, with no duplicate entry."""
    key = edge_index[1] * m + edge_index[0]
    assert bool((key[1:] > key[:-1]).all())


@pytest.mark.parametrize("method", ["random", "topk", "subgraph"])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("self_loops", [True, False])
def test_power_adjacency_equals_dense(graph, devices, method, k, self_loops):
    n = graph.num_nodes
    keep = select_nodes(graph.edge_index, n, 25, method, generator=_gen(devices, k))
    ei, w = power_adjacency(graph.edge_index, n, keep, k, self_loops=self_loops)
    assert ei.device.type == w.device.type == devices.type
    a = _dense(graph.edge_index, n) + (torch.eye(n, dtype=torch.float64) if self_loops else 0)
    p = selection_matrix(keep, n).to_dense().double().cpu()
    expected = p.T @ torch.linalg.matrix_power(a, k) @ p
    got = torch.zeros(25, 25, dtype=torch.float64)
    got[ei[1].cpu(), ei[0].cpu()] = w.double().cpu()
    torch.testing.assert_close(got, expected)
    assert bool((w != 0).all())  # only the support is stored
    _assert_sorted_coalesced(ei, 25)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("self_loops", [True, False])
def test_power_adjacency_of_a_weighted_multigraph_in_any_order(devices, k, self_loops):
    # duplicate edges, self-loops, edge weights, edges in random order and kept ids in random
    # order: the entries are still summed, sorted by (destination, source) and equal to P^T A^k P
    g = make_csbm(50, 4, 3, 4, 0.8, seed=4)
    ei = torch.cat([g.edge_index, g.edge_index[:, :20], torch.tensor([[3, 7, 9], [3, 7, 9]])], 1)
    ei = ei[:, torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(1))]
    weight = torch.rand(ei.size(1), generator=torch.Generator().manual_seed(2)) + 0.5
    keep = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:20]
    out, w = power_adjacency(ei.to(devices), 50, keep.to(devices), k, self_loops=self_loops,
                             edge_weight=weight.to(devices))
    assert out.device.type == devices.type
    a = _dense(ei, 50, weight) + (torch.eye(50, dtype=torch.float64) if self_loops else 0)
    expected = torch.linalg.matrix_power(a, k)[keep][:, keep]
    got = torch.zeros(20, 20, dtype=torch.float64)
    got[out[1].cpu(), out[0].cpu()] = w.double().cpu()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    _assert_sorted_coalesced(out, 20)


def test_power_adjacency_directed_convention(devices):
    # edges 0 -> 1 -> 2 (source_to_target): A^2 links 0 -> 2 only in that direction
    ei = torch.tensor([[0, 1], [1, 2]], device=devices)
    out, w = power_adjacency(ei, 3, torch.tensor([0, 2], device=devices), 2, self_loops=False)
    assert out.tolist() == [[0], [1]] and w.tolist() == [1.0]


def test_random_selection_draws_m_distinct_nodes_on_the_graphs_device(graph, devices):
    n = graph.num_nodes
    gen = _gen(devices, 0)
    draws = [select_nodes(graph.edge_index, n, 20, "random", generator=gen) for _ in range(4)]
    for keep in draws:
        assert keep.device.type == devices.type and keep.dtype == torch.long
        assert keep.numel() == 20 and keep.unique().numel() == 20
        assert 0 <= int(keep.min()) and int(keep.max()) < n
        assert bool((keep[1:] > keep[:-1]).all())
    assert any(not torch.equal(draws[0], d) for d in draws[1:])  # resampled every call
    # the permutation is drawn on the graph's device with the generator given (on the CPU this
    # is the stream the notebooks' stored outputs depend on)
    expected = torch.sort(torch.randperm(n, generator=_gen(devices, 5), device=devices)[:20]).values
    assert torch.equal(select_nodes(graph.edge_index, n, 20, "random", generator=_gen(devices, 5)), expected)


@pytest.mark.parametrize("method", ["random", "subgraph"])
def test_the_same_seed_gives_the_same_draw(graph, devices, method):
    n = graph.num_nodes
    for make in (lambda s: _gen(devices, s), lambda s: torch.Generator().manual_seed(s)):  # also a CPU generator
        a = select_nodes(graph.edge_index, n, 20, method, generator=make(7))
        b = select_nodes(graph.edge_index, n, 20, method, generator=make(7))
        c = select_nodes(graph.edge_index, n, 20, method, generator=make(8))
        assert a.device.type == devices.type and torch.equal(a, b) and not torch.equal(a, c)
    default = select_nodes(graph.edge_index, n, 20, method)  # no generator: seed 0
    assert torch.equal(default, select_nodes(graph.edge_index, n, 20, method))


def _frontier_bfs_selection(edge_index, n, m, hops, gen):
    """The subgraph selection written plainly: seeds (in a random priority order) are added in
    rounds, a frontier-by-frontier BFS marks every node's distance to them, and the m nodes
    nearest to the seeds are kept, the last ring trimmed by a random tiebreak."""
    device = edge_index.device
    order = torch.randperm(n, generator=gen, device=device).tolist()
    tiebreak = torch.rand(n, generator=gen, device=device)
    src, dst = edge_index.tolist()
    dist = [hops + 1] * n
    n_new = max(1, min(m, int(m / (max(len(src) / n, 1.0) + 1) ** hops)))
    taken = 0
    while True:
        seeds = order[taken:taken + n_new]
        taken += len(seeds)
        for s in seeds:
            dist[s] = 0
        frontier = set(seeds)
        for h in range(1, hops + 1):
            frontier = {d for s, d in zip(src, dst) if s in frontier and dist[d] > h}
            for v in frontier:
                dist[v] = h
        covered = sum(d <= hops for d in dist)
        if covered >= m or taken >= n:
            break
        n_new = min(n - taken, max(n_new, math.ceil(n_new * (m - covered) / max(covered, 1))))
    key = torch.tensor(dist, dtype=torch.float32, device=device) + tiebreak
    return torch.sort(torch.topk(key, m, largest=False).indices).values


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
@pytest.mark.parametrize("m", [1, 7, 30, 59, 60])
def test_subgraph_selection_equals_a_frontier_by_frontier_bfs(devices, directed_graph, hops, m):
    # the vectorized multi-source BFS (min-priority scatters, no per-hop host reads) selects
    # exactly the nodes of the plain BFS from the same random draws
    g = make_csbm(60, 4, 3, 5, 0.8, seed=3)
    for seed in range(3):
        got = select_nodes(g.edge_index.to(devices), 60, m, "subgraph", hops=hops, generator=_gen(devices, seed))
        assert got.device.type == devices.type
        assert torch.equal(got, _frontier_bfs_selection(g.edge_index.to(devices), 60, m, hops, _gen(devices, seed)))
    ei, n = directed_graph  # directed, with an isolated node and a self-loop: distances follow the edges
    for size in (1, 3, 6):
        got = select_nodes(ei.to(devices), n, size, "subgraph", hops=hops, generator=_gen(devices, 1))
        assert torch.equal(got, _frontier_bfs_selection(ei.to(devices), n, size, hops, _gen(devices, 1)))


def test_topk_keeps_highest_degree(graph, devices):
    n = graph.num_nodes
    deg = torch.bincount(graph.edge_index[1].cpu(), minlength=n)
    keep = select_nodes(graph.edge_index, n, 15, "topk")
    assert keep.device.type == devices.type
    keep = keep.cpu()
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[keep] = False
    assert int(deg[keep].min()) >= int(deg[dropped].max())
    assert torch.equal(keep, select_nodes(graph.edge_index, n, 15, "topk").cpu())  # deterministic
    expected = torch.sort(torch.sort(deg, descending=True, stable=True).indices[:15]).values
    assert torch.equal(keep, expected)  # ties by the smaller id, on every device


def test_subgraph_is_ego_networks(graph, devices):
    n = graph.num_nodes
    keep = select_nodes(graph.edge_index, n, 30, "subgraph", hops=1, generator=_gen(devices, 1))
    # a 1-hop ego selection: most kept nodes have a kept neighbour (it is local, not uniform)
    sub = coarsen(graph, keep)
    has_nb = torch.bincount(sub.edge_index[1].cpu(), minlength=30) > 0
    assert float(has_nb.float().mean()) > 0.8


def test_alternate_switches_methods():
    assert [method_for_epoch("alternate", e) for e in range(4)] == ["random", "subgraph", "random", "subgraph"]


def test_coarsen_restricts_everything(cpu_graph, graph, devices):
    keep = torch.tensor([1, 4, 9, 20, 33, 59], device=devices)
    g = coarsen(graph, keep)
    for key in ("x", "y", "train_mask", "val_mask", "test_mask", "edge_index", "node_ids"):
        assert g[key].device.type == devices.type, key
    assert torch.equal(g.x, graph.x[keep]) and torch.equal(g.y, graph.y[keep])
    for key in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(g[key], graph[key][keep])
    assert g.num_nodes == 6 and torch.equal(g.node_ids, keep)
    assert bool((g.edge_index[0] != g.edge_index[1]).all())
    # sparse CSR features are gathered without densifying, with identical values
    sparse = cpu_graph.clone()
    sparse.x = (cpu_graph.x * (cpu_graph.x > 1)).to_sparse_csr()
    sparse = to_device(sparse, devices)
    gs = coarsen(sparse, keep)
    assert gs.x.layout == torch.sparse_csr and gs.x.device.type == devices.type
    assert torch.equal(gs.x.to_dense(), sparse.x.to_dense()[keep])
    # kept ids in any order: the coarse node j is keep[j], features included
    shuffled = keep[torch.tensor([3, 0, 5, 1, 4, 2], device=devices)]
    gu = coarsen(sparse, shuffled)
    assert torch.equal(gu.x.to_dense(), sparse.x.to_dense()[shuffled]) and torch.equal(gu.node_ids, shuffled)


@pytest.mark.parametrize("k", [1, 2])
def test_coarse_edges_do_not_depend_on_the_input_edge_order(cpu_graph, devices, k):
    keep = select_nodes(cpu_graph.edge_index, 60, 30, "random", generator=torch.Generator().manual_seed(0))
    shuffled = cpu_graph.clone()
    shuffled.edge_index = cpu_graph.edge_index[:, torch.randperm(cpu_graph.edge_index.size(1),
                                                                  generator=torch.Generator().manual_seed(1))]
    a = coarsen(to_device(cpu_graph, devices), keep.to(devices), k=k, weighted=True)
    b = coarsen(to_device(shuffled, devices), keep.to(devices), k=k, weighted=True)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.edge_weight, b.edge_weight)
    _assert_sorted_coalesced(a.edge_index, 30)  # the order build_adjacency needs no sort for
    assert bool((a.edge_index[0] != a.edge_index[1]).all())


def test_hierarchy_is_nested_with_halving_sizes(graph, devices):
    levels = coarsen_hierarchy(graph, 3, generator=_gen(devices, 0))
    assert [g.num_nodes for g in levels] == [60, 30, 15, 8]
    for fine, coarse in zip(levels[:-1], levels[1:]):
        assert coarse.edge_index.device.type == coarse.node_ids.device.type == devices.type
        fine_ids = getattr(fine, "node_ids", torch.arange(fine.num_nodes, device=devices))
        assert bool(torch.isin(coarse.node_ids, fine_ids).all())
    assert torch.equal(levels[-1].x, graph.x[levels[-1].node_ids])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k", [1, 2])
def test_coarsest_is_the_last_level_of_the_hierarchy(graph, devices, method, k):
    for levels in (0, 1, 3):
        full = coarsen_hierarchy(graph, levels, method=method, k=k, epoch=levels, generator=_gen(devices, levels))[-1]
        last = coarsest(graph, levels, method=method, k=k, epoch=levels, generator=_gen(devices, levels))
        assert set(full.keys()) == set(last.keys())
        for key in full.keys():
            if isinstance(full[key], torch.Tensor):
                assert last[key].device.type == devices.type and torch.equal(full[key], last[key]), key
            else:
                assert full[key] == last[key], key


def test_ratio_one_keeps_the_graph(graph):
    g = coarsen(graph, ratio=1.0, method="topk")
    assert g.num_nodes == graph.num_nodes
    key = lambda ei: torch.sort(ei[0] * 1000 + ei[1]).values  # noqa: E731
    assert torch.equal(key(g.edge_index), key(graph.edge_index))


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_bad_ratio_raises(cpu_graph, ratio):
    with pytest.raises(ValueError, match="ratio"):
        coarsen(cpu_graph, ratio=ratio)
    with pytest.raises(ValueError, match="ratio"):
        num_kept(10, ratio)


def test_bad_k_and_method_raise(cpu_graph):
    with pytest.raises(ValueError, match="k must be"):
        power_adjacency(cpu_graph.edge_index, cpu_graph.num_nodes, torch.arange(5), 0)
    with pytest.raises(ValueError, match="k must be"):
        coarsen_hierarchy(cpu_graph, 1, k=0)
    with pytest.raises(ValueError, match="method"):
        coarsen_hierarchy(cpu_graph, 1, method="graclus")
    with pytest.raises(ValueError, match="out of range"):
        coarsen(cpu_graph.clone().update({"num_nodes": 10}))  # edge ids beyond num_nodes
    assert set(METHODS) == {"random", "topk", "subgraph", "alternate"}


def test_too_many_levels_raise(cpu_graph):
    assert level_sizes(60, 4) == [60, 30, 15, 8, 4]
    with pytest.raises(ValueError, match="levels=7 is more than the graph allows"):
        coarsen_hierarchy(cpu_graph, 7)
    with pytest.raises(ValueError, match="levels=7 is more than the graph allows"):
        coarsest(cpu_graph, 7)
