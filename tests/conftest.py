"""Shared fixtures: a hand-laid Hugging Face hub cache; tiny randomly initialised diffusion and classifier models (initialised from seeded
generators, never the global RNG) and the digits pipeline with a tiny UNet in place of the committed DDPM."""
import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from empirical.seeding import seeded_init as _seeded_init


def seeded_init(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    return _seeded_init(module, torch.Generator().manual_seed(seed))


def tiny_unet(seed: int = 0, channels: int = 1, size: int = 8) -> UNet2DModel:
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    return seeded_init(unet, seed).eval()


@pytest.fixture
def unet() -> UNet2DModel:
    return tiny_unet()


@pytest.fixture
def scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")


@pytest.fixture
def ddim_scheduler() -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", set_alpha_to_one=True)


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 1, 8, 8, generator=g)


@pytest.fixture
def linear_classifier() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    return seeded_init(model, 2).eval()


@pytest.fixture
def cnn_classifier() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 64, 3))
    return seeded_init(model, 3).eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs torch on one thread (tiny models are fastest so, and a shared 2-core machine is
    not oversubscribed); tests that need another count set it themselves. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache folder (file hashes, default results stores), never the user's, and
    default results stores stay off unless a test turns them on: two runs of one command in a test must
    both compute, not the second read the first's store. Entry points run in the test's process (one
    worker) unless a test asks for worker processes."""
    monkeypatch.setenv("DISSECT_PURIFICATION_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("DISSECT_PURIFICATION_NO_STORE", "1")
    monkeypatch.setenv("DISSECT_PURIFICATION_WORKERS", "1")     # in-process runs unless a test asks for workers


@pytest.fixture
def tiny_digits(monkeypatch):
    """The digits pipeline with a tiny random 16x16 UNet in place of the committed DDPM (fast, weight-free)."""
    from empirical import checkpoints

    def ddpm(ema=True, weights_dir=None):
        return tiny_unet(seed=0 if ema else 1, size=16), DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")

    monkeypatch.setattr(checkpoints, "load_digits_ddpm", ddpm)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# Small options for the replay tables on tiny_digits.
TINY = ["--n-samples", "4", "--n-clean", "6", "--steps", "1", "--eot-samples", "2", "--t-star", "3",
        "--batch-size", "4", "--quiet"]


# ---- a Hugging Face hub cache laid out by hand (tests run offline)

REPO = "google/ddpm-cifar10-32"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_rgb_unet() -> UNet2DModel:
    return seeded_init(UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                                   down_block_types=("DownBlock2D", "DownBlock2D"),
                                   up_block_types=("UpBlock2D", "UpBlock2D"), layers_per_block=1,
                                   norm_num_groups=4), 5).eval()


def lay_out_cache(hf_home, repo=REPO, commit=COMMIT, weights=True):
    """Write the hub cache layout by hand: models--org--name/refs/main and snapshots/<commit>/ files."""
    repo_dir = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snap = repo_dir / "snapshots" / commit
    unet = tiny_rgb_unet()
    unet.save_pretrained(snap)
    if not weights:
        (snap / "diffusion_pytorch_model.safetensors").unlink()
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True).save_pretrained(snap)
    index = {"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
    (snap / "model_index.json").write_text(json.dumps(index))
    return unet, snap


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return home
