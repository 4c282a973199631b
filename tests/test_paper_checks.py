"""paper_checks: the thin entry point regenerates the committed verdicts.json and paper_checks.md, fails loudly."""
import json
import shutil
from pathlib import Path

import pytest

from empirical import paper_checks as pc
from empirical.paper import render

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"claim", "title", "setup", "estimand", "test", "statistic", "p", "p_adjusted", "n", "discordant", "verdict",
        "n_80"}


def _regenerate(tmp_path: Path, runs: Path) -> tuple[str, dict]:
    out, verdicts = tmp_path / "paper_checks.md", tmp_path / "verdicts.json"
    shutil.copy(ROOT / "paper_checks.md", out)
    pc.main(["--runs", str(runs), "--output", str(out), "--verdicts", str(verdicts)])
    return out.read_text(), json.loads(verdicts.read_text())


def test_regenerating_from_paper_runs_reproduces_the_committed_files(tmp_path):
    text, verdicts = _regenerate(tmp_path, ROOT / "paper_runs")
    assert text == (ROOT / "paper_checks.md").read_text(), "paper_checks.md is stale: run python -m empirical.paper_checks"
    assert verdicts == json.loads((ROOT / "paper_runs" / "verdicts.json").read_text()), "verdicts.json is stale"


def test_verdicts_json_has_the_keys_and_no_decided_verdict_above_its_threshold():
    data = json.loads((ROOT / "paper_runs" / "verdicts.json").read_text())
    ids = [r["claim"] for r in data["claims"]]
    assert len(ids) == len(set(ids))
    for r in data["claims"]:
        assert KEYS <= set(r), r["claim"]
        assert r["verdict"] in ("reproduced", "contradicted", "inconclusive")
        if r["p_adjusted"] is not None and r["verdict"] != "inconclusive" and r["kind"] == "directional":
            assert r["p_adjusted"] < 0.05, r["claim"]
        if r["discordant"] is not None:
            assert r["test"].startswith(("exact McNemar", "TOST")) and len(r["discordant"]) == 2
    s = data["summary"]
    assert s["family_size"] == sum(r["p_adjusted"] is not None for r in data["claims"])


def test_toy_rows_are_their_own_claim_not_the_cifar10_table():
    data = json.loads((ROOT / "paper_runs" / "verdicts.json").read_text())
    toy = [r for r in data["claims"] if r["claim"].startswith("toy.")]
    assert toy and all("CIFAR-10" not in r["title"] and "toy" in r["setup"] for r in toy)
    table1 = [r for r in data["claims"] if r["claim"].startswith("table1.")]
    assert table1 and all("toy" not in r["setup"] for r in table1)


def test_runs_sharing_samples_and_seed_count_once(tmp_path):
    """table2.json beside table2_large.json: one claim, the other run shown as a secondary reading."""
    data = json.loads((ROOT / "paper_runs" / "verdicts.json").read_text())
    order = [r for r in data["claims"] if r["claim"] == "table2.bpda_order"]
    assert len(order) == 1 and order[0]["run"] == "table2_large"
    assert [s["run"] for s in order[0]["secondary"]] == ["table2"]


def test_a_bug_in_a_rule_fails_loudly(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("table1", "table2"):
        shutil.copy(ROOT / "paper_runs" / f"{name}.json", runs / f"{name}.json")
    broken = json.loads((runs / "table2.json").read_text())
    broken["records"] = {k.replace("RevPure", "Other"): v for k, v in broken["records"].items()}
    (runs / "table2.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="expected one record"):
        _regenerate(tmp_path, runs)


def test_missing_runs_are_listed_not_invented(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copy(ROOT / "paper_runs" / "table1.json", runs / "table1.json")
    text, verdicts = _regenerate(tmp_path, runs)
    assert "table2: no run found" in text
    t2 = [r for r in verdicts["claims"] if r["claim"] == "table2.bpda_order"][0]
    assert t2["verdict"] == "inconclusive" and t2["p"] is None and t2["run"] is None


def test_bad_runs_folder_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pc.main(["--runs", str(tmp_path / "nope")])
    assert "does not exist" in capsys.readouterr().err


def test_splice_keeps_the_hand_written_part():
    text = "head\n" + render.BEGIN + "\nold\n" + render.END + "\ntail\n"
    assert render.splice(text, render.BEGIN + "\nnew\n" + render.END) == "head\n" + render.BEGIN + "\nnew\n" + \
        render.END + "\ntail\n"
