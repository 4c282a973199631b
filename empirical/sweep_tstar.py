"""Table S1 / Fig. 2a: clean and BPDA accuracy against the sequence length t* (paper Sec. 5.3).

t* in {1, 50, 100, 150, 200} for DiffPure, RevPure (DDPM, fixed noise) and DDIM RevPure; every cell is
protocol.run_chunk with Protocol(fresh_cells=False). Writes figures/fig2a.png (dashed: clean, solid: BPDA).
"""
from __future__ import annotations

import time
from pathlib import Path

from empirical import report
from empirical.results import ResultStore
from empirical.table2 import (build_parser, jsonable, parse, replay_protocol, row, run_specs, setup_for,
                             spec_key, write_outputs)

FIG_DIR = Path(__file__).resolve().parent.parent / "figures"
T_STARS = (1, 50, 100, 150, 200)
PAPER = {  # Table S1 (CIFAR-10), printed beside ours and labelled as the paper's
    "clean": {"DiffPure": [94.0, 89.4, 83.7, 80.7, 75.5], "RevPure": [94.9, 91.6, 86.7, 83.1, 77.7],
              "DDIM RevPure": [95.0, 90.1, 81.8, 77.6, 69.4]},
    "bpda": {"DiffPure": [0.0, 31.2, 60.2, 67.2, 68.8], "RevPure": [0.0, 50.2, 72.8, 75.2, 72.8],
             "DDIM RevPure": [0.0, 22.7, 39.3, 44.3, 41.3]},
}
# About 5 minutes on one thread: 5 t* x 3 purifiers, 16 attacked samples, 4 PGD steps, no EOT.
DEFAULTS = dict(n_samples=16, steps=4, n_clean=32, threads=1)


def sweep_cells(args, parser, attr: str, tag: str, values: list[int], table: str, header: str,
                extra_config: dict) -> tuple[list[dict], dict, dict]:
    """Fixed-noise clean/BPDA cells once per value of args.<attr> (t* or s*), in one results store."""
    rows, records, store, config = [], {}, None, None
    for value in values:
        setattr(args, attr, value)
        setup = setup_for(args, parser)
        setup.eot_ids = set()      # Tables S1 and S2 have no BPDA-EOT column
        protocol = replay_protocol(setup, args)
        if store is None:
            print(setup.describe(protocol) + header, flush=True)
            config = {"table": table, "dataset": args.dataset, "protocol": protocol.to_dict(), **extra_config,
                      "setup": setup.config(), "batch_size": args.batch_size}
            store = ResultStore.open(args.results, config, resume=args.resume)
        recs = run_specs(setup, protocol, store, args, prefix=f"{tag}{value}:")
        for spec in setup.purifiers:
            name = f"{tag}{value}:" + spec_key(spec)
            records[name] = recs[name]
            rows.append(row(spec, recs[name], **{tag: value}))
    return rows, records, config


def sweep_table(rows: list[dict], values: list[int], key: str, paper: dict, label: str) -> str:
    """Metric x purifier rows, one column per t* (or s*), ours beside the paper's (CIFAR-10) rows."""
    cols = [("metric", "Metric"), ("method", "Model")] + [(str(v), f"{label}={v}") for v in values]
    table = []
    for metric in ("clean", "bpda"):
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = {str(r[key]): r[metric] for r in rows if r["method"] == method}
            table.append({"metric": metric, "method": method, **cells})
        for method, ys in paper[metric].items():
            table.append({"metric": metric, "method": f"paper (CIFAR-10): {method}",
                          **{str(v): y for v, y in zip(paper.get("values", values), ys)}})
    return report.format_table(table, cols)


def plot_sweep(rows: list[dict], key: str, xlabel: str, title: str, path: Path, log_x: bool = False) -> None:
    """Dashed lines: clean accuracy; solid: BPDA accuracy; error bars are SE (Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    colors = {"DiffPure": "tab:blue", "RevPure": "tab:orange", "DDIM RevPure": "tab:green"}
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r[key])
        xs = [r[key] for r in pts]
        c = colors.get(method)
        for metric, style in (("clean", "--"), ("bpda", "-")):
            acc = [r[metric] for r in pts]
            if any(a is None for a in acc):
                continue
            ax.errorbar(xs, [a.mean for a in acc], yerr=[a.se for a in acc], ls=style, marker="o", ms=3,
                        color=c, capsize=2, label=f"{method} {'clean' if metric == 'clean' else 'BPDA'}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser("python -m empirical.sweep_tstar", __doc__, DEFAULTS)
    parser.add_argument("--t-stars", type=int, nargs="+", default=list(T_STARS),
                        help="sequence lengths t* to sweep (default: the paper's 1 50 100 150 200)")
    parser.add_argument("--png", default=str(FIG_DIR / "fig2a.png"), help="output figure (default figures/fig2a.png)")
    args = parse(parser, argv, DEFAULTS)
    if any(not 0 <= t <= 1000 for t in args.t_stars):
        parser.error(f"--t-stars must lie in [0, 1000], got {args.t_stars}")
    start = time.perf_counter()
    rows, records, config = sweep_cells(args, parser, "t_star", "t", args.t_stars, "S1",
                                        f"\nSweep over t* = {args.t_stars}; fixed noise only.",
                                        {"t_stars": args.t_stars})
    elapsed = time.perf_counter() - start
    print("\n" + sweep_table(rows, args.t_stars, "t", {**PAPER, "values": list(T_STARS)}, "t*"))
    print(f"Accuracies in %: mean±SE. Paper rows: CIFAR-10, 10% of the test set. Wall time {elapsed:.0f} s.")
    plot_sweep(rows, "t", "sequence length t*", f"Fig. 2a on {args.dataset}: dashed clean, solid BPDA (fixed noise)",
               Path(args.png))
    print(f"wrote {args.png}")
    result = {"config": config, "rows": [jsonable(r) for r in rows], "paper": PAPER, "paper_t_stars": list(T_STARS),
              "records": records, "elapsed_s": elapsed, "png": str(args.png)}
    write_outputs(args, result, rows, [("method", "Method"), ("t", "t*"), ("clean", "Clean"), ("bpda", "BPDA")])
    return result


if __name__ == "__main__":
    main()
