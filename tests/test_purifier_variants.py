"""The one reverse loop: sampling from noise, the legacy one-step respacing, explicit clip/variance, describe()."""
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from empirical.noise import BatchReplayNoise, FreshNoise
from empirical.purifiers import ddim_step, ddpm_step, generate, make_purifier, reverse_chain, timestep_grid

pytestmark = pytest.mark.usefixtures("one_thread")
SHAPE = (3, 1, 8, 8)


def _rand(seed, shape=SHAPE):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _double(unet, sched):
    sched.alphas_cumprod, sched.one = sched.alphas_cumprod.double(), torch.tensor(1.0, dtype=torch.float64)
    return unet.double(), sched


def _reference_generate(unet, ac, n, steps, generator, batch_size, clip, variance_type):
    """Ancestral sampling written out: per batch x_T first, then after each UNet call that step's z (t > 0)."""
    grid, out = timestep_grid(len(ac), steps), []
    for lo in range(0, n, batch_size):
        b = min(batch_size, n - lo)
        x = torch.randn((b, 1, 8, 8), generator=generator)
        with torch.no_grad():
            for k, t in enumerate(grid):
                eps = unet(x, torch.full((b,), t)).sample
                z = torch.randn(x.shape, generator=generator) if t > 0 else None
                t_prev = grid[k + 1] if k + 1 < len(grid) else -1
                x = ddpm_step(eps, x, t, t_prev, ac, z, clip=clip, variance_type=variance_type)
        out.append(((x + 1) / 2).clamp(0, 1))
    return torch.cat(out)


@pytest.mark.parametrize("clip,variance_type", [(1.0, "fixed_small"), (None, "fixed_large")])
def test_generate_is_bit_identical_to_the_written_out_loop(unet, scheduler, clip, variance_type):
    ac = scheduler.alphas_cumprod.float()
    calls = []
    mine = generate(unet, ac, 5, 12, torch.Generator().manual_seed(0), clip=clip, variance_type=variance_type,
                    batch_size=2, progress=lambda done, total: calls.append((done, total)))
    ref = _reference_generate(unet, ac, 5, 12, torch.Generator().manual_seed(0), 2, clip, variance_type)
    assert mine.shape == (5, 1, 8, 8) and torch.equal(mine, ref)
    assert calls == [(i, 36) for i in range(1, 37)]                 # 3 batches x 12 steps


def test_generate_matches_diffusers_on_its_respaced_grid(unet, scheduler):
    unet, scheduler = _double(unet, scheduler)
    mine = generate(unet, scheduler.alphas_cumprod, 3, 7, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    x = torch.randn((3, 1, 8, 8), generator=g, dtype=torch.float64)
    scheduler.set_timesteps(timesteps=timestep_grid(1000, 7))
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x, generator=g).prev_sample
    assert torch.allclose(mine, ((x + 1) / 2).clamp(0, 1), rtol=0, atol=1e-10)


@pytest.mark.parametrize("variance_type,clip", [("fixed_small", True), ("fixed_large", False)])
def test_one_step_ddpm_step_is_diffusers_full_schedule_step(variance_type, clip):
    """Legacy coefficients: at grid point t the step is the 1000-step schedule's t -> t - 1, whatever t_prev is."""
    sched = DDPMScheduler(num_train_timesteps=1000, variance_type=variance_type, clip_sample=clip)
    sched.alphas_cumprod, sched.one = sched.alphas_cumprod.double(), torch.tensor(1.0, dtype=torch.float64)
    ac = sched.alphas_cumprod
    for t in (999, 500, 37, 1, 0):
        x, eps = _rand(t), 3 * _rand(t + 1)
        ref = sched.step(eps, t, x, generator=torch.Generator().manual_seed(11)).prev_sample
        z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
        kw = dict(clip=1.0 if clip else None, variance_type=variance_type)
        mine = ddpm_step(eps, x, t, max(t - 25, -1), ac, z, respacing="one_step", **kw)
        assert torch.allclose(mine, ref, rtol=1e-10, atol=1e-12), t
        if t >= 25:
            assert not torch.allclose(ddpm_step(eps, x, t, t - 25, ac, z, **kw), ref, atol=1e-3)


def test_one_step_ddim_step_is_diffusers_stride_one_step(ddim_scheduler):
    ddim_scheduler.set_timesteps(1000)
    ddim_scheduler.alphas_cumprod = ddim_scheduler.alphas_cumprod.double()
    ddim_scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    for t in (990, 400, 40, 0):
        x, eps = _rand(t), 3 * _rand(t + 1)
        ref = ddim_scheduler.step(eps, t, x, eta=0.0).prev_sample
        mine = ddim_step(eps, x, t, t - 40, ddim_scheduler.alphas_cumprod, respacing="one_step")
        assert torch.allclose(mine, ref, rtol=1e-10, atol=1e-12), t


def _loop_at(unet, sched, x, timesteps, generator=None, **kw):
    with torch.no_grad():
        for t in timesteps:
            eps = unet(x, torch.full((x.shape[0],), t)).sample
            x = sched.step(eps, t, x, generator=generator, **kw).prev_sample
    return ((x + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("name", ["revpure", "diffpure", "ddim"])
def test_one_step_purifier_is_the_unrespaced_scheduler_visiting_the_grid(name, unet, scheduler, images):
    """What an un-respaced scheduler does when called only at the grid points: prev = t - 1 at every one."""
    unet, scheduler = _double(unet, scheduler)
    images = images.double()
    grid = timestep_grid(40, 5)
    pur = make_purifier(name, unet, scheduler, t_star=40, s_star=5, respacing="one_step")
    out = pur(images, FreshNoise(torch.Generator().manual_seed(8)))
    g, x = torch.Generator().manual_seed(8), 2 * images - 1
    if name == "ddim":
        ddim = DDIMScheduler(num_train_timesteps=1000, set_alpha_to_one=True)
        ddim.set_timesteps(1000)
        ddim.alphas_cumprod = ddim.alphas_cumprod.double()
        ddim.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
        ref = _loop_at(unet, ddim, x, grid, eta=0.0)
    else:
        if name == "diffpure":
            x = scheduler.add_noise(x, torch.randn(x.shape, generator=g, dtype=torch.float64), torch.tensor([39]))
        ref = _loop_at(unet, scheduler, x, grid, g)
    assert torch.allclose(out, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["diffpure", "revpure", "ddim"])
def test_one_step_is_respaced_on_the_full_chain(name, unet, scheduler, images):
    noise = BatchReplayNoise(1)
    full = make_purifier(name, unet, scheduler, t_star=8, respacing="one_step")(images, noise)
    assert torch.equal(full, make_purifier(name, unet, scheduler, t_star=8)(images, noise))


@pytest.mark.parametrize("name,clip", [("revpure", "auto"), ("ddim", None)])
def test_one_step_coefficients_barely_move_the_input(name, clip, unet, scheduler, images):
    """On a short grid the legacy coefficients take s* steps of size O(beta_t) each: RevPure's noise has variance
    about sum of beta over the grid (~0.016 here) against 1 - abar_t* (~0.8) for the respaced chain, and DDIM's
    deterministic steps scale x by ~(1 + beta_t / 2). DDIM runs unclamped because with an untrained UNet
    (eps ~ 0) the x0 clamp alone moves every pixel with |x| > sqrt(abar_t), whatever the coefficients."""
    noise = BatchReplayNoise(0)
    moved = {r: float((make_purifier(name, unet, scheduler, t_star=400, s_star=4, clip=clip, respacing=r)(images, noise)
                       - images).norm()) for r in ("respaced", "one_step")}
    assert moved["one_step"] < 0.5 * moved["respaced"], moved


def test_describe_records_defaults_and_named_options(unet, scheduler):
    base = {"method": "revpure", "t_star": 30, "s_star": None, "clip": 1.0, "variance_type": "fixed_small",
            "respacing": "respaced", "unet_batch": None, "mixed_precision": False}
    assert make_purifier("revpure", unet, scheduler, t_star=30).describe() == base
    named = make_purifier("revpure", unet, scheduler, t_star=30, s_star=3, clip=None, variance_type="fixed_large",
                          respacing="one_step", unet_batch=4)
    assert named.describe() == {**base, "s_star": 3, "clip": None, "variance_type": "fixed_large",
                                "respacing": "one_step", "unet_batch": 4}
    unclipped = DDPMScheduler(num_train_timesteps=1000, clip_sample=False, variance_type="fixed_large")
    assert make_purifier("diffpure", unet, unclipped, t_star=3).describe()["clip"] is None
    assert make_purifier("diffpure", unet, unclipped, t_star=3).variance_type == "fixed_large"
    assert make_purifier("ddim", unet, scheduler, t_star=3, clip=True).describe()["clip"] == 1.0
    assert make_purifier("gaussian", sigma=0.5).describe() == {"method": "gaussian", "sigma": 0.5, "clip": False}
    assert make_purifier("none").describe() == {"method": "none"}


def test_named_options_change_the_output(unet, scheduler, images):
    noise = BatchReplayNoise(0)
    default = make_purifier("revpure", unet, scheduler, t_star=20)(images, noise)
    for kw in (dict(variance_type="fixed_large"), dict(clip=0.2)):
        assert not torch.equal(make_purifier("revpure", unet, scheduler, t_star=20, **kw)(images, noise), default), kw


def test_bad_options(unet, scheduler, images):
    for kw, match in ((dict(respacing="legacy"), "respacing"), (dict(variance_type="learned"), "variance_type"),
                      (dict(clip=-1.0), "clip"), (dict(clip="yes"), "clip")):
        with pytest.raises(ValueError, match=match):
            make_purifier("revpure", unet, scheduler, t_star=3, **kw)
    eps_fn = lambda x, t: torch.zeros_like(x)                                    # noqa: E731
    with pytest.raises(ValueError, match="descending"):
        reverse_chain(eps_fn, images, [0, 3], scheduler.alphas_cumprod, None, method="ddim")
    with pytest.raises(ValueError, match="draw_z"):
        reverse_chain(eps_fn, images, [3, 0], scheduler.alphas_cumprod, None)
    with pytest.raises(ValueError, match="step kind"):
        reverse_chain(eps_fn, images, [0], scheduler.alphas_cumprod, None, method="euler")
    with pytest.raises(ValueError, match="steps"):
        generate(unet, scheduler.alphas_cumprod, 2, 0, torch.Generator())
