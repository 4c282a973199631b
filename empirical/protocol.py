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

PREDICT_DRAWS = 16     # purifications per measured sample of the toy prediction (PredictSettings 10 + 6)
PURPOSES = ("replay", "clean", "bpda", "eot", "bpda_eval", "eot_eval", "transfer", "predict", "directions",
            "predict_fit", "predict_eval", "predict_dirs", "judge", "replicate")
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

    def purifications(self, n: int, n_eot: int, stochastic: bool, predict: bool, attacked: bool = True) -> int:
        """Image-purifications run_chunk performs on a chunk of n samples (n_eot of them with BPDA-EOT): the
        work its `tick` reports, so a progress bar can show it and weight its ETA by it. Exact but for three
        data-dependent parts: the replay attack's re-judgement of its best iterates is counted as if it always
        runs and the toy prediction as if min(n, predict_samples) samples were fooled (upper bounds); the
        any-iterate estimand's confirmations of a break are not counted."""
        fresh = stochastic and self.fresh_cells
        r, s = self.fresh_evals, self.steps
        total = n * (fresh * r + (not attacked or s == 0))
        if not attacked:
            return total
        total += n * (s + 2)                                          # replay attack, final judge, re-judge
        if fresh:
            total += n * (r + s + r)                                  # transfer, fresh attack, its evaluation
            total += n_eot * (self.eot * s + r)                       # fresh EOT attack and its evaluation
            if self.estimand == "any_iterate_averaged":
                total += (n + n_eot) * ((s + 1) * self.judge_draws + 1)   # judging every iterate, final judge
            if predict:
                total += min(n, self.predict_samples) * (1 + PREDICT_DRAWS)
        return total


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


class _Counting:
    """A purifier that reports every purification (the images purified) to `tick`; everything else is the
    wrapped purifier's, so numbers are unchanged."""

    def __init__(self, purifier, tick: Callable[[int], None]):
        self._purifier, self._tick = purifier, tick

    def __getattr__(self, name: str):
        return getattr(self._purifier, name)

    def __call__(self, x: torch.Tensor, noise=None) -> torch.Tensor:
        out = self._purifier(x, noise)
        self._tick(int(x.shape[0]))
        return out

    def differentiable(self, x: torch.Tensor, noise=None, **kw) -> torch.Tensor:
        out = self._purifier.differentiable(x, noise, **kw)
        self._tick(int(x.shape[0]))
        return out


def run_chunk(classifier, purifier, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, chunk: int,
              protocol: Protocol, eot_mask: torch.Tensor, predict: bool = True,
              clean_only: bool = False, tick: Callable[[int], None] = lambda n=1: None) -> dict:
    """All cells of the table for one chunk; returns a JSON-able record of per-sample outcomes.

    Each purified image is computed once and shared by the cells that need it: the clean replay cell is
    iterate 0 of the replay attack (no random start, the same replayed draw); the BPDA replay cell is the
    replay attack's own verdict (under replay the evaluation is deterministic); the BPDA-EOT replay cell is
    the BPDA replay cell on the EOT samples (under replay every EOT draw is the replayed one, so BPDA-EOT is
    BPDA, as the paper observes in Sec. 5.1); the fresh attacks skip their final single-draw judgement
    (their cells are R fresh evaluations of their own); under the any-iterate estimand one fresh attack gives
    both rules. `tick(n)` is called with the images of every purification (Protocol.purifications counts them).
    """
    p = protocol
    purifier = _Counting(purifier, tick)
    record: dict = {"ids": ids.tolist(), "eot_ids": ids[eot_mask].tolist()}

    def fresh_eval(x_eval, y_eval, ids_eval, purpose):
        """R independent fresh-noise evaluations -> nested list [R][N] of correctness."""
        source = fresh_source(p, ids_eval, purpose, chunk)
        return _bools(attacks.evaluate(classifier, purifier, x_eval, y_eval, mode="fresh", noise=source,
                                       draws=p.fresh_evals))

    fresh_cells = getattr(purifier, "stochastic", True) and p.fresh_cells
    fixed = replay_source(p, ids, chunk)
    if clean_only or p.steps == 0:
        record["clean_replay"] = _bools(attacks.evaluate(classifier, purifier, x, y, mode="replay", noise=fixed))
    if fresh_cells:
        record["clean_fresh"] = fresh_eval(x, y, ids, "clean")
    if clean_only:
        return record
    adv = attacks.bpda(classifier, purifier, x, y, noise=fixed, keep="best", **p.attack_kwargs)
    if p.steps > 0:
        record["clean_replay"] = [adv.start_correct.cpu().tolist()]
    record["bpda_replay"] = [(adv.fooled_rate == 0).cpu().tolist()]
    if eot_mask.any():
        record["eot_replay"] = [[c for c, m in zip(record["bpda_replay"][0], eot_mask.tolist()) if m]]
    if fresh_cells:
        record["bpda_replay_tested_fresh"] = fresh_eval(adv.x_adv, y, ids, "transfer")
        record.update(_fresh_attacks(classifier, purifier, x, y, ids, eot_mask, chunk, p, fresh_eval))
    if predict and fresh_cells:
        from empirical.predict import PredictSettings, predict_chunk
        record["prediction"] = predict_chunk(classifier, purifier, adv.x_adv, y, ids, fixed,
                                             lambda purpose, sub: fresh_source(p, sub, purpose, chunk),
                                             record["bpda_replay"][0], record["clean_replay"][0],
                                             PredictSettings(samples=p.predict_samples))
    return record


def _fresh_attacks(classifier, purifier, x, y, ids, eot_mask, chunk: int, p: Protocol, fresh_eval) -> dict:
    """The no-fix BPDA and BPDA-EOT cells: attacks under fresh noise, each final iterate evaluated on R fresh
    draws (RULE_SINGLE_DRAW). Under the any-iterate estimand the same attacks also record DiffPure's rule
    (attacks.RULE_DIFFPURE) on judging draws of their own, so the attack's draws are those of the
    single-draw run and no attack runs twice."""
    anyit = p.estimand == "any_iterate_averaged"
    out = {}
    for cell, mask in (("bpda", None), ("eot", eot_mask)):
        if mask is not None and not bool(mask.any()):
            continue
        xs, ys, si = (x, y, ids) if mask is None else (x[mask], y[mask], ids[mask])
        rule = dict(any_iterate=True, judge_noise=fresh_source(p, si, "judge", chunk), judge_draws=p.judge_draws,
                    confirm_draws=p.confirm_draws) if anyit else dict(final_judge=False)
        adv = attacks.pgd(classifier, purifier, xs, ys, gradient="bpda", eot=1 if mask is None else p.eot,
                          noise=fresh_source(p, si, cell, chunk), keep="final", **rule, **p.attack_kwargs)
        out[f"{cell}_fresh"] = fresh_eval(adv.x_adv, ys, si, f"{cell}_eval")
        if anyit:
            out[f"{cell}_fresh_any"] = (~adv.broken_any).tolist()
    return out
