"""msgnn_lite.loader is a drop-in for torch_geometric.loader: same names, same constructor
parameters (order, kinds, defaults), and one PyG-style script that binds to PyG's classes and
runs on ours. PyG's classes need pyg-lib/torch-sparse past their constructors' first lines, so
PyG's side is checked through ``inspect.signature`` only."""
import inspect
from types import SimpleNamespace

import pytest
import torch
import torch_geometric.loader
import torch_geometric.loader.ibmb_loader
from torch.utils.data import DataLoader

import msgnn_lite.loader as ours_loader
from msgnn_lite.data import make_csbm

# PyG 2.8 keeps the IBMB loaders in their module (their export is commented out in __init__).
pyg_loader = SimpleNamespace(**{**vars(torch_geometric.loader.ibmb_loader), **vars(torch_geometric.loader)})
NAMES = ["NeighborLoader", "ClusterData", "ClusterLoader", "GraphSAINTSampler", "GraphSAINTNodeSampler",
         "GraphSAINTEdgeSampler", "GraphSAINTRandomWalkSampler", "IBMBNodeLoader", "IBMBBatchLoader"]

# Where we deliberately differ from PyG, and why.
DEFAULT_DIFFERENCES = {
    ("ClusterData", "log"): "quiet by default, as every msgnn_lite function",
    ("GraphSAINTSampler", "log"): "quiet by default",
    ("GraphSAINTNodeSampler", "log"): "quiet by default",
    ("GraphSAINTEdgeSampler", "log"): "quiet by default",
    ("GraphSAINTRandomWalkSampler", "log"): "quiet by default",
    ("IBMBNodeLoader", "alpha"): "the IBMB paper's 0.25 (PyG: 0.2)",
    ("IBMBNodeLoader", "eps"): "the IBMB paper's 2e-4 (PyG: 1e-5, far slower push)",
    ("IBMBBatchLoader", "alpha"): "the IBMB paper's 0.25 (PyG: 0.2)",
}
# DataLoader options that ClusterLoader takes positionally, as torch's DataLoader does.
POSITIONAL_EXTRAS = {"ClusterLoader": ["batch_size", "shuffle", "drop_last"]}


def _params(cls):
    return [p for p in inspect.signature(cls).parameters.values() if p.kind is not p.VAR_KEYWORD]


@pytest.mark.parametrize("name", NAMES)
def test_every_pyg_loader_is_exported_under_its_name(name):
    assert hasattr(pyg_loader, name)
    assert name in ours_loader.__all__
    assert inspect.isclass(getattr(ours_loader, name))
    from msgnn_lite.loader import ClusterData, GraphSAINTRandomWalkSampler  # the one-line switch works
    assert ClusterData.__module__ == "msgnn_lite.partition"
    assert GraphSAINTRandomWalkSampler.__module__ == "msgnn_lite.saint"


@pytest.mark.parametrize("name", NAMES)
def test_constructor_parameters_match_pyg(name):
    pyg, ours = _params(getattr(pyg_loader, name)), _params(getattr(ours_loader, name))
    ours_named = [p for p in ours if p.kind is p.POSITIONAL_OR_KEYWORD]
    # PyG's parameters, in PyG's order and positions, with PyG's defaults.
    assert [p.name for p in ours_named[:len(pyg)]] == [p.name for p in pyg]
    for p, q in zip(pyg, ours_named):
        if p.default is p.empty:
            continue  # required in PyG: a default here breaks no PyG call
        assert q.default is not q.empty, f"{name}({q.name}) is optional in PyG but required here"
        if (name, p.name) not in DEFAULT_DIFFERENCES:
            assert q.default == p.default, f"{name}({p.name}): PyG default {p.default!r}, ours {q.default!r}"
    # msgnn_lite's own options come after PyG's, keyword-only (DataLoader options excepted).
    extra = [p.name for p in ours_named[len(pyg):]]
    assert extra == POSITIONAL_EXTRAS.get(name, [])
    # **kwargs (DataLoader options) exactly where PyG takes them.
    def var_keyword(cls):
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values())
    assert var_keyword(getattr(ours_loader, name)) == var_keyword(getattr(pyg_loader, name))
    for (cls_name, param), _ in DEFAULT_DIFFERENCES.items():
        if cls_name == name:  # the documented differences are real ones
            assert inspect.signature(getattr(ours_loader, name)).parameters[param].default != \
                inspect.signature(getattr(pyg_loader, name)).parameters[param].default


def pyg_style_script(L, data):
    """What a PyG user writes; ``L`` is ``torch_geometric.loader`` or ``msgnn_lite.loader``."""
    train_idx = data.train_mask.nonzero().view(-1)
    neighbor = L.NeighborLoader(data, num_neighbors=[5, 5], batch_size=32, input_nodes=data.train_mask,
                                shuffle=True, num_workers=0)
    cluster_data = L.ClusterData(data, num_parts=8, recursive=False, save_dir=None)
    cluster = L.ClusterLoader(cluster_data, batch_size=2, shuffle=True, num_workers=0)
    saint = [L.GraphSAINTNodeSampler(data, batch_size=60, num_steps=2, sample_coverage=5, save_dir=None, log=False),
             L.GraphSAINTEdgeSampler(data, batch_size=40, num_steps=2, sample_coverage=5),
             L.GraphSAINTRandomWalkSampler(data, batch_size=20, walk_length=2, num_steps=2, sample_coverage=5,
                                           save_dir=None, num_workers=0)]
    ibmb = [L.IBMBNodeLoader(data, batch_order="order", input_nodes=train_idx, num_auxiliary_nodes=8,
                             num_nodes_per_batch=64, batch_size=1, shuffle=False),
            L.IBMBBatchLoader(data, batch_order="order", num_partitions=4, input_nodes=train_idx,
                              batch_expand_ratio=1.0, metis_input_node_weight=None, alpha=0.2,
                              approximate_ppr_iterations=20)]
    return [neighbor, cluster, *saint, *ibmb]


def _binder(cls):
    """Stands in for a PyG class: binds the call to its signature (a TypeError if it does not
    fit) and checks that what goes to ``**kwargs`` is a real DataLoader option."""
    sig = inspect.signature(cls)
    var = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def make(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        passed = dict(bound.arguments.get(var, {}))
        inspect.signature(DataLoader).bind(None, **passed)
        return bound
    return make


def test_one_pyg_script_binds_to_pyg_and_runs_on_msgnn_lite(tmp_path, monkeypatch):
    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path))
    data = make_csbm(400, 6, 4, 8, 0.8, seed=0)
    bound = pyg_style_script(SimpleNamespace(**{n: _binder(getattr(pyg_loader, n)) for n in NAMES}), data)
    assert len(bound) == 7
    torch.manual_seed(0)
    loaders = pyg_style_script(ours_loader, data)
    for loader in loaders:
        batch = next(iter(loader))
        assert torch.equal(data.edge_index[:, batch.e_id], batch.n_id[batch.edge_index]) if "e_id" in batch \
            else batch.edge_index.max() < batch.num_nodes
        assert torch.equal(batch.x, data.x[batch.n_id])
    first = next(iter(loaders[0]))
    assert first.batch_size == 32 and bool(data.train_mask[first.n_id[:32]].all())
    assert "node_norm" in next(iter(loaders[2]))


@pytest.mark.parametrize("name,args,bad", [
    ("NeighborLoader", ([5],), {"disjoint": True}),
    ("NeighborLoader", ([5],), {"input_time": torch.zeros(3)}),
    ("NeighborLoader", ([5],), {"subgraph_type": "induced"}),
    ("ClusterData", (4,), {"keep_inter_cluster_edges": True}),
    ("GraphSAINTNodeSampler", (10,), {"batch_sampler": None}),
    ("IBMBNodeLoader", ("order",), {"batch_size": 2}),
    ("IBMBNodeLoader", ("order",), {"return_edge_index_type": "adj"}),
    ("IBMBBatchLoader", ("order", 4), {"metis_input_node_weight": 2.0}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_pyg_features_without_an_equivalent_fail_clearly(small_graph, name, args, bad):
    err = TypeError if "batch_sampler" in bad else NotImplementedError
    with pytest.raises(err, match=next(iter(bad))):
        getattr(ours_loader, name)(small_graph, *args, **bad)


def test_worker_options_are_accepted_and_change_nothing(small_graph):
    def first(**kw):
        loader = ours_loader.NeighborLoader(small_graph, [3, 3], batch_size=20, shuffle=True,
                                            generator=torch.Generator().manual_seed(4), **kw)
        return next(iter(loader))
    a, b = first(), first(num_workers=4, pin_memory=True, persistent_workers=True)
    assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)
