import numpy as np
import pytest

from empirical import trajectories as tr
from empirical.noise import SampleReplayNoise
from empirical.purifiers import make_purifier


def test_correlation_matrix_matches_numpy():
    d = np.random.default_rng(0).normal(size=(5, 40))
    assert np.allclose(tr.correlation_matrix(d), np.corrcoef(d))
    with pytest.raises(ValueError):
        tr.correlation_matrix(np.ones((3, 4)))


def test_ddim_correlations_across_noises_are_one(unet, scheduler, images, one_thread):
    pur = make_purifier("ddim", unet=unet, scheduler=scheduler, t_star=4)
    study = tr.same_state_different_noise(pur, images[:1], 6, seed=3)
    assert study.min == pytest.approx(1.0, abs=1e-12) and study.mean == pytest.approx(1.0, abs=1e-12)


def test_ddpm_correlations_across_noises_are_below_one(unet, scheduler, images, one_thread):
    pur = make_purifier("revpure", unet=unet, scheduler=scheduler, t_star=4)
    study = tr.same_state_different_noise(pur, images[:1], 6, seed=3)
    assert study.max < 0.999


def test_same_noise_small_ball_is_nearly_one(unet, scheduler, images, one_thread):
    pur = make_purifier("diffpure", unet=unet, scheduler=scheduler, t_star=20)
    study = tr.ball_different_states_same_noise(pur, images[:1], 5, radius=1e-4, seed=1)
    assert study.min > 0.999


def test_curves_positions_and_first_state(unet, scheduler, images, one_thread):
    x_adv = (images + 0.1).clamp(0, 1)
    for name, n_pos in (("diffpure", 7), ("revpure", 4), ("ddim", 4)):
        pur = make_purifier(name, unet=unet, scheduler=scheduler, t_star=3)
        c = tr.adversarial_curves(pur, images, x_adv, SampleReplayNoise(range(4), 0))
        assert c.position == list(range(n_pos)) and c.l2.shape == (n_pos, 4)
        assert np.allclose(c.cosine[0], 1.0) and np.allclose(c.inner[0], c.adv_norm ** 2)


def test_diffpure_forward_end_matches_the_purifier_state(unet, scheduler, images, one_thread):
    """The forward states rebuilt from the replayed z end exactly at the purifier's own x_t*."""
    pur = make_purifier("diffpure", unet=unet, scheduler=scheduler, t_star=3)
    noise = SampleReplayNoise(range(4), 0)
    x_adv = (images + 0.1).clamp(0, 1)
    traj = pur.trajectory(x_adv, noise)
    c = tr.adversarial_curves(pur, images, x_adv, noise)
    d = ((traj.states[0] + 1) / 2 - images).flatten(1).norm(dim=1).double().numpy()
    assert np.allclose(c.l2[3], d, atol=1e-6)


def test_pca_of_rank_one_and_isotropic_sets():
    rng = np.random.default_rng(2)
    line = rng.normal(size=(100, 1)) * rng.normal(size=(1, 20))
    assert tr.components_for(tr.explained_variance(line), 0.9) == 1
    iso = rng.normal(size=(4000, 10))
    cum = tr.explained_variance(iso)
    assert tr.components_for(cum, 0.9) == 9 and cum[-1] == pytest.approx(1.0)


def test_purified_directions_are_batch_invariant(unet, scheduler, images, one_thread):
    pur = make_purifier("revpure", unet=unet, scheduler=scheduler, t_star=3)
    xs = tr.random_perturbations(images[:1], 6, 0.05, seed=0)
    a = tr.purified_directions(pur, images[:1], xs, seed=4, batch_size=6)
    b = tr.purified_directions(pur, images[:1], xs, seed=4, batch_size=4)
    assert np.allclose(a, b, atol=1e-5)
