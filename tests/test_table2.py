import json

import pytest
import torch
from diffusers import DDPMScheduler

from conftest import tiny_unet
from empirical import checkpoints, table2

_REAL_MANIFEST = checkpoints.digits_manifest


@pytest.fixture
def tiny_digits(monkeypatch):
    """The digits pipeline with a tiny random 16x16 UNet in place of the committed DDPM (fast, weight-free)."""
    def manifest(weights_dir=None):
        m = dict(_REAL_MANIFEST(weights_dir))
        for key in ("default_eps", "toy_sigma"):
            m.setdefault(key, m["classifiers"][key])
        return m

    def ddpm(ema=True, weights_dir=None):
        return tiny_unet(seed=0 if ema else 1, size=16), DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")

    monkeypatch.setattr(checkpoints, "digits_manifest", manifest)
    monkeypatch.setattr(checkpoints, "load_digits_ddpm", ddpm)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


TINY = ["--n-samples", "4", "--n-clean", "6", "--steps", "1", "--eot-samples", "2", "--t-star", "3",
        "--batch-size", "4", "--quiet"]


def test_table2_smoke(tiny_digits, tmp_path):
    out = tmp_path / "t2.json"
    res = table2.main(TINY + ["--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["DiffPure", "RevPure", "DDIM RevPure"]
    for r in data["rows"]:
        assert r["clean"]["n"] == 6 and r["bpda"]["n"] == 4 and r["eot"]["n"] == 2
        assert r["bpda"]["mean"] <= r["clean"]["mean"] + 100 * 2 / 6   # best iterate starts at x itself
    assert data["config"]["protocol"]["fresh_cells"] is False
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
    b = table2.main(TINY + ["--purifiers", "ddim", "--results", str(store), "--resume"])
    assert a["rows"] == b["rows"]


def test_table2_rejects_bad_options(tiny_digits):
    with pytest.raises(SystemExit):
        table2.main(["--t-star", "-3"])
    with pytest.raises(SystemExit):
        table2.main(TINY + ["--purifiers", "bogus"])
