"""Central and noncentral chi-square cdfs, in linear and log space (paper Theorem 1, Cor. 1.1).

Psi(x; n) is the chi-square(n) cdf of Theorem 1. The noncentral cdf F(x; n, lam) gives every
fixed attack point tested under fresh noise (paper_checks.md, "Noncentral chi-square closed
forms"). The log forms stay finite far below the float range: scipy's ``logcdf`` is log(cdf) and
returns -inf once the cdf underflows (about 1e-308).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

_TINY = math.exp(-700.0)
_SCIPY_NCX2_FLOOR = math.exp(-200.0)
_MAX_POISSON_TERMS = 5_000_000


def psi(x: float, n: int) -> float:
    """Psi(x; n): the chi-square(n) cdf of Theorem 1."""
    return float(stats.chi2.cdf(x, n))


def _log_lower_gamma_series(a: float, z: float) -> float:
    """log P(a, z) (regularized lower incomplete gamma) by its power series, valid for z < a + 1:
    P = z^a e^-z / Gamma(a+1) * sum_k z^k / ((a+1)...(a+k))."""
    if z <= 0.0:
        return -math.inf
    term, total, k = 1.0, 1.0, 1
    while term > 1e-17 * total and k < 100000:
        term *= z / (a + k)
        total += term
        k += 1
    return a * math.log(z) - z - special.gammaln(a + 1.0) + math.log(total)


def log_psi(x: float, n: int) -> float:
    """log Psi(x; n), accurate where Psi underflows (scipy's logcdf is log(cdf) and gives -inf)
    and near 1 (log1p of the survival function)."""
    if x <= 0.0:
        return -math.inf
    value = float(stats.chi2.cdf(x, n))
    if value > 0.5:
        return math.log1p(-float(stats.chi2.sf(x, n)))
    if value > _TINY:
        return math.log(value)
    return _log_lower_gamma_series(0.5 * n, 0.5 * x)


def _ncx2_logcdf_mixture(x: float, n: int, lam: float) -> float:
    """log F(x; n, lam) as the log-sum-exp of the full Poisson(lam/2) mixture
    sum_j Pois(j; lam/2) Psi(x; n + 2j), with no pruning by weight.

    In the far left tail log Psi(x; n + 2j) falls steeply in j, so the dominant term sits far
    below j = lam/2; every j in [0, J] is kept, J = lam/2 + 40 sqrt(lam/2) + 40 (beyond J the
    Poisson weights alone are e^-800 below their peak and both factors decrease). The central
    cdfs come from one anchor log Psi(x; n + 2J) and the downward recurrence
    P(a, z) = P(a + 1, z) + z^a e^-z / Gamma(a + 1), which only adds positive terms.
    """
    m, z, a0 = 0.5 * lam, 0.5 * x, 0.5 * n
    top = int(m + 40.0 * math.sqrt(m) + 40.0)
    if top > _MAX_POISSON_TERMS:
        raise ValueError(f"noncentrality {lam} too large for the Poisson-mixture tail")
    j = np.arange(top + 1, dtype=float)
    logw = -m + j * math.log(m) - special.gammaln(j + 1.0)
    a = a0 + j[:-1]
    steps = a * math.log(z) - z - special.gammaln(a + 1.0)
    chain = np.concatenate(([log_psi(x, n + 2 * top)], steps[::-1]))
    log_p = np.logaddexp.accumulate(chain)[::-1]
    return float(special.logsumexp(logw + log_p))


def ncx2_cdf(x: float, n: int, lam: float) -> float:
    """Noncentral chi-square(n, lam) cdf (central when lam == 0). scipy's value is kept above
    e^-200; below it scipy loses relative accuracy (it returns 0 for values near 1e-130 at large
    lam), and the log-space mixture is used instead."""
    if lam == 0.0:
        return psi(x, n)
    if x <= 0.0:
        return 0.0
    value = float(stats.ncx2.cdf(x, n, lam))
    if value > _SCIPY_NCX2_FLOOR:
        return value
    return math.exp(_ncx2_logcdf_mixture(x, n, lam))


def ncx2_logcdf(x: float, n: int, lam: float) -> float:
    """log of ncx2_cdf; the log-space Poisson mixture wherever scipy's value is below e^-200."""
    if lam == 0.0:
        return log_psi(x, n)
    if x <= 0.0:
        return -math.inf
    value = float(stats.ncx2.cdf(x, n, lam))
    if value > 0.5:
        return math.log1p(-float(stats.ncx2.sf(x, n, lam)))
    if value > _SCIPY_NCX2_FLOOR:
        return math.log(value)
    return _ncx2_logcdf_mixture(x, n, lam)


def clt_psi(x: float, n: int) -> float:
    """Corollary 1.1, eq. (13): the CLT form 1/2 (1 + erf((x - n) / (2 sqrt n))) of Psi(x; n)."""
    return float(0.5 * special.erfc(-(x - n) / (2.0 * math.sqrt(n))))


def clt_limit(n: int) -> float:
    """Large-n limit of eq. (13) for r/sigma << sqrt(n): 1/2 (1 - erf(sqrt(n) / 2))."""
    return float(0.5 * special.erfc(math.sqrt(n) / 2.0))


def log_clt_psi(x: float, n: int) -> float:
    """log of clt_psi, finite in the far tail (eq. 13 equals Phi((x - n) / sqrt(2n)))."""
    return float(special.log_ndtr((x - n) / math.sqrt(2.0 * n)))


def log_clt_limit(n: int) -> float:
    """log of clt_limit = log Phi(-sqrt(n / 2))."""
    return float(special.log_ndtr(-math.sqrt(0.5 * n)))
