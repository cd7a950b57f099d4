"""A model's training loss (forward and backward) captured as one CUDA graph.

Why: on a GPU, a RealNVP training step is ~14,000 small kernels, and launching them from Python takes
longer than running them (one H200: 143 ms a step at batch 256 and 142 ms at batch 1024). A CUDA graph
replays the whole recorded sequence with one launch. `fit()` installs it after a run's first step (which runs
eagerly, so that data-dependent initialisation such as ActNorm's sees a real batch) for models that set
`cuda_graph = True`; the optimiser, the schedulers and the EMA stay eager (a few fused kernels each). A GAN's
step is two updates, not one loss: the GANs (`cuda_graph = "step"`) replay their whole step (`StepGraph`).

What it needs of the loss: static shapes (fit drops the last, smaller batch), no host reads of device
values and no Python branches on them, and metrics that are tensors. Random numbers drawn inside (the
dequantisation noise) stay random: CUDA graphs advance the generator's offset at every replay.

This module is not part of any model's cache fingerprint: it changes how a step is launched, not what it
computes, and it is never used on a CPU. `GENLAB_CUDA_GRAPHS=0` turns it off.
"""
from __future__ import annotations

import os
import warnings

import torch
from torch import nn

from genlab.precision import DTYPES


class _LossModule(nn.Module):
    """`model.loss` as tensors in, tensors out (loss first, then the metrics in `names`' order): the shape
    `torch.cuda.make_graphed_callables` captures. The model is a submodule, so its parameters get gradients."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *batch):
        # A graph cannot keep autocast's cache of cast weights between replays: it is turned off.
        with torch.autocast("cuda", dtype=DTYPES.get(self.model.precision, torch.float32),
                            enabled=self.model.precision != "fp32", cache_enabled=False):
            loss, metrics = self.model.loss(batch)
        return (loss, *(metrics[k] for k in self.names))


def enabled(model: nn.Module, device: torch.device) -> bool:
    return (device.type == "cuda" and getattr(model, "cuda_graph", False)
            and os.environ.get("GENLAB_CUDA_GRAPHS", "1") != "0")


def keeping_buffers(model: nn.Module, capture):
    """`capture()`, with every buffer of `model` put back as it was before. Capturing runs the loss a few
    times (warm-up passes, then the recording), and a loss that counts its steps in a buffer (the VAE's KL
    warm-up) must not count those. The values are copied back in place: the graph keeps the addresses."""
    saved = [b.detach().clone() for b in model.buffers()]
    try:
        return capture()
    finally:
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)


def install(model: nn.Module, batch: tuple[torch.Tensor, ...], names: tuple[str, ...]) -> bool:
    """Capture `model.loss` on tensors shaped like `batch` and make `model.training_loss` replay it; `names`
    are the metrics the loss returns. Returns False (and warns; training goes on eagerly) where the loss
    cannot be captured. A model with `cuda_graph = "step"` gets a `StepGraph` instead, which its `train_step`
    uses (and which captures later, after warm-up steps of its own)."""
    # The run's first step ran eagerly on the default stream and its AccumulateGrad nodes outlive it; the capture's
    # warm-up runs on a side stream, and autograd then warns of the stream mismatch. In the gpu build of 2026-11-27
    # that warning landed in the flows and autoencoders reports, while the capture itself held (2.5x per RealNVP
    # step). The warning is turned off, process-wide, once genlab captures (a torch that has the switch). A GAN's
    # StepGraph warms up on side streams too.
    quiet = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if quiet is not None:
        quiet(False)
    if getattr(model, "cuda_graph", False) == "step":
        model._step_graph = StepGraph(type(model).__name__)
        return True
    try:
        wrapper = _LossModule(model, names).train()
        graphed = keeping_buffers(model, lambda: torch.cuda.make_graphed_callables(
            wrapper, tuple(t.detach().clone() for t in batch), allow_unused_input=True))
    except Exception as e:  # never stop a run over a speed-up: say why and go on eagerly
        warnings.warn(f"{type(model).__name__}: CUDA graph capture failed ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200] if str(e) else ''}); training eagerly")
        return False

    def training_loss(batch):
        loss, *values = graphed(*batch)
        return loss, dict(zip(names, values))

    model._graphed_loss = training_loss
    return True


def remove(model: nn.Module) -> None:
    """Drop the captured graph (and its memory pool) once training is over."""
    model.__dict__.pop("_graphed_loss", None)
    model.__dict__.pop("_step_graph", None)


class StepGraph:
    """A whole training step - forward and backward passes and the optimiser steps, both updates of a GAN -
    captured once and then replayed as one CUDA graph.

    Why: a GAN step cannot be split into one loss and one optimiser (D updates between G's forward pass and G's
    loss), and on a GPU it is launch-bound: the conv GAN's step is ~370 small kernels (~240 of them spectral
    norm's power iterations) and took ~25 ms at any batch on one H200, eagerly.

    How a model uses it (`genlab.gans.graphed`): `graph(step, batch, optimizers)` where `step(batch,
    optimizers)` is the eager step. The first `warmup` calls run `step` eagerly on a side stream (real training
    steps; CUDA's libraries set up their workspaces there, as capture requires); the next captures `step` on
    static copies of the batch and replays it; every later call copies the batch into those copies and replays.
    What `step` needs: static shapes, tensors made on the device (noise drawn on the GPU, no host copies), no
    host reads of device values or Python branches on them, no learning-rate schedule (a Python float is baked
    in), and metrics that are tensors. Python-side bookkeeping belongs outside `step`: it would not run again.
    Adam must be fused (its step count lives on the device); it is marked capturable while recording only.
    A capture that fails warns once and leaves training eager."""

    warmup = 3

    def __init__(self, name: str):
        self.name = name
        self.calls = 0
        self.failed = False
        self.replay = None        # set by `capture`: replays the recorded step on `static_batch`
        self.static_batch: tuple[torch.Tensor, ...] = ()
        self.static_out: dict = {}
        self._side = None         # the warm-up's CUDA stream

    def __call__(self, step, batch, optimizers) -> dict:
        if self.failed:
            return step(batch, optimizers)
        if self.replay is None:
            if self.calls < self.warmup:
                self.calls += 1
                return self._on_side_stream(step, batch, optimizers)
            try:
                self.capture(step, batch, optimizers)
            except Exception as e:  # never stop a run over a speed-up: say why and go on eagerly
                self.failed = True
                warnings.warn(f"{self.name}: CUDA graph capture of the training step failed ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}); training eagerly")
                return step(batch, optimizers)
        for static, b in zip(self.static_batch, batch):
            static.copy_(b)
        self.replay()
        # Copies: the next replay overwrites the graph's outputs in place.
        return {k: v.clone() if torch.is_tensor(v) else v for k, v in self.static_out.items()}

    def capture(self, step, batch, optimizers) -> None:
        """Record `step` on static copies of `batch` (it does not run); `__call__` then replays it for this batch."""
        self.static_batch = tuple(t.detach().clone() for t in batch)
        groups = [g for opt in optimizers.values() for g in opt.param_groups]
        for g in groups:
            g["capturable"] = True        # Adam's check; its fused kernel does the same either way
        try:
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.static_out = step(self.static_batch, optimizers)
        finally:
            for g in groups:
                g["capturable"] = False   # checkpoints stay loadable on a CPU
        self.replay = graph.replay

    def _on_side_stream(self, step, batch, optimizers) -> dict:
        """`step` on a side stream, as CUDA graphs want their warm-up (eagerly, elsewhere than CUDA). The side
        stream waits for everything before it, and the current stream for the step."""
        if not batch[0].is_cuda:
            return step(batch, optimizers)
        self._side = self._side or torch.cuda.Stream()
        self._side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._side):
            out = step(batch, optimizers)
        torch.cuda.current_stream().wait_stream(self._side)
        return out
