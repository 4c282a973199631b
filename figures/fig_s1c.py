"""Fig. S1c: chi-square cdfs Psi(x; n) flatten as n grows, critical point (n, 1/2) marked; plus a
companion figure of Monte Carlo success vs r/sigma per strategy beside the exact curves.

python -m figures.fig_s1c  ->  figures/fig_s1c.png, figures/fig_s1c_mc.png
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from toymodel import simulate, theory  # noqa: E402

HERE = Path(__file__).resolve().parent
COLORS = {"perfect": "tab:red", "eot": "tab:blue", "replay": "tab:green"}


def cdf_curves(ns, points: int = 400) -> dict:
    """Psi(x; n) on a log grid of x for each n, and Psi(n; n) at the critical point."""
    x = np.linspace(0.0, 1.6 * max(ns) + 4.0, points)
    return {"x": x.tolist(),
            "curves": {str(n): [theory.psi(v, n) for v in x] for n in ns},
            "critical": {str(n): theory.psi(float(n), n) for n in ns}}


def plot_cdfs(data: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (n, ys) in enumerate(data["curves"].items()):
        color = plt.cm.viridis(i / max(1, len(data["curves"]) - 1))
        ax.plot(data["x"], ys, color=color, label=f"n = {n}")
        ax.plot([int(n)], [data["critical"][n]], "o", color=color, ms=5)
    ax.axhline(0.5, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(r"$x = r^2/\sigma^2$")
    ax.set_ylabel(r"$\Psi(x; n)$")
    ax.set_title(r"Fig. S1c: $\chi^2(n)$ cdfs, critical points $(n, \Psi(n;n)\approx 1/2)$")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def mc_curves(n: int, d: float, eps_list, trials: int, seed: int, points: int = 25) -> list[dict]:
    """MC (reduced l2 sampler) and exact success vs r/sigma per strategy for each threat radius."""
    ratios = np.linspace(0.8 * math.sqrt(n), 1.15 * math.sqrt(2 * n), points)
    panels = []
    for eps in eps_list:
        panel = {"eps": "inf" if math.isinf(eps) else eps, "r_over_sigma": ratios.tolist(), "strategies": {}}
        for s in theory.STRATEGIES:
            ests = simulate.estimate_curve(s, n, 1.0, ratios, d, eps, "2", trials=trials, seed=seed)
            fine = np.linspace(ratios[0], ratios[-1], 200)
            exact = [theory.exact_success(s, n, 1.0, q, d, eps, "2") for q in fine]
            panel["strategies"][s] = {"mc": [e.success for e in ests], "se": [e.stderr for e in ests],
                                      "fine": fine.tolist(), "exact": None if exact[0] is None else exact}
        panels.append(panel)
    return panels


def plot_mc(panels: list[dict], n: int, d: float, path: Path) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for s, v in panel["strategies"].items():
            ax.errorbar(panel["r_over_sigma"], v["mc"], yerr=2 * np.array(v["se"]), fmt="o", ms=3,
                        color=COLORS[s], label=f"{s} (MC)")
            if v["exact"] is not None:
                ax.plot(v["fine"], v["exact"], color=COLORS[s], lw=1.2, label=f"{s} (exact)")
        for q, name in ((math.sqrt(n), r"$\sqrt{n}$"), (math.sqrt(2 * n), r"$\sqrt{2n}$")):
            ax.axvline(q, color="gray", lw=0.6, ls=":")
        ax.set_xlabel(r"$r/\sigma$")
        ax.set_ylabel("attack success")
        ax.set_title(f"n = {n}, d = {d}, l2 eps = {panel['eps']}")
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m figures.fig_s1c", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64],
                   help="dimensions of the chi-square cdf curves")
    p.add_argument("--mc-n", type=int, default=3072, help="dimension of the Monte Carlo figure")
    p.add_argument("--d", type=float, default=2.0, help="distance of the centre c from x0")
    p.add_argument("--eps", type=float, nargs="+", default=[math.inf, 20.0, 1.0], help="l2 threat radii (inf allowed)")
    p.add_argument("--trials", type=int, default=20000, help="Monte Carlo trials per curve")
    p.add_argument("--seed", type=int, default=0, help="SeedSequence seed")
    p.add_argument("--out-dir", type=Path, default=HERE, help="where the PNGs go")
    p.add_argument("--json", metavar="PATH", help="write the plotted data as JSON")
    args = p.parse_args(argv)
    if min(args.ns) < 1 or args.mc_n < 1:
        p.error("--ns and --mc-n must be >= 1")
    if args.trials < 1 or args.d < 0 or min(args.eps) <= 0:
        p.error("--trials must be >= 1, --d >= 0 and every --eps > 0")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cdfs = cdf_curves(args.ns)
    plot_cdfs(cdfs, args.out_dir / "fig_s1c.png")
    panels = mc_curves(args.mc_n, args.d, args.eps, args.trials, args.seed)
    plot_mc(panels, args.mc_n, args.d, args.out_dir / "fig_s1c_mc.png")
    if args.json:
        Path(args.json).write_text(json.dumps({"cdfs": cdfs, "mc": panels}))
    print(f"wrote {args.out_dir / 'fig_s1c.png'} and {args.out_dir / 'fig_s1c_mc.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
