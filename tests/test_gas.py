"""GAS: one batch is full-batch training; fresh histories make every batch exact.

GAS's device layout is tested on every device of the ``devices`` fixture: the loader is built on
the host graph (its batches are moved to the model), the histories stay on the host, the model
and the full-graph reference run on the device."""
import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.data import make_csbm
from msgnn_lite.gas import GASGNN, GASLoader, gas_train_step, history_staleness, memory_study, step_memory
from msgnn_lite.models import GCN, SAGE
from msgnn_lite.partition import ClusterData, ClusterLoader, random_partition
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.train import fit, minibatch_step
from msgnn_lite.utils import to_device


@pytest.fixture(scope="module")
def graph():
    return make_csbm(240, 6, 3, 8, 0.7, seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


def _grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters()}


def _on(b, dev):
    """A host batch's device inputs, as gas_train_step moves them (n_id stays with the histories)."""
    return b.x.to(dev), b.adj.to(dev)


def _host_histories(model):
    return all(h.emb.device.type == "cpu" for h in model.histories)


@pytest.mark.parametrize("conv,ref_cls", [("gcn", GCN), ("sage", SAGE), ("gcnii", None)])
def test_one_batch_gas_is_full_batch(graph, conv, ref_cls, devices):
    """The whole graph as one batch: no halo, so outputs and gradients equal full batch
    (dropout included: the same random draws in the same order)."""
    torch.manual_seed(0)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=3, conv=conv, dropout=0.5).to(devices)
    b = next(iter(GASLoader(ClusterData(graph, 1), 1, normalization=model.normalization)))
    assert b.batch_size == b.num_nodes == graph.num_nodes
    torch.manual_seed(1)
    out = model(*_on(b, devices), n_id=b.n_id, batch_size=b.batch_size)
    assert out.device.type == devices.type and _host_histories(model)
    F.cross_entropy(out, b.y.to(devices)).backward()
    got = _grads(model)
    if ref_cls is not None:  # an independent implementation: msgnn_lite.models
        ref = ref_cls(8, 16, 3, num_layers=3, dropout=0.5).to(devices)
        ref.load_state_dict(model.state_dict())
    else:
        model.zero_grad()
        ref = model
    torch.manual_seed(1)
    g = to_device(graph, devices)
    expected = ref(g.x, build_adjacency(g.edge_index, g.num_nodes, model.normalization))
    F.cross_entropy(expected, g.y).backward()
    torch.testing.assert_close(out[torch.argsort(b.n_id.to(devices))], expected, rtol=0, atol=1e-6)
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-5, atol=1e-6)
    # the histories now hold every node's hidden embeddings
    assert all(bool((h.age() >= 0).all()) for h in model.histories)


@pytest.mark.parametrize("conv", ["gcn", "sage", "gcnii"])
def test_fresh_histories_make_every_batch_exact(graph, conv, devices):
    """GAS's exactness: with histories equal to the current embeddings, a mini-batch's
    output equals the full-graph output for its nodes (full-graph degrees in the batch
    operator). The Cluster-GCN subgraph, which drops the halo, does not."""
    torch.manual_seed(0)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=4, conv=conv).to(devices).eval()
    g = to_device(graph, devices)
    adj = build_adjacency(g.edge_index, g.num_nodes, model.normalization)
    model.refresh_histories(g.x, adj)
    full = model(g.x, adj)
    cd = ClusterData(graph, 6)
    seen = torch.zeros(graph.num_nodes, dtype=torch.long)
    for b in GASLoader(cd, 2, shuffle=False, normalization=model.normalization):
        out = model(*_on(b, devices), n_id=b.n_id, batch_size=b.batch_size)
        assert out.device.type == devices.type
        torch.testing.assert_close(out, full[b.n_id[:b.batch_size].to(devices)], rtol=1e-5, atol=1e-5)
        seen[b.n_id[:b.batch_size]] += 1
    assert bool((seen == 1).all())  # an epoch covers each node once as an in-batch node
    cb = next(iter(ClusterLoader(cd, 2))).to(devices)
    assert not torch.allclose(model(cb.x, cb.edge_index), full[cb.n_id], atol=1e-3)
    assert max(history_staleness(model, g.x, adj)) < 1e-6
    assert _host_histories(model)


def test_stale_histories_are_used_for_the_halo(graph, devices):
    """Zero histories change the batch output (the halo reads them), and push refreshes them."""
    torch.manual_seed(0)
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=2).to(devices).eval()
    cd = ClusterData(graph, 4, part=random_partition(graph.num_nodes, 4, seed=0))
    loader = GASLoader(cd, 1, shuffle=False)
    b = next(iter(loader))
    assert b.num_nodes > b.batch_size  # a halo exists
    g = to_device(graph, devices)
    adj = build_adjacency(g.edge_index, g.num_nodes, "gcn")
    stale = model(*_on(b, devices), n_id=b.n_id, batch_size=b.batch_size)
    assert not torch.allclose(stale, model(g.x, adj)[b.n_id[:b.batch_size].to(devices)], atol=1e-4)
    pushed = model.histories[0].pull(b.n_id[:b.batch_size])
    assert pushed.abs().sum() > 0 and model.histories[0].pull(b.n_id[b.batch_size:]).abs().sum() == 0


def test_gas_training_learns_and_reports_memory(graph, devices):
    torch.manual_seed(0)
    cd = ClusterData(graph, 8)  # on the host graph: only batches go to the device
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=2, dropout=0.2)
    gen = torch.Generator().manual_seed(0)
    res = fit(model, graph, epochs=30, seed=0, device=devices, measure_memory=False, progress=False,
              train_step=gas_train_step(GASLoader(cd, 2, generator=gen)))
    assert res.test_acc > 0.7
    assert next(model.parameters()).device.type == devices.type and graph.x.device.type == "cpu"
    assert _host_histories(model)
    torch.manual_seed(0)
    base = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=2, dropout=0.2)
    res_cl = fit(base, graph, epochs=5, seed=0, device=devices, measure_memory=False, progress=False,
                 train_step=minibatch_step(ClusterLoader(cd, 2, shuffle=True)))
    assert res_cl.epochs_run == 5
    full = step_memory(model, graph, device=devices)
    one = step_memory(model, graph, next(iter(GASLoader(cd, 1))), device=devices)
    assert one["activation_bytes"] < full["activation_bytes"]
    assert one["step_bytes"] < full["step_bytes"]
    assert one["history_bytes"] == graph.num_nodes * 16 * 4 and full["history_bytes"] == 0
    assert graph.x.device.type == "cpu"  # the caller's graph was not moved


def test_gas_on_a_gpu_keeps_the_graph_and_histories_on_the_host(graph, devices):
    """GAS's layout with a CUDA model: the histories and the loader's graph stay in (pinned)
    host memory; batches are pinned for asynchronous copies; the loss is still right."""
    if devices.type != "cuda":
        pytest.skip("the host/device split only exists with a GPU")
    torch.manual_seed(0)
    cd = ClusterData(graph, 8)
    loader = GASLoader(cd, 2, generator=torch.Generator().manual_seed(0))
    model = GASGNN(graph.num_nodes, 8, 16, 3, num_layers=3, dropout=0.0).to(devices)
    assert all(h.pinned and h.emb.is_pinned() for h in model.histories)
    b = next(iter(loader))
    assert b.x.device.type == "cpu" and b.x.is_pinned() and b.adj.device.type == "cpu"
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = gas_train_step(loader)(model, graph, opt)
    assert loss > 0 and _host_histories(model) and cd.data.x.device.type == "cpu"
    assert all(bool((h.age() >= 0).all()) for h in model.histories)  # every node pushed once per epoch


def test_gas_step_memory_does_not_grow_with_the_graph(devices):
    """The same GAS batch (256 in-batch nodes + halo) on a 20k- and a 100k-node graph: its step
    memory must not grow with the graph. On a GPU this is the CUDA peak, which would count the
    graph and its operator if the full-batch measurement's copies were still allocated (or if
    GAS moved them to the GPU), ~50 MB at 100k nodes; the full batch's own memory grows with it."""
    mem = memory_study(sizes=(20_000, 100_000), batch_nodes=256, avg_degree=10.0, num_features=32,
                       hidden_channels=32, device=devices, progress=False)
    step = mem.pivot(index="nodes", columns="method", values="step_mb")
    graph_mb = 100_000 * (32 * 4 + 10 * 2 * 8) / 2**20  # features + edge_index of the big graph (~27 MB)
    gas_growth = step.loc[100_000, "GAS"] - step.loc[20_000, "GAS"]
    assert gas_growth < 0.1 * graph_mb, step  # only the halo grows a little (1.9k -> 2.6k batch nodes)
    assert step.loc[100_000, "full batch"] - step.loc[20_000, "full batch"] > 0.5 * graph_mb, step
    assert (mem.history_mb[mem.method == "GAS"] > 0).all()


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


def test_the_mlp_floor_is_graph_free_and_trains_under_the_same_budget():
    from torch_geometric.data import Data

    from msgnn_lite import gas
    from msgnn_lite.data import load_dataset

    data = load_dataset("csbm:nodes=600,classes=3,features=10,seed=5")
    no_edges = Data(**{k: v for k, v in data.items() if k != "edge_index"}, edge_index=torch.zeros(2, 0, dtype=torch.long))
    kw = dict(seeds=[0, 1], epochs=15, methods=("full batch", "MLP"), progress=False)
    with_graph = gas.accuracy_runs(data, **kw).set_index(["method", "seed"])
    without = gas.accuracy_runs(no_edges, **kw).set_index(["method", "seed"])
    # the MLP does not see the edges: removing them changes nothing; the GCN does see them
    assert with_graph.loc["MLP", "test_acc"].tolist() == without.loc["MLP", "test_acc"].tolist()
    assert with_graph.loc["full batch", "test_acc"].tolist() != without.loc["full batch", "test_acc"].tolist()
    assert set(with_graph.index.get_level_values("method")) == {"full batch", "MLP"}
    with pytest.raises(ValueError, match="methods"):
        gas.accuracy_runs(data, methods=("GraphSAGE",), seeds=[0], epochs=1)


def test_reference_options_exempt_the_output_layer_and_fill_the_histories(monkeypatch):
    """decay_last_layer=False puts the output layer in a group without weight decay (GAS's reference
    code); fill_histories=True pushes exact full-graph embeddings before the first step."""
    from msgnn_lite import gas
    from msgnn_lite.data import load_dataset

    data = load_dataset("csbm:nodes=400,classes=3,features=10,seed=2")
    seen = {}
    import msgnn_lite.train as train_mod   # accuracy_runs imports fit from it at call time
    original = train_mod.fit

    def spy(model, data, **kw):
        opt = kw.get("optimizer")
        seen["groups"] = None if opt is None else [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
        if isinstance(model, GASGNN):
            seen["history_norm"] = float(model.histories[0].pull().norm())
            seen["last_ids"] = {id(p) for p in model.convs[-1].parameters()}
            seen["zero_wd_ids"] = set() if opt is None else {
                id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
        return original(model, data, **kw)

    monkeypatch.setattr(train_mod, "fit", spy)
    gas.accuracy_runs(data, methods=("GAS",), seeds=[0], epochs=2, weight_decay=1e-3, decay_last_layer=False,
                      fill_histories=True, num_parts=4, parts_per_batch=2, progress=False, device="cpu")
    assert seen["zero_wd_ids"] == seen["last_ids"]            # exactly the output layer is exempt
    assert sorted(wd for _, wd in seen["groups"]) == [0.0, 1e-3]
    assert seen["history_norm"] > 0                           # filled before training (zeros otherwise)
    gas.accuracy_runs(data, methods=("GAS",), seeds=[0], epochs=2, num_parts=4, parts_per_batch=2, progress=False,
                      device="cpu")
    assert seen["groups"] is None and seen["history_norm"] == 0.0   # the defaults: fit's optimizer, empty histories


def test_reference_table_averages_trained_runs_only_and_pairs_seeds():
    import pandas as pd

    from msgnn_lite import gas

    rows = []
    for seed, (full, g, mlp) in enumerate([(82.0, 81.5, 60.0), (81.0, 82.5, 59.0), (80.0, 30.0, 58.0)]):
        rows += [{"dataset": "Cora", "method": "full batch", "seed": seed, "test_acc": full, "status": "ok"},
                 {"dataset": "Cora", "method": "GAS", "seed": seed, "test_acc": g,
                  "status": "did not train" if g < 50 else "ok"},
                 {"dataset": "Cora", "method": "MLP", "seed": seed, "test_acc": mlp, "status": "ok"}]
    t = gas.reference_table(pd.DataFrame(rows))
    assert t.loc[("Cora", "GAS"), "runs"] == 2 and t.loc[("Cora", "GAS"), "flagged"] == 1
    assert t.loc[("Cora", "GAS"), "test_acc"] == pytest.approx(82.0)          # the collapsed seed is left out
    assert t.loc[("Cora", "GAS"), "paper"] == gas.PAPER_GAS_GCN["Cora"][0]
    assert t.loc[("Cora", "full batch"), "paper"] == gas.LITERATURE_GCN["Cora"][0]
    diff = t.loc[("Cora", "GAS - full batch")]
    assert diff["runs"] == 2 and diff["test_acc"] == pytest.approx(((81.5 - 82.0) + (82.5 - 81.0)) / 2)
    assert diff["min"] == pytest.approx(-0.5) and diff["max"] == pytest.approx(1.5)


def test_reference_runs_refuses_a_graph_without_reference_settings():
    from msgnn_lite import gas

    with pytest.raises(ValueError, match="name must be one of"):
        gas.reference_runs("ogbn-arxiv", seeds=[0])
    with pytest.raises(ValueError, match="seeds"):
        gas.reference_runs("Cora", seeds=[])


def test_bench_gas_shows_a_stored_folder_and_names_a_missing_one(tmp_path, capsys):
    import pandas as pd

    from msgnn_lite.bench.__main__ import main

    rows = [{"dataset": "CS", "features": "none", "method": m, "seed": s, "test_acc": a + s, "val_acc": a, "status": "ok",
             "hardware": "x86_64 CPU, 2 cores", "written_utc": "2026-12-07T17:00:00+00:00"}
            for s in (0, 1) for m, a in (("full batch", 91.0), ("GAS", 91.5), ("MLP", 88.0))]
    pd.DataFrame(rows).to_csv(tmp_path / "CS.csv", index=False)
    assert main(["gas", "--show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "x86_64 CPU, 2 cores, written 2026-12-07" in out and "GAS - full batch" in out and "91.1" in out
    with pytest.raises(FileNotFoundError, match="--show"):
        main(["gas", "--show", str(tmp_path / "nowhere")])
