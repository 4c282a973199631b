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
