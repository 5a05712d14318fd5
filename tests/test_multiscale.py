"""Multiscale training: coarse-to-fine schedule, equivalence with plain training,
the telescoping gradient estimator and the work accounting.

The training tests take the ``devices`` fixture: the graph is on that device, the coarse graphs
and their random draws must be made there, and the properties are those of the CPU run."""
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.models import GCN
from msgnn_lite.multiscale import (
    MultiscaleTrainer,
    Work,
    compare_methods,
    evaluate_full,
    flat_grad,
    forward_work,
    graph_loss,
    multiscale_gradient_step,
    multiscale_loss,
    paper_schedule,
    step_work,
    sub_to_full,
    summarize_runs,
    train_full,
    train_multiscale,
    train_multiscale_gradient,
)
from msgnn_lite.train import fit
from msgnn_lite.utils import seed_everything, to_device


@pytest.fixture(scope="module")
def cpu_graph():
    return make_csbm(120, 5, 3, 8, 0.8, seed=0, feature_signal=1.5, train_ratio=0.3, val_ratio=0.2)


@pytest.fixture
def graph(cpu_graph, devices):
    return to_device(cpu_graph, devices)


def _model(graph, seed=0, **kw):
    seed_everything(seed)
    model = GCN(graph.num_features, 16, graph.num_classes, num_layers=2, dropout=kw.pop("dropout", 0.0), **kw)
    return model.to(graph.x.device)


def _close(devices):
    """Tolerances for comparing two runs: exact up to float rounding on the CPU; a GPU's sparse
    kernels may add in another order."""
    return {} if devices.type == "cpu" else {"rtol": 1e-4, "atol": 1e-4}


def test_paper_schedule():
    assert paper_schedule(3, 10) == [(3, 80), (2, 40), (1, 20), (0, 10)]
    assert paper_schedule(0, 7) == [(0, 7)]


def test_one_level_equals_plain_training(graph, devices):
    """levels=0 (only the fine graph) is plain full-batch training, step for step."""
    plain = fit(_model(graph), graph, epochs=15, lr=0.01, weight_decay=0.0, seed=0, device=devices, progress=False,
                measure_memory=False)
    ms = train_full(_model(graph), graph, epochs=15, lr=0.01, weight_decay=0.0, seed=0, device=devices,
                    progress=False)
    torch.testing.assert_close(torch.tensor(ms.history["loss"].values), torch.tensor(plain.history["loss"].values),
                               **_close(devices))
    assert ms.result.test_acc == pytest.approx(plain.test_acc, abs=0 if devices.type == "cpu" else 0.02)
    assert ms.fine_epochs == pytest.approx(15.0)


def test_ratio_one_coarse_to_fine_equals_plain_training(graph, devices):
    """Coarsening that keeps every node (top-k, ratio 1) makes every level the fine graph."""
    plain = fit(_model(graph, dropout=0.5), graph, epochs=21, lr=0.01, weight_decay=0.0, seed=1, device=devices,
                progress=False, measure_memory=False)
    ms = train_multiscale(_model(graph, dropout=0.5), graph, levels=2, epochs=3, method="topk", ratio=1.0,
                          lr=0.01, seed=1, device=devices, progress=False)
    assert len(ms.history) == 21 and list(ms.history["level"]) == [2] * 12 + [1] * 6 + [0] * 3
    torch.testing.assert_close(torch.tensor(ms.history["loss"].values), torch.tensor(plain.history["loss"].values),
                               rtol=1e-4, atol=1e-5 if devices.type == "cpu" else 1e-4)


def test_coarse_to_fine_levels_sizes_and_work(cpu_graph, devices):
    ms = train_multiscale(_model(cpu_graph), cpu_graph, levels=2, epochs=4, method="random", lr=0.01, seed=0,
                          device=devices, progress=False)
    assert cpu_graph.x.device.type == "cpu"  # trained on a copy: the caller's graph was not moved
    h = ms.history
    assert list(h["level"]) == [2] * 16 + [1] * 8 + [0] * 4
    assert set(h.loc[h.level == 2, "nodes"]) == {30} and set(h.loc[h.level == 1, "nodes"]) == {60}
    assert set(h.loc[h.level == 0, "nodes"]) == {120}
    # work is monotone and the fine phase adds exactly one fine-epoch per epoch
    fe = h["fine_epochs"].values
    assert (fe[1:] >= fe[:-1]).all()
    assert fe[-1] - fe[-5] == pytest.approx(4.0)
    assert fe[15] < 16 * 0.5  # a quarter-size graph costs well under half a fine epoch
    assert 0 <= ms.result.test_acc <= 1 and ms.result.best_epoch >= 1


def test_random_coarsening_resamples_each_epoch(graph, devices):
    trainer = MultiscaleTrainer(graph, [(1, 3)], method="random", seed=0)
    assert trainer.generator.device.type == devices.type  # draws are made on the graph's device
    graphs = [trainer.graph_for(graph, 1, e) for e in range(3)]
    for g in graphs:
        assert g.node_ids.numel() == 60 and g.node_ids.unique().numel() == 60
        assert g.node_ids.device.type == g.edge_index.device.type == g.x.device.type == devices.type
    ids = [g.node_ids for g in graphs]
    assert not torch.equal(ids[0], ids[1]) or not torch.equal(ids[1], ids[2])
    again = MultiscaleTrainer(graph, [(1, 3)], method="random", seed=0)  # the same seed: the same draws
    assert all(torch.equal(i, again.graph_for(graph, 1, e).node_ids) for e, i in enumerate(ids))
    fixed = MultiscaleTrainer(graph, [(1, 3)], method="topk", seed=0)
    assert torch.equal(fixed.graph_for(graph, 1, 0).node_ids, fixed.graph_for(graph, 1, 1).node_ids)


def test_a_coarse_graph_without_training_nodes_skips_its_step(cpu_graph, devices):
    g = cpu_graph.clone()
    g.train_mask = torch.zeros(120, dtype=torch.bool)
    g.train_mask[5] = True  # one labelled node: most coarse graphs lose it
    g = to_device(g, devices)
    ms = train_multiscale(_model(g), g, levels=2, epochs=3, method="random", lr=0.01, seed=0, device=devices,
                          progress=False)
    h = ms.history
    skipped = h["loss"] == 0.0
    assert skipped.any() and len(h) == 21 and h["loss"].notna().all()  # not a diverged run
    assert (h["fine_epochs"].diff().fillna(h["fine_epochs"].iloc[0])[skipped] == 0).all()  # no work counted


@pytest.mark.parametrize("method", ["random", "subgraph"])
def test_resample_every_reuses_a_draw_for_that_many_epochs(graph, method):
    trainer = MultiscaleTrainer(graph, [(1, 7), (0, 1)], method=method, seed=0, resample_every=3)
    model = _model(graph)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    drawn = []
    for _ in range(7):
        trainer(model, graph, opt)
        drawn.append(trainer._drawn[(1, method)][1].node_ids)
    same = [torch.equal(drawn[i], drawn[i + 1]) for i in range(6)]
    assert same == [True, True, False, True, True, False]  # new draws at epochs 0, 3 and 6
    assert not torch.equal(drawn[0], drawn[3])
    assert [r["level"] for r in trainer.records] == [1] * 7
    with pytest.raises(ValueError, match="resample_every"):
        MultiscaleTrainer(graph, [(1, 2)], resample_every=0)


def test_sub_to_full_runs_on_subgraphs(graph, devices):
    ms = sub_to_full(_model(graph), graph, levels=1, epochs=3, lr=0.01, device=devices, progress=False)
    assert ms.method == "subgraph" and list(ms.history["level"]) == [1] * 6 + [0] * 3
    assert set(ms.history["nodes"]) == {60, 120}


def test_evaluate_full_reads_plain_floats(graph):
    res = evaluate_full(_model(graph), graph)
    assert set(res) == {"train_acc", "val_acc", "test_acc", "val_loss"}
    assert all(type(v) is float for v in res.values()) and 0 <= res["val_acc"] <= 1


def _grad(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return flat_grad(model).clone()


def test_telescoping_with_no_levels_is_the_plain_gradient(graph):
    model = _model(graph)
    model.eval()
    exact = _grad(model, graph_loss(model, graph)[0])
    loss, work = multiscale_loss(model, graph, levels=0)
    torch.testing.assert_close(_grad(model, loss), exact)
    assert work.total == pytest.approx(graph_loss(model, graph)[1].total)


def test_telescoping_monte_carlo_mean_approaches_full_gradient(graph, devices):
    model = _model(graph)
    model.eval()
    exact = _grad(model, graph_loss(model, graph)[0])
    gen = torch.Generator(device=devices).manual_seed(0)
    samples = torch.stack([_grad(model, multiscale_loss(model, graph, levels=2, batch_ratio=1.0, generator=gen)[0])
                           for _ in range(300)])
    single = (samples - exact).norm(dim=1).mean() / exact.norm()
    mean_err = (samples.mean(0) - exact).norm() / exact.norm()
    assert mean_err < 0.25 * single  # noise averages out: unbiased up to Monte Carlo error
    assert mean_err < 0.1
    # the coarse-only term on its own is biased: its mean stays away from the exact gradient
    gen = torch.Generator(device=devices).manual_seed(0)
    coarse = torch.stack([_grad(model, multiscale_loss(model, graph, levels=2, form="coarse", generator=gen)[0])
                          for _ in range(300)])
    assert (coarse.mean(0) - exact).norm() / exact.norm() > 2 * mean_err


def test_gradient_study_tells_bias_from_monte_carlo_noise(cpu_graph):
    """``bias_over_noise`` is near 1 for an unbiased estimator (its bias is only the draws' noise)
    and well above it for the coarse-only gradient, which is biased."""
    from msgnn_lite.multiscale import gradient_study

    model = _model(cpu_graph)
    tab = gradient_study(model, cpu_graph, {"tele": dict(levels=1, batch_ratio=1.0),
                                            "coarse": dict(levels=1, form="coarse")}, samples=60, seed=0).set_index("estimator")
    assert tab.loc["tele", "mc_noise"] == pytest.approx((tab.loc["tele", "variance"] / 60) ** 0.5)
    assert tab.loc["tele", "bias_over_noise"] < 1.6
    assert tab.loc["coarse", "bias_over_noise"] > 2 * tab.loc["tele", "bias_over_noise"]


def test_abs_form_flips_the_correction_sign(graph):
    model = _model(graph)
    model.eval()
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)  # CPU ones, on any device
    tele, _ = multiscale_loss(model, graph, levels=1, form="telescoping", generator=gen_a)
    absf, _ = multiscale_loss(model, graph, levels=1, form="abs", generator=gen_b)
    # same draws: the two losses agree iff the fine-minus-coarse difference is >= 0
    gen_c = torch.Generator().manual_seed(5)
    from msgnn_lite.coarsening import coarsen_hierarchy
    coarsest = coarsen_hierarchy(graph, 1, generator=gen_c)[-1]
    base = graph_loss(model, coarsest)[0]
    diff = tele - base
    torch.testing.assert_close(absf - base, diff.abs())


def test_work_counts(cpu_graph):
    graph = cpu_graph
    model = GCN(8, 16, 3, num_layers=2)
    w = forward_work(model, 100, 600)
    # layer 1: 100*8*16 dense, propagate the narrower width (8); layer 2: 100*16*3, width 3
    assert w.dense_macs == 100 * 8 * 16 + 100 * 16 * 3
    assert w.edge_ops == 600 * 8 + 600 * 3
    assert step_work(model, 100, 600).total == pytest.approx(3 * w.total)
    assert (Work(1, 2) + Work(3, 4)).total == 10


def test_bad_arguments_raise(cpu_graph):
    graph = cpu_graph
    with pytest.raises(ValueError, match="ratio"):
        train_multiscale(_model(graph), graph, levels=1, epochs=2, ratio=1.5, progress=False)
    with pytest.raises(ValueError, match="k must be"):
        train_multiscale(_model(graph), graph, levels=1, epochs=2, k=0, progress=False)
    with pytest.raises(ValueError, match="more than the graph allows"):
        train_multiscale(_model(graph), graph, levels=9, epochs=1, progress=False)
    with pytest.raises(ValueError, match="method"):
        train_multiscale(_model(graph), graph, levels=1, epochs=2, method="graclus", progress=False)
    with pytest.raises(ValueError, match="form"):
        multiscale_loss(_model(graph), graph, levels=1, form="square")
    with pytest.raises(ValueError, match="batch_ratio"):
        multiscale_loss(_model(graph), graph, levels=1, batch_ratio=0.0)


def test_compare_methods_target_is_a_fraction_of_the_baseline_best(cpu_graph, devices):
    graph = cpu_graph  # a CPU graph: compare_methods moves a copy to the device once
    runs, hist = compare_methods(graph, lambda: _model(graph), [{"method": "random", "levels": 1}], epochs=6,
                                 lr=1e-2, eval_every=1, target_fraction=0.9, progress=False, device=devices)
    assert graph.x.device.type == "cpu"  # the caller's graph stays where it was
    base = runs[runs.method == "full graph"].iloc[0]
    assert base.target_val_acc == pytest.approx(0.9 * base.val_acc)
    assert base.speedup_work == pytest.approx(1.0) and base.speedup_time == pytest.approx(1.0)
    h = hist[("full graph", 0, 0)]
    hv = h.dropna(subset=["val_acc"]).reset_index(drop=True)
    first = hv.index[hv.val_acc >= base.target_val_acc - 1e-12][0]
    # the one target rule: interpolated between the evaluation before the hit and the hit
    assert base.fine_epochs_to_target <= hv.loc[first, "fine_epochs"] + 1e-9
    assert first == 0 or base.fine_epochs_to_target >= hv.loc[first - 1, "fine_epochs"] - 1e-9
    assert {"val_acc", "reached_target"} <= set(summarize_runs(runs).columns)
    with pytest.raises(ValueError, match="target_fraction"):
        compare_methods(graph, lambda: _model(graph), [], epochs=2, target_fraction=1.5, progress=False)


def test_multiscale_gradient_training_step_is_unbiased(graph):
    # one step of the trainer with SGD(lr=1) moves the weights by minus its gradient estimate;
    # over many steps from the same weights the mean move is the exact full-graph gradient
    model = _model(graph)  # no dropout, no BatchNorm: train and eval modes agree
    model.eval()
    exact = _grad(model, graph_loss(model, graph)[0])
    start = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    step = multiscale_gradient_step(levels=2, batch_ratio=1.0, seed=0)
    moves = []
    for _ in range(300):
        loss = step(model, graph, opt)
        assert loss == loss  # finite
        moves.append(torch.cat([(s - p.detach()).reshape(-1) for s, p in zip(start, model.parameters())]))
        with torch.no_grad():
            for s, p in zip(start, model.parameters()):
                p.copy_(s)
    moves = torch.stack(moves)
    single = (moves - exact).norm(dim=1).mean() / exact.norm()
    mean_err = (moves.mean(0) - exact).norm() / exact.norm()
    assert single > 0.1  # a single step is noisy ...
    assert mean_err < 0.25 * single and mean_err < 0.1  # ... but unbiased up to Monte Carlo error
    assert len(step.work) == 300 and all(w.total > 0 for w in step.work)


def test_train_multiscale_gradient_in_compare_methods(graph, devices):
    runs, hist = compare_methods(graph, lambda: _model(graph),
                                 [{"method": "gradient", "levels": 1, "batch_ratio": 0.5},
                                  {"method": "random", "levels": 1, "k": 2}],
                                 epochs=8, lr=1e-2, eval_every=2, progress=False, device=devices)
    assert list(runs.method) == ["full graph", "gradient", "random k=2"]
    g = hist[("gradient", 1, 0)]
    assert len(g) == 8 and g["val_acc"].notna().sum() == 4  # evaluated every 2 steps, like the baseline
    assert bool((g["fine_epochs"].diff().dropna() > 0).all())
    # a step: the coarse graph (1/2) + a half-size fine batch and its coarsening (1/2 + 1/4), fewer
    # edges per node on the coarse graphs -- between 1/2 and 5/4 of a full-graph step
    assert 0.5 * 8 < g["fine_epochs"].iloc[-1] < 1.25 * 8
    res = train_multiscale_gradient(_model(graph), graph, levels=1, epochs=3, lr=1e-2, progress=False, device=devices)
    assert res.result.epochs_run == 3 and res.method == "gradient (telescoping)"


def test_multiscale_gradient_step_draws_on_the_graphs_device(graph, devices):
    # a seeded CPU generator drives the draws on any device: the same seed repeats a step exactly
    losses = []
    for seed in (3, 3, 4):
        model = _model(graph)
        step = multiscale_gradient_step(levels=1, batch_ratio=0.5, seed=seed)
        losses.append(step(model, graph, torch.optim.SGD(model.parameters(), lr=0.1)))
        assert step.generator.device.type == "cpu" and step._device_generator.device.type == devices.type
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) and losses[2] != pytest.approx(losses[0], rel=1e-6)


def test_coarse_graph_costs_run_on_the_requested_device(devices):
    from msgnn_lite.bench.multiscale import coarse_graph_costs
    from msgnn_lite.data import make_local_csbm

    data = make_local_csbm(2000, 10, num_classes=10, num_features=32, seed=0)
    costs = coarse_graph_costs(data, rows=(("random", 1, 1), ("subgraph", 2, 1), ("random", 1, 2)), device=devices)
    assert data.x.device.type == "cpu"  # measured on a copy
    assert list(costs["nodes"]) == [2000, 1000, 500, 1000]
    assert (costs[["coarsen_s", "operator_s", "step_s"]] >= 0).all().all() and (costs["step_s"] > 0).all()
    assert costs["edges"].iloc[3] > costs["edges"].iloc[1]  # k = 2 joins nodes two hops apart
