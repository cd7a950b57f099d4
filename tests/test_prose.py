"""The reports' prose is written from measured tables: checked here on small synthetic results, so a
verdict that contradicts its numbers fails a test instead of reaching a report."""
import math

import pandas as pd
import torch

from genlab import gan_study as gs
from genlab.gans import ConvGANConfig, GANConfig


def stage(i, fid, change=float("nan"), d_loss=1.5):
    res = 4 * 2 ** (i - 1)
    return gs.ProGANStageResult(i, res, 100 * i, 6400, fid, 10.0 * i, 2.7, 0.9, change, d_loss, 0.3, 1.0)


def progan(*stages):
    return gs.ProGANResults(list(stages), pd.DataFrame(), [], None)


def test_progan_text_says_whether_fid_falls_at_every_stage_and_where_steps_still_pay():
    falling = progan(stage(1, 400, -0.01), stage(2, 300, -0.10), stage(3, 200, 0.0), stage(4, 100, -0.05))
    text = gs.progan_text(falling)
    assert falling.falling and "it falls at every stage" in text
    assert "still falling at 8×8, 32×32" in text and "40.0×" in text    # 400 against a floor of 10
    levelled = progan(stage(1, 480, 0.01), stage(2, 500, -0.015))
    assert "changed by +1%, -2%: every stage had levelled off" in gs.progan_text(levelled)
    rising = progan(stage(1, 400), stage(2, 450), stage(3, 200), stage(4, 100, d_loss=0.01))
    text = gs.progan_text(rising)
    assert not rising.falling and "does **not** fall" in text
    assert "Over the last history point" not in text                   # no history: nothing claimed
    assert "the discriminator is winning" in text


def test_progan_budget_text_reads_this_runs_images_and_speed_and_times_only_its_own_profile():
    from genlab.progan import ProGANConfig
    run = gs.ProGANResults([stage(1, 400), stage(2, 300), stage(3, 200), stage(4, 100)], pd.DataFrame(), [],
                           ProGANConfig(channels=64))
    batch = gs.get_profile("cpu").gans.progan_batch
    shown = (100 + 200 + 300 + 400) * batch                   # stage(i) trains 100 i steps
    text = gs.progan_budget_text(run, "cpu")
    assert "5.6 M images from 4×4 to 32×32" in text           # 800k for 4 px, 1.6 M for each of 8, 16, 32
    assert f"{shown / 1e6:.2f} M ({shown / 5.6e6:.0%} of that" in text
    assert f"trained {400 * batch / 60:.0f} images/s" in text  # the last stage: 400 steps in 1.0 min
    assert "measured by a build with `--profile gpu`" in text and "This is the gpu profile" not in text
    gpu = gs.progan_budget_text(run, "gpu")
    assert "This is the gpu profile: the times above are its own." in gpu and "--profile gpu" not in gpu


def summary(variant, acc, div, seeds=2, spread=0.01, ms=0.15):
    return gs.CGANSummary("mnist", "MNIST", variant, seeds, ms, gs.Spread(acc, spread), gs.Spread(50.0, 2.0),
                          gs.Spread(div, 0.5), real_diversity=16.0)


def test_cgan_comparison_weighs_changes_against_the_seed_spread_and_flags_collapse():
    text = gs.cgan_comparison([summary("plain", 0.90, 2.5, seeds=1), summary("ms", 0.95, 15.0),
                               summary("fm", 0.955, 15.2), summary("other", 0.80, 17.0, seeds=1, ms=0.3)])
    # A one-seed value has no spread to show: it says so instead of "± 0", and the other side's spread judges.
    assert "Adding mode seeking: conditional accuracy 90.0% (one seed) → 95.0% ± 1.0% (up beyond the seed spread)" in text
    assert "90.0% ±" not in text
    assert "Adding feature matching to that: conditional accuracy 95.0% ± 1.0% → 95.5% ± 1.0% (within the seed spread)" in text
    assert "**collapses within each class**" in text and "16%" in text   # 2.5 against 16
    assert "The mode-seeking weight: 0.3 (one seed) against this dataset's 0.15" in text
    assert "conditional accuracy 80.0% (one seed) → 95.0% ± 1.0% (up beyond the seed spread)" in text
    # Two one-seed values: no spread to weigh a change against, however large.
    lone = gs.cgan_comparison([summary("plain", 0.90, 2.5, seeds=1), summary("ms", 0.95, 15.0, seeds=1),
                               summary("fm", 0.955, 15.2, seeds=1), summary("other", 0.80, 17.0, seeds=1, ms=0.3)])
    assert "conditional accuracy 90.0% (one seed) → 95.0% (one seed) (one seed each: no spread to weigh the change " \
           "against)" in lone and "beyond the seed spread" not in lone
    healthy = gs.cgan_comparison([summary("plain", 0.9, 10.0), summary("ms", 0.9, 15.0), summary("fm", 0.9, 15.0),
                                  summary("other", 0.9, 15.0)])
    assert "keeps a diversity within a factor of three" in healthy


def test_spread_is_mean_and_half_the_range():
    s = gs.Spread.of([0.9, 0.94, 0.92])
    assert math.isclose(s.mean, 0.92) and math.isclose(s.half_range, 0.02)


def test_vanilla_text_flags_collapse_from_the_coverage_history():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss_d": [1.2, 1.1, 0.0], "train_loss_g": [0.8, 0.9, 7.0],
                            "train_D(x)": [0.6, 0.6, 1.0], "train_D(G(z))": [0.4, 0.4, 0.0],
                            "FID": [90.0, 80.0, 70.0], "FID floor": [7.0] * 3, "coverage": [1.0, 0.5, 0.9]})
    run = gs.VanillaRun("mnist", "MNIST", tuple("0123456789"), GANConfig(), history, [0.1] * 10, {},
                        None, 2.0)
    assert run.collapsed_epochs == [2]
    text = gs.vanilla_text([run])
    assert "**mode collapse was flagged** after epoch(s) 2; from epoch 3 on it stayed at or above 80%" in text
    assert "lowest over training 50%" in text and "the discriminator is winning" in text
    run.history.loc[2, "coverage"] = 0.7
    assert "after epoch(s) 2, 3, the last one included)." in gs.vanilla_text([run])
    run.history.loc[2, "coverage"] = 0.9
    run.history.loc[1, "coverage"] = 0.95
    run.history.loc[2, "train_loss_d"] = 1.0
    text = gs.vanilla_text([run])
    assert "no collapse flagged" in text and "has **not** won" in text
    assert "raw weights" not in text                                   # no EMA measured: nothing to compare
    run.raw_fid = 95.0
    assert "(samples from the EMA of the weights, decay 0.999; the same run's raw weights: FID 95)" in gs.vanilla_text([run])


def test_conv_text_says_whether_each_technique_pays_by_what_it_changes():
    def m(variant, fid):
        return gs.Measured("MNIST", variant, fid, 7.0, 1.0, 0.8, 1.0)
    results = gs.ConvResults(
        [gs.ConvRecipeRun("mnist", ConvGANConfig(), m("recipe", 14.0), torch.zeros(1, 1, 28, 28, dtype=torch.uint8))],
        [(gs.CONV_ABLATION[0], m("recipe", 30.0)),
         (gs.Technique("− spectral norm", lambda b: {}), m("− spectral norm", 40.0)),   # removing it hurts: it pays
         (gs.Technique("+ TTUR", lambda b: {}, adds=True), m("+ TTUR", 35.0))],           # adding it hurts
        ablation_images=1000)
    text = gs.conv_text(results, [])
    assert "(2.0× the floor)" in text
    assert "− spectral norm: FID 40 (+10: the technique pays)" in text
    assert "+ TTUR: FID 35 (+5: the technique does not pay here)" in text
    assert "One seed per variant" in text                      # no second seed ran: no noise band to weigh by
    # With the recipe's second seed 6 FID away, a change of 5 is one run's noise, one of 10 still pays.
    results.ablation.insert(1, (gs.CONV_ABLATION[1], m("recipe, another seed", 24.0)))
    text = gs.conv_text(results, [])
    assert "− spectral norm: FID 40 (+10: the technique pays)" in text
    assert "+ TTUR: FID 35 (+5: within one run's noise)" in text
    assert "the recipe with a second seed scores FID 24, so a change of up to 6 is one run's noise" in text
    assert "recipe, another seed:" not in text                 # the noise row is not a technique


def test_the_conv_ablation_trains_the_recipe_with_a_second_seed_and_changes_one_thing_per_other_row():
    assert gs.CONV_ABLATION[0].change(None) == {} and not gs.CONV_ABLATION[0].seed_offset
    seeded = [t for t in gs.CONV_ABLATION if t.seed_offset]
    assert len(seeded) == 1 and seeded[0].change(None) == {}


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


def test_flow_temperature_prose_reads_the_best_row_and_checks_the_seeds_claim_on_both_measures():
    from genlab.flow_study import TemperatureRow, TemperatureStudy, temperature_text

    def study(fid07, share07):
        rows = [TemperatureRow(0.7, fid07, 8.0, 0.9, share07, 1.0, 100.0),
                TemperatureRow(0.9, 60.0, 8.0, 0.9, 0.7, 1.0, 100.0),
                TemperatureRow(1.0, 90.0, 8.0, 0.8, 0.5, 0.9, 100.0)]
        return TemperatureStudy("mnist", 2000, rows, {})

    text = temperature_text(study(70.0, 0.8))
    assert study(70.0, 0.8).best.t == 0.9 and "The lowest FID is at T = 0.9: 60 against a real floor of 8 (7.5×" in text
    assert "FID 70 vs 90, confident share 80% vs 50%" in text and "**supported** by both measures" in text
    assert "**not supported by both measures**" in temperature_text(study(70.0, 0.4))   # FID better, share worse
    assert "T = 0.7 against" not in temperature_text(TemperatureStudy("mnist", 10, study(1, 1).rows[1:], {}))


def test_flow_temperature_prose_names_a_cooled_finest_level_when_it_wins():
    from genlab.flow_study import TemperatureRow, TemperatureStudy, temperature_text

    rows = [TemperatureRow(0.7, 80.0, 8.0, 0.9, 0.8, 1.0, 100.0), TemperatureRow(1.0, 60.0, 8.0, 0.8, 0.5, 0.9, 100.0),
            TemperatureRow(1.0, 54.0, 8.0, 0.8, 0.6, 1.0, 100.0, t_fine=0.85),
            TemperatureRow(1.0, 66.0, 8.0, 0.8, 0.6, 1.0, 100.0, t_fine=0.5)]
    study = TemperatureStudy("fashion_mnist", 2000, rows, {}, finest_latents=392)
    assert study.best.t_fine == 0.85 and study.best_uniform.t == 1.0 and study.at(1.0).t_fine is None
    text = temperature_text(study)
    assert "The lowest FID is at T = 1 with the finest level at 0.85: 54 against a real floor of 8 (6.8×" in text
    assert "(the 392 that the first level factors out)" in text and "at 0.85 FID 54, at 0.5 FID 66 — 10% lower" in text
    # The seed's claim is checked on single temperatures only.
    assert "T = 0.7 against T = 1.0: FID 80 vs 60" in text
    worse = TemperatureStudy("fashion_mnist", 2000, rows[:2] + rows[3:], {}, finest_latents=392)
    assert "none lower" in temperature_text(worse) and worse.best.t_fine is None


def test_autoencoder_prose_reads_gaps_seed_spreads_and_beta_ends_from_fields():
    from genlab import ae_study as aes

    rows = [aes.LatentRow("mnist", "MNIST", d, 10.0, bce, train, probe, 1.0)
            for d, bce, train, probe in ((2, 150.0, 149.0, 0.7), (16, 70.0, 69.0, 0.95), (64, 60.0, 50.0, 0.9))]
    sweep = aes.LatentSweep(rows, {}, {}, 1000, (2, 16, 64))
    text = " ".join(aes.latent_sweep_text(sweep))
    assert "Test BCE falls from 150.0 (d=2) to 60.0 (d=64)" in text and "gap at d=64 is +10.00" in text
    assert "fits the training set measurably better" in text and "best at d=16 (95.0%)" in text

    def fvae(k, nll, sd):
        return aes.FVAESummary("VAE" if k == 0 else f"f-VAE K={k}", k, 3, 95.0, 0.5, nll, sd, 10.0 * (1 + k))
    out = aes.fvae_text(aes.FVAEResults([fvae(0, 90.0, 0.3), fvae(4, 89.0, 0.2), fvae(8, 89.8, 0.2)], 1000))
    assert "an **improvement** larger than twice the largest seed sd (3 seeds)" in out[0]   # -1.0 > 2 * 0.3
    assert "**no measurable difference**" in out[1] and "cost 9.0× the training time" in out[1]

    corr = pd.DataFrame({"z3": [0.8, -0.1], "z5": [0.2, -0.6]}, index=["ink", "width"])
    betas = aes.BetaResults([aes.BetaRow(1.0, 25.0, 70.0, 95.0, 12, 16), aes.BetaRow(4.0, 10.0, 90.0, 130.0, 5, 16)],
                            1000, corr, torch.zeros(0), [3, 5], [-3.0, 3.0])
    text = " ".join(aes.beta_text(betas))
    assert "rate falls from 25.0 to 10.0 nats" in text and "active units 12 → 5 of 16" in text
    assert "ink: z3 (r = +0.80); width: z5 (r = -0.60)" in text and "(β = 4)" in text


def test_flow_prior_prose_counts_the_components_the_weights_use():
    from types import SimpleNamespace

    from genlab.flow_study import prior_text
    from genlab.flows import GaussianMixturePrior

    prior = GaussianMixturePrior(4, 3)
    with torch.no_grad():
        prior.logits.copy_(torch.log(torch.tensor([0.5, 0.5, 0.0, 0.0]) + 1e-12))   # two of four in use
    runs = {"fashion_mnist": SimpleNamespace(dataset="fashion_mnist", model=SimpleNamespace(prior=prior)),
            "mnist": SimpleNamespace(dataset="mnist", model=SimpleNamespace(prior=None))}
    text = prior_text(runs)
    assert "Fashion-MNIST, 4 components: effective number **2**, 2 above a fifth of an equal share" in text
    assert "MNIST," not in text.replace("Fashion-MNIST", "")
    assert prior_text({"mnist": runs["mnist"]}) is None


def test_progan_table_gives_fids_change_over_the_last_history_point_in_percent():
    stage = gs.ProGANStageResult(1, 4, 100, 6400, fid=400.0, floor=380.0, floor_32=2.7, coverage=0.5,
                                 fid_change_last=-0.0512, final_d_loss=1.9, score_gap=0.1, train_minutes=0.5)
    table = gs.progan_table(gs.ProGANResults([stage], pd.DataFrame(), [], None))
    assert table["FID change over the last point (%)"].tolist() == [-5.1]
