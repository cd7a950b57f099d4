import os
import shutil

import pytest
import torch

from genlab import GenlabError, data
from genlab.errors import DatasetNotFound

REAL_ROOT = data.find_root("mnist")


def make_root(tmp_path, corrupt: str | None = None):
    """A data folder with MNIST: links to the real files, a corrupted copy of one."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.SPECS["mnist"].files:
        src = REAL_ROOT / "MNIST" / "raw" / name
        if name == corrupt:
            blob = bytearray(src.read_bytes())
            blob[-1] ^= 0xFF
            (raw / name).write_bytes(bytes(blob))
        else:
            os.symlink(src, raw / name)
    return tmp_path / "data"


def test_loads_whole_datasets_as_uint8_tensors():
    for name, shape, n_train in (("mnist", (1, 28, 28), 60000), ("fashion_mnist", (1, 28, 28), 60000),
                                 ("cifar10", (3, 32, 32), 50000)):
        ds = data.load(name)
        assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape == (n_train, *shape)
        assert ds.x_test.shape == (10000, *shape)
        assert ds.y_train.dtype == torch.int64 and set(ds.y_test.unique().tolist()) == set(range(10))
        assert len(ds.classes) == 10


def test_pixels_match_the_published_statistics():
    assert abs(data.to_float(data.load("mnist").x_train).mean().item() - 0.1307) < 1e-3
    cifar = data.to_float(data.load("cifar10").x_train).mean((0, 2, 3))
    assert torch.allclose(cifar, torch.tensor([0.4914, 0.4822, 0.4465]), atol=1e-3)


def test_names_are_forgiving_but_unknown_ones_are_listed():
    assert data.canonical_name("Fashion-MNIST") == "fashion_mnist"
    assert data.canonical_name("CIFAR-10") == "cifar10"
    with pytest.raises(GenlabError, match="unknown dataset 'svhn'; known datasets: mnist, fashion_mnist, cifar10"):
        data.load("svhn")


def test_missing_data_names_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFound) as err:   # the one failure a download may fix
        data.load("mnist")
    msg = str(err.value)
    assert "dataset mnist not found" in msg
    assert str(tmp_path / "nowhere") in msg and str(tmp_path / "repo" / "data") in msg
    assert str(tmp_path / "shared" / "data") in msg
    assert "download=True" in msg and "\n" not in msg


def test_genlab_data_comes_first(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    monkeypatch.setenv("GENLAB_DATA", str(root))
    assert data.find_root("mnist") == root


def test_checksum_mismatch_names_the_file(tmp_path):
    root = make_root(tmp_path, corrupt="t10k-labels-idx1-ubyte")
    with pytest.raises(GenlabError, match=r"checksum mismatch for .*t10k-labels-idx1-ubyte"):
        data.load("mnist", root)


def test_incomplete_folder_lists_missing_files(tmp_path):
    root = make_root(tmp_path)
    (root / "MNIST" / "raw" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(GenlabError, match="incomplete.*missing train-labels-idx1-ubyte") as err:
        data.load("mnist", root)
    assert not isinstance(err.value, DatasetNotFound)   # a partial copy is never downloaded over


def test_verification_is_remembered_until_a_file_changes(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    data.load("mnist", root)
    hashed = []
    real_sha = data._sha256
    monkeypatch.setattr(data, "_sha256", lambda p: hashed.append(p.name) or real_sha(p))
    data._load_cached.cache_clear()
    data.load("mnist", root)
    assert hashed == []                       # nothing hashed again
    label = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    label.unlink()
    shutil.copy(REAL_ROOT / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", label)
    data._load_cached.cache_clear()
    data.load("mnist", root)
    assert hashed == ["t10k-labels-idx1-ubyte"]   # only the changed file


def test_make_data_reports_each_dataset(capsys, tmp_path):
    assert data.main(["mnist"]) == 0
    assert "ok  mnist" in capsys.readouterr().out
    assert data.main(["mnist", "--root", str(tmp_path)]) == 1
    assert "error: dataset mnist not found" in capsys.readouterr().err


def test_random_crop_flip_is_a_per_image_shift_or_flip():
    x = torch.rand(64, 3, 8, 8)
    assert torch.equal(data.random_crop_flip(x, pad=0, flip=False), x)
    out = data.random_crop_flip(x, pad=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # Each output image is its input shifted by at most 2 pixels (maybe flipped): the
    # centre 4x4 of the output lies somewhere in the input.
    for i in range(8):
        found = any(torch.equal(out[i, :, 2:6, 2:6], cand[:, r:r + 4, c:c + 4])
                    for cand in (x[i], x[i].flip(2)) for r in range(5) for c in range(5))
        assert found
    assert not torch.equal(out, x)


def test_every_registered_dataset_has_a_reader_a_yardstick_budget_and_an_aim():
    from genlab.classifier import _budget_config
    from genlab.config import PROFILES
    for name, spec in data.SPECS.items():
        assert spec.reader in data._READERS, name
        assert 0 < spec.classifier_target < 1, name
        for profile in PROFILES.values():
            assert name in profile.classifiers, (name, profile.name)
    # The registry, not the classifier, says which yardsticks train on crops and flips.
    assert [n for n, s in data.SPECS.items() if s.augment] == ["cifar10"]
    ds = data.load("mnist")
    flipped = data.Dataset("cifar10", ds.x_train[:16], ds.y_train[:16], ds.x_test[:16], ds.y_test[:16],
                           ds.classes, ds.root)
    assert _budget_config(flipped, PROFILES["smoke"].classifiers["mnist"]).augment
    assert not _budget_config(ds, PROFILES["smoke"].classifiers["mnist"]).augment
