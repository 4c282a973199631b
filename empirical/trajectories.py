"""Measurements on purified states shared by Figs. 1, 3, 4 and Table S3 (paper Secs. 5.1 and 6).

Directions are x_t - x0 with x0 the clean image, in [0, 1] image units, flattened. Correlations are
Pearson correlations between direction vectors (each centred over its pixels, then cosine).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from empirical import attacks
from empirical.noise import SampleReplayNoise
from empirical.protocol import replay_source


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().flatten(1).cpu().numpy()


def correlation_matrix(dirs: np.ndarray) -> np.ndarray:
    """Pearson correlations between the rows of [K, n] direction vectors (rows must not be constant)."""
    d = np.asarray(dirs, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2:
        raise ValueError(f"need [K >= 2, n] directions, got shape {d.shape}")
    c = d - d.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(c, axis=1)
    if (norms == 0).any():
        raise ValueError("a direction is constant over pixels; its correlation is undefined")
    u = c / norms[:, None]
    return np.clip(u @ u.T, -1.0, 1.0)


def off_diagonal(m: np.ndarray) -> np.ndarray:
    """The strictly upper-triangular entries of a square matrix (each pair once)."""
    return m[np.triu_indices(m.shape[0], k=1)]


@dataclass
class CorrelationStudy:
    """Fig. 1: the correlation matrix of K purified directions and its off-diagonal summary."""

    matrix: np.ndarray
    mean: float
    min: float
    max: float

    def to_dict(self) -> dict:
        return {"matrix": self.matrix.tolist(), "mean": self.mean, "min": self.min, "max": self.max}


def _study(dirs: np.ndarray) -> CorrelationStudy:
    m = correlation_matrix(dirs)
    off = off_diagonal(m)
    return CorrelationStudy(m, float(off.mean()), float(off.min()), float(off.max()))


def same_state_different_noise(purifier, x0: torch.Tensor, k: int, seed: int) -> CorrelationStudy:
    """Fig. 1a: purify one clean image x0 ([1, C, H, W]) under k different noises; directions P_j(x0) - x0."""
    xs = x0.expand(k, *x0.shape[1:]).contiguous()
    out = purifier(xs, SampleReplayNoise(range(k), seed))
    return _study(_flat(out - xs))


def ball_different_states_same_noise(purifier, x0: torch.Tensor, k: int, radius: float, seed: int) -> CorrelationStudy:
    """Fig. 1b: k initial states uniform on the l2 sphere of `radius` around x0 (clamped to [0, 1]),
    purified with one and the same noise; directions P(x0 + delta_j) - x0."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn((k, *x0.shape[1:]), generator=g, dtype=x0.dtype)
    delta = radius * delta / delta.flatten(1).norm(dim=1).view(-1, *[1] * (x0.ndim - 1))
    xs = (x0 + delta).clamp(0, 1)
    out = purifier(xs, SampleReplayNoise([seed % 1000] * k, seed))
    return _study(_flat(out - x0))


@dataclass
class Curves:
    """Per process step (rows) and image (columns): ||x_t - x0||, cos and inner product with x_adv - x0."""

    position: list[int]
    l2: np.ndarray
    cosine: np.ndarray
    inner: np.ndarray
    end_projection: np.ndarray   # <P(x_adv) - x0, unit(x_adv - x0)> of the purified output (what F sees)
    adv_norm: np.ndarray         # ||x_adv - x0||_2


def _measures(states: list[torch.Tensor], x0: torch.Tensor, a: np.ndarray):
    an = np.linalg.norm(a, axis=1)
    l2, cos, inner = [], [], []
    for s in states:
        d = _flat(s) - _flat(x0)
        ip = (d * a).sum(axis=1)
        dn = np.linalg.norm(d, axis=1)
        l2.append(dn), inner.append(ip)
        cos.append(np.where(dn * an > 0, ip / np.maximum(dn * an, 1e-300), 0.0))
    return np.array(l2), np.array(cos), np.array(inner)


def adversarial_curves(purifier, x0: torch.Tensor, x_adv: torch.Tensor, noise, keep_every: int = 1) -> Curves:
    """Fig. 3: follow x_t from x_adv through the purifier (DiffPure: also the forward states, with the forward
    noise the purifier draws from the same replay source), measuring x_t - x0 against x_adv - x0."""
    traj = purifier.trajectory(x_adv, noise, keep_every=keep_every)
    t_star = getattr(purifier, "t_star", 0)
    states = [x_adv]
    position = [0]
    reverse = [(s + 1) / 2 for s in traj.states] if traj.scale == "[-1, 1]" else list(traj.states)
    if getattr(purifier, "method", None) == "diffpure":
        z = noise.draw("forward", t_star, x_adv.shape, x_adv.device, x_adv.dtype)
        xs = 2 * x_adv - 1
        for t in range(keep_every, t_star + 1, keep_every):
            abar = float(purifier.alphas_cumprod[t - 1])
            states.append((abar ** 0.5 * xs + (1 - abar) ** 0.5 * z + 1) / 2)
            position.append(t)
        offset, reverse, steps = t_star, reverse[1:], traj.steps[1:]
    else:
        offset, reverse, steps = 0, reverse[1:] if t_star else [], traj.steps[1:] if t_star else []
    states += reverse
    position += [offset + t_star - s for s in steps]
    a = _flat(x_adv - x0)
    l2, cos, inner = _measures(states, x0, a)
    an = np.linalg.norm(a, axis=1)
    end = ((_flat(traj.output) - _flat(x0)) * a).sum(axis=1) / np.maximum(an, 1e-300)
    return Curves(position, l2, cos, inner, end, an)


def bpda_fixed_noise(classifier, purifier, x, y, ids, chunk: int, protocol):
    """BPDA under the chunk's fixed noise, exactly as protocol.run_chunk crafts it (best iterate kept);
    returns (x_adv, correct under the same noise, the replay source)."""
    fixed = replay_source(protocol, ids, chunk)
    adv = attacks.bpda(classifier, purifier, x, y, noise=fixed, keep="best", **protocol.attack_kwargs)
    ok = attacks.evaluate(classifier, purifier, adv.x_adv, y, mode="replay", noise=fixed).correct[0]
    return adv.x_adv, ok, fixed


def random_perturbations(x0: torch.Tensor, m: int, eps: float, seed: int) -> torch.Tensor:
    """m initial states x0 + delta, delta uniform in the l_inf box of radius eps, clamped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    delta = (torch.rand((m, *x0.shape[1:]), generator=g, dtype=x0.dtype) * 2 - 1) * eps
    return (x0 + delta).clamp(0, 1)


def purified_directions(purifier, x0: torch.Tensor, xs: torch.Tensor, seed: int, batch_size: int = 256,
                        progress=None) -> np.ndarray:
    """P(x_j) - x0 for each row of xs, each under its own noise (sample id j), in batches."""
    out = []
    for lo in range(0, xs.shape[0], batch_size):
        ids = range(lo, min(lo + batch_size, xs.shape[0]))
        out.append(_flat(purifier(xs[lo:lo + batch_size], SampleReplayNoise(ids, seed)) - x0))
        if progress is not None:
            progress.update(1)
    return np.concatenate(out)


def explained_variance(dirs: np.ndarray) -> np.ndarray:
    """PCA: the cumulative explained-variance ratio of [M, n] directions (centred over the M samples)."""
    d = np.asarray(dirs, dtype=np.float64)
    s = np.linalg.svd(d - d.mean(axis=0), compute_uv=False)
    var = s ** 2
    return np.cumsum(var) / var.sum()


def components_for(cumulative: np.ndarray, fraction: float = 0.9) -> int:
    """Number of principal components needed to explain `fraction` of the variance."""
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)
