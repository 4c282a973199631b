import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from empirical import attacks
from empirical.examples.defences import GlobalRNGDiffPure
from empirical.purifiers import DiffusionPurifier
from empirical.replay import (GlobalRNGReplay, ReplayedDefence, RNGKeys, StreamReplayNoise,
                              UncontrolledRandomnessError, check_replay, key_seed)


class EveryDraw(nn.Module):
    """Uses every global-RNG draw the wrapper must control: randn_like, rand, randint, bernoulli, dropout."""

    def forward(self, x):
        shift = torch.randint(0, 3, ()).item()
        h = torch.roll(x, shifts=shift, dims=-1) + 0.1 * torch.randn_like(x) + 0.05 * torch.rand(x.shape)
        h = h * torch.bernoulli(torch.full_like(x, 0.9))
        return F.dropout(h.flatten(1), 0.3, training=True)[:, :3]


class Noisy(nn.Module):
    def forward(self, x):
        return x + torch.randn_like(x)


def _keys(mode, replay=True, ids=(0, 1, 2, 3), purpose="replay"):
    return RNGKeys(mode, 7, purpose, ids=list(ids), batch_index=2, replay=replay)


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_replay_is_a_function_of_the_key_and_leaves_the_callers_rng_alone(images, mode):
    wrapper = GlobalRNGReplay(EveryDraw())
    cpu_state = torch.get_rng_state()
    first, second = wrapper(images, _keys(mode)), wrapper(images, _keys(mode))
    assert torch.equal(first, second)
    other = wrapper(images, RNGKeys(mode, 8, "replay", ids=[0, 1, 2, 3], batch_index=2))
    assert not torch.equal(first, other)
    fresh = _keys(mode, replay=False)
    a, b = wrapper(images, fresh), wrapper(images, fresh)
    assert not torch.equal(a, b)
    again = _keys(mode, replay=False)                   # a new run with the same keys repeats its draws
    assert torch.equal(wrapper(images, again), a) and torch.equal(wrapper(images, again), b)
    assert torch.equal(torch.get_rng_state(), cpu_state)


def test_batch_key_seeds_the_global_generator_like_an_explicit_generator(images):
    keys = _keys("batch")
    seed = keys.call_seeds(4)[0]
    reference = images + torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(GlobalRNGReplay(Noisy())(images, keys), reference)


def test_sample_keys_make_each_row_independent_of_its_batch(images):
    wrapper = GlobalRNGReplay(EveryDraw())
    whole = wrapper(images, _keys("sample", ids=[5, 6, 7, 8]))
    reordered = wrapper(images[[2, 0]], _keys("sample", ids=[7, 5]))
    alone = wrapper(images[3:], _keys("sample", ids=[8]))
    assert torch.equal(reordered, whole[[2, 0]]) and torch.equal(alone, whole[3:])
    assert not torch.equal(wrapper(images[:2], _keys("batch", ids=[0, 1])),
                           wrapper(images, _keys("batch"))[:2])   # per-batch draws depend on the batch


def test_key_subsets():
    fresh = _keys("sample", replay=False)
    sub = fresh.subset(torch.tensor([1, 3]))
    assert sub.ids == [1, 3]
    first = sub.call_seeds(2)
    assert fresh.call_seeds(4)[1] != first[0]            # the subset advanced the parent's counter of sample 1
    with pytest.raises(ValueError, match="subset"):
        _keys("batch").subset(torch.tensor([0]))
    assert _keys("batch").subset(torch.arange(4)).batch_index == 2
    assert len({key_seed(0, "replay", 1), key_seed(0, "clean", 1), key_seed(1, "replay", 1)}) == 3


class NumpyNoise(nn.Module):
    def forward(self, x):
        return x + torch.from_numpy(np.random.standard_normal(x.shape).astype(np.float32))


class PythonNoise(nn.Module):
    def forward(self, x):
        return x + random.random()


class OwnGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.gen = torch.Generator().manual_seed(0)

    def forward(self, x):
        return x + torch.randn(x.shape, generator=self.gen)


@pytest.mark.parametrize("model, words", [(NumpyNoise(), "NumPy"), (PythonNoise(), "random")])
def test_draws_from_numpy_or_python_rng_are_refused(images, model, words):
    with pytest.raises(UncontrolledRandomnessError, match=words):
        GlobalRNGReplay(model)(images, _keys("batch"))


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return x * self.calls


@pytest.mark.parametrize("model", [OwnGenerator(), Counter()])
def test_randomness_or_state_the_key_does_not_control_fails_the_replay_check(images, model):
    with pytest.raises(UncontrolledRandomnessError, match="same replay key"):
        check_replay(GlobalRNGReplay(model), images, _keys("batch"))


def test_replayed_defence_gives_gradients_under_the_key(images, linear_classifier):
    model = nn.Sequential(Noisy(), linear_classifier)
    defence, keys = ReplayedDefence(model), _keys("batch")
    x = images.clone().requires_grad_(True)
    grads = [torch.autograd.grad(defence.differentiable(x, keys).sum(), x)[0] for _ in range(2)]
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0
    assert not defence(x, keys).requires_grad                    # evaluation builds no graph
    with pytest.raises(ValueError, match="RNGKeys"):
        defence(images, None)


@pytest.mark.parametrize("mode, t_star, s_star", [("batch", 4, None), ("sample", 6, 3)])
def test_naive_diffpure_under_the_wrapper_matches_native_diffpure_on_the_same_stream(
        unet, scheduler, images, cnn_classifier, mode, t_star, s_star):
    """Identical noise -> identical purifications, attacks and replay robust accuracy (Algorithm 1)."""
    naive = ReplayedDefence(GlobalRNGDiffPure(unet, scheduler, t_star, s_star))
    native = DiffusionPurifier("diffpure", unet, scheduler, t_star, s_star,
                               unet_batch=1 if mode == "sample" else None)
    keys = _keys(mode)
    assert torch.equal(naive(images, keys), native(images, StreamReplayNoise(keys)))
    y = torch.tensor([0, 1, 2, 0])
    budget = dict(eps=0.1, steps=2, step_size=0.05, gradient="bpda", keep="final")
    adv_naive = attacks.pgd(cnn_classifier, naive, images, y, noise=keys, **budget)
    adv_native = attacks.pgd(cnn_classifier, native, images, y, noise=StreamReplayNoise(keys), **budget)
    assert torch.equal(adv_naive.x_adv, adv_native.x_adv)
    assert not torch.equal(adv_naive.x_adv, images)
    acc = [attacks.evaluate(cnn_classifier, p, adv.x_adv, y, mode="replay", noise=n).accuracy
           for p, adv, n in ((naive, adv_naive, keys), (native, adv_native, StreamReplayNoise(keys)))]
    assert acc[0] == acc[1]


class OwnedCoin(nn.Module):
    """One coin per call from a random.Random the model owns."""

    def __init__(self, seed):
        super().__init__()
        self.rng = random.Random(seed)

    def forward(self, x):
        return x + self.rng.randrange(2)


def test_an_owned_coin_is_caught_at_every_seed_and_named(images):
    for seed in range(20):
        with pytest.raises(UncontrolledRandomnessError, match=r"model\.rng \(a random\.Random the model owns\)"):
            check_replay(GlobalRNGReplay(OwnedCoin(seed)), images, _keys("batch"))
    passed = 0
    for seed in range(20):
        try:
            check_replay(GlobalRNGReplay(OwnedCoin(seed)), images, _keys("batch"), calls=2)
            passed += 1
        except UncontrolledRandomnessError:
            pass
    assert passed > 0                      # two calls let the coin through at some seeds


def test_state_changed_between_calls_is_named(images):
    with pytest.raises(UncontrolledRandomnessError, match=r"state the model changes between calls: model\.calls"):
        check_replay(GlobalRNGReplay(Counter()), images, _keys("batch"))


def test_a_model_that_raises_is_one_value_error_naming_the_input(images):
    class Broken(nn.Module):
        def forward(self, x):
            return x.view(3, -1)

    with pytest.raises(ValueError, match=r"the model raised RuntimeError on a \[4, 1, 8, 8\] input"):
        GlobalRNGReplay(Broken())(images, _keys("batch"))
