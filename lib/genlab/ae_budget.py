"""The autoencoders notebook's budget: what it trains and evaluates, and how much in each profile.

Every field is a notebook parameter (`config.apply_params` validates it); `BUDGETS` holds one budget per
profile, and `config.PROFILES` picks it up by notebook.
"""
from __future__ import annotations

from dataclasses import dataclass

from genlab.knobs import DATASETS_28, dataset_name, knob


@dataclass(frozen=True)
class AEBudget:
    """How much the autoencoders notebook trains and evaluates."""

    ae_epochs: int                     # each AE of the latent sweep
    vae_epochs: int                    # every VAE, f-VAE and β-VAE
    datasets: tuple[str, ...] = knob(DATASETS_28, choices=DATASETS_28, normalise=dataset_name)
    train_subset: int = knob(0, min=0)  # 0 = the whole training set
    val_images: int = 2000             # test images scored after every epoch
    batch_size: int = 128
    lr: float = 1e-3
    kl_warmup: int = knob(500, min=0)  # VAE steps over which the KL weight rises to beta (AEConfig says why)
    width: int = 32
    latents: tuple[int, ...] = (2, 16, 64)
    vae_latent: int = 16
    flow_steps: tuple[int, ...] = (4, 8)
    seeds: int = 2                     # seeds per model in the f-VAE comparison
    betas: tuple[float, ...] = (1.0, 4.0)
    iwae_k: int = 100
    eval_images: int = 2000            # test images for IW-NLL and attribute correlations


BUDGETS = {
    "smoke": AEBudget(ae_epochs=1, vae_epochs=1, train_subset=1024, val_images=200, width=8, latents=(2, 8),
                      vae_latent=4, flow_steps=(2,), seeds=2, betas=(1.0, 4.0), iwae_k=10, eval_images=200),
    "cpu": AEBudget(ae_epochs=2, vae_epochs=3),
    # Run on one H200 (2026-11-27, torch 2.11, bf16; beside the flows notebook on the same GPU): a training step
    # takes about the same time at any batch up to 2048 (VAE 7.1 ms at 512, 8.2 at 2048: kernel launches, not
    # arithmetic, set the pace), and the notebook's 6 AEs took 15 s each for 20 epochs, its VAEs 20-55 s (f-VAE
    # K=8 the slowest). At 20 epochs and 3 seeds it would have run ~11 min; 15 epochs and 2 seeds are ~6 min by
    # those timings. Without the KL warm-up every MNIST VAE of that run collapsed. Measured in a gpu build (2026-11-27,
    # one H200, the flows and GANs notebooks on the same GPU at the same time): the notebook in 3.7 min, each VAE's 15
    # epochs in 7-15 s; MNIST (Bernoulli) test -ELBO 99.3 nats, IW-NLL 91.2; f-VAE K=8 98.5 +- 0.02 against the VAE's
    # 100.0 +- 1.5 over 2 seeds. There is room for more epochs within the profile's 8 minutes (not yet measured).
    "gpu": AEBudget(ae_epochs=15, vae_epochs=15, batch_size=512, lr=2e-3, width=64, vae_latent=32,
                    seeds=2, betas=(1.0, 2.0, 4.0, 8.0), iwae_k=1000, eval_images=5000),
}
