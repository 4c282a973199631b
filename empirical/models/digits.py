"""Small models for the embedded digits default: the DDPM UNet configuration and a CNN classifier."""
from __future__ import annotations

import torch
from torch import nn

# 16x16 single-channel UNet: three resolutions (16, 8, 4), one ResNet block per level, attention only
# in the 4x4 middle block. Chosen for speed: 64 images through a t* = 100 purification (100 UNet
# calls) take about 4 s on one thread of the 2-core reference machine, against ~12 s for 32/64/64.
DIGITS_UNET_CONFIG: dict = {
    "sample_size": 16,
    "in_channels": 1,
    "out_channels": 1,
    "block_out_channels": [16, 32, 64],
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 8,
}

# The paper's DDPM schedule (Ho et al. 2020): 1000 steps, linear betas 1e-4 .. 0.02.
DIGITS_SCHEDULER_CONFIG: dict = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
}


def make_digits_unet(config: dict | None = None):
    """A fresh (randomly initialised by torch's default init) diffusers UNet2DModel for 16x16 digits."""
    from diffusers import UNet2DModel

    return UNet2DModel(**(config or DIGITS_UNET_CONFIG))


def make_digits_scheduler():
    """The 1000-step linear-beta DDPMScheduler used for training, sampling and purification."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**DIGITS_SCHEDULER_CONFIG)


class DigitsCNN(nn.Module):
    """Three-conv CNN for 1x16x16 digit images in [0, 1] -> 10 logits (input centred inside)."""

    def __init__(self, width: int = 32, classes: int = 10, resolution: int = 16) -> None:
        super().__init__()
        if resolution % 4 != 0:
            raise ValueError(f"resolution must be a multiple of 4, got {resolution}")
        self.resolution = resolution
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * (resolution // 4) ** 2, 128), nn.ReLU(),
            nn.Linear(128, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, self.resolution, self.resolution):
            raise ValueError(f"expected [B, 1, {self.resolution}, {self.resolution}] images, got {tuple(x.shape)}")
        return self.head(self.features(x - 0.5))
