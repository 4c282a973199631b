import math

import pytest
import torch
from scipy import stats

from empirical.predict import boundary_distance, noise_geometry, participation_ratio, toy_prediction


def test_participation_ratio_isotropic_and_low_rank():
    g = torch.Generator().manual_seed(0)
    _, pr = participation_ratio(0.3 * torch.randn(64, 256, generator=g, dtype=torch.float64))
    assert abs(pr - 256) < 0.15 * 256          # bias-corrected: the naive ratio would be ~ 51
    basis = torch.linalg.qr(torch.randn(256, 6, generator=g, dtype=torch.float64))[0].T
    _, pr = participation_ratio(torch.randn(64, 6, generator=g, dtype=torch.float64) @ basis)
    assert abs(pr - 6) < 1.5


def test_noise_geometry_recovers_sigma():
    g = torch.Generator().manual_seed(1)
    geom = noise_geometry(0.05 * torch.randn(48, 1, 16, 16, generator=g, dtype=torch.float64))
    assert geom.n_ambient == 256 and geom.draws == 48
    assert abs(geom.sigma_ambient - 0.05) < 0.003
    assert abs(geom.sigma_sub - 0.05) < 0.006


class Ball(torch.nn.Module):
    """Class 1 inside B2(c, r), class 0 outside."""

    def __init__(self, c, r):
        super().__init__()
        self.c, self.r = c, r

    def forward(self, x):
        inside = (x - self.c).flatten(1).norm(dim=1) <= self.r
        return torch.stack([(~inside).float(), inside.float()], dim=1)


def test_boundary_distance_from_ball_centre_is_radius():
    c = torch.zeros(1, 4, 4)
    g = torch.Generator().manual_seed(2)
    dist = boundary_distance(Ball(c, 0.7), c, 0, torch.randn(10, 1, 4, 4, generator=g), s_max=5.0, iters=30)
    assert torch.allclose(dist, torch.full((10,), 0.7), atol=1e-6)
    censored = boundary_distance(Ball(c, 0.7), c, 0, torch.randn(3, 1, 4, 4, generator=g), s_max=0.5)
    assert torch.all(censored == 0.5)


def test_toy_prediction_is_theorem_1():
    p = toy_prediction(r=3.0, sigma=0.5, n=20)
    assert math.isclose(p.p_perfect, stats.chi2.cdf(9 / 0.5, 20))
    assert math.isclose(p.p_eot, stats.chi2.cdf(9 / 0.25, 20))
    assert p.p_perfect < p.p_eot
    with pytest.raises(ValueError, match="sigma > 0"):
        toy_prediction(1.0, 0.0, 3)


class Shell(torch.nn.Module):
    """Class 1 (the true class) only in the shell 1 <= ||x|| <= 2: adversarial inside and outside it."""

    def forward(self, x):
        r = x.flatten(1).norm(dim=1)
        inside = (r >= 1) & (r <= 2)
        return torch.stack([(~inside).float(), inside.float()], dim=1)


def test_boundary_distance_finds_first_exit_of_a_non_convex_region():
    g = torch.Generator().manual_seed(3)
    dist = boundary_distance(Shell(), torch.zeros(1, 3, 3), 1, torch.randn(5, 1, 3, 3, generator=g), s_max=8.0)
    assert torch.allclose(dist, torch.ones(5), atol=8.0 / 16 / 2 ** 12)   # grid step / 2^iters
