"""Fig. 3: the purified state vector x_t - x0 over the steps of DiffPure, RevPure and DDIM (paper Sec. 6).

(a) length ||x_t - x0||_2, (b) cosine and (c) inner product with the adversarial direction x_adv - x0, for
BPDA adversarial examples crafted under fixed noise (as in Table 2) and purified with that noise.
x-axis: process step (0 = the adversarial input; DiffPure's first t* steps are its forward states
rebuilt from the replayed forward noise, then the reverse chain). Curves: mean ± SE over images.

python -m figures.fig3  ->  figures/fig3.png and .pdf; --from-json PATH plots the curves stored by
empirical.projection instead of measuring them.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from empirical.harness import config as cfg  # noqa: E402
from empirical.harness import report  # noqa: E402
from empirical.harness.curves import measure_curves  # noqa: E402
from empirical.harness.setup import load_setup  # noqa: E402
from figures import stored  # noqa: E402

HERE = Path(__file__).resolve().parent
# About 1.5 minutes on one thread: 3 purifiers at t* = 150, 16 attacked samples, 6 BPDA steps.
SPEC = cfg.TableSpec("python -m figures.fig3", __doc__, "fig3", cpu_defaults=dict(n_samples=16, steps=6, threads=1),
                     set_defaults=dict(purifiers=["diffpure", "revpure", "ddim"], t_star=150, fresh_evals=1),
                     tabular=False, figure=str(HERE / "fig3.png"))
COLORS = {"DiffPure": "tab:blue", "RevPure": "tab:orange", "DDIM RevPure": "tab:green"}


def summary(measured: dict) -> dict:
    """Start / peak / end of each curve per purifier (the numbers paper_checks reads)."""
    out = {}
    for method, m in measured.items():
        l2, cos, inner = (np.array(m[f"{k}_mean"]) for k in ("l2", "cosine", "inner"))
        out[method] = {"l2_start": float(l2[0]), "l2_max": float(l2.max()), "l2_argmax": int(m["position"][int(l2.argmax())]),
                       "l2_end": float(l2[-1]), "cos_start": float(cos[0]), "cos_end": float(cos[-1]),
                       "inner_start": float(inner[0]), "inner_end": float(inner[-1]),
                       "projection_end": float(np.mean(m["end_projection"])), "bpda": 100 * float(np.mean(m["correct"])),
                       "steps_total": int(m["position"][-1])}
    return out


PANELS = ("(a) distance from the clean image", "(b) cosine with the adversarial direction",
          "(c) inner product with the adversarial direction")


def draw(measured: dict, title: str):
    """The three panels of Fig. 3 (mean ± SE band over images per purifier) under the figure title `title`."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for method, m in stored.in_order(measured).items():
        pos = np.array(m["position"])
        for ax, key, label in zip(axes, ("l2", "cosine", "inner"),
                                  (r"$\|x_t - x_0\|_2$", r"cos$(x_t - x_0, \tilde x_0 - x_0)$",
                                   r"$\langle x_t - x_0, \tilde x_0 - x_0\rangle$")):
            mean, se = np.array(m[f"{key}_mean"], dtype=float), np.array(m[f"{key}_se"], dtype=float)
            ax.plot(pos, mean, color=COLORS.get(method), label=f"{method} (BPDA {100 * np.mean(m['correct']):.0f}%)")
            ax.fill_between(pos, mean - se, mean + se, color=COLORS.get(method), alpha=0.2)
            ax.set_xlabel("process step (0 = adversarial input)")
            ax.set_ylabel(label)
    for ax, panel in zip(axes, PANELS):
        ax.set_title(panel, fontsize=9)
        ax.axhline(0, color="gray", lw=0.5)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.06),
               title="bands: mean ± 1 SE over images", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_title(dataset: str, t_star: int, n: int) -> str:
    return f"Fig. 3 ({dataset}, t*={t_star}, {n} BPDA examples under fixed noise): x_t - x0 over the process steps"


def plot(measured: dict, path: Path, title: str) -> list[str]:
    """Fig. 3 (see draw) as PNG and PDF."""
    fig = draw(measured, title)
    paths = report.save_figure(fig, str(path))
    plt.close(fig)
    return paths


def _extra(parser) -> None:
    parser.add_argument("--keep-every", type=int, default=5, help="record every k-th state (default 5)")
    stored.add_option(parser, "figures.fig3 or empirical.projection")


def _check(parser, args) -> dict:
    if args.keep_every < 1:
        parser.error("--keep-every must be >= 1")
    stored.check(parser, args.from_json, "measured", "figures.fig3 or empirical.projection")
    return {"keep_every": args.keep_every, "from_json": args.from_json}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def run(config: cfg.Config) -> dict:
    timer = report.Timer()
    source = config.option("from_json")
    dataset, t_star = config.data.dataset, config.purifier.t_star
    if source:
        result, run_config = stored.read(source)
        measured, dataset, t_star = result["measured"], run_config["data"]["dataset"], run_config["purifier"]["t_star"]
    else:
        setup = load_setup(config)
        protocol = cfg.make_protocol(config, setup.budget, fresh_cells=False)
        report.status(setup.describe(protocol), config)
        measured = measure_curves(config, setup, protocol)
        if measured is None:
            return {}
    n = len(next(iter(measured.values()))["correct"])
    paths = plot(measured, Path(config.output.png), figure_title(dataset, t_star, n))
    stats = summary(measured)
    for method, s in stats.items():
        print(f"{method:>13}: ||x_t-x0|| {s['l2_start']:.3f} -> max {s['l2_max']:.3f} (step {s['l2_argmax']}) -> "
              f"{s['l2_end']:.3f}; cos {s['cos_start']:.3f} -> {s['cos_end']:.3f}; inner {s['inner_start']:.3f} -> "
              f"{s['inner_end']:.3f}; BPDA {s['bpda']:.1f}%")
    print("paper (CIFAR-10): DiffPure rises then falls; end distances exceed the initial perturbation's; DDIM has the "
          "smallest end distance but the largest remaining projection")
    report.status(f"wrote {', '.join(paths)}; wall time {timer.elapsed:.0f} s", config)
    result = {"summary": stats, "measured": measured, "elapsed_s": timer.elapsed, "png": config.output.png}
    report.write_outputs(config, result)
    return result


if __name__ == "__main__":
    main()
