"""Bad input, second round (issue 33): no silent answer from a public function, and every error
names the argument, the expected form and the value given. One test per kind of the issue, then a
walk over the public callables of several modules with a small set of standard bad inputs."""
from __future__ import annotations

import inspect
import math
import traceback
import warnings
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

import msgnn_lite
from msgnn_lite import checks, coarsening, data as data_mod, ibmb, loader, partition, ppr, precompute, quant, sparse
from msgnn_lite.data import describe, make_csbm
from msgnn_lite.history import History
from msgnn_lite.loader import ClusterData, NeighborLoader, receptive_field_size
from msgnn_lite.models import GCN, MLP, SAGE
from msgnn_lite.sparse import build_adjacency, take_rows
from msgnn_lite.train import fit

pytestmark = pytest.mark.usefixtures("tmp_cache")

PACKAGE = Path(msgnn_lite.__file__).resolve().parent


def ring6(device="cpu"):
    src = torch.arange(6, device=device)
    dst = (src + 1) % 6
    return torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])


def graph6(device="cpu"):
    return Data(edge_index=ring6(device), x=torch.randn(6, 4, device=device),
                y=torch.tensor([0, 1, 0, 1, 0, 1], device=device), num_nodes=6)


@pytest.fixture
def graph():
    return make_csbm(300, 6, 3, 8, 0.8, seed=0)


# ---- 1. non-finite or degenerate numbers ------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(feature_signal=float("nan")), r"feature_signal must be a finite number, got nan"),
    (dict(avg_degree=float("inf")), r"avg_degree must be a finite number, got inf"),
    (dict(avg_degree=0.0), r"avg_degree must be finite and > 0, got 0\.0"),
])
def test_make_csbm_refuses_non_finite_numbers(kwargs, match):
    args = dict(num_nodes=100, avg_degree=4.0, num_classes=2, num_features=4, homophily=0.8) | kwargs
    with pytest.raises(ValueError, match=match):
        make_csbm(**args)


def test_sgc_features_refuse_nan_features(devices):
    g = graph6(devices)
    adj = build_adjacency(g.edge_index, 6, "gcn")
    g.x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x holds 1 NaN or infinite value\(s\); features must be finite"):
        precompute.sgc_features(g.x, adj, 2)


@pytest.mark.parametrize("scale, match", [(0.0, r"scale must be finite and > 0, got 0\.0"),
                                          (float("nan"), r"scale must be a finite number, got nan"),
                                          (-1.0, r"scale must be finite and > 0, got -1\.0")])
def test_quantize_refuses_a_degenerate_scale(devices, scale, match):
    x = torch.randn(5, device=devices)
    with pytest.raises(ValueError, match=match):
        quant.quantize(x, scale, 0, 8)
    with pytest.raises(ValueError, match=match):
        quant.dequantize(torch.zeros(5, dtype=torch.int8, device=devices), scale, 0, 8)
    with pytest.raises(ValueError, match=r"scale must be finite and > 0"):
        quant.fake_quantize(x, torch.tensor([0.0], device=devices), 0, 8)
    x[1] = float("nan")
    with pytest.raises(ValueError, match=r"x must be finite, got 1 NaN or infinite value"):
        quant.quantize(x, 0.1, 0, 8)  # a NaN has no integer code


def test_quant_params_refuse_a_non_finite_range(devices):
    with pytest.raises(ValueError, match=r"lo must be a finite number, got nan"):
        quant.quant_params(float("nan"), 1.0, 8, False)
    with pytest.raises(ValueError, match=r"hi must be finite, got inf"):
        quant.quant_params(torch.tensor(-1.0, device=devices), torch.tensor(float("inf"), device=devices), 8, False)
    scale, zp = quant.quant_params(-1.0, 1.0, 8, False)
    assert math.isfinite(float(scale)) and math.isfinite(float(zp))


def test_a_quantizer_never_keeps_a_non_finite_range(devices):
    """Rule (documented in Quantizer.observe): a batch holding a NaN or an infinity is skipped."""
    q = quant.Quantizer(8, momentum=0.5).to(devices).train()
    bad = torch.randn(32, device=devices)
    bad[3] = float("nan")
    q(bad)  # first batch non-finite: nothing is tracked yet
    assert not bool(q.initialized)
    good = torch.linspace(-2, 3, 32, device=devices)
    q(good)
    lo, hi = float(q.lo), float(q.hi)
    assert (lo, hi) == (-2.0, 3.0)
    for value in (float("nan"), float("inf"), -float("inf")):
        x = torch.randn(32, device=devices)
        x[0] = value
        q(x)
        assert (float(q.lo), float(q.hi)) == (lo, hi), f"a batch with {value} moved the range"
    out = q.eval()(good)
    assert torch.isfinite(out).all() and (out - good).abs().max() <= float(q.params()[0])


# ---- 2. an operator built for another model -----------------------------------------------------

def test_a_model_refuses_an_operator_of_another_normalisation(devices):
    g = graph6(devices)
    with pytest.raises(ValueError, match=r"adj is an operator with normalization='sum', but GCN aggregates with "
                                         r"normalization='gcn'"):
        GCN(4, 8, 2).to(devices)(g.x, build_adjacency(g.edge_index, 6, "sum"))
    with pytest.raises(ValueError, match=r"normalization='gcn', but SAGEConv aggregates with normalization='mean'"):
        SAGE(4, 8, 2).to(devices).convs[0](g.x, build_adjacency(g.edge_index, 6, "gcn"))
    # the operators each model was built for, and the alias "rw" of "mean", run
    assert GCN(4, 8, 2).to(devices)(g.x, build_adjacency(g.edge_index, 6, "gcn")).shape == (6, 2)
    assert SAGE(4, 8, 2).to(devices)(g.x, build_adjacency(g.edge_index, 6, "rw")).shape == (6, 2)


# ---- 3. ids out of range in calls past the constructors ----------------------------------------

def test_ids_out_of_range_name_the_argument_and_the_id(devices):
    g = graph6(devices)
    nl = NeighborLoader(g, [2], batch_size=2)
    with pytest.raises(IndexError, match=r"seeds holds node id 10, out of range; node ids must lie in \[0, 6\)"):
        nl.sample([10])
    with pytest.raises(IndexError, match=r"seeds holds node id -1, out of range"):
        nl.sample_nodes(torch.tensor([0, -1], device=devices))
    with pytest.raises(IndexError, match=r"seeds holds node id 6, out of range"):
        receptive_field_size(g, [2], torch.tensor([6], device=devices))
    with pytest.raises(IndexError, match=r"index holds row id 7, out of range.*\[0, 6\)"):
        take_rows(g.x, torch.tensor([1, 7], device=devices))
    with pytest.raises(TypeError, match=r"index must be an integer tensor of row ids, got dtype torch.float32"):
        take_rows(g.x, torch.tensor([1.0], device=devices))
    cd = ClusterData(make_csbm(60, 4, 2, 4, 0.8, seed=0), 4, cache=False)
    with pytest.raises(IndexError, match=r"clusters holds cluster id 9, out of range; cluster ids must lie in "
                                         r"\[0, 4\)"):
        cd.subgraph(torch.tensor([9]))
    with pytest.raises(ValueError, match=r"clusters must hold distinct cluster ids, got cluster id 1 more than once"):
        cd.subgraph([1, 1])
    assert cd.subgraph([0, 2]).num_nodes == int(cd.cluster_sizes()[[0, 2]].sum())


def test_partition_stats_refuses_a_part_vector_of_the_wrong_length(devices):
    with pytest.raises(ValueError, match=r"part has 3 entries but edge_index refers to node 5; part must hold one "
                                         r"cluster id per node"):
        partition.partition_stats(ring6(devices), torch.tensor([0, 1, 0], device=devices))
    with pytest.raises(IndexError, match=r"part holds cluster id 3, out of range; cluster ids must lie in \[0, 2\)"):
        partition.partition_stats(ring6(devices), torch.tensor([0, 1, 0, 1, 0, 3], device=devices), 2)
    stats = partition.partition_stats(ring6(devices), torch.tensor([0, 0, 0, 1, 1, 1], device=devices))
    assert stats["edge_cut"] == 4 and stats["balance"] == 1.0


# ---- 4. valid but unusual inputs -----------------------------------------------------------------

def test_random_walks_on_a_graph_without_edges_stay_at_their_roots(devices):
    from msgnn_lite.saint import GraphSAINTRandomWalkSampler

    g = Data(edge_index=torch.empty(2, 0, dtype=torch.long, device=devices), x=torch.randn(20, 4, device=devices),
             num_nodes=20)
    sampler = GraphSAINTRandomWalkSampler(g, batch_size=5, walk_length=3, num_steps=2)
    for b in sampler:
        assert b.num_edges == 0 and 1 <= b.num_nodes <= 5
        assert torch.equal(b.x, g.x[b.n_id])


def test_ibmb_schedules_batches_with_unlabelled_nodes(graph):
    from msgnn_lite.loader import IBMBNodeLoader

    graph.y[torch.arange(0, 300, 7)] = -1  # unlabelled nodes among the output nodes (input_nodes=None: all)
    graph.train_mask &= graph.y >= 0
    graph.val_mask &= graph.y >= 0
    graph.test_mask &= graph.y >= 0
    ld = IBMBNodeLoader(graph, "order", None, num_auxiliary_nodes=8, num_nodes_per_batch=40, cache=False)
    seen = torch.cat([b.n_id[:b.batch_size] for b in ld])
    assert sorted(seen.tolist()) == list(range(300))
    with pytest.raises(ValueError, match=r"y contains label -3"):
        ibmb.label_distributions([torch.tensor([0, 1])], torch.tensor([-3, 1]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback is for machines without CUDA")
def test_history_pin_memory_without_cuda_falls_back_with_a_warning():
    with pytest.warns(RuntimeWarning, match=r"History\(pin_memory=True\): CUDA is not available"):
        h = History(10, 4, pin_memory=True)
    assert not h.pinned
    h.push(torch.ones(2, 4), torch.tensor([1, 3]))
    assert h.pull(torch.tensor([3])).sum() == 4


def test_correct_and_smooth_refuses_a_label_beyond_num_classes(devices):
    g = graph6(devices)
    adj = build_adjacency(g.edge_index, 6, "sym")
    y_soft = torch.softmax(torch.randn(6, 2, device=devices), -1)
    mask = torch.tensor([True, True, False, False, True, False], device=devices)
    y = g.y.clone()
    y[4] = 5
    with pytest.raises(ValueError, match=r"y_true holds label 5 on a training node.*\[0, 2\)"):
        precompute.correct_and_smooth(y_soft, y, mask, adj)
    y[4] = 0
    y[5] = -1  # unlabelled outside the training rows: fine
    assert precompute.correct_and_smooth(y_soft, y, mask, adj).smoothed.shape == (6, 2)


def test_describe_a_graph_without_labels():
    out = describe(Data(edge_index=ring6(), x=torch.randn(6, 4), num_nodes=6))
    assert out["nodes"] == 6 and out["edges"] == 12 and out["classes"] == 0 and "edge_homophily" not in out


def test_integer_features_are_cast_by_fit_and_refused_by_a_model_with_a_message(graph, devices):
    """Rule: fit casts int features to float32 (on a copy); a model's forward refuses them, saying to pass floats."""
    graph.x = (graph.x * 10).round().long()
    x_before = graph.x.clone()
    res = fit(GCN(8, 8, 3), graph, epochs=2, progress=False, measure_memory=False, device=devices)
    assert res.epochs_run == 2 and torch.equal(graph.x, x_before)  # the caller's graph is untouched
    for model in (GCN(8, 8, 3), SAGE(8, 8, 3), MLP(8, 8, 3), quant.QGCN(8, 8, 3)):
        with pytest.raises(TypeError, match=r"x must hold floating-point features, got dtype torch.int64; "
                                            r"pass x\.float\(\)"):
            model.to(devices)(graph.x.to(devices), graph.edge_index.to(devices))


# ---- 5. repeated seeds: across batches yes, within one batch no ---------------------------------

def test_neighbor_loader_accepts_repeated_seeds_across_batches(graph, devices):
    graph = graph.to(devices)
    seeds = torch.tensor([3, 1, 3, 7, 3], device=devices)
    assert [int(b.input_id[0]) for b in NeighborLoader(graph, [3], batch_size=1, input_nodes=seeds)] == \
        [3, 1, 3, 7, 3]
    # oversampling a rare class with shuffling: every copy is drawn, never twice in one batch
    rare = (graph.y == 0).nonzero().view(-1)[:10]
    over = torch.cat([torch.arange(40, 80, device=devices), rare, rare, rare])
    ld = NeighborLoader(graph, [3, 2], batch_size=8, input_nodes=over, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        batches = [b.input_id for b in ld]
        assert len(batches) == len(ld) == math.ceil(over.numel() / 8)
        assert all(torch.unique(b).numel() == b.numel() <= 8 for b in batches)
        assert sorted(torch.cat(batches).tolist()) == sorted(over.tolist())
    ld = NeighborLoader(graph, [3], batch_size=8, input_nodes=over, shuffle=True, drop_last=True)
    assert [b.batch_size for b in ld] == [8] * (over.numel() // 8)


def test_neighbor_loader_refuses_a_seed_twice_in_one_batch_and_says_why(graph):
    with pytest.raises(ValueError, match=r"input_nodes lists node 3 twice within batch 0 \(batch_size=4, "
                                         r"shuffle=False\); a batch holds each node once"):
        NeighborLoader(graph, [3], batch_size=4, input_nodes=torch.tensor([3, 1, 3, 7]))
    with pytest.raises(ValueError, match=r"input_nodes lists node 3 5 times, but an epoch has only 2 batches"):
        NeighborLoader(graph, [3], batch_size=4, input_nodes=torch.tensor([3, 3, 3, 3, 3, 1]), shuffle=True)
    nl = NeighborLoader(graph, [3], batch_size=4)
    with pytest.raises(ValueError, match=r"seeds lists node 2 more than once; a batch holds each node once"):
        nl.sample(torch.tensor([2, 5, 2]))


# ---- 6. a walk over public callables with standard bad inputs -----------------------------------

WALKED_MODULES = (sparse, loader, partition, precompute, quant, data_mod, ppr, coarsening, ibmb, checks)
ID_PARAMS = {"index", "seeds", "nodes", "n_id", "keep", "output_nodes", "outputs", "clusters"}
OPTION_PARAMS = {"normalization", "by", "method", "how", "batch_order", "kind"}
FLOAT_PARAMS = {"alpha", "scale", "lo", "hi", "feature_signal", "avg_degree", "diag_lambda", "eps", "smoothing",
                "zero_point", "p_min", "p_max", "momentum", "ratio"}


def _valid(name: str):
    """A valid argument for a parameter of this name on the 6-node ring (None: unknown parameter)."""
    g = graph6()
    table = {
        "edge_index": lambda: ring6(), "num_nodes": lambda: 6, "x": lambda: torch.randn(6, 4),
        "src": lambda: torch.randn(6, 4), "y": lambda: g.y, "y_true": lambda: g.y, "y0": lambda: torch.rand(6, 2),
        "y_soft": lambda: torch.softmax(torch.randn(6, 2), -1), "adj": lambda: build_adjacency(ring6(), 6, "sym"),
        "data": lambda: g, "graph": lambda: g, "index": lambda: torch.tensor([0, 2]),
        "seeds": lambda: torch.tensor([0, 2]), "nodes": lambda: torch.tensor([0, 2]),
        "n_id": lambda: torch.tensor([0, 2]), "keep": lambda: torch.tensor([0, 2, 4]),
        "output_nodes": lambda: torch.tensor([0, 2]), "outputs": lambda: [torch.tensor([0, 2])],
        "part": lambda: torch.tensor([0, 0, 0, 1, 1, 1]), "num_parts": lambda: 2, "k": lambda: 2,
        "alpha": lambda: 0.5, "normalization": lambda: "gcn", "by": lambda: "dst",
        "train_mask": lambda: torch.tensor([True, True, False, False, True, False]),
        "mask": lambda: torch.tensor([True, True, False, False, True, False]),
        "bits": lambda: 8, "scale": lambda: 0.1, "zero_point": lambda: 0.0, "lo": lambda: -1.0, "hi": lambda: 1.0,
        "symmetric": lambda: False, "num_neighbors": lambda: [2], "fanout": lambda: 2, "num_classes": lambda: 2,
        "eps": lambda: 1e-4, "num_auxiliary_nodes": lambda: 2, "max_outputs": lambda: 2,
        "diag_lambda": lambda: 1.0, "smoothing": lambda: 1e-3, "degree": lambda: torch.full((6,), 2),
        "csr": lambda: loader.to_csr(ring6(), 6), "model": lambda: GCN(4, 8, 2), "weight": lambda: torch.randn(3, 4),
        "batch": lambda: NeighborLoader(g, [2], batch_size=2).sample([0, 3]), "prob": lambda: torch.full((6,), 0.5),
        "q": lambda: torch.tensor([1, -3, 7], dtype=torch.int8), "num_nodes_per_batch": lambda: 2,
        "num_partitions": lambda: 2, "m": lambda: 3, "ratio": lambda: 0.5, "levels": lambda: 2,
        "num_features": lambda: 4, "homophily": lambda: 0.8, "avg_degree": lambda: 2.0,
    }
    return table[name]() if name in table else None


# Parameters that fix the number of nodes (or rows): an id or a length is "out of range" or "wrong"
# only against one of them.
SIZE_PARAMS = {"num_nodes", "adj", "data", "graph", "src", "y_soft", "edge_index", "csr"}
# Bad inputs a function passes on by design, with the reason (the walk asserts nothing else is silent).
BY_DESIGN = {
    ("sparse", "propagate", "x", "NaN"): "A @ x on the training path: arithmetic passes NaN on, as torch.sparse.mm",
    ("sparse", "take_rows", "src", "NaN"): "a gather moves values, whatever they are",
    ("quant", "fake_quantize", "x", "NaN"): "training-path arithmetic: a NaN stays a NaN, as in torch",
    ("checks", "check_float_features", "x", "NaN"): "a dtype check by design (check_features reads the values)",
}


def _bad_inputs(name: str, given: set[str]):
    """Standard bad inputs for a parameter of this name (``given``: the other parameters passed)."""
    sized = bool(given & SIZE_PARAMS)
    out = []
    if name in ID_PARAMS and sized:
        out.append(("out-of-range id", [torch.tensor([0, 6])] if name == "outputs" else torch.tensor([0, 6])))
    if name == "edge_index" and given & {"num_nodes", "data", "graph"}:
        out.append(("out-of-range id", torch.tensor([[0, 6], [1, 2]])))
    if name in {"x", "src", "y_soft", "y0"}:
        v = _valid(name)
        v[1, 0] = float("nan")
        out.append(("NaN", v))
        if sized:
            out.append(("wrong length", _valid(name)[:5]))
    if name in FLOAT_PARAMS:
        out.append(("NaN", float("nan")))
    if name in {"y", "y_true", "train_mask", "mask", "part"} and sized:
        out.append(("wrong length", _valid(name)[:3]))
    if name in OPTION_PARAMS:
        out.append(("unknown option", "no-such-option"))
    return out


def _public_functions():
    for mod in WALKED_MODULES:
        for name in getattr(mod, "__all__", ()):
            fn = getattr(mod, name, None)
            if inspect.isfunction(fn) and fn.__module__ == mod.__name__:
                yield mod.__name__.rsplit(".", 1)[1], name, fn


def _raised_by_package(err: BaseException, param: str) -> bool:
    """A ``raise`` statement of msgnn_lite (not a torch op failing on a line of the package), or a
    message naming the argument."""
    last = traceback.extract_tb(err.__traceback__)[-1]
    own = Path(last.filename).resolve().is_relative_to(PACKAGE) and (last.line or "").lstrip().startswith("raise")
    return own or param in str(err)


def test_public_functions_refuse_standard_bad_inputs_with_their_own_error():
    """Every public function of these modules that takes an argument of a known kind gets an
    out-of-range id, a NaN, a wrong length and an unknown option name in turn, and must raise a
    ValueError/TypeError/IndexError of its own (last frame inside msgnn_lite, or naming the
    argument), never return a silent answer or let torch's internals raise."""
    tried, silent, foreign = [], [], []
    for mod, name, fn in _public_functions():
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        required = [p for p in params if p.default is inspect.Parameter.empty]
        if any(_valid(p.name) is None for p in required):
            continue  # a parameter of a kind this walk does not build
        base = {p.name: _valid(p.name) for p in required}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fn(**base)
            except Exception:
                continue  # valid arguments of this walk do not fit this function: nothing to compare with
        for p in params:
            for label, value in _bad_inputs(p.name, set(base) - {p.name}):
                if (mod, name, p.name, label) in BY_DESIGN:
                    continue
                kwargs = {**base, p.name: value}
                tried.append(f"{mod}.{name}({p.name}: {label})")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fn(**kwargs)
                except (ValueError, TypeError, IndexError) as err:
                    if not _raised_by_package(err, p.name):
                        foreign.append(f"{tried[-1]} -> {type(err).__name__}: {err}")
                except Exception as err:  # noqa: BLE001 - any other type is a finding
                    foreign.append(f"{tried[-1]} -> {type(err).__name__}: {err}")
                else:
                    silent.append(tried[-1])
    assert len(tried) >= 40, f"the walk exercised too little: {tried}"
    assert not silent, "bad input returned a silent answer:\n" + "\n".join(silent)
    assert not foreign, "bad input raised outside the package's checks:\n" + "\n".join(foreign)
