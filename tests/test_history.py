"""History: push then pull returns what was pushed; the halo operator is the full graph's rows."""
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.history import History, block_operator, halo_operator
from msgnn_lite.sparse import build_adjacency


@pytest.fixture(scope="module")
def graph():
    return make_csbm(200, 6, 3, 8, 0.7, seed=0)


def test_push_then_pull_returns_what_was_pushed():
    hist = History(50, 4)
    assert hist.emb.abs().sum() == 0 and bool((hist.age() == -1).all())
    ids = torch.tensor([3, 7, 49, 0])
    x = torch.randn(4, 4, requires_grad=True)
    hist.push(x * 2, ids)
    out = hist.pull(ids)
    assert torch.equal(out, (x * 2).detach()) and not out.requires_grad
    assert torch.equal(hist.pull(torch.tensor([49, 3])), out[[2, 0]])
    # untouched rows stay zero; pull(None) is every row
    assert hist.pull().shape == (50, 4) and hist.pull(torch.tensor([1])).abs().sum() == 0
    # a second push overwrites only its rows, and age counts pushes since the last write
    hist.push(torch.ones(1, 4), torch.tensor([7]))
    assert torch.equal(hist.pull(torch.tensor([7])), torch.ones(1, 4))
    assert torch.equal(hist.pull(torch.tensor([3])), out[:1])
    assert hist.age(torch.tensor([7, 3, 1])).tolist() == [0, 1, -1]
    # pulled rows are a copy: editing them does not change the history
    out.add_(100)
    assert torch.equal(hist.pull(torch.tensor([0])), (x[3:] * 2).detach())
    hist.reset()
    assert hist.pull().abs().sum() == 0 and hist.pushes == 0


@pytest.mark.parametrize("dtype,rtol", [(torch.float16, 1e-3), (torch.bfloat16, 8e-3)])
def test_half_precision_round_trip(dtype, rtol):
    hist = History(100, 8, dtype=dtype)
    assert hist.nbytes() == 100 * 8 * 2
    x = torch.randn(100, 8)
    hist.push(x)
    out = hist.pull()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x, rtol=rtol, atol=1e-3)
    assert hist.pull(dtype=None).dtype == dtype


def test_bad_arguments_name_the_argument():
    hist = History(10, 3)
    with pytest.raises(IndexError, match=r"n_id .*\[0, 10\)"):
        hist.pull(torch.tensor([10]))
    with pytest.raises(IndexError, match="n_id"):
        hist.push(torch.zeros(1, 3), torch.tensor([-1]))
    with pytest.raises(ValueError, match=r"x must have shape .*\[2, 3\]"):
        hist.push(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="x must have shape"):
        hist.push(torch.zeros(3, 3), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="n_id"):
        hist.pull(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="n_id must be a 1-D"):
        hist.pull(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="dtype"):
        History(10, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="num_channels"):
        History(10, 0)
    with pytest.raises(ValueError, match="pin_memory"):
        History(10, 3, device="meta", pin_memory=True)


def test_halo_operator_is_the_full_graphs_rows(graph):
    adj = build_adjacency(graph.edge_index, graph.num_nodes, "gcn")
    nodes = torch.tensor([5, 17, 3, 120, 64])
    n_id, op = halo_operator(adj, nodes)
    assert torch.equal(n_id[:5], nodes)  # in-batch nodes first
    dense = adj.matrix.to_dense()
    halo = set(dense[nodes].nonzero()[:, 1].tolist()) - set(nodes.tolist())
    assert set(n_id[5:].tolist()) == halo and torch.equal(n_id[5:], n_id[5:].sort().values)
    local = op.matrix.to_dense()
    torch.testing.assert_close(local[:5], dense[nodes][:, n_id])  # same values, full-graph degrees
    assert local[5:].abs().sum() == 0  # halo rows are empty
    h = torch.randn(graph.num_nodes, 3)
    torch.testing.assert_close((op @ h[n_id])[:5], (adj @ h)[nodes])


def test_halo_operator_bad_arguments(graph):
    adj = build_adjacency(graph.edge_index, graph.num_nodes, "gcn")
    with pytest.raises(ValueError, match="nodes must hold distinct"):
        halo_operator(adj, torch.tensor([1, 1]))
    with pytest.raises(IndexError, match="nodes"):
        halo_operator(adj, torch.tensor([graph.num_nodes]))
    with pytest.raises(TypeError, match="adj must be a SparseAdjacency"):
        halo_operator(graph.edge_index, torch.tensor([0]))


def test_block_operator_layout():
    n_id, op = block_operator(torch.tensor([4, 2]), torch.tensor([2, 1]), torch.tensor([9, 2, 4]),
                              torch.tensor([1.0, 2.0, 3.0]), 10, "sum")
    assert n_id.tolist() == [4, 2, 9]
    assert op.matrix.to_dense().tolist() == [[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
