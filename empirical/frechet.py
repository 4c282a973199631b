"""Fréchet distance between image sets in a classifier's feature space (paper Sec. 5.4, Table 3's FID column).

There is no Inception network offline, so on digits the features are the penultimate activations of the
project's digits classifier (the input of its last Linear layer): a "classifier-space Fréchet distance",
not FID. The standard FID is available when the user supplies the TorchScript Inception of the
StyleGAN2-ADA / clean-fid metrics (inception-2015-12-05.pt); nothing is downloaded.

`python -m empirical.frechet` prints the digits reference: train vs test images in classifier space.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

INCEPTION_HINT = ("standard FID needs the TorchScript Inception-v3 of the FID metric (inception-2015-12-05.pt, "
                  "published with NVIDIA's stylegan2-ada-pytorch metrics; download it on a machine with internet "
                  "and pass its path); nothing is downloaded here")


@dataclass
class FeatureStats:
    """Mean and covariance of a feature set (n rows, d features)."""

    mu: np.ndarray
    cov: np.ndarray
    n: int


def feature_stats(features: np.ndarray) -> FeatureStats:
    """Sample mean and unbiased covariance of [n, d] features (n >= 2, finite)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be [n >= 2, d], got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    return FeatureStats(f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1]), f.shape[0])


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2}) (Fréchet / Wasserstein-2 between Gaussians).

    A singular product gets eps I added to both covariances (as in the FID reference code)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched shapes: mu {mu1.shape} vs {mu2.shape}, cov {cov1.shape} vs {cov2.shape}")
    with warnings.catch_warnings():      # singular products (dead ReLU features) are expected and handled
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov1.shape[0]) * eps
        covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean), 0.0))


def frechet_between(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussian fits of two feature sets."""
    a, b = feature_stats(features_a), feature_stats(features_b)
    return frechet_distance(a.mu, a.cov, b.mu, b.cov)


def _last_linear(model: torch.nn.Module) -> torch.nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer to take penultimate features from")
    return linears[-1]


def classifier_features(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Penultimate features (the input of the classifier's last Linear layer) of images x in [0, 1]."""
    from empirical.purifiers import check_images
    check_images(x)
    captured: list[torch.Tensor] = []
    hook = _last_linear(model).register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach().flatten(1)))
    try:
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                model(x[i:i + batch_size])
    finally:
        hook.remove()
    return torch.cat(captured).double().cpu().numpy()


def load_inception(path: str | Path | None) -> torch.nn.Module:
    """The user's TorchScript FID Inception (called as detector(x_0_255, return_features=True) -> [B, 2048])."""
    if path is None:
        raise FileNotFoundError(f"no Inception weights given: {INCEPTION_HINT}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights {path} not found: {INCEPTION_HINT}")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:   # a state dict or pickle is not the TorchScript detector
        raise ValueError(f"{path} is not a TorchScript Inception ({exc}); {INCEPTION_HINT}") from exc


def inception_features(detector: torch.nn.Module, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """FID features of RGB images x in [0, 1] ([B, 3, H, W]; grey images are repeated to 3 channels)."""
    from empirical.purifiers import check_images
    check_images(x)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[1] != 3:
        raise ValueError(f"Inception features need 1 or 3 channels, got {x.shape[1]}")
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            batch = (x[i:i + batch_size] * 255).round().to(torch.uint8)
            out.append(detector(batch, return_features=True).double().flatten(1))
    return torch.cat(out).cpu().numpy()
