"""The bad-input matrix of a newcomer's build: each case answers in one line and loses no good report.

Cases tested elsewhere, by the module that owns them: missing / partial / corrupt / truncated data
(test_data), unknown profile and notebook parameter (test_build, test_config), a failing cell
(test_build), a corrupt checkpoint (test_cache), kill -9 and resume (test_train); kill (SIGTERM) and Ctrl-C here.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from genlab import build
from test_build import tiny_notebook


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("param, message", [
    ("run_sweep=maybe", "parameter run_sweep must be True or False, got 'maybe'"),
    ("epochs=0", "parameter epochs must be ≥ 1, got 0"),
    ("epochs=ten", "parameter epochs must be a whole number, got 'ten'"),
    ("datasets=svhn", "parameter datasets: 'svhn' is not one of mnist, fashion_mnist"),
    ("scales=4", "parameter scales: 4 is not one of 1, 2, 3"),
    ("masks=diagonal", "parameter masks: 'diagonal' is not one of channel, checkerboard+channel"),
    ("epochz=3", "unknown parameter(s) epochz for flows (did you mean epochs?); valid: profile, batch_size"),
])
def test_a_wrong_parameter_fails_in_one_line_before_anything_runs(param, message, capsys, tmp_path):
    assert build.main(["--notebooks", "flows", "-p", param, "--reports", str(tmp_path)]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: {message}")
    assert not list(tmp_path.iterdir())


def test_a_full_disk_is_one_line_naming_the_folder_and_keeps_the_report(tiny_build, monkeypatch, capsys):
    _, reports = tiny_build
    good = (reports / "flows.html").read_text()

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build, "_export", full_disk)
    capsys.readouterr()
    assert build.main(["--notebooks", "flows", "--no-pdf", "--reports", str(reports)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"disk full while building flows in {reports}: free at least 200 MB there" in line
    assert "previous report is kept" in line
    assert (reports / "flows.html").read_text() == good and not list(reports.glob(".staging-*"))


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_a_stopped_build_cleans_up_says_so_and_keeps_the_report(how, tiny_build, tmp_path):
    notebooks, reports = tiny_build
    good = (reports / "flows.html").read_text()
    started = tmp_path / "started"
    tiny_notebook(notebooks / "flows.ipynb", f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
                                             "time.sleep(300)")
    script = ("import sys; from pathlib import Path; from genlab import build; "
              f"build.NOTEBOOK_DIR = Path({str(notebooks)!r}); "
              f"sys.exit(build.main(['--notebooks', 'flows', '--no-pdf', '--jobs', '1', '--reports', {str(reports)!r}]))")
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group. The build is started as a terminal
    # starts it, SIGINT not ignored: the build keeps a signal ignored, and pytest's process may ignore SIGINT by now.
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not started.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert started.exists(), proc.stderr.read() if proc.poll() is not None else "the notebook never started"
        assert list(reports.glob(".staging-flows-*"))
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == {"SIGTERM": 128 + signal.SIGTERM, "Ctrl-C": 130}[how]
        err = proc.stderr.read()
        assert "Traceback" not in err and "ERROR" not in err, err   # its kernel stopped quietly
        assert f"[genlab] stopped ({how}): the notebooks built so far are published" in err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(reports.glob(".staging-*"))      # without the SIGTERM handler, Python left it behind
    assert (reports / "flows.html").read_text() == good


def test_a_lane_stops_and_cleans_up_when_its_build_is_killed_outright(tiny_build, tmp_path):
    notebooks, reports = tiny_build
    started, built = tmp_path / "started", tmp_path / "built"
    built.mkdir()
    tiny_notebook(notebooks / "flows.ipynb", f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
                                             "time.sleep(300)")
    lane = ("import sys; from pathlib import Path; from genlab import build; "
            f"build.NOTEBOOK_DIR = Path({str(notebooks)!r}); "
            "sys.exit(build.main(['--notebooks', 'flows', '--no-pdf', '--jobs', '1', '--no-index', "
            f"'--reports', {str(reports)!r}]))")
    # The build that starts lanes, reduced to that: it starts one (with the environment lanes get) and waits.
    build_script = ("import os, subprocess, sys, time; "
                    f"env = dict(os.environ, {build.BUILT_DIR_ENV}={str(built)!r}); "
                    f"p = subprocess.Popen([sys.executable, '-c', {lane!r}], env=env); "
                    "print(p.pid, flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", build_script], stdout=subprocess.PIPE, text=True)
    lane_pid = int(parent.stdout.readline())
    try:
        deadline = time.time() + 120
        while not started.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert started.exists(), "the lane's notebook never started"
        parent.kill()                    # kill -9: the build cannot pass anything on
        parent.wait(timeout=10)
        deadline = time.time() + 60
        while _runs(lane_pid) and time.time() < deadline:
            time.sleep(0.2)
        assert not _runs(lane_pid), "the lane trains on without its build"
    finally:
        if _runs(lane_pid):
            os.kill(lane_pid, signal.SIGKILL)
    assert not list(reports.glob(".staging-*"))


def _runs(pid: int) -> bool:
    """Whether `pid` runs (a zombie left for init to reap does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_staging_left_by_a_killed_builder_is_removed_by_the_next_one(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = tmp_path / f".staging-gans-{dead.pid}", tmp_path / f".staging-flows-{os.getpid()}"
    for folder in (stale, live):
        (folder / "samples").mkdir(parents=True)
    assert build.remove_stale_staging(tmp_path) == [stale]
    assert not stale.exists() and live.exists()     # a builder that still runs keeps its folder


def test_a_corrupt_sibling_json_is_skipped_in_the_index_with_a_note(tiny_build, capsys):
    notebooks, reports = tiny_build
    (reports / "gans.json").write_text('{"profile": "cpu", "headl')     # cut short
    capsys.readouterr()
    assert build.main(["--notebooks", "flows", "--no-pdf", "--reports", str(reports)]) == 0
    err = capsys.readouterr().err
    assert "note: " in err and "gans.json is unreadable" in err and "Traceback" not in err
    assert "gans.json is unreadable" in (reports / "index.html").read_text()


def test_progress_is_printed_per_epoch_when_piped_and_the_kernel_uses_no_tcp(tmp_path, monkeypatch, capsys):
    notebooks, reports = tmp_path / "nbs", tmp_path / "reports"
    notebooks.mkdir()
    monkeypatch.setattr(build, "NOTEBOOK_DIR", notebooks)
    tiny_notebook(notebooks / "flows.ipynb",
                  "from genlab.train import _log_progress\n"
                  "for e in (1, 2):\n"
                  "    _log_progress(model='toy-model', epoch=e, epochs=2, metric='val_bits', value=1.5 / e, seconds=3)")
    assert build.main(["--notebooks", "flows", "--no-pdf", "--reports", str(reports)]) == 0
    err = capsys.readouterr().err
    assert "expected build time" in err
    assert "toy-model epoch 1/2 | val_bits 1.5 (3 s)" in err and "toy-model epoch 2/2 | val_bits 0.75" in err
    assert "TCP" not in err


def test_an_index_entry_without_its_fields_is_skipped_too(tmp_path):
    (tmp_path / "flows.json").write_text(json.dumps({"profile": "cpu"}))
    path, notes = build.write_index(tmp_path)
    assert len(notes) == 1 and "flows.json is unreadable (KeyError)" in notes[0]
