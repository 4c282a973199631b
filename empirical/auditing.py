"""Audit any randomized defence for randomness-induced gradient masking (paper Theorem 1, Algorithm 1).

For a model that maps [0, 1] images to logits and draws its randomness from torch's global generators,
the audit measures, per sample: clean accuracy; robust accuracy of PGD crafted under fresh noise, of
PGD-EOT-k, and of PGD crafted under replayed randomness, each tested under R fresh draws, under the
replayed draw and worst-of-R; the paired drop from the fresh-noise attacks to replay; and the toy
model's reading. Theorem 1: EOT averages out the noise of the attack, not the noise of the test, so
only replay removes the masking; a replay accuracy below the EOT one by >= 2 paired SE is masking.

Structure for a chunked runner: ``AuditConfig`` (every option that changes a number), ``audit_chunk``
(one chunk -> a JSON-able record of per-sample booleans), ``summarise`` (records -> ``AuditReport``)
and ``audit`` (all chunks in memory).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from empirical import attacks, stats
from empirical.harness.records import outcomes
from empirical.harness.report import Accuracy, accuracy
from empirical import predict
from empirical.noise import SampleFreshNoise
from empirical.purifiers import _eval_mode, check_images
from empirical.replay import (GlobalRNGReplay, ReplayedDefence, RNGKeys, UncontrolledRandomnessError, check_replay,
                              identical, key_seed, resolve_model)

DATASET_EPS = {"cifar10": 8 / 255, "imagenet": 4 / 255}   # the paper's l_inf budgets; digits: the manifest's
ATTACKS = ("fresh", "eot", "replay")                        # crafted under: fresh noise, fresh noise + EOT, replay
VERDICTS = ("deterministic", "masking", "no-masking", "inconclusive")
Z_POWER = 0.8416                                            # Phi^-1(0.8): 80% power at a 2-SE threshold


@dataclass(frozen=True)
class AuditConfig:
    """Every option that changes a number of the audit. eps None: the dataset's default (digits 32/255,
    CIFAR-10 8/255, ImageNet 4/255); step_size None: eps / 4."""

    model: str = ""
    dataset: str = "digits"
    data_dir: str | None = None
    n_samples: int = 256
    batch_size: int = 64
    eps: float | None = None
    norm: str = "linf"
    steps: int = 10
    step_size: float | None = None
    eot: int = 4
    fresh_evals: int = 4
    keys: str = "batch"
    seed: int = 0
    purifier_stage: str | None = None
    classifier_stage: str | None = None
    predict_samples: int = 8
    min_effect: float = 5.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.dataset not in ("digits", "cifar10", "imagenet"):
            raise ValueError(f"dataset must be digits, cifar10 or imagenet, got {self.dataset!r}")
        if self.eps is None:
            object.__setattr__(self, "eps", _default_eps(self.dataset))
        if self.step_size is None:
            object.__setattr__(self, "step_size", float(self.eps) / 4)
        if self.norm not in attacks.NORMS:
            raise ValueError(f"norm must be one of {attacks.NORMS}, got {self.norm!r}")
        if not (0 < self.eps and math.isfinite(self.eps)) or (self.norm == "linf" and self.eps > 1):
            raise ValueError(f"eps must be a finite number > 0 (at most 1 for linf), got {self.eps}")
        if self.keys not in ("batch", "sample"):
            raise ValueError(f"keys must be 'batch' or 'sample', got {self.keys!r}")
        if (self.purifier_stage is None) != (self.classifier_stage is None):
            raise ValueError("BPDA needs both stages: give purifier_stage and classifier_stage, or neither")
        for name in ("n_samples", "batch_size", "eot", "fresh_evals"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.predict_samples < 0 or self.seed < 0 or not 0 < self.step_size < math.inf:
            raise ValueError("steps, predict_samples and seed must be >= 0 and step_size a finite number > 0")
        if not self.min_effect > 0:
            raise ValueError(f"min_effect must be > 0 (accuracy points), got {self.min_effect}")

    @property
    def gradient(self) -> str:
        """"bpda" through the named purifier stage, else the model's own ("full") gradient."""
        return "full" if self.purifier_stage is None else "bpda"

    @property
    def predict(self) -> predict.PredictSettings | None:
        """The toy reading's settings (empirical.predict), None when it is skipped."""
        return predict.PredictSettings(samples=self.predict_samples) if self.predict_samples else None

    def to_dict(self) -> dict:
        settings = self.predict
        return {**asdict(self), "gradient": self.gradient, "predict": settings.to_dict() if settings else None}


def _default_eps(dataset: str) -> float:
    if dataset == "digits":
        from empirical.checkpoints import digits_manifest
        return float(digits_manifest()["classifiers"]["default_eps"])
    return DATASET_EPS[dataset]


@dataclass
class _Stages:
    """What the attacks see: purifier (replayed) and classifier; Identity + the whole model for "full"."""

    purifier: ReplayedDefence
    classifier: torch.nn.Module
    whole: GlobalRNGReplay
    gradient: str


def _stages(model: Any, cfg: AuditConfig, stochastic: bool = True) -> _Stages:
    if cfg.gradient == "full":
        return _Stages(ReplayedDefence(model, stochastic), torch.nn.Identity(), GlobalRNGReplay(model), "full")
    purifier, classifier = getattr(model, cfg.purifier_stage, None), getattr(model, cfg.classifier_stage, None)
    if not callable(purifier):
        raise ValueError(f"the model has no callable attribute {cfg.purifier_stage!r} to use as the purifier stage")
    if not isinstance(classifier, torch.nn.Module):
        raise ValueError(f"the model has no nn.Module attribute {cfg.classifier_stage!r} to use as the classifier "
                         "stage")
    return _Stages(ReplayedDefence(purifier, stochastic), classifier, GlobalRNGReplay(model), "bpda")


def _keys(cfg: AuditConfig, ids: torch.Tensor, chunk: int, purpose: str, replay: bool = False) -> RNGKeys:
    return RNGKeys(cfg.keys, cfg.seed, purpose, ids=ids, batch_index=chunk, replay=replay)


def preflight(model: Any, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, cfg: AuditConfig,
              classes: int | None) -> bool:
    """One clear ValueError before any attack: images, logits' shape and finiteness, the stages, the
    gradient, and uncontrolled randomness. Returns whether the model is randomized."""
    check_images(x, "the dataset's images")
    if cfg.norm == "l2" and cfg.eps > math.sqrt(x[0].numel()):
        raise ValueError(f"eps {cfg.eps} exceeds {math.sqrt(x[0].numel()):.4g}, the l2 diameter of the images' "
                         "[0, 1] box")
    x, y = x.to(cfg.device), y.to(cfg.device)
    st = _stages(model, cfg)
    out = check_replay(st.whole, x, _keys(cfg, ids, 0, "preflight", replay=True))
    if out.ndim != 2 or out.shape[0] != x.shape[0] or out.shape[1] != (classes or max(out.shape[1], int(y.max()) + 1)):
        want = f"{classes} classes in {cfg.dataset}" if classes else f"labels up to {int(y.max())}"
        raise ValueError(f"the model returned shape {tuple(out.shape)} on {tuple(x.shape)} images, expected logits "
                         f"[{x.shape[0]}, {classes or 'classes'}] ({want})")
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise ValueError("the model's logits contain NaN or inf (or are not floating point) on clean images")
    if st.gradient == "bpda":
        _check_stages(st, x, ids, cfg, out)
    else:
        grad = _input_grad(st, x, y, _keys(cfg, ids, 0, "preflight", replay=True))
        if grad is None or not bool(torch.isfinite(grad).all()):
            raise ValueError("the logits have no finite gradient with respect to the input (the model detaches or "
                             "uses non-differentiable steps); name its stages (purifier_stage, classifier_stage) "
                             "to attack it with BPDA")
    with torch.no_grad():
        fresh = _keys(cfg, ids, 0, "preflight_fresh")
        return not identical(st.whole(x, fresh), st.whole(x, fresh))


def _input_grad(st: _Stages, x, y, keys) -> torch.Tensor | None:
    xg = x.detach().clone().requires_grad_(True)
    out = st.purifier.differentiable(xg, keys)
    if not out.requires_grad:
        return None
    return torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), xg, allow_unused=True)[0]


def _check_stages(st: _Stages, x, ids, cfg, whole_out) -> None:
    """BPDA attacks classifier(purifier(x)): it must be the model, with a deterministic classifier."""
    keys = _keys(cfg, ids, 0, "preflight", replay=True)
    purified = st.purifier(x, keys)
    with torch.no_grad(), _eval_mode(st.classifier):
        first, second = st.classifier(purified), st.classifier(purified)
    if not identical(first, second):
        raise UncontrolledRandomnessError("the classifier stage is randomized; BPDA needs all randomness in the "
                                          "purifier stage")
    if first.shape != whole_out.shape or not torch.allclose(first, whole_out, rtol=1e-5, atol=1e-6):
        raise ValueError(f"classifier_stage(purifier_stage(x)) ({cfg.classifier_stage}, {cfg.purifier_stage}) "
                         "differs from the model's output on the same key: name the stages the model composes")


def audit_chunk(model: Any, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, chunk_index: int,
                cfg: AuditConfig) -> dict:
    """Every cell of the audit for one chunk: lists of per-sample booleans ([R][N] for fresh-noise tests).

    Attacks keep their final iterate (no selection), so crafting under fresh or replayed noise is the
    only difference between the cells; on a deterministic model they coincide exactly.
    """
    x, y = x.to(cfg.device), y.to(cfg.device)
    ids = torch.as_tensor(ids).cpu()
    probe = _stages(model, cfg)
    fixed = _keys(cfg, ids, chunk_index, "replay", replay=True)
    check_replay(probe.whole, x, fixed)
    with torch.no_grad():
        check = _keys(cfg, ids, chunk_index, "randomized")
        randomized = not identical(probe.whole(x, check), probe.whole(x, check))
    st = _stages(model, cfg, stochastic=randomized)
    c, p = st.classifier, st.purifier
    record: dict = {"chunk": int(chunk_index), "ids": ids.tolist(), "randomized": randomized}

    def test(x_eval: torch.Tensor, purpose: str, name: str) -> None:
        fresh = attacks.evaluate(c, p, x_eval, y, mode="fresh", noise=_keys(cfg, ids, chunk_index, purpose),
                                 draws=cfg.fresh_evals)
        record[f"{name}_fresh"] = fresh.correct.cpu().tolist()
        replay = attacks.evaluate(c, p, x_eval, y, mode="replay", noise=fixed)
        record[f"{name}_replay"] = replay.correct[0].cpu().tolist()

    test(x, "clean_eval", "clean")
    budget = dict(eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, step_size=cfg.step_size, gradient=st.gradient)
    for name in ATTACKS:
        noise = fixed if name == "replay" else _keys(cfg, ids, chunk_index, f"{name}_attack")
        adv = attacks.pgd(c, p, x, y, eot=cfg.eot if name == "eot" else 1, noise=noise, keep="final", **budget)
        test(adv.x_adv, f"{name}_eval", name)
        if name == "replay" and randomized and cfg.predict_samples:
            record["toy"] = toy_reading(st, adv.x_adv, y, ids, chunk_index, cfg, record)
    return record


@torch.no_grad()
def toy_reading(st: _Stages, x_adv: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, chunk: int,
                cfg: AuditConfig, record: dict) -> list[dict]:
    """The toy model of Sec. 4.2 read on the replay attack's examples, as ``predict.predict_chunk`` does and
    in its record format: for up to ``predict_samples`` samples correct clean and fooled under replay, sigma
    and n_eff of the output's spread (the purifier stage's images under BPDA, else the logits, read as
    [classes, 1, 1]) fitted on fresh draws, Theorem 1's survival under fresh noise, and the fraction of
    other, held-out draws still fooled. Each draw is one call, so per-batch keys give independent draws."""
    settings = cfg.predict
    chosen = [i for i in range(len(ids)) if record["clean_replay"][i] and not record["replay_replay"][i]]
    chosen = chosen[:settings.samples]
    if not chosen:
        return []
    logits = st.gradient == "full"
    as_image = (lambda t: t.view(*t.shape, 1, 1)) if logits else (lambda t: t)
    classifier = torch.nn.Flatten() if logits else st.classifier
    index = torch.tensor(chosen, device=x_adv.device)
    z0 = as_image(st.purifier(x_adv, _keys(cfg, ids, chunk, "replay", replay=True)))[index]
    xs, sid = x_adv[index], ids[index.cpu()]
    draws = {}
    for purpose, k in ((predict.PURPOSE_FIT, settings.fit_draws), (predict.PURPOSE_EVAL, settings.eval_draws)):
        keys = _keys(cfg, sid, chunk, purpose)
        draws[purpose] = torch.stack([as_image(st.purifier(xs, keys)) for _ in range(k)], 1)
    weights = SampleFreshNoise(sid, key_seed(cfg.seed, predict.PURPOSE_DIRS, chunk)).draw(
        "forward", 0, (len(chosen), settings.directions, settings.fit_draws), "cpu", torch.float64)
    out = []
    with _eval_mode(classifier):
        for k, i in enumerate(chosen):
            label, fit = int(y[i]), predict.fit_noise(draws[predict.PURPOSE_FIT][k])
            reading = predict.toy_reading(classifier, fit, z0[k], label, weights[k], settings)
            fooled = (classifier(draws[predict.PURPOSE_EVAL][k]).argmax(dim=1) != label).cpu().tolist()
            out.append({"id": int(ids[i]), "fit": {**fit.summary(), "directions": settings.directions, **reading},
                        "eval": {"draws": settings.eval_draws, "fooled": fooled, "survival": float(np.mean(fooled))}})
    return out


@dataclass
class AuditReport:
    """The audit's numbers (accuracies and drops in percent), verdict and recommendation.

    cells: "clean_<test>" and "<attack>_<test>" for attack in fresh | eot | replay (what the attack was
    crafted under) and test in fresh (mean over R draws) | replay | worst (correct under all R draws).
    drop / drop_eot: fresh-noise (EOT) robust accuracy minus replay robust accuracy, paired per sample.
    """

    config: AuditConfig
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

    def to_dict(self) -> dict:
        cell = lambda a: None if a is None else {"acc": a.mean, "se": a.se, "n": a.n, "draws": a.draws,
                                                  "spread": a.spread}
        drop = lambda d: {"mean": d.mean, "se": d.se, "n": d.n, "sd": d.sd}
        c = self.cells
        return {"randomized": self.randomized, "verdict": self.verdict, "recommendation": self.recommendation,
                "clean": cell(c.get("clean_fresh")), "fresh": cell(c.get("fresh_fresh")),
                "eot": cell(c.get("eot_fresh")), "replay": cell(c.get("replay_replay")),
                "replay_crafted_fresh": cell(c.get("replay_fresh")), "drop": drop(self.drop),
                "drop_eot": drop(self.drop_eot), "n_samples": self.n,
                "power": {"min_effect": self.config.min_effect, "power": self.power,
                          "detectable_at_80": self.detectable},
                "cells": {k: cell(v) for k, v in c.items()}, "toy": self.toy, "config": self.config.to_dict(),
                "records": self.records}


def decide(randomized: bool, drop: stats.Difference, drop_eot: stats.Difference,
           min_effect: float) -> tuple[str, float | None, float | None]:
    """(verdict, power to detect a ``min_effect``-point drop, drop detectable with 80% power).

    masking: replay robust accuracy below both the fresh-noise and the EOT one by >= 2 paired SE.
    no-masking: the drop from the stronger of the two (the smaller drop) is within 2 paired SE, and the
    audit had >= 80% power to see a ``min_effect``-point drop (one-sided test at 2 SE). Else inconclusive.
    """
    if not randomized:
        return "deterministic", None, None
    ref = min((drop, drop_eot), key=lambda d: d.mean)
    if math.isnan(ref.se):
        return "inconclusive", None, None
    power = stats.power(min_effect, ref.sd, ref.n)
    detectable = (stats.Z_DEFAULT + Z_POWER) * ref.se
    if all(d.mean > 0 and d.mean >= stats.Z_DEFAULT * d.se for d in (drop, drop_eot)):
        return "masking", power, detectable
    if abs(ref.mean) <= stats.Z_DEFAULT * ref.se and power >= 0.8:
        return "no-masking", power, detectable
    return "inconclusive", power, detectable


def summarise(records: list[dict], cfg: AuditConfig) -> AuditReport:
    """Join the chunks' records into accuracies, paired drops, the toy reading and the verdict."""
    if not records:
        raise ValueError("no audit records to summarise")
    joined = {k: outcomes(records, k) for k in records[0] if k.endswith(("_fresh", "_replay"))}
    cells = {k: accuracy(v) for k, v in joined.items()}
    for name in ("clean",) + ATTACKS:
        cells[f"{name}_worst"] = accuracy(np.asarray(joined[f"{name}_fresh"], dtype=bool).all(0).tolist())
    drop = stats.paired_difference(joined["fresh_fresh"], joined["replay_replay"])
    drop_eot = stats.paired_difference(joined["eot_fresh"], joined["replay_replay"])
    randomized = any(r["randomized"] for r in records)
    verdict, power, detectable = decide(randomized, drop, drop_eot, cfg.min_effect)
    rep = AuditReport(config=cfg, randomized=randomized, n=len(joined["clean_replay"]), cells=cells, drop=drop,
                      drop_eot=drop_eot, verdict=verdict, power=power, detectable=detectable,
                      toy=summarise_toy(records), records=records)
    rep.recommendation = recommendation(rep)
    return rep


def summarise_toy(records: list[dict]) -> dict:
    """``predict.summarise`` of the replay attack's cells (replay cells as [1][N], Table 1's layout): the toy
    model's predicted accuracy of the replay-crafted examples under fresh noise, and the fitted sigma, n_eff."""
    return predict.summarise([{"clean_replay": [r["clean_replay"]], "bpda_replay": [r["replay_replay"]],
                               "bpda_replay_tested_fresh": r["replay_fresh"], "prediction": r.get("toy", [])}
                              for r in records])


def recommendation(rep: AuditReport) -> str:
    """One paragraph: what number to report for this model, and why (Theorems 1 and 2)."""
    c, k, r = rep.cells, rep.config.eot, rep.config.fresh_evals
    t = lambda key: f"{c[key].mean:.1f}±{c[key].se:.1f}%"
    dt = lambda d: f"{d.mean:+.1f}±{d.se:.1f} points"
    pw = (f"power {rep.power:.2f} to detect a {rep.config.min_effect:g}-point drop; drops above "
          f"{rep.detectable:.1f} points are detected with 80% power") if rep.power is not None else ""
    if rep.verdict == "deterministic":
        return (f"The model's outputs do not change between calls: it is deterministic, and replay and EOT change "
                f"nothing (drop {dt(rep.drop)}). Report the PGD robust accuracy, {t('replay_replay')}; no "
                "randomized evaluation protocol is needed.")
    if rep.verdict == "masking":
        return (f"Randomness masks the gradient. Attacks crafted under fresh noise overstate robustness: PGD "
                f"{t('fresh_fresh')} and PGD-EOT-{k} {t('eot_fresh')} against {t('replay_replay')} with the "
                f"randomness replayed (drops {dt(rep.drop)} and {dt(rep.drop_eot)}, paired). EOT does not close "
                "the gap because it averages the attack's noise, not the test's (Theorem 1). Report the replay "
                f"robust accuracy, {t('replay_replay')}, as the model's robustness (replay does not change the "
                "model, Theorem 2); if a fresh-noise number is given too, name its estimand (mean over "
                f"{r} fresh draws; worst-of-{r}: {t('eot_worst')}) and give the replay-crafted examples under "
                f"fresh noise, {t('replay_fresh')}, beside it.")
    if rep.verdict == "no-masking":
        return (f"No masking resolved: replay robust accuracy {t('replay_replay')} is within 2 paired SE of "
                f"PGD-EOT-{k} under fresh noise, {t('eot_fresh')} (drop {dt(rep.drop_eot)}; {pw}). Report the "
                f"PGD-EOT-{k} robust accuracy with its estimand (mean over {r} fresh draws; worst-of-{r}: "
                f"{t('eot_worst')}) and the replay number beside it as the masking check.")
    ref = min((rep.drop, rep.drop_eot), key=lambda d: d.mean)
    why = ("the replay attack was weaker than a fresh-noise attack; check the attack's steps and step size"
           if ref.mean < -stats.Z_DEFAULT * ref.se else "the paired drop is not resolved")
    need = ""
    if ref.sd == ref.sd and ref.sd > 0:
        n80 = stats.samples_to_resolve(rep.config.min_effect, ref.sd, z=stats.Z_DEFAULT + Z_POWER)
        need = f"; about {n80} samples give 80% power for a {rep.config.min_effect:g}-point drop"
    return (f"Inconclusive: {why} (drops {dt(rep.drop)} fresh, {dt(rep.drop_eot)} EOT; {pw or 'power unknown'}"
            f"{need}). Rerun with more samples (n_samples) or fresh draws (fresh_evals); until then report the "
            f"lower of the replay ({t('replay_replay')}) and PGD-EOT-{k} ({t('eot_fresh')}) robust accuracies.")


def audit_data(cfg: AuditConfig, data: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int | None]:
    """(x, y, ids, classes) of the first ``n_samples`` images of ``data`` (an ImageSet, or (x, y[, ids]) with
    classes None: unknown) or of the configured dataset."""
    if data is None:
        from empirical.data import load_dataset
        data = load_dataset(cfg.dataset, cfg.data_dir, n=cfg.n_samples)
    x, y, ids, classes = ((data.x, data.y, data.ids, int(data.classes)) if hasattr(data, "x")
                          else (*data[:2], data[2] if len(data) > 2 else torch.arange(len(data[1])), None))
    if len(y) < cfg.n_samples:
        raise ValueError(f"asked for {cfg.n_samples} samples but the data holds {len(y)}")
    n = cfg.n_samples
    return x[:n], torch.as_tensor(y[:n], dtype=torch.long), torch.as_tensor(ids[:n], dtype=torch.long), classes


def audit(factory_or_model: Any, cfg: AuditConfig, *, data: Any = None,
          progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Audit a model (an nn.Module or callable, or a zero-argument factory returning one) on ``data``
    (default: the configured dataset); every check runs before the first attack."""
    model = resolve_model(factory_or_model, cfg.device)
    x, y, ids, classes = audit_data(cfg, data)
    preflight(model, x[:4], y[:4], ids[:4], cfg, classes)
    spans = [(lo, min(lo + cfg.batch_size, len(y))) for lo in range(0, len(y), cfg.batch_size)]
    records = []
    for i, (lo, hi) in enumerate(spans):
        records.append(audit_chunk(model, x[lo:hi], y[lo:hi], ids[lo:hi], i, cfg))
        if progress is not None:
            progress(i + 1, len(spans))
    return summarise(records, cfg)
