"""RevGNN: memory and time of one training step vs depth (ResGNN vs RevGNN), and a 1000-layer RevGNN trained on Cora.

    python -m msgnn_lite.bench revgnn                       # default profile, a few minutes on a 2-core CPU
    python -m msgnn_lite.bench revgnn --skip-train          # only the memory/time-vs-depth table
    python -m msgnn_lite.bench revgnn --profile full        # 100k-node graph, deeper/longer training (GPU)

Activations are the bytes autograd saves for backward (saved-tensor hooks; for RevGNN plus
the largest per-block recomputation); parameters + gradients + Adam state are reported
apart; on a GPU the CUDA peak too. Accuracies are validation-selected test accuracies.
"""
from __future__ import annotations

import time

import pandas as pd

from ..cli import positive_float, positive_int
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--profile", choices=("default", "full"), default="default")
    parser.add_argument("--nodes", type=positive_int, default=None, help="CSBM nodes for the memory sweep "
                        "(default profile 10000, full 100000)")
    parser.add_argument("--hidden", type=positive_int, default=None, help="channels in the memory sweep (32 / 80)")
    parser.add_argument("--depths", type=positive_int, nargs="+", default=[2, 10, 100, 1000])
    parser.add_argument("--max-activation-mb", type=positive_float, default=None,
                        help="ResGNN points above this are extrapolated instead of run (default 1024 / 40000)")
    parser.add_argument("--dataset", default="Cora", help="real graph for the deep training run")
    parser.add_argument("--layers", type=positive_int, default=1000, help="depth of the trained RevGNN")
    parser.add_argument("--epochs", type=positive_int, default=None, help="epochs of the deep run (default 30 / 300)")
    parser.add_argument("--hidden-deep", type=positive_int, default=32, help="channels of the trained deep RevGNN")
    parser.add_argument("--time", type=positive_float, default=10.0, help="gate initialisation T / layers (the stack "
                        "integrates dh/dt = f(h) over time T); gates learn at 0.1 / layers")
    parser.add_argument("--skip-train", action="store_true", help="only the memory/time sweep")
    add_device_argument(parser)


def run(args) -> int:
    import torch
    import torch_geometric.transforms as T

    from ..data import load_dataset, make_csbm, sparse_features
    from ..models import GCN
    from ..notebook import by_profile
    from ..revgnn import RevGNN, memory_vs_depth
    from ..train import fit
    from ..utils import resolve_device, seed_everything

    device = resolve_device(args.device)
    nodes = args.nodes or by_profile(args.profile, 10_000, 100_000)
    hidden = args.hidden or by_profile(args.profile, 32, 80)
    cap = args.max_activation_mb or by_profile(args.profile, 1024.0, 40_000.0)
    print(f"device={device}  CSBM nodes={nodes:,}  hidden={hidden}  groups=2  depths={args.depths}")
    t0 = time.perf_counter()
    graph = make_csbm(nodes, 10, 5, 32, 0.8, seed=args.seed)
    mem = memory_vs_depth(graph, args.depths, hidden_channels=hidden, num_groups=2, norm="layer",
                          max_activation_mb=cap, device=device, seed=args.seed)
    cols = ["model", "depth", "measured", "activations", "recompute", "activation_total", "param_state", "time_s"]
    cols += ["cuda_peak"] if "cuda_peak" in mem else []
    print("\nMemory (MB) and time (s) of one training step:")
    print(mem[cols].round(3).to_string(index=False))
    rev = mem[mem.model == "RevGNN"].set_index("depth")
    if {10, max(args.depths)} <= set(rev.index):
        d = max(args.depths)
        print(f"\nRevGNN activation memory {d} vs 10 layers: "
              f"{rev.loc[d, 'activation_total'] / rev.loc[10, 'activation_total']:.2f}x (goal <= 1.5x)")
    if len(rev):
        d = max(rev.index)
        print(f"RevGNN {d}-layer training step: {rev.loc[d, 'time_s']:.3f} s, "
              f"{1000 * rev.loc[d, 'time_s'] / d:.2f} ms per layer (goal on an H200: <= 0.5 s at 1000 layers)")
    both = mem[mem.measured].pivot(index="depth", columns="model", values="time_s").dropna()
    if len(both):
        print("RevGNN / ResGNN time per step: " +
              ", ".join(f"{d} layers {r:.2f}x" for d, r in (both.RevGNN / both.ResGNN).items()))
    print(f"(sweep: {time.perf_counter() - t0:.0f} s)")
    if args.skip_train:
        return 0

    data = load_dataset(args.dataset)
    if args.dataset in ("Cora", "CiteSeer", "PubMed"):
        data = sparse_features(T.NormalizeFeatures()(data))
    epochs = args.epochs or by_profile(args.profile, 30, 300)
    rows = []

    def record(name, model, n_epochs, **kw):
        seed_everything(args.seed)
        t1 = time.perf_counter()
        r = fit(model, data, epochs=n_epochs, lr=0.01, weight_decay=5e-4, device=device, seed=args.seed,
                measure_memory=False, desc=name, **kw)
        rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()), "epochs": r.epochs_run,
                     "val_acc": 100 * r.best_val_acc, "test_acc": 100 * r.test_acc,
                     "max_test_acc (paper metric)": 100 * r.max_test_acc,
                     "s/epoch": r.train_time_s / r.epochs_run, "time_s": time.perf_counter() - t1})

    seed_everything(args.seed)
    record("GCN, 2 layers", GCN(data.num_features, 64, data.num_classes, dropout=0.5), 200, patience=50)
    seed_everything(args.seed)
    # The paper's grouped block + a learnable gate per block initialised at T/L (ReZero-style; the stack
    # integrates dh/dt = f(h) over time T at any depth), identity-mapped branch weights at initialisation
    # (GCNII) and a normalised encoder output: see notebook 08.
    deep = RevGNN(data.num_features, args.hidden_deep, data.num_classes, num_layers=args.layers, num_groups=2,
                  dropout=0.5, input_dropout=0.5, norm="layer", gate=args.time / args.layers, identity_init=1.0,
                  input_norm=True)
    opt = torch.optim.Adam(deep.parameter_groups(gate_lr=0.1 / args.layers, weight_decay=5e-4), lr=0.01)
    record(f"gated RevGNN, {args.layers} layers", deep, epochs, optimizer=opt, eval_every=3)
    print(f"\nAccuracy on {args.dataset} (validation-selected test accuracy, %):")
    print(pd.DataFrame(rows).round(2).to_string(index=False))
    print(f"(total: {time.perf_counter() - t0:.0f} s)")
    return 0
