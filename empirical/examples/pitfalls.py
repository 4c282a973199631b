"""Defences that hide their randomness or their gradient from a careless audit, on the embedded digits.

Each factory returns an ``nn.Module`` mapping [B, 1, 16, 16] images in [0, 1] to logits, usable as
``python -m empirical.audit --model empirical.examples.pitfalls:FACTORY``:

- ``coin_shift``: one call-wide coin from torch's global RNG picks a one-pixel shift (k = 2 outcomes), so two
  calls agree half the time and a two-call randomness check calls it deterministic.
- ``owned_coin_shift``: the same coin from a ``random.Random`` the model owns: replay cannot seed it.
- ``quantised``: ``torch.round`` to 8 grey levels before the CNN; its gradient is exactly zero, so PGD through
  it never moves and reports clean accuracy as robust. BPDA through its stages ``purifier`` and
  ``classifier`` does not have that problem.
- ``activation_pruning``: stochastic activation pruning (Dhillon et al. 2018): features are kept by
  Bernoulli draws whose probabilities depend on the input, so a replayed seed does not fix the draws.
"""
from __future__ import annotations

import random

import torch
from torch import nn

from empirical.examples.defences import Purified

COIN_OUTCOMES = 2          # shifts 0 .. k - 1 pixels to the right
QUANTISE_LEVELS = 8        # grey levels 0, 1/7, ..., 1
PRUNING_DRAWS = 0.5        # SAP draws with replacement, as a fraction of the feature count


class CoinShift(nn.Module):
    """Roll the batch right by ``torch.randint(0, k, ())`` pixels: one draw per call, k outcomes."""

    def __init__(self, outcomes: int = COIN_OUTCOMES):
        super().__init__()
        self.outcomes = int(outcomes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=int(torch.randint(0, self.outcomes, ())), dims=-1)


class OwnedCoinShift(nn.Module):
    """The same shift, drawn from a ``random.Random`` the module owns (state the global RNG does not hold)."""

    def __init__(self, outcomes: int = COIN_OUTCOMES, seed: int = 0):
        super().__init__()
        self.outcomes, self.rng = int(outcomes), random.Random(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, shifts=self.rng.randrange(self.outcomes), dims=-1)


class Quantise(nn.Module):
    """Round to ``levels`` grey levels: piecewise constant, so autograd's gradient is exactly zero."""

    def __init__(self, levels: int = QUANTISE_LEVELS):
        super().__init__()
        self.levels = int(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


class ActivationPruningCNN(nn.Module):
    """The digits CNN with stochastic activation pruning on its features: with p_j = |h_j| / sum |h| and r
    draws with replacement, feature j is kept with probability q_j = 1 - (1 - p_j)^r and rescaled by 1 / q_j
    (the Bernoulli form of SAP's multinomial draws)."""

    def __init__(self, cnn: nn.Module, draws: float = PRUNING_DRAWS):
        super().__init__()
        self.cnn, self.draws = cnn, float(draws)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.cnn.features(x - 0.5)
        flat = h.flatten(1)
        p = flat.abs() / flat.abs().sum(1, keepdim=True).clamp_min(1e-12)
        q = 1 - (1 - p) ** max(1.0, self.draws * flat.shape[1])
        keep = torch.bernoulli(q.detach())
        return self.cnn.head((flat * keep / q.clamp_min(1e-12)).view_as(h))


def _cnn() -> nn.Module:
    from empirical.checkpoints import load_digits_classifier

    return load_digits_classifier("clean")


def coin_shift() -> nn.Module:
    """A global-RNG coin (k = 2) shifting the image by 0 or 1 pixel before the clean digits CNN."""
    return Purified(CoinShift(), _cnn()).eval()


def owned_coin_shift() -> nn.Module:
    """The same coin from a random.Random the model owns: the audit must refuse it."""
    return Purified(OwnedCoinShift(), _cnn()).eval()


def quantised() -> nn.Module:
    """torch.round to 8 grey levels before the clean digits CNN (deterministic, zero gradient)."""
    return Purified(Quantise(), _cnn()).eval()


def activation_pruning() -> nn.Module:
    """The clean digits CNN with stochastic activation pruning of its features (input-dependent draws)."""
    return ActivationPruningCNN(_cnn()).eval()
