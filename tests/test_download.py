"""Data on first run: a missing dataset is fetched with torchvision from a mirror on the
loopback address (never the internet), verified against genlab's checksums, and loaded."""
import dataclasses
import functools
import gzip
import hashlib
import http.server
import struct
import threading

import pytest
import torch

from genlab import GenlabError, data as gdata, download


def idx_bytes(array: torch.Tensor) -> bytes:
    dims = array.shape
    magic = struct.pack(">I", 0x0800 | len(dims))
    return magic + b"".join(struct.pack(">I", d) for d in dims) + array.numpy().tobytes()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A tiny MNIST-shaped dataset served over HTTP on 127.0.0.1, with MNIST pointed at it."""
    from torchvision import datasets

    served = tmp_path / "served"
    served.mkdir()
    g = torch.Generator().manual_seed(0)
    arrays = {"train-images-idx3-ubyte": torch.randint(0, 256, (20, 28, 28), generator=g, dtype=torch.uint8),
              "train-labels-idx1-ubyte": torch.arange(20, dtype=torch.uint8) % 10,
              "t10k-images-idx3-ubyte": torch.randint(0, 256, (10, 28, 28), generator=g, dtype=torch.uint8),
              "t10k-labels-idx1-ubyte": torch.arange(10, dtype=torch.uint8) % 10}
    sha, resources = {}, []
    for name, a in arrays.items():
        raw = idx_bytes(a)
        sha[name] = hashlib.sha256(raw).hexdigest()
        packed = gzip.compress(raw)
        (served / f"{name}.gz").write_bytes(packed)
        resources.append((f"{name}.gz", hashlib.md5(packed).hexdigest()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(datasets.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    monkeypatch.setitem(gdata.SPECS, "mnist", dataclasses.replace(gdata.SPECS["mnist"], files=sha))
    yield arrays
    server.shutdown()


def test_a_missing_dataset_is_downloaded_verified_and_loaded(mirror, tmp_path, capsys):
    root = tmp_path / "data"
    assert download.main(["mnist", "--root", str(root)]) == 0
    assert "ok  mnist" in capsys.readouterr().out
    ds = gdata.load("mnist", root)
    assert torch.equal(ds.x_train[:, 0], mirror["train-images-idx3-ubyte"]) and len(ds.x_test) == 10
    assert (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()


def test_offline_the_message_says_where_it_looked_and_why_the_download_failed(mirror, tmp_path, monkeypatch):
    from torchvision import datasets
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])     # nothing listens there
    with pytest.raises(GenlabError, match=r"dataset mnist not found: .*; could not download mnist into .*data"):
        download.ensure("mnist", tmp_path / "data")


def test_a_corrupt_dataset_is_never_replaced_by_a_download(mirror, tmp_path):
    root = tmp_path / "data"
    download.ensure("mnist", root)
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"broken")
    gdata._load_cached.cache_clear()          # as in a new process
    with pytest.raises(GenlabError, match="checksum mismatch"):
        download.ensure("mnist", root)
