"""GraphSAINT: the normalized aggregation and loss are unbiased, the raw ones are not; samples,
coefficients and the normalized step stay on the data's device."""
import pytest
import torch
from torch_geometric.data import Data

from msgnn_lite.data import make_csbm
from msgnn_lite.saint import GraphSAINTEdgeSampler, GraphSAINTNodeSampler, GraphSAINTRandomWalkSampler
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.utils import to_device


@pytest.fixture(scope="module")
def graph():
    return make_csbm(300, 6, 3, 8, 0.7, seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


SAMPLERS = [
    (GraphSAINTNodeSampler, {"batch_size": 60}),
    (GraphSAINTEdgeSampler, {"batch_size": 40}),
    (GraphSAINTRandomWalkSampler, {"batch_size": 20, "walk_length": 2}),
]


@pytest.mark.parametrize("cls,kw", SAMPLERS, ids=["node", "edge", "rw"])
def test_normalized_aggregation_and_loss_are_unbiased(graph, cls, kw):
    torch.manual_seed(0)
    sampler = cls(graph, num_steps=600, sample_coverage=400, **kw)
    assert sampler.num_presamples > 0
    x = torch.rand(graph.num_nodes, 3) + 0.5
    full = build_adjacency(graph.edge_index, graph.num_nodes, "gcn") @ x
    per_node_loss = torch.rand(graph.num_nodes)
    acc, acc_raw = torch.zeros_like(full), torch.zeros_like(full)
    cnt = torch.zeros(graph.num_nodes)
    losses = []
    for b in sampler:  # fresh samples, independent of the pre-sampling
        assert torch.equal(graph.edge_index[:, b.e_id], b.n_id[b.edge_index])
        acc.index_add_(0, b.n_id, sampler.adjacency(b) @ x[b.n_id])
        acc_raw.index_add_(0, b.n_id, sampler.adjacency(b, use_norm=False) @ x[b.n_id])
        cnt.index_add_(0, b.n_id, torch.ones(b.num_nodes))
        losses.append(float((b.node_norm * per_node_loss[b.n_id]).sum()))
    seen = cnt > 30
    assert int(seen.sum()) > 0.9 * graph.num_nodes
    est = acc[seen] / cnt[seen, None]
    raw = acc_raw[seen] / cnt[seen, None]
    bias = float((est - full[seen]).sum() / full[seen].sum())
    raw_bias = float((raw - full[seen]).sum() / full[seen].sum())
    assert abs(bias) < 0.03, f"normalized aggregation biased by {bias:.3f}"
    assert raw_bias < -0.3, f"unnormalized aggregation should underestimate, bias {raw_bias:.3f}"
    # Per node too: the normalized estimate is closer to the truth for most nodes.
    closer = ((est - full[seen]).abs().sum(1) < (raw - full[seen]).abs().sum(1)).float().mean()
    assert closer > 0.9
    mean_loss = sum(losses) / len(losses)
    assert abs(mean_loss - float(per_node_loss.mean())) < 0.03 * float(per_node_loss.mean())


def test_coefficients_match_the_paper_definition(graph):
    """On a sampler that always returns the same node set, C_v = M for those nodes,
    so lambda_v = |V| and alpha = 1: node_norm = 1/|V| and edge_norm = 1."""
    class Fixed(GraphSAINTNodeSampler):
        def sample_nodes(self):
            return torch.arange(50)

    s = Fixed(graph, batch_size=50, sample_coverage=2)
    b = s.sample()
    torch.testing.assert_close(b.node_norm, torch.full((50,), 1.0 / graph.num_nodes))
    torch.testing.assert_close(b.edge_norm, torch.ones(b.edge_index.size(1)))


def test_random_walks_follow_edges(graph):
    torch.manual_seed(1)
    s = GraphSAINTRandomWalkSampler(graph, batch_size=30, walk_length=4)
    n = graph.num_nodes
    edges = set((graph.edge_index[0] * n + graph.edge_index[1]).tolist())
    walk = s.sample_nodes().view(5, 30)
    for a, b in zip(walk[:-1], walk[1:]):
        assert all(int(u) * n + int(v) in edges for u, v in zip(a, b))
    batch = s.sample()
    assert batch.num_nodes <= 150 and "node_norm" not in batch


def test_bad_arguments(graph):
    with pytest.raises(ValueError, match="walk_length"):
        GraphSAINTRandomWalkSampler(graph, batch_size=10, walk_length=0)
    with pytest.raises(ValueError, match="batch_size"):
        GraphSAINTNodeSampler(graph, batch_size=0)
    with pytest.raises(ValueError, match="sample_coverage"):
        GraphSAINTEdgeSampler(graph, batch_size=10, sample_coverage=-1)
    with pytest.raises(ValueError, match="edge_norm"):
        s = GraphSAINTEdgeSampler(graph, batch_size=10)
        s.adjacency(s.sample())


def test_gcn_adds_self_loops_only_where_missing(graph):
    """On a graph where some nodes already have a self-loop, the whole-graph batch's operator
    equals build_adjacency's D^-1/2 (A + I) D^-1/2 with loops added only where missing (no
    node counts its loop twice), and sampled batches keep one loop per node."""
    n = graph.num_nodes
    looped = torch.arange(0, n, 3)
    g = graph.clone()
    g.edge_index = torch.cat([graph.edge_index, torch.stack([looped, looped])], 1)
    s = GraphSAINTNodeSampler(g, batch_size=80, sample_coverage=5)
    n_id, edge_index, e_id = s.induced(torch.arange(n))
    whole = Data(edge_index=edge_index, n_id=n_id, e_id=e_id, num_nodes=n)
    ours = s.adjacency(whole, use_norm=False).matrix.to_dense()
    ref = build_adjacency(g.edge_index, n, "gcn").matrix.to_dense()
    torch.testing.assert_close(ours, ref)
    deg = torch.bincount(g.edge_index[1], minlength=n).float() + 1
    deg[looped] -= 1  # the existing loop is the node's only loop
    torch.testing.assert_close(ours.diagonal(), 1.0 / deg)
    b = s.sample()
    a = s.adjacency(b).matrix
    loops = a.to_sparse_coo().coalesce().indices()
    assert int((loops[0] == loops[1]).sum()) == b.num_nodes  # exactly one loop per node


def test_coefficients_are_cached_in_save_dir(graph, tmp_path):
    """PyG's save_dir: a second sampler with the same graph and settings loads the coefficients
    (a different generator would otherwise give different ones); other settings recompute."""
    a = GraphSAINTRandomWalkSampler(graph, 20, 2, 1, 10, tmp_path, generator=torch.Generator().manual_seed(0))
    assert len(list(tmp_path.glob("saint_*.pt"))) == 1
    b = GraphSAINTRandomWalkSampler(graph, 20, 2, 1, 10, tmp_path, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.node_norm, b.node_norm) and torch.equal(a.edge_norm, b.edge_norm)
    assert b.num_presamples == a.num_presamples
    c = GraphSAINTRandomWalkSampler(graph, 20, 3, 1, 10, tmp_path, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.node_norm, c.node_norm) and len(list(tmp_path.glob("saint_*.pt"))) == 2


# -- devices ---------------------------------------------------------------------------------

def _on(dev, *tensors):
    return all(t.device.type == dev.type for t in tensors)


@pytest.mark.parametrize("cls,kw", SAMPLERS, ids=["node", "edge", "rw"])
def test_samplers_draw_on_the_datas_device(graph, cls, kw, devices):
    """A sampler of device data draws there (a CPU generator seeds one on the device), its
    batches, coefficients and operators stay there, and one seed gives one sequence."""
    g = to_device(graph, devices)

    def run():
        s = cls(g, num_steps=3, sample_coverage=5, generator=torch.Generator().manual_seed(4), **kw)
        assert _on(devices, s.node_norm, s.edge_norm)
        out = []
        for b in s:
            assert _on(devices, b.x, b.y, b.edge_index, b.n_id, b.e_id, b.node_norm, b.edge_norm)
            assert s.adjacency(b).device.type == devices.type
            out.append(b.n_id.cpu())
        return out

    assert all(torch.equal(a, b) for a, b in zip(run(), run()))


def test_a_cpu_generator_on_cpu_data_is_used_as_it_is(graph):
    """CPU data, CPU generator: the sampler draws from that very generator (the stream of
    earlier runs and stored notebook outputs)."""
    gen = torch.Generator().manual_seed(0)
    s = GraphSAINTRandomWalkSampler(graph, batch_size=20, walk_length=2, generator=gen)
    assert s.generator is gen
    ref = torch.Generator().manual_seed(0)
    assert torch.equal(s.sample_nodes()[:20], torch.randint(0, graph.num_nodes, (20,), generator=ref))


def test_normalized_loss_and_step_keep_devices(graph, devices):
    """GraphSAINT's node_norm-weighted loss is computed where the logits are and equals the
    boolean-indexed sum; the normalized step trains a model on the device from a sampler built
    on CPU data (batches and operators copied) or on the device's data."""
    import torch.nn.functional as F

    from msgnn_lite.models import GCN
    from msgnn_lite.saint import normalized_loss, normalized_step
    from msgnn_lite.train import fit

    s = GraphSAINTNodeSampler(to_device(graph, devices), batch_size=60, sample_coverage=5,
                              generator=torch.Generator().manual_seed(0))
    b = s.sample()
    logits = torch.randn(b.num_nodes, 3, generator=torch.Generator().manual_seed(1)).to(devices)
    loss = normalized_loss(logits, b)
    ref = (F.cross_entropy(logits, b.y, reduction="none") * b.node_norm)[b.train_mask].sum()
    assert loss.device.type == devices.type and torch.allclose(loss, ref)
    with pytest.raises(ValueError, match="node_norm"):
        normalized_loss(logits, GraphSAINTNodeSampler(graph, batch_size=60).sample())
    for data in (graph, to_device(graph, devices)):
        sampler = GraphSAINTRandomWalkSampler(data, 20, 2, num_steps=3, sample_coverage=5,
                                              generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model = GCN(graph.num_features, 16, 3)
        res = fit(model, data, epochs=2, device=devices, seed=0, train_step=normalized_step(sampler),
                  measure_memory=False, progress=False)
        assert res.history["loss"].notna().all() and next(model.parameters()).device.type == devices.type
        assert sampler.data.x.device == data.x.device  # the sampler's graph was not moved
