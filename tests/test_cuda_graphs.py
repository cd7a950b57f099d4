"""The CUDA-graph path of the training loop (genlab.cuda_graphs). The capture itself needs a GPU: those tests
are skipped on a CPU (they run on the device machine: `pytest tests/test_cuda_graphs.py`)."""
import warnings
from dataclasses import dataclass

import pandas as pd
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


# --- whole-step graphs (the GANs) ------------------------------------------------------------------------

def stand_in_capture(monkeypatch):
    """StepGraph.capture without CUDA: 'replay' runs the recorded step on the static batch, as a graph would.
    What this checks on a CPU is the plumbing around the capture - warm-up, static inputs, copied outputs, the
    models' bookkeeping outside the step - not that the step is capturable (the GPU tests below)."""
    captures = []

    def capture(self, step, batch, optimizers):
        captures.append(self.calls)
        self.static_batch = tuple(t.detach().clone() for t in batch)
        self.replay = lambda: self.static_out.update(step(self.static_batch, optimizers))
    monkeypatch.setattr(cuda_graphs.StepGraph, "capture", capture)
    return captures


def gan_twins(make):
    """Two identically initialised models and their optimisers; the second with a StepGraph installed."""
    pair = []
    for graph in (False, True):
        torch.manual_seed(0)
        model = make().train()
        opts = model.configure_optimizers()
        if graph:
            assert cuda_graphs.install(model, (), ())
        pair.append((model, opts))
    return pair


def step_both(pair, batches):
    outs = []
    for model, opts in pair:
        torch.manual_seed(1)
        outs.append([model.train_step(b, opts) for b in batches])
    return outs


def test_a_gan_step_graph_warms_up_then_replays_and_trains_as_the_eager_step_does(monkeypatch):
    from genlab.gans import ConvGAN, ConvGANConfig
    captures = stand_in_capture(monkeypatch)
    cfg = ConvGANConfig(classes=3, width=4, noise=8, mode_seeking=0.3, feature_matching=1.0)
    pair = gan_twins(lambda: ConvGAN(cfg))
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=g),
                torch.randint(0, 3, (8,), generator=g)) for _ in range(6)]
    eager, replayed = step_both(pair, batches)
    graph = pair[1][0]._step_graph
    assert captures == [cuda_graphs.StepGraph.warmup] and graph.replay is not None
    for a, b in zip(eager, replayed):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Outputs are copies: the next replay must not change what an earlier step returned.
    assert replayed[-1]["loss_d"] is not graph.static_out["loss_d"]
    for p, q in zip(pair[0][0].parameters(), pair[1][0].parameters()):
        assert torch.equal(p, q)
    cuda_graphs.remove(pair[1][0])
    assert "_step_graph" not in pair[1][0].__dict__


def test_progan_replays_a_graph_only_once_faded_in_and_counts_every_step(monkeypatch):
    from genlab.gans import ConvGANConfig
    from genlab.progan import ProGAN, ProGANConfig, ProGANStage
    captures = stand_in_capture(monkeypatch)
    cfg = ProGANConfig(gan=ConvGANConfig(image_shape=(3, 32, 32), noise=8, classes=2, mode_seeking=0.3), channels=4)
    pair = gan_twins(lambda: ProGAN(ProGANStage(cfg, 1, 8)))     # α reaches 1 at the 4th step
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g),
                torch.randint(0, 2, (4,), generator=g)) for _ in range(10)]
    eager, replayed = step_both(pair, batches)
    assert [o["alpha"] for o in replayed] == [0.25, 0.5, 0.75] + [1.0] * 7
    graph = pair[1][0]._step_graph
    # 3 fade-in steps eager, then 3 warm-up steps, then the capture at the 7th: the graph saw only α = 1.
    assert captures == [3] and graph.calls == 3
    assert int(pair[1][0].step) == pair[1][0]._host_step == 10
    for a, b in zip(eager, replayed):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
    for p, q in zip(pair[0][0].parameters(), pair[1][0].parameters()):
        assert torch.equal(p, q)


def test_a_failed_step_capture_warns_and_trains_eagerly(monkeypatch):
    from genlab.gans import GANConfig, VanillaGAN

    def failing(self, step, batch, optimizers):
        raise RuntimeError("operation not permitted when stream is capturing")
    monkeypatch.setattr(cuda_graphs.StepGraph, "capture", failing)
    model = VanillaGAN(GANConfig()).train()
    opts = model.configure_optimizers()
    cuda_graphs.install(model, (), ())
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    for _ in range(cuda_graphs.StepGraph.warmup):
        model.train_step((x,), opts)
    with pytest.warns(UserWarning, match="capture of the training step failed.*not permitted"):
        out = model.train_step((x,), opts)
    assert model._step_graph.failed and torch.isfinite(out["loss_d"])
    model.train_step((x,), opts)               # and on, eagerly, without warning again


def _gan_steps(model, batches, graph: bool):
    """(per-step outputs, parameters after) of `model` trained on `batches` in fp32, eagerly or through a step graph."""
    torch.manual_seed(0)
    model = model.cuda().to(memory_format=torch.channels_last).train()
    model.precision = "fp32"
    opts = model.configure_optimizers()
    if graph:
        assert cuda_graphs.install(model, (), ())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [model.train_step(b, opts) for b in batches]
    assert not [w for w in caught if "capture" in str(w.message)]     # a failed capture warns
    if graph:
        assert model._step_graph.replay is not None and not model._step_graph.failed
    return outs, [p.detach().cpu() for p in model.parameters()]


@cuda
def test_gans_train_through_their_step_graphs_on_a_gpu():
    """The real capture: the conv GAN (conditional, with mode seeking and feature matching) and a ProGAN stage
    past its fade-in record their steps; the replays stay finite, draw fresh noise, and change the same weights
    as eager steps do (a ProGAN stage leaves the to_rgb of earlier resolutions alone once faded in)."""
    import copy

    from genlab.gans import ConvGAN, ConvGANConfig
    from genlab.progan import ProGAN, ProGANConfig, ProGANStage
    torch.manual_seed(0)
    cgan = ConvGAN(ConvGANConfig(classes=10, width=8, mode_seeking=0.15, feature_matching=1.0))
    pcfg = ProGANConfig(gan=ConvGANConfig(image_shape=(3, 32, 32), classes=5, mode_seeking=0.3), channels=8)
    for model, shape, classes in ((cgan, (32, 1, 28, 28), 10), (ProGAN(ProGANStage(pcfg, 3, 2)), (32, 3, 32, 32), 5)):
        g = torch.Generator().manual_seed(1)
        batches = [(torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).cuda(),
                    torch.randint(0, classes, (shape[0],), generator=g).cuda()) for _ in range(12)]
        before = [p.detach().clone() for p in model.parameters()]
        _, eager_after = _gan_steps(copy.deepcopy(model), batches, graph=False)
        outs, after = _gan_steps(model, batches, graph=True)
        assert all(torch.isfinite(o["loss_d"]) and torch.isfinite(o["loss_g"]) for o in outs)
        assert len({float(o["loss_d"]) for o in outs[-4:]}) > 1            # fresh noise at every replay
        changed = [not torch.equal(a, b) for a, b in zip(before, after)]
        assert changed == [not torch.equal(a, b) for a, b in zip(before, eager_after)]
        assert sum(changed) >= len(changed) // 2


def test_fit_installs_a_gans_step_graph_and_trains_as_it_does_eagerly(tmp_path, monkeypatch):
    """fit -> cuda_graphs.install -> StepGraph -> ConvGAN.train_step -> remove, end to end on a CPU (stand-in
    capture; `enabled` made true): the history and weights equal an eager run's."""
    from genlab.gans import ConvGAN, ConvGANConfig
    captures = stand_in_capture(monkeypatch)
    cfg = ConvGANConfig(classes=2, width=4, noise=8, mode_seeking=0.3)
    g = torch.Generator().manual_seed(0)
    data = (torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 2, (64,), generator=g))
    runs = []
    for graph in (False, True):
        monkeypatch.setattr(cuda_graphs, "enabled", lambda model, device, graph=graph: graph)
        monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / f"cache-{graph}"))
        runs.append(fit("cgan", lambda: ConvGAN(cfg), cfg, data, epochs=2, batch_size=16, data_id="toy", device="cpu"))
    eager, graphed = runs
    assert captures == [cuda_graphs.StepGraph.warmup]           # 8 steps: 1 first, 3 warm-up, the capture, 3 replays
    pd.testing.assert_frame_equal(eager.history.drop(columns="seconds"), graphed.history.drop(columns="seconds"))
    for p, q in zip(eager.trained.parameters(), graphed.trained.parameters()):
        assert torch.equal(p, q)
    assert "_step_graph" not in graphed.trained.__dict__
