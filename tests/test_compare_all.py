"""Notebook 12's machinery: every method under one budget, the report's verdicts, the
summary's run ids, and papermill seeing every notebook parameter."""
import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from msgnn_lite.compare_all import (METHODS, MINIBATCH_METHODS, RECIPES, Budget, budget_rows, compare_all, pareto_front,
                                    run_method, summarize, time_to_target)
from msgnn_lite.data import make_csbm
from msgnn_lite.report import render_report, render_summary, split_by_run
from msgnn_lite.results import (Claim, current_run_id, interval95, load_results, record_results, sanity_floor, verdict,
                                verdict_kind)

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return make_csbm(240, 6, 3, 8, homophily=0.85, seed=1, train_ratio=0.3, val_ratio=0.2)


@pytest.fixture(scope="module")
def compared(tiny, tmp_path_factory):
    import os

    old = os.environ.get("MSGNN_CACHE")
    os.environ["MSGNN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return compare_all(tiny, budget=Budget(epochs=4, hidden=16, num_batches=2, eval_every=1, deep_layers=2),
                           seeds=(0, 1), device="cpu", progress=False)
    finally:
        if old is None:
            os.environ.pop("MSGNN_CACHE")
        else:
            os.environ["MSGNN_CACHE"] = old


def test_compare_runs_every_method_once_per_seed(compared):
    runs, curves = compared
    assert sorted(runs["method"].unique()) == sorted(METHODS)
    assert len(runs) == 2 * len(METHODS)
    assert set(curves) == {(m, "common" if m in MINIBATCH_METHODS else "shared", s) for m in METHODS for s in (0, 1)}
    for col in ("test_acc", "val_acc"):
        assert runs[col].between(0, 100).all(), col
    for col in ("epoch_time_s", "inference_s", "peak_memory_mb"):
        assert (runs[col] > 0).all(), col
    assert (runs["preprocess_s"] >= 0).all()
    # the target is full batch's mean best validation accuracy over the runs that trained, scaled
    fb = runs.loc[runs["method"] == "full batch"]
    ok = fb.loc[fb["status"] == "ok", "val_acc"]
    assert runs.attrs["target_val_acc"] == pytest.approx(0.97 * (ok.mean() if len(ok) else fb["val_acc"].mean()))


def test_time_to_target_reads_the_curve(compared):
    runs, curves = compared
    target = runs.attrs["target_val_acc"]
    for r in runs.itertuples():
        c = curves[(r.method, r.budget, r.seed)]
        hit = c[c["val_acc"] >= target]
        if len(hit):  # between the evaluation before the first hit and the first hit
            i = hit.index[0]
            assert r.time_to_target_s <= hit["train_time_s"].iloc[0] + 1e-12
            assert i == 0 or r.time_to_target_s >= c["train_time_s"].iloc[i - 1]
            assert r.total_to_target_s == pytest.approx(r.time_to_target_s + r.preprocess_s)
        else:
            assert math.isnan(r.time_to_target_s)
        assert c["train_time_s"].is_monotonic_increasing


def test_validation_selected_accuracy_matches_the_curve(compared):
    runs, curves = compared
    for r in runs.itertuples():
        if r.method in ("C&S",):  # its last point is the smoothed prediction
            continue
        c = curves[(r.method, r.budget, r.seed)]
        assert r.val_acc == pytest.approx(c["val_acc"].max())


def test_summary_and_pareto(compared):
    runs, _ = compared
    table = summarize(runs)
    assert list(table.index) == list(dict.fromkeys(runs["method"]))
    # every run is either averaged in (seeds) or flagged with its status, never both
    for m, r in table.iterrows():
        flagged = runs[(runs["method"] == m) & (runs["status"] != "ok")]
        assert r["seeds"] + len(flagged) == 2, m
        assert (r["flagged"] == "") == flagged.empty, m
    sgc = runs[(runs["method"] == "SGC") & (runs["status"] == "ok")]["test_acc"]
    if len(sgc):
        assert table.loc["SGC", "test_acc"] == pytest.approx(sgc.mean())
    if len(sgc) > 1:
        assert table.loc["SGC", "test_acc_std"] == pytest.approx(sgc.std(ddof=1))
    t = pd.DataFrame({"cost": [1.0, 2.0, 3.0, 0.5, float("nan")], "test_acc": [70, 80, 75, 60, 99]},
                     index=list("abcde"))
    assert pareto_front(t, "cost") == ["d", "a", "b"]


def test_target_rule_interpolates_between_evaluations():
    c = pd.DataFrame({"train_time_s": [1.0, 2.0, 3.0, 4.0], "val_acc": [50.0, 60.0, 80.0, 70.0]})
    assert time_to_target(c, 70.0) == pytest.approx(2.5)  # halfway from 60 (t=2) to 80 (t=3)
    assert time_to_target(c, 80.0) == pytest.approx(3.0)
    assert time_to_target(c, 40.0) == pytest.approx(1.0)  # met at the first evaluation
    assert math.isnan(time_to_target(c, 81.0))
    # a finer evaluation grid on the same linear curve gives the same answer
    fine = pd.DataFrame({"train_time_s": [0.5 * i for i in range(1, 9)], "val_acc": [10.0 * i for i in range(1, 9)]})
    coarse = fine.iloc[1::2].reset_index(drop=True)
    assert time_to_target(fine, 55.0) == pytest.approx(time_to_target(coarse, 55.0))


def test_recipe_and_common_budgets_and_the_lr_grid(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path))
    methods = ["full batch", "Cluster-GCN", "GAS", "SGC"]
    runs, curves = compare_all(tiny, methods, budget=Budget(epochs=3, hidden=8, num_batches=2, eval_every=1),
                               seeds=(0, 1), budgets=("recipe", "common"), lrs=(0.01, 0.05), device="cpu",
                               progress=False)
    grid = pd.DataFrame(runs.attrs["grid"])
    # every method ran every learning rate for every seed; mini-batch methods once per budget
    assert len(grid) == (2 * 2 + 2 * 2) * 2 + (2 * 2) * 2
    for (m, bud), g in runs.groupby(["method", "budget"]):
        assert g["lr"].nunique() == 1 and len(g) == 2
        kept = g["lr"].iloc[0]
        means = grid[(grid.method == m) & (grid.budget == bud)].groupby("lr")["val_acc"].mean()
        assert means[kept] == means.max()  # the kept rate has the best mean validation accuracy
    assert set(runs.loc[runs.method.isin(["full batch", "SGC"]), "budget"]) == {"shared"}
    rec, com = budget_rows(runs, "recipe"), budget_rows(runs, "common")
    assert set(rec["method"]) == set(com["method"]) == set(methods)
    assert "40 parts, 10 per batch" in rec.loc[rec.method == "GAS", "note"].iloc[0]
    assert "8 parts, 4 per batch" in com.loc[com.method == "GAS", "note"].iloc[0]
    assert set(RECIPES) == set(MINIBATCH_METHODS)
    with pytest.raises(ValueError, match="several budgets"):
        summarize(runs)
    with pytest.raises(ValueError, match="budgets must be"):
        compare_all(tiny, ["SGC"], budgets=("tuned",))
    with pytest.raises(ValueError, match="lrs must be"):
        compare_all(tiny, ["SGC"], lrs=(0.0,))


def test_memory_excludes_the_resident_dataset(tiny):
    full, _ = run_method("full batch", tiny, Budget(epochs=1, hidden=16, eval_every=1), device="cpu")
    mlp, _ = run_method("MLP", tiny, Budget(epochs=1, hidden=16, eval_every=1, dropout=0.0), device="cpu")
    # an MLP without dropout saves nothing the size of the dataset's features: just
    # two [N, 16]-ish activations, far below a GCN step that also holds propagated rows
    assert 0 < mlp["peak_memory_mb"] < full["peak_memory_mb"] + 1e-9


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="method must be one of"):
        run_method("GraphSAGE++", tiny)
    with pytest.raises(ValueError, match="methods must be drawn from"):
        compare_all(tiny, ["SGC", "nope"])
    with pytest.raises(ValueError, match="seeds is empty"):
        compare_all(tiny, ["SGC"], seeds=())
    with pytest.raises(ValueError, match="epochs"):
        Budget(epochs=0)


# ----------------------------------------------------------------------------- verdicts and records


def test_verdicts_on_synthetic_records():
    assert verdict(80.0, 80.5, noise_free=True) == "reproduced"
    assert verdict(80.0, 80.5, differs="Computers instead of ogbn-products", noise_free=True) == "partly"
    assert verdict(80.0, 70.0, differs="another dataset", noise_free=True) == "not reproduced"
    assert verdict(18.0, None, untestable="ogbn-products is not available offline") == "not testable here"
    # an implementation that cannot show the effect (FP32 aggregation vs an INT8 speed-up) is not judged on its figure
    assert verdict(4.7, 1.1, untestable="aggregation stays FP32", noise_free=True) == "not testable here"
    assert verdict(None, 5.0) == "measured"
    assert verdict(3.0, None) == "not measured"
    assert verdict(2.0, 2.5, tolerance=0.6, higher_is_better=False, differs="CPU", noise_free=True) == "partly"
    c = Claim("speedup", 18.0, None, "x", values=[19.8, 20.0, 20.2], differs="CPU, not a GPU")
    row = c.as_row()
    assert row["verdict"] == "partly" and row["differs"] == "CPU, not a GPU" and row["n"] == 3


def test_verdicts_account_for_seed_noise():
    # "within 1 point of full batch" is two-sided: +1.03 on average does not pass it
    assert verdict(0.0, None, 1.0, values=[1.5, 1.6, 1.5], two_sided=True) == "not reproduced"
    assert verdict(0.0, None, 1.0, values=[1.0, 1.1, 1.0], two_sided=True) == "inconclusive (3 seeds)"
    # a mean inside the tolerance with a wide spread is inconclusive, not reproduced
    assert verdict(0.0, None, 1.0, values=[0.5, -1.4, 1.9], two_sided=True) == "inconclusive (3 seeds)"
    assert verdict(0.0, None, 1.0, values=[0.2, 0.3, 0.25], two_sided=True) == "reproduced"
    # the one-sided rule of the example: +0.5-0.7 with spreads of ~2 points on 3 seeds
    assert verdict(0.0, None, 0.0, values=[2.0, -1.0, 0.7], higher_is_better=True).startswith("inconclusive")
    # a pick made after seeing the runs is at most "partly"
    assert verdict(0.0, None, 1.0, values=[0.1, 0.2, 0.15], two_sided=True, chosen_after="best of 4") == "partly"
    assert verdict_kind("inconclusive (5 seeds)") == "inconclusive"
    mean, lo, hi = interval95([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.303 * 1.0 / 3 ** 0.5, rel=1e-3)  # t(0.975, 2) = 4.303
    assert math.isnan(interval95([1.0])[1])
    # no interval from two points: one degree of freedom makes it 12.7 standard errors wide
    assert math.isnan(interval95([1.0, 2.0])[1])
    assert verdict(0.0, None, 5.0, values=[0.1, 0.2], two_sided=True) == "inconclusive (2 seeds)"
    assert Claim("gap", 0.0, None, "pp", 5.0, values=[0.1, 0.2], two_sided=True).interval is None


def test_ratios_are_judged_on_a_log_scale():
    """A speed-up of 0.5x on one seed and 2x on another averages to 1x, not 1.25x."""
    g, lo, hi = interval95([0.5, 2.0, 1.0], log=True)
    assert g == pytest.approx(1.0) and lo == pytest.approx(1 / hi)  # symmetric on the log scale
    c = Claim("speed-up", 1.0, None, "x", 0.0, values=[0.5, 2.0, 1.0], log_scale=True)
    assert c.ours == pytest.approx(1.0) and c.interval[0] > 0  # a t-interval on the raw ratios would go below 0
    assert interval95([0.5, 2.0, 1.0])[1] < 0
    with pytest.raises(ValueError, match="positive"):
        interval95([1.0, -2.0, 3.0], log=True)
    # 3x, 4x, 5x against a claimed 2x (higher is better): reproduced on the log scale
    assert verdict(2.0, None, 0.0, values=[3.0, 4.0, 5.0], log_scale=True) == "reproduced"


def test_coverage_of_the_interval():
    """The 95% interval covers the true mean in about 95% of repeated experiments."""
    import torch

    gen = torch.Generator().manual_seed(0)
    hits = 0
    for _ in range(2000):
        v = (3.0 + torch.randn(3, generator=gen)).tolist()
        _, lo, hi = interval95(v)
        hits += lo <= 3.0 <= hi
    assert 0.93 < hits / 2000 < 0.97


def test_no_verdict_on_a_baseline_that_did_not_learn():
    floor = sanity_floor(40.0, mlp=65.0, num_classes=10, name="full batch")
    assert "full batch 40.0%" in floor and "MLP" in floor
    assert sanity_floor(80.0, mlp=65.0, num_classes=10) == ""
    assert "chance" in sanity_floor(11.0, num_classes=10)
    c = Claim("GAS - full batch", 0.0, None, "pp", 1.0, values=[0.1, 0.2, 0.1], two_sided=True, baseline_failed=floor)
    assert c.verdict == "baseline did not learn"


def _record(tmp_path, monkeypatch, notebook, claims, run_id):
    monkeypatch.setenv("MSGNN_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("MSGNN_RUN_ID", run_id)
    record_results(notebook, claims)


def test_records_carry_their_run_and_the_summary_keeps_runs_apart(tmp_path, monkeypatch):
    _record(tmp_path, monkeypatch, "00_old", [Claim("old claim", 1.0, 1.0, noise_free=True)], "run-A")
    _record(tmp_path, monkeypatch, "01_new", [Claim("new claim", 1.0, 0.0, noise_free=True)], "run-B")
    records = load_results(tmp_path)
    assert [r["run_id"] for r in records] == ["run-A", "run-B"]
    assert all(r["written_utc"].endswith("Z") and r["hardware"] for r in records)
    current, older = split_by_run(records, "run-B")
    assert [r["notebook"] for r in current] == ["01_new"] and [r["notebook"] for r in older] == ["00_old"]
    text = render_summary("default", [("01_new", "FAILED", 2.0, "cell [3]: ValueError: x")], records, "run-B")
    this_run = text.split("## Older records")[0]
    assert "new claim" in this_run and "old claim" not in this_run
    assert "| 00_old | old claim | 1 | 1 |  | reproduced | does not depend on the seed | run-A |" in text
    report = render_report("default", records, "run-B", [("01_new", "FAILED", 2.0, "cell [3]: ValueError: x")])
    assert "old claim" not in report and "00_old (run run-A)" in report
    assert "| not reproduced | 1 |" in report and "01_new (cell [3]: ValueError: x)" in report
    assert "`make reproduce ONLY=01`" in report


def test_report_lists_reason_and_command(tmp_path, monkeypatch):
    _record(tmp_path, monkeypatch, "06_ibmb", [
        Claim("speedup", 18.0, None, "x", values=[19.9, 20.0, 20.1], differs="Computers on a CPU"),
        Claim("ogbn-products accuracy", 78.0, None, "%", untestable="ogbn-products needs a download",
              command="make reproduce ONLY=06 PROFILE=full")], "run-C")
    report = render_report("full", load_results(tmp_path), "run-C")
    assert "| partly | 1 |" in report and "| not testable here | 1 |" in report
    assert "setting differs: Computers on a CPU" in report
    assert "`make reproduce ONLY=06 PROFILE=full`" in report and "`make reproduce ONLY=06 PROFILE=full` |" in report


def test_interactive_run_id_is_stable_within_a_process(monkeypatch):
    monkeypatch.delenv("MSGNN_RUN_ID", raising=False)
    assert current_run_id() == current_run_id() and current_run_id().startswith("interactive-")


# ----------------------------------------------------------------------------- papermill parameters


def _notebooks():
    return sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name[:2])
def test_papermill_lists_every_parameter(path, caplog):
    """``papermill --help-notebook`` (``papermill.inspect_notebook``) parses every
    assignment of the parameters cell: none dropped, no "Unable to parse" warning."""
    import papermill

    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    names = [t.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)]
    assert names, f"{path.name}: empty parameters cell"
    with caplog.at_level("WARNING"):
        listed = papermill.inspect_notebook(str(path))
    assert "Unable to parse" not in caplog.text, caplog.text
    assert set(names) <= set(listed), f"{path.name}: papermill does not list {sorted(set(names) - set(listed))}"


def test_papermill_cli_help_notebook():
    path = REPO / "notebooks" / "01_full_batch_baseline.ipynb"
    out = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "Unable to parse" not in out.stdout + out.stderr
    assert "profile:" in out.stdout and "epochs:" in out.stdout


def test_saved_tensor_meter_peak_is_the_largest_pass():
    import torch

    from msgnn_lite.memory import SavedTensorMeter

    w = torch.randn(64, 64, requires_grad=True)
    x = torch.randn(256, 64)

    def one_pass():
        (torch.relu(x @ w) @ w).sum().backward()

    with SavedTensorMeter(exclude=[w, x]) as one:
        one_pass()
    with SavedTensorMeter(exclude=[w, x]) as two:
        one_pass()
        one_pass()
    assert one.peak_bytes == one.bytes > 0  # a single pass: everything saved is live at once
    assert two.bytes == 2 * one.bytes and two.peak_bytes == one.peak_bytes  # passes run one after the other
    with two:  # a reused meter starts from zero
        one_pass()
    assert two.bytes == one.bytes and two.peak_bytes == one.peak_bytes


def test_bench_writes_and_shows_both_budgets(tmp_path, monkeypatch, capsys):
    """The bench's CSVs hold both budgets, the whole grid and the curves; --show prints the
    README's tables with the gap's interval from them."""
    from msgnn_lite.bench import compare as bench_compare
    from msgnn_lite.bench.__main__ import main as bench_main

    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "cmp"
    rc = bench_main(["compare", "--datasets", "csbm", "--csbm-nodes", "300", "--epochs", "2", "--seeds", "0", "1",
                     "--methods", "full batch", "Cluster-GCN", "MLP", "--lrs", "0.01", "0.05", "--out", str(out),
                     "--device", "cpu"])
    assert rc == 0
    runs = pd.read_csv(out / "csbm-0k-gcn-s0-1.csv")
    assert set(runs["budget"]) == {"shared", "recipe", "common"}
    assert len(pd.read_csv(out / "csbm-0k-gcn-s0-1-grid.csv")) == 2 * 2 * (2 + 2)
    assert {"method", "budget", "seed", "val_acc"} <= set(pd.read_csv(out / "csbm-0k-gcn-s0-1-curves.csv").columns)
    capsys.readouterr()
    assert bench_compare.show([out / "csbm-0k-gcn-s0-1.csv"]) == 0
    text = capsys.readouterr().out
    assert "**recipe budget**" in text and "**common budget**" in text and "| Cluster-GCN |" in text
    with pytest.raises(ValueError, match="lrs must be a list"):
        compare_all(make_csbm(60, 4, 2, 4, 0.8, seed=0), ["SGC"], lrs="0.01")


def test_the_floor_sees_seed_noise():
    # a model at chance on a graph with nothing to learn: 27.3% on average over 3 seeds with 4 classes is
    # above 25 + 2 as a mean, not beyond its seed noise
    assert "chance" in sanity_floor(27.3, 25.1, 4, values=[27.9, 27.0, 27.0])
    # paired with the MLP on the same seeds: the differences' interval decides
    assert "graph-free MLP" in sanity_floor(60.0, 57.0, 7, values=[60.5, 58.0, 61.5], mlp_values=[57.0, 57.5, 56.5])
    assert sanity_floor(75.0, 65.0, 10, values=[75.2, 77.6, 71.5], mlp_values=[67.2, 65.8, 63.1]) == ""
    # one seed: the point estimate, as before
    assert sanity_floor(80.0, 65.0, 10, values=[80.0]) == ""


def test_a_single_run_floor_sees_the_test_sets_noise():
    # one run on 300 test nodes: 31% with 4 classes is 6 points above chance as a number, but the binomial
    # standard error of an accuracy near 30% on 300 nodes is 2.7 points: not beyond the test set's noise
    assert "chance" in sanity_floor(31.0, None, 4, num_test=300)
    assert sanity_floor(31.0, None, 4) == ""                       # without num_test: the bare number passes
    assert sanity_floor(45.0, None, 4, num_test=300) == ""         # 20 points above chance is beyond it
    # against the MLP: the difference's interval combines both runs' test noise
    assert "graph-free MLP" in sanity_floor(36.0, 31.0, 4, num_test=300)
    assert sanity_floor(50.0, 31.0, 4, num_test=300) == ""
    # on 10,000 test nodes the same 5-point lead over the MLP is beyond the noise
    assert sanity_floor(36.0, 31.0, 4, num_test=10_000) == ""
    with pytest.raises(ValueError, match="num_test"):
        sanity_floor(50.0, num_test=0)


def test_equal_steps_gives_full_batch_the_mini_batch_methods_steps(tiny):
    """compare_training(equal_steps=True): full batch (one step an epoch) trains num_batches times the
    epochs, so every method makes the same number of optimizer steps, on the same schedule in steps."""
    from msgnn_lite.compare_all import compare_training
    from msgnn_lite.models import GCN

    def make():
        return GCN(tiny.num_features, 8, 3)

    kw = dict(epochs=3, num_batches=2, eval_every=1, device="cpu", progress=False)
    runs, curves, _ = compare_training(tiny, make, ["full batch", "Cluster-GCN"], equal_steps=True, **kw)
    by = runs.set_index("method")
    assert by.loc["full batch", "epochs_run"] == 6 and by.loc["Cluster-GCN", "epochs_run"] == 3
    assert by.loc["full batch", "steps"] == by.loc["Cluster-GCN", "steps"] == 6
    assert len(curves[("full batch", 0)]) == len(curves[("Cluster-GCN", 0)]) == 3   # evaluated every 2 steps
    plain, _, _ = compare_training(tiny, make, ["full batch"], **kw)
    assert int(plain.steps.iloc[0]) == 3


def test_sequential_seeds_stop_when_decided_and_at_the_cap():
    """Seeds are added until no claim is inconclusive, never past the cap, never before min_seeds."""
    from msgnn_lite.results import sequential_seeds

    calls = []

    def run(seed):
        calls.append(seed)
        return 0.1 + 0.01 * (seed % 2)  # a tight gap near 0: "within 1 point" decides at 3 seeds

    def claims(values):
        return [Claim("gap", 0.0, None, "pp", 1.0, values=values, two_sided=True)]

    res, cl = sequential_seeds(run, claims, range(10))
    assert calls == [0, 1, 2] and len(res) == 3 and cl[0].verdict == "reproduced"
    # a noisy gap straddling the tolerance never decides: all 5 seeds of the cap run, and the verdict says so
    calls.clear()
    noisy = [1.0, -3.0, 2.5, -1.0, 3.0]
    res, cl = sequential_seeds(lambda s: (calls.append(s), noisy[s])[1], claims, range(5))
    assert calls == [0, 1, 2, 3, 4] and cl[0].verdict == "inconclusive (5 seeds)"
    with pytest.raises(ValueError, match="seeds"):
        sequential_seeds(run, claims, [])


def test_sequential_seeds_time_cap(monkeypatch):
    """The second cap, max_seconds: no seed is started once the runs have taken that long, but the
    first min_seeds always run; without it the seed cap alone applies."""
    from msgnn_lite import results

    clock = {"t": 0.0}
    monkeypatch.setattr(results.time, "perf_counter", lambda: clock["t"])
    noisy = [1.0, -3.0, 2.5, -1.0, 3.0, -2.0, 1.5, -2.5]

    def run(seed):  # each seed "takes" 10 s
        clock["t"] += 10.0
        return noisy[seed]

    def claims(values):
        return [Claim("gap", 0.0, None, "pp", 1.0, values=values, two_sided=True)]

    res, cl = results.sequential_seeds(run, claims, range(8), max_seconds=45)
    assert len(res) == 5 and cl[0].verdict == "inconclusive (5 seeds)"   # 50 s >= 45 s after the 5th seed
    res, _ = results.sequential_seeds(run, claims, range(8), max_seconds=5)
    assert len(res) == 3   # the first three always run
    res, _ = results.sequential_seeds(run, claims, range(8))
    assert len(res) == 8
    for bad in (0, -1.0, "60"):
        with pytest.raises(ValueError, match="max_seconds"):
            results.sequential_seeds(run, claims, range(8), max_seconds=bad)


def test_report_opens_with_the_headline_claims(tmp_path, monkeypatch):
    """One row per headline of HEADLINES: the run's claim with its verdict and what would settle it,
    or "not run" where the notebook did not record it; the headline rows are not counted twice."""
    from msgnn_lite.report import HEADLINES

    _record(tmp_path, monkeypatch, "09_precomputation",
            [Claim("SGC test accuracy, Cora (public split)", 81.0, None, "%", 1.0, values=[79.0, 81.5, 80.2])], "run-H")
    report = render_report("default", load_results(tmp_path), "run-H")
    head, rest = report.split("## Every claim")
    sgc = [line for line in head.splitlines() if line.startswith("| SGC (Wu et al. 2019) |")]
    assert len(sgc) == 1 and "inconclusive (3 seeds)" in sgc[0] and "straddles the tolerance's edge" in sgc[0]
    assert sum("| not run |" in line for line in head.splitlines()) == len(HEADLINES) - 1
    assert "| inconclusive | 1 |" in rest  # the count table counts claims, not headline rows
    # the headline table has 6 columns, so notebook 12's verdict count (8-column rows) never sees it
    assert all(line.count("|") == 7 for line in head.splitlines() if line.startswith("| SGC"))


def test_merged_stored_runs_equal_one_run_of_all_seeds(tmp_path, monkeypatch):
    """Runs of one graph stored apart (seeds 0 and 1) and merged give the accuracies, training
    checks and target of one run of both seeds; overlapping seeds and learning-rate grids are refused."""
    from msgnn_lite.bench import compare as bench_compare
    from msgnn_lite.bench.__main__ import main as bench_main

    monkeypatch.setenv("MSGNN_CACHE", str(tmp_path / "cache"))
    common = ["compare", "--datasets", "csbm", "--csbm-nodes", "300", "--epochs", "3", "--methods", "full batch",
              "Cluster-GCN", "MLP", "--budgets", "recipe", "--lrs", "0.01", "--device", "cpu"]
    for seeds, out in ((["0"], "a"), (["1"], "b"), (["0", "1"], "joint")):
        assert bench_main([*common, "--seeds", *seeds, "--out", str(tmp_path / out)]) == 0
    path = bench_compare.merge([tmp_path / "a" / "csbm-0k-gcn-s0.csv", tmp_path / "b" / "csbm-0k-gcn-s1.csv"],
                               tmp_path / "merged", csbm_nodes=300)
    assert path.name == "csbm-0k-gcn-s0-1.csv"
    merged, joint = (pd.read_csv(p).set_index(["method", "budget", "seed"]).sort_index()
                     for p in (path, tmp_path / "joint" / "csbm-0k-gcn-s0-1.csv"))
    assert merged.index.equals(joint.index)
    for col in ("test_acc", "val_acc", "floor_val_acc", "target_val_acc"):
        assert merged[col].tolist() == pytest.approx(joint[col].tolist()), col
    assert merged["status"].tolist() == joint["status"].tolist()
    assert len(pd.read_csv(tmp_path / "merged" / "csbm-0k-gcn-s0-1-curves.csv")) == sum(
        len(pd.read_csv(tmp_path / d / f"csbm-0k-gcn-s{s}-curves.csv")) for d, s in (("a", 0), ("b", 1)))
    with pytest.raises(ValueError, match="repeated"):
        bench_compare.merge([tmp_path / "a" / "csbm-0k-gcn-s0.csv", tmp_path / "joint" / "csbm-0k-gcn-s0-1.csv"],
                            tmp_path / "bad", csbm_nodes=300)
    with pytest.raises(ValueError, match="--csbm-nodes"):
        bench_compare.merge([tmp_path / "a" / "csbm-0k-gcn-s0.csv"], tmp_path / "bad", csbm_nodes=5000)
    with pytest.raises(FileNotFoundError, match="three CSVs"):
        bench_compare.merge([tmp_path / "nope.csv"], tmp_path / "bad", csbm_nodes=300)


def test_compare_all_adds_seeds_until_its_claims_decide(tiny):
    """decide= turns the seeds into a cap: three seeds when every claim is decided at three,
    all of them when one never is; the runs equal those of a plain run of the same seeds."""
    budget = Budget(epochs=2, hidden=8, eval_every=1)
    calls = []

    def decided(runs):
        calls.append(sorted(runs["seed"].unique()))
        return [Claim("noise-free", 1.0, 1.0, noise_free=True)]

    def undecided(runs):
        calls.append(sorted(runs["seed"].unique()))
        return [Claim("never", 0.0, None, tolerance=0.0, two_sided=True, values=[-1.0, 1.0, 0.5])]

    runs, _ = compare_all(tiny, ["full batch", "SGC"], budget=budget, seeds=range(5), device="cpu", progress=False,
                          decide=decided)
    assert sorted(runs["seed"].unique()) == [0, 1, 2] and calls == [[0, 1, 2]]
    calls.clear()
    runs, _ = compare_all(tiny, ["full batch", "SGC"], budget=budget, seeds=range(5), device="cpu", progress=False,
                          decide=undecided)
    assert sorted(runs["seed"].unique()) == [0, 1, 2, 3, 4] and calls == [[0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    plain, _ = compare_all(tiny, ["full batch", "SGC"], budget=budget, seeds=range(5), device="cpu", progress=False)
    assert runs["method"].tolist() == plain["method"].tolist() and runs["seed"].tolist() == plain["seed"].tolist()
    assert runs["test_acc"].tolist() == pytest.approx(plain["test_acc"].tolist())
