"""Output files for the toy-model CLIs: check a path before any work, then write it atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def output_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be written (missing or read-only folder, a directory), or None if it can."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        return f"{target} is a directory"
    if not folder.is_dir():
        return f"folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    if target.exists() and not os.access(target, os.W_OK):
        return f"{target} is not writable"
    return None


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text to a temporary file in the target's folder and rename it over the target, so a
    crash never leaves a half-written file."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
