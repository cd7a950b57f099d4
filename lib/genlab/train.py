"""The one training loop every genlab model goes through.

A model owns its loss: it subclasses `TrainableModule` and implements `loss()`
(one optimiser) or overrides `train_step()` (several optimisers, as GANs do).
`fit()` does the rest, plainly:

* seeded, reproducible batches drawn from in-memory tensors;
* a tqdm progress bar, per-epoch train and validation metrics in a DataFrame;
* a NaN/inf guard that stops with a message naming model, epoch and step;
* an atomic checkpoint after every epoch, and resume from it after a crash;
* a cache keyed by the full configuration, the data and the model's source code:
  the same call twice trains once, and editing a model retrains it (`genlab.cache`).
"""
from __future__ import annotations

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

from genlab.atomic import save_json, save_torch
from genlab.cache import model_fingerprint, set_aside
from genlab.config import config_dict
from genlab.errors import GenlabError
from genlab.paths import cache_dir

# Bump when old checkpoints become wrong for a reason the source fingerprint cannot see.
CACHE_VERSION = 2

Batch = tuple[torch.Tensor, ...]


class TrainableModule(nn.Module):
    """What `fit()` needs from a model.

    `loss(batch)` returns (scalar loss to minimise, dict of floats to log).
    The default `train_step` runs one optimiser on it; override `train_step` for
    anything else. `validation_metrics(batch)` defaults to the loss's metrics.
    """

    grad_clip: float | None = None

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def configure_schedulers(self, optimizers, total_steps: int) -> list:
        """Per-step learning-rate schedulers (none by default)."""
        return []

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def train_step(self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        (opt,) = optimizers.values()
        loss, metrics = self.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.parameters(), self.grad_clip)
        opt.step()
        return {"loss": loss.item(), **metrics}

    @torch.no_grad()
    def validation_metrics(self, batch: Batch) -> dict[str, float]:
        loss, metrics = self.loss(batch)
        return {"loss": loss.item(), **metrics}


@dataclass
class FitResult:
    model: TrainableModule
    history: pd.DataFrame      # one row per epoch: epoch, train_*, val_*, seconds
    cached: bool               # True when nothing was trained in this call
    run_dir: Path

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


def _batches(n: int, batch_size: int, generator: torch.Generator | None, drop_last: bool):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
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
    for idx in _batches(len(data[0]), batch_size, None, drop_last=False):
        idx = idx.to(data[0].device)
        metrics = model.validation_metrics(_to(tuple(t[idx] for t in data), device))
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
        n_total += len(idx)
    model.train(was_training)
    return {k: v / n_total for k, v in totals.items()}


def _log_progress(**event) -> None:
    """One JSON line per finished epoch for the report builder, which prints it (`$GENLAB_PROGRESS_LOG`)."""
    path = os.environ.get("GENLAB_PROGRESS_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(event, default=float) + "\n")


def _check_finite(name: str, metrics: dict[str, float], epoch: int, step: int, run_dir: Path) -> None:
    for k, v in metrics.items():
        if not math.isfinite(float(v)):
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
    on_epoch_end: Callable[[TrainableModule, int, Path], dict[str, float]] | None = None,
) -> FitResult:
    """Train `build()` on the in-memory tensors `train` for `epochs`, or load it.

    `config` (a dataclass) and `data_id` (a string naming the exact data) must
    together determine the model and its training: they form the cache key. A
    finished run with the same key is loaded, not retrained; an unfinished one
    resumes after its last completed epoch. `on_epoch_end(model, epoch, run_dir)`
    may return extra metrics for the history (e.g. FID of samples) and keep files in
    run_dir (e.g. samples over training).
    """
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    model = build().to(device)
    code = model_fingerprint(model)
    key = cache_key(name, {"config": config, "epochs": epochs, "batch_size": batch_size, "seed": seed},
                    data_id, code)
    run_dir = cache_dir() / "runs" / f"{name}-{key}"
    ckpt_path = run_dir / "checkpoint.pt"
    optimizers = model.configure_optimizers()
    n = len(train[0])
    steps_per_epoch = max(1, n // batch_size) if n >= batch_size else 1
    schedulers = model.configure_schedulers(optimizers, steps_per_epoch * epochs)
    rows: list[dict] = []
    start_epoch = 1

    had_checkpoint = ckpt_path.exists()
    state = _read_checkpoint(ckpt_path, model, device) if had_checkpoint else None
    if had_checkpoint and state is None:
        # A damaged checkpoint was set aside: start again from the seeded initialisation.
        torch.manual_seed(seed)
        model = build().to(device)
        optimizers = model.configure_optimizers()
        schedulers = model.configure_schedulers(optimizers, steps_per_epoch * epochs)
    if state is not None:
        rows = state["history"]
        if state["finished"]:
            _log_progress(model=name, cached=True, epochs=epochs)
            model.eval()
            return FitResult(model, pd.DataFrame(rows), cached=True, run_dir=run_dir)
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
                   "seed": seed, "code": code, "config": config_dict(config)}, run_dir / "config.json")

    # The whole data set moves to the device once (a no-op on the CPU); batches are index slices.
    train = _to(train, device)
    val = _to(val, device) if val is not None else None
    model.train()
    for epoch in range(start_epoch, epochs + 1):
        t0 = time.perf_counter()
        # The order of an epoch depends only on (seed, epoch), so a resumed run draws
        # exactly the batches the uninterrupted one would have.
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        sums: dict[str, float] = {}
        steps = 0
        bar = tqdm(total=steps_per_epoch, desc=f"{name} {epoch}/{epochs}", leave=False,
                   disable=not _progress_enabled())
        for idx in _batches(n, batch_size, gen, drop_last=True):
            idx = idx.to(device)
            metrics = model.train_step(tuple(t[idx] for t in train), optimizers)
            steps += 1
            _check_finite(name, metrics, epoch, steps, run_dir)
            for sched in schedulers:
                sched.step()
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.update(1)
            if steps % 20 == 0:
                bar.set_postfix({k: f"{v / steps:.4g}" for k, v in list(sums.items())[:3]})
        bar.close()
        row = {"epoch": epoch, **{f"train_{k}": v / steps for k, v in sums.items()}}
        if val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(model, val, device=device).items()})
        if on_epoch_end is not None:
            model.eval()
            row.update(on_epoch_end(model, epoch, run_dir))
            model.train()
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        # The metric a person watches: a validation metric other than the bare loss when there is one.
        keys = [k for k in row if k.startswith("val_")] or [k for k in row if k.startswith("train_")]
        main = "FID" if "FID" in row else next((k for k in keys if not k.endswith("_loss")), keys[0] if keys else None)
        _log_progress(model=name, epoch=epoch, epochs=epochs, metric=main, value=row.get(main),
                      seconds=row["seconds"])
        save_torch({
            "model": model.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in optimizers.items()},
            "schedulers": [s.state_dict() for s in schedulers],
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "epoch": epoch,
            "history": rows,
            "finished": epoch == epochs,
        }, ckpt_path)
    model.eval()
    return FitResult(model, pd.DataFrame(rows), cached=False, run_dir=run_dir)
