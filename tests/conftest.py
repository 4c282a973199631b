"""Shared fixtures: tiny randomly initialised diffusion and classifier models (initialised from seeded
generators, never the global RNG) and the digits pipeline with a tiny UNet in place of the committed DDPM."""
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
