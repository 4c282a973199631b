"""The toy-model reading: noise fit on the Gaussian purifier, ray masses against Theorem 1's closed forms,
held-out streams, prediction against the exact survival of a linear model, and the Table 1 summary."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from empirical import predict
from empirical.noise import SampleFreshNoise, SampleReplayNoise
from empirical.predict import (PURPOSES, PredictSettings, RadialLaw, fit_noise, participation_ratio, predict_chunk,
                               psi_array, ray_scan, summarise)
from empirical.purifiers import make_purifier
from toymodel.theory import psi


def test_participation_ratio_isotropic_and_low_rank():
    g = torch.Generator().manual_seed(0)
    _, pr = participation_ratio(0.3 * torch.randn(64, 256, generator=g, dtype=torch.float64))
    assert abs(pr - 256) < 0.15 * 256          # bias-corrected: the naive ratio would be ~ 51
    basis = torch.linalg.qr(torch.randn(256, 6, generator=g, dtype=torch.float64))[0].T
    _, pr = participation_ratio(torch.randn(64, 6, generator=g, dtype=torch.float64) @ basis)
    assert abs(pr - 6) < 1.5


def test_noise_fit_recovers_sigma_and_n_of_the_gaussian_purifier():
    """P(x) = x + N(0, sigma^2 I), n = C H W = 256: with 64 draws sigma within 5% and n_eff within 10%
    (the estimators' spread over seeds is about 1% and 1.6%), and the mean within 4 SE of x."""
    sigma, k = 0.3, 64
    x = torch.full((1, 1, 16, 16), 0.5)
    draws = predict._purify_draws(make_purifier("gaussian", sigma=sigma), x, SampleFreshNoise([7] * k, 3), k, 4096)[0]
    fit = fit_noise(draws)
    assert fit.n_ambient == 256 and fit.draws == k
    assert abs(fit.sigma_sub / sigma - 1) < 0.05 and abs(fit.sigma_ambient / sigma - 1) < 0.05
    assert abs(fit.n_eff / 256 - 1) < 0.10
    assert float((fit.mean - x[0]).abs().max()) < 4 * sigma / math.sqrt(k) * 1.2
    assert torch.allclose(fit.deviations.sum(0), torch.zeros(256, dtype=torch.float64), atol=1e-9)


def test_noise_fit_of_low_rank_noise_and_of_no_noise():
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(256, 20, generator=g, dtype=torch.float64))[0].T
    draws = (0.2 * torch.randn(200, 20, generator=g, dtype=torch.float64) @ basis).view(200, 1, 16, 16)
    fit = fit_noise(draws)
    assert abs(fit.n_eff / 20 - 1) < 0.10 and abs(fit.sigma_sub / 0.2 - 1) < 0.05
    with pytest.raises(ValueError, match="stochastic"):
        fit_noise(torch.zeros(5, 1, 4, 4))
    with pytest.raises(ValueError, match="K >= 3"):
        fit_noise(torch.rand(2, 1, 4, 4))


def test_radial_law_is_theorem_1_psi():
    law = RadialLaw(sigma=0.5, n=20.0)
    for s in (0.5, 2.0, 2.3, 4.0):
        assert law.cdf(np.array([s]))[0] == pytest.approx(psi(s ** 2 / 0.25, 20))
    assert psi_array(np.array([9.0, 36.0]), 20) == pytest.approx([psi(9.0, 20), psi(36.0, 20)])
    grid = law.grid(8)
    assert grid[0] == 0 and np.all(np.diff(grid) > 0)
    assert np.diff(law.cdf(grid))[:-1] == pytest.approx(np.full(7, 1 / 8))        # equal-mass cells


class Ball(torch.nn.Module):
    """Class 1 inside B2(c, r), class 0 outside."""

    def __init__(self, c, r):
        super().__init__()
        self.c, self.r = c, r

    def forward(self, x):
        inside = (x - self.c).flatten(1).norm(dim=1) <= self.r
        return torch.stack([(~inside).float(), inside.float()], dim=1)


class Shell(torch.nn.Module):
    """Class 1 (the true class) only in the shell 1 <= ||x|| <= 2: adversarial inside and outside it."""

    def forward(self, x):
        r = x.flatten(1).norm(dim=1)
        inside = (r >= 1) & (r <= 2)
        return torch.stack([(~inside).float(), inside.float()], dim=1)


@pytest.mark.parametrize("sigma", [0.12, 0.16, 0.25])
def test_ray_mass_in_a_ball_centred_at_the_origin_is_psi(sigma):
    """A = B(0, r) around the origin: every ray gives Theorem 1's Psi(r^2 / sigma^2; n) (up to the bisection)."""
    n, r = 16.0, 0.7
    c = torch.zeros(1, 4, 4, dtype=torch.float64)
    law = RadialLaw(sigma, n)
    dirs = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scan = ray_scan(Ball(c, r), c, 0, dirs, law.grid(8), iters=30)
    assert scan.mass(law) == pytest.approx(np.full(6, psi(r ** 2 / sigma ** 2, 16)), abs=1e-6)
    assert scan.first_crossing() == pytest.approx(np.full(6, r), abs=1e-6)


def test_ray_mass_of_a_non_convex_region_counts_every_segment():
    """From the origin, the adversarial set of Shell is ||x|| < 1 and ||x|| > 2: mass Psi(1/s^2) + 1 - Psi(4/s^2)."""
    law = RadialLaw(0.4, 9.0)                                  # the law straddles both boundaries
    origin = torch.zeros(1, 3, 3, dtype=torch.float64)
    dirs = torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    scan = ray_scan(Shell(), origin, 1, dirs, law.grid(8), iters=30)
    expected = psi(1 / 0.16, 9) + 1 - psi(4 / 0.16, 9)
    assert 0.2 < expected < 0.8
    assert scan.mass(law) == pytest.approx(np.full(5, expected), abs=1e-6)
    assert scan.first_crossing() == pytest.approx(np.ones(5), abs=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        ray_scan(Shell(), origin, 1, torch.ones(2, 1, 2, 2, dtype=torch.float64), law.grid(4))


def _linear_case(n=16, sigma=0.3, seed=0):
    """Binary linear model on 8x8 inputs, label 0, placed so the exact fresh-noise survival
    Phi(w.x / (sigma ||w||)) of the Gaussian purifier spans 0.16 .. 0.93."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(64, generator=g, dtype=torch.float64) * 0.2
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(64, dtype=torch.float64), w]))
        model[1].bias.zero_()
    base = 0.5 + 0.1 * torch.rand(n, 64, generator=g, dtype=torch.float64)
    target = torch.linspace(-1.0, 1.5, n, dtype=torch.float64) * sigma * w.norm()
    x = (base + ((target - base @ w) / (w @ w))[:, None] * w).view(n, 1, 8, 8)
    exact = np.array([stats.norm.cdf(float(t) / (sigma * float(w.norm()))) for t in target])
    return model.eval(), x, torch.zeros(n, dtype=torch.long), exact


def _streams(seeds):
    return lambda purpose, ids: SampleFreshNoise(ids, seeds[purpose])


SEEDS = {p: 11 + j for j, p in enumerate(PURPOSES)}


def _run(model, x, y, seeds=SEEDS, settings=None, ids=None, pur=None):
    n = len(y)
    ids = torch.arange(100, 100 + n) if ids is None else ids
    return predict_chunk(model, pur or make_purifier("gaussian", sigma=0.3), x, y, ids, SampleReplayNoise(ids, 3),
                         _streams(seeds), [False] * n, [True] * n, settings or PredictSettings(samples=n, fit_draws=32))


def test_prediction_on_the_gaussian_purifier_matches_the_exact_survival():
    """Half-space region, isotropic noise: the reading is exact up to the fitted mean and the finite directions,
    so p_fresh follows Phi(margin / (sigma ||w||)) per sample; the held-out survival does too."""
    model, x, y, exact = _linear_case()
    recs = _run(model, x, y)
    p = np.array([r["fit"]["p_fresh"] for r in recs])
    surv = np.array([r["eval"]["survival"] for r in recs])
    assert np.abs(p - exact).mean() < 0.08 and np.abs(p - exact).max() < 0.2
    assert abs(p.mean() - exact.mean()) < 0.05                                  # unbiased on average
    assert np.corrcoef(p, exact)[0, 1] > 0.95
    assert abs(surv.mean() - exact.mean()) < 4 * math.sqrt(np.mean(exact * (1 - exact)) / (6 * len(exact)))
    assert {r["fit"]["n_ambient"] for r in recs} == {64} and len({r["id"] for r in recs}) == len(recs)


def test_fit_and_eval_use_separate_streams_and_chunks_do_not_matter():
    model, x, y, _ = _linear_case(n=6)
    settings = PredictSettings(samples=6, fit_draws=8, eval_draws=4, directions=8)
    base = _run(model, x, y, settings=settings)
    other_eval = _run(model, x, y, seeds={**SEEDS, "predict_eval": 99}, settings=settings)
    other_fit = _run(model, x, y, seeds={**SEEDS, "predict_fit": 98}, settings=settings)
    assert [r["fit"] for r in other_eval] == [r["fit"] for r in base]          # eval draws never reach the fit
    assert [r["eval"] for r in other_eval] != [r["eval"] for r in base]
    assert [r["eval"] for r in other_fit] == [r["eval"] for r in base]         # nor the fit draws the eval
    assert [r["fit"] for r in other_fit] != [r["fit"] for r in base]
    ids = torch.arange(100, 106)
    halves = (predict_chunk(model, make_purifier("gaussian", sigma=0.3), x[s], y[s], ids[s],
                            SampleReplayNoise(ids[s], 3), _streams(SEEDS), [False] * 3, [True] * 3, settings)
              for s in (slice(0, 3), slice(3, 6)))
    assert sum(halves, []) == base                                              # keyed per sample


def test_selection_cap_and_bad_input():
    model, x, y, _ = _linear_case(n=4)
    ids = torch.arange(4)
    pur = make_purifier("gaussian", sigma=0.3)
    settings = PredictSettings(samples=1, fit_draws=4, eval_draws=2, directions=4)
    recs = predict_chunk(model, pur, x, y, ids, SampleReplayNoise(ids, 0), _streams(SEEDS),
                         [True, False, False, False], [True, False, True, True], settings)
    assert [r["id"] for r in recs] == [2]                      # correct clean, fooled under replay, first only
    assert len(recs[0]["eval"]["fooled"]) == 2 and recs[0]["fit"]["draws"] == 4
    with pytest.raises(ValueError, match="deterministic"):
        predict_chunk(model, make_purifier("none"), x, y, ids, None, _streams(SEEDS), [False] * 4, [True] * 4, settings)
    with pytest.raises(ValueError, match="entries"):
        predict_chunk(model, pur, x, y, ids, None, _streams(SEEDS), [False] * 3, [True] * 4, settings)
    with pytest.raises(ValueError, match="fit_draws"):
        PredictSettings(fit_draws=2)


def test_summarise_builds_the_table_block_by_hand():
    def sample(i, p, perfect, surv):
        return {"id": i, "fit": {"p_fresh": p, "p_perfect": perfect, "sigma_ambient": 0.1, "sigma_sub": 0.2,
                                 "n_eff": 5.0, "noise_radius": 0.45, "r_median_from_mean": 1.0,
                                 "r_median_from_replay": 2.0, "n_ambient": 64},
                "eval": {"draws": 4, "fooled": [], "survival": surv}}
    chunks = [{"clean_replay": [[1, 1, 1, 0]], "bpda_replay": [[1, 0, 0, 0]],
               "bpda_replay_tested_fresh": [[1, 1, 0, 0], [1, 0, 1, 0]],
               "prediction": [sample(1, 0.5, 0.9, 0.5), sample(2, 0.25, 0.8, 0.25)]}]
    out = summarise(chunks)
    assert out["measured_samples"] == 2 and out["fooled_fraction"] == 0.5 and out["replay_accuracy"] == 25.0
    assert out["predicted_accuracy"] == pytest.approx(25 + 50 * 0.625)         # 1 - p averages 0.625
    assert out["predicted_drop"] == pytest.approx(50 * 0.625)
    assert out["predicted_accuracy_se"] == pytest.approx(50 * np.std([0.5, 0.75], ddof=1) / math.sqrt(2))
    assert out["eval_accuracy"] == pytest.approx(out["predicted_accuracy"])    # survival equals p here
    assert out["measured_accuracy"] == pytest.approx(50.0)                     # per-sample means 1, .5, .5, 0
    assert out["measured_drop"]["mean"] == pytest.approx(25.0)
    assert out["calibration"]["brier"] == 0 and out["calibration_perfect"]["brier"] > 0
    assert summarise([{"clean_replay": [[1]], "bpda_replay": [[1]]}]) == {"measured_samples": 0}
    capped = {"clean_replay": [[1, 1, 1, 1]], "bpda_replay": [[0, 0, 0, 0]], "prediction": [sample(9, 1.0, 1.0, 1.0)]}
    two = summarise([{**chunks[0], "prediction": [sample(1, 0.0, 0, 0.0), sample(2, 0.0, 0, 0.0)]}, capped])
    assert two["predicted_accuracy"] == pytest.approx(100 * (1 + 2 * 1.0 + 4 * 0.0) / 8)   # chunks weighted by fooled


