"""The train loop's EMA of the weights and its mixed-precision switch."""
import math

import pytest
import torch
from torch import nn

from genlab import GenlabError
from genlab.flow_study import ieee_fp32_convolutions
from genlab.precision import resolve
from genlab.train import EMA, fit
from toy import Toy, ToyConfig, run


def test_ema_equals_the_closed_form_after_k_steps():
    model = nn.Linear(3, 1)
    ema = EMA(model, decay=0.9)
    weights = []
    for t in range(40):
        with torch.no_grad():
            model.weight.fill_(float(t) ** 0.5)
            model.bias.fill_(-float(t))
        weights.append((model.weight.clone(), model.bias.clone()))
        ema.update(model)
    # ema_k = sum_i (1 - d_i) prod_{j > i} d_j w_i with d_t = min(decay, t / (t + 10))
    d = [min(0.9, t / (t + 10)) for t in range(40)]
    coef = [(1 - d[i]) * math.prod(d[i + 1:]) for i in range(40)]
    assert abs(sum(coef) - 1) < 1e-9                      # a weighted average: weights sum to one
    expected_w = sum(c * w for c, (w, _) in zip(coef, weights))
    expected_b = sum(c * b for c, (_, b) in zip(coef, weights))
    assert torch.allclose(ema.model.weight, expected_w, atol=1e-5)
    assert torch.allclose(ema.model.bias, expected_b, atol=1e-5)
    assert not torch.allclose(ema.model.weight, model.weight)   # it lags behind the last weights


def test_fit_evaluates_the_ema_and_resumes_it_exactly(tmp_path, monkeypatch):
    cfg = ToyConfig(ema=0.99)
    reference = run(cfg)
    assert reference.trained is not reference.model
    assert not all(torch.equal(p, q) for p, q in zip(reference.model.parameters(), reference.trained.parameters()))
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "interrupted"))
    monkeypatch.setattr(Toy, "steps_taken", 0)
    monkeypatch.setattr(Toy, "crash_at_step", 8 * 2 + 5)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.setattr(Toy, "crash_at_step", 0)
    resumed = run(cfg)
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert run(cfg).cached and run(cfg).model.state_dict().keys() == reference.model.state_dict().keys()


def test_precision_switch():
    assert resolve("fp32", "cpu") == "fp32" and resolve("bf16", "cpu") == "bf16"
    assert resolve("auto", "cpu") in ("fp32", "bf16")          # decided by this CPU's probe
    with pytest.raises(GenlabError, match="unknown precision 'fp8'; choose one of auto, fp32, bf16"):
        resolve("fp8", "cpu")


def test_bf16_training_runs_and_is_its_own_cache_entry():
    fp32 = run()
    bf16 = fit("toy", lambda: Toy(ToyConfig()), ToyConfig(), fp32_data(), epochs=4, batch_size=32, data_id="toy",
               device="cpu", precision="bf16")
    assert bf16.precision == "bf16" and not bf16.cached and bf16.run_dir != fp32.run_dir
    assert bf16.history["train_loss"].iloc[-1] < bf16.history["train_loss"].iloc[0]


def fp32_data():
    from toy import toy_data
    return toy_data()


def test_flow_log_dets_stay_float32_under_bf16_autocast():
    from genlab.flows import FlowConfig, RealNVP
    torch.manual_seed(0)
    model = RealNVP(FlowConfig(hidden=8, couplings=1)).train()
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    model.bits_per_dim(x)                # ActNorm's data-dependent initialisation
    model.eval()
    torch.manual_seed(1)
    exact = model.log_prob(x)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.log_prob(x)
    assert mixed.dtype == torch.float32
    # bf16 coupling networks change log p by well under 0.1 % (bits/dim to about 3 decimals)
    assert torch.allclose(mixed, exact, rtol=1e-3)


def test_ieee_fp32_convolutions_hold_inside_the_block_and_put_the_flag_back():
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    with pytest.raises(RuntimeError, match="inside"):
        with ieee_fp32_convolutions():
            assert conv.fp32_precision == "ieee"
            raise RuntimeError("inside")
    assert conv.fp32_precision == before


def test_bf16_probe_times_both_precisions_in_turns_and_is_remembered(monkeypatch):
    from genlab import precision

    order = []
    real_autocast = torch.autocast

    def recording_autocast(device_type, dtype=None, enabled=True):
        order.append("bf16" if enabled else "fp32")
        return real_autocast(device_type, dtype=dtype, enabled=enabled)

    monkeypatch.setattr(precision.torch, "autocast", recording_autocast)
    fp32, bf16 = precision._probe_steps(repeats=3)
    assert fp32 > 0 and bf16 > 0
    # Alternating, so that a load that starts part-way through slows both alike (not first all float32, then bf16).
    assert order == ["fp32", "bf16"] * 4
    monkeypatch.setattr(precision, "_probe_steps", lambda: (3.0, 1.5))
    precision.cpu_bf16_speedup.cache_clear()
    assert precision.cpu_bf16_speedup() == 2.0
    monkeypatch.setattr(precision, "_probe_steps", lambda: (1.0, 1.0))
    precision.cpu_bf16_speedup.cache_clear()
    assert precision.cpu_bf16_speedup() == 2.0                    # read back from the cache, not probed again
