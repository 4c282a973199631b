"""Table 1's legend, tests and verdict lines, decided by the same measures and rules as paper_checks.

Every stochastic purifier of the run gets its BPDA and BPDA-EOT drops (exact paired tests), its clean
change (two one-sided tests within +-MARGIN), the Replay->fresh drop split into (a) restored and (b) lost,
and the toy model's prediction of (a) against held-out draws (TOST within +-MARGIN of (a)). The primary
tests (every BPDA drop, DiffPure's toy prediction) are decided here exactly as paper_checks decides its
primary claims (Bonferroni, empirical.multiplicity), so both say the same; the secondary ones are shown with
their raw p and decided in paper_checks, over the whole report. A plain verdict line per purifier ends.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from empirical import stats
from empirical.multiplicity import gatekeeping
from empirical.paper import measures as M
from empirical.paper.claims import PRIMARY
from empirical.paper import numbers as P
from empirical.paper.rules import ALPHA, Evidence, claim_p, decide, fmt_p


@dataclass
class Notes:
    """The lines printed under the table and the tests behind them (JSON-able)."""

    lines: list[str] = field(default_factory=list)
    tests: list[dict] = field(default_factory=list)


def display(spec) -> str:
    """A purifier as people write it: "DiffPure (digits DDPM, t*=100)", "Gaussian noise (sigma 0.45)"."""
    if spec.method.startswith("x + N"):
        return f"Gaussian noise x + N(0, sigma^2 I) (sigma {spec.purifier.sigma:g})"
    return f"{spec.method} ({spec.label}, t*={spec.t_star_text})"


def legend(setup, protocol, columns, fmt: str, replicates: int) -> list[str]:
    """One line per column shown, the attack budget, and what a cell's mean and SE are over."""
    shown = {key for key, _ in columns}
    b = f"{protocol.norm} eps={protocol.eps * 255:.3g}/255, {protocol.steps} PGD steps of {protocol.step_size * 255:.3g}/255"
    per = (f"each sample's outcome is its mean over {replicates} noise replicates" if replicates > 1 else
           "each sample's outcome is its own")
    text = {
        "fix": ["  Fix: yes = randomness replay (every purification of a sample reuses its fixed noise, Seed(i,t)); "
                f"no = fresh noise, each attacked set evaluated on R={protocol.fresh_evals} fresh draws."],
        "clean": ["  Clean: no attack."],
        "bpda": [f"  BPDA: {b}, on {setup.n_samples} samples."],
        "eot": [f"  BPDA-EOT: the same with EOT={protocol.eot} purifications per gradient, on {len(setup.eot_ids)} "
                "samples."],
        "transfer": ["  Replay->fresh: examples crafted under replay, tested under fresh noise (Theorem 1's perfect "
                     "attack)."],
        "toy": ["  Toy pred.: Replay->fresh as the toy model predicts it (Theorem 1's chi-square law along rays of "
                "the adversarial region, fitted on draws never used to score it)."],
        "bpda_any": ["  BPDA any-it. / EOT any-it.: DiffPure's rule: broken if any iterate is misclassified on logits "
                     f"averaged over {protocol.judge_draws} fresh draws (confirmed on {protocol.confirm_draws}), the "
                     "rule of the paper's no-fix numbers."]}
    lines = ["", f"Legend (accuracy in %, mean±SE over samples; {per}):"]
    for key in ("fix", "clean", "bpda", "eot", "transfer", "toy", "bpda_any"):
        lines += text[key] if key in shown else []
    if fmt == "wide":
        lines.append("  [spread]: the std of the accuracy over the fresh draws.")
    return lines


@dataclass
class _Purifier:
    name: str
    evidence: dict[str, Evidence]
    decomposition: object
    check: object


def _measure(d: dict, spec) -> _Purifier:
    paper = lambda cell: P.table1(cell)[0] - P.table1(cell)[1] if spec.method == "DiffPure" else None
    ev = {"bpda": M.drop_evidence(d, spec.key, "bpda", paper("bpda")),
          "clean": M.clean_evidence(d, spec.key, paper("clean"))}
    if any("eot_fresh" in c for c in d["records"][spec.key]):
        ev["eot"] = M.drop_evidence(d, spec.key, "eot", paper("eot"))
    check = M.table1_prediction_check(d, spec.key)
    if check is not None:
        ev["toy"] = M.prediction_evidence(d, spec.key)
    return _Purifier(display(spec), ev, M.table1_decomposition(d, spec.key), check)


def _test_line(what: str, ev: Evidence, p_adj: float | None) -> tuple[str, dict]:
    """One test: estimate, interval, test, raw p and, for a primary claim (p_adj given), its adjusted p and
    verdict; a secondary one is left to paper_checks, which adjusts it over the whole report."""
    step = ev.deciding() or ev.steps[0]
    t = step.test
    if t is None:
        return f"    {what}: not measured", {"what": what, "verdict": stats.INCONCLUSIVE}
    v = decide(ev, p_adj if p_adj is not None else t.p)
    se = f"±{t.se:.1f}" if math.isfinite(t.se) else " (no SE)"
    disc = f", discordant {t.discordant[0]}/{t.discordant[1]}" if t.discordant else ""
    ci = (f"95% CI [{t.ci[0]:+.1f}, {t.ci[1]:+.1f}]" if all(map(math.isfinite, t.ci)) else
          "no finite 95% CI from so few samples")
    head = f"    {what}: {t.mean:+.1f}{se} points, {ci} ({t.test} p={fmt_p(t.p)}, n={t.n}{disc}"
    undecided = v.verdict == stats.INCONCLUSIVE if p_adj is not None else t.p >= ALPHA
    need = v.n_80.get("measured") if undecided else None
    more = f"; about {need} samples would decide an effect of this size at 80% power" if need else ""
    if p_adj is None:
        line = head + f"): secondary, decided in paper_checks{more}"
    else:
        line = head + f", adjusted p={fmt_p(p_adj)}): {v.verdict}{more}"
    return line, {"what": what, "primary": p_adj is not None, "verdict": v.verdict if p_adj is not None else None,
                  "test": t.test, "statistic": t.statistic, "p": t.p, "p_adjusted": p_adj, "mean": t.mean,
                  "se": t.se, "ci": list(t.ci), "n": t.n, "discordant": list(t.discordant) if t.discordant else None,
                  "n_80": v.n_80}


WHAT = {"bpda": "BPDA drop (no fix minus fixed)", "eot": "BPDA-EOT drop", "clean": f"clean change (equal within "
        f"±{M.MARGIN:g})", "toy": f"toy prediction of (a) minus held-out (a) (equal within ±{M.MARGIN:g})"}


def _pm(part, sign: str = "") -> str:
    """mean±SE of a decomposition part, "(no SE: one sample)" in place of a missing SE."""
    return f"{part.mean:{sign}.1f}" + (f"±{part.se:.1f}" if math.isfinite(part.se) else " (no SE: one sample)")


def _decomposition_lines(p: _Purifier) -> list[str]:
    dec, chk = p.decomposition, p.check
    if dec is None:
        return []
    out = [f"    Replay->fresh minus fixed {_pm(dec.drop, '+')} = (a) restored {_pm(dec.restored)}"
           f" ({dec.fooled_units} replay-fooled sample-replicates a fresh draw classifies "
           f"correctly again; what the toy model describes) - (b) lost {_pm(dec.lost)} "
           f"({dec.robust_units} replay-robust ones a fresh draw fools; outside the toy model)."]
    if chk is not None:
        out.append(f"    Toy model vs (a), like for like on the {chk.samples} samples read: predicted {chk.predicted:.1f},"
                   f" held-out draws {chk.held_out:.1f}.")
    return out


def _brier_line(prediction: dict | None) -> list[str]:
    c = (prediction or {}).get("calibration")
    if not c:
        return []
    return [f"    Per-sample calibration of the toy reading: held-out Brier {c['brier']:.4f}, constant rate "
            f"{c['brier_baseline']:.4f}; the expected part of any Brier score that is noise of the held-out draws "
            f"{c['brier_floor']:.4f}."]


def _verdict_line(p: _Purifier, tests: dict[str, dict]) -> str:
    t = tests.get("bpda", {})
    v = t.get("verdict")
    if v == stats.REPRODUCED:
        word = (f"masking: fixing the noise lowers BPDA accuracy by {t['mean']:.1f} points (95% CI {t['ci'][0]:.1f} "
                f"to {t['ci'][1]:.1f}; adjusted p={fmt_p(t['p_adjusted'])})")
    elif v == stats.CONTRADICTED:
        word = (f"no masking: fixing the noise raises BPDA accuracy by {-t['mean']:.1f} points (adjusted "
                f"p={fmt_p(t['p_adjusted'])})")
    else:
        need = (t.get("n_80") or {}).get("measured")
        word = ("undecided: the BPDA drop is not resolved" + (f" (about {need} samples would decide an effect of "
                f"{t['mean']:+.1f} points at 80% power)" if need else ""))
    paper = P.table1("bpda")[0] - P.table1("bpda")[1]
    if "ci" in t and p.name.startswith("DiffPure") and math.isfinite(t["ci"][1]) and t["ci"][1] < paper:
        word += f"; the paper's {paper:.1f} on CIFAR-10 lies above the interval"
    return f"  {p.name}: {word}."


def _primary(purifiers: list[_Purifier]) -> dict[tuple[int, str], float]:
    """The table's primary tests, adjusted as paper_checks adjusts its primary claims (Bonferroni over
    max(len(PRIMARY), tests)): every stochastic purifier's BPDA drop and DiffPure's toy prediction of (a).
    With the default purifiers these are exactly paper_checks' primary claims, so both decide them alike."""
    keys = [(i, k) for i, p in enumerate(purifiers) for k, ev in p.evidence.items()
            if (k == "bpda" or (k == "toy" and p.name.startswith("DiffPure"))) and claim_p(ev) is not None]
    first, _ = gatekeeping([claim_p(purifiers[i].evidence[k]) for i, k in keys], [], ALPHA,
                           k=max(len(PRIMARY), len(keys)))
    return dict(zip(keys, first))


def notes(d: dict, setup, protocol, columns, fmt: str) -> Notes:
    """Everything under Table 1: the legend of the columns shown, per purifier its tests (primary ones
    decided here, secondary ones left to paper_checks) and decomposition, and a verdict line per purifier."""
    out = Notes(legend(setup, protocol, columns, fmt, d["config"]["run"].get("replicates", 1)))
    purifiers = [_measure(d, spec) for spec in setup.purifiers if spec.stochastic]
    adjusted = _primary(purifiers)
    out.lines += ["", f"Tests (the rules of paper_checks: exact paired tests per sample; the {len(adjusted)} primary "
                      f"tests share alpha {ALPHA} by Bonferroni over {max(len(PRIMARY), len(adjusted))}, as in "
                      "paper_checks; the others are secondary and decided there, over the whole report):"]
    verdicts = []
    for i, p in enumerate(purifiers):
        out.lines.append(f"  {p.name}:")
        tests = {}
        for k, ev in p.evidence.items():
            line, rec = _test_line(WHAT[k], ev, adjusted.get((i, k)))
            out.lines.append(line)
            tests[k] = rec
        out.lines += _decomposition_lines(p) + _brier_line(d.get("predictions", {}).get(setups_key(setup, i)))
        out.tests.append({"purifier": p.name, "tests": tests,
                          "decomposition": p.decomposition.to_dict() if p.decomposition else None,
                          "prediction_check": p.check.to_dict() if p.check else None})
        verdicts.append(_verdict_line(p, tests))
    out.lines += ["", f"Verdict (masking: fixing the noise lowers BPDA accuracy at adjusted p < {ALPHA}):"] + verdicts
    return out


def setups_key(setup, index: int) -> str:
    """The record key of the index-th stochastic purifier."""
    return [s for s in setup.purifiers if s.stochastic][index].key
