"""Table S1 / Fig. 2a: clean and BPDA accuracy against the sequence length t* (paper Sec. 5.3).

t* in {1, 50, 100, 150, 200} for DiffPure, RevPure (DDPM, fixed noise) and DDIM RevPure, every cell under
randomness replay. Writes figures/fig2a.png and .pdf (dashed: clean, solid: BPDA).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from empirical.harness import config as cfg
from empirical.harness import report
from empirical.harness.sweeps import sweep_main
from empirical.paper.notes import notes as claim_notes
from empirical.paper.numbers import T_STARS, TABLE_S1

FIGURE = str(Path(__file__).resolve().parent.parent / "figures" / "fig2a.png")
PAPER = TABLE_S1   # printed beside ours and labelled as the paper's
# About 5 minutes on one thread: 5 t* x 3 purifiers, 16 attacked samples, 4 PGD steps, no EOT.
SPEC = cfg.TableSpec("python -m empirical.sweep_tstar", __doc__, "S1",
                     cpu_defaults=dict(n_samples=16, steps=4, n_clean=32, threads=1),
                     set_defaults=dict(purifiers=["diffpure", "revpure", "ddim"], t_star=150, fresh_evals=1),
                     figure=FIGURE)


def _extra(parser) -> None:
    parser.add_argument("--t-stars", type=int, nargs="+", default=list(T_STARS),
                        help="sequence lengths t* to sweep (default: the paper's 1 50 100 150 200)")


def _check(parser, args) -> dict:
    if any(not 0 <= t <= 1000 for t in args.t_stars):
        parser.error(f"--t-stars must lie in [0, 1000], got {args.t_stars}")
    return {"t_stars": list(args.t_stars)}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def run(config: cfg.Config) -> dict:
    values = config.option("t_stars")
    return sweep_main(config, "t_star", "t", "t*", values, PAPER, T_STARS,
                      f"\nSweep over t* = {values}; fixed noise only.", "Paper rows: CIFAR-10, 10% of the test set.",
                      "sequence length t*", f"Fig. 2a on {config.data.dataset}: dashed clean, solid BPDA (fixed noise)",
                      notes=partial(claim_notes, "sweep_tstar"))


if __name__ == "__main__":
    main()
