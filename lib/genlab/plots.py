"""Figures that reports show: image grids, training curves, histograms."""
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
