"""Simple, measurable attributes of a digit image, computed from its pixels.

They let a report answer "which latent controls what" with correlations instead
of by eye. Images are float in [0, 1] or uint8, shape N x 1 x H x W.

* ink       - mean intensity (how much stroke)
* slant     - shear of the ink: dx/dy from the central second moments mu11 / mu02
              (0 for upright strokes, > 0 when the top leans right)
* thickness - stroke width estimate 2 * area / perimeter of the binarised ink
              (a stroke of width w and length L has area wL and perimeter about 2L)
* width, height - extent of the binarised ink's bounding box, in pixels
"""
from __future__ import annotations

import pandas as pd
import torch
from torch.nn import functional as F

from genlab import data as gdata

ATTRIBUTES = ("ink", "slant", "thickness", "width", "height")


def _moments(p: torch.Tensor):
    n, _, h, w = p.shape
    ys = torch.arange(h, dtype=p.dtype, device=p.device).view(1, h, 1)
    xs = torch.arange(w, dtype=p.dtype, device=p.device).view(1, 1, w)
    img = p[:, 0]
    mass = img.sum((1, 2)).clamp_min(1e-8)
    cy = (img * ys).sum((1, 2)) / mass
    cx = (img * xs).sum((1, 2)) / mass
    dy = ys - cy.view(n, 1, 1)
    dx = xs - cx.view(n, 1, 1)
    mu11 = (img * dx * dy).sum((1, 2)) / mass
    mu02 = (img * dy * dy).sum((1, 2)) / mass
    return mu11, mu02


def attributes(images: torch.Tensor, threshold: float = 0.5) -> pd.DataFrame:
    p = gdata.to_float(images)
    mu11, mu02 = _moments(p)
    # Image rows grow downwards, so a stroke leaning right at the top has negative dx/dy
    # in pixel coordinates; flip the sign so that "leans right" is positive.
    slant = -mu11 / mu02.clamp_min(1e-8)
    ink = (p > threshold).float()
    area = ink.sum((1, 2, 3))
    # Boundary pixels: ink pixels with at least one 4-neighbour that is not ink.
    neighbours = F.conv2d(F.pad(ink, (1, 1, 1, 1)), torch.tensor([[[[0., 1, 0], [1, 0, 1], [0, 1, 0]]]],
                                                                 dtype=ink.dtype, device=ink.device))
    perimeter = (ink * (neighbours < 4).float()).sum((1, 2, 3))
    thickness = 2 * area / perimeter.clamp_min(1)
    rows = ink.amax(3)[:, 0]        # N x H: which rows have ink
    cols = ink.amax(2)[:, 0]        # N x W

    def extent(mask):
        idx = torch.arange(mask.shape[1], device=mask.device).float()
        has = mask.sum(1) > 0
        first = torch.where(mask > 0, idx, torch.full_like(idx, 1e9)).amin(1)
        last = torch.where(mask > 0, idx, torch.full_like(idx, -1)).amax(1)
        return torch.where(has, last - first + 1, torch.zeros_like(first))

    return pd.DataFrame({
        "ink": p.mean((1, 2, 3)).cpu().numpy(),
        "slant": slant.cpu().numpy(),
        "thickness": thickness.cpu().numpy(),
        "width": extent(cols).cpu().numpy(),
        "height": extent(rows).cpu().numpy(),
    })
