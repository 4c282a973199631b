"""CLI: Monte Carlo vs exact vs Theorem 1 bounds over r/sigma, strategies and threat sets.

python -m toymodel.sweep --n 3072 [--json out.json] ; several --n also print success vs n at
fixed r/sigma beside the Corollary 1.1 CLT form and its large-n limit.

Default geometry is the paper's (Sec. 4.2, Fig. S1a): x0 outside A (d = 1.25 max r) and, for the
'auto' threat radius, A inside B_p(x0, eps). Other geometries (--d, numeric --eps) are flagged.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import sys
import time

from tqdm import tqdm

from toymodel import argtypes, atomic, simulate, theory

FIELDS = [f.name for f in dataclasses.fields(simulate.Estimate)]
D_OVER_R = 1.25
LEGEND = """Columns: MC +- SE (Monte Carlo), exact (closed form, '-' if none), no-attack (success of xi = 0
under fresh noise), two Theorem 1 columns and the bound that covers the row:
  Psi(r2/2s2): first bound = exact success of the unconstrained full-cancellation attack
               x = c - eta0 of the proof; it does not bound other attacks (partial exceeds it).
  Psi(r2/s2):  second bound = covers every attack tested under fresh noise (Anderson).
  covered by:  'exact: full cancellation' | 'first bound + P(projected)' (perfect, clipped) |
               'any fresh-noise attack' | 'none: tested under its own noise' (replay, Cor. 2.1).
Strategies: perfect = c - eta0 projected onto B_p(x0, eps) if infeasible; partial = c - t eta0,
t = max(0, 1 - r/||eta0||) (adversarial under eta0); eot = proj(c); replay = perfect tested under eta0.
Flags: * = row outside the paper's geometry (see the NOTE above its group); EXCEEDS = MC more than
4 SE above the covering bound, which would be a bug."""


def threat_sets(eps_list: list, norms: list[str], directions: list[str]) -> list[tuple]:
    """(eps, norm, direction) combinations; eps = inf is one unconstrained set."""
    out = []
    for eps in eps_list:
        if eps == math.inf:
            out.append((eps, "2", "axis"))
            continue
        for norm in norms:
            for direction in (directions if norm == "inf" else ["axis"]):
                out.append((eps, norm, direction))
    return out


def resolve_geometry(n: int, rs: list[float], d: float | None, eps: float | str, norm: str,
                     direction: str) -> tuple[float, float]:
    """(d, eps) for one group: d = 1.25 max r unless given (x0 outside A); eps 'auto' is the
    smallest radius with A = B2(c, max r) inside B_p(x0, eps) (paper Sec. 4.2)."""
    d = D_OVER_R * max(rs) if d is None else d
    if eps == "auto":
        eps = theory.containing_eps(n, d, max(rs), norm, direction)
    return d, eps


def run_grid(args) -> list[simulate.Estimate]:
    """All estimates of the main grid (one shared simulation per strategy and threat set)."""
    jobs = [(n, t) for n in args.n for t in threat_sets(args.eps, args.norm, args.direction)]
    rows = []
    for n, (eps, norm, direction) in tqdm(jobs, desc="sweep", disable=args.quiet):
        rs = [q * args.sigma for q in (args.r_over_sigma or theory.default_ratios(n))]
        d, eps_value = resolve_geometry(n, rs, args.d, eps, norm, direction)
        for strategy in args.strategy:
            rows += simulate.estimate_curve(strategy, n, args.sigma, rs, d, eps_value, norm, direction,
                                            args.trials, args.seed, threads=args.threads)
    return rows


def run_dimension(args) -> list[simulate.Estimate]:
    """Unclipped perfect and EOT success vs n at each fixed r/sigma (Corollary 1.1)."""
    rows = []
    for q in args.fixed_r_over_sigma:
        d = D_OVER_R * q * args.sigma if args.d is None else args.d
        for n in args.n:
            for strategy in ("perfect", "eot"):
                rows += simulate.estimate_curve(strategy, n, args.sigma, [q * args.sigma], d,
                                                trials=args.trials, seed=args.seed, threads=args.threads)
    return rows


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if x == 0 or 1e-3 <= abs(x) else f"{x:.2e}"


def _fmt_log(logp: float | None) -> str:
    """Probability given by its log, printed as m.mme-XXX even below the float range."""
    if logp is None:
        return "-"
    if logp > -690.0:
        return _fmt(math.exp(logp))
    exponent = math.floor(logp / math.log(10.0))
    return f"{10 ** (logp / math.log(10.0) - exponent):.2f}e{exponent}"


def exceeds(e: simulate.Estimate) -> bool:
    """Whether the MC estimate lies above its covering bound by more than 4 SE (a bug if so)."""
    slack = 4.0 * math.sqrt(e.bound * (1.0 - e.bound) / e.trials) + 1.0 / e.trials
    return e.success > e.bound + slack


def _geometry_notes(sub) -> list[str]:
    """Plain-language notes on the rows of a group that leave the paper's geometry."""
    e0, notes = sub[0], []
    inside = [e.r / e.sigma for e in sub if e.x0_in_A]
    outside = [e.r / e.sigma for e in sub if not e.A_in_threat]
    if inside:
        notes.append(f"NOTE: x0 lies in A for r/sigma >= {min(inside):.3f} (d/sigma = {e0.d / e0.sigma:.3f}): "
                     "the clean point is already misclassified and the no-attack baseline is large (rows *).")
    if outside:
        notes.append(f"NOTE: A is not inside B_p(x0, eps) for r/sigma >= {min(outside):.3f}: part of A is "
                     "out of reach of the threat set, unlike the paper's setup (rows *).")
    return notes


def print_grid(rows) -> None:
    print(LEGEND)
    key = lambda e: (e.n, e.eps, e.norm, e.direction)
    for group in dict.fromkeys(key(e) for e in rows):
        n, eps, norm, direction = group
        sub = [e for e in rows if key(e) == group]
        print(f"\nn={n} sigma={sub[0].sigma} d={sub[0].d:.4g} eps={eps:.4g} norm=l{norm} direction={direction}"
              f" trials={sub[0].trials}")
        for note in _geometry_notes(sub):
            print(note)
        print(f"{'r/sigma':>8} | {'strategy':>8} | {'MC':>6} {'SE':>6} {'exact':>9} | {'no-attack':>9}"
              f" {'Psi(r2/2s2)':>11} {'Psi(r2/s2)':>10} | covered by")
        for e in sorted(sub, key=lambda e: e.r):
            flag = ("*" if e.x0_in_A or not e.A_in_threat else "") + (" EXCEEDS" if exceeds(e) else "")
            print(f"{e.r / e.sigma:8.3f} | {e.strategy:>8} | {e.success:6.4f} {e.stderr:6.4f} {_fmt(e.exact):>9} |"
                  f" {_fmt_log(e.log_baseline):>9} {_fmt(e.bound_full_cancel):>11} {_fmt(e.bound_fresh):>10} |"
                  f" {_fmt(e.bound)} ({e.bound_covers}){flag}")


def print_dimension(rows) -> None:
    print("\nCurse of dimensionality (unclipped; Corollary 1.1: CLT form of Psi(r^2/sigma^2; n) and"
          " its limit 1/2(1 - erf(sqrt(n)/2)))")
    print(f"{'r/sigma':>8} {'n':>8} | {'MC perf':>8} {'exact':>10} | {'MC eot':>8} {'exact':>10} |"
          f" {'CLT':>10} {'limit':>10}")
    for i in range(0, len(rows), 2):
        p, e = rows[i], rows[i + 1]
        x = (e.r / e.sigma) ** 2
        lp = theory.log_exact_success("perfect", p.n, p.sigma, p.r, p.d)
        le = theory.log_exact_success("eot", e.n, e.sigma, e.r, e.d)
        print(f"{e.r / e.sigma:8.3f} {e.n:8d} | {p.success:8.4f} {_fmt_log(lp):>10} | {e.success:8.4f}"
              f" {_fmt_log(le):>10} | {_fmt_log(theory.log_clt_psi(x, e.n)):>10}"
              f" {_fmt_log(theory.log_clt_limit(e.n)):>10}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m toymodel.sweep", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=argtypes.int_at_least_1, nargs="+", default=[3072], help="dimension(s) n")
    p.add_argument("--sigma", type=argtypes.positive, default=1.0, help="purifier noise std sigma")
    p.add_argument("--d", type=argtypes.distance, default=None,
                   help="distance of the centre c from x0; default 'auto' = 1.25 x the largest r (x0 outside A)")
    p.add_argument("--r-over-sigma", type=argtypes.positive, nargs="+", default=None,
                   help="radii r/sigma (default: 14 values around sqrt(n) and sqrt(2n))")
    p.add_argument("--eps", type=argtypes.threat_radius, nargs="+", default=[math.inf, "auto"],
                   help="threat radii: 'inf' = unconstrained, 'auto' = smallest with A inside B_p(x0, eps), or numbers")
    p.add_argument("--norm", choices=theory.NORMS, nargs="+", default=list(theory.NORMS),
                   help="threat norm(s) for finite eps")
    p.add_argument("--direction", choices=theory.DIRECTIONS, nargs="+", default=list(theory.DIRECTIONS),
                   help="centre direction(s) for l_inf (l2 is rotation invariant)")
    p.add_argument("--strategy", choices=theory.STRATEGIES, nargs="+", default=list(theory.STRATEGIES),
                   help="attack strategies (Theorem 1: perfect, partial, eot; Corollary 2.1: replay)")
    p.add_argument("--fixed-r-over-sigma", type=argtypes.positive, nargs="+", default=[8.0],
                   help="r/sigma for the success-vs-n table (printed when several --n are given)")
    p.add_argument("--trials", type=argtypes.trials, default=20000,
                   help=f"Monte Carlo trials per point (1..{simulate.MAX_TRIALS})")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="SeedSequence seed (>= 0)")
    p.add_argument("--threads", type=argtypes.int_at_least_1, default=None, help="Numba threads (default: all)")
    p.add_argument("--json", metavar="PATH", help="write all rows as a JSON list")
    p.add_argument("--csv", metavar="PATH", help="write all rows as CSV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _csv_text(table: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows({k: row[k] for k in FIELDS} for row in table)
    return buf.getvalue()


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba
        if args.threads > numba.config.NUMBA_NUM_THREADS:
            parser.error(f"--threads: at most {numba.config.NUMBA_NUM_THREADS} available")
    for option, path in (("--json", args.json), ("--csv", args.csv)):
        problem = path and atomic.output_problem(path)
        if problem:
            parser.error(f"{option}: {problem}")
    start = time.perf_counter()
    rows = run_grid(args)
    print_grid(rows)
    if len(args.n) > 1:
        dim = run_dimension(args)
        print_dimension(dim)
        rows += dim
    table = [e.as_row() for e in rows]
    if args.json:
        atomic.write_text_atomic(args.json, json.dumps(table, indent=1))
    if args.csv:
        atomic.write_text_atomic(args.csv, _csv_text(table))
    print(f"\n{len(rows)} rows in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
