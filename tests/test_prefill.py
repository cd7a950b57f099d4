"""Runs trained by one process at a time, and a finished build lane training ahead for another."""
import threading
import time

import pytest

from genlab import ae_study, build, flow_study as fs, prefill
from genlab import train as gtrain
from genlab.config import apply_params
from toy import ToyConfig, run


def test_two_processes_that_need_one_run_at_once_train_it_once():
    cfg = ToyConfig(sleep=0.02)      # 32 steps: both start while the first trains
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(cfg))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.cached for r in results) == [False, True]


def test_a_run_held_elsewhere_is_skipped_when_asked_and_waited_for_otherwise():
    cfg = ToyConfig()
    first = run(cfg)
    held, release = threading.Event(), threading.Event()

    def hold():
        with gtrain._claimed(first.run_dir, "toy"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    with gtrain.skip_busy_runs(), pytest.raises(gtrain.RunBusy, match="another process"):
        run(cfg)
    threading.Timer(0.3, release.set).start()
    t0 = time.perf_counter()
    again = run(cfg)                 # waits for the holder, then loads
    assert again.cached and time.perf_counter() - t0 >= 0.25
    holder.join(30)


def test_prefill_trains_the_sweep_from_its_end_and_stops_where_the_notebook_is_training(monkeypatch, tmp_path):
    variants = [fs.SWEEP[0], fs.SWEEP[3], fs.SWEEP[-1]]
    monkeypatch.setattr(fs, "SWEEP", variants)
    profile, _ = apply_params("smoke", "flows", {})
    # The notebook is training the middle variant (its lock is held): the last one is trained ahead, no more.
    middle = fs.sweep_run("mnist", profile, variants[1]).fit.run_dir.name
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "other"))
    held, release = threading.Event(), threading.Event()

    def notebook_trains_the_middle():
        with gtrain._claimed(tmp_path / "other" / "runs" / middle, "realnvp-sweep-mnist"):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=notebook_trains_the_middle)
    holder.start()
    assert held.wait(30)
    assert prefill.prefill("flows", "smoke", {}) == [variants[2].key]
    release.set()
    holder.join(30)
    # With nothing held, it trains every one, from the end.
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "third"))
    assert prefill.prefill("flows", "smoke", {}) == [v.key for v in reversed(variants)]
    runs = [fs.sweep_run("mnist", profile, v) for v in variants]
    assert all(r.fit.cached for r in runs)                  # the notebook loads them all
    # Their test bits/dim are measured once, not also after the epoch on the same images.
    assert all(r.n_val == 0 and not any(c.startswith("val_") for c in r.fit.history) for r in runs)
    assert prefill.prefill("flows", "smoke", {}) == []            # all of them in the cache: nothing to train
    # A run already in the cache (the baseline before a budget edit can be a variant after it) is passed over.
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "fourth"))
    fs.sweep_run("mnist", profile, variants[1])
    assert prefill.prefill("flows", "smoke", {}) == [variants[2].key, variants[0].key]
    # A notebook with nothing to train ahead, and a sweep turned off.
    assert prefill.prefill("gans", "smoke", {}) == []
    assert prefill.prefill("flows", "smoke", {"run_sweep": False}) == []


def test_a_lane_that_ends_trains_ahead_for_a_notebook_another_lane_has_yet_to_finish():
    lanes = [["gans"], ["autoencoders", "flows"]]
    assert build.to_train_ahead(lanes, set(), ["flows"], set()) is None          # no lane has ended
    assert build.to_train_ahead(lanes, {0}, ["flows"], set()) == "flows"
    assert build.to_train_ahead(lanes, {0}, ["flows"], {"flows"}) is None     # built already
    assert build.to_train_ahead(lanes, {1}, ["flows"], set()) is None         # the flows lane itself ended
    assert build.to_train_ahead(lanes, {0}, [], set()) is None                # already helped
    assert build.to_train_ahead(lanes, {0, 1}, ["flows"], set()) is None
    assert set(prefill.PREFILLS) <= set(build.NOTEBOOKS)


def test_a_lane_with_less_to_do_starts_by_training_ahead_for_the_longest_lanes_first_notebook():
    expected = {"gans": 50.0, "autoencoders": 12.0, "flows": 49.0}
    assert build.ahead_at_start([["gans"], ["autoencoders", "flows"]], expected) == (0, "autoencoders")
    # The flows' runs to train ahead (the sweep) come at the notebook's end: not at the start.
    assert build.ahead_at_start([["gans"], ["flows", "autoencoders"]], expected) is None
    assert build.ahead_at_start([["gans", "autoencoders", "flows"]], expected) is None
    assert build.ahead_at_start([["autoencoders"], ["gans"]], expected) is None   # gans has nothing to train ahead


def test_the_autoencoders_prefill_trains_every_model_and_evaluation_the_notebook_uses(isolated_cache):
    profile, _ = apply_params("smoke", "autoencoders", {})
    planned = ae_study.planned_runs(profile)
    assert len(planned) == len({(ds, repr(sorted(kw.items()))) for ds, kw, _ in planned})
    done = prefill.prefill("autoencoders", "smoke", {})
    assert len(done) == len(planned)          # an empty cache: all of them, from the last back
    runs = isolated_cache / "cache" / "runs"
    before = sorted(p.relative_to(runs) for p in runs.rglob("*") if p.is_file() and "eval_" in p.name)
    trained = sorted(d.name for d in runs.iterdir() if not d.name.startswith("classifier"))
    assert len(trained) == len(planned)
    sweep = ae_study.latent_sweep_experiment(profile, profile.autoencoders.datasets)
    vae, fvae, beta = (ae_study.vae_experiment(profile), ae_study.fvae_experiment(profile),
                       ae_study.beta_experiment(profile))
    # The notebook's experiments trained and evaluated nothing more: all of it came from the cache.
    assert sorted(d.name for d in runs.iterdir() if not d.name.startswith("classifier")) == trained
    assert sorted(p.relative_to(runs) for p in runs.rglob("*") if p.is_file() and "eval_" in p.name) == before
    assert all(r.fit.cached for r in [*sweep.runs.values(), *vae.runs.values()]) and beta.rows and fvae.summaries
    assert prefill.prefill("autoencoders", "smoke", {}) == []     # every model in the cache: nothing to train
