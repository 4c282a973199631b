"""Theory functions against independent computations (hand-written pdf, quadrature, mpmath)."""
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from toymodel import chisq
from toymodel import theory as T


def _chi2_pdf(t, n):
    return math.exp((n / 2 - 1) * math.log(t) - t / 2 - (n / 2) * math.log(2) - special.gammaln(n / 2))


@pytest.mark.parametrize("n,x", [(1, 0.3), (3, 2.0), (10, 12.0), (50, 40.0)])
def test_psi_matches_integrated_pdf(n, x):
    value, _ = integrate.quad(_chi2_pdf, 0, x, args=(n,), limit=200)
    assert T.psi(x, n) == pytest.approx(value, rel=1e-7)


@pytest.mark.parametrize("n,x", [(3072, 1000.0), (10, 0.01), (10**6, 9e5), (10**6, 5e5)])
def test_log_psi_deep_tail_matches_mpmath(n, x):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    ref = float(mpmath.log(mpmath.gammainc(mpmath.mpf(n) / 2, 0, mpmath.mpf(x) / 2, regularized=True)))
    assert T.log_psi(x, n) == pytest.approx(ref, rel=1e-10)
    assert math.isfinite(T.log_psi(x, n))


@pytest.mark.parametrize("x,n,lam", [(1500.0, 3072, 10.0), (2500.0, 3072, 300.0), (0.5, 10, 20.0), (90.0, 100, 4.0),
                                     (2.0e4, 1.0e4, 1.0e4), (4500.0, 3072, 3600.0)])
def test_ncx2_logcdf_mixture_agrees_with_scipy(x, n, lam):
    assert chisq._ncx2_logcdf_mixture(x, n, lam) == pytest.approx(float(stats.ncx2.logcdf(x, n, lam)), rel=1e-9)


def test_ncx2_logcdf_finite_where_scipy_underflows():
    x, n, lam = 1.5e6, 3 * 10**6, 400.0
    assert stats.ncx2.cdf(x, n, lam) == 0.0
    value = T.ncx2_logcdf(x, n, lam)
    assert math.isfinite(value)
    assert value < T.log_psi(x, n)  # noncentrality only lowers the cdf


def _integrated_ncx2_cdf(x, n, a):
    """P(||a e1 + z||^2 <= x) = int phi(z1) Psi(x - (a + z1)^2; n - 1) dz1 (rotation invariance)."""
    lo, hi = -a - math.sqrt(x), -a + math.sqrt(x)
    f = lambda z: stats.norm.pdf(z) * stats.chi2.cdf(x - (a + z) ** 2, n - 1)
    return integrate.quad(f, lo, hi, points=[-a], limit=200)[0]


@pytest.mark.parametrize("n,sigma,r,d,eps,norm,direction", [
    (20, 1.0, 5.0, 3.0, 1.0, "2", "axis"),
    (20, 0.5, 2.5, 3.0, 1.0, "inf", "axis"),
    (16, 1.0, 5.0, 8.0, 1.0, "inf", "diagonal"),
    (200, 2.0, 29.0, 10.0, 4.0, "2", "axis"),
])
def test_eot_clipped_exact_matches_quadrature(n, sigma, r, d, eps, norm, direction):
    a = T.eot_offset_norm(n, d, eps, norm, direction)
    assert a > 0
    ref = _integrated_ncx2_cdf(r * r / sigma**2, n, a / sigma)
    assert T.exact_success("eot", n, sigma, r, d, eps, norm, direction) == pytest.approx(ref, rel=1e-6)


def test_diagonal_linf_offset_is_geometric():
    n, d, eps = 9, 6.0, 1.0
    c = T.centre(n, d, "diagonal")
    assert np.linalg.norm(c) == pytest.approx(d)
    assert T.eot_offset_norm(n, d, eps, "inf", "diagonal") == pytest.approx(np.linalg.norm(np.clip(c, -eps, eps) - c))


def test_replay_l2_exact_is_distance_to_ball():
    n, sigma, r, d, eps = 30, 1.0, 2.0, 3.0, 4.0
    ref = _integrated_ncx2_cdf((eps + r) ** 2 / sigma**2, n, d / sigma)
    assert T.exact_success("replay", n, sigma, r, d, eps, "2") == pytest.approx(ref, rel=1e-6)
    assert T.exact_success("replay", n, sigma, r, d) == 1.0
    assert T.exact_success("replay", n, sigma, r, d, eps, "inf") is None
    assert T.exact_success("perfect", n, sigma, r, d, eps, "2") is None


def test_unclipped_forms_are_theorem1_bounds():
    n, sigma, r = 3072, 1.0, 60.0
    assert T.exact_success("perfect", n, sigma, r, 5.0) == T.bound_perfect(n, sigma, r)
    assert T.exact_success("eot", n, sigma, r, 5.0) == T.bound_eot(n, sigma, r)
    assert T.bound_perfect(n, sigma, r) < T.bound_eot(n, sigma, r)
    assert math.exp(T.log_exact_success("eot", n, sigma, r, 5.0)) == pytest.approx(T.bound_eot(n, sigma, r), rel=1e-10)


def test_corollary_1_1_clt_and_limit():
    n = 10**6
    for x in (n - 2000.0, float(n), n + 1500.0):
        assert T.clt_psi(x, n) == pytest.approx(T.psi(x, n), abs=1e-3)
    assert T.clt_psi(0.0, 400) == pytest.approx(T.clt_limit(400), rel=1e-12)
    assert T.clt_limit(100) < 1e-12 and T.clt_limit(1) == pytest.approx(0.5 * special.erfc(0.5))
    assert T.clt_psi(float(n), n) == 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(sigma=-1.0), "sigma"), (dict(n=0), "n must"), (dict(n=2.5), "n must"),
    (dict(strategy="bpda"), "strategy"), (dict(norm="1"), "norm"), (dict(r=0.0), "r must"),
    (dict(eps=0.0), "eps"), (dict(direction="up"), "direction"), (dict(d=-1.0), "d must"),
])
def test_bad_parameters_raise(kwargs, match):
    args = dict(strategy="eot", n=10, sigma=1.0, r=1.0, d=0.0, eps=math.inf, norm="2", direction="axis")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        T.exact_success(**args)


def test_log_clt_forms_match_linear_ones():
    for n, x in ((64, 50.0), (400, 300.0)):
        assert math.exp(T.log_clt_psi(x, n)) == pytest.approx(T.clt_psi(x, n), rel=1e-10)
        assert math.exp(T.log_clt_limit(n)) == pytest.approx(T.clt_limit(n), rel=1e-10)
    assert math.isfinite(T.log_clt_limit(10**6))


def test_corollary_1_1_clt_is_a_bound_only_in_the_left_tail():
    n = 3072
    for x in (64.0, 1000.0, n - 6 * math.sqrt(2 * n)):     # far left tail: eq. (13) overstates Psi
        assert T.log_clt_psi(x, n) > T.log_psi(x, n)
    assert T.psi(float(n), n) > T.clt_psi(float(n), n) == 0.5  # near x = n it is not an upper bound


def _partial_mc(n, q, draws, seed):
    """Independent numpy Monte Carlo of the unconstrained partial-cancellation attack (sigma = 1)."""
    rng = np.random.default_rng(seed)
    eta0 = rng.standard_normal((draws, n))
    eta1 = rng.standard_normal((draws, n))
    rho = np.linalg.norm(eta0, axis=1, keepdims=True)
    t = np.maximum(0.0, 1.0 - q / rho)
    assert np.all(np.linalg.norm((1.0 - t) * eta0, axis=1) <= q + 1e-9)   # adversarial under eta0
    return np.mean(np.linalg.norm(eta1 - t * eta0, axis=1) <= q)


@pytest.mark.parametrize("n,q", [(1, 0.7), (3, 1.5), (12, 3.2)])
def test_partial_success_matches_independent_mc(n, q):
    draws = 200000
    p = T.partial_success(n, 1.0, q)
    assert abs(_partial_mc(n, q, draws, seed=n) - p) <= 4 * math.sqrt(p * (1 - p) / draws)


def test_partial_cancellation_beats_the_first_bound_but_not_the_second():
    n, sigma = 3072, 1.0
    for q in (53.0, math.sqrt(n), 57.0):
        partial = T.exact_success("partial", n, sigma, q)
        assert partial > 1e100 * T.bound_perfect(n, sigma, q)
        assert partial <= T.bound_eot(n, sigma, q)
    assert T.covering_bound("partial", n, sigma, 55.0) == (T.bound_eot(n, sigma, 55.0), T.COVER_FRESH)
    assert T.covering_bound("perfect", n, sigma, 55.0) == (T.bound_perfect(n, sigma, 55.0), T.COVER_EXACT)
    assert T.covering_bound("replay", n, sigma, 55.0)[1] == T.COVER_NONE


def test_covering_bound_of_projected_perfect():
    n, sigma, r = 64, 1.0, 9.0
    loose = T.covering_bound("perfect", n, sigma, r, 2.0, 3.0, "2")     # almost always projected
    tight = T.covering_bound("perfect", n, sigma, r, 12.0, 40.0, "2")   # c - eta0 almost never outside
    assert loose == (T.bound_eot(n, sigma, r), T.COVER_FRESH)
    assert tight[1] == T.COVER_PROJECTED
    assert tight[0] == pytest.approx(T.bound_perfect(n, sigma, r) + T.p_projected(n, sigma, 12.0, 40.0, "2"))


@pytest.mark.parametrize("norm,direction,eps", [("2", "axis", 9.0), ("inf", "axis", 1.5), ("inf", "diagonal", 1.2)])
def test_p_projected_and_clip_displacement_match_numpy(norm, direction, eps):
    n, sigma, d, draws = 20, 1.0, 3.0, 100000
    y = T.centre(n, d, direction) - sigma * np.random.default_rng(5).standard_normal((draws, n))
    outside = np.linalg.norm(y, axis=1) > eps if norm == "2" else np.any(np.abs(y) > eps, axis=1)
    p = T.p_projected(n, sigma, d, eps, norm, direction)
    assert abs(outside.mean() - p) <= 4 * math.sqrt(p * (1 - p) / draws)
    if norm == "inf":
        disp2 = np.sum((np.abs(y) - eps).clip(min=0.0) ** 2, axis=1)
        ref = T.linf_clip_displacement(n, sigma, d, eps, direction) ** 2
        assert abs(disp2.mean() - ref) <= 4 * disp2.std() / math.sqrt(draws)


def test_p_outside_bounds_the_partial_projection_rate():
    n, sigma, d, draws = 30, 1.0, 4.0, 50000
    rng = np.random.default_rng(9)
    eta0 = sigma * rng.standard_normal((draws, n))
    rho = np.linalg.norm(eta0, axis=1, keepdims=True)
    for r, eps, norm, direction in ((3.0, 8.0, "2", "axis"), (3.0, 6.0, "inf", "diagonal"), (2.0, 7.5, "inf", "axis")):
        y = T.centre(n, d, direction) - np.maximum(0.0, 1.0 - r / rho) * eta0
        out = (np.linalg.norm(y, axis=1) > eps) if norm == "2" else np.any(np.abs(y) > eps, axis=1)
        bound = T.p_outside("partial", n, sigma, r, d, eps, norm, direction)
        assert out.mean() <= bound + 4 * math.sqrt(bound / draws) + 1e-12
        assert bound < 1.0


def test_geometry_flags_and_containing_eps():
    n, d, r = 16, 5.0, 2.0
    assert not T.x0_in_A(d, r) and T.x0_in_A(d, d)
    for norm, direction in (("2", "axis"), ("inf", "axis"), ("inf", "diagonal")):
        eps = T.containing_eps(n, d, r, norm, direction)
        assert T.A_in_threat(n, d, r, eps, norm, direction) and not T.A_in_threat(n, d, r, 0.99 * eps, norm, direction)
        # the point of A farthest along the worst axis touches the threat set's boundary
        c = T.centre(n, d, direction)
        k = int(np.argmax(np.abs(c)))
        far = c.copy()
        far[k] += r
        assert (np.linalg.norm(far) if norm == "2" else np.abs(far).max()) == pytest.approx(eps)
    assert T.A_in_threat(n, d, r, math.inf, "2")


def test_exact_for_finite_eps_only_where_projection_is_negligible():
    n, sigma, r, d = 3072, 1.0, 55.0, 70.0
    wide = T.containing_eps(n, d, r, "inf", "diagonal")
    for s in ("perfect", "partial", "replay"):
        free = T.exact_success(s, n, sigma, r, d)
        assert T.exact_success(s, n, sigma, r, d, wide, "inf", "diagonal") == free
        assert T.exact_success(s, n, sigma, r, d, 1.0, "inf", "diagonal") is None
    log_free = T.log_exact_success("perfect", n, sigma, r, d)
    assert T.log_exact_success("perfect", n, sigma, r, d, wide, "inf", "diagonal") == log_free


def test_no_attack_baseline():
    n, sigma, r, d = 40, 1.0, 6.0, 3.0
    assert T.no_attack_success(n, sigma, r, d) == pytest.approx(_integrated_ncx2_cdf(r * r, n, d), rel=1e-6)
    assert T.no_attack_success(n, sigma, r, d) <= T.bound_eot(n, sigma, r)
    assert math.exp(T.log_no_attack_success(n, sigma, r, d)) == pytest.approx(T.no_attack_success(n, sigma, r, d))
