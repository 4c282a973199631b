"""WideResNet (Zagoruyko & Komodakis 2016) with RobustBench's module names, so its CIFAR-10
`Standard` WRN-28-10 state dict (keys conv1, block1.layer.0.bn1, ..., bn1, fc) loads unchanged.

RobustBench's Standard model has no input normalisation: it takes [0, 1] images as they are.
Other RobustBench models load through the optional `robustbench` package
(`empirical.checkpoints.load_robustbench`, which keeps them under `robustbench_dir`).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class _WideBlock(nn.Module):
    """Pre-activation block. When the width changes, the shortcut (1x1 conv) sees the activated input."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = c_in == c_out
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        return out + (x if self.convShortcut is None else self.convShortcut(act))


class _Stage(nn.Module):
    def __init__(self, blocks: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[_WideBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                                     for i in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-width for 32x32 inputs in [0, 1] -> logits; depth = 6 k + 4 (28 -> 4 blocks per stage)."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6k + 4 with k >= 1, got {depth}")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be >= 1, got {widen_factor}")
        k = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = _Stage(k, widths[0], widths[1], 1)
        self.block2 = _Stage(k, widths[1], widths[2], 2)
        self.block3 = _Stage(k, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected [B, 3, H, W] images, got {tuple(x.shape)}")
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


def robustbench_dir(model_dir: str | Path | None = None) -> Path:
    """Where RobustBench checkpoints are kept: model_dir, else $XDG_CACHE_HOME/robustbench (~/.cache)."""
    if model_dir is not None:
        return Path(model_dir)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robustbench"
