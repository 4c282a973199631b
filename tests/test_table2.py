import json

import pytest

from conftest import TINY
from empirical import table2
from empirical.paper.notes import claims_for, notes


def test_table2_smoke(tiny_digits, tmp_path, capsys):
    out = tmp_path / "t2.json"
    res = table2.main(TINY + ["--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["DiffPure", "RevPure", "DDIM RevPure"]
    for r in data["rows"]:
        assert r["clean"]["n"] == 6 and r["bpda"]["n"] == 4 and r["eot"]["n"] == 2
        assert r["bpda"]["mean"] <= r["clean"]["mean"] + 100 * 2 / 6   # best iterate starts at x itself
    assert data["protocol"]["fresh_cells"] is False
    assert data["config"]["table"] == "2" and data["config"]["sizes"]["n_samples"] == 4
    # the notes are paper_checks' Table 2 claims read on this run: printed, stored, and the same read from the JSON
    again = notes("table2", data)
    assert [t["claim"] for t in data["tests"]] == [c.id for c in claims_for("table2")]
    assert data["tests"] == json.loads(json.dumps(again.tests))
    printed = capsys.readouterr().out
    assert "\n".join(again.lines) in printed and "Paired differences" not in printed
    assert "nan" not in printed and max(map(len, printed.splitlines())) <= 120
    assert len(res["records"]) == 3          # DiffPure / RevPure / DDIM cells do not overwrite each other


def test_table2_eot_equals_bpda_under_fixed_noise(tiny_digits):
    """Under replayed noise all EOT draws coincide, so BPDA-EOT gives BPDA's outcome on its subset."""
    res = table2.main(TINY + ["--purifiers", "revpure", "--unet-batch", "4", "--steps", "4", "--step-size", "0.06",
                              "--eot-samples", "4"])
    rec = res["records"][next(iter(res["records"]))][0]
    assert rec["eot_replay"] == rec["bpda_replay"]
    assert res["rows"][0]["bpda"]["mean"] < res["rows"][0]["clean"]["mean"]   # the attack bites: not vacuous


def test_table2_resume_matches(tiny_digits, tmp_path):
    store = tmp_path / "store.json"
    a = table2.main(TINY + ["--purifiers", "ddim", "--results", str(store)])
    b = table2.main(TINY + ["--purifiers", "ddim", "--results", str(store), "--resume", "--json", str(tmp_path / "b.json")])
    assert a["rows"] == b["rows"]


def test_table2_rejects_bad_options(tiny_digits):
    with pytest.raises(SystemExit):
        table2.main(["--t-star", "-3"])
    with pytest.raises(SystemExit):
        table2.main(TINY + ["--purifiers", "bogus"])
