"""Partition-parallel GNN training on ``torch.distributed``: Cluster-GCN with
DistributedDataParallel, and GAS with halo exchange between ranks.

The graph is split twice with METIS (:func:`rank_partition`): first into ``world_size`` rank
partitions (few edges between ranks), then each rank partition into ``num_parts / world_size``
clusters. Rank ``r`` owns clusters ``r*k .. (r+1)*k - 1`` and their nodes. Every rank holds a
replica of the model; :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients
after each backward pass, so all replicas take the same optimizer step.

* ``method="cluster"``: each rank trains on the subgraphs induced by its own clusters
  (Cluster-GCN; :class:`~msgnn_lite.partition.ClusterLoader` batches). No graph data crosses
  ranks; only gradients do.
* ``method="gas"``: GNNAutoScale across ranks (:class:`~msgnn_lite.gas.GASGNN`). A rank keeps
  histories for its own nodes and for its **halo** (the neighbours of its nodes that other
  ranks own; :class:`RankShard`). Its batches use the full graph's operator rows
  (:func:`~msgnn_lite.history.halo_operator`), so every edge counts; the halo's rows come
  from the owners through :class:`HaloExchange` (``all_to_all_single``) every
  ``exchange_every`` optimizer steps.

One optimizer step on ``W`` ranks is, exactly, one step on the mean of the ``W`` ranks'
losses: :func:`reference_run` computes that in one process (the tests compare parameters).
Communication is counted in bytes handed to the collectives (``comm`` in the result).

Launch (one process per GPU or per CPU worker; ``env://`` rendezvous from torchrun)::

    torchrun --nproc-per-node 2 -m msgnn_lite.distributed --dataset Cora --method gas --epochs 100
    torchrun --nnodes 2 --nproc-per-node 4 --node-rank 0 --rdzv-backend c10d \\
        --rdzv-endpoint HOST0:29500 -m msgnn_lite.distributed --dataset Cora --method gas

or from Python / a notebook with :func:`launch` (``torch.multiprocessing`` spawn on this
machine, a free TCP port). ``backend="auto"`` is NCCL when CUDA is available (rank ``r`` on
``cuda:LOCAL_RANK``), gloo otherwise. The process group has a timeout (``timeout_s``), so a
rank that dies or hangs makes the others fail with an error instead of waiting forever, and
the launcher (torchrun or :func:`launch`) exits naming the failed rank.
"""
from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from .checks import check_positive_int
from .gas import CONVS, GASGNN
from .history import History, halo_operator
from .loader import _segment_arange
from .partition import ClusterData, ClusterLoader, metis_partition, partition_stats
from .sparse import SparseAdjacency, build_adjacency, take_rows
from .train import full_batch_evaluate
from .utils import atomic_path, atomic_write, resolve_device, seed_everything, to_device

__all__ = ["DistConfig", "resolve_backend", "init_process_group", "rank_partition", "RankShard", "shard_graph",
           "HaloExchange", "train_rank", "reference_run", "launch", "load_data", "main"]

METHODS = ("cluster", "gas")


@dataclass
class DistConfig:
    """Everything a run needs (picklable, so :func:`launch` sends it to the workers).

    ``num_parts`` METIS clusters in total, split evenly over the ranks (must be a multiple of
    the world size); ``clusters_per_batch`` of a rank's clusters per step; ``exchange_every``:
    GAS halo exchange after every that many optimizer steps (and always at the end of an
    epoch). ``fail_rank`` / ``fail_mode`` (``"raise"`` or ``"hang"``) make one rank fail at its
    first step, to test that the launcher exits instead of hanging."""

    dataset: str = "Cora"
    method: str = "gas"
    num_parts: int = 8
    clusters_per_batch: int = 2
    conv: str = "gcn"
    num_layers: int = 2
    hidden_channels: int = 16
    dropout: float = 0.5
    lr: float = 0.01
    weight_decay: float = 5e-4
    epochs: int = 100
    seed: int = 0
    exchange_every: int = 1
    eval_every: int = 1
    backend: str = "auto"
    device: str = "auto"
    timeout_s: float = 60.0
    fail_rank: int = -1
    fail_mode: str = "raise"

    def check(self, world_size: int) -> "DistConfig":
        world_size = check_positive_int(world_size, "world_size")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.conv not in CONVS:
            raise ValueError(f"conv must be one of {CONVS}, got {self.conv!r}")
        for name in ("num_parts", "clusters_per_batch", "num_layers", "hidden_channels", "epochs",
                     "exchange_every", "eval_every"):
            check_positive_int(getattr(self, name), name)
        if self.num_parts % world_size:
            raise ValueError(f"num_parts={self.num_parts} must be a multiple of world_size={world_size} "
                             "(every rank owns the same number of clusters)")
        if self.clusters_per_batch > self.num_parts // world_size:
            raise ValueError(f"clusters_per_batch={self.clusters_per_batch} exceeds the "
                             f"{self.num_parts // world_size} clusters of a rank (num_parts / world_size)")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 seconds, got {self.timeout_s}")
        if self.fail_mode not in ("raise", "hang"):
            raise ValueError(f"fail_mode must be 'raise' or 'hang', got {self.fail_mode!r}")
        return self


# --------------------------------------------------------------------------- process group

def resolve_backend(backend: str = "auto") -> str:
    """``"auto"`` -> ``"nccl"`` when CUDA is available, else ``"gloo"``."""
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"backend must be 'auto', 'gloo', 'nccl' or 'mpi', got {backend!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend='nccl' needs CUDA; use backend='gloo' (or 'auto') on a CPU")
    return backend


def init_process_group(backend: str = "auto", timeout_s: float = 60.0, device="auto", rank: int | None = None,
                       world_size: int | None = None, init_method: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group (``env://`` from torchrun unless ``init_method`` is given) with a
    timeout, and return ``(rank, world_size, device)``. With NCCL the device is
    ``cuda:LOCAL_RANK``."""
    backend = resolve_backend(backend)
    kwargs = {"backend": backend, "timeout": datetime.timedelta(seconds=float(timeout_s))}
    if init_method is not None:
        kwargs.update(init_method=init_method, rank=rank, world_size=world_size)
    dist.init_process_group(**kwargs)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    elif backend == "nccl":
        raise ValueError(f"backend 'nccl' needs CUDA tensors, but device={device!r} resolved to {dev}")
    return rank, world_size, dev


# --------------------------------------------------------------------------- partition and shards

def rank_partition(edge_index: Tensor, num_nodes: int, world_size: int, num_parts: int, seed: int = 0) -> Tensor:
    """Node -> cluster id (``[num_nodes]`` int64) with ``num_parts`` clusters in two METIS levels:
    ``world_size`` rank partitions, then ``num_parts / world_size`` clusters inside each. The
    owner rank of a node is ``cluster // (num_parts / world_size)``. Deterministic for a seed."""
    from torch_geometric.utils import subgraph

    world_size = check_positive_int(world_size, "world_size")
    num_parts = check_positive_int(num_parts, "num_parts")
    if num_parts % world_size:
        raise ValueError(f"num_parts={num_parts} must be a multiple of world_size={world_size}")
    k = num_parts // world_size
    owner = metis_partition(edge_index, num_nodes, world_size, seed=seed)
    cluster = torch.empty(num_nodes, dtype=torch.long)
    for r in range(world_size):
        nodes = (owner == r).nonzero().view(-1)
        if nodes.numel() < k:
            raise ValueError(f"rank {r}'s partition has {nodes.numel()} nodes, fewer than its {k} clusters; "
                             "lower num_parts")
        sub, _ = subgraph(nodes, edge_index.cpu(), relabel_nodes=True, num_nodes=num_nodes)
        cluster[nodes] = r * k + metis_partition(sub, nodes.numel(), k, seed=seed)
    return cluster


@dataclass
class RankShard:
    """What rank ``rank`` owns: its ``nodes`` (global ids, cluster after cluster; cluster ``c``
    of the rank is ``nodes[partptr[c]:partptr[c+1]]``), its ``halo`` (global ids of the
    neighbours owned by other ranks, sorted) with their ``halo_owner`` ranks, and ``adj``: the
    full graph's operator rows of ``nodes`` over the local ids ``[nodes, halo]`` (halo rows
    empty)."""

    rank: int
    nodes: Tensor
    partptr: Tensor
    halo: Tensor
    halo_owner: Tensor
    adj: SparseAdjacency

    @property
    def n_id(self) -> Tensor:
        """Global ids of the local rows: own nodes first, then the halo."""
        return torch.cat([self.nodes, self.halo])

    @property
    def num_local(self) -> int:
        return self.nodes.numel() + self.halo.numel()

    def positions(self, clusters: Tensor) -> Tensor:
        """Local row ids of the nodes of the rank's ``clusters`` (0-based within the rank)."""
        sizes = self.partptr[clusters + 1] - self.partptr[clusters]
        return torch.repeat_interleave(self.partptr[clusters], sizes) + _segment_arange(sizes)


def shard_graph(adj: SparseAdjacency, cluster: Tensor, num_parts: int, world_size: int, rank: int) -> RankShard:
    """The :class:`RankShard` of ``rank`` for a node -> cluster map from :func:`rank_partition`."""
    k = num_parts // world_size
    cluster = cluster.to(adj.device)
    mine = (cluster // k) == rank
    nodes = mine.nonzero().view(-1)
    nodes = nodes[torch.sort(cluster[nodes], stable=True).indices]
    sizes = torch.bincount(cluster[nodes] - rank * k, minlength=k)
    partptr = torch.zeros(k + 1, dtype=torch.long, device=adj.device)
    torch.cumsum(sizes, 0, out=partptr[1:])
    n_id, local_adj = halo_operator(adj, nodes)
    halo = n_id[nodes.numel():]
    return RankShard(rank, nodes, partptr, halo, cluster[halo] // k, local_adj)


# --------------------------------------------------------------------------- halo exchange

def _all_to_all(values: Tensor, send_counts: list[int], recv_counts: list[int]) -> Tensor:
    out = values.new_empty((sum(recv_counts),) + tuple(values.shape[1:]))
    dist.all_to_all_single(out, values.contiguous(), recv_counts, send_counts)
    return out


class HaloExchange:
    """Rows of other ranks' nodes, delivered by their owners with ``all_to_all_single``.

    Built once, collectively: every rank names the global ids it needs (``requested``) and
    their owners; the ids travel to the owners, who check that they own them and keep the
    list. :meth:`exchange` then sends, from each owner, the requested rows of ``own_rows``
    (``own_rows[i]`` belongs to global id ``own_nodes[i]``) and returns a
    ``[len(requested), C]`` tensor in the order of ``requested``. ``bytes_sent`` counts the
    payload this rank handed to the collective (rows only; the one-off id exchange is in
    ``setup_bytes``)."""

    def __init__(self, requested: Tensor, owner: Tensor, own_nodes: Tensor, num_nodes: int):
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if requested.numel() != owner.numel():
            raise ValueError(f"owner must give one rank per requested id ({requested.numel()}), got {owner.numel()}")
        if owner.numel() and (int(owner.min()) < 0 or int(owner.max()) >= self.world_size):
            raise ValueError(f"owner must hold ranks in [0, {self.world_size})")
        if bool((owner == self.rank).any()):
            raise ValueError(f"rank {self.rank} requested rows it owns itself; request only other ranks' nodes")
        self.order = torch.sort(owner, stable=True).indices  # received row i belongs to requested[order[i]]
        self.num_requested = requested.numel()
        counts = torch.bincount(owner, minlength=self.world_size)
        self.recv_counts = counts.tolist()
        self.send_counts = _all_to_all(counts, [1] * self.world_size, [1] * self.world_size).tolist()
        asked = _all_to_all(requested[self.order], self.recv_counts, self.send_counts)
        local = torch.full((num_nodes,), -1, dtype=torch.long, device=own_nodes.device)
        local[own_nodes] = torch.arange(own_nodes.numel(), device=own_nodes.device)
        self.send_rows = take_rows(local, asked)
        if bool((self.send_rows < 0).any()):
            bad = int(asked[self.send_rows < 0][0])
            raise ValueError(f"rank {self.rank} was asked for node {bad}, which it does not own")
        el = requested.element_size()
        self.setup_bytes = (self.world_size + requested.numel()) * el
        self.bytes_sent = 0

    def exchange(self, own_rows: Tensor) -> Tensor:
        send = take_rows(own_rows, self.send_rows)
        recv = _all_to_all(send, self.send_counts, self.recv_counts)
        self.bytes_sent += send.numel() * send.element_size()
        out = torch.empty_like(recv)
        out[self.order] = recv
        return out


# --------------------------------------------------------------------------- one rank's work

def _rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s dropout and cluster order (rank 0 keeps ``seed``)."""
    return seed + 7919 * rank


def build_model(cfg: DistConfig, data: Data, num_nodes: int) -> GASGNN:
    """The model every rank replicates (same seed, same initial weights on every rank)."""
    seed_everything(cfg.seed)
    return GASGNN(num_nodes, data.num_features, cfg.hidden_channels, int(data.y.max()) + 1, cfg.num_layers,
                  conv=cfg.conv, dropout=cfg.dropout, history_device=data.x.device)


class _Rank:
    """One rank's share of training: its clusters, their order per epoch, the loss of a batch,
    and (GAS) its histories over ``[own nodes, halo]``."""

    def __init__(self, cfg: DistConfig, data: Data, cluster: Tensor, rank: int, world_size: int,
                 adj: SparseAdjacency | None = None):
        self.cfg, self.rank = cfg, rank
        self.k = cfg.num_parts // world_size
        self.gen = torch.Generator().manual_seed(_rank_seed(cfg.seed, rank))
        dev = data.x.device
        if cfg.method == "gas":
            norm = "mean" if cfg.conv == "sage" else "gcn"
            adj = adj if adj is not None else build_adjacency(data.edge_index, data.num_nodes, norm)
            self.shard = shard_graph(adj, cluster, cfg.num_parts, world_size, rank)
            n_id = self.shard.n_id
            self.x, self.y, self.train_mask = (take_rows(data.x, n_id), data.y[self.shard.nodes],
                                               data.train_mask[self.shard.nodes])
            self.histories = [History(self.shard.num_local, cfg.hidden_channels, dev)
                              for _ in range(cfg.num_layers - 1)]
            self.num_local = self.shard.num_local
        else:
            self.loader = ClusterLoader(ClusterData(data, cfg.num_parts, part=cluster), cfg.clusters_per_batch)
            self.num_local = int(((cluster // self.k) == rank).sum())

    def schedule(self) -> list[Tensor]:
        """This epoch's batches: the rank's clusters (0..k-1) shuffled, in groups."""
        order = torch.randperm(self.k, generator=self.gen)
        c = self.cfg.clusters_per_batch
        return [order[i:i + c] for i in range(0, self.k, c)]

    def loss(self, model, clusters: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy over the training nodes of the batch made of ``clusters``
        (0 with a graph attached when there are none, so that every rank calls backward), and
        their number (a 0-d tensor on the batch's device, so that nothing waits for the GPU)."""
        core = getattr(model, "module", model)
        if self.cfg.method == "gas":
            core.histories, core.num_nodes = self.histories, self.num_local
            loc = self.shard.positions(clusters.to(self.shard.partptr.device))
            n_id, op = halo_operator(self.shard.adj, loc)
            out = model(take_rows(self.x, n_id), op, n_id=n_id, batch_size=loc.numel())
            y, mask = self.y[loc], self.train_mask[loc]
        else:
            b = self.loader._batch(clusters + self.rank * self.k)  # this rank's ids of a permutation: in range
            out = model(b.x, b.edge_index)
            y, mask = b.y, b.train_mask
        count = mask.sum()  # a tensor: no host sync per batch
        return F.cross_entropy(out[mask], y[mask], reduction="sum") / count.clamp(min=1), count

    def own_rows(self) -> Tensor:
        """The rank's own rows of all histories, side by side (``[num own, C * layers]``)."""
        own = torch.arange(self.shard.nodes.numel(), device=self.histories[0].device)
        return torch.cat([h.pull(own) for h in self.histories], dim=1)

    def receive(self, rows: Tensor) -> None:
        """Write the halo's rows (in the order of ``shard.halo``) into the histories."""
        n_own = self.shard.nodes.numel()
        halo = torch.arange(n_own, self.num_local, device=self.histories[0].device)
        for h, part in zip(self.histories, rows.split(self.cfg.hidden_channels, dim=1)):
            h.push(part, halo)


def _maybe_fail(cfg: DistConfig, rank: int) -> None:
    if rank == cfg.fail_rank:
        if cfg.fail_mode == "hang":
            time.sleep(10 * cfg.timeout_s)
        raise RuntimeError(f"rank {rank} failed on purpose (fail_rank={cfg.fail_rank})")


def _evaluate(model: GASGNN, data: Data, row: dict, best: dict) -> None:
    metrics = full_batch_evaluate(model, data)
    row.update(metrics)
    if metrics["val_acc"] > best["val_acc"] or (metrics["val_acc"] == best["val_acc"]
                                                 and metrics["val_loss"] < best["val_loss"]):
        best.update(val_acc=metrics["val_acc"], val_loss=metrics["val_loss"], test_acc=metrics["test_acc"],
                    epoch=row["epoch"])


def _partition_info(data: Data, cluster: Tensor, cfg: DistConfig, world_size: int) -> dict:
    owner = cluster // (cfg.num_parts // world_size)
    stats = partition_stats(data.edge_index.cpu(), owner.cpu(), world_size)
    return {"rank_edge_cut_fraction": stats["edge_cut_fraction"], "cluster_edge_cut_fraction":
            partition_stats(data.edge_index.cpu(), cluster.cpu(), cfg.num_parts)["edge_cut_fraction"]}


def train_rank(cfg: DistConfig, data: Data, device: torch.device, progress=None) -> dict | None:
    """The training loop of one rank of an initialised process group. Every rank returns
    ``ranks``: each rank's figures (nodes, halo, bytes sent per epoch, the halo self-check);
    rank 0 also the run's result (history, best epoch, final ``state_dict``, partition).
    ``progress(text)``, if given, is called at the start of every epoch (the launcher keeps the
    last one, to say where a rank that stopped answering was)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, world = dist.get_rank(), dist.get_world_size()
    cfg.check(world)
    data = to_device(data, device)
    cluster = rank_partition(data.edge_index, data.num_nodes, world, cfg.num_parts, cfg.seed).to(device)
    part = _Rank(cfg, data, cluster, rank, world)
    model = build_model(cfg, data, part.num_local).to(device)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    torch.manual_seed(_rank_seed(cfg.seed, rank))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    halo, check = None, {}
    if cfg.method == "gas" and world > 1:
        sh = part.shard
        halo = HaloExchange(sh.halo, sh.halo_owner, sh.nodes, data.num_nodes)
        # Self-check: the owners send each requested node's own id; it must come back unchanged.
        got = halo.exchange(sh.nodes.double().unsqueeze(1)).view(-1).long()
        check = {"requested": sh.halo.cpu(), "received": got.cpu()}
        halo.bytes_sent = 0
    rows, best = [], {"val_acc": -1.0, "val_loss": float("inf"), "test_acc": float("nan"), "epoch": 0}
    steps = 0
    for epoch in range(1, cfg.epochs + 1):
        if progress is not None:
            progress(f"epoch {epoch} of {cfg.epochs}")
        dist.barrier()
        t0 = time.perf_counter()
        total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, count: read once per epoch
        groups = part.schedule()
        for i, clusters in enumerate(groups):
            if epoch == 1 and i == 0:
                _maybe_fail(cfg, rank)
            model.train()
            opt.zero_grad(set_to_none=True)
            loss, count = part.loss(ddp, clusters)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            steps += 1
            total += torch.stack([loss.detach().double() * count, count.double()])
            if halo is not None and ((i + 1) % cfg.exchange_every == 0 or i + 1 == len(groups)):
                part.receive(halo.exchange(part.own_rows()))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        # collectives on the rank's device: NCCL reduces only CUDA tensors (gloo takes either)
        wall = torch.tensor([elapsed], dtype=torch.float64, device=device)
        if world > 1:
            dist.all_reduce(total)
            dist.all_reduce(wall, op=dist.ReduceOp.MAX)
        stats = torch.cat([total, wall]).cpu()
        row = {"epoch": epoch, "loss": float(stats[0] / max(float(stats[1]), 1.0)), "epoch_time_s": float(stats[2])}
        if rank == 0 and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
            _evaluate(model, data, row, best)
        rows.append(row)
    epochs = cfg.epochs
    mine = {"rank": rank, "nodes": part.num_local if cfg.method == "cluster" else part.shard.nodes.numel(),
            "halo": part.shard.halo.numel() if cfg.method == "gas" else 0,
            "halo_bytes_per_epoch": (halo.bytes_sent / epochs) if halo is not None else 0.0,
            "halo_setup_bytes": halo.setup_bytes if halo is not None else 0,
            "allreduce_bytes_per_epoch": param_bytes * steps / epochs if world > 1 else 0.0, **check}
    ranks = [None] * world
    dist.all_gather_object(ranks, mine)
    out = {"ranks": ranks}
    if rank == 0:
        history = {key: [r.get(key, float("nan")) for r in rows] for key in rows[-1]}
        out.update(config=asdict(cfg), world_size=world, backend=dist.get_backend(), device=str(device),
                   history=history, best=best, state_dict={k: v.cpu() for k, v in model.state_dict().items()},
                   param_bytes=param_bytes, steps_per_epoch=steps // epochs,
                   **_partition_info(data, cluster, cfg, world))
    return out


def reference_run(cfg: DistConfig, data: Data, world_size: int) -> dict:
    """What ``world_size`` ranks compute, in one process on the CPU: every step, each simulated
    rank's loss on its batch (with its own dropout random stream and its own histories), one
    backward pass on their mean -- DDP's gradient average -- and one optimizer step; the halo
    rows are copied between the simulated ranks where :class:`HaloExchange` would send them.
    Returns ``{"history", "best", "state_dict"}`` like rank 0 of :func:`train_rank`."""
    cfg.check(world_size)
    data = to_device(data, "cpu")
    cluster = rank_partition(data.edge_index, data.num_nodes, world_size, cfg.num_parts, cfg.seed)
    adj = build_adjacency(data.edge_index, data.num_nodes, "mean" if cfg.conv == "sage" else "gcn") \
        if cfg.method == "gas" else None
    ranks = [_Rank(cfg, data, cluster, r, world_size, adj) for r in range(world_size)]
    model = build_model(cfg, data, ranks[0].num_local)
    rng = []
    for r in range(world_size):
        torch.manual_seed(_rank_seed(cfg.seed, r))
        rng.append(torch.get_rng_state())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.method == "gas":  # where each global node lives: its owner's local row
        local = torch.empty(data.num_nodes, dtype=torch.long)
        for p in ranks:
            local[p.shard.nodes] = torch.arange(p.shard.nodes.numel())
    rows, best = [], {"val_acc": -1.0, "val_loss": float("inf"), "test_acc": float("nan"), "epoch": 0}
    for epoch in range(1, cfg.epochs + 1):
        schedules = [p.schedule() for p in ranks]
        loss_sum = count_sum = 0.0
        for i in range(len(schedules[0])):
            model.train()
            opt.zero_grad(set_to_none=True)
            losses = []
            for r, p in enumerate(ranks):
                torch.set_rng_state(rng[r])
                loss, count = p.loss(model, schedules[r][i])
                rng[r] = torch.get_rng_state()
                losses.append(loss)
                loss_sum += float(loss.detach()) * int(count)
                count_sum += int(count)
            (torch.stack(losses).sum() / world_size).backward()
            opt.step()
            if cfg.method == "gas" and world_size > 1 and ((i + 1) % cfg.exchange_every == 0
                                                          or i + 1 == len(schedules[0])):
                own = [p.own_rows() for p in ranks]  # all ranks send at once: snapshot first
                for p in ranks:
                    owner, halo = p.shard.halo_owner, p.shard.halo
                    got = torch.empty(halo.numel(), own[0].size(1))
                    for s in range(world_size):
                        sel = owner == s
                        got[sel] = own[s][local[halo[sel]]]
                    p.receive(got)
        row = {"epoch": epoch, "loss": loss_sum / max(count_sum, 1.0)}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            _evaluate(model, data, row, best)
        rows.append(row)
    history = {key: [r.get(key, float("nan")) for r in rows] for key in rows[-1]}
    return {"history": history, "best": best, "state_dict": {k: v.clone() for k, v in model.state_dict().items()}}


# --------------------------------------------------------------------------- launching

def load_data(name: str) -> Data:
    """A dataset as the notebooks use it: row-normalised sparse bag-of-words features for the
    Planetoid graphs, the raw features otherwise (``msgnn_lite.data.load_dataset``)."""
    import torch_geometric.transforms as T

    from .data import load_dataset, sparse_features

    data = load_dataset(name)
    if data.name in ("Cora", "CiteSeer", "PubMed"):
        data = sparse_features(T.NormalizeFeatures()(data))
    return data


def _run_worker(cfg: DistConfig, data: Data | None, out_dir: str, init: dict) -> None:
    """Join the group, train, write ``rank<r>.pt`` (and ``result.pt`` on rank 0), leave."""
    rank, world, device = init_process_group(cfg.backend, cfg.timeout_s, cfg.device, **init)

    def progress(text: str) -> None:  # where this rank got to: named if it stops answering
        atomic_write(Path(out_dir) / f"progress{rank}.txt", text)
    try:
        progress("joined the process group, loading data")
        out = train_rank(cfg, data if data is not None else load_data(cfg.dataset), device, progress)
        if rank == 0:
            with atomic_path(Path(out_dir) / "result.pt") as tmp:
                torch.save(out, tmp)
        dist.barrier()
    except BaseException:
        # When and why this rank failed: launch() names the first rank to fail, not a peer that
        # failed because of it ("connection closed by peer", a timeout). The group is not destroyed:
        # tearing down a group whose peer hangs can block until that peer exits.
        atomic_write(Path(out_dir) / f"error{rank}.txt", f"{time.time()!r}\n{traceback.format_exc()}")
        raise
    dist.destroy_process_group()


def _spawned(index: int, cfg: DistConfig, data: Data | None, out_dir: str, port: int, world_size: int,
             threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        _run_worker(cfg, data, out_dir, {"init_method": f"tcp://127.0.0.1:{port}", "rank": index,
                                         "world_size": world_size})
    except BaseException:
        # The error is on disk for launch(); leave now. A normal exit would run the broken process
        # group's destructors, which can wait for a hung peer (observed: until the peer gave up).
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def free_port() -> int:
    """A TCP port that is free on this machine now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _failure_report(out_dir: Path, err: Exception, world_size: int | None = None,
                    timeout_s: float | None = None) -> str:
    """Name the rank that caused the failure and show its traceback.

    A rank that raised is named by the time it wrote its traceback (its peers fail after it,
    with "connection closed" or a timeout). A rank that *hung* writes nothing: its peers time out
    waiting for it, so when the ranks that failed all ran into a timeout or a lost peer and some
    rank reported no error at all, that silent rank is the one named, with the last progress it
    reported."""
    errors = []
    for path in out_dir.glob("error*.txt"):
        when, _, tb = path.read_text().partition("\n")
        errors.append((float(when), int(path.stem[5:]), tb))
    if not errors:
        return f"distributed run failed: rank {err.error_index} died ({err})"
    errors.sort()
    silent = sorted(set(range(world_size)) - {r for _, r, _ in errors}) if world_size else []
    waiting = all(any(k in t.lower() for k in ("timed out", "timeout", "connection closed", "connection reset",
                                                 "broken pipe", "peer")) for _, _, t in errors)
    if silent and waiting:
        def last(r):
            p = out_dir / f"progress{r}.txt"
            return p.read_text().strip() if p.exists() else "before joining the process group"
        who = ", ".join(f"rank {r} (last progress: {last(r)})" for r in silent)
        limit = f" within the process group's timeout ({timeout_s:g} s)" if timeout_s else ""
        lines = "".join(f"\nrank {r} then failed waiting for it: {t.strip().splitlines()[-1]}" for _, r, t in errors)
        return (f"distributed run failed: {who} stopped answering{limit} and reported no error of its own; "
                f"the other ranks timed out waiting for it.{lines}")
    when, rank, tb = errors[0]
    others = "".join(f"\nthen rank {r} failed: {t.strip().splitlines()[-1]}" for _, r, t in errors[1:])
    return f"distributed run failed on rank {rank} (the first to fail):\n{tb.strip()}{others}"


_GRACE_S = 2.0


def launch(cfg: DistConfig, world_size: int = 2, data: Data | None = None, threads_per_rank: int = 1) -> dict:
    """Run :func:`train_rank` on ``world_size`` processes of this machine (spawned, gloo or
    NCCL per ``cfg.backend``) and return rank 0's result plus ``ranks`` (every rank's figures).

    ``data`` is sent to the workers (default: each loads ``cfg.dataset``). Each worker uses
    ``threads_per_rank`` CPU threads. If a rank fails, the others are stopped and a
    ``RuntimeError`` names the rank and carries its traceback."""
    import torch.multiprocessing as mp

    world_size = check_positive_int(world_size, "world_size")
    threads_per_rank = check_positive_int(threads_per_rank, "threads_per_rank")
    cfg.check(world_size)
    with tempfile.TemporaryDirectory(prefix="msgnn_dist_") as tmp:
        try:
            ctx = mp.start_processes(_spawned, args=(cfg, data, tmp, free_port(), world_size, threads_per_rank),
                                     nprocs=world_size, join=False, start_method="spawn")
            # Once a rank fails, the others get _GRACE_S seconds to stop, then SIGTERM, then SIGKILL after
            # another _GRACE_S: a rank stuck where SIGTERM does not reach it cannot hold the launcher for
            # torch's default 30 s.
            while not ctx.join(grace_period=_GRACE_S):
                pass
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
            raise RuntimeError(_failure_report(Path(tmp), err, world_size, cfg.timeout_s)) from None
        return torch.load(Path(tmp) / "result.pt", weights_only=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun --nproc-per-node N -m msgnn_lite.distributed",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = DistConfig()
    for f in fields(DistConfig):
        if f.name.startswith("fail_"):
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)),
                       default=getattr(defaults, f.name))
    p.add_argument("--out", default=None, help="write rank 0's result here (torch.save, atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    """The torchrun entry point: ``torchrun --nproc-per-node N -m msgnn_lite.distributed ...``."""
    from torch.distributed.elastic.multiprocessing.errors import record

    parser = _parser()
    args = parser.parse_args(argv)
    out = args.__dict__.pop("out")
    cfg = DistConfig(**vars(args))
    if "RANK" not in os.environ:
        parser.error("run this module under torchrun, e.g. torchrun --nproc-per-node 2 -m msgnn_lite.distributed")
    try:  # every rank checks the flags against the world size before joining the group
        cfg.check(int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError as err:
        parser.error(str(err))

    @record
    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="msgnn_dist_") as tmp:
            _run_worker(cfg, None, tmp, {})
            if int(os.environ["RANK"]) == 0:
                res = torch.load(Path(tmp) / "result.pt", weights_only=True)
                h, best = res["history"], res["best"]
                times = sorted(h["epoch_time_s"][1:] or h["epoch_time_s"])
                print(f"{cfg.method} on {res['world_size']} ranks ({res['backend']}, {res['device']}): "
                      f"median epoch {1000 * times[len(times) // 2]:.1f} ms, best epoch {best['epoch']}, "
                      f"val {100 * best['val_acc']:.2f}%, test {100 * best['test_acc']:.2f}%")
                if out:
                    with atomic_path(out) as dst:
                        torch.save(res, dst)
    run()
    return 0


if __name__ == "__main__":
    from .cli import run_main

    sys.exit(run_main(main, "python -m msgnn_lite.distributed"))
