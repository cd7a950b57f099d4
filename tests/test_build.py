import json

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from genlab import GenlabError, build, config


MACHINE_SLOWDOWN = build.machine_slowdown      # the real probe, before the fixture replaces it


@pytest.fixture(autouse=True)
def table_speed(monkeypatch):
    """This CPU builds as fast as the one the cpu table was measured on (the probe's own test is below)."""
    monkeypatch.setattr(build, "machine_slowdown", lambda: (1.0, build.REFERENCE_CONV_GFLOPS))


def tiny_notebook(path, body):
    nb = new_notebook()
    params = new_code_cell('profile = "cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_a_per_dataset_parameter_reaches_the_notebook_as_values():
    from papermill.translators import PythonTranslator

    params = build.papermill_params(build.parse_params(["epochs=5,8", "temperatures=0.7", "name=x"]))
    cell = {}
    exec(PythonTranslator.codify(params), cell)
    assert cell["epochs"] == [5, 8] and cell["temperatures"] == 0.7 and cell["name"] == "x"
    profile, _ = config.apply_params("cpu", "flows", {"epochs": cell["epochs"]})
    assert profile.flows.epochs == (5, 8)


def test_parse_params_reads_literals():
    assert build.parse_params(["lr=0.001", "name=foo", "n=3"]) == {"lr": 0.001, "name": "foo", "n": 3}
    with pytest.raises(GenlabError, match="name=value"):
        build.parse_params(["oops"])


def test_unknown_notebook_parameter_is_rejected_before_running():
    with pytest.raises(GenlabError, match=r"unknown parameter.*epochz for flows \(did you mean epochs\?\); valid: profile, batch_size"):
        build.check_params(build.NOTEBOOK_DIR / "flows.ipynb", {"epochz": 3})


def test_each_notebook_takes_exactly_its_budgets_fields_and_the_seed():
    import papermill
    from genlab.config import knob_names
    for name in build.NOTEBOOKS:
        known = papermill.inspect_notebook(str(build.NOTEBOOK_DIR / f"{name}.ipynb"))
        assert sorted(known) == sorted(["profile", *knob_names(name)]), name
        assert all(p["default"] == "None" for k, p in known.items() if k != "profile"), name


def test_run_names():
    assert build.run_name(None, {}) is None
    assert build.run_name(None, {"epochs": 2, "seed": 1}) == "epochs=2_seed=1"
    assert build.run_name("wide", {}) == "wide"
    with pytest.raises(GenlabError, match="run name"):
        build.run_name("../up", {})


def test_a_run_with_other_parameters_is_built_beside_the_default_one(tiny_build):
    notebooks, reports = tiny_build
    tiny_notebook(notebooks / "flows.ipynb", 'print("another run")')
    assert build.main(["--notebooks", "flows", "--no-pdf", "--name", "try", "--reports", str(reports)]) == 0
    assert "good report" in (reports / "flows.html").read_text()
    assert "another run" in (reports / "runs" / "try" / "flows.html").read_text()


def test_index_lists_every_run_side_by_side_and_skips_a_corrupt_json(tmp_path):
    def meta(value, changed):
        return json.dumps({"notebook": "flows", "profile": "cpu", "started_at": "today", "wall_time_s": 60,
                           "changed": changed, "headlines": [{"metric": "test bits/dim", "value": value,
                                                              "unit": "bits/dim", "dataset": "mnist"}]})
    (tmp_path / "runs" / "wide").mkdir(parents=True)
    (tmp_path / "flows.json").write_text(meta(1.234, "nothing"))
    (tmp_path / "runs" / "wide" / "flows.json").write_text(meta(1.111, "hidden=64"))
    (tmp_path / "gans.json").write_text("{truncated")
    path, notes = build.write_index(tmp_path)
    page = path.read_text()
    assert "<th>default (cpu)</th><th>wide (cpu)</th>" in page
    assert "<td class=num>1.234</td><td class=num>1.111</td>" in page and "hidden=64" in page
    assert len(notes) == 1 and "gans.json is unreadable" in notes[0] and "skipped" in notes[0]


def test_unknown_profile_gives_one_line(capsys, tmp_path):
    assert build.main(["--profile", "fast", "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: unknown profile 'fast'; choose one of smoke, cpu, gpu (e.g. make report PROFILE=smoke)"


@pytest.mark.parametrize("argv, message", [
    (["--profile", "smok"], "error: unknown profile 'smok' (did you mean smoke?); choose one of smoke, cpu, gpu"),
    (["--notebooks", "flow"], "error: unknown notebook(s) flow (did you mean flows?); known: flows, autoencoders, gans"),
    (["--notebooks", "gans", "-p", "progan_stepz=3"],
     "error: unknown parameter(s) progan_stepz for gans (did you mean progan_steps?); valid: profile, ablation_epochs"),
    (["--notebooks", "gans", "-p", "epochs=3"],   # as close to both: both named
     "error: unknown parameter(s) epochs for gans (did you mean conv_epochs or cgan_epochs?); valid: profile,"),
    (["--notebooks", "flows", "-p", "xyzzy=3"], "error: unknown parameter(s) xyzzy for flows; valid: profile, batch_size"),
])
def test_a_misspelt_name_on_the_command_line_is_answered_with_the_closest_valid_ones(argv, message, capsys, tmp_path):
    assert build.main([*argv, "--reports", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not any(tmp_path.iterdir())


def test_notebooks_are_stored_clean_with_tagged_parameters():
    for name in build.NOTEBOOKS:
        nb = nbformat.read(build.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
        headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                    if line.startswith("## ")]
        assert headings == ["## Architecture Implementation", "## Training Methodology & Validation Metrics",
                            "## Hyperparameter Experiments & Visual Results", "## Discussion"], name


def test_a_failing_notebook_keeps_the_previous_report(tmp_path, monkeypatch, capsys):
    notebooks, reports = tmp_path / "nbs", tmp_path / "reports"
    notebooks.mkdir()
    monkeypatch.setattr(build, "NOTEBOOK_DIR", notebooks)
    tiny_notebook(notebooks / "flows.ipynb", 'print("good report", profile)')
    assert build.main(["--notebooks", "flows", "--no-pdf", "--reports", str(reports)]) == 0
    good = (reports / "flows.html").read_text()
    assert "good report" in good
    tiny_notebook(notebooks / "flows.ipynb", 'raise ValueError("the model diverged")')
    assert build.main(["--notebooks", "flows", "--no-pdf", "--reports", str(reports)]) == 1
    err = capsys.readouterr().err
    assert "error: notebook flows failed in cell 2" in err and "ValueError: the model diverged" in err
    assert "previous report is kept" in err
    assert (reports / "flows.html").read_text() == good
    assert (reports / "failed" / "flows.ipynb").exists()
    assert not list(reports.glob(".staging-*"))


@pytest.mark.slow
def test_smoke_build_of_all_notebooks(tmp_path, capfd):
    reports = tmp_path / "reports"
    # Default jobs: on a machine with 2 or more cores the notebooks run in lanes (subprocesses, hence capfd).
    assert build.main(["--profile", "smoke", "--no-pdf", "--reports", str(reports)]) == 0, capfd.readouterr().err
    err = capfd.readouterr().err
    lanes = "lanes side by side" in err
    assert lanes == (build.default_jobs() > 1)
    assert "realnvp-mnist epoch 1/1" in err and "gan-mnist epoch 2/2 | FID" in err and "TCP" not in err
    assert "KeyboardInterrupt" not in err
    index = (reports / "index.html").read_text()
    for name in build.NOTEBOOKS:
        html = (reports / f"{name}.html").read_text()
        assert "Training Methodology &amp; Validation Metrics" in html and "Traceback" not in html
        meta = json.loads((reports / f"{name}.json").read_text())
        assert meta["profile"] == "smoke" and meta["headlines"]
        for h in meta["headlines"]:
            assert isinstance(h["value"], float) and h["unit"] and h["dataset"]
            assert f"<td>{h['metric']}</td>" in index
        assert (reports / "samples" / name / "real_mnist.pt").exists()
        executed = nbformat.read(reports / f"{name}.ipynb", as_version=4)
        stderr = [o["text"] for c in executed.cells if c.cell_type == "code" for o in c.outputs
                  if o.get("name") == "stderr"]
        assert not stderr, (name, stderr)      # no warnings in a report
    assert (reports / "samples" / "gans" / "real_cifar10.pt").exists()
    # Every sample set behind an FID or accuracy is kept.
    measured = {p.stem for p in (reports / "samples").glob("*/measured_*.pt")}
    assert {"measured_temperature_mnist_T0.7", "measured_vanilla_mnist_epoch2", "measured_vanilla_mnist_raw", "measured_cgan_ms_fm_fashion_mnist_seed0", "measured_convgan_mnist", "measured_convgan_mnist_ablation_raw",
            "measured_progan_stage4"} <= measured
    # The classifiers trained once - before the lanes started, or in the flows build - and the later
    # notebooks reused them.
    assert ("False" in yardstick_table(reports / "flows.ipynb")) != lanes
    assert "False" not in yardstick_table(reports / "autoencoders.ipynb")
    if lanes:
        assert "yardstick mnist: ready" in err and json.loads((reports / "gans.json").read_text())["threads"] == 1
    # A second build with nothing changed trains nothing: every classifier comes from the cache.
    assert build.main(["--profile", "smoke", "--no-pdf", "--notebooks", "flows", "--reports", str(reports)]) == 0
    table = yardstick_table(reports / "flows.ipynb")
    assert "True" in table and "False" not in table


def yardstick_table(executed):
    """The Markdown table of a built notebook that says whether each classifier came from the cache."""
    nb = nbformat.read(executed, as_version=4)
    tables = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "text/markdown" in o.get("data", {}) and "from cache" in o["data"]["text/markdown"]]
    assert len(tables) == 1
    return tables[0]


def test_estimates_use_the_last_build_unless_the_model_cache_is_empty(tmp_path):
    from genlab import build
    from genlab.paths import cache_dir

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "flows.json").write_text(json.dumps({"profile": "cpu", "started_at": "2026-11-26T00:00:00+00:00",
                                                    "wall_time_s": 120.0, "headlines": []}))
    cold, source = build.estimates(reports, "cpu", ["flows"], threads=build.TABLE_THREADS)
    assert cold["flows"] == 60 * build.ESTIMATE_MIN["cpu"]["flows"] and "cold" in source
    fewer, _ = build.estimates(reports, "cpu", ["flows"], threads=1)
    more, _ = build.estimates(reports, "cpu", ["flows"], threads=2)
    assert fewer["flows"] == pytest.approx(more["flows"] * build.ONE_THREAD_SLOWDOWN)
    (cache_dir() / "runs" / "realnvp-mnist-0123").mkdir(parents=True)
    warm, source = build.estimates(reports, "cpu", ["flows"], threads=2)
    assert warm["flows"] == 120.0 and source == "the last build here"
    # A build measured on one thread (a lane) is expected to run faster on two.
    meta = json.loads((reports / "flows.json").read_text())
    (reports / "flows.json").write_text(json.dumps({**meta, "threads": 1}))
    assert build.estimates(reports, "cpu", ["flows"], threads=2)[0]["flows"] == 120.0 / build.ONE_THREAD_SLOWDOWN


def test_the_cold_times_are_scaled_for_a_slower_cpu_and_a_measured_build_is_not(tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    reports.mkdir()
    monkeypatch.setattr(build, "machine_slowdown", lambda: (1.8, 400.0))
    cold, source = build.estimates(reports, "cpu", ["flows"], threads=build.TABLE_THREADS)
    assert cold["flows"] == pytest.approx(1.8 * 60 * build.ESTIMATE_MIN["cpu"]["flows"])
    assert "x1.80 for this CPU" in source and "400 GFLOP/s" in source
    (reports / "flows.json").write_text(json.dumps({"profile": "cpu", "started_at": "2026-11-26T00:00:00+00:00",
                                                    "wall_time_s": 120.0, "headlines": [], "threads": 2}))
    from genlab.paths import cache_dir
    (cache_dir() / "runs" / "realnvp-mnist-0123").mkdir(parents=True)
    assert build.estimates(reports, "cpu", ["flows"], threads=2) == ({"flows": 120.0}, "the last build here")


def test_an_estimate_from_the_table_says_when_the_runs_parameters_change_the_budget(tmp_path):
    reports = tmp_path / "reports" / "runs" / "progan_steps=1,2"
    reports.mkdir(parents=True)
    _, source = build.estimates(reports, "cpu", ["gans"], threads=build.TABLE_THREADS, parameters_changed=True)
    assert "cold" in source and "which this run changes" in source
    _, source = build.estimates(reports, "cpu", ["gans"], threads=build.TABLE_THREADS)
    assert "this run changes" not in source
    # Measured by this run's own last build: its times are this run's.
    (reports / "gans.json").write_text(json.dumps({"profile": "cpu", "started_at": "2026-11-26T00:00:00+00:00",
                                                   "wall_time_s": 54.0, "headlines": [], "threads": 2}))
    from genlab.paths import cache_dir
    (cache_dir() / "runs" / "progan-stage0-0123").mkdir(parents=True)
    assert build.estimates(reports, "cpu", ["gans"], threads=2, parameters_changed=True) == (
        {"gans": 54.0}, "the last build here")


def test_the_cpu_speed_probe_measures_a_rate_and_never_speeds_the_table_up():
    slowdown, rate = MACHINE_SLOWDOWN.__wrapped__()      # not the result an earlier test remembered
    assert rate > 0 and slowdown >= 1.0
    assert slowdown == pytest.approx(max(1.0, (build.REFERENCE_CONV_GFLOPS / rate) ** build.SPEED_EXPONENT))


def test_estimates_take_the_cold_times_once_the_models_code_has_changed(tmp_path):
    # A warm build took a minute; after an edit to the models' code everything trains again.
    from genlab import build
    from genlab.cache import notebook_model_code
    from genlab.paths import cache_dir

    reports = tmp_path / "reports"
    reports.mkdir()
    (cache_dir() / "runs" / "realnvp-mnist-0123").mkdir(parents=True)
    meta = {"profile": "cpu", "started_at": "2026-11-26T00:00:00+00:00", "wall_time_s": 60.0, "headlines": [],
            "threads": build.TABLE_THREADS}
    for name, code in (("flows", notebook_model_code("flows")), ("gans", "0123456789abcdef")):
        (reports / f"{name}.json").write_text(json.dumps({**meta, "model_code": code}))
    expected, source = build.estimates(reports, "cpu", ["flows", "gans"], threads=build.TABLE_THREADS)
    assert expected == {"flows": 60.0, "gans": 60 * build.ESTIMATE_MIN["cpu"]["gans"]}
    assert source == "the last build and the profile's table; the code of the gans models changed since the last build"
    # The notebooks' model modules differ: what the GANs are made of is not what the flows are.
    assert notebook_model_code("gans") != notebook_model_code("flows") != notebook_model_code("autoencoders")


def test_a_lane_expects_what_the_build_that_planned_it_expected(tmp_path, monkeypatch):
    # The yardsticks are in the cache by the time a lane starts: a cold build's lane must not take the
    # last (warm) build's minutes for its estimate.
    from genlab import build
    from genlab.paths import cache_dir

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "flows.json").write_text(json.dumps({"profile": "cpu", "started_at": "2026-11-26T00:00:00+00:00",
                                                    "wall_time_s": 120.0, "headlines": []}))
    (cache_dir() / "runs" / "classifier-mnist-0123").mkdir(parents=True)
    monkeypatch.setenv(build.ESTIMATES_ENV, json.dumps({"flows": 4000.0, "autoencoders": 1300.0}))
    expected, source = build.estimates(reports, "cpu", ["flows", "autoencoders"], threads=1)
    assert expected == {"flows": 4000.0, "autoencoders": 1300.0} and "plan" in source
    assert build.estimates(reports, "cpu", ["flows", "gans"], threads=2)[0]["flows"] == 120.0   # gans: not planned


def test_lanes_put_the_longest_notebook_alone_and_the_shortest_first_within_a_lane():
    expected = {"flows": 34.0, "autoencoders": 17.0, "gans": 52.0}
    # The lane's last notebook is the one running when the other lane ends and hands over its thread.
    assert build.plan_lanes(expected, 2) == [["gans"], ["autoencoders", "flows"]]
    assert build.plan_lanes(expected, 1) == [["flows", "autoencoders", "gans"]]
    assert sorted(map(len, build.plan_lanes(expected, 5))) == [1, 1, 1]
    assert build.plan_lanes({"flows": 10.0, "gans": 1.0}, 2) == [["flows"], ["gans"]]
    # Only the yardsticks that two lanes measure with train before the lanes; CIFAR-10's, in the GANs lane.
    assert build.shared_datasets([["gans"], ["flows", "autoencoders"]]) == ["mnist", "fashion_mnist"]
    assert build.shared_datasets([["flows", "autoencoders", "gans"]]) == []


def test_jobs_must_be_positive(capsys, tmp_path):
    assert build.main(["--profile", "smoke", "--jobs", "0", "--no-pdf", "--reports", str(tmp_path)]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_the_gpu_profile_without_a_gpu_says_so_before_it_builds(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # --jobs 0 stops the build right after the warnings, before anything runs.
    assert build.main(["--profile", "gpu", "--jobs", "0", "--no-pdf", "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "warning: profile gpu, but torch sees no CUDA GPU here" in err and "`make report` uses the cpu profile" in err
    assert build.main(["--profile", "smoke", "--jobs", "0", "--no-pdf", "--reports", str(tmp_path)]) == 2
    assert "warning" not in capsys.readouterr().err
    assert build.gpu_profile_warning("gpu", cuda=True) is None


def test_pdf_tables_wrap_every_text_of_a_long_text_column_and_keep_short_columns_whole():
    import pandas as pd
    from genlab.notebook import latex_table
    df = pd.DataFrame({"variant": ["− EMA (raw weights of the baseline run)", "one coupling fewer per mask"],
                       "changed": ["raw_weights=True", "couplings=3"], "bits/dim": [1.43, 1.54]})
    tex = latex_table(df)
    assert r"p{3.6cm}" in tex                                # the long column has a fixed width...
    assert r"\mbox{one coupling fewer per mask}" not in tex   # ...and its short texts may wrap in it
    assert r"\mbox{couplings=3}" in tex                       # a short column never breaks a value


def test_a_lane_takes_the_threads_the_build_offers(tmp_path, monkeypatch):
    from genlab import lanes
    path = tmp_path / "threads"
    monkeypatch.setenv(lanes.THREADS_FILE_ENV, str(path))
    monkeypatch.setattr(lanes, "_last_check", [0.0])
    before = torch.get_num_threads()
    try:
        lanes.offer(path, 1)
        lanes.follow()
        assert torch.get_num_threads() == 1
        lanes.offer(path, 2)
        lanes.follow()   # within the check interval: not yet
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(lanes, "_last_check", [0.0])
        lanes.follow()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_kernel_is_not_interrupted_when_it_is_shut_down(tmp_path, monkeypatch):
    # jupyter_client sends SIGINT before it shuts a kernel down; after a notebook that ran fine, that made
    # ipykernel print "ERROR | KeyboardInterrupt caught in kernel." into the build's output.
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    interrupted = []

    async def interrupt(self):
        interrupted.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    manager = build._ipc_kernel_manager(tmp_path)()
    asyncio.run(manager._async_interrupt_kernel())   # while the kernel runs: passed on
    manager.shutting_down = True
    asyncio.run(manager._async_interrupt_kernel())   # while it shuts down: dropped
    assert interrupted == [False]
