"""Degree-Quant pieces: fake quantization, the straight-through estimator, range tracking,
degree-based protection, quantized layers, packing and integer inference."""
from __future__ import annotations

import math

import pytest
import torch

from msgnn_lite.models import GCNConv, SAGEConv
from msgnn_lite.quant import (QGCN, QSAGE, QGCNConv, QSAGEConv, Quantizer, fake_quantize, in_degree, integer_forward,
                              model_size_bytes, pack_bits, protection_probability, qrange, quant_params, quantize,
                              dequantize, sample_protection, unpack_bits)
from msgnn_lite.quant import _protection_probability
from msgnn_lite.sparse import build_adjacency


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_round_trip_error_at_most_half_a_step(bits, symmetric):
    gen = torch.Generator().manual_seed(bits)
    lo, hi = -1.3, 2.9
    x = torch.rand(20_000, generator=gen, dtype=torch.float64).float() * (hi - lo) + lo
    x = torch.cat([x, torch.tensor([lo, hi, 0.0])])
    scale, zp = quant_params(lo, hi, bits, symmetric)
    err = (fake_quantize(x, scale, zp, bits, symmetric) - x).abs()
    rounding = 4 * torch.finfo(torch.float32).eps * max(-lo, hi)  # float32 arithmetic on values up to |x|
    assert float(err.max()) <= float(scale) / 2 + rounding
    assert float(fake_quantize(torch.zeros(1), scale, zp, bits, symmetric)) == 0.0  # zero is exact
    # the codes span the whole integer range and dequantize back to the same values
    q = quantize(x, scale, zp, bits, symmetric)
    assert torch.allclose(dequantize(q, scale, zp, bits, symmetric), fake_quantize(x, scale, zp, bits, symmetric))
    if bits <= 8:
        assert q.dtype == torch.int8


def test_matches_torch_fake_quantize():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 3
    scale, zp = quant_params(-2.0, 5.0, 8, symmetric=False)
    ours = fake_quantize(x, scale, zp, 8)
    ref = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), 0, 255)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_straight_through_gradient_identity_inside_zero_outside():
    scale, zp = quant_params(-1.0, 1.0, 4, symmetric=True)
    qmin, qmax = qrange(4, True)
    x = torch.linspace(-3, 3, 601, requires_grad=True)
    y = fake_quantize(x, scale, zp, 4, symmetric=True)
    g = torch.randn(601, generator=torch.Generator().manual_seed(1))
    y.backward(g)
    inside = (x.detach() >= qmin * scale) & (x.detach() <= qmax * scale)
    assert inside.any() and (~inside).any()
    assert torch.equal(x.grad[inside], g[inside])
    assert torch.equal(x.grad[~inside], torch.zeros(int((~inside).sum())))
    # clipped values sit at the ends of the range
    y = y.detach()
    assert float(y.max()) == pytest.approx(qmax * float(scale)) and float(y.min()) == pytest.approx(qmin * float(scale))


def test_quantizer_tracks_ranges_with_momentum_and_percentiles():
    q = Quantizer(bits=8, momentum=0.5)
    q.train()
    q(torch.tensor([0.0, 1.0]))
    assert float(q.hi) == 1.0
    q(torch.tensor([0.0, 3.0]))
    assert float(q.hi) == pytest.approx(2.0)  # 1 + 0.5 (3 - 1)
    q.eval()
    q(torch.tensor([0.0, 100.0]))  # frozen at evaluation
    assert float(q.hi) == pytest.approx(2.0)
    # a percentile range ignores a single outlier that min/max takes
    x = torch.cat([torch.linspace(0, 1, 10_000), torch.tensor([1000.0])])
    mm, pc = Quantizer(percentile=None), Quantizer(percentile=99.9)
    mm(x), pc(x)
    assert float(mm.hi) == 1000.0 and float(pc.hi) <= 1.0
    assert float(Quantizer(percentile=0.1).batch_range(x)[1]) == float(pc.hi)  # 0.1 and 99.9 are the same pair


def test_protected_rows_stay_full_precision_and_do_not_set_the_range():
    q = Quantizer(bits=2)
    x = torch.tensor([[0.3], [0.7], [50.0]])
    protect = torch.tensor([False, False, True])
    out = q(x, protect)
    assert float(out[2]) == 50.0 and float(q.hi) == pytest.approx(0.7)
    assert not torch.equal(out[:2], x[:2])
    q.eval()
    assert float(q(x, protect)[2]) != 50.0  # at evaluation every row is quantized


def test_protection_probability_monotone_and_bounded():
    edge_index = torch.randint(0, 300, (2, 3000), generator=torch.Generator().manual_seed(0))
    deg = in_degree(edge_index, 300)
    p = protection_probability(deg, 0.05, 0.4)
    order = torch.argsort(deg)
    assert bool((p[order][1:] >= p[order][:-1]).all())  # monotone in the degree
    assert float(p.min()) >= 0.05 and float(p.max()) == pytest.approx(0.4)
    assert torch.equal(p[deg == deg[0]], p[deg == deg[0]][:1].expand(int((deg == deg[0]).sum())))  # ties equal
    assert protection_probability(deg, 0.0, 0.0).abs().sum() == 0
    mask = sample_protection(p, generator=torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (300,)
    assert sample_protection(p, training=False) is None


def test_eval_masks_nothing_and_training_protects_by_degree(small_graph):
    torch.manual_seed(0)
    model = QGCN(16, 16, 4, bits=4, p_min=0.2, p_max=1.0)
    adj = build_adjacency(small_graph.edge_index, small_graph.num_nodes, "gcn")
    model.eval()
    assert model.protection(adj) is None
    model.train()
    masks = torch.stack([model.protection(adj) for _ in range(200)]).float().mean(0)
    deg = in_degree(small_graph.edge_index, small_graph.num_nodes)
    hi, lo = deg >= deg.float().quantile(0.9), deg <= deg.float().quantile(0.1)
    assert float(masks[hi].mean()) > float(masks[lo].mean()) + 0.2
    # eval output is deterministic (no random protection, frozen ranges)
    model(small_graph.x, adj)
    model.eval()
    assert torch.equal(model(small_graph.x, adj), model(small_graph.x, adj))


@pytest.mark.parametrize("kwargs, match", [
    (dict(bits=1), "bits"), (dict(bits=17), "bits"), (dict(p_min=0.5, p_max=0.2), "p_min"),
    (dict(p_max=1.5), "p_max"), (dict(p_min=-0.1), "p_min"), (dict(percentile=100), "percentile"),
    (dict(percentile=0), "percentile"), (dict(momentum=0.0), "momentum"),
])
def test_bad_arguments_raise_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QGCN(8, 8, 2, **kwargs)


def test_bad_arguments_of_functions():
    with pytest.raises(ValueError, match="bits"):
        quant_params(-1, 1, 1, True)
    with pytest.raises(TypeError, match="bits"):
        Quantizer(bits=8.0)
    with pytest.raises(ValueError, match="percentile"):
        Quantizer(percentile=-1)
    with pytest.raises(ValueError, match="p_min"):
        protection_probability(torch.tensor([1, 2]), 0.3, 0.1)
    with pytest.raises(ValueError, match="p_max"):
        protection_probability(torch.tensor([1, 2]), 0.0, 2.0)


@pytest.mark.parametrize("q_cls, f_cls", [(QGCNConv, GCNConv), (QSAGEConv, SAGEConv)])
def test_quantized_conv_close_to_float_at_16_bits_and_state_dict_compatible(small_graph, q_cls, f_cls):
    torch.manual_seed(0)
    fconv = f_cls(16, 8)
    qconv = q_cls(16, 8, bits=16)
    missing, unexpected = qconv.load_state_dict(fconv.state_dict(), strict=False)
    assert not unexpected and all(".q_" in k or k.startswith("q_") for k in missing)
    ref = fconv(small_graph.x, small_graph.edge_index).detach()
    out = qconv(small_graph.x, small_graph.edge_index).detach()
    assert torch.allclose(out, ref, atol=1e-3 * float(ref.abs().max()))
    q4 = q_cls(16, 8, bits=4)
    q4.load_state_dict(fconv.state_dict(), strict=False)
    assert float((q4(small_graph.x, small_graph.edge_index).detach() - ref).abs().max()) > float((out - ref).abs().max())


def test_pack_unpack_round_trip_and_sizes():
    for bits in (2, 4, 8):
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        q = torch.randint(lo, hi + 1, (1001,), generator=torch.Generator().manual_seed(bits)).to(torch.int8)
        packed = pack_bits(q, bits)
        assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(1001 * bits / 8)
        assert torch.equal(unpack_bits(packed, bits, 1001), q)
    model = QGCN(100, 16, 4)
    weights = 100 * 16 + 16 * 4
    others = model_size_bytes(model, 32) - 4 * weights
    assert model_size_bytes(model, 8) < model_size_bytes(model, 32) / 3
    assert model_size_bytes(model, 4) - model_size_bytes(model, 8) == -(weights // 2)
    assert others == 4 * (16 + 4)  # the biases


@pytest.mark.parametrize("cls", [QGCN, QSAGE])
def test_integer_forward_matches_fake_quantized_eval(small_graph, cls):
    torch.manual_seed(0)
    model = cls(16, 32, 4, bits=8, dropout=0.0)
    model.train()
    for _ in range(3):
        model(small_graph.x, small_graph.edge_index)  # track ranges
    model.eval()
    ref = model(small_graph.x, small_graph.edge_index).detach()
    out = integer_forward(model, small_graph.x, small_graph.edge_index)
    step = float(model.convs[-1].q_agg.params()[0])
    assert float((out - ref).abs().max()) <= 2 * step + 1e-5
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) > 0.98


# ----------------------------------------------------------------------------- devices

def test_protection_probability_on_a_device_equals_the_cpu_one(devices):
    """Sorting and searching give the CPU's probabilities on any device, without a host sync
    (checked on a GPU with torch's sync debug mode)."""
    deg = in_degree(torch.randint(0, 300, (2, 3000), generator=torch.Generator().manual_seed(0)), 300)
    ref = protection_probability(deg, 0.05, 0.4)
    d = deg.to(devices)
    if devices.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        p = _protection_probability(d, 0.05, 0.4)
        mask = sample_protection(p)
    finally:
        if devices.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert p.device.type == devices.type and mask.device.type == devices.type
    assert torch.equal(p.cpu(), ref)
    seeded = [sample_protection(p, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert seeded[0].device.type == devices.type and torch.equal(*seeded)  # a CPU generator works anywhere


def test_quantizer_reads_its_state_once_and_again_after_loading(devices):
    """After the first tracked step the range state is known on the host: later steps do not
    read the device (checked on a GPU); loading an untracked state dict makes the quantizer
    use the input's own range again."""
    x = torch.linspace(-1.0, 3.0, 101, device=devices)
    q = Quantizer(bits=8, momentum=0.5).to(devices)
    q.train()
    q(x)
    if devices.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        q(2 * x)
        q.eval()
        out = q(x)
    finally:
        if devices.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert out.device.type == devices.type and float(q.hi) == pytest.approx(4.5)  # 3 + 0.5 (6 - 3)
    q.load_state_dict(Quantizer(bits=8).state_dict())
    scale, zp = q.params(x)
    ref_scale, ref_zp = quant_params(-1.0, 3.0, 8, False)
    assert float(scale) == pytest.approx(float(ref_scale)) and float(zp) == float(ref_zp)


@pytest.mark.parametrize("cls", [QGCN, QSAGE])
def test_degree_quant_training_on_a_device(small_graph, devices, cls):
    """Degree-Quant (percentile ranges, protection) trains on the device; the caller's graph
    stays on the CPU, the tracked ranges live with the model."""
    from msgnn_lite.train import fit

    torch.manual_seed(0)
    model = cls(16, 16, 4, bits=4, percentile=99.9, p_min=0.0, p_max=0.2, momentum=0.1)
    res = fit(model, small_graph, epochs=3, device=devices, seed=0, measure_memory=False, progress=False)
    assert res.history["loss"].notna().all() and small_graph.x.device.type == "cpu"
    q = model.convs[0].q_agg
    assert q.hi.device.type == devices.type and bool(q.initialized) and float(q.hi) > 0


def test_int8_timings_copy_the_models_to_the_cpu(small_graph, devices):
    """CPU-only by design, on copies: the caller's models keep their device and mode."""
    from msgnn_lite.models import GCN
    from msgnn_lite.quant import int8_inference_timings

    torch.manual_seed(0)
    fp, qm = GCN(16, 16, 4).to(devices), QGCN(16, 16, 4, bits=8).to(devices)
    qm(small_graph.x.to(devices), small_graph.edge_index.to(devices))  # track the ranges once
    df = int8_inference_timings(fp, qm, small_graph, repeat=1)
    assert (df.seconds > 0).all() and df.test_acc.iloc[:5].between(0, 100).all()
    assert fp.training and qm.training
    assert all(p.device.type == devices.type for p in [*fp.parameters(), *qm.parameters()])


def test_the_qat_grid_adds_a_graph_free_mlp_under_the_same_budget():
    from msgnn_lite.data import load_dataset
    from msgnn_lite.quant import train_qat_grid

    data = load_dataset("csbm:nodes=300,classes=3,features=8,seed=4")
    cfg = {"FP32": None}
    runs, _ = train_qat_grid(data, cfg, [0, 1], epochs=3, device="cpu", mlp=True)
    assert list(runs.model) == ["FP32", "FP32", "MLP (no graph)", "MLP (no graph)"] and list(runs.seed) == [0, 1, 0, 1]
    # the MLP ignores the graph: the same accuracies with every edge removed
    empty = data.clone()
    empty.edge_index = data.edge_index[:, :0]
    runs_empty, _ = train_qat_grid(empty, cfg, [0, 1], epochs=3, device="cpu", mlp=True)
    mlp = lambda r: r[r.model == "MLP (no graph)"].test_acc.tolist()
    assert mlp(runs) == mlp(runs_empty)
    assert "MLP (no graph)" not in set(train_qat_grid(data, cfg, [0], epochs=1, device="cpu")[0].model)
