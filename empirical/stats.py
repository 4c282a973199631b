"""Paired differences, three-valued verdicts and power for the paper's claims (numpy only).

Every cell of a table is measured on the same samples, so a claim "a > b" is read from the per-sample
differences d_i = a_i - b_i: their mean and paired standard error sd(d) / sqrt(N). This removes the
between-sample variance that an unpaired SE sqrt(se_a^2 + se_b^2) counts twice. A claim is
"reproduced" when the difference has the paper's sign at >= 2 paired SE, "contradicted" when it has
the opposite sign at >= 2 paired SE, and "inconclusive" otherwise: a wrong sign within the noise is
no evidence against the paper. For an inconclusive row, `samples_to_resolve` states how many samples
would put the paper's effect size at 2 SE given the measured per-sample spread, and `power` gives
the chance that a run of n samples would have reproduced it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

VERDICTS = ("reproduced", "contradicted", "inconclusive")
REPRODUCED, CONTRADICTED, INCONCLUSIVE = VERDICTS
Z_DEFAULT = 2.0


@dataclass(frozen=True)
class Difference:
    """Mean of a - b over the same N samples and its paired SE, in percent points.

    sd is the per-sample standard deviation of d_i (what `samples_to_resolve` and `power` need);
    se = sd / sqrt(N). With N = 1 both are nan: one sample carries no spread.
    """

    mean: float
    se: float
    n: int
    sd: float

    @property
    def z(self) -> float:
        """mean / se (nan when se is nan or both are 0; +-inf for a constant nonzero difference)."""
        if math.isnan(self.se) or math.isnan(self.mean) or (self.se == 0 and self.mean == 0):
            return float("nan")
        return self.mean / self.se if self.se > 0 else math.copysign(math.inf, self.mean)

    def to_dict(self) -> dict:
        return asdict(self)


def _per_sample(outcomes, name: str) -> np.ndarray:
    a = np.asarray(outcomes, dtype=float)
    if a.ndim == 2:
        if a.shape[0] < 1:
            raise ValueError(f"{name} has no draws (shape {a.shape})")
        a = a.mean(axis=0)
    if a.ndim != 1:
        raise ValueError(f"{name} must be [N] per-sample outcomes or [R][N] over R draws, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: a paired difference needs at least one sample")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def paired_difference(a, b) -> Difference:
    """Mean and paired SE of a - b for per-sample outcomes of two cells on the SAME samples.

    a, b: [N] booleans or floats in [0, 1], or [R][N] (R draws; each sample's mean over its draws is
    used, so a fresh-noise cell with R draws pairs with a replay cell with one). Percent points.
    """
    x, y = _per_sample(a, "a"), _per_sample(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired cells need the same samples, got {x.size} and {y.size}")
    d = x - y
    n = d.size
    sd = float(100 * d.std(ddof=1)) if n > 1 else float("nan")
    return Difference(mean=float(100 * d.mean()), se=sd / math.sqrt(n) if n > 1 else float("nan"), n=n, sd=sd)


def _check_sign(expected_sign: int) -> int:
    if expected_sign not in (1, -1):
        raise ValueError(f"expected_sign must be +1 (a > b claimed) or -1 (a < b claimed), got {expected_sign!r}")
    return int(expected_sign)


def verdict(diff_mean: float, diff_se: float, expected_sign: int, z: float = Z_DEFAULT) -> str:
    """'reproduced' iff sign(diff) = expected_sign with |diff| >= z SE; 'contradicted' iff the opposite
    sign at >= z SE; else 'inconclusive' (also for a nan mean or SE, and for a zero difference).

    A zero SE with a nonzero difference (every sample moved the same way) counts as >= z SE.
    """
    sign = _check_sign(expected_sign)
    if math.isnan(diff_mean) or math.isnan(diff_se) or diff_se < 0 or diff_mean == 0:
        return INCONCLUSIVE
    if abs(diff_mean) < z * diff_se:
        return INCONCLUSIVE
    return REPRODUCED if diff_mean * sign > 0 else CONTRADICTED


def null_verdict(diff_mean: float, diff_se: float, margin: float, z: float = Z_DEFAULT) -> str:
    """For a claim of NO difference ("clean accuracy unchanged"): 'reproduced' iff the whole interval
    diff +- z SE lies inside (-margin, margin); 'contradicted' iff the difference is nonzero at >= z SE
    and at least margin in size; else 'inconclusive'. margin is the largest difference still called
    "unchanged", in the same units (percent points)."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0 (the largest difference still called unchanged), got {margin}")
    if math.isnan(diff_mean) or math.isnan(diff_se) or diff_se < 0:
        return INCONCLUSIVE
    if abs(diff_mean) + z * diff_se < margin:
        return REPRODUCED
    if abs(diff_mean) >= margin and abs(diff_mean) >= z * diff_se and diff_mean != 0:
        return CONTRADICTED
    return INCONCLUSIVE


def _check_effect(effect: float, per_sample_sd: float) -> tuple[float, float]:
    effect, sd = float(effect), float(per_sample_sd)
    if not math.isfinite(effect) or effect == 0:
        raise ValueError(f"effect must be a finite nonzero difference, got {effect}")
    if not math.isfinite(sd) or sd < 0:
        raise ValueError(f"per_sample_sd must be finite and >= 0 (measured sd of d_i), got {per_sample_sd}")
    return abs(effect), sd


def samples_to_resolve(effect: float, per_sample_sd: float, z: float = Z_DEFAULT) -> int:
    """Smallest N at which a difference of exactly `effect` sits at z paired SE: ceil((z sd / effect)^2),
    at least 2 (one sample has no SE). At that N the power of `power` is about 1/2; for a power of
    1 - beta use z + z_beta (e.g. z = 2 + 0.84 for 80%)."""
    effect, sd = _check_effect(effect, per_sample_sd)
    need = (z * sd / effect) ** 2
    return max(2, math.ceil(need * (1 - 1e-12)))


def power(effect: float, per_sample_sd: float, n: int, z: float = Z_DEFAULT) -> float:
    """Normal-approximation probability that N = n samples show a true difference `effect` at >= z SE in
    its own direction: Phi(|effect| sqrt(n) / sd - z). sd = 0 gives 1 (every sample moves alike)."""
    effect, sd = _check_effect(effect, per_sample_sd)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    if sd == 0:
        return 1.0
    return float(0.5 * math.erfc(-(effect * math.sqrt(n) / sd - z) / math.sqrt(2)))


@dataclass(frozen=True)
class OrderVerdict:
    """Verdict of a chain a > b > c from its steps; weakest: index of the step least in the claimed
    direction (smallest signed z = expected_sign * mean / se; a step without a z, e.g. N = 1, first)."""

    verdict: str
    steps: tuple[str, ...]
    weakest: int
    weakest_z: float

    def to_dict(self) -> dict:
        return asdict(self)


def order_verdict(diffs: list[Difference], expected_signs: list[int], z: float = Z_DEFAULT) -> OrderVerdict:
    """Combine pairwise step verdicts: reproduced if every step is, contradicted if any step is,
    otherwise inconclusive, naming the weakest step."""
    if len(diffs) == 0 or len(diffs) != len(expected_signs):
        raise ValueError(f"need one expected sign per step and at least one step, got {len(diffs)} steps "
                         f"and {len(expected_signs)} signs")
    steps = tuple(verdict(d.mean, d.se, s, z) for d, s in zip(diffs, expected_signs))
    if all(v == REPRODUCED for v in steps):
        overall = REPRODUCED
    elif CONTRADICTED in steps:
        overall = CONTRADICTED
    else:
        overall = INCONCLUSIVE
    signed = [(_check_sign(s) * d.z, i) for i, (d, s) in enumerate(zip(diffs, expected_signs))]
    finite = [(v, i) for v, i in signed if not math.isnan(v)]
    nan_steps = [i for v, i in signed if math.isnan(v)]
    if nan_steps:
        weakest, weakest_z = nan_steps[0], float("nan")      # an unmeasurable step is the weakest
    else:
        weakest_z, weakest = min(finite)
    return OrderVerdict(verdict=overall, steps=steps, weakest=weakest, weakest_z=float(weakest_z))


def calibration(pred, measured, bins: int = 5, draws: int | None = None) -> dict:
    """How well per-sample probabilities `pred` predict measured rates `measured` (both [M] in [0, 1]).

    bins: equal-width bins of the prediction, each with its count, mean prediction and mean measured
    rate (with SE). brier: mean (pred - measured)^2. brier_baseline: the same for a constant predictor,
    each sample predicted by the mean measured rate of the OTHER samples (leave-one-out, so the baseline
    is not fitted on the sample it scores). gain = brier_baseline - brier, with its paired SE over
    samples and a verdict on "the prediction beats the constant". brier_floor: with measured the
    fraction of `draws` Bernoulli draws, the part of any Brier score that is draw noise,
    mean(m (1 - m)) / (draws - 1), unbiased for mean s (1 - s) / draws.
    """
    p, m = np.asarray(pred, dtype=float), np.asarray(measured, dtype=float)
    if p.ndim != 1 or p.shape != m.shape or p.size == 0:
        raise ValueError(f"pred and measured must be 1-D of the same nonzero length, got {p.shape} and {m.shape}")
    if not (np.all((p >= 0) & (p <= 1)) and np.all((m >= 0) & (m <= 1))):
        raise ValueError("pred and measured must be probabilities / rates in [0, 1] (no NaN)")
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.digitize(p, edges[1:-1])
    rows = []
    for b in range(bins):
        sel = which == b
        c = int(sel.sum())
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": c,
                     "predicted": float(p[sel].mean()) if c else float("nan"),
                     "measured": float(m[sel].mean()) if c else float("nan"),
                     "measured_se": float(m[sel].std(ddof=1) / math.sqrt(c)) if c > 1 else float("nan")})
    n = p.size
    err = (p - m) ** 2
    base = (m.sum() - m) / (n - 1) if n > 1 else np.full(1, np.nan)
    err_base = (base - m) ** 2
    gain = err_base - err
    gain_se = float(gain.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    floor = float(np.mean(m * (1 - m)) / (draws - 1)) if draws is not None and draws > 1 else float("nan")
    return {"n": n, "bins": rows, "brier": float(err.mean()), "brier_baseline": float(err_base.mean()),
            "brier_floor": floor, "gain": float(gain.mean()), "gain_se": gain_se,
            "verdict": verdict(float(gain.mean()), gain_se, +1),
            "mean_predicted": float(p.mean()), "mean_measured": float(m.mean())}


# ---- Exact paired tests, equivalence, multiplicity and power (the rules every verdict uses) ----

MAX_GRID = 360                 # largest m of a common grid 1/m on which the exact tests run
EXACT_MAX_NONZERO = 2000       # above this many nonzero differences: the normal approximation
EXACT_MAX_WORK = 2 * 10 ** 8   # ... and above n_nonzero * sum|m d_i| (the dynamic programme's size)
EXACT_CI_MAX_WORK = 5 * 10 ** 7
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison of a - b on the same n samples, in percent points.

    test: its name ("exact McNemar", "exact sign-flip", "paired z (normal)", "TOST exact sign-flip",
    "TOST sign-flip (normal)"). statistic: the sign-flip z, sum(d) / sqrt(sum(d^2)) over the per-sample
    differences d (for yes/no outcomes McNemar's (b - c) / sqrt(b + c); 0 when every d is 0; for TOST
    the z of the weaker one-sided test, positive when it supports equivalence): it is never infinite.
    p: two-sided p of the difference test (for TOST the larger of the two one-sided p), exact where the
    name says so. discordant: (b, c) = samples with a > b and with a < b, for yes/no outcomes, else
    None. mean, se: the paired mean difference and its SE (nan for n = 1). ci: 95% interval of the
    difference from inverting the same test (clipped to [-100, 100]).
    """

    test: str
    statistic: float
    p: float
    n: int
    discordant: tuple[int, int] | None
    mean: float
    se: float
    ci: tuple[float, float]

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists, nan as None."""
        clean = lambda x: None if isinstance(x, float) and not math.isfinite(x) else x
        return {"test": self.test, "statistic": clean(self.statistic), "p": clean(self.p), "n": self.n,
                "discordant": list(self.discordant) if self.discordant is not None else None,
                "mean": clean(self.mean), "se": clean(self.se), "ci": [clean(c) for c in self.ci]}


def _pair(a, b) -> np.ndarray:
    x, y = _per_sample(a, "a"), _per_sample(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired cells need the same samples, got {x.size} and {y.size}")
    if np.any((x < 0) | (x > 1) | (y < 0) | (y > 1)):
        raise ValueError("per-sample outcomes must lie in [0, 1] (yes/no or a rate over draws)")
    return x - y


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
    """One-sided sign-flip tails of sum(e) and whether they are exact."""
    m = _grid(e)
    if m is not None:
        k = np.round(e * m).astype(np.int64)
        if _exact_ok(k):
            return (*_signflip_tails(k), True)
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
    """Interval of shifts delta that the two-sided sign-flip test of d - delta keeps at level alpha.

    Exact (the distribution of subset means: a shift is kept iff both one-sided p exceed alpha / 2)
    when d lies on a grid and the programme over (subset size, subset sum) is small; else the same
    test's normal approximation inverted in closed form: mean +- z sd_pop / sqrt(n - z^2)."""
    n = d.size
    m = _grid(d)
    if m is not None:
        k = np.round(d * m).astype(np.int64)
        width = 2 * int(np.abs(k).sum()) + 1
        if (n + 1) * width * n <= EXACT_CI_MAX_WORK:
            return _subset_mean_ci(k, m, alpha)
    z2 = _Z95 ** 2 if alpha == 0.05 else _zq(1 - alpha / 2) ** 2
    if n <= z2:
        return -100.0, 100.0
    half = math.sqrt(z2 * max(0.0, n * float((d ** 2).sum()) - float(d.sum()) ** 2) / (n - z2)) / n
    return _clip(100 * (float(d.mean()) - half), 100 * (float(d.mean()) + half))


def _subset_mean_ci(k: np.ndarray, m: int, alpha: float) -> tuple[float, float]:
    n, off = k.size, int(np.abs(k).sum())
    table = np.zeros((n + 1, 2 * off + 1))        # mass of subsets by (size, sum of k)
    table[0, off] = 1.0
    for v in k:
        nxt = 0.5 * table
        if v >= 0:
            nxt[1:, v:] += 0.5 * table[:-1, : table.shape[1] - v]
        else:
            nxt[1:, : v] += 0.5 * table[:-1, -v:]
        table = nxt
    size, s = np.nonzero(table[1:] > 0)
    mass = table[1:][size, s]
    means = (s - off) / ((size + 1) * m)
    order = np.argsort(means, kind="stable")
    means, mass = means[order], mass[order]
    empty = 0.5 ** n
    up = empty + np.cumsum(mass)                  # P(flip >= observed) at delta = each subset mean
    down = empty + np.cumsum(mass[::-1])[::-1]    # P(flip <= observed) at delta = each subset mean
    keep_lo = np.nonzero(up > alpha / 2)[0]
    keep_hi = np.nonzero(down > alpha / 2)[0]
    lo = -100.0 if empty > alpha / 2 else 100 * float(means[keep_lo[0]])
    hi = 100.0 if empty > alpha / 2 else 100 * float(means[keep_hi[-1]])
    return _clip(lo, hi)


def _zq(q: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(q))


def _binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def paired_test(a, b) -> PairedTest:
    """Two-sided paired test of a - b on the SAME samples.

    a, b: [N] per-sample outcomes (booleans or floats in [0, 1]) or [R][N] over R draws (each sample's
    mean is used). Yes/no outcomes: exact McNemar, the binomial test of b against b + c discordant pairs
    (exact for any N; 0 discordant pairs give p = 1). Fractional outcomes (means over draws or noise
    replicates lie on a grid 1/m): the exact sign-flip (permutation) test of sum(d), by a dynamic
    programme over the integer-scaled differences, whenever the grid has m <= MAX_GRID = 360, at most
    EXACT_MAX_NONZERO = 2000 differences are nonzero and n_nonzero * sum|m d_i| <= 2e8; otherwise the
    normal approximation of the same permutation distribution ("paired z (normal)").
    """
    x2, y2 = _per_sample(a, "a"), _per_sample(b, "b")
    d = _pair(a, b)
    n = d.size
    mean = float(100 * d.mean())
    se = float(100 * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    if _binary(x2) and _binary(y2):
        bb, cc = int((d > 0).sum()), int((d < 0).sum())
        if bb + cc == 0:
            p = 1.0
        else:
            from scipy.stats import binomtest
            p = float(binomtest(bb, bb + cc, 0.5).pvalue)
        return PairedTest("exact McNemar", _z_of(d), min(1.0, p), n, (bb, cc), mean, se, _mcnemar_ci(bb, cc, n))
    up, down, exact = _tails(d)
    p = min(1.0, 2 * min(up, down)) if np.any(d != 0) else 1.0
    return PairedTest("exact sign-flip" if exact else "paired z (normal)", _z_of(d), p, n, None, mean, se,
                      _signflip_ci(d))


def equivalence_test(a, b, margin: float, alpha: float = 0.05) -> PairedTest:
    """Two one-sided tests (TOST) of -margin < mean(a - b) < +margin, margin in percent points.

    Each side is the one-sided sign-flip test of the shifted differences d + margin (H0: mean <= -margin)
    and margin - d (H0: mean >= margin), exact on a grid as in `paired_test`, else normal; p is the larger
    of the two one-sided p (equivalence when p < alpha). It assumes the shifted differences are symmetric
    under H0, as every sign-flip test does. discordant, mean, se and ci are those of `paired_test`."""
    if not (math.isfinite(float(margin)) and margin > 0):
        raise ValueError(f"margin must be a finite number of percent points > 0, got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    base = paired_test(a, b)
    d, delta = _pair(a, b), float(margin) / 100
    low, up = d + delta, delta - d
    p_low, _, ex_low = _tails(low)
    p_up, _, ex_up = _tails(up)
    name = "TOST exact sign-flip" if ex_low and ex_up else "TOST sign-flip (normal)"
    return PairedTest(name, min(_z_of(low), _z_of(up)), max(p_low, p_up), base.n, base.discordant, base.mean,
                      base.se, base.ci)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: sort ascending, multiply the i-th smallest
    (0-based) by (k - i), take the running maximum, cap at 1. Controls the family-wise error rate at
    alpha for any dependence between the tests."""
    p = np.asarray(list(p_values), dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must be finite numbers in [0, 1], got {list(p_values)}")
    k = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (k - np.arange(k))))
    out = np.empty(k)
    out[order] = adj
    return [float(x) for x in out]


def directional_verdict(test: PairedTest, expected_sign: int, p_adjusted: float, alpha: float = 0.05) -> str:
    """'reproduced' when mean(a - b) has the claimed sign and p_adjusted < alpha, 'contradicted' when it
    has the opposite sign and p_adjusted < alpha, else 'inconclusive' (also for a zero difference)."""
    sign = _check_sign(expected_sign)
    if test.test.startswith("TOST"):
        raise ValueError("directional_verdict needs a difference test (paired_test), got an equivalence test")
    if not (math.isfinite(test.mean) and test.mean != 0 and p_adjusted < alpha):
        return INCONCLUSIVE
    return REPRODUCED if test.mean * sign > 0 else CONTRADICTED


def equivalence_verdict(test: PairedTest, margin: float, p_adjusted: float, alpha: float = 0.05) -> str:
    """For a claim of no difference: 'reproduced' when the (adjusted) TOST p < alpha, 'contradicted' when
    the 95% interval lies wholly outside (-margin, +margin), else 'inconclusive'."""
    if not test.test.startswith("TOST"):
        raise ValueError(f"equivalence_verdict needs an equivalence_test result, got {test.test!r}")
    if not margin > 0:
        raise ValueError(f"margin must be > 0 percent points, got {margin}")
    if p_adjusted < alpha:
        return REPRODUCED
    lo, hi = test.ci
    return CONTRADICTED if lo >= margin or hi <= -margin else INCONCLUSIVE


def samples_for_power(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Samples for a two-sided paired test at level alpha to detect a true difference `effect` (percent
    points) with per-sample SD `sd` (percent points) with probability `power`; normal approximation:
    n = ceil(((z_{1-alpha/2} + z_power) sd / effect)^2), at least 2."""
    effect, sd = _check_effect(effect, sd)
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    need = ((_zq(1 - alpha / 2) + _zq(power)) * sd / effect) ** 2
    return max(2, math.ceil(need * (1 - 1e-12)))
