"""The reports' prose is written from measured tables: checked here on small synthetic results, so a
verdict that contradicts its numbers fails a test instead of reaching a report."""
import pandas as pd
import pytest

from genlab import gan_study as gs


def _cgan_table(accuracies: dict[str, list[float]], diversity: dict[str, float]) -> pd.DataFrame:
    rows = []
    for (label, _tag, change, _seeds) in gs.CGAN_VARIANTS:
        ms = 0.3 if callable(change) else change.get("mode_seeking", 0.15)
        for acc in accuracies[label]:
            rows.append({"dataset": "MNIST", "model": label, "mode seeking": ms, "conditional accuracy": acc,
                         "FID": 20.0, "intra-class diversity": diversity[label], "real diversity": 16.0})
    return pd.DataFrame(rows)


def test_cgan_prose_says_beyond_the_spread_only_when_the_gap_exceeds_it():
    labels = [v[0] for v in gs.CGAN_VARIANTS]
    table = _cgan_table({labels[0]: [0.90], labels[1]: [0.96, 0.98], labels[2]: [0.80, 0.84], labels[3]: [0.97]},
                        {labels[0]: 2.0, labels[1]: 15.0, labels[2]: 15.0, labels[3]: 18.0})
    summary = gs.cgan_summary(table).set_index("model")
    assert summary.loc[labels[1], "accuracy mean"] == pytest.approx(0.97)
    assert summary.loc[labels[1], "accuracy ±"] == pytest.approx(0.01)
    text = gs.cgan_comparison("MNIST", summary, real_diversity=16.0)
    assert "conditional accuracy 90.0% ± 0.0% → 97.0% ± 1.0% (up beyond the seed spread)" in text
    assert "conditional accuracy 97.0% ± 1.0% → 82.0% ± 2.0% (down beyond the seed spread)" in text
    assert "FID 20 ± 0 → 20 ± 0 (within the seed spread)" in text
    assert "**collapses within each class**" in text      # diversity 2 against a real 16


def test_gan_discussion_reads_the_stage_order_and_the_ablation_signs():
    vanilla = pd.DataFrame([{"dataset": "MNIST", "epochs": 8, "final D loss": 1.2, "final G loss": 1.1, "D(x)": 0.5,
                             "D(G(z))": 0.4, "FID": 170.0, "FID floor": 8.0, "coverage": 1.0, "min coverage": 0.3,
                             "collapse flagged": False, "train time (min)": 3.0}])
    results = pd.DataFrame([{"dataset": "MNIST", "FID": 16.0, "FID floor": 8.0, "× floor": 2.0, "coverage": 1.0,
                             "train time (min)": 5.0}])
    ablation = pd.DataFrame([{"dataset": "MNIST", "variant": "recipe", "FID": 40.0, "adds": False},
                             {"dataset": "MNIST", "variant": "− spectral norm", "FID": 90.0, "adds": False},
                             {"dataset": "MNIST", "variant": "+ TTUR", "FID": 45.0, "adds": True}])
    labels = [v[0] for v in gs.CGAN_VARIANTS]
    cgan = _cgan_table({label: [0.95] for label in labels}, {label: 15.0 for label in labels})

    def progan(fids, change=(-0.01, -0.05)):
        return pd.DataFrame({"FID (upsampled to 32)": fids, "real floor at this resolution": [400.0, 300.0],
                             "resolution": ["4×4", "8×8"], "steps": [1000, 1000], "final D loss": [1.5, 1.6],
                             "D(x) − D(G(z))": [0.3, 0.2], "FID change at last point": list(change)})

    text = gs.discussion(vanilla, (results, ablation), cgan, progan([480.0, 470.0]), "cpu")
    assert "− spectral norm: FID 90 (+50: the technique pays)" in text     # removing it made FID worse
    assert "+ TTUR: FID 45 (+5: the technique does not pay here)" in text  # adding it made FID worse
    assert sum(t.adds for t in gs.CONV_ABLATION) == 1                   # the verdict's sign reads a field
    assert "it falls at every stage." in text and "the discriminator has **not** won" in text
    assert "changed by -1%, -5%: still falling at 8×8, where more steps would pay." in text
    text = gs.discussion(vanilla, (results, ablation), cgan, progan([480.0, 500.0], (0.01, -0.015)), "cpu")
    assert "it does **not** fall at every stage." in text and "every stage had levelled off" in text


def _sweep(bits: dict[str, float], **fields):
    from genlab.flow_study import SWEEP, Sweep, SweepResult
    return Sweep([SweepResult(key=v.key, label=v.label, changed="—", parameters=1000,
                              steps=4 if v.key == "batch2048" else 156, bits_per_dim=bits.get(v.key, 1.40),
                              fid=fields.get("fids", {}).get(v.key, float("nan")), fid_floor=8.0,
                              precision=fields.get("precision", "bf16"),
                              dequantization=("uniform" if v.key == "other_dequantization" else "variational"),
                              seconds=120.0 if v.key == "other_dequantization" else 60.0) for v in SWEEP])


def test_flow_sweep_prose_compares_each_row_with_the_seed_spread_by_key_not_by_label():
    from genlab.flow_study import sweep_text
    sweep = _sweep({"baseline": 1.30, "seed": 1.31, "no_ema": 1.305, "no_invconv": 1.45, "other_dequantization": 1.44,
                    "batch2048": 2.3})
    text = " ".join(sweep_text(sweep, {512: (7.0, 2.9), 2048: (7.0, 2.9)}))
    assert "without it 1.305 (+0.005, within the seed-to-seed spread of 0.010)" in text
    assert "without them 1.450 (+0.150, beyond the seed-to-seed spread of 0.010)" in text
    assert "from a learned q(u | x)" in text and "with uniform noise instead 1.440 (+0.140, beyond" in text
    assert "in 2.00× the time" in text
    assert "fewer steps (4 vs 156)" in text and "there is no deadlock." in text
    # The table shows labels; the prose found its rows by key, so relabelling a row changes no verdict.
    assert list(sweep.table()["variant"])[:2] == ["baseline", "baseline, another seed"]
    stuck = " ".join(sweep_text(_sweep({"batch2048": 3.0}), {512: (7.0, 2.9), 2048: (0.0, 2.9)}))
    assert "**zero at some batch size**" in stuck and "**training did not progress**" in stuck
    assert "sample FID" not in text   # no samples drawn, no FID claimed


def test_flow_sweep_prose_gives_each_variants_sample_fid_beside_its_bits_per_dim():
    from genlab.flow_study import sweep_text
    sweep = _sweep({"baseline": 1.30, "seed": 1.31, "other_scales": 1.29},
                   fids={**{v: 400.0 for v in ("batch512", "batch2048", "no_actnorm", "fp32", "no_ema",
                                                "no_invconv", "half_lr", "fewer_couplings", "other_dequantization")},
                         "baseline": 300.0, "seed": 310.0, "other_scales": 520.0})
    text = " ".join(sweep_text(sweep, None))
    assert "Baseline 1.300 bits/dim (sample FID 300 at T = 1, against a real floor of 8 for as many images; " \
           "another seed: 310)" in text
    assert "1.290 (-0.010, within the seed-to-seed spread of 0.010, sample FID 520)" in text
