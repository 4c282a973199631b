"""Seeded weight initialisation without the global RNG.

torch's layers initialise themselves from the global generator; `seeded_init` redraws every conv and
linear layer as torch's default init does (kaiming-uniform with a = sqrt(5), bias uniform in
+-1/sqrt(fan_in)) from a generator the caller passes, so model construction is reproducible and leaves
the global RNG alone.
"""
from __future__ import annotations

import math

import torch


def seeded_init(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Re-initialise `module`'s conv / linear layers in place from `generator`; returns the module."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    bound = 1 / math.sqrt(layer.weight[0].numel())
                    torch.nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return module
