"""The results store: per-chunk records saved atomically, validated on resume, locked against a second writer.

Guarantees (each tested in tests/test_store.py and tests/test_store_*.py):
- every put rewrites the file atomically (temporary file, fsync, rename), so a kill leaves the old or the new
  store, never half of one; temporary files of this store that a kill left behind are removed by the next
  run on it (only its own: `.NAME.XXXXXXXX.tmp`, never another rank's);
- a store written under another configuration is refused on --resume, naming each differing option;
- the store records the code that wrote it (`empirical.identity.source_identity`); --resume under other
  code is refused in one line naming what differs, unless allowed (--allow-code-change), and then the
  change is recorded in the store's "code_changes";
- every record carries its schema version, chunk key, sample ids and a checksum over them, its data and
  the configuration digest; resume refuses a record that fails, naming the chunk, and a store or record
  schema this version does not read, naming both versions;
- an existing store is never replaced without --overwrite, which removes the store and its rank files and
  refuses a file that is not a results store; --resume on a missing store is an error;
- one OS lock per store path (PATH.lock), held by the single process or by rank 0 of a torchrun run for the
  run's lifetime, so a single process and a sharded run on one path cannot both proceed; `close()` (or a
  `with` block) releases it;
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
import weakref
from pathlib import Path
from typing import Any

from empirical.harness import records as rec
from empirical.harness.records import canonical_json, digest
from empirical.results import atomic_write_json, is_stdout, output_problem

FORMAT = "dissect-purification results store"
STORE_SCHEMA = 3
KNOWN_STORE_SCHEMAS = (STORE_SCHEMA,)
NO_STORE_ENV = "DISSECT_PURIFICATION_NO_STORE"   # set (non-empty): as --no-store
_ACTIVE: "weakref.WeakSet[ResultStore]" = weakref.WeakSet()   # open stores (named when a run is interrupted)
_CODE_CHANGE_ALLOWED: set[str] = set()  # store paths whose code change the command line allowed


class StoreError(ValueError):
    """A store that cannot be used as asked; the message names the file and the fix."""


class ConfigMismatchError(StoreError):
    """Resuming a store written by a different configuration."""


class CodeChangeError(StoreError):
    """Resuming a store written by different code or library versions."""


def active_paths() -> list[str]:
    """The stores this process has open now."""
    return sorted({s.path for s in list(_ACTIVE) if s.path is not None and s._lock is not None})


def close_all() -> None:
    """Release every store this process has open (an entry point's run is over, however it ended: a store
    kept alive by a caught exception's traceback would otherwise stay locked in a notebook)."""
    for store in list(_ACTIVE):
        store.close()


def rank_files(path: str | os.PathLike) -> list[str]:
    """The per-rank stores of a sharded run on `path`, sorted."""
    pattern = re.compile(re.escape(os.path.basename(str(path))) + r"\.rank\d+of\d+$")
    return sorted(p for p in glob.glob(glob.escape(str(path)) + ".rank*of*") if pattern.match(os.path.basename(p)))


def _store_files(path: str) -> list[str]:
    return [p for p in [path] + rank_files(path) if os.path.lexists(p)]


def check_outputs(args: Any) -> None:
    """Every output path of a run is usable before any work: a regular file (or a new one) in a writable
    folder, never a directory, device node or FIFO; --json / --csv may be "-" or /dev/stdout; the results
    store and the JSON are different files; an existing store is continued only with --resume (under the
    same code unless --allow-code-change) and replaced only with --overwrite, and only if it is a store.
    Raises ValueError with the fix."""
    named = {f"--{name}": getattr(args, name, None) for name in ("results", "json", "csv", "png")}
    seen: dict[str, str] = {}
    for flag, path in named.items():
        if not path:
            continue
        problem = output_problem(path, allow_stdout=flag in ("--json", "--csv"))
        if problem:
            raise ValueError(f"{flag} {path}: {problem}; give a regular file path")
        key = "stdout" if is_stdout(path) else os.path.realpath(path)
        if key in seen and key != "stdout":
            raise ValueError(f"{seen[key]} and {flag} name the same file {path}; give each its own path")
        seen[key] = flag
    results = named["--results"]
    if results:
        _check_store_path(results, bool(getattr(args, "resume", False)), bool(getattr(args, "overwrite", False)),
                          bool(getattr(args, "allow_code_change", False)))


def use_default_store(args: Any, table: str, digest_view: dict, prog: str) -> dict | None:
    """Without --results (and without --no-store or $DISSECT_PURIFICATION_NO_STORE) a run keeps its store in the cache folder, named by the
    digest of its configuration and of the code, and resumes it when it exists: rerunning a killed command
    continues it, and another configuration or other code never touches it. Prints the path on stderr and
    returns the store options to use ({"results", "resume", "overwrite"}), or None without a default store."""
    import sys

    from empirical import identity
    if getattr(args, "results", None) or getattr(args, "no_store", False) or os.environ.get(NO_STORE_ENV):
        return None
    key = digest({"config": digest_view, "code": identity.source_identity()["source_sha256"]})
    folder = identity.cache_dir() / "stores"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"{prog}: note: no results store (cannot create {folder}: {err.strerror}); set "
              f"{identity.CACHE_ENV} to a writable folder to keep one", file=sys.stderr)
        return None
    path = folder / f"{table}-{key}.json"
    exists = bool(_store_files(str(path)))          # the store, or the rank files of a sharded run
    resume = exists and not getattr(args, "overwrite", False)
    if not os.environ.get("DISSECT_PURIFICATION_LAUNCHED"):        # local workers: their launcher said it
        print(f"results store: {path} ({'resuming it' if resume else 'new'}; the same command resumes it after "
              "a kill; --no-store keeps none)", file=sys.stderr, flush=True)
    return {"results": str(path), "resume": resume, "overwrite": exists and not resume}


def _check_store_path(results: str, resume: bool, overwrite: bool, allow_code_change: bool) -> None:
    files = _store_files(results)
    if resume and not files:
        raise ValueError(f"--resume: no results store at {results} (nor per-rank stores {results}.rank*); "
                         "check the path, or drop --resume to start a new run")
    if files and not resume and not overwrite:
        raise ValueError(f"--results {results} already exists ({', '.join(files)}); add --resume to continue it "
                         "or --overwrite to replace it")
    for source in files:
        saved = _read_store(source, check_schema=resume)   # a file that is no store is refused before loading
        if resume:
            _check_code(saved, source, None, allow_code_change)
    if resume and allow_code_change:
        _CODE_CHANGE_ALLOWED.add(os.path.realpath(results))


def _read_store(path: str, check_schema: bool = True) -> dict:
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
        raise StoreError(f"{path} is JSON but not a results store of this tool (no 'format': {FORMAT!r} with "
                         "records); it is neither resumed nor replaced: remove it yourself or choose another "
                         "--results path")
    if check_schema and saved.get("schema") not in KNOWN_STORE_SCHEMAS:
        raise StoreError(f"results store {path} has schema {saved.get('schema')!r}, this version reads schema "
                         f"{STORE_SCHEMA}; it was written by another version of this tool: start a new store "
                         "(--overwrite, or another --results path)")
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


def _current_code() -> dict:
    from empirical.identity import source_identity
    return source_identity()


def _check_code(saved: dict, source: str, code: dict | None, allow: bool) -> list[str]:
    """How the stored code differs from `code` (the running code when None); CodeChangeError unless allowed."""
    from empirical.identity import code_differences
    differences = code_differences(saved.get("code") or {}, code if code is not None else _current_code())
    if differences and not allow:
        raise CodeChangeError(f"results store {source} was written by other code ({'; '.join(differences)}); "
                              "start a new store (another --results path, or --overwrite), or add "
                              "--allow-code-change to continue it anyway (recorded in the store)")
    return differences


class ResultStore:
    """Per-chunk records of one run, in memory and (with a path) on disk.

    `open` is the only constructor; records go in through `put` (validated, saved atomically) and come
    out through `get` (validated when read). `close()` releases the lock; a store is a context manager."""

    def __init__(self, path: str | None, view: dict, records: dict[str, dict], lock_handle=None,
                 code: dict | None = None, code_changes: list | None = None):
        self.path, self.view, self.records = path, view, records
        self.digest = digest(view)
        self.code, self.code_changes = code or {}, list(code_changes or [])
        self._lock = lock_handle
        _ACTIVE.add(self)

    @classmethod
    def open(cls, path: str | os.PathLike | None, view: dict, *, resume: bool = False, overwrite: bool = False,
             rank: int = 0, world_size: int = 1, code: dict | None = None,
             allow_code_change: bool | None = None) -> "ResultStore":
        """Start or continue the store for `view` (Config.digest_view() plus loaded identities), written by
        `code` (default: the running code's `source_identity()`). allow_code_change None: as the command
        line allowed it for this path (`check_outputs`)."""
        view = json.loads(canonical_json(view))
        code = code if code is not None else _current_code()
        if path is None:
            return cls(None, view, {}, code=code)
        base = str(path)
        if allow_code_change is None:
            allow_code_change = os.path.realpath(base) in _CODE_CHANGE_ALLOWED
        own = base if world_size == 1 else f"{base}.rank{rank}of{world_size}"
        lock, error = None, None
        try:
            if rank == 0:
                try:
                    lock = _acquire_lock(os.path.realpath(base))
                    _prepare(base, view, code, resume, overwrite, allow_code_change)
                except StoreError as err:
                    error = err
            _agree(error, world_size)
            _remove_temporaries(os.path.realpath(own))
            records, changes = {}, []
            if resume:
                for source in _store_files(base):
                    loaded, history = _load_matching(source, view, code, allow_code_change)
                    records.update(loaded)
                    changes += [c for c in history if c not in changes]
            if os.path.exists(own) and not os.access(os.path.realpath(own), os.W_OK):
                raise StoreError(f"results store {own} is read-only; it is not replaced. Make it writable or "
                                 "choose another --results path")
            store = cls(own, view, records, lock, code, changes)
            store._save()
            return store
        except BaseException:
            _release(lock)
            raise

    def has(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str, ids: list[int] | None = None) -> dict:
        """The measurements of chunk `key` (its record validated; `ids` must match when given)."""
        record = self.records[key]
        rec.verify(record, key, ids, where=self.path or "memory", config_digest=self.digest)
        return rec.get_data(record)

    def put(self, key: str, ids: list[int], data: dict) -> None:
        """Add one chunk's measurements and rewrite the file atomically."""
        self.records[key] = rec.make(key, ids, data, self.digest)
        self._save()

    def close(self) -> None:
        """Release the store's lock (records already saved stay); idempotent."""
        _release(self._lock)
        self._lock = None
        _ACTIVE.discard(self)

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _save(self) -> None:
        if self.path is None:
            return
        atomic_write_json(self.path, {"format": FORMAT, "schema": STORE_SCHEMA, "config": self.view,
                                      "config_digest": self.digest, "code": self.code,
                                      "code_changes": self.code_changes, "records": self.records})


def _prepare(base: str, view: dict, code: dict, resume: bool, overwrite: bool, allow_code_change: bool) -> None:
    """Rank 0's checks under the lock, before any rank touches a file: an existing store needs --resume or
    --overwrite; --overwrite removes the store and its rank files (stores only); --resume validates them."""
    files = _store_files(base)
    if resume and not files:
        raise StoreError(f"--resume: no results store at {base}; check the path or drop --resume")
    if files and not resume and not overwrite:
        raise StoreError(f"results store {base} already exists ({', '.join(files)}); add --resume to continue it "
                         "or --overwrite to replace it")
    for source in files:
        if resume:
            _load_matching(source, view, code, allow_code_change)
        else:
            _read_store(source, check_schema=False)
    if overwrite:
        for source in files:
            os.unlink(source)


def _agree(error: StoreError | None, world_size: int) -> None:
    """Raise on every rank when rank 0 could not open the store, so that no rank proceeds alone."""
    if world_size > 1:
        from empirical.harness.sharding import agree
        messages = agree(None if error is None else str(error), world_size)
        if messages and error is None:
            raise StoreError(messages[0])
    if error is not None:
        raise error


def _load_matching(source: str, view: dict, code: dict, allow_code_change: bool) -> tuple[dict[str, dict], list]:
    saved = _read_store(source)
    config_digest = digest(view)
    if saved.get("config_digest") != config_digest:
        lines = _diff_lines(saved.get("config", {}), view) or ["  (digest differs)"]
        raise ConfigMismatchError(f"results store {source} was written by another configuration:\n"
                                  + "\n".join(lines) + "\nUse the same options to resume, or another --results path.")
    history = list(saved.get("code_changes") or [])
    differences = _check_code(saved, source, code, allow_code_change)
    if differences:
        from empirical.identity import code_summary
        history.append({"resumed": time.strftime("%Y-%m-%d %H:%M:%S"), "differences": differences,
                        "previous": code_summary(saved.get("code") or {}), "records": sorted(saved["records"])})
    for key, record in saved["records"].items():
        rec.verify(record, key, None, where=source, config_digest=config_digest)
    return dict(saved["records"]), history


def _remove_temporaries(target: str) -> None:
    """Temporary files of an interrupted atomic write of exactly this file (`.NAME.XXXXXXXX.tmp`, the
    pattern of `tempfile.mkstemp`); another rank's `.NAME.rank1of2.XXXXXXXX.tmp` never matches."""
    folder, name = os.path.split(target)
    pattern = re.compile(r"\." + re.escape(name) + r"\.[A-Za-z0-9_]{8}\.tmp$")
    for tmp in glob.glob(os.path.join(folder or ".", glob.escape(f".{name}.") + "*.tmp")):
        if pattern.match(os.path.basename(tmp)):
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


def _release(handle) -> None:
    if handle is None or handle.closed:
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()
