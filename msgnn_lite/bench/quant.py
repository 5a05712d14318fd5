"""Degree-Quant: accuracy of FP32 vs plain QAT vs Degree-Quant, model size, int8 inference time.

    python -m msgnn_lite.bench quant                        # Cora, GCN, INT8 and INT4, 3 seeds
    python -m msgnn_lite.bench quant --dataset CiteSeer --arch SAGE --seeds 5

1. test accuracy (validation-selected, mean and std over seeds) of FP32, plain QAT (min/max
   ranges) and Degree-Quant (percentile ranges + stochastic protection) at each bit width;
2. model size from packed tensors (FP32, INT8, INT4);
3. CPU inference time: FP32 forward vs the INT8 model run with int8 matrix products
   (``torch._int_mm``), and the first layer's dense product alone.

Needs the data directory (``MSGNN_DATA``) for the real datasets.
"""
from __future__ import annotations

import time

import torch

from ..cli import positive_float, positive_int, unit_interval
from ..data import load_dataset, sparse_features
from ..quant import int8_inference_timings, model_size_bytes, qat_configs, train_qat_grid
from ..utils import resolve_device
from ._common import add_device_argument


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", default="Cora", help="Cora, CiteSeer, PubMed, ...")
    parser.add_argument("--arch", default="GCN", choices=("GCN", "SAGE"))
    parser.add_argument("--bits", type=positive_int, nargs="+", default=[8, 4])
    parser.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (from --seed on)")
    parser.add_argument("--epochs", type=positive_int, default=150)
    parser.add_argument("--hidden", type=positive_int, default=64)
    parser.add_argument("--p-min", type=unit_interval, default=0.0)
    parser.add_argument("--p-max", type=unit_interval, default=0.1)
    parser.add_argument("--percentile", type=positive_float, default=99.9)
    parser.add_argument("--momentum", type=unit_interval, default=0.1,
                        help="range-tracking momentum (0.1: full batch makes one step per epoch)")
    add_device_argument(parser)


def run(args) -> int:
    dev = resolve_device(args.device)
    t0 = time.perf_counter()
    raw = load_dataset(args.dataset)
    data = sparse_features(raw)
    seeds = list(range(args.seed, args.seed + args.seeds))
    configs = qat_configs(args.p_min, args.p_max, args.percentile, bits=tuple(args.bits))
    keep = {("FP32", args.seed), ("DQ INT8", args.seed)} if 8 in args.bits else None
    runs, models = train_qat_grid(data, configs, seeds, arch=args.arch, hidden=args.hidden, epochs=args.epochs,
                                  momentum=args.momentum, device=dev, keep=keep)
    print(f"{args.dataset}, {args.arch} 2x{args.hidden}, {args.epochs} epochs, seeds {seeds}, device {dev}, "
          f"{torch.get_num_threads()} CPU threads; DQ: p_min {args.p_min}, p_max {args.p_max}, "
          f"percentile {args.percentile}, momentum {args.momentum}")
    acc = runs.groupby("model", sort=False).agg(test_acc=("test_acc", "mean"), std=("test_acc", "std"),
                                                 epoch_ms=("epoch_ms", "median"))
    print("\n1. test accuracy (%), mean and std over seeds:")
    print(acc.round(2).to_string())

    if models:  # FP32 and DQ INT8 of the first seed
        sizes = {b: model_size_bytes(models[("DQ INT8", args.seed)], b) for b in (32, 8, 4)}
        print("\n2. model size (bytes, packed tensors): " +
              ", ".join(f"{'FP32' if b == 32 else f'INT{b}'} {s:,} ({sizes[32] / s:.2f}x)" for b, s in sizes.items()))
        inf = int8_inference_timings(models[("FP32", args.seed)], models[("DQ INT8", args.seed)], raw)
        print("\n3. CPU inference on the whole graph (median of 5):")
        print(inf.round(4).to_string())
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0
