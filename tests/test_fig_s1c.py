"""figures.fig_s1c writes both PNGs; its data shows the critical point (n, 1/2) and MC near exact."""
import json

import pytest

from figures import fig_s1c


def test_fig_s1c_writes_pngs_and_data(tmp_path):
    out = tmp_path / "data.json"
    fig_s1c.main(["--ns", "1", "4", "64", "--mc-n", "16", "--trials", "2000", "--eps", "inf", "2",
                  "--out-dir", str(tmp_path), "--json", str(out)])
    for name in ("fig_s1c.png", "fig_s1c_mc.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    data = json.loads(out.read_text())
    crit = [data["cdfs"]["critical"][k] for k in ("1", "4", "64")]
    assert crit[0] > crit[1] > crit[2] > 0.5 and crit[2] - 0.5 < 0.03
    for panel in data["mc"]:
        for s, v in panel["strategies"].items():
            assert len(v["mc"]) == len(panel["r_over_sigma"])
        assert panel["strategies"]["eot"]["exact"] is not None
    unclipped = data["mc"][0]["strategies"]
    assert all(m == 1.0 for m in unclipped["replay"]["mc"])


def test_bad_arguments_rejected(tmp_path):
    with pytest.raises(SystemExit):
        fig_s1c.main(["--ns", "0", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        fig_s1c.main(["--eps", "-1", "--out-dir", str(tmp_path)])
