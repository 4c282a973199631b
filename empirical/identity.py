"""Identity of code, weights and data: content hashes every run records, so that a resumed run cannot
silently mix two versions of the code, two models or two data sets under the same file name.

Code: the project's version, the sha256 of each of its own source files, the versions of python, torch,
diffusers, numpy, scipy and numba, and (for a user's --model factory) the modules it imports from outside
site-packages (`source_identity`). Files: size and sha256 (streamed, and cached by path, size and mtime in
the cache folder so that a rerun does not rehash gigabytes; `sha256_cached`). Folders: a manifest hash
(every relative name and size) and a content hash over every file. Hub models: the resolved snapshot commit
and each file's sha256. Digits: the committed weights' manifest records and scikit-learn's bundled data file.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import sysconfig
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from empirical.checkpoints import (WEIGHTS_DIR, MANIFEST_NAME, cached_snapshot, classifier_source, digits_manifest,
                                   sha256_file)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGES = ("empirical", "toymodel", "figures")
VERSIONED = ("torch", "diffusers", "numpy", "scipy", "numba")
CACHE_ENV = "DISSECT_PURIFICATION_CACHE"
HASH_CACHE_NAME = "file-hashes.json"
RECENT_S = 2.0


def cache_dir() -> Path:
    """The project's cache folder: $DISSECT_PURIFICATION_CACHE, else $XDG_CACHE_HOME/dissect-purification,
    else ~/.cache/dissect-purification (read at call time, so tests can point it elsewhere)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "dissect-purification"


def _stream_hashes(path: Path) -> dict:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def sha256_cached(paths: Iterable[str | Path]) -> list[dict]:
    """{"sha256", "md5"} of each file, streamed; remembered in the cache folder under (resolved path, size,
    mtime in ns), so an unchanged file is not read again and any write (which moves the mtime) rehashes it.
    A file modified in the last RECENT_S seconds is always hashed and never remembered (a second write within
    one tick of the file system's clock would keep the mtime). A cache that cannot be read or written is
    ignored: it only saves time."""
    store = cache_dir() / HASH_CACHE_NAME
    try:
        cached = json.loads(store.read_text())
        cached = cached if isinstance(cached, dict) else {}
    except (OSError, ValueError):
        cached = {}
    out, fresh, now = [], {}, time.time_ns()
    for p in paths:
        p = Path(p).resolve()
        st = p.stat()
        key = f"{p}\t{st.st_size}\t{st.st_mtime_ns}"
        recent = now - st.st_mtime_ns < RECENT_S * 1e9
        entry = None if recent else cached.get(key)
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("md5"), str)):
            entry = _stream_hashes(p)
            if not recent:
                fresh[key] = entry
        out.append(entry)
    if fresh:
        try:
            from toymodel.atomic import atomic_write_json
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(store, {**cached, **fresh})
        except (OSError, ValueError):
            pass
    return out


def file_identity(path: str | Path) -> dict:
    """{"path", "size", "sha256"} of one file (the resolved path, its byte count and content hash)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"cannot identify {p}: no such file")
    return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": sha256_cached([p])[0]["sha256"]}


def _listing(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix name, path) of every visible file under folder, sorted; hidden names are skipped."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append((rel.as_posix(), p))
    return sorted(out)


def folder_identity(path: str | Path) -> dict:
    """Manifest and whole-content hash of a folder (hidden files and folders skipped).

    manifest_sha256 covers every relative name and size; content_sha256 every file's name and sha256, so
    an edit of any file, even one that keeps its size, changes it. Hashes are cached (`sha256_cached`)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot identify {folder}: no such folder")
    files = _listing(folder)
    manifest, content, total = hashlib.sha256(), hashlib.sha256(), 0
    for (rel, p), h in zip(files, sha256_cached(p for _, p in files)):
        size = p.stat().st_size
        total += size
        manifest.update(f"{rel}\t{size}\n".encode())
        content.update(f"{rel}\t{h['sha256']}\n".encode())
    return {"path": str(folder.resolve()), "files": len(files), "size": total,
            "manifest_sha256": manifest.hexdigest(), "content_sha256": content.hexdigest()}


def hub_identity(repo_id: str, *, revision: str = "main", cache_dir: str | Path | None = None) -> dict:
    """The cached snapshot of a Hugging Face hub repo: its commit hash and each file's size and sha256.
    Reads the cache only (ValueError naming the fix when the repo is not cached)."""
    snapshot = cached_snapshot(repo_id, cache_dir, revision, "identities are computed from the cache only")
    files = {rel: {"size": p.stat().st_size, "sha256": sha256_file(p)} for rel, p in _listing(snapshot)}
    return {"repo_id": repo_id, "revision": revision, "commit": snapshot.name, "files": files}


def digits_identity(weights_dir: str | Path | None = None) -> dict:
    """The committed digits weights (the manifest's own sha256 and its recorded sha256 per weight file)
    and the digits data a run reads (`data_identity("digits")`): a digits run's whole input."""
    folder = Path(weights_dir or WEIGHTS_DIR)
    manifest = digits_manifest(folder)
    files = {name: entry["sha256"] for name, entry in sorted(manifest.get("files", {}).items())
             if name.endswith(".safetensors")}
    return {"manifest_sha256": sha256_file(folder / MANIFEST_NAME), "files": files, "data": data_identity("digits")}


def weights_identity(spec: str, dataset: str, *, model_dir: str | Path | None = None,
                     cache_dir: str | Path | None = None) -> dict:
    """Identity of a purifier or classifier spec as the loaders accept it: a local file or folder, a hub id,
    torchvision weights by name, a RobustBench name, or the digits weights. Never downloads."""
    from empirical.checkpoints import HUB_ID

    p = Path(str(spec))
    if dataset == "digits" and str(spec) in ("digits", "clean", "noisy"):
        return {"kind": "digits", **digits_identity()}
    if p.is_file():
        return {"kind": "file", **file_identity(p)}
    if p.is_dir():
        return {"kind": "folder", **folder_identity(p)}
    if ":" not in str(spec) and HUB_ID.match(str(spec)):
        return {"kind": "hub", **hub_identity(str(spec), cache_dir=cache_dir)}
    kind, name = classifier_source(spec, dataset)
    if kind == "torchvision":
        from empirical.models.resnet import resnet50_weights_file
        return {"kind": "torchvision", "weights": name, **file_identity(resnet50_weights_file(name))}
    if kind == "robustbench":
        from empirical.models.wideresnet import robustbench_dir
        path = robustbench_dir(model_dir) / "cifar10" / "Linf" / f"{name}.pt"
        return {"kind": "robustbench", "name": name, **file_identity(path)}
    raise FileNotFoundError(f"cannot identify {spec!r}: no such file or folder")


def digits_data_file() -> Path:
    """scikit-learn's bundled digits file, the one file `empirical.data.load_digits` reads."""
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).resolve().parent / "data" / "digits.csv.gz"


def data_identity(dataset: str, root: str | Path | None = None) -> dict:
    """Identity of a data set as `empirical.data.load_dataset` reads it, every byte hashed: digits
    (scikit-learn's bundled file and the arrays it decodes to), CIFAR-10 (the test_batch file, and whether
    it is the official one by torchvision's md5) or an ImageNet folder (`folder_identity`)."""
    from empirical import data

    if dataset == "digits":
        import sklearn
        from sklearn.datasets import load_digits as sk_load_digits

        d = sk_load_digits()
        h = hashlib.sha256(np.ascontiguousarray(d.images).tobytes() + np.ascontiguousarray(d.target).tobytes())
        return {"dataset": "digits", "source": "sklearn.datasets.load_digits", "sklearn": sklearn.__version__,
                "sha256": h.hexdigest(), "file_sha256": sha256_cached([digits_data_file()])[0]["sha256"]}
    if root is None:
        raise ValueError(f"dataset {dataset!r} needs its folder to be identified")
    if dataset == "cifar10":
        path = data.cifar10_test_batch(root)
        md5 = sha256_cached([path])[0]["md5"]
        return {"dataset": "cifar10", **file_identity(path), "official_md5": md5 == data.CIFAR10_TEST_MD5}
    if dataset == "imagenet":
        return {"dataset": "imagenet", **folder_identity(root)}
    raise ValueError(f"unknown dataset {dataset!r}; choose digits, cifar10 or imagenet")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def project_version() -> str:
    """The installed project's version (pyproject's, when installed in development mode)."""
    return _version("dissect-purification") or "unknown (not installed)"


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")} | {sys.prefix, sys.base_prefix}
    return tuple(sorted(str(Path(r).resolve()) + os.sep for r in roots if r))


def local_modules() -> list[str]:
    """Names of the loaded modules whose files lie outside the interpreter's library folders and outside
    this project: a user's own code (e.g. what a --model factory imported), sorted."""
    skip = _library_roots() + (str(PROJECT_ROOT / "empirical") + os.sep, str(PROJECT_ROOT / "toymodel") + os.sep,
                               str(PROJECT_ROOT / "figures") + os.sep)
    out = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if isinstance(origin, str) and origin.endswith(".py") and os.path.isabs(origin) and os.path.isfile(origin) \
                and not str(Path(origin).resolve()).startswith(skip):
            out.append(name)
    return sorted(out)


def _module_file(name_or_path: str) -> Path | None:
    if name_or_path.endswith(".py"):
        return Path(name_or_path)
    module = sys.modules.get(name_or_path)
    origin = getattr(module, "__file__", None)
    if origin is None:
        import importlib.util
        try:
            spec = importlib.util.find_spec(name_or_path)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    return Path(origin) if origin else None


def source_identity(extra_modules: Iterable[str] = ()) -> dict:
    """The code a run executes: project version, sha256 of every .py file of the project's packages
    (`files`, relative paths; `source_sha256` over all of them), the versions of python and of the libraries
    that compute numbers, and the sha256 of each of `extra_modules` (module names or .py paths, e.g. a user's
    --model factory and the local modules it imports: `local_modules()`). Cheap: a few hundred kB of text."""
    files = {}
    for package in SOURCE_PACKAGES:
        for p in sorted((PROJECT_ROOT / package).rglob("*.py")):
            files[p.relative_to(PROJECT_ROOT).as_posix()] = sha256_file(p)
    whole = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
    extra = {}
    for name in sorted(set(extra_modules)):
        path = _module_file(str(name))
        extra[str(name)] = sha256_file(path) if path is not None and path.is_file() else None
    versions = {"python": platform.python_version(), **{lib: _version(lib) for lib in VERSIONED}}
    return {"version": project_version(), "source_sha256": whole, "files": files, "versions": versions,
            "extra": extra}


def code_summary(code: dict) -> dict:
    """What every JSON output records of `source_identity`: all of it but the per-file hashes."""
    return {k: v for k, v in code.items() if k != "files"}


def code_differences(old: dict, new: dict) -> list[str]:
    """Short phrases naming how two `source_identity` dicts differ (empty when they are the same code)."""
    out = []
    if old.get("version") != new.get("version"):
        out.append(f"version {old.get('version')} -> {new.get('version')}")
    of, nf = old.get("files") or {}, new.get("files") or {}
    changed = sorted(k for k in set(of) | set(nf) if of.get(k) != nf.get(k))
    if changed:
        out.append(f"{len(changed)} source file(s) changed: " + ", ".join(changed[:4]) + (" ..." if len(changed) > 4 else ""))
    elif old.get("source_sha256") != new.get("source_sha256"):
        out.append("the project's source hash")
    ov, nv = old.get("versions") or {}, new.get("versions") or {}
    out += [f"{lib} {ov.get(lib)} -> {nv.get(lib)}" for lib in sorted(set(ov) | set(nv)) if ov.get(lib) != nv.get(lib)]
    oe, ne = old.get("extra") or {}, new.get("extra") or {}
    moved = sorted(k for k in set(oe) | set(ne) if oe.get(k) != ne.get(k))
    if moved:
        out.append("user module(s) changed: " + ", ".join(moved[:4]))
    return out
