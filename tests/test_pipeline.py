"""The notebook pipeline, the results records, atomic writes and the bench CLI."""
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from msgnn_lite.results import Claim, claims_table, load_results, record_results, verdict
from msgnn_lite.run_notebooks import discover, main as run_main, render_summary
from msgnn_lite.utils import atomic_path, atomic_write

REPO = Path(__file__).resolve().parent.parent


def test_verdict_logic():
    assert verdict(81.5, 81.0, tolerance=1.0, noise_free=True) == "reproduced"
    assert verdict(81.5, 80.0, tolerance=1.0, noise_free=True) == "not reproduced"
    assert verdict(2.2, 1.9, higher_is_better=False, noise_free=True) == "reproduced"
    assert verdict(None, 3.0) == "measured"
    # one measurement of a noisy quantity cannot carry a verdict
    assert verdict(81.5, 81.0, tolerance=1.0) == "inconclusive (1 seed)"
    assert Claim("acc", 70.3, None, "%", 0.5, values=[70.3, 70.4, 70.35]).verdict == "reproduced"


def test_record_and_load_results(tmp_path, monkeypatch):
    monkeypatch.setenv("MSGNN_RESULTS_DIR", str(tmp_path))
    name = record_results("01_demo", [Claim("Cora accuracy", 81.5, None, "%", 1.0, values=[82.0, 81.8, 82.3])])
    assert name == "01_demo.json"
    [res] = load_results(tmp_path)
    assert res["claims"][0]["verdict"] == "reproduced"
    with pytest.raises(ValueError, match="claims is empty"):
        record_results("01_demo", [])
    assert list(claims_table([Claim("a", 1.0, 2.0)]).columns) == ["quantity", "paper", "ours", "unit", "verdict", "note"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def _notebook(path: Path, body: str, parameters: str = 'profile = "default"'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def _project(tmp_path, monkeypatch):
    """A throw-away project root (notebooks/ and msgnn_lite/ folders) that run_notebooks uses."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "msgnn_lite").mkdir()
    monkeypatch.setenv("MSGNN_ROOT", str(tmp_path))
    monkeypatch.setenv("MSGNN_PROGRESS", "0")
    monkeypatch.delenv("MSGNN_RESULTS_DIR", raising=False)
    return tmp_path / "notebooks"


def test_pipeline_reports_a_failing_notebook_and_runs_the_rest(tmp_path, monkeypatch):
    _project(tmp_path, monkeypatch)
    _notebook(tmp_path / "notebooks" / "00_ok.ipynb",
              "from msgnn_lite.results import Claim, record_results\n"
              "record_results('00_ok', [Claim('profile is full', 1.0, float(profile == 'full'))], profile=profile)")
    _notebook(tmp_path / "notebooks" / "01_broken.ipynb", "x = 1\nraise ValueError('boom')")
    _notebook(tmp_path / "notebooks" / "02_ok.ipynb",
              "from msgnn_lite.results import Claim, record_results\n"
              "record_results('02_ok', [Claim('two', 2.0, 2.0)], profile=profile)")
    code = run_main(["--profile", "full"])
    os.environ.pop("MSGNN_RESULTS_DIR", None)
    assert code == 1
    out = tmp_path / "runs" / "full"
    summary = (out / "summary.md").read_text()
    assert "| 01_broken | FAILED |" in summary and "ValueError: boom" in summary
    assert "| 00_ok | ok |" in summary and "| 02_ok | ok |" in summary
    assert "| 00_ok | profile is full | 1 | 1 |" in summary  # the profile was injected
    assert (out / "00_ok.ipynb").exists() and (out / "02_ok.ipynb").exists()
    assert [p.name for p in discover(tmp_path / "notebooks", ["2"])] == ["02_ok.ipynb"]
    with pytest.raises(ValueError, match="no notebook numbered 07"):
        discover(tmp_path / "notebooks", ["07"])


def test_device_flag_reaches_every_notebook_and_bad_flags_write_nothing(tmp_path, monkeypatch, capsys):
    _project(tmp_path, monkeypatch)
    _notebook(tmp_path / "notebooks" / "00_dev.ipynb",
              "from msgnn_lite.results import Claim, record_results\n"
              "record_results('00_dev', [Claim('device is cpu', 1.0, float(device == 'cpu'))], profile=profile)",
              parameters='profile = "default"\ndevice = "auto"')
    for bad in (["--only", "99"], ["--device", "tpu"], ["--timeout", "0"]):
        with pytest.raises((SystemExit, ValueError)):
            run_main(bad)
        assert not (tmp_path / "runs").exists(), f"{bad} wrote output before refusing"
    assert "--device" in capsys.readouterr().err
    assert run_main(["--device", "cpu"]) == 0
    os.environ.pop("MSGNN_RESULTS_DIR", None)
    assert "| 00_dev | device is cpu | 1 | 1 |" in (tmp_path / "runs" / "default" / "summary.md").read_text()


def test_a_complete_store_run_writes_the_committed_report(tmp_path, monkeypatch):
    """--store over every notebook, all ok: docs/reproduction_report.md is the run's report; with
    --only (or a failure) the committed report is left alone."""
    _notebook(_project(tmp_path, monkeypatch) / "00_one.ipynb",
              "from msgnn_lite.results import Claim, record_results\n"
              "record_results('00_one', [Claim('one claim', 1.0, 1.0, noise_free=True)], profile=profile)",
              parameters='profile = "default"\ndevice = "auto"')
    committed = tmp_path / "docs" / "reproduction_report.md"
    assert run_main(["--store", "--only", "00"]) == 0
    assert not committed.exists()
    assert run_main(["--store"]) == 0
    os.environ.pop("MSGNN_RESULTS_DIR", None)
    text = committed.read_text()
    assert "| 00_one | one claim | 1 | 1 |" in text
    assert text == (tmp_path / "runs" / "default" / "report.md").read_text()


def test_render_summary_tables():
    text = render_summary("default", [("00_x", "ok", 1.0, "")],
                          [{"notebook": "00_x", "claims": [Claim("q", 1.0, 2.0, "s", noise_free=True).as_row()]}])
    assert "| 00_x | q | 1 | 2 | s | reproduced |" in text


def test_every_stored_notebook_follows_the_conventions():
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        tags = [t for c in cells for t in c.get("metadata", {}).get("tags", [])]
        assert "parameters" in tags, path.name
        params = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
        src = "".join(params["source"])
        for key in ("profile", "device", "seed", "epochs", "dataset"):
            assert f"{key} =" in src, f"{path.name}: parameters cell lacks {key}"
        first = "".join(cells[0]["source"]).lower()
        assert cells[0]["cell_type"] == "markdown" and "learning objectives" in first, path.name
        tail = " ".join("".join(c["source"]).lower() for c in cells[-3:] if c["cell_type"] == "markdown")
        assert "summary" in tail and "references" in tail, path.name
        assert "widgets" not in nb.get("metadata", {}), f"{path.name}: stored widget state (run_notebooks --store drops it)"
        for c in cells:
            for o in c.get("outputs", []):
                assert o.get("output_type") != "error", f"{path.name}: stored error output"
                # a progress-bar widget is stored as a bar stuck at 0% (run_notebooks --store turns them off)
                assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {}), \
                    f"{path.name}: stored progress-bar widget; refresh with python -m msgnn_lite.run_notebooks --store"


def test_bench_propagate_runs_and_agrees_with_pyg(capsys):
    from msgnn_lite.bench.__main__ import main

    assert main(["propagate", "--nodes", "3000", "--degree", "6", "--features", "8", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "x PyG f+b" in out and "PyG edge_index" in out
    errs = [float(re.search(r"max \|ours - PyG\| = ([0-9.e+-]+)", line).group(1)) for line in out.splitlines()
            if "max |ours - PyG|" in line]
    assert len(errs) == 2 and max(errs) < 1e-4


def test_bench_multiscale_large_writes_its_tables(tmp_path, capsys):
    import pandas as pd

    from msgnn_lite.bench.__main__ import main

    out = tmp_path / "large"
    assert main(["multiscale", "--large", "--large-nodes", "4000", "--epochs", "5", "--large-configs",
                 "random-redraw", "random-k2", "--out", str(out), "--device", "cpu"]) == 0
    runs = pd.read_csv(out / "07_multiscale_large.csv")
    assert list(runs["method"]) == ["full graph", "random redraw 10", "random k=2 redraw 10"]
    base = runs.iloc[0]
    assert base["fine_epochs"] == 5 and base["speedup_time"] == 1.0
    hist = pd.read_csv(out / "07_multiscale_large_history.csv")
    assert set(hist["method"]) == set(runs["method"])
    costs = pd.read_csv(out / "07_multiscale_large_graphs.csv").set_index(["method", "level", "k"])
    full, r1, r2 = costs.loc[("full graph", 0, 1)], costs.loc[("random", 1, 1)], costs.loc[("random", 2, 1)]
    # random selection with k = 1 keeps an edge only if both ends survive: the mean degree halves per level
    assert abs(r1["mean_degree"] / full["mean_degree"] - 0.5) < 0.05
    assert abs(r2["mean_degree"] / full["mean_degree"] - 0.25) < 0.05
    # k = 2 densifies: the level-1 graph has more edges than with k = 1 (here more than the full graph)
    assert costs.loc[("random", 1, 2), "edges"] > full["edges"] > r1["edges"]
    assert (costs["coarsen_s"] >= 0).all() and (costs["step_s"] > 0).all()
    assert "one coarse graph" in capsys.readouterr().out


def test_bench_epoch_times_dense_and_csr_features(data_root, monkeypatch, capsys):
    from msgnn_lite.bench.__main__ import main

    monkeypatch.setenv("MSGNN_DATA", str(data_root))
    assert main(["epoch", "--datasets", "Cora", "--epochs", "2", "--hidden", "8", "--device", "cpu"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Cora"))
    fields = line.split()
    assert fields[1] == "1,433" and 0 < float(fields[2]) < 10  # Cora: 1,433 bag-of-words columns, ~1% non-zero
    dense_s, csr_s = float(fields[3]), float(fields[4])
    assert dense_s > 0 and csr_s > 0 and fields[5].endswith("x") and float(fields[5][:-1]) > 0
    # the printed times have four significant digits, the speedup one decimal
    assert float(fields[5][:-1]) == pytest.approx(dense_s / csr_s, rel=0.01, abs=0.051)
    dense_loss, csr_loss = (float(v.strip(",")) for v in fields[6:8])
    assert abs(dense_loss - csr_loss) < 0.05  # the same model and seed: only the dropout masks differ
