"""Flows: invertibility and log-dets against the brute-force Jacobian, bits/dim of
known cases, sampling at T=0. All in float64 on small inputs."""
import math

import pytest
import torch
from torch.autograd.functional import jacobian

from genlab.flows import (ActNorm, AffineCoupling, Chain, FlowConfig, Invertible1x1Conv, Logit, MultiScaleFlow,
                          RealNVP, Squeeze, UniformDequantization)

@pytest.fixture(autouse=True, scope="module")
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def randomise(module, seed=0):
    """Non-trivial parameters (zero-initialised outputs would make couplings the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return module.double().eval()


def brute_force_logdet(transform, x, inverse=False):
    f = transform.inverse if inverse else transform.forward

    def flat(v):
        return f(v.view(1, *x.shape[1:]))[0].flatten()

    J = jacobian(flat, x[:1].flatten())
    return torch.linalg.slogdet(J)[1]


def check(transform, x, atol=1e-8):
    y, logdet = transform(x)
    x_back, inv_logdet = transform.inverse(y)
    assert torch.allclose(x_back, x, atol=atol), "inverse(forward(x)) != x"
    assert torch.allclose(logdet, -inv_logdet, atol=atol), "inverse log-det is not minus forward's"
    assert abs(logdet[0].item() - brute_force_logdet(transform, x).item()) < 1e-6, "forward log-det"
    assert abs(inv_logdet[0].item() - brute_force_logdet(transform, y, inverse=True).item()) < 1e-6
    return y, logdet


X14 = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
X44 = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


@pytest.mark.parametrize("parity", [0, 1])
def test_checkerboard_coupling(parity):
    layer = randomise(AffineCoupling(1, 4, "checkerboard", parity, hidden=8, blocks=1))
    y, logdet = check(layer, X14)
    mask = layer.mask.bool().expand_as(X14)
    assert torch.equal(y[mask], X14[mask])          # the conditioning half passes unchanged
    assert (y[~mask] - X14[~mask]).abs().min() > 1e-6   # and every other pixel changes


@pytest.mark.parametrize("parity", [0, 1])
def test_channel_coupling(parity):
    check(randomise(AffineCoupling(4, 4, "channel", parity, hidden=8, blocks=2)), X44)


def test_actnorm_initialises_from_data_and_is_invertible():
    layer = ActNorm(4).double()
    layer.train()
    y, _ = layer(X44 * 3 + 1)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(4), atol=1e-6)
    assert torch.allclose(y.std((0, 2, 3)), torch.ones(4), atol=1e-3)
    check(layer.eval(), X44)


def test_actnorm_initialises_once_and_again_after_loading_an_uninitialised_state():
    layer = ActNorm(4).double().train()
    fresh = {k: v.clone() for k, v in layer.state_dict().items()}
    layer(X44 * 3 + 1)
    bias = layer.bias.detach().clone()
    layer(X44 * 5 - 2)                      # a second batch must not re-initialise
    assert torch.equal(layer.bias.detach(), bias)
    layer.load_state_dict(fresh)            # as a resumed run that stopped before its first step would
    y, _ = layer(X44 * 5 - 2)
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(4, dtype=y.dtype), atol=1e-6)


def test_squeeze_and_logit():
    check(Squeeze(), X44)
    check(Logit(alpha=0.05), torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(3)))


def test_dequantization_rounds_back_and_scales_by_256():
    deq = UniformDequantization().train()
    x = torch.randint(0, 256, (5, 1, 4, 4)).double()
    y, logdet = deq(x)
    assert ((y >= 0) & (y < 1)).all()
    assert torch.equal(deq.inverse(y)[0], x)
    assert torch.allclose(logdet, torch.full((5,), -16 * math.log(256)))


def test_invertible_1x1_conv_mixes_channels_with_an_exact_log_det():
    torch.manual_seed(0)
    layer = randomise(Invertible1x1Conv(4))
    y, logdet = check(layer, X44)
    w = layer.weight()
    assert (w - torch.diag(torch.diagonal(w))).abs().max() > 0.1          # it mixes channels
    assert torch.allclose(logdet[0], 16 * torch.linalg.slogdet(w)[1])     # H·W·log|det W|
    fresh = Invertible1x1Conv(4).double()
    assert torch.allclose(torch.linalg.slogdet(fresh.weight())[1], torch.tensor(0.0), atol=1e-6)  # starts a rotation


@pytest.mark.parametrize("masks", ["checkerboard+channel", "channel"])
@pytest.mark.parametrize("scales", [1, 2])
@pytest.mark.parametrize("invconv", [False, True])
def test_whole_multiscale_flow(masks, scales, invconv):
    cfg = FlowConfig(image_shape=(1, 4, 4), scales=scales, couplings=2, hidden=8, masks=masks, invconv=invconv)
    flow = randomise(MultiScaleFlow(cfg))
    z, _ = check(Chain(Logit(0.05), flow), torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(4)))
    assert z.shape == (2, 16)


def test_three_scales_on_8x8():
    cfg = FlowConfig(image_shape=(1, 8, 8), scales=3, couplings=1, hidden=4)
    flow = randomise(MultiScaleFlow(cfg))
    assert [s[1] for s in flow.shapes] == [4, 2, 2]
    check(flow, torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5)))


def test_bits_per_dim_of_an_identity_flow_on_uniform_noise():
    """With no layers after dequantisation, and a uniform prior on [0,1)^D, every
    8-bit image has probability 256^-D: exactly 8 bits per dimension."""
    deq = UniformDequantization().train()
    x = torch.randint(0, 256, (10, 1, 4, 4))
    y, logdet = deq(x)
    log_p = 0.0 + logdet                      # log-density of U[0,1) is 0
    bpd = -log_p / (16 * math.log(2))
    assert torch.allclose(bpd, torch.full((10,), 8.0))


def test_bits_per_dim_of_a_fresh_realnvp_is_the_gaussian_closed_form():
    """Every coupling starts as the identity (zero-initialised outputs) and ActNorm
    is off, so z = logit(dequantised x) and log p is a sum we can write out."""
    cfg = FlowConfig(image_shape=(1, 4, 4), scales=2, couplings=1, hidden=4, actnorm=False, alpha=0.05)
    model = RealNVP(cfg).double()
    x = torch.randint(0, 256, (6, 1, 4, 4))
    torch.manual_seed(7)
    bpd = model.bits_per_dim(x)
    torch.manual_seed(7)
    v = (x.double() + torch.rand(x.shape)) / 256     # the same dequantisation noise
    s = 0.05 + 0.9 * v
    z = torch.log(s) - torch.log1p(-s)
    log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi) - torch.log(s) - torch.log1p(-s)
             + math.log(0.9) - math.log(256)).flatten(1).sum(1)
    assert torch.allclose(bpd, -log_p / (16 * math.log(2)))


def test_encode_decode_reconstructs_images_exactly():
    cfg = FlowConfig(image_shape=(1, 4, 4), scales=2, couplings=1, hidden=4)
    model = randomise(RealNVP(cfg))
    x = torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8)
    assert torch.equal(model.decode(model.encode(x)), x)


def test_sampling_at_zero_temperature_returns_the_mode():
    cfg = FlowConfig(image_shape=(1, 4, 4), scales=2, couplings=1, hidden=4)
    model = randomise(RealNVP(cfg))
    a = model.sample(4, temperature=0.0, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, temperature=0.0, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and torch.equal(a, b)
    assert torch.equal(a[:1], model.decode(torch.zeros(1, 16)))
    c = model.sample(4, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, c)


def test_finest_level_temperature_scales_the_latents_the_first_level_factors_out():
    from genlab.flow_study import finest_level_latents, temperature_of_latents

    cfg = FlowConfig(image_shape=(1, 8, 8), scales=3, couplings=1, hidden=4)
    model = randomise(RealNVP(cfg))
    levels = model.flow.transforms[-1].levels
    first, _ = levels[0](torch.rand(2, 1, 8, 8))
    factored = first[:, first.shape[1] // 2:].flatten(1).shape[1]      # what leaves the flow after level 1
    assert finest_level_latents(model) == factored == 32 and model.dims == 64
    assert temperature_of_latents(model, 0.9) == 0.9
    scale = temperature_of_latents(model, 0.9, 0.5)
    assert scale.shape == (64,) and (scale[:32] == 0.5).all() and (scale[32:] == 0.9).all()
    # Sampling with it: the finest latents at 0 decode as z with its first 32 entries zeroed.
    z = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    z[:, :32] = 0
    cooled = model.sample(3, generator=torch.Generator().manual_seed(0), temperature=temperature_of_latents(model, 1.0, 0.0))
    assert torch.equal(cooled, model.decode(z))


def test_realnvp_trains_on_a_batch():
    torch.manual_seed(0)
    cfg = FlowConfig(image_shape=(1, 8, 8), scales=2, couplings=1, hidden=8, lr=1e-2)
    model = RealNVP(cfg).double()
    opt = model.configure_optimizers()
    x = (torch.rand(32, 1, 8, 8) < 0.3).to(torch.uint8) * 255
    first = model.train_step((x,), opt)["bits_per_dim"]
    for _ in range(30):
        last = model.train_step((x,), opt)["bits_per_dim"]
    assert last < first - 0.5
