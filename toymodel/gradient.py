"""Iterative gradient attacks on the toy purifier P(x) = x + eta (paper Sec. 4.2-4.3).

PGD minimises the smooth surrogate loss ||P(x) - c||^2 (gradient 2 (x + eta - c)) with
  fresh:  a new noise draw at every step, tested under a fresh draw (no fix, Theorem 1);
  eot:    the gradient averaged over eot_k fresh draws per step, tested under a fresh draw;
  replay: one draw eta0 reused at every step and at test time (Algorithm 1, Corollary 2.1).
Success means ||P(x_K) - c|| <= r under the test noise.

Only the 'gd' rule with step 1/2 jumps to c - eta_K, the full cancellation whose exact success is
Theorem 1's first bound Psi(r^2/(2 sigma^2); n). Small-step PGD ('l2', 'sign') ends near c minus an
average of its noise draws, so its fresh-noise success lies above the first bound and below the
second, Psi(r^2/sigma^2; n), which covers every attack tested under fresh noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import toymodel.theory as theory
from toymodel.simulate import MAX_TRIALS

MODES = ("fresh", "eot", "replay")
STEP_RULES = ("gd", "l2", "sign")


@dataclass(frozen=True)
class GradientResult:
    """Success rate of a PGD attack mode under its test noise, with standard error."""
    mode: str
    n: int
    sigma: float
    r: float
    d: float
    eps: float
    norm: str
    steps: int
    step_rule: str
    step_size: float
    eot_k: int
    success: float
    stderr: float
    trials: int
    mean_test_distance: float


def _project(x: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """Projection of each row onto B_p(0, eps)."""
    if math.isinf(eps):
        return x
    if norm == "inf":
        return np.clip(x, -eps, eps)
    nrm = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.minimum(1.0, eps / np.maximum(nrm, 1e-300))


def _step(grad: np.ndarray, rule: str, size: float) -> np.ndarray:
    if rule == "gd":
        return size * grad
    if rule == "sign":
        return size * np.sign(grad)
    nrm = np.linalg.norm(grad, axis=1, keepdims=True)
    return size * grad / np.maximum(nrm, 1e-300)


def _attack_batch(rng, mode, c, sigma, eps, norm, steps, rule, size, eot_k, m):
    """Run the attack on m independent trials; returns the test distances ||P(x_K) - c||."""
    n = c.size
    x = np.zeros((m, n))
    eta0 = sigma * rng.standard_normal((m, n)) if mode == "replay" else None
    for _ in range(steps):
        if mode == "replay":
            eta = eta0
        elif mode == "eot":
            eta = sigma * rng.standard_normal((eot_k, m, n)).mean(axis=0)
        else:
            eta = sigma * rng.standard_normal((m, n))
        x = _project(x - _step(2.0 * (x + eta - c), rule, size), eps, norm)
    test = eta0 if mode == "replay" else sigma * rng.standard_normal((m, n))
    return np.linalg.norm(x + test - c, axis=1)


def pgd(mode: str, n: int, sigma: float, r: float, d: float = 0.0, eps: float = math.inf,
        norm: str = "2", direction: str = "axis", steps: int = 20, step_rule: str = "l2",
        step_size: float | None = None, eot_k: int = 8, trials: int = 2000, seed: int = 0,
        batch: int = 512) -> GradientResult:
    """PGD on ||P(x) - c||^2 from x0 = 0 with fresh, EOT-k or replayed noise.

    step_size defaults to 0.5 for 'gd' (one step jumps to c - eta) and to
    2.5 sqrt(d^2 + n sigma^2) / steps for 'l2' ('sign': that divided by sqrt n).
    """
    theory._check_all("eot", n, sigma, r, d, eps, norm, direction)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    if step_rule not in STEP_RULES:
        raise ValueError(f"unknown step_rule {step_rule!r}; expected one of {STEP_RULES}")
    for name, value in (("steps", steps), ("eot_k", eot_k), ("trials", trials), ("batch", batch)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if trials > MAX_TRIALS:
        raise ValueError(f"trials must be <= {MAX_TRIALS}, got {trials!r}")
    if step_size is None:
        step_size = 0.5 if step_rule == "gd" else 2.5 * math.sqrt(d * d + n * sigma * sigma) / steps
        step_size /= math.sqrt(n) if step_rule == "sign" else 1.0
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}")
    c = theory.centre(n, d, direction)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    dist = np.concatenate([
        _attack_batch(rng, mode, c, sigma, eps, norm, int(steps), step_rule, float(step_size),
                      int(eot_k), min(batch, trials - start))
        for start in range(0, int(trials), int(batch))])
    p = float(np.mean(dist <= r))
    return GradientResult(mode, int(n), float(sigma), float(r), float(d), float(eps), norm,
                          int(steps), step_rule, float(step_size), int(eot_k), p,
                          math.sqrt(p * (1 - p) / dist.size), int(dist.size), float(dist.mean()))
