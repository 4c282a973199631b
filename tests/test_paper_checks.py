"""paper_checks: three-valued statuses from paired per-sample records, both JSON layouts, the generated block."""
import json
import math

import numpy as np
import pytest

from empirical import paper_checks as pc
from empirical import stats
from empirical.harness import verdicts as v

PROTOCOL = {"eps": 32 / 255, "steps": 4, "step_size": 8 / 255, "eot": 4, "fresh_evals": 3, "noise_keys": "sample"}


def _bools(n_true: int, n: int) -> list[bool]:
    return [i < n_true for i in range(n)]


def _run(records: dict, layout: str, n: int, t_star=None, extra=None, respacing="respaced", sweep=False) -> dict:
    """A run JSON around `records` in the older layout (config.protocol / config.setup / config.t_star) or the
    typed one (config.sizes / run / purifier / extra, top-level protocol and resolved; sweeps keep their
    resolved setups per prefix and no top-level protocol)."""
    setup = {"n_samples": n, "n_clean": n, "eot_ids": list(range(n))}
    if layout == "old":
        config = {"dataset": "digits", "protocol": PROTOCOL, "setup": setup, **(extra or {})}
        if t_star is not None:
            config["t_star"] = t_star
        return {"config": config, "records": records, "rows": [], "elapsed_s": 1.0}
    sizes = {"n_samples": n, "n_clean": n, "eot_samples": n, "steps": None, "eps": None, "full": False}
    config = {"table": "x", "data": {"dataset": "digits"}, "sizes": sizes, "extra": extra or {},
              "run": {"fresh_evals": PROTOCOL["fresh_evals"], "noise_keys": "sample", "seed": 0},
              "purifier": {"t_star": t_star, "respacing": respacing}}
    out = {"config": config, "records": records, "rows": [], "elapsed_s": 1.0}
    budget = {k: PROTOCOL[k] for k in ("eps", "steps", "step_size", "eot")}
    if sweep:
        out["resolved"] = {key.split(":")[0] + ":": {**setup, "budget": budget} for key in records}
    else:
        out["resolved"], out["protocol"] = {**setup, "budget": budget}, PROTOCOL
    return out


def _table1(fresh: list[bool], fixed: list[bool], layout: str = "old") -> dict:
    """One purifier whose BPDA no-fix / fixed outcomes are given per sample (R = 3 identical fresh draws)."""
    n = len(fresh)
    chunk = {"ids": list(range(n)), "eot_ids": [], "bpda_fresh": [fresh] * 3, "bpda_replay": [fixed],
             "clean_fresh": [[True] * n] * 3, "clean_replay": [[True] * n]}
    return _run({"digits DDPM|DiffPure|t*=100": [chunk]}, layout, n)


def _status(rows, claim_part: str) -> str:
    hits = [r.status for r in rows if claim_part in r.claim]
    assert len(hits) == 1, [r.claim for r in rows]
    return hits[0]


def test_wrong_sign_within_the_noise_is_inconclusive_never_a_failure():
    n = 20
    fresh = [True] + [False] * (n - 1)                      # sample 0 is robust only without fixed noise
    fixed = [False, True, True] + [False] * (n - 3)         # samples 1, 2 only with it: a drop of -5 points
    diff = stats.paired_difference(fresh, fixed)
    assert diff.mean < 0 and abs(diff.mean) < 2 * diff.se
    rows = pc.table1_rows(_table1(fresh, fixed), "cmd", {})
    status = _status(rows, "lowers BPDA accuracy")
    assert status.startswith(stats.INCONCLUSIVE)
    expected = stats.samples_to_resolve(82.38 - 60.62, diff.sd)
    assert f"{expected} samples" in status and "+21.8" in status      # sized by the paper's own drop
    assert not any(w in r.status for r in rows for w in ("not reproduced", "partly"))


def test_wrong_sign_at_two_paired_se_is_contradicted_with_its_cause():
    n = 20
    fresh, fixed = [False] * n, _bools(8, n)                      # fixing the noise RAISES accuracy by 40 points
    diff = stats.paired_difference(fresh, fixed)
    assert diff.mean <= -2 * diff.se
    status = _status(pc.table1_rows(_table1(fresh, fixed), "cmd", {}), "lowers BPDA accuracy")
    assert status.startswith(stats.CONTRADICTED)
    assert "cause:" in status and "digits" in status and "estimand" in status and "R=3" in status


def test_drops_use_the_paired_se_not_the_unpaired_one():
    n = 64
    fixed = _bools(32, n)
    fresh = _bools(40, n)                                          # the same 32 plus 8 more: every change is up
    a, b = np.array(fresh, float), np.array(fixed, float)
    unpaired = 100 * math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    assert 100 * (a.mean() - b.mean()) < 2 * unpaired              # unpaired, the 12.5-point drop is within 2 SE
    status = _status(pc.table1_rows(_table1(fresh, fixed), "cmd", {}), "lowers BPDA accuracy")
    assert status == stats.REPRODUCED


def test_pairing_is_by_sample_id_across_chunks_and_eot_subsets():
    chunks = [{"ids": [0, 1], "eot_ids": [1], "bpda_replay": [[True, False]], "eot_replay": [[True]]},
              {"ids": [2, 3], "eot_ids": [], "bpda_replay": [[False, True]]}]
    assert v.per_sample(chunks, "bpda_replay") == {0: 1.0, 1: 0.0, 2: 0.0, 3: 1.0}
    assert v.per_sample(chunks, "eot_replay") == {1: 1.0}
    d = v.pair(v.per_sample(chunks, "eot_replay"), v.per_sample(chunks, "bpda_replay"))
    assert d.n == 1 and d.mean == 100.0                            # only sample 1 was measured by both
    with pytest.raises(ValueError, match="ids"):
        v.per_sample([{"ids": [0, 1, 2], "eot_ids": [], "bpda_replay": [[True]]}], "bpda_replay")


@pytest.mark.parametrize("layout", ["old", "typed"])
def test_accessors_read_both_layouts(layout):
    d = _table1(_bools(5, 10), _bools(2, 10), layout)
    assert v.protocol_of(d)["steps"] == 4 and v.protocol_of(d)["fresh_evals"] == 3
    assert v.setup_of(d) == {"n_samples": 10, "n_clean": 10, "eot_ids": list(range(10))}
    assert v.dataset_of(d) == "digits" and v.respacing_of(d) == "respaced" and v.is_typed(d) == (layout == "typed")
    sub = _subsequence(layout, small_bpda=0, respacing="respaced")
    assert v.t_star_of(sub) == 150 and v.option_of(sub, "s_stars") == [5, 150]
    assert v.protocol_of(sub)["steps"] == 4                        # typed sweeps: the resolved budget


def test_both_layouts_give_the_same_rows():
    old, new = (pc.table1_rows(_table1(_bools(30, 40), _bools(10, 40), lay), "cmd", {}) for lay in ("old", "typed"))
    assert [(r.measured, r.status) for r in old] == [(r.measured, r.status) for r in new]
    old, new = (pc.subsequence_rows(_subsequence(lay, 0, "respaced"), "cmd", {}) for lay in ("old", "typed"))
    assert [r.status for r in old] == [r.status for r in new]


def _subsequence(layout: str, small_bpda: int, respacing: str, n: int = 24) -> dict:
    """Three purifiers at s* = 5 and 150; BPDA robust on 10 samples at s* = 150 and on `small_bpda` at s* = 5."""
    records = {}
    for s, k in ((5, small_bpda), (150, 10)):
        for m in pc.ORDER:
            chunk = {"ids": list(range(n)), "eot_ids": [], "bpda_replay": [_bools(k, n)],
                     "clean_replay": [_bools(n - 1, n)]}
            records[f"s{s}:digits DDPM|{m}|t*=150 (s*={s})"] = [chunk]
    extra = {"s_stars": [5, 150]}
    return _run(records, layout, n, t_star=150, extra=extra, respacing=respacing, sweep=True)


def test_subsequence_contradiction_names_the_respacing_when_the_other_run_reproduces():
    respaced = _subsequence("old", small_bpda=24, respacing="respaced")        # BPDA higher at s*=5: reversed
    one_step = _subsequence("typed", small_bpda=0, respacing="one_step")       # collapses as in the paper
    runs = {"subsequence": respaced, "subsequence_one_step": one_step}
    rows = pc.subsequence_rows(respaced, "cmd", runs)
    status = _status(rows, "lowers DiffPure's BPDA")
    assert status.startswith(stats.CONTRADICTED) and "respacing one_step" in status and "reproduced" in status
    assert _status(pc.subsequence_rows(one_step, "cmd", runs), "lowers DiffPure's BPDA") == stats.REPRODUCED
    note = pc.respacing_note(runs)
    assert "respacing one_step (subsequence_one_step.json): reproduced" in note
    assert "respacing respaced (subsequence.json): contradicted" in note
    collapse = _status(rows, "drops at every s* <= 20")
    assert collapse.startswith(stats.CONTRADICTED) and "with respacing one_step" in collapse
    alone = _status(pc.subsequence_rows(respaced, "cmd", {"subsequence": respaced}), "lowers DiffPure's BPDA")
    assert "untested" in alone and "--respacing one_step" in alone


def _table2(bpda: dict, n: int = 64) -> dict:
    recs = {f"digits DDPM|{m}|t*=150": [{"ids": list(range(n)), "eot_ids": [0, 1], "bpda_replay": [_bools(k, n)],
                                         "clean_replay": [_bools(n - 2, n)], "eot_replay": [_bools(k, n)[:2]]}]
            for m, k in bpda.items()}
    return _run(recs, "typed", n)


def test_table2_order_is_three_valued_and_sized_by_the_paper():
    # nested sets: RevPure's robust samples include DiffPure's, which include DDIM's (every change one way)
    good = pc.table2_rows(_table2({"RevPure": 50, "DiffPure": 40, "DDIM RevPure": 10}), "cmd", {})
    assert _status(good, "BPDA accuracy RevPure > DiffPure > DDIM") == stats.REPRODUCED
    assert _status(good, "BPDA-EOT = BPDA") == stats.REPRODUCED
    close = pc.table2_rows(_table2({"RevPure": 41, "DiffPure": 40, "DDIM RevPure": 10}), "cmd", {})
    status = _status(close, "BPDA accuracy RevPure > DiffPure > DDIM")
    sd = stats.paired_difference(_bools(41, 64), _bools(40, 64)).sd
    assert status.startswith(stats.INCONCLUSIVE) and "RevPure > DiffPure" in status
    assert f"{stats.samples_to_resolve(74.20 - 68.00, sd)} samples" in status
    bad = pc.table2_rows(_table2({"RevPure": 20, "DiffPure": 40, "DDIM RevPure": 10}), "cmd", {})
    assert _status(bad, "BPDA accuracy RevPure > DiffPure > DDIM").startswith(stats.CONTRADICTED)


def test_a_chain_with_an_unmeasured_step_is_not_reproduced():
    up = stats.paired_difference([1] * 10, [0] * 5 + [1] * 5)
    assert v.order_status([v.Step("a > b", up, +1, 5.0)]) == stats.REPRODUCED
    status = v.order_status([v.Step("a > b", up, +1, 5.0), v.Step("b > c", None, +1, 5.0)])
    assert status.startswith(stats.INCONCLUSIVE) and "b > c" in status


def test_correspondence_per_pair_of_models():
    proj = {"a": [0.1] * 8 + [0.2] * 8, "b": [0.5] * 16}               # b keeps far more of the adversarial direction
    inverse = {"a": [True] * 16, "b": [False] * 16}                    # ... and is far less robust: as claimed
    same = {"a": [False] * 16, "b": [True] * 16}
    paper = {"a": 70.0, "b": 40.0}
    assert v.correspondence(proj, inverse, -1, paper)[1] == stats.REPRODUCED
    assert v.correspondence(proj, same, -1, paper)[1].startswith(stats.CONTRADICTED)
    tied = {"a": [0.3, 0.5] * 8, "b": [0.5, 0.3] * 8}
    assert v.correspondence(tied, inverse, -1, paper)[1].startswith(stats.INCONCLUSIVE)


@pytest.mark.parametrize("mean, se, expected", [
    (0.5, 0.1, stats.REPRODUCED), (1.2, 0.05, stats.CONTRADICTED), (0.95, 0.1, stats.INCONCLUSIVE),
    (0.5, float("nan"), stats.INCONCLUSIVE)])
def test_band_rule(mean, se, expected):
    assert v.band_status(mean, se, 0.0, 0.99) == expected


def test_deterministic_rules_use_the_three_words():
    assert v.gap_status(70.0, 108.0, 0.1) == stats.REPRODUCED
    assert v.gap_status(108.0, 70.0, 0.1) == stats.CONTRADICTED
    assert v.gap_status(100.0, 105.0, 0.1).startswith(stats.INCONCLUSIVE)
    assert v.correlation_status(0.05, 0.3, 0.1) == stats.REPRODUCED
    assert v.correlation_status(0.05, 0.01, 0.1) == stats.CONTRADICTED
    assert v.correlation_status(0.05, 0.1, 0.1).startswith(stats.INCONCLUSIVE)
    assert v.components_status(169, 15) == stats.REPRODUCED
    assert v.components_status(169, 169) == stats.CONTRADICTED
    assert v.components_status(169, 100).startswith(stats.INCONCLUSIVE)


def test_null_claim_margin():
    tight = stats.Difference(mean=-1.0, se=1.0, n=100, sd=10.0)
    wide = stats.Difference(mean=-1.0, se=4.0, n=100, sd=40.0)
    moved = stats.Difference(mean=-9.0, se=2.0, n=100, sd=20.0)
    assert v.null_status("clean", tight, -0.74, 5.0) == stats.REPRODUCED
    status = v.null_status("clean", wide, -0.74, 5.0)
    assert status.startswith(stats.INCONCLUSIVE) and f"{stats.samples_to_resolve(5.0 - 0.74, 40.0)} samples" in status
    assert v.null_status("clean", moved, -0.74, 5.0, "setup").startswith(stats.CONTRADICTED)


def test_block_keeps_the_hand_written_section_and_is_idempotent(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "table2.json").write_text(json.dumps(_table2({"RevPure": 50, "DiffPure": 40, "DDIM RevPure": 10})))
    md = tmp_path / "paper_checks.md"
    toy = ("# Paper checks\n\n| claim | command | measured here | status |\n|---|---|---|---|\n"
           "| Theorem 1 | x | y | holds |\n")
    md.write_text(toy)
    pc.main(["--runs", str(runs), "--output", str(md)])
    first = md.read_text()
    assert first.startswith(toy) and pc.BEGIN in first and first.rstrip().endswith(pc.END)
    # clean accuracy is the same for every purifier here: that order is inconclusive, the other two reproduced
    assert "Verdicts: 2 reproduced, 0 contradicted, 1 inconclusive." in first
    assert "ema: no run found" in first and "table2_large: no run found" not in first
    md.write_text(first + "\ntrailing notes\n")
    pc.main(["--runs", str(runs), "--output", str(md)])
    second = md.read_text()
    assert second == first + "\ntrailing notes\n"


def test_unexpected_json_is_reported_not_raised(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "ema.json").write_text(json.dumps({"rows": []}))
    assert "ema: output not understood" in pc.build_block(runs)


def test_larger_run_names_its_sizes(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "table1_large.json").write_text(json.dumps(_table1(_bools(30, 40), _bools(10, 40), "typed")))
    block = pc.build_block(runs)
    assert "Table 1 (larger run): fixing the noise lowers BPDA" in block
    assert "--n-samples 40 --n-clean 40 --eot-samples 40 --steps 4 --json paper_runs/table1_large.json" in block


def test_clamp_rows_pair_the_variant_with_the_default_run():
    from empirical.harness.variant_rows import clamp_rows
    same = _table2({"DiffPure": 40, "RevPure": 50, "DDIM RevPure": 30})
    moved = _table2({"DiffPure": 40, "RevPure": 50, "DDIM RevPure": 62})
    rows = clamp_rows(moved, "cmd", {"table2": same})
    bpda = next(r for r in rows if "BPDA" in r.claim)
    assert "DDIM RevPure +50.0" in bpda.measured and bpda.verdict == "contradicted"
    assert clamp_rows(same, "cmd", {"table2": same})[1].verdict == "reproduced"
    assert clamp_rows(same, "cmd", {}) == []


def test_radius_rows_judge_the_smallest_radius_and_state_the_scope():
    from empirical.harness.variant_rows import radius_rows
    sweep = {"DiffPure": {"spread": 0.2, "rows": [
        {"radius": 0.02, "radius_over_spread": 0.1, "mean": 0.995, "min": 0.99},
        {"radius": 0.2, "radius_over_spread": 1.0, "mean": 0.9, "min": 0.8}]}}
    row, = radius_rows({"radius_sweep": sweep}, "cmd", {})
    assert row.verdict == "reproduced" and "up to r = 0.10 x the spread" in row.measured
    sweep["DiffPure"]["rows"][0]["mean"] = 0.95
    assert radius_rows({"radius_sweep": sweep}, "cmd", {})[0].verdict == "contradicted"


def test_estimand_rows_pair_the_any_iterate_cell_with_replay():
    from empirical.harness.variant_rows import estimand_rows
    n = 40
    chunk = {"ids": list(range(n)), "eot_ids": [], "bpda_fresh": [_bools(30, n), _bools(30, n)],
             "bpda_fresh_any": _bools(20, n), "bpda_replay": [_bools(5, n)]}
    row, = estimand_rows({"records": {"digits DDPM|DiffPure|t*=100": [chunk]}}, "cmd", {})
    assert row.verdict == "reproduced" and "any-iterate 50.0" in row.measured and "single-draw 75.0" in row.measured
    assert estimand_rows({"records": {"x": [{"ids": [0], "bpda_replay": [[True]]}]}}, "cmd", {}) == []


def test_projection_clamp_rows_pair_samples_in_order():
    from empirical.harness.variant_rows import projection_clamp_rows
    on = {"measured": {"DDIM RevPure": {"correct": [True] * 20 + [False] * 20}}}
    off = {"measured": {"DDIM RevPure": {"correct": [False] * 40}}}
    row, = projection_clamp_rows(off, "cmd", {"projection": on})
    assert "DDIM RevPure -50.0" in row.measured and row.verdict == "contradicted"
    assert projection_clamp_rows(off, "cmd", {}) == []
