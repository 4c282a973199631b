import json

import torch

from empirical import ema
from empirical.paper.notes import claims_for, notes
from empirical.purifiers import generate
from conftest import TINY


def test_ema_smoke(tiny_digits, tmp_path, capsys):
    out = tmp_path / "t3.json"
    ema.main(TINY + ["--n-gen", "8", "--gen-steps", "3", "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["rows"]] == ["EMA", "non-EMA"]
    for r in data["rows"]:
        assert r["fd_generated"] >= 0 and r["fd_purified"] >= 0 and r["bpda"]["n"] == 4
        assert sum(r["generated_class_counts"]) == 8
    assert "not Inception" in data["feature_space"]
    again = notes("ema", data)       # Table 3's claims of paper_checks, printed and stored
    assert [t["claim"] for t in data["tests"]] == [c.id for c in claims_for("ema")]
    assert data["tests"] == json.loads(json.dumps(again.tests))
    printed = capsys.readouterr().out
    assert "\n".join(again.lines) in printed and "nan" not in printed
    # the two models really differ (the tiny stand-ins have different random weights)
    assert data["rows"][0]["fd_generated"] != data["rows"][1]["fd_generated"]


def test_generate_is_seeded_and_in_range(unet, scheduler, one_thread):
    a = generate(unet, scheduler.alphas_cumprod, 3, 4, torch.Generator().manual_seed(5))
    b = generate(unet, scheduler.alphas_cumprod, 3, 4, torch.Generator().manual_seed(5))
    c = generate(unet, scheduler.alphas_cumprod, 3, 4, torch.Generator().manual_seed(6))
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_purified_fd_is_zero_at_t_star_zero(tiny_digits):
    """RevPure with t* = 0 returns the test images themselves: their FD to the test set is the subset's."""
    res = ema.main(TINY + ["--t-star", "0", "--n-gen", "4", "--gen-steps", "1", "--n-clean", "450", "--n-samples", "2"])
    assert abs(res["rows"][0]["fd_purified"]) < 1e-6
