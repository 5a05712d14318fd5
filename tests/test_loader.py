"""NeighborLoader: sampled edges are real, fanouts are respected, seeds come first,
sampling is uniform, layer-wise inference is exact."""
import numpy as np
import pytest
import torch
from scipy import stats
from torch_geometric.data import Data

from msgnn_lite.data import make_csbm
from msgnn_lite.loader import NeighborLoader, layerwise_inference, receptive_field_size, sample_neighbors, to_csr
from msgnn_lite.models import GCN, SAGE
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.utils import to_device


@pytest.fixture(scope="module")
def graph():
    return make_csbm(3000, 12, 4, 8, 0.8, seed=1)


def _power_law_graph(n=1500, seed=0):
    """Directed graph with very uneven in-degrees (0 .. ~200), duplicates removed."""
    g = torch.Generator().manual_seed(seed)
    deg = (torch.rand(n, generator=g) ** 4 * 200).long()
    dst = torch.repeat_interleave(torch.arange(n), deg)
    src = torch.randint(0, n, (dst.numel(),), generator=g)
    key = torch.unique(dst * n + src)
    ei = torch.stack([key % n, key // n])
    return Data(edge_index=ei, x=torch.randn(n, 4), y=torch.randint(0, 3, (n,)), num_nodes=n)


def test_sampled_edges_exist_and_fanout_respected(devices):
    data = _power_law_graph().to(devices)
    n = data.num_nodes
    edges = set((data.edge_index[0] * n + data.edge_index[1]).tolist())
    indeg = torch.bincount(data.edge_index[1], minlength=n)
    fanouts = [7, 3]
    loader = NeighborLoader(data, fanouts, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    for b in loader:
        assert b.edge_index.device == b.x.device == b.n_id.device == data.x.device, "batches stay on the data's device"
        g = b.n_id[b.edge_index]  # global (src, dst)
        assert set((g[0] * n + g[1]).tolist()) <= edges, "a sampled edge is not in the input graph"
        assert b.e_id.numel() == b.edge_index.size(1)
        assert torch.equal(data.edge_index[:, b.e_id], g), "e_id does not point at the sampled edges"
        # No duplicate edge (sampling without replacement).
        assert torch.unique(g[0] * n + g[1]).numel() == g.size(1)
        # Per hop: targets of hop h are the nodes added at hop h-1.
        bounds = np.cumsum([0] + b.num_sampled_nodes)
        e0 = 0
        for hop, (k, ne) in enumerate(zip(fanouts, b.num_sampled_edges)):
            dst = b.edge_index[1, e0:e0 + ne]
            e0 += ne
            lo, hi = bounds[hop], bounds[hop + 1]
            assert bool(((dst >= lo) & (dst < hi)).all())
            got = torch.bincount(dst - lo, minlength=hi - lo)
            want = torch.clamp(indeg[b.n_id[lo:hi]], max=k)
            assert torch.equal(got, want), "a node got more than its fanout, or fewer than min(deg, fanout)"


def test_seeds_first_batch_size_and_features(graph, devices):
    graph = to_device(graph, devices)
    seeds = graph.train_mask.nonzero().view(-1)
    loader = NeighborLoader(graph, [5, 5], batch_size=100, input_nodes=graph.train_mask)
    assert len(loader) == -(-seeds.numel() // 100)
    seen = []
    for b in loader:
        assert b.n_id[:b.batch_size].tolist() == b.input_id.tolist()
        assert torch.unique(b.n_id).numel() == b.n_id.numel()
        assert torch.equal(b.x, graph.x[b.n_id]) and torch.equal(b.y, graph.y[b.n_id])
        assert int(b.edge_index.max()) < b.num_nodes
        seen.append(b.input_id)
    assert torch.equal(torch.cat(seen), seeds)
    assert sum(b.batch_size for b in loader) == seeds.numel()


def test_all_neighbors_with_minus_one(graph):
    b = next(iter(NeighborLoader(graph, [-1], batch_size=50)))
    indeg = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)
    assert torch.equal(torch.bincount(b.edge_index[1], minlength=50)[:50], indeg[:50])


def test_uniform_on_a_star_graph():
    leaves = 20
    ei = torch.stack([torch.arange(1, leaves + 1), torch.zeros(leaves, dtype=torch.long)])
    csr = to_csr(ei, leaves + 1)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(leaves + 1)
    trials, k = 4000, 5
    for _ in range(trials // 100):
        nodes = torch.zeros(100, dtype=torch.long)  # the centre, 100 times in one call
        target, nbr, _ = sample_neighbors(csr, nodes, k, generator=g)
        per = torch.bincount(target, minlength=100)
        assert bool((per == k).all())
        assert all(torch.unique(nbr[target == t]).numel() == k for t in range(0, 100, 17))
        counts += torch.bincount(nbr, minlength=leaves + 1).float()
    obs = counts[1:].numpy()
    assert obs.sum() == trials * k
    p = stats.chisquare(obs).pvalue
    assert p > 0.01, f"leaf frequencies are not uniform (chi-square p={p:.2g})"
    assert obs.min() > 0.8 * obs.mean()


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="num_neighbors"):
        NeighborLoader(graph, [10, -2], batch_size=8)
    with pytest.raises(ValueError, match="num_neighbors"):
        NeighborLoader(graph, [], batch_size=8)
    with pytest.raises(ValueError, match="batch_size"):
        NeighborLoader(graph, [10], batch_size=0)
    with pytest.raises(ValueError, match="input_nodes"):
        NeighborLoader(graph, [10], batch_size=8, input_nodes=torch.tensor([0, graph.num_nodes]))
    with pytest.raises(ValueError, match="fanout"):
        sample_neighbors(to_csr(graph.edge_index, graph.num_nodes), torch.arange(3), -5)


def test_reproducible_with_generator(graph):
    def first():
        gen = torch.Generator().manual_seed(3)
        return next(iter(NeighborLoader(graph, [4, 4], batch_size=32, shuffle=True, generator=gen)))
    a, b = first(), first()
    assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)


def test_pyg_argument_order_and_transform(graph):
    """PyG's order: (data, num_neighbors, input_nodes, input_time, replace, ...), batch_size
    keyword-only; ``transform`` is applied to every batch."""
    seeds = torch.tensor([5, 1, 9])
    calls = []

    def mark(batch):
        calls.append(batch.batch_size)
        batch.marked = True
        return batch
    loader = NeighborLoader(graph, [3], seeds, None, True, transform=mark, batch_size=2)
    batches = list(loader)
    assert calls == [2, 1] and all(b.marked for b in batches)
    assert torch.equal(torch.cat([b.input_id for b in batches]), seeds)
    assert all(b.num_sampled_edges[0] == 3 * b.batch_size for b in batches)  # replace=True: exactly 3 per seed
    with pytest.raises(TypeError):
        NeighborLoader(graph, [3], seeds, None, True, "directional", False, "uniform", None, None, None, None,
                       False, None, None, True, 2)  # batch_size is keyword-only, as in PyG
    with pytest.raises(TypeError, match="transform"):
        NeighborLoader(graph, [3], transform="not callable")


def test_receptive_field_grows_with_hops(graph):
    sizes = receptive_field_size(graph, [5, 5, 5], torch.arange(10))
    assert sizes[0] == 10 and sizes[0] < sizes[1] < sizes[2] < sizes[3] <= graph.num_nodes
    assert sizes[1] <= 10 + 10 * 5


@pytest.mark.parametrize("cls", [GCN, SAGE])
def test_layerwise_inference_matches_full_batch(graph, cls):
    torch.manual_seed(0)
    model = cls(graph.num_features, 16, 4, num_layers=3, batch_norm=True).eval()
    with torch.no_grad():
        full = model(graph.x, build_adjacency(graph.edge_index, graph.num_nodes, model.normalization))
    out = layerwise_inference(model, graph, batch_size=700)
    torch.testing.assert_close(out, full, atol=1e-4, rtol=1e-4)


def test_sampled_sage_equals_full_with_all_neighbors(graph):
    """With fanout -1 for every layer, the seeds' outputs on the sampled subgraph equal
    full-batch outputs: the batch holds exactly the L-hop computation graph."""
    torch.manual_seed(0)
    model = SAGE(graph.num_features, 16, 4, num_layers=2).eval()
    with torch.no_grad():
        full = model(graph.x, graph.edge_index)
        b = next(iter(NeighborLoader(graph, [-1, -1], batch_size=64)))
        out = model(b.x, b.edge_index)[:b.batch_size]
    torch.testing.assert_close(out, full[:64], atol=1e-5, rtol=1e-4)


def test_sampled_gcn_operator_is_exact_when_every_neighbour_is_sampled(devices):
    from msgnn_lite.loader import NeighborLoader, sampled_gcn_operator
    from msgnn_lite.sparse import build_adjacency, propagate

    g = make_csbm(200, 5, 3, 4, homophily=0.6, seed=3).to(devices)
    degree = torch.bincount(g.edge_index[1], minlength=g.num_nodes)
    full = propagate(build_adjacency(g.edge_index, g.num_nodes, "gcn"), g.x)
    seeds = torch.arange(0, 200, 7, device=devices)
    batch = next(iter(NeighborLoader(g, [-1, -1], batch_size=seeds.numel(), input_nodes=seeds)))
    op = sampled_gcn_operator(batch, degree)
    assert op.normalization == "gcn" and op.device.type == devices.type
    out = propagate(op, batch.x)
    hop1 = batch.num_sampled_nodes[0] + batch.num_sampled_nodes[1]  # seeds and hop 1: their neighbours were taken
    assert torch.allclose(out[:hop1], full[batch.n_id[:hop1]], atol=1e-5)


def test_sampled_gcn_operator_is_unbiased_under_sampling():
    from msgnn_lite.loader import NeighborLoader, sampled_gcn_operator
    from msgnn_lite.sparse import build_adjacency, propagate

    g = make_csbm(300, 20, 3, 4, homophily=0.6, seed=4)
    degree = torch.bincount(g.edge_index[1], minlength=g.num_nodes)
    full = propagate(build_adjacency(g.edge_index, g.num_nodes, "gcn"), g.x)
    seeds = torch.arange(10)
    gen = torch.Generator().manual_seed(0)
    loader = NeighborLoader(g, [4], batch_size=10, input_nodes=seeds, generator=gen)
    draws = torch.stack([propagate(sampled_gcn_operator(b, degree), b.x)[:10] for _ in range(800) for b in loader])
    mean, se = draws.mean(0), draws.std(0) / draws.size(0) ** 0.5
    assert bool((degree[seeds] > 4).all())  # every seed's row is a sample, not its whole neighbourhood
    assert bool(((mean - full[seeds]).abs() <= 4 * se + 1e-6).all())
    # PyG's subgraph normalisation is biased: its seed rows average to other values
    naive = torch.stack([propagate(build_adjacency(b.edge_index, b.num_nodes, "gcn"), b.x)[:10]
                         for _ in range(100) for b in loader]).mean(0)
    assert float((naive - full[seeds]).abs().max()) > 10 * float(se.max())


def test_sampled_gcn_operator_needs_a_neighbor_batch():
    from msgnn_lite.loader import sampled_gcn_operator

    g = make_csbm(50, 4, 2, 3, homophily=0.6, seed=1)
    with pytest.raises(ValueError, match="n_id"):
        sampled_gcn_operator(g, torch.ones(50))
