"""--from-json for the figure entry points: redraw a figure from the JSON a finished run wrote (its --json),
so that a change of style does not cost the measurement again."""
from __future__ import annotations

import json
from pathlib import Path


def add_option(parser, source: str) -> None:
    """The --from-json option; `source` names the entry points whose --json output it reads."""
    parser.add_argument("--from-json", metavar="PATH",
                        help=f"redraw from the --json output of {source} instead of measuring (the measurement "
                             "options are then read from that file)")


def check(parser, path: str | None, key: str, source: str) -> None:
    """Refuse, with one line before any work, a --from-json file that is unreadable or lacks `key`."""
    if not path:
        return
    try:
        stored = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        parser.error(f"--from-json {path}: cannot read it as JSON ({err})")
    if not isinstance(stored, dict) or key not in stored or "config" not in stored:
        parser.error(f"--from-json {path}: no '{key}' in it (expected the --json output of {source})")


def read(path: str) -> tuple[dict, dict]:
    """(the stored result, its run configuration as a plain dict)."""
    stored = json.loads(Path(path).read_text())
    return stored, stored["config"]


ORDER = ("DiffPure", "RevPure", "DDIM RevPure")


def in_order(per_method: dict) -> dict:
    """Per-purifier results in one fixed order (DiffPure, RevPure, DDIM RevPure, then others by name), so that
    a figure drawn after a measurement and one redrawn from its JSON, whose keys are sorted, are the same."""
    rank = lambda m: (ORDER.index(m), "") if m in ORDER else (len(ORDER), m)
    return {m: per_method[m] for m in sorted(per_method, key=rank)}
