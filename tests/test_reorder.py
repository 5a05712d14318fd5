"""Node reordering: a permutation of the whole graph that leaves model outputs unchanged
(after mapping back) and, on a graph with hidden locality, brings neighbours' ids together."""
import pytest
import torch

from msgnn_lite.data import make_csbm, make_local_csbm
from msgnn_lite.models import GCN, SAGE
from msgnn_lite.reorder import ORDERS, edge_span, inverse_permutation, node_order, permute_graph, reorder, restore
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.utils import seed_everything


@pytest.fixture(scope="module")
def graph():
    g = make_csbm(400, 6, 4, 8, 0.8, seed=1)
    g.edge_weight = torch.rand(g.edge_index.size(1), generator=torch.Generator().manual_seed(0))
    return g


@pytest.mark.parametrize("method", ORDERS)
def test_reorder_then_restore_gives_the_same_outputs(graph, method):
    data_p, perm = reorder(graph, method)
    assert torch.equal(torch.sort(perm).values, torch.arange(graph.num_nodes))
    for cls, norm in ((GCN, "gcn"), (SAGE, "mean")):
        seed_everything(0)
        model = cls(8, 16, 4, num_layers=2).eval()
        with torch.no_grad():
            ref = model(graph.x, build_adjacency(graph.edge_index, graph.num_nodes, norm))
            out = model(data_p.x, build_adjacency(data_p.edge_index, data_p.num_nodes, norm))
        assert not torch.allclose(out, ref)  # the rows really moved
        torch.testing.assert_close(restore(out, perm), ref, rtol=1e-5, atol=1e-5)


def test_permuted_graph_keeps_labels_masks_and_edges(graph):
    data_p, perm = reorder(graph, "random", seed=3)
    for key in ("x", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(data_p[key], graph[key][perm])
    n = graph.num_nodes
    old = {(int(s), int(d)): float(w) for s, d, w in zip(*graph.edge_index, graph.edge_weight)}
    new = {(int(perm[s]), int(perm[d])): float(w) for s, d, w in zip(*data_p.edge_index, data_p.edge_weight)}
    assert new == old  # same edges, each with its own weight
    src, dst = data_p.edge_index
    assert bool(((dst * n + src)[1:] > (dst * n + src)[:-1]).all())  # sorted by destination, then source
    assert torch.equal(inverse_permutation(perm)[perm], torch.arange(n))


def test_rcm_recovers_hidden_locality():
    # a pure band graph (every edge local) with shuffled ids: RCM brings neighbours back together
    g = make_local_csbm(20_000, 6, num_classes=4, num_features=4, homophily=1.0, window=8, shuffle_ids=True)
    before = edge_span(g.edge_index, g.num_nodes, window=256)
    after = edge_span(reorder(g, "rcm")[0].edge_index, g.num_nodes, window=256)
    assert before["within_window"] < 0.05 and before["median"] > 1000
    assert after["within_window"] > 0.95 and after["median"] < 100


def test_degree_order_puts_hubs_first(graph):
    perm = node_order(graph.edge_index, graph.num_nodes, "degree")
    deg = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)[perm]
    assert bool((deg[1:] <= deg[:-1]).all())


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="method"):
        node_order(graph.edge_index, graph.num_nodes, "spectral")
    with pytest.raises(ValueError, match="perm"):
        permute_graph(graph, torch.zeros(graph.num_nodes, dtype=torch.long))
    with pytest.raises(ValueError, match="perm"):
        permute_graph(graph, torch.arange(5))
    with pytest.raises(ValueError, match="rows"):
        restore(torch.zeros(3, 2), torch.arange(4))


@pytest.mark.parametrize("method", ["rcm", "partition"])
def test_fit_with_reorder_trains_the_same_model(graph, method):
    # dropout off: training is then a function of the graph up to node ids, so renumbering inside
    # fit gives the same losses, accuracies and weights (up to float summation order)
    from msgnn_lite.train import fit

    results = []
    for order in (None, method):
        seed_everything(0)
        model = GCN(8, 16, 4, num_layers=2, dropout=0.0)
        res = fit(model, graph, epochs=6, lr=0.02, seed=0, device="cpu", reorder=order, measure_memory=False,
                  progress=False)
        results.append((res, model.state_dict()))
    (a, wa), (b, wb) = results
    torch.testing.assert_close(torch.tensor(a.history["loss"].values), torch.tensor(b.history["loss"].values),
                               rtol=1e-4, atol=1e-5)
    assert list(a.history["val_acc"]) == list(b.history["val_acc"])
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-3, atol=1e-4)


def test_fit_rejects_an_unknown_order(graph):
    from msgnn_lite.train import fit

    with pytest.raises(ValueError, match="method"):
        fit(GCN(8, 16, 4), graph, epochs=1, device="cpu", reorder="zigzag", progress=False)


def test_compare_all_reorders_once_for_every_method(graph, monkeypatch):
    from msgnn_lite import compare_all as ca

    seen = []
    real = ca.run_method

    def spy(name, data, budget=None, seed=0, device="auto"):
        seen.append(edge_span(data.edge_index, data.num_nodes, window=16)["median"])
        return real(name, data, budget, seed, device)

    monkeypatch.setattr(ca, "run_method", spy)
    runs, _ = ca.compare_all(graph, ["full batch", "Cluster-GCN"], budget=ca.Budget(epochs=2), reorder="rcm",
                             progress=False)
    assert len(seen) == 2 and seen[0] == seen[1] == edge_span(reorder(graph, "rcm")[0].edge_index, 400, 16)["median"]
    assert runs.attrs["reorder_s"] > 0
