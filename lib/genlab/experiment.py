"""One way to train a model on a dataset under a profile, for every study.

It owns what the studies used to spell out each time: which training images (the first
`images`, or all), the string that names that data in the cache key, the profile's seed,
device and precision, and the validation images. The model, its config and its budget
stay with the study.
"""
from __future__ import annotations

from typing import Callable

import torch

from genlab import data as gdata
from genlab.config import Profile
from genlab.train import FitResult, TrainableModule, fit


def train_images(ds: gdata.Dataset, *limits: int) -> int:
    """How many training images a run sees: the smallest of the non-zero `limits` and the dataset."""
    return min(n for n in (*limits, len(ds.x_train)) if n)


def train_on(prefix: str, build: Callable[[], TrainableModule], config, ds: gdata.Dataset, profile: Profile, *,
             epochs: int, batch_size: int, images: int = 0, labels: torch.Tensor | None = None,
             labels_id: str = "", val_images: int = 0, seed: int | None = None, precision: str | None = None,
             on_epoch_end=None) -> FitResult:
    """Train (or load) `build()` as run `{prefix}-{dataset}` on the first `images` training images of `ds`
    (0: all), with per-image `labels` when given (named `labels_id` in the cache key: "labels" for the
    dataset's own, a clustering's name for others), scoring the first `val_images` test images after
    every epoch. Seed, device and precision are the profile's unless given."""
    n = train_images(ds, images)
    train = (ds.x_train[:n],) if labels is None else (ds.x_train[:n], labels[:n])
    data_id = f"{ds.name}:train[:{n}]" + (f"+{labels_id}" if labels is not None else "")
    val = (ds.x_test[:val_images],) if val_images else None
    return fit(f"{prefix}-{ds.name}", build, config, train, epochs=epochs, batch_size=batch_size, data_id=data_id,
               val=val, seed=profile.seed if seed is None else seed, device=profile.device,
               precision=precision or profile.precision, on_epoch_end=on_epoch_end)
