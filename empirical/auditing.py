"""Audit any randomized defence for randomness-induced gradient masking (paper Theorem 1, Algorithm 1).

For a model that maps [0, 1] images to logits and draws its randomness from torch's global generators,
the audit measures, per sample: clean accuracy; robust accuracy of PGD crafted under fresh noise, of
PGD-EOT-k, and of PGD crafted under replayed randomness, each tested under R fresh draws, under the
replayed draw and worst-of-R; the paired drop from the fresh-noise attacks to replay; and the toy
model's reading. Theorem 1: EOT averages out the noise of the attack, not the noise of the test, so
only replay removes the masking; a replay accuracy below the EOT one by >= 2 paired SE is masking.

Before the first attack, ``preflight`` decides once, for every chunk, what the numbers can mean
(``empirical.audit_probes``): whether the model is randomized (21 calls, so few outcomes cannot hide it),
whether a replayed key reproduces its outputs (21 calls) and its discrete draws when the input moves,
and whether the attack's gradient carries information (else BPDA through named or found stages).

Structure for a chunked runner: ``AuditConfig`` (every option that changes a number), ``preflight``
(-> ``Preflight``), ``audit_chunk`` (one chunk -> a JSON-able record of per-sample booleans),
``audit_summary.summarise`` (records -> ``AuditReport``) and ``audit`` (all chunks in memory).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from empirical import attacks, predict
from empirical.audit_probes import (GradientHealth, cross_entropy_of, find_stages, gradient_health,
                                    probe_input_dependence, probe_randomness)
from empirical.audit_toy import toy_reading
from empirical.audit_summary import (ATTACKS, SCHEMA, VERDICTS, Z_POWER, AuditReport, decide,  # noqa: F401
                                     summarise)
from empirical.gradients import bpda_purify
from empirical.noise import SampleFreshNoise
from empirical.purifiers import _eval_mode, check_images
from empirical.replay import (PROBE_CALLS, GlobalRNGReplay, ReplayedDefence, RNGKeys, UncontrolledRandomnessError,
                              check_replay, identical, key_seed, resolve_model)

DATASET_EPS = {"cifar10": 8 / 255, "imagenet": 4 / 255}   # the paper's l_inf budgets; digits: the manifest's
DATASET_SIZES = {"cifar10": 10000}                          # test sets whose size is known without loading them
LIMITS = {"n_samples": 10 ** 7, "batch_size": 65536, "steps": 10000, "eot": 1000, "fresh_evals": 1000,
          "predict_samples": 4096, "seed": 2 ** 63 - 1}
PREFLIGHT_SAMPLES = 8                                       # samples the preflight checks run on
TINY_MOVE = 1e-3                                            # the input-dependence probe's smallest move


class ObfuscatedGradientError(ValueError):
    """The attack's gradient carries no information about the loss: its numbers would be meaningless."""


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
        for name, limit in LIMITS.items():
            if int(getattr(self, name)) > limit:
                raise ValueError(f"{name} must be at most {limit}, got {getattr(self, name)}")
        if not 0 < self.min_effect < 100:
            raise ValueError(f"min_effect must be a drop in accuracy points in (0, 100), got {self.min_effect}")

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


@dataclass
class Preflight:
    """What ``preflight`` decided, once for every chunk: ``config`` (with the BPDA stages it found, if the
    whole-defence gradient was obfuscated and the model composes two stages), whether the model is
    randomized, and the results of every check, as JSON-able dicts."""

    config: AuditConfig
    randomized: bool
    randomness: dict
    replay_check: dict
    input_dependence: dict | None
    gradient_health: dict

    def to_dict(self) -> dict:
        return {"randomized": self.randomized, "randomness": self.randomness, "replay_check": self.replay_check,
                "input_dependence": self.input_dependence, "gradient_health": self.gradient_health}


def preflight(model: Any, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, cfg: AuditConfig,
              classes: int | None) -> Preflight:
    """One clear ValueError before any attack (images, logits' shape and finiteness, stages, replay, an
    obfuscated gradient with no stages to attack by BPDA), else every check's result. Runs on the first
    ``PREFLIGHT_SAMPLES`` of x."""
    x, y, ids = x[:PREFLIGHT_SAMPLES], y[:PREFLIGHT_SAMPLES], torch.as_tensor(ids[:PREFLIGHT_SAMPLES]).cpu()
    check_images(x, "the dataset's images")
    if cfg.norm == "l2" and cfg.eps > math.sqrt(x[0].numel()):
        raise ValueError(f"eps {cfg.eps} exceeds {math.sqrt(x[0].numel()):.4g}, the l2 diameter of the images' "
                         "[0, 1] box")
    x, y = x.to(cfg.device), y.to(cfg.device)
    st = _stages(model, cfg)
    replay = _keys(cfg, ids, 0, "preflight", replay=True)
    out = check_replay(st.whole, x, replay)
    if out.ndim != 2 or out.shape[0] != x.shape[0] or out.shape[1] != (classes or max(out.shape[1], int(y.max()) + 1)):
        want = f"{classes} classes in {cfg.dataset}" if classes else f"labels up to {int(y.max())}"
        raise ValueError(f"the model returned shape {tuple(out.shape)} on {tuple(x.shape)} images, expected logits "
                         f"[{x.shape[0]}, {classes or 'classes'}] ({want})")
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise ValueError("the model's logits contain NaN or inf (or are not floating point) on clean images")
    probe = probe_randomness(st.whole, x, _keys(cfg, ids, 0, "preflight_fresh"))
    cfg, health = _gradient_checks(model, x, y, ids, cfg, out)
    dependence = None
    if probe.randomized:
        g = torch.Generator().manual_seed(key_seed(cfg.seed, "preflight_moves"))
        dependence = probe_input_dependence(st.whole, x, replay, _keys(cfg, ids, 0, "preflight_draws"),
                                            {f"{TINY_MOVE:g}": TINY_MOVE, "step-size": cfg.step_size}, g).to_dict()
    return Preflight(config=cfg, randomized=probe.randomized, randomness=probe.to_dict(),
                     replay_check={"calls": PROBE_CALLS, "identical": True, "samples": int(x.shape[0])},
                     input_dependence=dependence, gradient_health=health)


def _health(cfg: AuditConfig, forward: Callable, grad: Callable | None, x, y, name: str) -> GradientHealth:
    loss, full_grad = cross_entropy_of(forward, y)
    g = torch.Generator().manual_seed(key_seed(cfg.seed, "preflight_gradient"))
    return gradient_health(loss, grad or full_grad, x, step=cfg.step_size, norm=cfg.norm, generator=g, name=name)


def _gradient_checks(model: Any, x, y, ids, cfg: AuditConfig, whole_out) -> tuple[AuditConfig, dict]:
    """The gradient through the whole defence and, under BPDA, the attack's; returns the configuration the
    attacks will run under (BPDA through found stages when the whole gradient is obfuscated)."""
    replay = _keys(cfg, ids, 0, "preflight", replay=True)
    whole = ReplayedDefence(model)
    full = _health(cfg, lambda t: whole.differentiable(t, replay), None, x, y, "full")
    out = {"full": full.to_dict(), "attack": "full", "stages_found": None}
    if cfg.gradient == "full" and full.obfuscated:
        found = find_stages(model, x, replay, whole_out)
        if found is None:
            children = [n for n, _ in model.named_children()] if isinstance(model, torch.nn.Module) else []
            raise ObfuscatedGradientError(
                f"the gradient through the whole defence is {full.describe()}: PGD on it would measure the "
                "gradient, not the defence, and report nearly clean accuracy as robust. Attack it with BPDA: name "
                "the non-differentiable stage and the classifier after it (purifier_stage, classifier_stage"
                + (f"; the model's children: {', '.join(children)}" if children else "") + ")")
        cfg = dataclasses.replace(cfg, purifier_stage=found[0], classifier_stage=found[1])
        out["stages_found"] = list(found)
    if cfg.gradient == "bpda":
        st = _stages(model, cfg)
        _check_stages(st, x, ids, cfg, whole_out)
        bpda = _health(cfg, lambda t: whole.differentiable(t, replay),
                       lambda t: _bpda_grad(st, t, y, replay), x, y, "bpda")
        out.update(bpda=bpda.to_dict(), attack="bpda")
        if bpda.obfuscated:
            raise ObfuscatedGradientError(
                f"the BPDA gradient through the classifier stage {cfg.classifier_stage!r} is {bpda.describe()}: "
                "move every non-differentiable step into the purifier stage")
    return cfg, out


def _bpda_grad(st: _Stages, x: torch.Tensor, y: torch.Tensor, keys: RNGKeys) -> torch.Tensor | None:
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), _eval_mode(st.classifier):
        logits = st.classifier(bpda_purify(st.purifier, xg, keys))
        if not logits.requires_grad:
            return None
        loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        return torch.autograd.grad(loss, xg, allow_unused=True)[0]


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
                cfg: AuditConfig, randomized: bool) -> dict:
    """Every cell of the audit for one chunk: lists of per-sample booleans ([R][N] for fresh-noise tests).

    ``randomized`` is preflight's decision, kept for every chunk. Attacks keep their final iterate, so
    crafting under fresh or replayed noise is the only difference between the cells. A deterministic
    model's chunk checks that its outputs under new keys equal the replayed ones and that the three
    attacks found the same examples; either difference raises UncontrolledRandomnessError.
    """
    x, y = x.to(cfg.device), y.to(cfg.device)
    ids = torch.as_tensor(ids).cpu()
    st = _stages(model, cfg, stochastic=randomized)
    fixed = _keys(cfg, ids, chunk_index, "replay", replay=True)
    check_replay(st.whole, x, fixed, calls=2)
    if not randomized:
        _check_deterministic(st.whole, x, [fixed, _keys(cfg, ids, chunk_index, "deterministic_check")], chunk_index)
    c, p = st.classifier, st.purifier
    record: dict = {"chunk": int(chunk_index), "ids": ids.tolist(), "randomized": bool(randomized)}

    def test(x_eval: torch.Tensor, purpose: str, name: str) -> None:
        fresh = attacks.evaluate(c, p, x_eval, y, mode="fresh", noise=_keys(cfg, ids, chunk_index, purpose),
                                 draws=cfg.fresh_evals)
        record[f"{name}_fresh"] = fresh.correct.cpu().tolist()
        replay = attacks.evaluate(c, p, x_eval, y, mode="replay", noise=fixed)
        record[f"{name}_replay"] = replay.correct[0].cpu().tolist()

    test(x, "clean_eval", "clean")
    budget = dict(eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, step_size=cfg.step_size, gradient=st.gradient)
    found = {}
    for name in ATTACKS:
        noise = fixed if name == "replay" else _keys(cfg, ids, chunk_index, f"{name}_attack")
        found[name] = attacks.pgd(c, p, x, y, eot=cfg.eot if name == "eot" else 1, noise=noise, keep="final",
                                  **budget).x_adv
        test(found[name], f"{name}_eval", name)
    if not randomized:
        if not all(identical(found[a], found["replay"]) for a in ATTACKS):
            _found_random(chunk_index, "attacks under different keys found different examples")
        record["deterministic_check"] = {"identical": True}
    elif cfg.predict_samples:
        _toy(record, st, found["replay"], y, ids, chunk_index, cfg)
    return record


@torch.no_grad()
def _check_deterministic(whole: GlobalRNGReplay, x: torch.Tensor, keys: list[RNGKeys], chunk: int) -> None:
    first = whole(x, keys[0])
    if not all(identical(first, whole(x, k)) for k in keys[1:]):
        _found_random(chunk, "its outputs differ between keys")


def _found_random(chunk: int, what: str) -> None:
    raise UncontrolledRandomnessError(
        f"chunk {chunk}: {what}, but the preflight's {PROBE_CALLS} calls found it deterministic on the first "
        "samples: randomness that appears on some inputs only cannot be audited as deterministic; put such "
        "inputs first or make the randomness appear on every input")


def _toy(record: dict, st: _Stages, x_adv: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, chunk: int,
         cfg: AuditConfig) -> None:
    """``audit_toy.toy_reading`` of the replay attack's examples, its fresh draws keyed per sample (so each
    draw is its own call and per-call randomness is drawn anew) and its directions as predict's."""
    def fresh_for(purpose: str, sid: torch.Tensor) -> Any:
        if purpose == predict.PURPOSE_DIRS:
            return SampleFreshNoise(sid, key_seed(cfg.seed, predict.PURPOSE_DIRS, chunk))
        return RNGKeys("sample", cfg.seed, f"{purpose}/{chunk}", ids=sid, replay=False)

    toy_reading(record, st.purifier, st.classifier, st.gradient == "full", x_adv, y, ids,
                _keys(cfg, ids, chunk, "replay", replay=True), fresh_for, cfg.predict)


def audit_data(cfg: AuditConfig, data: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int | None,
                                                       int | None]:
    """(x, y, ids, classes, available) of the first ``n_samples`` images of ``data`` (an ImageSet, or
    (x, y[, ids]) with classes None: unknown) or of the configured dataset; ``available``: how many
    samples the dataset holds (None when unknown without loading all of it)."""
    whole = data is not None or cfg.dataset == "digits"     # all of the data is at hand (digits: 450 images)
    if data is None:
        from empirical.data import load_dataset
        data = load_dataset(cfg.dataset, cfg.data_dir, n=None if whole else cfg.n_samples)
    x, y, ids, classes = ((data.x, data.y, data.ids, int(data.classes)) if hasattr(data, "x")
                          else (*data[:2], data[2] if len(data) > 2 else torch.arange(len(data[1])), None))
    available = len(y) if whole else DATASET_SIZES.get(cfg.dataset)
    if len(y) < cfg.n_samples:
        raise ValueError(f"asked for {cfg.n_samples} samples but the data holds {len(y)}; lower n_samples")
    n = cfg.n_samples
    return (x[:n], torch.as_tensor(y[:n], dtype=torch.long), torch.as_tensor(ids[:n], dtype=torch.long), classes,
            available)


def audit(factory_or_model: Any, cfg: AuditConfig, *, data: Any = None,
          progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Audit a model (an nn.Module or callable, or a zero-argument factory returning one) on ``data``
    (default: the configured dataset); every check runs before the first attack."""
    model = resolve_model(factory_or_model, cfg.device)
    x, y, ids, classes, available = audit_data(cfg, data)
    pre = preflight(model, x, y, ids, cfg, classes)
    cfg = pre.config
    spans = [(lo, min(lo + cfg.batch_size, len(y))) for lo in range(0, len(y), cfg.batch_size)]
    records = []
    for i, (lo, hi) in enumerate(spans):
        records.append(audit_chunk(model, x[lo:hi], y[lo:hi], ids[lo:hi], i, cfg, pre.randomized))
        if progress is not None:
            progress(i + 1, len(spans))
    return summarise(records, cfg, pre.to_dict(), available)
