"""Personalized PageRank: push vs the exact solve, top-k, topic-sensitive PPR, bad arguments."""
import numpy as np
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.ppr import HAVE_NUMBA, exact_ppr, push_ppr, topic_ppr

BACKENDS = ["numpy"] + (["numba"] if HAVE_NUMBA else [])


@pytest.fixture(scope="module")
def graph():
    return make_csbm(250, 6, 3, 4, 0.7, seed=1)


@pytest.fixture(scope="module")
def exact(graph):
    return exact_ppr(graph.edge_index, graph.num_nodes, alpha=0.25)


def dense(res, n):
    out = torch.zeros(res.sources.numel(), n, dtype=torch.float64)
    for i in range(res.sources.numel()):
        nodes, scores = res.neighbors_of(i)
        out[i, nodes] = scores.double()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("eps", [1e-3, 1e-4])
def test_push_within_the_error_bound_of_the_exact_ppr(graph, exact, backend, eps):
    n = graph.num_nodes
    sources = torch.arange(0, n, 5)
    res = push_ppr(graph.edge_index, n, sources, alpha=0.25, eps=eps, topk=n, backend=backend)
    assert res.backend == backend
    approx = dense(res, n)
    deg = torch.bincount(graph.edge_index[0], minlength=n).double()
    err = exact[sources] - approx
    # Andersen-Chung-Lang on an undirected graph: 0 <= ppr(v) - p(v) < eps * deg(v) (float32 scores: tiny slack).
    assert float(err.min()) >= -1e-6
    assert bool((err <= eps * deg + 1e-6).all())
    # The source holds at least alpha of its own mass, and the work bound holds.
    assert bool((approx[torch.arange(sources.numel()), sources] >= 0.25 - 1e-6).all())
    assert res.pushes <= sources.numel() / (0.25 * eps)


def test_backends_agree_within_the_bound(graph):
    if not HAVE_NUMBA:
        pytest.skip("numba not installed")
    n, eps = graph.num_nodes, 1e-4
    a = dense(push_ppr(graph.edge_index, n, None, eps=eps, topk=n, backend="numba"), n)
    b = dense(push_ppr(graph.edge_index, n, None, eps=eps, topk=n, backend="numpy"), n)
    deg = torch.bincount(graph.edge_index[0], minlength=n).double()
    assert bool(((a - b).abs() <= eps * deg + 1e-6).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_keeps_the_k_largest(graph, backend):
    n = graph.num_nodes
    sources = torch.tensor([0, 7, 42, 199])
    full = push_ppr(graph.edge_index, n, sources, eps=1e-4, topk=n, backend=backend)
    top = push_ppr(graph.edge_index, n, sources, eps=1e-4, topk=8, backend=backend)
    assert top.nodes.shape == (4, 8)
    for i in range(4):
        nodes, scores = full.neighbors_of(i)
        kept_nodes, kept_scores = top.neighbors_of(i)
        assert torch.equal(kept_nodes, nodes[:8])
        assert bool((kept_scores[:-1] >= kept_scores[1:]).all())  # sorted, descending
        # Nothing left out scores higher than anything kept.
        assert float(scores[8:].max()) <= float(kept_scores.min())
        assert int(kept_nodes[0]) == int(sources[i])  # a node influences itself most here


def test_padding_when_fewer_nodes_are_reached():
    # Two disconnected edges: a source reaches only 2 nodes.
    ei = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    res = push_ppr(ei, 4, torch.tensor([0, 2]), eps=1e-6, topk=3)
    assert res.nodes[:, 2].tolist() == [-1, -1]
    assert float(res.scores[:, 2].abs().sum()) == 0.0
    assert sorted(res.nodes[0, :2].tolist()) == [0, 1]


def test_exact_ppr_conserves_mass_with_dangling_nodes(directed_graph):
    ei, n = directed_graph  # node 5 is isolated, node 4 has a self-loop
    P = exact_ppr(ei, n)
    assert torch.allclose(P.sum(1), torch.ones(n, dtype=P.dtype))
    assert float(P[5, 5]) == pytest.approx(1.0)
    res = push_ppr(ei, n, None, eps=1e-8, topk=n, backend=BACKENDS[-1])
    assert torch.allclose(dense(res, n), P, atol=1e-5)


def test_topic_ppr_is_the_mean_of_the_members_ppr(graph, exact):
    n = graph.num_nodes
    topics = [torch.tensor([3, 9, 100]), torch.tensor([5]), torch.arange(50)]
    scores = topic_ppr(graph.edge_index, n, topics, alpha=0.25, num_iterations=60, chunk_size=2)
    assert scores.shape == (n, 3)
    for j, t in enumerate(topics):
        assert torch.allclose(scores[:, j].double(), exact[t].mean(0), atol=1e-6)
    tops = topic_ppr(graph.edge_index, n, topics, topk=[4, 2, 10])
    assert [t.numel() for t in tops] == [4, 2, 10]
    assert set(tops[1].tolist()) <= set(torch.topk(scores[:, 1], 3).indices.tolist())


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"alpha": -0.5}, "alpha"),
    ({"eps": 0.0}, "eps"), ({"eps": -1e-4}, "eps"), ({"topk": 0}, "topk"),
    ({"sources": torch.tensor([0, 250])}, "sources"), ({"sources": torch.tensor([-1])}, "sources"),
    ({"sources": torch.tensor([3, 3])}, "duplicate"), ({"sources": torch.tensor([], dtype=torch.long)}, "sources"),
    ({"backend": "cuda"}, "backend"),
])
def test_bad_arguments(graph, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        push_ppr(graph.edge_index, graph.num_nodes, **{"sources": None, **kwargs})


def test_topic_ppr_bad_arguments(graph):
    with pytest.raises(ValueError, match="topics"):
        topic_ppr(graph.edge_index, graph.num_nodes, [])
    with pytest.raises(ValueError, match="alpha"):
        topic_ppr(graph.edge_index, graph.num_nodes, [torch.tensor([0])], alpha=1.5)
    with pytest.raises(ValueError, match="topk"):
        topic_ppr(graph.edge_index, graph.num_nodes, [torch.tensor([0])], topk=[1, 2])
    with pytest.raises(ValueError, match=r"topics\[0\]"):
        topic_ppr(graph.edge_index, graph.num_nodes, [torch.tensor([999])])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_high_degree_source_is_always_pushed(backend):
    # Star with 50 leaves and eps = 0.05: the centre's degree exceeds 1 / eps, so its initial
    # residual of 1 is below eps * deg; the source must still be pushed once.
    leaves = torch.arange(1, 51)
    ei = torch.cat([torch.stack([torch.zeros(50, dtype=torch.long), leaves]),
                    torch.stack([leaves, torch.zeros(50, dtype=torch.long)])], 1)
    res = push_ppr(ei, 51, torch.tensor([0]), alpha=0.25, eps=0.05, topk=3, backend=backend)
    assert int(res.nodes[0, 0]) == 0 and float(res.scores[0, 0]) >= 0.25


def test_topic_ppr_never_returns_unreachable_nodes():
    # Two components; the topic lives in the first (3 nodes), the budget asks for 5.
    ei = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    top = topic_ppr(ei, 5, [torch.tensor([0])], topk=5)[0]
    assert sorted(top.tolist()) == [0, 1, 2]


def test_push_ppr_returns_on_the_graphs_device(graph, devices):
    """push-PPR is CPU code (numba/scipy): the graph is copied to the host once and the result
    comes back on the graph's device, equal to the CPU run."""
    n = graph.num_nodes
    sources = torch.tensor([0, 7, 42])
    ref = push_ppr(graph.edge_index, n, sources, eps=1e-4, topk=8)
    res = push_ppr(graph.edge_index.to(devices), n, sources.to(devices), eps=1e-4, topk=8)
    for got, want in ((res.sources, ref.sources), (res.nodes, ref.nodes), (res.scores, ref.scores)):
        assert got.device.type == devices.type and torch.equal(got.cpu(), want)
    exact = exact_ppr(graph.edge_index.to(devices), n)
    assert exact.device.type == devices.type and torch.equal(exact.cpu(), exact_ppr(graph.edge_index, n))


def test_topic_ppr_runs_and_returns_on_the_graphs_device(graph, devices):
    n = graph.num_nodes
    topics = [torch.tensor([3, 9, 100]), torch.arange(50)]
    ref = topic_ppr(graph.edge_index, n, topics, num_iterations=30)
    scores = topic_ppr(graph.edge_index.to(devices), n, [t.to(devices) for t in topics], num_iterations=30)
    assert scores.device.type == devices.type and torch.allclose(scores.cpu(), ref, atol=1e-6)
    tops = topic_ppr(graph.edge_index.to(devices), n, topics, topk=5, num_iterations=30)
    assert all(t.device.type == devices.type for t in tops)
    assert [set(t.tolist()) for t in tops] == [set(torch.topk(scores[:, j], 5).indices.tolist()) for j in range(2)]
    cpu_tops = topic_ppr(graph.edge_index.to(devices), n, topics, topk=5, device="cpu")  # an explicit device wins
    assert all(t.device.type == "cpu" for t in cpu_tops)


@pytest.mark.parametrize("directed", [False, True])
def test_exact_ppr_for_chosen_sources_equals_the_dense_rows(graph, directed_graph, directed):
    ei, n = (directed_graph if directed else (graph.edge_index, graph.num_nodes))
    dense = exact_ppr(ei, n, alpha=0.2)
    sources = torch.tensor([0, n // 2, n - 1, 0])
    rows = exact_ppr(ei, n, alpha=0.2, sources=sources)
    assert rows.shape == (4, n) and rows.dtype == torch.float64
    assert torch.allclose(rows, dense[sources], atol=1e-10)


def test_exact_ppr_for_sources_scales_past_the_dense_limit_and_checks_its_sources():
    from msgnn_lite.data import make_csbm

    g = make_csbm(20_000, 6, 3, 4, 0.8, seed=0)
    rows = exact_ppr(g.edge_index, g.num_nodes, alpha=0.25, sources=torch.tensor([5, 17]))
    assert torch.allclose(rows.sum(1), torch.ones(2, dtype=torch.float64))   # no dangling nodes: mass 1
    assert (rows[:, [5, 17]].diagonal() >= 0.25).all()                     # at least alpha stays at the source
    with pytest.raises(ValueError, match="sources"):
        exact_ppr(g.edge_index, g.num_nodes, sources=torch.tensor([g.num_nodes]))
    with pytest.raises(ValueError, match="pass sources="):
        exact_ppr(g.edge_index, g.num_nodes)
