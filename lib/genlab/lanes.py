"""Threads handed between the build's lanes while they run.

`make report` runs the notebooks in lanes side by side, one thread each on two cores. The lanes never end
together: in the cold build of 2026-11-27 the GANs lane finished 8 min before the other, whose autoencoders
then trained on one thread while the second core idled. The build writes the number of threads each lane may
use now to a file (`THREADS_FILE_ENV`), and raises it when a lane ends; training loops and batched evaluations
call `follow()` and take the new number within a few seconds.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

THREADS_FILE_ENV = "GENLAB_LANE_THREADS_FILE"
_CHECK_EVERY_S = 5.0
_last_check = [0.0]


def follow() -> None:
    """Use as many threads as the build now gives this lane (a no-op outside a lane; reads a file at most
    every few seconds)."""
    path = os.environ.get(THREADS_FILE_ENV)
    now = time.monotonic()
    if not path or now - _last_check[0] < _CHECK_EVERY_S:
        return
    _last_check[0] = now
    try:
        n = int(Path(path).read_text())
    except (OSError, ValueError):
        return
    if n >= 1 and n != torch.get_num_threads():
        torch.set_num_threads(n)


def offer(path: Path, threads: int) -> None:
    """The build's side: every lane may now use `threads` threads (written atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(threads))
    os.replace(tmp, path)
