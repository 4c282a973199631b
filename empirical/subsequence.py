"""Table S2 / Fig. 2b: clean and BPDA accuracy against the subsequence length s* at t* = 150 (Sec. 5.3).

The reverse chain visits s* linearly spaced timesteps of t*-1..0 (s* = t* is the full chain), every cell
under randomness replay. Writes figures/fig2b.png and .pdf.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from empirical.harness import config as cfg
from empirical.harness import report
from empirical.harness.sweeps import sweep_main
from empirical.paper.notes import notes as claim_notes
from empirical.paper.numbers import S_STARS, TABLE_S2

FIGURE = str(Path(__file__).resolve().parent.parent / "figures" / "fig2b.png")
PAPER = TABLE_S2   # printed beside ours and labelled as the paper's
# About 3 minutes on one thread: 6 s* x 3 purifiers (310 UNet calls per purification), 16 samples, 4 steps.
SPEC = cfg.TableSpec("python -m empirical.subsequence", __doc__, "S2",
                     cpu_defaults=dict(n_samples=16, steps=4, n_clean=32, threads=1),
                     set_defaults=dict(purifiers=["diffpure", "revpure", "ddim"], t_star=150, fresh_evals=1),
                     figure=FIGURE)


def _extra(parser) -> None:
    parser.add_argument("--s-stars", type=int, nargs="+", default=list(S_STARS),
                        help="subsequence lengths s* (default: the paper's 5 10 20 50 75 150; each <= t*)")


def _check(parser, args) -> dict:
    bad = [s for s in args.s_stars if not 1 <= s <= args.t_star]
    if bad:
        parser.error(f"--s-stars must lie in [1, t*={args.t_star}], got {bad}")
    return {"s_stars": list(args.s_stars)}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def run(config: cfg.Config) -> dict:
    values, t_star = config.option("s_stars"), config.purifier.t_star
    return sweep_main(config, "s_star", "s", "s*", values, PAPER, S_STARS,
                      f"\nSubsequences s* = {values} of t* = {t_star} (linear spacing); fixed noise only.",
                      "Paper rows: CIFAR-10 at t* = 150.", "subsequence length s*",
                      f"Fig. 2b on {config.data.dataset}: t*={t_star}, dashed clean, solid BPDA (fixed noise)", log_x=True,
                      notes=partial(claim_notes, "subsequence"))


if __name__ == "__main__":
    main()
