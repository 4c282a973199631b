import json

import pytest

import torch

from empirical import sweep_tstar, table2
from empirical.checkpoints import load_digits_classifier
from empirical.data import load_digits
from empirical.noise import SampleReplayNoise
from empirical.paper.notes import claims_for, notes
from empirical.purifiers import make_purifier
from figures import fig2
from conftest import TINY


def test_sweep_smoke_writes_json_and_png(tiny_digits, tmp_path, capsys):
    out, png = tmp_path / "s1.json", tmp_path / "fig2a.png"
    sweep_tstar.main(TINY + ["--t-stars", "1", "3", "--json", str(out), "--png", str(png)])
    data = json.loads(out.read_text())
    assert png.stat().st_size > 1000
    assert sorted({(r["method"], r["t"]) for r in data["rows"]}) == sorted(
        (m, t) for m in ("DiffPure", "RevPure", "DDIM RevPure") for t in (1, 3))
    assert all(r["eot"] is None for r in data["rows"])       # no BPDA-EOT column in Table S1
    again = notes("sweep_tstar", data)       # Table S1's claims of paper_checks, printed and stored
    assert [t["claim"] for t in data["tests"]] == [c.id for c in claims_for("sweep_tstar")]
    assert data["tests"] == json.loads(json.dumps(again.tests))
    printed = capsys.readouterr().out
    assert "\n".join(again.lines) in printed and "nan" not in printed
    assert "not measured in this run" in printed    # t* = 1, 3 only: the claims at t* >= 50 say so
    again = tmp_path / "again.png"
    fig2.main(["--from-json", str(out), "--png", str(again)])   # redrawn from the JSON: the same figure
    assert again.read_bytes() == png.read_bytes()
    assert again.with_suffix(".pdf").read_bytes() == png.with_suffix(".pdf").read_bytes()


def test_t_star_zero_is_identity(unet, scheduler, images, one_thread):
    for name in ("diffpure", "revpure", "ddim"):
        pur = make_purifier(name, unet=unet, scheduler=scheduler, t_star=0)
        assert torch.equal(pur(images, SampleReplayNoise(range(4), 0)), images)


def test_t_star_zero_row_is_the_bare_classifier(tiny_digits, tmp_path):
    """At t* = 0 every purifier is the identity, so clean accuracy is the classifier's own on those images."""
    res = sweep_tstar.main(TINY + ["--t-stars", "0", "--png", str(tmp_path / "f.png"), "--n-clean", "8"])
    data = load_digits("test")
    clf = load_digits_classifier("clean")
    with torch.no_grad():
        own = (clf(data.x[:8]).argmax(1) == data.y[:8]).float().mean().item() * 100
    assert [r["clean"]["mean"] for r in res["rows"]] == pytest.approx([own] * 3)
    assert len({r["bpda"]["mean"] for r in res["rows"]}) == 1


def test_sweep_cell_equals_table2_cell(tiny_digits, tmp_path):
    """The sweep's t* = 3 cells are exactly Table 2's cells at t* = 3 (same seed, same keys)."""
    a = sweep_tstar.main(TINY + ["--t-stars", "3", "--png", str(tmp_path / "f.png"), "--purifiers", "revpure"])
    b = table2.main(TINY + ["--purifiers", "revpure"])
    assert a["rows"][0]["bpda"] == b["rows"][0]["bpda"] and a["rows"][0]["clean"] == b["rows"][0]["clean"]
