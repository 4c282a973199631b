"""Table S2 / Fig. 2b: clean and BPDA accuracy against the subsequence length s* at t* = 150 (Sec. 5.3).

The reverse chain visits s* linearly spaced timesteps of t*-1..0 (purifiers.timestep_grid; s* = t* is the
full chain). Cells are protocol.run_chunk with Protocol(fresh_cells=False). Writes figures/fig2b.png.
"""
from __future__ import annotations

import time
from pathlib import Path

from empirical.sweep_tstar import FIG_DIR, plot_sweep, sweep_cells, sweep_table
from empirical.table2 import build_parser, jsonable, parse, write_outputs

S_STARS = (5, 10, 20, 50, 75, 150)
PAPER = {  # Table S2 (CIFAR-10), printed beside ours and labelled as the paper's
    "clean": {"DiffPure": [66.6, 47.7, 33.6, 34.5, 48.1, 80.7], "RevPure": [81.3, 70.3, 54.4, 58.8, 68.4, 83.1],
              "DDIM RevPure": [95.2, 95.3, 94.3, 91.4, 87.5, 77.6]},
    "bpda": {"DiffPure": [0.0, 0.0, 0.0, 0.5, 3.5, 67.2], "RevPure": [0.0, 0.0, 0.1, 1.8, 11.9, 75.2],
             "DDIM RevPure": [0.0, 0.0, 0.0, 2.2, 11.3, 44.3]},
}
# About 3 minutes on one thread: 6 s* x 3 purifiers (310 UNet calls per purification), 16 samples, 4 steps.
DEFAULTS = dict(n_samples=16, steps=4, n_clean=32, threads=1)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser("python -m empirical.subsequence", __doc__, DEFAULTS)
    parser.add_argument("--s-stars", type=int, nargs="+", default=list(S_STARS),
                        help="subsequence lengths s* (default: the paper's 5 10 20 50 75 150; each <= t*)")
    parser.add_argument("--png", default=str(FIG_DIR / "fig2b.png"), help="output figure (default figures/fig2b.png)")
    args = parse(parser, argv, DEFAULTS)
    bad = [s for s in args.s_stars if not 1 <= s <= args.t_star]
    if bad:
        parser.error(f"--s-stars must lie in [1, t*={args.t_star}], got {bad}")
    start = time.perf_counter()
    rows, records, config = sweep_cells(args, parser, "s_star", "s", args.s_stars, "S2",
                                        f"\nSubsequences s* = {args.s_stars} of t* = {args.t_star} "
                                        "(linear spacing); fixed noise only.",
                                        {"t_star": args.t_star, "s_stars": args.s_stars})
    elapsed = time.perf_counter() - start
    print("\n" + sweep_table(rows, args.s_stars, "s", {**PAPER, "values": list(S_STARS)}, "s*"))
    print(f"Accuracies in %: mean±SE. Paper rows: CIFAR-10 at t* = 150. Wall time {elapsed:.0f} s.")
    plot_sweep(rows, "s", "subsequence length s*", f"Fig. 2b on {args.dataset}: t*={args.t_star}, dashed clean, "
               "solid BPDA (fixed noise)", Path(args.png), log_x=True)
    print(f"wrote {args.png}")
    result = {"config": config, "rows": [jsonable(r) for r in rows], "paper": PAPER, "paper_s_stars": list(S_STARS),
              "records": records, "elapsed_s": elapsed, "png": str(args.png)}
    write_outputs(args, result, rows, [("method", "Method"), ("s", "s*"), ("clean", "Clean"), ("bpda", "BPDA")])
    return result


if __name__ == "__main__":
    main()
