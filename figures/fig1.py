"""Fig. 1: randomness largely determines the purified state (paper Sec. 5.1).

(a) one clean image purified under K different noises; (b) K initial states on a small l2 sphere around
it, purified under one and the same noise. Shown: Pearson correlation matrices of the purified directions
P(.) - x0 for the first image, per purifier; the JSON holds the off-diagonal summary for every image.

python -m figures.fig1  ->  figures/fig1.png and .pdf (+ --json); --from-json PATH redraws from such a JSON
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
from empirical.noise import SampleReplayNoise  # noqa: E402
from empirical.trajectories import ball_different_states_same_noise, same_state_different_noise  # noqa: E402
from figures import stored  # noqa: E402

HERE = Path(__file__).resolve().parent
# About 1.5 minutes on one thread: 3 purifiers x 4 images x 2 x 24 purifications at t* = 100.
SPEC = cfg.TableSpec("python -m figures.fig1", __doc__, "fig1", cpu_defaults=dict(n_samples=4, threads=1),
                     set_defaults=dict(purifiers=["diffpure", "revpure", "ddim"], t_star=100),
                     attacks=False, tabular=False, figure=str(HERE / "fig1.png"))


def output_spread(purifier, x0, k: int, seed: int) -> float:
    """RMS distance of k purified outputs of x0 from their mean: the scale of the purifier's own noise."""
    xs = x0.expand(k, *x0.shape[1:]).contiguous()
    out = purifier(xs, SampleReplayNoise(range(k), seed)).flatten(1).double()
    return float((out - out.mean(0)).pow(2).sum(1).mean().sqrt())


def radius_sweep(setup, k: int, radii: list[float], seed: int, quiet: bool) -> dict:
    """Fig. 1b as a function of the ball radius relative to the purified-output spread, per purifier."""
    out = {}
    for spec in setup.purifiers:
        rows = {r: [] for r in radii}
        spreads = []
        for i in tqdm(range(setup.n_samples), desc=f"{spec.method} radii", disable=quiet, file=sys.stderr):
            x0, _ = setup.batch(setup.ids[i:i + 1])
            spreads.append(output_spread(spec.purifier, x0, k, seed + 7919 + i))
            for r in radii:
                rows[r].append(ball_different_states_same_noise(spec.purifier, x0, k, r, seed + i))
        spread = float(np.mean(spreads))
        out[spec.method] = {"spread": spread, "rows": [
            {"radius": r, "radius_over_spread": r / spread if spread > 0 else None,
             "mean": float(np.mean([v.mean for v in rows[r]])), "min": float(np.min([v.min for v in rows[r]]))}
            for r in radii]}
    return out


def _ratio(row: dict) -> str:
    return "n/a (deterministic)" if row["radius_over_spread"] is None else f"{row['radius_over_spread']:.2f}"


def plot_radius_sweep(sweep: dict, path: Path) -> list[str]:
    """Mean and min correlation of (b) against radius / spread, for the stochastic purifiers."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    colors = {"DiffPure": "tab:blue", "RevPure": "tab:orange", "DDIM RevPure": "tab:green"}
    for method, s in stored.in_order(sweep).items():
        if s["spread"] <= 0:
            continue
        xs = [row["radius_over_spread"] for row in s["rows"]]
        color = colors.get(method)
        ax.plot(xs, [row["mean"] for row in s["rows"]], marker="o", color=color, label=f"{method}: mean")
        ax.plot(xs, [row["min"] for row in s["rows"]], marker="x", ls="--", color=color, label=f"{method}: min")
    ax.axhline(0.99, color="gray", lw=0.8, ls=":", label="paper: > 0.99")
    ax.set_xscale("log")
    ax.set_xlabel("ball radius / purified-output spread")
    ax.set_ylabel("correlation of purified directions")
    ax.set_title("Fig. 1b vs the radius of the ball of initial states", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    paths = report.save_figure(fig, str(path))
    plt.close(fig)
    return paths


def run_study(setup, k: int, radius: float, seed: int, quiet: bool) -> dict:
    """Per purifier, the (a) and (b) studies for each of the first n_samples test images."""
    out = {}
    for spec in setup.purifiers:
        studies = {"a": [], "b": []}
        for i in tqdm(range(setup.n_samples), desc=spec.method, disable=quiet, file=sys.stderr):
            x0, _ = setup.batch(setup.ids[i:i + 1])
            studies["a"].append(same_state_different_noise(spec.purifier, x0, k, seed + i))
            studies["b"].append(ball_different_states_same_noise(spec.purifier, x0, k, radius, seed + i))
        out[spec.method] = {
            part: {"matrix_first": s[0].matrix.tolist(), "mean_offdiag": [v.mean for v in s],
                   "min_offdiag": [v.min for v in s], "max_offdiag": [v.max for v in s]}
            for part, s in studies.items()}
    return out


PARTS = (("a", "same state, different noise", "noise draw"), ("b", "l2 ball r={radius:g}, same noise", "initial state"))


def draw(results: dict, k: int, radius: float, t_star, dataset: str):
    """Per purifier (columns) the correlation matrices of (a) and (b) (rows) for the first image."""
    results = stored.in_order(results)
    methods = list(results)
    fig, axes = plt.subplots(2, len(methods), figsize=(4.0 * len(methods) + 1.2, 8.6), squeeze=False)
    fig.subplots_adjust(wspace=0.3, hspace=0.5, top=0.84)
    for j, method in enumerate(methods):
        for i, (part, title, unit) in enumerate(PARTS):
            r, ax = results[method][part], axes[i, j]
            im = ax.imshow(np.array(r["matrix_first"]), vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_title(f"({part}) {method}\n{title.format(radius=radius)}\nmean off-diagonal "
                         f"{np.mean(r['mean_offdiag']):.3f}, min {np.min(r['min_offdiag']):.3f}", fontsize=10)
            ticks = [0, k - 1]
            ax.set_xticks(ticks, [str(t + 1) for t in ticks], fontsize=9)
            ax.set_yticks(ticks, [str(t + 1) for t in ticks], fontsize=9)
            ax.set_xlabel(f"{unit} j (of {k})", fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{unit} i", fontsize=10)
    bar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    bar.set_label("Pearson correlation of P(.) - x0", fontsize=10)
    bar.ax.tick_params(labelsize=9)
    fig.suptitle(f"Fig. 1 ({dataset}, t*={t_star}): correlations of {k} purified directions P(.) - x0, "
                 "first test image", fontsize=11)
    return fig


def plot(results: dict, path: Path, k: int, radius: float, t_star, dataset: str) -> list[str]:
    """Fig. 1 (see draw) as PNG and PDF."""
    fig = draw(results, k, radius, t_star, dataset)
    paths = report.save_figure(fig, str(path))
    plt.close(fig)
    return paths


def _extra(parser) -> None:
    parser.add_argument("--k", type=int, default=24, help="noises (a) / initial states (b) per image (default 24)")
    parser.add_argument("--radius", type=float, default=0.5,
                        help="l2 radius of the ball of initial states in (b), [0, 1] units (default 0.5)")
    parser.add_argument("--radii", type=float, nargs="+",
                        help="also sweep (b) over these radii and report the correlation against radius / the "
                             "purified-output spread (figure beside --png, suffix _radius)")
    stored.add_option(parser, "figures.fig1")


def _check(parser, args) -> dict:
    if args.k < 2 or not args.radius > 0 or any(not r > 0 for r in args.radii or ()):
        parser.error("--k must be >= 2 and --radius / --radii > 0")
    stored.check(parser, args.from_json, "results", "figures.fig1")
    return {"k": args.k, "radius": args.radius, "radii": args.radii, "from_json": args.from_json}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def measure(config: cfg.Config) -> dict:
    """Run the (a) / (b) study and, with --radii, the radius sweep: the figure's data and its settings."""
    k, radius, t_star = config.option("k"), config.option("radius"), config.purifier.t_star
    setup = load_setup(config)
    report.status(f"Fig. 1 on {config.data.dataset}: {setup.n_samples} images, K={k}, t*={t_star}, l2 radius "
                  f"{radius} (paper: CIFAR-10; K and the radius are not given there)", config)
    results = run_study(setup, k, radius, config.run.seed, config.output.quiet)
    sweep = None
    if config.option("radii"):
        sweep = radius_sweep(setup, k, config.option("radii"), config.run.seed, config.output.quiet)
    return {"results": results, "radius_sweep": sweep, "n_images": setup.n_samples, "k": k, "radius": radius,
            "t_star": t_star, "dataset": config.data.dataset}


def recall(path: str) -> dict:
    """The figure's data and settings from a stored --json output."""
    result, config = stored.read(path)
    return {"results": result["results"], "radius_sweep": result.get("radius_sweep"),
            "n_images": result["n_images"], "k": config["extra"]["k"], "radius": config["extra"]["radius"],
            "t_star": config["purifier"]["t_star"], "dataset": config["data"]["dataset"]}


def run(config: cfg.Config) -> dict:
    timer = report.Timer()
    source = config.option("from_json")
    data = recall(source) if source else measure(config)
    results, sweep = data["results"], data["radius_sweep"]
    paths = plot(results, Path(config.output.png), data["k"], data["radius"], data["t_star"], data["dataset"])
    for method, r in results.items():
        print(f"{method:>13}: (a) mean off-diagonal correlation {np.mean(r['a']['mean_offdiag']):.4f} "
              f"(min {np.min(r['a']['min_offdiag']):.4f}); (b) min {np.min(r['b']['min_offdiag']):.4f}, "
              f"mean {np.mean(r['b']['mean_offdiag']):.4f}")
    print("paper (CIFAR-10): (a) different but positively correlated directions; (b) correlation > 0.99")
    if sweep:
        for method, sw in sweep.items():
            print(f"{method:>13}: purified-output spread {sw['spread']:.3f}; (b) by radius / spread: " + ", ".join(
                f"{_ratio(row)}: mean {row['mean']:.3f} min {row['min']:.3f}" for row in sw["rows"]))
        png = Path(config.output.png)
        paths += plot_radius_sweep(sweep, png.with_name(png.stem + "_radius" + png.suffix))
    report.status(f"wrote {', '.join(paths)}; wall time {timer.elapsed:.0f} s", config)
    result = {"results": results, "radius_sweep": sweep, "n_images": data["n_images"], "elapsed_s": timer.elapsed,
              "png": config.output.png}
    report.write_outputs(config, result)
    return result


if __name__ == "__main__":
    main()
