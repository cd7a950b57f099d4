"""Build the reports: execute notebooks with papermill, export HTML and PDF,
write reports/index.html.

Each notebook is built in a staging folder and replaces its previous report
only when everything (execution, HTML, PDF) succeeded; a failure leaves the old
report in place and names the notebook and the cell that failed.

    python -m genlab.build --profile cpu
    python -m genlab.build --profile smoke --notebooks flows --no-pdf
    python -m genlab.build -p seed=1        # any parameter of the notebooks

On a CPU with two or more cores the notebooks run side by side in lanes (`--jobs`),
one thread each: a second thread speeds these small models up by 1.25-1.8x, so two
one-thread processes together train about 1.25x as many images per second as one
two-thread process (see ONE_THREAD_SLOWDOWN).

A build whose parameters change anything writes beside the default report, into
reports/runs/<name>/ (`--name`, or a name made from the parameters), and
reports/index.html lists every run with what it changed and its headline numbers.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import functools
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from genlab import lanes as lanes_module
from genlab.atomic import save_text
from genlab.config import NOTEBOOK_BUDGET, DEFAULT_PROFILE, PROFILES, apply_params, describe_changes, knob_names
from genlab.errors import GenlabError
from genlab.paths import REPO_ROOT
from genlab.prefill import PREFILLS, spread_over_notebook

NOTEBOOKS = tuple(NOTEBOOK_BUDGET)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
TITLES = {"flows": "Normalizing flows (RealNVP)",
          "autoencoders": "Autoencoders (AE, VAE, flow-posterior VAE, β-VAE)",
          "gans": "GANs (vanilla, conditional, feature matching, progressive growing)"}


# Minutes a cold build of each notebook took (README); used until a build of this profile has run here.
# cpu: measured in the lanes of a cold build on 2 AMD EPYC cores of CPU family 26 (bf16, one thread each,
# 2026-11-28, at 8de0c9f, where the GANs' steps had become ~1.2x faster: flows 49.1, GANs 49.6; 2026-11-27, at
# 9835e40: flows 47.2, autoencoders 11.1, GANs 55.2; ff36e12 took 45.8, 10.9 and 53.7), without the yardstick
# classifiers that train before the lanes (MNIST, Fashion-MNIST: 1.6 min on two threads), with the one that trains
# in its lane (CIFAR-10's, ~6 min of the GANs notebook; see `shared_datasets`). The autoencoders took 11.1 min at
# 9835e40, their last 3 on two threads handed on when the GANs lane ended (genlab.lanes): ~12 at one thread's
# speed; 13.2 on one thread, first in its lane, at bdce325. Slower CPUs take longer by a factor the build probes
# (`machine_slowdown`): CPU family 25 took 1.61x (flows 83.8, GANs 83.7, the autoencoders 10.4 + 10.0 in two lanes).
# gpu: one H200 (2026-11-27, at 80e992e), the three notebooks side by side on it: flows 10.4 (7.9 alone, earlier),
# autoencoders 3.7. The GANs, with their steps as CUDA graphs (one H200, 2026-11-28): 2.3 min for the MNIST and
# Fashion-MNIST parts, measured, and ~7.5 with CIFAR-10's classifier and ProGAN, estimated (see genlab.gan_budget);
# ~8 since the cGANs train 8 epochs instead of 4.
ESTIMATE_MIN = {"smoke": {"flows": 0.4, "autoencoders": 0.4, "gans": 0.5},
                "cpu": {"flows": 49.1, "autoencoders": 12.0, "gans": 49.6},
                "gpu": {"flows": 8, "autoencoders": 3.7, "gans": 8}}


# How much longer training takes on one thread than on two, measured in a cold cpu build on 2 AMD EPYC
# cores (bf16), lanes against the previous one-after-the-other build: RealNVP 1.65x per epoch, CIFAR-10
# classifier 1.83x, conv GAN 1.44x, MLP GAN 1.25x. (`make bench`'s short timings had flows at 1.21x:
# real epochs scale better with threads than the bench's 8 steps.) Two one-thread processes side by side
# each keep their one-thread speed, so two lanes still train about 2 / 1.6 = 1.25x the images per second.
ONE_THREAD_SLOWDOWN = 1.6
CPU_TABLES = ("smoke", "cpu")    # the rows of ESTIMATE_MIN measured on a CPU
TABLE_THREADS = 1   # ESTIMATE_MIN's cpu and smoke rows were measured with this many threads


# The cpu table's machine ran a 64-channel 3x3 convolution at this many GFLOP/s on two threads in bf16 (`make
# bench`, CPU family 26). Elsewhere the table is scaled by (that rate / this CPU's) ** SPEED_EXPONENT: the build is
# not all convolutions, so its time grows more slowly than the conv rate falls. Measured: an older AMD EPYC at 445
# GFLOP/s took ~1.65x as long (101 min cold with earlier budgets, against ~61), and one of CPU family 25 (model 17)
# at 464 took 1.61x (97.0 min without installs at b88984d, 2026-12-06, against 60.4 at cad7186): both fit 0.58.
REFERENCE_CONV_GFLOPS = 1060.0
SPEED_EXPONENT = 0.58


@functools.lru_cache(maxsize=None)
def machine_slowdown() -> tuple[float, float]:
    """(how many times longer than the cpu table this CPU is expected to build, its conv rate in GFLOP/s): a
    quarter-second probe of the 3x3 convolution `make bench` times, on two threads (the lanes' two cores), in the
    precision training will use here."""
    import torch

    from genlab.bench import conv3x3_case
    from genlab.precision import DTYPES, resolve

    conv, flops = conv3x3_case(DTYPES[resolve("auto", "cpu")])
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        best = float("inf")
        for _ in range(12):      # the best of a few: another process may take the cores for a moment
            t0 = time.perf_counter()
            conv()
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    rate = flops / best / 1e9
    return max(1.0, (REFERENCE_CONV_GFLOPS / rate) ** SPEED_EXPONENT), rate


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def default_jobs() -> int:
    """Lanes of notebooks to run side by side: two on a CPU with two or more cores; with a GPU, one per
    notebook where each lane gets at least two CPU threads to launch its kernels from."""
    import torch

    cores = os.cpu_count() or 1
    if torch.cuda.is_available():
        # The GPU mostly waits on Python launching small kernels (README), so notebooks side by side share it
        # well: on one H200 (2026-11-27, 16 cores) the three gpu notebooks side by side took 12.9 min in all, with
        # the GPU 22-38 % busy; the flows notebook alone had taken 7.9 of them.
        return max(1, min(len(NOTEBOOKS), cores // 2))
    return 2 if cores >= 2 else 1


def gpu_profile_warning(profile: str, cuda: bool) -> str | None:
    """The line a build prints when the gpu profile is asked for where no GPU trains: its budgets are sized by a
    GPU's step times, and a CPU would take many hours over them."""
    if profile != "gpu" or cuda:
        return None
    return ("warning: profile gpu, but torch sees no CUDA GPU here: the gpu budgets are sized by a GPU's step "
            "times and would take many hours on this CPU (and the time estimate below assumes a GPU); "
            "`make report` uses the cpu profile, sized for two CPU cores")


def lane_threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def _thread_factor(measured_threads: int, threads: int) -> float:
    """Time at `threads` over time at `measured_threads` (1 when equal)."""
    if measured_threads == threads:
        return 1.0
    return ONE_THREAD_SLOWDOWN if threads < measured_threads else 1 / ONE_THREAD_SLOWDOWN


# A lane's expected seconds per notebook, set by the build that planned the lanes: by the time a lane
# starts, the yardsticks are in the cache, so the lane itself could no longer tell a cold build from a warm one.
ESTIMATES_ENV = "GENLAB_LANE_ESTIMATES"
# A folder where a lane marks each notebook it has finished: the build trains ahead only for those still to come.
BUILT_DIR_ENV = "GENLAB_LANE_BUILT_DIR"


def estimates(reports: Path, profile: str, notebooks: list[str], threads: int | None = None,
              parameters_changed: bool = False) -> tuple[dict[str, float], str]:
    """Seconds each notebook is expected to take on `threads` CPU threads (default: this machine's
    cores), and where the numbers come from: the last build of the same profile here (its measured
    wall time), else - or when the model cache is empty, or the code of the notebook's models has changed
    since that build, so that they train again - the profile's table of cold times. A lane takes the
    numbers its parent build planned with. `parameters_changed`: the build's parameters change the
    profile's budget, which the table's times are for (the source says so)."""
    from genlab.cache import notebook_model_code
    from genlab.paths import cache_dir

    planned = json.loads(os.environ.get(ESTIMATES_ENV) or "{}")
    if notebooks and all(name in planned for name in notebooks):
        return {name: float(planned[name]) for name in notebooks}, "the plan of the build that started this lane"
    threads = threads or os.cpu_count() or 1
    cold = not any((cache_dir() / "runs").glob("*"))
    out, measured, changed = {}, 0, []
    slowdown = None      # probed only when the table is used
    for name in notebooks:
        meta, _ = _read_meta(reports / f"{name}.json") if (reports / f"{name}.json").exists() else (None, None)
        # A build from before the models' code changed (a warm one took a minute; now everything retrains).
        code = notebook_model_code(name)
        stale = bool(meta) and meta.get("model_code", code) != code
        if stale:
            changed.append(name)
        if meta and meta["profile"] == profile and not cold and not stale:
            out[name] = float(meta["wall_time_s"]) * _thread_factor(int(meta.get("threads", threads)), threads)
            measured += 1
        else:
            if slowdown is None:
                slowdown = machine_slowdown() if profile in CPU_TABLES and not _cuda() else (1.0, None)
            out[name] = (60.0 * ESTIMATE_MIN.get(profile, {}).get(name, 10) * _thread_factor(TABLE_THREADS, threads)
                         * slowdown[0])
    source = ("the last build here" if measured == len(notebooks) else
              "the profile's measured cold times" if not measured else "the last build and the profile's table")
    if slowdown and slowdown[0] > 1.0:
        source += (f", x{slowdown[0]:.2f} for this CPU (3x3 convolutions at {slowdown[1]:.0f} GFLOP/s against "
                   f"{REFERENCE_CONV_GFLOPS:.0f} where the table was measured)")
    if changed:
        source += f"; the code of the {', '.join(changed)} models changed since the last build"
    if parameters_changed and measured < len(notebooks):
        # `make report ARGS='-p progan_steps=1,2'` takes a minute, not the table's hour.
        source += "; the table's times are for the profile's own parameters, which this run changes"
    return out, source


def plan_lanes(expected: dict[str, float], jobs: int) -> list[list[str]]:
    """The notebooks split over at most `jobs` lanes: the longest first, each onto the lane with the
    least expected work so far. Within a lane that runs beside others, the shortest notebook comes first:
    the lane's last notebook is the one still running when the other lanes end and hand it their threads
    (genlab.lanes), and a long one makes the most of them. In the cold cpu build of 2026-11-28 at 8de0c9f
    (2 AMD EPYC cores of family 26) the GANs lane ended 8.5 min before the flows + autoencoders lane, whose
    autoencoders, last, then ran on two threads (8.8 min; 13.2 on one, first in the lane, at bdce325). A single
    lane keeps the order the notebooks were given in."""
    lanes: list[list[str]] = [[] for _ in range(max(1, jobs))]
    load = [0.0] * len(lanes)
    for name in sorted(expected, key=lambda n: -expected[n]):
        i = load.index(min(load))
        lanes[i].append(name)
        load[i] += expected[name]
    lanes = [lane for lane in lanes if lane]
    order = list(expected)
    if len(lanes) == 1:
        return [sorted(lanes[0], key=order.index)]
    return [sorted(lane, key=lambda n: (expected[n], order.index(n))) for lane in lanes]


def prepare_yardsticks(datasets: list[str], profile: str) -> None:
    """Train (or load) the yardstick classifiers of `datasets` and their FID reference statistics and
    floor, so that no two lanes train the same classifier at once."""
    from genlab.metrics import yardstick

    if not datasets:
        return
    folder = Path(tempfile.mkdtemp(prefix="genlab-yardsticks-"))
    try:
        with printing_progress("yardsticks", folder / "progress.jsonl", None) as progress:
            for dataset in datasets:
                t0 = time.perf_counter()
                print(f"[genlab] yardstick {dataset} (profile {profile}) ...", file=sys.stderr, flush=True)
                yardstick(dataset, profile).fid_floor
                progress.flush()
                print(f"[genlab] yardstick {dataset}: ready in {(time.perf_counter() - t0) / 60:.1f} min",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pdf_available() -> bool:
    return shutil.which("xelatex") is not None and shutil.which("pandoc") is not None


def parse_params(pairs: list[str]) -> dict:
    """['lr=0.001', 'name=foo'] -> {'lr': 0.001, 'name': 'foo'} (Python literals or strings)."""
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise GenlabError(f"parameter {pair!r} must look like name=value")
        k, v = pair.split("=", 1)
        try:
            params[k.strip()] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k.strip()] = v
    return params


def papermill_params(params: dict) -> dict:
    """Parameters as papermill can write them into the notebook: it writes a list as a list but a tuple as
    the string of its repr, which the notebook then cannot read (`-p epochs=5,8` failed in the notebook
    with "must be a whole number, got '(5'")."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def did_you_mean(unknown, valid) -> str:
    """' (did you mean x?)' naming, for each unknown name, the valid ones closest to it (difflib's ratio >= 0.6
    and within 0.1 of the best: 'epochs' for the gans notebook is as close to conv_epochs as to cgan_epochs), or ''.
    The command line's messages about a misspelt parameter, notebook or profile carry it: the list of valid names
    that follows can be long (the gans notebook takes 30 parameters). It lives here, not beside the messages of
    genlab.config: the cache fingerprints the code every model and measurement rests on, whole modules where they
    take a name from one (genlab.cache), so an edit to genlab.errors retrains the generative models and one to
    genlab.config recomputes the measurements; this module counts for neither."""
    import difflib

    valid = [str(v) for v in valid]
    guesses = []
    for name in ([unknown] if isinstance(unknown, str) else unknown):
        scored = sorted(((difflib.SequenceMatcher(None, str(name), v).ratio(), v) for v in valid), reverse=True)
        best = scored[0][0] if scored else 0.0
        guesses += [v for r, v in scored[:3] if r >= 0.6 and r >= best - 0.1 and v not in guesses]
    return f" (did you mean {' or '.join(guesses)}?)" if guesses else ""


def check_params(notebook: Path, params: dict, profile: str = DEFAULT_PROFILE) -> dict:
    """Every parameter must be one the notebook takes, of the right type and range (the
    same check the notebook's Report makes). Returns the parameters that change something."""
    if not notebook.exists():
        shown = notebook.relative_to(REPO_ROOT) if notebook.is_relative_to(REPO_ROOT) else notebook
        raise GenlabError(f"notebook {notebook} is missing; restore it with git checkout {shown}")
    if notebook.stem not in NOTEBOOK_BUDGET:   # a notebook of the tests: its parameters cell decides
        import papermill

        known = papermill.inspect_notebook(str(notebook))
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise GenlabError(f"unknown parameter(s) {', '.join(unknown)} for {notebook.name}"
                              f"{did_you_mean(unknown, known)}; valid: {', '.join(sorted(known))}")
        return dict(params)
    known = ["profile", *knob_names(notebook.stem)]
    unknown = sorted(set(params) - set(known))
    if unknown:   # apply_params says the same, without the guess
        raise GenlabError(f"unknown parameter(s) {', '.join(unknown)} for {notebook.stem}"
                          f"{did_you_mean(unknown, known)}; valid: {', '.join(known)}")
    return apply_params(profile, notebook.stem, params)[1]


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._,=+-]{0,79}")


def needed_datasets(notebooks: list[str]) -> list[str]:
    """The datasets the notebooks read (the yardsticks and the binarised-MNIST sections use every one
    they name, the GANs add CIFAR-10)."""
    names = ["mnist", "fashion_mnist"]
    return names + (["cifar10"] if "gans" in notebooks else [])


def shared_datasets(lanes: list[list[str]]) -> list[str]:
    """The datasets whose yardstick classifier more than one lane measures with. Those train before the
    lanes start, with every thread, or two lanes would train the same classifier side by side; one that
    a single lane needs trains in that lane, beside the other lanes' work. (CIFAR-10's, in the GANs lane:
    7.6 min on two threads before the lanes, about 15 min on one thread in the lane; measured in a cold
    build on 2 AMD EPYC cores, the GANs lane took 92.1 min and the flows + autoencoders lane 93.9.)"""
    needed = [d for lane in lanes for d in needed_datasets(lane)]
    return [d for d in dict.fromkeys(needed) if needed.count(d) > 1]


def run_name(name: str | None, changed: dict) -> str | None:
    """The folder name of a run: the one given, or one made from what changed (None: the default report)."""
    if name is None:
        if not changed:
            return None
        name = describe_changes(changed).replace(", ", "_").replace(" ", "")
        name = re.sub(r"[^A-Za-z0-9._,=+-]", "-", name)[:80]
    if not RUN_NAME.fullmatch(name) or name in ("default", "runs", "failed"):
        raise GenlabError(f"run name {name!r} must be 1-80 letters, digits or ._,=+- (and not default, runs "
                          f"or failed), e.g. --name wide")
    return name


def _replace_path(new: Path, dest: Path) -> None:
    """Move `new` onto `dest` (file or folder), so that dest is never missing a good copy for long."""
    if new.is_dir():
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, dest)


def _export(executed: Path, out_dir: Path, name: str, pdf: bool) -> None:
    import nbformat
    from nbconvert import HTMLExporter, PDFExporter

    nb = nbformat.read(executed, as_version=4)
    nb.metadata["title"] = f"genlab: {TITLES[name]}"
    body, _ = HTMLExporter().from_notebook_node(nb)
    save_text(body, out_dir / f"{name}.html")
    if pdf:
        try:
            exporter = PDFExporter(template_name="genlab_latex",
                                   extra_template_basedirs=[str(Path(__file__).parent / "templates")])
            body, _ = exporter.from_notebook_node(nb)
        except Exception as e:  # nbconvert's LaTeX errors are long; the first line says enough
            raise GenlabError(f"{name}: PDF export failed ({str(e).strip().splitlines()[0][:200]}); "
                              f"HTML was fine - rerun with --no-pdf to publish without PDF") from e
        (out_dir / f"{name}.pdf").write_bytes(body)


def remove_stale_staging(reports: Path) -> list[Path]:
    """Remove the staging folders (`.staging-NAME-PID`) of builders that no longer run - killed with SIGKILL, or
    the machine went down - and return them; a folder whose process still runs (another lane) is kept."""
    removed = []
    for folder in reports.glob(".staging-*-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _process_runs(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def build_notebook(name: str, profile: str, params: dict, reports: Path, pdf: bool,
                   run: str = "default", estimate_s: float | None = None) -> float:
    """Execute and export one notebook, then publish it; returns its wall time."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOK_DIR / f"{name}.ipynb"   # main() has checked it exists and takes `params`
    remove_stale_staging(reports)
    staging = reports / f".staging-{name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # Kernel sockets: a short private folder (Unix socket paths are limited to ~100 characters).
    sockets = Path(tempfile.mkdtemp(prefix="genlab-kernel-"))
    env_before = dict(os.environ)
    # The kernel inherits these: outputs go to staging, and 'python' in the kernel spec resolves to
    # this environment's interpreter (printing_progress below keeps progress bars out of the report).
    os.environ["GENLAB_REPORT_DIR"] = str(staging)
    os.environ["GENLAB_RUN_NAME"] = run
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    t0 = time.perf_counter()
    try:
        with printing_progress(name, staging / "progress.jsonl", estimate_s):
            executed = staging / f"{name}.ipynb"
            try:
                papermill.execute_notebook(
                    str(source), str(executed), parameters={"profile": profile, **papermill_params(params)},
                    kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False,
                    request_save_on_cell_execute=False,
                    kernel_manager_class=_ipc_kernel_manager(sockets, _KERNEL_MANAGERS),
                )
            except PapermillExecutionError as e:
                if e.ename == "OSError" and "No space left" in str(e.evalue):
                    raise OSError(errno.ENOSPC, "No space left on device") from None
                failed = reports / "failed" / f"{name}.ipynb"
                failed.parent.mkdir(parents=True, exist_ok=True)
                if executed.exists():
                    shutil.copy(executed, failed)
                shown = failed.relative_to(REPO_ROOT) if failed.is_relative_to(REPO_ROOT) else failed
                last = str(e.evalue).strip().splitlines()
                raise GenlabError(
                    f"notebook {name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                    f"{e.ename}: {last[-1] if last else ''}; the previous report is kept; the failed run "
                    f"is in {shown}"
                ) from None
            _export(executed, staging, name, pdf)
            # Publish: notebook, HTML, PDF, headline numbers, samples.
            for suffix in (".ipynb", ".html", ".pdf", ".json"):
                if (staging / f"{name}{suffix}").exists():
                    _replace_path(staging / f"{name}{suffix}", reports / f"{name}{suffix}")
            if not pdf:
                # An older PDF would no longer match the HTML beside it.
                (reports / f"{name}.pdf").unlink(missing_ok=True)
            if (staging / "samples" / name).exists():
                (reports / "samples").mkdir(exist_ok=True)
                _replace_path(staging / "samples" / name, reports / "samples" / name)
            (reports / "failed" / f"{name}.ipynb").unlink(missing_ok=True)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        need = max(200, 2 * _report_size(reports, name) // 2**20)
        raise GenlabError(f"disk full while building {name} in {reports}: free at least {need} MB there "
                          f"(df -h {reports}) and rebuild; the previous report is kept") from None
    finally:
        _stop_kernels()
        os.environ.clear()
        os.environ.update(env_before)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
    return time.perf_counter() - t0


# The kernel managers of the notebook being built: a build that is stopped kills their kernels first thing.
_KERNEL_MANAGERS: list = []


def _stop_kernels() -> None:
    """Kill the kernels of `_KERNEL_MANAGERS` that still run, and forget them all. Papermill shuts its kernel down
    when the notebook has run or failed; a build stopped (SIGTERM, Ctrl-C) in the middle of a cell also asked its
    kernel to shut down, which then printed ipykernel's tracebacks into the build's output (its reply to the cell
    went to a socket its shutdown had closed). Killed at once, it prints nothing."""
    _kill_kernels()
    while _KERNEL_MANAGERS:
        process = _kernel_process(_KERNEL_MANAGERS.pop())
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


def _kill_kernels() -> None:
    """SIGKILL to every kernel of `_KERNEL_MANAGERS` that still runs, waiting for nothing: the signal handlers call
    this, and an exception or a wait there (the interrupted code may hold the process's wait lock) could leave the
    build hanging in the event loop that the signal interrupted."""
    for manager in _KERNEL_MANAGERS:
        process = _kernel_process(manager)
        if process is not None and process.returncode is None:  # not yet reaped: its pid is still its own
            with contextlib.suppress(OSError):
                process.kill()


def _kernel_process(manager):
    return getattr(getattr(manager, "provisioner", None), "process", None)


def _report_size(reports: Path, name: str) -> int:
    """Bytes of the published report of `name` (files and samples), to size a disk-space request."""
    paths = [reports / f"{name}{ext}" for ext in (".ipynb", ".html", ".pdf", ".json")]
    paths += list((reports / "samples" / name).glob("**/*"))
    return sum(p.stat().st_size for p in paths if p.is_file())


def _ipc_kernel_manager(folder: Path, managers: list | None = None):
    """A kernel manager class that talks to the kernel over Unix sockets in `folder` instead of
    unencrypted TCP (which the kernel warns about); each instance is appended to `managers`
    (`_KERNEL_MANAGERS` in a build: see `_stop_kernels`)."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=str(folder / "k"), **kwargs)
            if managers is not None:
                managers.append(self)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client sends SIGINT before it asks a kernel to shut down. Papermill shuts the kernel down
            # when the notebook has run (or failed), and a SIGINT that lands while the kernel handles a message
            # makes ipykernel print "ERROR | KeyboardInterrupt caught in kernel." into the build's output after
            # a notebook that ran fine. The shutdown request alone stops the kernel (jupyter_client kills one
            # that does not stop).
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return IPCKernelManager


class ProgressPrinter:
    """Prints the running notebook's progress log (one JSON line per finished epoch, written by
    `genlab.train.fit`) to stderr as it grows, whether or not stderr is a terminal."""

    def __init__(self, notebook: str, log: Path, estimate_s: float | None):
        self.notebook, self.log, self.estimate_s = notebook, log, estimate_s
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._offset = 0
        self._lock = threading.Lock()   # the printing thread and stop() / flush() share the offset

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._print_new()

    def flush(self) -> None:
        """Print what the log holds so far (the printer keeps running)."""
        self._print_new()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._print_new()

    def _print_new(self) -> None:
        with self._lock:
            self._print_new_unlocked()

    def _print_new_unlocked(self) -> None:
        try:
            with open(self.log) as f:
                f.seek(self._offset)
                lines = f.readlines()
                if lines and not lines[-1].endswith("\n"):
                    lines.pop()       # half-written: read it next time
                self._offset += sum(len(line) for line in lines)
        except FileNotFoundError:
            return
        for line in lines:
            try:
                print(self.format(json.loads(line)), file=sys.stderr, flush=True)
            except ValueError:
                continue

    def format(self, event: dict) -> str:
        elapsed = time.perf_counter() - self.started
        where = f"[genlab] {self.notebook} {elapsed / 60:.1f} min | {event.get('model', '?')}"
        if event.get("cached"):
            return f"{where}: loaded from the cache ({event.get('epochs', '?')} epochs), nothing to train"
        if event.get("waiting"):
            return f"{where}: another process is training it; waiting to load it"
        metric = (f" | {event['metric']} {event['value']:.4g}" if event.get("metric") else "")
        left = ""
        if self.estimate_s:
            remaining = self.estimate_s - elapsed
            left = (f" | about {remaining / 60:.1f} min left of ~{self.estimate_s / 60:.1f}" if remaining > 0
                    else f" | past the ~{self.estimate_s / 60:.1f} min estimate")
        return f"{where} epoch {event['epoch']}/{event['epochs']}{metric} ({event['seconds']:.0f} s){left}"


@contextlib.contextmanager
def printing_progress(label: str, log: Path, estimate_s: float | None):
    """While inside: training in this process and its kernels writes one JSON line per epoch to `log`
    instead of drawing progress bars, and a ProgressPrinter prints each line to stderr. The two
    environment variables are restored on the way out."""
    before = {k: os.environ.get(k) for k in ("GENLAB_PROGRESS", "GENLAB_PROGRESS_LOG")}
    os.environ["GENLAB_PROGRESS"] = "0"
    os.environ["GENLAB_PROGRESS_LOG"] = str(log)
    printer = ProgressPrinter(label, log, estimate_s)
    printer.start()
    try:
        yield printer
    finally:
        printer.stop()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _runs(reports: Path) -> list[tuple[str, Path]]:
    """(run name, folder) of every built run: the default report first, then reports/runs/*."""
    runs = [("default", reports)]
    if (reports / "runs").is_dir():
        runs += sorted((d.name, d) for d in (reports / "runs").iterdir() if d.is_dir())
    return runs


def _read_meta(path: Path) -> tuple[dict | None, str | None]:
    """A notebook's headline JSON, or (None, why it was skipped)."""
    try:
        meta = json.loads(path.read_text())
        for key in ("profile", "started_at", "wall_time_s", "headlines"):
            meta[key]
        return meta, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{path} is unreadable ({type(e).__name__}); skipped - rebuild that notebook to replace it"


def write_index(reports: Path) -> tuple[Path, list[str]]:
    """reports/index.html: every built run (the default report and reports/runs/*) with its
    parameters and links, and one table of all headline numbers with a column per run, read
    from the <notebook>.json files that the notebooks wrote. Returns (path, notes on skipped files)."""
    notes, sections, values, columns = [], [], {}, []
    for run, folder in _runs(reports):
        prefix = "" if run == "default" else f"runs/{run}/"
        items = []
        for name in NOTEBOOKS:
            meta_path = folder / f"{name}.json"
            if not meta_path.exists():
                continue
            meta, note = _read_meta(meta_path)
            if meta is None:
                notes.append(note)
                items.append(f"<li>{html.escape(TITLES[name])}: <i>{html.escape(note)}</i></li>")
                continue
            links = " · ".join(f'<a href="{prefix}{name}{ext}">{label}</a>' for ext, label in
                               ((".html", "HTML"), (".pdf", "PDF"), (".ipynb", "notebook"))
                               if (folder / f"{name}{ext}").exists())
            items.append(
                f"<li><b>{html.escape(TITLES[name])}</b>: {links} "
                f"<span class=meta>(profile <code>{html.escape(str(meta['profile']))}</code>, changed: "
                f"<code>{html.escape(str(meta.get('changed', 'nothing')))}</code>, "
                f"{html.escape(str(meta.get('device', '')))}, built {html.escape(str(meta['started_at']))}, "
                f"{float(meta['wall_time_s']) / 60:.1f} min)</span></li>")
            column = f"{run} ({meta['profile']})"
            if column not in columns:
                columns.append(column)
            for h in meta["headlines"]:
                key = (name, h["dataset"], h["metric"], h["unit"])
                values.setdefault(key, {})[column] = h["value"]
        if items:
            sections.append(f"<h3>run <code>{html.escape(run)}</code></h3><ul>{''.join(items)}</ul>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        f"<tr><td>{nb}</td><td>{html.escape(ds)}</td><td>{html.escape(metric)}</td><td>{html.escape(unit)}</td>"
        + "".join(f"<td class=num>{_fmt(v[c]) if c in v else ''}</td>" for c in columns) + "</tr>"
        for (nb, ds, metric, unit), v in values.items())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genlab reports</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .35rem .6rem; text-align: left; }}
th {{ background: #f4f4f4; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.meta {{ color: #666; font-size: .9em; }}
</style></head><body>
<h1>genlab reports</h1>
<p>Deep generative models trained and measured on MNIST, Fashion-MNIST and CIFAR-10. Every number
below was written by the notebook run that produced it (<code>reports/&lt;notebook&gt;.json</code>;
runs with other parameters in <code>reports/runs/&lt;name&gt;/</code>).</p>
{''.join(sections) or '<p>No report built yet: <code>make report</code>.</p>'}
<h2>Headline numbers, one column per run</h2>
<table><thead><tr><th>notebook</th><th>dataset</th><th>metric</th><th>unit</th>{head}</tr></thead>
<tbody>{rows or '<tr><td colspan=4>no report built yet</td></tr>'}</tbody></table>
</body></html>
"""
    path = reports / "index.html"
    save_text(page, path)
    return path, notes


def _exit_on_sigterm(signum, frame):
    _kill_kernels()
    if not os.environ.get(BUILT_DIR_ENV):    # a lane's builder stops with the build that started it, quietly
        print("[genlab] stopped (SIGTERM): the notebooks built so far are published, the others keep their previous "
              "report; trained epochs are in the cache, where the next make report resumes",
              file=sys.stderr, flush=True)
    raise SystemExit(128 + signum)


def _interrupt(signum, frame):
    _kill_kernels()
    raise KeyboardInterrupt


def stop_with_parent() -> None:
    """In a lane's builder or train-ahead helper: stop (SIGTERM to itself, so that it cleans up) once the build that
    started it is gone. A build killed with SIGKILL cannot stop its lanes, which trained on and published."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        print("[genlab] the build that started this lane is gone: stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="genlab-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (kill, a timeout, a CI runner that stops) ends Python without running any `finally`: the staging
    # folder (29 MB of a GANs build), the kernel's socket folder and, in lanes, the lanes' own builders, still
    # training, would be left behind. Raised as SystemExit, they are cleaned up on the way out. On SIGTERM and on
    # Ctrl-C the running kernel is killed first (`_kill_kernels`; `_stop_kernels` reaps it on the way out), and
    # the build ends with one line.
    # (A signal the caller ignores stays ignored: `make report &` from a script ignores Ctrl-C's SIGINT.)
    handlers = {signal.SIGTERM: _exit_on_sigterm, signal.SIGINT: _interrupt}
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        previous = {sig: signal.getsignal(sig) for sig in handlers if signal.getsignal(sig) is not signal.SIG_IGN}
        for sig in previous:
            signal.signal(sig, handlers[sig])
        if os.environ.get(BUILT_DIR_ENV):
            stop_with_parent()
    try:
        return _main(argv)
    except KeyboardInterrupt:
        if not os.environ.get(BUILT_DIR_ENV):
            print("[genlab] stopped (Ctrl-C): the notebooks built so far are published, the others keep their previous "
                  "report; trained epochs are in the cache, where the next make report resumes",
                  file=sys.stderr, flush=True)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genlab.build",
        description="Execute genlab's notebooks and build HTML/PDF reports into reports/.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"compute profile: {', '.join(PROFILES)} (default {DEFAULT_PROFILE})")
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS), metavar="NAME",
                        help=f"which notebooks to build (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter, e.g. -p seed=1 (repeatable)")
    parser.add_argument("--name", default=None,
                        help="build into reports/runs/NAME/ beside the default report (default: the default "
                             "report when no parameter changes anything, else a name made from the parameters)")
    parser.add_argument("--no-pdf", action="store_true", help="build HTML only")
    parser.add_argument("--reports", type=Path, default=REPO_ROOT / "reports", help="output folder")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="notebooks to run side by side, each on cores/N threads (default: 2 on a CPU "
                             "with 2 or more cores; with a GPU, one per notebook, at least 2 threads each)")
    # Used by the lanes the builder starts itself:
    parser.add_argument("--no-index", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        if args.profile not in PROFILES:
            raise GenlabError(f"unknown profile {args.profile!r}{did_you_mean(args.profile, PROFILES)}; choose one of "
                              f"{', '.join(PROFILES)} (e.g. make report PROFILE=smoke)")
        params = parse_params(args.param)
        if "profile" in params:
            raise GenlabError("give the profile with --profile (or make report PROFILE=...), not -p")
        unknown = [n for n in args.notebooks if n not in NOTEBOOKS]
        if unknown:
            raise GenlabError(f"unknown notebook(s) {', '.join(unknown)}{did_you_mean(unknown, NOTEBOOKS)}; "
                              f"known: {', '.join(NOTEBOOKS)}")
        changed = {}
        for name in args.notebooks:
            changed.update(check_params(NOTEBOOK_DIR / f"{name}.ipynb", params, args.profile))
        run = run_name(args.name, changed)
        # Every dataset the notebooks read, before any of them runs: found and verified, or
        # downloaded when it is nowhere and the machine is online.
        from genlab.download import ensure

        for dataset in needed_datasets(args.notebooks):
            ensure(dataset)
    except GenlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    pdf = not args.no_pdf
    if pdf and not pdf_available():
        print("note: xelatex or pandoc not found, building HTML only; for PDF install Debian's "
              "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc fonts-dejavu-core "
              "(make pdf-deps does it)", file=sys.stderr)
        pdf = False
    if not args.no_index:     # once per build, not once per lane
        import torch

        warning = gpu_profile_warning(args.profile, torch.cuda.is_available())
        if warning:
            print(warning, file=sys.stderr, flush=True)
    out = args.reports if run is None else args.reports / "runs" / run
    out.mkdir(parents=True, exist_ok=True)
    jobs = min(len(args.notebooks), args.jobs if args.jobs is not None else default_jobs())
    if jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    if jobs > 1:
        return build_in_lanes(args, jobs, out, pdf, parameters_changed=bool(changed))
    # A lane's builder runs on the threads its parent gave it (OMP_NUM_THREADS), the kernels too.
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    expected, source = estimates(out, args.profile, args.notebooks, threads=threads,
                                 parameters_changed=bool(changed))
    print(f"[genlab] expected build time: about {sum(expected.values()) / 60:.1f} min ("
          + ", ".join(f"{n} ~{s / 60:.1f}" for n, s in expected.items())
          + f"; from {source}; less when trained models are in the cache)", file=sys.stderr, flush=True)
    failures = 0
    for name in args.notebooks:
        print(f"[genlab] building {name} (profile {args.profile}"
              + (f", run {run}: {describe_changes(changed)}" if run else "") + ") ...", file=sys.stderr, flush=True)
        try:
            seconds = build_notebook(name, args.profile, params, out, pdf, run or "default", expected[name])
            print(f"[genlab] {name}: done in {seconds / 60:.1f} min -> {out / name}.html"
                  + (f", {out / name}.pdf" if pdf else ""), file=sys.stderr, flush=True)
        except GenlabError as e:
            failures += 1
            print(f"error: {e}", file=sys.stderr, flush=True)
        if os.environ.get(BUILT_DIR_ENV):    # in a lane: the build no longer trains ahead for this notebook
            Path(os.environ[BUILT_DIR_ENV], name).touch()
    if not args.no_index:
        _write_index_and_say(args.reports)
    return 1 if failures else 0


def _write_index_and_say(reports: Path) -> None:
    index, notes = write_index(reports)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"[genlab] index: {index}", file=sys.stderr)


def ahead_at_start(lanes: list[list[str]], expected: dict[str, float]) -> tuple[int, str] | None:
    """(lane, notebook): the lane that expects the least work first trains ahead for the first notebook of the
    lane that expects the most, when that notebook's runs are spread over it (genlab.prefill); None otherwise.
    In the cold cpu build at 8cc0dbf the GANs lane ended 9.4 min before the autoencoders + flows lane."""
    if len(lanes) < 2:
        return None
    load = [sum(expected[n] for n in lane) for lane in lanes]
    shortest, longest = load.index(min(load)), load.index(max(load))
    first = lanes[longest][0]
    if shortest == longest or not spread_over_notebook(first):
        return None
    return shortest, first


def to_train_ahead(lanes: list[list[str]], finished: set[int], candidates: list[str], built: set[str]) -> str | None:
    """Which notebook a lane that has ended should train ahead for (genlab.prefill): the first of `candidates`
    that a lane still running (its index not in `finished`) has yet to build (not in `built`); None when there
    is none or no lane has ended yet."""
    if not finished or len(finished) == len(lanes):
        return None
    running = {n for i, lane in enumerate(lanes) if i not in finished for n in lane}
    return next((n for n in candidates if n in running and n not in built), None)


def build_in_lanes(args, jobs: int, out: Path, pdf: bool, parameters_changed: bool = False) -> int:
    """Run the notebooks in `jobs` lanes side by side, each lane a builder process of its own on
    cores/jobs threads; the yardstick classifiers that several lanes use are trained first, with every
    thread. Returns 1 when any notebook failed (the others are published)."""
    import subprocess

    threads = lane_threads(jobs)
    expected, source = estimates(out, args.profile, args.notebooks, threads=threads,
                                 parameters_changed=parameters_changed)
    lanes = plan_lanes(expected, jobs)
    print(f"[genlab] {len(lanes)} lanes side by side, {threads} thread(s) each: "
          + " | ".join(", ".join(lane) for lane in lanes)
          + f"; expected about {max(sum(expected[n] for n in lane) for lane in lanes) / 60:.1f} min after the "
            f"yardstick classifiers (from {source}; less when trained models are in the cache)",
          file=sys.stderr, flush=True)
    # Every notebook measures with the yardsticks from its first section on: train the ones that several
    # lanes use once, with every thread, before the lanes start.
    prepare_yardsticks(shared_datasets(lanes), args.profile)
    # When a lane ends, the lanes still running share its threads (genlab.lanes).
    threads_file = Path(tempfile.mkdtemp(prefix="genlab-lanes-")) / "threads"
    lanes_module.offer(threads_file, threads)
    built_dir = threads_file.parent / "built"     # a lane marks each notebook it has finished here
    built_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           ESTIMATES_ENV: json.dumps(expected), lanes_module.THREADS_FILE_ENV: str(threads_file),
           BUILT_DIR_ENV: str(built_dir)}

    params = [x for p in args.param for x in ("-p", p)]

    def prefill_command(notebook: str) -> list[str]:
        return [sys.executable, "-m", "genlab.prefill", "--profile", args.profile, "--notebook", notebook] + params

    def say_prefill_stopped(code: int) -> None:
        print(f"note: training ahead for another lane stopped (exit code {code}); that lane's notebook trains "
              "what is left itself", file=sys.stderr, flush=True)

    # Each lane's commands, one after the other: its builder, after training ahead for another lane at the
    # start when it expects much less work (genlab.prefill).
    commands = []
    for lane in lanes:
        cmd = [sys.executable, "-m", "genlab.build", "--profile", args.profile, "--notebooks", *lane,
               "--jobs", "1", "--no-index", "--reports", str(args.reports)]
        cmd += params
        cmd += (["--name", args.name] if args.name else []) + ([] if pdf else ["--no-pdf"])
        commands.append([cmd])
    start = ahead_at_start(lanes, expected)
    if start is not None:
        commands[start[0]].insert(0, prefill_command(start[1]))
    procs = [subprocess.Popen(cmds.pop(0), env=env) for cmds in commands]
    codes: dict[int, int] = {}
    # When a lane ends, it first trains ahead what the notebooks of the lanes still running will load, on its
    # own threads; then the lanes still running share them.
    ahead = [n for lane in lanes for n in lane if n in PREFILLS]
    helper = None
    ctrl_c = False
    try:
        while len(codes) < len(procs):
            changed = False
            for i, p in enumerate(procs):
                if i in codes or p.poll() is None:
                    continue
                if commands[i]:       # the lane trained ahead: now its own notebooks
                    if p.returncode != 0:
                        say_prefill_stopped(p.returncode)
                    procs[i] = subprocess.Popen(commands[i].pop(0), env=env)
                else:
                    codes[i], changed = p.returncode, True
            if helper is not None and helper.poll() is not None:
                if helper.returncode != 0:
                    say_prefill_stopped(helper.returncode)
                helper, changed = None, True
            if changed:
                built = {f.name for f in built_dir.iterdir()}
                notebook = None if helper is not None else to_train_ahead(lanes, set(codes), ahead, built)
                if notebook is not None:
                    ahead.remove(notebook)
                    helper = subprocess.Popen(prefill_command(notebook), env=env)
                lanes_running = len(procs) - len(codes) + (helper is not None)
                if lanes_running:
                    lanes_module.offer(threads_file, lane_threads(lanes_running))
            time.sleep(1.0)
    except KeyboardInterrupt:
        ctrl_c = True
        raise
    finally:
        # On the way out with lanes still running (this builder was stopped: SIGTERM or Ctrl-C), stop them too,
        # each cleaning up after itself (`main`); they would otherwise train on, holding their runs' locks.
        # After Ctrl-C, which the lanes got too, they are given 10 s to end by themselves first.
        if helper is not None and helper.poll() is None:
            helper.terminate()
        running = [p for p in procs if p.poll() is None]
        deadline = time.monotonic() + (10 if ctrl_c else 0)
        for p in running:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.terminate()
        for p in running + ([helper] if helper is not None else []):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(threads_file.parent, ignore_errors=True)
    codes = list(codes.values())
    _write_index_and_say(args.reports)
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
