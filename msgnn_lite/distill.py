"""Knowledge distillation for GNNs: GNN -> MLP (GLNN) and structure-preserving representation losses.

**GLNN** (Zhang et al., ICLR 2022) trains a GNN *teacher*, takes its soft labels for every
node, and trains a plain MLP *student* on the node features alone to match them::

    L = lam * CE(student[train], y[train])  +  (1 - lam) * T^2 * KL(p_t^T || p_s^T)   (on the chosen nodes)

with ``p^T = softmax(logits / T)``. The first term uses the true labels of the training
nodes only; the second the teacher's soft labels on *all* nodes the teacher has seen
(GLNN's loss weighting; its code uses ``lam = 0`` by default and ``T = 1``, where the
``T^2`` factor is 1). The factor ``T^2`` (Hinton et al., 2015) keeps the gradient of the
soft term at the same scale when the temperature changes. At inference the student needs
no graph: no neighbour fetching, one small dense forward per query node.

GLNN's **inductive** (production) setting hides a fraction of the test nodes: the teacher
is trained, and its soft labels computed, on the graph *without* these nodes and their
edges (:func:`inductive_split`); the student never sees them either, and is scored on
them from their features only.

**Representation distillation** (Joshi et al., TNNLS 2022) matches the geometry of the
student's hidden representations to the teacher's, beside the logit KD term:

* **LSP** (local structure preserving, Yang et al., CVPR 2020): for each node, a softmax
  over its incoming edges of the cosine similarity to each neighbour; KL(teacher || student)
  per node (:func:`lsp_loss`).
* **GSP** (global structure preserving, Joshi et al.): the mean squared difference of the
  all-pairs cosine-similarity matrices, on a random subset of nodes (:func:`gsp_loss`).

Devices: losses and steps run on the device of their inputs (GSP's random subset is drawn
there); the experiments copy the data to their ``device`` once, at the start. Seeded data
splits (:func:`inductive_split`, like :func:`msgnn_lite.data.per_class_split`) are drawn on
the CPU, so one seed gives the same split on every device, and returned on the data's device.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from .checks import check_fraction, check_mask, check_positive_int
from .loader import NeighborLoader, induced_subgraph, to_csr
from .sparse import take_rows
from .train import TrainResult, accuracy, fit, graph_input
from .utils import device_generator, resolve_device, seed_everything, to_device

__all__ = ["check_temperature", "check_lambda", "kd_loss", "distillation_loss", "teacher_logits", "distill_step",
           "train_student", "InductiveSplit", "inductive_split", "forward_with_hidden", "gsp_loss", "lsp_loss",
           "representation_step", "inference_latency", "evaluate_on", "glnn_experiment",
           "representation_experiment", "REPRESENTATION_VARIANTS"]


# --------------------------------------------------------------------------- arguments
def check_temperature(temperature) -> float:
    """``temperature`` as a float, or a ValueError naming it unless it is finite and > 0."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"temperature must be a number > 0, got {temperature!r}") from None
    if not (t > 0) or math.isinf(t):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_lambda(lam) -> float:
    """``lam`` (GLNN's lambda, the weight of the true-label term) as a float in [0, 1]."""
    try:
        v = float(lam)
    except (TypeError, ValueError):
        raise TypeError(f"lam (lambda) must be a number in [0, 1], got {lam!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"lam (lambda) must lie in [0, 1], got {lam!r}")
    return v


# --------------------------------------------------------------------------- losses
def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 * KL(softmax(t / T) || softmax(s / T))``, summed over classes and averaged over rows
    (PyTorch's ``KLDivLoss(reduction="batchmean")``, as GLNN's code). The teacher is a constant."""
    t = check_temperature(temperature)
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student_logits and teacher_logits must both have shape [nodes, classes], got "
                         f"{list(student_logits.shape)} and {list(teacher_logits.shape)}")
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor | None, y: Tensor, train_mask: Tensor,
                      lam: float = 0.0, temperature: float = 1.0, soft_mask: Tensor | None = None) -> Tensor:
    """GLNN's objective ``lam * CE(train nodes) + (1 - lam) * T^2 KL(teacher || student)``.

    ``student_logits`` and ``teacher_logits`` are ``[N, C]`` over the same nodes; the CE term
    uses the rows in ``train_mask`` and the true labels ``y``; the KL term the rows in
    ``soft_mask`` (default: every row, GLNN's choice). ``lam = 1`` is plain supervised
    training (the teacher may then be ``None``); ``lam = 0`` pure distillation.
    """
    lam = check_lambda(lam)
    temperature = check_temperature(temperature)
    n = student_logits.size(0)
    loss = student_logits.new_zeros(())
    if lam > 0:
        check_mask(train_mask, n, "train_mask")
        loss = loss + lam * F.cross_entropy(student_logits[train_mask], y[train_mask])
    if lam < 1:
        if teacher_logits is None:
            raise ValueError("teacher_logits is None but lam < 1: the soft-label term needs the teacher's logits")
        rows = slice(None) if soft_mask is None else check_mask(soft_mask, n, "soft_mask")
        loss = loss + (1.0 - lam) * kd_loss(student_logits[rows], teacher_logits[rows], temperature)
    return loss


@torch.no_grad()
def teacher_logits(model: nn.Module, data: Data) -> Tensor:
    """The trained teacher's logits on every node of ``data`` (eval mode, one full-graph forward),
    on the model's device (a copy of ``data`` is moved there if it is elsewhere; the caller's
    graph is not moved)."""
    param = next(model.parameters(), None)
    if param is not None:
        data = to_device(data, param.device)
    was = model.training
    model.eval()
    out = model(data.x, graph_input(model, data))
    model.train(was)
    return out.detach()


# --------------------------------------------------------------------------- GLNN training
def distill_step(lam: float = 0.0, temperature: float = 1.0):
    """A ``train_step`` for :func:`~msgnn_lite.train.fit`: one full-batch step of a student on
    ``data.teacher_logits`` (soft labels) and the true labels of ``data.train_mask``.

    Works for an MLP student (no graph) and for a GNN student alike."""
    lam, temperature = check_lambda(lam), check_temperature(temperature)

    def step(model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(data.x, graph_input(model, data))
        loss = distillation_loss(out, data.teacher_logits, data.y, data.train_mask, lam, temperature)
        loss.backward()
        optimizer.step()
        return float(loss.detach())
    return step


def train_student(student: nn.Module, data: Data, soft_labels: Tensor, *, lam: float = 0.0,
                  temperature: float = 1.0, **fit_kwargs) -> TrainResult:
    """Distil ``soft_labels`` (teacher logits ``[N, C]`` for the nodes of ``data``) into ``student``.

    Model selection is by validation accuracy on the *true* labels, as in GLNN; ``fit_kwargs``
    go to :func:`~msgnn_lite.train.fit` (epochs, lr, weight_decay, patience, device, seed ...).
    """
    if soft_labels.dim() != 2 or soft_labels.size(0) != data.num_nodes:
        raise ValueError(f"soft_labels must have shape [{data.num_nodes}, classes], got {list(soft_labels.shape)}")
    d = copy.copy(data)
    d.teacher_logits = soft_labels.detach()
    fit_kwargs.setdefault("measure_memory", False)
    return fit(student, d, train_step=distill_step(lam, temperature), **fit_kwargs)


# --------------------------------------------------------------------------- inductive split
@dataclass
class InductiveSplit:
    """GLNN's inductive split of a transductive dataset.

    ``observed`` is the graph the teacher (and the student) may use: the induced subgraph on
    ``obs_ids`` (training, validation and the transductive test nodes), relabelled to
    ``0..len(obs_ids)-1`` in the order of ``obs_ids``, with ``test_mask`` = transductive test
    nodes. ``ind_ids`` are the held-out test nodes: neither they nor any of their edges are in
    ``observed``. ``test_tran_mask`` / ``test_ind_mask`` are masks over the *full* graph.
    """

    observed: Data
    obs_ids: Tensor
    ind_ids: Tensor
    test_tran_mask: Tensor
    test_ind_mask: Tensor


def inductive_split(data: Data, rate: float = 0.2, seed: int = 0) -> InductiveSplit:
    """Hold out a seeded random ``rate`` fraction of the test nodes (GLNN: ``rate = 0.2``).

    The draw is made on the CPU (set-up, like :func:`msgnn_lite.data.per_class_split`: the same
    seed holds out the same nodes on every device); every tensor returned is on the data's device."""
    rate = check_fraction(rate, "rate", high_closed=False)
    for key in ("train_mask", "val_mask", "test_mask"):
        if key not in data:
            raise ValueError(f"data has no {key}; inductive_split needs train_mask, val_mask and test_mask")
    n = data.num_nodes
    test = check_mask(data.test_mask, n, "data.test_mask").nonzero().view(-1).cpu()
    perm = torch.randperm(test.numel(), generator=torch.Generator().manual_seed(seed))
    cut = int(test.numel() * rate)
    if cut == 0 or cut == test.numel():
        raise ValueError(f"rate={rate} holds out {cut} of {test.numel()} test nodes; both parts must be non-empty")
    dev = data.edge_index.device
    ind_ids = test[perm[:cut]].sort().values.to(dev)
    ind_mask = torch.zeros(n, dtype=torch.bool, device=dev)
    ind_mask[ind_ids] = True
    obs_ids = (~ind_mask).nonzero().view(-1)
    edge_index, _ = induced_subgraph(to_csr(data.edge_index, n), obs_ids)
    observed = Data(x=take_rows(data.x, obs_ids.to(data.x.device)), y=data.y[obs_ids.to(data.y.device)],
                    edge_index=edge_index, num_nodes=obs_ids.numel())
    for key in ("train_mask", "val_mask", "test_mask"):
        observed[key] = data[key][obs_ids.to(data[key].device)]
    observed.num_classes = getattr(data, "num_classes", int(data.y.max()) + 1)
    observed.name = f"{getattr(data, 'name', 'graph')} (observed)"
    ind_mask = ind_mask.to(data.test_mask.device)
    return InductiveSplit(observed, obs_ids, ind_ids, data.test_mask & ~ind_mask, ind_mask)


# --------------------------------------------------------------------------- representation distillation
def forward_with_hidden(model: nn.Module, x: Tensor, adj) -> tuple[Tensor, Tensor]:
    """``(logits, hidden)`` of a msgnn_lite ``GCN``/``SAGE`` stack, where ``hidden`` is the output
    of the penultimate graph convolution (before its activation): the node representation that
    LSP/GSP compare. Read with a forward hook, so the model's own ``forward`` runs unchanged."""
    convs = getattr(model, "convs", None)
    if convs is None or len(convs) < 2:
        raise TypeError("forward_with_hidden needs a msgnn_lite GCN/SAGE model with num_layers >= 2")
    box = {}
    handle = convs[-2].register_forward_hook(lambda mod, inp, out: box.__setitem__("h", out))
    try:
        logits = model(x, adj)
    finally:
        handle.remove()
    return logits, box["h"]


def _cosine_matrix(h: Tensor) -> Tensor:
    h = F.normalize(h, p=2, dim=-1)
    return h @ h.t()


def gsp_loss(student_h: Tensor, teacher_h: Tensor, max_nodes: int | None = 1024,
             generator: torch.Generator | None = None) -> Tensor:
    """Global structure preserving loss: ``mean_ij (cos(s_i, s_j) - cos(t_i, t_j))^2`` over a random
    subset of at most ``max_nodes`` rows (all rows when ``None``). Dimensions may differ.

    The subset is drawn on ``generator``'s device (without one: on ``student_h``'s, with that
    device's global generator); give a generator on ``student_h``'s device to avoid a copy
    (:func:`representation_step` does)."""
    if student_h.size(0) != teacher_h.size(0):
        raise ValueError(f"student_h and teacher_h must have the same number of rows, got "
                         f"{student_h.size(0)} and {teacher_h.size(0)}")
    if max_nodes is not None:
        max_nodes = check_positive_int(max_nodes, "max_nodes", minimum=2)
        if student_h.size(0) > max_nodes:
            where = student_h.device if generator is None else generator.device
            idx = torch.randperm(student_h.size(0), generator=generator, device=where)[:max_nodes]
            idx = idx.to(student_h.device)  # a no-op when the generator is on student_h's device
            student_h, teacher_h = student_h[idx], teacher_h[idx]
    return F.mse_loss(_cosine_matrix(student_h), _cosine_matrix(teacher_h.detach()))


def lsp_loss(student_h: Tensor, teacher_h: Tensor, edge_index: Tensor) -> Tensor:
    """Local structure preserving loss: for every node ``i`` with incoming edges ``j -> i``, the
    distribution ``softmax_j cos(h_i, h_j)`` for teacher and student; ``KL(teacher || student)``
    summed over a node's edges and averaged over nodes that have edges."""
    from torch_geometric.utils import softmax

    src, dst = edge_index[0], edge_index[1]
    n = student_h.size(0)
    log_s = torch.log(softmax(F.cosine_similarity(student_h[src], student_h[dst]), dst, num_nodes=n) + 1e-12)
    t = teacher_h.detach()
    p_t = softmax(F.cosine_similarity(t[src], t[dst]), dst, num_nodes=n)
    per_edge = p_t * (torch.log(p_t + 1e-12) - log_s)
    has_edges = torch.zeros(n, dtype=torch.bool, device=dst.device)
    has_edges[dst] = True  # (not bincount, which reads the largest id back to the host on a GPU)
    return per_edge.sum() / has_edges.sum().clamp_min(1)


def representation_step(structure: str | None = None, beta: float = 1.0, lam: float = 0.0,
                        temperature: float = 1.0, max_nodes: int = 1024, generator: torch.Generator | None = None):
    """A ``train_step`` for a GNN student: GLNN's logit objective (see :func:`distillation_loss`)
    plus ``beta`` times an LSP (``structure="lsp"``) or GSP (``"gsp"``) term between the student's
    and ``data.teacher_hidden``. ``structure=None`` is logit KD alone. GSP's subsets are drawn on
    the student's device: a ``generator`` of another device seeds one there at the first step
    (:func:`~msgnn_lite.utils.device_generator`; a CPU generator on the CPU is used as it is)."""
    if structure not in (None, "lsp", "gsp"):
        raise ValueError(f"structure must be None, 'lsp' or 'gsp', got {structure!r}")
    lam, temperature = check_lambda(lam), check_temperature(temperature)
    if not float(beta) >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    gens = {"gsp": generator}

    def step(model: nn.Module, data: Data, optimizer: torch.optim.Optimizer) -> float:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        logits, hidden = forward_with_hidden(model, data.x, graph_input(model, data))
        loss = distillation_loss(logits, data.teacher_logits, data.y, data.train_mask, lam, temperature)
        if structure == "gsp":
            gens["gsp"] = gen = device_generator(gens["gsp"], hidden.device)  # a no-op after the first step
            loss = loss + beta * gsp_loss(hidden, data.teacher_hidden, max_nodes, gen)
        elif structure == "lsp":
            loss = loss + beta * lsp_loss(hidden, data.teacher_hidden, data.edge_index)
        loss.backward()
        optimizer.step()
        return float(loss.detach())
    return step


# --------------------------------------------------------------------------- inference latency
@torch.no_grad()
def inference_latency(gnn: nn.Module, mlp: nn.Module, data: Data, query_sizes=(1, 10, 100, 1000),
                      fanouts=(-1, -1), repeat: int = 5, seed: int = 0, device=None) -> pd.DataFrame:
    """Wall time to predict ``q`` random query nodes, for each ``q`` in ``query_sizes``.

    * **GNN**: fetch the query nodes' ``len(fanouts)``-hop neighbourhood (``-1`` = every
      neighbour: exact outputs; NeighborLoader on a CSR built once beforehand, as a graph
      store would keep it), gather its features, build its operator, run the GNN;
    * **MLP**: gather the query nodes' features, run the MLP.

    Median of ``repeat`` timed calls after one warm-up. Returns one row per ``(q, model)`` with
    the latency, the latency per query node, the nodes touched and the GNN/MLP ratio. The query
    nodes are drawn (seeded) on the data's device; a request's features are copied to the
    models' device ``device`` (default: the GNN's) inside the timed call, as a server would.
    """
    from .utils import timeit

    repeat = check_positive_int(repeat, "repeat")
    dev = torch.device(device) if device is not None else next(gnn.parameters()).device
    gnn.eval()
    mlp.eval()
    loader = NeighborLoader(data, list(fanouts), batch_size=1)
    data_dev = data.edge_index.device
    gen = device_generator(torch.Generator().manual_seed(seed), data_dev)
    rows = []
    for q in query_sizes:
        q = check_positive_int(q, "query size")
        seeds = torch.randperm(data.num_nodes, generator=gen, device=data_dev)[:q]

        def gnn_query():
            b = loader.sample(seeds)
            return gnn(b.x.to(dev), b.edge_index.to(dev))[:b.batch_size]

        def mlp_query():
            return mlp(take_rows(data.x, seeds).to(dev))

        touched = int(loader.sample(seeds).num_nodes)
        t_gnn = timeit(gnn_query, dev, repeat=repeat)
        t_mlp = timeit(mlp_query, dev, repeat=repeat)
        label = "GNN, full neighbourhood" if all(f == -1 for f in fanouts) else f"GNN, sampled {list(fanouts)}"
        rows.append({"query_nodes": q, "model": label, "latency_ms": 1e3 * t_gnn, "per_node_ms": 1e3 * t_gnn / q,
                     "nodes_touched": touched, "gnn_over_mlp": t_gnn / t_mlp})
        rows.append({"query_nodes": q, "model": "MLP (GLNN)", "latency_ms": 1e3 * t_mlp,
                     "per_node_ms": 1e3 * t_mlp / q, "nodes_touched": q, "gnn_over_mlp": 1.0})
    return pd.DataFrame(rows)


def evaluate_on(model: nn.Module, data: Data, mask: Tensor) -> float:
    """Accuracy of ``model`` (GNN on ``data``'s graph, or MLP on features) on the nodes in ``mask``."""
    logits = teacher_logits(model, data)
    return accuracy(logits[mask.to(logits.device)], data.y.to(logits.device)[mask.to(logits.device)])



# --------------------------------------------------------------------------- experiments (notebook 10, bench)
def _cpf_split(data: Data, seed: int) -> Data:
    """A copy of ``data`` with GLNN's (CPF's) split: 20 training and 30 validation nodes per class."""
    from .data import per_class_split

    d = copy.copy(data)
    dev = data.edge_index.device
    d.train_mask, d.val_mask, d.test_mask = (m.to(dev) for m in per_class_split(data.y, 20, 30, seed=seed))
    return d


def glnn_experiment(data: Data, seeds=(0,), *, rate: float = 0.2, lam: float = 0.0, temperature: float = 1.0,
                    hidden: int = 128, epochs: int = 200, patience: int | None = 50, device="cpu",
                    split: str = "cpf") -> pd.DataFrame:
    """GLNN's comparison for each seed: a SAGE teacher, a plain MLP and the distilled MLP, trained
    (i) transductively and (ii) on the observed part of :func:`inductive_split` and scored on the
    observed test nodes, the held-out ones (the GNN then gets the full graph, the MLPs only features)
    and GLNN's production mix ``0.8 tran + 0.2 ind``. ``split="cpf"`` draws 20/30 labelled nodes per
    class with the seed (GLNN's protocol); ``"given"`` keeps ``data``'s masks.

    Hyper-parameters follow GLNN's Cora configuration (2 layers, 128 hidden units; MLP dropout 0.6,
    weight decay 5e-3; SAGE weight decay 5e-4), with full-batch SAGE and dropout 0.5.
    Returns one row per (seed, model, setting) with the test accuracy in percent. Runs on
    ``device``: a copy of ``data`` is moved there once (the caller's graph stays where it is).
    """
    from .models import MLP, SAGE

    if split not in ("cpf", "given"):
        raise ValueError(f"split must be 'cpf' or 'given', got {split!r}")
    device = resolve_device(device)
    data = to_device(data, device)
    f_in, c = data.num_features, int(getattr(data, "num_classes", int(data.y.max()) + 1))
    fit_t = dict(epochs=epochs, lr=0.01, weight_decay=5e-4, patience=patience, device=device, measure_memory=False)
    fit_s = dict(fit_t, weight_decay=5e-3)

    def train_three(d: Data, s: int):
        seed_everything(s)
        teacher = SAGE(f_in, hidden, c, dropout=0.5)
        fit(teacher, d, seed=s, **fit_t)
        seed_everything(s)
        mlp = MLP(f_in, hidden, c, dropout=0.6)
        fit(mlp, d, seed=s, **fit_s)
        seed_everything(s)
        student = MLP(f_in, hidden, c, dropout=0.6)
        train_student(student, d, teacher_logits(teacher, d), lam=lam, temperature=temperature, seed=s, **fit_s)
        return {"SAGE (teacher)": teacher, "MLP": mlp, "GLNN (MLP student)": student}

    rows = []
    for s in seeds:
        d = _cpf_split(data, s) if split == "cpf" else data
        for name, m in train_three(d, s).items():
            rows.append({"seed": s, "model": name, "setting": "transductive",
                         "acc": 100 * evaluate_on(m, d, d.test_mask)})
        sp = inductive_split(d, rate=rate, seed=s)
        for name, m in train_three(sp.observed, s).items():
            tran = 100 * evaluate_on(m, sp.observed, sp.observed.test_mask)  # observed test nodes, observed graph
            ind = 100 * evaluate_on(m, d, sp.test_ind_mask)                  # held out: a GNN gets the full graph
            rows += [{"seed": s, "model": name, "setting": "inductive: observed test", "acc": tran},
                     {"seed": s, "model": name, "setting": "inductive: held-out test", "acc": ind},
                     {"seed": s, "model": name, "setting": "production (0.8 tran + 0.2 ind)",
                      "acc": (1 - rate) * tran + rate * ind}]
    return pd.DataFrame(rows)


REPRESENTATION_VARIANTS = {
    "student alone (CE)": dict(lam=1.0),
    "KD": dict(lam=0.1, temperature=4.0),
    "KD + LSP": dict(lam=0.1, temperature=4.0, structure="lsp", beta=25.0),
    "KD + GSP": dict(lam=0.1, temperature=4.0, structure="gsp", beta=1.0),
}


def representation_experiment(data: Data, seeds=(0,), variants: dict | None = None, *, teacher_model: str = "gcn",
                              teacher_hidden: int = 256, teacher_layers: int = 3, teacher_lr: float = 0.001,
                              student_hidden: int = 32, epochs: int = 200, patience: int | None = 50,
                              device="cpu") -> pd.DataFrame:
    """GNN -> smaller GNN distillation per seed (CPF split): a ``teacher_layers x teacher_hidden``
    teacher (``teacher_model``: ``"gcn"`` or ``"sage"``) trained at ``teacher_lr``, then a 2-layer
    ``student_hidden`` SAGE student (lr 0.01) for each of ``variants`` (name -> keyword arguments of
    :func:`representation_step`; default :data:`REPRESENTATION_VARIANTS`: CE alone, logit KD, KD + LSP,
    KD + GSP). Returns one row per (seed, model) with the test accuracy in percent and the best epoch.

    The default teacher is the one that beats the student trained alone: at lr 0.01 a 3x256 SAGE on
    Cora peaks within the first ten epochs and ends below the 2x32 student; at lr 0.001 it trains
    for tens of epochs and the GCN of the same size is the stronger and steadier of the two
    (``python -m msgnn_lite.bench distill``; notebook 10, section 5).
    Runs on ``device``: a copy of ``data`` is moved there once (the caller's graph stays where it is)."""
    from .models import GCN, SAGE

    kinds = {"gcn": GCN, "sage": SAGE}
    if teacher_model not in kinds:
        raise ValueError(f"teacher_model must be one of {list(kinds)}, got {teacher_model!r}")
    if not (isinstance(teacher_lr, (int, float)) and teacher_lr > 0 and math.isfinite(teacher_lr)):
        raise ValueError(f"teacher_lr must be a positive number, got {teacher_lr!r}")
    variants = REPRESENTATION_VARIANTS if variants is None else variants
    device = resolve_device(device)
    data = to_device(data, device)
    c = int(getattr(data, "num_classes", int(data.y.max()) + 1))
    fit_kw = dict(epochs=epochs, weight_decay=5e-4, patience=patience, device=device, measure_memory=False)
    label = f"teacher ({teacher_model.upper()} {teacher_layers}x{teacher_hidden})"
    rows = []
    for s in seeds:
        d = _cpf_split(data, s)
        seed_everything(s)
        teacher = kinds[teacher_model](data.num_features, teacher_hidden, c, num_layers=teacher_layers, dropout=0.5)
        res = fit(teacher, d, seed=s, lr=teacher_lr, **fit_kw)
        rows.append({"seed": s, "model": label, "acc": 100 * res.test_acc, "best_epoch": res.best_epoch})
        teacher.eval()
        with torch.no_grad():
            d.teacher_logits, d.teacher_hidden = forward_with_hidden(teacher, d.x, graph_input(teacher, d))
        gen = device_generator(torch.Generator().manual_seed(s), device)  # GSP's subsets, drawn on the device
        for name, kw in variants.items():
            seed_everything(s)
            student = SAGE(data.num_features, student_hidden, c, num_layers=2, dropout=0.5)
            res = fit(student, d, seed=s, lr=0.01, train_step=representation_step(generator=gen, **kw), **fit_kw)
            rows.append({"seed": s, "model": f"student (SAGE 2x{student_hidden}): {name}", "acc": 100 * res.test_acc,
                         "best_epoch": res.best_epoch})
    return pd.DataFrame(rows)
