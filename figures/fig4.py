"""Fig. 4b, c: purified directions are positively correlated and lie in a low-dimensional space (paper Sec. 6).

M random initial perturbations (uniform in the l_inf box of radius eps, clamped to [0, 1]) around one clean
test image x0 are purified, each under its own noise. (b) histogram of pairwise Pearson correlations of
the initial perturbations x_j - x0 and of the purified directions P(x_j) - x0; (c) PCA cumulative explained
variance of both (90% marked). The paper uses 30,000 perturbations on CIFAR-10 (about 10x its 3,072
dimensions); the digits default uses 768 (3x the 256 dimensions) and --full 2,560 (10x).

python -m figures.fig4  ->  figures/fig4.png and .pdf (+ --json)
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from empirical.harness import config as cfg  # noqa: E402
from empirical.harness import report  # noqa: E402
from empirical.harness.setup import load_setup  # noqa: E402
from empirical.trajectories import (components_for, correlation_matrix, explained_variance,  # noqa: E402
                                    off_diagonal, purified_directions, random_perturbations)

HERE = Path(__file__).resolve().parent
# About 1.5 minutes on one thread: 768 purifications at t* = 150.
SPEC = cfg.TableSpec("python -m figures.fig4", __doc__, "fig4", cpu_defaults=dict(threads=1),
                     set_defaults=dict(purifiers=["revpure"], t_star=150),
                     attacks=False, tabular=False, figure=str(HERE / "fig4.png"))


def study(spec, x0, m: int, eps: float, seed: int, batch_size: int, quiet: bool) -> dict:
    """Correlation histograms and PCA of initial perturbations vs purified directions for one purifier."""
    xs = random_perturbations(x0, m, eps, seed)
    initial = (xs - x0).flatten(1).double().numpy()
    with tqdm(total=-(-m // batch_size), desc=spec.method, disable=quiet, file=sys.stderr) as bar:
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


def plot(results: dict, path: Path, m: int) -> list[str]:
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
        axes[row, 0].legend(fontsize=7, loc="upper left")
        axes[row, 1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths = report.save_figure(fig, str(path))
    plt.close(fig)
    return paths


def _extra(parser) -> None:
    parser.add_argument("--m", type=int, help="random initial perturbations (default 768; --full 2560; paper 30000)")
    parser.add_argument("--image-index", type=int, default=0, help="which clean test image x0 (default 0)")


def _check(parser, args) -> dict:
    m = args.m or (2560 if args.full else 768)
    if m < 3:
        parser.error("--m must be >= 3")
    if args.image_index < 0:
        parser.error("--image-index must be >= 0")
    return {"m": m, "image_index": args.image_index}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def run(config: cfg.Config) -> dict:
    timer = report.Timer()
    m, index = config.option("m"), config.option("image_index")
    setup = load_setup(cfg.replace(config, sizes={"n_samples": index + 1}))
    if index >= len(setup.ids):
        raise ValueError(f"--image-index {index} is beyond the {len(setup.ids)} test images")
    x0, y0 = setup.batch(setup.ids[index:index + 1])
    eps = setup.budget["eps"]
    report.status(f"Fig. 4 on {config.data.dataset}: {m} perturbations (paper: 30,000 on CIFAR-10) in the l_inf box "
                  f"eps={eps:.4f} around test image {index} (label {int(y0)}); t*={config.purifier.t_star}", config)
    results = {spec.method: study(spec, x0, m, eps, config.run.seed, config.run.batch_size, config.output.quiet)
               for spec in setup.purifiers}
    paths = plot(results, Path(config.output.png), m)
    for method, r in results.items():
        print(f"{method:>13}: mean pairwise correlation initial {r['initial']['corr_mean']:.4f} -> purified "
              f"{r['purified']['corr_mean']:.4f}; PCs for 90% variance {r['initial']['components_90']} -> "
              f"{r['purified']['components_90']} (of {r['initial']['dimension']})")
    print("paper (CIFAR-10): initial perturbations uncorrelated, purified directions positively correlated and "
          "in a much lower-dimensional space")
    report.status(f"wrote {', '.join(paths)}; wall time {timer.elapsed:.0f} s", config)
    result = {"results": results, "eps": eps, "elapsed_s": timer.elapsed, "png": config.output.png}
    report.write_outputs(config, result)
    return result


if __name__ == "__main__":
    main()
