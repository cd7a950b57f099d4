"""Profiles: one name picks how much compute every notebook spends.

* ``smoke`` - seconds; tests and CI. Numbers are meaningless, code paths are real.
* ``cpu``   - the default ``make report``: bounded time on 2 cores, real results.
* ``gpu``   - full quality; uses CUDA when it is there.

A profile is a plain frozen dataclass. Every field of a notebook's budget (and the
profile's `seed`) is also a notebook parameter of the same name: `apply_params`
validates a user's overrides (type and range, one-line errors that name the valid
choices) and composes them with the profile, so `-p epochs=10 -p hidden=64` means
"the cpu profile, with these two changed".
"""
from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import torch

from genlab.errors import GenlabError


def knob(default, *, min: float | None = None, choices: tuple | None = None, normalise=None,
         per_dataset: tuple[str, ...] | None = None):
    """A budget field with its valid range (default: integers >= 1, floats > 0); `normalise` maps a
    user's spelling of a choice to the canonical one before it is checked; a tuple field `per_dataset`
    holds one value for every dataset or one per dataset, in that order."""
    return field(default=default, metadata={"min": min, "choices": choices, "normalise": normalise,
                                            "per_dataset": per_dataset})


def dataset_name(value: str) -> str:
    """'Fashion-MNIST' -> 'fashion_mnist' (the data registry's aliases); other text is left as it is,
    for the choices check to name what is valid."""
    from genlab.data import canonical_name   # data imports nothing from here at import time

    try:
        return canonical_name(value)
    except GenlabError:
        return value


DATASETS_28 = ("mnist", "fashion_mnist")   # the 28x28 grey datasets the flows, AEs and GANs use


@dataclass(frozen=True)
class ClassifierBudget:
    """How long the yardstick classifier of one dataset trains."""

    epochs: int
    width: int = 32            # channels of the first conv block; doubles per block
    convs_per_block: int = 1
    train_subset: int = 0      # 0 = the whole training set
    batch_size: int = 128
    lr: float = 2e-3


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
    # How the integer pixels become continuous: noise from a learned q(u | x) (genlab.dequantization), or
    # uniform noise; the sweep measures the other one. Measured (MNIST, AMD EPYC, 2 threads): variational, 2
    # epochs, 1.138 test bits/dim in 7.6 min of training; uniform, 3 epochs, 1.157 in ~9 min.
    dequantization: str = knob("variational", choices=("uniform", "variational"))
    samples: int = 2000            # samples per temperature for FID / confidence / coverage
    temperatures: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    sweep_subset: int = 10000      # training images each hyperparameter variant sees
    sweep_epochs: int = 1
    sweep_eval: int = 2000         # test images for a variant's bits/dim
    sweep_samples: int = 1000      # samples (T = 1) for a variant's FID; 0: none
    run_sweep: bool = True         # the hyperparameter sweep on the first dataset

    def epochs_for(self, dataset: str) -> int:
        return self.epochs[0] if len(self.epochs) == 1 else self.epochs[DATASETS_28.index(dataset)]


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
    width: int = 32
    latents: tuple[int, ...] = (2, 16, 64)
    vae_latent: int = 16
    flow_steps: tuple[int, ...] = (4, 8)
    seeds: int = 2                     # seeds per model in the f-VAE comparison
    betas: tuple[float, ...] = (1.0, 4.0)
    iwae_k: int = 100
    eval_images: int = 2000            # test images for IW-NLL and attribute correlations


@dataclass(frozen=True)
class GANBudget:
    """How much the GANs notebook trains and samples."""

    vanilla_epochs: int
    cgan_epochs: int
    datasets: tuple[str, ...] = knob(DATASETS_28, choices=DATASETS_28, normalise=dataset_name)   # vanilla GAN and cGANs
    train_subset: int = knob(0, min=0)
    batch_size: int = 64
    lr: float = 2e-4                          # G and D of the vanilla MLP GAN
    vanilla_hidden: int = 256
    # Epochs of the conv GAN's headline runs (the recipe): one value for every dataset, or one per dataset
    # of DATASETS_28 (mnist, fashion_mnist). Measured (recipe, AMD EPYC, 2 threads): Fashion-MNIST FID 59, 31,
    # 23, 19.2, 15.6, 15.3 after epochs 1-6 (floor 1.18: 27x after 2, 13x after 5); MNIST is 2x its floor after 2.
    conv_epochs: tuple[int, ...] = (2, 5)
    ablation_epochs: int = 1                  # each run of the conv GAN ablation (first dataset)
    conv_width: int = 64                      # conv GAN and cGAN channels (D: w, 2w)
    conv_lr_g: float = 1e-3                   # conv GANs' learning rates (measured: equal rates of 1e-3
    conv_lr_d: float = 1e-3                   # beat TTUR 5e-4 / 2e-3 at 1200 steps, FID 180 vs 200)
    # MSGAN's mode-seeking weight in the conv GANs' G loss (0: off). Measured on MNIST, cGAN, half an
    # epoch: FID 345 without, 52 at 1.0, 44 at 0.3; intra-class diversity 2.5 -> 18 (real 16.5).
    mode_seeking: float = knob(0.3, min=0)
    # The same weight for the cGANs: a condition already spreads G's output over the classes, and the
    # diversity term then costs accuracy. Measured on Fashion-MNIST, one epoch, 2 seeds: 0.3 gave
    # accuracy 84.2 % (FID 82.5), 0.15 gave 90.2 % (FID 85.4), 0.1 gave 88.8 % (FID 98.5).
    cgan_mode_seeking: float = knob(0.15, min=0)
    # Clusters (k-means on pixels) the unconditional conv GAN is conditioned on (0: none). Measured on
    # MNIST, one epoch, mode seeking 0.3: FID 118 without; 43, 35 and 37 with 20, 50 and 100 clusters
    # (Fashion-MNIST: 62 with 20, 56 with 50).
    self_conditioning: int = knob(50, min=0)
    ablation_subset: int = knob(30000, min=0) # training images of each conv GAN ablation run (0: all)
    cgan_subset: int = knob(0, min=0)         # training images of each cGAN run (0: all)
    cgan_seeds: int = 2                       # seeds per cGAN variant
    samples: int = 2000                       # per FID / coverage / accuracy measurement
    progan_channels: int = 64                 # c: ProGAN's blocks have 2c, 2c, c, c/2 channels (4 to 32 pixels)
    progan_lr: float = 1e-3                   # G and D, as the conv GAN's
    # Optimiser steps per stage (4, 8, 16, 32 px). Measured on CIFAR-10 (AMD EPYC, one thread, batch 64), FID by
    # stage: (1000, 1500, 2000, 1000) steps 479, 416, 268, 232 in 14.4 min; (500, 1000, 1500, 1500) 470, 447, 413,
    # 253 in 13.9 min; (600, 1200, 1800, 1800) 476, 430, 420, 218 in 15.3 min, where FID over each stage's four
    # history points was flat at 8x8 (442, 430, 430, 430) and 16x16 (437, 411, 411, 420) but still falling at
    # 32x32 (247, 305, 244, 218): the steps go to the last stage. With (500, 800, 1200, 1800) the 16x16 stage
    # fell by 1 % in one build and rose in another (412, 458 after 417, 412 at 8x8); with 2000 steps at 16x16
    # its FID over the stage's history points went 507, 474, 392, 356 (still falling), then 32x32 224
    # (one thread, 16.8 min of training; the 16-px stage 6.3 min of it).
    progan_steps: tuple[int, ...] = (500, 800, 2000, 1800)
    progan_batch: int = 64
    # Decay of the EMA of ProGAN's weights, which its samples come from. The loop's warm-up (decay min(d, t/(t+10))
    # at step t) makes any d >= 0.99 the same for a stage's first ~1000 steps, so this matters for long stages
    # only. Measured in cpu builds (FID by stage, CIFAR-10): with 0.999, 470, 412, 458, 250, the raw weights of
    # that run 472, 396, 377, 233 (the average lags a stage that is still moving); with 0.99,
    # 475, 417, 412, 233 - a run on two threads, whose trajectory differs, so part of that gap is run-to-run noise.
    progan_ema: float = knob(0.99, min=0)
    progan_epochs_per_stage: int = 4          # history points per stage (the loop's "epochs")

    def __post_init__(self):
        if not 0 <= self.progan_ema < 1:
            raise GenlabError(f"parameter progan_ema must be in [0, 1) (0: no average); got {self.progan_ema}")
        if len(self.conv_epochs) not in (1, len(DATASETS_28)):
            raise GenlabError(f"parameter conv_epochs needs one value, or one per dataset of "
                              f"{', '.join(DATASETS_28)}; got {','.join(map(str, self.conv_epochs))}")

    def conv_epochs_for(self, dataset: str) -> int:
        """The conv GAN recipe's epochs on `dataset`."""
        if len(self.conv_epochs) == 1:
            return self.conv_epochs[0]
        return self.conv_epochs[DATASETS_28.index(dataset)]


@dataclass(frozen=True)
class Profile:
    name: str
    classifiers: dict[str, ClassifierBudget]
    eval_subset: int           # test images used for accuracy (0 = all)
    fid_samples: int           # images per FID estimate (generated, and the real floor)
    fid_reference: int         # training images that form the FID reference statistics (0 = all)
    flows: FlowBudget = FlowBudget(epochs=(1,))
    autoencoders: AEBudget = AEBudget(ae_epochs=1, vae_epochs=1)
    gans: GANBudget = GANBudget(vanilla_epochs=1, cgan_epochs=1)
    grid_images: int = 64
    seed: int = knob(0, min=0)
    # Forward passes in bf16 where it pays ("auto": measured per machine, see genlab.precision).
    precision: str = knob("auto", choices=("auto", "fp32", "bf16"))

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        classifiers={
            "mnist": ClassifierBudget(epochs=2, width=8, train_subset=5000, lr=5e-3),
            "fashion_mnist": ClassifierBudget(epochs=2, width=8, train_subset=5000, lr=5e-3),
            "cifar10": ClassifierBudget(epochs=2, width=8, train_subset=5000, lr=5e-3),
        },
        eval_subset=1000,
        fid_samples=500,
        fid_reference=2000,
        flows=FlowBudget(epochs=(1,), train_subset=512, val_images=200, hidden=8, couplings=1, samples=200,
                         temperatures=(0.7, 1.0), sweep_subset=256, sweep_eval=200,
                         sweep_samples=200),
        autoencoders=AEBudget(ae_epochs=1, vae_epochs=1, train_subset=1024, val_images=200, width=8, latents=(2, 8),
                              vae_latent=4, flow_steps=(2,), seeds=2, betas=(1.0, 4.0), iwae_k=10,
                              eval_images=200),
        gans=GANBudget(vanilla_epochs=2, cgan_epochs=1, train_subset=1024, vanilla_hidden=32, conv_width=8,
                       conv_epochs=(1,),
                       samples=200, progan_channels=8, progan_steps=(4, 4, 4, 4), progan_batch=8,
                       progan_epochs_per_stage=2),
        grid_images=16,
    ),
    "cpu": Profile(
        name="cpu",
        classifiers={
            "mnist": ClassifierBudget(epochs=3, width=32),
            "fashion_mnist": ClassifierBudget(epochs=6, width=32),
            "cifar10": ClassifierBudget(epochs=10, width=48, batch_size=256, lr=4e-3),
        },
        eval_subset=0,
        fid_samples=5000,
        fid_reference=0,
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
        # Fashion-MNIST 3. Depth where it is cheap does not pay as well: 6 couplings per mask at the 7-px levels
        # instead of 4, one epoch, 1.174 bits/dim and FID 131 against 1.178 and 132, in 1.17x the time (the
        # coupling convolutions run at ~190 GFLOP/s, near this CPU's bf16 conv rate: the budget is compute,
        # not overhead).
        flows=FlowBudget(epochs=(5, 3), lr=4e-3, couplings=4, blocks=2),
        autoencoders=AEBudget(ae_epochs=2, vae_epochs=3),
        gans=GANBudget(vanilla_epochs=8, cgan_epochs=1),
    ),
    "gpu": Profile(
        name="gpu",
        # On a GPU these small models are bound by kernel launches, not arithmetic, until the batch is
        # large: larger batches (with larger learning rates) buy throughput at almost no cost per step.
        classifiers={
            "mnist": ClassifierBudget(epochs=8, width=64, batch_size=256, lr=4e-3),
            "fashion_mnist": ClassifierBudget(epochs=20, width=64, batch_size=256, lr=4e-3),
            "cifar10": ClassifierBudget(epochs=30, width=64, convs_per_block=2, batch_size=256, lr=4e-3),
        },
        eval_subset=0,
        fid_samples=10000,
        fid_reference=0,
        flows=FlowBudget(epochs=(8,), batch_size=256, hidden=96, blocks=2, couplings=4, lr=2e-3, samples=10000,
                         sweep_subset=20000, sweep_epochs=2, sweep_eval=10000),
        # Sized from `make bench ARGS="--device cuda --profile gpu --batch-scale 4"` on one H100 (training
        # images/s: VAE 22k at batch 128, 100k at 512; conv GAN 4k at 64, 13-15k at 256; ProGAN 32x32 1.8k
        # at 64, measured with the WGAN-GP ProGAN, which the hinge loss has since replaced - no second
        # backward pass, so faster) for about 7 min per notebook; only the flows budget has run on a GPU.
        autoencoders=AEBudget(ae_epochs=20, vae_epochs=20, batch_size=512, lr=2e-3, width=64, vae_latent=32,
                              seeds=3, betas=(1.0, 2.0, 4.0, 8.0), iwae_k=1000, eval_images=5000),
        gans=GANBudget(vanilla_epochs=30, cgan_epochs=2, conv_epochs=(5,), batch_size=256, cgan_seeds=2, samples=10000,
                       progan_channels=128, progan_steps=(600, 900, 1000, 1000), progan_batch=64,
                       progan_epochs_per_stage=5),
    ),
}

DEFAULT_PROFILE = "cpu"


def get_profile(name: str) -> Profile:
    """The profile called `name`, or a one-line error listing the valid ones."""
    if isinstance(name, Profile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise GenlabError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)} "
            f"(e.g. make report PROFILE=smoke)"
        ) from None


def config_dict(cfg) -> dict:
    """A JSON-able dict of a (possibly nested) config dataclass, for cache keys."""
    if dataclasses.is_dataclass(cfg):
        return {"__class__": type(cfg).__name__,
                **{f.name: config_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}}
    if isinstance(cfg, dict):
        return {str(k): config_dict(v) for k, v in sorted(cfg.items())}
    if isinstance(cfg, (list, tuple)):
        return [config_dict(v) for v in cfg]
    return cfg


def replace(cfg, **overrides):
    """`dataclasses.replace` that names the valid fields when one is unknown."""
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise GenlabError(
            f"unknown parameter(s) {', '.join(unknown)} for {type(cfg).__name__}; "
            f"valid: {', '.join(sorted(names))}"
        )
    return dataclasses.replace(cfg, **overrides)


# --- notebook parameters ---------------------------------------------------------------

# Which budget of the profile each notebook's parameters override.
NOTEBOOK_BUDGET = {"flows": "flows", "autoencoders": "autoencoders", "gans": "gans"}
PROFILE_KNOBS = ("seed", "precision")   # profile-wide fields that are parameters of every notebook


def _knob_fields(notebook: str) -> dict[str, tuple[dataclasses.Field, Any]]:
    """name -> (field, type) of every parameter `notebook` takes besides `profile`."""
    if notebook not in NOTEBOOK_BUDGET:
        raise GenlabError(f"unknown notebook {notebook!r}; known: {', '.join(NOTEBOOK_BUDGET)}")
    budget_cls = type(getattr(PROFILES[DEFAULT_PROFILE], NOTEBOOK_BUDGET[notebook]))
    out = {}
    for cls, names in ((Profile, PROFILE_KNOBS), (budget_cls, None)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if names is None or f.name in names:
                out[f.name] = (f, hints[f.name])
    return out


def knob_names(notebook: str) -> list[str]:
    return sorted(_knob_fields(notebook))


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _coerce(name: str, value: Any, typ: Any, meta) -> Any:
    """`value` as `typ`, or a one-line GenlabError naming what is valid."""
    origin = typing.get_origin(typ)
    if origin is tuple:
        (elem, *_rest) = typing.get_args(typ)
        if isinstance(value, str):   # "0.5,1" from a command line
            value = [_literal(v.strip()) for v in value.split(",") if v.strip()]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        if not value:
            raise GenlabError(f"parameter {name} needs at least one value")
        per = meta.get("per_dataset")
        if per and len(value) not in (1, len(per)):
            raise GenlabError(f"parameter {name}: give one value for every dataset or one per dataset "
                              f"({', '.join(per)}), got {len(value)}")
        return tuple(_coerce(name, v, elem, meta) for v in value)
    lo, choices = meta.get("min"), meta.get("choices")
    if typ is bool:
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            value = value.lower() in _TRUE
        if not isinstance(value, bool):
            raise GenlabError(f"parameter {name} must be True or False, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GenlabError(f"parameter {name} must be a whole number, got {value!r}")
        lo = 1 if lo is None else lo
        if value < lo:
            raise GenlabError(f"parameter {name} must be ≥ {lo}, got {value}")
        if choices and value not in choices:
            raise GenlabError(f"parameter {name}: {value} is not one of {', '.join(map(str, choices))}")
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GenlabError(f"parameter {name} must be a number, got {value!r}")
        if (lo is None and not value > 0) or (lo is not None and value < lo):
            raise GenlabError(f"parameter {name} must be {'> 0' if lo is None else f'≥ {lo}'}, got {value}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise GenlabError(f"parameter {name} must be text, got {value!r}")
        if meta.get("normalise"):
            value = meta["normalise"](value)
        if choices:
            if value not in choices:
                raise GenlabError(f"parameter {name}: {value!r} is not one of {', '.join(choices)}")
        return value
    raise TypeError(f"no parameter rule for {name}: {typ}")


def apply_params(profile: str | Profile, notebook: str, params: dict[str, Any]) -> tuple[Profile, dict]:
    """The profile with `notebook`'s parameter overrides applied, and the overrides that
    changed something ({name: value}). A value of None means "the profile's value"."""
    profile = get_profile(profile)
    fields = _knob_fields(notebook)
    unknown = sorted(set(params) - set(fields) - {"profile"})
    if unknown:
        raise GenlabError(f"unknown parameter(s) {', '.join(unknown)} for {notebook}; "
                          f"valid: {', '.join(['profile', *sorted(fields)])}")
    budget_name = NOTEBOOK_BUDGET[notebook]
    budget = getattr(profile, budget_name)
    top, inner, changed = {}, {}, {}
    for name, value in params.items():
        if name == "profile" or value is None:
            continue
        f, typ = fields[name]
        value = _coerce(name, value, typ, f.metadata)
        owner = profile if name in PROFILE_KNOBS else budget
        if value != getattr(owner, name):
            changed[name] = value
            (top if owner is profile else inner)[name] = value
    if inner:
        top[budget_name] = dataclasses.replace(budget, **inner)
    return (dataclasses.replace(profile, **top) if top else profile), changed


def describe_changes(changed: dict) -> str:
    """'epochs=10, hidden=64' (or 'nothing')."""
    def fmt(v):
        if isinstance(v, tuple):
            return ",".join(fmt(x) for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k}={fmt(v)}" for k, v in sorted(changed.items())) or "nothing"


__all__ = ["AEBudget", "ClassifierBudget", "FlowBudget", "GANBudget", "Profile", "PROFILES", "DEFAULT_PROFILE", "get_profile",
           "config_dict", "replace", "field", "knob", "apply_params", "knob_names", "describe_changes"]
