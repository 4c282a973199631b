"""Diffusion purifiers with explicit noise: DiffPure, RevPure, DDIM RevPure, the Gaussian toy, identity.

Paper Sec. 3 (eqs. 1-3), 5.1-5.3. Images enter and leave in [0, 1] (scaled to [-1, 1] inside).
Step indices: the paper's state x_n (n = t* ... 0) is fed to the UNet at diffusers timestep n - 1,
so t* = 100 means 100 UNet calls at timesteps 99 ... 0, and t* = 0 is the identity.
Noise draws: ``noise.draw("forward", t*, ...)`` for eq. 1 and ``noise.draw("reverse", n, ...)``
for the z of the step x_n -> x_{n'} (none on the last step, as in diffusers).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

from .noise import NoiseSource

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


def timestep_grid(t_star: int, s_star: int | None = None) -> list[int]:
    """Descending diffusers timesteps of the reverse chain: all of t*-1..0, or s* linearly spaced ones (Sec. 5.3).

    The grid always starts at t*-1 (the noise level of x_t*) and ends at 0; s* == t* is the full chain.
    """
    if t_star < 0:
        raise ValueError(f"t_star must be >= 0, got {t_star}")
    if s_star is None or s_star == t_star:
        return list(range(t_star - 1, -1, -1))
    if not 1 <= s_star <= t_star:
        raise ValueError(f"s_star must be in [1, t_star={t_star}], got {s_star}")
    if s_star == 1:
        return [t_star - 1]
    grid = np.unique(np.round(np.linspace(0, t_star - 1, s_star)).astype(np.int64))
    return [int(v) for v in grid[::-1]]


def _abar(alphas_cumprod: torch.Tensor, t: int) -> float:
    return 1.0 if t < 0 else float(alphas_cumprod[t])


def ddpm_step(eps: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int, alphas_cumprod: torch.Tensor,
              z: torch.Tensor | None, *, clip: float | None = 1.0, variance_type: str = "fixed_small") -> torch.Tensor:
    """One ancestral step x_t -> x_{t_prev} (eq. 2 written via the posterior of Ho et al. eq. 7).

    Uses the respaced posterior (alpha_t := abar_t / abar_prev) so that subsequenced grids work; with
    clip=None and t_prev = t - 1 it is exactly eq. 2. ``z`` is the explicit noise (unused when t == 0).
    """
    a_t, a_prev = _abar(alphas_cumprod, t), _abar(alphas_cumprod, t_prev)
    alpha = a_t / a_prev
    beta = 1.0 - alpha
    x0 = (x_t - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    mean = (a_prev ** 0.5 * beta / (1.0 - a_t)) * x0 + (alpha ** 0.5 * (1.0 - a_prev) / (1.0 - a_t)) * x_t
    if t == 0:
        return mean
    if z is None:
        raise ValueError("ddpm_step needs noise z for t > 0")
    if variance_type == "fixed_small":
        var = max((1.0 - a_prev) / (1.0 - a_t) * beta, 1e-20)
    elif variance_type == "fixed_large":
        var = beta
    else:
        raise ValueError(f"unsupported variance_type {variance_type!r}; expected 'fixed_small' or 'fixed_large'")
    return mean + var ** 0.5 * z


def ddim_step(eps: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int, alphas_cumprod: torch.Tensor,
              *, clip: float | None = 1.0) -> torch.Tensor:
    """One deterministic DDIM step (eq. 3, eta = 0); abar at t_prev < 0 is 1, so the last step returns x0_hat."""
    a_t, a_prev = _abar(alphas_cumprod, t), _abar(alphas_cumprod, t_prev)
    x0 = (x_t - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    return a_prev ** 0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps


@contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


class DiffusionPurifier:
    """DiffPure (forward noise to t*, then DDPM reverse), RevPure (DDPM reverse from the input as x_t*)
    or DDIM RevPure (deterministic reverse from the input as x_t*), optionally on an s*-step grid.

    RevPure's interpretation: no forward noise is added; the scaled input 2x - 1 itself is taken as
    the state x_t* and the reverse chain runs from diffusers timestep t* - 1 down to 0.

    ``unet_batch`` = k runs every UNet call on zero-padded chunks of exactly k rows. CPU kernels
    (BLAS, oneDNN 1x1 convs) pick their reduction order by batch size, so without it a sample's output
    can differ in the last bits between batch sizes even under per-sample replay noise.
    """

    def __init__(self, method: str, unet: torch.nn.Module, scheduler, t_star: int = 100,
                 s_star: int | None = None, *, mixed_precision: bool = False, clip: float | None | str = "auto",
                 unet_batch: int | None = None):
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
        if clip == "auto":
            clip = float(cfg.clip_sample_range) if getattr(cfg, "clip_sample", False) else None
        self.clip = clip
        self.variance_type = getattr(cfg, "variance_type", "fixed_small")
        if method != "ddim" and self.variance_type not in ("fixed_small", "fixed_large"):
            raise ValueError(f"unsupported variance_type {self.variance_type!r}")
        self.mixed_precision = bool(mixed_precision)
        if unet_batch is not None and int(unet_batch) < 1:
            raise ValueError(f"unet_batch must be >= 1 or None, got {unet_batch}")
        self.unet_batch = None if unet_batch is None else int(unet_batch)
        self.stochastic = method != "ddim" and self.t_star > 0
        self.name = method

    def _eps_once(self, x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        if self.mixed_precision:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                return self.unet(x, tt).sample.to(x.dtype)
        return self.unet(x, tt).sample

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """UNet epsilon; with ``unet_batch`` = k, evaluated in zero-padded chunks of exactly k rows."""
        k = self.unet_batch
        if not k:
            return self._eps_once(x, t)
        outs = []
        for i in range(0, x.shape[0], k):
            chunk = x[i:i + k]
            n = chunk.shape[0]
            if n < k:
                chunk = torch.cat([chunk, chunk.new_zeros((k - n, *chunk.shape[1:]))])
            outs.append(self._eps_once(chunk, t)[:n])
        return torch.cat(outs)

    def _step_fn(self, t: int, t_prev: int) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        def step(x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
            eps = self._eps(x, t)
            if self.method == "ddim":
                return ddim_step(eps, x, t, t_prev, self.alphas_cumprod, clip=self.clip)
            return ddpm_step(eps, x, t, t_prev, self.alphas_cumprod, z, clip=self.clip, variance_type=self.variance_type)
        return step

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
        states, steps = [], []
        with _eval_mode(self.unet), torch.set_grad_enabled(grad):
            xs = self._start(x, noise)
            for k, t in enumerate(self.grid):
                if keep_every and k % keep_every == 0:
                    states.append(xs.detach().clone()), steps.append(t + 1)
                t_prev = self.grid[k + 1] if k + 1 < len(self.grid) else -1
                z = None
                if self.method != "ddim" and t > 0:
                    z = noise.draw("reverse", t + 1, xs.shape, xs.device, xs.dtype)
                step = self._step_fn(t, t_prev)
                if grad and use_checkpoint:
                    xs = _checkpoint(step, xs, z, use_reentrant=False)
                else:
                    xs = step(xs, z)
            if keep_every:
                states.append(xs.detach().clone()), steps.append(0)
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
                  clip: bool | float | None | str = "auto", unet_batch: int | None = None) -> Purifier:
    """Build a purifier by name: diffpure | revpure | ddim (need unet + DDPM scheduler) | gaussian (sigma) | none.

    ``clip``: for diffusion purifiers the x0-prediction clamp ("auto" follows scheduler.config.clip_sample);
    for "gaussian" whether to clamp the output to [0, 1] (default False). ``unet_batch``: see DiffusionPurifier.
    """
    if name in ("diffpure", "revpure", "ddim"):
        return DiffusionPurifier(name, unet, scheduler, t_star, s_star, mixed_precision=mixed_precision, clip=clip,
                                 unet_batch=unet_batch)
    if name == "gaussian":
        return GaussianPurifier(sigma, clip=clip is True)
    if name == "none":
        return IdentityPurifier()
    raise ValueError(f"unknown purifier {name!r}; expected one of {NAMES}")
