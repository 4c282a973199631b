"""What the Table S3 and figure claims measure: real-valued per-sample quantities and rule-based rows."""
from __future__ import annotations

import numpy as np

from empirical import stats
from empirical.paper import numbers as P
from empirical.paper import runs as R
from empirical.paper.measures import (CORR_HIGH, CORR_ZERO, COS_ORTHO, acc_step, directional, real_step,
                                      steps_text)
from empirical.paper.rules import (EQUIVALENCE, RULE, Evidence, Step, components_rule, correlation_rule,
                                   unpaired_test)

INV = P.PURIFIERS[::-1]         # DDIM RevPure, DiffPure, RevPure: the claimed order of the projection


def _as_dict(values) -> dict:
    return {i: float(x) for i, x in enumerate(values)}


def projection_order(d: dict, runs: dict) -> Evidence:
    """Remaining projection DDIM > DiffPure > RevPure; the paper's differences scaled by the ratio of the
    mean projections (digits and CIFAR-10 differ in scale)."""
    proj = {k: np.asarray(d["measured"][k]["end_projection"], float) for k in P.PURIFIERS}
    scale = sum(p.mean() for p in proj.values()) / sum(P.table_s3(k, "projection") for k in P.PURIFIERS)
    steps = [real_step(f"{a} > {b}", proj[a] - proj[b], +1,
                       scale * (P.table_s3(a, "projection") - P.table_s3(b, "projection"))) for a, b in zip(INV, INV[1:])]
    return directional(", ".join(f"{k} {proj[k].mean():.3f}" for k in INV)
                       + f" (paper's differences scaled by {scale:.2f})", steps)


def projection_accuracy(d: dict, runs: dict, field: str) -> Evidence:
    key = "bpda" if field == "correct" else "pgd_l2"
    vals = {k: _as_dict(d["measured"][k][field]) for k in P.PURIFIERS}
    steps = [acc_step(f"{a} > {b}", vals[a], vals[b], +1, P.table_s3(a, key) - P.table_s3(b, key))
             for a, b in zip(P.PURIFIERS, P.PURIFIERS[1:])]
    return directional(", ".join(f"{k} {R.pct(vals[k])}" for k in P.PURIFIERS), steps)


def correspondence(x: dict, y: dict, sign: int, paper_y: dict) -> Evidence:
    """Does x rank the models as y does (sign +1) or inversely (-1)? For every pair of models whose x
    differs (sign-flip p < 0.05, unadjusted: a gate, not a verdict), y must differ in the matching
    direction; a pair whose x is not resolved leaves the claim open."""
    models, steps, texts = list(x), [], []
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            tx = stats.signflip_test(np.subtract(np.asarray(x[a], float), np.asarray(x[b], float)))
            texts.append(f"{a} - {b}: x {tx.mean:+.3g} (p={tx.p:.2g})")
            if tx.p >= 0.05:
                steps.append(Step(f"{a} vs {b} (ranking quantity not resolved)", None, sign))
                continue
            expected = sign if tx.mean > 0 else -sign
            steps.append(acc_step(f"{a} vs {b}", _as_dict(y[a]), _as_dict(y[b]), expected, paper_y[a] - paper_y[b]))
    measured = [s for s in steps if s.test is not None]
    return directional("; ".join(texts) + (f"; accuracy {steps_text(measured)}" if measured else ""), steps)


def projection_vs(d: dict, runs: dict, field: str, sign: int) -> Evidence:
    m = d["measured"]
    return correspondence({k: m[k][field] for k in P.PURIFIERS}, {k: m[k]["correct"] for k in P.PURIFIERS}, sign,
                          {k: P.table_s3(k, "bpda") for k in P.PURIFIERS})


def fig1a(d: dict, runs: dict) -> Evidence:
    res = d["results"]
    steps = []
    for k in ("DiffPure", "RevPure"):
        c = np.asarray(res[k]["a"]["mean_offdiag"], float)
        steps += [real_step(f"{k} corr > 0", c, +1), real_step(f"{k} corr < 0.99", c - CORR_HIGH, -1)]
    return directional(f"per-image mean correlations over {len(c)} images (DDIM has no noise: not judged)", steps)


def fig1b(d: dict, runs: dict) -> Evidence:
    res = d["results"]
    steps = [real_step(f"{k} corr - 0.99", np.asarray(res[k]["b"]["mean_offdiag"], float) - CORR_HIGH, +1)
             for k in ("DiffPure", "RevPure") if k in res]
    return directional(f"r={R.option_of(d, 'radius')}, per-image mean correlations (DDIM not judged)", steps)


def fig1b_radius(d: dict, runs: dict) -> Evidence:
    """Descriptive: the mean correlation at each ball radius relative to the purified-output spread."""
    parts = []
    for method, s in (d.get("radius_sweep") or {}).items():
        above = [r["radius_over_spread"] for r in s["rows"] if r["mean"] > CORR_HIGH]
        parts.append(f"{method}: mean > 0.99 up to r = {max(above):.2f} x spread" if above else
                     f"{method}: mean <= 0.99 at every radius")
    return Evidence(RULE, "; ".join(parts), rule_verdict=stats.INCONCLUSIVE,
                    rule_note="descriptive: means per radius over 4 images, no test")


def _l2(m: dict, k: str, field: str) -> np.ndarray:
    return np.asarray(m[k][f"l2_{field}_per_sample"], float)


def fig3_rise_fall(d: dict, runs: dict, k: str) -> Evidence:
    """||x_t - x0|| first rises then falls: stored per-position means and SEs only (unpaired)."""
    s, m = d["summary"][k], d["measured"][k]
    n = len(m["correct"])
    start, peak, end = (R.at_position(m, "l2", pos) for pos in (0, s["l2_argmax"], s["steps_total"]))
    steps = [Step("rise", unpaired_test(*peak, *start, n), +1, digits=3),
             Step("fall", unpaired_test(*peak, *end, n), +1, digits=3)]
    return directional(f"{start[0]:.3f} -> max {peak[0]:.3f} at step {s['l2_argmax']} of {s['steps_total']} -> "
                       f"{end[0]:.3f} (unpaired: per-position means and SEs only)", steps)


def fig3_end_exceeds_start(d: dict, runs: dict) -> Evidence:
    m = d["measured"]
    return directional("", [real_step(f"{k} end - start", _l2(m, k, "end") - _l2(m, k, "start"), +1) for k in m])


def fig3_ddim_smallest(d: dict, runs: dict) -> Evidence:
    m, dd = d["measured"], "DDIM RevPure"
    return directional("", [real_step(f"{k} - DDIM", _l2(m, k, "end") - _l2(m, dd, "end"), +1) for k in m if k != dd])


def fig3_cosine(d: dict, runs: dict) -> Evidence:
    m = d["measured"]
    steps = [Step(f"{k} end cosine", stats.signflip_equivalence(np.asarray(m[k]["cosine_end_per_sample"], float),
                                                                COS_ORTHO), 0, None, COS_ORTHO, 3) for k in m]
    return Evidence(EQUIVALENCE, f"within ±{COS_ORTHO}: {steps_text(steps)}", tuple(steps))


def fig4(d: dict, runs: dict, k: str, which: str) -> Evidence:
    r = d["results"][k]
    i, p = r["initial"], r["purified"]
    if which == "b":
        v, note = correlation_rule(i["corr_mean"], p["corr_mean"], CORR_ZERO)
        text = f"mean pairwise correlation {i['corr_mean']:.3f} -> {p['corr_mean']:.3f}"
    else:
        v, note = components_rule(i["components_90"], p["components_90"])
        text = f"components for 90% variance {i['components_90']} -> {p['components_90']} of {i['dimension']}"
    return Evidence(RULE, text, rule_verdict=v, rule_note=note)
