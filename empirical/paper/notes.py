"""The notes printed under a table: the claims of `claims.py` read on one run, decided by paper_checks' rules.

Given a run name ("table2", "sweep_tstar", ...) and the run's result dict, every claim that lists the run
among its runs is measured on that dict alone (`Claim.measure`) and decided by `rules.decide`, and the
notes are written as lines (at most 120 columns, no nan or inf) and JSON-able records.

Multiplicity is paper_checks' own (`render.adjust`, `empirical.multiplicity`): the project's primary claims
share alpha by Bonferroni, and every other claim is tested by Holm over all secondary claims at the alpha
the rejected primaries pass on. A primary claim is decided by its own p. A secondary claim's adjusted p
depends on the whole report, but it is never below its Holm p over this run's secondary claims alone
(reached when every primary claim is rejected and no other secondary claim is tested); a verdict that is
the same at that bound and at p = 1 is fixed by this run and printed, the others are left to paper_checks.
Given the raw p of every other tested claim of the report (`context_from`), the notes adjust exactly as
paper_checks does, and their adjusted p and verdicts equal those of `verdicts.json`.
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field

from empirical import stats
from empirical.multiplicity import gatekeeping
from empirical.paper import numbers as P
from empirical.paper import runs as R
from empirical.paper.claims import CLAIMS, PRIMARY, Claim
from empirical.paper.measures import MARGIN
from empirical.paper.render import adjust
from empirical.paper.rules import ALPHA, RULE, Evidence, Step, Verdict, claim_p, decide, fmt_p

WIDTH = 120
# The purifier methods a table's claims read by name; a run without one of them cannot be measured.
NEEDS = {"table2": P.PURIFIERS, "table2_large": P.PURIFIERS, "projection": P.PURIFIERS, "ema": ("RevPure",)}
_NONFINITE = re.compile(r"(?<![A-Za-z])[+-]?(nan|inf)(?![A-Za-z])")


@dataclass
class Notes:
    """The lines printed under the table and one JSON-able record per claim."""

    lines: list[str] = field(default_factory=list)
    tests: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Reading:
    """One claim read on the run: its evidence and raw p (None outside the family); `verdict` at the
    adjusted p when it is known (`p_adjusted`), else at its lower bound `p_min`; `fixed`: the verdict is
    the same wherever in [p_min, 1] paper_checks' adjusted p falls."""

    claim: Claim
    evidence: Evidence
    p: float | None
    p_adjusted: float | None
    p_min: float | None
    verdict: Verdict
    fixed: bool


def claims_for(run: str) -> tuple[Claim, ...]:
    """The claims of paper_checks that read the run `run` (primary or same-sample reading)."""
    return tuple(c for c in CLAIMS if run in c.runs)


def methods_of(d: dict) -> set[str]:
    """The purifier methods a run measured: from its record keys ("prefix:label|method|t*=...") or, for
    Table S3, the keys of `measured`."""
    keys = R.base_keys(d.get("records") or {})
    return {k.split("|")[1] for k in keys if k.count("|") >= 2} | set(d.get("measured") or {})


def _unmeasured(missing: list[str], have: set[str]) -> Evidence:
    why = f"the claim compares {', '.join(missing)}; this run has {', '.join(sorted(have)) or 'no purifier'}"
    return Evidence(RULE, "not measured", rule_verdict=stats.INCONCLUSIVE, rule_note=f"not measured in this run: {why}")


def _bounds(raw: dict[str, float]) -> dict[str, float]:
    """The smallest adjusted p each claim can get in any report holding these tests: primary claims by
    Bonferroni over all of PRIMARY (exact), secondary ones by Holm among themselves (every primary rejected)."""
    primary = [c for c in raw if c in PRIMARY]
    secondary = [c for c in raw if c not in PRIMARY]
    first, _ = gatekeeping([raw[c] for c in primary], [], ALPHA, k=len(PRIMARY)) if primary else ([], [])
    return {**dict(zip(primary, first)), **dict(zip(secondary, stats.holm([raw[c] for c in secondary])))}


def read(run: str, d: dict, context: dict[str, float] | None = None) -> list[Reading]:
    """Every claim of `run` measured on `d`. context: {claim id: raw p} of the report's other tested claims;
    given, the adjustment is paper_checks' over all of them and this run's claims."""
    claims = claims_for(run)
    if not claims:
        known = sorted({r for c in CLAIMS for r in c.runs})
        raise ValueError(f"no claim of empirical.paper.claims reads a run named {run!r}; use one of {known}")
    have = methods_of(d)
    missing = [m for m in NEEDS.get(run, ()) if m not in have]
    evidence = {c.id: _unmeasured(missing, have) if missing else c.measure(d, {run: d}) for c in claims}
    raw = {i: p for i, e in evidence.items() if (p := claim_p(e)) is not None}
    low = _bounds(raw)
    exact = {i: p for i, p in adjust({**(context or {}), **raw}).items() if i in raw} if context is not None else {}
    exact.update({i: low[i] for i in raw if i in PRIMARY})
    out = []
    for c in claims:
        e, p = evidence[c.id], raw.get(c.id)
        if p is None or c.id in exact:
            v = decide(e, exact.get(c.id))
            out.append(Reading(c, e, p, exact.get(c.id), low.get(c.id), v, True))
        else:
            best = decide(e, low[c.id])
            out.append(Reading(c, e, p, None, low[c.id], best, best.verdict == decide(e, 1.0).verdict))
    return out


def context_from(records: list[dict], run: str) -> dict[str, float]:
    """{claim id: raw p} of the tested claims of a report (verdicts.json's "claims", or render.evaluate's
    records) that are not claims of `run`."""
    own = {c.id for c in claims_for(run)}
    return {r["claim"]: r["p"] for r in records if r["p_adjusted"] is not None and r["claim"] not in own}


def _finite(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _text(s: str) -> str:
    """A measured text with any non-finite number named as missing (no nan or inf is printed)."""
    return _NONFINITE.sub("(missing: not computable from these samples)", s)


def _wrap(text: str, indent: str, more: str = "  ") -> list[str]:
    return textwrap.wrap(_text(text), WIDTH, initial_indent=indent, subsequent_indent=indent + more,
                         break_on_hyphens=False)


def _step(ev: Evidence) -> Step | None:
    s = ev.deciding()
    return s if s is not None and s.test is not None else None


def _power(n80: dict) -> str:
    if not n80 or not any(n80.values()):
        return "samples for 80% power: not computed (no spread across samples, or no effect to size)"
    say = lambda k: str(n80[k]) if n80.get(k) else "-"
    return (f"samples for 80% power (two-sided, alpha {ALPHA}): {say('paper')} for the paper's effect, "
            f"{say('measured')} for the measured one")


def _decision(r: Reading) -> str:
    v = r.verdict
    if r.p_adjusted is not None:
        return f"adjusted p={fmt_p(r.p_adjusted)}): {v.verdict} ({v.note})"
    if r.fixed:
        bound = "adjusted p = 1" if r.p_min >= 1 else f"adjusted p >= {fmt_p(r.p_min)}"
        return f"{bound} in any report): {v.verdict} ({v.note}; secondary claim, the same verdict in paper_checks)"
    return (f"adjusted p >= {fmt_p(r.p_min)}): secondary claim, decided in paper_checks over the whole report "
            f"({v.verdict} there only if its adjusted p stays below {ALPHA})")


def _test_text(r: Reading) -> str:
    """The deciding test as paper_checks reports it, with the step's difference and interval."""
    step = _step(r.evidence)
    t, d = step.test, step.digits
    unit = " points" if d == 1 else ""
    se = f"±{t.se:.{d}f}" if math.isfinite(t.se) else " (no SE: one sample)"
    ci = (f"95% CI [{t.ci[0]:+.{d}f}, {t.ci[1]:+.{d}f}]" if all(map(math.isfinite, t.ci)) else
          "no finite 95% CI from so few samples")
    disc = f", discordant {t.discordant[0]}/{t.discordant[1]}" if t.discordant else ""
    return (f"{step.label}: {t.mean:+.{d}f}{se}{unit}, {ci} ({t.test}, statistic {t.statistic:.2f}, "
            f"p={fmt_p(t.p)}, n={t.n}{disc}, " + _decision(r) + "; " + _power(r.verdict.n_80))


def claim_lines(r: Reading) -> list[str]:
    """The claim's id and title, what was measured, and its test and verdict (or its rule)."""
    out = _wrap(f"{r.claim.id}: {r.claim.title}", "  ", "    ")
    out += _wrap(f"measured: {r.evidence.measured}", "    ")
    if _step(r.evidence) is not None:
        return out + _wrap(_test_text(r), "    ")
    if r.evidence.kind == RULE:
        return out + _wrap(f"no test (outside the adjusted family): {r.verdict.verdict} ({r.verdict.note})", "    ")
    return out + _wrap(f"no test: {r.verdict.verdict} ({r.verdict.note})", "    ")


def record(r: Reading, run: str, d: dict, family: str) -> dict:
    """The claim's reading as JSON: the keys of verdicts.json (verdict None where paper_checks decides it),
    the smallest adjusted p it can get, and the deciding step's difference."""
    v, step = r.verdict, _step(r.evidence)
    t = step.test if step else None
    return {"claim": r.claim.id, "title": r.claim.title, "run": run, "setup": R.setup_text(d, r.claim.model),
            "estimand": r.claim.estimand, "kind": r.evidence.kind, "measured": r.evidence.measured,
            "primary": r.claim.id in PRIMARY, "decided_by": v.decided_by or None, "test": v.test,
            "statistic": _finite(v.statistic), "p": _finite(r.p), "p_adjusted": _finite(r.p_adjusted),
            "p_adjusted_min": _finite(r.p_min), "n": v.n, "discordant": list(v.discordant) if v.discordant else None,
            "mean": _finite(t.mean) if t else None, "se": _finite(t.se) if t else None,
            "ci": [_finite(c) for c in t.ci] if t else None, "verdict": v.verdict if r.fixed else None,
            "verdict_if_adjusted_p_below_alpha": None if r.fixed else v.verdict, "note": v.note,
            "n_80": v.n_80 or None, "family": family}


def _header(run: str, tested: int, context: bool) -> list[str]:
    rule = (f"Claims of paper_checks read on this run (run '{run}'), by its rules: exact McNemar or sign-flip tests "
            f"per sample, two one-sided tests within ±{MARGIN:g} points for 'unchanged' and 'equal', a claim of "
            f"several steps decided by its weakest step. Multiplicity as in paper_checks: the primary claims "
            f"({', '.join(PRIMARY)}) share alpha {ALPHA} by Bonferroni and pass the alpha of those rejected to the "
            "secondary claims, adjusted by Holm over all of them. ")
    scope = ("Adjusted here over the whole report given with this run." if context else
             f"A secondary claim's adjusted p is at least its Holm p over this run's {tested} tested claims; a "
             "verdict that bound already fixes is printed, the others are decided in paper_checks.md.")
    return [""] + _wrap(rule + scope, "")


def _summary(readings: list[Reading]) -> list[str]:
    tested = [r for r in readings if r.p is not None]
    fixed = {w: sum(r.fixed and r.verdict.verdict == w for r in tested) for w in stats.VERDICTS}
    open_ = [r for r in tested if not r.fixed]
    untested = {w: sum(r.verdict.verdict == w for r in readings if r.p is None) for w in stats.VERDICTS}
    text = (f"Verdicts: {len(tested)} tested claims, " + ", ".join(f"{n} {w}" for w, n in fixed.items())
            + (f", {len(open_)} decided in paper_checks ({', '.join(r.claim.id for r in open_)})" if open_ else "")
            + (f"; {sum(untested.values())} without a test (rule, or not measured): "
               + ", ".join(f"{n} {w}" for w, n in untested.items() if n) if any(untested.values()) else "") + ".")
    return _wrap(text, "")


def notes(run: str, d: dict, context: dict[str, float] | None = None) -> Notes:
    """Lines and records of every claim of `run` read on `d` (a run's whole result dict, `config` included),
    closing with the counts of each verdict. context: see `read`."""
    readings = read(run, d, context)
    family = "paper_checks (the report given)" if context is not None else "this run (lower bounds)"
    out = Notes(_header(run, sum(r.p is not None for r in readings), context is not None))
    for r in readings:
        out.lines += claim_lines(r)
        out.tests.append(record(r, run, d, family))
    out.lines += _summary(readings)
    return out
