"""The device rule (CONTRIBUTING.md, "Devices"): code runs on the device of its inputs, and
nothing moves the caller's graph behind its back."""
import pytest
import torch

from msgnn_lite.data import make_csbm
from msgnn_lite.loader import NeighborLoader
from msgnn_lite.models import GCN
from msgnn_lite.partition import ClusterData, ClusterLoader
from msgnn_lite.train import fit, minibatch_step
from msgnn_lite.utils import device_generator, to_device


pytestmark = pytest.mark.usefixtures("tmp_cache")


@pytest.fixture(scope="module")
def graph():
    return make_csbm(800, 8, 4, 8, 0.8, seed=3)


def test_to_device_leaves_the_callers_graph_where_it_is(graph, devices):
    ids = {k: id(v) for k, v in graph.items()}
    moved = to_device(graph, devices)
    assert all(v.device == devices for _, v in moved.items() if isinstance(v, torch.Tensor))
    assert {k: id(v) for k, v in graph.items()} == ids, "the caller's tensors were replaced"
    assert graph.x.device.type == "cpu"
    assert to_device(moved, devices) is moved, "no copy when everything is already there"


def test_fit_does_not_move_the_callers_data_nor_a_loaders(graph, devices):
    """PyG's Data.to works in place: fit used to move the caller's graph to the GPU, and a
    ClusterLoader built on it then mixed CPU indices with CUDA rows (notebooks 03/04)."""
    cd = ClusterData(graph, num_parts=8)
    loader = ClusterLoader(cd, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = GCN(graph.num_features, 16, 4)
    res = fit(model, graph, epochs=3, device=devices, seed=0, train_step=minibatch_step(loader), progress=False)
    assert graph.x.device.type == "cpu" and cd.data.x.device.type == "cpu"
    assert next(model.parameters()).device.type == devices.type
    assert res.epochs_run == 3 and res.history["loss"].notna().all()


def test_loaders_on_device_data_take_a_generator_of_any_device(graph, devices):
    """A seeded CPU generator handed to a loader of device data seeds one on that device:
    batches are made there, and the same seed gives the same batches."""
    g = to_device(graph, devices)

    def seeds_of_first_batch():
        loader = NeighborLoader(g, [3], batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(7))
        b = next(iter(loader))
        assert b.x.device.type == devices.type and b.edge_index.device.type == devices.type
        return b.input_id.cpu()

    assert torch.equal(seeds_of_first_batch(), seeds_of_first_batch())
    cl = ClusterLoader(ClusterData(g, num_parts=8), batch_size=2, shuffle=True,
                       generator=torch.Generator().manual_seed(7))
    assert next(iter(cl)).x.device.type == devices.type


def test_device_generator(devices):
    cpu = torch.Generator().manual_seed(3)
    assert device_generator(None, devices) is None
    if devices.type == "cpu":
        assert device_generator(cpu, devices) is cpu, "a generator of the right device is used as it is"
        return
    a = device_generator(torch.Generator().manual_seed(3), devices)
    b = device_generator(torch.Generator().manual_seed(3), devices)
    assert a.device.type == devices.type
    assert torch.equal(torch.rand(5, device=devices, generator=a), torch.rand(5, device=devices, generator=b))
