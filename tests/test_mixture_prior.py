"""The flows' Gaussian-mixture prior on the last levels' latents: its density is the mixture's (in float32
under autocast too), RealNVP adds it to the log-det in place of N(0, I) for exactly those latents, and its
samples come from it."""
import math

import pytest
import torch
from torch import distributions as D

from genlab.errors import GenlabError
from genlab.flows import FlowConfig, GaussianMixturePrior, RealNVP, standard_normal_log_prob


def randomised_prior(components=3, dims=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    prior = GaussianMixturePrior(components, dims).double()
    with torch.no_grad():
        prior.means.copy_(torch.randn(components, dims, generator=g, dtype=torch.float64))
        prior.log_scales.copy_(0.3 * torch.randn(components, dims, generator=g, dtype=torch.float64))
        prior.logits.copy_(torch.randn(components, generator=g, dtype=torch.float64))
    return prior.eval()


def test_mixture_log_prob_is_the_mixture_density():
    prior = randomised_prior()
    reference = D.MixtureSameFamily(D.Categorical(logits=prior.logits),
                                    D.Independent(D.Normal(prior.means, prior.log_scales.exp()), 1))
    z = torch.randn(7, 5, dtype=torch.float64)
    assert torch.allclose(prior.log_prob(z), reference.log_prob(z))


def test_mixture_log_prob_stays_float32_under_bf16_autocast():
    prior = randomised_prior(components=20, dims=196).float()
    z = 3 * torch.randn(16, 196)
    exact = prior.double().log_prob(z.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = prior.float().log_prob(z)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed.double(), exact, rtol=1e-5, atol=1e-3)


def test_the_first_training_batches_put_the_means_on_their_latents():
    prior = GaussianMixturePrior(5, 3)
    first, second = torch.randn(3, 3), torch.randn(4, 3)
    prior.eval().log_prob(first)
    assert int(prior.filled) == 0                         # evaluation never moves them
    prior.train().log_prob(first)
    assert torch.equal(prior.means[:3], first) and int(prior.filled) == 3
    prior.log_prob(second)
    assert torch.equal(prior.means[3:], second[:2]) and int(prior.filled) == 5
    prior.log_prob(torch.randn(4, 3))
    assert torch.equal(prior.means[3:], second[:2])       # all set: training moves them by gradient only
    restored = GaussianMixturePrior(5, 3)
    restored.load_state_dict(prior.state_dict())
    restored.train().log_prob(torch.randn(2, 3))
    assert torch.equal(restored.means, prior.means)


def test_one_standard_component_is_the_standard_normal():
    prior = GaussianMixturePrior(1, 6).double().eval()
    with torch.no_grad():
        prior.means.zero_()
    z = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(prior.log_prob(z), standard_normal_log_prob(z))


def test_samples_follow_the_weights_and_temperature_scales_the_spread_around_each_mean():
    prior = randomised_prior(components=2, dims=3)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([math.log(3.0), 0.0]))     # weights 0.75, 0.25
    g = torch.Generator().manual_seed(0)
    at_zero = prior.sample(4000, g, temperature=0.0)
    first = (at_zero == prior.means[0]).all(1)
    assert ((at_zero == prior.means[1]).all(1) | first).all()       # T = 0: exactly a component's mean
    assert abs(first.double().mean().item() - 0.75) < 0.03
    spread = prior.sample(4000, g, temperature=0.5)
    k0 = (spread - prior.means[0]).norm(dim=1) < (spread - prior.means[1]).norm(dim=1)
    std = (spread[k0] - prior.means[0]).std(0)
    assert torch.allclose(std, 0.5 * prior.log_scales[0].exp(), rtol=0.1)


def test_realnvp_puts_the_mixture_on_the_last_levels_latents_only():
    cfg = FlowConfig(image_shape=(1, 8, 8), scales=3, couplings=1, hidden=4, prior_components=4)
    model = RealNVP(cfg).double().eval()
    with torch.no_grad():
        model.prior.log_scales.normal_(0, 0.3)
    assert model.top_dims == 16 and model.dims == 64      # the 7-px level's analogue here: 4 x 2 x 2
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(3)
    log_p = model.log_prob(x)
    torch.manual_seed(3)
    z, logdet = model.flow(x)
    expected = standard_normal_log_prob(z[:, :48]) + model.prior.log_prob(z[:, 48:]) + logdet
    assert torch.allclose(log_p, expected)
    # Sampling at T = 0 decodes a component's mean, with every other latent at 0.
    images = model.sample(6, generator=torch.Generator().manual_seed(0), temperature=0.0)
    modes = torch.cat([torch.zeros(4, 48, dtype=torch.float64), model.prior.means.detach()], 1)
    decoded = model.decode(modes)
    assert all(any(torch.equal(img, m) for m in decoded) for img in images)


def test_prior_levels_widens_the_mixture_to_the_last_levels_latents():
    cfg = FlowConfig(image_shape=(1, 8, 8), scales=3, couplings=1, hidden=4, prior_components=4, prior_levels=2)
    model = RealNVP(cfg).double().eval()
    assert model.flow.transforms[-1].latent_dims == [32, 16, 16]
    assert model.top_dims == 32 and model.prior.means.shape == (4, 32)
    x = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(3)
    log_p = model.log_prob(x)
    torch.manual_seed(3)
    z, logdet = model.flow(x)
    assert torch.allclose(log_p, standard_normal_log_prob(z[:, :32]) + model.prior.log_prob(z[:, 32:]) + logdet)
    with pytest.raises(GenlabError, match="prior_levels=4"):
        RealNVP(FlowConfig(image_shape=(1, 8, 8), scales=3, couplings=1, hidden=4, prior_components=4,
                           prior_levels=4))


def test_the_budget_sets_the_prior_per_dataset_and_a_parameter_overrides_it():
    from types import SimpleNamespace

    from genlab.config import apply_params, get_profile
    from genlab.flow_study import model_config

    def components(profile, dataset):
        return model_config(SimpleNamespace(name=dataset, shape=(1, 28, 28)), profile.flows).prior_components

    cpu = get_profile("cpu")
    assert (components(cpu, "mnist"), components(cpu, "fashion_mnist")) == (200, 200)
    both, _ = apply_params("cpu", "flows", {"prior_components": 8})
    assert (components(both, "mnist"), components(both, "fashion_mnist")) == (8, 8)
    each, _ = apply_params("cpu", "flows", {"prior_components": (0, 40)})
    assert (components(each, "mnist"), components(each, "fashion_mnist")) == (0, 40)
    wider, _ = apply_params("cpu", "flows", {"prior_levels": 2})
    fashion = SimpleNamespace(name="fashion_mnist", shape=(1, 28, 28))
    assert model_config(fashion, cpu.flows).prior_levels == 1
    assert model_config(fashion, wider.flows).prior_levels == 2
