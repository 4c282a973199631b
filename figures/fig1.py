"""Fig. 1: randomness largely determines the purified state (paper Sec. 5.1).

(a) one clean image purified under K different noises; (b) K initial states on a small l2 sphere around
it, purified under one and the same noise. Shown: Pearson correlation matrices of the purified directions
P(.) - x0 for the first image, per purifier; the JSON holds the off-diagonal summary for every image.

python -m figures.fig1  ->  figures/fig1.png (+ --json)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from empirical.results import atomic_write_json  # noqa: E402
from empirical.table2 import build_parser, parse, setup_for  # noqa: E402
from empirical.trajectories import ball_different_states_same_noise, same_state_different_noise  # noqa: E402

HERE = Path(__file__).resolve().parent
# About 1.5 minutes on one thread: 3 purifiers x 4 images x 2 x 24 purifications at t* = 100.
DEFAULTS = dict(n_samples=4, threads=1)


def run(setup, k: int, radius: float, seed: int, quiet: bool) -> dict:
    """Per purifier, the (a) and (b) studies for each of the first n_samples test images."""
    out = {}
    for spec in setup.purifiers:
        studies = {"a": [], "b": []}
        for i in tqdm(range(setup.n_samples), desc=spec.method, disable=quiet, file=sys.stdout):
            x0, _ = setup.batch(setup.ids[i:i + 1])
            studies["a"].append(same_state_different_noise(spec.purifier, x0, k, seed + i))
            studies["b"].append(ball_different_states_same_noise(spec.purifier, x0, k, radius, seed + i))
        out[spec.method] = {
            part: {"matrix_first": s[0].matrix.tolist(), "mean_offdiag": [v.mean for v in s],
                   "min_offdiag": [v.min for v in s], "max_offdiag": [v.max for v in s]}
            for part, s in studies.items()}
    return out


def plot(results: dict, path: Path, k: int, radius: float, t_star) -> None:
    methods = list(results)
    fig, axes = plt.subplots(2, len(methods), figsize=(3.9 * len(methods), 6.4), squeeze=False)
    for j, method in enumerate(methods):
        for i, (part, title) in enumerate((("a", "same state, different noise"),
                                           ("b", f"l2 ball r={radius:g}, same noise"))):
            r = results[method][part]
            im = axes[i, j].imshow(np.array(r["matrix_first"]), vmin=-1, vmax=1, cmap="RdBu_r")
            axes[i, j].set_title(f"({part}) {method}: {title}\nmean off-diag {np.mean(r['mean_offdiag']):.3f}, "
                                 f"min {np.min(r['min_offdiag']):.3f}", fontsize=7)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="correlation")
    fig.suptitle(f"Fig. 1 (digits, t*={t_star}): correlations of {k} purified directions P(.) - x0", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser("python -m figures.fig1", __doc__, DEFAULTS)
    parser.set_defaults(t_star=100)
    parser.add_argument("--k", type=int, default=24, help="noises (a) / initial states (b) per image (default 24)")
    parser.add_argument("--radius", type=float, default=0.5,
                        help="l2 radius of the ball of initial states in (b), [0, 1] units (default 0.5)")
    parser.add_argument("--png", default=str(HERE / "fig1.png"), help="output figure (default figures/fig1.png)")
    args = parse(parser, argv, DEFAULTS)
    if args.k < 2 or args.radius <= 0:
        parser.error("--k must be >= 2 and --radius > 0")
    start = time.perf_counter()
    setup = setup_for(args, parser)
    print(f"Fig. 1 on {args.dataset}: {setup.n_samples} images, K={args.k}, t*={args.t_star}, l2 radius "
          f"{args.radius} (paper: CIFAR-10; K and the radius are not given there)", flush=True)
    results = run(setup, args.k, args.radius, args.seed, args.quiet)
    plot(results, Path(args.png), args.k, args.radius, args.t_star)
    for method, r in results.items():
        print(f"{method:>13}: (a) mean off-diagonal correlation {np.mean(r['a']['mean_offdiag']):.4f} "
              f"(min {np.min(r['a']['min_offdiag']):.4f}); (b) min {np.min(r['b']['min_offdiag']):.4f}, "
              f"mean {np.mean(r['b']['mean_offdiag']):.4f}")
    print("paper (CIFAR-10): (a) different but positively correlated directions; (b) correlation > 0.99")
    elapsed = time.perf_counter() - start
    print(f"wrote {args.png}; wall time {elapsed:.0f} s")
    result = {"config": {"figure": 1, "dataset": args.dataset, "t_star": args.t_star, "k": args.k,
                         "radius": args.radius, "n_images": setup.n_samples, "seed": args.seed},
              "results": results, "elapsed_s": elapsed, "png": args.png}
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
