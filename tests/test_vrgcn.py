"""VR-GCN: both estimators are unbiased; the control variate is exact with exact histories.

Each test runs on every device of the ``devices`` fixture, with the operator, features and
model there; the random generators handed in are CPU generators (a sampler on a GPU seeds its
own generator there from them)."""
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.models import GCN, SAGE
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.utils import to_device
from msgnn_lite.vrgcn import (VRGCNSampler, cv_aggregate, fill_histories, gradient_error, make_histories,
                              ns_aggregate, sampled_rows, vr_forward, vrgcn_train_step)


@pytest.fixture(scope="module")
def cpu_graph():
    return make_csbm(200, 6, 3, 8, 0.7, seed=0)


@pytest.fixture
def graph(cpu_graph, devices):
    return to_device(cpu_graph, devices)


@pytest.fixture
def adj(graph):
    return build_adjacency(graph.edge_index, graph.num_nodes, "gcn")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_cv_with_exact_histories_is_exact(graph, adj, devices):
    nodes = torch.arange(0, graph.num_nodes, 3, device=devices)
    h = torch.randn(graph.num_nodes, 5, device=devices)
    exact = (adj @ h)[nodes]
    gen = torch.Generator().manual_seed(0)
    for fanout in (1, 2, 5):
        got = cv_aggregate(adj, nodes, h, h, fanout, gen)
        assert got.device.type == devices.type
        torch.testing.assert_close(got, exact, rtol=1e-5, atol=1e-6)
    # fanout >= max degree: the sampled operator is the exact rows
    deg = adj.matrix.crow_indices().diff().max()
    torch.testing.assert_close(ns_aggregate(adj, nodes, h, int(deg), gen), exact, rtol=1e-5, atol=1e-6)


def test_sampled_rows_keep_min_deg_fanout_distinct_neighbors(adj, devices):
    nodes = torch.tensor([0, 10, 20, 30], device=devices)
    n_id, op = sampled_rows(adj, nodes, 2, torch.Generator().manual_seed(1))
    assert n_id.device.type == op.device.type == devices.type
    crow, col = op.matrix.crow_indices(), op.matrix.col_indices()
    deg = adj.matrix.crow_indices().diff()[nodes]
    assert crow.diff()[:4].tolist() == deg.clamp(max=2).tolist() and int(crow[-1]) == int(crow[4])
    for i, v in enumerate(nodes.tolist()):
        cols = n_id[col[crow[i]:crow[i + 1]]]
        assert cols.unique().numel() == cols.numel()
        full_row = adj.matrix.to_dense()[v]
        assert bool((full_row[cols] > 0).all())
        # weights are A_vu * deg_v / k_v
        torch.testing.assert_close(op.matrix.values()[crow[i]:crow[i + 1]],
                                   full_row[cols] * float(deg[i]) / min(int(deg[i]), 2))


@pytest.mark.parametrize("estimator", ["ns", "cv"])
def test_mean_of_many_samples_approaches_the_exact_aggregation(graph, adj, estimator, devices):
    """Monte Carlo: with R samples the mean lies within 5 standard errors (std / sqrt(R)) of the
    exact aggregation, entry by entry (a failure probability of ~1e-6 per entry)."""
    gen = torch.Generator(device=devices).manual_seed(0)
    torch.manual_seed(0)
    nodes = torch.arange(0, graph.num_nodes, 5, device=devices)
    h = torch.randn(graph.num_nodes, 3, device=devices)
    h_bar = h + 0.3 * torch.randn_like(h)
    exact = (adj @ h)[nodes]
    reps = 1500
    draws = torch.stack([ns_aggregate(adj, nodes, h, 2, gen) if estimator == "ns"
                         else cv_aggregate(adj, nodes, h, h_bar, 2, gen) for _ in range(reps)])
    stderr = draws.std(0) / reps ** 0.5
    assert bool(((draws.mean(0) - exact).abs() <= 5 * stderr + 1e-6).all())
    if estimator == "cv":  # the control variate shrinks the spread when h_bar is close to h
        plain = torch.stack([ns_aggregate(adj, nodes, h, 2, gen) for _ in range(200)])
        assert draws.std(0).mean() < 0.5 * plain.std(0).mean()


def test_vr_forward_is_exact_with_exact_histories_and_full_fanout(graph, adj, devices):
    torch.manual_seed(0)
    model = GCN(8, 16, 3, num_layers=3, dropout=0.0).to(devices)
    hist = make_histories(model, graph.num_nodes)  # on the host, as for a large graph
    fill_histories(model, graph.x, adj, hist)
    seeds = torch.arange(20, device=devices)
    expected = model(graph.x, adj)[seeds]
    big = int(adj.matrix.crow_indices().diff().max())
    for estimator in ("cv", "ns"):
        batch = VRGCNSampler(adj, 3, big).sample(seeds)
        assert batch.batch_size == 20 and torch.equal(batch.n_id[:20], seeds)
        out = vr_forward(model, graph.x, batch, hist, estimator)
        assert out.device.type == devices.type
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # fanout 2 with exact histories: the CV forward is still exact, NS is not
    small = VRGCNSampler(adj, 3, 2, generator=torch.Generator().manual_seed(0)).sample(seeds)
    torch.testing.assert_close(vr_forward(model, graph.x, small, hist, "cv", push=False), expected,
                               rtol=1e-5, atol=1e-5)
    assert not torch.allclose(vr_forward(model, graph.x, small, hist, "ns"), expected, atol=1e-3)


def test_cv_gradient_is_closer_than_ns_and_training_learns(graph, adj, devices):
    torch.manual_seed(0)
    model = GCN(8, 16, 3, num_layers=2, dropout=0.0).to(devices)
    hist = make_histories(model, graph.num_nodes, devices)
    fill_histories(model, graph.x, adj, hist)
    err = gradient_error(model, graph, torch.arange(40, device=devices), hist, fanouts=(2,), samples=8,
                         generator=torch.Generator().manual_seed(0)).set_index("estimator")
    assert err.loc["cv", "rel_error"] < 0.6 * err.loc["ns", "rel_error"]
    from msgnn_lite.train import fit

    sampler = VRGCNSampler(adj, 2, 2, generator=torch.Generator().manual_seed(0))
    assert sampler.generator.device.type == devices.type  # drawn where the operator lives
    step = vrgcn_train_step(sampler, hist, "cv", batch_size=10, generator=torch.Generator().manual_seed(1))
    res = fit(model, graph, epochs=30, seed=0, device=devices, measure_memory=False, progress=False, train_step=step)
    assert res.test_acc > 0.7 and res.history.loss.notna().all()
    assert bool((hist[0].age() >= 0).any())  # pushed during training


def test_bad_arguments(cpu_graph):
    graph, adj = cpu_graph, build_adjacency(cpu_graph.edge_index, cpu_graph.num_nodes, "gcn")
    nodes = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="fanout must be an integer >= 1"):
        sampled_rows(adj, nodes, 0)
    with pytest.raises(ValueError, match="fanout"):
        VRGCNSampler(adj, 2, -1)
    with pytest.raises(IndexError, match="nodes"):
        sampled_rows(adj, torch.tensor([graph.num_nodes]), 2)
    with pytest.raises(ValueError, match="h_bar must have the shape of h"):
        cv_aggregate(adj, nodes, torch.zeros(graph.num_nodes, 2), torch.zeros(graph.num_nodes, 3), 2)
    model = GCN(8, 16, 3, num_layers=2, dropout=0.0)
    batch = VRGCNSampler(adj, 2, 2).sample(nodes)
    with pytest.raises(ValueError, match="estimator must be"):
        vr_forward(model, graph.x, batch, None, "exact")
    with pytest.raises(ValueError, match="histories must be a list of 1"):
        vr_forward(model, graph.x, batch, None, "cv")
    with pytest.raises(ValueError, match="sampled for 2 layers"):
        vr_forward(GCN(8, 16, 3, num_layers=3), graph.x, batch, None, "ns")
    with pytest.raises(TypeError, match="msgnn_lite.models.GCN"):
        vr_forward(SAGE(8, 16, 3), graph.x, batch, None, "ns")
    with pytest.raises(ValueError, match="seeds must hold distinct"):
        VRGCNSampler(adj, 2, 2).sample(torch.tensor([1, 1]))


def test_the_mlp_floor_rides_along_with_the_same_budget():
    from msgnn_lite import vrgcn
    from msgnn_lite.data import load_dataset

    data = load_dataset("csbm:nodes=400,classes=3,features=8,seed=6")
    runs = vrgcn.accuracy_runs(data, seeds=[0], epochs=4, batch_size=20, mlp=True, progress=False)
    assert list(runs.method) == ["full batch", "NS fanout 2", "VR-GCN (CV) fanout 2", "MLP"]
    assert list(vrgcn.accuracy_runs(data, seeds=[0], epochs=2, batch_size=20, progress=False).method)[-1] != "MLP"
