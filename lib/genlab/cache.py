"""What makes a cached result valid: its configuration, its data and its code.

A trained model or a costly evaluation is reused only when all three are unchanged.
The code part is a fingerprint of the Python source that produced it: for an evaluation,
the function that computes it (for a lambda or a nested function, the top-level function or
class around it), the top-level definitions of its module that it uses, transitively, and
every genlab module that those import names from, whole (but this one, which stores values
and computes none); for a model, the same for each class of its submodules and their bases,
plus the training loop and the data layer, whole. Editing another function or model of the
same module recomputes and retrains nothing. The fingerprint hashes the parsed syntax tree,
so editing a comment or the formatting does not retrain anything, while any change to what
the code does (a docstring included, to stay on the safe side) does.

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


# Code every trained model depends on besides its own classes.
_ALWAYS = ("genlab.train", "genlab.data")

# The modules that make up the models each notebook trains (their classes, the training loop and data layer, the
# precision switch the loop imports, the yardstick classifiers). A build records their fingerprint
# (`notebook_model_code`); when it has changed since, that build's time no longer predicts the next one's.
NOTEBOOK_MODEL_MODULES = {
    "flows": ("genlab.flows", "genlab.dequantization"),
    "autoencoders": ("genlab.autoencoders", "genlab.flows"),
    "gans": ("genlab.gans", "genlab.progan"),
}


def notebook_model_code(notebook: str) -> str:
    """One hash over the source of every module the notebook's trained models are made of."""
    return module_fingerprint(_ALWAYS + ("genlab.precision", "genlab.classifier")
                              + NOTEBOOK_MODEL_MODULES.get(notebook, ()))


def model_fingerprint(model: nn.Module) -> str:
    """Fingerprint of the code of every class that makes up `model` (and their bases), each as
    `code_fingerprint` sees a function: its definition, what it uses of its module and the genlab
    modules it imports from - so editing another model of the same module retrains nothing - plus
    the training loop and the data layer, whole."""
    classes = {base for m in model.modules() for base in inspect.getmro(type(m))
               if base.__module__.split(".")[0] not in ("torch", "builtins", "abc", "typing")}
    parts = sorted(code_fingerprint(c) for c in classes)
    source = module_fingerprint(_ALWAYS)
    return hashlib.sha256(f"{' '.join(parts)} {source} torch=={torch.__version__}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _module_index(path: str, mtime_ns: int) -> tuple[dict[str, tuple[str, frozenset, frozenset]],
                                                    dict[str, frozenset], tuple]:
    """A module's top-level names, each with the canonical source of its statement, the names that
    statement uses and the genlab modules it imports inside (a function's own imports); the genlab
    modules that the module's imports bind to names; and the canonical source of any other top-level
    statement (if/try/for: kept in every fingerprint, to stay safe)."""
    tree = ast.parse(Path(path).read_text())
    definitions, imported, other = {}, {}, []
    for i, node in enumerate(tree.body):
        dump = ast.dump(node, annotate_fields=False, include_attributes=False)
        used = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        inner = frozenset(m for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))
                          for _, m in _genlab_imports(n))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = (dump, used, inner)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in (n.id for n in ast.walk(target) if isinstance(n, ast.Name)):
                    definitions[name] = (dump, used, inner)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, module in _genlab_imports(node):
                imported[name] = imported.get(name, frozenset()) | {module}
        elif not (i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            other.append(dump)    # (the module's docstring is left out)
    return definitions, imported, tuple(other)


def _genlab_imports(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    """(bound name, genlab module) for each name an import statement binds from genlab."""
    if isinstance(node, ast.Import):
        return [(a.asname or a.name.split(".")[0], a.name) for a in node.names if a.name.split(".")[0] == "genlab"]
    if node.level or not node.module or node.module.split(".")[0] != "genlab":
        return []
    pairs = []
    for a in node.names:    # `from genlab import data` binds a module; `from genlab.x import f`, a name of x
        submodule = f"{node.module}.{a.name}"
        is_module = node.module == "genlab" and importlib.util.find_spec(submodule) is not None
        pairs.append((a.asname or a.name, submodule if is_module else node.module))
    return pairs


def code_parts(function: Callable) -> tuple[list[str], set[str]] | None:
    """(canonical source of every top-level definition `function` rests on in its module, the
    genlab modules it uses names from), or None where its source cannot be found."""
    path = _module_file(function.__module__)
    top = function.__qualname__.split(".")[0]   # a lambda or a nested function: the definition around it
    if path is None or not path.exists():
        return None
    try:
        definitions, imported, other = _module_index(str(path), path.stat().st_mtime_ns)
    except SyntaxError:
        return None
    if top not in definitions:
        return None
    seen, todo, modules = set(), [top], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in definitions:
            todo.extend(definitions[name][1])
            modules |= definitions[name][2]
        modules |= imported.get(name, frozenset())
    # This module stores values and computes none (an entry it cannot read is set aside): editing it
    # recomputes nothing.
    modules.discard(__name__)
    return sorted({definitions[n][0] for n in seen if n in definitions}) + list(other), modules


def code_fingerprint(*functions: Callable) -> str:
    """Fingerprint of the code that `functions` rest on (for evaluation memos): see the module's
    docstring. A function whose source cannot be found counts its whole module."""
    parts = []
    for f in functions:
        found = code_parts(f)
        if found is None:
            parts.append(module_fingerprint([f.__module__]))
        else:
            source, modules = found
            parts += [hashlib.sha256("\n".join(source).encode()).hexdigest(), module_fingerprint(modules)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def set_aside(path: Path, reason: str, stale: bool = False) -> Path:
    """Rename a bad (unreadable, or `stale`: valid but made by other code) cache entry out of the way,
    kept for inspection, and warn."""
    path = Path(path)
    what = "stale" if stale else "corrupt"
    stamp = time.strftime('%Y%m%d-%H%M%S')
    aside = path.with_name(f"{path.name}.{what}-{stamp}")
    n = 1
    while aside.exists():      # set aside twice within a second
        n += 1
        aside = path.with_name(f"{path.name}.{what}-{stamp}-{n}")
    path.rename(aside)
    warnings.warn(f"cache entry {path} is {'stale' if stale else 'unreadable'} ({reason}); set aside as "
                  f"{aside.name} and recomputed", CacheWarning, stacklevel=3)
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
