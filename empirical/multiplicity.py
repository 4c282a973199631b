"""Family-wise error control for a report with a few primary claims and many secondary ones.

A Bonferroni-based parallel gatekeeping procedure (Dmitrienko, Offen and Westfall, Statistics in Medicine
2003) with Holm's procedure in the last family:

1. the k primary hypotheses, fixed before the data, share alpha equally: primary p_adjusted = min(1, k p);
2. the secondary family inherits the alpha of the rejected primaries, alpha r / k (r rejected of k), and is
   tested by Holm at that level; its p_adjusted is Holm's adjusted p times k / r (1 when r = 0), so
   "p_adjusted < alpha" is the same decision as "Holm's p < alpha r / k".

The family-wise error rate over both families is at most alpha under any dependence. Why this shape: the
primary verdicts depend only on the primary tests, so a table that runs the primary claims decides them
exactly as the whole report does, however many secondary claims the report adds.
"""
from __future__ import annotations

from empirical.stats import holm


def gatekeeping(primary: list[float], secondary: list[float], alpha: float = 0.05,
                k: int | None = None) -> tuple[list[float], list[float]]:
    """(primary p_adjusted, secondary p_adjusted) in the order given. k: the number of primary hypotheses
    declared (default len(primary)); a declared primary that was not measured counts as not rejected."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = len(primary) if k is None else int(k)
    if k < len(primary) or k < 1:
        raise ValueError(f"k must be >= the {len(primary)} primary p-values given and >= 1, got {k}")
    first = [min(1.0, k * float(p)) for p in holm_checked(primary)]
    rejected = sum(p < alpha for p in first)
    if not secondary:
        return first, []
    if rejected == 0:
        return first, [1.0] * len(secondary)
    return first, [min(1.0, p * k / rejected) for p in holm(secondary)]


def holm_checked(p_values: list[float]) -> list[float]:
    """The p-values as floats, refused unless each is a number in [0, 1] (holm's own check, reused)."""
    holm(p_values)
    return [float(p) for p in p_values]
