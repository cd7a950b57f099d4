"""RealNVP: a multi-scale affine coupling flow, readable top to bottom.

Every piece is a `Transform`: `forward(x) -> (y, logdet)` and
`inverse(y) -> (x, logdet)`, where logdet is log|det dy/dx| (forward) or
log|det dx/dy| (inverse), one value per sample. Pieces compose with `Chain`.

The likelihood is of the discrete 8-bit data. The preprocessing is part of the
flow, with its log-dets:

    x in {0..255}  --UniformDequantization-->  (x + u) / 256 in [0, 1)
                   --Logit(alpha)----------->  logit(alpha + (1 - 2 alpha) y)
                   --MultiScale------------->  z ~ N(0, I) (the last level's part of z: N(0, I) or
                                               a learned Gaussian mixture, `prior_components`)

so  log P(x) >= E_u[log p(z) + sum of logdets]  and bits/dim = -log P(x) / (D ln 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genlab.batched import map_batches
from genlab.errors import GenlabError
from genlab.train import TrainableModule, adam

LOG2 = math.log(2.0)


def _sum_per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


class Transform(nn.Module):
    """A bijection with a tractable log|det J|."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class Chain(Transform):
    """Transforms applied one after the other; log-dets add up."""

    def __init__(self, *transforms: Transform):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x):
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, logdet = t(x)
            total = total + logdet
        return x, total

    def inverse(self, y):
        total = y.new_zeros(y.shape[0])
        for t in reversed(self.transforms):
            y, logdet = t.inverse(y)
            total = total + logdet
        return y, total


# --- preprocessing ---------------------------------------------------------------------

class UniformDequantization(Transform):
    """{0..255} -> [0, 1): add uniform noise, divide by 256.

    Dividing by 256 has log-det -D log 256; with it the continuous density bounds
    the probability of the discrete image from below. The inverse rounds down.
    `centre=True` puts every pixel at the middle of its bin instead (deterministic,
    for encoding images; not for likelihoods).
    """

    def __init__(self, centre: bool = False):
        super().__init__()
        self.centre = centre

    def forward(self, x):
        x = x if x.is_floating_point() else x.to(torch.get_default_dtype())
        noise = torch.full_like(x, 0.5) if self.centre else torch.rand_like(x)
        d = x[0].numel()
        return (x + noise) / 256.0, x.new_full((x.shape[0],), -d * math.log(256.0))

    def inverse(self, y):
        d = y[0].numel()
        x = torch.floor(y * 256.0).clamp(0, 255)
        return x, y.new_full((y.shape[0],), d * math.log(256.0))


class Logit(Transform):
    """[0, 1] -> R: y = logit(alpha + (1 - 2 alpha) x); alpha keeps it finite at 0 and 1."""

    def __init__(self, alpha: float = 1e-6):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        s = self.alpha + (1 - 2 * self.alpha) * x
        y = torch.log(s) - torch.log1p(-s)
        logdet = _sum_per_sample(-torch.log(s) - torch.log1p(-s)) + x[0].numel() * math.log(1 - 2 * self.alpha)
        return y, logdet

    def inverse(self, y):
        s = torch.sigmoid(y)
        x = (s - self.alpha) / (1 - 2 * self.alpha)
        logdet = _sum_per_sample(F.logsigmoid(y) + F.logsigmoid(-y)) - y[0].numel() * math.log(1 - 2 * self.alpha)
        return x, logdet


# --- flow layers -----------------------------------------------------------------------

class Squeeze(Transform):
    """Space to depth: C x H x W -> 4C x H/2 x W/2. A permutation, so log-det 0."""

    def forward(self, x):
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, y):
        return F.pixel_shuffle(y, 2), y.new_zeros(y.shape[0])


class ActNorm(Transform):
    """Per-channel affine y = (x + b) * exp(log_s), initialised from the first batch
    so that every channel starts with zero mean and unit variance (Glow)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        # The buffer, read on the host once and then remembered: reading it at every forward would wait
        # for the GPU once per ActNorm per step. A state_dict load may change it, so loading forgets.
        self._known_initialized = False

    @torch.no_grad()
    def _init(self, x):
        mean = x.mean((0, 2, 3), keepdim=True)
        std = x.std((0, 2, 3), keepdim=True)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def _load_from_state_dict(self, *args, **kwargs):
        self._known_initialized = False
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x):
        if self.training and not self._known_initialized:
            if not self.initialized:
                self._init(x)
            self._known_initialized = True
        hw = x.shape[2] * x.shape[3]
        return (x + self.bias) * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0]) * hw

    def inverse(self, y):
        hw = y.shape[2] * y.shape[3]
        return y * torch.exp(-self.log_scale) - self.bias, -self.log_scale.sum().expand(y.shape[0]) * hw


class Invertible1x1Conv(Transform):
    """Glow's learned channel mixing: y = W x at every pixel, with W = P L (U + diag(sign · exp(log_s)))
    (LU-parametrised: P a fixed permutation, L unit lower triangular, U strictly upper
    triangular), so log|det W| = sum(log_s) and the log-det is H · W · sum(log_s), cheap and
    exact. Starts at a random rotation (|det| = 1)."""

    def __init__(self, channels: int):
        super().__init__()
        q = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x):
        w = self.weight()
        y = F.conv2d(x, w.to(x.dtype)[:, :, None, None])
        return y, self.log_s.sum().expand(x.shape[0]) * (x.shape[2] * x.shape[3])

    def inverse(self, y):
        w_inv = torch.linalg.inv(self.weight())
        x = F.conv2d(y, w_inv.to(y.dtype)[:, :, None, None])
        return x, -self.log_s.sum().expand(y.shape[0]) * (y.shape[2] * y.shape[3])


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)

    def forward(self, h):
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class CouplingNet(nn.Module):
    """A small ResNet: masked input (+ the mask itself) -> per-pixel log-scale and shift.

    The output convolution starts at zero, so every coupling starts as the identity:
    the usual way to keep a deep flow stable at the first steps.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int, blocks: int, kernel: int = 3):
        super().__init__()
        self.inp = nn.Conv2d(in_channels + 1, hidden, kernel, padding=kernel // 2)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden, kernel) for _ in range(blocks)])
        self.out = nn.Conv2d(hidden, 2 * out_channels, kernel, padding=kernel // 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, mask):
        h = self.inp(torch.cat([x, mask.expand(x.shape[0], 1, *x.shape[2:])], 1))
        return self.out(F.relu(self.blocks(h))).chunk(2, 1)


def checkerboard(h: int, w: int, parity: int) -> torch.Tensor:
    return (((torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2) == parity).float()[None, None]


class AffineCoupling(Transform):
    """y = x_a ⊕ (x_b * exp(s(x_a)) + t(x_a)), with x_a = the masked part.

    mask = 'checkerboard' (spatial, alternating parity) or 'channel' (first or second
    half of the channels). The log-scale is bounded, s = scale * tanh(s_raw / scale),
    with a learned per-channel `scale`: unbounded exp(s) is what blows flows up.
    A vector z of size d is the image d x 1 x 1: channel masks and kernel=1 make this
    the usual coupling of two halves of a vector (the flow posterior of the f-VAE).
    """

    def __init__(self, channels: int, size: int, mask: str, parity: int, hidden: int, blocks: int,
                 kernel: int = 3):
        super().__init__()
        if mask == "checkerboard":
            m = checkerboard(size, size, parity).expand(1, channels, size, size).clone()
        elif mask == "channel":
            m = torch.zeros(1, channels, 1, 1)
            half = channels // 2
            m[:, :half] = 1.0 if parity == 0 else 0.0
            m[:, half:] = 0.0 if parity == 0 else 1.0
            m = m.expand(1, channels, size, size).clone()
        else:
            raise ValueError(f"unknown mask {mask!r}; use 'checkerboard' or 'channel'")
        self.register_buffer("mask", m)
        self.net = CouplingNet(channels, channels, hidden, blocks, kernel)
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def _s_t(self, x_masked):
        s_raw, t = self.net(x_masked, self.mask[:, :1])
        s = self.scale * torch.tanh(s_raw / self.scale)
        keep = 1 - self.mask
        return s * keep, t * keep

    def forward(self, x):
        x_a = x * self.mask
        s, t = self._s_t(x_a)
        y = x_a + (1 - self.mask) * (x * torch.exp(s) + t)
        return y, _sum_per_sample(s)

    def inverse(self, y):
        y_a = y * self.mask
        s, t = self._s_t(y_a)
        x = y_a + (1 - self.mask) * ((y - t) * torch.exp(-s))
        return x, -_sum_per_sample(s)


# --- the multi-scale architecture ----------------------------------------------------------

@dataclass(frozen=True)
class FlowConfig:
    """RealNVP's shape and training. Plain values: the config is the cache key."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    scales: int = 2              # resolution levels: 2 = 28 and 14, 3 = 28, 14 and 7
    couplings: int = 3           # coupling layers per mask type and level
    hidden: int = 64             # channels of each coupling network
    blocks: int = 1              # residual blocks per coupling network
    masks: str = "checkerboard+channel"   # or "channel" (squeeze first, channel masks only)
    actnorm: bool = True
    invconv: bool = False        # Glow's invertible 1x1 convolution before every channel-mask coupling
    ema: float = 0.0             # EMA of the weights (kept by the training loop), used to evaluate and sample
    alpha: float = 1e-6          # logit's margin
    lr: float = 1e-3
    warmup_steps: int = 200
    grad_clip: float = 100.0
    weight_decay: float = 0.0
    # The last level's latents (the coarsest: the image's global shape) under a mixture of this many diagonal
    # Gaussians with learned means, scales and weights instead of N(0, I) (0: N(0, I) everywhere).
    prior_components: int = 0
    # How many levels' latents, counted from the last, share that mixture (1: the last level's only).
    prior_levels: int = 1


class FlowLevel(Transform):
    """One resolution: [checkerboard couplings], squeeze, [channel couplings].

    With masks='channel' the squeeze comes first and only channel masks follow
    (each with its own alternating parity), as in Glow without the 1x1 convs."""

    def __init__(self, channels: int, size: int, cfg: FlowConfig, last: bool):
        super().__init__()
        layers: list[Transform] = []

        def couple(c, s, mask, i):
            if cfg.actnorm:
                layers.append(ActNorm(c))
            if cfg.invconv and mask == "channel":
                layers.append(Invertible1x1Conv(c))
            layers.append(AffineCoupling(c, s, mask, i % 2, cfg.hidden, cfg.blocks))

        if cfg.masks == "checkerboard+channel":
            n_checker = cfg.couplings + (1 if last else 0)
            for i in range(n_checker):
                couple(channels, size, "checkerboard", i)
            if not last:
                layers.append(Squeeze())
                for i in range(cfg.couplings):
                    couple(4 * channels, size // 2, "channel", i)
        elif cfg.masks == "channel":
            if channels == 1 or not last:   # a single channel cannot be split by channel
                layers.append(Squeeze())
                channels, size = 4 * channels, size // 2
            for i in range(2 * cfg.couplings):
                couple(channels, size, "channel", i)
        else:
            raise ValueError(f"unknown masks {cfg.masks!r}; use 'checkerboard+channel' or 'channel'")
        self.chain = Chain(*layers)

    def forward(self, x):
        return self.chain(x)

    def inverse(self, y):
        return self.chain.inverse(y)


class MultiScaleFlow(Transform):
    """Levels with factor-out: after each level but the last, half the channels leave
    as latents (they are Gaussian from here on) and the rest go on to the next level.

    forward: image-shaped x -> flat z (N, D), all factored-out parts concatenated.
    """

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        c, h, _ = cfg.image_shape
        self.levels = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []   # shape of each level's output
        for level in range(cfg.scales):
            last = level == cfg.scales - 1
            lvl = FlowLevel(c, h, cfg, last)
            self.levels.append(lvl)
            with torch.no_grad():
                out_shape = lvl.eval()(torch.zeros(1, c, h, h))[0].shape[1:]
            lvl.train()
            self.shapes.append(tuple(out_shape))
            if not last:
                c, h = out_shape[0] // 2, out_shape[1]   # half the channels go on
        # The shape of each level's latents (the half that leaves, or the last level's whole output), and how many
        # entries of the flat z they take, in z's order (the finest level's first).
        self.latent_shapes = [s if i == cfg.scales - 1 else (s[0] // 2, *s[1:]) for i, s in enumerate(self.shapes)]
        self.latent_dims = [math.prod(s) for s in self.latent_shapes]

    def forward(self, x):
        zs, total = [], x.new_zeros(x.shape[0])
        for i, level in enumerate(self.levels):
            x, logdet = level(x)
            total = total + logdet
            if i < len(self.levels) - 1:
                half = x.shape[1] // 2
                zs.append(x[:, half:].flatten(1))
                x = x[:, :half]
        zs.append(x.flatten(1))
        return torch.cat(zs, 1), total

    def inverse(self, z):
        # Cut the flat z back into the per-level pieces, last level first.
        pieces = list(torch.split(z, self.latent_dims, 1))
        total = z.new_zeros(z.shape[0])
        x = pieces[-1].view(-1, *self.latent_shapes[-1])
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                x = torch.cat([x, pieces[i].view(-1, *self.latent_shapes[i])], 1)
            x, logdet = self.levels[i].inverse(x)
            total = total + logdet
        return x, total


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1)


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) over flat z of `dims`, everything learned.

    A flow that must map one Gaussian onto data made of separate kinds of images (ten classes of
    clothing) spends its capacity on the gaps between them, and samples land there; a mixture lets
    each kind keep a component of its own (as in FlowGMM, Izmailov et al. 2020, without labels)."""

    def __init__(self, components: int, dims: int):
        super().__init__()
        self.means = nn.Parameter(0.5 * torch.randn(components, dims))
        self.log_scales = nn.Parameter(torch.zeros(components, dims))
        self.logits = nn.Parameter(torch.zeros(components))
        # The first training batches replace the means with their latents, one image each, until every mean holds
        # one (as ActNorm starts from the data). From means at random, a few components drew all the data and the
        # rest faded: 100 trained on Fashion-MNIST kept ~10 that mattered. `filled` counts the means set so far; the
        # host remembers when all are (see ActNorm).
        self.register_buffer("filled", torch.tensor(0))
        self._known_filled = False

    @torch.no_grad()
    def _fill(self, z: torch.Tensor) -> None:
        k = int(self.filled)
        n = min(len(z), len(self.means) - k)
        self.means[k:k + n] = z[:n].to(self.means.dtype)
        self.filled += n

    def is_filled(self) -> bool:
        """Whether every mean has been set from the data (reads the count: a host sync on a GPU)."""
        return bool(self.filled >= len(self.means))

    def _load_from_state_dict(self, *args, **kwargs):
        self._known_filled = False
        super()._load_from_state_dict(*args, **kwargs)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if self.training and not self._known_filled:
            if self.filled < len(self.means):
                self._fill(z)
            self._known_filled = self.is_filled()
        # sum_d (z_d - mu_kd)^2 / sigma_kd^2 expanded into matrix products: no (batch, K, dims) tensor (with 100
        # components on 784 latents, 2.6 ms a step forward and back instead of 40 on one thread). In float32:
        # under bf16 the three terms' cancellation would lose the density.
        with torch.autocast(z.device.type, enabled=False):
            z = z.to(self.means.dtype)
            precision = torch.exp(-2 * self.log_scales)
            squares = ((z * z) @ precision.T - 2 * z @ (self.means * precision).T
                       + (self.means * self.means * precision).sum(1))
            per_component = (-0.5 * (squares + self.means.shape[1] * math.log(2 * math.pi))
                             - self.log_scales.sum(1))
            return torch.logsumexp(per_component + F.log_softmax(self.logits, 0), 1)

    def weights(self) -> torch.Tensor:
        return F.softmax(self.logits.detach().float().cpu(), 0)

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float | torch.Tensor = 1.0) -> torch.Tensor:
        """n draws; `temperature` scales each component's spread around its mean, not the means."""
        k = torch.multinomial(self.weights(), n, replacement=True,
                              generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator)
        return self.means.detach().cpu()[k] + temperature * torch.exp(self.log_scales.detach().cpu()[k]) * eps


class RealNVP(TrainableModule):
    """The full model: dequantisation, logit, multi-scale flow, Gaussian (or, for the last level's latents,
    Gaussian-mixture) prior."""

    channels_last = True   # NHWC convolutions: 1.27x the images/s at hidden 64 in bf16 (AMD EPYC, make bench)
    # A training step is ~14,000 small kernels: on a GPU, launching them from Python is the bottleneck
    # (genlab.cuda_graphs). Never used on a CPU.
    cuda_graph = True

    def __init__(self, cfg: FlowConfig):
        super().__init__()
        self.cfg = cfg
        self.grad_clip = cfg.grad_clip
        self.ema_decay = cfg.ema
        self.flow = Chain(UniformDequantization(), Logit(cfg.alpha), MultiScaleFlow(cfg))
        # The same layers with pixels at their bin centres: a deterministic encoder.
        self.encoder = Chain(UniformDequantization(centre=True), *self.flow.transforms[1:])
        self.dims = math.prod(cfg.image_shape)
        # The last levels' latents lead nothing: they are the last `top_dims` entries of the flat z.
        levels = self.flow.transforms[-1].latent_dims
        if not 1 <= cfg.prior_levels <= len(levels):
            raise GenlabError(f"prior_levels={cfg.prior_levels}: this flow has {len(levels)} levels; use 1 to "
                              f"{len(levels)}")
        self.top_dims = sum(levels[-cfg.prior_levels:])
        self.prior = GaussianMixturePrior(cfg.prior_components, self.top_dims) if cfg.prior_components else None

    def ready_for_cuda_graph(self) -> bool:
        # With fewer images per batch than mixture components, the first steps fill the prior's means; a capture
        # before they are all set would fill them again in its warm-up passes (and lose that on restoring the buffers).
        return self.prior is None or self.prior.is_filled()

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        if self.prior is None:
            return standard_normal_log_prob(z)
        rest, top = z[:, :-self.top_dims], z[:, -self.top_dims:]
        return standard_normal_log_prob(rest) + self.prior.log_prob(top)

    # --- likelihood ----------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log P(x) in nats for uint8 images x (a lower bound through dequantisation)."""
        z, logdet = self.flow(x.to(self.device))
        return self.prior_log_prob(z) + logdet

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """-log2 P(x) / D per image: nats / (D ln 2)."""
        return -self.log_prob(x) / (self.dims * LOG2)

    # --- latents and samples -------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> flat latents (each pixel at the centre of its bin)."""
        return self.encoder(x.to(self.device))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Flat latents -> uint8 images."""
        x, _ = self.flow.inverse(z.to(self.device))
        return x.to(torch.uint8)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None, *,
               temperature: float = 1.0) -> torch.Tensor:
        """n uint8 images (on the CPU) from z ~ N(0, T^2 I) (with a mixture prior, its draws for the last level's
        latents, T scaling each component's spread), decoded 500 at a time (the inverse pass of a large
        batch holds every level's activations at once). T=0 gives the image of the latent mode z=0 (with a mixture,
        of a component's mean)."""
        if labels is not None:
            raise GenlabError(f"{type(self).__name__} is unconditional: sample() takes no labels")
        z = torch.randn(n, self.dims, generator=generator) * temperature
        if self.prior is not None:
            top_t = temperature[-self.top_dims:] if torch.is_tensor(temperature) else temperature
            z[:, -self.top_dims:] = self.prior.sample(n, generator, top_t)
        return map_batches(self.decode, z, size=500)

    # --- training ------------------------------------------------------------------
    def configure_optimizers(self):
        return {"adam": adam(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)}

    def configure_schedulers(self, optimizers, total_steps):
        # Linear warm-up (a flow's first steps see wild gradients), then cosine decay.
        warm = min(self.cfg.warmup_steps, max(1, total_steps // 10))

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total_steps - warm)))

        return [torch.optim.lr_scheduler.LambdaLR(optimizers["adam"], factor)]

    def loss(self, batch):
        bpd = self.bits_per_dim(batch[0]).mean()
        return bpd, {"bits_per_dim": bpd.detach()}
