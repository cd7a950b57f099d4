"""Measuring samples with genlab's own classifiers.

* FID on the classifier's penultimate features (torchmetrics' implementation,
  given our feature extractor), always with the real-data floor beside it: the
  FID of as many held-out real test images against the same reference.
* Class coverage and the predicted-class histogram, for mode collapse.
* Mean classifier confidence, and accuracy on class-conditional samples.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from genlab import data as gdata
from genlab.batched import batches, map_batches
from genlab.cache import json_memo, tensor_memo
from genlab.config import Profile, get_profile


# torchmetrics' FID state of the real (reference) images.
_REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


class FeatureExtractor(nn.Module):
    """Wraps any `features(x)` model for torchmetrics (which wants `num_features`)."""

    def __init__(self, model: nn.Module, batch_size: int = 1000):
        super().__init__()
        self.model = model
        self.num_features = model.num_features
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return map_batches(self.model.features, x, size=self.batch_size, cpu=False).double()


class GivenFeatures(nn.Module):
    """For a torchmetrics FID fed with features the caller computed (a Yardstick computes a sample
    set's features once, for its FID and its class probabilities alike)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features.double()


def new_fid(extractor: nn.Module) -> FrechetInceptionDistance:
    """A torchmetrics FID that keeps its real statistics across `reset()`."""
    # normalize=True: our extractor takes float images in [0, 1] as they are.
    return FrechetInceptionDistance(feature=extractor, normalize=True, reset_real_features=False)


def fid(real: torch.Tensor, fake: torch.Tensor, extractor: nn.Module, batch_size: int = 1000) -> float:
    """FID between two image sets (uint8 or float in [0, 1]) on `extractor`'s features."""
    metric = new_fid(extractor).to(next(extractor.parameters(), torch.zeros(0)).device)
    for x in batches(real, size=batch_size):
        metric.update(gdata.to_float(x), real=True)
    for x in batches(fake, size=batch_size):
        metric.update(gdata.to_float(x), real=False)
    return float(metric.compute())


def class_histogram(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share of samples predicted as each class (sums to 1)."""
    return torch.bincount(pred, minlength=num_classes).float() / max(len(pred), 1)


def class_coverage(pred: torch.Tensor, num_classes: int, min_share: float = 0.2) -> float:
    """Fraction of classes that receive at least `min_share` of a uniform share.

    A generator that covers every class evenly scores 1.0; one that produces a
    single class scores 1/num_classes. With the default, a class needs 2 % of
    the samples (of 10 classes) to count as covered.
    """
    hist = class_histogram(pred, num_classes)
    return int((hist >= min_share / num_classes).sum()) / num_classes


@dataclass
class SampleReport:
    fid: float
    fid_floor: float
    coverage: float
    confidence: float              # mean of the classifier's top probability
    confident_share: float         # share of samples whose top probability is >= 0.9
    histogram: list[float]
    conditional_accuracy: float | None = None


# Where measured sample sets are kept (the running notebook's Report installs its `save_samples`),
# so that anyone can re-measure a report's numbers from the very images behind them.
_sample_sink: Callable[[str, torch.Tensor, dict], object] | None = None


def keep_measured_samples(sink: Callable[[str, torch.Tensor, dict], object] | None) -> None:
    global _sample_sink
    _sample_sink = sink


class Yardstick:
    """A dataset's classifier, ready to measure sample sets of that dataset."""

    def __init__(self, dataset: str, profile: str | Profile = "cpu"):
        from genlab.classifier import cached_classifier

        self.profile = get_profile(profile)
        self.dataset = gdata.load(dataset)
        self.classifier, self.fit_result, self.test_accuracy = cached_classifier(
            self.dataset.name, self.profile.name)
        self.device = next(self.classifier.parameters()).device
        self._extractor = FeatureExtractor(self.classifier)
        self._fid = new_fid(GivenFeatures(self.classifier.num_features)).to(self.device)
        n_ref = self.profile.fid_reference or len(self.dataset.x_train)
        self.n_reference = n_ref
        self._floors: dict[int, float] = {}
        # The reference statistics and floors are kept beside the classifier's checkpoint:
        # a rebuild that retrains nothing does not recompute them either.
        stats = tensor_memo(self.fit_result.run_dir / f"fid_reference_{n_ref}.pt", lambda: self._reference_stats(n_ref),
                            code=new_fid)
        for name in _REAL_STATES:
            setattr(self._fid, name, stats[name].to(self.device))

    @property
    def run_name(self) -> str:
        """What makes this yardstick's numbers what they are: its classifier's run (configuration, data
        and code) and the size of the FID reference set."""
        return f"{self.fit_result.run_dir.name}+ref{self.n_reference}"

    def _reference_stats(self, n_ref: int) -> dict[str, torch.Tensor]:
        for x in batches(self.dataset.x_train[:n_ref], size=2000):
            self._fid.update(self.features(x), real=True)
        return {name: getattr(self._fid, name) for name in _REAL_STATES}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's feature layer (what FID compares) for uint8 or [0, 1] float images."""
        return self._extractor(gdata.to_float(images).to(self.device))

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    def fid(self, images: torch.Tensor) -> float:
        """FID of `images` against the reference (training-set) statistics."""
        return self._fid_of(self.features(images))

    def _fid_of(self, features: torch.Tensor) -> float:
        self._fid.reset()
        self._fid.update(features, real=False)
        return float(self._fid.compute())

    @property
    def fid_floor(self) -> float:
        """FID of the profile's `fid_samples` held-out real test images."""
        return self.floor(self.profile.fid_samples)

    def floor(self, n: int) -> float:
        """FID of n held-out real test images against the reference: the best a model's
        n samples can hope for (FID is biased upwards for small n, so compare like counts)."""
        n = min(n, len(self.dataset.x_test))
        if n not in self._floors:
            self._floors[n] = json_memo(self.fit_result.run_dir / f"fid_floor_{n}_of_{self.n_reference}.json",
                                        lambda: self.fid(self.dataset.x_test[:n]), code=new_fid)
        return self._floors[n]

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Class probabilities of `images` (from their `features` when already computed)."""
        features = self.features(images) if features is None else features
        return self.classifier.head(features.float()).softmax(1).cpu()

    def measure(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, name: str | None = None,
                config: dict | None = None) -> SampleReport:
        """Every sample metric at once; `labels` are the intended classes, if any. With a `name`,
        the uint8 images (and labels, config) are kept through the installed sample sink."""
        if name is not None and _sample_sink is not None:
            extra = {} if labels is None else {"labels": labels.cpu().tolist()}
            _sample_sink(name, images.cpu(), {**(config or {}), **extra, "measured_by": f"{self.dataset.name} "
                                              f"classifier, profile {self.profile.name}"})
        features = self.features(images)
        probs = self.probabilities(images, features)
        pred = probs.argmax(1)
        return SampleReport(
            fid=self._fid_of(features),
            fid_floor=self.floor(len(images)),
            coverage=class_coverage(pred, self.num_classes),
            confidence=float(probs.max(1).values.mean()),
            confident_share=float((probs.max(1).values >= 0.9).float().mean()),
            histogram=class_histogram(pred, self.num_classes).tolist(),
            conditional_accuracy=None if labels is None else float((pred == labels.cpu()).float().mean()),
        )


@functools.lru_cache(maxsize=None)
def yardstick(dataset: str, profile_name: str = "cpu") -> Yardstick:
    """One Yardstick per (dataset, profile) per process."""
    return Yardstick(dataset, profile_name)
