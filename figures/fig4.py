"""Fig. 4b, c: purified directions are positively correlated and lie in a low-dimensional space (paper Sec. 6).

M random initial perturbations (uniform in the l_inf box of radius eps, clamped to [0, 1]) around one clean
test image x0 are purified, each under its own noise. (b) histogram of pairwise Pearson correlations of
the initial perturbations x_j - x0 and of the purified directions P(x_j) - x0; (c) PCA cumulative explained
variance of both (90% marked). The paper uses 30,000 perturbations on CIFAR-10 (about 10x its 3,072
dimensions); the digits default uses 768 (3x the 256 dimensions) and --full 2,560 (10x).

python -m figures.fig4  ->  figures/fig4.png (+ --json)
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
from empirical.trajectories import (components_for, correlation_matrix, explained_variance,  # noqa: E402
                                    off_diagonal, purified_directions, random_perturbations)

HERE = Path(__file__).resolve().parent
# About 1.5 minutes on one thread: 768 purifications at t* = 150.
DEFAULTS = dict(threads=1)


def study(spec, x0, m: int, eps: float, seed: int, batch_size: int, quiet: bool) -> dict:
    """Correlation histograms and PCA of initial perturbations vs purified directions for one purifier."""
    xs = random_perturbations(x0, m, eps, seed)
    initial = (xs - x0).flatten(1).double().numpy()
    with tqdm(total=-(-m // batch_size), desc=spec.method, disable=quiet, file=sys.stdout) as bar:
        purified = purified_directions(spec.purifier, x0, xs, seed + 1, batch_size, progress=bar)
    out = {}
    for name, dirs in (("initial", initial), ("purified", purified)):
        corr = off_diagonal(correlation_matrix(dirs))
        cum = explained_variance(dirs)
        hist, edges = np.histogram(corr, bins=100, range=(-1, 1))
        out[name] = {"corr_mean": float(corr.mean()), "corr_std": float(corr.std()), "hist": hist.tolist(),
                     "edges": edges.tolist(), "cumulative_variance": cum[:min(len(cum), 256)].tolist(),
                     "components_90": components_for(cum, 0.9), "dimension": int(dirs.shape[1])}
    return out


def plot(results: dict, path: Path, m: int) -> None:
    fig, axes = plt.subplots(len(results), 2, figsize=(9, 3.4 * len(results)), squeeze=False)
    for row, (method, r) in enumerate(results.items()):
        for name, color in (("initial", "tab:gray"), ("purified", "tab:red")):
            edges, hist = np.array(r[name]["edges"]), np.array(r[name]["hist"])
            axes[row, 0].stairs(hist / hist.sum(), edges, color=color, fill=True, alpha=0.5,
                                label=f"{name} (mean {r[name]['corr_mean']:.3f})")
            cum = r[name]["cumulative_variance"]
            axes[row, 1].plot(np.arange(1, len(cum) + 1), cum, color=color,
                              label=f"{name}: {r[name]['components_90']} PCs for 90%")
        axes[row, 0].set_xlabel("pairwise correlation")
        axes[row, 0].set_ylabel("fraction of pairs")
        axes[row, 0].set_title(f"(b) {method}: {m} perturbations", fontsize=9)
        axes[row, 1].axhline(0.9, color="k", ls="-.", lw=0.8)
        axes[row, 1].set_xscale("log")
        axes[row, 1].set_xlabel("principal components")
        axes[row, 1].set_ylabel("cumulative explained variance")
        axes[row, 1].set_title(f"(c) {method}: PCA", fontsize=9)
        for ax in axes[row]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser("python -m figures.fig4", __doc__, DEFAULTS)
    parser.set_defaults(purifiers=["revpure"])
    parser.add_argument("--m", type=int, help="random initial perturbations (default 768; --full 2560; paper 30000)")
    parser.add_argument("--image-index", type=int, default=0, help="which clean test image x0 (default 0)")
    parser.add_argument("--png", default=str(HERE / "fig4.png"), help="output figure (default figures/fig4.png)")
    args = parse(parser, argv, DEFAULTS)
    m = args.m or (2560 if args.full else 768)
    if m < 3:
        parser.error("--m must be >= 3")
    args.n_samples = max(args.image_index + 1, 1)
    start = time.perf_counter()
    setup = setup_for(args, parser)
    if args.image_index >= len(setup.ids):
        parser.error(f"--image-index {args.image_index} is beyond the {len(setup.ids)} test images")
    x0, y0 = setup.batch(setup.ids[args.image_index:args.image_index + 1])
    print(f"Fig. 4 on {args.dataset}: {m} perturbations (paper: 30,000 on CIFAR-10) in the l_inf box eps="
          f"{setup.eps:.4f} around test image {args.image_index} (label {int(y0)}); t*={args.t_star}", flush=True)
    results = {spec.method: study(spec, x0, m, setup.eps, args.seed, args.batch_size, args.quiet)
               for spec in setup.purifiers}
    plot(results, Path(args.png), m)
    for method, r in results.items():
        print(f"{method:>13}: mean pairwise correlation initial {r['initial']['corr_mean']:.4f} -> purified "
              f"{r['purified']['corr_mean']:.4f}; PCs for 90% variance {r['initial']['components_90']} -> "
              f"{r['purified']['components_90']} (of {r['initial']['dimension']})")
    print("paper (CIFAR-10): initial perturbations uncorrelated, purified directions positively correlated and "
          "in a much lower-dimensional space")
    elapsed = time.perf_counter() - start
    print(f"wrote {args.png}; wall time {elapsed:.0f} s")
    result = {"config": {"figure": 4, "dataset": args.dataset, "t_star": args.t_star, "m": m, "eps": setup.eps,
                         "image_index": args.image_index, "seed": args.seed},
              "results": results, "elapsed_s": elapsed, "png": args.png}
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
