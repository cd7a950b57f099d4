"""Mixed precision through one switch, decided by measurement, never by belief.

`resolve("auto", device)` answers "fp32" or "bf16":

* CUDA: bf16 when the GPU supports it (every GPU since Ampere).
* CPU: bf16 only when a quick probe - a small conv net's training step, timed in
  float32 and under bf16 autocast in turns, best of six each - shows this CPU runs
  it at least 1.15x faster.
  CPUs with AVX-512 bf16 (and AMX) often do; others run bf16 slower than float32.
  The probe's result is remembered per CPU model and torch version in the cache.

Autocast covers the forward passes (models enter `TrainableModule.autocast()`);
parameters, optimiser state and - in the flows - every log-det and log-probability
stay in float32.
"""
from __future__ import annotations

import functools
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from genlab.atomic import save_json
from genlab.errors import GenlabError
from genlab.paths import cache_dir

PRECISIONS = ("auto", "fp32", "bf16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
MIN_SPEEDUP = 1.15


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _probe_steps(repeats: int = 6) -> tuple[float, float]:
    """Seconds per training step of a small conv net (batch 64, 28x28) in float32 and under bf16 autocast, the
    best of `repeats` each. The two are timed in turns: timed one after the other, a load that another process put
    on the cores in between (seen: a `pip install` beside a build) made bf16 look 0.79x float32 on a CPU where it
    runs 2x."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(64, 1, 3, padding=1))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randn(64, 1, 28, 28)

    def step(bf16: bool) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(x).float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    step(False), step(True)       # first calls pick their kernels
    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], step(bf16))
    return best[False], best[True]


def probe_path() -> Path:
    """Where the probe's answers are remembered (per CPU model and torch version)."""
    return cache_dir() / "precision-probe.json"


@functools.lru_cache(maxsize=None)
def cpu_bf16_speedup() -> float:
    """float32 time / bf16 time of the probe step on this CPU (remembered in the cache). Probed once
    per CPU model, whatever the thread count: a build's lanes (one thread each) must resolve "auto"
    as the builder did, or a noisy probe would change the precision - and so the cache key - of
    models the builder has already trained."""
    key = f"{cpu_model()} | torch {torch.__version__}"
    path = probe_path()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        fp32, bf16 = _probe_steps()
        known[key] = fp32 / bf16
        save_json(known, path)
    return float(known[key])


def resolve(precision: str, device: torch.device | str) -> str:
    """'auto' -> 'fp32' or 'bf16' for `device`; an explicit choice is kept."""
    if precision not in PRECISIONS:
        raise GenlabError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_bf16_speedup() >= MIN_SPEEDUP else "fp32"
