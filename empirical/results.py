"""Atomic file writes for every empirical entry point: the one implementation lives in `toymodel.atomic`
(which imports neither torch nor empirical), so toymodel's CLIs and the tables share its rules: a symlink
is written through, a directory / device node / FIFO is refused, "-" and /dev/stdout mean standard output,
and JSON holds no NaN (undefined statistics are null)."""
from __future__ import annotations

from toymodel.atomic import (atomic_write_json, atomic_write_text, finite_or_null, is_stdout, output_problem,
                             plain_json)

__all__ = ["atomic_write_json", "atomic_write_text", "finite_or_null", "is_stdout", "output_problem", "plain_json"]
