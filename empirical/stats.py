"""Paired tests, verdicts, multiplicity and power for the paper's claims (numpy and scipy only).

Every cell of a table is measured on the same samples, so a claim "a > b" is read from the per-sample
differences d_i = a_i - b_i. `paired_test` decides it: exact McNemar for yes/no outcomes, an exact
sign-flip (permutation) test for rates over draws (normal approximation only above a stated size), each
with a 95% interval that inverts the same test. `equivalence_test` decides "unchanged" claims by two
one-sided tests against a band. `holm` adjusts a family of p-values; `directional_verdict` and
`equivalence_verdict` turn a test and its adjusted p into reproduced / contradicted / inconclusive;
`samples_for_power` sizes a run for 80% power. `paired_difference` (mean and paired SE), `power` and
`samples_to_resolve` (2-SE rules) remain for the audit and the toy reading; `calibration` scores a
per-sample prediction against a constant.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from empirical.signflip import (  # noqa: F401  (the limits are documented beside the tests that use them)
    ENUMERATE_MAX, EXACT_MAX_NONZERO, MAX_GRID, _binary, _bound_p, _clip, _cp, _grid, _mcnemar_ci, _signflip_ci, _tails, _z_of, _zq)

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


def calibration(pred, measured, bins: int = 5, draws: int | None = None) -> dict:
    """How well per-sample probabilities `pred` predict measured rates `measured` (both [M] in [0, 1]).

    bins: equal-width bins of the prediction, each with its count, mean prediction and mean measured
    rate (with SE). brier: mean (pred - measured)^2. brier_baseline: the same for a constant predictor,
    each sample predicted by the mean measured rate of the OTHER samples (leave-one-out, so the baseline
    is not fitted on the sample it scores). gain = brier_baseline - brier, with its paired SE over
    samples, its sign-flip test (gain_test) and the verdict on "the prediction beats the constant" at
    p < 0.05 (`directional_verdict`). brier_floor: with measured the
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
    gain_test = signflip_test(gain) if n > 1 else None
    floor = float(np.mean(m * (1 - m)) / (draws - 1)) if draws is not None and draws > 1 else float("nan")
    return {"n": n, "bins": rows, "brier": float(err.mean()), "brier_baseline": float(err_base.mean()),
            "brier_floor": floor, "gain": float(gain.mean()), "gain_se": gain_test.se if gain_test else float("nan"),
            "gain_test": gain_test.to_dict() if gain_test else None,
            "verdict": directional_verdict(gain_test, +1, gain_test.p) if gain_test else INCONCLUSIVE,
            "mean_predicted": float(p.mean()), "mean_measured": float(m.mean())}


# ---- Exact paired tests, equivalence, multiplicity and power (the rules every verdict uses) ----


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


def signflip_test(d, unit: float = 1.0) -> PairedTest:
    """Two-sided sign-flip (permutation) test of mean(d) = 0 for real per-sample differences d ([N]).

    Exact whenever the values lie on a grid 1/m with m <= MAX_GRID = 360, at most EXACT_MAX_NONZERO = 2000
    of them are nonzero and n_nonzero * sum|m d_i| <= 2e8 (dynamic programme), or off a grid when at most
    ENUMERATE_MAX = 16 are nonzero (enumeration); otherwise the normal approximation of the same
    permutation distribution ("paired z (normal)"). mean, se and ci are reported times `unit`."""
    d = np.asarray(d, dtype=float)
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"differences must be a nonempty finite 1-D array, got shape {d.shape}")
    n = d.size
    up, down, exact = _tails(d)
    p = min(1.0, 2 * min(up, down)) if np.any(d != 0) else 1.0
    lo, hi = _signflip_ci(d)
    se = float(unit * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return PairedTest("exact sign-flip" if exact else "paired z (normal)", _z_of(d), p, n, None,
                      float(unit * d.mean()), se, (unit * lo, unit * hi))


def signflip_equivalence(d, margin: float, unit: float = 1.0) -> PairedTest:
    """Two one-sided sign-flip tests (TOST) of -margin < mean(d) < +margin, margin in the units of d.

    The sides test the shifted differences d + margin (H0: mean <= -margin) and margin - d (H0: mean >=
    margin), each exact or normal as in `signflip_test`; p is the larger one-sided p (equivalence when
    p < alpha). Like every sign-flip test it assumes the shifted differences symmetric under H0.
    statistic, mean, se and ci: as `signflip_test` gives them (statistic: the weaker side's z)."""
    if not (math.isfinite(float(margin)) and margin > 0):
        raise ValueError(f"margin must be a finite number > 0, got {margin}")
    base = signflip_test(d, unit)
    d = np.asarray(d, dtype=float)
    low, up = d + margin, margin - d
    p_low, _, ex_low = _tails(low)
    p_up, _, ex_up = _tails(up)
    name = "TOST exact sign-flip" if ex_low and ex_up else "TOST sign-flip (normal)"
    return replace(base, test=name, statistic=min(_z_of(low), _z_of(up)), p=max(p_low, p_up))


def paired_test(a, b) -> PairedTest:
    """Two-sided paired test of a - b on the SAME samples, in percent points.

    a, b: [N] per-sample outcomes (booleans or floats in [0, 1]) or [R][N] over R draws (each sample's
    mean is used). Yes/no outcomes: exact McNemar, the binomial test of b against b + c discordant pairs
    (exact for any N; 0 discordant pairs give p = 1), with a Clopper-Pearson interval. Fractional outcomes
    (means over draws or noise replicates lie on a grid 1/m): `signflip_test`, exact by its stated rule
    (any N on a grid up to 2000 nonzero differences), else its normal approximation.
    """
    x, y = _per_sample(a, "a"), _per_sample(b, "b")
    d = _pair(a, b)
    n = d.size
    if _binary(x) and _binary(y):
        from scipy.stats import binomtest
        bb, cc = int((d > 0).sum()), int((d < 0).sum())
        p = float(binomtest(bb, bb + cc, 0.5).pvalue) if bb + cc else 1.0
        se = float(100 * d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        return PairedTest("exact McNemar", _z_of(d), min(1.0, p), n, (bb, cc), float(100 * d.mean()), se,
                          _mcnemar_ci(bb, cc, n))
    t = signflip_test(d, 100.0)
    return replace(t, ci=_clip(*t.ci))


def equivalence_test(a, b, margin: float, alpha: float = 0.05) -> PairedTest:
    """Two one-sided tests (TOST) of -margin < mean(a - b) < +margin, margin in percent points, for
    per-sample outcomes in [0, 1] on the same samples.

    Write d = d+ - d- (the positive and negative parts; for yes/no outcomes the two discordant
    indicators, b and c of McNemar). mean(d) < margin is shown at level alpha when the Clopper-Pearson
    upper bound of E d+ minus the lower bound of E d-, each at alpha / 2, lies below margin, and
    symmetrically for -margin; the counts are sum(m d+) of n m trials on the outcomes' grid 1/m. This is
    exact in the sense of never exceeding alpha (no symmetry or normality assumed; ties and zero
    differences handled: with 0 of 16 discordant pairs the bound is 17 points, not 0). p is the larger
    of the two one-sided p; ci the 95% interval of the same bounds (alpha / 4 per part), against which
    `equivalence_verdict` calls a band contradicted; statistic the slack in points, margin minus the
    farther bound at alpha (positive exactly when p < alpha)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not (math.isfinite(float(margin)) and margin > 0):
        raise ValueError(f"margin must be a finite number of percent points > 0, got {margin}")
    base = paired_test(a, b)
    d, delta = _pair(a, b), float(margin) / 100
    pos, neg = np.maximum(d, 0), np.maximum(-d, 0)
    m = _grid(np.concatenate([pos, neg])) or 1
    kp, kn, n = float(np.round(pos.sum() * m, 9)), float(np.round(neg.sum() * m, 9)), d.size * m
    upper = lambda al: _cp(kp, n, al / 2, True) - _cp(kn, n, al / 2, False) - delta
    lower = lambda al: -delta - (_cp(kp, n, al / 2, False) - _cp(kn, n, al / 2, True))
    p = max(_bound_p(upper), _bound_p(lower))
    lo = _cp(kp, n, 0.0125, False) - _cp(kn, n, 0.0125, True)
    hi = _cp(kp, n, 0.0125, True) - _cp(kn, n, 0.0125, False)
    slack = -100 * max(upper(alpha), lower(alpha))
    return replace(base, test="TOST exact (Clopper-Pearson)", statistic=slack, p=p, ci=(100 * lo, 100 * hi))


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
