"""Partition-parallel training on torch.distributed: 2 gloo processes on the CPU against the
single-process reference, the halo exchange, communication counts, and failing ranks."""
from __future__ import annotations

import time

import pytest
import torch

from msgnn_lite.distributed import (DistConfig, build_model, launch, rank_partition, reference_run, resolve_backend,
                                   shard_graph)
from msgnn_lite.sparse import build_adjacency

WORLD = 2


def _cfg(method: str, **kw) -> DistConfig:
    base = dict(method=method, num_parts=8, clusters_per_batch=2, hidden_channels=8, num_layers=3, epochs=4,
                dropout=0.5, timeout_s=20.0)
    base.update(kw)
    return DistConfig(**base)


@pytest.fixture(scope="module")
def runs(small_graph):
    """One 2-process run per method (each ~4 s on a CPU) and its single-process reference."""
    out = {}
    for method in ("cluster", "gas"):
        cfg = _cfg(method)
        out[method] = (cfg, launch(cfg, WORLD, small_graph), reference_run(cfg, small_graph, WORLD))
    return out


@pytest.mark.parametrize("method", ["cluster", "gas"])
def test_two_processes_equal_single_process_reference(runs, small_graph, method):
    cfg, dist_run, ref = runs[method]
    assert dist_run["world_size"] == WORLD and dist_run["backend"] == "gloo"
    assert dist_run["state_dict"].keys() == ref["state_dict"].keys()
    for name, value in ref["state_dict"].items():
        torch.testing.assert_close(dist_run["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert dist_run["history"]["loss"] == pytest.approx(ref["history"]["loss"], rel=1e-5)
    assert dist_run["best"]["epoch"] == ref["best"]["epoch"]
    # training moved the weights: the equality is not that of two untouched initialisations
    init = build_model(cfg, small_graph, small_graph.num_nodes).state_dict()
    assert any(not torch.allclose(init[k], v) for k, v in ref["state_dict"].items())


def test_halo_exchange_delivers_exactly_the_requested_rows(runs, small_graph):
    cfg, dist_run, _ = runs["gas"]
    n = small_graph.num_nodes
    cluster = rank_partition(small_graph.edge_index, n, WORLD, cfg.num_parts, cfg.seed)
    owner = cluster // (cfg.num_parts // WORLD)
    src, dst = small_graph.edge_index
    for r, info in enumerate(dist_run["ranks"]):
        mine = owner == r
        # the halo: sources of edges into the rank's nodes that another rank owns
        expected = torch.unique(src[mine[dst] & ~mine[src]])
        assert torch.equal(info["requested"], expected)
        assert torch.equal(info["received"], info["requested"])  # owners sent each requested node's id
        assert info["nodes"] == int(mine.sum()) and info["halo"] == expected.numel()
    assert sum(info["nodes"] for info in dist_run["ranks"]) == n


def test_communication_volume_counts_what_is_sent(runs, small_graph):
    cfg, dist_run, _ = runs["gas"]
    steps = dist_run["steps_per_epoch"]
    assert steps == (cfg.num_parts // WORLD) // cfg.clusters_per_batch
    row_bytes = cfg.hidden_channels * (cfg.num_layers - 1) * 4  # float32 rows of every history, one exchange
    ranks = dist_run["ranks"]
    for r, info in enumerate(ranks):
        # rank r sends each of its nodes that another rank requested, once per exchange (every step)
        sent_rows = sum(_owned_by(o["requested"], r, cfg, small_graph) for s, o in enumerate(ranks) if s != r)
        assert info["halo_bytes_per_epoch"] == steps * sent_rows * row_bytes
        assert info["allreduce_bytes_per_epoch"] == steps * dist_run["param_bytes"]
    assert runs["cluster"][1]["ranks"][0]["halo_bytes_per_epoch"] == 0  # Cluster-GCN sends gradients only


def _owned_by(ids, rank, cfg, graph) -> int:
    cluster = rank_partition(graph.edge_index, graph.num_nodes, WORLD, cfg.num_parts, cfg.seed)
    return int(((cluster[ids] // (cfg.num_parts // WORLD)) == rank).sum())


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_failing_rank_stops_the_launcher_with_a_clear_error(small_graph, mode):
    cfg = _cfg("gas", epochs=2, fail_rank=1, fail_mode=mode, timeout_s=3.0)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="failed on rank|stopped answering") as err:
        launch(cfg, WORLD, small_graph)
    elapsed = time.perf_counter() - t0
    print(f"launcher ended after {elapsed:.1f} s:\n{err.value}")
    assert elapsed < 30  # no hang: a raise ends the run, a hang hits the 3 s timeout
    if mode == "raise":  # the report names the rank that failed first, not its peer that lost the connection
        assert "failed on rank 1 (the first to fail)" in str(err.value)
        assert "rank 1 failed on purpose" in str(err.value)
    else:  # the hung rank is named, not rank 0 whose collective timed out waiting for it
        assert "rank 1 (last progress: epoch 1 of 2) stopped answering" in str(err.value)
        assert "rank 0 then failed waiting for it" in str(err.value)


def test_rank_partition_and_shards(small_graph):
    n = small_graph.num_nodes
    cluster = rank_partition(small_graph.edge_index, n, 2, 8, seed=0)
    assert torch.equal(cluster, rank_partition(small_graph.edge_index, n, 2, 8, seed=0))  # deterministic
    assert set(cluster.tolist()) == set(range(8))
    adj = build_adjacency(small_graph.edge_index, n, "gcn")
    shards = [shard_graph(adj, cluster, 8, 2, r) for r in range(2)]
    assert torch.equal(torch.sort(torch.cat([s.nodes for s in shards])).values, torch.arange(n))
    x = torch.randn(n, 3)
    for s in shards:
        # the shard's operator rows are the full graph's rows: exact aggregation for the owned nodes
        local = (s.adj @ x[s.n_id])[: s.nodes.numel()]
        torch.testing.assert_close(local, (adj @ x)[s.nodes])
        assert bool((s.halo_owner != s.rank).all())
        assert int(s.partptr[-1]) == s.nodes.numel()


def test_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_parts=7 must be a multiple of world_size=2"):
        DistConfig(num_parts=7).check(2)
    with pytest.raises(ValueError, match="clusters_per_batch"):
        DistConfig(num_parts=4, clusters_per_batch=3).check(2)
    with pytest.raises(ValueError, match="method must be one of"):
        DistConfig(method="ddp").check(1)
    with pytest.raises(ValueError, match="timeout_s"):
        DistConfig(timeout_s=0).check(1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="needs CUDA"):
            resolve_backend("nccl")
        assert resolve_backend("auto") == "gloo"


def test_command_line_maps_to_the_config(monkeypatch, capsys):
    from msgnn_lite.distributed import _parser, main

    args = vars(_parser().parse_args(["--method", "cluster", "--num-parts", "4", "--timeout-s", "5", "--out", "r.pt"]))
    assert args.pop("out") == "r.pt"
    cfg = DistConfig(**args)
    assert (cfg.method, cfg.num_parts, cfg.timeout_s, cfg.fail_rank) == ("cluster", 4, 5.0, -1)
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(SystemExit):
        main(["--dataset", "Cora"])
    assert "error: run this module under torchrun" in capsys.readouterr().err
