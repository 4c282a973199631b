"""The Replay->fresh drop split into (a) restored and (b) lost, and the toy prediction set beside (a)."""
import numpy as np
import pytest

from empirical.decomposition import check_prediction, decompose


def test_parts_sum_to_the_drop_sample_by_sample():
    rng = np.random.default_rng(0)
    replay = rng.integers(0, 2, size=(2, 50))
    transfer = rng.integers(0, 3, size=(2, 50)) / 2            # means over R = 2 fresh draws
    dec = decompose(replay, transfer)
    assert dec.drop.mean == pytest.approx(dec.restored.mean - dec.lost.mean, abs=1e-12)
    assert dec.drop.mean == pytest.approx(100 * (transfer - replay).mean())
    assert dec.fooled_units == int((replay == 0).sum()) and dec.units == 100 and dec.n == 50


def test_restored_counts_only_replay_fooled_samples_and_lost_only_replay_robust_ones():
    replay = np.array([[0, 0, 1, 1]])
    transfer = np.array([[1.0, 0.5, 1.0, 0.0]])
    dec = decompose(replay, transfer)
    assert dec.restored.mean == pytest.approx(100 * 1.5 / 4)      # samples 0 and 1 come back under fresh noise
    assert dec.lost.mean == pytest.approx(100 * 1.0 / 4)          # sample 3 is fooled by a fresh draw
    assert dec.drop.mean == pytest.approx(100 * 0.5 / 4)


def test_a_sample_is_the_mean_over_its_replicates():
    one = decompose([[0, 1]], [[1.0, 1.0]])
    two = decompose([[0, 1], [0, 1]], [[1.0, 1.0], [1.0, 1.0]])
    assert two.n == one.n == 2 and two.restored.mean == one.restored.mean
    assert two.restored.se == pytest.approx(one.restored.se)      # the same per-sample values, not 2N units


@pytest.mark.parametrize("replay, transfer", [([[0, 2]], [[1.0, 1.0]]), ([[0, 1]], [[1.5, 0.0]]),
                                              ([[0, 1]], [[1.0]])])
def test_bad_outcomes_are_refused(replay, transfer):
    with pytest.raises(ValueError):
        decompose(replay, transfer)


def test_prediction_check_scales_rescue_to_points_of_a_and_tests_the_difference():
    predicted = {i: 0.6 for i in range(30)}
    held = {i: 0.6 + (0.1 if i % 2 else -0.1) for i in range(30)}
    chk = check_prediction(predicted, held, fooled_share=0.5, margin=5.0)
    assert chk.samples == 30 and chk.predicted == pytest.approx(30.0) and chk.held_out == pytest.approx(30.0)
    assert chk.difference.p == pytest.approx(1.0)                   # no difference on average
    assert chk.equivalence.p < 0.05                                 # +-5 points around 0 holds
    assert check_prediction({}, held, 0.5, 5.0) is None
