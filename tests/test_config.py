import pytest

from genlab import GenlabError
from genlab.config import PROFILES, ClassifierBudget, config_dict, get_profile, replace


def test_profiles_are_known_and_unknown_ones_listed():
    assert set(PROFILES) == {"smoke", "cpu", "gpu"}
    assert get_profile("cpu").name == "cpu"
    with pytest.raises(GenlabError, match="unknown profile 'fast'; choose one of smoke, cpu, gpu"):
        get_profile("fast")


def test_every_profile_budgets_every_dataset():
    for p in PROFILES.values():
        assert set(p.classifiers) == {"mnist", "fashion_mnist", "cifar10"}


def test_unknown_parameter_is_named_with_the_valid_ones():
    budget = ClassifierBudget(epochs=1)
    assert replace(budget, epochs=3).epochs == 3
    with pytest.raises(GenlabError, match="unknown parameter.*epoch .*valid: batch_size"):
        replace(budget, epoch=3)


def test_config_dict_changes_with_any_field():
    a = config_dict(ClassifierBudget(epochs=1))
    assert a != config_dict(ClassifierBudget(epochs=1, lr=1e-4))
    assert a == config_dict(ClassifierBudget(epochs=1))
