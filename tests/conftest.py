"""Tiny randomly initialised diffusion and classifier models for the empirical tests (seeded here only)."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel


def tiny_unet(seed: int = 0, channels: int = 1, size: int = 8) -> UNet2DModel:
    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    return unet.eval()


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
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    return model.eval()


@pytest.fixture
def cnn_classifier() -> torch.nn.Module:
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 64, 3))
    return model.eval()


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs torch on one thread (tiny models are fastest so, and a shared 2-core machine is
    not oversubscribed); tests that need another count set it themselves. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
