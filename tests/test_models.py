import pytest
import torch
from torch_geometric.nn import GCNConv as PyGGCNConv, SAGEConv as PyGSAGEConv

from msgnn_lite.data import sparse_features
from msgnn_lite.models import GCN, MLP, SAGE, GCNConv, SAGEConv, feature_dropout
from msgnn_lite.sparse import build_adjacency


@pytest.mark.parametrize("fast,ref", [(GCNConv, PyGGCNConv), (SAGEConv, PyGSAGEConv)])
@pytest.mark.parametrize("dims", [(16, 8), (16, 32)])
def test_layers_match_pyg_outputs_and_gradients(small_graph, fast, ref, dims):
    torch.manual_seed(0)
    pyg = ref(*dims)
    ours = fast(*dims)
    ours.load_state_dict(pyg.state_dict())  # same parameter names
    x1 = small_graph.x.clone().requires_grad_()
    x2 = small_graph.x.clone().requires_grad_()
    y1, y2 = pyg(x1, small_graph.edge_index), ours(x2, small_graph.edge_index)
    assert torch.allclose(y1, y2, atol=1e-5)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    for (n1, p1), (n2, p2) in zip(pyg.named_parameters(), ours.named_parameters()):
        assert n1 == n2 and torch.allclose(p1.grad, p2.grad, atol=1e-4), n1


def test_layers_match_pyg_on_a_directed_graph(directed_graph):
    edge_index, n = directed_graph
    x = torch.randn(n, 4)
    for fast, ref in ((GCNConv, PyGGCNConv), (SAGEConv, PyGSAGEConv)):
        pyg = ref(4, 3)
        ours = fast(4, 3)
        ours.load_state_dict(pyg.state_dict())
        assert torch.allclose(pyg(x, edge_index), ours(x, edge_index), atol=1e-6)


@pytest.mark.parametrize("model_cls", [GCN, SAGE])
def test_sparse_features_give_the_same_output(small_graph, model_cls):
    d = small_graph.clone()
    d.x = (d.x > 1.0).float()  # sparse-ish binary features
    s = sparse_features(d, max_density=0.5)
    assert s.x.layout == torch.sparse_csr
    torch.manual_seed(0)
    model = model_cls(16, 8, 4).eval()
    adj = build_adjacency(d.edge_index, d.num_nodes, model.normalization)
    assert torch.allclose(model(d.x, adj), model(s.x, adj), atol=1e-5)


def test_sparse_dropout_is_unbiased_and_keeps_zeros():
    torch.manual_seed(0)
    x = torch.zeros(200, 50)
    x[::3, ::2] = 1.0
    xs = x.to_sparse_csr()
    mean = sum(feature_dropout(xs, 0.5, True).to_dense() for _ in range(400)) / 400
    assert torch.all(mean[x == 0] == 0)
    assert abs(float(mean[x == 1].mean()) - 1.0) < 0.02
    assert feature_dropout(xs, 0.5, False) is xs


def test_model_accepts_edge_index_or_adjacency(small_graph):
    torch.manual_seed(0)
    model = GCN(16, 8, 4, num_layers=3, batch_norm=True).eval()
    adj = build_adjacency(small_graph.edge_index, small_graph.num_nodes, "gcn")
    assert torch.equal(model(small_graph.x, adj), model(small_graph.x, small_graph.edge_index))
    assert MLP(16, 8, 4)(small_graph.x).shape == (600, 4)


def test_bad_model_arguments(small_graph):
    with pytest.raises(ValueError, match="num_layers"):
        GCN(16, 8, 4, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        SAGE(16, 8, 4, dropout=1.5)
    with pytest.raises(TypeError, match="in_channels"):
        GCNConv(16.5, 4)
    adj = build_adjacency(small_graph.edge_index, small_graph.num_nodes, "gcn")
    with pytest.raises(ValueError, match="adjacency has 600 nodes"):
        GCNConv(16, 4)(torch.randn(10, 16), adj)
