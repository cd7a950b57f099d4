"""One way to train a model on a dataset under a profile, for every study.

It owns what the studies used to spell out each time: which training images (the first
`images`, or all), the string that names that data in the cache key, the profile's seed,
device and precision, and the validation images. The model, its config and its budget
stay with the study.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from genlab import data as gdata
from genlab.atomic import save_json
from genlab.cache import code_fingerprint, set_aside
from genlab.config import Profile
from genlab.train import FitResult, TrainableModule, fit

MEASURED_BY = "measured_by.json"   # beside a checkpoint: what measured the metrics in its history


class _MeasuredByOther(Exception):
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir


def fit_measured(fit_with: Callable[[Callable], FitResult], on_epoch_end: Callable, measured_with: str) -> FitResult:
    """`fit_with(callback)` (a `fit` call), where `callback` runs `on_epoch_end` and the run's history
    stays tied to what measured it: `measured_with` (e.g. the yardstick classifier's run) and the source
    of `on_epoch_end`. The model's cache key cannot see either, so a cached or half-trained run whose
    history another monitor measured - or none - is set aside and trained again: no history number
    outlives the classifier or the code that made it."""
    ident = f"{measured_with}@{code_fingerprint(on_epoch_end)}"

    def marked(run_dir: Path) -> str | None:
        try:
            return json.loads((run_dir / MEASURED_BY).read_text())["monitor"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def callback(model, epoch, run_dir):
        mark = marked(run_dir)
        if mark is None and epoch == 1:
            save_json({"monitor": ident}, run_dir / MEASURED_BY)
        elif mark != ident:         # resumed, but the epochs before were measured by another monitor
            raise _MeasuredByOther(run_dir)
        return on_epoch_end(model, epoch, run_dir)

    try:
        result = fit_with(callback)
    except _MeasuredByOther as e:
        set_aside(e.run_dir, "its first epochs were measured by another classifier or monitor code", stale=True)
        return fit_with(callback)
    if result.cached and marked(result.run_dir) != ident:
        set_aside(result.run_dir, "its history was measured by another classifier or monitor code, or by none",
                  stale=True)
        return fit_with(callback)
    return result


def train_images(ds: gdata.Dataset, *limits: int) -> int:
    """How many training images a run sees: the smallest of the non-zero `limits` and the dataset."""
    return min(n for n in (*limits, len(ds.x_train)) if n)


def train_on(prefix: str, build: Callable[[], TrainableModule], config, ds: gdata.Dataset, profile: Profile, *,
             epochs: int, batch_size: int, images: int = 0, labels: torch.Tensor | None = None,
             labels_id: str = "", val_images: int = 0, val_labels: bool = False, seed: int | None = None, precision: str | None = None,
             monitor: tuple[Callable, str] | None = None) -> FitResult:
    """Train (or load) `build()` as run `{prefix}-{dataset}` on the first `images` training images of `ds`
    (0: all), with per-image `labels` when given (named `labels_id` in the cache key: "labels" for the
    dataset's own, a clustering's name for others), scoring the first `val_images` test images (with
    their labels if `val_labels`) after every epoch. Seed, device and precision are the profile's unless given. `monitor` = (on_epoch_end, a
    name for what it measures with) measures the model after every epoch (see `fit_measured`)."""
    n = train_images(ds, images)
    train = (ds.x_train[:n],) if labels is None else (ds.x_train[:n], labels[:n])
    data_id = f"{ds.name}:train[:{n}]" + (f"+{labels_id}" if labels is not None else "")
    val = ((ds.x_test[:val_images], ds.y_test[:val_images]) if val_labels else (ds.x_test[:val_images],)) \
        if val_images else None

    def fit_with(callback=None):
        return fit(f"{prefix}-{ds.name}", build, config, train, epochs=epochs, batch_size=batch_size, data_id=data_id,
                   val=val, seed=profile.seed if seed is None else seed, device=profile.device,
                   precision=precision or profile.precision, on_epoch_end=callback)

    return fit_with() if monitor is None else fit_measured(fit_with, *monitor)
