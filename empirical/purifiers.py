"""Diffusion purifiers with explicit noise: DiffPure, RevPure, DDIM RevPure, the Gaussian toy, identity.

Paper Sec. 3 (eqs. 1-3), 5.1-5.3. Images enter and leave in [0, 1] (scaled to [-1, 1] inside).
Step indices: the paper's state x_n (n = t* ... 0) is fed to the UNet at diffusers timestep n - 1,
so t* = 100 means 100 UNet calls at timesteps 99 ... 0, and t* = 0 is the identity.
Noise draws: ``noise.draw("forward", t*, ...)`` for eq. 1 and ``noise.draw("reverse", n, ...)``
for the z of the step x_n -> x_{n'} (none on the last step, as in diffusers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .diffusion_steps import (RESPACINGS, VARIANCE_TYPES, EpsOut, _abar, check_option, ddim_step, ddpm_step,
                              eval_mode, generate, reverse_chain, split_output, timestep_grid)
from .noise import NoiseSource

_eval_mode = eval_mode
__all__ = ["NAMES", "RESPACINGS", "VARIANCE_TYPES", "DiffusionPurifier", "GaussianPurifier", "IdentityPurifier",
           "Purifier", "PurifyTrajectory", "check_images", "ddim_step", "ddpm_step", "generate", "make_purifier",
           "reverse_chain", "timestep_grid"]

NAMES = ("diffpure", "revpure", "ddim", "gaussian", "none")


@dataclass
class PurifyTrajectory:
    """States x_n in the model's [-1, 1] scale (``states[i]`` is x_{steps[i]}), and the [0, 1] output."""

    states: list[torch.Tensor]
    steps: list[int]
    output: torch.Tensor
    scale: str = "[-1, 1]"


def check_images(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError unless x is a finite [B, C, H, W] float tensor in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got ndim {x.ndim} ({tuple(x.shape)})")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if bool((x < 0).any()) or bool((x > 1).any()):
        raise ValueError(f"{name} has values outside [0, 1] (min {float(x.min()):.4g}, max {float(x.max()):.4g})")


class DiffusionPurifier:
    """DiffPure (forward noise to t*, then DDPM reverse), RevPure (DDPM reverse from the input as x_t*)
    or DDIM RevPure (deterministic reverse from the input as x_t*), optionally on an s*-step grid.

    RevPure's interpretation: no forward noise is added; the scaled input 2x - 1 itself is taken as
    the state x_t* and the reverse chain runs from diffusers timestep t* - 1 down to 0.

    ``clip``: x0-prediction clamp, None | float | "auto" (scheduler.config.clip_sample and its range);
    guided-diffusion's clip_denoised=True is clip=1.0. ``variance_type``: "auto" (learned_range when the
    UNet reports ``learn_sigma``, else scheduler.config.variance_type), "fixed_small", "fixed_large" or
    "learned_range". ``respacing``: "respaced" or the legacy "one_step" coefficients on an s*-grid (see
    empirical.diffusion_steps). ``unet_batch`` = k runs every UNet call on zero-padded chunks of exactly
    k rows. CPU kernels (BLAS, oneDNN 1x1 convs) pick their reduction order by batch size, so without it
    a sample's output can differ in the last bits between batch sizes even under per-sample replay noise.
    """

    def __init__(self, method: str, unet: torch.nn.Module, scheduler, t_star: int = 100,
                 s_star: int | None = None, *, mixed_precision: bool = False, clip: float | None | str = "auto",
                 variance_type: str = "auto", respacing: str = "respaced", unet_batch: int | None = None):
        if method not in ("diffpure", "revpure", "ddim"):
            raise ValueError(f"unknown diffusion purifier {method!r}; expected diffpure, revpure or ddim")
        if unet is None or scheduler is None:
            raise ValueError(f"purifier {method!r} needs a unet and a scheduler")
        cfg = scheduler.config
        if getattr(cfg, "prediction_type", "epsilon") != "epsilon":
            raise ValueError(f"only epsilon-prediction models are supported, got {cfg.prediction_type!r}")
        if getattr(cfg, "thresholding", False):
            raise ValueError("dynamic thresholding is not supported; use clip_sample")
        n_train = len(scheduler.alphas_cumprod)
        if not 0 <= t_star <= n_train:
            raise ValueError(f"t_star must be in [0, {n_train}], got {t_star}")
        self.method, self.unet, self.t_star = method, unet, int(t_star)
        self.s_star = s_star
        self.grid = timestep_grid(self.t_star, s_star)
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().to(torch.float64).cpu()
        self.clip = _resolve_clip(clip, cfg)
        self.variance_type = _resolve_variance(variance_type, unet, cfg, method)
        self.respacing = check_option(respacing, RESPACINGS, "respacing")
        self.mixed_precision = bool(mixed_precision)
        if unet_batch is not None and int(unet_batch) < 1:
            raise ValueError(f"unet_batch must be >= 1 or None, got {unet_batch}")
        self.unet_batch = None if unet_batch is None else int(unet_batch)
        self.stochastic = method != "ddim" and self.t_star > 0
        self.name = method

    def describe(self) -> dict:
        """The settings that decide the purifier's output, for every record that uses it."""
        return {"method": self.method, "t_star": self.t_star, "s_star": self.s_star, "clip": self.clip,
                "variance_type": None if self.method == "ddim" else self.variance_type,
                "respacing": self.respacing, "unet_batch": self.unet_batch, "mixed_precision": self.mixed_precision}

    @property
    def _learned(self) -> bool:
        return self.method != "ddim" and self.variance_type == "learned_range"

    def _eps_once(self, x: torch.Tensor, t: int) -> EpsOut:
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        if self.mixed_precision:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                out = split_output(self.unet(x, tt), x, self._learned)
            return tuple(o.to(x.dtype) for o in out) if isinstance(out, tuple) else out.to(x.dtype)
        return split_output(self.unet(x, tt), x, self._learned)

    def _eps(self, x: torch.Tensor, t: int) -> EpsOut:
        """UNet epsilon (and v for learned_range); with ``unet_batch`` = k, in zero-padded chunks of k rows."""
        k = self.unet_batch
        if not k:
            return self._eps_once(x, t)
        outs = []
        for i in range(0, x.shape[0], k):
            chunk = x[i:i + k]
            n = chunk.shape[0]
            if n < k:
                chunk = torch.cat([chunk, chunk.new_zeros((k - n, *chunk.shape[1:]))])
            out = self._eps_once(chunk, t)
            outs.append(tuple(o[:n] for o in out) if isinstance(out, tuple) else out[:n])
        if isinstance(outs[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*outs))
        return torch.cat(outs)

    def _start(self, x: torch.Tensor, noise: NoiseSource | None) -> torch.Tensor:
        if self.mixed_precision and x.device.type != "cuda":
            raise ValueError("mixed precision is a CUDA-only option; refusing to run it on the CPU")
        if self.stochastic and noise is None:
            raise ValueError(f"purifier {self.method!r} is stochastic and needs a noise source")
        xs = 2.0 * x - 1.0
        if self.method == "diffpure":
            a = _abar(self.alphas_cumprod, self.t_star - 1)
            z = noise.draw("forward", self.t_star, xs.shape, xs.device, xs.dtype)
            xs = a ** 0.5 * xs + (1.0 - a) ** 0.5 * z
        return xs

    def _run(self, x: torch.Tensor, noise: NoiseSource | None, *, grad: bool, use_checkpoint: bool,
             keep_every: int = 0) -> tuple[torch.Tensor, list[torch.Tensor], list[int]]:
        check_images(x)
        expected = getattr(getattr(self.unet, "config", None), "in_channels", None)
        if expected is not None and x.shape[1] != expected:
            raise ValueError(f"x has {x.shape[1]} channels but the UNet takes {expected}")
        if self.t_star == 0:
            return x.clone(), [2.0 * x.detach() - 1.0] if keep_every else [], [0] if keep_every else []

        def draw_z(t: int, s: torch.Tensor) -> torch.Tensor:
            return noise.draw("reverse", t + 1, s.shape, s.device, s.dtype)

        with eval_mode(self.unet), torch.set_grad_enabled(grad):
            xs = self._start(x, noise)
            ddim = self.method == "ddim"
            xs, states, steps = reverse_chain(
                self._eps, xs, self.grid, self.alphas_cumprod, draw_z, method="ddim" if ddim else "ddpm",
                clip=self.clip, variance_type="fixed_small" if ddim else self.variance_type,
                respacing=self.respacing, keep_every=keep_every, checkpoint=grad and use_checkpoint)
            out = ((xs + 1.0) / 2.0).clamp(0.0, 1.0)
        return out, states, steps

    def __call__(self, x: torch.Tensor, noise: NoiseSource | None = None) -> torch.Tensor:
        """Purify without autograd (eval mode, torch.no_grad)."""
        return self._run(x, noise, grad=False, use_checkpoint=False)[0]

    def differentiable(self, x: torch.Tensor, noise: NoiseSource | None = None, *, checkpoint: bool = True) -> torch.Tensor:
        """Purify with autograd through every UNet call; checkpointing keeps memory flat in the step count."""
        return self._run(x, noise, grad=True, use_checkpoint=checkpoint)[0]

    def trajectory(self, x: torch.Tensor, noise: NoiseSource | None = None, *, keep_every: int = 1) -> PurifyTrajectory:
        """Purify and keep every ``keep_every``-th state x_n (plus x_0) in the [-1, 1] scale."""
        if keep_every < 1:
            raise ValueError(f"keep_every must be >= 1, got {keep_every}")
        out, states, steps = self._run(x, noise, grad=False, use_checkpoint=False, keep_every=keep_every)
        return PurifyTrajectory(states=states, steps=steps, output=out)


def _resolve_clip(clip: bool | float | None | str, cfg) -> float | None:
    if isinstance(clip, str):
        if clip != "auto":
            raise ValueError(f"clip must be None, a positive number or 'auto', got {clip!r}")
        return float(cfg.clip_sample_range) if getattr(cfg, "clip_sample", False) else None
    if clip is None or clip is False:
        return None
    value = 1.0 if clip is True else float(clip)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"clip must be None, a positive number or 'auto', got {clip!r}")
    return value


def _predicts_variance(unet: torch.nn.Module) -> bool | None:
    """Whether the UNet outputs a variance (guided adapter's learn_sigma, or 2C diffusers outputs); None if unknown."""
    if hasattr(unet, "learn_sigma"):
        return bool(unet.learn_sigma)
    cfg = getattr(unet, "config", None)
    if getattr(cfg, "out_channels", None) is not None and getattr(cfg, "in_channels", None) is not None:
        return cfg.out_channels == 2 * cfg.in_channels
    return None


def _resolve_variance(variance_type: str, unet: torch.nn.Module, cfg, method: str) -> str:
    if variance_type == "auto":
        variance_type = ("learned_range" if getattr(unet, "learn_sigma", False)
                         else getattr(cfg, "variance_type", "fixed_small"))
        if method == "ddim":
            return variance_type            # DDIM draws no noise: the scheduler's setting is recorded, not used
    check_option(variance_type, VARIANCE_TYPES, "variance_type")
    if method != "ddim" and variance_type == "learned_range" and _predicts_variance(unet) is False:
        raise ValueError("variance_type 'learned_range' needs a UNet that predicts its variance (a guided-diffusion "
                         "model with learn_sigma=True, or out_channels = 2 x in_channels); use 'fixed_small'")
    return variance_type


class GaussianPurifier:
    """Toy purifier P(x) = x + sigma * z, z ~ N(0, I) (paper eq. 4); ``clip=True`` clamps to [0, 1].

    Its noise is drawn as ``noise.draw("forward", 0, ...)``.
    """

    name = "gaussian"

    def __init__(self, sigma: float, clip: bool = False):
        if sigma is None or not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"gaussian purifier needs a finite sigma >= 0, got {sigma}")
        self.sigma, self.clip = float(sigma), bool(clip)
        self.stochastic = self.sigma > 0

    def describe(self) -> dict:
        """The settings that decide the purifier's output."""
        return {"method": self.name, "sigma": self.sigma, "clip": self.clip}

    def differentiable(self, x: torch.Tensor, noise: NoiseSource | None = None, *, checkpoint: bool = True) -> torch.Tensor:
        check_images(x)
        if not self.stochastic:
            return x.clone()
        if noise is None:
            raise ValueError("the gaussian purifier is stochastic and needs a noise source")
        out = x + self.sigma * noise.draw("forward", 0, x.shape, x.device, x.dtype)
        return out.clamp(0.0, 1.0) if self.clip else out

    def __call__(self, x: torch.Tensor, noise: NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.differentiable(x, noise)

    def trajectory(self, x: torch.Tensor, noise: NoiseSource | None = None, **_: int) -> PurifyTrajectory:
        out = self(x, noise)
        return PurifyTrajectory(states=[x.detach().clone(), out], steps=[1, 0], output=out, scale="[0, 1]")


class IdentityPurifier:
    """No purification ("none"): the input itself; deterministic."""

    name, stochastic = "none", False

    def describe(self) -> dict:
        """The settings that decide the purifier's output (none)."""
        return {"method": self.name}

    def differentiable(self, x: torch.Tensor, noise: NoiseSource | None = None, *, checkpoint: bool = True) -> torch.Tensor:
        check_images(x)
        return x.clone()

    def __call__(self, x: torch.Tensor, noise: NoiseSource | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.differentiable(x, noise)

    def trajectory(self, x: torch.Tensor, noise: NoiseSource | None = None, **_: int) -> PurifyTrajectory:
        out = self(x, noise)
        return PurifyTrajectory(states=[out], steps=[0], output=out, scale="[0, 1]")


Purifier = DiffusionPurifier | GaussianPurifier | IdentityPurifier


def make_purifier(name: str, unet: torch.nn.Module | None = None, scheduler=None, t_star: int = 100,
                  s_star: int | None = None, sigma: float | None = None, *, mixed_precision: bool = False,
                  clip: bool | float | None | str = "auto", variance_type: str = "auto", respacing: str = "respaced",
                  unet_batch: int | None = None) -> Purifier:
    """Build a purifier by name: diffpure | revpure | ddim (need unet + DDPM scheduler) | gaussian (sigma) | none.

    ``clip``: for diffusion purifiers the x0-prediction clamp ("auto" follows scheduler.config.clip_sample);
    for "gaussian" whether to clamp the output to [0, 1] (default False). ``variance_type``, ``respacing``
    and ``unet_batch``: see DiffusionPurifier (the gaussian and identity purifiers have no such settings).
    """
    if name in ("diffpure", "revpure", "ddim"):
        return DiffusionPurifier(name, unet, scheduler, t_star, s_star, mixed_precision=mixed_precision, clip=clip,
                                 variance_type=variance_type, respacing=respacing, unet_batch=unet_batch)
    if name == "gaussian":
        return GaussianPurifier(sigma, clip=clip is True)
    if name == "none":
        return IdentityPurifier()
    raise ValueError(f"unknown purifier {name!r}; expected one of {NAMES}")
