"""The yardstick: a small CNN per dataset that genlab trains itself.

No Inception weights can be downloaded here, and Inception features of 28x28
digits mean little anyway. So each dataset gets its own classifier; its
penultimate layer is the feature space for FID, and its predictions give class
coverage, confidence and conditional accuracy.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genlab import data as gdata
from genlab import experiment
from genlab.config import ClassifierBudget, Profile, get_profile
from genlab.train import FitResult, TrainableModule, adam


@dataclass(frozen=True)
class ClassifierConfig:
    dataset: str
    in_channels: int
    num_classes: int
    image_size: int
    width: int
    convs_per_block: int
    lr: float
    augment: bool            # random crops and flips (the dataset registry says which datasets)
    mean: tuple[float, ...]  # per-channel input normalisation, from the training set
    std: tuple[float, ...]


def _block(c_in: int, c_out: int, convs: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return layers


class Classifier(TrainableModule):
    """Three conv blocks (width, 2x, 4x), each followed by 2x2 max pooling, then a
    fully connected feature layer of 4*width units and the linear class head.

    `features(x)` is that 4*width-dimensional penultimate representation.
    Inputs are uint8 or float images in [0, 1]; normalisation happens inside.
    """
    # NHWC convolutions (make bench, AMD EPYC, 2 threads): the MNIST classifier's training ran 1.50x eager
    # float32 in bf16 alone and 2.16x with channels_last; CIFAR-10's, one thread at batch 256, 757 -> 1042
    # images/s. Its features then feed every FID, so this is paid back on every sample set measured too.
    channels_last = True

    def __init__(self, cfg: ClassifierConfig, total_steps: int = 1):
        super().__init__()
        self.cfg = cfg
        w, k = cfg.width, cfg.convs_per_block
        self.body = nn.Sequential(
            *_block(cfg.in_channels, w, k), nn.MaxPool2d(2),
            *_block(w, 2 * w, k), nn.MaxPool2d(2),
            *_block(2 * w, 4 * w, k), nn.MaxPool2d(2),
            nn.Flatten(),
            # 28 -> 3 and 32 -> 4 pixels after three poolings
            nn.Linear(4 * w * (cfg.image_size // 8) ** 2, 4 * w), nn.ReLU(inplace=True),
            nn.Dropout(0.2),
        )
        self.head = nn.Linear(4 * w, cfg.num_classes)
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(cfg.std).view(1, -1, 1, 1))
        self.num_features = 4 * w

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = gdata.to_float(x.to(self.mean.device))
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    # --- training -------------------------------------------------------------------
    def configure_optimizers(self):
        return {"adam": adam(self.parameters(), lr=self.cfg.lr, weight_decay=5e-4, decoupled=True)}

    def configure_schedulers(self, optimizers, total_steps):
        # One-cycle: a short warm-up then annealing - reaches a good accuracy in few epochs.
        return [torch.optim.lr_scheduler.OneCycleLR(optimizers["adam"], max_lr=self.cfg.lr,
                                                    total_steps=total_steps, pct_start=0.25)]

    def loss(self, batch):
        x, y = batch
        x = gdata.to_float(x)
        if self.training and self.cfg.augment:
            x = gdata.random_crop_flip(x)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"accuracy": (logits.argmax(1) == y).float().mean().detach()}


def _budget_config(ds: gdata.Dataset, budget: ClassifierBudget) -> ClassifierConfig:
    x = gdata.to_float(ds.x_train[:10000])
    return ClassifierConfig(
        dataset=ds.name,
        in_channels=ds.shape[0],
        num_classes=len(ds.classes),
        image_size=ds.shape[-1],
        width=budget.width,
        convs_per_block=budget.convs_per_block,
        lr=budget.lr,
        augment=ds.spec.augment,
        mean=tuple(round(v, 4) for v in x.mean((0, 2, 3)).tolist()),
        std=tuple(round(v, 4) for v in x.std((0, 2, 3)).tolist()),
    )


def train_classifier(dataset: str, profile: str | Profile = "cpu") -> tuple[Classifier, FitResult, float]:
    """Train (or load from the cache) the classifier of `dataset` for `profile`.

    Returns (classifier in eval mode, its fit result, its test accuracy).
    """
    profile = get_profile(profile)
    ds = gdata.load(dataset)
    budget = profile.classifiers[ds.name]
    cfg = _budget_config(ds, budget)
    result = experiment.train_on("classifier", lambda: Classifier(cfg), cfg, ds, profile, epochs=budget.epochs,
                                 batch_size=budget.batch_size, images=budget.train_subset, labels=ds.y_train,
                                 labels_id="labels", val_images=profile.eval_subset or len(ds.x_test),
                                 val_labels=True)
    # The last epoch's validation is the test accuracy of the final weights (no EMA): no need to measure again.
    return result.model, result, float(result.history["val_accuracy"].iloc[-1])


@functools.lru_cache(maxsize=None)
def cached_classifier(dataset: str, profile_name: str):
    """One classifier per (dataset, profile) per process."""
    return train_classifier(dataset, profile_name)
