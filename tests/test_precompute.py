"""Precomputation (SGC, SIGN) and Correct & Smooth: exact properties on small graphs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.data import make_csbm
from msgnn_lite.precompute import (SGC, SIGN, correct, correct_and_smooth, fit_precomputed, label_propagation,
                                   row_batch_step, sgc_features, sign_features, smooth)
from msgnn_lite.sparse import build_adjacency


@pytest.fixture(scope="module")
def graph():
    data = make_csbm(300, 6, 3, 12, homophily=0.8, seed=1)
    adj = build_adjacency(data.edge_index, data.num_nodes, "gcn", dtype=torch.float64)
    return data, adj


def _dense_adj(data, adj):
    return adj.matrix.to_dense()


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("sparse_x", [False, True])
def test_features_equal_dense_powers(graph, k, sparse_x):
    data, adj = graph
    x = data.x.double()
    x = x * (torch.rand(x.shape, generator=torch.Generator().manual_seed(k)) < 0.1)  # bag-of-words-like
    a = _dense_adj(data, adj)
    # the dense reference built independently from the edge list: D^-1/2 (A + I) D^-1/2
    n = data.num_nodes
    ref = torch.zeros(n, n, dtype=torch.float64)
    ref[data.edge_index[1], data.edge_index[0]] = 1.0
    ref += torch.eye(n, dtype=torch.float64)
    dinv = ref.sum(1).pow(-0.5)
    ref = dinv[:, None] * ref * dinv[None, :]
    assert torch.allclose(a, ref)
    xin = x.to_sparse_csr() if sparse_x else x
    hops = sign_features(xin, adj, k)
    assert len(hops) == k + 1
    expected = x
    for i in range(1, k + 1):
        expected = ref @ expected
        assert hops[i].layout == torch.strided
        assert torch.allclose(hops[i], expected, atol=1e-12)
    assert torch.allclose(sgc_features(xin, adj, k), torch.linalg.matrix_power(ref, k) @ x, atol=1e-12)
    # hop 0 is X itself, kept sparse when it was given sparse
    assert hops[0].layout == (torch.sparse_csr if sparse_x else torch.strided)
    assert torch.equal(hops[0].to_dense() if sparse_x else hops[0], x)


def test_k_zero_returns_x(graph):
    data, adj = graph
    x = data.x.double()
    assert sgc_features(x, adj, 0) is x
    xs = x.to_sparse_csr()
    assert sgc_features(xs, adj, 0) is xs
    assert len(sign_features(x, adj, 0)) == 1


def _perfect(data):
    return F.one_hot(data.y, int(data.y.max()) + 1).double()


def test_perfect_base_residual_zero_and_unchanged(graph):
    data, _ = graph
    sym = build_adjacency(data.edge_index, data.num_nodes, "sym", dtype=torch.float64)
    base = _perfect(data)
    for autoscale in (True, False):
        corrected, residual = correct(base, data.y, data.train_mask, sym, 0.8, autoscale=autoscale)
        assert torch.count_nonzero(residual[data.train_mask]) == 0
        assert torch.equal(corrected, base)  # nothing to correct
    cs = correct_and_smooth(base, data.y, data.train_mask, sym, correct_alpha=0.7, smooth_alpha=0.9)
    tr = data.train_mask
    assert torch.equal(cs.smoothed[tr].argmax(1), base[tr].argmax(1))
    assert torch.equal(cs.smoothed[tr], base[tr])


def test_perfect_base_on_a_fully_homophilous_graph_keeps_every_prediction():
    # no edge between classes: propagating one-hot true labels cannot move any node's arg-max
    data = make_csbm(200, 5, 4, 8, homophily=1.0, seed=3)
    sym = build_adjacency(data.edge_index, data.num_nodes, "sym", dtype=torch.float64)
    base = _perfect(data)
    out = smooth(base, data.y, data.train_mask, sym, 0.9, keep_train_labels=False)
    assert torch.equal(out.argmax(1), data.y)


def test_correct_spreads_residuals_and_autoscale_matches_training_error(graph):
    data, _ = graph
    sym = build_adjacency(data.edge_index, data.num_nodes, "sym", dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(data.num_nodes, 3, generator=gen, dtype=torch.float64).softmax(1)
    corrected, residual = correct(base, data.y, data.train_mask, sym, 0.8, autoscale=True)
    assert torch.count_nonzero(residual[~data.train_mask]) == 0
    sigma = residual[data.train_mask].abs().sum() / int(data.train_mask.sum())
    change = (corrected - base).abs().sum(1)
    moved = change > 0
    assert moved.sum() > data.train_mask.sum()  # the errors reached unlabelled nodes
    # autoscale: every reached node moves by the mean absolute training error (nodes whose propagated
    # error is < sigma / 1000 keep it unscaled, as in the reference implementation)
    scaled = torch.isclose(change, torch.full_like(change, float(sigma)))
    assert bool((scaled | (change < float(sigma) / 1000)).all())
    assert scaled.sum() > data.train_mask.sum()


def test_label_propagation_converges_to_closed_form(graph):
    data, _ = graph
    sym = build_adjacency(data.edge_index, data.num_nodes, "sym", dtype=torch.float64)
    y0 = _perfect(data) * data.train_mask[:, None]
    alpha = 0.6
    out = label_propagation(y0, sym, alpha, num_layers=200)
    a = sym.matrix.to_dense()
    closed = (1 - alpha) * torch.linalg.solve(torch.eye(data.num_nodes, dtype=torch.float64) - alpha * a, y0)
    assert torch.allclose(out, closed, atol=1e-10)
    assert torch.equal(label_propagation(y0, sym, 0.0, 5), y0)


def test_bad_arguments_raise_clear_errors(graph):
    data, adj = graph
    x = data.x.double()
    with pytest.raises(ValueError, match="k must be an integer >= 0"):
        sgc_features(x, adj, -1)
    with pytest.raises(ValueError, match="num_hops"):
        SIGN(12, 8, 3, num_hops=-2)
    with pytest.raises(ValueError, match=r"x must be a 2-D tensor of shape \[300, F\]"):
        sign_features(x[:10], adj, 2)
    base = _perfect(data)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="correct_alpha must be a number in \\[0, 1\\]"):
            correct_and_smooth(base, data.y, data.train_mask, adj, correct_alpha=bad)
        with pytest.raises(ValueError, match="smooth_alpha"):
            correct_and_smooth(base, data.y, data.train_mask, adj, smooth_alpha=bad)
    with pytest.raises(ValueError, match="y_soft must have shape"):
        correct_and_smooth(base[:5], data.y, data.train_mask, adj)
    with pytest.raises(ValueError, match="y_true must be an integer tensor of shape"):
        correct_and_smooth(base, data.y[:5], data.train_mask, adj)
    with pytest.raises(ValueError, match="train_mask must have shape"):
        correct_and_smooth(base, data.y, data.train_mask[:5], adj)
    with pytest.raises(ValueError, match=r"features\[0\] must have shape"):
        fit_precomputed(SGC(12, 3), x[:10], data, epochs=1, device="cpu")
    with pytest.raises(ValueError, match="xs must hold num_hops"):
        SIGN(12, 8, 3, num_hops=2)([x.float()])


def test_precomputed_training_is_deterministic_and_learns(graph):
    data, adj = graph
    adj32 = build_adjacency(data.edge_index, data.num_nodes, "gcn")
    hops = sign_features(data.x, adj32, 2)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SIGN(12, 16, 3, num_hops=2, dropout=0.1)
        runs.append(fit_precomputed(model, hops, data, epochs=15, batch_size=16, lr=0.02, device="cpu", seed=0,
                                    progress=False))
    assert torch.equal(runs[0].logits, runs[1].logits)
    assert runs[0].result.test_acc > 0.6  # 3 classes: chance is 1/3
    assert runs[0].logits.shape == (data.num_nodes, 3)


def test_sparse_hop_zero_gives_the_same_model_outputs(graph):
    """A CSR hop 0 (bag-of-words) is only a faster layout: same logits as the dense one."""
    data, _ = graph
    adj32 = build_adjacency(data.edge_index, data.num_nodes, "gcn")
    x = data.x * (torch.rand(data.x.shape, generator=torch.Generator().manual_seed(0)) < 0.1)
    dense_hops = sign_features(x, adj32, 1)
    sparse_hops = sign_features(x.to_sparse_csr(), adj32, 1)
    assert sparse_hops[0].layout == torch.sparse_csr
    torch.manual_seed(0)
    model = SIGN(12, 8, 3, num_hops=1).eval()
    idx = torch.tensor([5, 0, 17, 299])
    from msgnn_lite.sparse import take_rows
    with torch.no_grad():
        assert torch.allclose(model(sparse_hops), model(dense_hops), atol=1e-5)
        batch = [take_rows(h, idx) for h in sparse_hops]
        assert torch.allclose(model(batch), model(dense_hops)[idx], atol=1e-5)


# ----------------------------------------------------------------------------- devices

def _same(a, b):
    """Equal on the CPU; on a GPU, sparse kernels may sum in another order from call to call."""
    return torch.equal(a, b) if a.device.type == "cpu" else torch.allclose(a, b, rtol=0, atol=1e-12)


def _cs_inputs(graph, dev):
    data, _ = graph
    sym = build_adjacency(data.edge_index.to(dev), data.num_nodes, "sym", dtype=torch.float64)
    base = torch.rand(data.num_nodes, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).softmax(1)
    return base.to(dev), data.y.to(dev), data.train_mask.to(dev), sym


@pytest.mark.parametrize("autoscale", [True, False])
def test_correct_and_smooth_on_a_device_equals_the_cpu_result(graph, devices, autoscale):
    """All inputs on a device: masks and one-hots are made there, every stage is returned
    there, and equals the CPU result (notebook 09 crashed on a GPU with mixed devices)."""
    ref = correct_and_smooth(*_cs_inputs(graph, torch.device("cpu")), autoscale=autoscale, scale=0.7)
    cs = correct_and_smooth(*_cs_inputs(graph, devices), autoscale=autoscale, scale=0.7)
    for name in ("base", "corrected", "smoothed", "residual"):
        got = getattr(cs, name)
        assert got.device.type == devices.type, name
        assert torch.allclose(got.cpu(), getattr(ref, name), atol=1e-10), name


def test_correct_and_smooth_runs_where_the_operator_is(graph, devices):
    """CPU probabilities (a model's logits brought back to the host) with a graph, labels and
    mask on a device: C&S copies them to the operator's device and returns there."""
    base, y, mask, sym = _cs_inputs(graph, devices)
    cs = correct_and_smooth(base.cpu(), y, mask.cpu(), sym)
    ref = correct_and_smooth(base, y, mask, sym)
    assert cs.smoothed.device.type == devices.type and _same(cs.smoothed, ref.smoothed)


def test_labels_outside_the_training_rows_are_never_read(graph, devices):
    """Unknown labels (-1) on the other rows change nothing (and raise nothing)."""
    base, y, mask, sym = _cs_inputs(graph, devices)
    hidden = torch.where(mask, y, torch.full_like(y, -1))
    for autoscale in (True, False):
        a = correct_and_smooth(base, y, mask, sym, autoscale=autoscale)
        b = correct_and_smooth(base, hidden, mask, sym, autoscale=autoscale)
        assert _same(a.smoothed, b.smoothed) and _same(a.residual, b.residual)


def test_sign_features_on_a_device_equal_the_cpu_ones(graph, devices):
    data, adj = graph
    dev_adj = build_adjacency(data.edge_index.to(devices), data.num_nodes, "gcn", dtype=torch.float64)
    hops = sign_features(data.x.double().to(devices), dev_adj, 2)
    for got, want in zip(hops, sign_features(data.x.double(), adj, 2)):
        assert got.device.type == devices.type and torch.allclose(got.cpu(), want, atol=1e-12)


class _Recorder(torch.nn.Module):
    """A linear model on one feature column that records the rows (node ids) it is given."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 3)
        self.seen = []

    def forward(self, xs):
        x = xs[-1]
        if self.training:
            self.seen.append(x[:, 0].long())
        return self.lin(x)


def test_row_batches_shuffle_on_the_features_device(graph, devices):
    """The shuffle is drawn where the features are; a CPU generator with CPU features is used as
    it is, so the order is its randperm stream (stored notebook results depend on it)."""
    data, _ = graph
    ids = torch.arange(data.num_nodes, dtype=torch.float32).unsqueeze(1).to(devices)
    model = _Recorder().to(devices)
    step = row_batch_step([ids], batch_size=64, generator=torch.Generator().manual_seed(3))
    d = data.clone().to(devices)
    loss = step(model, d, torch.optim.SGD(model.parameters(), lr=0.01))
    order = torch.cat(model.seen)
    assert isinstance(loss, float) and order.device.type == devices.type
    train = data.train_mask.nonzero().view(-1)
    assert torch.equal(torch.sort(order).values.cpu(), train)  # every training row once per epoch
    if devices.type == "cpu":
        assert torch.equal(order, train[torch.randperm(train.numel(), generator=torch.Generator().manual_seed(3))])


def test_precomputed_training_on_a_device_leaves_the_callers_data(graph, devices):
    data, _ = graph
    adj32 = build_adjacency(data.edge_index, data.num_nodes, "gcn")
    hops = sign_features(data.x, adj32, 2)
    torch.manual_seed(0)
    run = fit_precomputed(SIGN(12, 16, 3, num_hops=2, dropout=0.1), hops, data, epochs=15, batch_size=16, lr=0.02,
                          device=devices, seed=0, progress=False)
    assert run.logits.device.type == devices.type and run.result.test_acc > 0.6
    assert data.x.device.type == "cpu" and hops[0].device.type == "cpu"
