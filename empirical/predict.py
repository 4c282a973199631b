"""Read a real purifier through the toy model of Sec. 4.2 and score the reading on held-out draws.

The toy model: purified outputs are Gaussian, P(x) = mu + xi with xi ~ N(0, sigma^2 I_n), and an
attack crafted under one draw eta0 is tested under a fresh one (Theorem 1). For each replay-fooled
sample we fit that model on one set of draws and measure survival on another:

- Noise model, from K_fit fresh purifications of x_adv (stream PURPOSE_FIT), never classified:
  mu = their mean, n_eff = (tr C)^2 / tr C^2 (bias-corrected participation ratio) and
  sigma^2 = tr C / n_eff. These match the first two moments of ||xi||^2 to sigma^2 chi^2(n_eff).
- Region geometry, along D directions drawn from the fitted covariance (u = sum_j w_j (z_j - mu),
  w ~ N(0, I) from stream PURPOSE_DIRS): independent of the draws that are scored and never along
  the attack's own perturbation. Along each ray the classifier is scanned and every crossing of the
  decision boundary located by bisection.
- Survival, on K_eval independent purifications (stream PURPOSE_EVAL): the fraction still fooled.

Which radius. Theorem 1 bounds success with the covering radius r of the adversarial region A (Sec. 4.2:
r = max over A of ||x - c||, c the centroid, so A lies in the ball B(c, r)). That radius is a bound, not a prediction,
and a single boundary distance plugged into Psi turns the prediction into a near 0/1 step: Psi(r^2 /
sigma^2; n) jumps from 0 to 1 within a few sigma of r = sigma sqrt(n). We keep Theorem 1's law and
replace the ball by A's own radial profile: for noise isotropic in n_eff dimensions, ||xi|| and its
direction are independent, so

    P(mu + xi in A) = E_u[ sum over the adversarial segments [a, b] of the ray mu + s u
                           of Psi(b^2 / sigma^2; n) - Psi(a^2 / sigma^2; n) ],

which is Psi(r^2 / sigma^2; n) when A is a ball of radius r centred at mu, and exact for any region
when the noise is isotropic. Two readings are recorded:
  p_fresh   from mu with sigma^2 (1 - 1/K_fit): the survival of this x_adv under fresh noise, the
            quantity that is scored (the factor makes mu_hat + N(0, (1 - 1/K) C) have the law of a
            fresh output on average over the fit draws);
  p_perfect from the replay output z0 with 2 sigma^2: Theorem 1's first form, averaged over eta0
            (z1 - z0 = xi1 - xi0 ~ N(0, 2 sigma^2 I)), which ignores where eta0 actually put z0.
No parameter is fitted across samples, so scoring every measured sample is out-of-sample; the
constant baseline of `stats.calibration` is leave-one-out.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from scipy import stats as scipy_stats

from empirical import stats
from empirical.noise import NoiseSource
from empirical.purifiers import _eval_mode
from toymodel.theory import psi

PURPOSE_FIT, PURPOSE_EVAL, PURPOSE_DIRS = "predict_fit", "predict_eval", "predict_dirs"
PURPOSES = (PURPOSE_FIT, PURPOSE_EVAL, PURPOSE_DIRS)
_TAIL = 1e-9            # the grid of a ray ends where the radial law has this much mass left


@dataclass(frozen=True)
class PredictSettings:
    """Per chunk: up to `samples` replay-fooled samples, each with fit_draws + eval_draws purifications
    (8 x (10 + 6): the purifications of the earlier 8 x 16 reading), `directions` rays with `grid`
    equal-mass cells each, `iters` bisection steps per boundary crossing, at most `batch` rows per call.
    Since every crossing is bisected, a coarse grid loses little; the directions carry the Monte Carlo
    error of the angular average, so raise `directions` first when a sharper reading is needed."""

    samples: int = 8
    fit_draws: int = 10
    eval_draws: int = 6
    directions: int = 32
    grid: int = 8
    iters: int = 8
    batch: int = 4096

    def __post_init__(self) -> None:
        if self.fit_draws < 3:
            raise ValueError(f"fit_draws must be >= 3 (the bias-corrected n_eff needs 3 draws), got {self.fit_draws}")
        if min(self.samples, self.eval_draws, self.directions, self.iters, self.batch) < 1 or self.grid < 2:
            raise ValueError("samples, eval_draws, directions, iters and batch must be >= 1 and grid >= 2")

    def to_dict(self) -> dict:
        return asdict(self)


_psi = np.vectorize(psi, otypes=[float])


def psi_array(x: np.ndarray, n: float) -> np.ndarray:
    """toymodel.theory.psi (the chi-square(n) cdf of Theorem 1) elementwise; nan stays nan."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if ok.any():
        out[ok] = _psi(x[ok], n)
    return out


@dataclass(frozen=True)
class RadialLaw:
    """||xi|| for xi ~ N(0, sigma^2 I_n): P(||xi|| <= s) = Psi(s^2 / sigma^2; n)."""

    sigma: float
    n: float

    def cdf(self, s: np.ndarray) -> np.ndarray:
        return psi_array((np.asarray(s, dtype=float) / self.sigma) ** 2, self.n)

    def grid(self, points: int) -> np.ndarray:
        """0, the radii of the (i / points)-quantiles, and the radius leaving _TAIL mass: equal-mass cells."""
        q = np.concatenate([np.arange(1, points) / points, [1 - _TAIL]])
        return np.concatenate([[0.0], self.sigma * np.sqrt(scipy_stats.chi2.ppf(q, self.n))])


def participation_ratio(samples: torch.Tensor) -> tuple[float, float]:
    """Bias-corrected (tr C, (tr C)^2 / tr C^2) from D samples [D, n] of a Gaussian.

    With m = D - 1 and S the sample covariance, E tr S^2 = (1 + 1/m) tr C^2 + (tr C)^2 / m and
    E (tr S)^2 = (tr C)^2 + 2 tr C^2 / m (Wishart moments); solving gives unbiased estimates of
    tr C^2 and (tr C)^2, whose ratio stays near n for isotropic noise even when D << n.
    nan when the corrected moments are not positive (the draws cannot tell n_eff from infinity).
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


@dataclass
class NoiseFit:
    """The toy noise model of one input fitted on K purifications: mean, centred draws [K, n], sigma, n_eff.

    n_eff is the participation ratio clamped to [1, n_ambient] (nan, i.e. indistinguishable from
    isotropic, counts as n_ambient); n_eff_raw is the estimate before clamping.
    """

    mean: torch.Tensor
    deviations: torch.Tensor
    sigma_ambient: float
    sigma_sub: float
    n_eff: float
    n_eff_raw: float
    n_ambient: int
    draws: int

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("sigma_ambient", "sigma_sub", "n_eff", "n_eff_raw", "n_ambient", "draws")}


def fit_noise(draws: torch.Tensor) -> NoiseFit:
    """Fit mu, sigma and n_eff of the toy model to K purifications [K, C, H, W] of one input."""
    if draws.ndim != 4 or draws.shape[0] < 3:
        raise ValueError(f"fit_noise needs K >= 3 purifications of one input, shape [K, C, H, W]; "
                         f"got {tuple(draws.shape)}")
    flat = draws.reshape(draws.shape[0], -1).double()
    tr_c, raw = participation_ratio(flat)
    n = flat.shape[1]
    if not tr_c > 0:
        raise ValueError("the purified draws do not vary: the toy prediction needs a stochastic purifier")
    n_eff = float(n) if raw != raw else min(max(raw, 1.0), float(n))
    mean = flat.mean(dim=0)
    return NoiseFit(mean=mean.view(draws.shape[1:]).to(draws.dtype), deviations=flat - mean,
                    sigma_ambient=(tr_c / n) ** 0.5, sigma_sub=(tr_c / n_eff) ** 0.5, n_eff=n_eff, n_eff_raw=raw,
                    n_ambient=n, draws=draws.shape[0])


@dataclass
class RayScan:
    """Classes along rays origin + s u_k: adversarial[k, j] at grid[j]; crossing[k, j] the boundary inside
    (grid[j], grid[j+1]) where the class changes (nan elsewhere)."""

    grid: np.ndarray
    adversarial: np.ndarray
    crossing: np.ndarray

    def mass(self, law: RadialLaw) -> np.ndarray:
        """Per ray, the radial law's mass on the adversarial part: sum of Psi(b^2/s^2) - Psi(a^2/s^2)."""
        f, fc, adv = law.cdf(self.grid), law.cdf(self.crossing), self.adversarial
        left, right = adv[:, :-1], adv[:, 1:]
        change = left != right
        full = np.where(left & right, f[1:] - f[:-1], 0.0)
        split = np.where(change & left, fc - f[:-1], 0.0) + np.where(change & right, f[1:] - fc, 0.0)
        return full.sum(1) + split.sum(1) + np.where(adv[:, -1], 1.0 - f[-1], 0.0)

    def first_crossing(self) -> np.ndarray:
        """Distance to the first class change along each ray (the last grid point if none: censored)."""
        has = ~np.isnan(self.crossing)
        first = np.argmax(has, axis=1)
        value = self.crossing[np.arange(len(first)), first]
        return np.where(has.any(1), value, self.grid[-1])


@torch.no_grad()
def ray_scan(classifier, origin: torch.Tensor, y: int, directions: torch.Tensor, grid: np.ndarray,
             iters: int = 10, batch: int = 4096) -> RayScan:
    """Classify origin + s u along each direction at the grid radii, then bisect every cell whose ends differ.

    The region need not be convex or star-shaped: every class change on the grid is located, so a ray
    may leave and re-enter A. Changes within one grid cell that cancel are missed (the grid is at
    equal-mass radii of the law, so what is missed carries little mass). No clipping to [0, 1]: the toy's
    noise is unbounded.
    """
    if directions.shape[1:] != origin.shape:
        raise ValueError(f"directions {tuple(directions.shape)} do not match the point {tuple(origin.shape)}")
    u = directions / directions.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * origin.ndim)

    def adversarial(k: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, k.numel(), batch):
            kk, ss = k[i:i + batch], s[i:i + batch].to(origin.dtype).view(-1, *[1] * origin.ndim)
            out.append(classifier(origin + ss * u[kk]).argmax(dim=1) != y)
        return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.bool)

    n_dir, g = u.shape[0], torch.as_tensor(grid, dtype=torch.float64)
    kk, jj = torch.meshgrid(torch.arange(n_dir), torch.arange(len(grid)), indexing="ij")
    adv = adversarial(kk.flatten().to(u.device), g[jj.flatten()].to(u.device)).view(n_dir, len(grid))
    cell_k, cell_j = (adv[:, :-1] != adv[:, 1:]).nonzero(as_tuple=True)
    lo, hi, left = g[cell_j], g[cell_j + 1], adv[cell_k, cell_j]
    for _ in range(iters):
        mid = (lo + hi) / 2
        same = adversarial(cell_k.to(u.device), mid.to(u.device)) == left
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    crossing = np.full((n_dir, len(grid) - 1), np.nan)
    crossing[cell_k.numpy(), cell_j.numpy()] = ((lo + hi) / 2).numpy()
    return RayScan(grid=np.asarray(grid, dtype=float), adversarial=adv.numpy(), crossing=crossing)


def noise_directions(fit: NoiseFit, weights: torch.Tensor) -> torch.Tensor:
    """Directions u = sum_j w_j (z_j - mu) / sqrt(K - 1), distributed as N(0, C_hat) for w ~ N(0, I): [D, C, H, W]."""
    if weights.ndim != 2 or weights.shape[1] != fit.draws:
        raise ValueError(f"weights must be [D, K={fit.draws}], got {tuple(weights.shape)}")
    u = weights.to(fit.deviations.device, torch.float64) @ fit.deviations / (fit.draws - 1) ** 0.5
    return u.view(-1, *fit.mean.shape).to(fit.mean.dtype)


def toy_reading(classifier, fit: NoiseFit, z0: torch.Tensor, y: int, weights: torch.Tensor,
                settings: PredictSettings) -> dict:
    """p_fresh and p_perfect of one sample (module docstring) with the radii they came from."""
    u = noise_directions(fit, weights)
    sigma, n = fit.sigma_sub, fit.n_eff
    fresh, perfect = RadialLaw(sigma * (1 - 1 / fit.draws) ** 0.5, n), RadialLaw(sigma * 2 ** 0.5, n)
    at_mean = ray_scan(classifier, fit.mean, y, u, fresh.grid(settings.grid), settings.iters, settings.batch)
    at_replay = ray_scan(classifier, z0, y, u, perfect.grid(settings.grid), settings.iters, settings.batch)
    return {"p_fresh": float(at_mean.mass(fresh).mean()), "p_perfect": float(at_replay.mass(perfect).mean()),
            "mean_adversarial": bool(at_mean.adversarial[0, 0]),
            "r_median_from_mean": float(np.median(at_mean.first_crossing())),
            "r_median_from_replay": float(np.median(at_replay.first_crossing())), "noise_radius": sigma * n ** 0.5}


def _purify_draws(purifier, x: torch.Tensor, source: NoiseSource, k: int, batch: int) -> torch.Tensor:
    """k purifications of each row of x from one source (row i's draws are rows i*k .. i*k + k - 1)."""
    reps = x.repeat_interleave(k, dim=0)
    out = [purifier(reps[i:i + batch], source.subset(torch.arange(i, min(i + batch, len(reps)))))
           for i in range(0, len(reps), batch)]
    return torch.cat(out).view(x.shape[0], k, *x.shape[1:])


@torch.no_grad()
def predict_chunk(classifier, purifier, x_adv: torch.Tensor, y: torch.Tensor, ids: torch.Tensor,
                  replay_noise: NoiseSource, fresh_noise_for: Callable[[str, torch.Tensor], NoiseSource],
                  replay_correct: list, clean_correct: list, settings: PredictSettings) -> list[dict]:
    """Toy-model prediction and held-out survival for the replay-fooled samples of one chunk.

    Samples correct clean and fooled under replay (up to settings.samples, in chunk order) are read:
    `fresh_noise_for(purpose, ids)` must give a fresh source keyed per sample for each of PURPOSES
    (ids repeat once per draw); replay_noise is the attack's. Returns one JSON-able dict per sample with
    the fit ("fit") and the held-out measurement ("eval") kept apart.
    """
    n = x_adv.shape[0]
    if not (len(y) == len(ids) == len(replay_correct) == len(clean_correct) == n):
        raise ValueError(f"x_adv, y, ids, replay_correct and clean_correct must all have {n} entries")
    if not getattr(purifier, "stochastic", False):
        raise ValueError("the toy prediction reads a stochastic purifier; this one is deterministic")
    chosen = [i for i in range(n) if clean_correct[i] and not replay_correct[i]][:settings.samples]
    if not chosen:
        return []
    index = torch.tensor(chosen)
    xs, ys, sid = x_adv[index], y[index], ids[index].cpu()
    kf, ke = settings.fit_draws, settings.eval_draws
    z0 = purifier(xs, replay_noise.subset(index))
    fit_out = _purify_draws(purifier, xs, fresh_noise_for(PURPOSE_FIT, sid.repeat_interleave(kf)), kf, settings.batch)
    eval_out = _purify_draws(purifier, xs, fresh_noise_for(PURPOSE_EVAL, sid.repeat_interleave(ke)), ke, settings.batch)
    weights = fresh_noise_for(PURPOSE_DIRS, sid).draw("forward", 0, (len(chosen), settings.directions, kf),
                                                      "cpu", torch.float64)
    out = []
    with _eval_mode(classifier):
        for k, i in enumerate(chosen):
            label = int(ys[k])
            fit = fit_noise(fit_out[k])
            reading = toy_reading(classifier, fit, z0[k], label, weights[k], settings)
            fooled = (classifier(eval_out[k]).argmax(dim=1) != label).cpu().tolist()
            out.append({"id": int(ids[i]), "fit": {**fit.summary(), "directions": settings.directions, **reading},
                        "eval": {"draws": ke, "fooled": fooled, "survival": float(np.mean(fooled))}})
    return out


def _per_sample(records: list[dict], cell: str) -> np.ndarray | None:
    """A cell's per-sample outcome joined over chunks, averaged over its draws ([R][N] or [N])."""
    parts = [np.asarray(r[cell], dtype=float) for r in records if cell in r and len(r[cell])]
    if not parts:
        return None
    return np.concatenate([a.mean(axis=0) if a.ndim == 2 else a for a in parts])


def _kept(records: list[dict], key: str, value: Callable[[dict], float], n: int) -> tuple[float, float]:
    """(sum over chunks of f_c x mean of `value` over the chunk's m_c measured samples) / n in percent, and its
    SE sqrt(s^2 sum f_c^2 / m_c) / n, s^2 pooled over all measured samples: f_c fooled samples of chunk c are
    represented by the m_c of them that were measured."""
    total, weight, values = 0.0, 0.0, []
    for r in records:
        v = np.array([value(s) for s in r[key]])
        clean, robust = np.asarray(r["clean_replay"], float).mean(0), np.asarray(r["bpda_replay"], float).mean(0)
        f = float(np.sum(clean * (1 - robust)))
        if v.size:
            total, weight, values = total + f * v.mean(), weight + f * f / v.size, values + v.tolist()
    s2 = np.var(values, ddof=1) if len(values) > 1 else float("nan")
    return float(100 * total / n), float(100 * np.sqrt(s2 * weight) / n)


def summarise(records: list[dict], key: str = "prediction", bins: int = 5) -> dict:
    """Table 1's toy-model block from the chunk records that carry `key` (cells clean_replay, bpda_replay,
    bpda_replay_tested_fresh and the per-sample dicts of predict_chunk), accuracies and drops in percent.

    predicted_accuracy of replay-crafted examples tested under fresh noise: replay accuracy plus the fooled
    samples' predicted rescue 1 - p_fresh (each chunk's fooled samples represented by its measured ones;
    SE from their spread, the replay cells taken as given). Like the toy model it assumes fresh noise does
    not fool what replay did not. eval_accuracy: the same with the held-out survival in place of p_fresh
    (the like-for-like check of the model); measured_accuracy: the protocol's own cell over all samples,
    which also counts fresh draws that fool replay-robust samples. predicted_drop / measured_drop: no-fix
    minus fixed-noise accuracy (the latter paired over samples). calibration / calibration_perfect:
    stats.calibration of p_fresh / p_perfect against the held-out survival of the same samples.
    """
    attacked = [r for r in records if "bpda_replay" in r and key in r]
    samples = [s for r in attacked for s in r[key]]
    robust = _per_sample(attacked, "bpda_replay")
    if not samples or robust is None:
        return {"measured_samples": 0}
    n = robust.size
    fit, ev = [s["fit"] for s in samples], [s["eval"] for s in samples]
    p, surv = np.array([f["p_fresh"] for f in fit]), np.array([e["survival"] for e in ev])
    draws = min(e["draws"] for e in ev)
    pred_keep = _kept(attacked, key, lambda s: 1 - s["fit"]["p_fresh"], n)
    eval_keep = _kept(attacked, key, lambda s: 1 - s["eval"]["survival"], n)
    replay_acc = 100 * float(robust.mean())
    clean = _per_sample(attacked, "clean_replay")
    out = {"measured_samples": len(samples), "fooled_fraction": float(np.mean(clean * (1 - robust))),
           "replay_accuracy": replay_acc,
           "predicted_accuracy": replay_acc + pred_keep[0], "predicted_accuracy_se": pred_keep[1],
           "eval_accuracy": replay_acc + eval_keep[0], "eval_accuracy_se": eval_keep[1],
           "predicted_drop": pred_keep[0], "predicted_drop_se": pred_keep[1],
           "bias": stats.paired_difference(p, surv).to_dict(),
           "calibration": stats.calibration(p, surv, bins, draws),
           "calibration_perfect": stats.calibration(np.array([f["p_perfect"] for f in fit]), surv, bins, draws)}
    out["predicted_text"] = f"{out['predicted_accuracy']:5.1f}±{out['predicted_accuracy_se']:3.1f}"
    transfer = _per_sample(attacked, "bpda_replay_tested_fresh")
    if transfer is not None and transfer.shape == robust.shape:
        out["measured_accuracy"] = 100 * float(transfer.mean())
        out["measured_accuracy_se"] = 100 * float(transfer.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        out["measured_drop"] = stats.paired_difference(transfer, robust).to_dict()
    for name in ("sigma_ambient", "sigma_sub", "n_eff", "noise_radius", "r_median_from_mean", "r_median_from_replay",
                 "p_fresh", "p_perfect"):
        out[f"mean_{name}"] = float(np.mean([f[name] for f in fit]))
    out["mean_survival"], out["n_ambient"] = float(surv.mean()), fit[0]["n_ambient"]
    return out


def rescue_by_sample(replicate_chunks: list[list[dict]], key: str = "prediction") -> tuple[dict, dict, float]:
    """The toy reading per sample over noise replicates: ({id: predicted rescue 1 - p_fresh}, {id: held-out
    rescue 1 - survival}, the fraction of sample-replicates read as fooled: correct clean and fooled under
    replay). Each sample's rescue is the mean over the replicates that measured it; the input is one chunk
    list per replicate (the cells clean_replay, bpda_replay and `key`)."""
    predicted: dict[int, list[float]] = {}
    held: dict[int, list[float]] = {}
    fooled = units = 0
    for chunks in replicate_chunks:
        for c in chunks:
            if "bpda_replay" not in c or key not in c:
                continue
            clean, robust = np.asarray(c["clean_replay"], float).mean(0), np.asarray(c["bpda_replay"], float).mean(0)
            fooled, units = fooled + int(np.sum(clean * (1 - robust))), units + robust.size
            for s in c[key]:
                predicted.setdefault(s["id"], []).append(1 - s["fit"]["p_fresh"])
                held.setdefault(s["id"], []).append(1 - s["eval"]["survival"])
    mean = lambda d: {i: float(np.mean(v)) for i, v in d.items()}
    return mean(predicted), mean(held), fooled / units if units else float("nan")
