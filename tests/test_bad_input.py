"""Bad input never gives a silent wrong answer: every case below used to return a wrong result,
crash the process, or fail with an error that did not say what was wrong (issue 22)."""
import math

import pytest
import torch
from torch_geometric.data import Data

from msgnn_lite.checks import TrainingDivergedError, check_graph, trusted
from msgnn_lite.data import make_csbm, per_class_split
from msgnn_lite.loader import ClusterData, ClusterLoader, NeighborLoader
from msgnn_lite.models import GCN
from msgnn_lite.partition import diag_enhanced_adjacency
from msgnn_lite.reorder import restore
from msgnn_lite.sparse import build_adjacency
from msgnn_lite.train import fit


def ring6():
    src = torch.arange(6)
    dst = (src + 1) % 6
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


@pytest.fixture
def graph():
    return make_csbm(300, 6, 3, 8, 0.8, seed=0)


pytestmark = pytest.mark.usefixtures("tmp_cache")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_features_are_refused_before_training(graph, bad):
    """fit used to return losses [1.12, nan, nan, ...] and a test accuracy taken from epoch 1."""
    graph.x[5, 2] = bad
    with pytest.raises(ValueError, match=r"data\.x holds 1 NaN or infinite"):
        fit(GCN(8, 8, 3), graph, epochs=3, progress=False)


def test_a_diverged_run_is_an_error_naming_the_epoch(graph):
    calls = []

    def _real(model, data, optimizer):
        calls.append(1)
        return 0.5 if len(calls) < 3 else float("nan")
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 3.*loss is nan.*learning rate"):
        fit(GCN(8, 8, 3), graph, epochs=5, progress=False, train_step=_real)


def test_a_learning_rate_that_explodes_stops_the_run(graph):
    graph.x = graph.x * 1e30
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch \d+"):
        fit(GCN(8, 8, 3), graph, epochs=30, lr=1e30, progress=False, measure_memory=False)


@pytest.mark.parametrize("mutate, match", [
    (lambda g: g.y.__setitem__(0, 5), r"data\.y contains label 5, out of range for 3 classes"),
    (lambda g: (g.y.__setitem__(0, 5), delattr(g, "num_classes")),
     r"data\.y holds label 5, out of range for the model's output.*at least max\(data\.y\) \+ 1 = 6 outputs"),
    (lambda g: setattr(g, "y", g.y.float()), r"data\.y must hold integer class ids.*y\.long\(\)"),
    (lambda g: setattr(g, "y", g.y.view(-1, 1)), r"data\.y must have shape \[num_nodes\].*view\(-1\)"),
    (lambda g: g.y.__setitem__(g.train_mask.nonzero()[0], -1), r"data\.train_mask selects 1 unlabelled node"),
    (lambda g: g.y.__setitem__(0, -3), r"data\.y contains label -3"),
])
def test_bad_labels_name_data_y(graph, mutate, match):
    mutate(graph)
    with pytest.raises((ValueError, TypeError), match=match):
        fit(GCN(8, 8, 3), graph, epochs=2, progress=False, measure_memory=False)


def test_unlabelled_nodes_train_when_outside_the_masks(graph):
    unl = ~(graph.train_mask | graph.val_mask | graph.test_mask)
    graph.y[unl.nonzero()[:5].view(-1)] = -1
    assert fit(GCN(8, 8, 3), graph, epochs=2, progress=False, measure_memory=False).epochs_run == 2


def test_per_class_split_leaves_unlabelled_nodes_out():
    y = torch.tensor([0] * 60 + [1] * 60 + [-1] * 30)
    train, val, test = per_class_split(y, 10, 10, seed=0)
    assert not bool((train | val | test)[y < 0].any()), "an unlabelled node was put into a split"
    assert int(train.sum()) == 20 and int(val.sum()) == 20 and int(test.sum()) == 80


def test_diag_enhanced_adjacency_checks_ids_instead_of_reading_out_of_bounds():
    """Used to build an operator reading garbage (id 9 of 6 nodes) or SIGSEGV (id 10**7)."""
    for bad in (9, 10**7):
        with pytest.raises(ValueError, match=rf"edge_index contains node id {bad}, out of range for num_nodes=6"):
            diag_enhanced_adjacency(torch.tensor([[0, bad], [1, 2]]), 6, 1.0)
    with pytest.raises(ValueError, match="diag_lambda"):
        diag_enhanced_adjacency(ring6(), 6, float("nan"))


@pytest.mark.parametrize("w, match", [(-torch.ones(12), "negative weights"),
                                      (torch.full((12,), float("nan")), "NaN or infinite"),
                                      (torch.ones(11), r"shape \[12\]")])
def test_edge_weights_are_checked(w, match):
    """Negative or NaN weights used to give an operator full of NaN."""
    with pytest.raises(ValueError, match=rf"edge_weight.*{match}|edge_weight must have {match}"):
        build_adjacency(ring6(), 6, "gcn", edge_weight=w)
    if match == "negative weights":  # signed weights are fine where nothing is normalized
        assert torch.isfinite(build_adjacency(ring6(), 6, "sum", edge_weight=w).matrix.values()).all()


def test_loaders_refuse_a_node_attribute_of_the_wrong_length(graph):
    """A y of the wrong length used to vanish from the batches (PyG took it for a graph attribute)."""
    graph.y = graph.y[:-1]
    with pytest.raises(ValueError, match=r"data\.y has 299 rows but data has num_nodes=300"):
        NeighborLoader(graph, [3], batch_size=10)
    with pytest.raises(ValueError, match=r"data\.y has 299 rows"):
        ClusterLoader(ClusterData(graph, 4), 2)


def test_repeated_input_nodes_are_accepted_across_batches_and_refused_within_one(graph):
    """Issue 33 revised issue 22's rule: repeating a seed across batches is a valid use (oversampling);
    only a seed twice within one batch is refused, saying why (tests/test_bad_input_2.py has more)."""
    loader = NeighborLoader(graph, [3], batch_size=1, input_nodes=torch.tensor([3, 1, 3, 7]))
    assert [int(b.input_id[0]) for b in loader] == [3, 1, 3, 7]
    with pytest.raises(ValueError, match=r"input_nodes lists node 3 twice within batch 0.*holds each node once"):
        NeighborLoader(graph, [3], batch_size=4, input_nodes=torch.tensor([3, 1, 3, 7]))


def test_restore_needs_a_permutation():
    out = torch.randn(4, 2)
    with pytest.raises(ValueError, match="perm is not a permutation"):
        restore(out, torch.tensor([0, 1, 1, 2]))
    with pytest.raises(ValueError, match=r"perm holds ids outside \[0, 4\)"):
        restore(out, torch.tensor([0, 1, 2, 7]))


def test_checks_can_be_switched_off_for_trusted_inner_loops(graph):
    graph.x[0, 0] = float("nan")
    with pytest.raises(ValueError):
        check_graph(graph)
    with trusted():
        check_graph(graph)  # skipped: the caller vouches for its data
    with pytest.raises(ValueError):
        check_graph(graph)


def test_check_graph_names_the_argument():
    d = Data(edge_index=torch.tensor([[0, 1], [1, 5]]), x=torch.randn(3, 2), num_nodes=3)
    with pytest.raises(ValueError, match=r"data\.edge_index contains node id 5, out of range for num_nodes=3"):
        check_graph(d)
    assert math.isfinite(1.0)


# ---- command lines: a bad flag is a short error naming it, never a traceback, and nothing is written

def _cli(module, args, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**__import__("os").environ, "MSGNN_PROGRESS": "0"})
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("module, args, match", [
    ("msgnn_lite.bench", ["propagate", "--nodes", "-5"], "argument --nodes: expected an integer >= 1, got -5"),
    ("msgnn_lite.bench", ["propagate", "--device", "tpu"], "argument --device"),
    ("msgnn_lite.bench", ["sampling", "--nodes", "100"], "too dense for num_nodes=100"),
    ("msgnn_lite.run_notebooks", ["--only", "99"], "no notebook numbered 99"),
    ("msgnn_lite.classroom", ["--output", "afile"], "--output afile is a file"),
    ("msgnn_lite.report", ["bad"], r"results file bad/05_x\.json is damaged"),
])
def test_command_lines_end_in_one_clear_line(tmp_path, module, args, match):
    import re

    (tmp_path / "afile").write_text("x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "05_x.json").write_text("{truncated")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, err = _cli(module, args, tmp_path)
    assert code != 0
    assert "Traceback" not in err, err
    assert re.search(match, err), err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "a refused command wrote files"


def test_torchrun_entry_point_checks_num_parts_against_the_world_size(monkeypatch, capsys):
    from msgnn_lite.distributed import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):
        main(["--num-parts", "3"])
    assert "num_parts=3 must be a multiple of world_size=2" in capsys.readouterr().err


def test_a_damaged_results_file_is_skipped_with_a_warning_in_a_run_summary(tmp_path):
    from msgnn_lite.results import ResultsFileError, load_results

    (tmp_path / "01_a.json").write_text('{"notebook": "01_a", "claims": []}')
    (tmp_path / "02_b.json").write_text('{"notebook": "02_b", "cla')
    with pytest.raises(ResultsFileError, match=r"02_b\.json is damaged.*make reproduce ONLY=02"):
        load_results(tmp_path)
    with pytest.warns(RuntimeWarning, match=r"02_b\.json"):
        assert [r["notebook"] for r in load_results(tmp_path, on_error="warn")] == ["01_a"]


def test_a_damaged_metis_cache_is_reported_deleted_and_rebuilt(tmp_path):
    from msgnn_lite.partition import metis_partition

    g = make_csbm(200, 6, 2, 4, 0.8, seed=1)
    part = metis_partition(g.edge_index, 200, 4, save_dir=tmp_path)
    [cached] = list(tmp_path.glob("*.pt"))
    for damage in (b"", b"PK\x03\x04garbage", cached.read_bytes()[:40]):
        cached.write_bytes(damage)
        with pytest.warns(RuntimeWarning, match=rf"cache file .*{cached.name} is damaged.*rebuilding"):
            again = metis_partition(g.edge_index, 200, 4, save_dir=tmp_path)
        assert torch.equal(again, part) and cached.exists()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is read back without a warning
        assert torch.equal(metis_partition(g.edge_index, 200, 4, save_dir=tmp_path), part)


def test_quant_in_degree_and_pack_bits_refuse_what_they_would_get_wrong():
    from msgnn_lite.quant import in_degree, pack_bits, unpack_bits

    with pytest.raises(ValueError, match=r"edge_index contains node id 7, out of range for num_nodes=6"):
        in_degree(torch.tensor([[0, 1], [1, 7]]), 6)
    with pytest.raises(ValueError, match=r"codes outside \[-8, 7\].*wrap around"):
        pack_bits(torch.tensor([1, 100], dtype=torch.int8), 4)
    q = torch.tensor([-8, 7, 0, -1, 3], dtype=torch.int8)
    assert torch.equal(unpack_bits(pack_bits(q, 4), 4, 5), q)


@pytest.mark.parametrize("kind", ["saint", "ibmb"])
def test_damaged_sampler_caches_are_rebuilt(tmp_path, kind):
    import warnings

    from msgnn_lite.loader import GraphSAINTNodeSampler, IBMBNodeLoader

    g = make_csbm(300, 6, 3, 8, 0.8, seed=0)

    def build():
        if kind == "saint":
            s = GraphSAINTNodeSampler(g, batch_size=60, num_steps=2, sample_coverage=5, save_dir=tmp_path)
            return s.node_norm
        loader = IBMBNodeLoader(g, "order", g.train_mask, num_auxiliary_nodes=8, num_nodes_per_batch=20,
                                save_dir=tmp_path)
        return torch.cat([b.n_id for b in loader.batches]) if hasattr(loader, "batches") else len(loader)

    first = build()
    [cached] = [p for p in tmp_path.rglob("*.pt")]
    for damage in (cached.read_bytes()[:64], b"not a zip"):
        cached.write_bytes(damage)
        with pytest.warns(RuntimeWarning, match=rf"cache file .*{cached.name} is damaged.*rebuilding"):
            again = build()
        if isinstance(first, torch.Tensor):
            assert first.shape == again.shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build()  # the rebuilt file reads back cleanly


def test_coarsen_refuses_repeated_or_out_of_range_kept_ids():
    """coarsen(ring6, [1, 1, 2]) used to return a graph where one copy of node 1 had lost its edges."""
    from msgnn_lite.coarsening import coarsen, power_adjacency

    g = Data(edge_index=ring6(), x=torch.randn(6, 2), num_nodes=6)
    with pytest.raises(ValueError, match="keep lists node 1 more than once"):
        coarsen(g, torch.tensor([1, 1, 2]))
    with pytest.raises(ValueError, match=r"keep holds id 6, outside \[0, 6\)"):
        power_adjacency(ring6(), 6, torch.tensor([0, 6]))
    with pytest.raises(TypeError, match="keep must be a 1-D integer tensor"):
        coarsen(g, torch.tensor([0.0, 2.0]))
    assert coarsen(g, torch.tensor([1, 2, 4])).num_nodes == 3
