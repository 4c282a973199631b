"""Sweeps of a purifier setting (t* for Table S1 / Fig. 2a, s* for Table S2 / Fig. 2b) under fixed noise.

One results store and one runner for the whole sweep; each value is a setup whose cells are prefixed
with the value (e.g. "t50:"). The tables set ours beside the paper's CIFAR-10 rows; the figures show
clean (dashed, open markers) and BPDA (solid, filled markers) accuracy with SE bars.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from empirical.harness import config as cfg
from empirical.harness import report
from empirical.harness.setup import Setup, load_setup
from empirical.harness.tables import replay_row, run_protocol


def sweep_setups(config: cfg.Config, field: str, tag: str, values: list[int]) -> list[tuple[str, Setup]]:
    """One setup per value of the purifier field (`t_star` or `s_star`), without BPDA-EOT cells."""
    out = []
    for value in values:
        setup = load_setup(cfg.replace(config, purifier={field: value}))
        setup.eot_ids = set()      # Tables S1 and S2 have no BPDA-EOT column
        out.append((f"{tag}{value}:", setup))
    return out


def run_sweep(config: cfg.Config, field: str, tag: str, values: list[int], header: str) -> tuple[list[dict], dict, dict]:
    """Fixed-noise clean/BPDA rows per (value, purifier), the chunk records, and the resolved setups."""
    setups = sweep_setups(config, field, tag, values)
    protocols = {id(s): cfg.make_protocol(config, s.budget, fresh_cells=False) for _, s in setups}
    report.status(setups[0][1].describe(protocols[id(setups[0][1])]) + header, config)
    records = run_protocol(config, setups, lambda s: protocols[id(s)])
    if records is None:
        return [], {}, {}
    rows = []
    for (prefix, setup), value in zip(setups, values):
        for spec in setup.purifiers:
            rows.append(replay_row(spec, records[prefix + spec.key], **{tag: value}))
    return rows, records, {prefix: s.resolved() for prefix, s in setups}


def sweep_table(rows: list[dict], values: list[int], key: str, paper: dict, label: str, fmt: str = "compact") -> str:
    """Metric x purifier rows, one column per value, ours beside the paper's (CIFAR-10) rows."""
    cols = [("metric", "Metric"), ("method", "Model")] + [(str(v), f"{label}={v}") for v in values]
    table = []
    for metric in ("clean", "bpda"):
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = {str(r[key]): r[metric] for r in rows if r["method"] == method}
            table.append({"metric": metric, "method": method, **cells})
        for method, ys in paper[metric].items():
            table.append({"metric": metric, "method": f"paper (CIFAR-10): {method}",
                          **{str(v): y for v, y in zip(paper.get("values", values), ys)}})
    return report.render(table, cols, fmt)


COLORS = {"DiffPure": "tab:blue", "RevPure": "tab:orange", "DDIM RevPure": "tab:green"}
MARKERS = {"DiffPure": "o", "RevPure": "s", "DDIM RevPure": "^"}
METRICS = (("clean", "clean", "--"), ("bpda", "BPDA", "-"))


def sample_counts(rows: list[dict]) -> str:
    """The number of test images behind each plotted point, per metric (e.g. "32 clean / 16 BPDA")."""
    parts = []
    for metric, name, _ in METRICS:
        ns = sorted({r[metric].n for r in rows if r.get(metric) is not None})
        if ns:
            parts.append(f"{ns[0] if len(ns) == 1 else f'{ns[0]}-{ns[-1]}'} {name}")
    return " / ".join(parts)


def _offsets(methods: list[str], xs: list[float], log_x: bool) -> dict[str, float]:
    """A small horizontal shift per purifier (additive, or multiplicative on a log axis), so that equal
    accuracies at one setting stay visible side by side instead of hiding one another."""
    span = (max(xs) / min(xs)) if log_x else (max(xs) - min(xs)) or 1.0
    centre = (len(methods) - 1) / 2
    if log_x:
        return {m: span ** (0.015 * (i - centre)) for i, m in enumerate(methods)}
    return {m: 0.015 * span * (i - centre) for i, m in enumerate(methods)}


def draw_sweep(rows: list[dict], key: str, xlabel: str, title: str, log_x: bool = False):
    """The sweep figure: per purifier a colour and marker; clean dashed with open markers, BPDA solid with
    filled ones; error bars one SE over samples; purifiers shifted slightly apart along x."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 4))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    shift = _offsets(methods, [r[key] for r in rows], log_x)
    for method in methods:
        pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r[key])
        xs = [r[key] * shift[method] if log_x else r[key] + shift[method] for r in pts]
        for metric, name, style in METRICS:
            acc = [r[metric] for r in pts]
            if any(a is None for a in acc):
                continue
            color = COLORS.get(method)
            ax.errorbar(xs, [a.mean for a in acc], yerr=[a.se for a in acc], ls=style, marker=MARKERS.get(method, "o"),
                        ms=5, color=color, mfc="white" if metric == "clean" else color, capsize=2, alpha=0.85,
                        label=f"{method}, {name}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, handlelength=3.2,
              title=f"n = {sample_counts(rows)}\nimages per point;\nbars: ±1 SE over images;\npurifiers shifted\nslightly along x",
              title_fontsize=7)
    return fig


def plot_sweep(rows: list[dict], key: str, xlabel: str, title: str, path: Path, log_x: bool = False) -> list[str]:
    """The sweep figure (see draw_sweep) as PNG and PDF."""
    import matplotlib.pyplot as plt

    fig = draw_sweep(rows, key, xlabel, title, log_x)
    paths = report.save_figure(fig, str(path))
    plt.close(fig)
    return paths


def sweep_main(config: cfg.Config, field: str, tag: str, label: str, values: list[int], paper: dict,
               paper_values: tuple[int, ...], header: str, note: str, xlabel: str, title: str,
               log_x: bool = False, notes: Callable[[dict], object] | None = None) -> dict:
    """The whole run of a sweep entry point: cells, the table beside the paper's rows, the notes, the figure,
    outputs. `notes` maps the run's result dict (its `config` included) to an object with `lines` to print and
    `tests` to store under "tests" (the entry points pass `empirical.paper.notes`, which this layer cannot import)."""
    timer = report.Timer()
    rows, records, resolved = run_sweep(config, field, tag, values, header)
    if not rows:
        return {}
    result = {"rows": [report.jsonable(r) for r in rows], "paper": paper, f"paper_{tag}_stars": list(paper_values),
              "resolved": resolved, "records": records, "elapsed_s": timer.elapsed, "png": config.output.png}
    text = notes({"config": config.to_dict(), **result}) if notes is not None else None
    print(sweep_table(rows, values, tag, {**paper, "values": list(paper_values)}, label, config.output.format))
    print(f"Accuracies in %: mean±SE over samples. {note} Wall time {timer.elapsed:.0f} s.")
    if text is not None:
        result["tests"] = text.tests
        if config.output.format != "csv":
            print("\n".join(text.lines))
    paths = plot_sweep(rows, tag, xlabel, title, Path(config.output.png), log_x=log_x)
    report.status(f"wrote {', '.join(paths)}", config)
    result["elapsed_s"] = timer.elapsed
    report.write_outputs(config, result, rows, [("method", "Method"), (tag, label), ("clean", "Clean"),
                                                ("bpda", "BPDA")])
    return result
