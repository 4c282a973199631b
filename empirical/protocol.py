"""The Table 1 measurement protocol for one purifier on one chunk of samples (paper Sec. 5.1).

Per chunk it measures clean accuracy, BPDA and BPDA-EOT robust accuracy with and without fixed
noise, and the column the paper lacks: replay-crafted adversarial examples tested under fresh
noise (Theorem 1's perfect attack). Every Gaussian draw is keyed per sample (or per batch, the
paper's rule), so a sample's numbers do not depend on how samples are chunked, resumed or sharded.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from empirical import attacks
from empirical.noise import BatchReplayNoise, SampleFreshNoise, SampleReplayNoise

PURPOSES = ("replay", "clean", "bpda", "eot", "bpda_eval", "eot_eval", "transfer", "predict", "directions",
            "predict_fit", "predict_eval", "predict_dirs", "judge")
ESTIMANDS = tuple(attacks.ESTIMANDS)     # the evaluation rules attacks.py defines


@dataclass(frozen=True)
class Protocol:
    """Attack and evaluation settings shared by every cell of the table."""

    eps: float
    steps: int
    step_size: float
    eot: int = 15
    norm: str = "linf"
    fresh_evals: int = 3        # R: fresh-noise evaluations of every adversarial set
    seed: int = 0
    noise_keys: str = "sample"  # "sample": per-sample keys; "batch": the paper's Seed(i, t)
    predict_samples: int = 8    # replay-fooled samples per chunk measured for the toy prediction
    fresh_cells: bool = True    # also measure the cells without fixed noise (Table 1); False: replay only
    estimand: str = "single_draw"   # no-fix cells: "single_draw" only, or also DiffPure's "any_iterate_averaged"
    judge_draws: int = 15       # any_iterate_averaged: draws averaged per iterate (DiffPure: 15)
    confirm_draws: int = 150    # ... and per confirmation of a break (DiffPure: 150)

    def __post_init__(self) -> None:
        if self.noise_keys not in ("sample", "batch"):
            raise ValueError(f"noise_keys must be 'sample' or 'batch', got {self.noise_keys!r}")
        if self.fresh_evals < 1 or self.eot < 1 or self.steps < 0:
            raise ValueError("fresh_evals and eot must be >= 1 and steps >= 0")
        if self.estimand not in ESTIMANDS:
            raise ValueError(f"estimand must be one of {ESTIMANDS}, got {self.estimand!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def attack_kwargs(self) -> dict:
        """The PGD budget every attack of the table uses (one place, not spelled out per call)."""
        return dict(eps=self.eps, norm=self.norm, steps=self.steps, step_size=self.step_size)

    def phases(self, attacked: bool, n_eot: int, stochastic: bool, predict: bool) -> int:
        """How many times run_chunk calls its `tick` for such a chunk (for a progress bar that moves)."""
        fresh = stochastic and self.fresh_cells
        n = 1 + fresh
        if not attacked:
            return n
        attack = self.steps + 1                    # one tick per PGD step, one for the evaluation after it
        n += attack + fresh * (1 + attack) + (1 + fresh) * attack * (n_eot > 0) + (predict and fresh)
        if fresh and self.estimand == "any_iterate_averaged":
            n += attack * (1 + (n_eot > 0))
        return n


def derived_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for (run seed, purpose, ...) from numpy's SeedSequence (well mixed, stable)."""
    words = [seed] + [p if isinstance(p, int) else PURPOSES.index(p) + 1_000_003 for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def replay_source(protocol: Protocol, ids: torch.Tensor, chunk: int):
    """The fixed noise of a sample (or of a batch, the paper's eq. 5), shared by attack and test."""
    if protocol.noise_keys == "batch":
        return BatchReplayNoise(chunk)
    return SampleReplayNoise(ids, derived_seed(protocol.seed, "replay"))


def fresh_source(protocol: Protocol, ids: torch.Tensor, purpose: str, chunk: int):
    """Noise that is new on every purification but still a deterministic function of each sample."""
    key = chunk + 1 if protocol.noise_keys == "batch" else 0
    return SampleFreshNoise(ids, derived_seed(protocol.seed, purpose, key))


def _bools(result: attacks.EvalResult) -> list:
    return result.correct.cpu().tolist()


def run_chunk(classifier, purifier, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, chunk: int,
              protocol: Protocol, eot_mask: torch.Tensor, predict: bool = True,
              clean_only: bool = False, tick: Callable[[], None] = lambda: None) -> dict:
    """All cells of the table for one chunk; returns a JSON-able record of per-sample outcomes.
    `tick()` is called after each phase (Protocol.phases counts them)."""
    p = protocol
    common = {**p.attack_kwargs, "on_step": tick}
    record: dict = {"ids": ids.tolist(), "eot_ids": ids[eot_mask].tolist()}

    def fresh_eval(x_eval, y_eval, ids_eval, purpose):
        """R independent fresh-noise evaluations -> nested list [R][N] of correctness."""
        source = fresh_source(p, ids_eval, purpose, chunk)
        return _bools(attacks.evaluate(classifier, purifier, x_eval, y_eval, mode="fresh", noise=source,
                                       draws=p.fresh_evals))

    fresh_cells = getattr(purifier, "stochastic", True) and p.fresh_cells
    fixed = replay_source(p, ids, chunk)
    record["clean_replay"] = _bools(attacks.evaluate(classifier, purifier, x, y, mode="replay", noise=fixed))
    tick()
    if fresh_cells:
        record["clean_fresh"] = fresh_eval(x, y, ids, "clean")
        tick()
    if clean_only:
        return record
    adv = attacks.bpda(classifier, purifier, x, y, noise=fixed, keep="best", **common)
    record["bpda_replay"] = _bools(attacks.evaluate(classifier, purifier, adv.x_adv, y, mode="replay", noise=fixed))
    tick()
    if fresh_cells:
        record["bpda_replay_tested_fresh"] = fresh_eval(adv.x_adv, y, ids, "transfer")
        tick()
        adv_fresh = attacks.bpda(classifier, purifier, x, y, noise=fresh_source(p, ids, "bpda", chunk),
                                 keep="final", **common)
        record["bpda_fresh"] = fresh_eval(adv_fresh.x_adv, y, ids, "bpda_eval")
        tick()
    if eot_mask.any():
        xe, ye, ie = x[eot_mask], y[eot_mask], ids[eot_mask]
        fixed_e = fixed.subset(eot_mask.nonzero().flatten())
        adv_e = attacks.bpda_eot(classifier, purifier, xe, ye, eot=p.eot, noise=fixed_e, keep="best", **common)
        record["eot_replay"] = _bools(attacks.evaluate(classifier, purifier, adv_e.x_adv, ye, mode="replay", noise=fixed_e))
        tick()
        if fresh_cells:
            adv_ef = attacks.bpda_eot(classifier, purifier, xe, ye, eot=p.eot,
                                      noise=fresh_source(p, ie, "eot", chunk), keep="final", **common)
            record["eot_fresh"] = fresh_eval(adv_ef.x_adv, ye, ie, "eot_eval")
            tick()
    if fresh_cells and p.estimand == "any_iterate_averaged":
        record.update(_diffpure_rule(classifier, purifier, x, y, ids, eot_mask, chunk, p, tick))
    if predict and fresh_cells:
        from empirical.predict import PredictSettings, predict_chunk
        record["prediction"] = predict_chunk(classifier, purifier, adv.x_adv, y, ids, fixed,
                                             lambda purpose, sub: fresh_source(p, sub, purpose, chunk),
                                             record["bpda_replay"][0], record["clean_replay"][0],
                                             PredictSettings(samples=p.predict_samples))
        tick()
    return record


def _diffpure_rule(classifier, purifier, x, y, ids, eot_mask, chunk: int, p: Protocol, tick) -> dict:
    """The no-fix BPDA and BPDA-EOT cells under DiffPure's own estimand (attacks.RULE_DIFFPURE): a sample is
    broken if any iterate is misclassified on logits averaged over judge_draws fresh purifications (confirmed
    on confirm_draws). Same attack noise streams as the single-draw cells; separate judging draws."""
    rule = dict(any_iterate=True, judge_draws=p.judge_draws, confirm_draws=p.confirm_draws, on_step=tick)
    out = {}
    adv = attacks.bpda(classifier, purifier, x, y, noise=fresh_source(p, ids, "bpda", chunk), keep="final",
                       judge_noise=fresh_source(p, ids, "judge", chunk), **rule, **p.attack_kwargs)
    out["bpda_fresh_any"] = (~adv.broken_any).tolist()
    tick()
    if eot_mask.any():
        xe, ye, ie = x[eot_mask], y[eot_mask], ids[eot_mask]
        adv = attacks.bpda_eot(classifier, purifier, xe, ye, eot=p.eot, noise=fresh_source(p, ie, "eot", chunk),
                               keep="final", judge_noise=fresh_source(p, ie, "judge", chunk), **rule,
                               **p.attack_kwargs)
        out["eot_fresh_any"] = (~adv.broken_any).tolist()
        tick()
    return out

