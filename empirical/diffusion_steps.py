"""The reverse diffusion chain: one DDPM or DDIM step, the one loop every purifier and sampler runs, and
ancestral sampling from pure noise.

Paper eq. 2 (DDPM step), eq. 3 (DDIM step, eta = 0), Sec. 5.3 (subsequenced grids). Timesteps are
diffusers' (0 ... N-1); the step at timestep t takes x_{t+1} in the paper's indexing to the next grid
point. Two respacings of a subsequenced grid are offered:

* ``"respaced"`` (default): the coefficients of the jump t -> t_prev come from abar_t / abar_prev, the
  posterior of the skipped chain (what diffusers and guided-diffusion do today);
* ``"one_step"``: the legacy coefficients of the single step t -> t - 1 (alphas, betas and the variance
  from t - 1), applied while the chain still jumps to the next grid point. Older diffusers
  ``DDPMScheduler`` versions did this on shortened schedules; the chain then barely denoises.

Variances of the DDPM step: ``fixed_small`` (posterior variance, Ho et al. eq. 7), ``fixed_large``
(beta), ``learned_range`` (Nichol & Dhariwal's interpolation in log space between the two, driven by
the model's variance output v, nominally in [-1, 1]; the ImageNet guided-diffusion model predicts it).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

RESPACINGS = ("respaced", "one_step")
VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned_range")
STEP_KINDS = ("ddpm", "ddim")
EpsOut = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def check_option(value: str, options: tuple[str, ...], name: str) -> str:
    """Return value if it is one of options, else raise a ValueError that lists them."""
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(repr(o) for o in options)}")
    return value


def timestep_grid(t_star: int, s_star: int | None = None) -> list[int]:
    """Descending diffusers timesteps of the reverse chain: all of t*-1..0, or s* linearly spaced ones (Sec. 5.3).

    The grid always starts at t*-1 (the noise level of x_t*); s* == t* is the full chain. For s* >= 2 it
    ends at 0, the points rounded from linspace(0, t*-1, s*). s* = 1 gives [t*-1] alone: the chain's one
    step jumps from x_t* straight to x_0 (`reverse_chain` steps from the last grid point to x_0 in every
    case, so the grid's start, the input's noise level, is the point that must be kept).
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


def _coefficient_prev(t: int, t_prev: int, respacing: str) -> int:
    """The timestep whose abar plays abar_prev in the step's coefficients."""
    return t_prev if check_option(respacing, RESPACINGS, "respacing") == "respaced" else t - 1


def ddpm_step(eps: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int, alphas_cumprod: torch.Tensor,
              z: torch.Tensor | None, *, clip: float | None = 1.0, variance_type: str = "fixed_small",
              variance_values: torch.Tensor | None = None, respacing: str = "respaced") -> torch.Tensor:
    """One ancestral step x_t -> x_{t_prev} (eq. 2 written via the posterior of Ho et al. eq. 7).

    With respacing="respaced", alpha_t := abar_t / abar_prev, so that subsequenced grids work; with
    clip=None and t_prev = t - 1 it is exactly eq. 2. respacing="one_step" takes abar_prev := abar_{t-1}
    whatever t_prev is. ``z`` is the explicit noise (unused when t == 0). ``variance_values`` (the
    model's v, same shape as eps) drive variance_type="learned_range": log var = frac log beta +
    (1 - frac) log posterior_var with frac = (v + 1) / 2, as guided-diffusion's LEARNED_RANGE.
    """
    check_option(variance_type, VARIANCE_TYPES, "variance_type")
    a_t, a_prev = _abar(alphas_cumprod, t), _abar(alphas_cumprod, _coefficient_prev(t, t_prev, respacing))
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
    small = max((1.0 - a_prev) / (1.0 - a_t) * beta, 1e-20)
    if variance_type == "fixed_small":
        return mean + small ** 0.5 * z
    if variance_type == "fixed_large":
        return mean + beta ** 0.5 * z
    if variance_values is None or variance_values.shape != eps.shape:
        raise ValueError("variance_type 'learned_range' needs variance_values of eps's shape "
                         f"(got {None if variance_values is None else tuple(variance_values.shape)})")
    frac = (variance_values + 1.0) / 2.0
    log_var = frac * math.log(beta) + (1.0 - frac) * math.log(small)
    return mean + torch.exp(0.5 * log_var) * z


def ddim_step(eps: torch.Tensor, x_t: torch.Tensor, t: int, t_prev: int, alphas_cumprod: torch.Tensor,
              *, clip: float | None = 1.0, respacing: str = "respaced") -> torch.Tensor:
    """One deterministic DDIM step (eq. 3, eta = 0); abar at t_prev < 0 is 1, so the last step returns x0_hat.

    respacing="one_step" uses abar_{t-1} in place of abar_{t_prev} (the legacy coefficients).
    """
    a_t, a_prev = _abar(alphas_cumprod, t), _abar(alphas_cumprod, _coefficient_prev(t, t_prev, respacing))
    x0 = (x_t - (1.0 - a_t) ** 0.5 * eps) / a_t ** 0.5
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
    return a_prev ** 0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps


def split_output(out, x: torch.Tensor, learned: bool) -> EpsOut:
    """eps from a UNet output (diffusers' ``.sample``), and with ``learned`` also the variance values v.

    v is ``out.variance_values`` (the guided-diffusion adapter) or, when ``.sample`` has twice x's
    channels, its second half (diffusers' convention for learned variances).
    """
    sample = out.sample
    v = getattr(out, "variance_values", None)
    if sample.shape[1] == 2 * x.shape[1]:
        sample, v = sample.split(x.shape[1], dim=1)
    if not learned:
        return sample
    if v is None:
        raise ValueError("variance_type 'learned_range' needs a UNet that predicts its variance (a guided-diffusion "
                         "model with learn_sigma=True, or out_channels = 2 x in_channels); use 'fixed_small'")
    return sample, v


@contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Run a module in eval mode and restore its training flag afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def reverse_chain(eps_fn: Callable[[torch.Tensor, int], EpsOut], x: torch.Tensor, grid: Sequence[int],
                  alphas_cumprod: torch.Tensor, draw_z: Callable[[int, torch.Tensor], torch.Tensor] | None, *,
                  method: str = "ddpm", clip: float | None = 1.0, variance_type: str = "fixed_small",
                  respacing: str = "respaced", keep_every: int = 0, checkpoint: bool = False,
                  ) -> tuple[torch.Tensor, list[torch.Tensor], list[int]]:
    """Run the reverse chain over a descending timestep grid: x at grid[0] + 1 -> x_0 (eqs. 2-3).

    ``eps_fn(x, t)`` gives eps (or, for learned_range, the pair (eps, v)); ``draw_z(t, x)`` gives the noise
    of the DDPM step at timestep t and is called once per step with t > 0, in grid order, before the
    step's UNet call (ddim draws none). With ``keep_every`` = k, every k-th state and x_0 are returned
    with their paper indices n = t + 1 (0 for x_0); ``checkpoint`` wraps each step in
    torch.utils.checkpoint so that autograd memory stays flat in the number of steps.
    Returns (x_0, states, steps); states are detached copies.
    """
    check_option(method, STEP_KINDS, "step kind")
    check_option(respacing, RESPACINGS, "respacing")
    check_option(variance_type, VARIANCE_TYPES, "variance_type")
    grid = [int(t) for t in grid]
    if any(b >= a for a, b in zip(grid, grid[1:])) or (grid and not 0 <= grid[-1] <= grid[0] < len(alphas_cumprod)):
        raise ValueError(f"grid must be strictly descending timesteps in [0, {len(alphas_cumprod) - 1}], got {grid}")
    if method == "ddpm" and draw_z is None and any(t > 0 for t in grid):
        raise ValueError("a DDPM chain needs draw_z for its noisy steps")
    states, steps = [], []
    for k, t in enumerate(grid):
        if keep_every and k % keep_every == 0:
            states.append(x.detach().clone()), steps.append(t + 1)
        t_prev = grid[k + 1] if k + 1 < len(grid) else -1
        z = draw_z(t, x) if method == "ddpm" and t > 0 else None
        step = _step_fn(eps_fn, t, t_prev, alphas_cumprod, method, clip, variance_type, respacing)
        x = _checkpoint(step, x, z, use_reentrant=False) if checkpoint else step(x, z)
    if keep_every:
        states.append(x.detach().clone()), steps.append(0)
    return x, states, steps


def _step_fn(eps_fn, t: int, t_prev: int, alphas_cumprod: torch.Tensor, method: str, clip: float | None,
             variance_type: str, respacing: str) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def step(x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        out = eps_fn(x, t)
        eps, v = out if isinstance(out, tuple) else (out, None)
        if method == "ddim":
            return ddim_step(eps, x, t, t_prev, alphas_cumprod, clip=clip, respacing=respacing)
        return ddpm_step(eps, x, t, t_prev, alphas_cumprod, z, clip=clip, variance_type=variance_type,
                         variance_values=v, respacing=respacing)
    return step


def generate(unet: torch.nn.Module, alphas_cumprod: torch.Tensor, n: int, steps: int, generator: torch.Generator, *,
             clip: float | None = 1.0, variance_type: str = "fixed_small", batch_size: int = 256,
             progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """n DDPM ancestral samples from pure noise (Ho et al. Alg. 2) on an s-step respaced grid, as [0, 1] images.

    Per batch of ``batch_size``, x_T is drawn first, then each step's z (t > 0) in grid order, all from
    ``generator`` in the UNet's dtype. ``progress(done, total)`` is called after every UNet call.
    """
    n_train = len(alphas_cumprod)
    if n < 1 or not 1 <= steps <= n_train or batch_size < 1:
        raise ValueError(f"need n >= 1, 1 <= steps <= {n_train} and batch_size >= 1, got n={n}, steps={steps}, "
                         f"batch_size={batch_size}")
    check_option(variance_type, VARIANCE_TYPES, "variance_type")
    grid = timestep_grid(n_train, steps)
    cfg = getattr(unet, "config", unet)
    size, ch = cfg.sample_size, cfg.in_channels
    shape_hw = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    param = next(unet.parameters())
    learned = variance_type == "learned_range"
    total, done = -(-n // batch_size) * len(grid), [0]

    def eps_fn(x: torch.Tensor, t: int) -> EpsOut:
        out = split_output(unet(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)), x, learned)
        done[0] += 1
        if progress is not None:
            progress(done[0], total)
        return out

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=generator.device, dtype=param.dtype).to(param.device)

    out = []
    with eval_mode(unet), torch.no_grad():
        for lo in range(0, n, batch_size):
            x = draw((min(batch_size, n - lo), ch, *shape_hw))
            x = reverse_chain(eps_fn, x, grid, alphas_cumprod, lambda t, s: draw(tuple(s.shape)), clip=clip,
                              variance_type=variance_type)[0]
            out.append(((x + 1) / 2).clamp(0, 1))
    return torch.cat(out)
