"""Profiles: one name picks how much compute every notebook spends.

* ``smoke`` - seconds; tests and CI. Numbers are meaningless, code paths are real.
* ``cpu``   - the default ``make report``: bounded time on 2 cores, real results.
* ``gpu``   - full quality; uses CUDA when it is there.

A profile is a plain frozen dataclass: the yardstick classifiers' budgets, the FID sizes, and
each notebook's budget, which lives beside its study (`flow_budget`, `ae_budget`, `gan_budget`:
the budget dataclass, one instance per profile, and the measurements that chose them). Every
field of a notebook's budget (and the profile's `seed`) is also a notebook parameter of the same name: `apply_params`
validates a user's overrides (type and range, one-line errors that name the valid
choices) and composes them with the profile, so `-p epochs=10 -p hidden=64` means
"the cpu profile, with these two changed".
"""
from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

import torch

from genlab import ae_budget, flow_budget, gan_budget
from genlab.ae_budget import AEBudget
from genlab.errors import GenlabError
from genlab.flow_budget import FlowBudget
from genlab.gan_budget import GANBudget
from genlab.knobs import DATASETS_28, knob


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
class Profile:
    name: str
    classifiers: dict[str, ClassifierBudget]
    eval_subset: int           # test images used for accuracy (0 = all)
    fid_samples: int           # images per FID estimate (generated, and the real floor)
    fid_reference: int         # training images that form the FID reference statistics (0 = all)
    # Each notebook's budget, from the budget module beside its study (`flow_budget`, `ae_budget`, `gan_budget`).
    flows: FlowBudget
    autoencoders: AEBudget
    gans: GANBudget
    grid_images: int = 64
    seed: int = knob(0, min=0)
    # Forward passes in bf16 where it pays ("auto": measured per machine, see genlab.precision).
    precision: str = knob("auto", choices=("auto", "fp32", "bf16"))

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _notebook_budgets(profile: str) -> dict:
    """The profile's budget for each notebook, as its budget module gives it."""
    return {"flows": flow_budget.BUDGETS[profile], "autoencoders": ae_budget.BUDGETS[profile],
            "gans": gan_budget.BUDGETS[profile]}


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
        grid_images=16,
        **_notebook_budgets("smoke"),
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
        **_notebook_budgets("cpu"),
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
        **_notebook_budgets("gpu"),
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
        if not value and not meta.get("may_be_empty"):
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
            return ",".join(fmt(x) for x in v) or "none"
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k}={fmt(v)}" for k, v in sorted(changed.items())) or "nothing"


__all__ = ["AEBudget", "ClassifierBudget", "FlowBudget", "GANBudget", "DATASETS_28", "Profile", "PROFILES", "DEFAULT_PROFILE", "get_profile",
           "config_dict", "replace", "knob", "apply_params", "knob_names", "describe_changes"]
