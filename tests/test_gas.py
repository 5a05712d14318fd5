"""GAS: one batch is full-batch training; fresh histories make every batch exact."""
import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.data import make_csbm
from msgnn_lite.gas import GASGNN, GASLoader, gas_train_step, history_staleness, step_memory
from msgnn_lite.models import GCN, SAGE
from msgnn_lite.partition import ClusterData, ClusterLoader, random_partition
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.train import fit, minibatch_step


@pytest.fixture(scope="module")
def graph():
    return make_csbm(240, 6, 3, 8, 0.7, seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


def _grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("conv,ref_cls", [("gcn", GCN), ("sage", SAGE), ("gcnii", None)])
def test_one_batch_gas_is_full_batch(graph, conv, ref_cls):
    """The whole graph as one batch: no halo, so outputs and gradients equal full batch
    (dropout included: the same random draws in the same order)."""
    torch.manual_seed(0)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=3, conv=conv, dropout=0.5)
    b = next(iter(GASLoader(ClusterData(graph, 1), 1, normalization=model.normalization)))
    assert b.batch_size == b.num_nodes == graph.num_nodes
    torch.manual_seed(1)
    out = model(b.x, b.adj, n_id=b.n_id, batch_size=b.batch_size)
    F.cross_entropy(out, b.y).backward()
    got = _grads(model)
    if ref_cls is not None:  # an independent implementation: msgnn_lite.models
        ref = ref_cls(8, 16, 3, num_layers=3, dropout=0.5)
        ref.load_state_dict(model.state_dict())
    else:
        model.zero_grad()
        ref = model
    torch.manual_seed(1)
    expected = ref(graph.x, build_adjacency(graph.edge_index, graph.num_nodes, model.normalization))
    F.cross_entropy(expected, graph.y).backward()
    torch.testing.assert_close(out[torch.argsort(b.n_id)], expected, rtol=0, atol=1e-6)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-5, atol=1e-6)
    # the histories now hold every node's hidden embeddings
    assert all(bool((h.age() >= 0).all()) for h in model.histories)


@pytest.mark.parametrize("conv", ["gcn", "sage", "gcnii"])
def test_fresh_histories_make_every_batch_exact(graph, conv):
    """GAS's exactness: with histories equal to the current embeddings, a mini-batch's
    output equals the full-graph output for its nodes (full-graph degrees in the batch
    operator). The Cluster-GCN subgraph, which drops the halo, does not."""
    torch.manual_seed(0)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=4, conv=conv).eval()
    adj = build_adjacency(graph.edge_index, graph.num_nodes, model.normalization)
    model.refresh_histories(graph.x, adj)
    full = model(graph.x, adj)
    cd = ClusterData(graph, 6)
    seen = torch.zeros(graph.num_nodes, dtype=torch.long)
    for b in GASLoader(cd, 2, shuffle=False, normalization=model.normalization):
        out = model(b.x, b.adj, n_id=b.n_id, batch_size=b.batch_size)
        torch.testing.assert_close(out, full[b.n_id[:b.batch_size]], rtol=1e-5, atol=1e-5)
        seen[b.n_id[:b.batch_size]] += 1
    assert bool((seen == 1).all())  # an epoch covers each node once as an in-batch node
    cb = next(iter(ClusterLoader(cd, 2)))
    assert not torch.allclose(model(cb.x, cb.edge_index), full[cb.n_id], atol=1e-3)
    assert max(history_staleness(model, graph.x, adj)) < 1e-6


def test_stale_histories_are_used_for_the_halo(graph):
    """Zero histories change the batch output (the halo reads them), and push refreshes them."""
    torch.manual_seed(0)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=2).eval()
    cd = ClusterData(graph, 4, part=random_partition(graph.num_nodes, 4, seed=0))
    loader = GASLoader(cd, 1, shuffle=False)
    b = next(iter(loader))
    assert b.num_nodes > b.batch_size  # a halo exists
    adj = build_adjacency(graph.edge_index, graph.num_nodes, "gcn")
    stale = model(b.x, b.adj, n_id=b.n_id, batch_size=b.batch_size)
    assert not torch.allclose(stale, model(graph.x, adj)[b.n_id[:b.batch_size]], atol=1e-4)
    pushed = model.histories[0].pull(b.n_id[:b.batch_size])
    assert pushed.abs().sum() > 0 and model.histories[0].pull(b.n_id[b.batch_size:]).abs().sum() == 0


def test_gas_training_learns_and_reports_memory(graph):
    torch.manual_seed(0)
    cd = ClusterData(graph, 8)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=2, dropout=0.2)
    gen = torch.Generator().manual_seed(0)
    res = fit(model, graph, epochs=30, seed=0, device="cpu", measure_memory=False, progress=False,
              train_step=gas_train_step(GASLoader(cd, 2, generator=gen)))
    assert res.test_acc > 0.7
    torch.manual_seed(0)
    base = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=2, dropout=0.2)
    res_cl = fit(base, graph, epochs=5, seed=0, device="cpu", measure_memory=False, progress=False,
                 train_step=minibatch_step(ClusterLoader(cd, 2, shuffle=True)))
    assert res_cl.epochs_run == 5
    full = step_memory(model, graph, device="cpu")
    one = step_memory(model, graph, next(iter(GASLoader(cd, 1))), device="cpu")
    assert one["activation_bytes"] < full["activation_bytes"]
    assert one["history_bytes"] == graph.num_nodes * 16 * 4 and full["history_bytes"] == 0


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="conv must be one of"):
        GASGNN(10, 4, 4, 2, conv="gat")
    with pytest.raises(ValueError, match="num_layers"):
        GASGNN(10, 4, 4, 2, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GASGNN(10, 4, 4, 2, dropout=1.0)
    model = GASGNN(graph.num_nodes, 8, 16, 3)
    x = graph.x[:5]
    adj = build_adjacency(graph.edge_index, graph.num_nodes, "gcn")
    with pytest.raises(ValueError, match="n_id must hold one id per row"):
        model(x, adj, n_id=torch.arange(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be at most"):
        model(x, adj, n_id=torch.arange(5), batch_size=6)
    with pytest.raises(IndexError, match="n_id"):
        model(x, adj, n_id=torch.arange(5) + graph.num_nodes, batch_size=2)
    with pytest.raises(ValueError, match="batch_size needs n_id"):
        model(graph.x, adj, batch_size=2)
    cd = ClusterData(graph, 4)
    with pytest.raises(ValueError, match="batch_size=5 exceeds num_parts=4"):
        GASLoader(cd, 5)
    with pytest.raises(TypeError, match="cluster_data must be a ClusterData"):
        GASLoader(graph, 1)
