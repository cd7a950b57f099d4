"""MNIST, Fashion-MNIST and CIFAR-10 as whole in-memory uint8 tensors.

Files are read straight from torchvision's on-disk layout (idx files for the
MNISTs, python pickles for CIFAR-10) - no PIL, no per-sample transforms. Every
file is checked against the sha256 of the original distribution once; the
verification is remembered (by path, size and mtime) so later runs do not hash
again.

Search order for the data folder: an explicit `root`, `$GENLAB_DATA`, `data/` in
the repository, then `../shared/data` beside it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.atomic import save_json
from genlab.errors import DatasetNotFound, GenlabError
from genlab.paths import REPO_ROOT, cache_dir


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str                     # torchvision's folder below the data root
    files: dict[str, str]           # file name -> sha256 of the original
    classes: tuple[str, ...]
    torchvision_class: str
    title: str                      # how reports name it
    reader: str = "idx"             # file format: "idx" (MNIST's) or "cifar" (CIFAR-10's pickled batches)
    # The yardstick classifier trains on random crops and horizontal flips: natural images stay what they
    # are when flipped, a digit need not (a flipped 2 is no digit).
    augment: bool = False
    classifier_target: float = 0.9  # test accuracy its yardstick classifier aims for (cpu profile and up)


_MNIST_CLASSES = tuple(str(i) for i in range(10))

SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", "MNIST/raw",
        {
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        _MNIST_CLASSES, "MNIST", "MNIST", classifier_target=0.99),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", "FashionMNIST/raw",
        {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "FashionMNIST", "Fashion-MNIST"),
    "cifar10": DatasetSpec(
        "cifar10", "cifar-10-batches-py",
        {
            "data_batch_1": "54636561a3ce25bd3e19253c6b0d8538147b0ae398331ac4a2d86c6d987368cd",
            "data_batch_2": "766b2cef9fbc745cf056b3152224f7cf77163b330ea9a15f9392beb8b89bc5a8",
            "data_batch_3": "0f00d98ebfb30b3ec0ad19f9756dc2630b89003e10525f5e148445e82aa6a1f9",
            "data_batch_4": "3f7bb240661948b8f4d53e36ec720d8306f5668bd0071dcb4e6c947f78e9682b",
            "data_batch_5": "d91802434d8376bbaeeadf58a737e3a1b12ac839077e931237e0dcd43adcb154",
            "test_batch": "f53d8d457504f7cff4ea9e021afcf0e0ad8e24a91f3fc42091b8adef61157831",
            "batches.meta": "f962466ef690d46b226450fb9aadc74ba4bc64a76aa526b5827fe4bc5c7125cb",
        },
        ("airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"),
        "CIFAR10", "CIFAR-10", reader="cifar", augment=True, classifier_target=0.80),
}


# Other spellings of a registry key (after lower-casing and dropping "-" and "_", as `canonical_name` does).
ALIASES = {"fmnist": "fashion_mnist", "cifar": "cifar10"}


def canonical_name(name: str) -> str:
    """'MNIST', 'Fashion-MNIST', 'fashionmnist', 'CIFAR-10' -> the registry key. Every key of `SPECS`
    is found in any case and with or without '-' and '_', so a new dataset needs no alias."""
    def squash(text: str) -> str:
        return str(text).lower().replace("-", "").replace("_", "")

    key = squash(name)
    for spec_name in SPECS:
        if squash(spec_name) == key:
            return spec_name
    if ALIASES.get(key) in SPECS:
        return ALIASES[key]
    raise GenlabError(f"unknown dataset {name!r}; known datasets: {', '.join(SPECS)}")


def search_roots(root: str | os.PathLike | None = None) -> list[tuple[str, Path | None]]:
    """(label, folder) pairs in the order they are tried."""
    env = os.environ.get("GENLAB_DATA")
    if root is not None:
        return [("root argument", Path(root))]
    return [
        ("$GENLAB_DATA", Path(env) if env else None),
        ("data/", REPO_ROOT / "data"),
        ("../shared/data", REPO_ROOT.parent / "shared" / "data"),
    ]


def find_root(name: str, root: str | os.PathLike | None = None) -> Path:
    """The first data folder that holds every file of dataset `name`."""
    spec = SPECS[canonical_name(name)]
    tried = []
    for label, folder in search_roots(root):
        if folder is None:
            tried.append(f"{label} (unset)")
            continue
        have = [(folder / spec.folder / f).is_file() for f in spec.files]
        if all(have):
            return folder
        if any(have):
            missing = [f for f, ok in zip(spec.files, have) if not ok]
            raise GenlabError(
                f"dataset {spec.name} is incomplete in {folder / spec.folder}: missing "
                f"{', '.join(missing)}; copy the whole folder again (see data/README.md)"
            )
        tried.append(f"{label} ({folder})")
    raise DatasetNotFound(
        f"dataset {spec.name} not found: looked for {spec.folder}/ in {'; '.join(tried)}. "
        f"Put torchvision's layout in data/ or set GENLAB_DATA=/path/to/folder; with internet, "
        f"`python -c \"from torchvision import datasets; datasets.{spec.torchvision_class}('data', "
        f"download=True)\"` fetches it"
    )


# --- checksums -----------------------------------------------------------------------

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp_file() -> Path:
    return cache_dir() / "verified-data.json"


def verify(name: str, root: Path) -> None:
    """Check every file of dataset `name` under `root` against its known sha256.

    A file already verified with the same size and mtime is not hashed again.
    """
    spec = SPECS[canonical_name(name)]
    stamp_path = _stamp_file()
    try:
        stamps = json.loads(stamp_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        stamps = {}
    changed = False
    for fname, expected in spec.files.items():
        path = (root / spec.folder / fname).resolve()
        st = path.stat()
        key = str(path)
        seen = stamps.get(key)
        if seen and seen == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}:
            continue
        actual = _sha256(path)
        if actual != expected:
            stamps.pop(key, None)
            save_json(stamps, stamp_path)
            raise GenlabError(
                f"checksum mismatch for {path}: sha256 {actual[:12]}... but the original is "
                f"{expected[:12]}...; the file is corrupt or a different version - replace it "
                f"with the original (see data/README.md)"
            )
        stamps[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": expected}
        changed = True
    if changed:
        save_json(stamps, stamp_path)


# --- parsing -------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format): big-endian magic, dims, then uint8 data."""
    raw = path.read_bytes()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


def _load_mnist_like(folder: Path) -> tuple[torch.Tensor, ...]:
    out = []
    for split in ("train", "t10k"):
        images = _read_idx(folder / f"{split}-images-idx3-ubyte")
        labels = _read_idx(folder / f"{split}-labels-idx1-ubyte")
        out += [torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))]
    return tuple(out)


def _load_cifar(folder: Path) -> tuple[torch.Tensor, ...]:
    def batch(fname):
        with open(folder / fname, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return d[b"data"].reshape(-1, 3, 32, 32), np.asarray(d[b"labels"], dtype=np.int64)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = batch("test_batch")
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return tuple(torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test))


@dataclass(frozen=True)
class Dataset:
    """A whole dataset in memory: uint8 images N x C x H x W and int64 labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    root: Path

    @property
    def spec(self) -> DatasetSpec:
        return SPECS[self.name]

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name}: train {tuple(self.x_train.shape)}, "
                f"test {tuple(self.x_test.shape)}, from {self.root})")


_READERS = {"idx": _load_mnist_like, "cifar": _load_cifar}


@functools.lru_cache(maxsize=None)
def _load_cached(name: str, root: Path) -> Dataset:
    spec = SPECS[name]
    verify(name, root)
    folder = root / spec.folder
    loader = _READERS[spec.reader]
    try:
        x_train, y_train, x_test, y_test = loader(folder)
    except Exception as e:  # a file that passed its checksum should parse; say so if not
        raise GenlabError(f"could not parse {spec.name} in {folder}: {e}") from e
    return Dataset(name, x_train, y_train, x_test, y_test, spec.classes, root)


def load(name: str, root: str | os.PathLike | None = None) -> Dataset:
    """Load dataset `name` ('mnist', 'fashion_mnist', 'cifar10') into memory, verified."""
    key = canonical_name(name)
    return _load_cached(key, find_root(key, root).resolve())


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1]; float images pass through unchanged."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def random_crop_flip(x: torch.Tensor, pad: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched augmentation of a float batch: a random translation by up to `pad`
    pixels (zero padding) and a random horizontal flip, drawn per image."""
    n, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    rows = dy[:, None] + torch.arange(h, device=dev)
    cols = dx[:, None] + torch.arange(w, device=dev)
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    out = out.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    if flip:
        mask = torch.rand(n, generator=generator).to(dev) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


def main(argv: list[str] | None = None) -> int:
    """`make data`: find every dataset, verify it, say where it is."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m genlab.data",
                                     description="Find genlab's datasets and verify their checksums.")
    parser.add_argument("datasets", nargs="*", default=list(SPECS), help=f"default: {' '.join(SPECS)}")
    parser.add_argument("--root", help="a data folder in torchvision's layout (else: $GENLAB_DATA, "
                                       "data/, ../shared/data)")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.datasets:
        try:
            ds = load(name, args.root)
            print(f"ok  {ds.name:14s} train {tuple(ds.x_train.shape)}  test {tuple(ds.x_test.shape)}  "
                  f"checksums verified  ({ds.root})")
        except GenlabError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
