"""The audit's records read out: accuracies, paired drops, power, the verdict and the number to report.

Power is computed from max(measured SD, a floor): the SD of a ``min_effect``-point drop made of whole-sample
flips, 100 sqrt(e (1 - e)) for e = min_effect / 100. A measured SD near zero (fresh and replay outcomes
alike on every sample) says nothing about how a real drop of that size would spread, so it cannot buy power.
The number to report is the lowest valid one measured under the single-draw estimand (each test one
draw of the defence's randomness; Algorithm 1's replay draw counts), with the stricter worst-of-R beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from empirical import predict, stats
from empirical.outcomes import Accuracy, accuracy, join

ATTACKS = ("fresh", "eot", "replay")                        # crafted under: fresh noise, fresh noise + EOT, replay
VERDICTS = ("deterministic", "masking", "no-masking", "inconclusive", "input-dependent")
Z_POWER = 0.8416                                            # Phi^-1(0.8): 80% power at a 2-SE threshold
SCHEMA = 2                                                  # of the audit's JSON output


class SummaryConfig(Protocol):
    """What the summary reads of an audit's configuration (``empirical.auditing.AuditConfig`` is one)."""

    @property
    def min_effect(self) -> float: ...
    @property
    def fresh_evals(self) -> int: ...
    @property
    def eot(self) -> int: ...
    @property
    def dataset(self) -> str: ...
    @property
    def gradient(self) -> str: ...
    @property
    def purifier_stage(self) -> str | None: ...
    def to_dict(self) -> dict: ...


def joined(records: list[dict], cell: str) -> list:
    """One cell's per-sample outcomes over the chunks: [N], or [R][N] joined along N ([] when none)."""
    return join(records, cell) or []


def sd_floor(min_effect: float) -> float:
    """SD (points) of a ``min_effect``-point drop made of whole-sample flips: 100 sqrt(e (1 - e))."""
    e = min(float(min_effect), 100.0) / 100
    return 100 * math.sqrt(e * (1 - e))


@dataclass
class AuditReport:
    """The audit's numbers (accuracies and drops in percent), verdict and recommendation.

    cells: "clean_<test>" and "<attack>_<test>" for attack in fresh | eot | replay (what the attack was
    crafted under) and test in fresh (mean over R draws) | replay | worst (correct under all R draws).
    drop / drop_eot: fresh-noise (EOT) robust accuracy minus replay robust accuracy, paired per sample.
    preflight: the checks made before the first attack (randomness, replay, input dependence, gradient).
    report: the number to report ({"cell", "estimand", "acc", "se"}) and, as "strict", the lowest worst-of-R.
    """

    config: SummaryConfig
    randomized: bool
    n: int
    cells: dict[str, Accuracy]
    drop: stats.Difference
    drop_eot: stats.Difference
    verdict: str
    power: float | None
    detectable: float | None
    toy: dict
    recommendation: str = ""
    records: list = field(default_factory=list, repr=False)
    preflight: dict = field(default_factory=dict)
    available: int | None = None
    needed: int | None = None
    report: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        cell = lambda a: None if a is None else {"acc": a.mean, "se": a.se, "n": a.n, "draws": a.draws,
                                                  "spread": a.spread}
        c = self.cells
        return {"schema": SCHEMA, "randomized": self.randomized, "verdict": self.verdict,
                "recommendation": self.recommendation, "report": self.report,
                "clean": cell(c.get("clean_fresh")), "fresh": cell(c.get("fresh_fresh")),
                "eot": cell(c.get("eot_fresh")), "replay": cell(c.get("replay_replay")),
                "replay_crafted_fresh": cell(c.get("replay_fresh")), "drop": self.drop.to_dict(),
                "drop_eot": self.drop_eot.to_dict(), "n_samples": self.n, "dataset_size": self.available,
                "power": {"min_effect": self.config.min_effect, "power": self.power,
                          "detectable_at_80": self.detectable, "sd_floor": sd_floor(self.config.min_effect),
                          "samples_for_80": self.needed},
                "randomness": self.preflight.get("randomness"), "replay_check": self.preflight.get("replay_check"),
                "input_dependence": self.preflight.get("input_dependence"),
                "gradient_health": self.preflight.get("gradient_health"),
                "cells": {k: cell(v) for k, v in c.items()}, "toy": self.toy, "config": self.config.to_dict(),
                "records": self.records}


def decide(randomized: bool, drop: stats.Difference, drop_eot: stats.Difference, min_effect: float,
           input_dependent: bool = False) -> tuple[str, float | None, float | None]:
    """(verdict, power to detect a ``min_effect``-point drop, drop detectable with 80% power).

    input-dependent: the replayed key does not fix the draws (its own class: the drops are no masking test).
    masking: replay robust accuracy below both the fresh-noise and the EOT one by >= 2 paired SE.
    no-masking: the drop from the stronger of the two (the smaller drop) is within 2 paired SE, and the
    audit had >= 80% power to see a ``min_effect``-point drop (one-sided test at 2 SE) with the SD taken as
    max(measured, ``sd_floor``). Else inconclusive.
    """
    if not randomized:
        return "deterministic", None, None
    ref = min((drop, drop_eot), key=lambda d: d.mean)
    if math.isnan(ref.se):
        return ("input-dependent" if input_dependent else "inconclusive"), None, None
    sd = max(ref.sd, sd_floor(min_effect))
    power = stats.power(min_effect, sd, ref.n)
    detectable = (stats.Z_DEFAULT + Z_POWER) * sd / math.sqrt(ref.n)
    if input_dependent:
        return "input-dependent", power, detectable
    if all(d.mean > 0 and d.mean >= stats.Z_DEFAULT * d.se for d in (drop, drop_eot)):
        return "masking", power, detectable
    if abs(ref.mean) <= stats.Z_DEFAULT * ref.se and power >= 0.8:
        return "no-masking", power, detectable
    return "inconclusive", power, detectable


def summarise(records: list[dict], cfg: SummaryConfig, preflight: dict | None = None,
              available: int | None = None) -> AuditReport:
    """Join the chunks' records into accuracies, paired drops, the toy reading and the verdict.
    ``preflight``: ``Preflight.to_dict()`` of the run; ``available``: samples the dataset holds."""
    if not records:
        raise ValueError("no audit records to summarise")
    pre = preflight or {}
    cells_in = {k: joined(records, k) for k in records[0] if k.endswith(("_fresh", "_replay"))}
    cells = {k: accuracy(v) for k, v in cells_in.items()}
    for name in ("clean",) + ATTACKS:
        cells[f"{name}_worst"] = accuracy(np.asarray(cells_in[f"{name}_fresh"], dtype=bool).all(0).tolist())
    drop = stats.paired_difference(cells_in["fresh_fresh"], cells_in["replay_replay"])
    drop_eot = stats.paired_difference(cells_in["eot_fresh"], cells_in["replay_replay"])
    randomized = bool(records[0]["randomized"])
    dependent = bool((pre.get("input_dependence") or {}).get("dependent"))
    verdict, power, detectable = decide(randomized, drop, drop_eot, cfg.min_effect, dependent)
    ref = min((drop, drop_eot), key=lambda d: d.mean)
    needed = None if math.isnan(ref.sd) else stats.samples_to_resolve(
        cfg.min_effect, max(ref.sd, sd_floor(cfg.min_effect)), z=stats.Z_DEFAULT + Z_POWER)
    rep = AuditReport(config=cfg, randomized=randomized, n=len(cells_in["clean_replay"]), cells=cells, drop=drop,
                      drop_eot=drop_eot, verdict=verdict, power=power, detectable=detectable,
                      toy=summarise_toy(records), records=records, preflight=pre, available=available,
                      needed=needed, report=number_to_report(cells, cfg.fresh_evals, cfg.eot, randomized))
    rep.recommendation = recommendation(rep)
    return rep


def summarise_toy(records: list[dict]) -> dict:
    """``predict.summarise`` of the replay attack's cells (Table 1's layout), and the chunks' notes when
    the toy reading did not apply."""
    out = predict.summarise([{"clean_replay": [r["clean_replay"]], "bpda_replay": [r["replay_replay"]],
                              "bpda_replay_tested_fresh": r["replay_fresh"], "prediction": r.get("toy", [])}
                             for r in records])
    notes = sorted({r["toy_note"] for r in records if r.get("toy_note")})
    return {**out, "notes": notes} if notes else out


def number_to_report(cells: dict[str, Accuracy], r: int, k: int, randomized: bool) -> dict:
    """The lowest robust accuracy measured under the single-draw estimand, and the lowest worst-of-R."""
    if not randomized:
        a = cells["replay_replay"]
        return {"cell": "replay_replay", "estimand": "PGD robust accuracy of a deterministic model",
                "acc": a.mean, "se": a.se}
    single = {"replay_replay": "PGD under replayed noise, tested under the draw it was crafted under",
              "fresh_fresh": f"PGD under fresh noise, mean over {r} fresh test draws",
              "eot_fresh": f"PGD-EOT-{k} under fresh noise, mean over {r} fresh test draws",
              "replay_fresh": f"PGD under replayed noise, mean over {r} fresh test draws"}
    best = min(single, key=lambda c: cells[c].mean)
    worst = min((f"{a}_worst" for a in ATTACKS), key=lambda c: cells[c].mean)
    return {"cell": best, "estimand": single[best], "acc": cells[best].mean, "se": cells[best].se,
            "strict": {"cell": worst, "estimand": f"correct under all {r} fresh test draws",
                       "acc": cells[worst].mean, "se": cells[worst].se}}


def _report_text(rep: AuditReport) -> str:
    rp, n = rep.report, rep.config.fresh_evals
    text = f"Report {rp['acc']:.1f}±{rp['se']:.1f}% ({rp['estimand']}), the lowest valid single-draw number measured"
    strict = rp.get("strict")
    if strict:
        text += (f"; under the stricter estimand 'correct under all {n} fresh draws' the lowest is "
                 f"{strict['acc']:.1f}±{strict['se']:.1f}%")
    return text + "."


def _power_text(rep: AuditReport) -> str:
    """Power, and the samples 80% power needs, capped by what the dataset holds."""
    e = rep.config.min_effect
    if rep.power is None:
        return "power unknown (one sample has no SE)"
    text = (f"power {rep.power:.2f} for a {e:g}-point drop (SD max(measured, {sd_floor(e):.1f})); drops above "
            f"{rep.detectable:.1f} points are detected with 80% power")
    if rep.needed is None or rep.power >= 0.8:
        return text
    if rep.available is not None and rep.needed > rep.available:
        return (text + f"; 80% power needs about {rep.needed} samples and the {rep.config.dataset} set holds "
                f"{rep.available}, so this dataset cannot decide a {e:g}-point drop")
    return text + f"; about {rep.needed} samples give 80% power" + (
        f" (the {rep.config.dataset} set holds {rep.available})" if rep.available else "")


def recommendation(rep: AuditReport) -> str:
    """One paragraph: what the verdict means and which number to report, with its estimand (Theorems 1, 2)."""
    c, k = rep.cells, rep.config.eot
    t = lambda key: f"{c[key].mean:.1f}±{c[key].se:.1f}%"
    dt = lambda d: f"{d.mean:+.1f}±{d.se:.1f} points"
    if rep.verdict == "deterministic":
        attack = "PGD" if rep.config.gradient == "full" else (
            f"BPDA (PGD with the identity as the gradient of {rep.config.purifier_stage!r})")
        return (f"The model's outputs do not change between calls: it is deterministic, every cell equals its "
                f"replayed twin (checked in every chunk), and replay and EOT change nothing (drop {dt(rep.drop)}). "
                f"Report the {attack} robust accuracy, {t('replay_replay')}; no randomized protocol is needed.")
    drops = f"drops {dt(rep.drop)} fresh, {dt(rep.drop_eot)} EOT, paired"
    if rep.verdict == "input-dependent":
        dep = rep.preflight.get("input_dependence") or {}
        moved = ", ".join(f"{100 * v:.2g}% for a {name} move" for name, v in dep.get("moved", {}).items())
        fresh = 100 * dep.get("fresh", float("nan"))
        return (f"Input-dependent randomness: under one replayed key the model's discrete draws change when the "
                f"input moves ({moved}; a new key changes {fresh:.2g}%). Replay fixes the "
                f"seed, not the draws, so the replay attack is not the masking-free reference it is for "
                f"input-independent noise, and the {drops}, are not a masking test. Every number here is an "
                f"upper bound on robustness. {_report_text(rep)} A stronger attack (more steps and EOT draws, "
                "or a straight-through estimate of the sampler) may lower it.")
    if rep.verdict == "masking":
        return (f"Randomness masks the gradient. Attacks crafted under fresh noise overstate robustness: PGD "
                f"{t('fresh_fresh')} and PGD-EOT-{k} {t('eot_fresh')} against {t('replay_replay')} with the "
                f"randomness replayed ({drops}). EOT does not close the gap because it averages the attack's "
                f"noise, not the test's (Theorem 1). {_report_text(rep)}")
    if rep.verdict == "no-masking":
        return (f"No masking resolved: replay robust accuracy {t('replay_replay')} is within 2 paired SE of "
                f"PGD-EOT-{k} under fresh noise, {t('eot_fresh')} ({drops}; {_power_text(rep)}). "
                f"{_report_text(rep)}")
    ref = min((rep.drop, rep.drop_eot), key=lambda d: d.mean)
    why = ("the replay attack was weaker than a fresh-noise attack; check the attack's steps and step size"
           if ref.mean < -stats.Z_DEFAULT * ref.se else "the paired drop is not resolved")
    return (f"Inconclusive: {why} ({drops}; {_power_text(rep)}). {_report_text(rep)}")
