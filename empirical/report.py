"""Accuracies with standard errors from per-sample outcomes, and plain-text / CSV tables."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass

import numpy as np

from empirical.results import atomic_write_text


@dataclass
class Accuracy:
    """Accuracy in percent with its standard error over samples (and spread over fresh draws)."""

    mean: float
    se: float
    n: int
    draws: int = 1
    spread: float | None = None   # std of the per-draw accuracies (fresh-noise cells)

    def text(self) -> str:
        s = f"{self.mean:5.1f}±{self.se:3.1f}"
        return s + (f" [{self.spread:.1f}]" if self.spread is not None else "")

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy(outcomes) -> Accuracy | None:
    """[N] booleans, or [R][N] for R fresh draws (SE across samples of the per-sample mean)."""
    if outcomes is None:
        return None
    a = np.asarray(outcomes, dtype=float)
    if a.size == 0:
        return None
    if a.ndim == 1:
        p = a.mean()
        return Accuracy(100 * p, 100 * math.sqrt(p * (1 - p) / a.size), a.size)
    per_sample = a.mean(axis=0)
    n = per_sample.size
    se = per_sample.std(ddof=1) / math.sqrt(n) if n > 1 else float("nan")
    spread = a.mean(axis=1).std(ddof=1) if a.shape[0] > 1 else None
    return Accuracy(100 * per_sample.mean(), 100 * se, n, a.shape[0],
                    None if spread is None else 100 * spread)


def concat(records: list[dict], key: str):
    """Join one cell's outcomes over chunks ([N] lists, or [R][N] lists joined along N)."""
    parts = [r[key] for r in records if key in r and len(r[key])]
    if not parts:
        return None
    if isinstance(parts[0][0], list):
        return [sum((p[i] for p in parts), []) for i in range(len(parts[0]))]
    return sum(parts, [])


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Fixed-width text table; `columns` are (key, header) pairs; Accuracy cells print mean±SE [spread]."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, (_, h) in enumerate(columns)]
    line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()
    out = [line([h for _, h in columns]), line(["-" * w for w in widths])]
    return "\n".join(out + [line(c) for c in cells])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, Accuracy):
        return value.text()
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_csv(path: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """CSV with mean and SE columns for every accuracy cell, written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = []
    for key, _ in columns:
        header += [key] if not any(isinstance(r.get(key), Accuracy) for r in rows) else [key, f"{key}_se"]
    writer.writerow(header)
    for row in rows:
        out = []
        for key, _ in columns:
            value = row.get(key)
            if any(isinstance(r.get(key), Accuracy) for r in rows):
                out += [f"{value.mean:.3f}", f"{value.se:.3f}"] if isinstance(value, Accuracy) else ["", ""]
            else:
                out.append("" if value is None else value)
        writer.writerow(out)
    atomic_write_text(path, buf.getvalue())


def paired_drop(no_fix, fixed) -> Accuracy | None:
    """Accuracy lost by fixing the noise, paired over the same samples: mean and SE of
    d_i = (mean over fresh draws of sample i's correctness) - (its correctness under replay)."""
    if no_fix is None or fixed is None:
        return None
    a, b = np.asarray(no_fix, dtype=float), np.asarray(fixed, dtype=float)
    a = a.mean(axis=0) if a.ndim == 2 else a
    b = b.mean(axis=0) if b.ndim == 2 else b
    if a.shape != b.shape:
        raise ValueError(f"paired cells need the same samples, got {a.shape} and {b.shape}")
    d = a - b
    se = 100 * d.std(ddof=1) / math.sqrt(d.size) if d.size > 1 else float("nan")
    return Accuracy(100 * d.mean(), se, d.size)
