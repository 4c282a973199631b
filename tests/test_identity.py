"""Identities of weights and data: content hashes that change when the content changes and only then."""
import hashlib
import json
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


def test_folder_identity_manifest_and_sampled_contents(tmp_path):
    files = _write_tree(tmp_path / "val")
    base = ident.folder_identity(tmp_path / "val", sample_files=2)
    assert base["files"] == 10 and base["size"] == sum(100 + i for i in range(10)) and base["sample_files"] == 2
    assert ident.folder_identity(tmp_path / "val", sample_files=2) == base            # deterministic
    (tmp_path / "val" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "val" / ".ipynb_checkpoints" / "x.JPEG").write_bytes(b"x")
    (tmp_path / "val" / "n00" / ".DS_Store").write_bytes(b"x")
    assert ident.folder_identity(tmp_path / "val", sample_files=2) == base            # hidden entries ignored
    # same name and size, other bytes: the sampled first file changes the sample hash, not the manifest
    files[0].write_bytes(bytes([255]) * files[0].stat().st_size)
    changed = ident.folder_identity(tmp_path / "val", sample_files=2)
    assert changed["manifest_sha256"] == base["manifest_sha256"] and changed["sample_sha256"] != base["sample_sha256"]
    files[3].rename(files[3].with_name("renamed.JPEG"))                              # a rename changes the manifest
    assert ident.folder_identity(tmp_path / "val", sample_files=2)["manifest_sha256"] != base["manifest_sha256"]
    full = ident.folder_identity(tmp_path / "val", sample_files=None)
    assert full["sample_files"] == 10
    with pytest.raises(ValueError, match="sample_files"):
        ident.folder_identity(tmp_path / "val", sample_files=0)


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
    assert folder["kind"] == "folder" and folder["sample_files"] == 1
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
