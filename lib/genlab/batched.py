"""Inference over many images a batch at a time: the one loop that metrics, samplers and studies share.

Why batches at all: a whole test set (10 000 images) through a classifier or a flow's inverse at once holds
every layer's activations together - gigabytes on a CPU, more than a small GPU has. Why one helper: the
chunk loop was written seven times, each with its own way of moving inputs and collecting outputs.
A batch size is the caller's (it knows the model's memory per image); results depend on it only up to float
rounding (a convolution may pick another algorithm for another batch size), so callers keep theirs fixed.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from genlab import lanes


def batches(*tensors: torch.Tensor, size: int, device=None) -> Iterator:
    """Aligned slices of `tensors` (equal length along dim 0), `size` rows at a time, moved to `device`
    if given: one tensor per step when one was passed, else a tuple."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, not {size}")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"batches() needs tensors of one length, got {[len(t) for t in tensors]}")
    for i in range(0, n, size):
        lanes.follow()   # a lane of the build may be given more threads while it evaluates
        part = tuple(t[i:i + size] if device is None else t[i:i + size].to(device) for t in tensors)
        yield part[0] if len(part) == 1 else part


@torch.no_grad()
def map_batches(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor, size: int, device=None,
                cpu: bool = True) -> torch.Tensor:
    """fn applied to `tensors` `size` rows at a time (without autograd), outputs concatenated along dim 0;
    each output is moved to the CPU as it comes (`cpu=True`) so that a GPU holds one batch at a time."""
    outs = []
    for part in batches(*tensors, size=size, device=device):
        out = fn(*part) if isinstance(part, tuple) else fn(part)
        outs.append(out.cpu() if cpu else out)
    return torch.cat(outs)
