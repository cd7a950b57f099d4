"""`make bench`: how fast genlab trains, measured, never asserted in a test.

Per model family (flow, VAE, conv GAN, ProGAN, classifier): training images/s in
eager float32 NCHW (the seed's way), with channels_last, under bf16 autocast, and
both, with the ratio to float32 - this is what decides each family's settings
(`TrainableModule.channels_last`, `genlab.precision`) - beside the machine's float32
and bf16 matmul and convolution rates; on every thread and on one (`--threads`), since
the report builder's lanes train on one thread each. `--compile` adds the used setting with
every top-level module torch.compile'd, with its first-call compile time. With `--device cuda`, each family
that `fit` trains through a CUDA graph (RealNVP, the VAE, the GANs: `genlab.cuda_graphs`) is also timed that way,
against its eager step in the setting the build uses.

And one epoch of the MNIST classifier (the `cpu` profile's architecture) fed two
ways, in one run on the same machine:

* genlab: the whole training set as one uint8 tensor in memory, batches are
  index slices, conversion to float happens per batch;
* the usual approach: torchvision's `datasets.MNIST` with `ToTensor()` and a
  `DataLoader`, i.e. one PIL image and one transform call per sample.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from genlab import cuda_graphs, precision
from genlab import data as gdata
from genlab.classifier import Classifier, _budget_config
from genlab.config import get_profile
from genlab.errors import GenlabError
from genlab.precision import cpu_bf16_speedup, cpu_model, resolve as resolve_precision


WARMUP_BATCHES = 3  # first steps pay one-time costs (allocator, kernels): not timed


def _epoch(model, batches, optimizers, limit: int | None) -> tuple[float, int]:
    model.train()
    n = 0
    t0 = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if limit is not None and i >= limit:
            break
        if i == WARMUP_BATCHES:
            n, t0 = 0, time.perf_counter()
        model.train_step((x, y), optimizers)
        n += len(x)
    return time.perf_counter() - t0, n


def _tensor_batches(ds, batch_size, seed):
    order = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(seed))
    for i in range(0, len(order) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        yield ds.x_train[idx], ds.y_train[idx]


def classifier_bench(batch_size: int = 128, limit: int | None = None, workers: int = 0) -> dict:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ds = gdata.load("mnist")
    cfg = _budget_config(ds, get_profile("cpu").classifiers["mnist"])
    results = {}
    for name in ("in-memory tensors (genlab)", f"torchvision DataLoader + ToTensor (workers={workers})"):
        torch.manual_seed(0)
        model = Classifier(cfg)
        opts = model.configure_optimizers()
        if name.startswith("in-memory"):
            batches = _tensor_batches(ds, batch_size, 0)
        else:
            tv = datasets.MNIST(str(ds.root), train=True, download=False, transform=transforms.ToTensor())
            batches = DataLoader(tv, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
        seconds, n = _epoch(model, batches, opts, limit)
        results[name] = (seconds, n)
    return results


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """The machine's measured fp32 matmul rate in FLOP/s (the practical peak)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def _profile_flow(ds, budget):
    """The RealNVP that `budget` trains on `ds` (with the learned dequantiser where it uses one: its 28-px
    convolutions cost time too)."""
    from genlab.flow_study import flow_model, model_config

    build, _ = flow_model(model_config(ds, budget), budget.dequantization)
    return build()


def flow_bench(steps: int = 20, batch_size: int | None = None, sample_n: int = 500) -> dict:
    """RealNVP (cpu profile) on MNIST: training images/s, FLOP rate of a training step
    (convolutions and matmuls, counted by torch.utils.flop_counter), sampling images/s."""
    from torch.utils.flop_counter import FlopCounterMode

    profile = get_profile("cpu")
    ds = gdata.load("mnist")
    batch_size = batch_size or profile.flows.batch_size
    torch.manual_seed(0)
    model = _profile_flow(ds, profile.flows)
    opts = model.configure_optimizers()
    x = ds.x_train[:batch_size]
    with FlopCounterMode(display=False) as counter:
        model.train_step((x,), opts)
    flops_per_step = counter.get_total_flops()
    for _ in range(WARMUP_BATCHES):
        model.train_step((x,), opts)
    t0 = time.perf_counter()
    for i in range(steps):
        model.train_step((ds.x_train[i * batch_size:(i + 1) * batch_size],), opts)
    step_time = (time.perf_counter() - t0) / steps
    model.eval()
    model.sample(16)
    t0 = time.perf_counter()
    model.sample(sample_n)
    sample_time = time.perf_counter() - t0
    return {"batch": batch_size, "flops_per_step": flops_per_step, "step_s": step_time,
            "train_img_s": batch_size / step_time, "flop_rate": flops_per_step / step_time,
            "sample_img_s": sample_n / sample_time,
            "parameters": sum(p.numel() for p in model.parameters())}


def _sync(device) -> None:
    """Wait for the device: CUDA runs asynchronously, so a timer must not stop before it has."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def conv3x3_case(dtype: torch.dtype, device="cpu"):
    """(a call of a 64-channel 3x3 convolution on a batch of 64 28x28 maps, channels_last, its FLOPs): the
    convolution whose rate `make bench` reports and `genlab.build.machine_slowdown` probes."""
    x = torch.randn(64, 64, 28, 28, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 64, 3, 3, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
    return (lambda: torch.nn.functional.conv2d(x, w, padding=1)), 2 * 64 * 64 * 9 * 28 * 28 * 64


def op_rates(repeats: int = 10, device="cpu") -> dict[str, float]:
    """GFLOP/s of a square matmul (2048², 8192² on a GPU) and of a 64-channel 3x3 convolution
    (batch 64, 28x28), fp32 and bf16."""
    def rate(fn, flops):
        for _ in range(2):
            fn()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync(device)
        return flops * repeats / (time.perf_counter() - t0) / 1e9

    out = {}
    n = 8192 if torch.device(device).type == "cuda" else 2048
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
        out[f"matmul {name}"] = rate(lambda: a @ b, 2 * n ** 3)
        out[f"conv3x3 {name}"] = rate(*conv3x3_case(dtype, device))
    return out


def _families(profile_name: str = "cpu", batch_scale: int = 1):
    """name -> (build a fresh model, one training batch): the shapes of `profile_name`'s models,
    at `batch_scale` times its batch sizes. The ProGAN batch is random pixels of CIFAR-10's shape
    (speed does not depend on the pixels), so the bench runs where only MNIST is at hand."""
    from genlab.autoencoders import AEConfig, AutoEncoder
    from genlab.gans import ConvGAN, ConvGANConfig
    from genlab.gan_study import progan_config
    from genlab.progan import ProGAN, ProGANStage

    profile = get_profile(profile_name)
    mnist = gdata.load("mnist")
    b, a, k = profile.gans, profile.autoencoders, batch_scale

    def images(n):   # the first n training images, repeated when n exceeds the training set
        return mnist.x_train[torch.arange(n) % len(mnist.x_train)]

    def labels(n):
        return mnist.y_train[torch.arange(n) % len(mnist.y_train)]

    cifar_like = torch.randint(0, 256, (b.progan_batch * k, 3, 32, 32), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
    classifier = profile.classifiers["mnist"]
    return {
        "flow (RealNVP)": (lambda: _profile_flow(mnist, profile.flows),
                           (images(profile.flows.batch_size * k),)),
        "VAE": (lambda: AutoEncoder(AEConfig(width=a.width, latent=a.vae_latent)), (images(a.batch_size * k),)),
        "conv GAN (cGAN)": (lambda: ConvGAN(ConvGANConfig(classes=10, width=b.conv_width)),
                            (images(b.batch_size * k), labels(b.batch_size * k))),
        # A 2-step stage: α is 1 from the second step on, so every timed step is the 32-px stage's stable phase
        # (and a compiled G or D, which specialises on α, compiles once).
        "ProGAN (32x32 stage)": (lambda: ProGAN(ProGANStage(progan_config(profile), 3, 2)),
                                 (cifar_like, labels(b.progan_batch * k) % max(1, b.self_conditioning))),
        "classifier (MNIST)": (lambda: Classifier(_budget_config(mnist, classifier)),
                               (images(classifier.batch_size * k), labels(classifier.batch_size * k))),
    }


def _runner(build, batch, precision: str, channels_last: bool, compile: bool = False, device="cpu",
            graph: bool = False):
    """(one training step of a fresh model in this setting, seconds of its first call). The first calls
    (allocator, kernels, compilation, a CUDA graph's warm-up and capture) are made here, outside any timed
    window. `graph`: the model's CUDA graph is installed after the first step, as `fit` installs it."""
    torch.manual_seed(0)
    model = build().to(device)
    batch = tuple(t.to(device) for t in batch)
    model.precision = precision
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    if compile:
        # Each top-level submodule (the flow, encoder and decoder, G and D, the classifier's body and head), not the
        # training step: the conv GAN's step - D, then G through one generated batch - does not compile whole, and
        # RealNVP's whole step was still compiling after 6 min on one AMD EPYC thread.
        for child in model.children():
            child.compile()

    def step():
        model.train_step(batch, opts)

    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0
    if graph:
        metrics = model.train_step(batch, opts)
        cuda_graphs.install(model, batch, tuple(k for k in metrics if k != "loss"))
    # A whole-step graph (the GANs) warms up for its own steps before it captures.
    for _ in range(WARMUP_BATCHES - 1 + (cuda_graphs.StepGraph.warmup + 1 if graph else 0)):
        step()
    _sync(device)
    return step, first


def _interleaved_rates(runners: list, images_per_step: int, steps: int = 8, device="cpu",
                       min_seconds: float = 1.0, windows: int = 3) -> list[float]:
    """Training images/s of each runner: the median of `windows` timed windows, each of at least `steps` steps
    and `min_seconds` seconds. The windows take turns (setting 1, 2, ..., then 1 again), so that a machine
    whose speed drifts (clock, neighbours) moves every setting alike: a ratio compares like with like. Timed
    one setting after the other, the VAE's ratio moved between 1.25x and 1.48x from run to run (CPU family 26)."""
    rates: list[list[float]] = [[] for _ in runners]
    for _ in range(windows):
        for i, step in enumerate(runners):
            n, t0 = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < min_seconds:    # whole chunks of `steps`, synced after each
                for _ in range(steps):
                    step()
                _sync(device)
                n += steps
            rates[i].append(images_per_step * n / (time.perf_counter() - t0))
    return [statistics.median(r) for r in rates]


SETTINGS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def family_bench(compile: bool = False, profile: str = "cpu", device="cpu", batch_scale: int = 1,
                 windows: int = 5, min_seconds: float = 1.0, steps: int | None = None) -> list[dict]:
    """Per model family, training images/s in each of SETTINGS; also compiled (`compile`) and, on a GPU, with the
    CUDA graph that `fit` would install (families with `cuda_graph`), both in the setting the build uses."""
    steps = steps or (20 if torch.device(device).type == "cuda" else 8)
    rows = []
    for name, (build, batch) in _families(profile, batch_scale).items():
        used = build()
        row = {"family": name, "batch": len(batch[0]), "uses channels_last": used.channels_last}
        runners = [_runner(build, batch, precision, cl, device=device) for precision, cl in SETTINGS]
        extra = []          # (column, runner)
        if compile:
            try:
                extra.append(("compiled", _runner(build, batch, resolve_precision("auto", device), used.channels_last,
                                                  compile=True, device=device)))
            except Exception as e:   # say which family does not compile, and time the others
                row["compiled"], row["compile_error"] = None, type(e).__name__
        if cuda_graphs.enabled(used, torch.device(device)):
            extra.append(("graphed", _runner(build, batch, resolve_precision("auto", device), used.channels_last,
                                             device=device, graph=True)))
        rates = _interleaved_rates([step for step, _ in runners + [r for _, r in extra]], len(batch[0]), steps,
                                   device, min_seconds=min_seconds, windows=windows)
        for setting, rate in zip(SETTINGS, rates):
            row[setting] = rate
        for (column, (_, first)), rate in zip(extra, rates[len(SETTINGS):]):
            row[column] = rate
            if column == "compiled":
                row["compile_s"] = first
        rows.append(row)
    return rows


def probe_disagreement(rows: list[dict], auto_precision: str) -> str | None:
    """A line for when the families just timed contradict what 'auto' resolved to on this CPU: the bf16 probe's
    answer is remembered per CPU model, so one taken while another process loaded the cores stays wrong (seen:
    1.15x on a CPU whose families run 1.4-1.8x faster in bf16, so every model trained in float32)."""
    faster = [r for r in rows if r[("bf16", r["uses channels_last"])] / r[("fp32", r["uses channels_last"])]
              >= precision.MIN_SPEEDUP]
    path = precision.probe_path()
    if auto_precision == "fp32" and len(faster) > len(rows) / 2:
        return (f"  note: bf16 ran >= {precision.MIN_SPEEDUP}x float32 for {len(faster)} of {len(rows)} families, yet "
                f"'auto' is fp32 by the remembered probe ({precision.cpu_bf16_speedup():.2f}x). A probe taken while "
                f"something else ran answers low: delete {path} to probe again (every model then trains in bf16, "
                f"a new cache entry).")
    if auto_precision == "bf16" and not faster and rows:
        return (f"  note: bf16 ran slower than {precision.MIN_SPEEDUP}x float32 for every family, yet 'auto' is bf16 "
                f"by the remembered probe ({precision.cpu_bf16_speedup():.2f}x): delete {path} to probe again.")
    return None


def _print_rows(rows: list[dict], compiled: bool, auto_precision: str, graphs: bool = False) -> None:
    for r in rows:
        base = r[("fp32", False)]
        cells = [f"{r[('fp32', False)]:8.0f}"] + [f"{r[k]:7.0f} ({r[k] / base:.2f}x)" for k in SETTINGS[1:]]
        if compiled and r["compiled"] is None:
            cells.append(f"{'fails: ' + r['compile_error']:>20s}")
        elif compiled:
            cells.append(f"{r['compiled']:7.0f} ({r['compiled'] / base:.2f}x, {r['compile_s']:.0f} s)")
        if graphs:   # against the eager step in the same setting
            eager = r[(auto_precision, r["uses channels_last"])]
            cells.append(f"{r['graphed']:7.0f} ({r['graphed'] / eager:.2f}x)" if "graphed" in r else f"{'-':>16s}")
        used = ("bf16" if auto_precision == "bf16" else "fp32") + ("+CL" if r["uses channels_last"] else "")
        print(f"  {r['family']:22s} {r['batch']:5d} " + " ".join(cells) + f"  {used}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="batches per epoch (default: a whole epoch)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--only", choices=["families", "data", "flow"], help="run one part only")
    parser.add_argument("--compile", action="store_true",
                        help="also time the used setting with each top-level module torch.compile'd (slow to compile)")
    parser.add_argument("--profile", default="cpu", help="whose model shapes and batch sizes (default cpu)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the model families and op rates run (default cpu)")
    parser.add_argument("--batch-scale", type=int, default=1,
                        help="model families also at this multiple of the profile's batch sizes")
    parser.add_argument("--threads", default="all,1",
                        help="CPU threads the model families run on, comma-separated ('all' = every thread); "
                             "default 'all,1': the build's lanes train on one thread each (README)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA device here", file=sys.stderr)
        return 1
    all_threads = torch.get_num_threads()
    try:
        thread_counts = list(dict.fromkeys(all_threads if t.strip() == "all" else int(t) for t in args.threads.split(",")))
    except ValueError:
        print(f"error: --threads takes numbers or 'all', comma-separated; got {args.threads!r}", file=sys.stderr)
        return 1
    if any(t < 1 for t in thread_counts):
        print(f"error: --threads must be at least 1; got {args.threads!r}", file=sys.stderr)
        return 1
    if args.device == "cuda":
        thread_counts = [all_threads]      # the GPU does the work; host threads do not change it
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU: {cpu_model()}"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {where}, profile {args.profile}")
    try:
        if args.only in (None, "families"):
            rates = op_rates(device=args.device)
            print("\n[machine] " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
            if args.device == "cpu":
                print(f"  bf16 probe (genlab.precision): {cpu_bf16_speedup():.2f}x float32 -> precision 'auto' = "
                      f"{resolve_precision('auto', 'cpu')}")
            for threads in thread_counts:
                torch.set_num_threads(threads)
                print(f"\n[model families, {threads} thread{'s' if threads > 1 else ''}] training images/s; "
                      "ratios against eager float32 NCHW")
                print(f"  {'family':22s} {'batch':>5s} {'fp32':>8s} {'fp32+CL':>14s} {'bf16':>14s} {'bf16+CL':>14s}"
                      + (f" {'compiled':>20s}" if args.compile else "")
                      + (f" {'graphed (x used)':>16s}" if args.device == "cuda" else "") + "  used")
                rows = family_bench(args.compile, args.profile, args.device)
                if args.batch_scale > 1:
                    rows += family_bench(args.compile, args.profile, args.device, args.batch_scale)
                auto = resolve_precision("auto", args.device)
                _print_rows(rows, args.compile, auto, graphs=args.device == "cuda")
                if args.device == "cpu" and (note := probe_disagreement(rows, auto)):
                    print(note)
            torch.set_num_threads(all_threads)
        if args.only in (None, "data"):
            print("\n[data pipeline] one epoch of the MNIST classifier (cpu profile), batch 128")
            results = classifier_bench(limit=args.limit, workers=args.workers)
            rates = {}
            for name, (seconds, n) in results.items():
                rates[name] = n / seconds
                print(f"  {name:45s} {n:6d} images in {seconds:6.1f} s  = {n / seconds:7.0f} images/s")
            fast, slow = list(rates.values())
            print(f"  speed-up of in-memory tensors over the DataLoader: {fast / slow:.2f}x")
        if args.only in (None, "flow"):
            peak = matmul_rate()
            r = flow_bench()
            print(f"\n[RealNVP, cpu profile, MNIST] {r['parameters']:,} parameters, batch {r['batch']}")
            print(f"  training        {r['train_img_s']:8.0f} images/s  ({r['step_s'] * 1000:.0f} ms per step)")
            print(f"  sampling        {r['sample_img_s']:8.0f} images/s")
            print(f"  FLOPs per training step (conv + matmul, forward + backward): {r['flops_per_step'] / 1e9:.2f} G")
            print(f"  achieved        {r['flop_rate'] / 1e9:8.1f} GFLOP/s = {r['flop_rate'] / peak:.0%} of the "
                  f"measured fp32 matmul rate ({peak / 1e9:.1f} GFLOP/s, 2048x2048)")
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
