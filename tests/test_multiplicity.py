"""The gatekeeping procedure: primary claims by Bonferroni, the rest by Holm at the alpha they inherit."""
import numpy as np
import pytest

from empirical.multiplicity import gatekeeping


def test_hand_worked_example():
    # k = 3 primaries: 0.001 -> 0.003, 0.02 -> 0.06 (not rejected), 0.01 -> 0.03: r = 2 of 3 rejected.
    # Secondary Holm: sorted 0.004, 0.01, 0.03 -> x3, x2, x1 = 0.012, 0.02, 0.03; then x 3 / 2.
    first, rest = gatekeeping([0.001, 0.02, 0.01], [0.03, 0.004, 0.01])
    assert first == pytest.approx([0.003, 0.06, 0.03])
    assert rest == pytest.approx([0.045, 0.018, 0.03])
    # a decision at 0.05 on the adjusted p is Holm at alpha r / k = 0.0333 on the secondary family
    assert [p < 0.05 for p in rest] == [p < 0.05 * 2 / 3 for p in (0.03, 0.012, 0.02)]


def test_no_primary_rejected_closes_the_gate():
    first, rest = gatekeeping([0.2, 0.5], [1e-9, 1e-6])
    assert first == pytest.approx([0.4, 1.0]) and rest == [1.0, 1.0]


def test_an_unmeasured_primary_still_takes_its_share():
    first, _ = gatekeeping([0.01], [], k=3)
    assert first == pytest.approx([0.03])
    with pytest.raises(ValueError):
        gatekeeping([0.01, 0.02], [], k=1)


def test_family_wise_error_under_the_global_null_is_at_most_alpha():
    """Monte Carlo with a fixed seed: independent uniform p-values (every hypothesis true), 3 primary and
    20 secondary; the rate of any rejection stays below alpha within 3 SE."""
    rng = np.random.default_rng(0)
    trials, hits = 4000, 0
    for _ in range(trials):
        first, rest = gatekeeping(list(rng.uniform(size=3)), list(rng.uniform(size=20)))
        hits += any(p < 0.05 for p in first + rest)
    rate = hits / trials
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)
