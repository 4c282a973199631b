import json

from empirical import paper_checks as pc


def _acc(mean, se=1.0):
    return {"mean": mean, "se": se, "n": 100, "draws": 1, "spread": None}


def _table2(bpda):
    methods = ["DiffPure", "RevPure", "DDIM RevPure"]
    return {"rows": [{"method": m, "clean": _acc(90), "bpda": _acc(b), "eot": _acc(b + 0.5)}
                     for m, b in zip(methods, bpda)], "elapsed_s": 1.0}


def test_compare_and_order_rules():
    assert pc.compare((10, 1), (5, 1)) == "yes" and pc.compare((5, 1), (10, 1)) == "no"
    assert pc.compare((6, 1), (5, 1)) == "+" and pc.compare((5, 1), (6, 1)) == "-"
    assert pc.order_status(["yes", "yes"]) == pc.R
    assert pc.order_status(["yes", "+"]).startswith(pc.P)
    assert pc.order_status(["yes", "no"]).startswith(pc.N)
    assert pc.order_status(["yes", "-"]).startswith(pc.N)


def test_table2_ordering_status_follows_the_numbers():
    good = pc.table2_rows(_table2([68, 74, 44]))[0]
    bad = pc.table2_rows(_table2([74, 60, 44]))[0]
    assert good.endswith(f"| {pc.R} |") and "not reproduced" in bad
    assert pc.table2_rows(_table2([68, 74, 44]))[2].endswith(f"| {pc.R} |")   # EOT within 2 SE of BPDA


def test_table1_rows_read_the_lead_format():
    rows = [{"purifier": "digits DDPM", "method": "DiffPure", "fix": "no", "clean": _acc(95), "bpda": _acc(80),
             "eot": _acc(78)},
            {"purifier": "digits DDPM", "method": "DiffPure", "fix": "yes", "clean": _acc(95.5), "bpda": _acc(50),
             "eot": None}]
    out = pc.table1_rows({"rows": rows, "predictions": {}})
    assert len(out) == 2 and out[0].endswith(f"| {pc.R} |") and out[1].endswith(f"| {pc.R} |")


def test_sweep_rules():
    rows = []
    for m, peak in (("DiffPure", 60), ("RevPure", 70), ("DDIM RevPure", 40)):
        for t, c, b in ((1, 95, 0), (50, 90, peak / 2), (100, 85, peak), (150, 80, peak + 2), (200, 70, peak - 5)):
            rows.append({"method": m, "t": t, "clean": _acc(c), "bpda": _acc(b)})
    out = pc.sweep_rows({"rows": rows})
    assert out[0].endswith(f"| {pc.R} |") and out[1].endswith(f"| {pc.R} |")


def test_splice_keeps_the_toy_rows_and_is_idempotent(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "table2.json").write_text(json.dumps(_table2([68, 74, 44])))
    md = tmp_path / "paper_checks.md"
    toy = "# Paper checks\n\n| claim | command | measured here | status |\n|---|---|---|---|\n| Theorem 1 | x | y | holds |\n"
    md.write_text(toy)
    pc.main(["--runs", str(runs), "--output", str(md)])
    first = md.read_text()
    assert first.startswith(toy) and pc.BEGIN in first and first.rstrip().endswith(pc.END)
    assert "Table 2: bpda accuracy RevPure > DiffPure > DDIM" in first
    assert "not checkable here" in first                      # missing runs and offline-only claims say so
    md.write_text(first + "\ntrailing notes\n")
    pc.main(["--runs", str(runs), "--output", str(md)])
    second = md.read_text()
    assert second.startswith(toy) and second.count(pc.BEGIN) == 1 and second.endswith("trailing notes\n")


def test_unexpected_json_is_reported_not_raised(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "ema.json").write_text(json.dumps({"rows": []}))
    block = pc.build_block(runs)
    assert "ema: output not understood" in block


def test_optional_larger_table2_run(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    big = _table2([68, 74, 44])
    big["config"] = {"setup": {"n_samples": 128, "n_clean": 128}, "protocol": {"steps": 8}}
    (runs / "table2_large.json").write_text(json.dumps(big))
    block = pc.build_block(runs)
    assert "Table 2 (larger run): bpda" in block and "--n-samples 128" in block
    assert "table1: no run found" not in block and "table2_large: no run found" not in block


def test_concordance_skips_ties():
    assert pc.concordance({"a": 1, "b": 2, "c": 3}, {"a": 30, "b": 20, "c": 20}, sign=-1) == pc.R
    assert pc.concordance({"a": 1, "b": 2}, {"a": 1, "b": 2}, sign=-1) == pc.N
    assert pc.concordance({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 3, "c": 2}).startswith(pc.P)
