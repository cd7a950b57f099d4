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


def test_parameters_compose_with_the_profile_and_list_what_changed():
    from genlab.config import apply_params, describe_changes
    cpu = get_profile("cpu")
    p, changed = apply_params("cpu", "flows", {"epochs": 10, "hidden": cpu.flows.hidden, "seed": 1,
                                               "datasets": "MNIST", "temperatures": [0.5, 1], "lr": None,
                                               "run_sweep": "false"})
    assert p.flows.epochs == (10,) and p.flows.epochs_for("fashion_mnist") == 10 and p.seed == 1 and p.flows.datasets == ("mnist",)
    assert p.flows.temperatures == (0.5, 1.0) and p.flows.run_sweep is False
    assert p.flows.batch_size == cpu.flows.batch_size and p.classifiers == cpu.classifiers
    assert p.name == "cpu" and get_profile("cpu") == cpu          # the profile itself is untouched
    assert describe_changes(changed) == "datasets=mnist, epochs=10, run_sweep=False, seed=1, temperatures=0.5,1"
    assert apply_params("cpu", "flows", {"epochs": None})[1] == {}


@pytest.mark.parametrize("notebook, params, message", [
    ("flows", {"epochs": 2.5}, "epochs must be a whole number, got 2.5"),
    ("flows", {"lr": 0}, "lr must be > 0, got 0"),
    ("flows", {"train_subset": -5}, "train_subset must be ≥ 0, got -5"),
    ("flows", {"temperatures": "0.7,hot"}, "temperatures must be a number, got 'hot'"),
    ("autoencoders", {"betas": []}, "betas needs at least one value"),
    ("gans", {"epochs": 3}, "unknown parameter\\(s\\) epochs for gans; valid: profile, ablation_epochs, ablation_subset, batch_size"),
    ("gans", {"seed": True}, "seed must be a whole number, got True"),
    ("gans", {"datasets": "svhn"}, "datasets: 'svhn' is not one of mnist, fashion_mnist"),
    ("gans", {"conv_epochs": "2,5,9"}, "conv_epochs needs one value, or one per dataset of mnist, fashion_mnist; got 2,5,9"),
    ("gans", {"progan_ema": 1.0}, r"progan_ema must be in \[0, 1\) \(0: no average\); got 1.0"),
    ("gans", {"vanilla_ema": 1.5}, r"vanilla_ema must be in \[0, 1\) \(0: no average\); got 1.5"),
    ("gans", {"progan_betas": "0.9"}, r"progan_betas needs two values in \[0, 1\) \(Adam's beta1, beta2\); got 0.9"),
    ("gans", {"progan_betas": "0,1"}, r"progan_betas needs two values in \[0, 1\) \(Adam's beta1, beta2\); got 0.0,1.0"),
    ("flows", {"precision": "Fashion-MNIST"}, "precision: 'Fashion-MNIST' is not one of auto, fp32, bf16"),
])
def test_a_bad_parameter_is_one_line_naming_what_is_valid(notebook, params, message):
    from genlab.config import apply_params
    with pytest.raises(GenlabError, match=message):
        apply_params("cpu", notebook, params)


def test_a_list_that_may_be_empty_takes_none_from_the_command_line_and_others_still_refuse_it():
    from genlab import build
    from genlab.config import apply_params, describe_changes
    for given in ("", "[]"):
        profile, changed = apply_params("cpu", "flows", build.parse_params([f"fine_temperatures={given}"]))
        assert profile.flows.fine_temperatures == () and changed == {"fine_temperatures": ()}
        assert describe_changes(changed) == "fine_temperatures=none"
    with pytest.raises(GenlabError, match="temperatures needs at least one value"):
        apply_params("cpu", "flows", build.parse_params(["temperatures="]))
    with pytest.raises(GenlabError, match="fine_temperatures must be > 0, got -0.5"):
        apply_params("cpu", "flows", {"fine_temperatures": [-0.5]})


def test_dataset_parameters_take_the_registry_spellings():
    from genlab.config import apply_params
    profile, changed = apply_params("cpu", "flows", {"datasets": "Fashion-MNIST"})
    assert profile.flows.datasets == ("fashion_mnist",) and changed == {"datasets": ("fashion_mnist",)}


def test_per_dataset_epochs_map_by_name_and_one_value_serves_every_dataset():
    from genlab.config import apply_params
    profile, _ = apply_params("cpu", "gans", {"conv_epochs": "3,7", "datasets": "fashion_mnist"})
    assert profile.gans.conv_epochs_for("fashion_mnist") == 7 and profile.gans.conv_epochs_for("mnist") == 3
    profile, _ = apply_params("cpu", "gans", {"conv_epochs": 4})
    assert profile.gans.conv_epochs_for("mnist") == profile.gans.conv_epochs_for("fashion_mnist") == 4


def test_a_per_dataset_knob_takes_one_value_or_one_per_dataset():
    from genlab.config import apply_params
    p, _ = apply_params("cpu", "flows", {"epochs": "5,2", "datasets": "fashion_mnist"})
    assert p.flows.epochs_for("mnist") == 5 and p.flows.epochs_for("fashion_mnist") == 2
    with pytest.raises(GenlabError, match="epochs: give one value for every dataset or one per dataset "
                                          r"\(mnist, fashion_mnist\), got 3"):
        apply_params("cpu", "flows", {"epochs": "5,2,1"})


def test_every_profile_gives_a_per_dataset_knob_one_value_or_one_per_dataset():
    import dataclasses
    for p in PROFILES.values():
        for budget in (p.flows, p.autoencoders, p.gans):
            for f in dataclasses.fields(budget):
                per = f.metadata.get("per_dataset")
                if per:
                    value = getattr(budget, f.name)
                    assert len(value) in (1, len(per)), f"{p.name}: {f.name}={value} for datasets {per}"
