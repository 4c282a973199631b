"""The results store: per-chunk records saved atomically, validated on resume, locked against a second writer.

Guarantees (each tested in tests/test_store.py):
- every put rewrites the file atomically (temporary file, fsync, rename), so a kill leaves the old or the new
  store, never half of one; temporary files a kill left behind are removed by the next run on that store;
- a store written under another configuration is refused on --resume, naming each differing option;
- every record carries its schema version, chunk key, sample ids and a checksum; resume verifies them and
  refuses a store that fails, naming the chunk;
- an existing store is never replaced without --overwrite, and --resume on a missing store is an error;
- an OS lock beside the store keeps a second process off it for the run's lifetime;
- under torchrun each rank writes its own file (PATH.rank{r}of{K}); resume merges every rank file found,
  whatever the process count now;
- a symlinked store is updated through its link; a read-only store is refused, not replaced.
"""
from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from empirical.harness import records as rec
from empirical.harness.config import canonical_json, digest
from empirical.results import atomic_write_json

FORMAT = "dissect-purification results store"


class StoreError(ValueError):
    """A store that cannot be used as asked; the message names the file and the fix."""


class ConfigMismatchError(StoreError):
    """Resuming a store written by a different configuration."""


def rank_files(path: str | os.PathLike) -> list[str]:
    """The per-rank stores of a sharded run on `path`, sorted."""
    pattern = re.compile(re.escape(os.path.basename(str(path))) + r"\.rank\d+of\d+$")
    return sorted(p for p in glob.glob(glob.escape(str(path)) + ".rank*of*") if pattern.match(os.path.basename(p)))


def check_outputs(args: Any) -> None:
    """Every output path of a run is usable before any work: its folder exists and is writable, it is not a
    folder, the results store and the JSON are different files, and an existing store is replaced only
    with --overwrite (continued with --resume). Raises ValueError with the fix."""
    named = {f"--{name}": getattr(args, name, None) for name in ("results", "json", "csv", "png")}
    paths = {flag: os.path.realpath(p) for flag, p in named.items() if p}
    seen: dict[str, str] = {}
    for flag, path in paths.items():
        if path in seen:
            raise ValueError(f"{seen[path]} and {flag} name the same file {named[flag]}; give each its own path")
        seen[path] = flag
        folder = os.path.dirname(path) or "."
        if os.path.isdir(path):
            raise ValueError(f"{flag} {named[flag]} is a folder; give a file path inside it")
        if not os.path.isdir(folder):
            raise ValueError(f"{flag} {named[flag]}: the folder {folder} does not exist; create it first")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"{flag} {named[flag]}: the folder {folder} is not writable; choose another path")
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise ValueError(f"{flag} {named[flag]} is read-only; make it writable or choose another path")
    results = named["--results"]
    if results:
        exists = os.path.exists(results) or bool(rank_files(results))
        if getattr(args, "resume", False) and not exists:
            raise ValueError(f"--resume: no results store at {results} (nor per-rank stores {results}.rank*); "
                             "check the path, or drop --resume to start a new run")
        if exists and not getattr(args, "resume", False) and not getattr(args, "overwrite", False):
            raise ValueError(f"--results {results} already exists; add --resume to continue it or --overwrite "
                             "to replace it")
        if getattr(args, "resume", False):
            for source in [p for p in [results] + rank_files(results) if os.path.exists(p)]:
                _read_store(source)          # a file that is no store at all is refused before any loading


def _read_store(path: str) -> dict:
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise StoreError(f"results store {path} is a folder, not a store file; give a file path")
    try:
        saved = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StoreError(f"results store {path} is not UTF-8 text (not a results store); remove it or choose "
                         "another --results path")
    except json.JSONDecodeError as err:
        raise StoreError(f"results store {path} is not valid JSON ({err.msg} at line {err.lineno}); remove it "
                         "or choose another --results path")
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or not isinstance(saved.get("records"), dict):
        raise StoreError(f"results store {path} is JSON but not a results store of this tool (no "
                         f"'format': {FORMAT!r} with records); remove it or choose another --results path")
    return saved


def _diff_lines(old: dict, new: dict, prefix: str = "") -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _diff_lines(a, b, f"{prefix}{key}.")
        elif canonical_json(a) != canonical_json(b):
            lines.append(f"  {prefix}{key}: stored {a!r}, now {b!r}")
    return lines


class ResultStore:
    """Per-chunk records of one run, in memory and (with a path) on disk.

    `open` is the only constructor; records go in through `put` (validated, saved atomically) and come
    out through `get` (validated when read from disk)."""

    def __init__(self, path: str | None, view: dict, records: dict[str, dict], lock_handle=None):
        self.path, self.view, self.records = path, view, records
        self.digest = digest(view)
        self._lock = lock_handle

    @classmethod
    def open(cls, path: str | os.PathLike | None, view: dict, *, resume: bool = False, overwrite: bool = False,
             rank: int = 0, world_size: int = 1) -> "ResultStore":
        """Start or continue the store for `view` (Config.digest_view() plus loaded identities)."""
        view = json.loads(canonical_json(view))
        if path is None:
            return cls(None, view, {})
        base = str(path)
        own = base if world_size == 1 else f"{base}.rank{rank}of{world_size}"
        target = os.path.realpath(own)
        lock = _acquire_lock(target)
        _remove_temporaries(target)
        records: dict[str, dict] = {}
        if resume:
            sources = [p for p in [base] + rank_files(base) if os.path.exists(p)]
            if not sources:
                raise StoreError(f"--resume: no results store at {base}; check the path or drop --resume")
            for source in sources:
                records.update(_load_matching(source, view))
        elif os.path.exists(own) and not overwrite:
            raise StoreError(f"results store {own} already exists; add --resume to continue it or --overwrite "
                             "to replace it")
        if os.path.exists(target) and not os.access(target, os.W_OK):
            raise StoreError(f"results store {own} is read-only; it is not replaced. Make it writable or "
                             "choose another --results path")
        store = cls(own, view, records, lock)
        store._save()
        return store

    def has(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str, ids: list[int] | None = None) -> dict:
        """The measurements of chunk `key` (its record validated; `ids` must match when given)."""
        record = self.records[key]
        rec.verify(record, key, ids, where=self.path or "memory")
        return record["data"]

    def put(self, key: str, ids: list[int], data: dict) -> None:
        """Add one chunk's measurements and rewrite the file atomically."""
        self.records[key] = rec.make(key, ids, data)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        atomic_write_json(self.path, {"format": FORMAT, "schema": rec.SCHEMA, "config": self.view,
                                      "config_digest": self.digest, "records": self.records})


def _load_matching(source: str, view: dict) -> dict[str, dict]:
    saved = _read_store(source)
    if saved.get("config_digest") != digest(view):
        lines = _diff_lines(saved.get("config", {}), view) or ["  (digest differs)"]
        raise ConfigMismatchError(f"results store {source} was written by another configuration:\n"
                                  + "\n".join(lines) + "\nUse the same options to resume, or another --results path.")
    for key, record in saved["records"].items():
        rec.verify(record, key, None, where=source)
    return dict(saved["records"])


def _remove_temporaries(target: str) -> None:
    """Temporary files of an interrupted atomic write on this store (we hold its lock, so none is live)."""
    folder, name = os.path.split(target)
    for tmp in glob.glob(os.path.join(folder or ".", glob.escape(f".{name}.") + "*.tmp")):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _acquire_lock(target: str):
    """An exclusive OS lock on TARGET.lock for the process's lifetime; a second writer gets a clear error."""
    lock_path = target + ".lock"
    try:
        handle = open(lock_path, "a+")
    except OSError as err:
        raise StoreError(f"cannot create the lock file {lock_path} ({err.strerror}); is the folder writable?")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(f"results store {target} is in use by {holder}; wait for it to finish or use another "
                         "--results path")
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle
