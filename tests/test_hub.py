"""Hugging Face hub ids through huggingface_hub's cache: a hand-laid cache (refs/main -> commit, snapshots/<commit>/)
under a temporary HF_HOME loads offline; an uncached id, offline mode or a refused download is one ValueError."""
import pytest
import torch
from diffusers import DDPMScheduler

from conftest import REPO, tiny_rgb_unet, lay_out_cache
from empirical import checkpoints as ck

def test_cache_dir_follows_the_environment_at_call_time(hf_home, monkeypatch, tmp_path):
    assert ck.hub_cache_dir() == hf_home / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert ck.hub_cache_dir() == tmp_path / "elsewhere"
    assert ck.hub_offline()


def test_cached_hub_id_loads_offline(hf_home):
    unet, _ = lay_out_cache(hf_home)
    loaded, sched = ck.load_diffusers_ddpm(REPO)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x, 10).sample, unet(x, 10).sample)
    assert sched.config.clip_sample is True and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())


def test_uncached_id_is_one_clear_error(hf_home, monkeypatch):
    lay_out_cache(hf_home)
    monkeypatch.setattr(ck, "_download_ddpm", lambda *a, **k: pytest.fail("no download may be attempted"))
    for allow in (False, True):                           # offline wins over allow_download
        with pytest.raises(ValueError) as err:
            ck.load_diffusers_ddpm("google/ddpm-cat-256", allow_download=allow)
        msg = str(err.value)
        assert "google/ddpm-cat-256" in msg and str(hf_home / "hub") in msg and "--allow-download" in msg and "allow_download=True" in msg
        assert "HF_HUB_OFFLINE" in msg
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ValueError, match=r"not allowed \(allow_download=False\)"):
        ck.load_diffusers_ddpm("google/ddpm-cat-256")


def test_download_only_when_allowed_and_into_the_call_time_cache(hf_home, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_download(repo_id, cache, revision="main"):
        calls.append((repo_id, cache, revision))
        lay_out_cache(cache.parent, repo_id)

    monkeypatch.setattr(ck, "_download_ddpm", fake_download)
    with pytest.raises(ValueError, match="google/ddpm-cifar10-32"):
        ck.load_diffusers_ddpm(REPO)
    assert calls == []
    unet, _ = ck.load_diffusers_ddpm(REPO, allow_download=True)
    assert calls == [(REPO, hf_home / "hub", "main")]
    ck.load_diffusers_ddpm(REPO, allow_download=True)     # cached now: no second download
    assert len(calls) == 1 and unet.config.sample_size == 8


def test_incomplete_snapshot_and_explicit_cache_dir(hf_home, tmp_path):
    lay_out_cache(hf_home, weights=False)
    with pytest.raises(ValueError, match="incomplete.*allow_download=True"):
        ck.load_diffusers_ddpm(REPO)
    other = tmp_path / "other"
    lay_out_cache(other, repo="org/model")
    loaded, _ = ck.load_diffusers_ddpm("org/model", cache_dir=other / "hub")
    assert loaded.config.sample_size == 8
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ck.load_diffusers_ddpm(str(tmp_path / "a" / "b" / "c"))   # a missing path, not a hub id


def test_local_folder_still_wins_over_the_hub(hf_home, tmp_path, monkeypatch):
    unet = tiny_rgb_unet()
    folder = tmp_path / "google" / "ddpm-cifar10-32"
    unet.save_pretrained(folder)
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    loaded, _ = ck.load_diffusers_ddpm(REPO)              # relative folder of the same name, no cache needed
    assert torch.equal(loaded.conv_in.weight, unet.conv_in.weight)
