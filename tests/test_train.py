import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genlab import GenlabError
from genlab.train import cache_key
from toy import Toy, ToyConfig, run

HERE = Path(__file__).parent


def same_parameters(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_fit_trains_and_keeps_per_epoch_history():
    result = run()
    h = result.history
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "seconds"} <= set(h.columns)
    assert h["val_loss"].iloc[-1] < h["val_loss"].iloc[0]
    assert not result.cached and (result.run_dir / "checkpoint.pt").exists()


class SpikyToy(Toy):
    """Reports a training metric that spikes at the run's first step, as a flow's bits/dim can."""

    def train_step(self, batch, optimizers):
        out = super().train_step(batch, optimizers)
        self.calls = getattr(self, "calls", 0) + 1
        return {**out, "bits": torch.tensor(1000.0 if self.calls == 1 else 2.0)}


def test_log_line_shows_a_training_metric_over_the_epochs_second_half(tmp_path, monkeypatch):
    import json

    from genlab.train import fit
    from toy import toy_data

    log = tmp_path / "progress.jsonl"
    monkeypatch.setenv("GENLAB_PROGRESS_LOG", str(log))
    cfg = ToyConfig()
    result = fit("spiky", lambda: SpikyToy(cfg), cfg, toy_data(), epochs=1, batch_size=32, data_id="toy",
                 device="cpu")
    # The history keeps the epoch's mean, spike included (8 steps); the log line the second half's.
    assert result.history["train_bits"].iloc[0] == (1000 + 7 * 2) / 8
    (event,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert event["metric"] == "train_bits (epoch's second half)" and event["value"] == 2.0


def test_same_configuration_is_loaded_from_the_cache_not_retrained():
    first = run()
    Toy.steps_taken = 0
    second = run()
    assert second.cached and Toy.steps_taken == 0
    assert same_parameters(first.model, second.model)
    assert second.history.equals(first.history)


def test_another_configuration_trains_again():
    run()
    Toy.steps_taken = 0
    other = run(ToyConfig(lr=0.01))
    assert not other.cached and Toy.steps_taken > 0
    assert cache_key("toy", ToyConfig(), "toy") != cache_key("toy", ToyConfig(lr=0.01), "toy")


def test_training_is_seeded_and_reproducible(tmp_path, monkeypatch):
    a = run()
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "other-cache"))
    b = run()
    assert not b.cached and same_parameters(a.model, b.model)


def test_nan_loss_stops_with_model_epoch_and_step():
    Toy.steps_taken = 0
    with pytest.raises(GenlabError, match=r"toy: 'loss' became nan at epoch 2, step 3; .*learning rate"):
        run(ToyConfig(nan_at_step=8 + 3))    # 8 steps per epoch


def test_resume_after_an_exception_matches_uninterrupted(tmp_path, monkeypatch):
    reference = run()
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "interrupted"))
    Toy.steps_taken = 0
    monkeypatch.setattr(Toy, "crash_at_step", 8 * 2 + 5)     # dies in epoch 3, after two checkpoints
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(Toy, "crash_at_step", 0)
    Toy.steps_taken = 0
    resumed = run()
    assert not resumed.cached and Toy.steps_taken == 8 * 2    # only epochs 3 and 4 ran again
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    assert same_parameters(reference.model, resumed.model)


def test_resume_after_kill_9_matches_uninterrupted(tmp_path, monkeypatch):
    cache, marker = tmp_path / "killed", tmp_path / "marker"
    env = {**os.environ, "GENLAB_CACHE": str(cache), "TOY_HANG_AT_STEP": str(8 + 3), "TOY_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "toy.py")], env=env)
    try:
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.read_text() == "11", "the run never reached step 3 of epoch 2"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    (ckpt,) = cache.glob("runs/*/checkpoint.pt")
    state = torch.load(ckpt, weights_only=False)
    assert not state["finished"] and state["epoch"] == 1       # killed in the middle of epoch 2
    monkeypatch.setenv("GENLAB_CACHE", str(cache))
    Toy.steps_taken = 0
    resumed = run()
    assert not resumed.cached and Toy.steps_taken == 8 * 3
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "clean"))
    reference = run()
    assert same_parameters(reference.model, resumed.model)
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
