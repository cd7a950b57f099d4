"""The experiments of the GANs notebook; every number is measured here with the
dataset's own classifier (FID against the real floor, coverage, conditional accuracy)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch.nn import functional as F

from genlab import data as gdata
from genlab.atomic import save_torch
from genlab.config import Profile, config_dict, get_profile
from genlab.gans import (CGANConfig, ConditionalGAN, GANConfig, ProGAN, ProGANConfig, ProGANStage,
                         VanillaGAN, downsample_to, to_signed, to_uint8)
from genlab.metrics import class_histogram, yardstick
from genlab.plots import grid_array, plot_histogram
from genlab.train import fit

COLLAPSE_COVERAGE = 0.8    # below this class coverage an epoch is flagged as mode collapse
FM_WEIGHT = 1.0            # feature-matching weight beside the adversarial loss in cGAN + FM


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


def train_vanilla(dataset: str, profile: str | Profile):
    profile = get_profile(profile)
    b = profile.gans
    ds = gdata.load(dataset)
    ys = yardstick(ds.name, profile.name)
    cfg = GANConfig(image_shape=tuple(ds.shape), hidden=b.vanilla_hidden, lr_g=b.lr, lr_d=b.lr)
    fixed = torch.randn(32, cfg.noise, generator=torch.Generator().manual_seed(profile.seed))

    def monitor(model, epoch, run_dir: Path):
        samples = _monitor_samples(model, b.samples, epoch)
        # Kept beside the checkpoint (a cached run has no monitor), copied into the report by the section.
        save_torch(samples, run_dir / f"measured_epoch{epoch}.pt")
        m = ys.measure(samples)
        with torch.no_grad():
            grid = to_uint8(model.generator(fixed.to(next(model.parameters()).device))).cpu()
        save_torch(grid, run_dir / f"samples_epoch{epoch}.pt")
        return {"FID": m.fid, "FID floor": m.fid_floor, "coverage": m.coverage, "confidence": m.confidence}

    n = b.train_subset or len(ds.x_train)
    result = fit(f"gan-{ds.name}", lambda: VanillaGAN(cfg), cfg, (ds.x_train[:n],), epochs=b.vanilla_epochs,
                 batch_size=b.batch_size, seed=profile.seed, device=profile.device,
                 data_id=f"{ds.name}:train[:{n}]", on_epoch_end=monitor)
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


# --- 2. conditional GAN and feature matching --------------------------------------------------

def train_cgan(dataset: str, profile: str | Profile, feature_matching: float):
    profile = get_profile(profile)
    b = profile.gans
    ds = gdata.load(dataset)
    cfg = CGANConfig(image_shape=tuple(ds.shape), classes=len(ds.classes), width=b.cgan_width,
                     feature_matching=feature_matching, lr_g=b.lr, lr_d=b.lr)
    n = b.train_subset or len(ds.x_train)
    result = fit(f"cgan-{ds.name}", lambda: ConditionalGAN(cfg), cfg, (ds.x_train[:n], ds.y_train[:n]),
                 epochs=b.cgan_epochs, batch_size=b.batch_size, seed=profile.seed, device=profile.device,
                 data_id=f"{ds.name}:train[:{n}]+labels")
    return cfg, result


@torch.no_grad()
def intra_class_diversity(ys, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean pairwise distance of classifier features within each class, averaged over classes."""
    feats = ys.extractor(gdata.to_float(images).to(ys.device)).float().cpu()
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


def cgan_section(report, datasets) -> pd.DataFrame:
    b = report.profile.gans
    rows = []
    for ds_name in datasets:
        ds = gdata.load(ds_name)
        ys = yardstick(ds_name, report.profile.name)
        n = b.samples
        real_div = intra_class_diversity(ys, ds.x_test[:n], ds.y_test[:n])
        for label, fm in (("cGAN", 0.0), ("cGAN + feature matching", FM_WEIGHT)):
            cfg, result = train_cgan(ds_name, report.profile, fm)
            model = result.model
            labels = torch.arange(n) % len(ds.classes)
            samples = model.sample(n, generator=torch.Generator().manual_seed(report.profile.seed), labels=labels)
            m = ys.measure(samples, labels, name=f"measured_{'cgan_fm' if fm else 'cgan'}_{ds_name}",
                           config={"dataset": ds_name, "seed": report.profile.seed, "gan": config_dict(cfg)})
            rows.append({"dataset": ds.title, "model": label, "conditional accuracy": m.conditional_accuracy,
                         "FID": m.fid, "FID floor": m.fid_floor, "coverage": m.coverage,
                         "intra-class diversity": intra_class_diversity(ys, samples, labels),
                         "real diversity": real_div, "final D loss": result.history["train_loss_d"].iloc[-1],
                         "train time (min)": result.train_seconds / 60})
            report.headline(f"{label} conditional accuracy", m.conditional_accuracy, "fraction", ds_name)
            per_class = 10
            grid_labels = torch.arange(len(ds.classes)).repeat_interleave(per_class)
            grid = model.sample(len(grid_labels), generator=torch.Generator().manual_seed(1), labels=grid_labels)
            report.save_samples(f"{'cgan_fm' if fm else 'cgan'}_{ds_name}", grid,
                                {"dataset": ds_name, "labels": grid_labels.tolist(), "gan": config_dict(cfg)})
            show_class_grid(grid, ds.classes, per_class, f"{ds.title}: {label}, one row per class")
    table = pd.DataFrame(rows)
    report.say(f"{b.samples} samples per model, labels cycling through the classes; the real diversity is that "
               f"of {b.samples} test images.")
    report.table(table)
    return table


# --- 3. progressive growing GAN on CIFAR-10 ---------------------------------------------------

def train_progan(profile: str | Profile):
    """Grow 4 -> 8 -> 16 -> 32, one `fit` per stage; each stage starts from the last one's weights."""
    profile = get_profile(profile)
    b = profile.gans
    ds = gdata.load("cifar10")
    base = ProGANConfig(channels=b.progan_channels, lr=b.progan_lr)
    stages, previous, prev_model = [], None, None
    offset = 0
    for s, steps in enumerate(b.progan_steps):
        cfg = ProGANStage(base, s, steps, previous)
        per_epoch = max(1, steps // b.progan_epochs_per_stage)
        n = per_epoch * b.progan_batch
        x = ds.x_train[offset % len(ds.x_train):][:n]
        offset += n

        def build(cfg=cfg, prev=prev_model):
            model = ProGAN(cfg)
            if prev is not None:
                state = {k: v for k, v in prev.state_dict().items() if k != "step"}
                model.load_state_dict(state, strict=False)
            return model

        result = fit(f"progan-stage{s}", build, cfg, (x,), epochs=b.progan_epochs_per_stage,
                     batch_size=b.progan_batch, seed=profile.seed, device=profile.device,
                     data_id=f"cifar10:train[{offset - n}:{offset}]")
        stages.append((cfg, result, len(x)))
        previous, prev_model = cfg, result.model
    return stages


def progan_section(report) -> pd.DataFrame:
    b = report.profile.gans
    ys = yardstick("cifar10", report.profile.name)
    ds = gdata.load("cifar10")
    stages = train_progan(report.profile)
    rows, histories, t0 = [], [], 0
    n = b.samples
    for cfg, result, n_images in stages:
        model = result.model
        res = model.resolution
        samples = model.sample(n, generator=torch.Generator().manual_seed(report.profile.seed), size=32)
        m = ys.measure(samples, name=f"measured_progan_stage{cfg.stage + 1}",
                       config={"stage": cfg.stage, "resolution": res, "upsampled_to": 32,
                               "seed": report.profile.seed, "progan": config_dict(cfg.base)})
        real_lowres = F.interpolate(downsample_to(to_signed(ds.x_test[:n]), res), size=32, mode="nearest")
        floor_res = ys.fid(to_uint8(real_lowres))
        h = result.history.copy()
        h["step"] = h["epoch"] * (cfg.steps // b.progan_epochs_per_stage) + t0
        h["stage"] = cfg.stage
        histories.append(h)
        t0 = int(h["step"].iloc[-1])
        rows.append({"stage": cfg.stage + 1, "resolution": f"{res}×{res}", "steps": cfg.steps,
                     "distinct images": n_images, "FID (upsampled to 32)": m.fid,
                     "real floor at this resolution": floor_res, "real floor at 32×32": m.fid_floor,
                     "coverage": m.coverage, "final D loss": h["train_loss_d"].iloc[-1],
                     "Wasserstein estimate": h["train_wasserstein"].iloc[-1],
                     "train time (min)": result.train_seconds / 60})
        report.grid(f"progan_stage{cfg.stage + 1}", samples[:16],
                    f"ProGAN after stage {cfg.stage + 1} ({res}×{res}, shown upsampled)", nrow=16,
                    config={"stage": cfg.stage, "resolution": res, "progan": config_dict(cfg.base)})
    h = pd.concat(histories)
    fig, axes = plt.subplots(1, 3, figsize=(13, 2.8))
    axes[0].plot(h["step"], h["train_alpha"], marker="o")
    axes[0].set_title("fade-in α (epoch mean)", fontsize=9)
    axes[1].plot(h["step"], h["train_loss_d"], marker="o", label="D loss")
    axes[1].plot(h["step"], h["train_loss_g"], marker="o", label="G loss")
    axes[1].set_title("WGAN-GP losses", fontsize=9)
    axes[2].plot(h["step"], h["train_wasserstein"], marker="o", label="D(real) − D(fake)")
    axes[2].plot(h["step"], h["train_gp"], marker="o", label="gradient penalty")
    axes[2].set_title("critic", fontsize=9)
    for ax in axes:
        for s_end in h.groupby("stage")["step"].max().tolist()[:-1]:
            ax.axvline(s_end, color="grey", ls=":", lw=1)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        if ax is not axes[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    plt.show()
    plt.close(fig)
    table = pd.DataFrame(rows)
    report.table(table)
    report.headline("ProGAN FID at the last stage", table["FID (upsampled to 32)"].iloc[-1], "FID", "cifar10")
    return table


# --- discussion ---------------------------------------------------------------------------

def discussion(vanilla: pd.DataFrame, cgan: pd.DataFrame, progan: pd.DataFrame, profile: str) -> str:
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
    for ds, t in cgan.groupby("dataset", sort=False):
        a, fm = t.iloc[0], t.iloc[1]
        out.append(
            f"**cGAN vs cGAN + feature matching, {ds}.** Conditional accuracy {a['conditional accuracy']:.1%} vs "
            f"{fm['conditional accuracy']:.1%}; FID {a['FID']:.3g} vs {fm['FID']:.3g} (floor {a['FID floor']:.3g}); "
            f"intra-class diversity {a['intra-class diversity']:.3g} vs {fm['intra-class diversity']:.3g} "
            f"(real {a['real diversity']:.3g}). "
            + ("Feature matching gives more diverse samples" if fm["intra-class diversity"] > a["intra-class diversity"]
               else "Feature matching does not add diversity")
            + ", and " + ("a better" if fm["FID"] < a["FID"] else "a worse") + " FID, here.")
    fids = progan["FID (upsampled to 32)"].tolist()
    floors = progan["real floor at this resolution"].tolist()
    falling = all(b < a for a, b in zip(fids, fids[1:]))
    out.append(f"**ProGAN.** FID by stage: {', '.join(f'{v:.3g}' for v in fids)} — "
               + ("it falls at every stage." if falling else "it does **not** fall at every stage.")
               + " Against real images reduced to the same resolution, the samples score "
               + ", ".join(f"{f / fl:.1f}×" for f, fl in zip(fids, floors))
               + f" that floor ({', '.join(progan['resolution'])}), after "
               + ", ".join(str(v) for v in progan["steps"]) + " optimiser steps per stage."
               + f" The last stage ends with D loss {progan['final D loss'].iloc[-1]:.3f} and a Wasserstein "
               f"estimate of {progan['Wasserstein estimate'].iloc[-1]:.3f}: a WGAN-GP critic's loss is not a "
               f"probability, "
               + ("and it has not collapsed to 0 the way the seed's BCE discriminator did."
                  if abs(progan['final D loss'].iloc[-1]) > 1e-3 else "yet here it is near 0: the critic gives no signal.")
               + f" Resolutions reached: {', '.join(progan['resolution'])}.")
    if profile == "smoke":
        out.append("*This is the `smoke` profile: tiny models trained for seconds; the numbers only show that the "
                   "pipeline runs.*")
    return "\n\n".join(out)


def hyperparameter_table(profile: str | Profile) -> pd.DataFrame:
    """Every GAN's settings, read from the configs that train them."""
    b = get_profile(profile).gans
    van = GANConfig(hidden=b.vanilla_hidden, lr_g=b.lr, lr_d=b.lr)
    cg = CGANConfig(width=b.cgan_width, lr_g=b.lr, lr_d=b.lr)
    pg = ProGANConfig(channels=b.progan_channels, lr=b.progan_lr)
    h = van.hidden
    return pd.DataFrame([
        {"model": "vanilla GAN", "architecture": f"G: {van.noise}→{h}→{2 * h}→{4 * h}→784; D: 784→{2 * h}→{h}→1",
         "loss": "non-saturating BCE", "stabilisers": f"real label {van.label_smoothing}, D dropout {van.dropout}",
         "optimiser": f"Adam lr {van.lr_g:g}/{van.lr_d:g} (G/D), β₁ {van.beta1}", "batch": b.batch_size},
        {"model": "cGAN (+ FM)", "architecture": f"conv, width {cg.width}, label embedding {cg.embed} (G) and 28×28 map (D)",
         "loss": f"non-saturating BCE (+ feature matching, weight {FM_WEIGHT:g})",
         "stabilisers": f"real label {cg.label_smoothing}, batch norm in G, dropout in D",
         "optimiser": f"Adam lr {cg.lr_g:g}/{cg.lr_d:g}, β₁ {cg.beta1}", "batch": b.batch_size},
        {"model": "ProGAN", "architecture": f"{pg.channels} channels per block, resolutions "
                                            f"{'→'.join(map(str, pg.resolutions[:len(b.progan_steps)]))}",
         "loss": f"WGAN-GP, λ {pg.gp_weight:g}, drift {pg.drift:g}",
         "stabilisers": "fade-in, pixel norm, minibatch std, equalised LR",
         "optimiser": f"Adam lr {pg.lr:g}, β {pg.betas}", "batch": b.progan_batch},
    ])
