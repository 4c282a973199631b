"""The paper package: per-sample pooling over noise replicates, the rules, Holm across claims, the layers."""
import ast
import math
from pathlib import Path

import pytest

from empirical import stats
from empirical.paper import numbers, rules, runs
from empirical.paper.claims import CLAIMS, MODULES
from empirical.paper.rules import DIRECTIONAL, EQUIVALENCE, Evidence, Step

ROOT = Path(__file__).resolve().parent.parent


def test_per_sample_pools_noise_replicates_before_pairing():
    chunk = lambda ids, draws: {"ids": ids, "eot_ids": [], "bpda_fresh": draws}
    records = {"k|DiffPure|t*=100": [chunk([0, 1], [[True, False], [True, True]])],     # means 1.0, 0.5
               "k|DiffPure|t*=100#r1": [chunk([0, 1], [[False, False], [False, False]])],  # means 0, 0
               "k|DiffPure|t*=100#r2": [chunk([1], [[True], [True]])]}                   # sample 1 only: 1
    out = runs.per_sample(records, "k|DiffPure|t*=100", "bpda_fresh")
    assert out == {0: pytest.approx(0.5), 1: pytest.approx((0.5 + 0 + 1) / 3)}
    assert runs.base_keys(records) == ["k|DiffPure|t*=100"]
    assert runs.replicates(records, "k|DiffPure|t*=100")[1:] == ["k|DiffPure|t*=100#r1", "k|DiffPure|t*=100#r2"]


def _step(a, b, sign=+1, paper=None):
    return Step("s", stats.paired_test(a, b), sign, paper)


def test_a_chain_holds_only_if_every_step_does_and_a_reversed_step_decides():
    strong, weak = _step([1] * 12, [0] * 12), _step([1, 0] * 6, [0, 1] + [1, 0] * 5)
    both = Evidence(DIRECTIONAL, "", (strong, weak))
    assert both.deciding() is weak and rules.claim_p(both) == weak.test.p
    reversed_ = Evidence(DIRECTIONAL, "", (strong, _step([0] * 12, [1] * 12)))
    v = rules.decide(reversed_, p_adjusted=0.001)
    assert v.verdict == "contradicted" and v.discordant == (0, 12) and v.test == "exact McNemar"
    unmeasured = Evidence(DIRECTIONAL, "", (strong, Step("gone", None, +1)))
    assert rules.claim_p(unmeasured) is None and rules.decide(unmeasured, None).verdict == "inconclusive"


def test_the_adjusted_p_decides_not_the_raw_one():
    ev = Evidence(DIRECTIONAL, "", (_step([1] * 8, [0] * 8, paper=20.0),))         # exact p = 2 / 256
    assert rules.decide(ev, ev.deciding().test.p).verdict == "reproduced"
    assert rules.decide(ev, 0.2).verdict == "inconclusive"
    assert rules.decide(ev, 0.2).n_80["paper"] is None                              # no spread: nothing to size


def test_equivalence_claim_uses_tost_and_power_for_the_room_in_the_band():
    a = [1, 0, 1, 1] * 50
    step = Step("clean", stats.equivalence_test(a, a[1:] + a[:1], 5.0), 0, -0.74, 5.0)
    v = rules.decide(Evidence(EQUIVALENCE, "", (step,)), step.test.p)
    sd = step.test.se * math.sqrt(step.test.n)
    assert v.n_80["paper"] == stats.samples_for_power(5.0 - 0.74, sd)
    assert v.test.startswith("TOST")


def test_the_adjustment_gatekeeps_the_secondary_claims_behind_the_primary_ones():
    from empirical.multiplicity import gatekeeping
    from empirical.paper.claims import PRIMARY
    from empirical.paper.render import evaluate, load_runs
    recs = evaluate(load_runs(ROOT / "paper_runs"))
    tested = [r for r in recs if r["p_adjusted"] is not None]
    primary = [r for r in tested if r["claim"] in PRIMARY]
    secondary = [r for r in tested if r["claim"] not in PRIMARY]
    first, rest = gatekeeping([r["p"] for r in primary], [r["p"] for r in secondary], k=len(PRIMARY))
    assert [r["p_adjusted"] for r in primary] == pytest.approx(first)
    assert [r["p_adjusted"] for r in secondary] == pytest.approx(rest)
    assert {r["claim"] for r in primary} == set(PRIMARY)                  # the committed runs measure all three


def test_table1_decides_its_primary_claims_as_paper_checks_does():
    """Table 1's footnote and paper_checks give the primary claims the same adjusted p and verdict."""
    import json
    from types import SimpleNamespace
    from empirical.paper.render import evaluate
    from empirical.paper.table1_notes import notes
    d = json.loads((ROOT / "paper_runs" / "table1.json").read_text())
    report = {r["claim"]: r for r in evaluate({"table1": d})}
    keys = [k for k in d["records"] if "#r" not in k]
    specs = [SimpleNamespace(key=k, label=k.split("|")[0], method=k.split("|")[1], t_star_text=k.split("t*=")[1],
                             stochastic=True, purifier=SimpleNamespace(sigma=0.45)) for k in keys]
    setup = SimpleNamespace(purifiers=specs, n_samples=450, eot_ids=[0], device="cpu")
    protocol = SimpleNamespace(norm="linf", eps=0.1, steps=5, step_size=0.03, fresh_evals=2, eot=4, judge_draws=15,
                               confirm_draws=150)
    blocks = notes(d, setup, protocol, [], "compact").tests
    pairs = {("DiffPure", "bpda"): "table1.bpda_drop", ("DiffPure", "toy"): "table1.toy_prediction",
             ("Gaussian", "bpda"): "toy.bpda_drop"}
    for (who, test), claim in pairs.items():
        mine = next(b for b in blocks if b["purifier"].startswith(who))["tests"][test]
        assert mine["p_adjusted"] == pytest.approx(report[claim]["p_adjusted"])
        assert mine["verdict"] == report[claim]["verdict"]


def test_claim_ids_are_unique_and_every_run_has_an_entry_point():
    ids = [c.id for c in CLAIMS]
    assert len(ids) == len(set(ids))
    assert all(r in MODULES for c in CLAIMS for r in c.runs)


def test_paper_numbers_live_in_numbers_only():
    assert numbers.table1("bpda") == (82.38, 60.62)
    from empirical import table1
    assert table1.PAPER_ROWS is numbers.TABLE1_ROWS


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_library_and_harness_never_import_the_paper_package():
    offenders = [str(p.relative_to(ROOT)) for p in list((ROOT / "empirical").glob("*.py"))
                 + list((ROOT / "empirical" / "harness").glob("*.py"))
                 if p.stem not in ("paper_checks",) and any(m.startswith("empirical.paper") for m in _imports(p))
                 and p.stem not in ENTRY_POINTS]
    assert offenders == []


ENTRY_POINTS = {"table1", "table2", "sweep_tstar", "subsequence", "ema", "projection"}
