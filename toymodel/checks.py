"""CLI: the measurements behind the toy-model rows of paper_checks.md (Theorem 1, Cor. 1.1, 2.1).

python -m toymodel.checks [--trials 20000] [--seed 0] [--json PATH]

Each section states what it measures, with Monte Carlo values as (estimate, standard error).
"""
from __future__ import annotations

import argparse
import json
import math

from scipy import optimize, stats

from toymodel import argtypes, atomic, chisq, simulate, theory
from toymodel.gradient import pgd

N = 3072
SQRT_N, SQRT_2N = math.sqrt(N), math.sqrt(2 * N)


def _mc(e: simulate.Estimate) -> list[float]:
    return [e.success, e.stderr]


def theorem1_scope(trials: int, seed: int) -> dict:
    """Full cancellation attains the first bound; partial cancellation beats it; every fresh-noise
    strategy and the no-attack baseline stay under the second bound (paper geometry, d = 1.25 r)."""
    out = {}
    full = simulate.estimate("perfect", N, 1.0, SQRT_2N, 1.25 * SQRT_2N, trials=trials, seed=seed)
    out["full_cancellation"] = {"r_over_sigma": SQRT_2N, "mc": _mc(full), "first_bound": full.bound_full_cancel}
    r, d = SQRT_N, 1.25 * SQRT_N
    rows = {s: simulate.estimate(s, N, 1.0, r, d, trials=trials, seed=seed) for s in ("partial", "eot")}
    out["at_sqrt_n"] = {
        "r_over_sigma": r, "d": d, "first_bound": theory.bound_perfect(N, 1.0, r),
        "second_bound": theory.bound_eot(N, 1.0, r), "partial_exact": rows["partial"].exact,
        "partial_mc": _mc(rows["partial"]), "eot_exact": rows["eot"].exact, "eot_mc": _mc(rows["eot"]),
        "log10_baseline": theory.log_no_attack_success(N, 1.0, r, d) / math.log(10.0),
        "partial_over_first": rows["partial"].exact / theory.bound_perfect(N, 1.0, r)}
    return out


def projection(trials: int, seed: int) -> dict:
    """l2 projection scales c - eta0 towards x0: proj = s (c - eta0), s = eps/||c - eta0||, so the
    test offset is (s - 1) c - s eta0 + eta1, noise variance (1 + s^2) sigma^2 (not 2 sigma^2)."""
    d, eps, r = 2.0, 20.0, 59.6
    e = simulate.estimate("perfect", N, 1.0, r, d, eps, "2", trials=trials, seed=seed)
    s = eps / math.sqrt(d * d + N)
    typical = chisq.ncx2_cdf(r * r / (1 + s * s), N, ((1 - s) * d) ** 2 / (1 + s * s))
    far = simulate.estimate("perfect", N, 1.0, r, 70.0, eps, "2", trials=trials, seed=seed)
    return {"d": d, "eps": eps, "r": r, "x0_in_A": e.x0_in_A, "mc": _mc(e), "s_typical": s,
            "variance_factor": 1 + s * s, "ncx2_at_typical_s": typical, "first_bound": e.bound_full_cancel,
            "second_bound": e.bound_fresh, "baseline": e.baseline, "p_projected": e.p_projected,
            "x0_outside_A_d70_mc": _mc(far),
            "paper_geometry_p_projected": theory.p_projected(N, 1.0, 101.7, 183.0, "2")}


def corollary_1_1() -> dict:
    """Eq. (13) as a bound: an upper bound in the far left tail, not near x = n."""
    gap = lambda x: chisq.log_psi(x, N) - chisq.log_clt_psi(x, N)
    lo = optimize.brentq(gap, N - 3 * SQRT_2N, N)
    hi = optimize.brentq(gap, N, N + 3 * SQRT_2N)
    ln10 = math.log(10.0)
    return {"psi_n_n": chisq.psi(N, N), "clt_n_n": chisq.clt_psi(N, N), "psi_above_clt_on": [lo, hi],
            "in_sds": [(lo - N) / SQRT_2N, (hi - N) / SQRT_2N],
            "x64_log10_psi": chisq.log_psi(64.0, N) / ln10, "x64_log10_clt": chisq.log_clt_psi(64.0, N) / ln10,
            "x_n_minus_3sd": {"psi": chisq.psi(N - 3 * SQRT_2N, N), "clt": chisq.clt_psi(N - 3 * SQRT_2N, N)}}


def replay_clipping(trials: int, seed: int) -> dict:
    """Corollary 2.1 under clipping: l2 replay succeeds iff ||c - eta0|| <= eps + r."""
    cases = {}
    for name, d, eps, r in (("x0_in_A_eps1", 2.0, 1.0, 53.262), ("x0_in_A_eps1_b", 2.0, 1.0, SQRT_N),
                            ("x0_outside_A_eps10", 60.0, 10.0, SQRT_N)):
        e = simulate.estimate("replay", N, 1.0, r, d, eps, "2", trials=trials, seed=seed)
        cases[name] = {"d": d, "eps": eps, "r": r, "mc": _mc(e), "exact": e.exact,
                       "log10_exact": chisq.ncx2_logcdf((eps + r) ** 2, N, d * d) / math.log(10.0)}
    d, r = 1.25 * 81.328, 53.262
    eps = theory.containing_eps(N, d, 81.328, "2")
    cases["paper_geometry"] = {"d": d, "eps": eps, "r": r,
                               "failure": float(stats.ncx2.sf((eps + r) ** 2, N, d * d))}
    return cases


def linf_clipping(trials: int, seed: int) -> dict:
    """How far l_inf clipping moves c - eta0, relative to ||c - eta0||, and what replay makes of it."""
    d, eps = 2.0, 1.0
    disp = theory.linf_clip_displacement(N, 1.0, d, eps)
    e = simulate.estimate("replay", N, 1.0, 53.262, d, eps, "inf", trials=trials, seed=seed)
    small = simulate.estimate("replay", N, 1.0, 0.9 * disp, d, eps, "inf", trials=trials, seed=seed)
    return {"d": d, "eps": eps, "rms_displacement": disp, "relative": disp / math.sqrt(d * d + N),
            "replay_mc_r53": _mc(e), "replay_mc_r_0.9_disp": _mc(small)}


def pgd_rows(trials: int, seed: int) -> dict:
    """Toy PGD (n = 64, r = 8) in the paper geometry (d = 10 > r) and in the d = 2 geometry."""
    n, r, out = 64, 8.0, {}
    for d in (10.0, 2.0):
        for rule in ("gd", "l2"):
            res = {m: pgd(m, n, 1.0, r, d, steps=20, step_rule=rule, eot_k=8, trials=trials, seed=seed)
                   for m in ("fresh", "eot", "replay")}
            out[f"d{d:g}_{rule}"] = {m: [v.success, v.stderr] for m, v in res.items()}
        out[f"d{d:g}_baseline"] = theory.no_attack_success(n, 1.0, r, d)
    out["first_bound"] = theory.bound_perfect(n, 1.0, r)
    out["second_bound"] = theory.bound_eot(n, 1.0, r)
    out["eot8_gd_exact"] = theory.psi(r * r / (1 + 1 / 8), n)
    for d in ("10", "2"):
        out[f"d{d}_fresh_l2_over_first"] = out[f"d{d}_l2"]["fresh"][0] / out["first_bound"]
    return out


def run(trials: int = 20000, seed: int = 0, pgd_trials: int = 4000) -> dict:
    """All sections, as plain data."""
    return {"theorem1": theorem1_scope(trials, seed), "projection": projection(trials, seed),
            "corollary_1_1": corollary_1_1(), "replay_clipping": replay_clipping(trials, seed),
            "linf_clipping": linf_clipping(trials, seed), "pgd": pgd_rows(pgd_trials, seed)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m toymodel.checks", description=__doc__)
    p.add_argument("--trials", type=argtypes.trials, default=20000, help="Monte Carlo trials per estimate")
    p.add_argument("--pgd-trials", type=argtypes.trials, default=4000, help="trials per PGD estimate")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="SeedSequence seed (>= 0)")
    p.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    args = p.parse_args(argv)
    problem = args.json and atomic.output_problem(args.json)
    if problem:
        p.error(f"--json: {problem}")
    result = run(args.trials, args.seed, args.pgd_trials)
    for section, values in result.items():
        print(f"\n[{section}]")
        for key, value in values.items():
            print(f"  {key}: {value}")
    if args.json:
        atomic.write_text_atomic(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
