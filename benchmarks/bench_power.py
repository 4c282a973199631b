"""Power per second of Table 1's drops: how the PGD step count trades time against the paired SE.

For each step count, Table 1's cells (no fix and fixed noise) are measured on the same digits samples
for DiffPure and the toy Gaussian purifier, and the script prints, side by side: wall seconds per
sample, the paired BPDA drop (no fix minus fixed noise) with its SE, the per-sample SD, and from those
the samples and the seconds a run would need to resolve the measured drop at 3 paired SE (and the
BPDA-EOT drop at an SE of 5 points). The attack is nearly converged after a few steps of eps/4, so
fewer steps buy more samples for the same time.

python -m benchmarks.bench_power [--n-samples 32] [--steps 5 10] [--eot-samples 16] [--json PATH]
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from empirical.harness import config as cfg
from empirical.harness import records as rec
from empirical.harness.setup import load_setup
from empirical.protocol import run_chunk
from empirical.results import atomic_write_json
from empirical.stats import paired_difference


def measure(steps: int, n: int, n_eot: int, fresh_evals: int, seed: int) -> list[dict]:
    """Per purifier: seconds per sample and the paired drops at this step count (one chunk of n samples)."""
    config = cfg.Config(table="power", purifier=cfg.PurifierConfig(names=("diffpure", "gaussian")),
                        sizes=cfg.Sizes(n_samples=n, eot_samples=n_eot, steps=steps, eot=4),
                        run=cfg.RunConfig(seed=seed, fresh_evals=fresh_evals, device="cpu"))
    setup = load_setup(config)
    protocol = cfg.make_protocol(config, setup.budget)
    ids = setup.ids[:n]
    x, y = setup.batch(ids)
    mask = torch.tensor([int(i) in setup.eot_ids for i in ids])
    out = []
    for spec in setup.purifiers:
        start = time.perf_counter()
        chunk = run_chunk(spec.classifier, spec.purifier, x, y, ids, 0, protocol, mask, predict=False)
        seconds = time.perf_counter() - start
        row = {"purifier": spec.method, "steps": steps, "n": n, "seconds": seconds, "s_per_sample": seconds / n}
        for name in ("bpda", "eot"):
            d = paired_difference(rec.outcomes([chunk], f"{name}_fresh"), rec.outcomes([chunk], f"{name}_replay"))
            row[f"{name}_drop"], row[f"{name}_se"], row[f"{name}_sd"] = d.mean, d.se, d.sd
        if row["bpda_drop"] > 0 and row["bpda_sd"] > 0:
            need = math.ceil((3 * row["bpda_sd"] / row["bpda_drop"]) ** 2)
            row["samples_for_3se"], row["seconds_for_3se"] = need, need * row["s_per_sample"]
        if row["eot_sd"] > 0:
            row["eot_samples_for_se5"] = math.ceil((row["eot_sd"] / 5) ** 2)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_power", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-samples", type=int, default=32, help="samples per measurement (default 32)")
    p.add_argument("--eot-samples", type=int, default=16, help="of which attacked with BPDA-EOT (default 16)")
    p.add_argument("--steps", type=int, nargs="+", default=[5, 10], help="PGD step counts compared (default 5 10)")
    p.add_argument("--fresh-evals", type=int, default=2, help="R fresh evaluations (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if min(args.steps) < 1 or args.n_samples < 2 or not 1 <= args.eot_samples <= args.n_samples:
        p.error("--steps must be >= 1, --n-samples >= 2 and 1 <= --eot-samples <= --n-samples")
    torch.set_num_threads(args.threads)
    rows = [r for steps in args.steps for r in measure(steps, args.n_samples, args.eot_samples, args.fresh_evals,
                                                         args.seed)]
    print(f"{'purifier':<22}{'steps':>6}{'s/sample':>10}{'BPDA drop':>16}{'sd':>7}{'n for 3 SE':>12}"
          f"{'s for 3 SE':>12}{'EOT drop':>16}{'EOT n, SE 5':>13}")
    for r in rows:
        print(f"{r['purifier']:<22}{r['steps']:>6}{r['s_per_sample']:>10.2f}"
              f"{r['bpda_drop']:>+9.1f}±{r['bpda_se']:<5.1f}{r['bpda_sd']:>7.1f}{r.get('samples_for_3se', '-'):>12}"
              f"{r.get('seconds_for_3se', float('nan')):>12.0f}{r['eot_drop']:>+9.1f}±{r['eot_se']:<5.1f}"
              f"{r.get('eot_samples_for_se5', '-'):>13}")
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
