"""Identity of weights and data: content hashes a run configuration records, so that a resumed run
cannot silently mix two models or two data sets under the same file name.

Files are identified by size and sha256; folders by a manifest hash (every relative name and size) plus
the sha256 of a deterministic sample of file contents, which stays cheap for a 50,000-image ImageNet
folder while catching any added, removed, renamed or resized file; hub models by the resolved snapshot
commit and the sha256 of each file; the committed digits weights by their manifest's sha256 records.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from empirical.checkpoints import (WEIGHTS_DIR, MANIFEST_NAME, cached_snapshot, classifier_source, digits_manifest,
                                   sha256_file)

DEFAULT_SAMPLE_FILES = 64


def file_identity(path: str | Path) -> dict:
    """{"path", "size", "sha256"} of one file (the resolved path, its byte count and content hash)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"cannot identify {p}: no such file")
    return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": sha256_file(p)}


def _listing(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix name, path) of every visible file under folder, sorted; hidden names are skipped."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append((rel.as_posix(), p))
    return sorted(out)


def folder_identity(path: str | Path, sample_files: int | None = DEFAULT_SAMPLE_FILES) -> dict:
    """Manifest and sampled-content hash of a folder (hidden files and folders skipped).

    manifest_sha256 covers every relative name and size; sample_sha256 the contents of `sample_files`
    files at evenly spaced positions of the sorted listing (None: every file). Same folder, same dict."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot identify {folder}: no such folder")
    if sample_files is not None and (not isinstance(sample_files, int) or sample_files < 1):
        raise ValueError(f"sample_files must be a positive integer or None, got {sample_files!r}")
    files = _listing(folder)
    manifest, total = hashlib.sha256(), 0
    for rel, p in files:
        size = p.stat().st_size
        total += size
        manifest.update(f"{rel}\t{size}\n".encode())
    k = len(files) if sample_files is None else min(sample_files, len(files))
    picks = sorted({int(i) for i in np.round(np.linspace(0, len(files) - 1, k))}) if k else []
    sample = hashlib.sha256()
    for i in picks:
        rel, p = files[i]
        sample.update(f"{rel}\t{sha256_file(p)}\n".encode())
    return {"path": str(folder.resolve()), "files": len(files), "size": total,
            "manifest_sha256": manifest.hexdigest(), "sample_files": len(picks), "sample_sha256": sample.hexdigest()}


def hub_identity(repo_id: str, *, revision: str = "main", cache_dir: str | Path | None = None) -> dict:
    """The cached snapshot of a Hugging Face hub repo: its commit hash and each file's size and sha256.
    Reads the cache only (ValueError naming the fix when the repo is not cached)."""
    snapshot = cached_snapshot(repo_id, cache_dir, revision, "identities are computed from the cache only")
    files = {rel: {"size": p.stat().st_size, "sha256": sha256_file(p)} for rel, p in _listing(snapshot)}
    return {"repo_id": repo_id, "revision": revision, "commit": snapshot.name, "files": files}


def digits_identity(weights_dir: str | Path | None = None) -> dict:
    """The committed digits weights: the manifest's own sha256 and its recorded sha256 per weight file."""
    folder = Path(weights_dir or WEIGHTS_DIR)
    manifest = digits_manifest(folder)
    files = {name: entry["sha256"] for name, entry in sorted(manifest.get("files", {}).items())
             if name.endswith(".safetensors")}
    return {"manifest_sha256": sha256_file(folder / MANIFEST_NAME), "files": files}


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
        return {"kind": "folder", **folder_identity(p, sample_files=None)}
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


def data_identity(dataset: str, root: str | Path | None = None, *, sample_files: int | None = DEFAULT_SAMPLE_FILES) -> dict:
    """Identity of a data set as `empirical.data.load_dataset` reads it: digits (scikit-learn's bundled
    arrays, hashed), CIFAR-10 (the test_batch file, and whether it is the official one by torchvision's md5)
    or an ImageNet folder (`folder_identity`)."""
    from empirical import data

    if dataset == "digits":
        import sklearn
        from sklearn.datasets import load_digits as sk_load_digits

        d = sk_load_digits()
        h = hashlib.sha256(np.ascontiguousarray(d.images).tobytes() + np.ascontiguousarray(d.target).tobytes())
        return {"dataset": "digits", "source": "sklearn.datasets.load_digits", "sklearn": sklearn.__version__,
                "sha256": h.hexdigest()}
    if root is None:
        raise ValueError(f"dataset {dataset!r} needs its folder to be identified")
    if dataset == "cifar10":
        path = data.cifar10_test_batch(root)
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        return {"dataset": "cifar10", **file_identity(path), "official_md5": md5 == data.CIFAR10_TEST_MD5}
    if dataset == "imagenet":
        return {"dataset": "imagenet", **folder_identity(root, sample_files)}
    raise ValueError(f"unknown dataset {dataset!r}; choose digits, cifar10 or imagenet")
