"""Atomic, resumable per-sample result store: long runs never lose work or leave a file half-written."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that readers see either the old file or the whole new one."""
    path = Path(path)
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


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON version of `atomic_write_text` (sorted keys, so equal content gives equal bytes)."""
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def config_digest(config: dict) -> str:
    """A short stable hash of a run configuration (canonical JSON)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ConfigMismatchError(ValueError):
    """Resuming a results file that was written by a different configuration."""


@dataclass
class ResultStore:
    """Per-key records (e.g. one per sample chunk and table cell) saved atomically after every put.

    The run configuration is stored with the records; `open(..., resume=True)` refuses a file
    written under another configuration, so resumed numbers always mean the same experiment.
    """

    path: Path | None
    config: dict
    records: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike | None, config: dict, resume: bool = False) -> "ResultStore":
        """Start a store at `path` (None keeps it in memory), or continue the one there if `resume`."""
        config = json.loads(json.dumps(config, sort_keys=True, default=str))
        if path is None:
            return cls(None, config)
        path = Path(path)
        if resume and path.exists():
            try:
                saved = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"results file {path} is not valid JSON ({err}); remove it to start over") from err
            if saved.get("config_digest") != config_digest(config):
                diff = _config_diff(saved.get("config", {}), config)
                raise ConfigMismatchError(
                    f"results file {path} was written by another configuration ({diff}); "
                    "use the same options to resume, or another --results path")
            return cls(path, config, dict(saved.get("records", {})))
        store = cls(path, config)
        store._save()
        return store

    def has(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> Any:
        return self.records[key]

    def put(self, key: str, record: Any) -> None:
        """Add one record and rewrite the file atomically."""
        self.records[key] = json.loads(json.dumps(record, default=_jsonable))
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        atomic_write_json(self.path, {"config": self.config, "config_digest": config_digest(self.config),
                                      "records": self.records})


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a results file")


def _config_diff(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    changed = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(changed[:5]) or "digest differs"
