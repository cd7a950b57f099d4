"""docs/ARCHITECTURE.md's "add a dataset" recipe, kept honest: a dataset registered the way the recipe
says - one `data.SPECS` entry and a yardstick budget per profile - is found under any spelling,
verified, loaded, measured by its own yardstick classifier, and trains a model through a study's
`train`, with no other file touched."""
import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from genlab import ae_study, config, data
from genlab.errors import GenlabError
from genlab.metrics import yardstick


def write_idx(path, array: np.ndarray) -> str:
    """MNIST's idx format (uint8 data): magic 0x08 and the number of dimensions, the sizes, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    """'Bars': 28x28 images of one bright horizontal bar whose row band is the class (4 classes)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "Bars" / "raw"
    folder.mkdir(parents=True)
    files = {}
    for split, n in (("train", 512), ("t10k", 256)):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 40, (n, 28, 28))
        for i, c in enumerate(y):
            x[i, 7 * c + 2: 7 * c + 5] = 255
        files[f"{split}-images-idx3-ubyte"] = write_idx(folder / f"{split}-images-idx3-ubyte", x)
        files[f"{split}-labels-idx1-ubyte"] = write_idx(folder / f"{split}-labels-idx1-ubyte", y)
    # Step 1 of the recipe: the registry entry.
    monkeypatch.setitem(data.SPECS, "bars_28", data.DatasetSpec(
        "bars_28", "Bars/raw", files, ("top", "upper", "lower", "bottom"), "Bars", "Bars", classifier_target=0.9))
    # Step 2: its yardstick's budget in each profile.
    for name, profile in config.PROFILES.items():
        monkeypatch.setitem(config.PROFILES, name, dataclasses.replace(
            profile, classifiers={**profile.classifiers, "bars_28": config.ClassifierBudget(epochs=2, width=8, lr=5e-3)}))
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "data"))
    return folder


def test_a_dataset_added_as_the_recipe_says_is_loaded_measured_and_trained_on(toy_dataset):
    assert data.canonical_name("Bars-28") == data.canonical_name("BARS_28") == "bars_28"
    ds = data.load("Bars-28")
    assert ds.x_train.shape == (512, 1, 28, 28) and ds.x_train.dtype == torch.uint8 and ds.spec.title == "Bars"

    ys = yardstick("bars_28", "smoke")
    assert ys.test_accuracy > 0.9            # four bar positions: an easy task its classifier must learn
    real = ys.measure(ds.x_test[:200])
    noise = ys.measure(torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8))
    assert real.coverage == 1.0 and noise.fid > 10 * real.fid     # its features tell bars from noise

    run = ae_study.train("bars_28", "smoke", kind="ae", latent=2)
    assert run.fit.history["epoch"].max() >= 1 and run.model.sample(3).shape == (3, 1, 28, 28)


def test_a_corrupt_file_of_an_added_dataset_is_refused_by_its_checksum(toy_dataset):
    path = toy_dataset / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1] + b"\x07")
    with pytest.raises(GenlabError, match="(?i)checksum|sha256"):
        data.load("bars_28")
