"""Purifiers against diffusers' own schedulers, subsequencing, identity limits, trajectories, bad input."""
import pytest
import torch
from diffusers import DDPMScheduler

from empirical.noise import BatchReplayNoise, FreshNoise, SampleReplayNoise
from empirical.purifiers import ddim_step, ddpm_step, make_purifier, timestep_grid

pytestmark = pytest.mark.usefixtures("one_thread")
SHAPE = (3, 1, 8, 8)


def _rand(seed, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variance_type,clip", [("fixed_small", True), ("fixed_large", False)])
def test_ddpm_step_matches_diffusers(variance_type, clip):
    """Run diffusers' step in float64 (its float32 1 - abar loses ~1e-4 near t = 0) with the same noise."""
    sched = DDPMScheduler(num_train_timesteps=1000, variance_type=variance_type, clip_sample=clip)
    sched.alphas_cumprod, sched.one = sched.alphas_cumprod.double(), torch.tensor(1.0, dtype=torch.float64)
    ac = sched.alphas_cumprod
    for t in (999, 500, 37, 1, 0):
        x, eps = _rand(t).double(), 3 * _rand(t + 1).double()      # large eps so that clipping matters
        ref = sched.step(eps, t, x, generator=torch.Generator().manual_seed(11)).prev_sample
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
        mine = ddpm_step(eps, x, t, t - 1, ac, z, clip=1.0 if clip else None, variance_type=variance_type)
        assert torch.allclose(mine, ref, rtol=1e-10, atol=1e-12), t


def test_ddpm_step_is_eq2_without_clipping():
    ac = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod.double()
    x, eps, z, t = _rand(0).double(), _rand(1).double(), _rand(2).double(), 300
    alpha = ac[t] / ac[t - 1]
    sigma = ((1 - ac[t - 1]) / (1 - ac[t]) * (1 - alpha)).sqrt()
    eq2 = (x - (1 - alpha) / (1 - ac[t]).sqrt() * eps) / alpha.sqrt() + sigma * z
    assert torch.allclose(ddpm_step(eps, x, t, t - 1, ac, z, clip=None), eq2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("inference_steps", [1000, 100])
def test_ddim_step_matches_diffusers(ddim_scheduler, inference_steps):
    ddim_scheduler.set_timesteps(inference_steps)
    ddim_scheduler.alphas_cumprod = ddim_scheduler.alphas_cumprod.double()
    ddim_scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    stride = 1000 // inference_steps
    ac = ddim_scheduler.alphas_cumprod
    for t in (990, 400, stride, 0):
        x, eps = _rand(t).double(), 3 * _rand(t + 1).double()
        ref = ddim_scheduler.step(eps, t, x, eta=0.0).prev_sample
        mine = ddim_step(eps, x, t, t - stride, ac, clip=1.0)
        assert torch.allclose(mine, ref, rtol=1e-10, atol=1e-12), t


def _double(unet, sched, images):
    """Float64 copies: diffusers' float32 1 - abar loses ~1e-5 over a chain; in float64 both must agree tightly."""
    sched.alphas_cumprod, sched.one = sched.alphas_cumprod.double(), torch.tensor(1.0, dtype=torch.float64)
    return unet.double(), sched, images.double()


def _bare_loop(unet, sched, x_t, timesteps, generator):
    with torch.no_grad():
        for t in timesteps:
            eps = unet(x_t, torch.full((x_t.shape[0],), int(t))).sample
            x_t = sched.step(eps, int(t), x_t, generator=generator).prev_sample
    return ((x_t + 1) / 2).clamp(0, 1)


def test_revpure_full_chain_matches_diffusers_loop(unet, scheduler, images):
    unet, scheduler, images = _double(unet, scheduler, images)
    out = make_purifier("revpure", unet, scheduler, t_star=15)(images, FreshNoise(torch.Generator().manual_seed(4)))
    ref = _bare_loop(unet, scheduler, 2 * images - 1, range(14, -1, -1), torch.Generator().manual_seed(4))
    assert torch.allclose(out, ref, rtol=0, atol=1e-10)


def test_diffpure_matches_add_noise_then_diffusers_loop(unet, scheduler, images):
    unet, scheduler, images = _double(unet, scheduler, images)
    out = make_purifier("diffpure", unet, scheduler, t_star=15)(images, FreshNoise(torch.Generator().manual_seed(4)))
    g = torch.Generator().manual_seed(4)
    x_t = scheduler.add_noise(2 * images - 1, torch.randn(images.shape, generator=g, dtype=torch.float64), torch.tensor([14]))
    ref = _bare_loop(unet, scheduler, x_t, range(14, -1, -1), g)
    assert torch.allclose(out, ref, rtol=0, atol=1e-10)


def test_ddim_revpure_matches_ddim_scheduler_loop(unet, ddim_scheduler, images):
    unet, _, images = _double(unet, DDPMScheduler(), images)
    ddim_scheduler.set_timesteps(1000)                       # stride 1: prev_timestep = t - 1
    ddim_scheduler.alphas_cumprod = ddim_scheduler.alphas_cumprod.double()
    ddim_scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    out = make_purifier("ddim", unet, DDPMScheduler(), t_star=12)(images)
    x_t = 2 * images - 1
    with torch.no_grad():
        for t in range(11, -1, -1):
            eps = unet(x_t, torch.full((x_t.shape[0],), t)).sample
            x_t = ddim_scheduler.step(eps, t, x_t, eta=0.0).prev_sample
    assert torch.allclose(out, ((x_t + 1) / 2).clamp(0, 1), rtol=0, atol=1e-10)


def test_subsequenced_ddpm_matches_diffusers_custom_timesteps(unet, scheduler, images):
    unet, scheduler, images = _double(unet, scheduler, images)
    grid = timestep_grid(40, 7)
    assert grid[0] == 39 and grid[-1] == 0 and len(grid) == 7 and grid == sorted(grid, reverse=True)
    out = make_purifier("revpure", unet, scheduler, t_star=40, s_star=7)(images, FreshNoise(torch.Generator().manual_seed(8)))
    scheduler.set_timesteps(timesteps=grid)
    ref = _bare_loop(unet, scheduler, 2 * images - 1, grid, torch.Generator().manual_seed(8))
    assert torch.allclose(out, ref, rtol=0, atol=1e-10)


def test_timestep_grid_linear_spacing():
    assert timestep_grid(100, 5) == [99, 74, 50, 25, 0]
    assert timestep_grid(10) == list(range(9, -1, -1)) == timestep_grid(10, 10)
    assert timestep_grid(10, 1) == [9]
    assert timestep_grid(0) == []
    with pytest.raises(ValueError, match="s_star"):
        timestep_grid(10, 11)


def test_timestep_grid_starts_at_the_input_noise_level_and_follows_a_linear_schedule():
    """Every (t*, s*) up to 60: s* distinct descending points from t*-1 (the level x_t* is noised to), each
    within half a step of linspace(t*-1, 0, s*), so ending at 0 whenever s* >= 2."""
    for t_star in range(1, 61):
        for s_star in range(1, t_star + 1):
            grid = timestep_grid(t_star, s_star)
            assert len(grid) == s_star and grid[0] == t_star - 1, (t_star, s_star)
            assert all(a > b for a, b in zip(grid, grid[1:])), (t_star, s_star)
            ideal = [t_star - 1] if s_star == 1 else [(t_star - 1) * (1 - k / (s_star - 1)) for k in range(s_star)]
            assert max(abs(g - i) for g, i in zip(grid, ideal)) <= 0.5 + 1e-9, (t_star, s_star)


@pytest.mark.parametrize("name", ["diffpure", "revpure", "ddim"])
def test_s_star_equal_t_star_is_full_chain(name, unet, scheduler, images):
    full = make_purifier(name, unet, scheduler, t_star=12)
    same = make_purifier(name, unet, scheduler, t_star=12, s_star=12)
    fewer = make_purifier(name, unet, scheduler, t_star=12, s_star=4)
    noise = BatchReplayNoise(3)
    assert torch.equal(full(images, noise), same(images, noise))
    assert not torch.equal(full(images, noise), fewer(images, noise))


@pytest.mark.parametrize("name", ["diffpure", "revpure", "ddim", "none"])
def test_t_star_zero_is_identity(name, unet, scheduler, images):
    pur = make_purifier(name, unet, scheduler, t_star=0)
    assert not pur.stochastic
    assert torch.equal(pur(images), images)


def test_gaussian_and_none(images):
    noise = SampleReplayNoise([0, 1, 2, 3], run_seed=1)
    z = noise.draw("forward", 0, images.shape, images.device, images.dtype)
    assert torch.equal(make_purifier("gaussian", sigma=0.3)(images, noise), images + 0.3 * z)
    clipped = make_purifier("gaussian", sigma=0.3, clip=True)(images, noise)
    assert torch.equal(clipped, (images + 0.3 * z).clamp(0, 1))
    assert torch.equal(make_purifier("none")(images), images)
    with pytest.raises(ValueError, match="sigma"):
        make_purifier("gaussian")


def test_trajectory_states_and_output(unet, scheduler, images):
    pur = make_purifier("diffpure", unet, scheduler, t_star=10, s_star=5)
    noise = BatchReplayNoise(0)
    traj = pur.trajectory(images, noise)
    assert traj.steps == [10, 8, 5, 3, 1, 0] and len(traj.states) == 6
    assert torch.equal(traj.output, pur(images, noise))
    assert torch.equal(((traj.states[-1] + 1) / 2).clamp(0, 1), traj.output)
    assert traj.states[0].abs().max() > 1                     # x_t* carries forward noise, [-1, 1] scale
    assert len(pur.trajectory(images, noise, keep_every=2).states) == 4


def test_eval_mode_restored_and_global_rng_untouched(unet, scheduler, images):
    seen = []
    handle = unet.register_forward_pre_hook(lambda m, a: seen.append(m.training))
    unet.train()
    state = torch.get_rng_state()
    pur = make_purifier("diffpure", unet, scheduler, t_star=5)
    pur(images, FreshNoise(torch.Generator().manual_seed(0)))
    pur(images, SampleReplayNoise([0, 1, 2, 3], 0))
    handle.remove()
    assert seen and not any(seen) and unet.training
    assert torch.equal(state, torch.get_rng_state())


def test_differentiable_path_equals_no_grad_path(unet, scheduler, images):
    pur = make_purifier("revpure", unet, scheduler, t_star=6)
    noise = BatchReplayNoise(2)
    x = images.clone().requires_grad_(True)
    y = pur.differentiable(x, noise)
    assert y.requires_grad
    assert torch.allclose(y.detach(), pur(images, noise), atol=1e-6)


def test_bad_inputs(unet, scheduler, images):
    pur = make_purifier("ddim", unet, scheduler, t_star=3)
    bad = images.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pur(bad)
    with pytest.raises(ValueError, match="outside"):
        pur(images + 1.5)
    with pytest.raises(ValueError, match="ndim"):
        pur(images[0])
    with pytest.raises(ValueError, match="unknown purifier"):
        make_purifier("magic", unet, scheduler)
    with pytest.raises(ValueError, match="t_star"):
        make_purifier("ddim", unet, scheduler, t_star=1001)
    with pytest.raises(ValueError, match="CUDA"):
        make_purifier("ddim", unet, scheduler, t_star=3, mixed_precision=True)(images)
    with pytest.raises(ValueError, match="unet"):
        make_purifier("revpure")
