"""Identities of weights and data: content hashes that change when the content changes and only then."""
import hashlib
import json
import os
import pickle

import numpy as np
import pytest

from empirical import checkpoints as ck
from empirical import identity as ident
from conftest import lay_out_cache


def _write_tree(root, n=10):
    for i in range(n):
        d = root / f"n{i % 3:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"img{i}.JPEG").write_bytes(bytes([i]) * (100 + i))
    return sorted(root.rglob("*.JPEG"))


def test_file_identity_is_size_and_sha256(tmp_path):
    p = tmp_path / "w.pt"
    p.write_bytes(b"weights" * 1000)
    info = ident.file_identity(p)
    assert info == {"path": str(p.resolve()), "size": 7000, "sha256": hashlib.sha256(b"weights" * 1000).hexdigest()}
    with pytest.raises(FileNotFoundError, match="no such file"):
        ident.file_identity(tmp_path / "none.pt")


def test_folder_identity_covers_every_file(tmp_path):
    files = _write_tree(tmp_path / "val", n=80)
    base = ident.folder_identity(tmp_path / "val")
    assert base["files"] == 80 and base["size"] == sum(100 + i for i in range(80))
    assert ident.folder_identity(tmp_path / "val") == base                            # deterministic
    (tmp_path / "val" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "val" / ".ipynb_checkpoints" / "x.JPEG").write_bytes(b"x")
    (tmp_path / "val" / "n00" / ".DS_Store").write_bytes(b"x")
    assert ident.folder_identity(tmp_path / "val") == base                            # hidden entries ignored
    # a same-size edit of any one file (the old 64-file sample skipped most of 80) changes the content hash
    for victim in (files[0], files[37], files[-1]):
        old = victim.read_bytes()
        victim.write_bytes(bytes([255]) * len(old))
        changed = ident.folder_identity(tmp_path / "val")
        assert changed["manifest_sha256"] == base["manifest_sha256"]
        assert changed["content_sha256"] != base["content_sha256"], victim.name
        victim.write_bytes(old)
    files[3].rename(files[3].with_name("renamed.JPEG"))                              # a rename changes the manifest
    assert ident.folder_identity(tmp_path / "val")["manifest_sha256"] != base["manifest_sha256"]


def test_file_hashes_are_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    p = tmp_path / "big.bin"
    p.write_bytes(b"a" * 5000)
    old_ns = p.stat().st_mtime_ns - 10 * 10**9
    os.utime(p, ns=(old_ns, old_ns))                                  # recent files are never remembered
    first = ident.sha256_cached([p])[0]
    assert first["sha256"] == hashlib.sha256(b"a" * 5000).hexdigest()
    assert first["md5"] == hashlib.md5(b"a" * 5000).hexdigest()
    assert (ident.cache_dir() / ident.HASH_CACHE_NAME).exists()
    calls = []
    real = ident._stream_hashes
    monkeypatch.setattr(ident, "_stream_hashes", lambda path: calls.append(path) or real(path))
    assert ident.sha256_cached([p]) == [first] and calls == []                       # unchanged: not reread
    p.write_bytes(b"b" * 5000)                                                      # same size, new mtime
    os.utime(p, ns=(old_ns + 1000, old_ns + 1000))
    assert ident.sha256_cached([p])[0]["sha256"] == hashlib.sha256(b"b" * 5000).hexdigest() and len(calls) == 1
    p.write_bytes(b"c" * 5000)                                # written just now: hashed, whatever the cache holds
    assert ident.sha256_cached([p])[0]["sha256"] == hashlib.sha256(b"c" * 5000).hexdigest()


def test_source_identity_names_what_changed(tmp_path):
    code = ident.source_identity()
    assert "empirical/harness/store.py" in code["files"] and "toymodel/atomic.py" in code["files"]
    assert code["versions"]["torch"] and code["versions"]["python"] and code["version"]
    assert ident.code_differences(code, ident.source_identity()) == []
    edited = {**code, "files": {**code["files"], "empirical/attacks.py": "0" * 64},
              "versions": {**code["versions"], "torch": "9.9"}}
    diffs = ident.code_differences(code, edited)
    assert any("empirical/attacks.py" in d for d in diffs) and "torch " + code["versions"]["torch"] + " -> 9.9" in diffs
    user = tmp_path / "mydefence.py"
    user.write_text("X = 1\n")
    a = ident.source_identity(extra_modules=[str(user)])
    user.write_text("X = 2\n")
    b = ident.source_identity(extra_modules=[str(user)])
    assert a["extra"][str(user)] != b["extra"][str(user)]
    assert any("user module" in d for d in ident.code_differences(a, b))
    assert "files" not in ident.code_summary(a) and ident.code_summary(a)["source_sha256"] == a["source_sha256"]


def test_local_modules_are_the_users_own(tmp_path, monkeypatch):
    (tmp_path / "helper_mod_xyz.py").write_text("Y = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    importlib.import_module("helper_mod_xyz")
    names = ident.local_modules()
    assert "helper_mod_xyz" in names and not any(n.startswith(("empirical", "torch", "numpy")) for n in names)


def test_hub_identity_reads_the_commit_and_hashes(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    _, snap = lay_out_cache(tmp_path / "hf", commit="c" * 40)
    info = ident.hub_identity("google/ddpm-cifar10-32")
    assert info["commit"] == "c" * 40 and info["repo_id"] == "google/ddpm-cifar10-32"
    weights = snap / "diffusion_pytorch_model.safetensors"
    assert info["files"]["diffusion_pytorch_model.safetensors"] == {"size": weights.stat().st_size,
                                                                    "sha256": ck.sha256_file(weights)}
    assert {"config.json", "scheduler_config.json", "model_index.json"} <= set(info["files"])
    with pytest.raises(ValueError, match="org/absent.*cache"):
        ident.hub_identity("org/absent")


def test_digits_identity_is_the_manifest_record():
    info = ident.digits_identity()
    manifest = ck.digits_manifest()
    assert info["manifest_sha256"] == ck.sha256_file(ck.WEIGHTS_DIR / ck.MANIFEST_NAME)
    assert info["files"]["digits_unet_ema.safetensors"] == manifest["files"]["digits_unet_ema.safetensors"]["sha256"]
    assert ck.sha256_file(ck.WEIGHTS_DIR / "digits_cnn_clean.safetensors") == info["files"]["digits_cnn_clean.safetensors"]
    assert info["data"] == ident.data_identity("digits")                              # a digits run's data too
    assert info["data"]["file_sha256"] == ck.sha256_file(ident.digits_data_file())


def test_data_identity(tmp_path):
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
    (tmp_path / "c").mkdir()
    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    cifar = ident.data_identity("cifar10", tmp_path / "c")
    assert cifar["sha256"] == ck.sha256_file(tmp_path / "c" / "test_batch") and cifar["official_md5"] is False
    _write_tree(tmp_path / "val")
    assert ident.data_identity("imagenet", tmp_path / "val")["manifest_sha256"] == \
        ident.folder_identity(tmp_path / "val")["manifest_sha256"]
    digits = ident.data_identity("digits")
    assert digits == ident.data_identity("digits") and len(digits["sha256"]) == 64
    with pytest.raises(ValueError, match="needs its folder"):
        ident.data_identity("cifar10")


def test_weights_identity_dispatch(tmp_path, monkeypatch):
    p = tmp_path / "wrn.pt"
    p.write_bytes(b"w")
    assert ident.weights_identity(str(p), "cifar10")["kind"] == "file"
    (tmp_path / "ddpm").mkdir()
    (tmp_path / "ddpm" / "config.json").write_text(json.dumps({"a": 1}))
    folder = ident.weights_identity(str(tmp_path / "ddpm"), "cifar10")
    assert folder["kind"] == "folder" and folder["files"] == 1 and len(folder["content_sha256"]) == 64
    assert ident.weights_identity("clean", "digits")["kind"] == "digits"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    lay_out_cache(tmp_path / "hf")
    assert ident.weights_identity("google/ddpm-cifar10-32", "cifar10")["commit"]
    rb = tmp_path / "rb" / "cifar10" / "Linf"
    rb.mkdir(parents=True)
    (rb / "Standard.pt").write_bytes(b"s")
    info = ident.weights_identity("Standard", "cifar10", model_dir=tmp_path / "rb")
    assert info["kind"] == "robustbench" and info["sha256"] == hashlib.sha256(b"s").hexdigest()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ValueError, match="not in torch's hub cache"):
        ident.weights_identity("torchvision:IMAGENET1K_V2", "imagenet")
