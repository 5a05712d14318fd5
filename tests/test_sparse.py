import pytest
import torch
from torch_geometric.utils import add_remaining_self_loops, degree, to_dense_adj

from msgnn_lite.sparse import build_adjacency, cached_adjacency, propagate


def dense_reference(edge_index, n, normalization):
    """The operator built densely from its definition (row = destination)."""
    if normalization == "gcn":
        edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=n)
    a = to_dense_adj(edge_index, max_num_nodes=n)[0].t()  # a[i, j] = #edges j -> i
    deg = a.sum(1)
    if normalization in ("gcn", "sym"):
        d = deg.pow(-0.5).masked_fill(deg == 0, 0)
        return d[:, None] * a * d[None, :]
    if normalization in ("mean", "rw"):
        return a / deg.clamp_min(1)[:, None]
    return a


@pytest.mark.parametrize("normalization", ["gcn", "sym", "mean", "rw", "sum"])
def test_operator_equals_dense_definition(directed_graph, normalization):
    edge_index, n = directed_graph
    adj = build_adjacency(edge_index, n, normalization)
    assert torch.allclose(adj.matrix.to_dense(), dense_reference(edge_index, n, normalization), atol=1e-6)
    assert torch.allclose(adj.transpose().to_dense(), adj.matrix.to_dense().t(), atol=1e-6)


def test_isolated_nodes_get_zero_rows_under_mean(directed_graph):
    edge_index, n = directed_graph
    adj = build_adjacency(edge_index, n, "mean")
    assert float(adj.matrix.to_dense()[5].abs().sum()) == 0.0  # node 5 has no edge


def test_propagate_gradient_is_transpose_product(directed_graph):
    edge_index, n = directed_graph
    adj = build_adjacency(edge_index, n, "mean")
    dense = adj.matrix.to_dense()
    x = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    adj64 = build_adjacency(edge_index, n, "mean", dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: propagate(adj64, t), (x,))
    x32 = x.detach().float().requires_grad_()
    g = torch.randn(n, 3)
    (propagate(adj, x32) * g).sum().backward()
    assert torch.allclose(x32.grad, dense.t() @ g, atol=1e-6)


def test_propagate_saves_nothing_for_backward(small_graph):
    adj = build_adjacency(small_graph.edge_index, small_graph.num_nodes, "gcn")
    saved = []
    x = small_graph.x.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = propagate(adj, x)
    assert saved == [] and y.requires_grad


def test_unsorted_and_sorted_inputs_give_the_same_operator(small_graph):
    ei = small_graph.edge_index
    perm = torch.randperm(ei.size(1), generator=torch.Generator().manual_seed(0))
    a = build_adjacency(ei, small_graph.num_nodes, "gcn").matrix.to_dense()
    b = build_adjacency(ei[:, perm], small_graph.num_nodes, "gcn").matrix.to_dense()
    assert torch.allclose(a, b, atol=1e-7)


def test_cache_reuses_and_rebuilds_on_inplace_edit(small_graph):
    ei = small_graph.edge_index.clone()
    a = cached_adjacency(ei, small_graph.num_nodes, "gcn")
    assert cached_adjacency(ei, small_graph.num_nodes, "gcn") is a
    assert cached_adjacency(ei, small_graph.num_nodes, "mean") is not a
    ei[0, 0] = ei[0, 1]
    assert cached_adjacency(ei, small_graph.num_nodes, "gcn") is not a


@pytest.mark.parametrize("edge_index,match", [
    (torch.tensor([[0, 1], [1, 7]]), "out of range"),
    (torch.tensor([[0, -1], [1, 2]]), "negative"),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), "integer"),
    (torch.tensor([0, 1, 2]), r"shape \[2, num_edges\]"),
    ([[0, 1], [1, 2]], "torch.Tensor"),
])
def test_bad_edge_index_is_rejected(edge_index, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_adjacency(edge_index, 5)


def test_bad_arguments():
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="normalization"):
        build_adjacency(ei, 2, "laplacian")
    with pytest.raises(ValueError, match="num_nodes"):
        build_adjacency(ei, 0)
    adj = build_adjacency(ei, 2)
    with pytest.raises(ValueError, match=r"x must have shape \[2, F\]"):
        propagate(adj, torch.randn(3, 4))
