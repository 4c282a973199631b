"""argparse types shared by the toy-model command lines (sweep, checks, figures): each rejects
non-finite, negative or out-of-range values with one clear message."""
from __future__ import annotations

import argparse
import math

from toymodel.simulate import MAX_TRIALS


def int_in(text: str, low: int, high: int | None = None) -> int:
    """An integer in [low, high] (high None: no upper limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        limit = f"must be >= {low}" + (f" and <= {high}" if high is not None else "")
        raise argparse.ArgumentTypeError(f"{limit}, got {value}")
    return value


def int_at_least_1(text: str) -> int:
    return int_in(text, 1)


def trials(text: str) -> int:
    """Monte Carlo trial count, 1 .. 1e8."""
    return int_in(text, 1, MAX_TRIALS)


def seed(text: str) -> int:
    """A SeedSequence seed (non-negative integer)."""
    return int_in(text, 0)


def finite_number(text: str, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ((value > 0 if strict else value >= 0) and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be finite and {'>' if strict else '>='} 0, got {text}")
    return value


def positive(text: str) -> float:
    return finite_number(text, strict=True)


def distance(text: str) -> float | None:
    """A finite distance >= 0, or 'auto' (None)."""
    return None if text.lower() == "auto" else finite_number(text, strict=False)


def threat_radius(text: str) -> float | str:
    """'inf' (or 'none') for no threat set, 'auto' for the smallest one containing A, or a number > 0."""
    if text.lower() in ("inf", "none"):
        return math.inf
    return "auto" if text.lower() == "auto" else positive(text)
