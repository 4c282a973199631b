"""Theory functions against independent computations (hand-written pdf, quadrature, mpmath)."""
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

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


@pytest.mark.parametrize("x,n,lam", [(1500.0, 3072, 10.0), (2500.0, 3072, 300.0), (0.5, 10, 20.0), (90.0, 100, 4.0)])
def test_ncx2_logcdf_mixture_agrees_with_scipy(x, n, lam):
    assert T._ncx2_logcdf_mixture(x, n, lam) == pytest.approx(float(stats.ncx2.logcdf(x, n, lam)), rel=1e-9)


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
