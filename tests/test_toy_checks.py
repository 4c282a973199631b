"""toymodel.checks: the measurements behind paper_checks.md's toy rows, checked for the properties
those rows state (few trials, fixed seeds)."""
import math

import pytest

from toymodel import checks


def _within(mc, exact, slack=0.0):
    p, se_trials = exact, mc[1]
    return abs(mc[0] - p) <= 4 * max(se_trials, math.sqrt(max(p * (1 - p), 1e-12) / 2000)) + 1 / 2000 + slack


def test_theorem1_scope():
    t = checks.theorem1_scope(2000, seed=1)
    full = t["full_cancellation"]
    assert _within(full["mc"], full["first_bound"])                     # the first bound is attained
    s = t["at_sqrt_n"]
    assert s["partial_over_first"] > 1e100 and s["partial_exact"] <= s["second_bound"]
    assert _within(s["partial_mc"], s["partial_exact"]) and s["eot_exact"] == s["second_bound"]
    assert s["log10_baseline"] < -100 and s["d"] > s["r_over_sigma"]


def test_projection_scales_towards_x0():
    p = checks.projection(2000, seed=2)
    assert p["x0_in_A"] and p["p_projected"] == 1.0 and p["variance_factor"] < 2.0
    # the typical-s noncentral form explains the projected attack to within 0.02; the first bound does not
    assert abs(p["mc"][0] - p["ncx2_at_typical_s"]) < 0.02 and p["mc"][0] > 1e80 * p["first_bound"]
    assert p["x0_outside_A_d70_mc"][0] == 0.0 and p["paper_geometry_p_projected"] < 1e-12


def test_corollary_1_1_bound_status():
    c = checks.corollary_1_1()
    lo, hi = c["psi_above_clt_on"]
    assert lo < checks.N < hi and c["psi_n_n"] > c["clt_n_n"] == 0.5
    assert c["x64_log10_psi"] < c["x64_log10_clt"] - 1000                # a loose upper bound far left
    assert c["x_n_minus_3sd"]["psi"] < c["x_n_minus_3sd"]["clt"]


def test_replay_and_linf_clipping():
    r = checks.replay_clipping(2000, seed=3)
    for name in ("x0_in_A_eps1", "x0_in_A_eps1_b", "x0_outside_A_eps10"):
        assert _within(r[name]["mc"], r[name]["exact"]), name
    assert r["x0_in_A_eps1"]["exact"] < 0.5 and r["paper_geometry"]["failure"] < 1e-12
    li = checks.linf_clipping(2000, seed=3)
    assert 0.3 < li["relative"] < 0.5                                     # far from "barely moves"
    assert li["replay_mc_r53"][0] == 1.0 and li["replay_mc_r_0.9_disp"][0] < 0.05


def test_pgd_rows_and_cli(tmp_path, capsys):
    g = checks.pgd_rows(600, seed=4)
    assert g["d10_l2"]["fresh"][0] > 100 * g["first_bound"]
    assert g["d10_l2"]["fresh"][0] < g["d10_l2"]["eot"][0] < g["second_bound"] + 4 * g["d10_l2"]["eot"][1]
    assert g["d10_gd"]["replay"][0] == 1.0 and g["d10_baseline"] < 1e-6
    with pytest.raises(SystemExit):
        checks.main(["--json", str(tmp_path / "missing" / "c.json")])
    with pytest.raises(SystemExit):
        checks.main(["--trials", "0"])
    assert "error" in capsys.readouterr().err

