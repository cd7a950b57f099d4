"""Where genlab keeps things: repository root, model cache, reports."""
from __future__ import annotations

import os
from pathlib import Path

# lib/genlab/paths.py -> repository root is three levels up.
REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Trained models and checksum stamps; `$GENLAB_CACHE` overrides."""
    path = Path(os.environ.get("GENLAB_CACHE", REPO_ROOT / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def report_dir() -> Path:
    """Where a notebook writes its headline numbers and sample tensors.

    The report builder points `$GENLAB_REPORT_DIR` at a staging folder so that a
    failing build never touches the published report. Run by hand in Jupyter, a
    notebook writes to `reports/lab/` and leaves the built report alone.
    """
    path = Path(os.environ.get("GENLAB_REPORT_DIR", REPO_ROOT / "reports" / "lab"))
    path.mkdir(parents=True, exist_ok=True)
    return path
