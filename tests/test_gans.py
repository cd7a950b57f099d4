import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from genlab.errors import GenlabError
from genlab.gans import ConvGAN, ConvGANConfig, GANConfig, VanillaGAN, feature_matching_loss, mode_seeking_ratio, to_uint8
from genlab.progan import ProGAN, ProGANConfig, ProGANStage, UpsampleConv

CFG = ProGANConfig(gan=ConvGANConfig(image_shape=(3, 32, 32), noise=16), channels=8)


def progan(stage, steps=10):
    torch.manual_seed(0)
    return ProGAN(ProGANStage(CFG, stage, steps)).eval()


@pytest.mark.parametrize("channels_last", [False, True])
def test_upsample_conv_is_nearest_upsampling_then_its_3x3_convolution(channels_last):
    """The folded transposed convolution computes what nn.Upsample + nn.Conv2d compute, borders included, and
    gives the 3x3 weights the same gradients (a wrongly folded kernel row or a flipped kernel fails here)."""
    torch.manual_seed(0)
    up = UpsampleConv(5, 3).double()
    plain = nn.Conv2d(5, 3, 3, 1, 1).double()
    plain.load_state_dict(up.state_dict())
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ours, theirs = up(x), plain(F.interpolate(x, scale_factor=2, mode="nearest"))
    assert ours.shape == theirs.shape == (2, 3, 12, 14)
    assert torch.allclose(ours, theirs, atol=1e-12)
    target = torch.randn_like(ours)
    for out, conv in ((ours, up), (theirs, plain)):
        (out * target).sum().backward()
    assert torch.allclose(up.weight.grad, plain.weight.grad, atol=1e-10)
    assert torch.allclose(up.bias.grad, plain.bias.grad, atol=1e-10)


def test_fade_in_at_alpha_0_is_the_upsampled_lower_resolution_and_at_1_the_new_block():
    model = progan(2)
    g = model.generator
    z = torch.randn(3, 16)

    def at(stage, alpha):
        g.stage, g.alpha = stage, alpha
        return g(z)

    low = at(1, 1.0)                                     # the 8x8 output of the previous stage
    at0, at1 = at(2, 0.0), at(2, 1.0)
    assert at0.shape == at1.shape == (3, 3, 16, 16)
    assert torch.allclose(at0, F.interpolate(low, scale_factor=2, mode="nearest"), atol=1e-6)
    assert not torch.allclose(at1, at0, atol=1e-3)
    mid = at(2, 0.25)
    assert torch.allclose(mid, 0.75 * at0 + 0.25 * at1, atol=1e-5)


def test_discriminator_fade_in_at_alpha_0_uses_only_the_lower_resolution_path():
    d = progan(2).discriminator
    x = torch.randn(3, 3, 16, 16)

    def score(x, stage, alpha):
        d.stage, d.alpha = stage, alpha
        return d(x)

    pooled = F.avg_pool2d(x, 2)
    assert torch.allclose(score(x, 2, 0.0), score(pooled, 1, 1.0), atol=1e-5)
    assert not torch.allclose(score(x, 2, 1.0), score(x, 2, 0.0), atol=1e-4)


def test_alpha_rises_over_the_first_half_of_a_stage_and_is_restored_on_load():
    model = progan(1, steps=8)
    model.train()
    opts = model.configure_optimizers()
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    alphas = [model.train_step((x,), opts)["alpha"] for _ in range(6)]
    assert alphas == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    clone = ProGAN(ProGANStage(CFG, 1, 8))
    clone.load_state_dict(model.state_dict())
    assert clone.alpha == 1.0 and int(clone.step) == 6
    model.load_state_dict(ProGAN(ProGANStage(CFG, 1, 8)).state_dict())   # back to step 0: the host count follows
    assert model.alpha == 0.25 and model.train_step((x,), opts)["alpha"] == 0.25


def test_alpha_of_a_copy_follows_its_step_buffer_as_the_ema_updates_it():
    model = progan(1, steps=8)
    model.train()
    opts = model.configure_optimizers()
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    shadow = copy.deepcopy(model)           # the EMA model is such a copy; the loop copies buffers into it
    assert shadow.alpha == 0.25
    for _ in range(4):
        model.train_step((x,), opts)
    shadow.step.copy_(model.step)
    assert shadow.alpha == 1.0 and shadow._set_alpha() == 1.0


def test_feature_matching_loss_is_zero_for_identical_batches_and_positive_otherwise():
    f = torch.randn(8, 5)
    assert feature_matching_loss(f, f.clone()) == 0
    assert feature_matching_loss(f, f + 0.1) > 0
    assert torch.allclose(feature_matching_loss(f, f + 0.1), torch.tensor(5 * 0.01))


def conv_gan(**kw):
    torch.manual_seed(0)
    return ConvGAN(ConvGANConfig(width=8, noise=16, **kw))


def test_spectral_norm_bounds_each_discriminator_layers_largest_singular_value_near_1():
    model = conv_gan()
    x = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8)
    opts = model.configure_optimizers()
    for _ in range(3):                                   # power iterations run in training forward passes
        model.train_step((x, torch.zeros(32, dtype=torch.long)), opts)
    layers = [m for m in model.discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert 0.8 < sigma < 1.2, sigma
    # ... and without it the same layers are far from 1
    plain = conv_gan(spectral_norm=False)
    sigmas = [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2) for m in plain.discriminator.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert any(abs(s - 1) > 0.3 for s in sigmas)


def test_progan_discriminator_is_spectrally_normalised_at_every_stage_it_trains():
    model = progan(1, steps=4)
    model.train()
    opts = model.configure_optimizers()
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    for _ in range(6):                                   # each step runs D's power iterations three times
        out = model.train_step((x,), opts)
    assert torch.isfinite(out["loss_d"]) and 0 <= out["loss_d"] <= 4
    # The layers this stage uses (8x8 input, the 16x16 path is idle) have σ_max near 1.
    d = model.discriminator
    used = [d.from_rgb[0], d.from_rgb[1], d.blocks[0], d.final, d.head]
    for layer in used:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert 0.8 < sigma < 1.2, sigma


def test_projection_discriminator_output_depends_on_the_label_through_the_projection():
    model = conv_gan(classes=10).eval()
    x = torch.randn(4, 1, 28, 28)
    d0, h = model.discriminator(x, torch.zeros(4, dtype=torch.long), with_features=True)
    d3 = model.discriminator(x, torch.full((4,), 3))
    assert not torch.allclose(d0, d3)
    # D(x, y) - D(x, y') = <embed(y) - embed(y'), h(x)>
    e = model.discriminator.embed.weight
    assert torch.allclose(d0 - d3, h @ (e[0] - e[3]), atol=1e-5)
    assert conv_gan().discriminator.embed is None        # unconditional: no projection


def test_conditional_generator_output_depends_on_its_label_and_its_noise():
    model = conv_gan(classes=10).eval()
    z, y = torch.randn(4, 16), torch.tensor([0, 1, 2, 3])
    a = model.generator(z, y)
    assert not torch.allclose(model.generator(z, torch.tensor([4, 5, 6, 7])), a)
    assert not torch.allclose(model.generator(torch.randn(4, 16), y), a)


def test_hinge_and_non_saturating_losses():
    hinge, ns = conv_gan(), conv_gan(loss="ns")
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert torch.allclose(hinge.d_loss(real, fake), torch.tensor((0 + 0.5) / 2 + (0 + 1.5) / 2))
    assert torch.allclose(hinge.g_loss(fake), torch.tensor(0.75))
    assert torch.allclose(ns.d_loss(real, fake), F.softplus(-real).mean() + F.softplus(fake).mean())


def test_a_train_step_moves_both_networks_and_d_learns_to_score_real_above_fake():
    # The real images are one pattern (the left half white), which an untrained generator does not draw: a
    # discriminator whose loss is wired the wrong way round, or an optimiser that never steps, fails here.
    x = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    x[..., :14] = 255
    torch.manual_seed(0)
    for model, batch in ((VanillaGAN(GANConfig(hidden=32)), (x,)),
                         (conv_gan(classes=10, feature_matching=1.0), (x, torch.arange(64) % 10))):
        opts = model.configure_optimizers()
        before = {name: [p.detach().clone() for p in net.parameters()]
                  for name, net in (("G", model.generator), ("D", model.discriminator))}
        m = model.train_step(batch, opts)
        for name, net in (("G", model.generator), ("D", model.discriminator)):
            moved = sum(float((p.detach() - q).abs().sum()) for p, q in zip(net.parameters(), before[name]))
            assert moved > 0, f"{type(model).__name__}: one train_step left {name} unchanged"
        for _ in range(20):
            m = model.train_step(batch, opts)
        assert all(math.isfinite(float(v)) for v in m.values())
        assert float(m["D(x)"]) > float(m["D(G(z))"]), type(model).__name__


def test_the_vanilla_gan_keeps_the_ema_its_config_asks_for():
    # fit keeps an EMA (and samples from it) only for a model whose ema_decay is > 0.
    assert VanillaGAN(GANConfig(hidden=8)).ema_decay == GANConfig().ema > 0
    assert VanillaGAN(GANConfig(hidden=8, ema=0.0)).ema_decay == 0


def test_mode_seeking_ratio_is_zero_for_a_generator_that_ignores_its_noise():
    za, zb = torch.zeros(4, 8), torch.ones(4, 8)
    a = torch.full((4, 1, 2, 2), 0.5)
    assert mode_seeking_ratio(a, a.clone(), za, zb) == 0
    assert torch.isclose(mode_seeking_ratio(a, -a, za, zb), torch.tensor(1.0))   # |0.5 - -0.5| / |0 - 1|


def test_mode_seeking_pairs_share_labels_and_push_a_collapsed_generator_apart():
    torch.manual_seed(0)
    model = conv_gan(classes=10, mode_seeking=1.0)
    seen = []
    model.generator.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    x, y = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8), torch.arange(16) % 10
    # A generator that ignores z: the same image for every noise vector of a class.
    with torch.no_grad():
        model.generator.fc.weight[:, :model.cfg.noise] = 0
    opts = model.configure_optimizers()
    first = model.train_step((x, y), opts)["mode_seeking_ratio"]
    assert torch.equal(seen[0][:8], seen[0][8:])          # sample i and i + n/2: the same label
    for _ in range(5):
        last = model.train_step((x, y), opts)["mode_seeking_ratio"]
    assert first < 1e-3 and last > 10 * first + 1e-3       # the term drove the pairs apart


def test_samples_are_uint8_images():
    assert to_uint8(torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])).tolist() == [0, 0, 128, 255, 255]
    s = progan(1).sample(3, size=32)
    assert s.dtype == torch.uint8 and s.shape == (3, 3, 32, 32)
    s = conv_gan(classes=10).sample(5, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.uint8 and s.shape == (5, 1, 28, 28) and s.device.type == "cpu"


def test_sampling_normalises_with_the_generators_own_batch_statistics():
    torch.manual_seed(0)
    gan = ConvGAN(ConvGANConfig(width=8, noise=16, classes=3))
    norms = [m for m in gan.generator.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:   # statistics that are not G's: as the EMA copies the optimiser's generator's
        m.running_mean.fill_(5.0)
        m.running_var.fill_(9.0)
    rng = torch.random.get_rng_state()
    first = gan.sample(12, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.random.get_rng_state(), rng)     # the training RNG is not touched
    assert all(m.momentum == 0.1 for m in norms) and not gan.generator.training
    # What G's own activations give, over many more of its samples.
    seen = []
    hook = norms[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        gan.generator.train()
        gan.generator(gan.noise(4096, torch.Generator().manual_seed(2)), torch.arange(4096) % 3)
        gan.generator.eval()
    hook.remove()
    x = seen[0].transpose(0, 1).flatten(1)
    for m in norms:   # undo the statistics of the pass above, which updated them
        m.running_mean.fill_(5.0)
    again = gan.sample(12, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert torch.allclose(norms[0].running_mean, x.mean(1), atol=0.05 * x.std(1).max().item())
    assert torch.allclose(norms[0].running_var, x.var(1), rtol=0.1)


def test_a_new_stage_carries_every_weight_of_the_previous_one():
    old = progan(1)
    with torch.no_grad():
        for p in old.parameters():
            p.add_(1.0)
    old.step.fill_(7)
    new = ProGAN(ProGANStage(CFG, 2, 10, ProGANStage(CFG, 1, 10))).grow_from(old)
    for (k, a), b in zip(old.state_dict().items(), new.state_dict().values()):
        assert torch.equal(a, b) or k == "step", k
    assert int(new.step) == 0 and new.stage == 2


def test_progan_optimisers_take_the_budgets_adam_betas():
    from genlab.config import apply_params
    from genlab.gan_study import progan_config

    for betas in ((0.0, 0.99), (0.5, 0.999)):
        profile, _ = apply_params("smoke", "gans", {"progan_betas": ",".join(map(str, betas))})
        model = ProGAN(ProGANStage(progan_config(profile), 0, 4))
        for opt in model.configure_optimizers().values():
            assert all(group["betas"] == betas for group in opt.param_groups)


def test_gpu_profile_trains_every_gan_at_least_the_cpu_profiles_optimiser_steps():
    # A GAN learns per step, and on a GPU a step costs about the same at any batch: a gpu budget sized by images
    # per second once trained 2-4x fewer steps than the cpu one and scored below it (gan_budget's comments).
    from types import SimpleNamespace

    from genlab.experiment import train_images
    from genlab.gan_budget import BUDGETS
    from genlab.knobs import DATASETS_28

    mnist_sized = SimpleNamespace(x_train=range(60000))   # MNIST and Fashion-MNIST

    def steps(b, epochs, images=0):   # unrounded: the epochs' last partial batches aside
        return epochs * train_images(mnist_sized, images, b.train_subset) / b.batch_size

    cpu, gpu = BUDGETS["cpu"], BUDGETS["gpu"]
    assert gpu.batch_size >= cpu.batch_size
    assert steps(gpu, gpu.vanilla_epochs) >= steps(cpu, cpu.vanilla_epochs)
    assert steps(gpu, gpu.cgan_epochs, gpu.cgan_subset) >= steps(cpu, cpu.cgan_epochs, cpu.cgan_subset)
    assert steps(gpu, gpu.ablation_epochs, gpu.ablation_subset) >= steps(cpu, cpu.ablation_epochs, cpu.ablation_subset)
    for dataset in DATASETS_28:
        assert steps(gpu, gpu.conv_epochs_for(dataset)) >= steps(cpu, cpu.conv_epochs_for(dataset)), dataset
    assert all(g >= c for g, c in zip(gpu.progan_steps, cpu.progan_steps, strict=True))
    assert gpu.progan_batch >= cpu.progan_batch


def test_a_cgan_that_collapsed_within_its_classes_is_not_headlined_as_an_accuracy():
    from genlab.gan_study import CGANSummary, Spread, cgan_headline

    def summary(diversity):
        return CGANSummary("mnist", "MNIST", "cGAN", 2, 0.0, Spread(1.0, 0.0), Spread(200.0, 5.0),
                           Spread(diversity, 0.1), real_diversity=16.5)

    collapsed, working = summary(2.1), summary(15.3)
    assert collapsed.collapsed and not working.collapsed
    assert cgan_headline(working) == "cGAN conditional accuracy (mean of 2 seeds)"
    # What picks "the best cGAN's accuracy" from the headlines looks for "accuracy" in their names.
    assert "accuracy" not in cgan_headline(collapsed) and "collapsed" in cgan_headline(collapsed)


def test_cgan_mode_seeking_weight_is_one_value_or_one_per_dataset():
    from genlab.config import apply_params
    from genlab.gan_study import cgan_weights_text

    profile, _ = apply_params("cpu", "gans", {})
    b = profile.gans
    assert (b.cgan_mode_seeking_for("mnist"), b.cgan_mode_seeking_for("fashion_mnist")) == (0.3, 0.15)
    # The run that shows why: each dataset against the other's weight.
    assert (b.cgan_mode_seeking_compared_for("mnist"), b.cgan_mode_seeking_compared_for("fashion_mnist")) == (0.15, 0.3)
    assert cgan_weights_text(b) == "0.3 (MNIST), 0.15 (Fashion-MNIST)"
    one, _ = apply_params("cpu", "gans", {"cgan_mode_seeking": "0.2"})
    assert one.gans.cgan_mode_seeking_for("fashion_mnist") == 0.2 and cgan_weights_text(one.gans) == "0.2"
    with pytest.raises(GenlabError, match="cgan_mode_seeking"):
        apply_params("cpu", "gans", {"cgan_mode_seeking": "0.1,0.2,0.3"})
