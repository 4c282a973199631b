"""Learned variance (learned_range) against guided_diffusion's own GaussianDiffusion.p_sample and diffusers' step.

The tiny guided UNet runs in float32 inside a float64 shim (its timestep embedding is float32 whatever the
weights), so both sides see the same model output and the step arithmetic is compared in float64.
"""
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from empirical.models.guided import GuidedUNetAdapter
from empirical.noise import FreshNoise
from empirical.purifiers import ddpm_step, generate, make_purifier, timestep_grid

gd = pytest.importorskip("guided_diffusion.gaussian_diffusion")
from guided_diffusion.respace import SpacedDiffusion  # noqa: E402
from guided_diffusion.script_util import create_gaussian_diffusion, create_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {"image_size": 8, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2", "learn_sigma": True,
        "attention_resolutions": "4", "num_heads": 1}


class _Float64Shim(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.image_size = model, model.image_size

    def forward(self, x, t):
        return self.model(x.float(), t).double()


def _tiny_guided(config=TINY) -> torch.nn.Module:
    """A tiny guided UNet with every weight drawn from a seeded generator (its output layer starts at zero)."""
    with torch.random.fork_rng():
        model = create_model(**config).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def shim():
    return _Float64Shim(_tiny_guided())


def _extract64(arr, timesteps, broadcast_shape):
    """guided_diffusion's _extract_into_tensor without its float32 cast of the coefficients."""
    res = torch.from_numpy(arr).to(timesteps.device)[timesteps]
    return res.view(-1, *[1] * (len(broadcast_shape) - 1)).expand(broadcast_shape)


def _scheduler(diffusion) -> DDPMScheduler:
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    sched.alphas_cumprod = torch.from_numpy(diffusion.alphas_cumprod)     # guided-diffusion's float64 schedule
    return sched


def _x(seed, n=2):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("clip_denoised", [True, False])
def test_learned_range_step_equals_p_sample(shim, monkeypatch, clip_denoised):
    diffusion = create_gaussian_diffusion(steps=1000, learn_sigma=True, noise_schedule="linear")
    ac = torch.from_numpy(diffusion.alphas_cumprod)
    adapter = GuidedUNetAdapter(shim, learn_sigma=True)
    clipped = []
    for t in (999, 600, 150, 7, 1):
        x, z = 1.5 * _x(t), _x(t + 1)
        monkeypatch.setattr(torch, "randn_like", lambda ref: z.clone())
        with torch.no_grad():
            ref = diffusion.p_sample(shim, x, torch.full((2,), t), clip_denoised=clip_denoised)["sample"]
            out = adapter(x, t)
        mine = ddpm_step(out.sample, x, t, t - 1, ac, z, clip=1.0 if clip_denoised else None,
                         variance_type="learned_range", variance_values=out.variance_values)
        assert torch.allclose(mine, ref, rtol=1e-6, atol=1e-6), t
        unclipped = ddpm_step(out.sample, x, t, t - 1, ac, z, clip=None, variance_type="learned_range",
                              variance_values=out.variance_values)
        clipped.append(not torch.allclose(unclipped, mine))
    assert any(clipped) == clip_denoised                  # the clamp was active somewhere, and only when asked


def _guided_chain(shim, diffusion, x, timesteps, zs, monkeypatch):
    """p_sample over ``timesteps`` (indices of ``diffusion``), each step's noise taken from ``zs`` in order."""
    queue = list(zs)
    monkeypatch.setattr(torch, "randn_like", lambda ref: queue.pop(0) if queue else torch.zeros_like(ref))
    with torch.no_grad():
        for t in timesteps:
            x = diffusion.p_sample(shim, x, torch.full((x.shape[0],), t), clip_denoised=True)["sample"]
    return ((x + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("respacing", ["respaced", "one_step"])
def test_guided_revpure_chain_equals_guided_diffusion_loop(shim, monkeypatch, respacing):
    """RevPure on an s*-grid against SpacedDiffusion(grid) (respaced) or the full diffusion visited at the grid
    points only (one_step); guided-diffusion's coefficients kept in float64 for a tight comparison."""
    monkeypatch.setattr(gd, "_extract_into_tensor", _extract64)
    base = dict(betas=gd.get_named_beta_schedule("linear", 1000), model_mean_type=gd.ModelMeanType.EPSILON,
                model_var_type=gd.ModelVarType.LEARNED_RANGE, loss_type=gd.LossType.MSE)
    grid = timestep_grid(300, 6)
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sched = _scheduler(gd.GaussianDiffusion(**base))
    pur = make_purifier("revpure", GuidedUNetAdapter(shim), sched, t_star=300, s_star=6, respacing=respacing)
    assert pur.describe()["variance_type"] == "learned_range" and pur.clip == 1.0
    mine = pur(images, FreshNoise(torch.Generator().manual_seed(9)))
    g = torch.Generator().manual_seed(9)
    zs = [torch.randn(images.shape, generator=g, dtype=torch.float64) for t in grid if t > 0]
    if respacing == "respaced":
        diffusion, steps = SpacedDiffusion(use_timesteps=grid, **base), range(len(grid) - 1, -1, -1)
    else:
        diffusion, steps = SpacedDiffusion(use_timesteps=range(1000), **base), grid
    ref = _guided_chain(shim, diffusion, 2 * images - 1, steps, zs, monkeypatch)
    assert torch.allclose(mine, ref, rtol=0, atol=1e-9)
    fixed = make_purifier("revpure", GuidedUNetAdapter(shim), sched, t_star=300, s_star=6,
                          respacing=respacing, variance_type="fixed_small")
    assert not torch.allclose(fixed(images, FreshNoise(torch.Generator().manual_seed(9))), mine, atol=1e-4)


def test_generate_with_learned_variance_equals_spaced_p_sample_loop(shim, monkeypatch):
    """Sampling from noise on a 4-step respaced grid with the adapter's variance output, draw for draw (x_T and
    the z are float32, the dtype of the UNet's weights, so the first step runs partly in float32)."""
    monkeypatch.setattr(gd, "_extract_into_tensor", _extract64)
    base = dict(betas=gd.get_named_beta_schedule("linear", 1000), model_mean_type=gd.ModelMeanType.EPSILON,
                model_var_type=gd.ModelVarType.LEARNED_RANGE, loss_type=gd.LossType.MSE)
    ac = torch.from_numpy(gd.GaussianDiffusion(**base).alphas_cumprod)
    mine = generate(GuidedUNetAdapter(shim), ac, 2, 4, torch.Generator().manual_seed(2), variance_type="learned_range")
    grid, g = timestep_grid(1000, 4), torch.Generator().manual_seed(2)
    x = torch.randn((2, 3, 8, 8), generator=g)
    zs = [torch.randn(x.shape, generator=g).double() for t in grid if t > 0]
    ref = _guided_chain(shim, SpacedDiffusion(use_timesteps=grid, **base), x.double(), range(3, -1, -1), zs,
                        monkeypatch)
    assert torch.allclose(mine, ref, rtol=0, atol=1e-5)


def test_learned_range_step_equals_diffusers_learned_range():
    """diffusers' DDPMScheduler(variance_type='learned_range') reads v from the second half of a 2C output."""
    sched = DDPMScheduler(num_train_timesteps=1000, variance_type="learned_range", clip_sample=True)
    sched.alphas_cumprod, sched.one = sched.alphas_cumprod.double(), torch.tensor(1.0, dtype=torch.float64)
    grid = timestep_grid(1000, 9)
    sched.set_timesteps(timesteps=grid)
    for k, t in enumerate(grid[:-1]):
        x, eps, v = _x(t), 3 * _x(t + 1), _x(t + 2).clamp(-1.5, 1.5)
        ref = sched.step(torch.cat([eps, v], 1), t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        z = torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
        mine = ddpm_step(eps, x, t, grid[k + 1], sched.alphas_cumprod, z, variance_type="learned_range",
                         variance_values=v)
        assert torch.allclose(mine, ref, rtol=1e-10, atol=1e-12), t


def test_loaded_guided_checkpoint_selects_learned_range(tmp_path):
    """The adapter load_guided_diffusion returns reports learn_sigma, so the purifier needs no extra argument."""
    from empirical.checkpoints import load_guided_diffusion

    torch.save(_tiny_guided().state_dict(), tmp_path / "tiny.pt")
    adapter, sched = load_guided_diffusion(tmp_path / "tiny.pt", config=TINY)
    out = adapter(torch.zeros(1, 3, 8, 8), 5)
    assert out.sample.shape == out.variance_values.shape == (1, 3, 8, 8)
    pur = make_purifier("diffpure", adapter, sched, t_star=4, s_star=2)
    assert pur.describe() == {"method": "diffpure", "t_star": 4, "s_star": 2, "clip": 1.0,
                              "variance_type": "learned_range", "respacing": "respaced", "unet_batch": None,
                              "mixed_precision": False}
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = FreshNoise(torch.Generator().manual_seed(1))
    batched = make_purifier("diffpure", adapter, sched, t_star=4, s_star=2, unet_batch=2)
    assert torch.allclose(batched(images, FreshNoise(torch.Generator().manual_seed(1))), pur(images, noise), atol=1e-5)
    assert make_purifier("ddim", adapter, sched, t_star=4).describe()["variance_type"] is None


def test_learned_range_needs_a_variance_output(unet, scheduler):
    with pytest.raises(ValueError, match="predicts its variance"):
        make_purifier("revpure", unet, scheduler, t_star=3, variance_type="learned_range")
    eps_only = GuidedUNetAdapter(_Float64Shim(_tiny_guided({**TINY, "learn_sigma": False})), learn_sigma=False)
    with pytest.raises(ValueError, match="predicts its variance"):
        make_purifier("diffpure", eps_only, scheduler, t_star=3, variance_type="learned_range")
    assert make_purifier("diffpure", eps_only, scheduler, t_star=3).variance_type == "fixed_small"
    assert np.isclose(float(scheduler.alphas_cumprod[0]), 1 - 1e-4)
