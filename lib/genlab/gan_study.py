"""The experiments of the GANs notebook; every number is measured here with the
dataset's own classifier (FID against the real floor, coverage, conditional accuracy)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch.nn import functional as F

from genlab import data as gdata, experiment
from genlab.atomic import save_torch
from genlab.cache import json_memo, module_fingerprint, tensor_memo
from genlab.clusters import cluster_labels, cluster_prior
from genlab.config import GANBudget, Profile, config_dict, get_profile
from genlab.gans import ConvGAN, ConvGANConfig, GANConfig, VanillaGAN, to_signed, to_uint8
from genlab.metrics import Yardstick, class_histogram, yardstick
from genlab.paths import cache_dir
from genlab.plots import grid_array, plot_histogram
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
    cfg = GANConfig(image_shape=tuple(ds.shape), hidden=b.vanilla_hidden, lr_g=b.lr, lr_d=b.lr)
    result = experiment.train_on("gan", lambda: VanillaGAN(cfg), cfg, ds, profile, epochs=b.vanilla_epochs,
                                 batch_size=b.batch_size, images=b.train_subset,
                                 monitor=vanilla_monitor(ys, b.samples, profile.seed, cfg.noise))
    return cfg, result


def vanilla_section(report, datasets) -> pd.DataFrame:
    report.say(f"Each epoch's {report.profile.gans.samples} samples are measured; an epoch whose class coverage "
               f"is below {COLLAPSE_COVERAGE:.0%} is flagged as mode collapse.")
    rows, histograms = [], []
    for ds_name in datasets:
        ds = gdata.load(ds_name)
        cfg, result = train_vanilla(ds_name, report.profile)
        histograms.append((ds, final_histogram(ds_name, report.profile, result)))
        h = result.history
        fig, axes = plt.subplots(1, 4, figsize=(14, 2.8))
        axes[0].plot(h["epoch"], h["train_loss_d"], marker="o", label="D")
        axes[0].plot(h["epoch"], h["train_loss_g"], marker="o", label="G")
        axes[0].set_title("losses (epoch means)", fontsize=9)
        axes[1].plot(h["epoch"], h["train_D(x)"], marker="o", label="D(x)")
        axes[1].plot(h["epoch"], h["train_D(G(z))"], marker="o", label="D(G(z))")
        axes[1].set_title("discriminator outputs", fontsize=9)
        axes[2].plot(h["epoch"], h["FID"], marker="o", label="samples")
        axes[2].plot(h["epoch"], h["FID floor"], ls=":", color="k", label="real floor")
        axes[2].set_yscale("log")
        axes[2].set_title(f"FID ({report.profile.gans.samples} samples)", fontsize=9)
        axes[3].plot(h["epoch"], h["coverage"], marker="o", label="coverage")
        axes[3].axhline(COLLAPSE_COVERAGE, color="r", ls="--", lw=1, label="collapse flag")
        axes[3].set_ylim(0, 1.05)
        axes[3].set_title("class coverage", fontsize=9)
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{ds.title}: vanilla GAN", fontsize=10)
        fig.tight_layout()
        plt.show()
        plt.close(fig)
        epochs = list(h["epoch"])
        shown = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
        grids = [torch.load(result.run_dir / f"samples_epoch{e}.pt") for e in shown]
        report.grid(f"vanilla_{ds_name}_over_training", torch.cat([g[:16] for g in grids]),
                    f"{ds.title}: the same noise after epochs {', '.join(map(str, shown))} (one row each)", nrow=16,
                    config={"dataset": ds_name, "gan": config_dict(cfg), "epochs": shown})
        for e in epochs:
            report.save_samples(f"measured_vanilla_{ds_name}_epoch{e}",
                                torch.load(result.run_dir / f"measured_epoch{e}.pt"),
                                {"dataset": ds_name, "epoch": e, "seed": e, "gan": config_dict(cfg)})
        collapsed = h.loc[h["coverage"] < COLLAPSE_COVERAGE, "epoch"].tolist()
        if collapsed:
            report.say(f"**Warning: mode collapse flagged** for {ds.title}: class coverage fell below "
                       f"{COLLAPSE_COVERAGE:.0%} at epoch(s) {', '.join(map(str, collapsed))}.")
        last = h.iloc[-1]
        rows.append({"dataset": ds.title, "epochs": int(last["epoch"]), "final D loss": last["train_loss_d"],
                     "final G loss": last["train_loss_g"], "D(x)": last["train_D(x)"],
                     "D(G(z))": last["train_D(G(z))"], "FID": last["FID"], "FID floor": last["FID floor"],
                     "coverage": last["coverage"], "min coverage": h["coverage"].min(),
                     "collapse flagged": bool(collapsed), "train time (min)": result.train_seconds / 60})
        report.headline("vanilla GAN FID", last["FID"], "FID", ds_name)
        report.headline("vanilla GAN class coverage", last["coverage"], "fraction", ds_name)
    table = pd.DataFrame(rows)
    report.table(table)
    fig, axes = plt.subplots(1, len(histograms), figsize=(4.5 * len(histograms), 2.6), squeeze=False)
    for ax, (ds, hist) in zip(axes[0], histograms):
        plot_histogram(hist, ds.classes, f"{ds.title}: predicted classes of the final samples", ax=ax)
    fig.tight_layout()
    plt.show()
    plt.close(fig)
    return table


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
    mode_seeking = b.cgan_mode_seeking if classes else b.mode_seeking
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
    sampled from its raw weights instead of the EMA."""

    label: str
    change: Callable[[GANBudget], dict] | None
    adds: bool = False


# Each variant changes one technique of the recipe; all train the same steps on the same images.
# Removing the EMA needs no run of its own: it is the recipe's run, sampled from the raw weights.
CONV_ABLATION = [
    Technique("recipe: self-conditioned, SN + hinge + EMA + mode seeking", lambda b: {}),
    Technique("− EMA (raw weights of the same run)", None),
    Technique("− self-conditioning (plain unconditional)", lambda b: {"self_conditioning": 0}),
    Technique("− mode seeking", lambda b: {"mode_seeking": 0.0}),
    Technique("− spectral norm", lambda b: {"spectral_norm": False}),
    Technique("non-saturating loss instead of hinge", lambda b: {"loss": "ns"}),
    Technique("+ TTUR (lr G ÷2, D ×2)", lambda b: {"lr_g": b.conv_lr_g / 2, "lr_d": b.conv_lr_d * 2}, adds=True),
]


def _measure_conv(report, ys, ds_name, label, cfg, model, seconds, weights="ema", tag="") -> dict:
    b = report.profile.gans
    samples = model.sample(b.samples, generator=torch.Generator().manual_seed(report.profile.seed))
    m = ys.measure(samples, name=f"measured_convgan_{ds_name}{tag}",
                   config={"dataset": ds_name, "weights": weights, "seed": report.profile.seed, "gan": config_dict(cfg)})
    return {"dataset": ys.dataset.title, "variant": label, "FID": m.fid, "FID floor": m.fid_floor,
            "× floor": m.fid / m.fid_floor, "coverage": m.coverage, "confidence ≥ 0.9": m.confident_share,
            "train time (min)": seconds / 60, "samples": samples}


def conv_section(report, datasets) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The conv GAN recipe on every dataset (`conv_epochs` of it); then, on the first dataset with the
    shorter `ablation_epochs` each, one technique changed at a time. Returns (results, ablation)."""
    b = report.profile.gans
    rows = []
    for ds_name in datasets:
        ys = yardstick(ds_name, report.profile.name)
        cfg, result = train_conv(ds_name, report.profile)
        row = _measure_conv(report, ys, ds_name, f"recipe ({b.self_conditioning} clusters), {b.conv_epochs_for(ds_name)} epoch(s)", cfg, result.model,
                            result.train_seconds)
        report.grid(f"convgan_{ds_name}", row.pop("samples")[:32],
                    f"{ys.dataset.title}: conv GAN (EMA generator)", nrow=16,
                    config={"dataset": ds_name, "seed": report.profile.seed, "gan": config_dict(cfg)})
        rows.append(row)
        report.headline("conv GAN FID", row["FID"], "FID", ds_name)
        report.headline("conv GAN FID / real floor", row["× floor"], "ratio", ds_name)
        report.headline("conv GAN class coverage", row["coverage"], "fraction", ds_name)
    results = pd.DataFrame(rows)
    epochs = ", ".join(f"{b.conv_epochs_for(d)} on {gdata.SPECS[d].title}" for d in datasets)
    report.say(f"The recipe on each dataset: epochs {epochs}, each of {b.train_subset or 'all'} training images, "
               f"batch {b.batch_size}; {b.samples} samples per measurement.")
    report.table(results)

    ds_name = datasets[0]
    ys = yardstick(ds_name, report.profile.name)
    abl, full = [], None
    for t in CONV_ABLATION:
        if t.change is None:
            cfg, result = full
            row = _measure_conv(report, ys, ds_name, t.label, cfg, result.trained, result.train_seconds,
                                weights="raw", tag="_ablation_raw")
        else:
            change = t.change(b)
            cfg, result = train_conv(ds_name, report.profile, epochs=b.ablation_epochs, images=b.ablation_subset,
                                     **change)
            full = full or (cfg, result)
            tag = "_ablation_" + ("_".join(f"{k}{v}" for k, v in change.items()) or "recipe")
            row = _measure_conv(report, ys, ds_name, t.label, cfg, result.model, result.train_seconds, tag=tag)
        abl.append({**row, "adds": t.adds})
    for r in abl:
        r.pop("samples")
    ablation = pd.DataFrame(abl)
    n_abl = experiment.train_images(ys.dataset, b.ablation_subset, b.train_subset)
    report.say(f"One technique changed at a time on {ys.dataset.title}, each run {b.ablation_epochs} epoch(s) of "
               f"{n_abl} training images (the same optimiser steps on the same images):")
    report.table(ablation.drop(columns="adds"))
    return results, ablation


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


def show_class_grid(images: torch.Tensor, classes, per_class: int, title: str):
    """One row per class, labelled with the class name."""
    fig, ax = plt.subplots(figsize=(per_class * 0.45 + 1.2, len(classes) * 0.45 + 0.4))
    ax.imshow(grid_array(images, nrow=per_class), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    size = images.shape[-1] + 2
    ax.set_yticks([size * i + size / 2 for i in range(len(classes))], list(classes), fontsize=7)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout()
    plt.show()
    plt.close(fig)


# The projection cGAN, then what mode seeking and feature matching change: (label, file tag, changes to
# the recipe, at most this many seeds). The plain cGAN's collapse is plain from one seed (diversity 2.5
# against the real 16.5 on MNIST); the two recipes compared over `cgan_seeds` seeds get the budget.
CGAN_VARIANTS = [
    ("cGAN", "cgan", {"mode_seeking": 0.0}, 1),
    ("cGAN + mode seeking", "cgan_ms", {}, None),
    ("cGAN + mode seeking + feature matching", "cgan_ms_fm", {"feature_matching": FM_WEIGHT}, None),
    # Why the cGANs' own mode-seeking weight: the unconditional GAN's weight, one seed.
    ("cGAN + mode seeking at the unconditional GAN weight", "cgan_ms_uncond_weight",
     lambda b: {"mode_seeking": b.mode_seeking}, 1),
]


def cgan_section(report, datasets) -> pd.DataFrame:
    """The projection cGAN variants of CGAN_VARIANTS over `cgan_seeds` seeds per dataset:
    one row per run; `cgan_summary` gives mean and spread."""
    b = report.profile.gans
    rows = []
    for ds_name in datasets:
        ds = gdata.load(ds_name)
        ys = yardstick(ds_name, report.profile.name)
        n = b.samples
        real_div = intra_class_diversity(ys, ds.x_test[:n], ds.y_test[:n])
        for label, short, changes, max_seeds in CGAN_VARIANTS:
            changes = changes(b) if callable(changes) else changes
            for seed in range(report.profile.seed, report.profile.seed + min(b.cgan_seeds, max_seeds or b.cgan_seeds)):
                cfg, result = train_conv(ds_name, report.profile, classes=len(ds.classes), seed=seed,
                                         images=b.cgan_subset, **changes)
                model = result.model
                labels = torch.arange(n) % len(ds.classes)
                samples = model.sample(n, generator=torch.Generator().manual_seed(seed), labels=labels)
                tag = f"{short}_{ds_name}_seed{seed}"
                m = ys.measure(samples, labels, name=f"measured_{tag}",
                               config={"dataset": ds_name, "seed": seed, "gan": config_dict(cfg)})
                rows.append({"dataset": ds.title, "model": label, "seed": seed, "mode seeking": cfg.mode_seeking,
                             "conditional accuracy": m.conditional_accuracy, "FID": m.fid, "FID floor": m.fid_floor,
                             "coverage": m.coverage, "intra-class diversity": intra_class_diversity(ys, samples, labels),
                             "real diversity": real_div, "train time (min)": result.train_seconds / 60})
                if seed == report.profile.seed:
                    per_class = 10
                    grid_labels = torch.arange(len(ds.classes)).repeat_interleave(per_class)
                    grid = model.sample(len(grid_labels), generator=torch.Generator().manual_seed(1), labels=grid_labels)
                    report.save_samples(tag, grid, {"dataset": ds_name, "labels": grid_labels.tolist(),
                                                    "seed": 1, "gan": config_dict(cfg)})
                    show_class_grid(grid, ds.classes, per_class, f"{ds.title}: {label}, one row per class")
    table = pd.DataFrame(rows)
    summary = cgan_summary(table)
    for r in summary.to_dict("records"):
        report.headline(f"{r['model']} conditional accuracy (mean of {r['seeds']} seeds)", r["accuracy mean"],
                        "fraction", gdata.canonical_name(r["dataset"]))
    n_train = experiment.train_images(ds, b.cgan_subset, b.train_subset)
    report.say(f"{b.samples} samples per run, labels cycling through the classes; the real diversity is that of "
               f"{b.samples} test images. Each model trains {b.cgan_epochs} epoch(s) of {n_train} images with "
               f"{b.cgan_seeds} seed(s) (the plain cGAN and the run at the unconditional weight: one); mode-seeking weight {b.cgan_mode_seeking:g}, feature-matching weight {FM_WEIGHT:g}:")
    report.table(table)
    report.say("Mean and spread (half the range) over the seeds:")
    report.table(summary)
    return table


def _versus(a: pd.Series, b: pd.Series, key: str, what: str, fmt: str) -> str:
    """'a vs b' of a summary column with its spread, and whether the change exceeds the seed spread."""
    gap, spread = b[f"{key} mean"] - a[f"{key} mean"], max(a[f"{key} ±"], b[f"{key} ±"])
    verdict = ("within the seed spread" if abs(gap) <= spread else
               ("up beyond the seed spread" if gap > 0 else "down beyond the seed spread"))
    return (f"{what} {a[f'{key} mean']:{fmt}} ± {a[f'{key} ±']:{fmt}} → {b[f'{key} mean']:{fmt}} ± "
            f"{b[f'{key} ±']:{fmt}} ({verdict})")


def cgan_comparison(dataset: str, summary: pd.DataFrame, real_diversity: float) -> str:
    """Prose for one dataset: what mode seeking changed, then what feature matching added on top."""
    plain, ms, fm, ms_other = (summary.loc[label] for label, *_ in CGAN_VARIANTS)
    text = [f"**Conditional GANs, {dataset}** (mean ± half-range over {int(plain['seeds'])}, {int(ms['seeds'])} and "
            f"{int(fm['seeds'])} seeds; real intra-class diversity {real_diversity:.3g})."]
    for a, b, name in ((plain, ms, "Adding mode seeking"), (ms, fm, "Adding feature matching to that")):
        text.append(f"{name}: " + "; ".join(_versus(a, b, key, what, fmt) for key, what, fmt in (
            ("accuracy", "conditional accuracy", ".1%"), ("FID", "FID", ".3g"),
            ("diversity", "intra-class diversity", ".3g"))) + ".")
    collapsed = plain["diversity mean"] < real_diversity / 3
    text.append("Without mode seeking the generator " + (
        f"**collapses within each class**: its samples of a class are {plain['diversity mean'] / real_diversity:.0%} "
        "as diverse as real ones, which a high accuracy hides." if collapsed else
        "keeps a diversity within a factor of three of the real data's."))
    text.append(f"The mode-seeking weight, {ms_other['mode seeking']:g} (the unconditional GAN's; one seed) against "
                f"the cGANs' {ms['mode seeking']:g}: "
                + "; ".join(_versus(ms_other, ms, key, what, fmt) for key, what, fmt in (
                    ("accuracy", "conditional accuracy", ".1%"), ("FID", "FID", ".3g"),
                    ("diversity", "intra-class diversity", ".3g"))) + ".")
    return " ".join(text)


def cgan_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and model: mean and half-range over seeds of accuracy, FID and diversity."""
    rows = []
    for (ds, model), t in table.groupby(["dataset", "model"], sort=False):
        row = {"dataset": ds, "model": model, "seeds": len(t), "mode seeking": t["mode seeking"].iloc[0]}
        for col, short in (("conditional accuracy", "accuracy"), ("FID", "FID"), ("intra-class diversity", "diversity")):
            row[f"{short} mean"] = t[col].mean()
            row[f"{short} ±"] = (t[col].max() - t[col].min()) / 2
        rows.append(row)
    return pd.DataFrame(rows)


# --- 3. progressive growing GAN on CIFAR-10 ---------------------------------------------------

def progan_config(profile: Profile) -> ProGANConfig:
    """ProGAN on CIFAR-10 with the conv GAN's recipe, self-conditioned on the budget's clusters."""
    b = profile.gans
    gan = ConvGANConfig(image_shape=(3, 32, 32), classes=b.self_conditioning, lr_g=b.progan_lr, lr_d=b.progan_lr,
                        mode_seeking=b.mode_seeking, ema=b.progan_ema)
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


def progan_section(report) -> pd.DataFrame:
    b = report.profile.gans
    ys = yardstick("cifar10", report.profile.name)
    n, seed = b.samples, report.profile.seed

    stages = train_progan(report.profile, monitor=progan_monitor(ys, n, seed))
    rows, histories, t0 = [], [], 0
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
        rows.append({"stage": cfg.stage + 1, "resolution": f"{res}×{res}", "steps": cfg.steps,
                     "distinct images": n_images, "FID (upsampled to 32)": m.fid,
                     "real floor at this resolution": floor_res, "real floor at 32×32": m.fid_floor,
                     "coverage": m.coverage,
                     # Relative change of FID over the stage's last history point: still falling = steps still pay.
                     "FID change at last point": (h["FID"].iloc[-1] / h["FID"].iloc[-2] - 1
                                                       if "FID" in h and len(h) > 1 else float("nan")),
                     "final D loss": h["train_loss_d"].iloc[-1],
                     "D(x) − D(G(z))": h["train_D(x)"].iloc[-1] - h["train_D(G(z))"].iloc[-1],
                     "train time (min)": result.train_seconds / 60})
        report.grid(f"progan_stage{cfg.stage + 1}", samples[:16],
                    f"ProGAN after stage {cfg.stage + 1} ({res}×{res}, shown upsampled)", nrow=16,
                    config={"stage": cfg.stage, "resolution": res, "progan": config_dict(cfg.base)})
    h = pd.concat(histories)
    fig, axes = plt.subplots(1, 3, figsize=(13, 2.8))
    if "FID" in h:           # histories trained before FID was logged have none
        axes[0].plot(h["step"], h["FID"], marker="o", label="samples")
    start = 0
    for _, st in h.groupby("stage"):
        axes[0].plot([start, st["step"].max()], [st["floor"].iloc[0]] * 2, color="grey", ls="--", lw=1)
        start = st["step"].max()
    axes[0].set_ylim(bottom=0)
    axes[0].set_title("FID by step (dashed: real floor at the stage's resolution)", fontsize=9)
    axes[1].plot(h["step"], h["train_loss_d"], marker="o", label="D loss")
    axes[1].plot(h["step"], h["train_loss_g"], marker="o", label="G loss")
    axes[1].set_title("hinge losses", fontsize=9)
    axes[2].plot(h["step"], h["train_D(x)"], marker="o", label="D(x)")
    axes[2].plot(h["step"], h["train_D(G(z))"], marker="o", label="D(G(z))")
    axes[2].set_title("discriminator scores (hinge margin ±1)", fontsize=9)
    for ax in axes:
        for s_end in h.groupby("stage")["step"].max().tolist()[:-1]:
            ax.axvline(s_end, color="grey", ls=":", lw=1)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.show()
    plt.close(fig)
    table = pd.DataFrame(rows)
    report.table(table)
    report.headline("ProGAN FID at the last stage", table["FID (upsampled to 32)"].iloc[-1], "FID", "cifar10")
    return table


# --- discussion ---------------------------------------------------------------------------

def discussion(vanilla: pd.DataFrame, conv: tuple[pd.DataFrame, pd.DataFrame], cgan: pd.DataFrame,
               progan: pd.DataFrame, profile: str) -> str:
    out = []
    for _, r in vanilla.iterrows():
        out.append(
            f"**Vanilla GAN, {r['dataset']}.** After {r['epochs']} epochs the losses are D {r['final D loss']:.3f}, "
            f"G {r['final G loss']:.3f} with D(x) = {r['D(x)']:.2f} and D(G(z)) = {r['D(G(z))']:.2f}: "
            + ("the discriminator has **not** won (the seed's run ended at D loss 0.0000)"
               if r["final D loss"] > 0.1 else "the discriminator is winning")
            + f". FID {r['FID']:.3g} against a real floor of {r['FID floor']:.3g}; class coverage {r['coverage']:.0%} "
            f"(lowest over training {r['min coverage']:.0%}"
            + (", **mode collapse was flagged**)." if r["collapse flagged"] else ", no collapse flagged)."))
    results, ablation = conv
    for _, full in results.iterrows():
        ds = full["dataset"]
        van = vanilla.loc[vanilla["dataset"] == ds]
        text = (f"**Conv GAN, {ds}.** The recipe reaches FID {full['FID']:.3g} against a real floor of "
                f"{full['FID floor']:.3g} ({full['× floor']:.1f}× the floor), class coverage {full['coverage']:.0%}, "
                f"in {full['train time (min)']:.1f} min")
        if len(van):
            text += (f"; the seed's MLP GAN ends at FID {van['FID'].iloc[0]:.3g} after "
                     f"{van['train time (min)'].iloc[0]:.1f} min")
        out.append(text + ".")
    base = ablation.iloc[0]
    parts = []
    for _, r in ablation.iloc[1:].iterrows():
        d = r["FID"] - base["FID"]
        pays = (d < 0) if r["adds"] else (d > 0)
        parts.append(f"{r['variant']}: FID {r['FID']:.3g} ({d:+.3g}: "
                     + ("the technique pays" if pays else "the technique does not pay here") + ")")
    out.append(f"**What each technique buys ({base['dataset']}, short budget).** The recipe: FID {base['FID']:.3g}. "
               + "; ".join(parts) + ". One seed per variant: differences of a few FID points are within noise.")
    summary = cgan_summary(cgan)
    for ds, t in summary.groupby("dataset", sort=False):
        out.append(cgan_comparison(ds, t.set_index("model"), cgan.loc[cgan["dataset"] == ds, "real diversity"].iloc[0]))
    fids = progan["FID (upsampled to 32)"].tolist()
    floors = progan["real floor at this resolution"].tolist()
    falling = all(b < a for a, b in zip(fids, fids[1:]))
    out.append(f"**ProGAN.** FID by stage: {', '.join(f'{v:.3g}' for v in fids)} — "
               + ("it falls at every stage." if falling else "it does **not** fall at every stage.")
               + " Against real images reduced to the same resolution, the samples score "
               + ", ".join(f"{f / fl:.1f}×" for f, fl in zip(fids, floors))
               + f" that floor ({', '.join(progan['resolution'])}), after "
               + ", ".join(str(v) for v in progan["steps"]) + " optimiser steps per stage."
               + progan_steps_text(progan)
               + f" The last stage ends with hinge D loss {progan['final D loss'].iloc[-1]:.3f} (2 = D cannot tell "
               f"real from fake, 0 = it separates them by the full margin) and a score gap D(x) − D(G(z)) of "
               f"{progan['D(x) − D(G(z))'].iloc[-1]:.3f}: "
               + ("the discriminator has not won the way the seed's BCE discriminator did (loss 0.0000)."
                  if progan['final D loss'].iloc[-1] > 0.1 else "the discriminator is winning.")
               + f" Resolutions reached: {', '.join(progan['resolution'])}.")
    if profile == "smoke":
        out.append("*This is the `smoke` profile: tiny models trained for seconds; the numbers only show that the "
                   "pipeline runs.*")
    return "\n\n".join(out)


def progan_steps_text(progan: pd.DataFrame) -> str:
    """Where the steps paid: FID's change over the last history point of each stage."""
    change = progan["FID change at last point"]
    if change.isna().any():
        return ""
    still = [r for r, c in zip(progan["resolution"], change) if c < -0.02]
    return (" Over the last history point of each stage FID changed by "
            + ", ".join(f"{c:+.0%}" for c in change) + ": "
            + (f"still falling at {', '.join(still)}, where more steps would pay." if still else
               "every stage had levelled off (within 2 %) before it grew."))


def hyperparameter_table(profile: str | Profile) -> pd.DataFrame:
    """Every GAN's settings, read from the configs that train them."""
    b = get_profile(profile).gans
    van = GANConfig(hidden=b.vanilla_hidden, lr_g=b.lr, lr_d=b.lr)
    cv = ConvGANConfig(width=b.conv_width, lr_g=b.conv_lr_g, lr_d=b.conv_lr_d)
    pg = progan_config(get_profile(profile))
    h = van.hidden
    return pd.DataFrame([
        {"model": "vanilla GAN", "architecture": f"G: {van.noise}→{h}→{2 * h}→{4 * h}→784; D: 784→{2 * h}→{h}→1",
         "loss": "non-saturating BCE", "stabilisers": f"real label {van.label_smoothing}, D dropout {van.dropout}",
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
         "loss": f"{cv.loss} (+ mode seeking, weight {b.cgan_mode_seeking:g}; + feature matching on D's last "
                 f"features, weight {FM_WEIGHT:g})",
         "stabilisers": "as the conv GAN", "optimiser": "as the conv GAN", "batch": b.batch_size},
        {"model": "ProGAN", "architecture": "the conv GAN's blocks, grown: resolutions "
                                            f"{'→'.join(map(str, pg.resolutions[:len(b.progan_steps)]))}, "
                                            f"{'/'.join(str(pg.width(i)) for i in range(len(pg.resolutions)))} "
                                            "channels; per stage G upsamples (nearest, 3×3 conv), D a strided conv",
         "loss": f"as the conv GAN (mode seeking {pg.gan.mode_seeking:g}"
                 + (f"; {pg.gan.classes} k-means clusters of CIFAR-10's pixels)" if pg.gan.classes else ")"),
         "stabilisers": f"fade-in of each new block, spectral norm in D, EMA of G ({pg.gan.ema}), batch norm in G",
         "optimiser": f"Adam lr {pg.gan.lr_g:g}, β {pg.gan.betas}", "batch": b.progan_batch},
    ])
