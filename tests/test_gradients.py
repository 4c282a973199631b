"""BPDA is straight-through; the checkpointed full gradient matches finite differences."""
import pytest
import torch

from empirical.gradients import bpda_purify, full_purify, loss_grad, purify_with_grad
from empirical.noise import BatchReplayNoise, SampleReplayNoise
from empirical.purifiers import make_purifier

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bpda_value_is_purified_and_gradient_is_identity(unet, scheduler, images):
    pur = make_purifier("diffpure", unet, scheduler, t_star=5)
    noise = BatchReplayNoise(0)
    x = images.clone().requires_grad_(True)
    out = bpda_purify(pur, x, noise)
    assert torch.equal(out.detach(), pur(images, noise))
    w = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    (g,) = torch.autograd.grad((w * out).sum(), x)
    assert torch.equal(g, w)


@pytest.mark.parametrize("name", ["revpure", "diffpure", "ddim"])
def test_full_gradient_matches_finite_differences(name, unet, scheduler, images):
    unet = unet.double()
    pur = make_purifier(name, unet, scheduler, t_star=4, clip=None)
    noise = SampleReplayNoise([0, 1, 2, 3], run_seed=1)
    x0 = (0.25 + 0.5 * images).double()                     # interior: no [0, 1] clamp nearby
    w = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    d = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def f(x):
        return float((w * pur(x, noise)).sum())

    x = x0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((w * full_purify(pur, x, noise)).sum(), x)
    h = 1e-5
    fd = (f(x0 + h * d) - f(x0 - h * d)) / (2 * h)
    assert abs(float((g * d).sum()) - fd) < 1e-6 * max(1.0, abs(fd))
    x2 = x0.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad((w * full_purify(pur, x2, noise, checkpoint=False)).sum(), x2)
    assert torch.allclose(g, g2, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(g, w)                          # the UNet does change the gradient


def test_loss_grad_per_sample_and_dispatch(unet, scheduler, images, cnn_classifier):
    pur = make_purifier("revpure", unet, scheduler, t_star=3)
    y = torch.tensor([0, 1, 2, 0])
    ids = [5, 6, 7, 8]
    full = loss_grad(cnn_classifier, pur, images, y, SampleReplayNoise(ids, 0), "full")
    part = loss_grad(cnn_classifier, pur, images[1:3], y[1:3], SampleReplayNoise(ids[1:3], 0), "full")
    assert torch.allclose(full.grad[1:3], part.grad, atol=1e-6)
    assert torch.allclose(full.loss[1:3], part.loss, atol=1e-6)
    bp = loss_grad(cnn_classifier, pur, images, y, SampleReplayNoise(ids, 0), "bpda")
    assert not torch.allclose(bp.grad, full.grad)
    with pytest.raises(ValueError, match="gradient"):
        purify_with_grad(pur, images, None, "magic")
