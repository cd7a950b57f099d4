import math

import torch
from torch import nn
from torch.autograd.functional import jacobian

from genlab.autoencoders import (AEConfig, AutoEncoder, binarise, gaussian_log_prob,
                                 kl_standard_normal)


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu, log_var = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.0, -1.5, 0.7]])
    z = mu + (0.5 * log_var).exp() * torch.randn(400_000, 3, generator=g)
    mc = (gaussian_log_prob(z, mu, log_var) - gaussian_log_prob(z, torch.zeros(3), torch.zeros(3))).mean()
    closed = kl_standard_normal(mu, log_var).sum()
    assert abs(mc - closed) < 0.02 * closed


class LinearGaussian(AutoEncoder):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): the marginal p(x) is known exactly."""

    sigma = 0.5

    def __init__(self):
        super().__init__(AEConfig(latent=2, width=4, hidden=8, image_shape=(1, 4, 4)))
        g = torch.Generator().manual_seed(1)
        self.W, self.b = torch.randn(16, 2, generator=g), torch.randn(16, generator=g) * 0.3
        self.decoder = nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)))
        with torch.no_grad():
            self.decoder[0].weight.copy_(self.W)
            self.decoder[0].bias.copy_(self.b)

    def targets(self, x):
        return x

    def recon_nll(self, mean, target):
        return 0.5 * (((target - mean) / self.sigma) ** 2 + math.log(2 * math.pi * self.sigma ** 2)).flatten(-3).sum(-1)

    def true_log_likelihood(self, x):
        cov = self.W @ self.W.T + self.sigma ** 2 * torch.eye(16)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.flatten(1))


def test_iwae_approaches_the_true_log_likelihood_as_k_grows():
    torch.manual_seed(0)
    model = LinearGaussian().eval()
    z = torch.randn(20, 2)
    x = (z @ model.W.T + model.b + 0.5 * torch.randn(20, 16)).view(-1, 1, 4, 4)
    truth = model.true_log_likelihood(x)
    gaps = [(truth - model.iwae_log_likelihood(x, k)).mean().item() for k in (1, 10, 100, 5000)]
    assert gaps[0] > 0.5                                   # the ELBO is a loose bound here
    assert all(a > b for a, b in zip(gaps, gaps[1:]))      # and every step in k tightens it
    assert -0.05 < gaps[-1] < 0.1 * gaps[0]


def test_flow_posterior_log_q_is_the_change_of_variables_density():
    torch.manual_seed(0)
    model = AutoEncoder(AEConfig(latent=4, flow_steps=3, flow_hidden=8)).double()
    with torch.no_grad():
        for m in model.flow.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0, 0.5)
                m.bias.normal_(0, 0.1)
    mu, log_var = torch.randn(1, 4, dtype=torch.float64), torch.randn(1, 4, dtype=torch.float64) * 0.3
    z, log_q = model.sample_posterior(mu, log_var, k=3)

    def inverse(v):
        return model.flow.chain.inverse(v.view(1, 4, 1, 1))[0].flatten()

    for i in range(3):
        zi = z[i, 0]
        z0 = inverse(zi)
        brute = gaussian_log_prob(z0, mu[0], log_var[0]) + torch.linalg.slogdet(jacobian(inverse, zi))[1]
        assert abs(brute.item() - log_q[i, 0].item()) < 1e-8


def test_dynamic_binarisation_has_the_grey_value_as_mean():
    x = torch.full((20000, 1, 2, 2), 64, dtype=torch.uint8)
    b = binarise(x, torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - 64 / 255) < 0.01


def test_every_kind_trains_on_a_batch():
    x = (torch.rand(64, 1, 28, 28) < 0.2).to(torch.uint8) * 255
    for cfg in (AEConfig(kind="ae", lr=3e-3), AEConfig(lr=3e-3), AEConfig(flow_steps=2, lr=3e-3),
                AEConfig(likelihood="bce_grey", beta=4.0, lr=3e-3)):
        torch.manual_seed(0)
        model = AutoEncoder(cfg)
        opt = model.configure_optimizers()
        first = model.train_step((x,), opt)["loss"]
        for _ in range(15):
            last = model.train_step((x,), opt)["loss"]
        assert last < 0.85 * first, cfg


def test_kl_weight_rises_linearly_over_the_warmup_and_only_while_training():
    x = (torch.rand(16, 1, 28, 28) < 0.2).to(torch.uint8) * 255
    model = AutoEncoder(AEConfig(beta=2.0, kl_warmup=4))
    for step in range(6):
        loss, m = model.loss((x,))
        weight = 2.0 * min(1.0, (step + 1) / 4)
        assert torch.allclose(loss, m["recon"] + weight * m["kl"], rtol=1e-5), step
    assert int(model.steps) == 6 and "steps" in model.state_dict()   # a resumed run continues the ramp
    model.eval()
    loss, m = model.loss((x,))
    assert torch.allclose(loss, m["recon"] + 2.0 * m["kl"], rtol=1e-5) and int(model.steps) == 6


def test_without_warmup_the_loss_is_the_beta_elbo_from_the_first_step():
    x = (torch.rand(16, 1, 28, 28) < 0.2).to(torch.uint8) * 255
    model = AutoEncoder(AEConfig(beta=4.0, kl_warmup=0))
    loss, m = model.loss((x,))
    assert torch.allclose(loss, m["recon"] + 4.0 * m["kl"], rtol=1e-5)
