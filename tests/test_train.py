
import pytest
import torch
import torch.nn.functional as F

from msgnn_lite.memory import SavedTensorMeter, measure_step, optimizer_state_bytes, parameter_bytes
from msgnn_lite.models import GCN
from msgnn_lite.train import fit
from msgnn_lite.utils import resolve_device, seed_everything


def run(graph, seed=0, **kw):
    seed_everything(seed)
    model = GCN(graph.num_features, 16, graph.num_classes, dropout=0.5)
    return fit(model, graph, epochs=kw.pop("epochs", 30), lr=0.02, progress=False, seed=seed, **kw), model


def test_seeded_cpu_runs_are_identical(small_graph):
    a, ma = run(small_graph)
    b, mb = run(small_graph)
    cols = ["loss", "train_acc", "val_acc", "test_acc", "val_loss"]
    assert a.history[cols].equals(b.history[cols])
    for p, q in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(p, q)


def test_test_accuracy_is_validation_selected(small_graph):
    res, _ = run(small_graph, epochs=40)
    h = res.history
    best = h.loc[h.val_acc == h.val_acc.max()]
    best = best.loc[best.val_loss == best.val_loss.min()].iloc[0]
    assert res.best_epoch == int(best.epoch)
    assert res.test_acc == pytest.approx(float(best.test_acc))
    assert res.max_test_acc == pytest.approx(float(h.test_acc.max()))
    assert res.max_test_acc >= res.test_acc
    assert res.test_acc > 0.5  # learns: 4 balanced classes, chance is 0.25


def test_model_is_left_with_the_best_weights(small_graph):
    res, model = run(small_graph, epochs=25)
    model.eval()
    from msgnn_lite.train import full_batch_evaluate
    assert full_batch_evaluate(model, small_graph)["val_acc"] == pytest.approx(res.best_val_acc)


def test_early_stopping_stops_after_patience(small_graph):
    res, _ = run(small_graph, epochs=500, patience=5)
    h = res.history
    assert len(h) < 500
    assert int(h.epoch.iloc[-1]) - res.best_epoch == 5


def test_history_has_time_and_memory(small_graph):
    res, _ = run(small_graph, epochs=3)
    assert {"epoch", "loss", "epoch_time_s", "peak_mem_mb", "val_acc", "test_acc"} <= set(res.history.columns)
    assert (res.history.epoch_time_s > 0).all() and res.peak_memory_mb > 0
    assert res.memory_kind.startswith("saved_tensors")


def test_empty_or_missing_masks_are_rejected(small_graph):
    bad = small_graph.clone()
    bad.val_mask = torch.zeros_like(bad.val_mask)
    with pytest.raises(ValueError, match="val_mask is empty"):
        run(bad)
    bad = small_graph.clone()
    del bad.test_mask
    with pytest.raises(ValueError, match="no test_mask"):
        run(bad)
    with pytest.raises(ValueError, match="epochs"):
        run(small_graph, epochs=0)


def test_saved_tensor_meter_counts_activations_not_parameters():
    lin = torch.nn.Linear(100, 100)
    x = torch.randn(64, 100, requires_grad=True)
    with SavedTensorMeter(exclude=lin.parameters()) as m:
        y = torch.relu(lin(x))  # saves x (for the weight grad) and the relu output
    assert m.bytes == 2 * 64 * 100 * 4
    y.sum().backward()


def test_sparse_tensors_count_their_stored_entries_not_their_shape():
    x = torch.zeros(1000, 500)
    x[::10, ::10] = 1.0
    xs = x.to_sparse_csr()
    w = torch.randn(500, 8, requires_grad=True)
    with SavedTensorMeter() as m:
        torch.sparse.mm(xs, w).sum()
    nnz = 100 * 50
    assert m.bytes == nnz * 4 + nnz * 8 + 1001 * 8  # values + column ids + row pointers


def test_measure_step_reports_parameters_gradients_and_adam_state(small_graph):
    model = GCN(16, 32, 4)
    opt = torch.optim.Adam(model.parameters())

    def step():
        opt.zero_grad()
        out = model(small_graph.x, small_graph.edge_index)
        F.cross_entropy(out, small_graph.y).backward()
        opt.step()

    _, rep = measure_step(model, step, opt)
    n_params = sum(p.numel() for p in model.parameters())
    assert rep.parameters == parameter_bytes(model) == n_params * 4
    assert rep.gradients == n_params * 4
    assert rep.optimizer == optimizer_state_bytes(opt) >= 2 * n_params * 4  # exp_avg, exp_avg_sq
    # activations: at least the hidden layer's [600, 32] output is saved for backward
    assert rep.activations >= 600 * 32 * 4
    assert rep.total == rep.activations + rep.parameters + rep.gradients + rep.optimizer


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
