"""Progressive growing GAN (Karras et al. 2018) on the conv GAN's recipe, small enough for a CPU.

The generator grows 4 -> 8 -> 16 -> 32 pixels; each new block fades in (α from 0 to 1 over
the first half of its stage) while the real images are blended the same way. What trains the
pair is the conv GAN of genlab.gans: hinge loss, a spectrally normalised projection
discriminator, mode seeking, the EMA generator, and self-conditioning on k-means clusters of
the images. Only the networks grow, and Adam runs without momentum (gan_budget.progan_betas).
Measured on CIFAR-10 (AMD EPYC, one thread): ProGAN's own recipe (equalised learning rate, pixel
norm, minibatch std, lr 2e-4, batch 32) scored FID 488, 483, 531, 487 by stage in 9.5 min of
training and did not fall from stage to stage; this one scores 479, 416, 268, 232 in 14.4 min (the
conv GAN of genlab.gans at 32x32, not growing: 304 after 7.8 min, 257 after 10.5).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from genlab import data as gdata
from genlab.gans import ConvGAN, ConvGANConfig, flatten_features, graphed, projection_score


@dataclass(frozen=True)
class ProGANConfig:
    # The conv GAN recipe that trains the pair (loss, learning rates, EMA, mode seeking, classes = clusters).
    gan: ConvGANConfig = field(default_factory=lambda: ConvGANConfig(image_shape=(3, 32, 32)))
    channels: int = 64               # c: blocks have 2c, 2c, c, c/2 channels at 4, 8, 16, 32 pixels
    resolutions: tuple[int, ...] = (4, 8, 16, 32)

    def width(self, stage: int) -> int:
        c = self.channels
        return (2 * c, 2 * c, c, max(1, c // 2))[stage]


# Which of a 3x3 kernel's rows (or columns) act on which of a 4x4 transposed kernel's, when the 3x3 convolution
# (padding 1) follows nearest upsampling by 2: output row 2p + a reads input rows p - 1 and p (a = 0) or p and p + 1
# (a = 1), and a stride-2 transposed convolution with padding 1 reaches those through its kernel rows 3, 1 and 2, 0.
_FOLD = torch.tensor([[0., 0., 1.],       # transposed row 0: input row p + 1 for a = 1, the 3x3 kernel's row 2
                      [0., 1., 1.],       # row 1: input row p for a = 0, which rows 1 and 2 read after upsampling
                      [1., 1., 0.],       # row 2: input row p for a = 1, read by rows 0 and 1
                      [1., 0., 0.]])      # row 3: input row p - 1 for a = 0, read by row 0


class UpsampleConv(nn.Conv2d):
    """Nearest upsampling by 2, then this 3x3 convolution (padding 1): the same function computed as one stride-2
    transposed convolution whose 4x4 kernel folds the 3x3 one (tests/test_gans.py), with 16 multiply-adds per
    input pixel and channel pair instead of 36. The parameters are the 3x3 convolution's, initialised as nn.Conv2d
    initialises them. Measured (AMD EPYC family 25, one thread, bf16, forward and backward at batch 64):
    64 -> 32 channels at 16 -> 32 px 52.1 -> 34.9 ms, 128 -> 64 at 8 -> 16 px 39.6 -> 26.7 ms."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 3, 1, 1)

    def folded_weight(self) -> torch.Tensor:
        fold = _FOLD.to(self.weight)
        return torch.einsum("ku,oiuv,lv->iokl", fold, self.weight, fold)   # [in, out, 4, 4], as conv_transpose2d

    def forward(self, x):
        return F.conv_transpose2d(x, self.folded_weight(), self.bias, stride=2, padding=1)


class GrowingGenerator(nn.Module):
    """[z, embed(y)] -> 2c x 4 x 4, then per stage an upsampling block (nearest x2, then twice 3x3 conv, batch
    norm, ReLU), each resolution with its own 1x1 `to_rgb`. `stage` and `alpha` are set by the ProGAN that owns it."""

    def __init__(self, cfg: ProGANConfig):
        super().__init__()
        g, c0 = cfg.gan, cfg.width(0)
        self.stage, self.alpha = 0, 1.0
        self.embed = nn.Embedding(g.classes, g.noise) if g.classes else None
        self.fc = nn.Linear(g.noise * (2 if g.classes else 1), c0 * 16)
        self.base = nn.Sequential(nn.BatchNorm2d(c0), nn.ReLU())
        # Nearest upsampling and a 3x3 conv (UpsampleConv computes the pair as a transposed conv whose 4x4 kernel is
        # tied to the 3x3 one), not the conv GAN's free 4x4 transposed conv: measured on CIFAR-10 (1000,
        # 1500, 2000, 1000 steps), FID 479, 416, 268, 232 by stage against 475, 435, 402, 294 with transposed
        # convs, whose checkerboard the 32x32 samples showed. Two 3x3 convs per block, as ProGAN's own blocks
        # have: FID by stage 470, 384, 346, 184 (69x the floor, coverage 0.9) against one conv's 477, 409, 396,
        # 248 (93x, 0.7), steps (500, 800, 2000, 1800), AMD EPYC family 26: 7.1 min of training on two threads
        # against 10.2 on one (about 1.1x the time) - more than doubling the 32-px steps bought before.
        self.blocks = nn.ModuleList([
            nn.Sequential(UpsampleConv(cfg.width(i - 1), cfg.width(i)), nn.BatchNorm2d(cfg.width(i)), nn.ReLU(),
                          nn.Conv2d(cfg.width(i), cfg.width(i), 3, 1, 1), nn.BatchNorm2d(cfg.width(i)), nn.ReLU())
            for i in range(1, len(cfg.resolutions))])
        self.to_rgb = nn.ModuleList([nn.Conv2d(cfg.width(i), g.image_shape[0], 1) for i in range(len(cfg.resolutions))])

    def forward(self, z, y=None):
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        h = self.base(self.fc(z).view(len(z), 4, 4, -1).permute(0, 3, 1, 2))   # channels_last, as in ConvGenerator
        prev = h
        for block in self.blocks[:self.stage]:
            prev, h = h, block(h)
        new = torch.tanh(self.to_rgb[self.stage](h))
        if self.stage == 0 or self.alpha >= 1:
            return new
        # Fade-in: blend the new block's image with the previous resolution's, upsampled.
        old = F.interpolate(torch.tanh(self.to_rgb[self.stage - 1](prev)), scale_factor=2, mode="nearest")
        return (1 - self.alpha) * old + self.alpha * new


class GrowingDiscriminator(nn.Module):
    """The conv GAN's discriminator, grown: a spectrally normalised 1x1 `from_rgb` per resolution,
    one strided 4x4 conv per stage down to 4 x 4, one 3x3 conv there; the flattened map is h(x),
    scored by a linear head plus the projection <embed(y), h(x)>."""

    def __init__(self, cfg: ProGANConfig):
        super().__init__()
        g, c0 = cfg.gan, cfg.width(0)
        sn = nn.utils.parametrizations.spectral_norm if g.spectral_norm else (lambda m: m)
        self.stage, self.alpha = 0, 1.0
        self.from_rgb = nn.ModuleList([sn(nn.Conv2d(g.image_shape[0], cfg.width(i), 1))
                                       for i in range(len(cfg.resolutions))])
        self.blocks = nn.ModuleList([sn(nn.Conv2d(cfg.width(i), cfg.width(i - 1), 4, 2, 1))
                                     for i in range(1, len(cfg.resolutions))])
        self.final = sn(nn.Conv2d(c0, c0, 3, padding=1))
        self.head = sn(nn.Linear(c0 * 16, 1))
        self.embed = sn(nn.Embedding(g.classes, c0 * 16)) if g.classes else None

    def forward(self, x, y=None, with_features: bool = False):
        s = self.stage
        h = _lrelu(self.from_rgb[s](x))
        for i in reversed(range(s)):
            h = _lrelu(self.blocks[i](h))
            if i == s - 1 and self.alpha < 1:
                # Fade-in: blend with the previous resolution's input path.
                old = _lrelu(self.from_rgb[s - 1](F.avg_pool2d(x, 2)))
                h = self.alpha * h + (1 - self.alpha) * old
        h = flatten_features(_lrelu(self.final(h)))
        out = projection_score(h, self.head, self.embed, y)
        return (out, h) if with_features else out


def _lrelu(x):
    return F.leaky_relu(x, 0.1)


@dataclass(frozen=True)
class ProGANStage:
    """One stage of growth: its resolution index and how long it trains."""

    base: ProGANConfig
    stage: int
    steps: int                   # optimiser steps in this stage (fade-in takes the first half)
    previous: "ProGANStage | None" = None


def downsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.adaptive_avg_pool2d(x, size)


class ProGAN(ConvGAN):
    """The conv GAN with growing networks; `stage` and the step counter decide resolution and α."""

    def __init__(self, cfg: ProGANStage):
        super().__init__(cfg.base.gan)
        # ConvGAN built its fixed-size pair; the growing pair replaces it (same losses, optimisers, EMA).
        self.generator = GrowingGenerator(cfg.base)
        self.discriminator = GrowingDiscriminator(cfg.base)
        self.generator.stage = self.discriminator.stage = cfg.stage
        self.stage_cfg = cfg
        self.base = cfg.base
        self.stage = cfg.stage
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # The step counter as train_step knows it on the host: reading the buffer at every step would wait for
        # the GPU. Read once per construction or state_dict load (a resumed run), then counted here too. Only
        # train_step uses it: the EMA copy's buffer changes under it, so `alpha` (sampling) reads the buffer.
        self._host_step: int | None = None

    def grow_from(self, previous: "ProGAN") -> "ProGAN":
        """Start this stage from the previous stage's weights: every block exists at every stage,
        so every weight is carried over (strict), and only the step counter starts again."""
        state = previous.state_dict()
        state["step"] = torch.zeros_like(self.step)
        self.load_state_dict(state, strict=True)
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        self._host_step = None
        super()._load_from_state_dict(*args, **kwargs)

    def _alpha_at(self, step: int) -> float:
        if self.stage == 0:
            return 1.0
        return min(1.0, (step + 1) / max(1, self.stage_cfg.steps // 2))

    @property
    def alpha(self) -> float:
        return self._alpha_at(int(self.step))

    @property
    def resolution(self) -> int:
        return self.base.resolutions[self.stage]

    def _set_alpha(self, a: float | None = None) -> float:
        self.generator.alpha = self.discriminator.alpha = a = self.alpha if a is None else a
        return a

    def real_at_stage(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        """Real images (float) at the stage's resolution; during fade-in (`alpha` < 1) blended with the
        coarser version, exactly as the generator's output is."""
        real = downsample_to(x, self.resolution)
        if self.stage > 0 and alpha < 1:
            coarse = F.interpolate(downsample_to(x, self.resolution // 2), scale_factor=2, mode="nearest")
            real = alpha * real + (1 - alpha) * coarse
        return real

    def train_step(self, batch, opt):
        if self._host_step is None:
            self._host_step = int(self.step)
        a = self._set_alpha(self._alpha_at(self._host_step))
        # α is a Python number: a CUDA graph would keep the first one it saw, so only a faded-in stage replays one.
        out = graphed(self, self.stage_step, batch, opt) if a >= 1 else self.stage_step(batch, opt)
        self._host_step += 1
        return {**out, "alpha": a}

    def stage_step(self, batch, opt):
        """The conv GAN's step on real images at this stage's resolution (at the α `_set_alpha` set)."""
        # Floats in [0, 1] pass through the conv GAN's uint8 -> [-1, 1] scaling unchanged.
        real = self.real_at_stage(gdata.to_float(batch[0]), self.generator.alpha)
        out = self.adversarial_step((real, *batch[1:]), opt)
        self.step += 1
        return out

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None, size: int | None = None):
        """n uint8 images on the CPU at the current stage, upsampled (nearest) to `size` if given."""
        self._set_alpha()
        x = super().sample(n, generator=generator, labels=labels)
        if size and size != x.shape[-1]:
            x = F.interpolate(x, size=size, mode="nearest")
        return x
