"""Table 2: DiffPure vs RevPure (DDPM) vs DDIM RevPure at t* = 150 under fixed noise (paper Sec. 5.2).

`python -m empirical.table2` runs a CPU-sized digits default (printed at the start); `--full` the
paper's protocol. Every cell comes from protocol.run_chunk with Protocol(fresh_cells=False), i.e. the
fixed-noise (replay) cells of Table 1, so the numbers are comparable to Table 1's "Fix noise" rows.
This module also holds the small runner the other table modules (sweep_tstar, subsequence, ema) share.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from tqdm import tqdm

from empirical import cli, report
from empirical.protocol import Protocol, run_chunk
from empirical.results import ResultStore, atomic_write_json
from empirical.setup import load_setup

PAPER_ROWS = [  # the paper's Table 2, CIFAR-10 rows, printed beside ours and labelled as the paper's
    {"purifier": "paper: DDPM (CIFAR-10)", "method": "DiffPure", "fix": "yes", "t_star": 150,
     "clean": 79.61, "bpda": 68.00, "eot": 67.2},
    {"purifier": "paper: DDPM (CIFAR-10)", "method": "RevPure", "fix": "yes", "t_star": 150,
     "clean": 81.92, "bpda": 74.20, "eot": 74.9},
    {"purifier": "paper: DDPM (CIFAR-10)", "method": "DDIM RevPure", "fix": "n/a", "t_star": 150,
     "clean": 75.81, "bpda": 44.12, "eot": 44.7},
]
COLUMNS = [("purifier", "Purification model"), ("method", "Method"), ("fix", "Fix noise"), ("t_star", "t*"),
           ("clean", "Clean"), ("bpda", "BPDA"), ("eot", "BPDA-EOT")]
# CPU-sized digits default (applied only without --full, for options left unset): about 3-4 minutes
# for three purifiers at t* = 150 on one thread of the 2-core reference machine.
DEFAULTS = dict(n_samples=32, steps=6, eot=15, eot_samples=8, n_clean=64, threads=1)


def build_parser(prog: str = "python -m empirical.table2", description: str | None = __doc__,
                 defaults: dict | None = None) -> argparse.ArgumentParser:
    """The shared options (cli.add_common_args) with this table's defaults named in --help."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common_args(parser)
    d = defaults or DEFAULTS
    parser.epilog = ("CPU default without --full: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in d.items())
                     + ". --full: all test samples, 40 PGD steps, EOT 15 on 10% of them.")
    parser.set_defaults(purifiers=["diffpure", "revpure", "ddim"], t_star=150, fresh_evals=1)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None, defaults: dict) -> argparse.Namespace:
    """Parse, validate, and fill the CPU-sized defaults for options left unset (not under --full)."""
    args = parser.parse_args(argv)
    cli.check_common_args(parser, args)
    if not args.full:
        for key, value in defaults.items():
            if getattr(args, key, None) is None:
                setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def setup_for(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """setup.load_setup: data, models and attack budget (its notes carry the digits weights' hashes)."""
    return load_setup(args, parser)


def replay_protocol(setup, args) -> Protocol:
    """Fixed-noise-only protocol (the paper's Tables 2, S1, S2, 3 are all measured with replay)."""
    return Protocol(eps=setup.eps, steps=setup.steps, step_size=setup.step_size, eot=setup.eot,
                    fresh_evals=args.fresh_evals, seed=args.seed, noise_keys=args.noise_keys, fresh_cells=False)


def spec_key(spec) -> str:
    """A unique name for a purifier cell (Setup labels alone repeat across DiffPure/RevPure/DDIM)."""
    return spec.key


def run_specs(setup, protocol: Protocol, store: ResultStore, args, prefix: str = "") -> dict[str, list[dict]]:
    """Per purifier, the run_chunk records of every chunk (clean, BPDA, BPDA-EOT under fixed noise)."""
    out: dict[str, list[dict]] = {}
    chunks = setup.chunks(args.batch_size)
    for spec in setup.purifiers:
        name = prefix + spec_key(spec)
        records = []
        for index, (ids, attack) in enumerate(tqdm(chunks, desc=name, disable=args.quiet, file=sys.stdout)):
            key = f"{name}/{index}"
            if not store.has(key):
                x, y = setup.batch(ids)
                eot_mask = torch.tensor([int(i) in setup.eot_ids for i in ids], dtype=torch.bool)
                store.put(key, run_chunk(spec.classifier, spec.purifier, x, y, ids, index, protocol, eot_mask,
                                         predict=False, clean_only=not attack))
            records.append(store.get(key))
        out[name] = records
    return out


def cells(records: list[dict]) -> dict:
    """Clean / BPDA / BPDA-EOT Accuracy cells of one purifier (fixed noise)."""
    acc = lambda key: report.accuracy(report.concat(records, key))
    return {"clean": acc("clean_replay"), "bpda": acc("bpda_replay"), "eot": acc("eot_replay")}


def row(spec, records: list[dict], **extra) -> dict:
    fix = "yes" if spec.stochastic else "n/a (deterministic)"
    return {"purifier": spec.label, "method": spec.method, "fix": fix, "t_star": spec.t_star_text,
            **cells(records), **extra}


def jsonable(r: dict) -> dict:
    return {k: (v.to_dict() if isinstance(v, report.Accuracy) else v) for k, v in r.items()}


def write_outputs(args, result: dict, rows: list[dict], columns) -> None:
    if args.json:
        atomic_write_json(args.json, result)
    if args.csv:
        report.write_csv(args.csv, rows, columns)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parse(parser, argv, DEFAULTS)
    start = time.perf_counter()
    setup = setup_for(args, parser)
    protocol = replay_protocol(setup, args)
    print(setup.describe(protocol) + "\nFixed noise only (Protocol(fresh_cells=False)); under fixed noise "
          "BPDA-EOT's draws coincide, so it is BPDA on its subset.", flush=True)
    config = {"table": 2, "dataset": args.dataset, "protocol": protocol.to_dict(), "setup": setup.config(),
              "batch_size": args.batch_size}
    store = ResultStore.open(args.results, config, resume=args.resume)
    records = run_specs(setup, protocol, store, args)
    rows = [row(spec, records[spec_key(spec)]) for spec in setup.purifiers]
    elapsed = time.perf_counter() - start
    print("\n" + report.format_table(rows + PAPER_ROWS, COLUMNS))
    print(f"Accuracies in %: mean±SE over samples. Paper rows are CIFAR-10 (WRN-28-10, 8/255); ours are "
          f"{args.dataset}.\nWall time: {elapsed:.0f} s on {setup.device}.")
    result = {"config": config, "rows": [jsonable(r) for r in rows], "paper_rows": PAPER_ROWS,
              "records": records, "elapsed_s": elapsed}
    write_outputs(args, result, rows, COLUMNS)
    return result


if __name__ == "__main__":
    main()
