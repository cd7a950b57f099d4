"""The CUDA-graph path of the training loop (genlab.cuda_graphs). The capture itself needs a GPU: those tests
are skipped on a CPU (they run on the device machine: `pytest tests/test_cuda_graphs.py`)."""
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from genlab import cuda_graphs
from genlab.train import TrainableModule, adam, fit

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


@dataclass(frozen=True)
class RegressionConfig:
    graph: bool = True


class Regression(TrainableModule):
    """No randomness in the loss, so eager and graphed training must agree to rounding."""
    python_calls = 0

    def __init__(self, cfg: RegressionConfig):
        super().__init__()
        self.cuda_graph = cfg.graph
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def configure_optimizers(self):
        return {"adam": adam(self.parameters(), lr=1e-2)}

    def loss(self, batch):
        Regression.python_calls += 1
        x, y = batch
        mse = F.mse_loss(self.net(x.float()).squeeze(1), y)
        return mse, {"mse": mse.detach()}


def regression_data(n=512):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return x, x[:, 0] * 2 - x[:, 1]


def train(graph: bool, tmp_path, monkeypatch, device):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / f"cache-{graph}"))
    Regression.python_calls = 0
    cfg = RegressionConfig(graph)
    return fit("regression", lambda: Regression(cfg), cfg, regression_data(), epochs=3, batch_size=64,
               data_id="regression", device=device)


def test_training_loss_replays_an_installed_graph_and_fit_removes_it(tmp_path, monkeypatch):
    model = Regression(RegressionConfig())
    batch = tuple(t[:4] for t in regression_data())
    model._graphed_loss = lambda b: (torch.tensor(7.0), {"mse": torch.tensor(7.0)})
    assert float(model.training_loss(batch)[0]) == 7.0
    cuda_graphs.remove(model)
    assert model.training_loss(batch)[0].item() != 7.0
    # Never on a CPU, and never when switched off.
    assert not cuda_graphs.enabled(model, torch.device("cpu"))
    monkeypatch.setenv("GENLAB_CUDA_GRAPHS", "0")
    assert not cuda_graphs.enabled(model, torch.device("cuda"))


@cuda
def test_graphed_training_matches_eager_training(tmp_path, monkeypatch):
    eager = train(False, tmp_path, monkeypatch, "cuda")
    eager_calls = Regression.python_calls
    graphed = train(True, tmp_path, monkeypatch, "cuda")
    # The loss ran in Python only for the first step and the capture (3 warm-up passes and the recording),
    # not at each of the 24 steps.
    assert eager_calls == 24 and Regression.python_calls <= 6
    for p, q in zip(eager.trained.parameters(), graphed.trained.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert list(graphed.history["train_mse"].round(5)) == list(eager.history["train_mse"].round(5))
    assert "_graphed_loss" not in graphed.trained.__dict__


@cuda
def test_a_realnvp_trains_through_its_graph():
    from genlab.dequantization import DequantizerConfig, VariationallyDequantizedRealNVP
    from genlab.flows import FlowConfig
    torch.manual_seed(0)
    cfg = FlowConfig(hidden=8, couplings=1, blocks=1, scales=3, masks="channel", invconv=True)
    model = VariationallyDequantizedRealNVP(cfg, DequantizerConfig()).cuda()
    model.precision = "bf16"
    opts = model.configure_optimizers()
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, device="cuda")
    first = model.train_step((x,), opts)
    assert cuda_graphs.install(model, (x,), tuple(k for k in first if k != "loss"))
    losses = [float(model.train_step((x,), opts)["loss"]) for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_capture_leaves_the_models_buffers_as_they_were():
    """Capture runs the loss several times; a step counter in a buffer must count only real steps."""
    from genlab.autoencoders import AEConfig, AutoEncoder
    model = AutoEncoder(AEConfig(width=4, hidden=8, latent=2))
    model.steps += 5

    def capture():           # what make_graphed_callables does to the model: warm-up and recorded passes
        for _ in range(4):
            model.loss((torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8),))
        return "graphed"

    assert model.steps == 5
    assert cuda_graphs.keeping_buffers(model, capture) == "graphed" and model.steps == 5

    def failing():           # a capture that fails after a pass has run: the buffers are put back too
        capture()
        raise RuntimeError("capture failed")

    with pytest.raises(RuntimeError, match="capture failed"):
        cuda_graphs.keeping_buffers(model, failing)
    assert model.steps == 5


@cuda
def test_a_vae_trains_through_its_graph_and_counts_only_its_steps():
    from genlab.autoencoders import AEConfig, AutoEncoder
    torch.manual_seed(0)
    model = AutoEncoder(AEConfig(width=8, hidden=32, latent=4)).cuda()
    assert model.cuda_graph
    model.precision = "bf16"
    opts = model.configure_optimizers()
    x = torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8, device="cuda")
    first = model.train_step((x,), opts)
    assert cuda_graphs.install(model, (x,), tuple(k for k in first if k != "loss"))
    assert int(model.steps) == 1
    losses = [float(model.train_step((x,), opts)["loss"]) for _ in range(20)]
    assert int(model.steps) == 21                           # the KL warm-up ramp moves once per replay
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
