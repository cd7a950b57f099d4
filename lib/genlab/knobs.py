"""What a budget field is as a notebook parameter: its default and valid range (`knob`).

Kept apart from `config` so that each study's budget module can declare its fields and `config` can
gather the budgets into profiles without an import cycle.
"""
from __future__ import annotations

from dataclasses import field

from genlab.errors import GenlabError


def knob(default, *, min: float | None = None, choices: tuple | None = None, normalise=None,
         per_dataset: tuple[str, ...] | None = None, may_be_empty: bool = False):
    """A budget field with its valid range (default: integers >= 1, floats > 0); `normalise` maps a
    user's spelling of a choice to the canonical one before it is checked; a tuple field `per_dataset`
    holds one value for every dataset or one per dataset, in that order; one that `may_be_empty` takes
    no values at all (`-p name=` or `[]`: none)."""
    return field(default=default, metadata={"min": min, "choices": choices, "normalise": normalise,
                                            "per_dataset": per_dataset, "may_be_empty": may_be_empty})


def dataset_name(value: str) -> str:
    """'Fashion-MNIST' -> 'fashion_mnist' (the data registry's aliases); other text is left as it is,
    for the choices check to name what is valid."""
    from genlab.data import canonical_name   # data imports nothing from here at import time

    try:
        return canonical_name(value)
    except GenlabError:
        return value


DATASETS_28 = ("mnist", "fashion_mnist")   # the 28x28 grey datasets the flows, AEs and GANs use


def for_dataset(values: tuple, dataset: str):
    """A per-dataset knob's value for `dataset`: its one value, or the one at the dataset's place in DATASETS_28."""
    return values[0] if len(values) == 1 else values[DATASETS_28.index(dataset)]
