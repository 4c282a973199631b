"""Toy PGD: fresh / EOT-k / replayed noise reproduce Theorem 1 and Corollary 2.1."""
import math

import pytest

from toymodel import theory
from toymodel.gradient import pgd

N, SIGMA, R, D = 32, 1.0, 6.0, 2.0


def _within(res, exact):
    return abs(res.success - exact) <= 4 * math.sqrt(exact * (1 - exact) / res.trials) + 1e-12


def test_gd_half_step_gives_exact_closed_forms():
    # step 1/2 on ||x + eta - c||^2 jumps to c - eta: fresh -> Psi(r^2/2s^2), EOT-k -> Psi(r^2/((1+1/k)s^2))
    k = 4
    fresh = pgd("fresh", N, SIGMA, 7.5, D, step_rule="gd", steps=5, trials=4000, seed=1)
    eot = pgd("eot", N, SIGMA, R, D, step_rule="gd", steps=5, eot_k=k, trials=4000, seed=2)
    replay = pgd("replay", N, SIGMA, R, D, step_rule="gd", steps=5, trials=500, seed=3)
    assert _within(fresh, theory.bound_perfect(N, SIGMA, 7.5))
    assert _within(eot, theory.psi(R**2 / ((1 + 1 / k) * SIGMA**2), N))
    assert replay.success == 1.0 and replay.mean_test_distance < 1e-9


def test_gd_replay_with_l2_clipping_matches_ncx2():
    eps = 4.5
    res = pgd("replay", N, SIGMA, 1.5, D, eps=eps, step_rule="gd", steps=3, trials=4000, seed=4)
    assert _within(res, theory.exact_success("replay", N, SIGMA, 1.5, D, eps, "2"))


@pytest.mark.parametrize("rule,norm", [("l2", "2"), ("sign", "inf")])
def test_iterative_pgd_mechanism(rule, norm):
    r = math.sqrt(N) * SIGMA
    res = {m: pgd(m, N, SIGMA, r, D, norm=norm, step_rule=rule, steps=20, trials=3000, seed=5) for m in ("fresh", "eot", "replay")}
    bound = theory.bound_eot(N, SIGMA, r)
    assert res["replay"].success == 1.0
    for m in ("fresh", "eot"):
        assert res[m].success <= bound + 4 * res[m].stderr
    assert res["eot"].success > res["fresh"].success + 2 * math.hypot(res["eot"].stderr, res["fresh"].stderr)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        pgd("bpda", N, SIGMA, R)
    with pytest.raises(ValueError, match="step_rule"):
        pgd("fresh", N, SIGMA, R, step_rule="adam")
    with pytest.raises(ValueError, match="sigma"):
        pgd("fresh", N, -1.0, R)
    with pytest.raises(ValueError, match="steps"):
        pgd("fresh", N, SIGMA, R, steps=0)
    with pytest.raises(ValueError, match="trials"):
        pgd("fresh", N, SIGMA, R, trials=10**8 + 1)


def test_small_step_fresh_pgd_sits_between_the_two_bounds():
    # paper geometry (d > r): l2 PGD averages its noise draws, beating the first bound (which is exact only
    # for full cancellation) while staying under the second, which covers every fresh-noise attack
    d = 10.0
    res = pgd("fresh", N, SIGMA, R, d, step_rule="l2", steps=20, trials=3000, seed=6)
    assert res.success > theory.bound_perfect(N, SIGMA, R) + 10 * res.stderr
    assert res.success <= theory.bound_eot(N, SIGMA, R) + 4 * res.stderr
    assert theory.no_attack_success(N, SIGMA, R, d) < 1e-3
