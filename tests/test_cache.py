"""The cache may never show stale numbers: code, configuration and data form the key."""
import importlib
import os
import sys
import textwrap

import pytest
import torch

from genlab.cache import CacheWarning, code_fingerprint, json_memo, model_fingerprint
from toy import Toy, ToyConfig, run

MODEL_SOURCE = '''
import torch
from torch import nn
from torch.nn import functional as F
from genlab.train import TrainableModule


class Edited(TrainableModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)

    def configure_optimizers(self):
        return {"sgd": torch.optim.SGD(self.parameters(), lr=0.1)}

    def loss(self, batch):
        x, y = batch
        return F.cross_entropy(self.net(x) * SCALE, y), {}
'''


def write_model(folder, scale, comment=""):
    path = folder / "edited_model.py"
    path.write_text(textwrap.dedent(MODEL_SOURCE) + f"\n{comment}\nSCALE = {scale}\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))   # a new mtime, even within one tick
    sys.modules.pop("edited_model", None)
    return importlib.import_module("edited_model")


def fit_edited(module):
    from genlab.train import fit
    from toy import toy_data
    return fit("edited", module.Edited, {"cfg": 1}, toy_data(), epochs=1, batch_size=32, data_id="toy",
               device="cpu")


def test_editing_a_models_source_retrains_it_and_a_comment_does_not(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    first = fit_edited(write_model(tmp_path, 1.0))
    assert not first.cached
    assert fit_edited(write_model(tmp_path, 1.0)).cached
    assert fit_edited(write_model(tmp_path, 1.0, comment="# only a comment")).cached
    edited = fit_edited(write_model(tmp_path, 2.0))
    assert not edited.cached and edited.run_dir != first.run_dir


def test_a_model_is_keyed_by_its_own_classes_not_by_the_other_models_of_its_module(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = "\n\nclass Other(nn.Module):\n    def forward(self, x):\n        return x * {}\n"
    first = model_fingerprint(write_model(tmp_path, 1.0, comment=extra.format(1)).Edited())
    assert model_fingerprint(write_model(tmp_path, 1.0, comment=extra.format(2)).Edited()) == first
    assert model_fingerprint(write_model(tmp_path, 2.0, comment=extra.format(2)).Edited()) != first   # SCALE


def test_model_fingerprint_covers_the_classes_and_the_loop():
    a = model_fingerprint(Toy(ToyConfig()))
    assert a == model_fingerprint(Toy(ToyConfig(lr=1.0)))     # config is keyed separately
    from genlab.flows import RealNVP, FlowConfig
    assert model_fingerprint(RealNVP(FlowConfig(hidden=4, couplings=1))) != a


def test_a_corrupt_checkpoint_is_set_aside_and_retrained():
    reference = run()
    ckpt = reference.run_dir / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])     # truncated, as after a full disk
    Toy.steps_taken = 0
    with pytest.warns(CacheWarning, match="unreadable.*set aside"):
        again = run()
    assert not again.cached and Toy.steps_taken == 8 * 4
    assert list(reference.run_dir.parent.glob(f"{reference.run_dir.name}.corrupt-*"))
    assert all(torch.equal(p, q) for p, q in zip(reference.model.state_dict().values(),
                                                 again.model.state_dict().values()))


def test_json_memo_recomputes_when_its_code_changes_or_the_file_is_corrupt(tmp_path, monkeypatch):
    calls = []

    def compute():
        calls.append(1)
        return {"v": len(calls)}

    path = tmp_path / "memo.json"
    assert json_memo(path, compute) == {"v": 1}
    assert json_memo(path, compute) == {"v": 1} and len(calls) == 1
    monkeypatch.setattr("genlab.cache.code_fingerprint", lambda *f: "other code")
    assert json_memo(path, compute) == {"v": 2}
    path.write_text("{not json")
    with pytest.warns(CacheWarning):
        assert json_memo(path, compute) == {"v": 3}


def test_code_fingerprint_ignores_formatting_but_not_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint(write_model(tmp_path, 1.0).Edited)
    assert code_fingerprint(write_model(tmp_path, 1.0, comment="# hello").Edited) == before
    assert code_fingerprint(write_model(tmp_path, 3.0).Edited) != before


STUDY_SOURCE = '''
"""A study module."""
from genlab import data as gdata
from genlab.cache import json_memo

SCALE = {scale}


def helper(x):
    return x * SCALE


def measured(path, x):
    return json_memo(path, lambda: {{"v": helper(x)}})


def unrelated():
    return gdata.search_roots() if {other} else None
'''


def write_study(folder, scale=1, other=True):
    path = folder / "edited_study.py"
    path.write_text(textwrap.dedent(STUDY_SOURCE.format(scale=scale, other=other)))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    sys.modules.pop("edited_study", None)
    return importlib.import_module("edited_study")


def test_an_evaluation_memo_follows_its_function_and_what_it_uses_not_its_whole_module(tmp_path, monkeypatch):
    from genlab.cache import code_parts
    monkeypatch.syspath_prepend(str(tmp_path))
    study = write_study(tmp_path)
    before = code_fingerprint(study.measured)
    assert code_parts(study.measured)[1] == set()     # genlab.cache stores the value, computes none
    assert code_parts(study.unrelated)[1] == {"genlab.data"}     # what it imports from genlab, whole
    memo = tmp_path / "memo.json"
    assert study.measured(memo, 2) == {"v": 2}
    study = write_study(tmp_path, other=False)        # another function of the module: nothing recomputes
    assert code_fingerprint(study.measured) == before
    memo.write_text(memo.read_text().replace('"v": 2', '"v": 99'))   # mark the stored value
    assert study.measured(memo, 2) == {"v": 99}
    study = write_study(tmp_path, scale=3)            # a constant its helper reads: recomputes
    assert code_fingerprint(study.measured) != before
    assert study.measured(memo, 2) == {"v": 6}


def measured_run(measured_with, epochs=2, crash_at_step=0):
    from genlab.experiment import fit_measured
    from genlab.train import fit
    from toy import toy_data
    calls = []

    def count(model, epoch, run_dir):
        calls.append(epoch)
        return {"score": float(epoch)}

    def fit_with(callback=None):
        return fit("measured", lambda: Toy(ToyConfig()), ToyConfig(), toy_data(), epochs=epochs, batch_size=32,
                   data_id="toy", device="cpu", on_epoch_end=callback)

    Toy.steps_taken, Toy.crash_at_step = 0, crash_at_step
    try:
        result = fit_with() if measured_with is None else fit_measured(fit_with, count, measured_with)
    finally:
        Toy.crash_at_step = 0
    return result, calls


def test_a_history_measured_by_another_classifier_or_by_none_is_measured_again():
    _, calls = measured_run(None)                         # trained without a monitor: no scores
    with pytest.warns(CacheWarning, match="stale .*measured by another .*or by none"):
        result, calls = measured_run("classifier-a")
    assert calls == [1, 2] and list(result.history["score"]) == [1.0, 2.0]
    result, calls = measured_run("classifier-a")
    assert result.cached and calls == []                  # same monitor: nothing runs again
    with pytest.warns(CacheWarning, match="stale"):
        result, calls = measured_run("classifier-b")      # the yardstick retrained: measured again
    assert not result.cached and calls == [1, 2]
    assert len(list(result.run_dir.parent.glob(f"{result.run_dir.name}.stale-*"))) >= 1


def test_a_run_resumed_under_another_monitor_starts_again():
    with pytest.raises(KeyboardInterrupt):
        measured_run("classifier-c", epochs=3, crash_at_step=8 + 3)   # in epoch 2 (8 steps an epoch)
    with pytest.warns(CacheWarning, match="first epochs were measured by another"):
        result, calls = measured_run("classifier-d", epochs=3)
    assert calls == [1, 2, 3] and not result.cached
