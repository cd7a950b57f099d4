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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="batches per epoch (default: a whole epoch)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    args = parser.parse_args(argv)
    try:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"device cpu; one epoch of the MNIST classifier (cpu profile), batch 128")
        results = classifier_bench(limit=args.limit, workers=args.workers)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rates = {}
    for name, (seconds, n) in results.items():
        rates[name] = n / seconds
        print(f"  {name:45s} {n:6d} images in {seconds:6.1f} s  = {n / seconds:7.0f} images/s")
    fast, slow = list(rates.values())
    print(f"  speed-up of in-memory tensors over the DataLoader: {fast / slow:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
