"""Tests for msgnn_lite.revgnn and msgnn_lite.deq: exact inversion, gradients equal to
ordinary autograd, flat activation memory, weight tying, the DEQ's implicit gradient.
The tests of the training paths run on every device of the ``devices`` fixture."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.data import make_csbm
from msgnn_lite.deq import DEQGNN, fixed_point
from msgnn_lite.revgnn import ResGNN, RevBlock, RevGNN, dropout_mask, measure_training_step
from msgnn_lite.sparse import cached_adjacency
from msgnn_lite.utils import to_device


pytestmark = pytest.mark.usefixtures("one_thread")  # small graphs, 1000-layer loops: no thread oversubscription


@pytest.fixture(scope="module")
def cpu_graph():
    return make_csbm(300, 8, 3, 12, 0.8, seed=0)


@pytest.fixture
def graph(cpu_graph, devices):
    return to_device(cpu_graph, devices)


def _adj(data, norm="gcn", dtype=torch.float32):
    return cached_adjacency(data.edge_index, data.num_nodes, norm, dtype=dtype)


def _grads_after_step(model, data, seed=3):
    torch.manual_seed(seed)
    out = model(data.x, _adj(data, model.normalization))
    assert out.device == data.x.device
    F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
@pytest.mark.parametrize("groups", [2, 3, 4])
def test_block_inverse_reconstructs_input(graph, norm, groups, devices):
    torch.manual_seed(0)
    block = RevBlock(12, num_groups=groups, dropout=0.4, norm=norm).to(devices).train()
    adj = _adj(graph)
    x = torch.randn(graph.num_nodes, 12, device=devices) * 3
    for key in (7, None):  # a dropout seed, and no dropout
        y = block(x, adj, key, update_stats=False)
        assert not torch.allclose(y, x)
        torch.testing.assert_close(block.inverse(y, adj, key), x, rtol=0, atol=1e-5)
    block.eval()
    torch.testing.assert_close(block.inverse(block(x, adj), adj), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(num_layers=6, num_groups=2, norm="batch"),
    dict(num_layers=6, num_groups=3, norm="layer", shared_dropout_mask=False),
    dict(num_layers=12, num_groups=2, norm="batch", weight_tying=True),
    dict(num_layers=5, num_groups=2, norm="batch", conv="sage", shared_dropout_mask=False),
])
def test_reversible_gradients_equal_plain_autograd(graph, kwargs, devices):
    torch.manual_seed(1)
    rev = RevGNN(12, 12 if kwargs["num_groups"] == 3 else 8, 3, dropout=0.3, **kwargs).to(devices)
    ref = copy.deepcopy(rev)
    ref.reversible = False  # same weights; same masks from the same seed
    g_rev, g_ref = _grads_after_step(rev, graph), _grads_after_step(ref, graph)
    scale = max(g.abs().max() for g in g_ref)
    assert scale > 0
    for a, b in zip(g_rev, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(scale))
    # BatchNorm's running statistics are updated once per layer, as in the plain network.
    for a, b in zip(rev.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b)
    assert rev.last_stats["recompute_bytes"] > 0


def test_thousand_layers_without_recursion_and_exact_gradients(devices):
    data = to_device(make_csbm(60, 4, 2, 4, 0.9, seed=1), devices)
    torch.manual_seed(0)
    rev = RevGNN(4, 8, 2, num_layers=1000, num_groups=2, dropout=0.1, norm="layer",
                 shared_dropout_mask=False).to(devices)  # a mask per layer, regenerated from its seed
    ref = copy.deepcopy(rev)
    ref.reversible = False
    g_rev, g_ref = _grads_after_step(rev, data), _grads_after_step(ref, data)
    scale = float(max(g.abs().max() for g in g_ref))
    worst = max(float((a - b).abs().max()) for a, b in zip(g_rev, g_ref))
    assert worst <= 1e-3 * scale


def test_saved_bytes_flat_for_revgnn_and_growing_for_resgnn(graph, devices):
    def activations(cls, depth, **kw):
        torch.manual_seed(0)
        m = cls(12, 16, 3, num_layers=depth, dropout=0.5, **kw).to(devices)
        return measure_training_step(m, graph)

    rev = [activations(RevGNN, d) for d in (2, 8, 32)]
    res = [activations(ResGNN, d) for d in (2, 8, 32)]
    assert rev[0].activations == rev[1].activations == rev[2].activations
    assert rev[0].recompute == rev[2].recompute > 0
    assert rev[2].activation_total <= 1.5 * rev[0].activation_total
    # ResGNN: strictly growing and linear in depth (equal increments per layer).
    a = [r.activations for r in res]
    assert a[0] < a[1] < a[2]
    assert (a[2] - a[1]) == pytest.approx(4 * (a[1] - a[0]), rel=0.01)
    assert res[2].activations > 10 * rev[2].activation_total
    # Parameter memory grows with depth for both; the split is reported separately.
    assert rev[2].parameters > rev[0].parameters
    assert 2 * rev[2].gradients <= rev[2].optimizer <= 2.1 * rev[2].gradients  # Adam: two moments (+ step counters)


def test_weight_tying_shares_one_block(graph):
    tied = RevGNN(12, 8, 3, num_layers=50, weight_tying=True)
    untied = RevGNN(12, 8, 3, num_layers=50)
    per_block = sum(p.numel() for p in untied.blocks[0].parameters())
    shell = sum(p.numel() for n, p in untied.named_parameters() if not n.startswith("blocks."))
    assert sum(p.numel() for p in tied.parameters()) == shell + per_block
    assert sum(p.numel() for p in untied.parameters()) == shell + 50 * per_block
    assert len(set(map(id, tied.block_sequence()))) == 1 and len(tied.block_sequence()) == 50


def test_eval_matches_plain_network_and_deep_model_learns(graph, devices):
    torch.manual_seed(0)
    rev = RevGNN(12, 16, 3, num_layers=32, dropout=0.2).to(devices)
    opt = torch.optim.Adam(rev.parameters(), lr=0.01)
    adj = _adj(graph)
    losses = []
    for _ in range(30):
        rev.train()
        opt.zero_grad()
        loss = F.cross_entropy(rev(graph.x, adj)[graph.train_mask], graph.y[graph.train_mask])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    rev.eval()
    ref = copy.deepcopy(rev)
    ref.reversible = False
    with torch.no_grad():
        out = rev(graph.x, adj)
    torch.testing.assert_close(out, ref(graph.x, adj))
    acc = float((out.argmax(1)[graph.val_mask] == graph.y[graph.val_mask]).float().mean())
    assert acc > 0.6  # three classes: chance is 1/3


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="num_groups=3 must divide"):
        RevGNN(4, 8, 2, num_layers=2, num_groups=3)
    with pytest.raises(ValueError, match="num_layers"):
        RevGNN(4, 8, 2, num_layers=0)
    with pytest.raises(ValueError, match="num_layers"):
        ResGNN(4, 8, 2, num_layers=-1)
    with pytest.raises(ValueError, match="num_groups"):
        RevGNN(4, 8, 2, num_groups=1)
    with pytest.raises(ValueError, match="norm must be one of"):
        RevGNN(4, 8, 2, norm="group")
    with pytest.raises(ValueError, match="conv must be one of"):
        RevGNN(4, 8, 2, conv="gat")
    with pytest.raises(ValueError, match="dropout"):
        RevGNN(4, 8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="num_groups=3 must divide"):
        DEQGNN(4, 8, 2, num_groups=3)
    with pytest.raises(ValueError, match="x has 5 rows"):
        RevGNN(4, 8, 2)(torch.randn(5, 4), _adj(make_csbm(10, 2, 2, 4, 0.5)))


def test_fixed_point_solver_converges(devices):
    a = torch.tensor([[0.5, 0.1], [0.0, 0.3]], device=devices)
    b = torch.tensor([1.0, 2.0], device=devices)
    z, iters, res = fixed_point(lambda z: a @ z + b, torch.zeros(2, device=devices), max_iter=200, tol=1e-7)
    expected = torch.linalg.solve(torch.eye(2, device=devices) - a, b)
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-5)
    assert res <= 1e-7 and iters < 200


@pytest.mark.parametrize("max_iter", [1, 5, 200])
def test_fixed_point_returns_what_the_plain_loop_returns(devices, max_iter):
    """On a GPU the solver queues the next iterate before reading the residual; the iterate,
    the count and the residual must still be the plain loop's (stop at the first k with a small
    enough residual, or at max_iter), and on the CPU no iteration is wasted."""
    a = torch.tensor([[0.6, 0.2], [0.1, 0.5]], dtype=torch.float64, device=devices)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64, device=devices)
    calls = []

    def f(z):
        calls.append(1)
        return a @ z + b

    z_ref, k_ref = torch.zeros(2, dtype=torch.float64, device=devices), 0
    for k_ref in range(1, max_iter + 1):  # the plain loop
        fz = a @ z_ref + b
        res_ref = float(torch.linalg.vector_norm(fz - z_ref) / (torch.linalg.vector_norm(fz) + 1e-12))
        z_ref = fz
        if res_ref <= 1e-6:
            break
    z, k, res = fixed_point(f, torch.zeros(2, dtype=torch.float64, device=devices), max_iter=max_iter, tol=1e-6)
    assert (k, res) == (k_ref, res_ref) and torch.equal(z, z_ref) and z.device.type == devices.type
    assert len(calls) == k + (devices.type == "cuda" and k < max_iter)


def test_deq_implicit_gradient_matches_finite_differences(graph, devices):
    torch.manual_seed(0)
    model = DEQGNN(12, 8, 3, num_groups=2, dropout=0.0, norm="layer", max_iter=300, tol=1e-10).double().to(devices)
    x, adj = graph.x.double(), _adj(graph, dtype=torch.float64)

    def loss_fn():
        return F.cross_entropy(model(x, adj), graph.y)

    loss_fn().backward()
    stats = model.last_stats
    assert stats["forward_residual"] <= 1e-10 and stats["backward_residual"] <= 1e-10
    w = model.block.convs[1].lin.weight
    grad = w.grad.clone()
    eps = 1e-6
    with torch.no_grad():
        for i, j in [(0, 0), (2, 1), (3, 3)]:
            w[i, j] += eps
            up = float(loss_fn())
            w[i, j] -= 2 * eps
            down = float(loss_fn())
            w[i, j] += eps
            assert (up - down) / (2 * eps) == pytest.approx(float(grad[i, j]), rel=1e-4, abs=1e-8)
    # One block's parameters, whatever the effective depth.
    assert sum(p.numel() for p in model.block.parameters()) == \
        sum(p.numel() for p in RevBlock(8, 2, norm="layer").parameters())


def test_zero_gate_makes_the_stack_the_identity_and_gates_get_gradients(graph, devices):
    torch.manual_seed(0)
    model = RevGNN(12, 8, 3, num_layers=40, num_groups=2, dropout=0.3, norm="layer", gate=0.0).to(devices).train()
    adj = _adj(graph)
    h = torch.randn(graph.num_nodes, 8, device=devices)
    seeds = model._dropout_keys(h)
    out = h
    for block, seed in zip(model.block_sequence(), seeds):
        out = block(out, adj, seed)
    torch.testing.assert_close(out, h, rtol=0, atol=0)  # ReZero: identity at initialisation
    # The whole model then equals the shallow encoder -> decoder network.
    model.eval()
    shallow = model.decode(model.encode(graph.x))
    torch.testing.assert_close(model(graph.x, adj), shallow)
    model.train()
    grads = _grads_after_step(model, graph)
    named = dict(zip([n for n, _ in model.named_parameters()], grads))
    gate_grads = torch.stack([named[f"blocks.{i}.gate"] for i in range(40)])
    assert (gate_grads != 0).all()  # every gate can move away from zero
    assert float(named["blocks.0.convs.0.lin.weight"].abs().max()) == 0.0  # branches wait for their gate


@pytest.mark.parametrize("gate", [0.0, 0.3])
def test_gated_reversible_gradients_equal_plain_autograd(graph, gate, devices):
    torch.manual_seed(2)
    rev = RevGNN(12, 8, 3, num_layers=10, num_groups=2, dropout=0.3, norm="batch", gate=gate).to(devices)
    with torch.no_grad():  # distinct gates, so that each block's gradient is checked separately
        for i, b in enumerate(rev.blocks):
            b.gate.add_(0.01 * i)
    ref = copy.deepcopy(rev)
    ref.reversible = False
    g_rev, g_ref = _grads_after_step(rev, graph), _grads_after_step(ref, graph)
    scale = float(max(g.abs().max() for g in g_ref))
    for a, b in zip(g_rev, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale)
    # The inverse still reconstructs a gated block's input.
    block, x, adj = rev.blocks[3].train(), torch.randn(graph.num_nodes, 8, device=devices), _adj(graph)
    torch.testing.assert_close(block.inverse(block(x, adj, 5, update_stats=False), adj, 5), x, rtol=0, atol=1e-5)


def test_parameter_groups_separate_the_gates():
    model = RevGNN(12, 8, 3, num_layers=7, gate=0.0)
    groups = model.parameter_groups(gate_lr=0.1, weight_decay=5e-4)
    assert len(groups) == 2 and groups[1]["lr"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert len(groups[1]["params"]) == 7 and all(p.dim() == 0 for p in groups[1]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(RevGNN(12, 8, 3, num_layers=7).parameter_groups()) == 1  # no gates: the paper's block


def test_identity_init_and_input_norm(cpu_graph):
    graph = cpu_graph
    torch.manual_seed(0)
    model = RevGNN(12, 8, 3, num_layers=5, gate=0.1, identity_init=1.0, input_norm=True)
    for block in model.blocks:
        for conv in block.convs:
            torch.testing.assert_close(conv.lin.weight, torch.eye(4))
    torch.manual_seed(0)
    half = RevGNN(12, 8, 3, num_layers=5, identity_init=0.5)
    torch.manual_seed(0)
    plain = RevGNN(12, 8, 3, num_layers=5)
    w_half, w_plain = half.blocks[2].convs[1].lin.weight, plain.blocks[2].convs[1].lin.weight
    torch.testing.assert_close(w_half, 0.5 * torch.eye(4) + 0.5 * w_plain)
    model.eval()
    h = model.encode(graph.x)  # unit-scale residual stream
    torch.testing.assert_close(h.mean(-1), torch.zeros(graph.num_nodes), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(-1, unbiased=False), torch.ones(graph.num_nodes), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="identity_init"):
        RevGNN(12, 8, 3, identity_init=1.5)


def test_seeded_dropout_masks_are_drawn_on_the_device_and_repeat(devices):
    """A per-layer mask is regenerated from its seed in the backward pass: the same seed gives
    the same mask (a fresh generator's draw), on the activations' device, whatever was drawn
    in between."""
    like = torch.empty(50, 6, device=devices)
    first = dropout_mask(like, 0.3, seed=11)
    other = dropout_mask(like, 0.3, seed=12)
    again = dropout_mask(like, 0.3, seed=11)
    assert first.device == like.device and torch.equal(first, again) and not torch.equal(first, other)
    fresh = torch.Generator(device=devices).manual_seed(11)
    keep = torch.rand(like.shape, generator=fresh, device=devices) >= 0.3
    torch.testing.assert_close(first, keep.float() / 0.7)
    assert bool(((first == 0) | torch.isclose(first, torch.full_like(first, 1 / 0.7))).all())


def test_reversible_step_does_not_read_the_gpu(cpu_graph, devices):
    """The reversible forward and backward sweeps (100 layers, a dropout mask per layer) queue
    work without ever waiting for the GPU: torch's sync debug mode raises on any host sync."""
    if devices.type != "cuda":
        pytest.skip("host syncs only exist with a GPU")
    graph = to_device(cpu_graph, devices)
    torch.manual_seed(0)
    model = RevGNN(12, 8, 3, num_layers=100, dropout=0.3, norm="layer", shared_dropout_mask=False).to(devices)
    adj = _adj(graph)
    model(graph.x, adj).sum().backward()  # warm-up: the operator's transpose, allocator, cuBLAS
    model.zero_grad()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = model(graph.x, adj)
        out.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(p.grad is not None for p in model.parameters())
