"""What makes a cached result valid: its configuration, its data and its code.

A trained model or a costly evaluation is reused only when all three are unchanged.
The code part is a fingerprint of the Python source that produced it: for a model,
every non-torch module that defines a class of one of its submodules, plus the
training loop and the data layer; for an evaluation, the module of the function
that computes it. The fingerprint hashes the parsed syntax tree, so editing a
comment or the formatting does not retrain anything, while any change to what the
code does (a docstring included, to stay on the safe side) does.

A corrupt or unreadable cache entry is set aside (renamed, never deleted) with a
warning and recomputed, so that a build never stops on it.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from genlab.atomic import save_json, save_torch


class CacheWarning(UserWarning):
    """A cache entry could not be used and is recomputed."""


@functools.lru_cache(maxsize=None)
def _file_fingerprint(path: str, mtime_ns: int) -> str:
    source = Path(path).read_text()
    try:
        canonical = ast.dump(ast.parse(source), annotate_fields=False, include_attributes=False)
    except SyntaxError:
        canonical = source
    return hashlib.sha256(canonical.encode()).hexdigest()


def _module_file(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    if module is None:   # not imported in this process (yet): find its file without importing it
        spec = importlib.util.find_spec(module_name)
        path = spec.origin if spec else None
    else:
        path = getattr(module, "__file__", None)
    return Path(path).resolve() if path and path.endswith(".py") else None


def module_fingerprint(module_names: Iterable[str]) -> str:
    """One hash over the source of the named modules (those that are Python files)."""
    # By content only: the same file imported as a module or run as __main__ is the same code.
    parts = set()
    for name in set(module_names):
        path = _module_file(name)
        if path is not None and path.exists():
            parts.add(_file_fingerprint(str(path), path.stat().st_mtime_ns))
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def _user_modules(classes: Iterable[type]) -> set[str]:
    """Modules that define these classes or their bases, except torch's and the standard library's."""
    names = set()
    for cls in classes:
        for base in inspect.getmro(cls):
            mod = base.__module__
            if mod.split(".")[0] in ("torch", "builtins", "abc", "typing"):
                continue
            names.add(mod)
    return names


# Code every trained model depends on besides its own classes.
_ALWAYS = ("genlab.train", "genlab.data")


def model_fingerprint(model: nn.Module) -> str:
    """Fingerprint of the source of every class that makes up `model`, the loop and the data layer."""
    source = module_fingerprint(_user_modules(type(m) for m in model.modules()) | set(_ALWAYS))
    return hashlib.sha256(f"{source} torch=={torch.__version__}".encode()).hexdigest()[:16]


def code_fingerprint(*functions: Callable) -> str:
    """Fingerprint of the modules that define `functions` (for evaluation memos)."""
    return module_fingerprint(f.__module__ for f in functions)


def set_aside(path: Path, reason: str) -> Path:
    """Rename a bad cache entry out of the way (kept for inspection) and warn."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(aside)
    warnings.warn(f"cache entry {path} is unreadable ({reason}); set aside as {aside.name} and recomputed",
                  CacheWarning, stacklevel=3)
    return aside


def _memo(path: Path, compute: Callable[[], Any], key: str, read: Callable[[Path], Any],
          write: Callable[[Any, Path], None], unreadable: tuple[type[BaseException], ...]) -> Any:
    """The value stored at `path` under `key`, else `compute()` stored there first; an unreadable
    file is set aside (never a reason to stop a build)."""
    path = Path(path)
    if path.exists():
        try:
            stored = read(path)
            if stored.get("code") == key:
                return stored["value"]
        except unreadable as e:
            set_aside(path, f"{type(e).__name__}: {e}")
    value = compute()
    write({"code": key, "value": value}, path)
    return value


def json_memo(path: Path, compute: Callable[[], Any], code: Callable | None = None) -> Any:
    """The value stored at `path` when it was computed by the same code, else `compute()`
    stored there first. Keeps a costly evaluation beside the checkpoint it belongs to;
    `code` is the function whose module's source must be unchanged (default: `compute`)."""
    return _memo(path, compute, code_fingerprint(code or compute), lambda p: json.loads(p.read_text()), save_json,
                 (OSError, ValueError, AttributeError, KeyError))


def tensor_memo(path: Path, compute: Callable[[], dict[str, torch.Tensor]], code: Callable) -> dict[str, torch.Tensor]:
    """`json_memo` for a dict of tensors (e.g. feature statistics of a reference set)."""
    return _memo(path, lambda: {k: v.detach().cpu() for k, v in compute().items()}, code_fingerprint(code),
                 lambda p: torch.load(p, map_location="cpu", weights_only=True), save_torch, (Exception,))
