"""Did it train? Gradient clipping and its record in fit, dead ReLU units, the status rule, the
feature preprocessing, sparse features in the harness, and flagged runs kept out of every mean."""
import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.compare_all import (Budget, add_training_status, compare_all, gap_to_full_batch, prepare_graph,
                                    summarize)
from msgnn_lite.data import make_csbm, normalize_features
from msgnn_lite.diagnostics import (STATUSES, DeadUnitMeter, dead_unit_fraction, loss_rise, majority_rate,
                                    training_status, with_dead_units)
from msgnn_lite.models import GCN, MLP
from msgnn_lite.train import GradNormMonitor, fit, full_batch_step
from msgnn_lite.utils import to_device

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def graph():
    return make_csbm(300, 6, 3, 16, homophily=0.85, seed=2, train_ratio=0.3, val_ratio=0.2)


def _params(model):
    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


@pytest.mark.parametrize("clip", [None, 0.05])
def test_fit_clips_each_step_and_records_the_norm_before_clipping(graph, devices, clip):
    data = to_device(graph, devices)
    torch.manual_seed(0)
    model = GCN(data.num_features, 8, 3, 2, dropout=0.0).to(devices)
    # the gradient of the first step, computed by hand on a copy
    ref = copy.deepcopy(model)
    out = ref(data.x, data.edge_index)
    F.cross_entropy(out[data.train_mask], data.y[data.train_mask]).backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ref.parameters()]))
    before = _params(model)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)  # one step moves the weights by exactly the (clipped) gradient
    res = fit(model, data, epochs=1, optimizer=opt, device=devices, progress=False, measure_memory=False,
              grad_norm=clip)
    moved = torch.linalg.vector_norm(_params(model) - before)
    assert res.history["grad_norm"].iloc[0] == pytest.approx(float(norm), rel=1e-4)
    expected = min(float(norm), clip) if clip is not None else float(norm)
    assert float(moved) == pytest.approx(expected, rel=1e-3)
    assert not opt._optimizer_step_pre_hooks, "fit must remove its hook from the caller's optimizer"


def test_grad_norm_is_validated(graph):
    with pytest.raises(ValueError, match="grad_norm"):
        fit(GCN(16, 8, 3), graph, epochs=1, grad_norm=0.0, progress=False)
    with pytest.raises(ValueError, match="grad_norm"):
        Budget(grad_norm=-1.0)


def test_monitor_keeps_the_largest_norm_of_an_epoch(devices):
    w = torch.nn.Parameter(torch.zeros(3, device=devices))
    model = torch.nn.Module()
    model.w = w
    opt = torch.optim.SGD([w], lr=0.0)
    mon = GradNormMonitor(model, opt)
    for g in ([3.0, 4.0, 0.0], [1.0, 0.0, 0.0]):
        w.grad = torch.tensor(g, device=devices)
        opt.step()
    assert mon.read_and_reset() == pytest.approx(5.0)
    assert math.isnan(mon.read_and_reset())
    mon.remove()


def test_dead_units_counts_units_that_never_fire(graph, devices):
    data = to_device(graph, devices)
    model = GCN(data.num_features, 10, 3, 2, dropout=0.0).to(devices)
    with torch.no_grad():
        model.convs[0].bias[:4] = -1e4  # four units whose pre-activation is negative for every node
        model.convs[0].bias[4:] = 1e4   # six that are positive for every node
    assert dead_unit_fraction(model, lambda: model(data.x, data.edge_index)) == pytest.approx(0.4)
    mlp = MLP(data.num_features, 5, 3).to(devices)
    with torch.no_grad():
        mlp.lins[0].bias[:] = -1e4
    assert dead_unit_fraction(mlp, lambda: mlp(data.x)) == 1.0
    # batched inference: a unit alive in one batch only is alive
    with torch.no_grad():
        model.convs[0].bias[:] = 0.0
        model.convs[0].lin.weight.zero_()
        model.convs[0].bias[0] = 1.0
    with DeadUnitMeter(model) as meter:
        model(data.x, data.edge_index)
    assert meter.fraction() == pytest.approx(0.9)


def test_history_shows_when_units_died(graph):
    model = GCN(graph.num_features, 8, 3, 2)
    res = fit(model, graph, epochs=3, evaluate=with_dead_units(), progress=False, measure_memory=False)
    assert res.history["dead_units"].between(0, 1).all()
    assert {"loss", "grad_norm"} <= set(res.history.columns)


def test_status_rule():
    assert training_status(80.0, best_is_last=False, floor=70.0) == ("ok", "")
    assert training_status(80.0, best_is_last=True, floor=70.0)[0] == "unfinished"
    st, cause = training_status(60.0, best_is_last=False, floor=70.0, dead_units=0.9, rise=2.2)
    assert st == "did not train" and "90% of hidden ReLUs dead" in cause and "2.2x" in cause
    assert training_status(71.0, best_is_last=False, floor=70.0, margin=2.0)[0] == "did not train"
    assert loss_rise([2.5, 5.6, 4.0, 1.0]) == pytest.approx(5.6 / 2.5)
    assert loss_rise([2.0, 1.0]) == 1.0
    with pytest.raises(ValueError, match="val_acc"):
        training_status(float("nan"), best_is_last=False, floor=0.0)


def test_majority_rate(graph):
    y = graph.y[graph.val_mask]
    assert majority_rate(graph) == pytest.approx(100 * torch.bincount(y).max().item() / y.numel())


@pytest.mark.parametrize("how", ["sum", "l2"])
def test_normalize_features_dense_and_csr_agree(graph, devices, how):
    data = to_device(graph, devices)
    data.x = data.x.abs() * (torch.rand_like(data.x) < 0.3)
    data.x[0] = 0.0  # an all-zero row stays zero
    dense = normalize_features(data, how).x
    assert torch.equal(dense[0], torch.zeros_like(dense[0]))
    per_row = dense[1:].sum(1) if how == "sum" else dense[1:].norm(dim=1)
    nonzero = data.x[1:].abs().sum(1) > 0
    assert torch.allclose(per_row[nonzero], torch.ones_like(per_row[nonzero]), atol=1e-5)
    sparse = copy.copy(data)
    sparse.x = data.x.to_sparse_csr()
    assert torch.allclose(normalize_features(sparse, how).x.to_dense(), dense, atol=1e-6)
    once = normalize_features(data, how)
    assert normalize_features(once, how) is once  # normalised once, never twice
    with pytest.raises(ValueError, match="already normalised"):
        normalize_features(once, "l2" if how == "sum" else "sum")
    with pytest.raises(ValueError, match="how must be"):
        normalize_features(data, "row")


def test_auto_follows_the_dataset_name(graph):
    g = copy.copy(graph)
    g.name = "Computers"
    assert normalize_features(g).feature_normalization == "l2"
    g.name = "Cora"
    assert normalize_features(g).feature_normalization == "l2"
    assert normalize_features(graph).feature_normalization == "none"


def test_harness_trains_on_csr_features_with_the_dense_result(graph):
    data = copy.copy(graph)
    data.x = (graph.x > 1.0).float()  # a sparse 0/1 bag of words (under 10% non-zero)
    assert float((data.x != 0).float().mean()) < 0.1
    prepared = prepare_graph(data, Budget(features="none"), "cpu")
    assert prepared.x.layout == torch.sparse_csr
    assert prepare_graph(prepared, Budget(features="none"), "cpu").x is prepared.x
    torch.manual_seed(0)
    a = GCN(data.num_features, 8, 3, 2, dropout=0.0)
    b = copy.deepcopy(a)
    oa, ob = torch.optim.Adam(a.parameters(), lr=0.01), torch.optim.Adam(b.parameters(), lr=0.01)
    for _ in range(3):
        la, lb = full_batch_step(a, data, oa), full_batch_step(b, prepared, ob)
        assert la == pytest.approx(lb, rel=1e-5)


def _fake_runs():
    rows = []
    for m, vals, statuses in [("full batch", [80, 81, 82], ["ok", "ok", "ok"]),
                              ("NeighborLoader", [79, 20, 80], ["ok", "did not train", "unfinished"]),
                              ("GAS", [10, 11, 12], ["did not train"] * 3)]:
        for s, (v, st) in enumerate(zip(vals, statuses)):
            rows.append({"method": m, "family": "x", "seed": s, "lr": 0.01, "budget": "shared", "test_acc": v,
                         "val_acc": v, "epoch_time_s": 1.0, "preprocess_s": 0.0, "inference_s": 0.1,
                         "peak_memory_mb": 1.0, "time_to_target_s": 1.0, "total_to_target_s": 1.0, "status": st})
    return pd.DataFrame(rows)


def test_flagged_runs_are_never_averaged_in():
    runs = _fake_runs()
    t = summarize(runs)
    assert t.loc["NeighborLoader", "test_acc"] == 79 and t.loc["NeighborLoader", "seeds"] == 1
    assert t.loc["NeighborLoader", "flagged"] == "1 did not train, 1 unfinished"
    assert math.isnan(t.loc["GAS", "test_acc"]) and t.loc["GAS", "seeds"] == 0
    assert t.loc["GAS", "flagged"] == "3 did not train"
    gaps = gap_to_full_batch(runs)
    assert gaps.loc["NeighborLoader", "diffs"] == [-1.0] and "GAS" not in gaps.index


def test_compare_all_flags_every_run(graph):
    runs, _ = compare_all(graph, ["full batch", "MLP"], budget=Budget(epochs=4, hidden=8, eval_every=1),
                          seeds=(0,), device="cpu", progress=False)
    assert set(runs["status"]) <= set(STATUSES)
    for col in ("best_epoch", "dead_units", "loss_rise", "grad_norm_max", "floor_val_acc", "cause"):
        assert col in runs
    mlp = runs.loc[runs["method"] == "MLP"].iloc[0]
    fb = runs.loc[runs["method"] == "full batch"].iloc[0]
    assert fb["floor_val_acc"] == pytest.approx(mlp["val_acc"])  # a graph method must beat the MLP
    assert mlp["floor_val_acc"] == pytest.approx(majority_rate(graph) + 2.0)
    # a run whose status is not ok never defines the target
    again = add_training_status(runs.drop(columns=["status", "cause", "floor_val_acc"]), graph)
    assert list(again["status"]) == list(runs["status"])
