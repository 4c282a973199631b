"""Gradients of a classifier loss through a purifier: BPDA (straight-through) or the full chain.

BPDA (Athalye et al., 2018; the paper's main attack, Sec. 3): forward value P(x), backward identity.
Full: autograd through every UNet call, each step under torch.utils.checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .noise import NoiseSource

GRADIENTS = ("bpda", "full")


class _StraightThrough(torch.autograd.Function):
    """Returns ``value`` exactly; passes the incoming gradient unchanged to ``x``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def bpda_purify(purifier, x: torch.Tensor, noise: NoiseSource | None = None) -> torch.Tensor:
    """P(x) in the forward pass (computed without autograd), identity in the backward pass."""
    with torch.no_grad():
        value = purifier(x.detach(), noise)
    return _StraightThrough.apply(x, value)


def full_purify(purifier, x: torch.Tensor, noise: NoiseSource | None = None, *, checkpoint: bool = True) -> torch.Tensor:
    """P(x) with autograd through the whole reverse chain (checkpointed per step unless checkpoint=False)."""
    return purifier.differentiable(x, noise, checkpoint=checkpoint)


def purify_with_grad(purifier, x: torch.Tensor, noise: NoiseSource | None, gradient: str = "bpda",
                     *, checkpoint: bool = True) -> torch.Tensor:
    """Dispatch on ``gradient`` in {"bpda", "full"}."""
    if gradient == "bpda":
        return bpda_purify(purifier, x, noise)
    if gradient == "full":
        return full_purify(purifier, x, noise, checkpoint=checkpoint)
    raise ValueError(f"unknown gradient {gradient!r}; expected one of {GRADIENTS}")


@dataclass
class LossGrad:
    """Gradient of the per-sample cross-entropy w.r.t. the input, with the loss and logits it came from."""

    grad: torch.Tensor
    loss: torch.Tensor
    logits: torch.Tensor


def loss_grad(classifier: torch.nn.Module, purifier, x: torch.Tensor, y: torch.Tensor, noise: NoiseSource | None,
              gradient: str = "bpda", *, checkpoint: bool = True) -> LossGrad:
    """d CE(F(P(x)), y) / dx per sample for one purification (one noise draw)."""
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = classifier(purify_with_grad(purifier, xg, noise, gradient, checkpoint=checkpoint))
        loss = F.cross_entropy(logits, y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), xg)
    return LossGrad(grad=grad.detach(), loss=loss.detach(), logits=logits.detach())
