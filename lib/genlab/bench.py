"""`make bench`: how fast genlab trains, measured, never asserted in a test.

One epoch of the MNIST classifier (the `cpu` profile's architecture) fed two
ways, in one run on the same machine:

* genlab: the whole training set as one uint8 tensor in memory, batches are
  index slices, conversion to float happens per batch;
* the usual approach: torchvision's `datasets.MNIST` with `ToTensor()` and a
  `DataLoader`, i.e. one PIL image and one transform call per sample.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from genlab import data as gdata
from genlab.classifier import Classifier, _budget_config
from genlab.config import get_profile
from genlab.errors import GenlabError


WARMUP_BATCHES = 3  # first steps pay one-time costs (allocator, kernels): not timed


def _epoch(model, batches, optimizers, limit: int | None) -> tuple[float, int]:
    model.train()
    n = 0
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if limit is not None and i >= limit:
            break
        if i == WARMUP_BATCHES:
            n, t0 = 0, time.perf_counter()
        model.train_step((x, y), optimizers)
        n += len(x)
    return time.perf_counter() - t0, n


def _tensor_batches(ds, batch_size, seed):
    order = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(seed))
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        yield ds.x_train[idx], ds.y_train[idx]


def classifier_bench(batch_size: int = 128, limit: int | None = None, workers: int = 0) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ds = gdata.load("mnist")
    cfg = _budget_config(ds, get_profile("cpu").classifiers["mnist"])
    results = {}
    for name in ("in-memory tensors (genlab)", f"torchvision DataLoader + ToTensor (workers={workers})"):
        torch.manual_seed(0)
        model = Classifier(cfg)
        opts = model.configure_optimizers()
        if name.startswith("in-memory"):
            batches = _tensor_batches(ds, batch_size, 0)
        else:
            tv = datasets.MNIST(str(ds.root), train=True, download=False, transform=transforms.ToTensor())
            batches = DataLoader(tv, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
        seconds, n = _epoch(model, batches, opts, limit)
        results[name] = (seconds, n)
    return results


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """The machine's measured fp32 matmul rate in FLOP/s (the practical peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def flow_bench(steps: int = 20, batch_size: int | None = None, sample_n: int = 500) -> dict:
    """RealNVP (cpu profile) on MNIST: training images/s, FLOP rate of a training step
    (convolutions and matmuls, counted by torch.utils.flop_counter), sampling images/s."""
    from torch.utils.flop_counter import FlopCounterMode

    from genlab.flow_study import model_config
    from genlab.flows import RealNVP

    profile = get_profile("cpu")
    ds = gdata.load("mnist")
    cfg = model_config(ds, profile.flows)
    batch_size = batch_size or profile.flows.batch_size
    torch.manual_seed(0)
    model = RealNVP(cfg)
    opts = model.configure_optimizers()
    x = ds.x_train[:batch_size]
    with FlopCounterMode(display=False) as counter:
        model.train_step((x,), opts)
    flops_per_step = counter.get_total_flops()
    for _ in range(WARMUP_BATCHES):
        model.train_step((x,), opts)
    t0 = time.perf_counter()
    for i in range(steps):
        model.train_step((ds.x_train[i * batch_size:(i + 1) * batch_size],), opts)
    step_time = (time.perf_counter() - t0) / steps
    model.eval()
    model.sample(16)
    t0 = time.perf_counter()
    model.sample(sample_n)
    sample_time = time.perf_counter() - t0
    return {"batch": batch_size, "flops_per_step": flops_per_step, "step_s": step_time,
            "train_img_s": batch_size / step_time, "flop_rate": flops_per_step / step_time,
            "sample_img_s": sample_n / sample_time,
            "parameters": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="batches per epoch (default: a whole epoch)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--only", choices=["data", "flow"], help="run one part only")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    try:
        if args.only in (None, "data"):
            print("\n[data pipeline] one epoch of the MNIST classifier (cpu profile), batch 128")
            results = classifier_bench(limit=args.limit, workers=args.workers)
            rates = {}
            for name, (seconds, n) in results.items():
                rates[name] = n / seconds
                print(f"  {name:45s} {n:6d} images in {seconds:6.1f} s  = {n / seconds:7.0f} images/s")
            fast, slow = list(rates.values())
            print(f"  speed-up of in-memory tensors over the DataLoader: {fast / slow:.2f}x")
        if args.only in (None, "flow"):
            peak = matmul_rate()
            r = flow_bench()
            print(f"\n[RealNVP, cpu profile, MNIST] {r['parameters']:,} parameters, batch {r['batch']}")
            print(f"  training        {r['train_img_s']:8.0f} images/s  ({r['step_s'] * 1000:.0f} ms per step)")
            print(f"  sampling        {r['sample_img_s']:8.0f} images/s")
            print(f"  FLOPs per training step (conv + matmul, forward + backward): {r['flops_per_step'] / 1e9:.2f} G")
            print(f"  achieved        {r['flop_rate'] / 1e9:8.1f} GFLOP/s = {r['flop_rate'] / peak:.0%} of the "
                  f"measured fp32 matmul rate ({peak / 1e9:.1f} GFLOP/s, 2048x2048)")
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
