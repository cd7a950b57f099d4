"""Training, ahead of a notebook, the cached runs it will load: the work a build lane does once its own
notebooks are done while another lane still runs.

Handing the finished lane's thread to the lane still running (genlab.lanes) buys little for a small model: on
2 AMD EPYC cores of family 26 the flows' sweep baseline trained its 10,000 images in 30.5 s on two threads and
43 s on one (1.4x). Two one-thread processes training two variants at once do more.
So when a lane ends, the build starts `python -m genlab.prefill` for the notebooks of the lanes still running,
with the same profile and parameters, and hands the threads on only when it has finished; and a lane that
expects less work than the longest one starts with it, for that lane's first notebook (see `PREFILLS`). A
notebook names what may be trained ahead: runs that do not depend on anything the notebook computes first.
`genlab.train.fit` lets one process at a time train a run, so the notebook, on reaching a run being trained
here, waits for it and loads it, and this side stops where the notebook has got to.
"""
from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from genlab.config import Profile, apply_params
from genlab.errors import GenlabError

# notebook -> ("module:function" that takes the notebook's Profile (parameters applied) and trains what it may,
# whether those runs are spread over the whole notebook). The autoencoders' are: a lane with less to do than
# another can start by training them from the last back while that lane builds the notebook from the first,
# and the two meet in the middle. The flows' (the sweep) come at the notebook's end, after ~40 min of training
# that only its own lane can do: trained ahead at the start, they would all fall to the helping lane.
PREFILLS = {
    "autoencoders": ("genlab.ae_study:prefill", True),
    "flows": ("genlab.flow_study:prefill_sweep", False),
}


def prefill_function(notebook: str) -> Callable[[Profile], list[str]]:
    module, name = PREFILLS[notebook][0].split(":")
    return getattr(importlib.import_module(module), name)


def spread_over_notebook(notebook: str) -> bool:
    return notebook in PREFILLS and PREFILLS[notebook][1]


def prefill(notebook: str, profile: str, params: dict) -> list[str]:
    """Train ahead what `notebook` (built with `profile` and `params`) will load; what was trained."""
    if notebook not in PREFILLS:
        return []
    applied, _ = apply_params(profile, notebook, params)
    return prefill_function(notebook)(applied)


def main(argv: list[str] | None = None) -> int:
    from genlab.build import BUILT_DIR_ENV, parse_params, printing_progress, stop_with_parent

    parser = argparse.ArgumentParser(
        prog="python -m genlab.prefill",
        description="Train ahead the cached runs a notebook will load (a build starts this in a lane that has "
                    "finished; the notebook then loads them).")
    parser.add_argument("--profile", required=True)
    parser.add_argument("--notebook", required=True, choices=sorted(PREFILLS))
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    # Stopped by the build that started it (SIGTERM): as SystemExit, so that its temporary folder goes too. What it
    # trained stays in the cache, up to the last finished epoch.
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        if os.environ.get(BUILT_DIR_ENV):     # started by a build's lanes
            stop_with_parent()
    t0 = time.perf_counter()
    try:
        params = parse_params(args.param)
        folder = Path(tempfile.mkdtemp(prefix="genlab-prefill-"))
        try:
            with printing_progress(f"{args.notebook} (ahead)", folder / "progress.jsonl", None):
                done = prefill(args.notebook, args.profile, params)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:      # Ctrl-C: the build that started this says that it stopped
        return 130
    print(f"[genlab] {args.notebook} (ahead): {len(done)} run(s) trained in "
          f"{(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
