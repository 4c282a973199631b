"""Atomic file writes: readers see the old file or the whole new one, never a half-written one."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that readers see either the old file or the whole new one."""
    path = Path(os.path.realpath(path))       # through a symlink: the link stays, its target is replaced
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise FileNotFoundError(f"output folder {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"output folder {directory} is not writable")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise PermissionError(f"output folder {directory} is not writable ({err.strerror})") from err
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def finite_or_null(obj: Any) -> Any:
    """The same structure with every NaN or infinity replaced by None (JSON has no NaN; strict parsers
    reject it). Such values are undefined statistics, e.g. the SE of a single sample."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON version of `atomic_write_text` (sorted keys, so equal content gives equal bytes; NaN -> null)."""
    text = json.dumps(finite_or_null(json.loads(json.dumps(obj, default=_jsonable))), indent=1, sort_keys=True,
                      allow_nan=False)
    atomic_write_text(path, text + "\n")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a results file")


