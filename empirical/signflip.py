"""The machinery behind `empirical.stats`' exact paired tests: sign-flip (permutation) tails computed exactly
by dynamic programming over differences on a grid 1/m (or by enumeration off a grid, or by the normal
approximation above the stated sizes), Clopper-Pearson bounds, and intervals that invert the same tests.
Private helpers: `empirical.stats` is the public face (paired_test, signflip_test, equivalence_test)."""
from __future__ import annotations

import math

import numpy as np

MAX_GRID = 360                 # largest m of a common grid 1/m on which the exact tests run
EXACT_MAX_NONZERO = 2000       # above this many nonzero differences: the normal approximation
EXACT_MAX_WORK = 2 * 10 ** 8   # ... and above n_nonzero * sum|m d_i| (the dynamic programme's size)
EXACT_CI_MAX_WORK = 5 * 10 ** 7
ENUMERATE_MAX = 16            # off any grid: exact by enumerating the sign flips up to this many values
_Z95 = 1.959963984540054


def _grid(values: np.ndarray) -> int | None:
    """Smallest m <= MAX_GRID with every value a multiple of 1/m (to 1e-7), else None."""
    for m in range(1, MAX_GRID + 1):
        scaled = values * m
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-7):
            return m
    return None


def _exact_ok(k: np.ndarray) -> bool:
    nz = int(np.count_nonzero(k))
    return nz <= EXACT_MAX_NONZERO and nz * int(np.abs(k).sum()) <= EXACT_MAX_WORK


def _signflip_tails(k: np.ndarray) -> tuple[float, float]:
    """(P(S >= s), P(S <= s)) for S = sum(+-k_i) over the 2^n equally likely sign flips, s = sum(k_i).

    Exact: dynamic programme over the distribution of the sum of the |k_i| kept positive."""
    k = k[k != 0].astype(np.int64)
    if k.size == 0:
        return 1.0, 1.0
    mag = np.abs(k)
    total = int(mag.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    top = 0
    for v in mag:
        nxt = 0.5 * dist[: top + v + 1]
        nxt[v:] += 0.5 * dist[: top + 1]
        top += int(v)
        dist[: top + 1] = nxt
    cut = (int(k.sum()) + total) // 2              # S = 2 S' - total, S' = sum of the kept-positive |k_i|
    return float(min(1.0, dist[cut:].sum())), float(min(1.0, dist[: cut + 1].sum()))


def _normal_tails(e: np.ndarray) -> tuple[float, float]:
    s2 = float((e ** 2).sum())
    if s2 == 0:
        return 1.0, 1.0
    z = float(e.sum()) / math.sqrt(s2)
    return 0.5 * math.erfc(z / math.sqrt(2)), 0.5 * math.erfc(-z / math.sqrt(2))


def _z_of(e: np.ndarray) -> float:
    s2 = float((e ** 2).sum())
    return float(e.sum()) / math.sqrt(s2) if s2 > 0 else 0.0


def _tails(e: np.ndarray) -> tuple[float, float, bool]:
    """One-sided sign-flip tails of sum(e) and whether they are exact (a grid's dynamic programme, or full
    enumeration of the 2^k flips when at most ENUMERATE_MAX = 16 values are nonzero)."""
    m = _grid(e)
    if m is not None:
        k = np.round(e * m).astype(np.int64)
        if _exact_ok(k):
            return (*_signflip_tails(k), True)
    nz = e[e != 0]
    if nz.size <= ENUMERATE_MAX:
        sums = np.zeros(1)
        for v in nz:
            sums = np.concatenate([sums + v, sums - v])
        obs, tol = float(nz.sum()), 1e-9 * (1 + float(np.abs(nz).sum()))
        return float(np.mean(sums >= obs - tol)), float(np.mean(sums <= obs + tol)), True
    return (*_normal_tails(e), False)


def _clip(lo: float, hi: float) -> tuple[float, float]:
    return float(max(-100.0, lo)), float(min(100.0, hi))


def _mcnemar_ci(b: int, c: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Clopper-Pearson interval for b / (b + c), scaled by (b + c) / n to the paired difference: 0 is
    outside it exactly when the exact McNemar p < alpha. With no discordant pair: +-u, u the exact
    upper bound on the discordant rate with 0 of n discordant."""
    from scipy.stats import beta
    if b + c == 0:
        u = 100 * (1 - (alpha / 2) ** (1 / n))
        return -u, u
    lo = beta.ppf(alpha / 2, b, c + 1) if b > 0 else 0.0
    hi = beta.ppf(1 - alpha / 2, b + 1, c) if c > 0 else 1.0
    f = 100 * (b + c) / n
    return _clip(f * (2 * lo - 1), f * (2 * hi - 1))


def _signflip_ci(d: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Interval of shifts delta (units of d) that the two-sided sign-flip test of d - delta keeps at level
    alpha; +-inf where no shift can be rejected (2^-n > alpha / 2).

    Exact (the distribution of subset means: a shift is kept iff both one-sided p exceed alpha / 2) on a
    grid when the programme over (subset size, subset sum) is small, or by enumerating the subsets of at
    most ENUMERATE_MAX samples; else the same test's normal approximation inverted in closed form:
    mean +- z sd_pop / sqrt(n - z^2)."""
    n = d.size
    m = _grid(d)
    if m is not None:
        k = np.round(d * m).astype(np.int64)
        if (n + 1) * (2 * int(np.abs(k).sum()) + 1) * n <= EXACT_CI_MAX_WORK:
            return _subset_mean_ci(*_subset_table(k), 1.0 / m, n, alpha)
    if n <= ENUMERATE_MAX:
        sums, sizes = np.zeros(1), np.zeros(1, dtype=np.int64)
        for v in d:
            sums, sizes = np.concatenate([sums, sums + v]), np.concatenate([sizes, sizes + 1])
        return _subset_mean_ci(sums[1:] / sizes[1:], np.full(sums.size - 1, 0.5 ** n), 1.0, n, alpha)
    z2 = _zq(1 - alpha / 2) ** 2
    if n <= z2:
        return -math.inf, math.inf
    half = math.sqrt(z2 * max(0.0, n * float((d ** 2).sum()) - float(d.sum()) ** 2) / (n - z2)) / n
    return float(d.mean()) - half, float(d.mean()) + half


def _subset_table(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subset mean in grid units, mass) of every nonempty subset of the integers k, by a programme over
    (subset size, subset sum)."""
    n, off = k.size, int(np.abs(k).sum())
    table = np.zeros((n + 1, 2 * off + 1))
    table[0, off] = 1.0
    for v in k:
        nxt = 0.5 * table
        if v >= 0:
            nxt[1:, v:] += 0.5 * table[:-1, : table.shape[1] - v]
        else:
            nxt[1:, : v] += 0.5 * table[:-1, -v:]
        table = nxt
    size, s = np.nonzero(table[1:] > 0)
    return (s - off) / (size + 1), table[1:][size, s]


def _subset_mean_ci(means: np.ndarray, mass: np.ndarray, unit: float, n: int, alpha: float) -> tuple[float, float]:
    """A shift delta is kept iff P(flip >= observed) = 2^-n + mass(subset mean <= delta) and its mirror
    both exceed alpha / 2; the interval's ends are subset means (times `unit`)."""
    order = np.argsort(means, kind="stable")
    means, mass = means[order] * unit, mass[order]
    empty = 0.5 ** n
    if empty > alpha / 2:
        return -math.inf, math.inf
    up = empty + np.cumsum(mass)
    down = empty + np.cumsum(mass[::-1])[::-1]
    return float(means[np.nonzero(up > alpha / 2)[0][0]]), float(means[np.nonzero(down > alpha / 2)[0][-1]])


def _zq(q: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(q))


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _cp(k: float, n: float, tail: float, upper: bool) -> float:
    """One-sided Clopper-Pearson bound on a rate from k of n at error `tail` (beta quantiles)."""
    from scipy.stats import beta
    if upper:
        return 1.0 if k >= n else float(beta.ppf(1 - tail, k + 1, n - k))
    return 0.0 if k <= 0 else float(beta.ppf(tail, k, n - k + 1))


def _bound_p(gap) -> float:
    """Smallest alpha at which gap(alpha) < 0 (gap decreasing in alpha), by bisection on log alpha; 1 if none."""
    if gap(1.0) >= 0:
        return 1.0
    lo, hi = -100.0, 0.0                  # p below e^-100 is reported as e^-100
    if gap(math.exp(lo)) < 0:
        return math.exp(lo)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if gap(math.exp(mid)) < 0 else (mid, hi)
    return math.exp(hi)
