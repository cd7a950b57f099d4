"""The GANs notebook's budget: what it trains and samples, and how much in each profile.

Every field is a notebook parameter (`config.apply_params` validates it); `BUDGETS` holds one budget per
profile, and `config.PROFILES` picks it up by notebook.
"""
from __future__ import annotations

from dataclasses import dataclass

from genlab.errors import GenlabError
from genlab.knobs import DATASETS_28, dataset_name, for_dataset, knob


@dataclass(frozen=True)
class GANBudget:
    """How much the GANs notebook trains and samples."""

    vanilla_epochs: int
    cgan_epochs: int
    datasets: tuple[str, ...] = knob(DATASETS_28, choices=DATASETS_28, normalise=dataset_name)   # vanilla GAN and cGANs
    train_subset: int = knob(0, min=0)
    batch_size: int = 64
    # Adam's learning rate of G and D of the vanilla MLP GAN: 5e-4, not DCGAN's 2e-4 (the seed's). Measured with
    # the EMA generator (cpu budget, 8 epochs, AMD EPYC family 25, one thread; FID after the last epoch):
    #   lr        2e-4   3e-4   4e-4   5e-4   7e-4   1e-3
    #   MNIST     156    82.8          48.5   51.0   169 (131 after epoch 5, then rising)
    #             seed 1: 160 at 2e-4, 51.7 at 5e-4
    #   Fashion   112    102    104    112           135
    #             seed 1: 109 at 2e-4, 110 at 5e-4
    # MNIST learns 3x faster at 5e-4 (48.5 in 8 epochs; 2e-4 needs 16 for 53); Fashion-MNIST is no worse. Same time.
    # At the gpu profile's batch of 256 and 32 epochs (7,500 steps; trained on the same CPU, cpu yardstick), MNIST:
    # FID 97.2 at 2e-4, 34.7 at 5e-4.
    lr: float = 5e-4
    vanilla_hidden: int = 256
    vanilla_ema: float = knob(0.999, min=0)   # decay of the EMA of the MLP GAN's weights (0: raw; gans.GANConfig)
    # Epochs of the conv GAN's headline runs (the recipe): one value for every dataset, or one per dataset
    # of DATASETS_28 (mnist, fashion_mnist). Measured (recipe, AMD EPYC, 2 threads): Fashion-MNIST FID 59, 31,
    # 23, 19.2, 15.6, 15.3 after epochs 1-6 (floor 1.18: 27x after 2, 13x after 5); MNIST is 2x its floor after 2.
    # With the channels_last yardstick (a retrained classifier, floor 1.07; AMD EPYC family 26, one thread, ~83 s
    # an epoch): FID 17.7 (16.5x) after 5 epochs, 16.4 (15.4x) after 6, 14.1 (13.2x) after 8.
    conv_epochs: tuple[int, ...] = (2, 8)
    ablation_epochs: int = 1                  # each run of the conv GAN ablation (first dataset)
    conv_width: int = 64                      # conv GAN and cGAN channels (D: w, 2w)
    # The conv GANs' Adam keeps DCGAN's (0.5, 0.999); ProGAN's (0, 0.99) does not carry over. Measured (2026-11-27, AMD
    # EPYC family 26, one thread): the recipe on Fashion-MNIST, 8 epochs, FID (floor 1.13) with seeds 0 and 1: 13.9 and
    # 12.2 with (0.5, 0.999), 11.9 and 16.8 with (0, 0.99); the cGAN + mode seeking on Fashion-MNIST, one epoch:
    # accuracy 90.2 % and 89.8 % against 86.4 % and 87.0 % (FID 83 and 72 against 58 and 55).
    conv_lr_g: float = 1e-3                   # conv GANs' learning rates (measured: equal rates of 1e-3
    conv_lr_d: float = 1e-3                   # beat TTUR 5e-4 / 2e-3 at 1200 steps, FID 180 vs 200)
    # MSGAN's mode-seeking weight in the conv GANs' G loss (0: off). Measured on MNIST, cGAN, half an
    # epoch: FID 345 without, 52 at 1.0, 44 at 0.3; intra-class diversity 2.5 -> 18 (real 16.5).
    mode_seeking: float = knob(0.3, min=0)
    # The same term in the cGANs' G loss: one weight for every dataset, or one per dataset of DATASETS_28. A condition
    # already spreads G's output over the classes, and on Fashion-MNIST the diversity term then costs accuracy.
    # Measured on Fashion-MNIST, one epoch, 2 seeds: 0.3 gave accuracy 84.2 % (FID 82.5), 0.15 gave 90.2 % (FID 85.4),
    # 0.1 gave 88.8 % (FID 98.5). On MNIST the unconditional GAN's 0.3 does better, 3 seeds (2026-12-06, AMD EPYC
    # family 25, one thread, bf16, the cpu budget: seeds 0, 1, 2): 0.3 96.2, 96.2, 97.3 % (FID 8.97, 10.9, 7.61;
    # diversity 18.1, 17.8, 17.6), 0.15 96.05, 95.9, 96.75 % (FID 12.0, 18.6, 20.2; diversity 17.2, 17.0, 16.3);
    # floor 8.09, real diversity 16.5. Feature matching on top scores alike at either weight (MNIST, seeds 0 and 1):
    # 82.6 and 82.1 % (FID 133, 120) at 0.15, 82.1 and 78.1 % (FID 130, 123) at 0.3.
    cgan_mode_seeking: tuple[float, ...] = knob((0.3, 0.15), min=0, per_dataset=DATASETS_28)
    # The weight the report compares each dataset's with (one run, the first seed): why this one.
    cgan_mode_seeking_compared: tuple[float, ...] = knob((0.15, 0.3), min=0, per_dataset=DATASETS_28)
    # Clusters (k-means on pixels) the unconditional conv GAN is conditioned on (0: none). Measured on
    # MNIST, one epoch, mode seeking 0.3: FID 118 without; 43, 35 and 37 with 20, 50 and 100 clusters
    # (Fashion-MNIST: 62 with 20, 56 with 50).
    self_conditioning: int = knob(50, min=0)
    ablation_subset: int = knob(30000, min=0) # training images of each conv GAN ablation run (0: all)
    cgan_subset: int = knob(0, min=0)         # training images of each cGAN run (0: all)
    cgan_seeds: int = 2                       # seeds per cGAN variant
    samples: int = 2000                       # per FID / coverage / accuracy measurement
    progan_channels: int = 64                 # c: ProGAN's blocks have 2c, 2c, c, c/2 channels (4 to 32 pixels)
    # Width does not buy what steps buy at 32 px. Measured in one cpu run each (AMD EPYC, one thread, FID by stage):
    # the 32-px blocks with c channels instead of c/2: 470, 431, 371, 241 (88x the floor) with 11.9 min for the last
    # stage, against 470, 412, 380, 247 (90x) in 9.2 min; 3600 steps at the usual width instead gave 196 (72x).
    # 2c at 16 px and c at 32 px: 465, 442, 386, 245 (90x), the last stage 19.2 min.
    progan_lr: float = 1e-3                   # G and D, as the conv GAN's
    # Adam's (beta1, beta2) for ProGAN's G and D: no momentum, as Karras et al. train it (the conv GANs keep DCGAN's
    # 0.5, 0.999). Measured (2026-11-27, AMD EPYC family 26, one thread each, the default steps; FID by stage):
    #   (0.5, 0.999) seed 0   478, 363, 344, 183      seed 1   479, 372, 333, 196
    #   (0, 0.99)    seed 0   487, 361, 331, 164      seed 1   472, 369, 291, 177
    #   (0, 0.9)     seed 0   488, 361, 278, 173
    # 10 % lower at 32 px with both seeds, in the same time. On top of it (seed 0; FID by stage, 164 to beat), none
    # adopted:
    #   EMA decay 0.999 instead of 0.99                  487, 361, 325, 167
    #   D's learning rate 2e-3 (G's 1e-3)                470, 366, 327, 170
    #   progan_lr 5e-4 / 2e-3 (G and D)                  478, 364, 311, 171 / 472, 367, 318, 168
    #   mode seeking 0.15 / 0.5 instead of 0.3           483, 380, 282, 168 / 491, 364, 288, 168
    #   two D steps per G step (fresh z, same reals)     484, 353, 284, 160   (16.5 min of training against 11.2)
    #   100 clusters instead of 50                       479, 379, 303, 170
    #   fade-in over a stage's first quarter, not half   487, 379, 296, 171
    #   a skip generator (StyleGAN2's: every            nearest 487, 361, 325, 192; bilinear (reals blended
    #   resolution's to_rgb added up, upsampled)         bilinear too) 487, 355, 325, 233
    # Against the samples' high-contrast dots (2026-11-27, same machine, seed 0), none adopted either:
    #   mode seeking on D's features of the fakes, not   weight 0.3: 433, 412, 371, 253; 1.0: 401, 370, 381, 253
    #   their pixels (dots are a cheap pixel distance)
    #   D downsampling without checkerboard gradients:   a [1,2,1]^2 blur before each strided conv 487, 406, 533, 211;
    #                                                    a 3x3 conv, then 2x2 average pooling 489, 388, 464, 208
    #                                                    (14.7 min against 11.4)
    # The 16-px samples score 1.7x the floor of real images reduced to 16 px; at 32 px they score 61x the 32-px floor.
    # What is missing is 32-px detail; the one change above that bought some (two D steps) cost more time than steps do.
    progan_betas: tuple[float, ...] = knob((0.0, 0.99), min=0)
    # Optimiser steps per stage (4, 8, 16, 32 px). Measured on CIFAR-10 (AMD EPYC, one thread, batch 64), FID by
    # stage: (1000, 1500, 2000, 1000) steps 479, 416, 268, 232 in 14.4 min; (500, 1000, 1500, 1500) 470, 447, 413,
    # 253 in 13.9 min; (600, 1200, 1800, 1800) 476, 430, 420, 218 in 15.3 min, where FID over each stage's four
    # history points was flat at 8x8 (442, 430, 430, 430) and 16x16 (437, 411, 411, 420) but still falling at
    # 32x32 (247, 305, 244, 218): the steps go to the last stage. With (500, 800, 1200, 1800) the 16x16 stage
    # fell by 1 % in one build and rose in another (412, 458 after 417, 412 at 8x8); with 2000 steps at 16x16
    # its FID over the stage's history points went 507, 474, 392, 356 (still falling), then 32x32 224
    # (one thread, 16.8 min of training; the 16-px stage 6.3 min of it).
    # (All of the above with one 3x3 conv per generator block; with two, since 2026-11-27, the same steps give
    # 470, 384, 346, 184: see progan.GrowingGenerator. Where the steps pay has not been measured again.)
    # Tried with the two-conv generator (2026-11-27, AMD EPYC family 26, one thread, these steps; FID at 32 px
    # moves by up to +-50 between the history points of one stage, so one run decides little), none adopted:
    #   a 3x3 conv before each strided conv of D      472, 352, 415, 249   (16.6 min with FID checks; the next 14.5)
    #   learning rates to 0 over the last stage's
    #   second half (linear, after the fade-in)       478, 368, 322, 214   (32-px history 242, 299, 201, 214)
    #   no mode seeking                               476, 434, 354, 393
    # Where the steps pay, with the two-conv generator (2026-11-27, AMD EPYC family 26, one thread each, two runs
    # side by side; FID by stage, then the 32-px history points; the default scored 478, 363, 344, 183 that day):
    #   (500, 800, 1000, 2800)    478, 363, 426, 187   32 px: 294, 199, 183, 187   (11.7 min)
    #   (500, 800, 2000, 3000)    478, 363, 344, 174   32 px: 223, 204, 188, 174   (+4 min over the default)
    # Steps moved from 16 to 32 px buy nothing, and 1,200 more at 32 px buy 5 % (65x the floor): this recipe
    # levels off far above the 30x target, so more CPU steps are not the way there.
    # Nor are the knobs around it (2026-11-27, AMD EPYC family 26, one thread each, these steps; FID by stage):
    #   progan_lr 5e-4                                   477, 381, 314, 212
    #   progan_lr 2e-3                                   485, 358, 357, 199
    #   mode seeking 0.1 instead of 0.3                  476, 428, 404, 216
    #   D with ProGAN's minibatch standard deviation     479, 351, 367, 189
    #   (a channel at 4x4, before D's last conv)
    #   DiffAugment (colour, translation, cutout) on
    #   every input of D                                 462, 393, 369, 233
    #   batch 32 with twice the steps (same images)      483, 353, 293, 189   (12.9 min against ~11.5)
    # What steps buy at 32 px, measured long: 7,200 steps there (4x; eight history points, so stages 1-3 also
    # trained again: 487, 381, 352) end at 152 (56x), 22.6 min for that stage alone; its history points every
    # 900 steps: 218, 240, 203, 176, 175, 160, 185, 152. Four times the steps buy ~17 %: at that rate 30x is
    # some 16x the steps away, more than the paper's 1.6 M images at 32 px (25,000 steps at batch 64).
    # Every 32-px sample set still shows the same high-contrast ring ("eye") artefacts, at 16 px already.
    # Aimed at those rings and at the 32-px detail (2026-11-27, AMD EPYC family 26, one thread each, these steps):
    #   mode seeking on 8x8 average-pooled images      478, 363, 380, 250
    #   mode seeking on D's features h(G(z))           443, 418, 373, 216
    #   D also scores every patch of its 8-px map      488, 363, 328, 196
    #   (hinge loss per patch, beside the global score)
    #   ... of its 16-px map (32-px stage only)        490, 340, 294, 158; seed 1: 485, 381, 345, 206 against
    #                                                  the default's 479, 372, 333, 196 with seed 1
    # Both mode-seeking variants remove the rings: the samples turn smooth, blurred blobs, and FID gets worse. This
    # yardstick rewards high-frequency content (real 16-px images upsampled score 189), and the rings are how G
    # supplies it at this budget. The patch scores differ from the default by no more than two seeds do.
    # Conditioned on what the yardstick's classifier sees (2026-11-27, AMD EPYC family 26, one thread each):
    #   CIFAR-10's own 10 labels instead of the 50 clusters   491, 427, 335, 210   (32-px coverage 0.8: G does not
    #                                                          yet draw the class it is given)
    #   label x 5 pixel clusters (50 conditions)              473, 374, 356, 185   (coverage 1.0)
    # Neither beats the 50 pixel clusters (183) by more than one run's noise. Nor does truncating G's noise
    # (z scaled by psi, the default's last stage, 2,000 samples): psi 1 183.3, 0.9 183.6, 0.8 186.6, 0.7 196.2,
    # 0.5 236.3 (coverage 0.8).
    # Conditional batch norm in G (SNGAN's and BigGAN's: every BN's scale and shift from the cluster's embedding,
    # zero-initialised, beside the embedding at G's input; 2026-11-28, AMD EPYC family 26, one thread, seed 0):
    # 483, 417, 318, 166 against the default's 487, 361, 331, 164, its last stage 7.1 min of training against 5.9.
    # Two regularisers the field uses on small budgets (2026-11-28, same machine, one thread each, seed 0, the
    # default's 487, 361, 331, 164; with seed 1 it scored 479, 372, 333, 196), neither adopted:
    #   top-k training (Sinha et al. 2020): G's loss from the half    445, 350, 372, 295   (32-px history 300, 326,
    #   of its samples D scores highest                                                     266, 295)
    #   LeCam (Tseng et al. 2021), weight 0.3, decay 0.99: D's        487, 350, 320, 175   (32-px history 595, 221,
    #   scores pulled toward the running mean of the other side's                         194, 175)
    # Top-k ends 80 % above the default at 32 px; LeCam within two seeds of it (each run 11.9 min).
    # Nor does augmenting what D sees without letting G learn the augmentation (same machine, one thread each, seed 0):
    #   balanced consistency regularisation (Zhao et al. 2020,      461, 372, 303, 181   (16.0 min against 11.7:
    #   bCR; weight 10 on D's score change under a random flip       D runs twice as often)
    #   and a shift by up to 1/8 of the side, reals and fakes)
    #   half the real images mirrored left-right                    489, 385, 303, 178   (11.7 min)
    # Both end within two seeds of the default (164, 196) at 32 px. Nor R1 (Mescheder et al. 2018; gamma/2 times D's
    # squared input gradient at real images, in D's loss, every step, in float32): gamma 0.1 485, 378, 298, 181;
    # gamma 1 481, 371, 313, 178; each run 19.5-19.9 min against 11.7 (the double backward through D).
    # Nor StyleGAN's noise inputs (Karras et al. 2019: after every conv of G's blocks, one N(0, 1) map per image
    # scaled by a learned per-channel weight from 0; cheap 32-px texture, where the rings supply it now). Measured
    # 2026-12-06 on AMD EPYC family 25, one thread each, all four runs in float32 with a float32-trained CIFAR-10
    # classifier (FID by stage; coverage at 32 px):
    #   default        seed 0   471, 380, 302, 170 (60.5x, 1.0)   seed 1   472, 379, 289, 176 (62.6x, 1.0)
    #   noise inputs   seed 0   472, 378, 295, 218 (77.5x, 0.9)   seed 1   470, 381, 278, 220 (78.2x, 0.8)
    # 25 % worse at 32 px with both seeds (18.5 min for the last stage, as the default's 18.3).
    # With progan.UpsampleConv (same function, other rounding; 2026-12-07, AMD EPYC family 25, one thread each, bf16,
    # two runs side by side; FID by stage, the 32-px stage's minutes):
    #   default          seed 0   478, 359, 320, 193 (71.9x)   9.6 min    seed 1   483, 381, 298, 131 (48.8x)   9.5 min
    #   D twice as wide  seed 0   475, 375, 297, 172 (63.9x)  20.8 min    seed 1   467, 394, 291, 166 (61.6x)  20.6 min
    # The seeds alone span 49-72x the floor at 32 px; the wider D lands inside that span at 2.2x the time. D barely
    # separates reals from fakes at the end of a stage: the mean gap D(x) - D(G(z)) was 0.2 at 4 px and 0.02-0.07 at
    # 16 and 32 px (D's hinge loss 1.97-1.99, 2 being chance), with the wide D too (0.035), where the MNIST and
    # Fashion-MNIST cGANs keep 0.5-1.3 (loss 1.2-1.6). Width is not what D lacks. Nor does G lack a residual path:
    # each block plus a 1x1 conv of its input, upsampled (BigGAN's and SNGAN's G blocks are residual), 474, 381,
    # 305, 179 (66.7x) and 479, 404, 289, 186 (69.3x) with seeds 0 and 1, in the default's time. Nor is the spectral
    # norm what keeps D's gap small: without it (seed 0) 468, 433, 386, 241 (89.6x, coverage 0.7). Nor do the 32-px
    # stage's 4 passes over 28,800 images overfit D: one pass over 115,200 (progan_epochs_per_stage 1, every image of
    # the training set 2.3 times; seed 0) ends at 476, 384, 313, 169 (63.0x).
    # Nor does telling D what missing 32-px detail looks like: negative data (Sinha et al. 2021), a quarter batch of
    # real images reduced to 16 px and upsampled back (nearest) scored by D as fakes in the 32-px stage (2026-12-07,
    # AMD EPYC family 25, one thread each, bf16, stages 1-3 the default's, two runs side by side) ends at 216.4
    # (80.5x) and 193.1 (71.8x) with seeds 0 and 1, against the default's 193.4 and 131.4, the stage 11.7 min against
    # 9.5. D learns those negatives at once (its hinge loss 1.84-1.86 at the end against 1.97-1.99) while its gap
    # between reals and G's fakes shrinks further (0.007-0.014): what it learns does not reach G.
    # Nor do the two self-supervised tasks the field gives a D that sees too little (2026-12-07, AMD EPYC family 25,
    # one thread each, bf16, stages 1-3 the default's, each seed's pair side by side; 32-px FID, seed 0 and seed 1,
    # against the default's 193.4 and 131.4):
    #   FastGAN's (Liu et al. 2021): a decoder (8 -> 32 px, 32 and 16 channels)      182.0 and 171.2   (10.0 min)
    #   rebuilds every real image from D's 8x8 map, its MSE added to D's loss
    #   SS-GAN's (Chen et al. 2019): D tells which of 4 rotations a quarter batch     213.1 and 135.1   (11.8 min)
    #   of reals shows (weight 1), G asked for fakes whose rotation D can tell (0.2)
    # Both inside the seeds' span; D's gap between reals and fakes stays 0.016-0.025 (loss 1.98) with either.
    progan_steps: tuple[int, ...] = (500, 800, 2000, 1800)
    progan_batch: int = 64
    # Decay of the EMA of ProGAN's weights, which its samples come from. The loop's warm-up (decay min(d, t/(t+10))
    # at step t) makes any d >= 0.99 the same for a stage's first ~1000 steps, so this matters for long stages
    # only. Measured in cpu builds (FID by stage, CIFAR-10): with 0.999, 470, 412, 458, 250, the raw weights of
    # that run 472, 396, 377, 233 (the average lags a stage that is still moving); with 0.99,
    # 475, 417, 412, 233 - a run on two threads, whose trajectory differs, so part of that gap is run-to-run noise.
    # With today's recipe (Adam beta1 = 0; 2026-11-27, the cached default run) the last stage's EMA weights score
    # 163.9 and the optimiser's own 181.5: the average pays.
    progan_ema: float = knob(0.99, min=0)
    progan_epochs_per_stage: int = 4          # history points per stage (the loop's "epochs")

    def __post_init__(self):
        if len(self.progan_betas) != 2 or not all(0 <= b < 1 for b in self.progan_betas):
            raise GenlabError(f"parameter progan_betas needs two values in [0, 1) (Adam's beta1, beta2); got "
                              f"{','.join(map(str, self.progan_betas))}")
        for name in ("vanilla_ema", "progan_ema"):
            if not 0 <= getattr(self, name) < 1:
                raise GenlabError(f"parameter {name} must be in [0, 1) (0: no average); got {getattr(self, name)}")
        if len(self.conv_epochs) not in (1, len(DATASETS_28)):
            raise GenlabError(f"parameter conv_epochs needs one value, or one per dataset of "
                              f"{', '.join(DATASETS_28)}; got {','.join(map(str, self.conv_epochs))}")

    def cgan_mode_seeking_for(self, dataset: str) -> float:
        """The cGANs' mode-seeking weight on `dataset`."""
        return for_dataset(self.cgan_mode_seeking, dataset)

    def cgan_mode_seeking_compared_for(self, dataset: str) -> float:
        return for_dataset(self.cgan_mode_seeking_compared, dataset)

    def conv_epochs_for(self, dataset: str) -> int:
        """The conv GAN recipe's epochs on `dataset`."""
        return for_dataset(self.conv_epochs, dataset)


BUDGETS = {
    "smoke": GANBudget(vanilla_epochs=2, cgan_epochs=1, train_subset=1024, vanilla_hidden=32, conv_width=8,
                       conv_epochs=(1,), samples=200, progan_channels=8, progan_steps=(4, 4, 4, 4), progan_batch=8,
                       progan_epochs_per_stage=2),
    # The MLP GAN (EMA 0.999, lr 2e-4) is still improving after 8 epochs. Measured 2026-12-07 (AMD EPYC family 25,
    # one thread, seed 0), FID after epochs 8, 12, 16: MNIST 156, 75, 53 (floor 8.1); Fashion-MNIST 112, 88, 73
    # (floor 1.13), 4.3 min of training for 16 epochs against ~2 for 8. Not adopted: it is the seed's baseline, the
    # conv GAN beats it within 4 min (1.5x the floor on MNIST), and the cold build is over its hour already.
    # lr 5e-4 (GANBudget.lr) then bought MNIST's 16-epoch FID in 8 epochs.
    "cpu": GANBudget(vanilla_epochs=8, cgan_epochs=1),
    # A GAN learns per optimiser step, and on a GPU a step of these small models costs about the same at any batch
    # (the GPU waits on Python launching kernels; the GANs were not graphed then). Sized by images per second until
    # 2026-11-27, this budget trained 2-4x fewer steps than the cpu profile, and the gpu build of that day (one
    # H200, at 80e992e, the flows and autoencoders notebooks on the same GPU) scored below the cpu report: MNIST
    # cGAN + mode seeking 89.0 % (2 epochs at batch 256, 468 steps; cpu 95.7 % after 938 steps at 64), conv GAN FID
    # 28.7x the floor after 1,170 steps. The same budget on a CPU gave 90.4 and 86.9 % (seeds 0, 1): the GPU
    # computes what the CPU does. At equal steps the larger batch pays (CPU, AMD EPYC family 26, one thread, seeds 0
    # and 1): 4 epochs at 256 (936 steps) 96.8 and 97.2 %, FID 10.8 and 12.3, against 95.9 and 95.5 %, FID 22.2 and
    # 16.7 at 64. The same with the others (cpu yardsticks): the conv GAN on MNIST, 1,875 steps, FID 1.06x the floor
    # at 256 against 1.65x at 64 (10.4 min of one thread against 2.6); the vanilla MLP GAN, 7,500 steps, FID 137
    # against 216; the plain cGAN (no mode seeking, seed 0), 938 steps at 256, 98.95 % (FID 265: it collapses within
    # each class, as at 64, where it scores 99.95 %). So the gpu profile trains every GAN at least the cpu
    # profile's steps, at batch 256 (tests/test_gans.py checks it). On a CPU, where a step costs ~4x at 256, the
    # small batch stays.
    # Measured step times in that build (sharing the GPU): conv GAN and cGAN ~25 ms at batch 256, ProGAN 26-31 ms,
    # a vanilla epoch with its 10,000-sample FID 2.6 s, CIFAR-10's classifier 114 s. By those, this budget takes
    # ~19 min (yardsticks 2.9, vanilla 2.8, conv GANs 4.0, ablation 1.2, cGANs 4.8, ProGAN 3.3): over the
    # 8 min the gpu profile aims at, eagerly: capturing the GAN steps as CUDA graphs had to buy the rest.
    # Since 2026-11-28 each GAN's whole step (both updates) replays as one CUDA graph (genlab.cuda_graphs.StepGraph;
    # a ProGAN stage once faded in). Run on one H200 on 2026-11-28 (torch 2.11, bf16): 40 graphed steps of the conv
    # cGAN were bit-identical to eager ones, and MNIST models trained either way measured the same FIDs; the graph
    # took 3.9-4.7x less training time (side by side on the GPU: conv GAN 8 epochs 40.7 -> 8.6 s, cGAN 15.9 -> 4.0 s,
    # MLP GAN 46.6 -> 11.9 s). The notebook's MNIST and Fashion-MNIST parts at this budget took 2.3 min there
    # (CIFAR-10 did not fit the transfer); with CIFAR-10's classifier (~1.9 min) and ProGAN (~2.5 min: fade-ins
    # eager at ~29 ms a step, the rest graphed at ~8 ms) about 7.5 min. Scores with the gpu yardsticks: cGAN + mode
    # seeking 96.2 +- 1.0 % (MNIST, 2 seeds; 97.3 % at weight 0.3) and 80.0 % (Fashion-MNIST); conv GAN FID 10.6x
    # and 21.5x the floor. With the steps that cheap, the cGANs now train 8 epochs instead of 4 (+~40 s there): the
    # gpu profile's cGAN + mode seeking on MNIST, trained on a CPU (AMD EPYC family 26, one thread; the graph computes
    # what the eager step does) and measured with the gpu yardstick, 10,000 samples, seeds 0 and 1: 4 epochs 96.8 and
    # 96.0 %, FID 26.2 and 37.0; 8 epochs 98.7 and 98.1 %, FID 7.8 and 9.0 (floor 1.96). Fashion-MNIST at 8 epochs:
    # 87.7 and 84.2 %, FID 146 and 168 (floor 1.14; 80.0 %, FID 280 and 313 at 4 epochs on the GPU). Not yet run on a
    # GPU, and measured before gans.py's weights were reordered for channels_last (2026-11-28): another draw since.
    # ProGAN's stages there scored 1.1x, 1.2x and 1.4x the floor of real images at 4, 8 and 16 px, and 302x at
    # 32 px (FID 580, floor 1.92 at 10,000 samples), still falling: the added steps go to 16 and 32 px.
    "gpu": GANBudget(vanilla_epochs=32, cgan_epochs=8, conv_epochs=(8, 32), ablation_epochs=4, batch_size=256,
                     cgan_seeds=2, samples=10000, progan_channels=128, progan_steps=(500, 800, 2000, 3200),
                     progan_batch=256, progan_epochs_per_stage=5),
}
