"""Digits training pieces: exact PGD on a linear model, seeded replay of training, a tiny end-to-end run."""
import json

import pytest
import torch
from torch import nn

from empirical import train_digits as td


def _linear_case(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(256, generator=g) * 0.05
    x = 0.5 + (torch.rand(n, 1, 16, 16, generator=g) - 0.5) * 0.2     # box [0, 1] never binds for eps < 0.3
    b = -0.5 * w.sum()                                                 # z = w . (x - 0.5): both classes
    z = x.flatten(1) @ w + b
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([w, -w]))
        model[1].bias.copy_(torch.stack([b, -b]))
    y = (z < 0).long()                                                # clean-correct labels
    return model, x, y, z, w


@pytest.mark.parametrize("eps", [0.001, 0.003, 0.005])
def test_pgd_matches_closed_form_on_linear_model(eps):
    model, x, y, z, w = _linear_case()
    expected = (z.abs() > eps * w.abs().sum()).float().mean().item()   # l_inf flip needs eps * ||w||_1 > |z|
    acc = td.pgd_linf_accuracy(model, x, y, eps, steps=20, generator=torch.Generator().manual_seed(1))
    assert acc == pytest.approx(expected, abs=1e-9)
    assert 0.1 < expected < 0.9


def test_noisy_accuracy_is_seeded_and_zero_sigma_is_plain_accuracy():
    model, x, y, _, _ = _linear_case()
    assert td.noisy_accuracy(model, x, y, 0.0, 5, 0)[0] == 1.0
    a = td.noisy_accuracy(model, x, y, 0.5, 4, 3)
    assert a == td.noisy_accuracy(model, x, y, 0.5, 4, 3) and a[0] < 1.0


def test_classifier_training_replays_from_seed():
    m1, m2 = td.train_classifier(0.2, epochs=1, seed=4), td.train_classifier(0.2, epochs=1, seed=4)
    m3 = td.train_classifier(0.2, epochs=1, seed=5)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_ddpm_training_replays_and_resumes(tmp_path):
    a = td.train_ddpm(4, 8, 1e-3, 0.999, seed=2, ckpt_dir=tmp_path / "a", ckpt_every=2)
    b = td.train_ddpm(4, 8, 1e-3, 0.999, seed=2, ckpt_dir=tmp_path / "b", ckpt_every=2)
    for key in ("model", "ema"):
        sa, sb = a[key].state_dict(), b[key].state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(a["model"].state_dict()[k], a["ema"].state_dict()[k]) for k in sa)
    assert len(a["losses"]) == 1 and a["losses"][0][0] == 4
    # resuming a finished checkpoint does no more steps and returns the same weights
    c = td.train_ddpm(4, 8, 1e-3, 0.999, seed=2, ckpt_dir=tmp_path / "a", ckpt_every=2)
    assert all(torch.equal(c["model"].state_dict()[k], a["model"].state_dict()[k]) for k in sa)
    with pytest.raises(ValueError, match="no-resume"):
        td.train_ddpm(5, 8, 1e-3, 0.999, seed=2, ckpt_dir=tmp_path / "a")


@pytest.mark.slow
def test_cli_end_to_end_tiny(tmp_path):
    out = tmp_path / "w"
    manifest = td.main(["--out", str(out), "--steps", "20", "--batch-size", "8", "--n-samples", "4",
                        "--ckpt-dir", str(tmp_path / "ck"), "--clf-epochs", "8", "--sigmas", "0.02,0.05",
                        "--pgd-steps", "5", "--json", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text()) == manifest
    for name in ("digits_unet_ema.safetensors", "digits_cnn_noisy.safetensors", "samples.png", "eps_curve.png"):
        assert (out / name).exists() and name in manifest["files"]
    assert "purify_seconds" in manifest["ddpm_eval"]["EMA"]
    assert manifest["ddpm"]["steps"] == 20 and manifest["classifiers"]["toy_sigma"] in (0.02, 0.05)
    from empirical.checkpoints import load_digits_ddpm
    unet, _ = load_digits_ddpm(weights_dir=out)
    assert unet(torch.zeros(1, 1, 16, 16), 3).sample.shape == (1, 1, 16, 16)
