"""Table S3 / Fig. 3 curves aggregated over chunks: means and SEs against scipy, one image without an SE."""
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from empirical.harness.curves import CURVES, aggregate
from empirical.results import atomic_write_json


def _chunk(rng: np.random.Generator, n: int, steps: int = 3) -> dict:
    return {"position": list(range(steps)), "correct": rng.integers(0, 2, n).astype(bool).tolist(),
            "end_projection": rng.normal(size=n).tolist(), "adv_norm": rng.random(n).tolist(),
            **{k: rng.normal(size=(steps, n)).tolist() for k in CURVES}}


def test_mean_and_se_over_images_pool_the_chunks():
    rng = np.random.default_rng(0)
    chunks = [_chunk(rng, 3), {}, _chunk(rng, 2)]          # an unattacked chunk measures nothing
    out = aggregate(chunks)
    assert out["correct"] == chunks[0]["correct"] + chunks[2]["correct"]
    for key in CURVES:
        full = np.hstack([np.array(chunks[0][key]), np.array(chunks[2][key])])        # [steps, 5 images]
        assert np.allclose(out[f"{key}_mean"], full.mean(axis=1))
        assert np.allclose(out[f"{key}_se"], sps.sem(full, axis=1))
        assert out[f"{key}_start_per_sample"] == full[0].tolist() and out[f"{key}_end_per_sample"] == full[-1].tolist()


def test_one_image_has_no_se_and_json_says_null(tmp_path):
    out = aggregate([_chunk(np.random.default_rng(1), 1)])
    for key in CURVES:
        assert all(math.isnan(se) for se in out[f"{key}_se"])
    atomic_write_json(str(tmp_path / "c.json"), out)
    stored = json.loads((tmp_path / "c.json").read_text())
    assert all(stored[f"{key}_se"] == [None, None, None] for key in CURVES)
    assert stored["l2_mean"] == pytest.approx(out["l2_mean"])
