"""The flows notebook's budget: what it trains and samples, and how much in each profile.

Every field is a notebook parameter (`config.apply_params` validates it); `BUDGETS` holds one budget per
profile, and `config.PROFILES` picks it up by notebook. The measurements that chose the cpu budget sit
beside it.
"""
from __future__ import annotations

from dataclasses import dataclass

from genlab.knobs import DATASETS_28, dataset_name, for_dataset, knob


@dataclass(frozen=True)
class FlowBudget:
    """How much the flows notebook trains and samples."""

    # One number for every dataset, or one per dataset (MNIST, Fashion-MNIST): `epochs_for`.
    epochs: tuple[int, ...] = knob((1,), per_dataset=DATASETS_28)
    datasets: tuple[str, ...] = knob(DATASETS_28, choices=DATASETS_28, normalise=dataset_name)
    train_subset: int = knob(0, min=0)   # 0 = the whole training set
    val_images: int = 2000         # test images scored after every epoch
    batch_size: int = 64
    hidden: int = 32
    blocks: int = 1
    couplings: int = 3
    # Resolution levels: 3 = 28, 14 and 7 px. The 7-px level's couplings see the whole image, which is what
    # gives samples a global shape (see the sweep's FID column).
    scales: int = knob(3, choices=(1, 2, 3))
    # "channel": squeeze first, then couplings that split the channels (Glow's order; every coupling runs at
    # 14 px or less, so it costs a quarter of a 28-px checkerboard coupling). "checkerboard+channel": RealNVP's.
    masks: str = knob("channel", choices=("channel", "checkerboard+channel"))
    lr: float = 2e-3
    invconv: bool = True           # Glow's invertible 1x1 convolutions before the channel couplings
    ema: float = 0.999             # EMA of the weights for evaluation and sampling (0: none)
    # Components of the Gaussian mixture that is the prior of the last level's latents (0: N(0, I) there too);
    # one number for every dataset, or one per dataset (MNIST, Fashion-MNIST). See the cpu budget's notes.
    prior_components: tuple[int, ...] = knob((0, 200), min=0, per_dataset=DATASETS_28)
    # How many levels' latents, counted from the last, that mixture covers (the finer ones stay N(0, I)).
    prior_levels: int = knob(1, choices=(1, 2, 3))
    # How the integer pixels become continuous: noise from a learned q(u | x) (genlab.dequantization), or
    # uniform noise; the sweep measures the other one. Measured (MNIST, AMD EPYC, 2 threads): variational, 2
    # epochs, 1.138 test bits/dim in 7.6 min of training; uniform, 3 epochs, 1.157 in ~9 min.
    dequantization: str = knob("variational", choices=("uniform", "variational"))
    samples: int = 2000            # samples per temperature for FID / confidence / coverage
    temperatures: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    # The finest level's latents (the first the flow factors out) cooled to each of these below the best single
    # temperature, the others at it; measured beside the single temperatures (empty: none). See the cpu budget's
    # notes: the finest latents carry pixel noise, the coarse ones the shape.
    fine_temperatures: tuple[float, ...] = knob((0.5, 0.7, 0.85), may_be_empty=True)
    sweep_subset: int = 10000      # training images each hyperparameter variant sees
    sweep_epochs: int = 1
    sweep_eval: int = 2000         # test images for a variant's bits/dim
    sweep_samples: int = 1000      # samples (T = 1) for a variant's FID; 0: none
    run_sweep: bool = True         # the hyperparameter sweep on the first dataset

    def epochs_for(self, dataset: str) -> int:
        return for_dataset(self.epochs, dataset)

    def prior_components_for(self, dataset: str) -> int:
        return for_dataset(self.prior_components, dataset)


BUDGETS = {
    "smoke": FlowBudget(epochs=(1,), train_subset=512, val_images=200, hidden=8, couplings=1, samples=200,
                        temperatures=(0.7, 1.0), fine_temperatures=(0.5,), sweep_subset=256, sweep_eval=200, sweep_samples=200),
    # Speed (AMD EPYC, bf16, variational dequantisation): ~270 images/s on 2 threads with 4 couplings (an
    # epoch of 60,000 images in ~4 min), ~130 on one thread with 5 (~8 min). Earlier, lr 4e-3 and 4
    # couplings: measured on MNIST, one epoch, 1.232 bits/dim and best-T FID 240 against 1.318 and 285
    # with lr 2e-3 and 3 couplings, in 1.21x the time (logit margin 0.05: 1.705, FID 306).
    # Measured on MNIST (variational dequantisation, 2 epochs, one thread, AMD EPYC): 4 couplings per
    # mask 1.138 test bits/dim; 5 couplings 1.122 in ~1.2x the time (as much as 3 epochs of 4 would
    # take); hidden 48 instead of 32 was slower per bit gained (1.126 after one epoch in 1.9x the time).
    # Sample quality wants the whole image in a coupling's view, not width: one epoch of MNIST each (one
    # thread, AMD EPYC; FID at the best T against a floor of 7.97, share of samples with confidence >= 0.9):
    #   2 scales, 5 checkerboard+channel couplings, 1 block   7.4 min  1.158 bits/dim  FID 238  0.40
    #   3 scales, 4 checkerboard+channel, 1 block             6.8 min  1.160           FID 202  0.45
    #   3 scales, 4 checkerboard+channel, 2 blocks           10.1 min  1.151           FID 162  0.50
    #   3 scales, 3 checkerboard+channel, 2 blocks            8.1 min  1.174           FID 193  0.48
    #   3 scales, 3 checkerboard+channel, hidden 64          12.5 min  1.169           FID ~199 0.49
    #   3 scales, 4 channel (Glow's order), 2 blocks          6.3 min  1.178           FID 132  0.52
    # The last is the cheapest and draws the best samples; three of its epochs take what two took before.
    # MNIST test bits/dim (target 1.10) by epochs: 3 -> 1.115, 4 -> 1.1035, 5 -> 1.099 (best-T FID 81 -> 62);
    # Fashion-MNIST 2.983 at 3 (target 3.00). So MNIST trains 5 epochs (23.8 min on two threads) and
    # Fashion-MNIST 3 (5 since 2026-11-27: below). Depth where it is cheap does not pay as well: 6 couplings
    # per mask at the 7-px levels instead of 4, one epoch, 1.174 bits/dim and FID 131 against 1.178 and 132,
    # in 1.17x the time (the coupling convolutions run at ~190 GFLOP/s, near this CPU's bf16 conv rate: the
    # budget is compute, not overhead).
    # Fashion-MNIST by epochs (AMD EPYC family 26, one thread, ~3.7 min an epoch; FID at the best T, always T = 1,
    # against the channels_last yardstick's floor of 1.07; share of samples with confidence >= 0.9):
    #   3 epochs  2.983 bits/dim  FID 75.0 (70x)  51%
    #   5 epochs  2.945           FID 55.0 (51x)  55%   +7.4 min
    #   8 epochs  2.921           FID 44.2 (41x)  61%   +18.5 min
    # The first two extra epochs buy 2.7 FID points a minute, the next three 1.0: Fashion-MNIST trains 5.
    # Batch size at about the same wall time (Fashion-MNIST, one thread, AMD EPYC family 26; training images/s,
    # timed in turns: 250 at batch 32, 303 at 64, 340 at 128; FID at T = 1 of 2,000 samples, floor 1.13):
    #   batch 32, 4 epochs (7,500 steps)   17.1 min  2.946 bits/dim  FID 53.0
    #   batch 64, 5 epochs (4,690 steps)   17.9 min  2.946           FID 56.0   (the built report)
    #   batch 128, 6 epochs (2,810 steps)  18.6 min  2.967           FID 65.7
    # Fewer, larger steps lose; more, smaller ones buy no more than one run's noise: the batch stays at 64.
    # The peak learning rate, the same way (batch 64, 5 epochs): 4e-3 2.946 bits/dim, FID 56.0; 6e-3 2.958, 52.5;
    # 8e-3 2.960, 63.3. FID moves by some 10 % between runs that differ this little; bits/dim says 4e-3.
    # A temperature per level instead of one (the 5-epoch model, 2,000 samples; T for the 392 finest latents,
    # the 196 of 7 px and the 196 last, FID against 1.13): (1, 1, 1) 56.0, (0.85, 1, 1) 51.8, (0.7, 1, 1) 52.1,
    # (0.8, 0.9, 1) 52.2, (0.5, 1, 1) 64.1, (1, 1, 0.85) 70.2, (1, 1.1, 1.1) 69.1: cooling the fine latents buys
    # 8 %, cooling the coarse ones costs; no sampling trick is near the 30x target (AMD EPYC family 26). MNIST, the
    # same way (floor 8.09): best single T (0.9) 56.2, (0.6, 0.7, 0.9) 53.6, (0.5, 0.9, 0.9) 53.9: 5 %.
    # Nor does the budget's wider use (2026-11-28, Fashion-MNIST, 5 epochs, AMD EPYC family 26, two one-thread runs
    # side by side; FID of 2,000 samples at T = 1 / the best of T = 1 with the finest level at 0.85 or 0.7, floor
    # 1.13; the built report's model 215 s an epoch, 2.946 bits/dim, 56.0 / 51.8):
    #   hidden 48 at the 7-px levels (32 at 14 px)          293 s an epoch  2.941 bits/dim  FID 56.9 / 50.6
    #   the same, 2 couplings per mask at 14 px, not 4      235 s           3.029           FID 53.8 / 50.7
    # Width where the couplings see the whole image buys no FID; taking couplings from the 14-px level costs 0.08
    # bits/dim for FID within one run's noise. The FID of the report's samples is 11.6 from the feature means and
    # 40.2 from the covariances (T = 1, finest level 0.85), with every class drawn about as often as in the data
    # (148-279 of 2,000 per class): what is missing is within-class texture and shape, not class balance. And the EMA
    # is no lever at the end of the cosine decay: the optimiser's own weights score 55.7 / 51.5 against 56.0 / 51.8.
    # Nor a more expressive coupling (2026-11-28, AMD EPYC family 26, one thread): rational-quadratic spline couplings
    # (Durkan et al. 2019; 8 bins on [-3, 3], identity outside, from the same coupling networks) in place of every
    # affine one cost 1.77x the time per step (380 s an epoch against 215: the spline's ~40 elementwise ops per
    # coupling, on 2-4 channels of 7-14 px, cost as much as the larger output convolution). In the report's training
    # time (3 epochs, 18.5 min) they reach 2.964 bits/dim and FID 76.7 / 74.0 (T = 1 / finest level 0.85), against
    # the affine couplings' 2.946 and 56.0 / 51.8 in 5 epochs. Per step they gain bits/dim (2.964 against the affine
    # 2.983 after 3 epochs) but not FID (76.7 against 75.0): bits/dim and samples part ways again.
    # Nor steps bought with 14-px couplings (same day, machine and threads; FID of 2,000 samples at T = 1 / finest
    # level 0.85, floor 1.13): 2 couplings per mask at 14 px, 7 epochs (170 s each, 19.6 min) 3.012 bits/dim, FID
    # 58.8 / 54.2; 3 per mask, 6 epochs (195 s each, 19.4 min) 2.975, FID 65.6 / 61.3; the report's 4 per mask, 5
    # epochs (17.9 min) 2.946, 56.0 / 51.8. The 14-px couplings pay in bits/dim, and cutting them buys no FID.
    # Nor Glow's learned prior for the factored-out latents (2026-11-28, AMD EPYC family 26, one thread each, two runs
    # side by side, 5 epochs; FID of 2,000 samples at T = 1 / finest level at 0.85, floor 1.13): after the 28- and
    # 14-px levels, the half that leaves normalised by an affine function of the half that stays (one more channel
    # coupling there, zero-initialised, so training starts from the N(0, 1) prior). With a two-conv network
    # (1.04 M parameters, 227 s an epoch) 2.943 bits/dim, FID 63.6 / 60.2; with the couplings' own network (1.11 M,
    # 235 s) 2.944, FID 62.3 / 58.6; the report's model 2.946, 56.0 / 51.8. 0.003 bits/dim, and samples no better;
    # cooled below T = 0.9 they got much worse (T = 0.8: FID 86 and 212).
    # A mixture prior for the last level's latents (genlab.flows.GaussianMixturePrior; 2026-11-28, AMD EPYC family
    # 26, Fashion-MNIST, 5 epochs, one thread each, two runs side by side; FID of 2,000 samples at T = 1 / the best
    # with the finest level cooled, floor 1.134; the mixture adds nothing measurable to a step's time):
    #   N(0, I)            seed 0 (report at bdce325) 2.946 bits/dim  FID 56.0 / 51.8 (45.7x)  55 % confident
    #                      seed 1                     2.959           FID 69.1 / 65.3 (57.6x)  52 %
    #   10 components      seed 0                     2.942           FID 54.5 / 51.4 (45.3x)  57 %
    #   40 components      seed 0                     2.949           FID 48.1 / 45.1 (39.8x)  62 %
    #                      seed 1                     2.954           FID 36.5 / 33.1 (29.2x)  63 %
    # With 40 the best FID falls by 13 % and 49 % (the two seeds), bits/dim within the seeds' spread: Fashion-MNIST
    # takes it. The components are not the classes: with 40 for 10 classes, each kind of garment can take
    # several. MNIST keeps N(0, I): its targets held without it, with 0.004 bits/dim to spare, and the
    # sweep's row measures the mixture there.
    # Measured after the cold build at 4aa7591 (same machine, one thread each, seed 0), not yet adopted:
    #   MNIST, 40 components           1.096 bits/dim (as N(0, I))  best FID 47.8 (5.9x the floor of 8.09; N(0, I)
    #                                  53.9, 6.7x)  76 % confident (72 %)
    #   Fashion-MNIST, 100 components  2.951 bits/dim  FID 45.0 / 40.5 (35.8x; 40 components 48.1 / 45.1, 39.8x)
    # and with seed 1: MNIST, 40 components, 1.099 bits/dim (0.001 under the target), best FID 49.0 (6.1x);
    # Fashion-MNIST, 100 components, 2.951 bits/dim, FID 34.2 / 31.5 (27.8x; 40 components 29.2x, N(0, I) 57.6x).
    # 100 beats 40 on Fashion-MNIST with both seeds; on MNIST the mixture buys FID, but seed 1 leaves its bits/dim
    # 0.001 from the 1.10 target.
    # The mixture over more levels' latents (2026-11-28, AMD EPYC family 26, Fashion-MNIST, 100 components, seed 0,
    # one thread each, two runs side by side; FID as above): the last two levels (392 latents) 2.945 bits/dim, FID
    # 50.6 / 47.1 (41.6x); all three (784) 2.946, FID 62.3 / 57.5 (50.7x); the last level's alone 2.951, 45.0 / 40.5
    # (35.8x). A little likelihood, worse samples: `prior_levels` stays 1. Trained, these mixtures had collapsed:
    # the weights' effective number (1 / sum of squares) was 2.0 of 100 components over two levels and 1.1 over
    # three, against ~10 over the last level's alone (6.6 of 40, 2.5 of 10).
    # So the means now start at the latents of the first training batches' images, one each (GaussianMixturePrior;
    # before, 0.5 N(0, I) draws). The last level's mixture, seed 0, same machine and threads, FID as above:
    #   100 components, means at random    2.951 bits/dim  FID 45.0 / 40.5 (35.8x)  effective number 9.8
    #   100 components, means on latents   2.946           FID 38.1 / 35.4 (31.2x)  21
    #   200 components, means at random    2.942           FID 35.6 / 32.5 (28.7x)  10
    #   200 components, means on latents   2.940           FID 31.9 / 29.0 (25.5x)  31   68 % confident
    # The log-density as matrix products costs ~1 ms a step at 200 components (the elementwise form took 8 ms at
    # 100 on 196 latents and 40 on 784, one thread): the mixture's size no longer shows in the step time.
    # Seed 1, 200 components with means on latents: 2.952 bits/dim, FID 33.9 / 31.4 (27.7x), effective number 11,
    # 66 % confident (with N(0, I) that seed gave 57.6x). Fashion-MNIST takes 200 components with means on latents.
    # So does MNIST (2026-11-28, AMD EPYC family 26, one thread each, two runs side by side, 5 epochs; FID of 2,000
    # samples at the best single T / the best with the finest level cooled, floor 8.09):
    #   N(0, I)                        seed 0 (the cold build at cad7186)  1.096 bits/dim  best FID 53.9 (6.7x)  72 %
    #   200 components, means on latents  seed 0                          1.0954          FID 45.6 / 44.2 (5.5x)  77 %
    #                                     seed 1                          1.0955          FID 54.4 / 52.8 (6.5x)  73 %
    # Both seeds keep bits/dim under the 1.10 target with more room than N(0, I) had (1.096), and the samples score
    # better (seed 0: 18 % lower FID, 77 % confident against 72 %). The short sweep had said otherwise (156 steps:
    # 1.395 bits/dim against 1.314): the mixture's cost in bits/dim is an early-training one.
    # In the report rebuilt with it (seed 0, the last epochs on two threads): 1.0945 bits/dim, best FID 44.4 (5.5x),
    # 77 % confident. Trained, MNIST's mixture had collapsed (effective number 1, the largest weight 86 %; Fashion-
    # MNIST's keeps 31): what it buys there looks like a learned mean and spread of the coarse latents, not modes.
    # Checked the same day (same machine, one thread each, two runs side by side): one learned Gaussian (1 component)
    # gives 1.0950 and 1.0972 bits/dim, best FID 47.8 (5.9x) and 43.6 (5.4x), 76 % and 74 % confident (seeds 0, 1),
    # against 200 components' 1.0954 / 1.0955, 44.2 / 52.8, 77 % / 73 %: the same within two seeds. MNIST keeps 200
    # (it costs nothing measurable and matches Fashion-MNIST's).
    "cpu": FlowBudget(epochs=(5, 5), lr=4e-3, couplings=4, blocks=2, prior_components=(200,)),
    # Run on one H200 (2026-11-27, torch 2.11, bf16). Eagerly a training step of this flow took 143 ms at batch 256
    # and 142 ms at 1024: ~14,000 small kernels (8.3 M parameters in 432 tensors), launched from Python. Replayed
    # as one CUDA graph (genlab.cuda_graphs; 0.6 s to capture) it takes 49.5 ms at batch 1024 (eager 125 ms in the
    # same run, 2.5x) and 74 ms at 2048, so the GPU's arithmetic sets the pace from batch 1024 on. Eagerly, 8 epochs
    # at batch 256 reached 1.070 validation bits/dim on MNIST in 4.7 min. With graphs, measured in one gpu build of
    # this notebook (2026-11-27): 41 epochs per dataset (2,419 steps, 2.4 min each), test bits/dim MNIST 1.076 and
    # Fashion-MNIST 2.902, best-T FID 50.5 (25x the floor of 1.99 at 10,000 samples) and 69.5 (58x of 1.21), 90 % and
    # 87 % of samples confidently classified; the whole notebook 7.9 min. Still short of MNIST's 1.02 (the UvA
    # tutorial's flow took 200 epochs for it). The sweep's variants get 38 steps each at this batch: too few to rank.
    # A later probe, graphed, ms per step by batch: 128: 21.4, 256: 22.6, 512: 29.9, 1024: 49.1 (a replay costs
    # ~20 ms however small the batch). In the same 2.4 min, batch 256 would take ~6,000 steps and 512 ~4,500
    # against 2,400 here; eagerly, 1,875 steps at 256 had reached 1.070. So the gpu profile now trains at batch 512:
    # 35 epochs are 4,095 steps, ~2.0 min at 29.9 ms a step - the training time of 41 epochs at 1024, with 1.7x the
    # steps (and the sweep's variants 78 steps instead of 38). Measured in a gpu build (2026-11-27, one H200, the
    # autoencoders and GANs notebooks on the same GPU at the same time, so the times are upper bounds): training 4.2
    # min (MNIST) and 3.0 (Fashion-MNIST), the notebook 10.4 min; test bits/dim MNIST 1.056 (was 1.076 at batch 1024)
    # and Fashion-MNIST 2.866 (was 2.902); best-T FID 30.6 (15x the floor of 1.99) and 44.4 (37x of 1.21), 92 % and
    # 89 % of samples confidently classified. MNIST's 1.02 is still not met. The sweep's variants train 78 steps in
    # 3-7 s each: baseline 1.486 and 1.488 bits/dim over two seeds, so they rank early training (as the cpu sweep's
    # 156 steps do), not where a long run ends.
    "gpu": FlowBudget(epochs=(35,), batch_size=512, hidden=96, blocks=2, couplings=4, lr=2e-3, samples=10000,
                      sweep_subset=20000, sweep_epochs=2, sweep_eval=10000),
}
