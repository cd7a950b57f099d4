"""The one training loop every genlab model goes through.

A model owns its loss: it subclasses `TrainableModule` and implements `loss()`
(one optimiser) or overrides `train_step()` (several optimisers, as GANs do).
`fit()` does the rest, plainly:

* seeded, reproducible batches drawn from in-memory tensors;
* a tqdm progress bar, per-epoch train and validation metrics in a DataFrame;
* a NaN/inf guard that stops with a message naming model, epoch and step;
* mixed precision through one switch (`genlab.precision`: bf16 where it pays);
* an exponential moving average of the weights (`ema_decay`), used for evaluation
  and sampling;
* metrics accumulated on the device and read once per epoch (no per-step host sync
  on a GPU);
* an atomic checkpoint after every epoch, and resume from it after a crash;
* a cache keyed by the full configuration, the data and the model's source code:
  the same call twice trains once, and editing a model retrains it (`genlab.cache`).
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import fcntl
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm  # the text bar: works in terminals and notebooks alike

from genlab import cuda_graphs, lanes
from genlab.atomic import save_json, save_torch
from genlab.batched import batches
from genlab.cache import model_fingerprint, set_aside
from genlab.config import config_dict
from genlab.errors import GenlabError
from genlab.paths import cache_dir
from genlab.precision import DTYPES, resolve as resolve_precision

# Bump when old checkpoints become wrong for a reason the source fingerprint cannot see.
CACHE_VERSION = 2

Batch = tuple[torch.Tensor, ...]


def adam(params, lr: float, *, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
         decoupled: bool = False) -> torch.optim.Optimizer:
    """Adam (AdamW when `decoupled`) as every genlab model uses it: fused, one kernel for all parameters per
    step. Without `fused`, CPU tensors get a Python loop over the parameters (11,000 ops per step for the gpu
    profile's RealNVP); measured in `make bench` shapes (AMD EPYC family 26, one thread, bf16) the fused step
    trains RealNVP 3 % and the conv GAN 7 % faster."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)


class TrainableModule(nn.Module):
    """What `fit()` needs from a model.

    `loss(batch)` returns (scalar loss to minimise, dict of metrics to log: floats or
    detached tensors). The default `train_step` runs one optimiser on it; override
    `train_step` for anything else, entering `self.autocast()` around forward passes.
    `validation_metrics(batch)` defaults to the loss's metrics.
    """

    grad_clip: float | None = None
    ema_decay: float = 0.0        # > 0: fit keeps an EMA of the weights, used to evaluate and sample
    channels_last: bool = False   # conv models where `make bench` shows NHWC pays
    cuda_graph: bool = False      # on a GPU, replay the loss's forward and backward as one CUDA graph
    precision: str = "fp32"       # set by fit(): the autocast dtype of forward passes

    @property
    def device(self) -> torch.device:
        """Where the parameters live. Methods that take images or latents move them here first, so a
        caller may pass CPU tensors to a model on a GPU; `sample()` returns CPU tensors."""
        return next(self.parameters()).device

    def autocast(self):
        """The mixed-precision context of this model's forward passes (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[self.precision])

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def configure_schedulers(self, optimizers, total_steps: int) -> list:
        """Per-step learning-rate schedulers (none by default)."""
        return []

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def training_loss(self, batch: Batch) -> tuple[torch.Tensor, dict]:
        """`loss(batch)` under autocast, as a training step computes it: through the captured CUDA graph
        when `fit` installed one (`genlab.cuda_graphs`)."""
        graphed = self.__dict__.get("_graphed_loss")
        if graphed is not None:
            return graphed(batch)
        with self.autocast():
            return self.loss(batch)

    def train_step(self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
        (opt,) = optimizers.values()
        loss, metrics = self.training_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.parameters(), self.grad_clip)
        opt.step()
        return {"loss": loss.detach(), **metrics}

    def ready_for_cuda_graph(self) -> bool:
        """Whether `fit` may capture the loss now (it asks after each eager step until it has): a model whose
        first steps set its own state from the data says when they are over."""
        return True

    @torch.no_grad()
    def validation_metrics(self, batch: Batch) -> dict:
        loss, metrics = self.loss(batch)
        return {"loss": loss.detach(), **metrics}


class EMA:
    """Exponential moving average of a model's weights: after step t (t = 0, 1, ...)
    ema = d_t * ema + (1 - d_t) * weights with d_t = min(decay, t / (t + 10)), so the first
    step copies the weights and the average warms up over the first few hundred steps.
    Buffers (batch-norm statistics, ActNorm's flag) are copied, not averaged."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, self.steps / (self.steps + 10))
        ema_p = [p for p in self.model.parameters()]
        new_p = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, new_p, 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.steps = state["steps"]


@dataclass
class FitResult:
    model: TrainableModule     # the weights to evaluate and sample: the EMA when the model keeps one
    history: pd.DataFrame      # one row per epoch: epoch, train_*, val_*, seconds
    cached: bool               # True when nothing was trained in this call
    run_dir: Path
    trained: TrainableModule | None = None   # the optimiser's own weights (= model without EMA)
    precision: str = "fp32"

    @property
    def train_seconds(self) -> float:
        """Wall time the training took when it ran (summed over resumed parts)."""
        return float(self.history["seconds"].sum()) if len(self.history) else 0.0


def cache_key(name: str, config: Any, data_id: str, code: str = "") -> str:
    blob = json.dumps({"name": name, "config": config_dict(config), "data": data_id, "code": code,
                       "version": CACHE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _progress_enabled() -> bool:
    return os.environ.get("GENLAB_PROGRESS", "1") != "0"


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """The index batches of one epoch: a permutation drawn from `generator`, cut into equal batches (the last,
    smaller one is dropped: every step sees the same shapes). Fewer than `batch_size` images: one batch."""
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]


def _to(batch: Batch, device) -> Batch:
    return tuple(t.to(device, non_blocking=True) for t in batch)


@torch.no_grad()
def evaluate(model: TrainableModule, data: Batch, batch_size: int = 500, device=None) -> dict[str, float]:
    """Validation metrics averaged over `data`, weighted by batch size."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n_total = 0
    for part in batches(*data, size=batch_size, device=device):
        part = part if isinstance(part, tuple) else (part,)
        metrics = model.validation_metrics(part)
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + v * len(part[0])   # tensors stay on the device until the end
        n_total += len(part[0])
    model.train(was_training)
    return {k: float(v) / n_total for k, v in totals.items()}


def _log_progress(**event) -> None:
    """One JSON line per finished epoch for the report builder, which prints it (`$GENLAB_PROGRESS_LOG`)."""
    path = os.environ.get("GENLAB_PROGRESS_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(event, default=float) + "\n")


class RunBusy(GenlabError):
    """Another process is training this run (raised instead of waiting, inside `skip_busy_runs`)."""


_WAIT_FOR_BUSY_RUNS = contextvars.ContextVar("genlab_wait_for_busy_runs", default=True)


@contextlib.contextmanager
def skip_busy_runs():
    """Inside: `fit` raises `RunBusy` for a run another process is training, instead of waiting for it
    (a build lane that trains another lane's runs ahead of it stops where that lane has got to)."""
    token = _WAIT_FOR_BUSY_RUNS.set(False)
    try:
        yield
    finally:
        _WAIT_FOR_BUSY_RUNS.reset(token)


@contextlib.contextmanager
def _claimed(run_dir: Path, name: str):
    """The run to this process alone while inside: an exclusive lock on a file beside the cache's runs,
    which the system drops when the process ends, however it ends."""
    path = run_dir.parent.parent / "locks" / f"{run_dir.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _WAIT_FOR_BUSY_RUNS.get():
                raise RunBusy(f"{name}: another process is training this run") from None
            _log_progress(model=name, waiting=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _check_finite(name: str, metrics: dict[str, float], epoch: int, step: int, run_dir: Path) -> None:
    for k, v in metrics.items():
        v = float(v)
        if not math.isfinite(v):
            raise GenlabError(
                f"{name}: '{k}' became {v} at epoch {epoch}, step {step}; training stopped. "
                f"Try a lower learning rate, gradient clipping or a warm-up, and check the input "
                f"scaling; the last good checkpoint is kept in {run_dir}"
            )


def _read_checkpoint(path: Path, model: TrainableModule, device) -> dict | None:
    """The checkpoint's state loaded into `model`, or None after setting an unreadable one aside."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        for k in ("history", "finished", "epoch", "optimizers", "schedulers", "rng"):
            state[k]
        return state
    except Exception as e:  # any damage: truncated file, wrong keys, wrong shapes
        set_aside(path.parent, f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
        return None


def fit(
    name: str,
    build: Callable[[], TrainableModule],
    config: Any,
    train: Batch,
    *,
    epochs: int,
    batch_size: int,
    data_id: str,
    val: Batch | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    on_epoch_end: Callable[[TrainableModule, int, Path], dict[str, float]] | None = None,
) -> FitResult:
    """Train `build()` on the in-memory tensors `train` for `epochs`, or load it.

    `config` (a dataclass) and `data_id` (a string naming the exact data) must
    together determine the model and its training: they form the cache key, with the
    source fingerprint of the model's code and the resolved `precision` ("auto" picks
    bf16 where it pays, see `genlab.precision`). A finished run with the same key is
    loaded, not retrained; an unfinished one resumes after its last completed epoch.
    `on_epoch_end(model, epoch, run_dir)` may return extra metrics for the history
    (e.g. FID of samples) and keep files in run_dir (e.g. samples over training); it
    and the validation see the EMA weights when the model keeps them.
    """
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(precision, device)
    torch.manual_seed(seed)
    model = build().to(device)
    code = model_fingerprint(model)
    key = cache_key(name, {"config": config, "epochs": epochs, "batch_size": batch_size, "seed": seed,
                           "precision": precision, "ema": model.ema_decay}, data_id, code)
    run_dir = cache_dir() / "runs" / f"{name}-{key}"
    # One process at a time trains or loads a run: another that needs it (a build's other lane, a second
    # build) waits and then loads it, instead of training it twice side by side.
    with _claimed(run_dir, name):
        ckpt_path = run_dir / "checkpoint.pt"
        n = len(train[0])
        steps_per_epoch = max(1, n // batch_size) if n >= batch_size else 1

        def setup(model):
            model.precision = precision
            if model.channels_last:
                model = model.to(memory_format=torch.channels_last)
            optimizers = model.configure_optimizers()
            schedulers = model.configure_schedulers(optimizers, steps_per_epoch * epochs)
            ema = EMA(model, model.ema_decay) if model.ema_decay else None
            return model, optimizers, schedulers, ema

        model, optimizers, schedulers, ema = setup(model)
        rows: list[dict] = []
        start_epoch = 1

        def result(cached: bool) -> FitResult:
            cuda_graphs.remove(model)
            model.eval()
            shown = ema.model if ema is not None else model
            shown.precision = precision
            return FitResult(shown, pd.DataFrame(rows), cached=cached, run_dir=run_dir, trained=model,
                             precision=precision)

        had_checkpoint = ckpt_path.exists()
        state = _read_checkpoint(ckpt_path, model, device) if had_checkpoint else None
        if state is not None and ema is not None:
            try:
                ema.load_state_dict(state["ema"])
            except Exception as e:  # a checkpoint without (or with a damaged) EMA: start again
                set_aside(run_dir, f"EMA state unreadable: {type(e).__name__}")
                state = None
        if had_checkpoint and state is None:
            # A damaged checkpoint was set aside: start again from the seeded initialisation.
            torch.manual_seed(seed)
            model, optimizers, schedulers, ema = setup(build().to(device))
        if state is not None:
            rows = state["history"]
            if state["finished"]:
                _log_progress(model=name, cached=True, epochs=epochs)
                return result(cached=True)
            for k, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][k])
            for sched, s in zip(schedulers, state["schedulers"]):
                sched.load_state_dict(s)
            torch.set_rng_state(state["rng"])
            if torch.cuda.is_available() and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            start_epoch = state["epoch"] + 1
        else:
            save_json({"name": name, "data": data_id, "epochs": epochs, "batch_size": batch_size,
                       "seed": seed, "precision": precision, "ema": model.ema_decay, "code": code,
                       "config": config_dict(config)}, run_dir / "config.json")

        # The whole data set moves to the device once (a no-op on the CPU); batches are index slices.
        train = _to(train, device)
        val = _to(val, device) if val is not None else None
        # On a GPU, reading a value stalls the device: the NaN guard looks every `check_every` steps.
        check_every = 1 if device.type == "cpu" else 25
        graph_pending = cuda_graphs.enabled(model, device)
        model.train()
        for epoch in range(start_epoch, epochs + 1):
            t0 = time.perf_counter()
            # The order of an epoch depends only on (seed, epoch), so a resumed run draws
            # exactly the batches the uninterrupted one would have.
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            sums: dict[str, Any] = {}
            at_half: dict[str, Any] = {}    # the sums at the epoch's middle: the log line shows its second half
            steps = 0
            bar = tqdm(total=steps_per_epoch, desc=f"{name} {epoch}/{epochs}", leave=False,
                       disable=not _progress_enabled())
            for idx in _batches(n, batch_size, gen):
                lanes.follow()
                idx = idx.to(device)
                batch = tuple(t[idx] for t in train)
                metrics = model.train_step(batch, optimizers)
                steps += 1
                # After the run's first (eager) step, once the model's data-dependent start is over (ActNorm's scales,
                # a mixture prior's means): the capture's warm-up passes would otherwise run it again.
                if graph_pending and model.ready_for_cuda_graph():
                    graph_pending = False
                    cuda_graphs.install(model, batch, tuple(k for k in metrics if k != "loss"))
                if ema is not None:
                    ema.update(model)
                for sched in schedulers:
                    sched.step()
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + (v.detach().float() if torch.is_tensor(v) else float(v))
                if steps == steps_per_epoch // 2:
                    at_half = dict(sums)    # the sums are replaced, not added to in place: this keeps them
                if steps % check_every == 0:
                    _check_finite(name, metrics if check_every == 1 else sums, epoch, steps, run_dir)
                bar.update(1)
                if _progress_enabled() and steps % 50 == 0:
                    bar.set_postfix({k: f"{float(v) / steps:.4g}" for k, v in list(sums.items())[:3]})
            bar.close()
            row = {"epoch": epoch, **{f"train_{k}": float(v) / steps for k, v in sums.items()}}
            _check_finite(name, row, epoch, steps, run_dir)
            shown = ema.model if ema is not None else model
            if val is not None:
                row.update({f"val_{k}": v for k, v in evaluate(shown, val, device=device).items()})
            if on_epoch_end is not None:
                model.eval()
                row.update(on_epoch_end(shown, epoch, run_dir))
                model.train()
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            # The metric a person watches: a validation metric other than the bare loss when there is one.
            keys = [k for k in row if k.startswith("val_")] or [k for k in row if k.startswith("train_")]
            main = "FID" if "FID" in row else next((k for k in keys if not k.endswith("_loss")), keys[0] if keys else None)
            value = row.get(main)
            late_steps = steps - steps_per_epoch // 2
            if main and main.startswith("train_") and late_steps > 0:
                # A training metric's epoch mean carries the epoch's first steps: a first epoch's early spikes
                # (a flow's bits/dim in the thousands) would stand for the whole epoch in the log line.
                k = main[6:]
                main, value = f"{main} (epoch's second half)", float(sums[k] - at_half.get(k, 0.0)) / late_steps
            _log_progress(model=name, epoch=epoch, epochs=epochs, metric=main, value=value, seconds=row["seconds"])
            save_torch({
                "model": model.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "optimizers": {k: opt.state_dict() for k, opt in optimizers.items()},
                "schedulers": [s.state_dict() for s in schedulers],
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "epoch": epoch,
                "history": rows,
                "finished": epoch == epochs,
            }, ckpt_path)
        return result(cached=False)
