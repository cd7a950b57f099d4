"""`make bench` measures; these tests check how it measures, never how fast anything is."""
from genlab import bench


def test_interleaved_windows_take_turns():
    calls = []
    runners = [lambda i=i: calls.append(i) for i in range(3)]
    rates = bench._interleaved_rates(runners, images_per_step=4, steps=2, min_seconds=0.0, windows=3)
    assert len(rates) == 3 and all(r > 0 for r in rates)
    # One window is one chunk of 2 steps here; the settings take turns window by window.
    assert calls == [0, 0, 1, 1, 2, 2] * 3


def test_family_bench_times_every_family_in_every_setting(monkeypatch):
    from toy import Toy, ToyConfig, toy_data

    # Two toy "families" (the real ones take tens of seconds to warm up in float32 on some CPUs).
    x, y = toy_data(64)
    families = {"toy a": (lambda: Toy(ToyConfig()), (x[:16], y[:16])),
                "toy b": (lambda: Toy(ToyConfig(lr=0.01)), (x[:32], y[:32]))}
    monkeypatch.setattr(bench, "_families", lambda profile, batch_scale=1: families)
    rows = bench.family_bench(profile="smoke", windows=2, min_seconds=0.0, steps=1)
    assert [(r["family"], r["batch"]) for r in rows] == [("toy a", 16), ("toy b", 32)]
    for r in rows:
        assert all(r[setting] > 0 for setting in bench.SETTINGS)


def test_the_flow_family_is_the_flow_the_profile_trains():
    from genlab.config import get_profile
    from genlab.dequantization import VariationallyDequantizedRealNVP

    build, _ = bench._families("cpu")["flow (RealNVP)"]
    assert get_profile("cpu").flows.dequantization == "variational"
    assert isinstance(build(), VariationallyDequantizedRealNVP)


def test_bad_thread_counts_get_a_clear_error(capsys):
    assert bench.main(["--threads", "0", "--only", "families"]) == 1
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert bench.main(["--threads", "two", "--only", "families"]) == 1
    assert "numbers or 'all'" in capsys.readouterr().err


def test_a_family_that_does_not_compile_is_reported_and_the_rest_timed(monkeypatch, capsys):
    from toy import Toy, ToyConfig, toy_data

    x, y = toy_data(16)
    monkeypatch.setattr(bench, "_families", lambda profile, batch_scale=1: {"toy": (lambda: Toy(ToyConfig()), (x, y))})
    runner = bench._runner

    def failing_compile(*args, compile=False, **kwargs):
        if compile:
            raise RuntimeError("does not compile")
        return runner(*args, **kwargs)

    monkeypatch.setattr(bench, "_runner", failing_compile)
    (row,) = bench.family_bench(compile=True, windows=1, min_seconds=0.0, steps=1)
    assert row["compiled"] is None and row["compile_error"] == "RuntimeError"
    assert all(row[setting] > 0 for setting in bench.SETTINGS)
    bench._print_rows([row], compiled=True, auto_precision="bf16")
    assert "fails: RuntimeError" in capsys.readouterr().out


def test_families_that_train_through_a_cuda_graph_are_also_timed_graphed(monkeypatch, capsys):
    # The graphed column exists on a GPU only; here the capture is a stand-in (tests/test_cuda_graphs.py) and
    # what is checked is that the bench installs the graph as fit does, warms it up and times it.
    from genlab import cuda_graphs
    from test_cuda_graphs import stand_in_capture

    captures = stand_in_capture(monkeypatch)
    monkeypatch.setattr(cuda_graphs, "enabled", lambda model, device: model.cuda_graph == "step")
    families = bench._families("smoke")
    monkeypatch.setattr(bench, "_families", lambda profile, batch_scale=1: {
        k: families[k] for k in ("conv GAN (cGAN)", "classifier (MNIST)")})
    gan, classifier = bench.family_bench(profile="smoke", windows=1, min_seconds=0.0, steps=1)
    assert gan["graphed"] > 0 and "graphed" not in classifier and captures == [cuda_graphs.StepGraph.warmup]
    bench._print_rows([gan, classifier], compiled=False, auto_precision="bf16", graphs=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].count("x)") == 4 and lines[1].count("x)") == 3 and " - " in lines[1]


def test_bench_says_when_the_families_contradict_the_remembered_bf16_probe(monkeypatch):
    from genlab import bench, precision

    def row(fp32, bf16):
        return {"family": "f", "uses channels_last": True, ("fp32", True): fp32, ("bf16", True): bf16,
                ("fp32", False): fp32, ("bf16", False): bf16}

    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda: 1.147)
    faster = [row(100, 160), row(100, 150), row(100, 105)]
    note = bench.probe_disagreement(faster, "fp32")
    assert "2 of 3 families" in note and "1.15" in note and str(precision.probe_path()) in note
    assert bench.probe_disagreement(faster, "bf16") is None                 # they agree
    slower = [row(100, 90), row(100, 110)]
    assert bench.probe_disagreement(slower, "fp32") is None
    assert "delete" in bench.probe_disagreement(slower, "bf16")
