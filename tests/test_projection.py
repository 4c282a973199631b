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
        assert m["projection_mean"] == np.mean(m["end_projection"])
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
    robust = projection.pgd_l2_bare(cnn_classifier, images, y, 2.0)
    assert sum(robust) <= sum(clean)
