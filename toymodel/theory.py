"""Exact success probabilities and bounds of the toy model (paper Sec. 4.2, Theorem 1, Cor. 1.1).

Setting: x0 = 0, centre c at distance d (along e1, or the diagonal for l_inf), adversarial ball
A = B2(c, r), purifier P(x) = x + eta with eta ~ N(0, sigma^2 I_n), threat set B_p(0, eps).
Closed forms (derived in paper_checks.md, "Noncentral chi-square closed forms"):
  eot:     ncx2cdf(r^2/sigma^2; n, ||proj(c) - c||^2/sigma^2)     (any norm, any eps)
  replay:  1 unclipped; l2: ncx2cdf((eps + r)^2/sigma^2; n, d^2/sigma^2)
  perfect: Psi(r^2/(2 sigma^2); n) unclipped
Other cases have no closed form here (None). Log versions stay finite in the far left tail.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

STRATEGIES = ("perfect", "eot", "replay")
NORMS = ("2", "inf")
DIRECTIONS = ("axis", "diagonal")
_LOG_TINY = -700.0


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
    """log Psi(x; n), accurate where Psi underflows (scipy's logcdf is log(cdf) and gives -inf)."""
    if x <= 0.0:
        return -math.inf
    value = float(stats.chi2.logcdf(x, n))
    if value > _LOG_TINY:
        return value
    return _log_lower_gamma_series(0.5 * n, 0.5 * x)


def _ncx2_logcdf_mixture(x: float, n: int, lam: float) -> float:
    """log ncx2cdf as a log-sum-exp of the Poisson(lam/2) mixture of central chi-square cdfs."""
    m = 0.5 * lam
    jmax = int(m + 40.0 * math.sqrt(m) + 40.0)
    if jmax > 200000:
        raise ValueError(f"noncentrality {lam} too large for the Poisson-mixture tail")
    j = np.arange(jmax + 1)
    logw = -m + j * math.log(m) - special.gammaln(j + 1.0) if m > 0 else np.where(j == 0, 0.0, -np.inf)
    keep = logw > logw.max() - 60.0
    terms = [lw + log_psi(x, n + 2 * int(jj)) for lw, jj in zip(logw[keep], j[keep])]
    return float(special.logsumexp(terms))


def ncx2_cdf(x: float, n: int, lam: float) -> float:
    """Noncentral chi-square(n, lam) cdf (central when lam == 0)."""
    if lam == 0.0:
        return psi(x, n)
    return float(stats.ncx2.cdf(x, n, lam))


def ncx2_logcdf(x: float, n: int, lam: float) -> float:
    """log of ncx2_cdf; falls back to the log-space Poisson mixture where scipy underflows."""
    if lam == 0.0:
        return log_psi(x, n)
    if x <= 0.0:
        return -math.inf
    value = float(stats.ncx2.logcdf(x, n, lam))
    if value > _LOG_TINY:
        return value
    return _ncx2_logcdf_mixture(x, n, lam)


def bound_perfect(n: int, sigma: float, r: float) -> float:
    """Theorem 1, first bound: Psi(r^2 / (2 sigma^2); n) (unconstrained perfect attack)."""
    return psi(r * r / (2.0 * sigma * sigma), n)


def bound_eot(n: int, sigma: float, r: float) -> float:
    """Theorem 1, second bound: Psi(r^2 / sigma^2; n); by Anderson's inequality it bounds every
    fixed attack point tested under fresh noise, clipped or not."""
    return psi(r * r / (sigma * sigma), n)


def theorem1_bound(strategy: str, n: int, sigma: float, r: float) -> float:
    """The bound the paper states for a strategy (replay: Corollary 2.1's trivial bound 1)."""
    _check_strategy(strategy)
    if strategy == "perfect":
        return bound_perfect(n, sigma, r)
    if strategy == "eot":
        return bound_eot(n, sigma, r)
    return 1.0


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


def centre(n: int, d: float, direction: str = "axis") -> np.ndarray:
    """The centre c: d e1 ('axis') or (d / sqrt n)(1, ..., 1) ('diagonal')."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    if direction == "axis":
        c = np.zeros(n)
        c[0] = d
        return c
    return np.full(n, d / math.sqrt(n))


def eot_offset_norm(n: int, d: float, eps: float, norm: str, direction: str = "axis") -> float:
    """||proj(c) - c||: how far the EOT target c is moved by the projection onto B_p(0, eps)."""
    _check_norm(norm)
    if math.isinf(eps):
        return 0.0
    if norm == "2" or direction == "axis":
        return max(d - eps, 0.0)
    return math.sqrt(n) * max(d / math.sqrt(n) - eps, 0.0)


def _noncentral_args(strategy, n, sigma, r, d, eps, norm, direction):
    """(x, lam) with success = ncx2cdf(x; n, lam), or None where no closed form is known."""
    s2 = sigma * sigma
    if strategy == "eot":
        return r * r / s2, eot_offset_norm(n, d, eps, norm, direction) ** 2 / s2
    if strategy == "perfect":
        return (r * r / (2.0 * s2), 0.0) if math.isinf(eps) else None
    if math.isinf(eps):
        return math.inf, 0.0
    if norm == "2":
        return (eps + r) ** 2 / s2, d * d / s2
    return None


def exact_success(strategy: str, n: int, sigma: float, r: float, d: float = 0.0,
                  eps: float = math.inf, norm: str = "2", direction: str = "axis") -> float | None:
    """Exact attack success probability where a closed form exists, else None."""
    return _exact(False, strategy, n, sigma, r, d, eps, norm, direction)


def log_exact_success(strategy: str, n: int, sigma: float, r: float, d: float = 0.0,
                      eps: float = math.inf, norm: str = "2", direction: str = "axis") -> float | None:
    """log of exact_success, finite far into the left tail (n up to 1e6)."""
    return _exact(True, strategy, n, sigma, r, d, eps, norm, direction)


def _exact(log: bool, strategy, n, sigma, r, d, eps, norm, direction) -> float | None:
    _check_all(strategy, n, sigma, r, d, eps, norm, direction)
    args = _noncentral_args(strategy, n, sigma, r, d, eps, norm, direction)
    if args is None:
        return None
    x, lam = args
    if math.isinf(x):
        return 0.0 if log else 1.0
    return ncx2_logcdf(x, n, lam) if log else ncx2_cdf(x, n, lam)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def _check_all(strategy, n, sigma, r, d, eps, norm, direction) -> None:
    """Validate the toy-model parameters shared by theory and simulation."""
    _check_strategy(strategy)
    _check_norm(norm)
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    for name, value in (("sigma", sigma), ("r", r)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    if not (d >= 0 and math.isfinite(d)):
        raise ValueError(f"d must be finite and >= 0, got {d!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (math.inf for unconstrained), got {eps!r}")
