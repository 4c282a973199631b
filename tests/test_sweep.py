"""CLI smoke tests for python -m toymodel.sweep: help, JSON schema, exact/MC agreement, bad args."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from toymodel import sweep

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "toymodel.sweep", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    for opt in ("--n", "--r-over-sigma", "--eps", "--trials", "--seed", "--threads", "--json", "--csv"):
        assert opt in out


def test_json_rows_schema_and_values(tmp_path, capsys):
    path = tmp_path / "rows.json"
    sweep.main(["--n", "16", "64", "--trials", "3000", "--eps", "inf", "1.5", "--quiet", "--json", str(path),
                "--csv", str(tmp_path / "rows.csv")])
    rows = json.loads(path.read_text())
    # 2 n x (1 unclipped + l2 + linf axis + linf diagonal) x 3 strategies x 14 radii + dimension table
    assert len(rows) == 2 * 4 * 3 * 14 + 2 * 2
    assert all(set(r) == set(sweep.FIELDS) for r in rows)
    assert {r["eps"] for r in rows} == {"inf", 1.5}
    no_exact = [r for r in rows if r["exact"] is None]
    assert no_exact and all(r["strategy"] != "eot" for r in no_exact)
    for r in rows:
        if r["exact"] is not None and 0 < r["exact"] < 1:
            assert abs(r["success"] - r["exact"]) <= 4 * math.sqrt(r["exact"] * (1 - r["exact"]) / r["trials"]) + 1e-9
    out = capsys.readouterr().out
    assert "Curse of dimensionality" in out and "r/sigma" in out
    assert (tmp_path / "rows.csv").read_text().splitlines()[0].split(",") == sweep.FIELDS


@pytest.mark.parametrize("argv,message", [
    (["--sigma", "-1"], "must be finite and > 0"), (["--n", "0"], "must be >= 1"),
    (["--strategy", "bpda"], "invalid choice"), (["--norm", "1"], "invalid choice"),
    (["--eps", "-2"], "must be finite and > 0"), (["--n", "abc"], "expected an integer"),
    (["--d", "-1"], "must be finite and >= 0"),
])
def test_bad_arguments_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        sweep.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_default_grid_brackets_both_transitions():
    ratios = sweep.default_ratios(3072)
    assert min(ratios) < math.sqrt(3072) < max(ratios[:7])
    assert min(ratios[7:]) < math.sqrt(2 * 3072) < max(ratios)
