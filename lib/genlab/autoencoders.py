"""Convolutional autoencoders: AE, VAE, flow-posterior VAE (f-VAE) and β-VAE.

One model class covers all four, because they differ only in the latent path:

    AE     z = enc(x)
    VAE    z ~ q(z|x) = N(mu(x), diag sigma(x)^2),        loss = recon + beta * KL
    f-VAE  z0 ~ N(mu, sigma^2), z = f_K(...f_1(z0)) with affine couplings (genlab.flows),
           log q(z|x) = log N(z0) - sum log|det df/dz|,   KL estimated by Monte Carlo
    β-VAE  a VAE with beta > 1

Likelihoods, stated: "bernoulli" - Bernoulli on dynamically binarised pixels (the
literature's MNIST likelihood, a true discrete likelihood); "bce_grey" - binary
cross-entropy against grey values (what the seed report trained; not a normalised
likelihood of grey images, kept so its numbers can be compared like for like).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genlab import data as gdata
from genlab.errors import GenlabError
from genlab.flows import AffineCoupling, Chain
from genlab.train import TrainableModule, adam

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class AEConfig:
    kind: str = "vae"                 # "ae" or "vae"
    latent: int = 16
    width: int = 32                   # channels of the first conv; the second has 2x
    hidden: int = 256                 # fully connected layer between convs and code
    likelihood: str = "bernoulli"     # "bernoulli" (binarised) or "bce_grey"
    beta: float = 1.0
    # Steps over which the KL weight rises linearly from 0 to beta (KL annealing, Bowman et al. 2016). Without it
    # a VAE at batch 512 (the gpu profile) sat at the mean image for all of its 20 epochs (MNIST reconstruction
    # 199 nats, KL 0: posterior collapse); with 500 steps it left that plateau in its second epoch. At batch 128
    # (the cpu profile) the VAE escapes either way, and its -ELBO after 3 epochs was the same (107.8 vs 108.6).
    kl_warmup: int = 500
    flow_steps: int = 0               # K affine couplings in the posterior (f-VAE); 0 = plain VAE
    flow_hidden: int = 64
    lr: float = 1e-3
    image_shape: tuple[int, int, int] = (1, 28, 28)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(log_var)), summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_var + (z - mu) ** 2 / log_var.exp()).sum(-1)


def kl_standard_normal(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag var) || N(0, I)) in closed form, per sample (and per dim if not summed)."""
    return 0.5 * (mu ** 2 + log_var.exp() - 1 - log_var)


def binarise(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel is 1 with probability equal to its grey value."""
    p = gdata.to_float(x)
    return (torch.rand(p.shape, generator=generator, device=p.device) < p).float()


class Encoder(nn.Module):
    def __init__(self, cfg: AEConfig, out: int):
        super().__init__()
        c, h, _ = cfg.image_shape
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv2d(c, w, 4, 2, 1), nn.ReLU(),          # 28 -> 14
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.ReLU(),      # 14 -> 7
            nn.Flatten(),
            nn.Linear(2 * w * (h // 4) ** 2, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, out),
        )

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: AEConfig):
        super().__init__()
        c, h, _ = cfg.image_shape
        w = cfg.width
        self.net = nn.Sequential(
            nn.Linear(cfg.latent, cfg.hidden), nn.ReLU(),
            nn.Linear(cfg.hidden, 2 * w * (h // 4) ** 2), nn.ReLU(),
            nn.Unflatten(1, (2 * w, h // 4, h // 4)),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(),   # 7 -> 14
            nn.ConvTranspose2d(w, c, 4, 2, 1),                  # 14 -> 28, Bernoulli logits
        )

    def forward(self, z):
        return self.net(z)


class FlowPosterior(nn.Module):
    """K affine couplings on the latent vector, alternating halves (genlab.flows' layers)."""

    def __init__(self, latent: int, steps: int, hidden: int):
        super().__init__()
        self.chain = Chain(*[AffineCoupling(latent, 1, "channel", i % 2, hidden, blocks=1, kernel=1)
                             for i in range(steps)])

    def forward(self, z0):
        z, logdet = self.chain(z0[:, :, None, None])
        return z.flatten(1), logdet


class AutoEncoder(TrainableModule):
    # On a GPU the loss's forward and backward replay as one CUDA graph (genlab.cuda_graphs): in a probe on one
    # H200 (bf16, batch 512) a VAE training step took 5.9 ms eagerly and 1.4 ms graphed. Never used on a CPU.
    cuda_graph = True

    def __init__(self, cfg: AEConfig):
        super().__init__()
        if cfg.kind not in ("ae", "vae"):
            raise ValueError(f"unknown kind {cfg.kind!r}; use 'ae' or 'vae'")
        if cfg.likelihood not in ("bernoulli", "bce_grey"):
            raise ValueError(f"unknown likelihood {cfg.likelihood!r}; use 'bernoulli' or 'bce_grey'")
        self.cfg = cfg
        self.encoder = Encoder(cfg, cfg.latent if cfg.kind == "ae" else 2 * cfg.latent)
        self.decoder = Decoder(cfg)
        self.flow = FlowPosterior(cfg.latent, cfg.flow_steps, cfg.flow_hidden) if cfg.flow_steps else None
        # Training steps taken, for the KL warm-up; a buffer, so a resumed run continues the ramp.
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # --- data ---------------------------------------------------------------------
    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """What the decoder is scored against: binarised or grey pixels in [0, 1]."""
        if self.cfg.likelihood == "bernoulli" and self.training:
            return binarise(x)
        if self.cfg.likelihood == "bernoulli":
            # Evaluation uses one fixed binarisation, so test numbers are repeatable.
            return binarise(x, torch.Generator(device=x.device).manual_seed(0))
        return gdata.to_float(x)

    # --- latent path ----------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log_var) of the Gaussian q0(z0|x); for the AE, (code, None)."""
        h = self.encoder(gdata.to_float(x.to(self.device))).float()   # the latent arithmetic stays float32 under autocast
        if self.cfg.kind == "ae":
            return h, None
        mu, log_var = h.chunk(2, 1)
        return mu, log_var.clamp(-12, 8)

    def sample_posterior(self, mu, log_var, k: int = 1):
        """k samples z ~ q(z|x) per input with log q(z|x): shapes (k, N, d), (k, N)."""
        eps = torch.randn(k, *mu.shape, device=mu.device)
        z0 = mu + (0.5 * log_var).exp() * eps
        log_q = gaussian_log_prob(z0, mu, log_var)
        if self.flow is None:
            return z0, log_q
        z, logdet = self.flow(z0.flatten(0, 1))
        return z.view(k, *mu.shape), log_q - logdet.view(k, -1)

    def recon_nll(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image (nats): Bernoulli / BCE summed over pixels."""
        return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none").flatten(-3).sum(-1)

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image reconstruction NLL and KL (closed form for the VAE, one-sample MC for f-VAE)."""
        x = x.to(self.device)
        target = self.targets(x)
        mu, log_var = self.posterior(x)
        if self.cfg.kind == "ae":
            return {"recon": self.recon_nll(self.decoder(mu).float(), target),
                    "kl": torch.zeros(len(x), device=x.device)}
        z, log_q = self.sample_posterior(mu, log_var)
        recon = self.recon_nll(self.decoder(z[0]).float(), target)
        if self.flow is None:
            kl = kl_standard_normal(mu, log_var).sum(1)
        else:
            kl = log_q[0] - gaussian_log_prob(z[0], torch.zeros_like(z[0]), torch.zeros_like(z[0]))
        return {"recon": recon, "kl": kl}

    def loss(self, batch):
        t = self.elbo_terms(batch[0])
        recon, kl = t["recon"].mean(), t["kl"].mean()
        weight = self.cfg.beta
        if self.training and self.cfg.kl_warmup:
            # Tensor arithmetic on the step counter: no host sync per step.
            weight = weight * ((self.steps + 1).float() / self.cfg.kl_warmup).clamp(max=1.0)
            self.steps += 1
        loss = recon + weight * kl
        return loss, {"recon": recon.detach(), "kl": kl.detach(), "neg_elbo": (recon + kl).detach()}

    def configure_optimizers(self):
        return {"adam": adam(self.parameters(), lr=self.cfg.lr)}

    # --- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def iwae_log_likelihood(self, x: torch.Tensor, k: int, chunk: int = 100) -> torch.Tensor:
        """Importance-weighted estimate of log p(x) per image (nats), k samples:
        log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x). A lower bound that tightens as k
        grows (Burda et al. 2016); k = 1 is the ELBO."""
        x = x.to(self.device)
        target = self.targets(x)
        mu, log_var = self.posterior(x)
        weights = []
        for start in range(0, k, chunk):
            kk = min(chunk, k - start)
            z, log_q = self.sample_posterior(mu, log_var, kk)
            out = self.decoder(z.flatten(0, 1))
            log_px = -self.recon_nll(out.view(kk, *target.shape), target)
            log_pz = -0.5 * (LOG_2PI + z ** 2).sum(-1)
            weights.append(log_px + log_pz - log_q)
        return torch.logsumexp(torch.cat(weights), 0) - math.log(k)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction (decoder probabilities at the posterior mean) as uint8."""
        mu, _ = self.posterior(x)
        return (torch.sigmoid(self.decoder(mu)) * 255).round().to(torch.uint8)

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (on any device) -> the decoder's mean image as uint8."""
        z = z.to(self.device)
        return (torch.sigmoid(self.decoder(z)) * 255).round().to(torch.uint8)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images from the prior: the decoder's mean (pixel probabilities) as uint8, on the CPU."""
        if labels is not None:
            raise GenlabError(f"{type(self).__name__} is unconditional: sample() takes no labels")
        return self.decode_mean(torch.randn(n, self.cfg.latent, generator=generator)).cpu()
