"""One model contract (docs/ARCHITECTURE.md): every generative model draws with
`sample(n, generator=None, labels=None)` and returns n uint8 images on the CPU; the same generator
seed draws the same images; a conditional model draws the classes it is asked for, and an
unconditional one refuses labels with a one-line error."""
import inspect

import pytest
import torch

from genlab.autoencoders import AEConfig, AutoEncoder
from genlab.dequantization import DequantizerConfig, VariationallyDequantizedRealNVP
from genlab.errors import GenlabError
from genlab.flows import FlowConfig, RealNVP
from genlab.gans import ConvGAN, ConvGANConfig, GANConfig, VanillaGAN
from genlab.progan import ProGAN, ProGANConfig, ProGANStage

FLOW = FlowConfig(image_shape=(1, 4, 4), scales=2, couplings=1, hidden=4)


def models():
    """(name, model, shape of one image, conditional?) for every model family, tiny."""
    torch.manual_seed(0)
    yield "RealNVP", RealNVP(FLOW), (1, 4, 4), False
    yield "RealNVP + variational dequantisation", VariationallyDequantizedRealNVP(
        FLOW, DequantizerConfig(hidden=4, couplings=1)), (1, 4, 4), False
    yield "AE", AutoEncoder(AEConfig(kind="ae", width=4, hidden=16, latent=2)), (1, 28, 28), False
    yield "VAE", AutoEncoder(AEConfig(width=4, hidden=16, latent=2)), (1, 28, 28), False
    yield "MLP GAN", VanillaGAN(GANConfig(hidden=16, noise=8)), (1, 28, 28), False
    yield "conv GAN", ConvGAN(ConvGANConfig(width=8, noise=16)), (1, 28, 28), False
    yield "cGAN", ConvGAN(ConvGANConfig(width=8, noise=16, classes=10)), (1, 28, 28), True
    cfg = ProGANConfig(gan=ConvGANConfig(image_shape=(3, 32, 32), noise=16), channels=8)
    yield "ProGAN", ProGAN(ProGANStage(cfg, 1, 10)), (3, 8, 8), False


MODELS = list(models())


@pytest.mark.parametrize("name,model,shape,conditional", MODELS, ids=[m[0] for m in MODELS])
def test_every_model_samples_uint8_cpu_images_with_one_signature(name, model, shape, conditional):
    assert list(inspect.signature(model.sample).parameters)[:3] == ["n", "generator", "labels"]
    a = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert a.dtype == torch.uint8 and a.device.type == "cpu" and tuple(a.shape) == (5, *shape)
    b = model.sample(5, generator=torch.Generator().manual_seed(0))
    c = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    y = torch.tensor([3, 3, 7, 7, 1])
    if conditional:
        # The label reaches the generator: the same noise with other labels draws other images.
        d = model.sample(5, generator=torch.Generator().manual_seed(0), labels=y)
        e = model.sample(5, generator=torch.Generator().manual_seed(0), labels=(y + 1) % 10)
        assert tuple(d.shape) == (5, *shape) and not torch.equal(d, e)
    else:
        with pytest.raises(GenlabError, match="unconditional"):
            model.sample(5, labels=y)
