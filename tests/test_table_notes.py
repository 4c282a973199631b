"""The notes under Tables 2, S1, S2, 3 and S3 (empirical.paper.notes): the claims of paper_checks read on one
run, decided by its rules. Given the rest of the report they give paper_checks' own records; alone they give a
bound on the adjusted p and print only the verdicts that bound fixes; the words follow the data."""
import copy
import json
import re
from pathlib import Path

import pytest

from conftest import TINY
from empirical import projection, stats
from empirical.paper import notes as N
from empirical.paper import render

RUNS = Path(__file__).resolve().parent.parent / "paper_runs"
PRIMARY = ("table2_large", "sweep_tstar", "subsequence", "ema", "projection")   # the tables' claims' primary runs
SAME = ("verdict", "test", "statistic", "p", "p_adjusted", "n", "discordant", "n_80", "measured")


def _load(name: str) -> dict:
    return json.loads((RUNS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def evaluated() -> dict:
    """paper_checks' records for the committed runs, by claim id (evaluated now, not read from a file)."""
    return {r["claim"]: r for r in render.evaluate(render.load_runs(RUNS))}


@pytest.mark.parametrize("run", PRIMARY)
def test_whole_report_gives_paper_checks_records(run, evaluated):
    """With the raw p of every other tested claim of the report, each claim's test, p, adjusted p and
    verdict are exactly paper_checks' for its primary run."""
    out = N.notes(run, _load(run), N.context_from(list(evaluated.values()), run))
    assert [t["claim"] for t in out.tests] == [c.id for c in N.claims_for(run)]
    for t in out.tests:
        ref = evaluated[t["claim"]]
        assert ref["run"] == run and {k: t[k] for k in SAME} == {k: ref[k] for k in SAME}, t["claim"]


@pytest.mark.parametrize("run", PRIMARY)
def test_committed_verdicts_file_agrees(run):
    """The same against paper_runs/verdicts.json, the report's other p read from the file itself."""
    verdicts = json.loads((RUNS / "verdicts.json").read_text())
    by_id = {r["claim"]: r for r in verdicts["claims"]}
    for t in N.notes(run, _load(run), N.context_from(verdicts["claims"], run)).tests:
        assert (t["verdict"], t["p"], t["p_adjusted"]) == tuple(by_id[t["claim"]][k] for k in ("verdict", "p",
                                                                                                "p_adjusted"))


@pytest.mark.parametrize("run", PRIMARY)
def test_alone_the_bound_holds_and_printed_verdicts_are_paper_checks(run, evaluated):
    """Alone, a claim's smallest possible adjusted p is at most paper_checks' and is its Holm p among the
    run's tested claims; a verdict the notes print is paper_checks' verdict, and one they leave open is
    either inconclusive there or the verdict they name."""
    tests = N.notes(run, _load(run)).tests
    tested = [t for t in tests if t["p"] is not None]
    assert [t["p_adjusted_min"] for t in tested] == stats.holm([t["p"] for t in tested])
    for t in tests:
        ref = evaluated[t["claim"]]
        assert t["p_adjusted"] is None and t["primary"] is False
        if ref["p_adjusted"] is not None:
            assert t["p"] == ref["p"] and t["p_adjusted_min"] <= ref["p_adjusted"]
        if t["verdict"] is not None:
            assert t["verdict"] == ref["verdict"]
        else:
            assert ref["verdict"] in (stats.INCONCLUSIVE, t["verdict_if_adjusted_p_below_alpha"])


@pytest.mark.parametrize("run", PRIMARY + ("table2", "subsequence_one_step"))
def test_lines_fit_and_print_no_nonfinite_number(run):
    out = N.notes(run, _load(run))
    assert out.lines and max(map(len, out.lines)) <= N.WIDTH
    text = "\n".join(out.lines)
    assert not re.search(r"(?<![A-Za-z])(nan|inf)(?![A-Za-z])", text)
    for t in out.tests:
        assert f"  {t['claim']}: " in text
        assert (t["verdict"] or t["verdict_if_adjusted_p_below_alpha"]) in stats.VERDICTS
    json.dumps(out.tests, allow_nan=False)


def _table2_with(bpda: dict[str, bool | None]) -> dict:
    """table2.json with each purifier's fixed-noise BPDA outcome set to all correct (True), all wrong
    (False) or alternating (None)."""
    d = copy.deepcopy(_load("table2"))
    for key, chunks in d["records"].items():
        value = bpda[key.split("|")[1]]
        for c in (c for c in chunks if "bpda_replay" in c):
            n = len(c["bpda_replay"][0])
            c["bpda_replay"] = [[(i % 2 == 0) if value is None else value for i in range(n)]]
    return d


def test_clear_order_is_reproduced_and_reversed_order_contradicted():
    ordered = N.notes("table2", _table2_with({"RevPure": True, "DiffPure": None, "DDIM RevPure": False}))
    rec = {t["claim"]: t for t in ordered.tests}["table2.bpda_order"]
    assert rec["verdict"] is None and rec["verdict_if_adjusted_p_below_alpha"] == stats.REPRODUCED
    assert rec["test"] == "exact McNemar" and rec["p_adjusted_min"] < 0.05
    assert rec["discordant"][1] == 0 and rec["discordant"][0] > 0
    decided = N.notes("table2", _table2_with({"RevPure": True, "DiffPure": None, "DDIM RevPure": False}),
                      {"table1.bpda_drop": 1e-6, "table1.toy_prediction": 1e-6, "toy.bpda_drop": 1e-6})
    rec = {t["claim"]: t for t in decided.tests}["table2.bpda_order"]
    assert rec["verdict"] == stats.REPRODUCED and rec["p_adjusted"] == rec["p_adjusted_min"]
    rejected_none = N.notes("table2", _table2_with({"RevPure": True, "DiffPure": None, "DDIM RevPure": False}),
                            {"table1.bpda_drop": 0.5, "table1.toy_prediction": 0.5, "toy.bpda_drop": 0.5})
    rec = {t["claim"]: t for t in rejected_none.tests}["table2.bpda_order"]
    assert rec["verdict"] == stats.INCONCLUSIVE and rec["p_adjusted"] == 1.0
    reversed_ = N.notes("table2", _table2_with({"RevPure": False, "DiffPure": None, "DDIM RevPure": True}))
    rec = {t["claim"]: t for t in reversed_.tests}["table2.bpda_order"]
    assert rec["verdict_if_adjusted_p_below_alpha"] == stats.CONTRADICTED and rec["mean"] < 0
    text = " ".join(" ".join(reversed_.lines).split())
    assert "decided in paper_checks over the whole report (contradicted there only if" in text


def test_run_without_a_compared_purifier_says_so():
    d = copy.deepcopy(_load("table2"))
    d["records"] = {k: v for k, v in d["records"].items() if "|DDIM RevPure|" not in k}
    out = N.notes("table2", d)
    assert all(t["verdict"] == stats.INCONCLUSIVE and t["p"] is None for t in out.tests)
    assert all("this run has DiffPure, RevPure" in t["note"] for t in out.tests)
    assert "3 without a test" in out.lines[-2] + out.lines[-1]


def test_missing_number_is_named_not_printed_as_nan():
    d = _load("ema")
    del d["fd_floor_train_vs_test"]
    text = "\n".join(N.notes("ema", d).lines)
    assert "nan" not in text and "train-vs-test floor (missing" in text


def test_unknown_run_is_one_clear_error():
    with pytest.raises(ValueError, match="no claim .* reads a run named 'table9'; use one of"):
        N.notes("table9", {})


def test_projection_prints_and_stores_its_notes(tiny_digits, tmp_path, capsys):
    """Table S3 (tiny): the printed notes and the JSON's tests are the notes read back from its own JSON."""
    out = tmp_path / "s3.json"
    projection.main(TINY + ["--json", str(out)])
    data = json.loads(out.read_text())
    again = N.notes("projection", data)
    assert data["tests"] == json.loads(json.dumps(again.tests))
    assert [t["claim"] for t in data["tests"]] == [c.id for c in N.claims_for("projection")]
    assert "\n".join(again.lines) in capsys.readouterr().out
