"""The experiments of the GANs notebook; every number is measured here with the
dataset's own classifier (FID against the real floor, coverage, conditional accuracy).

Each section is an experiment that returns a plain dataclass (`vanilla_experiment` ->
`VanillaRun`s, `conv_experiment` -> `ConvResults`, `cgan_experiment` -> `CGANResults`,
`progan_experiment` -> `ProGANResults`), a `show_*` that draws its figures (genlab.plots) and
tables and records its headline numbers, and a `*_text` that narrates it from the dataclass's
fields - never from a table's display labels, so the prose is tested on synthetic results
(tests/test_prose.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch.nn import functional as F

from genlab import data as gdata, experiment, plots
from genlab.atomic import save_torch
from genlab.cache import json_memo, module_fingerprint, tensor_memo
from genlab.clusters import cluster_labels, cluster_prior
from genlab.config import Profile, config_dict, get_profile
from genlab.gan_budget import GANBudget
from genlab.gans import ConvGAN, ConvGANConfig, GANConfig, VanillaGAN, to_signed, to_uint8
from genlab.metrics import Yardstick, class_histogram, yardstick
from genlab.paths import cache_dir
from genlab.progan import ProGAN, ProGANConfig, ProGANStage, downsample_to
from genlab.train import fit

COLLAPSE_COVERAGE = 0.8    # below this class coverage an epoch is flagged as mode collapse
FM_WEIGHT = 1.0            # feature-matching weight beside the adversarial loss in cGAN + FM


def clusters(dataset: str, n: int, k: int) -> torch.Tensor:
    """`cluster_labels`, kept on disk: k-means on CIFAR-10's pixels takes half a minute a build."""
    return tensor_memo(cache_dir() / "clusters" / f"{dataset}-{n}-k{k}.pt",
                       lambda: {"labels": cluster_labels(dataset, n, k)}, code=cluster_labels)["labels"]


def clusters_id(k: int) -> str:
    """What names the k-means labels in a GAN's data id: k and the source of the module that makes them."""
    return f"kmeans{k}@{module_fingerprint([cluster_labels.__module__])}"


# --- 1. vanilla GAN ------------------------------------------------------------------------

def _monitor_samples(model, n: int, epoch: int) -> torch.Tensor:
    """The samples the per-epoch monitor measures after `epoch` (seeded by the epoch)."""
    return model.sample(n, generator=torch.Generator().manual_seed(epoch))


def final_histogram(dataset: str, profile: Profile, result) -> list[float]:
    """Predicted-class shares of the very samples behind the last epoch's coverage."""
    ys = yardstick(dataset, profile.name)
    last = int(result.history["epoch"].iloc[-1])
    pred = ys.probabilities(_monitor_samples(result.model, profile.gans.samples, last)).argmax(1)
    return class_histogram(pred, ys.num_classes).tolist()


def vanilla_monitor(ys: Yardstick, n: int, seed: int, noise: int) -> tuple[Callable, str]:
    """What the vanilla GAN's history measures after every epoch - n samples (kept), their FID, coverage
    and confidence, and a grid from fixed noise - and a name for all that it depends on."""
    fixed = torch.randn(32, noise, generator=torch.Generator().manual_seed(seed))

    def monitor(model, epoch, run_dir: Path):
        samples = _monitor_samples(model, n, epoch)
        # Kept beside the checkpoint (a cached run has no monitor), copied into the report by the section.
        save_torch(samples, run_dir / f"measured_epoch{epoch}.pt")
        m = ys.measure(samples)
        with torch.no_grad():
            grid = to_uint8(model.generator(fixed.to(model.device))).cpu()
        save_torch(grid, run_dir / f"samples_epoch{epoch}.pt")
        return {"FID": m.fid, "FID floor": m.fid_floor, "coverage": m.coverage, "confidence": m.confidence}
    return monitor, f"{ys.run_name}, {n} samples, seed {seed}"


def train_vanilla(dataset: str, profile: str | Profile):
    profile = get_profile(profile)
    b = profile.gans
    ds = gdata.load(dataset)
    ys = yardstick(ds.name, profile.name)
    cfg = GANConfig(image_shape=tuple(ds.shape), hidden=b.vanilla_hidden, lr_g=b.lr, lr_d=b.lr, ema=b.vanilla_ema)
    result = experiment.train_on("gan", lambda: VanillaGAN(cfg), cfg, ds, profile, epochs=b.vanilla_epochs,
                                 batch_size=b.batch_size, images=b.train_subset,
                                 monitor=vanilla_monitor(ys, b.samples, profile.seed, cfg.noise))
    return cfg, result


@dataclass
class VanillaRun:
    """The MLP GAN on one dataset: its per-epoch history (losses, discriminator outputs, and the FID,
    floor, coverage and confidence of each epoch's samples) and what it drew."""

    dataset: str                       # the registry's name
    title: str
    classes: tuple[str, ...]
    config: GANConfig
    history: pd.DataFrame
    histogram: list[float]             # predicted-class shares of the last epoch's measured samples
    grids: dict[int, torch.Tensor]     # epoch -> the fixed noise's samples after it
    run_dir: Path
    train_minutes: float
    raw_fid: float | None = None       # the last epoch's FID from the raw weights (None: no EMA)

    def final(self, column: str) -> float:
        return float(self.history[column].iloc[-1])

    @property
    def epochs(self) -> int:
        return int(self.history["epoch"].iloc[-1])

    @property
    def collapsed_epochs(self) -> list[int]:
        """Epochs whose class coverage fell below COLLAPSE_COVERAGE: flagged as mode collapse."""
        h = self.history
        return [int(e) for e in h.loc[h["coverage"] < COLLAPSE_COVERAGE, "epoch"]]


def vanilla_experiment(profile: str | Profile, datasets) -> list[VanillaRun]:
    """The seed's MLP GAN on each dataset, measured after every epoch."""
    profile = get_profile(profile)
    runs = []
    for ds_name in datasets:
        ds = gdata.load(ds_name)
        cfg, result = train_vanilla(ds_name, profile)
        epochs = [int(e) for e in result.history["epoch"]]
        shown = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
        runs.append(VanillaRun(ds.name, ds.title, ds.classes, cfg, result.history,
                               final_histogram(ds_name, profile, result),
                               {e: torch.load(result.run_dir / f"samples_epoch{e}.pt") for e in shown},
                               result.run_dir, result.train_seconds / 60, _raw_weights_fid(ds_name, profile, cfg, result)))
    return runs


def _raw_weights_fid(dataset: str, profile: Profile, cfg: GANConfig, result) -> float | None:
    """FID of the last epoch's samples (same noise) from the optimiser's own weights: what the EMA bought.
    None when the run keeps no EMA (its samples are the raw weights')."""
    if not cfg.ema:
        return None
    last = int(result.history["epoch"].iloc[-1])
    m = yardstick(dataset, profile.name).measure(
        _monitor_samples(result.trained, profile.gans.samples, last), name=f"measured_vanilla_{dataset}_raw",
        config={"dataset": dataset, "epoch": last, "seed": last, "weights": "raw", "gan": config_dict(cfg)})
    return m.fid


def vanilla_table(runs: list[VanillaRun]) -> pd.DataFrame:
    return pd.DataFrame([{
        "dataset": r.title, "epochs": r.epochs, "final D loss": r.final("train_loss_d"),
        "final G loss": r.final("train_loss_g"), "D(x)": r.final("train_D(x)"), "D(G(z))": r.final("train_D(G(z))"),
        "FID": r.final("FID"), "FID, raw weights": r.raw_fid, "FID floor": r.final("FID floor"),
        "coverage": r.final("coverage"),
        "min coverage": float(r.history["coverage"].min()), "collapse flagged": bool(r.collapsed_epochs),
        "train time (min)": r.train_minutes} for r in runs])


def show_vanilla(report, runs: list[VanillaRun]) -> None:
    """Each run's curves and samples over training (its measured samples kept with the report), the
    collapse flags, the table and the final samples' class histograms."""
    n = report.profile.gans.samples
    report.say(f"Each epoch's {n} samples are measured; an epoch whose class coverage "
               f"is below {COLLAPSE_COVERAGE:.0%} is flagged as mode collapse.")
    for r in runs:
        plots.show(plots.plot_gan_history(r.history, f"{r.title}: vanilla GAN", n, COLLAPSE_COVERAGE))
        shown = list(r.grids)
        report.grid(f"vanilla_{r.dataset}_over_training", torch.cat([g[:16] for g in r.grids.values()]),
                    f"{r.title}: the same noise after epochs {', '.join(map(str, shown))} (one row each)", nrow=16,
                    config={"dataset": r.dataset, "gan": config_dict(r.config), "epochs": shown})
        for e in r.history["epoch"]:
            report.save_samples(f"measured_vanilla_{r.dataset}_epoch{e}", torch.load(r.run_dir / f"measured_epoch{e}.pt"),
                                {"dataset": r.dataset, "epoch": int(e), "seed": int(e), "gan": config_dict(r.config)})
        if r.collapsed_epochs:
            report.say(f"**Warning: mode collapse flagged** for {r.title}: class coverage fell below "
                       f"{COLLAPSE_COVERAGE:.0%} at epoch(s) {', '.join(map(str, r.collapsed_epochs))}.")
        report.headline("vanilla GAN FID", r.final("FID"), "FID", r.dataset)
        report.headline("vanilla GAN class coverage", r.final("coverage"), "fraction", r.dataset)
    report.table(vanilla_table(runs))
    plots.show(plots.plot_histograms([(r.histogram, r.classes, f"{r.title}: predicted classes of the final samples")
                                      for r in runs]))


def vanilla_text(runs: list[VanillaRun]) -> str:
    out = []
    for r in runs:
        d_loss = r.final("train_loss_d")
        out.append(
            f"**Vanilla GAN, {r.title}.** After {r.epochs} epochs the losses are D {d_loss:.3f}, "
            f"G {r.final('train_loss_g'):.3f} with D(x) = {r.final('train_D(x)'):.2f} and "
            f"D(G(z)) = {r.final('train_D(G(z))'):.2f}: "
            + ("the discriminator has **not** won (the seed's run ended at D loss 0.0000)"
               if d_loss > 0.1 else "the discriminator is winning")
            + f". FID {r.final('FID'):.3g} against a real floor of {r.final('FID floor'):.3g}"
            + (f" (samples from the EMA of the weights, decay {r.config.ema:g}; the same run's raw weights: FID "
               f"{r.raw_fid:.3g})" if r.raw_fid is not None else "")
            + f"; class coverage "
            f"{r.final('coverage'):.0%} (lowest over training {r.history['coverage'].min():.0%}"
            + (f", **mode collapse was flagged** after epoch(s) {collapse_epochs_text(r)})." if r.collapsed_epochs
               else ", no collapse flagged)."))
    return "\n\n".join(out)


def collapse_epochs_text(r: VanillaRun) -> str:
    """Which epochs were flagged, and whether the coverage came back: a GAN's first epochs often cover few
    classes while its samples are still far from the data, which is not the collapse of a trained GAN."""
    flagged = r.collapsed_epochs
    text = ", ".join(map(str, flagged))
    if flagged[-1] == r.epochs:
        return text + ", the last one included"
    return text + f"; from epoch {flagged[-1] + 1} on it stayed at or above {COLLAPSE_COVERAGE:.0%}"


# --- 2. convolutional GAN: what each small-budget technique buys -----------------------------

def train_conv(dataset: str, profile: str | Profile, *, classes: int = 0, seed: int | None = None,
               epochs: int | None = None, images: int = 0, self_conditioning: int | None = None, **changes):
    """A ConvGAN (the full recipe, with `changes` to ConvGANConfig) on `dataset`'s first `images`
    training images (0: the budget's subset). With classes, the projection cGAN on the labels;
    without, conditioned on `self_conditioning` k-means clusters of the images (default: the
    budget's; 0: a plain unconditional GAN). Returns (config, fit result)."""
    profile = get_profile(profile)
    b = profile.gans
    ds = gdata.load(dataset)
    n = experiment.train_images(ds, images, b.train_subset)
    k = b.self_conditioning if self_conditioning is None else self_conditioning
    labels, labels_id, prior = ds.y_train[:n], "labels", None
    if not classes and k:
        labels = clusters(ds.name, n, k)
        labels_id = clusters_id(k)
        prior = cluster_prior(labels, k)
    mode_seeking = b.cgan_mode_seeking_for(ds.name) if classes else b.mode_seeking
    cfg = ConvGANConfig(image_shape=tuple(ds.shape), classes=classes or k, width=b.conv_width,
                        **{"lr_g": b.conv_lr_g, "lr_d": b.conv_lr_d, "mode_seeking": mode_seeking, **changes})
    result = experiment.train_on("cgan" if classes else "convgan", lambda: ConvGAN(cfg), cfg, ds, profile,
                                 epochs=epochs or (b.cgan_epochs if classes else b.conv_epochs_for(ds.name)),
                                 batch_size=b.batch_size, images=n, labels=labels, labels_id=labels_id, seed=seed)
    result.model.label_prior = result.trained.label_prior = prior
    return cfg, result


@dataclass(frozen=True)
class Technique:
    """One change to the conv GAN recipe in the ablation. `adds`: True when the row adds a technique
    to the recipe (it pays if FID falls), False when it removes or replaces one (it pays if FID rises).
    `change` gives ConvGANConfig / train_conv arguments from the budget; None: the recipe's own run,
    sampled from its raw weights instead of the EMA. `seed_offset` > 0: the recipe itself with another seed, which
    changes no technique and measures one run's noise."""

    label: str
    change: Callable[[GANBudget], dict] | None
    adds: bool = False
    seed_offset: int = 0


# Each variant changes one technique of the recipe; all train the same steps on the same images.
# Removing the EMA needs no run of its own: it is the recipe's run, sampled from the raw weights.
# The recipe's second seed sets the noise band each change is weighed against (one run each, so a difference of a
# few FID points decides nothing: measured seed to seed, MNIST's conv GANs move by 10-20 %).
CONV_ABLATION = [
    Technique("recipe: self-conditioned, SN + hinge + EMA + mode seeking", lambda b: {}),
    Technique("recipe, another seed (one run's noise)", lambda b: {}, seed_offset=1),
    Technique("− EMA (raw weights of the same run)", None),
    Technique("− self-conditioning (plain unconditional)", lambda b: {"self_conditioning": 0}),
    Technique("− mode seeking", lambda b: {"mode_seeking": 0.0}),
    Technique("− spectral norm", lambda b: {"spectral_norm": False}),
    Technique("non-saturating loss instead of hinge", lambda b: {"loss": "ns"}),
    Technique("+ TTUR (lr G ÷2, D ×2)", lambda b: {"lr_g": b.conv_lr_g / 2, "lr_d": b.conv_lr_d * 2}, adds=True),
]


@dataclass(frozen=True)
class Measured:
    """One sample set, measured by its dataset's yardstick."""

    title: str             # the dataset's
    variant: str
    fid: float
    floor: float
    coverage: float
    confident: float       # share of samples the classifier labels with confidence >= 0.9
    train_minutes: float

    @property
    def ratio(self) -> float:
        return self.fid / self.floor


def _measure_conv(profile: Profile, ys, ds_name, label, cfg, model, seconds, weights="ema",
                  tag="") -> tuple[Measured, torch.Tensor]:
    samples = model.sample(profile.gans.samples, generator=torch.Generator().manual_seed(profile.seed))
    m = ys.measure(samples, name=f"measured_convgan_{ds_name}{tag}",
                   config={"dataset": ds_name, "weights": weights, "seed": profile.seed, "gan": config_dict(cfg)})
    return Measured(ys.dataset.title, label, m.fid, m.fid_floor, m.coverage, m.confident_share, seconds / 60), samples


def _measured_table(rows: list[Measured]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": m.title, "variant": m.variant, "FID": m.fid, "FID floor": m.floor,
                          "× floor": m.ratio, "coverage": m.coverage, "confidence ≥ 0.9": m.confident,
                          "train time (min)": m.train_minutes} for m in rows])


@dataclass
class ConvRecipeRun:
    dataset: str
    config: ConvGANConfig
    measured: Measured
    samples: torch.Tensor      # the first measured samples, for the report's grid


@dataclass
class ConvResults:
    recipes: list[ConvRecipeRun]                  # the recipe on every dataset
    ablation: list[tuple[Technique, Measured]]    # on the first dataset; the recipe's own run first
    ablation_images: int

    @property
    def baseline(self) -> Measured:
        return self.ablation[0][1]

    @property
    def second_seed(self) -> Measured | None:
        """The recipe's run with another seed (None: none ran): how far it lands from the first is one run's noise."""
        return next((m for t, m in self.ablation if t.seed_offset), None)


def conv_experiment(profile: str | Profile, datasets) -> ConvResults:
    """The conv GAN recipe on every dataset (`conv_epochs` of it); then, on the first dataset with the
    shorter `ablation_epochs` each, one technique changed at a time."""
    profile = get_profile(profile)
    b = profile.gans
    recipes = []
    for ds_name in datasets:
        ys = yardstick(ds_name, profile.name)
        cfg, result = train_conv(ds_name, profile)
        m, samples = _measure_conv(profile, ys, ds_name,
                                   f"recipe ({b.self_conditioning} clusters), {b.conv_epochs_for(ds_name)} epoch(s)",
                                   cfg, result.model, result.train_seconds)
        recipes.append(ConvRecipeRun(ds_name, cfg, m, samples[:32]))

    ds_name = datasets[0]
    ys = yardstick(ds_name, profile.name)
    ablation, full = [], None
    for t in CONV_ABLATION:
        if t.change is None:
            cfg, result = full
            m, _ = _measure_conv(profile, ys, ds_name, t.label, cfg, result.trained, result.train_seconds,
                                 weights="raw", tag="_ablation_raw")
        else:
            change, seed = t.change(b), profile.seed + t.seed_offset
            cfg, result = train_conv(ds_name, profile, epochs=b.ablation_epochs, images=b.ablation_subset,
                                     seed=seed, **change)
            full = full or (cfg, result)
            tag = "_ablation_" + ("_".join(f"{k}{v}" for k, v in change.items()) or "recipe")
            tag += f"_seed{seed}" if t.seed_offset else ""
            m, _ = _measure_conv(profile, ys, ds_name, t.label, cfg, result.model, result.train_seconds, tag=tag)
        ablation.append((t, m))
    return ConvResults(recipes, ablation, experiment.train_images(ys.dataset, b.ablation_subset, b.train_subset))


def show_conv(report, results: ConvResults) -> None:
    b = report.profile.gans
    for r in results.recipes:
        report.grid(f"convgan_{r.dataset}", r.samples, f"{r.measured.title}: conv GAN (EMA generator)", nrow=16,
                    config={"dataset": r.dataset, "seed": report.profile.seed, "gan": config_dict(r.config)})
        report.headline("conv GAN FID", r.measured.fid, "FID", r.dataset)
        report.headline("conv GAN FID / real floor", r.measured.ratio, "ratio", r.dataset)
        report.headline("conv GAN class coverage", r.measured.coverage, "fraction", r.dataset)
    epochs = ", ".join(f"{b.conv_epochs_for(r.dataset)} on {r.measured.title}" for r in results.recipes)
    report.say(f"The recipe on each dataset: epochs {epochs}, each of {b.train_subset or 'all'} training images, "
               f"batch {b.batch_size}; {b.samples} samples per measurement.")
    report.table(_measured_table([r.measured for r in results.recipes]))
    report.say(f"One technique changed at a time on {results.baseline.title}, each run {b.ablation_epochs} epoch(s) "
               f"of {results.ablation_images} training images (the same optimiser steps on the same images):")
    report.table(_measured_table([m for _, m in results.ablation]))


def conv_text(results: ConvResults, vanilla: list[VanillaRun]) -> str:
    out = []
    for r in results.recipes:
        m = r.measured
        text = (f"**Conv GAN, {m.title}.** The recipe reaches FID {m.fid:.3g} against a real floor of "
                f"{m.floor:.3g} ({m.ratio:.1f}× the floor), class coverage {m.coverage:.0%}, "
                f"in {m.train_minutes:.1f} min")
        mlp = next((v for v in vanilla if v.dataset == r.dataset), None)
        if mlp is not None:
            text += f"; the seed's MLP GAN ends at FID {mlp.final('FID'):.3g} after {mlp.train_minutes:.1f} min"
        out.append(text + ".")
    base, other = results.baseline, results.second_seed
    noise = None if other is None else abs(other.fid - base.fid)
    parts = []
    for t, m in results.ablation[1:]:
        if t.seed_offset:
            continue
        d = m.fid - base.fid
        pays = (d < 0) if t.adds else (d > 0)
        verdict = ("within one run's noise" if noise is not None and abs(d) <= noise else
                   "the technique pays" if pays else "the technique does not pay here")
        parts.append(f"{m.variant}: FID {m.fid:.3g} ({d:+.3g}: {verdict})")
    if noise is None:
        caveat = "One seed per variant: differences of a few FID points are within noise."
    else:
        caveat = (f"One run per variant; the recipe with a second seed scores FID {other.fid:.3g}, so a change of up "
                  f"to {noise:.2g} is one run's noise and is called so.")
    out.append(f"**What each technique buys ({base.title}, short budget).** The recipe: FID {base.fid:.3g}. "
               + "; ".join(parts) + ". " + caveat)
    return "\n\n".join(out)


# --- 3. conditional GAN (projection discriminator) and feature matching ------------------------

@torch.no_grad()
def intra_class_diversity(ys, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean pairwise distance of classifier features within each class, averaged over classes."""
    feats = ys.features(images).float().cpu()
    dists = []
    for c in labels.unique():
        f = feats[labels == c][:200]
        if len(f) > 1:
            dists.append(torch.pdist(f).mean())
    return float(torch.stack(dists).mean())


# The projection cGAN, then what mode seeking and feature matching change: (label, file tag, changes to
# the recipe, at most this many seeds). The plain cGAN's collapse is plain from one seed (diversity 2.5
# against the real 16.5 on MNIST); the two recipes compared over `cgan_seeds` seeds get the budget.
CGAN_VARIANTS = [
    ("cGAN", "cgan", {"mode_seeking": 0.0}, 1),
    ("cGAN + mode seeking", "cgan_ms", {}, None),
    ("cGAN + mode seeking + feature matching", "cgan_ms_fm", {"feature_matching": FM_WEIGHT}, None),
    # Why this dataset's mode-seeking weight: the weight it is compared with (by default the other dataset's), one seed.
    ("cGAN + mode seeking at the compared weight", "cgan_ms_compared_weight",
     lambda b, ds: {"mode_seeking": b.cgan_mode_seeking_compared_for(ds)}, 1),
]


@dataclass(frozen=True)
class CGANRun:
    """One cGAN run (a variant of CGAN_VARIANTS, one seed), measured on `samples` labels cycling through the classes."""

    dataset: str
    title: str
    variant: str
    seed: int
    mode_seeking: float
    accuracy: float            # share of samples the classifier puts in the asked class
    fid: float
    floor: float
    coverage: float
    diversity: float           # intra-class diversity of the samples
    real_diversity: float      # ... and of as many real test images
    train_minutes: float


@dataclass(frozen=True)
class Spread:
    """Mean and half the range over seeds."""

    mean: float
    half_range: float

    @classmethod
    def of(cls, values) -> "Spread":
        values = list(values)
        return cls(sum(values) / len(values), (max(values) - min(values)) / 2)


@dataclass(frozen=True)
class CGANSummary:
    """A variant on one dataset over its seeds."""

    dataset: str
    title: str
    variant: str
    seeds: int
    mode_seeking: float
    accuracy: Spread
    fid: Spread
    diversity: Spread
    real_diversity: float

    @property
    def collapsed(self) -> bool:
        """Collapsed within its classes: its samples of a class are less than a third as diverse as real ones."""
        return self.diversity.mean < self.real_diversity / 3


@dataclass
class ClassGrid:
    tag: str
    dataset: str
    title: str
    variant: str
    classes: tuple[str, ...]
    per_class: int
    images: torch.Tensor
    labels: torch.Tensor
    config: ConvGANConfig


@dataclass
class CGANResults:
    runs: list[CGANRun]
    grids: list[ClassGrid]          # the first seed of each variant, one row per class
    images: int                     # training images of each run

    def summary(self) -> list[CGANSummary]:
        """Per dataset and variant (in the order they ran): mean and spread over the seeds."""
        groups: dict[tuple[str, str], list[CGANRun]] = {}
        for r in self.runs:
            groups.setdefault((r.dataset, r.variant), []).append(r)
        return [CGANSummary(rs[0].dataset, rs[0].title, rs[0].variant, len(rs), rs[0].mode_seeking,
                            Spread.of(r.accuracy for r in rs), Spread.of(r.fid for r in rs),
                            Spread.of(r.diversity for r in rs), rs[0].real_diversity) for rs in groups.values()]


def cgan_experiment(profile: str | Profile, datasets) -> CGANResults:
    """The projection cGAN variants of CGAN_VARIANTS over `cgan_seeds` seeds per dataset."""
    profile = get_profile(profile)
    b = profile.gans
    runs, grids = [], []
    for ds_name in datasets:
        ds = gdata.load(ds_name)
        ys = yardstick(ds_name, profile.name)
        n = b.samples
        real_div = intra_class_diversity(ys, ds.x_test[:n], ds.y_test[:n])
        for label, short, changes, max_seeds in CGAN_VARIANTS:
            changes = changes(b, ds_name) if callable(changes) else changes
            for seed in range(profile.seed, profile.seed + min(b.cgan_seeds, max_seeds or b.cgan_seeds)):
                cfg, result = train_conv(ds_name, profile, classes=len(ds.classes), seed=seed,
                                         images=b.cgan_subset, **changes)
                model = result.model
                labels = torch.arange(n) % len(ds.classes)
                samples = model.sample(n, generator=torch.Generator().manual_seed(seed), labels=labels)
                tag = f"{short}_{ds_name}_seed{seed}"
                m = ys.measure(samples, labels, name=f"measured_{tag}",
                               config={"dataset": ds_name, "seed": seed, "gan": config_dict(cfg)})
                runs.append(CGANRun(ds.name, ds.title, label, seed, cfg.mode_seeking, m.conditional_accuracy, m.fid,
                                    m.fid_floor, m.coverage, intra_class_diversity(ys, samples, labels), real_div,
                                    result.train_seconds / 60))
                if seed == profile.seed:
                    per_class = 10
                    grid_labels = torch.arange(len(ds.classes)).repeat_interleave(per_class)
                    grid = model.sample(len(grid_labels), generator=torch.Generator().manual_seed(1), labels=grid_labels)
                    grids.append(ClassGrid(tag, ds.name, ds.title, label, ds.classes, per_class, grid, grid_labels, cfg))
    n_train = experiment.train_images(gdata.load(datasets[-1]), b.cgan_subset, b.train_subset)
    return CGANResults(runs, grids, n_train)


def cgan_table(runs: list[CGANRun]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": r.title, "model": r.variant, "seed": r.seed, "mode seeking": r.mode_seeking,
                          "conditional accuracy": r.accuracy, "FID": r.fid, "FID floor": r.floor,
                          "coverage": r.coverage, "intra-class diversity": r.diversity,
                          "real diversity": r.real_diversity, "train time (min)": r.train_minutes} for r in runs])


def cgan_summary_table(summary: list[CGANSummary]) -> pd.DataFrame:
    rows = []
    for s in summary:
        row = {"dataset": s.title, "model": s.variant, "seeds": s.seeds, "mode seeking": s.mode_seeking}
        for name, spread in (("accuracy", s.accuracy), ("FID", s.fid), ("diversity", s.diversity)):
            row[f"{name} mean"], row[f"{name} ±"] = spread.mean, spread.half_range
        rows.append(row)
    return pd.DataFrame(rows)


def cgan_headline(s: CGANSummary) -> str:
    """The name of a variant's headline number, the share of its samples in the asked class. A variant that
    collapsed within its classes scores high with a handful of images per class: its name says so and does not
    call it an accuracy, so that "the best cGAN's accuracy" is that of one that works."""
    what = "share of samples in the asked class, collapsed within each class" if s.collapsed else "conditional accuracy"
    return f"{s.variant} {what} (mean of {s.seeds} seed{'s' if s.seeds != 1 else ''})"


def cgan_weights_text(b) -> str:
    """The cGANs' mode-seeking weight: one number, or one per dataset ("0.3 (MNIST), 0.15 (Fashion-MNIST)")."""
    if len(set(b.cgan_mode_seeking)) == 1:
        return f"{b.cgan_mode_seeking[0]:g}"
    return ", ".join(f"{b.cgan_mode_seeking_for(ds):g} ({gdata.SPECS[ds].title})" for ds in b.datasets)


def show_cgan(report, results: CGANResults) -> None:
    b = report.profile.gans
    for g in results.grids:
        report.save_samples(g.tag, g.images, {"dataset": g.dataset, "labels": g.labels.tolist(),
                                              "seed": 1, "gan": config_dict(g.config)})
    for ds in dict.fromkeys(g.dataset for g in results.grids):    # one figure per dataset, a panel per variant
        grids = [g for g in results.grids if g.dataset == ds]
        plots.show(plots.plot_class_grids([(g.images, g.variant) for g in grids], grids[0].classes,
                                          grids[0].per_class))
        report.say(f"*{grids[0].title}: samples of each cGAN variant (first seed), one row per class.*")
    summary = results.summary()
    for s in summary:
        report.headline(cgan_headline(s), s.accuracy.mean, "fraction", s.dataset)
    report.say(f"{b.samples} samples per run, labels cycling through the classes; the real diversity is that of "
               f"{b.samples} test images. Each model trains {b.cgan_epochs} epoch(s) of {results.images} images with "
               f"{b.cgan_seeds} seed(s) (the plain cGAN and the run at the compared weight: one); mode-seeking "
               f"weight {cgan_weights_text(b)}, feature-matching weight {FM_WEIGHT:g}:")
    report.table(cgan_table(results.runs))
    report.say("Mean and spread (half the range) over the seeds:")
    report.table(cgan_summary_table(summary))


def _versus(a: Spread, seeds_a: int, b: Spread, seeds_b: int, what: str, fmt: str) -> str:
    """'a vs b' with their spreads, and whether the change exceeds the seed spread. A one-seed value has no
    spread: it is marked as one seed, not shown as "± 0", and only a side with several seeds sets the spread."""
    def value(s: Spread, seeds: int) -> str:
        return f"{s.mean:{fmt}}" + (f" ± {s.half_range:{fmt}}" if seeds > 1 else " (one seed)")
    spreads = [s.half_range for s, n in ((a, seeds_a), (b, seeds_b)) if n > 1]
    gap = b.mean - a.mean
    if not spreads:
        verdict = "one seed each: no spread to weigh the change against"
    elif abs(gap) <= max(spreads):
        verdict = "within the seed spread"
    else:
        verdict = "up beyond the seed spread" if gap > 0 else "down beyond the seed spread"
    return f"{what} {value(a, seeds_a)} → {value(b, seeds_b)} ({verdict})"


def _changes(a: CGANSummary, b: CGANSummary) -> str:
    return "; ".join(_versus(getattr(a, field), a.seeds, getattr(b, field), b.seeds, what, fmt)
                     for field, what, fmt in (("accuracy", "conditional accuracy", ".1%"), ("fid", "FID", ".3g"),
                                              ("diversity", "intra-class diversity", ".3g")))


def cgan_comparison(variants: list[CGANSummary]) -> str:
    """Prose for one dataset (its summaries in CGAN_VARIANTS' order): what mode seeking changed, then what
    feature matching added on top, and the mode-seeking weight."""
    plain, ms, fm, ms_other = variants
    text = [f"**Conditional GANs, {plain.title}** (mean ± half-range over {plain.seeds}, {ms.seeds} and "
            f"{fm.seeds} seeds; real intra-class diversity {plain.real_diversity:.3g})."]
    for a, b, name in ((plain, ms, "Adding mode seeking"), (ms, fm, "Adding feature matching to that")):
        text.append(f"{name}: {_changes(a, b)}.")
    text.append("Without mode seeking the generator " + (
        f"**collapses within each class**: its samples of a class are {plain.diversity.mean / plain.real_diversity:.0%} "
        "as diverse as real ones, which a high accuracy hides." if plain.collapsed else
        "keeps a diversity within a factor of three of the real data's."))
    text.append(f"The mode-seeking weight: {ms_other.mode_seeking:g} (one seed) against this dataset's "
                f"{ms.mode_seeking:g}: {_changes(ms_other, ms)}.")
    return " ".join(text)


def cgan_text(results: CGANResults) -> str:
    summary = results.summary()
    return "\n\n".join(cgan_comparison([s for s in summary if s.dataset == ds])
                       for ds in dict.fromkeys(s.dataset for s in summary))


# --- 4. progressive growing GAN on CIFAR-10 ---------------------------------------------------

def progan_config(profile: Profile) -> ProGANConfig:
    """ProGAN on CIFAR-10 with the conv GAN's recipe, self-conditioned on the budget's clusters."""
    b = profile.gans
    gan = ConvGANConfig(image_shape=(3, 32, 32), classes=b.self_conditioning, lr_g=b.progan_lr, lr_d=b.progan_lr,
                        mode_seeking=b.mode_seeking, ema=b.progan_ema, betas=tuple(b.progan_betas))
    return ProGANConfig(gan=gan, channels=b.progan_channels)


def progan_monitor(ys: Yardstick, n: int, seed: int) -> tuple[Callable, str]:
    """What ProGAN's history measures at every point - the FID of n samples at 32 px (where in a stage
    the steps still pay) - and a name for all that it depends on."""
    def fid_now(model, epoch, run_dir):
        return {"FID": ys.fid(model.sample(n, generator=torch.Generator().manual_seed(seed), size=32))}
    return fid_now, f"{ys.run_name}, {n} samples, seed {seed}"


def train_progan(profile: str | Profile, monitor: tuple[Callable, str] | None = None):
    """Grow 4 -> 8 -> 16 -> 32, one `fit` per stage; each stage starts from the last one's weights.
    `monitor` = (on_epoch_end, a name for what it measures with): measures the model at every history
    point (see `experiment.fit_measured`)."""
    profile = get_profile(profile)
    b = profile.gans
    ds = gdata.load("cifar10")
    base = progan_config(profile)
    # Stage s takes the next steps_s / epochs_per_stage batches of training images, wrapping around at the
    # end of the set; the clusters are those of every image some stage sees.
    sizes = [max(1, steps // b.progan_epochs_per_stage) * b.progan_batch for steps in b.progan_steps]
    seen = min(sum(sizes), len(ds.x_train))
    k = base.gan.classes
    labels = clusters(ds.name, seen, k) if k else None
    prior = cluster_prior(labels, k) if k else None
    stages, previous, prev_model = [], None, None
    offset = 0
    for s, (steps, n) in enumerate(zip(b.progan_steps, sizes)):
        cfg = ProGANStage(base, s, steps, previous)
        idx = (offset + torch.arange(n)) % seen
        data = (ds.x_train[idx],) if labels is None else (ds.x_train[idx], labels[idx])
        offset += n

        def build(cfg=cfg, prev=prev_model):
            model = ProGAN(cfg)
            model.label_prior = prior          # samples draw clusters as often as they occur
            return model.grow_from(prev) if prev is not None else model

        data_id = f"cifar10:train[{offset - n}:{offset}] mod {seen}" + (f"+{clusters_id(k)}" if k else "")

        def fit_with(callback=None):     # called within this iteration: the loop's names are this stage's
            return fit(f"progan-stage{s}", build, cfg, data, epochs=b.progan_epochs_per_stage,
                       batch_size=b.progan_batch, seed=profile.seed, device=profile.device,
                       precision=profile.precision, on_epoch_end=callback, data_id=data_id)

        result = fit_with() if monitor is None else experiment.fit_measured(fit_with, *monitor)
        stages.append((cfg, result, min(n, seen)))
        # The next stage grows from the weights the optimisers trained (G and D as they were matched),
        # not from their EMA: the EMA is for sampling and measuring.
        previous, prev_model = cfg, result.trained
    return stages


def lowres_floor(ys, n: int, resolution: int) -> float:
    """FID of n real test images reduced to `resolution` and shown upsampled to full size: the best a
    stage at that resolution can score. Kept beside the classifier (it changes only with it)."""
    def compute():
        x = ys.dataset.x_test[:n]
        low = F.interpolate(downsample_to(to_signed(x), resolution), size=x.shape[-1], mode="nearest")
        return ys.fid(to_uint8(low))
    return json_memo(ys.fit_result.run_dir / f"fid_floor_{n}_at_{resolution}px.json", compute, code=lowres_floor)


@dataclass(frozen=True)
class ProGANStageResult:
    stage: int                  # 1 to 4
    resolution: int
    steps: int
    distinct_images: int
    fid: float                  # of samples upsampled to 32 px
    floor: float                # real test images reduced to this resolution (and upsampled)
    floor_32: float             # real test images at 32 px
    coverage: float
    fid_change_last: float      # relative change of FID over the stage's last history point (nan: no history)
    final_d_loss: float
    score_gap: float            # D(x) - D(G(z)) at the end of the stage
    train_minutes: float

    @property
    def ratio(self) -> float:
        """FID against the real floor at the stage's own resolution."""
        return self.fid / self.floor


@dataclass
class ProGANResults:
    stages: list[ProGANStageResult]
    history: pd.DataFrame            # every stage's history: step, stage, floor, FID, losses, D scores
    samples: list[torch.Tensor]      # 16 samples per stage, upsampled to 32 px
    config: ProGANConfig

    @property
    def falling(self) -> bool:
        """FID falls from every stage to the next."""
        return all(b.fid < a.fid for a, b in zip(self.stages, self.stages[1:]))


def progan_experiment(profile: str | Profile) -> ProGANResults:
    """ProGAN grown over its stages on CIFAR-10, each stage measured at 32 px against the real floor at the
    stage's own resolution."""
    profile = get_profile(profile)
    b = profile.gans
    ys = yardstick("cifar10", profile.name)
    n, seed = b.samples, profile.seed
    stages = train_progan(profile, monitor=progan_monitor(ys, n, seed))
    results, histories, shown, t0 = [], [], [], 0
    for cfg, result, n_images in stages:
        model = result.model
        res = model.resolution
        samples = model.sample(n, generator=torch.Generator().manual_seed(seed), size=32)
        m = ys.measure(samples, name=f"measured_progan_stage{cfg.stage + 1}",
                       config={"stage": cfg.stage, "resolution": res, "upsampled_to": 32,
                               "seed": seed, "progan": config_dict(cfg.base)})
        floor_res = lowres_floor(ys, n, res)
        h = result.history.copy()
        h["step"] = h["epoch"] * (cfg.steps // b.progan_epochs_per_stage) + t0
        h["stage"] = cfg.stage
        h["floor"] = floor_res
        histories.append(h)
        t0 = int(h["step"].iloc[-1])
        last = h.iloc[-1]
        results.append(ProGANStageResult(
            cfg.stage + 1, res, cfg.steps, n_images, m.fid, floor_res, m.fid_floor, m.coverage,
            # Still falling at the last history point: more steps would pay at this resolution.
            h["FID"].iloc[-1] / h["FID"].iloc[-2] - 1 if "FID" in h and len(h) > 1 else float("nan"),
            float(last["train_loss_d"]), float(last["train_D(x)"] - last["train_D(G(z))"]), result.train_seconds / 60))
        shown.append(samples[:16])
    return ProGANResults(results, pd.concat(histories), shown, stages[-1][0].base)


def progan_table(results: ProGANResults) -> pd.DataFrame:
    return pd.DataFrame([{
        "stage": s.stage, "resolution": f"{s.resolution}×{s.resolution}", "steps": s.steps,
        "distinct images": s.distinct_images, "FID (upsampled to 32)": s.fid,
        "real floor at this resolution": s.floor, "real floor at 32×32": s.floor_32, "coverage": s.coverage,
        "FID change over the last point (%)": round(100 * s.fid_change_last, 1), "final D loss": s.final_d_loss,
        "D(x) − D(G(z))": s.score_gap, "train time (min)": s.train_minutes} for s in results.stages])


def show_progan(report, results: ProGANResults) -> None:
    for s, samples in zip(results.stages, results.samples):
        report.grid(f"progan_stage{s.stage}", samples,
                    f"ProGAN after stage {s.stage} ({s.resolution}×{s.resolution}, shown upsampled)", nrow=16,
                    config={"stage": s.stage - 1, "resolution": s.resolution, "progan": config_dict(results.config)})
    plots.show(plots.plot_progan_history(results.history))
    report.table(progan_table(results))
    report.headline("ProGAN FID at the last stage", results.stages[-1].fid, "FID", "cifar10")


def progan_text(results: ProGANResults) -> str:
    stages = results.stages
    resolutions = ", ".join(f"{s.resolution}×{s.resolution}" for s in stages)
    last = stages[-1]
    return (f"**ProGAN.** FID by stage: {', '.join(f'{s.fid:.3g}' for s in stages)} — "
            + ("it falls at every stage." if results.falling else "it does **not** fall at every stage.")
            + " Against real images reduced to the same resolution, the samples score "
            + ", ".join(f"{s.ratio:.1f}×" for s in stages)
            + f" that floor ({resolutions}), after "
            + ", ".join(str(s.steps) for s in stages) + " optimiser steps per stage."
            + progan_steps_text(stages)
            + f" The last stage ends with hinge D loss {last.final_d_loss:.3f} (2 = D cannot tell "
            f"real from fake, 0 = it separates them by the full margin) and a score gap D(x) − D(G(z)) of "
            f"{last.score_gap:.3f}: "
            + ("the discriminator has not won the way the seed's BCE discriminator did (loss 0.0000)."
               if last.final_d_loss > 0.1 else "the discriminator is winning.")
            + f" Resolutions reached: {resolutions}.")


# Karras et al. (2018), section 4: the discriminator sees 800k real images while a new resolution fades in and
# 800k more while it stabilises; the first resolution trains for 800k.
PAPER_IMAGES_PER_PHASE = 800_000


def progan_budget_text(results: ProGANResults, profile: str | Profile) -> str:
    """What a full-budget ProGAN run needs, against what this run trained (and at what speed), and what
    the gpu profile trains. Only this run's own times are stated as times."""
    profile = get_profile(profile)
    batch = profile.gans.progan_batch
    stages = results.stages
    shown = [s.steps * batch for s in stages]
    paper = PAPER_IMAGES_PER_PHASE * (2 * len(stages) - 1)
    last = stages[-1]
    minutes = sum(s.train_minutes for s in stages)
    where = "on a GPU" if profile.device.type == "cuda" else "on a CPU"
    text = (f"**What a full-budget ProGAN needs.** Karras et al. (2018) show the discriminator "
            f"{PAPER_IMAGES_PER_PHASE / 1e3:.0f}k real images to fade in each new resolution and as many again to "
            f"stabilise it: {paper / 1e6:.1f} M images from {stages[0].resolution}×{stages[0].resolution} to "
            f"{last.resolution}×{last.resolution}. This run showed it {sum(shown) / 1e6:.2f} M "
            f"({sum(shown) / paper:.0%} of that; {shown[-1] / 1e3:.0f}k at {last.resolution}×{last.resolution}, "
            f"against the paper's {2 * PAPER_IMAGES_PER_PHASE / 1e3:.0f}k) in {minutes:.1f} min of training {where}. ")
    if last.train_minutes > 0:
        rate = shown[-1] / (last.train_minutes * 60)
        text += (f"Its last stage trained {rate:.0f} images/s; at that rate the paper's schedule would take about "
                 f"{paper / rate / 3600:.1f} h (the smaller stages run faster, so somewhat less). ")
    if profile.name == "gpu":
        text += "This is the gpu profile: the times above are its own."
    else:
        gpu = get_profile("gpu").gans
        gpu_images = sum(gpu.progan_steps) * gpu.progan_batch
        text += (f"The gpu profile trains {gpu_images / 1e6:.2f} M images ({', '.join(map(str, gpu.progan_steps))} "
                 f"steps per stage at batch {gpu.progan_batch}, channels {gpu.progan_channels} instead of "
                 f"{results.config.channels}); how long it takes is measured by a build with `--profile gpu`, "
                 f"whose report states it here.")
    return text


def progan_steps_text(stages: list[ProGANStageResult]) -> str:
    """Where the steps paid: FID's change over the last history point of each stage."""
    change = [s.fid_change_last for s in stages]
    if any(math.isnan(c) for c in change):
        return ""
    still = [f"{s.resolution}×{s.resolution}" for s in stages if s.fid_change_last < -0.02]
    return (" Over the last history point of each stage FID changed by "
            + ", ".join(f"{c:+.0%}" for c in change) + ": "
            + (f"still falling at {', '.join(still)}, where more steps would pay." if still else
               "every stage had levelled off (within 2 %) before it grew."))


def hyperparameter_table(profile: str | Profile) -> pd.DataFrame:
    """Every GAN's settings, read from the configs that train them."""
    b = get_profile(profile).gans
    van = GANConfig(hidden=b.vanilla_hidden, lr_g=b.lr, lr_d=b.lr, ema=b.vanilla_ema)
    cv = ConvGANConfig(width=b.conv_width, lr_g=b.conv_lr_g, lr_d=b.conv_lr_d)
    pg = progan_config(get_profile(profile))
    h = van.hidden
    return pd.DataFrame([
        {"model": "vanilla GAN", "architecture": f"G: {van.noise}→{h}→{2 * h}→{4 * h}→784; D: 784→{2 * h}→{h}→1",
         "loss": "non-saturating BCE", "stabilisers": f"real label {van.label_smoothing}, D dropout {van.dropout}"
                                                   + (f", EMA of G ({van.ema:g})" if van.ema else ""),
         "optimiser": f"Adam lr {van.lr_g:g}/{van.lr_d:g} (G/D), β₁ {van.beta1}", "batch": b.batch_size},
        {"model": "conv GAN", "architecture": f"G: z {cv.noise}→{2 * cv.width}×7×7→2 transposed convs to 28×28; "
                                              f"D: 3 convs ({cv.width}–{2 * cv.width} ch.), flattened, linear head",
         "loss": f"{cv.loss} + mode seeking (weight {b.mode_seeking:g})"
                 + (f"; conditioned on {b.self_conditioning} k-means clusters of the pixels (projection D)"
                    if b.self_conditioning else ""),
         "stabilisers": f"spectral norm in D, EMA of G ({cv.ema}), batch norm in G",
         "optimiser": f"Adam lr {cv.lr_g:g}/{cv.lr_d:g} (G/D), β {cv.betas}", "batch": b.batch_size},
        {"model": "cGAN (+ MS, + FM)", "architecture": "the conv GAN; G gets a label embedding beside z, "
                                                       "D is a projection discriminator",
         "loss": f"{cv.loss} (+ mode seeking, weight {cgan_weights_text(b)}; + feature matching on D's last "
                 f"features, weight {FM_WEIGHT:g})",
         "stabilisers": "as the conv GAN", "optimiser": "as the conv GAN", "batch": b.batch_size},
        {"model": "ProGAN", "architecture": "the conv GAN's blocks, grown: resolutions "
                                            f"{'→'.join(map(str, pg.resolutions[:len(b.progan_steps)]))}, "
                                            f"{'/'.join(str(pg.width(i)) for i in range(len(pg.resolutions)))} "
                                            "channels; per stage G upsamples (nearest, two 3×3 convs), D a strided conv",
         "loss": f"as the conv GAN (mode seeking {pg.gan.mode_seeking:g}"
                 + (f"; {pg.gan.classes} k-means clusters of CIFAR-10's pixels)" if pg.gan.classes else ")"),
         "stabilisers": f"fade-in of each new block, spectral norm in D, EMA of G ({pg.gan.ema}), batch norm in G",
         "optimiser": f"Adam lr {pg.gan.lr_g:g}, β {pg.gan.betas}", "batch": b.progan_batch},
    ])
