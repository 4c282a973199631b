"""Paired differences, verdicts, power and calibration against scipy and hand-computed cases."""
import math

import numpy as np
import pytest
from scipy import stats as sp

from empirical.stats import Difference, calibration, paired_difference, power, samples_to_resolve


def test_paired_difference_hand_case_and_scipy():
    a, b = [1, 1, 0, 1, 1], [0, 1, 0, 0, 1]
    d = paired_difference(a, b)
    diffs = np.array(a, float) - np.array(b, float)
    assert d.n == 5 and d.mean == pytest.approx(40.0)
    assert d.sd == pytest.approx(100 * math.sqrt(0.3))                       # var([1,0,0,1,0], ddof=1) = 0.3
    assert d.se == pytest.approx(100 * sp.sem(diffs))
    assert d.z == pytest.approx(sp.ttest_rel(np.array(a, float), np.array(b, float)).statistic)


def test_paired_difference_averages_draws_and_pairs_the_samples():
    fresh = [[1, 0, 1], [1, 1, 0]]                                           # R = 2 draws of N = 3 samples
    d = paired_difference(fresh, [1, 0, 0])
    assert d.mean == pytest.approx(100 * np.mean([0.0, 0.5, 0.5]))
    rng = np.random.default_rng(0)
    base = rng.random(200) < 0.5
    moved = base | (rng.random(200) < 0.2)                                   # same samples, some flipped up
    paired = paired_difference(moved, base)
    unpaired = 100 * math.sqrt(moved.var(ddof=1) / 200 + base.var(ddof=1) / 200)
    assert paired.se < 0.7 * unpaired                                        # pairing removes between-sample spread


def test_paired_difference_single_sample_and_bad_input():
    one = paired_difference([1], [0])
    assert one.mean == 100 and math.isnan(one.se) and math.isnan(one.sd) and math.isnan(one.z)
    with pytest.raises(ValueError, match="same samples"):
        paired_difference([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([float("nan")], [0])


def test_samples_to_resolve_hand_cases_and_boundary():
    assert samples_to_resolve(10.0, 50.0) == 100                     # (2 * 50 / 10)^2 exactly
    assert samples_to_resolve(-10.0, 50.0) == 100
    assert samples_to_resolve(7.0, 40.0) == 131                      # (80 / 7)^2 = 130.6
    assert samples_to_resolve(10.0, 0.0) == 2
    for effect, sd in [(3.0, 47.0), (21.8, 45.0), (0.5, 9.9)]:
        n = samples_to_resolve(effect, sd)
        assert effect >= 2 * sd / math.sqrt(n) - 1e-12                # resolved at n ...
        assert n == 2 or effect < 2 * sd / math.sqrt(n - 1)           # ... and not at n - 1
    with pytest.raises(ValueError, match="effect"):
        samples_to_resolve(0.0, 1.0)
    with pytest.raises(ValueError, match="per_sample_sd"):
        samples_to_resolve(1.0, float("nan"))


def test_power_is_the_normal_cdf_and_half_at_the_resolving_n():
    for effect, sd, n, z in [(10, 50, 100, 2.0), (5, 30, 64, 2.0), (2, 45, 500, 1.96), (-8, 40, 30, 2.5)]:
        assert power(effect, sd, n, z) == pytest.approx(sp.norm.cdf(abs(effect) * math.sqrt(n) / sd - z), rel=1e-12)
    assert power(10.0, 50.0, samples_to_resolve(10.0, 50.0)) == pytest.approx(0.5)
    assert power(10.0, 50.0, 200) > power(10.0, 50.0, 100)
    assert power(1.0, 0.0, 3) == 1.0
    with pytest.raises(ValueError, match="n must"):
        power(1.0, 1.0, 0)


def test_power_matches_simulated_verdicts():
    """The normal approximation against the 2-SE rule applied to simulated paired Bernoulli data."""
    rng = np.random.default_rng(1)
    n, hits, trials = 150, 0, 2000
    p_up, p_down = 0.2, 0.08                                           # d_i in {+1, 0, -1}
    effect = 100 * (p_up - p_down)
    sd = 100 * math.sqrt(p_up + p_down - (p_up - p_down) ** 2)
    for _ in range(trials):
        u = rng.random(n)
        d = paired_difference((u < p_up).astype(float), ((u >= p_up) & (u < p_up + p_down)).astype(float))
        hits += d.mean >= 2 * d.se                                  # the 2-SE rule power describes
    assert abs(hits / trials - power(effect, sd, n)) < 0.04


def test_calibration_hand_case():
    pred, meas = np.array([0.1, 0.3, 0.9, 0.8]), np.array([0.0, 0.5, 1.0, 0.5])
    c = calibration(pred, meas, bins=2, draws=2)
    assert c["brier"] == pytest.approx(np.mean([0.01, 0.04, 0.01, 0.09]))
    loo = np.array([2.0, 1.5, 1.0, 1.5]) / 3                          # mean of the other three
    assert c["brier_baseline"] == pytest.approx(np.mean((loo - meas) ** 2))
    assert c["gain"] == pytest.approx(c["brier_baseline"] - c["brier"])
    assert c["brier_floor"] == pytest.approx(np.mean(meas * (1 - meas)) / 1)
    lo, hi = c["bins"]
    assert (lo["count"], hi["count"]) == (2, 2)
    assert lo["predicted"] == pytest.approx(0.2) and hi["measured"] == pytest.approx(0.75)
    assert c["bins"][1]["hi"] == 1.0 and calibration([1.0], [1.0], bins=5)["bins"][4]["count"] == 1


def test_calibration_separates_a_good_predictor_from_the_constant():
    rng = np.random.default_rng(2)
    truth = rng.uniform(0, 1, 400)
    draws = 8
    meas = rng.binomial(draws, truth) / draws
    good = calibration(truth, meas, draws=draws)
    assert good["verdict"] == "reproduced" and good["brier"] < good["brier_baseline"]
    assert abs(good["brier"] - good["brier_floor"]) < 0.01              # a perfect predictor sits at the floor
    useless = calibration(rng.uniform(0, 1, 400), meas, draws=draws)
    assert useless["verdict"] == "contradicted"
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        calibration([1.2], [0.5])


# ---- exact paired tests, TOST, Holm, power ----

from itertools import product

from empirical.stats import (PairedTest, directional_verdict, equivalence_test, equivalence_verdict, holm,
                             signflip_equivalence, signflip_test,
                             paired_test, samples_for_power)


def _brute_signflip(d):
    """Two-sided p and one-sided tails of sum(d) over all 2^n sign flips (the definition)."""
    d = np.asarray(d, float)
    sums = np.array([np.dot(s, d) for s in product((1, -1), repeat=d.size)])
    obs = d.sum()
    up, down = np.mean(sums >= obs - 1e-12), np.mean(sums <= obs + 1e-12)
    return min(1.0, 2 * min(up, down)), up, down


def test_mcnemar_matches_scipy_binomtest():
    rng = np.random.default_rng(1)
    for n in (5, 30, 200):
        a, b = rng.random(n) < 0.6, rng.random(n) < 0.4
        t = paired_test(a, b)
        bb, cc = int((a & ~b).sum()), int((~a & b).sum())
        assert t.test == "exact McNemar" and t.discordant == (bb, cc) and t.n == n
        expect = sp.binomtest(bb, bb + cc, 0.5).pvalue if bb + cc else 1.0
        assert t.p == pytest.approx(expect, rel=1e-9)
        assert t.mean == pytest.approx(100 * (bb - cc) / n)
        assert (t.ci[0] <= 0 <= t.ci[1]) == (t.p >= 0.05)


def test_mcnemar_edge_cases():
    none = paired_test([1, 0, 1], [1, 0, 1])                  # 0 discordant pairs
    assert none.p == 1.0 and none.statistic == 0.0 and none.discordant == (0, 0) and none.ci[0] < 0 < none.ci[1]
    four = paired_test([1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0])  # all discordant one way
    assert four.discordant == (4, 0) and four.p == pytest.approx(0.125) and four.statistic == pytest.approx(2.0)
    assert four.ci[0] < 0                                     # p = 0.125: the interval keeps 0
    six = paired_test([0] * 6, [1] * 6)
    assert six.p == pytest.approx(2 / 64) and six.ci[1] < 0 and six.mean == -100.0
    assert math.isfinite(six.statistic)                       # SE 0, yet a finite statistic
    one = paired_test([1], [0])
    assert one.n == 1 and one.p == 1.0 and math.isnan(one.se) and one.to_dict()["se"] is None


@pytest.mark.parametrize("seed", range(6))
def test_signflip_matches_brute_force_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 11))
    a = rng.integers(0, 2, size=(3, n))                      # 3 draws: per-sample rates on a grid of 1/3
    b = rng.integers(0, 2, size=(2, n))                      # 2 draws: a grid of 1/2
    t = paired_test(a, b)
    d = a.mean(0) - b.mean(0)
    assert t.test == "exact sign-flip" and t.discordant is None
    assert t.p == pytest.approx(_brute_signflip(d)[0], abs=1e-12)
    assert (t.ci[0] <= 0 <= t.ci[1]) == (t.p > 0.05)


def test_signflip_interval_inverts_the_exact_test():
    rng = np.random.default_rng(7)
    d = np.round(rng.normal(0.3, 0.3, 9) * 4) / 4
    d = np.clip(d, -1, 1)
    t = paired_test(np.clip(d, 0, 1), np.clip(-d, 0, 1))
    lo, hi = t.ci[0] / 100, t.ci[1] / 100
    for delta, kept in ((lo + 1e-6, True), (hi - 1e-6, True), (lo - 1e-3, False), (hi + 1e-3, False)):
        _, up, down = _brute_signflip(d - delta)
        assert (min(up, down) > 0.025) == kept, (delta, up, down)


def test_signflip_normal_approximation_above_the_stated_rule():
    rng = np.random.default_rng(3)
    a, b = rng.random(400), rng.random(400) * 0.9              # not on any grid: the normal approximation
    t = paired_test(a, b)
    d = a - b
    z = d.sum() / math.sqrt((d ** 2).sum())
    assert t.test == "paired z (normal)" and t.statistic == pytest.approx(z)
    assert t.p == pytest.approx(2 * sp.norm.sf(abs(z)))
    assert t.p == pytest.approx(sp.ttest_rel(a, b).pvalue, rel=0.25)      # uncentred variance: close to t
    assert (t.ci[0] <= 0 <= t.ci[1]) == (t.p > 0.05)


def test_paired_test_rejects_bad_input():
    with pytest.raises(ValueError, match="same samples"):
        paired_test([1, 0], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        paired_test([2.0, 0], [1, 0])


def test_equivalence_test_hand_cases_and_zero_discordant_pairs():
    same = equivalence_test([1, 0] * 50, [1, 0] * 50, margin=5)
    # 0 of 100 discordant each way: the bound 1 - (alpha / 2)^(1/100) < 0.05 first at alpha = 2 * 0.95^100
    assert same.p == pytest.approx(2 * 0.95 ** 100, rel=1e-6) and same.discordant == (0, 0)
    assert equivalence_verdict(same, 5, same.p) == "reproduced" and same.statistic > 0
    sixteen = equivalence_test([1, 0] * 8, [1, 0] * 8, margin=5)      # 0 of 16 discordant is no evidence of +-5
    assert sixteen.p > 0.5 and sixteen.statistic < 0 and equivalence_verdict(sixteen, 5, sixteen.p) == "inconclusive"
    far = equivalence_test([1] * 40, [0] * 40, margin=5)              # a 100-point change
    assert far.p == 1.0 and equivalence_verdict(far, 5, far.p) == "contradicted"


def test_equivalence_test_never_exceeds_alpha_at_the_band_edge():
    """Paired yes/no outcomes whose true difference sits exactly on the band edge (+5 points)."""
    rng = np.random.default_rng(9)
    hits = 0
    for _ in range(300):
        u = rng.random(120)
        a = (u < 0.06) | (u > 0.5)                                   # a > b w.p. 0.06, a < b w.p. 0.01
        b = ((u >= 0.06) & (u < 0.07)) | (u > 0.5)
        hits += equivalence_test(a, b, margin=5).p < 0.05
    assert hits / 300 <= 0.05


def test_equivalence_test_on_rates_over_draws():
    a = np.array([[1, 1, 0, 1] * 30, [1, 0, 0, 1] * 30], float)       # R = 2 draws: rates on a grid of 1/2
    b = np.array([1, 1, 0, 1] * 30, float)
    t = equivalence_test(a, b, margin=20)
    assert t.test == "TOST exact (Clopper-Pearson)" and t.mean == pytest.approx(-12.5)
    assert t.ci[0] < -12.5 < t.ci[1] and t.p < 0.05


def _fake(ci, test="TOST exact sign-flip", mean=0.0):
    return PairedTest(test, 0.0, 0.5, 10, None, mean, 1.0, ci)


@pytest.mark.parametrize("ci,expected", [((5.0, 9.0), "contradicted"), ((4.99, 9.0), "inconclusive"),
                                         ((-9.0, -5.0), "contradicted"), ((-9.0, -4.99), "inconclusive"),
                                         ((-4.9, 4.9), "inconclusive")])
def test_equivalence_verdict_at_both_edges_of_the_band(ci, expected):
    assert equivalence_verdict(_fake(ci), 5.0, p_adjusted=0.5) == expected


def test_equivalence_verdict_uses_the_adjusted_p():
    assert equivalence_verdict(_fake((-4.0, 4.0)), 5.0, p_adjusted=0.049) == "reproduced"
    assert equivalence_verdict(_fake((-4.0, 4.0)), 5.0, p_adjusted=0.05) == "inconclusive"
    with pytest.raises(ValueError, match="equivalence_test"):
        equivalence_verdict(_fake((-4.0, 4.0), test="exact McNemar"), 5.0, 0.01)


def test_holm_hand_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])              # capped at 1
    assert holm([]) == [] and holm([0.2]) == [0.2]
    with pytest.raises(ValueError, match="p-values"):
        holm([0.1, float("nan")])


@pytest.mark.parametrize("mean,p,sign,expected", [(3.0, 0.01, 1, "reproduced"), (-3.0, 0.01, 1, "contradicted"),
                                                  (3.0, 0.06, 1, "inconclusive"), (-3.0, 0.01, -1, "reproduced"),
                                                  (0.0, 0.0, 1, "inconclusive")])
def test_directional_verdict(mean, p, sign, expected):
    assert directional_verdict(_fake((0, 0), test="exact McNemar", mean=mean), sign, p) == expected


def test_samples_for_power_formula_and_simulated_power():
    n = samples_for_power(10.0, 40.0)
    assert n == math.ceil(((sp.norm.ppf(0.975) + sp.norm.ppf(0.8)) * 40 / 10) ** 2)
    assert samples_for_power(10.0, 40.0, power=0.5) < n < 2.2 * samples_for_power(10.0, 40.0, power=0.5)
    rng = np.random.default_rng(5)
    d = rng.normal(10.0, 40.0, size=(4000, n))
    z = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    assert np.mean(np.abs(z) > sp.norm.ppf(0.975)) == pytest.approx(0.8, abs=0.03)


def test_signflip_test_real_values_small_n_is_exact_by_enumeration():
    d = np.array([0.31, 0.12, -0.05, 0.44, 0.27, 0.18])       # off any grid
    t = signflip_test(d)
    assert t.test == "exact sign-flip" and t.p == pytest.approx(_brute_signflip(d)[0], abs=1e-12)
    assert t.mean == pytest.approx(d.mean()) and (t.ci[0] <= 0 <= t.ci[1]) == (t.p > 0.05)
    four = signflip_test([0.5, 0.4, 0.3, 0.2])                # 4 images cannot reject at 0.05
    assert four.p == pytest.approx(0.125) and four.ci == (-math.inf, math.inf)
    assert four.to_dict()["ci"] == [None, None]


def test_signflip_equivalence_real_values():
    rng = np.random.default_rng(8)
    d = rng.normal(0.0, 0.05, 12)
    t = signflip_equivalence(d, 0.3)
    expect = max(_brute_signflip(d + 0.3)[1], _brute_signflip(0.3 - d)[1])
    assert t.test == "TOST exact sign-flip" and t.p == pytest.approx(expect, abs=1e-12) and t.p < 0.001
