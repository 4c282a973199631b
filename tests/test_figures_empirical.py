import json

import numpy as np
import pytest

from figures import fig1, fig3, fig4

TINY = ["--t-star", "3", "--quiet", "--batch-size", "8"]


def test_fig1_smoke_and_ddim_is_one(tiny_digits, tmp_path):
    out, png = tmp_path / "f1.json", tmp_path / "f1.png"
    fig1.main(TINY + ["--n-samples", "2", "--k", "4", "--json", str(out), "--png", str(png)])
    data = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    again = tmp_path / "again.png"
    fig1.main(["--from-json", str(out), "--png", str(again), "--quiet"])
    assert again.read_bytes() == png.read_bytes()                        # redrawn from the JSON, byte for byte
    assert again.with_suffix(".pdf").read_bytes() == png.with_suffix(".pdf").read_bytes()
    ddim = data["results"]["DDIM RevPure"]["a"]
    assert np.allclose(ddim["min_offdiag"], 1.0, atol=1e-12)            # deterministic: one direction
    assert max(data["results"]["RevPure"]["a"]["max_offdiag"]) < 1.0     # noise changes the direction


def test_fig3_smoke_and_from_json(tiny_digits, tmp_path):
    out, png = tmp_path / "f3.json", tmp_path / "f3.png"
    res = fig3.main(TINY + ["--n-samples", "4", "--steps", "1", "--keep-every", "1", "--json", str(out),
                            "--png", str(png)])
    assert png.stat().st_size > 1000
    s = json.loads(out.read_text())["summary"]
    assert s["DiffPure"]["steps_total"] == 6 and s["RevPure"]["steps_total"] == 3
    assert abs(s["RevPure"]["cos_start"] - 1) < 1e-9
    again = fig3.main(["--from-json", str(out), "--png", str(tmp_path / "g.png"), "--quiet"])
    assert again["summary"] == res["summary"]
    assert (tmp_path / "g.png").read_bytes() == png.read_bytes()          # same title and curves, same bytes
    assert (tmp_path / "g.pdf").read_bytes() == png.with_suffix(".pdf").read_bytes()


def test_fig4_smoke(tiny_digits, tmp_path):
    out, png = tmp_path / "f4.json", tmp_path / "f4.png"
    fig4.main(TINY + ["--m", "20", "--purifiers", "revpure", "ddim", "--json", str(out), "--png", str(png)])
    data = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    fig4.main(["--from-json", str(out), "--png", str(tmp_path / "g.png"), "--quiet"])
    assert (tmp_path / "g.png").read_bytes() == png.read_bytes()
    for method in ("RevPure", "DDIM RevPure"):
        r = data["results"][method]
        assert sum(r["initial"]["hist"]) == 20 * 19 // 2
        assert 1 <= r["purified"]["components_90"] <= 19


def test_fig1_radius_sweep_relative_to_the_output_spread(tiny_digits, tmp_path):
    out, png = tmp_path / "f1.json", tmp_path / "f1.png"
    fig1.main(TINY + ["--n-samples", "1", "--k", "4", "--purifiers", "diffpure", "--radii", "0.05", "2",
                      "--json", str(out), "--png", str(png)])
    sweep = json.loads(out.read_text())["radius_sweep"]["DiffPure"]
    assert sweep["spread"] > 0 and (tmp_path / "f1_radius.png").stat().st_size > 1000
    small, large = sweep["rows"]
    assert small["radius_over_spread"] < large["radius_over_spread"]
    assert small["mean"] > large["mean"]          # nearby states share more of their purified direction


@pytest.mark.parametrize("fig", [fig1, fig4])
def test_from_json_that_is_not_a_figure_run_is_one_line(fig, tmp_path, capsys):
    bad = tmp_path / "other.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(SystemExit) as info:
        fig.main(["--from-json", str(bad), "--png", str(tmp_path / "f.png")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--from-json" in err and "no 'results'" in err
