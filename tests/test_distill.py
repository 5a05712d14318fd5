"""Distillation: the GLNN loss by hand, lambda = 1 is plain CE, training lowers the loss, the
inductive split hides the held-out nodes from the teacher, LSP/GSP properties, latency table;
everything on the data's device, the caller's graph left where it is."""
import math

import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.distill import (distill_step, distillation_loss, forward_with_hidden, glnn_experiment, gsp_loss,
                                inductive_split, inference_latency, kd_loss, lsp_loss, representation_step,
                                teacher_logits, train_student)
from msgnn_lite.models import MLP, SAGE
from msgnn_lite.train import fit
from msgnn_lite.utils import seed_everything, to_device


pytestmark = pytest.mark.usefixtures("one_thread")


def test_kd_loss_matches_hand_computation_with_temperature():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    for T in (1.0, 2.0, 4.0):
        total = 0.0
        for i in range(2):
            ps = [math.exp(v / T) for v in s[i].tolist()]
            pt = [math.exp(v / T) for v in t[i].tolist()]
            ps = [p / sum(ps) for p in ps]
            pt = [p / sum(pt) for p in pt]
            total += sum(a * math.log(a / b) for a, b in zip(pt, ps))  # KL(teacher || student)
        expected = T * T * total / 2  # T^2 scaling, mean over the 2 rows
        assert kd_loss(s, t, T).item() == pytest.approx(expected, rel=1e-5)


def test_distillation_loss_weights_ce_on_train_and_kl_on_all_nodes():
    torch.manual_seed(0)
    s, t = torch.randn(5, 3), torch.randn(5, 3)
    y = torch.tensor([0, 2, 1, 1, 0])
    train = torch.tensor([True, False, True, False, False])
    lam, T = 0.3, 2.0
    ce = F.cross_entropy(s[train], y[train])
    kl = sum(float((F.softmax(t[i] / T, 0) * (F.log_softmax(t[i] / T, 0) - F.log_softmax(s[i] / T, 0))).sum())
             for i in range(5)) / 5
    expected = lam * float(ce) + (1 - lam) * T * T * kl
    assert float(distillation_loss(s, t, y, train, lam, T)) == pytest.approx(expected, rel=1e-5)
    # lambda = 1 is plain cross-entropy on the training nodes; the teacher is ignored (may be None)
    assert float(distillation_loss(s, None, y, train, 1.0, T)) == pytest.approx(float(ce), rel=1e-6)
    assert float(distillation_loss(s, t * 100, y, train, 1.0)) == pytest.approx(float(ce), rel=1e-6)
    # lambda = 0 ignores the labels entirely; identical logits give zero loss
    assert float(distillation_loss(t, t, torch.zeros(5, dtype=torch.long), train, 0.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kwargs, name", [({"temperature": 0.0}, "temperature"), ({"temperature": -1.0}, "temperature"),
                                          ({"temperature": float("inf")}, "temperature"), ({"lam": -0.1}, "lam"),
                                          ({"lam": 1.5}, "lam")])
def test_bad_arguments_raise_naming_the_argument(kwargs, name):
    s = torch.randn(4, 3)
    mask = torch.tensor([True, False, True, False])
    with pytest.raises(ValueError, match=name):
        distillation_loss(s, s, torch.zeros(4, dtype=torch.long), mask, **kwargs)
    with pytest.raises(ValueError, match=name):
        distill_step(**kwargs)
    with pytest.raises(ValueError, match="teacher_logits"):
        distillation_loss(s, None, torch.zeros(4, dtype=torch.long), mask, lam=0.5)


def test_lambda_one_step_equals_plain_supervised_step(small_graph):
    """With lam = 1, a distillation step is exactly a cross-entropy step on the training nodes."""
    from msgnn_lite.train import full_batch_step

    d = small_graph.clone()
    d.teacher_logits = torch.randn(d.num_nodes, 4)
    models = []
    for step in (distill_step(lam=1.0, temperature=3.0), full_batch_step):
        seed_everything(0)
        m = MLP(16, 16, 4, dropout=0.0)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        losses = [step(m, d, opt) for _ in range(3)]
        models.append((m, losses))
    assert models[0][1] == pytest.approx(models[1][1], rel=1e-6)
    for a, b in zip(models[0][0].parameters(), models[1][0].parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_training_decreases_distillation_loss_and_student_follows_teacher(small_graph):
    d = small_graph
    seed_everything(0)
    teacher = SAGE(16, 32, 4, dropout=0.0)
    fit(teacher, d, epochs=30, seed=0, measure_memory=False, progress=False, device="cpu")
    z = teacher_logits(teacher, d)
    seed_everything(0)
    student = MLP(16, 32, 4, dropout=0.0)
    with torch.no_grad():
        before = float(distillation_loss(student(d.x), z, d.y, d.train_mask, 0.0, 2.0))
    res = train_student(student, d, z, lam=0.0, temperature=2.0, epochs=60, lr=0.01, weight_decay=0.0, seed=0,
                        progress=False, device="cpu")
    loss = res.history["loss"]
    assert loss.iloc[-1] < 0.5 * loss.iloc[0]
    student.eval()
    with torch.no_grad():
        after = float(distillation_loss(student(d.x), z, d.y, d.train_mask, 0.0, 2.0))
    assert after < 0.5 * before
    # the distilled student follows the teacher more closely than one trained on the labels alone
    seed_everything(0)
    plain = MLP(16, 32, 4, dropout=0.0)
    train_student(plain, d, z, lam=1.0, epochs=60, lr=0.01, weight_decay=0.0, seed=0, progress=False, device="cpu")
    plain.eval()
    with torch.no_grad():
        agree = float((student(d.x).argmax(1) == z.argmax(1)).float().mean())
        agree_plain = float((plain(d.x).argmax(1) == z.argmax(1)).float().mean())
    assert agree > agree_plain + 0.05


def test_inductive_split_hides_held_out_nodes_from_the_teacher(small_graph):
    d = small_graph
    sp = inductive_split(d, rate=0.2, seed=1)
    n_test = int(d.test_mask.sum())
    assert sp.ind_ids.numel() == int(n_test * 0.2)
    assert bool(d.test_mask[sp.ind_ids].all())  # only test nodes are held out
    assert set(sp.obs_ids.tolist()).isdisjoint(sp.ind_ids.tolist())
    assert sp.obs_ids.numel() + sp.ind_ids.numel() == d.num_nodes
    obs = sp.observed
    assert obs.num_nodes == sp.obs_ids.numel() and torch.equal(obs.x, d.x[sp.obs_ids])
    assert int(obs.train_mask.sum()) == int(d.train_mask.sum()) and int(obs.val_mask.sum()) == int(d.val_mask.sum())
    # every observed edge is a real edge between observed nodes ...
    glob = sp.obs_ids[obs.edge_index]
    real = set(map(tuple, d.edge_index.t().tolist()))
    assert set(map(tuple, glob.t().tolist())) <= real
    # ... and exactly the edges that touch no held-out node: all of the held-out nodes' edges are gone
    held = torch.zeros(d.num_nodes, dtype=torch.bool)
    held[sp.ind_ids] = True
    keep = ~(held[d.edge_index[0]] | held[d.edge_index[1]])
    assert obs.edge_index.size(1) == int(keep.sum())
    assert bool(held[d.edge_index].any())  # (the check is not vacuous)
    # a teacher trained on the observed graph cannot depend on the held-out nodes: changing their
    # features leaves its soft labels unchanged
    seed_everything(0)
    teacher = SAGE(16, 16, 4)
    fit(teacher, obs, epochs=5, seed=0, measure_memory=False, progress=False, device="cpu")
    z = teacher_logits(teacher, obs)
    d2 = d.clone()
    d2.x[sp.ind_ids] += 100.0
    assert torch.allclose(teacher_logits(teacher, inductive_split(d2, rate=0.2, seed=1).observed), z)
    assert torch.equal(sp.test_tran_mask | sp.test_ind_mask, d.test_mask)
    with pytest.raises(ValueError, match="rate"):
        inductive_split(d, rate=1.0)


def test_representation_losses():
    torch.manual_seed(0)
    h = torch.randn(30, 8)
    edge_index = torch.randint(0, 30, (2, 120))
    assert float(gsp_loss(h, h, max_nodes=None)) == pytest.approx(0.0, abs=1e-7)
    assert float(lsp_loss(h, h, edge_index)) == pytest.approx(0.0, abs=1e-6)
    # cosine geometry: invariant to scaling each row, and dimensions may differ (an orthogonal lift)
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    lifted = torch.cat([h, torch.zeros(30, 8)], 1) @ q
    assert float(gsp_loss(lifted * 3.0, h, max_nodes=None)) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(30, 8)
    assert float(gsp_loss(other, h, max_nodes=None)) > 0.01 and float(lsp_loss(other, h, edge_index)) > 0.01
    # GSP by hand on 3 rows
    a, b = torch.randn(3, 4), torch.randn(3, 5)
    ca = F.normalize(a, dim=1) @ F.normalize(a, dim=1).t()
    cb = F.normalize(b, dim=1) @ F.normalize(b, dim=1).t()
    assert float(gsp_loss(a, b, max_nodes=None)) == pytest.approx(float(((ca - cb) ** 2).mean()), rel=1e-5)


def test_forward_with_hidden_returns_the_models_own_logits(small_graph):
    seed_everything(0)
    m = SAGE(16, 12, 4, num_layers=3).eval()
    logits, hidden = forward_with_hidden(m, small_graph.x, small_graph.edge_index)
    assert torch.equal(logits, m(small_graph.x, small_graph.edge_index)) and hidden.shape == (600, 12)
    with pytest.raises(TypeError):
        forward_with_hidden(MLP(16, 8, 4), small_graph.x, None)


def test_inference_latency_table(small_graph):
    seed_everything(0)
    gnn, mlp = SAGE(16, 8, 4), MLP(16, 8, 4)
    df = inference_latency(gnn, mlp, small_graph, query_sizes=(1, 20), repeat=1)
    assert list(df["query_nodes"]) == [1, 1, 20, 20]
    gnn_rows = df[df.model.str.startswith("GNN")]
    # a 2-hop full neighbourhood touches more nodes than the queries themselves
    assert (gnn_rows.nodes_touched > gnn_rows.query_nodes).all()
    assert (df.latency_ms > 0).all()


# --------------------------------------------------------------------------- devices
def _on(dev, *tensors):
    return all(t.device.type == dev.type for t in tensors)


def test_inductive_split_on_a_device_is_the_cpu_split(small_graph, devices):
    """The split is drawn on the host (one seed, one split on every device) and every tensor
    of it comes back on the data's device."""
    ref = inductive_split(small_graph, rate=0.2, seed=1)
    sp = inductive_split(to_device(small_graph, devices), rate=0.2, seed=1)
    obs = sp.observed
    assert _on(devices, sp.obs_ids, sp.ind_ids, sp.test_tran_mask, sp.test_ind_mask, obs.x, obs.edge_index, obs.y)
    for a, b in [(sp.obs_ids, ref.obs_ids), (sp.ind_ids, ref.ind_ids), (obs.edge_index, ref.observed.edge_index),
                 (sp.test_ind_mask, ref.test_ind_mask), (obs.train_mask, ref.observed.train_mask)]:
        assert torch.equal(a.cpu(), b)


def test_gsp_subsets_are_drawn_on_the_generators_device(devices):
    torch.manual_seed(0)
    s, t = torch.randn(40, 6, device=devices), torch.randn(40, 3, device=devices)
    for gen in (torch.Generator(device=devices).manual_seed(1), torch.Generator().manual_seed(1), None):
        loss = gsp_loss(s, t, max_nodes=8, generator=gen)
        assert loss.device.type == devices.type and float(loss) > 0
    # the subset is the generator's randperm: the same seed, the same loss
    a = gsp_loss(s, t, max_nodes=8, generator=torch.Generator(device=devices).manual_seed(2))
    b = gsp_loss(s, t, max_nodes=8, generator=torch.Generator(device=devices).manual_seed(2))
    assert torch.equal(a, b)
    lsp = lsp_loss(s, t, torch.randint(0, 40, (2, 100), generator=torch.Generator().manual_seed(3)).to(devices))
    assert lsp.device.type == devices.type


@pytest.mark.parametrize("structure", [None, "lsp", "gsp"])
def test_representation_step_on_a_device(small_graph, devices, structure):
    """A GNN student trained on a device with a seeded CPU generator (converted to the device at
    the first step); on the CPU the generator is used as it is, so GSP's subsets are its stream."""
    d = to_device(small_graph, devices)
    seed_everything(0)
    teacher = SAGE(16, 12, 4, num_layers=2).to(devices).eval()
    with torch.no_grad():
        d.teacher_logits, d.teacher_hidden = forward_with_hidden(teacher, d.x, d.edge_index)
    losses = []
    for _ in range(2):
        seed_everything(0)
        student = SAGE(16, 8, 4, num_layers=2, dropout=0.0).to(devices)
        opt = torch.optim.SGD(student.parameters(), lr=0.05)
        step = representation_step(structure, beta=1.0, lam=0.5, max_nodes=64,
                                   generator=torch.Generator().manual_seed(0))
        losses.append([step(student, d, opt) for _ in range(3)])
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses[0])
    if devices.type == "cpu":
        assert losses[0] == losses[1]


def test_teacher_logits_run_on_the_models_device(small_graph, devices):
    seed_everything(0)
    model = SAGE(16, 8, 4).to(devices)
    z = teacher_logits(model, small_graph)  # CPU data, model on the device: a copy of the data moves
    assert z.device.type == devices.type and small_graph.x.device.type == "cpu"
    assert torch.allclose(z, teacher_logits(model, to_device(small_graph, devices)))


def test_glnn_experiment_on_a_device_leaves_the_callers_data(small_graph, devices):
    """glnn_experiment moves a copy of the data once; teacher logits, the split and the
    evaluations then all happen on the device."""
    runs = glnn_experiment(small_graph, (0,), hidden=8, epochs=2, patience=None, device=devices, split="given")
    assert len(runs) == 3 * 4 and runs.acc.between(0, 100).all()
    assert small_graph.x.device.type == "cpu" and small_graph.edge_index.device.type == "cpu"


def test_inference_latency_on_a_device(small_graph, devices):
    seed_everything(0)
    gnn, mlp = SAGE(16, 8, 4).to(devices), MLP(16, 8, 4).to(devices)
    df = inference_latency(gnn, mlp, to_device(small_graph, devices), query_sizes=(1, 20), repeat=1)
    assert list(df["query_nodes"]) == [1, 1, 20, 20] and (df.latency_ms > 0).all()


def test_representation_experiment_teacher_choice(small_graph):
    """The teacher's model and learning rate are arguments; a bad choice is refused by name; the rows carry
    the validation-selected epoch that shows an early-peaking teacher."""
    from msgnn_lite.distill import representation_experiment

    out = representation_experiment(small_graph, seeds=(0,), variants={}, teacher_model="sage", teacher_lr=0.005,
                                    epochs=3, patience=None)
    assert out.model.tolist() == ["teacher (SAGE 3x256)"] and 1 <= int(out.best_epoch.iloc[0]) <= 3
    with pytest.raises(ValueError, match="teacher_model"):
        representation_experiment(small_graph, teacher_model="gat", epochs=1)
    with pytest.raises(ValueError, match="teacher_lr"):
        representation_experiment(small_graph, teacher_lr=0.0, epochs=1)
