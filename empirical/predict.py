"""Read a real purifier through the toy model: measured sigma_eff, n_eff, r_eff -> Theorem 1 predictions.

For an input x the purified outputs P(x; eta_j) over noise draws eta_j spread with covariance C.
The toy model of Sec. 4.2 is isotropic noise of variance sigma^2 in n dimensions; we match it by
n_eff = (tr C)^2 / tr(C^2) (participation ratio) and sigma_sub^2 = tr C / n_eff, the variance per
dimension inside the subspace the noise occupies. r_eff is the distance from a replay-successful
purified adversarial output to the classifier's decision boundary, measured by bisection along
directions of the noise itself (and, for reference, along random directions of the ambient space).
Then a replay-crafted attack survives fresh noise with probability Psi(r^2 / (2 sigma_sub^2); n_eff)
(the perfect attack of Theorem 1) and an EOT attack with Psi(r^2 / sigma_sub^2; n_eff).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from toymodel.theory import psi


@dataclass
class NoiseGeometry:
    """Spread of purified outputs of one input across noise draws."""

    sigma_ambient: float   # sqrt(tr C / n): per-pixel standard deviation
    sigma_sub: float       # sqrt(tr C / n_eff): per-dimension std inside the noise subspace
    n_eff: float           # participation ratio of C (bias-corrected)
    n_ambient: int
    draws: int


def participation_ratio(samples: torch.Tensor) -> tuple[float, float]:
    """Bias-corrected (tr C, (tr C)^2 / tr C^2) from D samples [D, n] of a Gaussian.

    With m = D - 1 and S the sample covariance, E tr S^2 = (1 + 1/m) tr C^2 + (tr C)^2 / m and
    E (tr S)^2 = (tr C)^2 + 2 tr C^2 / m (Wishart moments); solving gives unbiased estimates of
    tr C^2 and (tr C)^2, whose ratio stays near n for isotropic noise even when D << n.
    """
    if samples.ndim != 2 or samples.shape[0] < 3:
        raise ValueError(f"need samples of shape [D >= 3, n], got {tuple(samples.shape)}")
    x = samples.double()
    x = x - x.mean(dim=0, keepdim=True)
    m = x.shape[0] - 1
    gram = x @ x.T
    tr_s = torch.trace(gram).item() / m
    tr_s2 = (gram ** 2).sum().item() / m ** 2
    tr_c2 = m * (m * tr_s2 - tr_s ** 2) / ((m + 2) * (m - 1))
    tr_c_sq = tr_s ** 2 - 2 * tr_c2 / m
    if tr_c2 <= 0 or tr_c_sq <= 0:
        return tr_s, float("nan")
    return tr_s, tr_c_sq / tr_c2


def noise_geometry(purified: torch.Tensor) -> NoiseGeometry:
    """sigma and n_eff of the toy model matched to D purifications [D, C, H, W] of one input."""
    flat = purified.reshape(purified.shape[0], -1)
    tr_c, n_eff = participation_ratio(flat)
    n = flat.shape[1]
    return NoiseGeometry(sigma_ambient=(tr_c / n) ** 0.5, sigma_sub=(tr_c / n_eff) ** 0.5 if n_eff == n_eff else float("nan"),
                         n_eff=n_eff, n_ambient=n, draws=flat.shape[0])


@torch.no_grad()
def boundary_distance(classifier: torch.nn.Module, z: torch.Tensor, y: int, directions: torch.Tensor,
                      s_max: float, grid: int = 16, iters: int = 12) -> torch.Tensor:
    """Distance from an adversarial point z [C,H,W] to the first point of class y along each direction.

    The adversarial region need not be convex or star-shaped (far from the data the classifier
    answers other wrong classes), so a scan over `grid` points of [0, s_max] finds the first
    segment that reaches class y and bisection refines it. Directions that never reach class y
    within s_max return s_max (censored). No clipping to [0, 1]: the toy model's noise is unbounded.
    """
    if directions.shape[1:] != z.shape:
        raise ValueError(f"directions {tuple(directions.shape)} do not match the point {tuple(z.shape)}")
    u = directions / directions.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * z.ndim)
    view = (-1,) + (1,) * z.ndim
    is_y = lambda s: classifier(z + s.view(view) * u).argmax(dim=1) == y
    k = u.shape[0]
    hi = torch.full((k,), float(s_max), dtype=z.dtype, device=z.device)
    found = torch.zeros(k, dtype=torch.bool, device=z.device)
    for j in range(1, grid + 1):
        s = torch.full_like(hi, s_max * j / grid)
        hit = is_y(s) & ~found
        hi = torch.where(hit, s, hi)
        found |= hit
    lo = (hi - s_max / grid).clamp_min(0)
    for _ in range(iters):
        mid = (lo + hi) / 2
        back = is_y(mid)
        hi = torch.where(found & back, mid, hi)
        lo = torch.where(found & ~back, mid, lo)
    return torch.where(found, hi, torch.full_like(hi, float(s_max)))


@dataclass
class ToyPrediction:
    """Theorem 1 probabilities that an attack landing at distance r inside the region survives fresh noise."""

    p_perfect: float   # Psi(r^2 / (2 sigma^2); n): crafted under one draw, tested under another
    p_eot: float       # Psi(r^2 / sigma^2; n): crafted against the mean
    r: float
    sigma: float
    n: float


def toy_prediction(r: float, sigma: float, n: float) -> ToyPrediction:
    """Theorem 1 applied with the matched toy parameters (chi-square cdf with real-valued dof)."""
    if not (r >= 0 and sigma > 0 and n > 0):
        raise ValueError(f"toy prediction needs r >= 0, sigma > 0, n > 0 (got r={r}, sigma={sigma}, n={n})")
    return ToyPrediction(p_perfect=psi(r ** 2 / (2 * sigma ** 2), n), p_eot=psi(r ** 2 / sigma ** 2, n),
                         r=r, sigma=sigma, n=n)


PSEUDO_ID_STRIDE = 1 << 20   # keys for the D prediction draws of sample i: i * stride + j


@torch.no_grad()
def measure_transfer(classifier, purifier, x_adv: torch.Tensor, y: torch.Tensor, ids: torch.Tensor,
                     fixed, clean_replay: list, bpda_replay: list, fresh_factory, protocol) -> list[dict]:
    """Toy-model reading of replay-successful samples: geometry, r_eff, predicted and measured transfer.

    For up to `protocol.predict_samples` samples that were correct clean and fooled under replay,
    purify the adversarial input under `predict_draws` fresh draws, match sigma and n_eff, measure
    r_eff along the noise directions delta_j = P(x; eta_j) - P(x; eta_0), and compare Theorem 1's
    Psi(r^2/(2 sigma^2); n_eff) with the fraction of fresh draws that still fool the classifier.
    """
    chosen = [i for i in range(len(ids)) if clean_replay[0][i] and not bpda_replay[0][i]]
    chosen = chosen[:protocol.predict_samples]
    if not chosen:
        return []
    index = torch.tensor(chosen)
    d = protocol.predict_draws
    z0 = purifier(x_adv[index], fixed.subset(index))
    reps = x_adv[index].repeat_interleave(d, dim=0)
    pseudo = (ids[index].repeat_interleave(d) * PSEUDO_ID_STRIDE + torch.arange(d).repeat(len(chosen)))
    draws = purifier(reps, fresh_factory(pseudo)).view(len(chosen), d, *x_adv.shape[1:])
    gen = torch.Generator(device="cpu").manual_seed(protocol.seed)
    out = []
    for k, i in enumerate(chosen):
        label = int(y[i])
        geom = noise_geometry(draws[k])
        deltas = draws[k] - z0[k]
        s_max = 3.0 * deltas.flatten(1).norm(dim=1).max().item() + 1e-6
        r_noise = boundary_distance(classifier, z0[k], label, deltas, s_max).median().item()
        rand = torch.randn((protocol.predict_dirs, *z0.shape[1:]), generator=gen).to(z0)
        r_random = boundary_distance(classifier, z0[k], label, rand, s_max).median().item()
        fooled = (classifier(draws[k]).argmax(dim=1) != label).float().mean().item()
        pred = toy_prediction(r_noise, geom.sigma_sub, geom.n_eff) if geom.n_eff == geom.n_eff else None
        out.append({"id": int(ids[i]), "sigma_ambient": geom.sigma_ambient, "sigma_sub": geom.sigma_sub,
                    "n_eff": geom.n_eff, "n_ambient": geom.n_ambient, "r_noise": r_noise,
                    "r_random": r_random, "delta_norm": deltas.flatten(1).norm(dim=1).mean().item(),
                    "p_perfect": pred.p_perfect if pred else None, "p_eot": pred.p_eot if pred else None,
                    "transfer_measured": fooled})
    return out
