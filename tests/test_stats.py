"""Paired differences, verdicts, power and calibration against scipy and hand-computed cases."""
import math

import numpy as np
import pytest
from scipy import stats as sp

from empirical.stats import (Difference, calibration, null_verdict, order_verdict, paired_difference, power,
                             samples_to_resolve, verdict)


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


@pytest.mark.parametrize("mean, se, sign, expected", [
    (4.0, 2.0, +1, "reproduced"),            # exactly 2 SE counts
    (-4.0, 2.0, +1, "contradicted"),
    (3.999, 2.0, +1, "inconclusive"),
    (-3.999, 2.0, +1, "inconclusive"),       # wrong sign within the noise: no evidence against the paper
    (-4.0, 2.0, -1, "reproduced"),
    (4.0, 2.0, -1, "contradicted"),
    (0.0, 0.0, +1, "inconclusive"),          # nothing moved
    (1.0, 0.0, +1, "reproduced"),            # every sample moved the same way
    (-1.0, 0.0, +1, "contradicted"),
    (5.0, float("nan"), +1, "inconclusive"),
    (float("nan"), 1.0, +1, "inconclusive"),
    (0.0, 1.0, -1, "inconclusive"),
])
def test_verdict_rule(mean, se, sign, expected):
    assert verdict(mean, se, sign) == expected


def test_verdict_needs_a_direction():
    with pytest.raises(ValueError, match="expected_sign"):
        verdict(1.0, 0.1, 0)


@pytest.mark.parametrize("mean, se, expected", [
    (0.5, 1.0, "reproduced"), (0.0, 1.49, "reproduced"), (0.0, 1.5, "inconclusive"), (2.5, 1.0, "inconclusive"),
    (4.0, 1.0, "contradicted"), (-3.0, 1.5, "contradicted"), (3.5, 2.0, "inconclusive"),
    (0.0, float("nan"), "inconclusive")])
def test_null_verdict_with_margin_3(mean, se, expected):
    assert null_verdict(mean, se, margin=3.0) == expected


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
    """The normal approximation against the verdict rule applied to simulated paired Bernoulli data."""
    rng = np.random.default_rng(1)
    n, hits, trials = 150, 0, 2000
    p_up, p_down = 0.2, 0.08                                           # d_i in {+1, 0, -1}
    effect = 100 * (p_up - p_down)
    sd = 100 * math.sqrt(p_up + p_down - (p_up - p_down) ** 2)
    for _ in range(trials):
        u = rng.random(n)
        d = paired_difference((u < p_up).astype(float), ((u >= p_up) & (u < p_up + p_down)).astype(float))
        hits += verdict(d.mean, d.se, +1) == "reproduced"
    assert abs(hits / trials - power(effect, sd, n)) < 0.04


def _diff(mean, se, n=50):
    return Difference(mean=mean, se=se, n=n, sd=se * math.sqrt(n))


def test_order_verdict_combines_steps_and_names_the_weakest():
    signs = [+1, +1]
    both = order_verdict([_diff(6, 2), _diff(9, 3)], signs)
    assert both.verdict == "reproduced" and both.steps == ("reproduced", "reproduced")
    one = order_verdict([_diff(10, 2), _diff(1, 2)], signs)
    assert one.verdict == "inconclusive" and one.weakest == 1 and one.weakest_z == pytest.approx(0.5)
    against = order_verdict([_diff(10, 2), _diff(-5, 2)], signs)
    assert against.verdict == "contradicted" and against.weakest == 1
    wrong_sign_within = order_verdict([_diff(-1, 2), _diff(10, 2)], [+1, +1])
    assert wrong_sign_within.verdict == "inconclusive" and wrong_sign_within.weakest == 0
    flipped = order_verdict([_diff(-6, 2)], [-1])
    assert flipped.verdict == "reproduced" and flipped.weakest_z == pytest.approx(3.0)
    unmeasured = order_verdict([_diff(10, 2), Difference(5.0, float("nan"), 1, float("nan"))], signs)
    assert unmeasured.verdict == "inconclusive" and unmeasured.weakest == 1
    with pytest.raises(ValueError, match="one expected sign"):
        order_verdict([_diff(1, 1)], [1, 1])


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
