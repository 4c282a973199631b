"""Adapter for OpenAI's guided-diffusion UNet (e.g. 256x256_diffusion_uncond.pt, used by DiffPure on
ImageNet) with diffusers' call convention: unet(x, t).sample is the predicted epsilon.

The checkpoint learns the variance too (learn_sigma=True): its 6 output channels are
[eps (3), variance values v (3)]. The adapter returns v as ``.variance_values`` and reports
``learn_sigma``, so a purifier built on it selects variance_type="learned_range" by default
(empirical.diffusion_steps.ddpm_step); "fixed_small" uses eps only.
The `guided_diffusion` package (pip install guided-diffusion-sdk --no-deps) is an optional extra.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

# The configuration of 256x256_diffusion_uncond.pt (guided-diffusion README, unconditional ImageNet).
IMAGENET256_UNCOND_CONFIG: dict = {
    "image_size": 256, "num_channels": 256, "num_res_blocks": 2, "channel_mult": "",
    "learn_sigma": True, "class_cond": False, "attention_resolutions": "32,16,8",
    "num_heads": 4, "num_head_channels": 64, "num_heads_upsample": -1,
    "use_scale_shift_norm": True, "dropout": 0.0, "resblock_updown": True,
    "use_fp16": False, "use_new_attention_order": False, "use_checkpoint": False,
}


@dataclass
class EpsOutput:
    """Mirror of diffusers' UNet2DOutput: `sample` holds the predicted noise; `variance_values` the model's
    variance output v, nominally in [-1, 1] (min to max log variance), when it learns sigma, else None."""

    sample: torch.Tensor
    variance_values: torch.Tensor | None = None


def import_guided_diffusion():
    """Import guided_diffusion.script_util, or explain how to install the optional package."""
    try:
        from guided_diffusion import script_util
    except ImportError as exc:
        raise ImportError(
            "the ImageNet purifier needs OpenAI's guided_diffusion code: "
            "`pip install guided-diffusion-sdk --no-deps` (its blobfile/mpi deps are not needed for the UNet)"
        ) from exc
    return script_util


class GuidedUNetAdapter(nn.Module):
    """Wrap a guided-diffusion UNetModel: forward(x in [-1, 1], t) -> EpsOutput(first C output channels as
    eps, the last C as variance values when ``learn_sigma``). ``config`` mirrors the fields of a diffusers
    UNet's config that the purifiers and samplers read (in_channels, sample_size)."""

    def __init__(self, model: nn.Module, in_channels: int = 3, learn_sigma: bool = True) -> None:
        super().__init__()
        self.model = model
        self.in_channels = in_channels
        self.learn_sigma = learn_sigma
        self.config = SimpleNamespace(in_channels=in_channels, sample_size=getattr(model, "image_size", None))

    def forward(self, x: torch.Tensor, t) -> EpsOutput:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected [B, {self.in_channels}, H, W] input, got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be a scalar or have shape [{x.shape[0]}], got {tuple(t.shape)}")
        out = self.model(x, t.long())
        expected = 2 * self.in_channels if self.learn_sigma else self.in_channels
        if out.shape[1] != expected:
            raise ValueError(f"guided UNet returned {out.shape[1]} channels, expected {expected}")
        c = self.in_channels
        return EpsOutput(sample=out[:, :c], variance_values=out[:, c:] if self.learn_sigma else None)


def build_guided_unet(config: dict | None = None) -> GuidedUNetAdapter:
    """Build (randomly initialised) a guided-diffusion UNet from a create_model config, wrapped."""
    script_util = import_guided_diffusion()
    cfg = dict(IMAGENET256_UNCOND_CONFIG if config is None else config)
    model = script_util.create_model(**cfg)
    return GuidedUNetAdapter(model, in_channels=3, learn_sigma=bool(cfg.get("learn_sigma", False)))
