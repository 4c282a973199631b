"""Per-sample outcomes read out: one cell's outcomes joined over chunks, and its accuracy with the SE.

A cell holds per-sample booleans, [N] for one test draw per sample or [R][N] for R fresh draws. The
accuracy of [N] is the fraction correct with the binomial SE sqrt(p (1 - p) / N); of [R][N] it is the
mean of the per-sample rates with their SE across samples (samples are the unit, draws are averaged
inside each), and the spread of the R per-draw accuracies beside it. For [R][N] one sample has no SE
(NaN); for [N] the binomial formula gives 0 at N = 1.
Library code: the audit reads cells through here; the harness's tables compute the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Accuracy:
    """Accuracy in percent with its SE over samples; draws and the spread (SD, percent) of the per-draw
    accuracies for cells tested under R > 1 fresh draws."""

    mean: float
    se: float
    n: int
    draws: int = 1
    spread: float | None = None

    def text(self, spread: bool = True) -> str:
        """mean±SE [spread]; a cell of one sample has no SE and says so (never "nan")."""
        s = f"{self.mean:5.1f}±{self.se:3.1f}" if math.isfinite(self.se) else f"{self.mean:5.1f} (n={self.n}, no SE)"
        show = spread and self.spread is not None and math.isfinite(self.spread)
        return s + (f" [{self.spread:.1f}]" if show else "")

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(outcomes: Any) -> Accuracy | None:
    """[N] booleans, or [R][N] for R fresh draws (SE across samples of the per-sample mean); None when
    there is nothing to read (None or no samples)."""
    if outcomes is None:
        return None
    a = np.asarray(outcomes, dtype=float)
    if a.size == 0:
        return None
    if a.ndim == 1:
        p = float(a.mean())
        return Accuracy(100 * p, 100 * math.sqrt(p * (1 - p) / a.size), a.size)
    per_sample, n = a.mean(axis=0), a.shape[1]
    se = float(per_sample.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    spread = float(a.mean(axis=1).std(ddof=1)) if a.shape[0] > 1 else None
    return Accuracy(100 * float(per_sample.mean()), 100 * se, n, a.shape[0], None if spread is None else 100 * spread)


def join(chunks: list[dict], cell: str) -> list | None:
    """One cell's per-sample outcomes joined over chunks in their order: [N] lists, or [R][N] lists
    joined along N. None when no chunk measured the cell."""
    parts = [c[cell] for c in chunks if cell in c and len(c[cell])]
    if not parts:
        return None
    if isinstance(parts[0][0], list):
        return [sum((p[i] for p in parts), []) for i in range(len(parts[0]))]
    return sum(parts, [])
