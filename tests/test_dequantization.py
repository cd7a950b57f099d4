"""Variational dequantisation: q(u | x)'s log-density against the brute-force Jacobian (float64),
exact rounding back to the image, a bound that trains q, and a cache fingerprint that leaves
uniformly dequantised flows alone."""
import math

import torch
from torch.autograd.functional import jacobian

from genlab import cache
from genlab.cache import model_fingerprint
from genlab.dequantization import (DequantizerConfig, VariationalDequantization,
                                   VariationallyDequantizedRealNVP)
from genlab.flows import FlowConfig, RealNVP, standard_normal_log_prob

SHAPE = (1, 4, 4)


def dequantizer(seed=0):
    torch.manual_seed(seed)
    dq = VariationalDequantization(SHAPE, DequantizerConfig(hidden=4, couplings=2)).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():      # non-trivial weights: the zero-initialised outputs would make q a plain sigmoid
        for p in dq.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    return dq


def test_log_q_is_the_change_of_variables_of_the_brute_force_jacobian():
    dq = dequantizer()
    x = torch.randint(0, 256, (1, *SHAPE)).double()
    eps = torch.randn(1, *SHAPE, dtype=torch.float64)
    u, log_q = dq.noise(x, eps)
    J = jacobian(lambda e: dq.noise(x, e.view(1, *SHAPE))[0].flatten(), eps.flatten())
    logdet = torch.linalg.slogdet(J)[1]
    expected = standard_normal_log_prob(eps.flatten(1)) - logdet
    assert torch.allclose(log_q, expected, atol=1e-8)
    assert ((u > 0) & (u < 1)).all()
    # q depends on the image: the same ε gives other noise for another x.
    assert not torch.allclose(dq.noise(255 - x, eps)[0], u)


def test_dequantised_images_round_back_to_the_integers():
    dq = dequantizer()
    x = torch.randint(0, 256, (8, *SHAPE), dtype=torch.uint8)
    y, term = dq(x)
    assert torch.equal(dq.inverse(y)[0], x.double())
    assert ((y >= 0) & (y < 1)).all()
    # The term is -D log 256 - log q(u | x), one per image.
    assert term.shape == (8,) and torch.isfinite(term).all()
    torch.manual_seed(1)
    y, term = dq(x)
    torch.manual_seed(1)
    _, log_q = dq.noise(x)
    assert torch.allclose(term, -x[0].numel() * math.log(256.0) - log_q)


def test_the_bound_trains_the_dequantizer_and_the_flow():
    torch.manual_seed(0)
    cfg = FlowConfig(image_shape=(1, 8, 8), hidden=8, couplings=1)
    model = VariationallyDequantizedRealNVP(cfg, DequantizerConfig(hidden=4, couplings=1))
    x = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    loss, _ = model.loss((x,))
    loss.backward()
    dq = model.flow.transforms[0]
    assert isinstance(dq, VariationalDequantization)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in dq.parameters())
    # Sampling and the deterministic encoder are RealNVP's: uint8 images back, exact reconstructions.
    model.eval()
    assert model.sample(3).dtype == torch.uint8
    assert torch.equal(model.decode(model.encode(x[:4])), x[:4])


def test_a_uniformly_dequantised_flow_does_not_depend_on_this_module(monkeypatch):
    cfg = FlowConfig(image_shape=(1, 8, 8), hidden=8, couplings=1)
    plain, variational = model_fingerprint(RealNVP(cfg)), model_fingerprint(VariationallyDequantizedRealNVP(cfg))
    # As if this module's code had changed: a uniformly dequantised flow keeps its key, this one does not.
    real = cache.code_fingerprint
    monkeypatch.setattr(cache, "code_fingerprint",
                        lambda f: real(f) + ("!" if f.__module__ == "genlab.dequantization" else ""))
    assert model_fingerprint(RealNVP(cfg)) == plain       # adding this module retrained no existing flow
    assert model_fingerprint(VariationallyDequantizedRealNVP(cfg)) != variational
