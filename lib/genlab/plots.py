"""Every figure the reports show: image grids, training curves, histograms, each study's plots. Each takes
plain numbers, tables and tensors, so the studies keep their experiments and prose and draw here."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import pandas as pd
import torch
from torchvision.utils import make_grid


def grid_array(images: torch.Tensor, nrow: int = 8, pad: int = 2):
    """uint8 N x C x H x W -> an H' x W' (x 3) numpy image, tiles separated by white."""
    grid = make_grid(images.detach().cpu(), nrow=nrow, padding=pad, pad_value=255)
    grid = grid.permute(1, 2, 0).numpy()
    return grid[..., 0] if images.shape[1] == 1 else grid


def show_grid(images: torch.Tensor, title: str = "", nrow: int = 8, ax=None, scale: float = 0.5):
    """Draw a grid of uint8 images; returns the figure."""
    nrow = min(nrow, len(images))
    rows = -(-len(images) // nrow)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(2.5, nrow * scale * images.shape[-1] / 28),
                                        max(1.5, rows * scale * images.shape[-2] / 28 + 0.4)))
    else:
        fig = ax.figure
    ax.imshow(grid_array(images, nrow), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return fig


def plot_history(history: pd.DataFrame, columns: Sequence[str] | None = None, title: str = "",
                 ax=None, ylabel: str = ""):
    """Per-epoch curves from a `fit()` history."""
    columns = columns or [c for c in history.columns if c.startswith(("train_", "val_"))]
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 3))
    else:
        fig = ax.figure
    for c in columns:
        ax.plot(history["epoch"], history[c], marker="o", ms=3, label=c)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_histogram(shares: Sequence[float], classes: Sequence[str], title: str = "", ax=None):
    """Bar chart of the predicted-class shares, with the uniform share marked."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 2.6))
    else:
        fig = ax.figure
    ax.bar(range(len(shares)), shares, color="tab:blue")
    ax.axhline(1 / len(shares), color="k", ls="--", lw=1, label="uniform")
    ax.set_xticks(range(len(shares)), [str(c)[:8] for c in classes], rotation=45, fontsize=7)
    ax.set_ylabel("share")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def show(fig) -> None:
    """Display a finished figure in the notebook and free it."""
    plt.show()
    plt.close(fig)


def _losses_and_scores(ax_loss, ax_score, h: pd.DataFrame, x: str, loss_labels: tuple[str, str], loss_title: str,
                       score_title: str) -> None:
    """A GAN's D and G losses on one axis, D's outputs on real and generated images on the other."""
    ax_loss.plot(h[x], h["train_loss_d"], marker="o", label=loss_labels[0])
    ax_loss.plot(h[x], h["train_loss_g"], marker="o", label=loss_labels[1])
    ax_loss.set_title(loss_title, fontsize=9)
    ax_score.plot(h[x], h["train_D(x)"], marker="o", label="D(x)")
    ax_score.plot(h[x], h["train_D(G(z))"], marker="o", label="D(G(z))")
    ax_score.set_title(score_title, fontsize=9)


def plot_gan_history(history: pd.DataFrame, title: str, samples: int, collapse_coverage: float):
    """A GAN's per-epoch history: losses, discriminator outputs, FID against the real floor, class
    coverage against the mode-collapse flag."""
    h = history
    fig, axes = plt.subplots(1, 4, figsize=(14, 2.8))
    _losses_and_scores(axes[0], axes[1], h, "epoch", ("D", "G"), "losses (epoch means)", "discriminator outputs")
    axes[2].plot(h["epoch"], h["FID"], marker="o", label="samples")
    axes[2].plot(h["epoch"], h["FID floor"], ls=":", color="k", label="real floor")
    axes[2].set_yscale("log")
    axes[2].set_title(f"FID ({samples} samples)", fontsize=9)
    axes[3].plot(h["epoch"], h["coverage"], marker="o", label="coverage")
    axes[3].axhline(collapse_coverage, color="r", ls="--", lw=1, label="collapse flag")
    axes[3].set_ylim(0, 1.05)
    axes[3].set_title("class coverage", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_histograms(panels: Sequence[tuple[Sequence[float], Sequence[str], str]]):
    """`plot_histogram` side by side: one (shares, classes, title) per panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 2.6), squeeze=False)
    for ax, (shares, classes, title) in zip(axes[0], panels):
        plot_histogram(shares, classes, title, ax=ax)
    fig.tight_layout()
    return fig


def plot_class_grids(panels: Sequence[tuple[torch.Tensor, str]], classes: Sequence[str], per_class: int,
                     columns: int = 2):
    """Sample grids side by side, `columns` to a row: per panel (images, title), one row per class,
    labelled with the class name."""
    rows = -(-len(panels) // columns)
    width = per_class * 0.3 + 0.9
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, (len(classes) * 0.3 + 0.5) * rows),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (images, title) in zip(axes.flat, panels):
        ax.imshow(grid_array(images, nrow=per_class), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        size = images.shape[-1] + 2
        ax.set_yticks([size * i + size / 2 for i in range(len(classes))], list(classes), fontsize=6)
        ax.set_xticks([])
        ax.set_title(title, fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    fig.tight_layout()
    return fig


def plot_progan_history(h: pd.DataFrame):
    """ProGAN's history over all stages (columns step, stage, floor, FID, losses, D scores): FID against
    each stage's real floor, the hinge losses and the discriminator's scores, stages marked."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 2.8))
    if "FID" in h:           # histories trained before FID was logged have none
        axes[0].plot(h["step"], h["FID"], marker="o", label="samples")
    start = 0
    for _, st in h.groupby("stage"):
        axes[0].plot([start, st["step"].max()], [st["floor"].iloc[0]] * 2, color="grey", ls="--", lw=1)
        start = st["step"].max()
    axes[0].set_ylim(bottom=0)
    axes[0].set_title("FID by step (dashed: real floor at the stage's resolution)", fontsize=9)
    _losses_and_scores(axes[1], axes[2], h, "step", ("D loss", "G loss"), "hinge losses",
                       "discriminator scores (hinge margin ±1)")
    for ax in axes:
        for s_end in h.groupby("stage")["step"].max().tolist()[:-1]:
            ax.axvline(s_end, color="grey", ls=":", lw=1)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_bits_per_dim(curves: Sequence[tuple[str, pd.DataFrame, int, float, int]]):
    """Per dataset (title, fit history, images scored each epoch, final test bits/dim, its test images):
    train and test bits/dim by epoch, the final full-test-set value dotted."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3), squeeze=False)
    for ax, (title, h, n_val, final, n_test) in zip(axes[0], curves):
        ax.plot(h["epoch"], h["train_bits_per_dim"], marker="o", label="train (running mean over the epoch)")
        ax.plot(h["epoch"], h["val_bits_per_dim"], marker="s", label=f"test ({n_val} images, end of epoch)")
        ax.axhline(final, color="k", ls=":", lw=1, label=f"final test ({n_test} images)")
        ax.set_title(f"{title}: bits/dim")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_temperatures(series: Sequence[tuple]):
    """Per dataset (title, temperatures, FIDs, real floor, confident shares, class coverages[, finest-level
    points]): how sample quality moves with the temperature. The optional points, (T of the finest level,
    FID), are of samples whose other latents stay at the best single T; they are drawn as crosses."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for title, ts, fids, floor, confident, coverage, *fine in series:
        line, = axes[0].plot(ts, fids, marker="o", label=title)
        axes[0].axhline(floor, color=line.get_color(), ls=":", lw=1)
        if fine and fine[0]:
            axes[0].plot(*zip(*fine[0]), ls="none", marker="x", color=line.get_color(),
                         label=f"{title}: only the finest level at T")
        axes[1].plot(ts, confident, marker="o", label=title)
        axes[2].plot(ts, coverage, marker="o", label=title)
    for ax, name in zip(axes, ["FID (dotted: real floor)", "share of samples with confidence ≥ 0.9",
                               "class coverage"]):
        ax.set_xlabel("temperature T")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    # Below the panel: inside, every place covers a curve or a floor line.
    axes[0].legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    fig.tight_layout()
    return fig


def plot_latent_sweep(series: Sequence[tuple[str, Sequence[int], Sequence[float], Sequence[float], Sequence[float],
                                             Sequence[float]]], latents: Sequence[int]):
    """Per dataset (title, latent sizes, test MSE, test BCE, train BCE, linear-probe accuracy): the AE
    latent sweep on a log2 axis of latent sizes."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for title, ds, mse, bce, train_bce, probe in series:
        axes[0].plot(ds, mse, marker="o", label=title)
        axes[1].plot(ds, bce, marker="o", label=f"{title} test")
        axes[1].plot(ds, train_bce, marker="x", ls="--", label=f"{title} train")
        axes[2].plot(ds, probe, marker="o", label=title)
    for ax, name in zip(axes, ["test MSE per image", "BCE per image", "linear-probe accuracy"]):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(latents), [str(d) for d in latents])
        ax.set_xlabel("latent size d")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_codes_2d(panels: Sequence[tuple[torch.Tensor, torch.Tensor, Sequence[str], str]]):
    """Per dataset (codes N x 2, labels, class names, title): the codes coloured by class."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (z, labels, classes, title) in zip(axes[0], panels):
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3)
        ax.set_title(title, fontsize=10)
        handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(c)), label=name[:10])
                   for c, name in enumerate(classes)]
        ax.legend(handles=handles, fontsize=6, markerscale=0.8, loc="best")
    fig.tight_layout()
    return fig


def plot_rate_distortion(betas: Sequence[float], rates: Sequence[float], distortions: Sequence[float]):
    """β-VAE: distortion against rate, one point per β."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(rates, distortions, marker="o")
    for beta, r, d in zip(betas, rates, distortions):
        ax.annotate(f"β={beta:g}", (r, d), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("rate (KL, nats)")
    ax.set_ylabel("distortion (nats)")
    ax.set_title("β-VAE on binarised MNIST: rate vs distortion", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_correlations(table: pd.DataFrame, title: str):
    """A correlation table (values in [-1, 1]) as a labelled heat map."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 2.8))
    im = ax.imshow(table.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(table.shape[1]), table.columns)
    ax.set_yticks(range(table.shape[0]), table.index)
    for (i, j), v in np.ndenumerate(table.to_numpy()):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
