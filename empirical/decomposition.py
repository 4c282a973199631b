"""Table 1's replay->fresh drop split into what Theorem 1 describes and what it leaves out, per sample.

The Replay->fresh cell tests the examples crafted under replay (fixed noise) under fresh noise: Theorem 1's
perfect attack. Its drop from the replay cell, d_i = transfer_i - replay_i, is two effects of opposite sign:

  (a) restored: samples the replay attack fooled (replay_i = 0) that fresh noise classifies correctly again,
      a_i = transfer_i (1 - replay_i) >= 0. This is what the toy model predicts (the survival of a
      replay-fooled example under a fresh draw, Theorem 1's first form); and
  (b) lost: samples replay could not fool (replay_i = 1) that a fresh draw misclassifies,
      b_i = (1 - transfer_i) replay_i >= 0. The toy model leaves this out: in it, fresh noise never fools
      what replay did not.

d_i = a_i - b_i exactly, sample by sample. With noise replicates, each (sample, replicate) is split and a
sample's a_i, b_i are the means over its replicates, so the sample stays the unit of every test. The toy
prediction of (a) is set beside the measured (a) on the samples whose prediction was measured.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from empirical import stats


@dataclass(frozen=True)
class Part:
    """A per-sample quantity's mean and SE over samples, in percent points, and the units behind it."""

    mean: float
    se: float
    units: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decomposition:
    """(a) restored and (b) lost, summing to the drop; n samples, `units` sample-replicates."""

    n: int
    units: int
    drop: Part
    restored: Part
    lost: Part
    fooled_units: int
    robust_units: int

    def to_dict(self) -> dict:
        return {"n": self.n, "units": self.units, "drop": self.drop.to_dict(), "restored": self.restored.to_dict(),
                "lost": self.lost.to_dict(), "fooled_units": self.fooled_units, "robust_units": self.robust_units}


def _part(per_sample: np.ndarray, units: int) -> Part:
    n = per_sample.size
    se = float(100 * per_sample.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return Part(float(100 * per_sample.mean()), se, units)


def decompose(replay, transfer) -> Decomposition:
    """replay [K, N]: 1 if replicate k's replay attack failed on sample i (0/1); transfer [K, N]: the mean
    over its fresh draws of the replay-crafted example's correctness. Same samples in the same order."""
    r, t = np.asarray(replay, dtype=float), np.asarray(transfer, dtype=float)
    if r.ndim == 1:
        r, t = r[None], t[None] if t.ndim == 1 else t
    if r.shape != t.shape or r.ndim != 2 or r.size == 0:
        raise ValueError(f"replay and transfer must be [K, N] of the same shape, got {r.shape} and {t.shape}")
    if not (np.all((r == 0) | (r == 1)) and np.all((t >= 0) & (t <= 1))):
        raise ValueError("replay must be 0/1 outcomes and transfer rates in [0, 1]")
    restored, lost = t * (1 - r), (1 - t) * r
    fooled = int((r == 0).sum())
    return Decomposition(n=r.shape[1], units=r.size, drop=_part((t - r).mean(0), r.size),
                         restored=_part(restored.mean(0), fooled), lost=_part(lost.mean(0), r.size - fooled),
                         fooled_units=fooled, robust_units=r.size - fooled)


@dataclass(frozen=True)
class PredictionCheck:
    """The toy prediction of (a) beside the measured (a), like for like.

    predicted / measured: the extrapolated (a) (percent points of accuracy): the fooled share times the mean
    predicted (resp. held-out) rescue of the measured fooled samples. difference: exact paired test of
    predicted minus held-out rescue on those samples (pooled per sample over replicates), scaled to points of
    (a); equivalence: the same as two one-sided tests against +-margin points of (a)."""

    samples: int
    fooled_share: float
    predicted: float
    held_out: float
    difference: stats.PairedTest
    equivalence: stats.PairedTest
    margin: float

    def to_dict(self) -> dict:
        out = asdict(self)
        out["difference"], out["equivalence"] = self.difference.to_dict(), self.equivalence.to_dict()
        return out


def check_prediction(predicted: dict[int, float], held_out: dict[int, float], fooled_share: float,
                     margin: float) -> PredictionCheck | None:
    """predicted / held_out: {sample id: rescue probability} (1 - p_fresh, 1 - survival, each the mean over
    the sample's measured replicates); fooled_share: the fraction of sample-replicates the replay attack
    fooled (that were correct clean), which scales a rescue to points of (a). None without samples."""
    ids = sorted(set(predicted) & set(held_out))
    if not ids:
        return None
    if not 0 <= fooled_share <= 1:
        raise ValueError(f"fooled_share must be a fraction in [0, 1], got {fooled_share}")
    p = fooled_share * np.array([predicted[i] for i in ids])
    h = fooled_share * np.array([held_out[i] for i in ids])
    return PredictionCheck(samples=len(ids), fooled_share=fooled_share, predicted=float(100 * p.mean()),
                           held_out=float(100 * h.mean()), difference=stats.signflip_test(100 * (p - h)),
                           equivalence=stats.signflip_equivalence(100 * (p - h), margin), margin=margin)
