import json

import torch

from empirical import subsequence, table2
from empirical.noise import SampleReplayNoise
from empirical.paper.notes import claims_for, notes
from empirical.purifiers import make_purifier
from figures import fig2
from conftest import TINY


def test_subsequence_smoke_writes_json_and_png(tiny_digits, tmp_path, capsys):
    out, png = tmp_path / "s2.json", tmp_path / "fig2b.png"
    subsequence.main(TINY + ["--t-star", "4", "--s-stars", "2", "4", "--json", str(out), "--png", str(png)])
    data = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    assert sorted({r["s"] for r in data["rows"]}) == [2, 4] and len(data["rows"]) == 6
    again = notes("subsequence", data)       # Table S2's claims of paper_checks, printed and stored
    assert [t["claim"] for t in data["tests"]] == [c.id for c in claims_for("subsequence")]
    assert data["tests"] == json.loads(json.dumps(again.tests))
    printed = capsys.readouterr().out
    assert "\n".join(again.lines) in printed and "nan" not in printed
    lowered = {t["claim"]: t for t in data["tests"]}["s2.bpda_lowered.RevPure"]
    assert lowered["n"] == 4 and lowered["decided_by"] == "s*=4 > 2"      # the full chain here is t* = 4
    fig2.main(["--from-json", str(out), "--png", str(tmp_path / "again.png")])
    assert (tmp_path / "again.png").read_bytes() == png.read_bytes()


def test_s_star_equal_t_star_is_the_full_chain(unet, scheduler, images, one_thread):
    for name in ("diffpure", "revpure", "ddim"):
        full = make_purifier(name, unet=unet, scheduler=scheduler, t_star=5)
        sub = make_purifier(name, unet=unet, scheduler=scheduler, t_star=5, s_star=5)
        noise = lambda: SampleReplayNoise(range(4), 7)
        assert torch.equal(full(images, noise()), sub(images, noise()))
        shorter = make_purifier(name, unet=unet, scheduler=scheduler, t_star=5, s_star=2)
        assert not torch.equal(full(images, noise()), shorter(images, noise()))


def test_subsequence_full_length_matches_table2(tiny_digits, tmp_path):
    a = subsequence.main(TINY + ["--t-star", "3", "--s-stars", "3", "--png", str(tmp_path / "f.png"), "--purifiers", "diffpure"])
    b = table2.main(TINY + ["--purifiers", "diffpure"])
    assert a["rows"][0]["clean"] == b["rows"][0]["clean"] and a["rows"][0]["bpda"] == b["rows"][0]["bpda"]


def test_subsequence_rejects_s_star_above_t_star(tiny_digits):
    import pytest
    with pytest.raises(SystemExit):
        subsequence.main(TINY + ["--t-star", "3", "--s-stars", "5"])
