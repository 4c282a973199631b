"""Exact success probabilities and bounds of the toy model (paper Sec. 4.2, Theorem 1, Cor. 1.1, 2.1).

Setting: x0 = 0, centre c at distance d (along e1, or the diagonal for l_inf), adversarial ball
A = B2(c, r), purifier P(x) = x + eta with eta ~ N(0, sigma^2 I_n), threat set B_p(0, eps).
The paper's setup (Sec. 4.2, Fig. S1a) has x0 outside A (d > r) and A inside B_p(0, eps).

Strategies (eta0 is the draw seen while crafting, eta1 a fresh test draw):
  perfect: full cancellation x = c - eta0 of the proof of Theorem 1; projected onto the threat set
           (its nearest feasible point) when it falls outside. Tested with eta1.
  partial: partial cancellation x = c - t eta0, t = max(0, 1 - r/||eta0||): adversarial under eta0
           by construction (P(x) = c + (1 - t) eta0 lies in A); projected if infeasible; eta1.
  eot:     the deterministic target proj(c) (Theorem 1's E xi); tested with eta1.
  replay:  x = proj(c - eta0), tested with eta0 (Algorithm 1, Corollary 2.1).
Closed forms (derived in paper_checks.md, "Noncentral chi-square closed forms"):
  eot:     ncx2cdf(r^2/sigma^2; n, ||proj(c) - c||^2/sigma^2)     (any norm, any eps)
  replay:  1 unclipped; l2: ncx2cdf((eps + r)^2/sigma^2; n, d^2/sigma^2)
  perfect: Psi(r^2/(2 sigma^2); n) unclipped (Theorem 1's first bound is this attack's exact value)
  partial: a one-dimensional integral over ||eta0|| unclipped
  no attack (xi = 0): ncx2cdf(r^2/sigma^2; n, d^2/sigma^2)
Other cases have no closed form here (None). Log versions stay finite in the far left tail.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from toymodel.chisq import (clt_limit, clt_psi, log_clt_limit, log_clt_psi, log_psi, ncx2_cdf,
                            ncx2_logcdf, psi)

__all__ = ["psi", "log_psi", "ncx2_cdf", "ncx2_logcdf", "clt_psi", "clt_limit", "log_clt_psi",
           "log_clt_limit"]

STRATEGIES = ("perfect", "partial", "eot", "replay")
FRESH_STRATEGIES = ("perfect", "partial", "eot")
NORMS = ("2", "inf")
DIRECTIONS = ("axis", "diagonal")
COVER_EXACT = "exact: full cancellation"
COVER_PROJECTED = "first bound + P(projected)"
COVER_FRESH = "any fresh-noise attack"
COVER_NONE = "none: tested under its own noise"


def bound_perfect(n: int, sigma: float, r: float) -> float:
    """Theorem 1, first bound Psi(r^2 / (2 sigma^2); n): the exact success of the unconstrained
    full-cancellation attack x0 + xi = c - eta0 of the proof, NOT a bound for every attack
    crafted under eta0 (the partial-cancellation attack exceeds it)."""
    return psi(r * r / (2.0 * sigma * sigma), n)


def bound_eot(n: int, sigma: float, r: float) -> float:
    """Theorem 1, second bound Psi(r^2 / sigma^2; n): by Anderson's inequality (the noncentral
    chi-square cdf decreases in the noncentrality) it bounds every attack point chosen
    independently of the test noise eta1, clipped or not: the universal fresh-noise bound."""
    return psi(r * r / (sigma * sigma), n)


def centre(n: int, d: float, direction: str = "axis") -> np.ndarray:
    """The centre c: d e1 ('axis') or (d / sqrt n)(1, ..., 1) ('diagonal')."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    if direction == "axis":
        c = np.zeros(n)
        c[0] = d
        return c
    return np.full(n, d / math.sqrt(n))


def _centre_sup(n: int, d: float, norm: str, direction: str) -> float:
    """The threat-set norm of c: d for l2 and l_inf along an axis, d / sqrt(n) on the diagonal."""
    return d / math.sqrt(n) if norm == "inf" and direction == "diagonal" else d


def x0_in_A(d: float, r: float) -> bool:
    """Whether the clean point x0 = 0 lies in A = B2(c, r), i.e. is already misclassified."""
    return d <= r


def A_in_threat(n: int, d: float, r: float, eps: float, norm: str, direction: str = "axis") -> bool:
    """Whether A = B2(c, r) lies inside B_p(0, eps) (paper Sec. 4.2): l2 d + r <= eps; l_inf
    ||c||_inf + r <= eps (the l2 ball's widest extent along any axis is r)."""
    _check_norm(norm)
    return math.isinf(eps) or _centre_sup(n, d, norm, direction) + r <= eps


def containing_eps(n: int, d: float, r: float, norm: str, direction: str = "axis") -> float:
    """The smallest eps with A = B2(c, r) inside B_p(0, eps) (paper Sec. 4.2, Fig. S1a)."""
    _check_norm(norm)
    return _centre_sup(n, d, norm, direction) + r


def eot_offset_norm(n: int, d: float, eps: float, norm: str, direction: str = "axis") -> float:
    """||proj(c) - c||: how far the EOT target c is moved by the projection onto B_p(0, eps)."""
    _check_norm(norm)
    if math.isinf(eps):
        return 0.0
    if norm == "2" or direction == "axis":
        return max(d - eps, 0.0)
    return math.sqrt(n) * max(d / math.sqrt(n) - eps, 0.0)


def p_projected(n: int, sigma: float, d: float, eps: float, norm: str,
                direction: str = "axis") -> float:
    """Probability that the full-cancellation target c - eta0 lies outside B_p(0, eps), i.e. that
    the perfect strategy is its projection rather than the attack of Theorem 1's proof.
    l2: 1 - ncx2cdf(eps^2/sigma^2; n, d^2/sigma^2); l_inf: 1 - prod_i P(|c_i - eta0_i| <= eps)."""
    _check_norm(norm)
    if math.isinf(eps):
        return 0.0
    if norm == "2":
        return float(stats.ncx2.sf(eps * eps / (sigma * sigma), n, d * d / (sigma * sigma)))
    c = centre(n, d, direction)
    inside = special.ndtr((eps - c) / sigma) - special.ndtr((-eps - c) / sigma)
    return float(-np.expm1(np.sum(np.log(inside))))


def linf_clip_displacement(n: int, sigma: float, d: float, eps: float,
                           direction: str = "axis") -> float:
    """sqrt E||clip(y) - y||^2 for y = c - eta0 clipped to [-eps, eps]^n: how far l_inf clipping
    moves the replay / full-cancellation target. Per coordinate y_i ~ N(c_i, sigma^2) and
    E(|y_i| - eps)_+^2 = sum over both sides of ((m^2 + s^2) Phi(m/s) + m s phi(m/s)), m = +-c_i - eps."""
    c = centre(n, d, direction)
    total = 0.0
    for mean in (c - eps, -c - eps):
        u = mean / sigma
        total += float(np.sum((mean * mean + sigma * sigma) * special.ndtr(u)
                              + mean * sigma * np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)))
    return math.sqrt(total)


def no_attack_success(n: int, sigma: float, r: float, d: float) -> float:
    """The no-attack baseline: P(x0 + eta1 in A) = ncx2cdf(r^2/sigma^2; n, d^2/sigma^2)."""
    return ncx2_cdf(r * r / (sigma * sigma), n, d * d / (sigma * sigma))


def log_no_attack_success(n: int, sigma: float, r: float, d: float) -> float:
    """log of no_attack_success, finite far into the left tail."""
    return ncx2_logcdf(r * r / (sigma * sigma), n, d * d / (sigma * sigma))


def partial_success(n: int, sigma: float, r: float) -> float:
    """Exact success of the unconstrained partial-cancellation attack x = c - t eta0.

    The test offset x + eta1 - c = eta1 - t eta0 has, given rho = ||eta0||, noncentrality
    (rho - r)_+^2 / sigma^2, so success = E_rho ncx2cdf(r^2/sigma^2; n, (rho - r)_+^2/sigma^2) with
    rho/sigma ~ chi(n): Psi(q^2; n)^2 + int_q^inf chi_n(u) ncx2cdf(q^2; n, (u - q)^2) du, q = r/sigma,
    by composite Gauss-Legendre (48 panels x 16 nodes) up to the chi(n) quantile 1 - 1e-30.
    It exceeds Theorem 1's first bound and stays below the second (Anderson).
    """
    q = r / sigma
    inside = psi(q * q, n)
    top = math.sqrt(stats.chi2.isf(1e-30, n))
    if q >= top:
        return inside * inside
    nodes, weights = np.polynomial.legendre.leggauss(16)
    edges = np.linspace(q, top, 49)
    half, mid = 0.5 * np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
    u = (mid[:, None] + half[:, None] * nodes).ravel()
    w = (half[:, None] * weights).ravel()
    log_chi_pdf = (n - 1) * np.log(u) - 0.5 * u * u - (0.5 * n - 1) * math.log(2.0) - special.gammaln(0.5 * n)
    tail = float(w @ (np.exp(log_chi_pdf) * stats.ncx2.cdf(q * q, n, (u - q) ** 2)))
    return min(inside, inside * inside + tail)


def covering_bound(strategy: str, n: int, sigma: float, r: float, d: float = 0.0,
                   eps: float = math.inf, norm: str = "2",
                   direction: str = "axis") -> tuple[float, str]:
    """The tightest bound of Theorem 1 that provably covers a strategy, and what it covers.

    perfect unclipped: Psi(r^2/(2 sigma^2); n), its exact value. perfect clipped: the draws where
    c - eta0 is feasible are full cancellation, so success <= first bound + P(projected), capped
    by the second bound. partial, eot (and xi = 0): the second bound Psi(r^2/sigma^2; n) only.
    replay: none (Corollary 2.1; tested under its own noise), reported as 1.
    """
    _check_all(strategy, n, sigma, r, d, eps, norm, direction)
    second = bound_eot(n, sigma, r)
    if strategy == "replay":
        return 1.0, COVER_NONE
    if strategy == "perfect":
        if math.isinf(eps):
            return bound_perfect(n, sigma, r), COVER_EXACT
        first = bound_perfect(n, sigma, r) + p_projected(n, sigma, d, eps, norm, direction)
        if first < second:
            return first, COVER_PROJECTED
    return second, COVER_FRESH


def p_outside(strategy: str, n: int, sigma: float, r: float, d: float = 0.0, eps: float = math.inf,
              norm: str = "2", direction: str = "axis") -> float:
    """An upper bound on the probability that a strategy's target falls outside B_p(0, eps) and
    gets projected (exact for perfect and replay, whose target is c - eta0; deterministic for eot).

    partial: ||c - t eta0||_p <= ||c||_p + t ||eta0||_p with t ||eta0||_2 = (||eta0|| - r)_+ (l2) and
    t <= 1 (l_inf), so l2: P(||eta0|| > eps - d + r); l_inf: P(||eta0||_inf > eps - ||c||_inf).
    """
    _check_all(strategy, n, sigma, r, d, eps, norm, direction)
    if math.isinf(eps):
        return 0.0
    if strategy == "eot":
        return 0.0 if eot_offset_norm(n, d, eps, norm, direction) == 0.0 else 1.0
    if strategy in ("perfect", "replay"):
        return p_projected(n, sigma, d, eps, norm, direction)
    room = eps - _centre_sup(n, d, norm, direction)
    if room < 0:
        return 1.0
    if norm == "2":
        return float(stats.chi2.sf(((room + r) / sigma) ** 2, n))
    return float(-np.expm1(n * np.log1p(-2.0 * special.ndtr(-room / sigma))))


def _noncentral_args(strategy, n, sigma, r, d, eps, norm, direction):
    """(x, lam) with success = ncx2cdf(x; n, lam), or None where no closed form is known."""
    s2 = sigma * sigma
    if strategy == "eot":
        return r * r / s2, eot_offset_norm(n, d, eps, norm, direction) ** 2 / s2
    if strategy == "perfect":
        return (r * r / (2.0 * s2), 0.0) if math.isinf(eps) else None
    if strategy == "partial":
        return None
    if math.isinf(eps):
        return math.inf, 0.0
    if norm == "2":
        return (eps + r) ** 2 / s2, d * d / s2
    return None


def exact_success(strategy: str, n: int, sigma: float, r: float, d: float = 0.0,
                  eps: float = math.inf, norm: str = "2", direction: str = "axis") -> float | None:
    """Exact attack success probability where a closed form exists, else None.

    With a finite threat set, perfect, partial and l_inf replay have no closed form; where their
    target is projected with probability below 1e-12 of the unconstrained value (p_outside), the
    unconstrained value is returned, exact to that relative accuracy.
    """
    _check_all(strategy, n, sigma, r, d, eps, norm, direction)
    return _closed_form(False, strategy, n, sigma, r, d, eps, norm, direction)


def log_exact_success(strategy: str, n: int, sigma: float, r: float, d: float = 0.0,
                      eps: float = math.inf, norm: str = "2", direction: str = "axis") -> float | None:
    """log of exact_success for the noncentral chi-square forms, finite far into the left tail
    (n and noncentrality up to about 1e6); None for partial and where no closed form exists."""
    _check_all(strategy, n, sigma, r, d, eps, norm, direction)
    if strategy == "partial":
        return None
    return _closed_form(True, strategy, n, sigma, r, d, eps, norm, direction)


def _closed_form(log: bool, strategy: str, n: int, sigma: float, r: float, d: float, eps: float, norm: str,
                 direction: str) -> float | None:
    """The exact value (or its log); with a threat set and no closed form, the unconstrained value where
    the target is projected with probability below 1e-12 of it (p_outside), else None."""
    value = _exact(log, strategy, n, sigma, r, d, eps, norm, direction)
    if value is not None or math.isinf(eps):
        return value
    p = p_outside(strategy, n, sigma, r, d, eps, norm, direction)
    if p > 1e-12:
        return None
    free = _exact(log, strategy, n, sigma, r, d, math.inf, norm, direction)
    return free if _negligible(p, math.exp(free) if log else free) else None


def _negligible(p_out: float, free: float) -> bool:
    """Whether a projection probability p_out changes the unconstrained success `free` by under
    1e-12 of itself (`free` above 1e-290 so that an underflowing p_out cannot hide a relevant one)."""
    return free > 1e-290 and p_out <= 1e-12 * free


def _exact(log: bool, strategy, n, sigma, r, d, eps, norm, direction) -> float | None:
    if strategy == "partial":
        return partial_success(n, sigma, r) if math.isinf(eps) and not log else None
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


def default_ratios(n: int) -> list[float]:
    """r/sigma with r^2/sigma^2 = k n + z k sqrt(2n), z = -3..3: dense around sqrt(n) (EOT) and
    sqrt(2n) (perfect), where Psi(r^2/sigma^2; n) and Psi(r^2/(2 sigma^2); n) cross 1/2."""
    return [math.sqrt(max(k * n + z * k * math.sqrt(2 * n), 1e-6)) for k in (1, 2) for z in range(-3, 4)]
