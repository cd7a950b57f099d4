"""GANs on 28x28 images: vanilla (MLP), and the conv GAN (unconditional or conditional,
with feature matching and mode seeking), each owning its losses and optimisers
(`train_step`), trained by the one loop in genlab.train. The progressive GAN is in
genlab.progan.

Images are scaled to [-1, 1] for the networks (tanh outputs); `to_uint8` maps back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genlab import data as gdata
from genlab.batched import map_batches
from genlab.errors import GenlabError
from genlab.train import TrainableModule, adam


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return gdata.to_float(x) * 2 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ==== 1. vanilla GAN ======================================================================

@dataclass(frozen=True)
class GANConfig:
    image_shape: tuple[int, int, int] = (1, 28, 28)
    noise: int = 64
    hidden: int = 256               # G: hidden, 2*hidden, 4*hidden; D: 2*hidden, hidden
    dropout: float = 0.3            # in D: keeps it from memorising the real batch
    label_smoothing: float = 0.9    # target for real images in D's loss (one-sided)
    lr_g: float = 2e-4              # DCGAN's; the notebook trains at gan_budget.GANBudget.lr (5e-4, measured there)
    lr_d: float = 2e-4
    beta1: float = 0.5              # Adam β1 = 0.5, as in DCGAN: less momentum, fewer oscillations
    # EMA of the weights (fit keeps it); samples come from G's average, as the conv GANs' do. Measured (cpu budget,
    # lr 2e-4 then, 8 epochs, seed 0, AMD EPYC family 25, one thread): FID 216 -> 156 on MNIST and 185 -> 112 on
    # Fashion-MNIST at decay 0.999, at no extra training time; the report compares the same run's raw weights.
    # Decay 0.99: 161 and 132. Over these 7,500 steps any decay >= 0.999 trains the same average (0.9995 gave
    # identical FIDs): the loop's warm-up caps the decay at t / (t + 10).
    ema: float = 0.999


class MLPGenerator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        h, d = cfg.hidden, math.prod(cfg.image_shape)
        self.shape = cfg.image_shape
        self.net = nn.Sequential(
            nn.Linear(cfg.noise, h), nn.LeakyReLU(0.2),
            nn.Linear(h, 2 * h), nn.LeakyReLU(0.2),
            nn.Linear(2 * h, 4 * h), nn.LeakyReLU(0.2),
            nn.Linear(4 * h, d), nn.Tanh())

    def forward(self, z):
        return self.net(z).view(-1, *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg: GANConfig):
        super().__init__()
        h, d = cfg.hidden, math.prod(cfg.image_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(d, 2 * h), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout),
            nn.Linear(2 * h, h), nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout),
            nn.Linear(h, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def device_noise(n: int, dim: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise (n, dim) on `device`. Drawn there when no generator is given (as training draws it: a CUDA
    graph cannot copy from the host; on a CPU the numbers are the same either way); a caller's generator is a CPU
    one, so its noise is drawn on the CPU and moved."""
    if generator is None:
        return torch.randn(n, dim, device=device)
    return torch.randn(n, dim, generator=generator).to(device)


def graphed(model: nn.Module, step, batch, optimizers) -> dict:
    """`step(batch, optimizers)`, or its replay as one CUDA graph where `fit` installed one for `model` (on a GPU,
    models with `cuda_graph = "step"`: genlab.cuda_graphs.StepGraph)."""
    graph = model.__dict__.get("_step_graph")
    return step(batch, optimizers) if graph is None else graph(step, batch, optimizers)


class AdversarialPair(TrainableModule):
    """What the BCE GANs share: two Adam optimisers, Gaussian noise, D's loss with
    one-sided label smoothing, and the non-saturating generator loss. Subclasses set
    `generator`, `discriminator` and a config with noise, lr_g, lr_d, beta1, label_smoothing."""

    def configure_optimizers(self):
        b = (self.cfg.beta1, 0.999)
        return {"g": adam(self.generator.parameters(), self.cfg.lr_g, betas=b),
                "d": adam(self.discriminator.parameters(), self.cfg.lr_d, betas=b)}

    cuda_graph = "step"       # on a GPU, each whole training step replays as one CUDA graph (genlab.cuda_graphs)

    def noise(self, n, generator=None):
        return device_noise(n, self.cfg.noise, self.device, generator)

    def discriminator_loss(self, d_real, d_fake):
        """BCE with real -> label_smoothing (e.g. 0.9), fake -> 0."""
        return (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, self.cfg.label_smoothing))
                + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))

    @staticmethod
    def generator_loss(d_gen):
        """Non-saturating: -log D(G(z)), whose gradient survives a confident D."""
        return F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))

    @staticmethod
    def update(optimizer, loss):
        """One step of `optimizer` on `loss`. The backward pass computes the gradients of this optimiser's weights
        only: G's loss goes through D, and D's weight gradients there were work thrown away (D's next update
        starts from zero). Measured on the cGAN's step (AMD EPYC family 26, one thread): 9 % less time."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[p for group in optimizer.param_groups for p in group["params"]])
        optimizer.step()

    @staticmethod
    def d_outputs(d_real, d_fake) -> dict[str, float]:
        return {"D(x)": torch.sigmoid(d_real).mean().detach(), "D(G(z))": torch.sigmoid(d_fake).mean().detach()}

    @torch.no_grad()
    def validation_metrics(self, batch):
        return {}


class VanillaGAN(AdversarialPair):
    """Non-saturating GAN with MLPs: D minimises BCE(real -> 0.9, fake -> 0); G maximises log D(G(z))."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.ema_decay = cfg.ema
        self.generator = MLPGenerator(cfg)
        self.discriminator = MLPDiscriminator(cfg)

    def train_step(self, batch, opt):
        return graphed(self, self.adversarial_step, batch, opt)

    def adversarial_step(self, batch, opt):
        real = to_signed(batch[0])
        with self.autocast():
            fake = self.generator(self.noise(len(real)))
            d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
            loss_d = self.discriminator_loss(d_real, d_fake)
        self.update(opt["d"], loss_d)
        with self.autocast():
            loss_g = self.generator_loss(self.discriminator(fake))
        self.update(opt["g"], loss_g)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **self.d_outputs(d_real, d_fake)}

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        """n uint8 images on the CPU."""
        if labels is not None:
            raise GenlabError(f"{type(self).__name__} is unconditional: sample() takes no labels")
        self.eval()
        return to_uint8(self.generator(self.noise(n, generator))).cpu()


# ==== 2. convolutional GAN: DCGAN-shaped, with the small-budget techniques ==================

@dataclass(frozen=True)
class ConvGANConfig:
    """A DCGAN-shaped pair; each technique is a switch so that its effect can be measured alone.

    classes > 0 makes it conditional: G gets a label embedding beside z, and D is a
    projection discriminator (Miyato & Koyama 2018): D(x, y) = psi(h(x)) + <embed(y), h(x)>.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    classes: int = 0                 # 0 = unconditional
    noise: int = 128
    width: int = 64                  # D: width, 2 width channels; G mirrors it
    loss: str = "hinge"              # "hinge" or "ns" (non-saturating BCE)
    spectral_norm: bool = True       # on every layer of D: its Lipschitz constant stays near 1
    lr_g: float = 1e-3               # lr_d > lr_g is the two time-scale update rule (TTUR)
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    ema: float = 0.999               # EMA of the weights (fit keeps it); G's EMA is what is sampled
    feature_matching: float = 0.0    # weight of || E h(x) - E h(G(z)) ||^2 in G's loss
    mode_seeking: float = 0.0        # weight of MSGAN's 1 / (|G(z1)-G(z2)| / |z1-z2|) in G's loss


class ConvGenerator(nn.Module):
    """[z, embed(y)] -> 2w x 7 x 7 -> transposed conv (w x 14 x 14) -> transposed conv (image, 28 x 28).
    DCGAN's shape, kept small: a CPU trains it at about a thousand images per second."""

    def __init__(self, cfg: ConvGANConfig):
        super().__init__()
        w, (c, h, _) = cfg.width, cfg.image_shape
        self.s = h // 4
        self.embed = nn.Embedding(cfg.classes, cfg.noise) if cfg.classes else None
        self.fc = nn.Linear(cfg.noise * (2 if cfg.classes else 1), 2 * w * self.s * self.s)
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, c, 4, 2, 1), nn.Tanh())

    def forward(self, z, y=None):
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], 1)
        # fc's output read pixel by pixel (N, s, s, 2w), then seen as NCHW: a channels_last map, the layout of the
        # convolutions after it. Read channel by channel it would be NCHW, and batch norm, ReLU and their
        # gradients would run on both layouts at once (slow on a CPU).
        return self.net(self.fc(z).view(len(z), self.s, self.s, -1).permute(0, 3, 1, 2))


class ConvDiscriminator(nn.Module):
    """Two strided convs to 7 x 7 and one more conv; the flattened map is the feature h(x) and a
    linear head psi scores it; with classes, the projection term <embed(y), h(x)> is added.
    (Global pooling instead of flattening weakens a spectrally normalised D too much for a
    small budget: measured FID 323 against 180 after 1200 steps on MNIST.)"""

    def __init__(self, cfg: ConvGANConfig):
        super().__init__()
        w, (c, h, _) = cfg.width, cfg.image_shape
        sn = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else (lambda m: m)
        self.features = nn.Sequential(
            sn(nn.Conv2d(c, w, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(2 * w, 2 * w, 3, padding=1)), nn.LeakyReLU(0.1))
        dim = 2 * w * (h // 4) ** 2
        self.head = sn(nn.Linear(dim, 1))
        self.embed = sn(nn.Embedding(cfg.classes, dim)) if cfg.classes else None

    def forward(self, x, y=None, with_features: bool = False):
        h = flatten_features(self.features(x))
        out = projection_score(h, self.head, self.embed, y)
        return (out, h) if with_features else out


def flatten_features(h: torch.Tensor) -> torch.Tensor:
    """D's feature map (N, C, H, W) as vectors (N, H·W·C), ordered pixel by pixel: for a channels_last map (as
    genlab trains them) that is a view. C·H·W order would copy the map, and its gradient would come back in the
    other layout, so that every elementwise op of D's backward pass ran on two layouts at once (slow on a CPU)."""
    return h.permute(0, 2, 3, 1).flatten(1)


def projection_score(h: torch.Tensor, head: nn.Linear, embed: nn.Embedding | None,
                     y: torch.Tensor | None) -> torch.Tensor:
    """D's score psi(h) + <embed(y), h> (the projection term only with classes), as one matrix product of the
    features with the head's weight and every class's embedding, each row then taking its own class's column:
    the same sum as gathering embed(y) and multiplying elementwise, without materialising an (N, dim) product
    twice per pass."""
    if embed is None:
        return head(h).squeeze(1)
    scores = F.linear(h, torch.cat([head.weight, embed.weight], 0)).float()   # (N, 1 + classes)
    return scores[:, 0] + head.bias + scores[:, 1:].gather(1, y[:, None]).squeeze(1)


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Salimans et al. (2016): || E f(x) - E f(G(z)) ||^2 on an intermediate layer of D."""
    return (real_features.mean(0) - fake_features.mean(0)).pow(2).sum()


def mode_seeking_ratio(a: torch.Tensor, b: torch.Tensor, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
    """MSGAN (Mao et al. 2019): mean |G(z1) - G(z2)| / mean |z1 - z2|. A generator that ignores
    its noise (collapse within a class) drives it to 0; G's loss gets 1 / ratio."""
    return (a - b).abs().mean() / (za - zb).abs().mean()


class ConvGAN(TrainableModule):
    """One D step and one G step per batch; hinge or non-saturating loss; conditional when
    cfg.classes > 0 (projection D); fit keeps the EMA of the weights (cfg.ema)."""

    channels_last = True      # NHWC convolutions: faster on CPUs and GPUs alike (make bench)
    cuda_graph = "step"       # on a GPU, each whole training step replays as one CUDA graph (genlab.cuda_graphs)
    # Where `sample` draws labels when none are given: None = every class in turn; a self-conditioned
    # GAN (genlab.clusters) sets its clusters' frequencies here.
    label_prior: torch.Tensor | None = None

    def __init__(self, cfg: ConvGANConfig):
        super().__init__()
        if cfg.loss not in ("hinge", "ns"):
            raise ValueError(f"unknown GAN loss {cfg.loss!r}; use 'hinge' or 'ns'")
        self.cfg = cfg
        self.ema_decay = cfg.ema
        self.generator = ConvGenerator(cfg)
        self.discriminator = ConvDiscriminator(cfg)

    def configure_optimizers(self):
        return {"g": adam(self.generator.parameters(), self.cfg.lr_g, betas=self.cfg.betas),
                "d": adam(self.discriminator.parameters(), self.cfg.lr_d, betas=self.cfg.betas)}

    def noise(self, n, generator=None):
        return device_noise(n, self.cfg.noise, self.device, generator)

    def draw_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The labels `sample` gives G when none are asked for (None for an unconditional G), on the CPU."""
        if not self.cfg.classes:
            return None
        if self.label_prior is None:
            return torch.arange(n) % self.cfg.classes
        return torch.multinomial(self.label_prior, n, replacement=True, generator=generator)

    @torch.no_grad()
    def refresh_statistics(self, batches: int = 16, batch: int = 64) -> None:
        """Set G's batch-norm statistics from G's current weights: their average over `batches` forward passes
        of G's own samples, from a fixed seed (sampling stays reproducible, and the training RNG is not touched).
        fit's EMA averages the weights but copies the buffers, so without this the EMA generator would normalise
        with the statistics of the optimiser's generator (BigGAN's "standing statistics" mend the same). Measured
        on the cpu reports' models (AMD EPYC family 26, 2,000 samples): FID 13.9 -> 12.3 (conv GAN, Fashion-MNIST),
        13.4 -> 11.9 (MNIST), cGAN 82.8 -> 77.0 (Fashion-MNIST) and 22.2 -> 19.2 (MNIST); ProGAN 163.9 -> 163.3 (its
        EMA decays at 0.99, so the two generators are close). 4 batches did as well as 64."""
        norms = [m for m in self.generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        was_training, momenta = self.generator.training, [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None    # None: a cumulative average over the passes
        self.generator.train()
        seed = torch.Generator().manual_seed(0)
        try:
            for _ in range(batches):
                labels = self.draw_labels(batch, seed)
                self.generator(self.noise(batch, seed), None if labels is None else labels.to(self.device))
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.generator.train(was_training)

    def d_loss(self, d_real, d_fake):
        if self.cfg.loss == "hinge":
            return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def g_loss(self, d_gen):
        return -d_gen.mean() if self.cfg.loss == "hinge" else F.softplus(-d_gen).mean()

    def train_step(self, batch, opt):
        return graphed(self, self.adversarial_step, batch, opt)

    def adversarial_step(self, batch, opt):
        """One D update, then one G update, on `batch`: all of it on the device (see `graphed`)."""
        real = to_signed(batch[0]).contiguous(memory_format=torch.channels_last)
        y = batch[1] if self.cfg.classes else None
        n, half = len(real), len(real) // 2
        z = self.noise(n)
        # Mode seeking pairs sample i with sample i + n/2: the same label, another z.
        y_fake = y[torch.arange(n, device=y.device) % half] if y is not None and self.cfg.mode_seeking else y
        with self.autocast():
            fake = self.generator(z, y_fake)
            d_real, h_real = self.discriminator(real, y, with_features=True)
            d_fake = self.discriminator(fake.detach(), y_fake)
            loss_d = self.d_loss(d_real.float(), d_fake.float())
        AdversarialPair.update(opt["d"], loss_d)
        with self.autocast():
            d_gen, h_fake = self.discriminator(fake, y_fake, with_features=True)
            loss_g = self.g_loss(d_gen.float())
            fm = feature_matching_loss(h_real.detach().float(), h_fake.float())
            if self.cfg.feature_matching:
                loss_g = loss_g + self.cfg.feature_matching * fm
        ms = mode_seeking_ratio(fake[:half].float(), fake[half:2 * half].float(), z[:half], z[half:2 * half])
        if self.cfg.mode_seeking:
            loss_g = loss_g + self.cfg.mode_seeking / (ms + 1e-5)
        AdversarialPair.update(opt["g"], loss_g)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "feature_matching": fm.detach(),
                "mode_seeking_ratio": ms.detach(),
                "D(x)": d_real.float().mean().detach(), "D(G(z))": d_fake.float().mean().detach()}

    @torch.no_grad()
    def validation_metrics(self, batch):
        return {}

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        """n uint8 images on the CPU; conditional models take `labels` (default 0..classes-1 in turn, or drawn
        from `label_prior`), unconditional ones refuse them. G's batch norm first gets statistics of G's own
        weights (`refresh_statistics`)."""
        if labels is not None and not self.cfg.classes:
            raise GenlabError(f"{type(self).__name__} is unconditional: sample() takes no labels")
        self.refresh_statistics()
        self.eval()
        device = self.device
        if self.cfg.classes and labels is None:
            labels = self.draw_labels(n, generator)
        y = labels.to(device) if self.cfg.classes else None
        out = map_batches(lambda idx: self.generator(self.noise(len(idx), generator), None if y is None else y[idx]),
                          torch.arange(n), size=1000, cpu=False)
        return to_uint8(out).contiguous().cpu()
