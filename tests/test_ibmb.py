"""IBMB: batches partition the outputs, hold them first, respect the cap, are induced
subgraphs, reload from the cache; the schedule and the loss on outputs only; batches on the
data's device, the epoch order on the host."""
import math

import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.ibmb import (IBMBBatchLoader, IBMBNodeLoader, ibmb_inference, kl_tour, label_distributions,
                             merge_outputs, symmetric_kl)
from msgnn_lite.models import GCN
from msgnn_lite.partition import metis_partition
from msgnn_lite.ppr import push_ppr
from msgnn_lite.train import minibatch_step
from msgnn_lite.utils import to_device


@pytest.fixture(scope="module")
def graph():
    return make_csbm(400, 6, 4, 8, 0.8, seed=2, train_ratio=0.5)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path))


def node_loader(graph, **kw):
    args = {"input_nodes": graph.train_mask, "num_auxiliary_nodes": 8, "num_nodes_per_batch": 30, "cache": False}
    args.update(kw)
    return IBMBNodeLoader(graph, **args)


def batch_loader(graph, **kw):
    args = {"num_partitions": 6, "input_nodes": graph.train_mask, "cache": False}
    args.update(kw)
    return IBMBBatchLoader(graph, **args)


def edge_set(ei):
    return set(map(tuple, ei.t().tolist()))


def on(dev, *tensors):
    """Every tensor is on ``dev``'s device type (``cuda`` matches ``cuda:0``)."""
    return all(t.device.type == dev.type for t in tensors)


@pytest.mark.parametrize("make", [node_loader, batch_loader], ids=["node-wise", "batch-wise"])
def test_batches_partition_the_outputs_and_are_induced_subgraphs(graph, make, devices):
    graph = to_device(graph, devices)
    loader = make(graph)
    outputs = graph.train_mask.nonzero().view(-1)
    seen = torch.cat([b.n_id[:b.batch_size] for b in loader.batches])
    assert torch.equal(torch.sort(seen).values, outputs)  # every output node in exactly one batch
    all_edges = edge_set(graph.edge_index)
    for b in loader.batches:
        assert on(devices, b.x, b.y, b.edge_index, b.n_id, b.e_id, b.output_node_mask)
        assert torch.unique(b.n_id).numel() == b.num_nodes
        assert bool(b.output_node_mask[:b.batch_size].all()) and not bool(b.output_node_mask[b.batch_size:].any())
        assert bool(graph.train_mask[b.n_id[:b.batch_size]].all())
        assert torch.equal(b.y, graph.y[b.n_id]) and torch.equal(b.x, graph.x[b.n_id])
        glob = b.n_id[b.edge_index]
        assert torch.equal(graph.edge_index[:, b.e_id], glob)  # every batch edge is a real edge
        inside = torch.zeros(graph.num_nodes, dtype=torch.bool, device=devices)
        inside[b.n_id] = True
        induced = graph.edge_index[:, inside[graph.edge_index[0]] & inside[graph.edge_index[1]]]
        assert edge_set(glob) == edge_set(induced) and edge_set(glob) <= all_edges


def test_node_wise_cap_and_auxiliary_nodes(graph):
    loader = node_loader(graph, num_nodes_per_batch=25, num_auxiliary_nodes=6)
    assert max(b.batch_size for b in loader.batches) <= 25
    outputs = graph.train_mask.nonzero().view(-1)
    assert len(loader) >= math.ceil(outputs.numel() / 25)
    ppr = push_ppr(graph.edge_index, graph.num_nodes, outputs, topk=6)
    row = {int(s): i for i, s in enumerate(ppr.sources)}
    for b in loader.batches:
        members = set(b.n_id.tolist())
        for s in b.n_id[:b.batch_size].tolist():
            top, _ = ppr.neighbors_of(row[s])
            assert set(top.tolist()) <= members  # each output's top-k influencers are in its batch


def test_merge_respects_the_cap_and_joins_strongest_pairs_first():
    # Outputs 0..5; 0-1 and 2-3 are strong pairs, 4-5 weak; cap 2.
    outs = torch.arange(6)
    nodes = torch.tensor([[0, 1], [1, 0], [2, 3], [3, 2], [4, 5], [5, 4]])
    scores = torch.tensor([[0.5, 0.4], [0.5, 0.4], [0.5, 0.3], [0.5, 0.3], [0.5, 0.01], [0.5, 0.01]])
    batches = merge_outputs(outs, nodes, scores, 2)
    assert sorted(tuple(b.tolist()) for b in batches) == [(0, 1), (2, 3), (4, 5)]
    batches = merge_outputs(outs, nodes, scores, 4)
    assert all(b.numel() <= 4 for b in batches)
    assert any(set(b.tolist()) >= {0, 1} for b in batches) and any(set(b.tolist()) >= {2, 3} for b in batches)
    assert sorted(torch.cat(batches).tolist()) == list(range(6))
    with pytest.raises(ValueError, match="num_nodes_per_batch"):
        merge_outputs(outs, nodes, scores, 0)


def test_batch_wise_outputs_share_a_part_and_respect_the_budget(graph):
    loader = batch_loader(graph, num_partitions=5, batch_expand_ratio=1.5)
    part = metis_partition(graph.edge_index, graph.num_nodes, 5)
    sizes = torch.bincount(part, minlength=5)
    for b in loader.batches:
        p = part[b.n_id[:b.batch_size]]
        assert torch.unique(p).numel() == 1
        assert b.num_nodes <= max(math.ceil(1.5 * int(sizes[p[0]])), b.batch_size)


def test_cached_node_sets_reload_identically(graph, tmp_path):
    a = node_loader(graph, cache=True, save_dir=tmp_path / "ibmb")
    assert not a.from_cache and len(list((tmp_path / "ibmb").glob("node_*.pt"))) == 1
    b = node_loader(graph, cache=True, save_dir=tmp_path / "ibmb")
    assert b.from_cache
    assert all(torch.equal(x, y) for x, y in zip(a.node_sets, b.node_sets))
    assert all(torch.equal(x.edge_index, y.edge_index) for x, y in zip(a.batches, b.batches))
    c = node_loader(graph, cache=True, save_dir=tmp_path / "ibmb", num_auxiliary_nodes=4)  # other args: new key
    assert not c.from_cache
    assert not list((tmp_path / "ibmb").glob("*.tmp*"))  # nothing half-written left behind
    d = batch_loader(graph, cache=True)  # default folder: $MSGNN_CACHE/ibmb
    assert batch_loader(graph, cache=True).from_cache and not d.from_cache


def test_symmetric_kl_and_the_tour(devices):
    p = label_distributions([torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0, 2])],
                            torch.tensor([0, 0, 1, 1], device=devices), 2)
    assert on(devices, p)  # on the labels' device
    d = symmetric_kl(p)
    manual = (p[0] * (p[0] / p[1]).log()).sum() + (p[1] * (p[1] / p[0]).log()).sum()
    assert torch.allclose(d[0, 1], manual) and torch.allclose(d, d.T)
    assert torch.allclose(d.diagonal(), torch.zeros(3, dtype=d.dtype, device=devices))
    gen = torch.Generator().manual_seed(0)
    d = torch.rand(8, 8, generator=gen)
    d = (d + d.T).to(devices)
    tour = kl_tour(d, start=3)
    assert on(devices, tour)
    assert sorted(tour.tolist()) == list(range(8)) and int(tour[0]) == 3
    for i in range(1, 8):  # every step goes to the farthest batch not yet visited
        rest = [j for j in range(8) if j not in tour[:i].tolist()]
        assert float(d[tour[i - 1], tour[i]]) == max(float(d[tour[i - 1], j]) for j in rest)


@pytest.mark.parametrize("order", ["order", "sample", "rand"])
def test_every_order_visits_each_batch_once(graph, order, devices):
    """On any data device, with a generator of any device (the order is host bookkeeping: no
    CUDA generator may reach a CPU draw, the crash of notebook 06 on the H200)."""
    for gen in {torch.device("cpu"), devices}:
        loader = node_loader(to_device(graph, devices), batch_order=order,
                             generator=torch.Generator(device=gen).manual_seed(0))
        for _ in range(2):
            batches = list(loader)
            ids = [id(b) for b in batches]
            assert len(ids) == len(loader) and len(set(ids)) == len(loader)
            assert all(on(devices, b.x, b.edge_index) for b in batches)


@pytest.mark.parametrize("order", ["sample", "rand"])
def test_a_cpu_generator_keeps_its_stream(graph, order):
    """With CPU data and a CPU generator the loader draws from that very generator, as before
    (stored notebook outputs depend on it): "rand" is its randperm stream, and two loaders with
    the same seed give the same batches in the same order."""
    gen = torch.Generator().manual_seed(5)
    a = node_loader(graph, batch_order=order, generator=gen)
    assert a.generator is gen
    b = node_loader(graph, batch_order=order, generator=torch.Generator().manual_seed(5))
    ref = torch.Generator().manual_seed(5)
    for _ in range(3):
        got = [int(x.n_id[0]) for x in a]
        assert got == [int(x.n_id[0]) for x in b]
        if order == "rand":
            assert got == [int(a.batches[i].n_id[0]) for i in torch.randperm(len(a), generator=ref).tolist()]


def test_a_loader_on_a_device_gives_the_cpu_loaders_batches(graph, devices):
    """Node-wise node sets are computed on the host (push-PPR): the device loader's batches are
    the CPU loader's, built on the device. Batch-wise ones share the METIS output sets (their
    topic PPR runs on the device, where float rounding may reorder near-ties)."""
    for make in (node_loader, batch_loader):
        cpu, dev = make(graph), make(to_device(graph, devices))
        assert len(cpu) == len(dev)
        for a, b in zip(cpu.batches, dev.batches):
            assert on(devices, b.n_id, b.x, b.edge_index, b.output_node_mask) and b.batch_size == a.batch_size
            assert torch.equal(a.n_id[:a.batch_size], b.n_id[:b.batch_size].cpu())
            if make is node_loader:
                assert torch.equal(a.n_id, b.n_id.cpu()) and torch.equal(a.edge_index, b.edge_index.cpu())
                assert torch.equal(a.x, b.x.cpu())
    assert graph.x.device.type == "cpu"


def test_loss_only_on_output_nodes(graph, devices):
    graph = to_device(graph, devices)
    loader = node_loader(graph)
    scrambled = graph.clone()
    scrambled.y = torch.where(graph.train_mask, graph.y, (graph.y + 1) % 4)  # change only non-output labels
    loader2 = node_loader(scrambled)
    params = []
    for ld, g in [(loader, graph), (loader2, scrambled)]:
        torch.manual_seed(0)
        model = GCN(8, 16, 4, dropout=0.0).to(devices)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        minibatch_step(ld)(model, g, opt)
        params.append(torch.cat([p.detach().view(-1) for p in model.parameters()]))
    if devices.type == "cpu":
        assert torch.equal(params[0], params[1])
    else:  # GPU sparse kernels may round differently from run to run; a leak would be far larger
        assert torch.allclose(params[0], params[1], rtol=0, atol=1e-6)


def test_inference_with_the_whole_component_equals_the_full_forward(devices):
    g = to_device(make_csbm(150, 8, 3, 6, 0.7, seed=3), devices)
    loader = IBMBNodeLoader(g, "rand", None, num_auxiliary_nodes=150, num_nodes_per_batch=150, eps=1e-7, cache=False)
    assert len(loader) == 1 and loader.batches[0].num_nodes == 150  # connected: every node is an auxiliary
    torch.manual_seed(0)
    model = GCN(6, 16, 3, dropout=0.0).to(devices).eval()
    pred = ibmb_inference(model, loader)
    assert on(devices, pred)
    assert torch.allclose(pred, model(g.x, g.edge_index), atol=1e-5)


def test_inference_leaves_the_loaders_batches_where_they_are(graph, devices):
    """ibmb_inference on another device than the loader's copies each batch (PyG's Data.to
    would move the loader's own batches in place)."""
    loader = node_loader(graph)
    torch.manual_seed(0)
    model = GCN(8, 16, 4, dropout=0.0).to(devices).eval()
    pred = ibmb_inference(model, loader)
    assert on(devices, pred) and all(b.x.device.type == "cpu" for b in loader.batches)
    outputs = graph.train_mask.nonzero().view(-1)
    assert bool(torch.isfinite(pred[outputs.to(pred.device)]).all())


@pytest.mark.parametrize("kwargs,match", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.2}, "alpha"), ({"eps": 0}, "eps"),
    ({"num_auxiliary_nodes": 0}, "num_auxiliary_nodes"), ({"num_nodes_per_batch": 0}, "num_nodes_per_batch"),
    ({"input_nodes": torch.tensor([0, 400])}, "input_nodes"), ({"batch_order": "sorted"}, "batch_order"),
])
def test_node_loader_bad_arguments(graph, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        node_loader(graph, **kwargs)


def test_batch_loader_bad_arguments(graph):
    with pytest.raises(ValueError, match="num_partitions"):
        batch_loader(graph, num_partitions=401)
    with pytest.raises(ValueError, match="batch_expand_ratio"):
        batch_loader(graph, batch_expand_ratio=0)
    with pytest.raises(ValueError, match="alpha"):
        batch_loader(graph, alpha=1.0)
