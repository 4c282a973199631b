"""The audit's preflight probes on tiny models: randomness with few outcomes, draws that move with the input,
gradients that carry no information, stages found for BPDA."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from empirical.audit_probes import (MISS_BOUND, PROBE_CALLS, cross_entropy_of, find_stages, gradient_health,
                                    probe_input_dependence, probe_randomness)
from empirical.replay import GlobalRNGReplay, ReplayedDefence, RNGKeys


def _keys(seed, replay=False, n=4):
    return RNGKeys("batch", seed, "probe", ids=list(range(n)), replay=replay)


class Coin(nn.Module):
    """One draw per call among k outcomes, shifting every image by the same amount."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return torch.roll(x, int(torch.randint(0, self.k, ())), dims=-1).flatten(1)[:, :3]


def test_the_probe_states_a_call_count_that_bounds_the_miss_below_one_in_a_million():
    assert PROBE_CALLS == 21 and 2.0 ** (1 - PROBE_CALLS) <= MISS_BOUND < 2.0 ** (2 - PROBE_CALLS)


@pytest.mark.parametrize("k", [2, 3, 16])
def test_a_coin_with_k_outcomes_is_found_randomized_at_every_seed(images, k):
    wrapper = GlobalRNGReplay(Coin(k))
    for seed in range(40):
        probe = probe_randomness(wrapper, images, _keys(seed))
        assert probe.randomized and probe.varying_samples == 4 and 2 <= probe.distinct_outputs <= k, seed
    assert probe.calls == 21 and probe.miss_bound <= 1e-6


def test_two_calls_would_have_missed_the_coin(images):
    """The probe's strength is what catches it: two calls agree for a share of seeds near 1/2."""
    wrapper = GlobalRNGReplay(Coin(2))
    missed = sum(not probe_randomness(wrapper, images, _keys(seed), calls=2).randomized for seed in range(40))
    assert 8 <= missed <= 32


def test_a_deterministic_model_is_not_randomized_and_per_sample_variation_is_counted(images):
    assert not probe_randomness(GlobalRNGReplay(nn.Flatten()), images, _keys(0)).randomized

    class FirstRowOnly(nn.Module):
        def forward(self, x):
            noise = torch.zeros_like(x)
            noise[:1] = torch.randn_like(x[:1])
            return (x + noise).flatten(1)

    probe = probe_randomness(GlobalRNGReplay(FirstRowOnly()), images, _keys(0))
    assert probe.randomized and probe.varying_samples == 1 and probe.samples == 4
    with pytest.raises(ValueError, match="fresh keys"):
        probe_randomness(GlobalRNGReplay(FirstRowOnly()), images, _keys(0, replay=True))


class InputBernoulli(nn.Module):
    def forward(self, x):
        return (x * torch.bernoulli(x.clamp(0.05, 0.95))).flatten(1)


class ConstantBernoulli(nn.Module):
    def forward(self, x):
        return (x * torch.bernoulli(torch.full_like(x, 0.7)) + torch.randn_like(x)).flatten(1)


class Categorical(nn.Module):
    def forward(self, x):
        probs = F.softmax(8 * x.flatten(1), dim=1)
        picks = torch.distributions.Categorical(probs=probs).sample((32,))
        return x.flatten(1) + F.one_hot(picks, probs.shape[1]).float().mean(0)


@pytest.mark.parametrize("model, dependent", [(InputBernoulli(), True), (Categorical(), True),
                                              (ConstantBernoulli(), False), (Coin(3), False)])
def test_draws_that_move_with_the_input_are_found(images, model, dependent):
    g = torch.Generator().manual_seed(0)
    found = probe_input_dependence(GlobalRNGReplay(model), images, _keys(0, replay=True), _keys(1),
                                   {"1e-3": 1e-3, "0.03": 0.03}, g)
    assert found.dependent == dependent
    if dependent:
        assert found.draws > 0 and found.moved["0.03"] > 0 and found.fresh > found.moved["0.03"]
    else:
        assert all(v == 0 for v in found.moved.values())


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(64, 3, generator=g))

    def forward(self, x):
        return x.flatten(1) @ self.w


class Flip(torch.autograd.Function):
    """Identity forward, negated gradient backward: a gradient that points the wrong way."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return -g


@pytest.mark.parametrize("wrap, status", [
    (lambda f, x: f(x), "healthy"),
    (lambda f, x: f(torch.round(x * 4) / 4), "zero"),
    (lambda f, x: f(x).detach(), "missing"),
    (lambda f, x: f(x) + 0 * torch.sqrt(x - 2).sum(), "non-finite"),
    (lambda f, x: f(Flip.apply(x)), "uninformative"),
])
def test_gradient_health_names_what_is_wrong(images, wrap, status):
    model, y = Linear(), torch.tensor([0, 1, 2, 0])
    loss, grad = cross_entropy_of(lambda x: wrap(model, x), y)
    health = gradient_health(loss, grad, images, step=0.05, norm="linf", generator=torch.Generator().manual_seed(0))
    assert health.status == status and health.obfuscated == (status != "healthy")
    if status in ("healthy", "zero", "uninformative"):
        assert health.gain_estimate > 0
    if status == "healthy":
        assert health.gain_gradient > health.gain_estimate
    assert math.isfinite(health.gain_gradient) or status in ("non-finite",)


class Composed(nn.Module):
    def __init__(self, classifier):
        super().__init__()
        self.noise, self.head = ReplayedNoise(), classifier

    def forward(self, x):
        return self.head(self.noise(x))


class ReplayedNoise(nn.Module):
    def forward(self, x):
        return x + 0.1 * torch.randn_like(x)


def test_stages_are_found_when_two_children_compose_the_model(images, linear_classifier):
    model = Composed(linear_classifier)
    keys = _keys(0, replay=True)
    whole = GlobalRNGReplay(model)(images, keys)
    assert find_stages(model, images, keys, whole) == ("noise", "head")
    one_child = nn.Sequential(linear_classifier)
    assert find_stages(one_child, images, keys, GlobalRNGReplay(one_child)(images, keys)) is None
    assert find_stages(linear_classifier, images, keys, GlobalRNGReplay(linear_classifier)(images, keys)) == ("0", "1")
    assert find_stages(lambda x: x, images, keys, whole) is None
    assert torch.equal(ReplayedDefence(model)(images, keys), whole)
