"""What a reader of the figures sees: the right titles, legend entries that can be told apart, counts and
error-bar meanings stated, lettered panels, readable fonts, and files that redraw byte for byte."""
import numpy as np
import pytest

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from empirical.harness import report, sweeps  # noqa: E402
from empirical.harness.report import Accuracy  # noqa: E402
from figures import fig1, fig3, fig4  # noqa: E402

METHODS = ("DiffPure", "RevPure", "DDIM RevPure")


def _sweep_rows(same: bool) -> list[dict]:
    """Sweep rows for three purifiers at t* = 1, 50; with `same`, every purifier has the same accuracies."""
    rows = []
    for i, method in enumerate(METHODS):
        for t in (1, 50):
            shift = 0 if same else 5 * i
            rows.append({"method": method, "t": t, "clean": Accuracy(90.0 - shift, 3.0, 32),
                         "bpda": Accuracy(10.0 + shift, 6.0, 16)})
    return rows


def _style(line) -> tuple:
    return (matplotlib.colors.to_hex(line.get_color()), str(line.get_linestyle()), line.get_marker(),
            matplotlib.colors.to_hex(line.get_markerfacecolor()))


def test_sweep_legend_tells_every_line_apart_and_states_n_and_error_bars():
    fig = sweeps.draw_sweep(_sweep_rows(same=False), "t", "t*", "title")
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    assert sorted(labels) == sorted(f"{m}, {k}" for m in METHODS for k in ("clean", "BPDA"))
    styles = {label: _style(h.lines[0]) for h, label in zip(handles, labels)}
    assert len(set(styles.values())) == 6
    for m in METHODS:          # clean and BPDA differ in the marker itself, visible at a legend handle's size
        assert styles[f"{m}, clean"][3] != styles[f"{m}, BPDA"][3]
    legend = ax.get_legend()
    assert legend.handlelength >= 3            # long enough to show the dashes
    title = legend.get_title().get_text()
    assert "32 clean / 16 BPDA" in title and "SE" in title
    plt.close(fig)


def test_equal_accuracies_of_two_purifiers_stay_visible():
    fig = sweeps.draw_sweep(_sweep_rows(same=True), "t", "t*", "title")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    xs = {label: tuple(h.lines[0].get_xdata()) for h, label in zip(handles, labels)}
    assert len({xs[f"{m}, BPDA"] for m in METHODS}) == 3      # shifted apart, not drawn over one another
    plt.close(fig)
    log_fig = sweeps.draw_sweep([{**r, "t": 5 * r["t"]} for r in _sweep_rows(same=True)], "t", "s*", "t", log_x=True)
    handles, labels = log_fig.axes[0].get_legend_handles_labels()
    assert len({tuple(h.lines[0].get_xdata()) for h in handles}) == 3
    assert all(min(h.lines[0].get_xdata()) > 0 for h in handles)
    plt.close(log_fig)


def _curves(n_steps: int = 4) -> dict:
    rng = np.random.default_rng(0)
    curve = lambda: {"mean": rng.random(n_steps).tolist(), "se": (0.1 * rng.random(n_steps)).tolist()}
    out = {}
    for method in METHODS:
        m = {"position": list(range(n_steps)), "correct": [True, False]}
        for key in ("l2", "cosine", "inner"):
            c = curve()
            m[f"{key}_mean"], m[f"{key}_se"] = c["mean"], c["se"]
        out[method] = m
    return out


def test_fig3_figure_title_is_its_own_not_a_panel_title():
    fig = fig3.draw(_curves(), "the figure's title")
    assert fig._suptitle.get_text() == "the figure's title"
    assert [ax.get_title() for ax in fig.axes] == list(fig3.PANELS)
    plt.close(fig)


def test_fig4_panels_lettered_in_order_and_title_names_dataset_and_t_star():
    hist = {"corr_mean": 0.1, "hist": [1, 2, 1], "edges": [-1.0, 0.0, 0.5, 1.0], "cumulative_variance": [0.5, 1.0],
            "components_90": 2}
    results = {m: {"initial": hist, "purified": hist} for m in ("RevPure", "DDIM RevPure")}
    fig = fig4.draw(results, 20, fig4.figure_title("digits", 150, 20, 0))
    letters = [ax.get_title()[:3] for ax in fig.axes]
    assert letters == ["(a)", "(b)", "(c)", "(d)"]
    title = fig._suptitle.get_text()
    assert "digits" in title and "t*=150" in title
    plt.close(fig)


def test_fig1_fonts_readable_and_axes_labelled():
    matrix = np.eye(4).tolist()
    part = {"matrix_first": matrix, "mean_offdiag": [0.5], "min_offdiag": [0.1], "max_offdiag": [0.9]}
    fig = fig1.draw({m: {"a": part, "b": part} for m in METHODS}, 4, 0.5, 100, "digits")
    panels, bar = fig.axes[:6], fig.axes[6]
    colorbar_size = bar.yaxis.label.get_fontsize()
    for ax in panels:
        assert ax.title.get_fontsize() >= 9 and ax.title.get_fontsize() >= colorbar_size - 1
        assert ax.get_xlabel()
    assert all(ax.get_ylabel() for ax in panels[::3])       # first column: row quantity named
    plt.close(fig)


@pytest.mark.parametrize("epochs", [("1", "1000000")])
def test_saved_figures_redraw_byte_identical(tmp_path, monkeypatch, epochs):
    """Two renders at different times (SOURCE_DATE_EPOCH is what a dated PDF would record) give equal bytes."""
    blobs = []
    for i, epoch in enumerate(epochs):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        fig = sweeps.draw_sweep(_sweep_rows(same=False), "t", "t*", "title")
        paths = report.save_figure(fig, str(tmp_path / f"f{i}.png"))
        plt.close(fig)
        blobs.append([open(p, "rb").read() for p in paths])
    assert blobs[0][1][:5] == b"%PDF-"
    assert blobs[0] == blobs[1]


def test_fig2_refuses_a_json_that_is_no_sweep(tmp_path, capsys):
    from figures import fig2

    bad = tmp_path / "table2.json"
    bad.write_text('{"config": {"table": "2"}, "rows": []}')
    with pytest.raises(SystemExit) as info:
        fig2.main(["--from-json", str(bad), "--png", str(tmp_path / "f.png")])
    assert info.value.code == 2 and not (tmp_path / "f.png").exists()
    assert "not the JSON of empirical.sweep_tstar or empirical.subsequence" in capsys.readouterr().err
