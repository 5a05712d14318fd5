"""History: push then pull returns what was pushed; the halo operator is the full graph's rows.
Each test runs on every device of the ``devices`` fixture: the store on the host and on the
device, the pushed rows, ids and pulled rows on the device."""
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.history import History, block_operator, halo_operator
from msgnn_lite.sparse import build_adjacency


pytestmark = pytest.mark.usefixtures("one_thread")


def _stores(dev):
    """The stores a test checks: on the host (GAS's choice; pinned where CUDA is) and on ``dev``."""
    return ["cpu"] if dev.type == "cpu" else ["cpu", dev]


@pytest.fixture(scope="module")
def graph():
    return make_csbm(200, 6, 3, 8, 0.7, seed=0)


def test_push_then_pull_returns_what_was_pushed(devices):
    for store in _stores(devices):
        hist = History(50, 4, device=store)
        assert hist.emb.abs().sum() == 0 and bool((hist.age() == -1).all())
        ids = torch.tensor([3, 7, 49, 0], device=devices)
        x = torch.randn(4, 4, requires_grad=True, device=devices)
        hist.push(x * 2, ids)
        out = hist.pull(ids, device=devices)
        assert out.device.type == devices.type
        assert torch.equal(out, (x * 2).detach()) and not out.requires_grad
        assert torch.equal(hist.pull(torch.tensor([49, 3], device=devices), device=devices), out[[2, 0]])
        # untouched rows stay zero; pull(None) is every row, on the store's device by default
        assert hist.pull().shape == (50, 4) and hist.pull().device.type == torch.device(store).type
        assert hist.pull(torch.tensor([1], device=devices)).abs().sum() == 0
        # a second push overwrites only its rows, and age counts pushes since the last write
        hist.push(torch.ones(1, 4, device=devices), torch.tensor([7], device=devices))
        assert torch.equal(hist.pull(torch.tensor([7]), device=devices), torch.ones(1, 4, device=devices))
        assert torch.equal(hist.pull(torch.tensor([3]), device=devices), out[:1])
        assert hist.age(torch.tensor([7, 3, 1])).tolist() == [0, 1, -1]
        # pulled rows are a copy: editing them does not change the history
        out.add_(100)
        assert torch.equal(hist.pull(torch.tensor([0]), device=devices), (x[3:] * 2).detach())
        hist.reset()
        assert hist.pull().abs().sum() == 0 and hist.pushes == 0


def test_pushes_land_in_order_before_any_read(devices):
    """Several pushes to overlapping rows, then reads: the latest push wins, whatever the
    device of the pushed rows (from a GPU into a pinned store the copies are asynchronous and
    written in at the next read)."""
    gen = torch.Generator().manual_seed(0)
    for store in _stores(devices):
        hist = History(30, 3, device=store)
        expected = torch.zeros(30, 3)
        for _ in range(6):
            ids = torch.randperm(30, generator=gen)[:8]
            x = torch.randn(8, 3, generator=gen)
            hist.push(x.to(devices), ids.to(devices))
            expected[ids] = x
        assert torch.equal(hist.pull(device="cpu"), expected)
        assert torch.equal(hist.emb.cpu(), expected)  # the store itself, pending pushes written in
        hist.push(torch.ones(2, 3, device=devices), torch.tensor([0, 1], device=devices))
        hist.reset()  # a reset also drops what was still in flight
        assert hist.pull().abs().sum() == 0


def test_host_history_with_a_gpu_model_is_pinned_and_pulls_to_the_gpu(devices):
    """GAS on a GPU: the store stays in pinned host memory; rows go to the GPU and back."""
    if devices.type != "cuda":
        pytest.skip("pinned memory and asynchronous copies need a GPU")
    hist = History(100, 4)
    assert hist.pinned and hist.emb.is_pinned() and hist.emb.device.type == "cpu"
    x = torch.randn(10, 4, device=devices)
    ids = torch.arange(10, 20)
    hist.push(x, ids)
    out = hist.pull(ids, device=devices)
    assert out.device.type == "cuda" and torch.equal(out, x)
    assert hist.emb.is_pinned() and hist.emb.device.type == "cpu"


@pytest.mark.parametrize("dtype,rtol", [(torch.float16, 1e-3), (torch.bfloat16, 8e-3)])
def test_half_precision_round_trip(devices, dtype, rtol):
    for store in _stores(devices):
        hist = History(100, 8, device=store, dtype=dtype)
        assert hist.nbytes() == 100 * 8 * 2
        x = torch.randn(100, 8, device=devices)
        hist.push(x)
        out = hist.pull(device=devices)
        assert out.dtype == torch.float32 and out.device.type == devices.type
        torch.testing.assert_close(out, x, rtol=rtol, atol=1e-3)
        assert hist.pull(dtype=None).dtype == dtype


def test_bad_arguments_name_the_argument(devices):
    hist = History(10, 3)
    with pytest.raises(IndexError, match=r"n_id .*\[0, 10\)"):
        hist.pull(torch.tensor([10], device=devices))
    with pytest.raises(IndexError, match="n_id"):
        hist.push(torch.zeros(1, 3, device=devices), torch.tensor([-1], device=devices))
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


def test_halo_operator_is_the_full_graphs_rows(graph, devices):
    adj = build_adjacency(graph.edge_index, graph.num_nodes, "gcn", device=devices)
    nodes = torch.tensor([5, 17, 3, 120, 64], device=devices)
    n_id, op = halo_operator(adj, nodes)
    assert n_id.device.type == op.device.type == devices.type
    assert torch.equal(n_id[:5], nodes)  # in-batch nodes first
    dense = adj.matrix.to_dense()
    halo = set(dense[nodes].nonzero()[:, 1].tolist()) - set(nodes.tolist())
    assert set(n_id[5:].tolist()) == halo and torch.equal(n_id[5:], n_id[5:].sort().values)
    local = op.matrix.to_dense()
    torch.testing.assert_close(local[:5], dense[nodes][:, n_id])  # same values, full-graph degrees
    assert local[5:].abs().sum() == 0  # halo rows are empty
    h = torch.randn(graph.num_nodes, 3, device=devices)
    torch.testing.assert_close((op @ h[n_id])[:5], (adj @ h)[nodes])


def test_halo_operator_bad_arguments(graph):
    adj = build_adjacency(graph.edge_index, graph.num_nodes, "gcn")
    with pytest.raises(ValueError, match="nodes must hold distinct"):
        halo_operator(adj, torch.tensor([1, 1]))
    with pytest.raises(IndexError, match="nodes"):
        halo_operator(adj, torch.tensor([graph.num_nodes]))
    with pytest.raises(TypeError, match="adj must be a SparseAdjacency"):
        halo_operator(graph.edge_index, torch.tensor([0]))


def test_block_operator_layout(devices):
    n_id, op = block_operator(*(torch.tensor(v, device=devices) for v in ([4, 2], [2, 1], [9, 2, 4], [1.0, 2.0, 3.0])),
                              10, "sum")
    assert n_id.device.type == op.device.type == devices.type
    assert n_id.tolist() == [4, 2, 9]
    assert op.matrix.to_dense().tolist() == [[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
