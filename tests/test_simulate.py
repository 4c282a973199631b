"""Monte Carlo vs exact success within 4 standard errors; reduced vs n-dim sampler agreement."""
import math

import numpy as np
import pytest
from scipy import stats

from toymodel import simulate, theory

CASES = [  # (strategy, n, sigma, d, eps, norm, direction)
    ("perfect", 1, 1.0, 2.0, math.inf, "2", "axis"),
    ("eot", 1, 1.0, 2.0, 0.5, "2", "axis"),
    ("replay", 1, 1.0, 2.0, 0.5, "2", "axis"),
    ("perfect", 7, 0.7, 1.0, math.inf, "inf", "axis"),
    ("eot", 7, 1.0, 3.0, 1.0, "inf", "diagonal"),
    ("replay", 7, 1.0, 3.0, 1.0, "2", "axis"),
    ("perfect", 200, 1.0, 5.0, math.inf, "2", "axis"),
    ("eot", 200, 1.0, 8.0, 3.0, "2", "axis"),
    ("replay", 200, 1.0, 5.0, 10.0, "2", "axis"),
    ("eot", 3072, 1.0, 100.0, 1.5, "inf", "diagonal"),
    ("replay", 3072, 1.0, 5.0, 50.0, "2", "axis"),
    ("eot", 3072, 1.0, 0.0, math.inf, "2", "axis"),
    ("partial", 1, 1.0, 2.0, math.inf, "2", "axis"),
    ("partial", 7, 1.0, 3.0, math.inf, "inf", "diagonal"),
    ("partial", 200, 1.0, 5.0, math.inf, "2", "axis"),
    ("partial", 3072, 1.0, 80.0, math.inf, "2", "axis"),
    ("perfect", 3072, 1.0, 100.0, 180.0, "inf", "diagonal"),   # paper geometry: exact via negligible projection
    ("replay", 3072, 1.0, 100.0, 180.0, "inf", "axis"),
]


def _radii(strategy, n, sigma, d, eps, norm, direction):
    """Radii where the exact success spans 0.05 .. 0.95 (the informative part of the curve)."""
    qs = np.array([0.05, 0.2, 0.5, 0.8, 0.95])
    if strategy == "partial" or (strategy == "perfect" and not math.isinf(eps)):
        scale = 1.0 if strategy == "partial" else math.sqrt(2.0)   # partial sits just below eot
        return list(scale * sigma * np.sqrt(stats.chi2.ppf(qs, n)))
    if strategy == "replay" and norm == "inf":
        return [0.5 * sigma * math.sqrt(n)]
    x, lam = theory._noncentral_args(strategy, n, sigma, 1.0, d, eps, norm, direction)
    t = stats.ncx2.ppf(qs, n, lam) if lam > 0 else stats.chi2.ppf(qs, n)
    if strategy == "perfect":
        return list(sigma * np.sqrt(2 * t))
    if strategy == "replay":
        return list(sigma * np.sqrt(t) - eps)
    return list(sigma * np.sqrt(t))


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_mc_matches_exact_within_4_se(case):
    strategy, n, sigma, d, eps, norm, direction = case
    rs = [r for r in _radii(*case) if r > 0]
    trials = 4000 if n > 1000 and strategy != "eot" else 20000
    ests = simulate.estimate_curve(strategy, n, sigma, rs, d, eps, norm, direction, trials=trials, seed=7,
                                   sampler="ndim")
    informative = [e for e in ests if e.exact is not None and 0.01 < e.exact < 0.99]
    assert len(informative) >= 3 or (strategy == "replay" and ests[0].exact == 1.0)
    for e in ests:
        assert e.exact is not None
        assert abs(e.success - e.exact) <= 4 * math.sqrt(e.exact * (1 - e.exact) / e.trials) + 1e-12, e


@pytest.mark.parametrize("strategy,d,eps", [("perfect", 2.0, 1.0), ("perfect", 0.5, 3.0), ("perfect", 3.0, math.inf),
                                            ("replay", 2.0, 1.0), ("eot", 4.0, 1.0), ("partial", 2.0, 1.0),
                                            ("partial", 3.0, 4.0)])
@pytest.mark.parametrize("n", [1, 2, 40])
def test_reduced_agrees_with_ndim(strategy, d, eps, n):
    sigma = 1.0
    rs = list(np.sqrt(stats.chi2.ppf([0.1, 0.5, 0.9], n)) * sigma * (1.4 if strategy == "perfect" else 1.0))
    a = simulate.estimate_curve(strategy, n, sigma, rs, d, eps, "2", trials=8000, seed=1, sampler="ndim")
    b = simulate.estimate_curve(strategy, n, sigma, rs, d, eps, "2", trials=8000, seed=2, sampler="reduced")
    for ea, eb in zip(a, b):
        se = math.sqrt(max(ea.stderr**2 + eb.stderr**2, 2 * 0.5 / 8000 / 8000))
        assert abs(ea.success - eb.success) <= 4 * se, (ea, eb)


def test_fresh_noise_strategies_respect_their_covering_bound_and_replay_wins():
    n, sigma, r = 64, 1.0, 8.0
    for eps, norm in ((math.inf, "2"), (1.0, "2"), (0.2, "inf"), (30.0, "2")):
        for s in theory.FRESH_STRATEGIES:
            e = simulate.estimate(s, n, sigma, r, 3.0, eps, norm, trials=6000, seed=3)
            slack = 4 * math.sqrt(e.bound * (1 - e.bound) / e.trials) + 1.0 / e.trials
            assert e.success <= e.bound + slack and e.bound <= e.bound_fresh, e
    unclipped = {s: simulate.estimate(s, n, sigma, r, 3.0, trials=6000, seed=3) for s in theory.STRATEGIES}
    assert unclipped["replay"].success == 1.0
    assert unclipped["perfect"].success < unclipped["partial"].success < 1.0
    # partial cancellation is adversarial under eta0 yet exceeds Theorem 1's first bound by many SE
    p = unclipped["partial"]
    assert p.success > p.bound_full_cancel + 10 * p.stderr and p.bound_covers == theory.COVER_FRESH


def test_estimate_fields_and_validation():
    e = simulate.estimate("eot", 10, 1.0, 3.0, trials=500, seed=0)
    assert e.trials == 500 and e.exact == theory.bound_eot(10, 1.0, 3.0) and e.bound == e.exact
    assert set(e.as_row()) == {"n", "sigma", "r", "d", "direction", "eps", "norm", "strategy", "success",
                               "stderr", "trials", "exact", "bound", "bound_covers", "bound_full_cancel",
                               "bound_fresh", "baseline", "log_baseline", "x0_in_A", "A_in_threat", "p_projected"}
    assert e.baseline == theory.no_attack_success(10, 1.0, 3.0, 0.0) and e.x0_in_A and e.A_in_threat
    for kwargs, match in [(dict(sigma=-1.0), "sigma"), (dict(n=0), "n must"), (dict(strategy="x"), "strategy"),
                          (dict(norm="1"), "norm"), (dict(trials=0), "trials"), (dict(sampler="fast"), "sampler"),
                          (dict(norm="inf", eps=1.0, sampler="reduced"), "reduced"), (dict(threads=99), "threads"),
                          (dict(chunk=0), "chunk"), (dict(trials=simulate.MAX_TRIALS + 1), "trials"),
                          (dict(trials=True), "trials")]:
        args = dict(strategy="eot", n=10, sigma=1.0, r=3.0, trials=100)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            simulate.estimate(**args)
