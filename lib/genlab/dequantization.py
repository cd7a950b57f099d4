"""Variational dequantisation (Flow++, Ho et al. 2019) for RealNVP.

Uniform dequantisation trains the flow on x + u with u ~ U[0, 1)^D, which asks the density to be
flat inside every bin of 256 grey levels: capacity spent on a shape the data never had. Variational
dequantisation draws u from a learned q(u | x) instead and trains the bound

    log P(x) >= E_q [ log p((x + u) / 256) - D log 256 - log q(u | x) ],

which is tight when q(u | x) equals the flow's own density inside the bin. q is a small conditional
flow: ε ~ N(0, I), affine couplings whose networks also see features of x, then a sigmoid into (0, 1).

Kept in its own module so that a RealNVP with uniform dequantisation does not depend on this code
(genlab.cache fingerprints a model by its classes and the genlab modules they import from).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from genlab.flows import CouplingNet, FlowConfig, RealNVP, Transform, checkerboard, standard_normal_log_prob


@dataclass(frozen=True)
class DequantizerConfig:
    hidden: int = 16       # channels of the conditioning network and of each coupling network
    couplings: int = 2     # affine couplings (alternating checkerboards) from ε to the logit of u


class ConditionalCoupling(nn.Module):
    """An affine coupling of v whose log-scale and shift also see the features h of the image."""

    def __init__(self, channels: int, size: int, features: int, hidden: int, parity: int):
        super().__init__()
        self.register_buffer("mask", checkerboard(size, size, parity).expand(1, channels, size, size).clone())
        self.net = CouplingNet(channels + features, channels, hidden, blocks=1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_a = v * self.mask
        s_raw, t = self.net(torch.cat([v_a, h], 1), self.mask[:, :1])
        keep = 1 - self.mask
        s = torch.tanh(s_raw) * keep        # bounded log-scale, as in genlab.flows.AffineCoupling
        return v_a + keep * (v * torch.exp(s) + t * keep), (s.flatten(1)).sum(1)


class VariationalDequantization(Transform):
    """{0..255} -> [0, 1): (x + u) / 256 with u ~ q(u | x).

    forward returns the dequantised image and what it adds to the log-likelihood bound,
    -D log 256 - log q(u | x) (the uniform case's log-det is -D log 256 alone). The inverse
    rounds down, as for uniform dequantisation.
    """

    def __init__(self, image_shape: tuple[int, int, int], cfg: DequantizerConfig = DequantizerConfig()):
        super().__init__()
        c, size, _ = image_shape
        self.condition = nn.Sequential(
            nn.Conv2d(c, cfg.hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(cfg.hidden, cfg.hidden, 3, padding=1), nn.ReLU())
        self.couplings = nn.ModuleList([ConditionalCoupling(c, size, cfg.hidden, cfg.hidden, parity=i % 2)
                                        for i in range(cfg.couplings)])

    def noise(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, log q(u | x)) for uint8 or float images x; `eps` fixes the Gaussian draw (tests)."""
        x = x if x.is_floating_point() else x.to(self.condition[0].weight.dtype)
        eps = torch.randn_like(x) if eps is None else eps
        h = self.condition(x / 127.5 - 1)
        v, logdet = eps, eps.new_zeros(eps.shape[0])
        for coupling in self.couplings:
            v, ld = coupling(v, h)
            logdet = logdet + ld
        u = torch.sigmoid(v)
        logdet = logdet + (F.logsigmoid(v) + F.logsigmoid(-v)).flatten(1).sum(1)   # du/dv = σ(v)(1 - σ(v))
        log_q = standard_normal_log_prob(eps.flatten(1)) - logdet
        return u, log_q

    def forward(self, x):
        x = x if x.is_floating_point() else x.to(self.condition[0].weight.dtype)
        u, log_q = self.noise(x)
        # u is in (0, 1) up to rounding: keep (x + u) inside x's bin, so that the inverse rounds back to x.
        u = u.clamp(0.0, 1.0 - 1e-6)
        return (x + u) / 256.0, -x[0].numel() * math.log(256.0) - log_q

    def inverse(self, y):
        d = y[0].numel()
        return torch.floor(y * 256.0).clamp(0, 255), y.new_full((y.shape[0],), d * math.log(256.0))


class VariationallyDequantizedRealNVP(RealNVP):
    """RealNVP whose first transform draws the dequantisation noise from q(u | x); everything else -
    logit, multi-scale flow, prior, sampling, the deterministic encoder - is RealNVP's."""

    def __init__(self, cfg: FlowConfig, dequantizer: DequantizerConfig = DequantizerConfig()):
        super().__init__(cfg)
        self.flow.transforms[0] = VariationalDequantization(cfg.image_shape, dequantizer)
