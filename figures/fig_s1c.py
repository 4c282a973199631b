"""Fig. S1c: chi-square cdfs Psi(x; n) flatten as n grows, critical points (n, Psi(n; n)) marked;
plus a companion figure of attack success vs r/sigma per strategy in the paper's geometry: exact
curves where a closed form exists, Monte Carlo points for every strategy, Theorem 1's two bounds
and the no-attack baseline as labelled curves.

python -m figures.fig_s1c  ->  figures/fig_s1c.{png,pdf}, figures/fig_s1c_mc.{png,pdf}
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

from toymodel import argtypes, atomic, simulate, theory  # noqa: E402

HERE = Path(__file__).resolve().parent
PRINT_DPI = 300
STYLE = {"perfect": ("tab:red", "o", "full cancellation / projected (perfect)"),
         "partial": ("tab:orange", "s", "partial cancellation"),
         "eot": ("tab:blue", "^", "EOT target c"),
         "replay": ("tab:green", "D", r"replay (tested under $\eta_0$)")}
# Where two strategies succeed alike (partial cancellation and EOT, both at the second bound), one curve would
# hide the other: partial is drawn as a wide translucent band with large open markers, EOT as a thin dashed
# line with small filled markers on top, so both stay visible where they overlap.
LINE = {"partial": dict(lw=4.5, alpha=0.45), "eot": dict(lw=1.1, ls=(0, (4, 2)))}
POINTS = {"partial": dict(ms=7, mfc="none", mew=1.2), "eot": dict(ms=3, mfc="tab:blue")}
# No creation date in the PDF: the same data gives the same bytes.
PDF_METADATA = {"CreationDate": None, "ModDate": None}


def cdf_curves(ns, points: int = 400) -> dict:
    """Psi(x; n) on a uniform (linspace) grid of x for each n, and Psi(n; n) at the critical point."""
    x = np.linspace(0.0, 1.6 * max(ns) + 4.0, points)
    return {"x": x.tolist(),
            "curves": {str(n): [theory.psi(v, n) for v in x] for n in ns},
            "critical": {str(n): theory.psi(float(n), n) for n in ns}}


def plot_cdfs(data: dict, stem: Path, dpi: int = PRINT_DPI) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (n, ys) in enumerate(data["curves"].items()):
        color = plt.cm.viridis(0.9 * i / max(1, len(data["curves"]) - 1))
        ax.plot(data["x"], ys, color=color, lw=1.4, label=f"n = {n}")
        ax.plot([int(n)], [data["critical"][n]], "o", color=color, ms=5, mec="black", mew=0.5)
    ax.plot([], [], "o", color="gray", mec="black", mew=0.5, label=r"$(n, \Psi(n; n))$")
    ax.axhline(0.5, color="gray", lw=0.6, ls=":")
    ax.set_xlabel(r"$x = r^2/\sigma^2$")
    ax.set_ylabel(r"$\Psi(x; n)$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(r"Fig. S1c: $\chi^2(n)$ cdfs flatten as $n$ grows; critical points near $(n, 1/2)$")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _save(fig, stem, dpi)


def _exact_curve(strategy: str, n: int, fine, d: float, eps: float, norm: str) -> list | None:
    """Exact success on the fine grid (None where no closed form holds; None if nowhere)."""
    values = [theory.exact_success(strategy, n, 1.0, q, d, eps, norm) for q in fine]
    return None if all(v is None for v in values) else values


def mc_ratios(n: int, coarse: int = 8) -> np.ndarray:
    """Monte Carlo radii: the sweep's 7 points across each transition (sqrt(n), sqrt(2n)) plus a
    coarse grid from 0.8 sqrt(n) to 1.15 sqrt(2n)."""
    grid = np.linspace(0.8 * math.sqrt(n), 1.15 * math.sqrt(2 * n), coarse)
    dense = [q for q in theory.default_ratios(n) if grid[0] < q < grid[-1]]
    return np.unique(np.concatenate([grid, dense]))


def mc_curves(n: int, d: float | None, eps_list, trials: int, seed: int, norm: str = "2") -> list[dict]:
    """MC and exact success vs r/sigma per strategy for each threat radius (sigma = 1)."""
    ratios = mc_ratios(n)
    fine = np.linspace(ratios[0], ratios[-1], 160)
    d = 1.25 * ratios[-1] if d is None else d
    panels = []
    for eps in eps_list:
        eps = theory.containing_eps(n, d, ratios[-1], norm) if eps == "auto" else eps
        panel = {"eps": "inf" if math.isinf(eps) else eps, "norm": norm, "d": d,
                 "r_over_sigma": ratios.tolist(), "fine": fine.tolist(),
                 "first_bound": [theory.bound_perfect(n, 1.0, q) for q in fine],
                 "second_bound": [theory.bound_eot(n, 1.0, q) for q in fine],
                 "baseline": [theory.no_attack_success(n, 1.0, q, d) for q in fine],
                 "x0_in_A": bool(theory.x0_in_A(d, ratios[-1])),     # for the largest radii at least
                 "A_in_threat": bool(theory.A_in_threat(n, d, ratios[-1], eps, norm)), "strategies": {}}
        for s in theory.STRATEGIES:
            ests = simulate.estimate_curve(s, n, 1.0, ratios, d, eps, norm, trials=trials, seed=seed)
            panel["strategies"][s] = {"mc": [e.success for e in ests], "se": [e.stderr for e in ests],
                                      "exact": _exact_curve(s, n, fine, d, eps, norm)}
        panels.append(panel)
    return panels


def _panel_title(panel: dict, n: int) -> str:
    eps = r"\infty" if panel["eps"] == "inf" else f"{panel['eps']:.4g}"
    where = "unconstrained" if panel["eps"] == "inf" else f"$\\ell_{{{panel['norm']}}}$ threat set"
    flags = [r"$x_0 \in A$" for _ in [0] if panel["x0_in_A"]] + \
            [r"$A \not\subset B$" for _ in [0] if not panel["A_in_threat"]]
    geometry = ", ".join(flags) if flags else r"paper geometry: $x_0 \notin A \subset B$"
    return f"{where}, $\\epsilon = {eps}$\n$n = {n}$, $d = {panel['d']:.4g}$; {geometry}"


def plot_mc(panels: list[dict], n: int, stem: Path, dpi: int = PRINT_DPI) -> None:
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.2), squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        fine = panel["fine"]
        ax.plot(fine, panel["second_bound"], color="black", lw=2.6, ls="--", alpha=0.35,
                label=r"Thm 1 second bound $\Psi(r^2/\sigma^2; n)$: any fresh-noise attack")
        ax.plot(fine, panel["first_bound"], color="black", lw=2.6, ls=":", alpha=0.55,
                label=r"Thm 1 first bound $\Psi(r^2/2\sigma^2; n)$: exact for full cancellation only")
        ax.plot(fine, panel["baseline"], color="gray", lw=1.0, ls="-.", label=r"no attack ($\xi = 0$), exact")
        for s, v in panel["strategies"].items():
            color, marker, name = STYLE[s]
            if v["exact"] is not None:
                exact = [math.nan if e is None else e for e in v["exact"]]
                ax.plot(fine, exact, color=color, **{"lw": 1.1, **LINE.get(s, {})}, label=f"{name}, exact")
            ax.errorbar(panel["r_over_sigma"], v["mc"], yerr=2 * np.array(v["se"]), fmt=marker, color=color, lw=0.8,
                        **{"ms": 3.5, "mfc": "none", **POINTS.get(s, {})}, label=f"{name}, Monte Carlo (±2 SE)")
        for q, name in ((math.sqrt(n), r"$\sqrt{n}$"), (math.sqrt(2 * n), r"$\sqrt{2n}$")):
            ax.axvline(q, color="gray", lw=0.6, ls=":")
            ax.annotate(name, (q, 0.3), xytext=(3, 0), textcoords="offset points", va="center", fontsize=9)
        ax.set_xlabel(r"$r/\sigma$")
        ax.set_ylim(-0.03, 1.08)
        ax.set_title(_panel_title(panel, n), fontsize=9)
    axes[0][0].set_ylabel("attack success probability")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7.5, frameon=False,
               bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    _save(fig, stem, dpi)


def _save(fig, stem: Path, dpi: int) -> None:
    """PNG at `dpi` (print resolution by default) and a vector PDF beside it, both byte-identical when redrawn."""
    fig.savefig(stem.with_suffix(".png"), dpi=dpi, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".pdf"), bbox_inches="tight", metadata=PDF_METADATA)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m figures.fig_s1c", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ns", type=argtypes.int_at_least_1, nargs="+", default=[1, 2, 4, 8, 16, 32, 64],
                   help="dimensions of the chi-square cdf curves")
    p.add_argument("--mc-n", type=argtypes.int_at_least_1, default=3072, help="dimension of the success figure")
    p.add_argument("--d", type=argtypes.distance, default=None,
                   help="distance of the centre c from x0; 'auto' = 1.25 x the largest r (x0 outside A)")
    p.add_argument("--eps", type=argtypes.threat_radius, nargs="+", default=[math.inf, "auto"],
                   help="threat radii: 'inf', 'auto' (smallest with A inside B_p(x0, eps)) or numbers")
    p.add_argument("--norm", choices=theory.NORMS, default="2", help="threat norm of the finite panels")
    p.add_argument("--trials", type=argtypes.trials, default=20000, help="Monte Carlo trials per curve")
    p.add_argument("--seed", type=argtypes.seed, default=0, help="SeedSequence seed")
    p.add_argument("--out-dir", type=Path, default=HERE, help="where the PNG and PDF files go")
    p.add_argument("--dpi", type=argtypes.int_at_least_1, default=PRINT_DPI, help="PNG resolution")
    p.add_argument("--json", metavar="PATH", help="write the plotted data as JSON")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.out_dir.exists() and not args.out_dir.is_dir():
        p.error(f"--out-dir: {args.out_dir} is not a directory")
    problem = args.json and atomic.output_problem(args.json)
    if problem:
        p.error(f"--json: {problem}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cdfs = cdf_curves(args.ns)
    plot_cdfs(cdfs, args.out_dir / "fig_s1c", args.dpi)
    panels = mc_curves(args.mc_n, args.d, args.eps, args.trials, args.seed, args.norm)
    plot_mc(panels, args.mc_n, args.out_dir / "fig_s1c_mc", args.dpi)
    if args.json:
        atomic.write_text_atomic(args.json, json.dumps({"cdfs": cdfs, "mc": panels}))
    print(f"wrote fig_s1c.png/.pdf and fig_s1c_mc.png/.pdf in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
