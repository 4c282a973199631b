"""Monte Carlo estimates of attack success in the toy model (paper Sec. 4.2, Theorem 1, Cor. 2.1).

``estimate`` gives one (strategy, r) point; ``estimate_curve`` reuses the same draws for a whole
grid of radii (the kernels return ||P(x_adv) - c||^2 per trial and success is dist2 <= r^2; the
partial-cancellation kernels return one such column per radius). Every estimate carries the
no-attack baseline and the Theorem 1 bound that covers its strategy (theory.covering_bound).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numba
import numpy as np

import toymodel.kernels as kernels
import toymodel.partial_kernels as partial_kernels
import toymodel.theory as theory

SAMPLERS = ("auto", "ndim", "reduced")
MAX_TRIALS = 10**8
_STRATEGY_CODE = {"perfect": kernels.PERFECT, "eot": kernels.EOT, "replay": kernels.REPLAY}


@dataclass(frozen=True)
class Estimate:
    """One Monte Carlo estimate with its standard error and exact value (None if unknown).

    bound / bound_covers: the Theorem 1 bound that provably covers this strategy and what it is
    about (theory.covering_bound); bound_full_cancel = Psi(r^2/(2 sigma^2); n) is the exact success
    of unconstrained full cancellation, bound_fresh = Psi(r^2/sigma^2; n) bounds any attack tested
    under fresh noise; baseline is the success of xi = 0 under fresh noise (log_baseline its log, finite
where baseline underflows to 0); x0_in_A and A_in_threat
    flag departures from the paper's geometry; p_projected (perfect only) is the probability that
    c - eta0 is infeasible and gets projected.
    """
    strategy: str
    n: int
    sigma: float
    r: float
    d: float
    direction: str
    eps: float
    norm: str
    success: float
    stderr: float
    trials: int
    exact: float | None
    bound: float
    bound_covers: str
    bound_full_cancel: float
    bound_fresh: float
    baseline: float
    log_baseline: float
    x0_in_A: bool
    A_in_threat: bool
    p_projected: float | None

    def as_row(self) -> dict:
        """Plain dict for JSON/CSV (eps = inf written as the string 'inf')."""
        row = asdict(self)
        row["eps"] = "inf" if math.isinf(self.eps) else self.eps
        return row


def seed_key(seed: int | np.random.SeedSequence) -> tuple[np.uint64, np.uint64]:
    """Two 64-bit key words from a numpy SeedSequence (or an int seed)."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    k0, k1 = ss.generate_state(2, np.uint64)
    return np.uint64(k0), np.uint64(k1)


def pick_sampler(sampler: str, norm: str, eps: float) -> str:
    """'auto' -> 'reduced' when the projection is radial (l2) or absent, else 'ndim'."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    radial = norm == "2" or math.isinf(eps)
    if sampler == "reduced" and not radial:
        raise ValueError("the reduced sampler needs an l2 threat set or eps = inf")
    if sampler == "auto":
        return "reduced" if radial else "ndim"
    return sampler


def _check_counts(trials, chunk) -> int:
    if isinstance(trials, bool) or int(trials) != trials or not 1 <= trials <= MAX_TRIALS:
        raise ValueError(f"trials must be an integer in 1..{MAX_TRIALS}, got {trials!r}")
    chunk = int(trials) if chunk is None else chunk
    if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    return int(chunk)


def _norm_code(eps: float, norm: str) -> int:
    return kernels.NO_CLIP if math.isinf(eps) else (kernels.L2 if norm == "2" else kernels.LINF)


def simulate_dist2(strategy: str, n: int, sigma: float, d: float = 0.0, eps: float = math.inf,
                   norm: str = "2", direction: str = "axis", trials: int = 10000, seed: int = 0,
                   sampler: str = "auto", chunk: int | None = None) -> np.ndarray:
    """Per-trial squared distance ||P(x_adv) - c||^2 (replay: ||proj(c - eta0) - (c - eta0)||^2)
    for perfect, eot and replay (partial: simulate_partial_dist2).

    Trial i always uses stream i of the seed, so chunk size and thread count do not matter.
    """
    theory._check_all(strategy, n, sigma, 1.0, d, eps, norm, direction)
    if strategy == "partial":
        raise ValueError("partial depends on r: use simulate_partial_dist2")
    chunk = _check_counts(trials, chunk)
    which = pick_sampler(sampler, norm, eps)
    k0, k1 = seed_key(seed)
    code = _STRATEGY_CODE[strategy]
    off = theory.eot_offset_norm(n, d, eps, norm, direction)
    eps_k = float(eps) if not math.isinf(eps) else np.inf
    if which == "ndim":
        c = theory.centre(n, float(d), direction)
        a = _eot_offset_vector(c, eps, norm)
    parts = []
    for first in range(0, int(trials), chunk):
        count = min(chunk, int(trials) - first)
        if which == "reduced":
            parts.append(kernels.reduced_dist2(code, int(n), float(d), float(sigma), eps_k, off,
                                               first, count, k0, k1))
        else:
            parts.append(kernels.ndim_dist2(code, c, a, float(sigma), eps_k, _norm_code(eps, norm),
                                            first, count, k0, k1))
    return np.concatenate(parts)


def simulate_partial_dist2(n: int, sigma: float, rs: Sequence[float], d: float = 0.0,
                           eps: float = math.inf, norm: str = "2", direction: str = "axis",
                           trials: int = 10000, seed: int = 0, sampler: str = "auto",
                           chunk: int | None = None) -> np.ndarray:
    """Partial cancellation x = proj(c - t eta0), t = max(0, 1 - r/||eta0||), tested under fresh
    noise: array (trials, len(rs)) of ||P(x) - c||^2, column k for radius rs[k] (success is
    column <= rs[k]^2). Same stream-per-trial invariance as simulate_dist2."""
    rs_arr = np.asarray([float(r) for r in rs])
    if rs_arr.size == 0:
        raise ValueError("rs must hold at least one radius")
    for r in rs_arr:
        theory._check_all("partial", n, sigma, r, d, eps, norm, direction)
    chunk = _check_counts(trials, chunk)
    which = pick_sampler(sampler, norm, eps)
    k0, k1 = seed_key(seed)
    eps_k = float(eps) if not math.isinf(eps) else np.inf
    c = theory.centre(n, float(d), direction) if which == "ndim" else None
    parts = []
    for first in range(0, int(trials), chunk):
        count = min(chunk, int(trials) - first)
        if which == "reduced":
            parts.append(partial_kernels.reduced_partial_dist2(int(n), float(d), float(sigma), eps_k,
                                                               rs_arr, first, count, k0, k1))
        else:
            parts.append(partial_kernels.ndim_partial_dist2(c, float(sigma), eps_k, _norm_code(eps, norm),
                                                            rs_arr, first, count, k0, k1))
    return np.concatenate(parts)


def _eot_offset_vector(c: np.ndarray, eps: float, norm: str) -> np.ndarray:
    """proj(c) - c for the deterministic EOT target."""
    if math.isinf(eps):
        return np.zeros_like(c)
    if norm == "2":
        nrm = float(np.linalg.norm(c))
        return c * (min(1.0, eps / nrm) - 1.0) if nrm > 0 else np.zeros_like(c)
    return np.clip(c, -eps, eps) - c


@functools.lru_cache(maxsize=4096)
def _log_baseline(n: int, sigma: float, r: float, d: float) -> float:
    """log of the no-attack baseline, cached: every strategy of a sweep group shares it."""
    return theory.log_no_attack_success(n, sigma, r, d)


def _annotate(strategy, n, sigma, r, d, eps, norm, direction, p, size) -> Estimate:
    """An Estimate with its exact value, covering bound, baseline and geometry flags."""
    bound, covers = theory.covering_bound(strategy, n, sigma, r, d, eps, norm, direction)
    p_proj = theory.p_projected(n, sigma, d, eps, norm, direction) if strategy == "perfect" else None
    return Estimate(strategy, int(n), float(sigma), r, float(d), direction, float(eps), norm, p,
                    math.sqrt(p * (1.0 - p) / size), int(size),
                    theory.exact_success(strategy, n, sigma, r, d, eps, norm, direction), bound, covers,
                    theory.bound_perfect(n, sigma, r), theory.bound_eot(n, sigma, r),
                    theory.no_attack_success(n, sigma, r, d), _log_baseline(int(n), float(sigma), r, float(d)),
                    theory.x0_in_A(d, r),
                    theory.A_in_threat(n, d, r, eps, norm, direction), p_proj)


def estimate_curve(strategy: str, n: int, sigma: float, rs: Sequence[float], d: float = 0.0,
                   eps: float = math.inf, norm: str = "2", direction: str = "axis",
                   trials: int = 10000, seed: int = 0, sampler: str = "auto",
                   chunk: int | None = None, threads: int | None = None) -> list[Estimate]:
    """Success rate for every radius in rs from one shared set of draws."""
    rs = [float(r) for r in rs]
    for r in rs:
        theory._check_all(strategy, n, sigma, r, d, eps, norm, direction)
    with _threads(threads):
        if strategy == "partial":
            dist2 = simulate_partial_dist2(n, sigma, rs, d, eps, norm, direction, trials, seed,
                                           sampler, chunk)
            hits = [np.count_nonzero(dist2[:, k] <= r * r) for k, r in enumerate(rs)]
        else:
            dist2 = simulate_dist2(strategy, n, sigma, d, eps, norm, direction, trials, seed,
                                   sampler, chunk)
            hits = [np.count_nonzero(dist2 <= r * r) for r in rs]
    size = dist2.shape[0]
    return [_annotate(strategy, n, sigma, r, d, eps, norm, direction, float(h) / size, size)
            for r, h in zip(rs, hits)]


def estimate(strategy: str, n: int, sigma: float, r: float, d: float = 0.0,
             eps: float = math.inf, norm: str = "2", direction: str = "axis",
             trials: int = 10000, seed: int = 0, sampler: str = "auto",
             chunk: int | None = None, threads: int | None = None) -> Estimate:
    """Monte Carlo success probability of one strategy (Theorem 1 / Corollary 2.1 setting)."""
    return estimate_curve(strategy, n, sigma, [r], d, eps, norm, direction, trials, seed,
                          sampler, chunk, threads)[0]


class _threads:
    """Temporarily run Numba kernels on `threads` threads (None: leave as is)."""

    def __init__(self, threads: int | None):
        if threads is not None and (int(threads) != threads or not
                                    1 <= threads <= numba.config.NUMBA_NUM_THREADS):
            raise ValueError(f"threads must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {threads!r}")
        self.threads = threads

    def __enter__(self):
        self.saved = numba.get_num_threads()
        if self.threads is not None:
            numba.set_num_threads(int(self.threads))

    def __exit__(self, *exc):
        numba.set_num_threads(self.saved)
