"""Walks in a model's latent space: what the flows and autoencoders reports both draw."""
from __future__ import annotations

from typing import Callable

import torch


@torch.no_grad()
def interpolate(encode: Callable[[torch.Tensor], torch.Tensor], decode: Callable[[torch.Tensor], torch.Tensor],
                a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Images from each a[i] to b[i] (a row of `steps` per pair, both ends included): encode both to flat
    latents, interpolate linearly between them, decode; on the CPU."""
    za, zb = encode(a), encode(b)
    w = torch.linspace(0, 1, steps, device=za.device)[None, :, None]
    return decode(((1 - w) * za[:, None] + w * zb[:, None]).flatten(0, 1)).cpu()
