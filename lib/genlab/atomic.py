"""Atomic file writes: a reader sees the old file or the new one, never half."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(obj: Any, path: Path) -> None:
    _atomic(path, lambda f: torch.save(obj, f))


def save_json(obj: Any, path: Path) -> None:
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


def save_text(text: str, path: Path) -> None:
    _atomic(path, lambda f: f.write(text.encode()))
