"""figures.fig_s1c writes PNG and PDF; its data shows the critical points, the paper's geometry, both
bounds and the baseline, and Monte Carlo within 4 SE of every exact curve."""
import json
import math

import numpy as np
import pytest

from figures import fig_s1c


def _chi2_16_cdf(x: float) -> float:
    return 1 - math.exp(-x / 2) * sum((x / 2) ** j / math.factorial(j) for j in range(8))


def test_fig_s1c_writes_png_pdf_and_data(tmp_path):
    out = tmp_path / "data.json"
    fig_s1c.main(["--ns", "1", "4", "64", "--mc-n", "16", "--trials", "2000", "--eps", "inf", "auto",
                  "--out-dir", str(tmp_path), "--json", str(out), "--dpi", "60"])
    for name in ("fig_s1c", "fig_s1c_mc"):
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    data = json.loads(out.read_text())
    crit = [data["cdfs"]["critical"][k] for k in ("1", "4", "64")]
    assert crit[0] > crit[1] > crit[2] > 0.5 and crit[2] - 0.5 < 0.03
    assert np.allclose(np.diff(data["cdfs"]["x"]), data["cdfs"]["x"][1])      # a uniform grid of x
    for panel in data["mc"]:
        assert not panel["x0_in_A"] and panel["A_in_threat"]                  # paper geometry by default
        fine = panel["fine"]
        # Theorem 1 at n = 16, sigma = 1: chi-square(16) cdfs at q^2 / 2 and q^2, in the closed form of an
        # even-degree chi-square, P(chi2_2k <= x) = 1 - e^(-x/2) sum_{j<8} (x/2)^j / j!
        assert np.allclose(panel["first_bound"], [_chi2_16_cdf(q * q / 2) for q in fine], rtol=1e-10, atol=1e-13)
        assert np.allclose(panel["second_bound"], [_chi2_16_cdf(q * q) for q in fine], rtol=1e-10, atol=1e-13)
        assert all(b <= s for b, s in zip(panel["baseline"], panel["second_bound"]))
        for s, v in panel["strategies"].items():
            assert len(v["mc"]) == len(panel["r_over_sigma"])
            assert v["exact"] is not None or (panel["eps"] != "inf" and s != "eot")   # n = 16: projection matters
            for q, mc in zip(panel["r_over_sigma"], v["mc"]):
                p = float(np.interp(q, fine, [math.nan if e is None else e for e in v["exact"] or [None] * len(fine)]))
                # interpolation error of the fine grid (160 points) is below 0.01 at n = 16
                assert math.isnan(p) or abs(mc - p) <= 4 * math.sqrt(p * (1 - p) / 2000) + 1 / 2000 + 0.01, (s, q)
    unclipped = data["mc"][0]["strategies"]
    assert all(m == 1.0 for m in unclipped["replay"]["mc"])


def test_non_paper_geometry_is_marked_in_the_data(tmp_path):
    out = tmp_path / "data.json"
    fig_s1c.main(["--ns", "4", "--mc-n", "16", "--trials", "500", "--d", "2", "--eps", "1",
                  "--out-dir", str(tmp_path), "--json", str(out), "--dpi", "40"])
    panel = json.loads(out.read_text())["mc"][0]
    assert panel["x0_in_A"] and not panel["A_in_threat"]
    assert panel["strategies"]["perfect"]["exact"] is None                   # projected: Monte Carlo only


@pytest.mark.parametrize("argv", [["--ns", "0"], ["--eps", "-1"], ["--eps", "nan"], ["--d", "-1"],
                                  ["--trials", "0"], ["--trials", "100000001"], ["--seed", "-3"]])
def test_bad_arguments_rejected(tmp_path, argv):
    with pytest.raises(SystemExit) as info:
        fig_s1c.main(argv + ["--out-dir", str(tmp_path)])
    assert info.value.code == 2


def test_output_paths_checked_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr(fig_s1c, "cdf_curves", lambda ns: pytest.fail("work started before the path check"))
    with pytest.raises(SystemExit):
        fig_s1c.main(["--out-dir", str(tmp_path), "--json", str(tmp_path / "missing" / "d.json")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit):
        fig_s1c.main(["--out-dir", str(tmp_path / "file")])
