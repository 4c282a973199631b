"""CLI tests for python -m toymodel.sweep: paper geometry by default, labelled bounds, JSON/CSV, bad args."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toymodel import simulate, sweep, theory

ROOT = Path(__file__).resolve().parents[1]


def _within_4_se(row) -> bool:
    """MC within 4 SE of the exact value, plus one trial's worth for the Poisson regime at tiny p."""
    p, trials = row["exact"], row["trials"]
    return abs(row["success"] - p) <= 4 * math.sqrt(p * (1 - p) / trials) + 1.0 / trials


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "toymodel.sweep", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    for opt in ("--n", "--r-over-sigma", "--eps", "--trials", "--seed", "--threads", "--json", "--csv", "auto"):
        assert opt in out


def test_default_geometry_is_the_papers_and_every_row_is_explained(tmp_path, capsys):
    path = tmp_path / "rows.json"
    sweep.main(["--n", "3072", "--trials", "2000", "--quiet", "--json", str(path)])
    rows = json.loads(path.read_text())
    out = capsys.readouterr().out
    assert len(rows) == 4 * 4 * 14 and "NOTE:" not in out
    assert not any(line.endswith("EXCEEDS") or line.endswith("*") for line in out.splitlines())
    cover = {"perfect": {theory.COVER_EXACT, theory.COVER_PROJECTED}, "partial": {theory.COVER_FRESH},
             "eot": {theory.COVER_FRESH}, "replay": {theory.COVER_NONE}}
    for r in rows:
        assert not r["x0_in_A"] and r["A_in_threat"] and r["d"] > r["r"]          # x0 outside A, A inside B
        if r["eps"] != "inf":
            sup = r["d"] / math.sqrt(r["n"]) if r["direction"] == "diagonal" and r["norm"] == "inf" else r["d"]
            assert sup + r["r"] <= r["eps"] * (1 + 1e-12)
        assert r["bound_covers"] in cover[r["strategy"]]
        assert 0.0 <= r["baseline"] <= r["bound_fresh"] and r["bound_full_cancel"] <= r["bound_fresh"]
        assert -math.inf < r["log_baseline"] < -100 and r["baseline"] == pytest.approx(math.exp(r["log_baseline"]))
        slack = 4 * math.sqrt(r["bound"] * (1 - r["bound"]) / r["trials"]) + 1.0 / r["trials"]
        assert r["success"] <= r["bound"] + slack, r                             # no unexplained excess
        if r["exact"] is not None:
            assert _within_4_se(r), r
    assert {r["eps"] for r in rows} - {"inf"} and {r["strategy"] for r in rows} == set(theory.STRATEGIES)
    # the partial-cancellation rows are where Theorem 1's first bound visibly fails
    beats = [r for r in rows if r["strategy"] == "partial" and r["success"] > r["bound_full_cancel"] + 0.1]
    assert beats and all(r["bound_covers"] == theory.COVER_FRESH for r in beats)


def test_json_csv_rows_schema_and_values(tmp_path, capsys):
    path = tmp_path / "rows.json"
    sweep.main(["--n", "16", "64", "--trials", "3000", "--eps", "inf", "auto", "1.5", "--quiet", "--format", "wide",
                "--json", str(path),
                "--csv", str(tmp_path / "rows.csv")])
    rows = json.loads(path.read_text())
    # 2 n x (1 unclipped + 2 eps x (l2 + linf axis + linf diagonal)) x 4 strategies x 14 radii + dimension table
    assert len(rows) == 2 * 7 * 4 * 14 + 2 * 2
    assert all(set(r) == set(sweep.FIELDS) for r in rows)
    assert "inf" in {r["eps"] for r in rows} and 1.5 in {r["eps"] for r in rows}
    assert all(_within_4_se(r) for r in rows if r["exact"] is not None)
    out = capsys.readouterr().out
    assert "Curse of dimensionality" in out and "covered by" in out and "no-attack" in out
    assert (tmp_path / "rows.csv").read_text().splitlines()[0].split(",") == sweep.FIELDS
    assert sorted(os.listdir(tmp_path)) == ["rows.csv", "rows.json"]          # no temporary files left


def test_non_paper_geometry_is_flagged(tmp_path, capsys):
    sweep.main(["--n", "64", "--trials", "500", "--d", "2", "--eps", "1", "--norm", "2", "--quiet",
                "--r-over-sigma", "1.5", "8", "--json", str(tmp_path / "rows.json")])
    out = capsys.readouterr().out
    assert "x0 lies in A" in out and "not inside B_p(x0, eps)" in out
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {(r["r"], r["x0_in_A"]) for r in rows} == {(1.5, False), (8.0, True)}
    assert not any(r["A_in_threat"] for r in rows)


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "run_grid", lambda args: pytest.fail("work started before the path check"))
    for argv in (["--json", str(tmp_path / "missing" / "rows.json")], ["--csv", str(tmp_path)]):
        with pytest.raises(SystemExit) as info:
            sweep.main(argv)
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "is a directory" in err


@pytest.mark.parametrize("argv,message", [
    (["--sigma", "-1"], "must be finite and > 0"), (["--n", "0"], "must be in 1..1000000"),
    (["--strategy", "bpda"], "invalid choice"), (["--norm", "1"], "invalid choice"),
    (["--eps", "-2"], "must be finite and > 0"), (["--n", "abc"], "expected an integer"),
    (["--d", "-1"], "must be finite and >= 0"), (["--d", "nan"], "must be finite"),
    (["--sigma", "inf"], "must be finite"), (["--r-over-sigma", "nan"], "must be finite"),
    (["--eps", "nan"], "must be finite"), (["--trials", "100000001"], "<= 100000000"),
    (["--seed", "-1"], "must be >= 0"), (["--fixed-r-over-sigma", "0"], "must be finite and > 0"),
])
def test_bad_arguments_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        sweep.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1


def test_default_output_fits_120_columns_defines_its_symbols_and_ends_with_a_summary(capsys):
    sweep.main(["--n", "3072", "--trials", "1000", "--quiet"])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 120
    header = "\n".join(lines[:30])
    for symbol in ("n ", "sigma", "r ", "d = ||c - x0||", "eps", "eta0", "xi", "Psi(x; n)", "Psi(x/2)", "Psi(x)"):
        assert symbol in header, symbol
    summary = lines[lines.index(next(line for line in lines if line.startswith("Summary"))):]
    assert len(summary) <= 10 and all(s in summary[1] for s in theory.STRATEGIES)
    assert "near sqrt(n): partial, eot" in " ".join(summary) and "near sqrt(2n): perfect" in " ".join(summary)


def test_wide_format_keeps_the_spelled_out_bounds(capsys):
    sweep.main(["--n", "64", "--trials", "200", "--quiet", "--eps", "inf", "--format", "wide"])
    out = capsys.readouterr().out
    assert "covered by" in out and "(any fresh-noise attack)" in out and "d = ||c - x0||" in out


def _estimate(r: float, success: float, exact: float | None) -> simulate.Estimate:
    return simulate.Estimate("eot", 16, 1.0, r, 5.0, "axis", math.inf, "2", success, 0.0, 100, exact, 1.0,
                             theory.COVER_FRESH, 0.0, 1.0, 0.0, -50.0, False, True, None)


def test_crossings_interpolate_between_grid_points():
    rows = [_estimate(r, p, e) for r, p, e in ((1.0, 0.1, 0.0), (2.0, 0.3, 0.4), (3.0, 0.7, 0.6), (4.0, 0.9, 1.0))]
    (mc, exact), = sweep.crossings(rows)[(16, math.inf, "2", "axis")].values()
    assert mc == pytest.approx(2.5) and exact == pytest.approx(2.5)
    assert sweep._crossing([(1.0, 0.6), (2.0, 0.9)]) == "above" and sweep._crossing([(1.0, 0.2)]) == "below"
    assert sweep._crossing([(1.0, None), (2.0, 0.9)]) is None


@pytest.mark.parametrize("argv,message", [
    (["--n", "1e7"], "must be in 1..1000000"), (["--n", "10000000"], "must be in 1..1000000"),
    (["--d", "1e6"], "bring --d back"), (["--r-over-sigma", "1e6"], "bring --r-over-sigma back"),
    (["--sigma", "1e300"], "bring --sigma back"), (["--eps", "1e300"], "bring --eps back"),
    (["--n", "16", "32", "--fixed-r-over-sigma", "1e9"], "bring --fixed-r-over-sigma back"),
])
def test_too_large_values_refused_before_any_simulation(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(simulate, "estimate_curve", lambda *a, **k: pytest.fail("simulation started"))
    with pytest.raises(SystemExit) as info:
        sweep.main(argv + ["--quiet"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


def test_same_path_for_json_and_csv_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "run_grid", lambda args: pytest.fail("work started before the path check"))
    (tmp_path / "sub").mkdir()
    for other in (tmp_path / "rows", tmp_path / "sub" / ".." / "rows"):
        with pytest.raises(SystemExit) as info:
            sweep.main(["--json", str(tmp_path / "rows"), "--csv", str(other)])
        assert info.value.code == 2
        assert "--json and --csv name the same file" in capsys.readouterr().err


def test_default_grid_brackets_both_transitions():
    ratios = theory.default_ratios(3072)
    assert min(ratios) < math.sqrt(3072) < max(ratios[:7])
    assert min(ratios[7:]) < math.sqrt(2 * 3072) < max(ratios)


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    from toymodel import atomic
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic.write_text_atomic(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["out.txt"]
    assert atomic.output_problem(tmp_path / "nope" / "x.json").startswith("folder")
    assert atomic.output_problem(target) is None
