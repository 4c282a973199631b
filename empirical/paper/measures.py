"""What each claim measures: functions from a run JSON (and the other runs) to `rules.Evidence`.

Each function builds the paired steps of one kind of claim; `claims.py` binds them to claim ids, titles
and runs. Accuracies are compared per sample (`stats.paired_test`, `stats.equivalence_test`), real-valued
per-sample quantities (projections, distances, cosines, correlations) by `stats.signflip_test`.
"""
from __future__ import annotations

import numpy as np

from empirical import decomposition, predict, stats
from empirical.paper import numbers as P
from empirical.paper import runs as R
from empirical.paper.rules import DIRECTIONAL, EQUIVALENCE, RULE, Evidence, Step, gap_rule

MARGIN = 5.0        # points: the largest change still called "unchanged" (a quarter of Table 1's 21.8-point drop)
COS_ORTHO = 0.3     # Fig. 3b: "near orthogonal" is |cosine| < 0.3
CORR_HIGH = 0.99    # Fig. 1b
CORR_ZERO = 0.1     # Fig. 4b
FD_GAP = 0.10       # Table 3: Fréchet distances (no SE) need a 10% relative gap either way
SMALL_S = 20        # Table S2: BPDA is 0.0 for every purifier at s* <= 20


def acc_step(label: str, a: dict, b: dict, sign: int, paper: float | None) -> Step:
    """a > b (sign +1) or a < b (-1) in accuracy over the samples both cells measured."""
    x, y = R.common(a or {}, b or {})
    return Step(label, stats.paired_test(x, y) if x else None, sign, paper)


def same_step(label: str, a: dict, b: dict, paper: float | None, margin: float = MARGIN) -> Step:
    """a = b within +-margin points (TOST) over the samples both cells measured."""
    x, y = R.common(a or {}, b or {})
    return Step(label, stats.equivalence_test(x, y, margin) if x else None, 0, paper, margin)


def real_step(label: str, d, sign: int, paper: float | None = None, digits: int = 3) -> Step:
    """mean(d) > 0 (sign +1) or < 0 (-1) for real per-sample differences d (own units)."""
    d = np.asarray(d, dtype=float)
    return Step(label, stats.signflip_test(d) if d.size else None, sign, paper, digits=digits)


def steps_text(steps) -> str:
    return "; ".join(s.text() for s in steps)


def directional(measured: str, steps) -> Evidence:
    return Evidence(DIRECTIONAL, f"{measured}; paired {steps_text(steps)}" if measured else
                    f"paired {steps_text(steps)}", tuple(steps))


# ---- Table 1 ----------------------------------------------------------------------------------------


def table1_key(d: dict, toy: bool) -> str | None:
    """The record of DiffPure (toy False) or of the toy Gaussian purifier (toy True)."""
    keys = [k for k in R.base_keys(d["records"]) if k.startswith("toy Gaussian") == toy
            and (toy or k.split("|")[1:2] == ["DiffPure"])]
    return keys[0] if keys else None


def table1_drop(d: dict, runs: dict, cell: str, toy: bool) -> Evidence:
    """No-fix minus fixed-noise accuracy of one cell ("bpda", "eot"), per sample pooled over replicates."""
    return drop_evidence(d, table1_key(d, toy), cell, None if toy else P.table1(cell)[0] - P.table1(cell)[1])


def drop_evidence(d: dict, key: str | None, cell: str, paper: float | None) -> Evidence:
    """The drop of one purifier's record `key` (the footnote of Table 1 reads every stochastic purifier
    through this, paper_checks the DiffPure and toy ones)."""
    recs = d["records"]
    fresh = R.per_sample(recs, key, f"{cell}_fresh") if key else {}
    fixed = R.per_sample(recs, key, f"{cell}_replay") if key else {}
    step = acc_step(f"{cell.upper() if cell == 'bpda' else 'BPDA-EOT'} drop", fresh, fixed, +1, paper)
    return directional(f"no fix {R.pct(fresh)} -> fixed {R.pct(fixed)}", [step])


def table1_clean(d: dict, runs: dict, toy: bool) -> Evidence:
    return clean_evidence(d, table1_key(d, toy), None if toy else P.table1("clean")[0] - P.table1("clean")[1])


def clean_evidence(d: dict, key: str | None, paper: float | None) -> Evidence:
    """Clean accuracy unchanged by fixing the noise, within +-MARGIN (TOST), for the record `key`."""
    fresh = R.per_sample(d["records"], key, "clean_fresh") if key else {}
    fixed = R.per_sample(d["records"], key, "clean_replay") if key else {}
    step = same_step("clean change", fresh, fixed, paper)
    return Evidence(EQUIVALENCE, f"no fix {R.pct(fresh)} vs fixed {R.pct(fixed)}; paired {step.text()}", (step,))


def table1_any_iterate(d: dict, runs: dict, toy: bool) -> Evidence:
    """The BPDA drop under DiffPure's own estimand: any-iterate no-fix cell minus the fixed-noise cell."""
    key = table1_key(d, toy)
    anyit = R.per_sample(d["records"], key, "bpda_fresh_any") if key else {}
    fixed = R.per_sample(d["records"], key, "bpda_replay") if key else {}
    paper = None if toy else P.table1("bpda")[0] - P.table1("bpda")[1]
    step = acc_step("any-iterate BPDA drop", anyit, fixed, +1, paper)
    return directional(f"no fix (any iterate) {R.pct(anyit)} -> fixed {R.pct(fixed)}", [step])


def table1_decomposition(d: dict, key: str | None):
    """The Replay->fresh drop of the record `key` split into (a) restored and (b) lost
    (`empirical.decomposition`), over the samples every replicate measured; None without the cells."""
    if key is None:
        return None
    reps = [(R.chunk_outcomes(d["records"][k], "bpda_replay"), R.chunk_outcomes(d["records"][k],
                                                                            "bpda_replay_tested_fresh"))
            for k in R.replicates(d["records"], key)]
    ids = sorted(set.intersection(*(set(r) & set(t) for r, t in reps))) if reps else []
    if not ids:
        return None
    return decomposition.decompose([[r[i] for i in ids] for r, _ in reps], [[t[i] for i in ids] for _, t in reps])


def table1_prediction_check(d: dict, key: str | None):
    """The toy prediction of (a) beside its held-out measurement, per sample (`decomposition.check_prediction`)."""
    if key is None:
        return None
    predicted, held, share = predict.rescue_by_sample([d["records"][k] for k in R.replicates(d["records"], key)])
    return decomposition.check_prediction(predicted, held, share, MARGIN) if predicted else None


def table1_prediction(d: dict, runs: dict, toy: bool) -> Evidence:
    return prediction_evidence(d, table1_key(d, toy))


def prediction_evidence(d: dict, key: str | None) -> Evidence:
    """Like for like: the toy model's prediction of (a), the replay-fooled samples a fresh draw restores,
    against held-out fresh draws of the same samples, within +-MARGIN points of (a) (TOST)."""
    check, dec = table1_prediction_check(d, key), table1_decomposition(d, key)
    if check is None:
        return Evidence(EQUIVALENCE, "no replay-fooled sample was read", (Step("prediction", None, 0, None, MARGIN),))
    parts = (f"Replay->fresh drop {dec.drop.mean:+.1f}±{dec.drop.se:.1f} = (a) restored {dec.restored.mean:+.1f}"
             f"±{dec.restored.se:.1f} ({dec.fooled_units} replay-fooled sample-replicates) - (b) lost "
             f"{dec.lost.mean:.1f}±{dec.lost.se:.1f} ({dec.robust_units} replay-robust); " if dec else "")
    step = Step("prediction minus held-out (a)", check.equivalence, 0, None, MARGIN)
    return Evidence(EQUIVALENCE, f"{parts}(a) on the {check.samples} samples read: toy prediction "
                    f"{check.predicted:+.1f} vs held-out {check.held_out:+.1f}; {step.text()}", (step,))


# ---- Table 2 and its clamp variant ------------------------------------------------------------------


def _cells(d: dict, cell: str) -> dict:
    recs = d["records"]
    return {m: R.per_sample(recs, R.record_key(recs, m), f"{cell}_replay") for m in P.PURIFIERS}


def table2_order(d: dict, runs: dict, cell: str) -> Evidence:
    c = _cells(d, cell)
    steps = [acc_step(f"{a} > {b}", c[a], c[b], +1, P.table2(a, cell) - P.table2(b, cell))
             for a, b in zip(P.PURIFIERS, P.PURIFIERS[1:])]
    return directional(", ".join(f"{m} {R.pct(c[m])}" for m in P.PURIFIERS), steps)


def table2_eot(d: dict, runs: dict) -> Evidence:
    eot, bpda = _cells(d, "eot"), _cells(d, "bpda")
    steps = [same_step(f"{m} EOT - BPDA", eot[m], bpda[m], P.table2(m, "eot") - P.table2(m, "bpda"))
             for m in P.PURIFIERS]
    return Evidence(EQUIVALENCE, f"on the EOT samples: {steps_text(steps)}", tuple(steps))


def clamp_table2(d: dict, runs: dict, cell: str) -> Evidence:
    """Clamp off (this run) minus clamp on (table2.json), same samples and noise keys."""
    base = runs.get("table2")
    if base is None:
        return Evidence(EQUIVALENCE, "table2.json missing", (Step("clamp on", None, 0, 0.0, MARGIN),))
    off, on = _cells(d, cell), _cells(base, cell)
    steps = [same_step(m, off[m], on[m], 0.0) for m in P.PURIFIERS]
    return Evidence(EQUIVALENCE, f"clamp off minus clamp on: {steps_text(steps)}", tuple(steps))


def clamp_sweep(d: dict, runs: dict) -> Evidence:
    base = runs.get("sweep_tstar")
    if base is None:
        return Evidence(EQUIVALENCE, "sweep_tstar.json missing", (Step("clamp on", None, 0, 0.0, MARGIN),))
    on, off = R.sweep_cells(base, "t"), R.sweep_cells(d, "t")
    steps = [same_step(f"{m} t*={t}", off[t, m, c], on[t, m, c], 0.0) for (t, m, c) in sorted(on)
             if c == "bpda" and (t, m, c) in off and m != "DiffPure"]
    return Evidence(EQUIVALENCE, f"clamp off minus clamp on: {steps_text(steps)}", tuple(steps))


def clamp_projection(d: dict, runs: dict) -> Evidence:
    base = runs.get("projection")
    if base is None:
        return Evidence(EQUIVALENCE, "projection.json missing", (Step("clamp on", None, 0, 0.0, MARGIN),))
    as_dict = lambda values: {i: float(x) for i, x in enumerate(values)}
    steps = [same_step(m, as_dict(d["measured"][m]["correct"]), as_dict(base["measured"][m]["correct"]), 0.0)
             for m in P.PURIFIERS]
    return Evidence(EQUIVALENCE, f"clamp off minus clamp on: {steps_text(steps)}", tuple(steps))


# ---- Table 3 ----------------------------------------------------------------------------------------


def _ema_cells(d: dict, cell: str) -> tuple[dict, dict]:
    recs = d["records"]
    return (R.per_sample(recs, R.record_key(recs, "RevPure", "EMA:"), f"{cell}_replay"),
            R.per_sample(recs, R.record_key(recs, "RevPure", "non-EMA:"), f"{cell}_replay"))


def _fd(d: dict) -> tuple[float, float]:
    rows = {r["model"]: r for r in d["rows"]}
    return rows["EMA"]["fd_generated"], rows["non-EMA"]["fd_generated"]


def ema_fd(d: dict, runs: dict) -> Evidence:
    e, n = _fd(d)
    verdict, note = _gap(e, n)
    return Evidence(RULE, f"Fréchet distance in the digits classifier's feature space (not FID; no SE): generated "
                          f"{e:.2f} vs {n:.2f}; train-vs-test floor {d.get('fd_floor_train_vs_test', float('nan')):.2f}",
                    rule_verdict=verdict, rule_note=note)


def _gap(smaller: float, larger: float) -> tuple[str, str]:
    return gap_rule(smaller, larger, FD_GAP)


def ema_accuracy(d: dict, runs: dict, cell: str) -> Evidence:
    a, b = _ema_cells(d, cell)
    step = acc_step("EMA > non-EMA", a, b, +1, P.table3(True, cell) - P.table3(False, cell))
    return directional(f"EMA {R.pct(a)} vs non-EMA {R.pct(b)} (same samples and noise keys)", [step])


def ema_relative_gap(d: dict, runs: dict) -> Evidence:
    """Sec. 5.4: the relative BPDA gap (EMA - non-EMA) / non-EMA lies below the relative FD gap."""
    e, n = _fd(d)
    if _gap(e, n)[0] != stats.REPRODUCED:
        return Evidence(RULE, "no clear sample-quality gap", rule_verdict=stats.INCONCLUSIVE,
                        rule_note="no clear sample-quality gap to compare with")
    a, b = _ema_cells(d, "bpda")
    x, y = R.common(a, b)
    base = float(np.mean(y)) if y else 0.0
    if base == 0:
        return Evidence(RULE, "BPDA not measured", rule_verdict=stats.INCONCLUSIVE, rule_note="not measured")
    q = n / e - 1
    step = real_step(f"relative BPDA gap minus FD gap {q:.3f}", (np.subtract(x, y)) / base - q, -1)
    return directional(f"FD gap {100 * q:.1f}%, BPDA gap {100 * (np.mean(x) - base) / base:.1f}%", [step])
