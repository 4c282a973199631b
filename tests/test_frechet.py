import numpy as np
import pytest
import torch
from scipy import linalg

from empirical import frechet


def _direct(a, b):
    """The Fréchet distance between Gaussian fits, computed independently with scipy."""
    m1, m2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real))


def test_set_with_itself_is_zero():
    f = np.random.default_rng(0).normal(size=(200, 5))
    assert frechet.frechet_between(f, f) == pytest.approx(0.0, abs=1e-6)


def test_matches_direct_scipy_on_small_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 4))
    b = rng.normal(size=(300, 4)) @ np.diag([1.0, 2.0, 0.5, 1.5]) + np.array([1.0, 0.0, -2.0, 0.3])
    assert frechet.frechet_between(a, b) == pytest.approx(_direct(a, b), rel=1e-9)


def test_closed_form_for_known_gaussians():
    """W2^2 between N(m1, s1^2 I) and N(m2, s2^2 I) in d dims is |m1 - m2|^2 + d (s1 - s2)^2."""
    d = 3
    value = frechet.frechet_distance(np.zeros(d), 4 * np.eye(d), np.ones(d), np.eye(d))
    assert value == pytest.approx(d * 1.0 + d * (2 - 1) ** 2)


def test_bad_input():
    with pytest.raises(ValueError):
        frechet.feature_stats(np.ones((1, 3)))
    with pytest.raises(ValueError):
        frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError):
        frechet.feature_stats(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_classifier_features_are_the_last_linear_input(cnn_classifier, images):
    feats = frechet.classifier_features(cnn_classifier, images, batch_size=3)
    with torch.no_grad():
        direct = cnn_classifier[:-1](images).double().numpy()
    assert feats.shape == (4, 256) and np.allclose(feats, direct)


def test_inception_missing_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Inception"):
        frechet.load_inception(None)
    with pytest.raises(FileNotFoundError, match="not found"):
        frechet.load_inception(tmp_path / "nope.pt")
    bad = tmp_path / "state.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="TorchScript"):
        frechet.load_inception(bad)


class _FakeDetector(torch.nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def test_inception_path_with_a_scripted_detector(tmp_path, images):
    path = tmp_path / "fake.pt"
    torch.jit.save(torch.jit.script(_FakeDetector()), str(path))
    det = frechet.load_inception(path)
    feats = frechet.inception_features(det, images)
    expect = (images * 255).round().mean(dim=(2, 3)).repeat(1, 3).double().numpy()
    assert feats.shape == (4, 3) and np.allclose(feats, expect)


def test_cli_reference(tmp_path):
    from empirical import fd_floor
    out = fd_floor.main(["--n", "60", "--json", str(tmp_path / "f.json")])
    assert out["train_vs_test"] > 0 and (tmp_path / "f.json").exists()
