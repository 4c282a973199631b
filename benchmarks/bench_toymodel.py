"""Benchmark: n-dim Numba kernel vs vectorised numpy for the same estimate, thread scaling 1 vs 2,
and the reduced l2 sampler vs the n-dim one (targets: >= 2x, >= 1.8x, >= 100x).

python -m benchmarks.bench_toymodel [--n 3072] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

import numba
import numpy as np

from toymodel import atomic, simulate, theory


def numpy_dist2(strategy: str, c: np.ndarray, sigma: float, eps: float, norm: str, trials: int,
                seed: int, chunk: int = 1000) -> np.ndarray:
    """Plain numpy (Generator, vectorised in chunks) version of the n-dim simulator's statistic."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    out = []
    for start in range(0, trials, chunk):
        m = min(chunk, trials - start)
        if strategy == "eot":
            target = np.clip(c, -eps, eps) if norm == "inf" else c * min(1.0, eps / max(np.linalg.norm(c), 1e-300))
            z = target - c + sigma * rng.standard_normal((m, c.size))
            out.append(np.einsum("ij,ij->i", z, z))
        else:
            # same algorithm as the kernel: eta0 and the projection in full, then the fresh eta1 through
            # ||a + sigma h||^2 = (|a| + sigma z)^2 + sigma^2 chi2(n - 1)
            y = c - sigma * rng.standard_normal((m, c.size))
            scale = np.minimum(1.0, eps / np.linalg.norm(y, axis=1, keepdims=True))
            x = np.clip(y, -eps, eps) if norm == "inf" else y * scale
            a = np.linalg.norm(x - c, axis=1) + sigma * rng.standard_normal(m)
            out.append(a * a + sigma * sigma * rng.chisquare(c.size - 1, m))
    return np.concatenate(out)


def _rate(fn, trials: int, repeats: int = 3) -> float:
    """Best-of-repeats trials per second."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return trials / best


def bench_case(name, strategy, n, eps, norm, trials, sigma=1.0, d=2.0) -> dict:
    c = theory.centre(n, d, "axis")
    kw = dict(strategy=strategy, n=n, sigma=sigma, d=d, eps=eps, norm=norm, trials=trials, seed=1, sampler="ndim")
    simulate.simulate_dist2(**dict(kw, trials=64))  # compile / load cache
    rates = {}
    for threads in (1, 2):
        if threads <= numba.config.NUMBA_NUM_THREADS:
            numba.set_num_threads(threads)
            rates[threads] = _rate(lambda: simulate.simulate_dist2(**kw), trials)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    dist2 = simulate.simulate_dist2(**kw)
    r2 = float(np.median(dist2))  # radius where Numba's estimate is 1/2; numpy's should agree within SE
    mc_numba = np.mean(dist2 <= r2)
    mc_numpy = np.mean(numpy_dist2(strategy, c, sigma, eps, norm, trials, 2) <= r2)
    rate_np = _rate(lambda: numpy_dist2(strategy, c, sigma, eps, norm, trials, 2), trials)
    return {"case": name, "n": n, "trials": trials, "numpy": rate_np, "numba_1": rates[1],
            "numba_2": rates.get(2), "ratio_vs_numpy_1t": rates[1] / rate_np,
            "scaling_2_over_1": rates.get(2, math.nan) / rates[1],
            "r_over_sigma": math.sqrt(r2) / sigma, "success_numba": float(mc_numba),
            "success_numpy": float(mc_numpy), "stderr": math.sqrt(0.25 / trials)}


def bench_reduced(n: int, trials_ndim: int, trials_red: int) -> dict:
    kw = dict(strategy="perfect", n=n, sigma=1.0, d=2.0, eps=20.0, norm="2", seed=1)
    simulate.simulate_dist2(trials=64, sampler="reduced", **kw)
    nd = _rate(lambda: simulate.simulate_dist2(trials=trials_ndim, sampler="ndim", **kw), trials_ndim)
    rd = _rate(lambda: simulate.simulate_dist2(trials=trials_red, sampler="reduced", **kw), trials_red)
    return {"case": "perfect l2 eps=20: reduced vs n-dim", "n": n, "ndim": nd, "reduced": rd, "ratio": rd / nd}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_toymodel", description=__doc__)
    p.add_argument("--n", type=int, default=3072, help="dimension")
    p.add_argument("--trials", type=int, default=10000, help="trials per timing of the n-dim kernels")
    p.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    args = p.parse_args(argv)
    if args.n < 2 or args.trials < 2 or args.trials > simulate.MAX_TRIALS:
        p.error(f"--n must be >= 2 and --trials in 2..{simulate.MAX_TRIALS}")
    problem = args.json and atomic.output_problem(args.json)
    if problem:
        p.error(f"--json: {problem}")
    print(f"threads available: {numba.config.NUMBA_NUM_THREADS}; load average before: {os.getloadavg()}")
    cases = [bench_case("eot, eps=inf (||eta||^2 <= r^2)", "eot", args.n, math.inf, "2", args.trials),
             bench_case("eot, l_inf eps=1, d=2 (offset target)", "eot", args.n, 1.0, "inf", args.trials),
             bench_case("perfect, l_inf eps=1 (n normals + clip)", "perfect", args.n, 1.0, "inf", args.trials // 2)]
    print(f"rates in trials/s at n = {args.n}; MC columns: success at the radius where Numba gives 1/2")
    print(f"{'case':44} {'numpy/s':>9} {'numba 1t/s':>11} {'numba 2t/s':>11} {'x numpy':>8} {'2t/1t':>6}"
          f" {'r/sigma':>8} {'MC numba':>9} {'MC numpy':>9} {'SE':>6}")
    for c in cases:
        print(f"{c['case']:44} {c['numpy']:9.0f} {c['numba_1']:11.0f} {c['numba_2'] or float('nan'):11.0f}"
              f" {c['ratio_vs_numpy_1t']:8.2f} {c['scaling_2_over_1']:6.2f} {c['r_over_sigma']:8.2f}"
              f" {c['success_numba']:9.4f} {c['success_numpy']:9.4f} {c['stderr']:6.4f}")
    red = bench_reduced(args.n, args.trials // 2, 1_000_000)
    print(f"{red['case']}: n-dim {red['ndim']:.0f}/s, reduced {red['reduced']:.0f}/s, ratio {red['ratio']:.0f}x")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        atomic.write_text_atomic(args.json, json.dumps({"cases": cases, "reduced": red, "loadavg": os.getloadavg()},
                                                       indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
