"""CLI: Monte Carlo vs exact vs Theorem 1 bound over r/sigma, strategies and threat sets.

python -m toymodel.sweep --n 3072 [--json out.json] ; several --n also print success vs n at
fixed r/sigma beside the Corollary 1.1 CLT form and its large-n limit.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time

from tqdm import tqdm

from toymodel import simulate, theory

FIELDS = ["n", "sigma", "r", "d", "direction", "eps", "norm", "strategy", "success", "stderr",
          "trials", "exact", "bound"]


def _int_at_least_1(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _finite_number(text: str, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not ((value > 0 if strict else value >= 0) and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be finite and {'>' if strict else '>='} 0, got {text}")
    return value


def _positive(text: str) -> float:
    return _finite_number(text, strict=True)


def _nonnegative(text: str) -> float:
    return _finite_number(text, strict=False)


def _eps(text: str) -> float:
    return math.inf if text.lower() in ("inf", "none") else _positive(text)


def default_ratios(n: int) -> list[float]:
    """r/sigma with r^2/sigma^2 = k n + z k sqrt(2n), z = -3..3: dense around sqrt(n) (EOT) and
    sqrt(2n) (perfect), where Psi(r^2/sigma^2; n) and Psi(r^2/(2 sigma^2); n) cross 1/2."""
    return [math.sqrt(max(k * n + z * k * math.sqrt(2 * n), 1e-6)) for k in (1, 2) for z in range(-3, 4)]


def threat_sets(eps_list, norms, directions):
    """(eps, norm, direction) combinations; eps = inf is one unconstrained set."""
    out = []
    for eps in eps_list:
        if math.isinf(eps):
            out.append((eps, "2", "axis"))
            continue
        for norm in norms:
            for direction in (directions if norm == "inf" else ["axis"]):
                out.append((eps, norm, direction))
    return out


def run_grid(args) -> list[simulate.Estimate]:
    """All estimates of the main grid (one shared simulation per strategy and threat set)."""
    jobs = [(n, s, t) for n in args.n for t in threat_sets(args.eps, args.norm, args.direction)
            for s in args.strategy]
    rows = []
    for n, strategy, (eps, norm, direction) in tqdm(jobs, desc="sweep", disable=args.quiet):
        ratios = args.r_over_sigma or default_ratios(n)
        rs = [q * args.sigma for q in ratios]
        rows += simulate.estimate_curve(strategy, n, args.sigma, rs, args.d, eps, norm, direction,
                                        args.trials, args.seed, threads=args.threads)
    return rows


def run_dimension(args) -> list[simulate.Estimate]:
    """Unclipped perfect and EOT success vs n at each fixed r/sigma (Corollary 1.1)."""
    rows = []
    for q in args.fixed_r_over_sigma:
        for n in args.n:
            for strategy in ("perfect", "eot"):
                rows += simulate.estimate_curve(strategy, n, args.sigma, [q * args.sigma], args.d,
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


def print_grid(rows) -> None:
    key = lambda e: (e.n, e.eps, e.norm, e.direction)
    for group in dict.fromkeys(key(e) for e in rows):
        n, eps, norm, direction = group
        sub = [e for e in rows if key(e) == group]
        print(f"\nn={n} sigma={sub[0].sigma} d={sub[0].d} eps={eps} norm=l{norm} direction={direction}"
              f" trials={sub[0].trials}")
        print(f"{'r/sigma':>8} | {'strategy':>8} | {'MC':>8} {'SE':>8} {'exact':>9} {'bound':>9}")
        for r in dict.fromkeys(e.r for e in sub):
            for e in (x for x in sub if x.r == r):
                print(f"{r / e.sigma:8.3f} | {e.strategy:>8} | {e.success:8.4f} {e.stderr:8.4f}"
                      f" {_fmt(e.exact):>9} {_fmt(e.bound):>9}")


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
    p.add_argument("--n", type=_int_at_least_1, nargs="+", default=[3072], help="dimension(s) n")
    p.add_argument("--sigma", type=_positive, default=1.0, help="purifier noise std sigma")
    p.add_argument("--d", type=_nonnegative, default=2.0, help="distance of the centre c from x0")
    p.add_argument("--r-over-sigma", type=_positive, nargs="+", default=None,
                   help="radii r/sigma (default: 14 values around sqrt(n) and sqrt(2n))")
    p.add_argument("--eps", type=_eps, nargs="+", default=[math.inf, 1.0],
                   help="threat radii; 'inf' = unconstrained")
    p.add_argument("--norm", choices=theory.NORMS, nargs="+", default=list(theory.NORMS),
                   help="threat norm(s) for finite eps")
    p.add_argument("--direction", choices=theory.DIRECTIONS, nargs="+", default=list(theory.DIRECTIONS),
                   help="centre direction(s) for l_inf (l2 is rotation invariant)")
    p.add_argument("--strategy", choices=theory.STRATEGIES, nargs="+", default=list(theory.STRATEGIES),
                   help="attack strategies (Theorem 1: perfect, eot; Corollary 2.1: replay)")
    p.add_argument("--fixed-r-over-sigma", type=_positive, nargs="+", default=[8.0],
                   help="r/sigma for the success-vs-n table (printed when several --n are given)")
    p.add_argument("--trials", type=_int_at_least_1, default=20000, help="Monte Carlo trials per point")
    p.add_argument("--seed", type=int, default=0, help="SeedSequence seed")
    p.add_argument("--threads", type=_int_at_least_1, default=None, help="Numba threads (default: all)")
    p.add_argument("--json", metavar="PATH", help="write all rows as a JSON list")
    p.add_argument("--csv", metavar="PATH", help="write all rows as CSV")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        import numba
        if args.threads > numba.config.NUMBA_NUM_THREADS:
            parser.error(f"--threads: at most {numba.config.NUMBA_NUM_THREADS} available")
    start = time.perf_counter()
    rows = run_grid(args)
    print_grid(rows)
    if len(args.n) > 1:
        dim = run_dimension(args)
        print_dimension(dim)
        rows += dim
    table = [e.as_row() for e in rows]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(table, fh, indent=1)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows({k: row[k] for k in FIELDS} for row in table)
    print(f"\n{len(rows)} rows in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
