"""Fig. 4b, c: purified directions are positively correlated and lie in a low-dimensional space (paper Sec. 6).

M random initial perturbations (uniform in the l_inf box of radius eps, clamped to [0, 1]) around one clean
test image x0 are purified, each under its own noise. Paper panel (b): histogram of pairwise Pearson
correlations of the initial perturbations x_j - x0 and of the purified directions P(x_j) - x0; paper panel
(c): PCA cumulative explained variance of both (90% marked). The figure letters its own panels (a), (b), ...
in reading order. The paper uses 30,000 perturbations on CIFAR-10 (about 10x its 3,072 dimensions); the
digits default uses 768 (3x the 256 dimensions) and --full 2,560 (10x).

python -m figures.fig4  ->  figures/fig4.png and .pdf (+ --json); --from-json PATH redraws from such a JSON
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
from figures import stored  # noqa: E402

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


def draw(results: dict, m: int, title: str):
    """Per purifier (rows): (a) histogram of pairwise correlations, (b) PCA cumulative explained variance,
    initial perturbations beside purified directions; panels lettered in reading order."""
    fig, axes = plt.subplots(len(results), 2, figsize=(9, 3.4 * len(results) + 0.5), squeeze=False)
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    for row, (method, r) in enumerate(stored.in_order(results).items()):
        for name, color in (("initial", "tab:gray"), ("purified", "tab:red")):
            edges, hist = np.array(r[name]["edges"]), np.array(r[name]["hist"])
            axes[row, 0].stairs(hist / hist.sum(), edges, color=color, fill=True, alpha=0.5,
                                label=f"{name} (mean {r[name]['corr_mean']:.3f})")
            cum = r[name]["cumulative_variance"]
            axes[row, 1].plot(np.arange(1, len(cum) + 1), cum, color=color,
                              label=f"{name}: {r[name]['components_90']} PCs for 90%")
        axes[row, 0].set_xlabel("pairwise Pearson correlation")
        axes[row, 0].set_ylabel("fraction of pairs")
        axes[row, 0].set_title(f"({next(letters)}) {method}: correlations of {m} directions", fontsize=10)
        axes[row, 1].axhline(0.9, color="k", ls="-.", lw=0.8)
        axes[row, 1].set_xscale("log")
        axes[row, 1].set_xlabel("principal components")
        axes[row, 1].set_ylabel("cumulative explained variance")
        axes[row, 1].set_title(f"({next(letters)}) {method}: PCA (90% dash-dotted)", fontsize=10)
        axes[row, 0].legend(fontsize=8, loc="upper left")
        axes[row, 1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_title(dataset: str, t_star: int, m: int, index: int) -> str:
    return (f"Fig. 4 (the paper's panels b, c) on {dataset}, t*={t_star}: {m} random perturbations of test image "
            f"{index} and their purified directions")


def plot(results: dict, path: Path, m: int, title: str) -> list[str]:
    """Fig. 4 (see draw) as PNG and PDF."""
    fig = draw(results, m, title)
    paths = report.save_figure(fig, str(path))
    plt.close(fig)
    return paths


def _extra(parser) -> None:
    parser.add_argument("--m", type=int, help="random initial perturbations (default 768; --full 2560; paper 30000)")
    parser.add_argument("--image-index", type=int, default=0, help="which clean test image x0 (default 0)")
    stored.add_option(parser, "figures.fig4")


def _check(parser, args) -> dict:
    m = args.m or (2560 if args.full else 768)
    if m < 3:
        parser.error("--m must be >= 3")
    if args.image_index < 0:
        parser.error("--image-index must be >= 0")
    stored.check(parser, args.from_json, "results", "figures.fig4")
    return {"m": m, "image_index": args.image_index, "from_json": args.from_json}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def measure(config: cfg.Config) -> dict:
    """Purify the perturbations of one test image for each purifier: the figure's data and its settings."""
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
    return {"results": results, "eps": eps, "m": m, "index": index, "t_star": config.purifier.t_star,
            "dataset": config.data.dataset}


def recall(path: str) -> dict:
    """The figure's data and settings from a stored --json output."""
    result, config = stored.read(path)
    return {"results": result["results"], "eps": result["eps"], "m": config["extra"]["m"],
            "index": config["extra"]["image_index"], "t_star": config["purifier"]["t_star"],
            "dataset": config["data"]["dataset"]}


def run(config: cfg.Config) -> dict:
    timer = report.Timer()
    source = config.option("from_json")
    data = recall(source) if source else measure(config)
    results, m = data["results"], data["m"]
    paths = plot(results, Path(config.output.png), m, figure_title(data["dataset"], data["t_star"], m, data["index"]))
    for method, r in results.items():
        print(f"{method:>13}: mean pairwise correlation initial {r['initial']['corr_mean']:.4f} -> purified "
              f"{r['purified']['corr_mean']:.4f}; PCs for 90% variance {r['initial']['components_90']} -> "
              f"{r['purified']['components_90']} (of {r['initial']['dimension']})")
    print("paper (CIFAR-10): initial perturbations uncorrelated, purified directions positively correlated and "
          "in a much lower-dimensional space")
    report.status(f"wrote {', '.join(paths)}; wall time {timer.elapsed:.0f} s", config)
    result = {"results": results, "eps": data["eps"], "elapsed_s": timer.elapsed, "png": config.output.png}
    report.write_outputs(config, result)
    return result


if __name__ == "__main__":
    main()
