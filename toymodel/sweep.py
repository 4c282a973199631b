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
import os
import sys
import textwrap
import time

from tqdm import tqdm

from toymodel import argtypes, atomic, simulate, theory

FIELDS = [f.name for f in dataclasses.fields(simulate.Estimate)]
D_OVER_R = 1.25
# Largest dimension: the l_inf sampler draws n numbers per trial, and the exact noncentral tails sum about
# d^2 / (2 sigma^2) Poisson terms (3.1 n in the default geometry; at most 5e6 are summed).
MAX_N = 10**6
FORMATS = ("compact", "wide")
SYMBOLS = """Toy model (paper Sec. 4.2): the purifier P(x) = x + eta, eta ~ N(0, sigma^2 I_n), before a classifier whose
adversarial region is the ball A = B2(c, r). Symbols:
  n          dimension;  sigma  the purifier's noise std;  r  radius of A;  Psi(x; n)  chi-square(n) cdf
  x0, c      the clean point and the centre of A;  d = ||c - x0||, their distance (x0 lies outside A when d > r)
  eps, norm  the threat set B_p(x0, eps), p = norm (l2 or linf); eps = inf: unconstrained
  direction  where c lies from x0 for linf (along an axis or the diagonal; l2 is rotation invariant)
  eta0, xi   the noise draw an attack is crafted under; the adversarial perturbation (xi = 0: no attack)
  trials     Monte Carlo draws per point
Strategies: perfect = c - eta0 projected onto B_p(x0, eps) if infeasible; partial = c - t eta0,
  t = max(0, 1 - r/||eta0||) (adversarial under eta0); eot = proj(c); replay = perfect tested under eta0."""
COLUMNS_COMPACT = """Columns: MC, SE = Monte Carlo success and its standard error; exact = closed form ('-' if none);
  no-attack = success of xi = 0 under fresh noise; Theorem 1's two bounds:
  Psi(x/2) = Psi(r^2/(2 sigma^2); n), first bound: exact success of the unconstrained full-cancellation attack
             x = c - eta0 of the proof; it does not bound other attacks (partial exceeds it);
  Psi(x)   = Psi(r^2/sigma^2; n), second bound: covers every attack tested under fresh noise (Anderson);
  bound    = the bound that covers the row and why: exact (full cancellation, exact) | 1st+proj (first bound +
             P(projected): perfect, clipped) | 2nd (any fresh-noise attack) | none (tested under its own noise:
             replay, Cor. 2.1). --format wide spells these out.
Flags: * = row outside the paper's geometry (see the NOTE above its group); EXCEEDS = MC more than 4 SE above
  the covering bound, which would be a bug."""
COLUMNS_WIDE = """Columns: MC +- SE (Monte Carlo), exact (closed form, '-' if none), no-attack (success of xi = 0
under fresh noise), two Theorem 1 columns and the bound that covers the row:
  Psi(r2/2s2): first bound = exact success of the unconstrained full-cancellation attack
               x = c - eta0 of the proof; it does not bound other attacks (partial exceeds it).
  Psi(r2/s2):  second bound = covers every attack tested under fresh noise (Anderson).
  covered by:  'exact: full cancellation' | 'first bound + P(projected)' (perfect, clipped) |
               'any fresh-noise attack' | 'none: tested under its own noise' (replay, Cor. 2.1).
Flags: * = row outside the paper's geometry (see the NOTE above its group); EXCEEDS = MC more than
4 SE above the covering bound, which would be a bug."""
SHORT_COVER = {theory.COVER_EXACT: "exact", theory.COVER_PROJECTED: "1st+proj", theory.COVER_FRESH: "2nd",
               theory.COVER_NONE: "none"}


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


def grid_jobs(args) -> list[tuple]:
    """(n, sigma, radii, d, eps, norm, direction) of each group of the main grid."""
    jobs = []
    for n in args.n:
        for eps, norm, direction in threat_sets(args.eps, args.norm, args.direction):
            rs = [q * args.sigma for q in (args.r_over_sigma or theory.default_ratios(n))]
            d, eps_value = resolve_geometry(n, rs, args.d, eps, norm, direction)
            jobs.append((n, args.sigma, rs, d, eps_value, norm, direction))
    return jobs


def run_grid(args) -> list[simulate.Estimate]:
    """All estimates of the main grid (one shared simulation per strategy and threat set)."""
    rows = []
    for n, sigma, rs, d, eps, norm, direction in tqdm(grid_jobs(args), desc="sweep", disable=args.quiet):
        for strategy in args.strategy:
            rows += simulate.estimate_curve(strategy, n, sigma, rs, d, eps, norm, direction,
                                            args.trials, args.seed, threads=args.threads)
    return rows


def _closed_forms(strategy: str, n: int, sigma: float, r: float, d: float, eps: float, norm: str,
                  direction: str) -> None:
    """Every closed form printed beside a Monte Carlo estimate (those of simulate.Estimate), for its errors."""
    theory.covering_bound(strategy, n, sigma, r, d, eps, norm, direction)
    theory.exact_success(strategy, n, sigma, r, d, eps, norm, direction)
    theory.log_no_attack_success(n, sigma, r, d)
    theory.no_attack_success(n, sigma, r, d)
    theory.A_in_threat(n, d, r, eps, norm, direction)
    if strategy == "perfect":
        theory.p_projected(n, sigma, d, eps, norm, direction)


def preflight(args) -> str | None:
    """Evaluate the closed forms of every row before any Monte Carlo; the first that cannot be evaluated at
    these settings (an overflow, a noncentral tail too far out) is returned as a one-line reason."""
    errors = (ValueError, OverflowError, ZeroDivisionError, FloatingPointError)
    try:
        jobs = grid_jobs(args)
    except errors as err:
        return f"the geometry cannot be resolved at these settings ({err})"
    checks = [(s, n, sigma, r, d, eps, norm, direction) for n, sigma, rs, d, eps, norm, direction in jobs
              for s in args.strategy for r in rs]
    if len(args.n) > 1:
        for q in args.fixed_r_over_sigma:
            d = D_OVER_R * q * args.sigma if args.d is None else args.d
            checks += [(s, n, args.sigma, q * args.sigma, d, math.inf, "2", "axis") for n in args.n
                       for s in ("perfect", "eot")]
    for strategy, n, sigma, r, d, eps, norm, direction in checks:
        try:
            _closed_forms(strategy, n, sigma, r, d, eps, norm, direction)
            theory.log_exact_success(strategy, n, sigma, r, d, eps, norm, direction)
            theory.log_clt_psi((r / sigma) ** 2, n)
        except errors as err:
            return (f"the closed forms cannot be evaluated at n={n}, r/sigma={r / sigma:.4g}, d/sigma={d / sigma:.4g},"
                    f" eps={eps:.4g} ({err})")
    return None


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
    if logp == -math.inf:
        return "0"
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


def _group_key(e: simulate.Estimate) -> tuple:
    return (e.n, e.eps, e.norm, e.direction)


def _row(e: simulate.Estimate, fmt: str) -> str:
    flag = ("*" if e.x0_in_A or not e.A_in_threat else "") + (" EXCEEDS" if exceeds(e) else "")
    head = f"{e.r / e.sigma:8.3f} | {e.strategy:>8} | {e.success:6.4f} {e.stderr:6.4f} {_fmt(e.exact):>9} |"
    if fmt == "wide":
        return (head + f" {_fmt_log(e.log_baseline):>9} {_fmt(e.bound_full_cancel):>11} {_fmt(e.bound_fresh):>10} |"
                f" {_fmt(e.bound)} ({e.bound_covers}){flag}")
    return (head + f" {_fmt_log(e.log_baseline):>11} {_fmt(e.bound_full_cancel):>9} {_fmt(e.bound_fresh):>9} |"
            f" {_fmt(e.bound):>9} {SHORT_COVER[e.bound_covers]}{' ' + flag if flag else ''}")


def print_grid(rows, fmt: str = "compact") -> None:
    print(SYMBOLS)
    print(COLUMNS_WIDE if fmt == "wide" else COLUMNS_COMPACT)
    for group in dict.fromkeys(_group_key(e) for e in rows):
        n, eps, norm, direction = group
        sub = [e for e in rows if _group_key(e) == group]
        print(f"\nn={n} sigma={sub[0].sigma} d={sub[0].d:.4g} eps={eps:.4g} norm=l{norm} direction={direction}"
              f" trials={sub[0].trials}")
        for note in _geometry_notes(sub):
            print(textwrap.fill(note, width=120, subsequent_indent="  "))
        if fmt == "wide":
            print(f"{'r/sigma':>8} | {'strategy':>8} | {'MC':>6} {'SE':>6} {'exact':>9} | {'no-attack':>9}"
                  f" {'Psi(r2/2s2)':>11} {'Psi(r2/s2)':>10} | covered by")
        else:
            print(f"{'r/sigma':>8} | {'strategy':>8} | {'MC':>6} {'SE':>6} {'exact':>9} | {'no-attack':>11}"
                  f" {'Psi(x/2)':>9} {'Psi(x)':>9} | {'bound':>9} by")
        for e in sorted(sub, key=lambda e: e.r):
            print(_row(e, fmt))


def _crossing(points: list[tuple[float, float | None]]) -> float | str | None:
    """r/sigma where a success curve first crosses 1/2 (linear interpolation between grid points), 'above' or
    'below' if it stays on one side over the whole grid, None if a value is missing."""
    if not points or any(y is None for _, y in points):
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if (y0 - 0.5) * (y1 - 0.5) <= 0 and y0 != y1:
            return x0 + (0.5 - y0) * (x1 - x0) / (y1 - y0)
    return "above" if points[0][1] >= 0.5 else "below"


def crossings(rows) -> dict:
    """Per grid group, per strategy: (Monte Carlo crossing of 1/2, exact crossing) in r/sigma."""
    out = {}
    for group in dict.fromkeys(_group_key(e) for e in rows):
        per = {}
        for strategy in dict.fromkeys(e.strategy for e in rows if _group_key(e) == group):
            sub = sorted((e for e in rows if _group_key(e) == group and e.strategy == strategy), key=lambda e: e.r)
            per[strategy] = (_crossing([(e.r / e.sigma, e.success) for e in sub]),
                             _crossing([(e.r / e.sigma, e.exact) for e in sub]))
        out[group] = per
    return out


def _cell(mc, exact) -> str:
    if isinstance(mc, str):
        return f"{mc} 1/2 throughout"
    return f"{mc:.2f}" + ("" if exact is None or isinstance(exact, str) else f" [{exact:.2f}]")


def _landmark(x: float, n: int) -> str | None:
    for name, value in (("sqrt(n)", math.sqrt(n)), ("sqrt(2n)", math.sqrt(2 * n))):
        if abs(x - value) <= 0.03 * value:
            return name
    return None


def print_summary(rows) -> None:
    """Where each strategy's success crosses 1/2, per threat set, and which landmark it crosses near."""
    found = crossings(rows)
    strategies = list(dict.fromkeys(e.strategy for e in rows))
    print("\nSummary: r/sigma where success crosses 1/2 (Monte Carlo, linear interpolation between grid points;"
          " [exact])")
    print(f"  {'threat set':<31}" + "".join(f"{s:<21}" for s in strategies).rstrip())
    for (n, eps, norm, direction), per in found.items():
        label = f"n={n} " + ("eps=inf" if math.isinf(eps) else f"eps={eps:.4g} l{norm}"
                             + (f" {direction}" if norm == "inf" else ""))
        print(f"  {label:<31}" + "".join(f"{_cell(*per[s]):<21}" for s in strategies).rstrip())
    for n in dict.fromkeys(e.n for e in rows):
        near: dict[str, list[str]] = {}
        for s in strategies:
            marks = {(_landmark(mc, n) if isinstance(mc, float) else f"{mc} 1/2 throughout")
                     for (gn, *_), per in found.items() if gn == n for mc in [per[s][0]]}
            key = marks.pop() if len(marks) == 1 else "depends on the threat set"
            near.setdefault(f"near {key}" if key and "sqrt" in key else (key or "elsewhere"), []).append(s)
        print(textwrap.fill(f"n={n} (sqrt(n) = {math.sqrt(n):.2f}, sqrt(2n) = {math.sqrt(2 * n):.2f}): "
                            + "; ".join(f"{where}: {', '.join(ss)}" for where, ss in near.items()) + ".",
                            width=120, initial_indent="  ", subsequent_indent="    "))


def print_dimension(rows) -> None:
    print("\nCurse of dimensionality (unclipped; Corollary 1.1: CLT form of Psi(r^2/sigma^2; n)\n"
          "and its limit 1/2(1 - erf(sqrt(n)/2)))")
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


def dimension(text: str) -> int:
    """A dimension n in 1..MAX_N; integers written as 1e4 are read, then bounded."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not (math.isfinite(value) and value == int(value)):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    if not 1 <= value <= MAX_N:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_N} (the l_inf sampler draws n numbers per trial and "
                                         f"the exact tails grow with n), got {text}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m toymodel.sweep", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n", type=dimension, nargs="+", default=[3072], help=f"dimension(s) n, 1..{MAX_N}")
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
    p.add_argument("--format", choices=FORMATS, default="compact",
                   help="compact: every line within 120 columns; wide: the covering bound spelled out per row")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _csv_text(table: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows({k: row[k] for k in FIELDS} for row in table)
    return buf.getvalue()


def _same_file(a: str, b: str) -> bool:
    """Whether two output paths are one file (through links, or both standard output)."""
    if atomic.is_stdout(a) or atomic.is_stdout(b):
        return atomic.is_stdout(a) and atomic.is_stdout(b)
    return os.path.realpath(a) == os.path.realpath(b)


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
    if args.json and args.csv and _same_file(args.json, args.csv):
        parser.error(f"--json and --csv name the same file ({args.csv}); give them different paths")
    problem = preflight(args)
    if problem:
        given = [f"--{k.replace('_', '-')}" for k in ("sigma", "d", "eps", "r_over_sigma", "fixed_r_over_sigma")
                 if getattr(args, k) != parser.get_default(k)]
        parser.error(f"{problem}; bring {' or '.join(given) or '--n'} back to a moderate range")
    start = time.perf_counter()
    rows = run_grid(args)
    print_grid(rows, args.format)
    grid = list(rows)
    if len(args.n) > 1:
        dim = run_dimension(args)
        print_dimension(dim)
        rows += dim
    print_summary(grid)
    table = [e.as_row() for e in rows]
    if args.json:
        atomic.write_text_atomic(args.json, json.dumps(table, indent=1))
    if args.csv:
        atomic.write_text_atomic(args.csv, _csv_text(table))
    print(f"\n{len(rows)} rows in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
