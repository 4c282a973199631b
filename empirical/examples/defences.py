"""Randomized defences on the embedded digits, written the way their authors would: from torch's global RNG.

Each factory takes no arguments and returns an ``nn.Module`` mapping [B, 1, 16, 16] images in [0, 1] to
logits, usable as ``python -m empirical.audit --model empirical.examples.defences:FACTORY``. None of them
takes a noise source: their randomness is ``torch.randn_like``, ``torch.randint`` or dropout, which is
what ``empirical.replay.GlobalRNGReplay`` makes replayable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from empirical.purifiers import ddpm_step, timestep_grid

NAIVE_DIFFPURE_T_STAR = 100       # the digits default of every table (paper Sec. 5.1: 100 on CIFAR-10)
NAIVE_DIFFPURE_S_STAR = 10        # UNet calls: a respaced 10-step grid (paper Sec. 5.3), so a CPU audit takes minutes
RESIZE_MIN = 14                   # random resize to s x s, s in [14, 16], then random zero padding to 16 x 16
DROPOUT_P = 0.5                   # test-time dropout on the CNN's features


class GlobalRNGDiffPure(nn.Module):
    """DiffPure (paper eqs. 1-2) on images in [0, 1], every Gaussian from ``torch.randn_like``.

    The same chain as ``empirical.purifiers.DiffusionPurifier("diffpure", unet, scheduler, t_star, s_star)``:
    forward noise to t*, then ancestral steps down the (respaced, s* < t*) grid of diffusers timesteps
    t* - 1 ... 0, no noise on the last step, the x0 clamp from the scheduler's config; only the origin
    of the noise differs.
    """

    def __init__(self, unet: nn.Module, scheduler, t_star: int = NAIVE_DIFFPURE_T_STAR, s_star: int | None = None):
        super().__init__()
        if not 1 <= t_star <= len(scheduler.alphas_cumprod):
            raise ValueError(f"t_star must be in [1, {len(scheduler.alphas_cumprod)}], got {t_star}")
        cfg = scheduler.config
        self.unet, self.t_star, self.grid = unet, int(t_star), timestep_grid(int(t_star), s_star)
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().to(torch.float64).cpu()
        self.clip = float(cfg.clip_sample_range) if getattr(cfg, "clip_sample", False) else None
        self.variance_type = getattr(cfg, "variance_type", "fixed_small")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = float(self.alphas_cumprod[self.t_star - 1])
        xs = 2.0 * x - 1.0
        xs = a ** 0.5 * xs + (1.0 - a) ** 0.5 * torch.randn_like(xs)
        for k, t in enumerate(self.grid):
            t_prev = self.grid[k + 1] if k + 1 < len(self.grid) else -1
            z = torch.randn_like(xs) if t > 0 else None
            eps = self.unet(xs, torch.full((xs.shape[0],), t, device=xs.device, dtype=torch.long)).sample
            xs = ddpm_step(eps, xs, t, t_prev, self.alphas_cumprod, z, clip=self.clip, variance_type=self.variance_type)
        return ((xs + 1.0) / 2.0).clamp(0.0, 1.0)


class RandomResizePad(nn.Module):
    """Random resizing and padding (Xie et al. 2018) at 16 x 16: each image is shrunk to a random s x s
    and zero-padded back at a random offset (the digits' background is 0).

    Xie et al. draw one size and offset per call; drawing them per image keeps the images of a batch
    independent, which the audit's per-sample standard errors assume (with per-batch keys too).
    """

    def __init__(self, min_size: int = RESIZE_MIN):
        super().__init__()
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1]
        out = []
        for row in x.split(1):
            s = int(torch.randint(self.min_size, h + 1, ()))
            top, left = (int(v) for v in torch.randint(0, h - s + 1, (2,)))
            small = F.interpolate(row, size=(s, s), mode="bilinear", align_corners=False)
            out.append(F.pad(small, (left, h - s - left, top, h - s - top)))
        return torch.cat(out)


class GaussianNoise(nn.Module):
    """x + sigma * N(0, I): the toy purifier of the paper's eq. 4, drawn from ``torch.randn_like``."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x)


class Purified(nn.Module):
    """classifier(purifier(x)); the stages are named so the audit can attack them with BPDA."""

    def __init__(self, purifier: nn.Module, classifier: nn.Module):
        super().__init__()
        self.purifier, self.classifier = purifier, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.purifier(x))


class DropoutCNN(nn.Module):
    """The digits CNN with dropout applied at test time to its features (``training=True`` always)."""

    def __init__(self, cnn: nn.Module, p: float = DROPOUT_P):
        super().__init__()
        self.cnn, self.p = cnn, float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn.features(x - 0.5)
        return self.cnn.head(F.dropout(h, self.p, training=True))


def _toy_sigma() -> float:
    from empirical.checkpoints import digits_manifest

    return float(digits_manifest()["classifiers"]["toy_sigma"])


def naive_diffpure() -> nn.Module:
    """The committed digits DDPM (EMA) as DiffPure at t* = 100 on a 10-step respaced grid before the clean
    digits CNN; attack it with BPDA through its stages ``purifier`` and ``classifier``."""
    from empirical.checkpoints import load_digits_classifier, load_digits_ddpm

    unet, scheduler = load_digits_ddpm(ema=True)
    purifier = GlobalRNGDiffPure(unet, scheduler, NAIVE_DIFFPURE_T_STAR, NAIVE_DIFFPURE_S_STAR)
    return Purified(purifier, load_digits_classifier("clean")).eval()


def random_resize_pad() -> nn.Module:
    """Random resize to s x s (s in [14, 16]) and random zero padding before the clean digits CNN."""
    from empirical.checkpoints import load_digits_classifier

    return Purified(RandomResizePad(), load_digits_classifier("clean")).eval()


def gaussian_noise() -> nn.Module:
    """x + N(0, sigma^2 I) (sigma from the manifest, 0.45) before the CNN trained with that noise."""
    from empirical.checkpoints import load_digits_classifier

    return Purified(GaussianNoise(_toy_sigma()), load_digits_classifier("noisy")).eval()


def dropout_at_test_time() -> nn.Module:
    """The clean digits CNN with dropout (p = 0.5) on its features at test time."""
    from empirical.checkpoints import load_digits_classifier

    return DropoutCNN(load_digits_classifier("clean")).eval()


def digits_cnn() -> nn.Module:
    """The clean digits CNN alone: a deterministic model (the audit's control)."""
    from empirical.checkpoints import load_digits_classifier

    return load_digits_classifier("clean")
