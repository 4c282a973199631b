"""The project's one atomic writer (toymodel's CLIs and, re-exported by `empirical.results`, every other
entry point): check an output path before any work, then write it so that readers see the old file or the
whole new one, never half of one.

Rules, the same for every caller: a symlink is written through (the link stays, its target is replaced);
an existing file keeps its permission bits (a new one gets 0666 minus the umask); a directory, a device
node, a FIFO or a socket is refused, never replaced; "-" and /dev/stdout mean standard output, written
in place (so a redirected stdout keeps the table printed before). No torch, no empirical imports.
"""
from __future__ import annotations

import json
import math
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

STDOUT_NAMES = ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1")


def is_stdout(path: str | os.PathLike) -> bool:
    """True when `path` names standard output ("-" or /dev/stdout and its aliases)."""
    return str(path) in STDOUT_NAMES


def output_problem(path: str | os.PathLike, allow_stdout: bool = True) -> str | None:
    """Why `path` cannot be written (a directory, a device node or FIFO, a missing or read-only folder,
    a read-only file), or None if it can. Checked before any work so a long run cannot fail at its end."""
    if is_stdout(path):
        return None if allow_stdout else f"{path} is standard output, not a file"
    target = Path(os.path.realpath(path))
    folder = target.parent
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        return f"{path} cannot be inspected ({err.strerror})"
    if mode is not None and stat.S_ISDIR(mode):
        return f"{path} is a directory"
    if mode is not None and not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device node")
        return f"{path} is {kind}, not a regular file (it would be replaced or block)"
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    if mode is not None and not os.access(target, os.W_OK):
        return f"{path} is not writable"
    return None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (temporary file in the same folder, fsync, rename); "-" or
    /dev/stdout writes to standard output. Raises FileNotFoundError (missing folder), PermissionError
    (not writable) or ValueError (a directory, device node or FIFO), leaving no temporary file."""
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(os.path.realpath(path))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {folder} does not exist")
    problem = output_problem(target)
    if problem is not None and ("directory" in problem or "regular file" in problem):
        raise ValueError(f"cannot write {path}: {problem}; give a file path")
    if problem is not None:
        raise PermissionError(f"cannot write {path}: {problem}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise PermissionError(f"output folder {folder} is not writable ({err.strerror})") from err
    try:
        if target.exists():
            mode = target.stat().st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask               # mkstemp makes 0600; results are ordinary files
        os.chmod(tmp, mode)
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


write_text_atomic = atomic_write_text       # the name toymodel's callers use


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


def plain_json(obj: Any) -> Any:
    """`obj` as the JSON reader will see it: arrays as lists, tuples as lists, NaN / inf as None."""
    return finite_or_null(json.loads(json.dumps(obj, default=_jsonable)))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON version of `atomic_write_text` (sorted keys, so equal content gives equal bytes; NaN -> null)."""
    atomic_write_text(path, json.dumps(plain_json(obj), indent=1, sort_keys=True, allow_nan=False) + "\n")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a results file")
