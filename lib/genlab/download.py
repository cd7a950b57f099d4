"""Data on first run, where it can be had: fetch a missing dataset with torchvision.

`make data` and `make report` call `ensure()`: a dataset that is found anywhere in the
search path (`genlab.data.search_roots`) is only verified; a missing one is downloaded
by torchvision into `data/` (or `--root`), then checked against genlab's own sha256 of
the original files, exactly as if it had been copied there by hand. Offline, the
download fails fast and the message is the usual `DatasetNotFound` one, with the reason.

    python -m genlab.download                 # every dataset
    python -m genlab.download mnist --root /path/to/data
"""
from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from genlab import data as gdata
from genlab.errors import DatasetNotFound, GenlabError
from genlab.paths import REPO_ROOT

TIMEOUT_S = 20.0   # per connection: offline machines fail fast instead of hanging


def fetch(name: str, root: Path) -> None:
    """Download dataset `name` into `root` with torchvision (raises GenlabError when it cannot)."""
    from torchvision import datasets

    spec = gdata.SPECS[gdata.canonical_name(name)]
    cls = getattr(datasets, spec.torchvision_class)
    root.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(TIMEOUT_S)
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as e:  # URLError, timeouts, HTTP errors, bad archives: say what and where
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise GenlabError(f"could not download {spec.name} into {root} ({reason})") from e
    finally:
        socket.setdefaulttimeout(previous)


def ensure(name: str, root: str | Path | None = None) -> gdata.Dataset:
    """The verified dataset, downloaded into `root` (default data/) first when it is nowhere."""
    try:
        return gdata.load(name, root)
    except DatasetNotFound as missing:   # present but partial or corrupt raises GenlabError: never overwritten
        target = Path(root) if root is not None else REPO_ROOT / "data"
        try:
            fetch(name, target)
        except GenlabError as failed:
            raise GenlabError(f"{missing}; {failed}") from None
        return gdata.load(name, target)


def _ensure_and_say(name: str, root: str | None) -> bool:
    try:
        ds = ensure(name, root)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return False
    print(f"ok  {ds.name:14s} {len(ds.x_train)} train + {len(ds.x_test)} test images, checksums verified ({ds.root})")
    return True


def main(argv: list[str] | None = None) -> int:
    """`make data`: `python -m genlab.data` (find and verify), downloading what is missing."""
    parser = argparse.ArgumentParser(prog="python -m genlab.download",
                                     description="Find genlab's datasets, download the missing ones "
                                                 "(torchvision, when online) and verify their checksums.")
    parser.add_argument("datasets", nargs="*", default=list(gdata.SPECS), help=f"default: {' '.join(gdata.SPECS)}")
    parser.add_argument("--root", help="where to look and download (default: the search path; downloads go "
                                       "to data/)")
    args = parser.parse_args(argv)
    ok = [_ensure_and_say(name, args.root) for name in args.datasets]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
