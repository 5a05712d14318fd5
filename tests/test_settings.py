"""The one rule for graph-dependent settings (msgnn_lite.settings)."""
import pytest
import torch
from torch_geometric.data import Data

from msgnn_lite.data import load_dataset
from msgnn_lite.settings import MAX_BUDGETS, NODES_PER_BUDGET, REFERENCE_NODES, for_graph


def _graph(n, classes=7, name="g"):
    d = Data(x=torch.zeros(n, 3), edge_index=torch.zeros(2, 0, dtype=torch.long), y=torch.arange(n) % classes)
    d.num_classes, d.name = classes, name
    return d


def test_cora_keeps_the_notebooks_settings():
    s = for_graph(_graph(REFERENCE_NODES), 40, hidden=64, num_parts=20, parts_per_batch=4)
    assert (s.epochs, s.num_parts, s.parts_per_batch, s.hidden, s.lr) == (40, 20, 4, 64, 0.01)
    assert s.patience == 20


@pytest.mark.parametrize("n", [300, 2708, 13752, 18333, 200_000])
def test_parts_keep_their_size_and_epochs_keep_their_steps(n):
    s = for_graph(_graph(n), 40, num_parts=20, parts_per_batch=4)
    # a part keeps Cora's number of nodes (up to rounding), an epoch keeps its ~5 steps
    assert abs(n / s.num_parts - REFERENCE_NODES / 20) <= 0.5 * REFERENCE_NODES / 20 or s.num_parts == 2
    assert 1 <= s.parts_per_batch <= s.num_parts
    assert abs(s.num_parts / s.parts_per_batch - 5) <= 1.5 or s.num_parts < 10  # a tiny graph: few parts
    budgets = min(MAX_BUDGETS, -(-n // NODES_PER_BUDGET))
    assert s.epochs == 40 * budgets and s.epochs_budgets == budgets and s.patience == s.epochs // 2


def test_bigger_graphs_never_get_less():
    sizes = [500, 2708, 6000, 13752, 40_000, 10**6]
    got = [for_graph(_graph(n), 30) for n in sizes]
    assert [g.epochs for g in got] == sorted(g.epochs for g in got)
    assert [g.num_parts for g in got] == sorted(g.num_parts for g in got)
    assert got[-1].epochs == 30 * MAX_BUDGETS


def test_width_covers_the_classes_and_describe_names_the_graph():
    s = for_graph(load_dataset("csbm:nodes=3000,classes=40,features=16,seed=2"), 20, hidden=16)
    assert s.hidden == 80 and s.num_classes == 40
    assert s.graph.startswith("csbm:nodes=3000,classes=40") and s.graph in s.describe()


@pytest.mark.parametrize("kwargs, match", [({"epochs": 0}, "epochs"), ({"epochs": 10, "lr": -1}, "lr"),
                                           ({"epochs": 10, "num_parts": 0}, "num_parts"),
                                           ({"epochs": 10, "lr": float("nan")}, "lr")])
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        for_graph(_graph(100), **kwargs)


@pytest.mark.parametrize("n", [300, 2708, 13752, 10**6])
def test_sampler_sizes_keep_their_share_of_the_graph(n):
    s = for_graph(_graph(n), 40)
    for size in (60, 300, 800):
        got = s.scale(size)
        assert 1 <= got <= n
        assert abs(got / n - size / REFERENCE_NODES) <= 0.5 / n + 1e-12 or got == n   # the share on Cora, to rounding
    assert for_graph(_graph(REFERENCE_NODES), 40).scale(800) == 800
    with pytest.raises(ValueError, match="size_on_cora"):
        s.scale(0)


def test_the_smoke_profile_takes_its_own_value_or_the_default():
    from msgnn_lite.notebook import by_profile

    assert by_profile("smoke", 10, 20, smoke=1) == 1 and by_profile("smoke", 10, 20) == 10
    assert by_profile("default", 10, 20, smoke=1) == 10 and by_profile("full", 10, 20, smoke=1) == 20
    with pytest.raises(ValueError, match="profile"):
        by_profile("tiny", 10, 20)
