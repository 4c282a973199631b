"""The rules that turn a claim's measured comparisons into a typed `Verdict`.

A claim is measured as one or more steps, each a paired test (`empirical.stats`) with the direction the
paper claims, or an equivalence band. The claim's p is the p of its deciding step:

- directional claims (a > b, or a chain a > b > c, or one claim over several purifiers): the claim holds
  only if every step does, so its p is the largest step p (an intersection-union test, valid at the
  same level without adjustment across steps); if any step has the opposite sign, the deciding step is
  the reversed step with the smallest p, and the claim is contradicted when that p (adjusted) < alpha;
- equivalence claims ("unchanged", "equal"): TOST per step, the claim's p the largest TOST p;
  contradicted when some step's 95% interval lies wholly outside the band;
- claims without per-sample records or with one unit (Fig. 4's single image, Fréchet distances without
  an SE) go by a deterministic rule, carry no p and stay outside the multiplicity family.

The p-values of the decided claims are adjusted together (`render.adjust`: primary claims by Bonferroni,
the rest by Holm at the alpha the rejected primaries pass on; `empirical.multiplicity`); the verdict uses
the adjusted p (`stats.directional_verdict`, `stats.equivalence_verdict`). Samples for 80% power
(`stats.samples_for_power`) are given for the paper's effect and for the measured one, at the deciding
step's per-sample SD; for an equivalence step the effect is the room margin - |difference|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from empirical import stats
from empirical.stats import PairedTest

ALPHA = 0.05
DIRECTIONAL, EQUIVALENCE, RULE = "directional", "equivalence", "rule"


@dataclass(frozen=True)
class Step:
    """One measured comparison of a claim: its test (None when the run lacks a cell), the claimed sign
    (+1 a > b, -1 a < b; 0 for an equivalence step), the paper's own difference in the same units (None
    where the paper gives none) and, for an equivalence step, the band's half-width."""

    label: str
    test: PairedTest | None
    sign: int = 0
    paper: float | None = None
    margin: float | None = None
    digits: int = 1

    def text(self) -> str:
        """label mean±SE (n, test p)."""
        if self.test is None:
            return f"{self.label} not measured"
        t, d = self.test, self.digits
        se = "?" if not math.isfinite(t.se) else f"{t.se:.{d}f}"
        return f"{self.label} {t.mean:+.{d}f}±{se} (n={t.n}, p={fmt_p(t.p)})"


@dataclass(frozen=True)
class Evidence:
    """What a claim's rule measured: its kind, steps and text, or (kind RULE) a deterministic verdict."""

    kind: str
    measured: str
    steps: tuple[Step, ...] = ()
    rule_verdict: str | None = None
    rule_note: str = ""

    def deciding(self) -> Step | None:
        """The step whose p is the claim's p (see the module docstring); None if a step is unmeasured."""
        if self.kind == RULE or not self.steps or any(s.test is None for s in self.steps):
            return None
        if self.kind == DIRECTIONAL:
            reversed_ = [s for s in self.steps if s.test.mean * s.sign < 0]
            if reversed_:
                return min(reversed_, key=lambda s: s.test.p)
            return max(self.steps, key=lambda s: s.test.p)
        outside = [s for s in self.steps if _outside(s)]
        return outside[0] if outside else max(self.steps, key=lambda s: s.test.p)


@dataclass(frozen=True)
class Verdict:
    """A claim's decision: verdict, the deciding test (name, statistic, raw and adjusted p, n,
    discordant pairs), the step that decided it, a note, and the samples for 80% power."""

    verdict: str
    test: str | None = None
    statistic: float | None = None
    p: float | None = None
    p_adjusted: float | None = None
    n: int | None = None
    discordant: tuple[int, int] | None = None
    decided_by: str = ""
    note: str = ""
    n_80: dict = field(default_factory=dict)


def fmt_p(p: float | None) -> str:
    """p to two significant digits ("-" for none)."""
    if p is None or not math.isfinite(p):
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _outside(step: Step) -> bool:
    lo, hi = step.test.ci
    return lo >= step.margin or hi <= -step.margin


def _n80(step: Step) -> dict:
    """Samples for 80% power (two-sided, alpha 0.05) at the step's per-sample SD: for the paper's effect
    and for the measured one; None where there is no effect to size or no spread."""
    t = step.test
    sd = t.se * math.sqrt(t.n) if math.isfinite(t.se) else math.nan
    out = {"paper": None, "measured": None}
    if not (math.isfinite(sd) and sd > 0):
        return out
    effects = {"paper": step.paper, "measured": t.mean}
    if step.sign == 0:
        effects = {k: (step.margin - abs(v) if v is not None else None) for k, v in effects.items()}
    for k, e in effects.items():
        if e is None or not math.isfinite(e) or e == 0 or (step.sign == 0 and e < 0):
            continue
        out[k] = stats.samples_for_power(e, sd)
    return out


def claim_p(evidence: Evidence) -> float | None:
    """The raw p that enters the adjusted family, or None (deterministic rule or unmeasured step)."""
    step = evidence.deciding()
    return None if step is None else float(step.test.p)


def decide(evidence: Evidence, p_adjusted: float | None) -> Verdict:
    """The verdict of a claim from its evidence and its adjusted p."""
    if evidence.kind == RULE:
        return Verdict(evidence.rule_verdict or stats.INCONCLUSIVE, note=evidence.rule_note or "deterministic rule")
    step = evidence.deciding()
    if step is None:
        missing = ", ".join(s.label for s in evidence.steps if s.test is None) or "every step"
        return Verdict(stats.INCONCLUSIVE, note=f"not measured in this run: {missing}")
    t = step.test
    if p_adjusted is None:
        raise ValueError(f"a tested claim needs its adjusted p (deciding step {step.label!r})")
    if evidence.kind == DIRECTIONAL:
        v = stats.directional_verdict(t, step.sign, p_adjusted, ALPHA)
        why = {stats.REPRODUCED: "every step in the claimed direction", stats.CONTRADICTED: "reversed",
               stats.INCONCLUSIVE: "not resolved"}[v]
    else:
        v = stats.equivalence_verdict(t, step.margin, p_adjusted, ALPHA)
        why = {stats.REPRODUCED: f"inside ±{step.margin:g}", stats.CONTRADICTED: f"95% interval outside ±{step.margin:g}",
               stats.INCONCLUSIVE: f"95% interval reaches ±{step.margin:g}"}[v]
    return Verdict(v, t.test, t.statistic, t.p, p_adjusted, t.n, t.discordant, step.label,
                   f"{why}; deciding step {step.label}", _n80(step))


# ---- deterministic rules for claims without a test --------------------------------------------------


def gap_rule(smaller: float, larger: float, gap: float) -> tuple[str, str]:
    """Claim larger > smaller without an SE: reproduced above a relative gap, contradicted when reversed
    by more than that gap, inconclusive in between."""
    if larger / smaller - 1 > gap:
        return stats.REPRODUCED, f"relative gap above {100 * gap:.0f}% (no SE)"
    if smaller / larger - 1 > gap:
        return stats.CONTRADICTED, f"reversed by more than {100 * gap:.0f}% (no SE)"
    return stats.INCONCLUSIVE, f"the values differ by < {100 * gap:.0f}% (no SE)"


def correlation_rule(initial: float, purified: float, zero: float) -> tuple[str, str]:
    """Fig. 4b (one image): |initial| < zero and purified > initial + zero; contradicted when not higher."""
    if abs(initial) < zero and purified > initial + zero:
        return stats.REPRODUCED, f"|initial| < {zero} and purified higher by > {zero} (one image, no SE)"
    if purified <= initial:
        return stats.CONTRADICTED, "purified correlation not higher (one image, no SE)"
    return stats.INCONCLUSIVE, f"inside the ±{zero} rule (one image, no SE)"


def components_rule(initial: int, purified: int) -> tuple[str, str]:
    """Fig. 4c (one image): at most half the components is reproduced; as many or more contradicted."""
    if purified <= initial / 2:
        return stats.REPRODUCED, "at most half the components (one image, no SE)"
    if purified >= initial:
        return stats.CONTRADICTED, "not fewer components (one image, no SE)"
    return stats.INCONCLUSIVE, "fewer components, but more than half (one image, no SE)"


def unpaired_test(mean_a: float, se_a: float, mean_b: float, se_b: float, n: int) -> PairedTest | None:
    """a - b from stored means and SEs only (no per-sample records): z = diff / sqrt(se_a^2 + se_b^2)
    with a normal p; None when the SE is 0 or missing (no finite z)."""
    diff, se = mean_a - mean_b, math.hypot(se_a, se_b)
    if not (math.isfinite(se) and se > 0):
        return None
    z = diff / se
    return PairedTest("unpaired z (normal)", z, math.erfc(abs(z) / math.sqrt(2)), n, None, diff, se,
                      (diff - 1.959963984540054 * se, diff + 1.959963984540054 * se))
