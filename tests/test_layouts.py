"""The GANs' fast paths compute what the plain formulas compute: channels_last maps stay channels_last through
G and D, D's score is one matrix product, and each optimiser's backward pass computes its own gradients only."""
import torch
from torch import nn

from genlab.gans import AdversarialPair, ConvGAN, ConvGANConfig, flatten_features, projection_score

CL = torch.channels_last


def test_flatten_features_reads_a_channels_last_map_pixel_by_pixel_without_copying():
    h = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2).contiguous(memory_format=CL)
    flat = flatten_features(h)
    assert flat.data_ptr() == h.data_ptr() and flat.shape == (2, 12)
    assert torch.equal(flat[0, :3], h[0, :, 0, 0])        # first pixel's channels, then the next pixel's
    assert torch.equal(flat[0, 3:6], h[0, :, 0, 1])


def test_projection_score_is_the_head_plus_the_labels_embedding_times_the_features():
    torch.manual_seed(0)
    head, embed = nn.Linear(12, 1), nn.Embedding(5, 12)
    h, y = torch.randn(7, 12), torch.tensor([0, 4, 2, 2, 1, 3, 0])
    expected = head(h).squeeze(1) + (embed(y) * h).sum(1)
    assert torch.allclose(projection_score(h, head, embed, y), expected, atol=1e-5)
    assert torch.allclose(projection_score(h, head, None, None), head(h).squeeze(1))


def test_conv_gan_maps_stay_channels_last_through_generator_and_discriminator():
    torch.manual_seed(0)
    model = ConvGAN(ConvGANConfig(width=8, noise=16, classes=3)).to(memory_format=CL)
    seen = []
    for module in (model.generator.net[0], model.discriminator.features[-1]):   # G's first batch norm, D's last map
        module.register_forward_hook(lambda m, i, o: seen.append(o.is_contiguous(memory_format=CL)))
    x = model.generator(torch.randn(4, 16), torch.tensor([0, 1, 2, 0]))
    model.discriminator(x.contiguous(memory_format=CL), torch.tensor([0, 1, 2, 0]))
    assert seen == [True, True]


def test_an_update_computes_the_gradients_of_its_optimisers_weights_only():
    torch.manual_seed(0)
    model = ConvGAN(ConvGANConfig(width=8, noise=16))
    opts = model.configure_optimizers()
    z = torch.randn(4, 16)
    loss_g = -model.discriminator(model.generator(z)).mean()
    before = [p.detach().clone() for p in model.generator.parameters()]
    AdversarialPair.update(opts["g"], loss_g)
    assert all(p.grad is None for p in model.discriminator.parameters())          # D's were never computed
    assert all(p.grad is not None for p in model.generator.parameters() if p.requires_grad)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.generator.parameters()))
