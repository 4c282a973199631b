"""Far-tail log forms of the (noncentral) chi-square cdf against an independent mpmath series.

The reference sums F(x; n, lam) = e^(-lam/2 - x/2) sum_N (x/2)^(n/2+N) / Gamma(n/2+N+1) S_N, with
S_N = sum_{j<=N} (lam/2)^j / j! (all terms positive), in 25-digit arithmetic with an unbounded
exponent; it stops once the term ratio is provably below 1 and the remaining tail under 1e-20 of
the sum. The implementation instead uses scipy above e^-200 and a Poisson mixture with a downward
incomplete-gamma recurrence below, so the two share no code path.
"""
import math

import mpmath
import pytest

from toymodel import chisq
from toymodel import theory as T

REL_TOL = 1e-10          # stated relative accuracy of log F over the whole grid
NS = (1, 10, 1000, 3072, 10000)
LAMS = (0.0, 1.0, 100.0, 3600.0, 10000.0)
FRACTIONS = (1e-9, 1e-3, 0.1, 0.3, 0.5, 0.7)   # x = fraction * (n + lam): from the far left tail to the bulk


def mp_ncx2_logcdf(x: float, n: float, lam: float, dps: int = 25) -> float:
    with mpmath.workdps(dps):
        a, z, m = mpmath.mpf(n) / 2, mpmath.mpf(x) / 2, mpmath.mpf(lam) / 2
        term = mpmath.exp(a * mpmath.log(z) - mpmath.loggamma(a + 1))
        power, partial = mpmath.mpf(1), mpmath.mpf(1)
        total, tol, k, ak = term, mpmath.mpf(10) ** (5 - dps), 0, a
        while True:
            k += 1
            ak += 1
            term *= z / ak
            power *= m / k
            partial += power
            u = term * partial
            total += u
            ratio = x / (n + 2 * k + 2) * (1 + lam / (2 * k + 2))   # bounds every later term ratio
            if ratio < 1 and u * (ratio / (1 - ratio)) < tol * total:
                return float(mpmath.log(total) - m - z)


def _grid():
    for n in NS:
        for lam in LAMS:
            for q in FRACTIONS:
                yield q * (n + lam), n, lam


def test_log_ncx2_matches_mpmath_over_the_grid():
    worst, lowest = 0.0, 0.0
    for x, n, lam in _grid():
        ref = mp_ncx2_logcdf(x, n, lam)
        got = chisq.ncx2_logcdf(x, n, lam)
        err = abs(got - ref) / abs(ref)
        assert err <= REL_TOL, (x, n, lam, got, ref)
        if ref > -700.0:   # the linear form where it is representable
            assert chisq.ncx2_cdf(x, n, lam) == pytest.approx(math.exp(ref), rel=REL_TOL * max(1.0, abs(ref)))
        worst, lowest = max(worst, err), min(lowest, ref)
    assert lowest < -1e5      # the grid reaches log-cdf values below -1e5
    assert worst < REL_TOL


@pytest.mark.parametrize("x,n,lam", [(667.2, 3072, 3600.0), (900.0, 3072, 3600.0), (5.0, 10000, 10000.0)])
def test_mixture_path_alone_matches_mpmath(x, n, lam):
    # the far-tail branch by itself, where pruning by Poisson weight alone was off by tens to thousands of nats
    assert chisq._ncx2_logcdf_mixture(x, n, lam) == pytest.approx(mp_ncx2_logcdf(x, n, lam), rel=REL_TOL)


def test_log_exact_success_far_tail_eot_and_baseline():
    # eot clipped to l2 eps = 2 with d = 62: ncx2cdf(r^2; n, (d - eps)^2)
    got = T.log_exact_success("eot", 3072, 1.0, 30.0, d=62.0, eps=2.0)
    assert got == pytest.approx(mp_ncx2_logcdf(900.0, 3072, 3600.0), rel=REL_TOL)
    assert T.log_no_attack_success(3072, 1.0, 55.0, 100.0) == pytest.approx(
        mp_ncx2_logcdf(55.0 ** 2, 3072, 100.0 ** 2), rel=REL_TOL)
