import json

import numpy as np
import torch

from empirical import projection
from empirical.purifiers import make_purifier
from empirical.trajectories import adversarial_curves
from conftest import TINY


def test_projection_smoke(tiny_digits, tmp_path):
    out = tmp_path / "s3.json"
    projection.main(TINY + ["--keep-every", "1", "--json", str(out)])
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["DiffPure", "RevPure", "DDIM RevPure"]
    for method, m in data["measured"].items():
        assert len(m["end_projection"]) == 4 and len(m["pgd_l2"]) == 4
        # the end projection <P(x_adv) - x0, unit(x_adv - x0)> and the inner-product curve's last point
        # <x_T - x0, x_adv - x0> come from separate code; they agree once scaled by ||x_adv - x0||, and
        # Cauchy-Schwarz bounds the projection by ||x_T - x0||
        end, norm = np.array(m["end_projection"]), np.array(m["adv_norm"])
        assert np.allclose(end * norm, m["inner_end_per_sample"], rtol=1e-9, atol=1e-12)
        assert np.all(np.abs(end) <= np.array(m["l2_end_per_sample"]) + 1e-12)
        assert 0 < m["eps_l2"] < max(norm)             # the bare PGD-l2 radius: part of the perturbation survives
        # curves start at the adversarial example itself: cos = 1, inner = ||a||^2, l2 = ||a||
        assert m["cosine_mean"][0] == np.float64(1.0) or abs(m["cosine_mean"][0] - 1) < 1e-9
        assert abs(m["l2_mean"][0] - np.mean(m["adv_norm"])) < 1e-9
        n_pos = 2 * 3 + 1 if method == "DiffPure" else 3 + 1
        assert m["position"] == list(range(n_pos))


def test_identity_purifier_keeps_the_whole_projection(images):
    """With t* = 0 the purified output is x_adv, so the projection equals ||x_adv - x0||."""
    x_adv = (images + 0.05).clamp(0, 1)
    pur = make_purifier("none")
    c = adversarial_curves(pur, images, x_adv, None)
    assert np.allclose(c.end_projection, c.adv_norm)


def test_pgd_l2_bare_zero_eps_is_clean_accuracy(cnn_classifier, images):
    y = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        clean = (cnn_classifier(images).argmax(1) == y).tolist()
    assert projection.pgd_l2_bare(cnn_classifier, images, y, 0.0) == clean


def test_pgd_l2_bare_on_a_linear_classifier_flips_exactly_the_samples_within_eps():
    """Two classes split by the plane mean pixel = 1/2 of a 4x4 image: a sample's l2 distance to it is
    4 |mean - 1/2| (the unit normal has entries 1/4), so PGD-l2 at radius eps flips exactly the samples
    closer than eps; each pixel moves by at most eps / 4, never reaching the [0, 1] box's walls."""
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    with torch.no_grad():
        classifier[1].weight.copy_(torch.stack([torch.full((16,), 0.25), torch.full((16,), -0.25)]))
        classifier[1].bias.copy_(torch.tensor([-2.0, 2.0]))            # logit gap 8 (mean - 1/2)
    offsets = torch.tensor([0.01, -0.02, 0.05, -0.08])   # distances 0.04, 0.08, 0.2, 0.32
    x = (0.5 + offsets).view(4, 1, 1, 1).expand(4, 1, 4, 4).clone()
    y = (offsets < 0).long()
    assert projection.pgd_l2_bare(classifier, x, y, 0.0) == [True] * 4
    assert projection.pgd_l2_bare(classifier, x, y, 0.15) == [False, False, True, True]
    assert projection.pgd_l2_bare(classifier, x, y, 0.25) == [False, False, False, True]
