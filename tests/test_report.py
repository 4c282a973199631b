import math

import numpy as np
import pytest
from scipy import stats as sps

from empirical import outcomes
from empirical.harness.records import outcomes as concat
from empirical.harness.report import Accuracy, accuracy, format_table, render, write_csv


ACCURACIES = pytest.mark.parametrize("accuracy", [accuracy, outcomes.accuracy], ids=["harness", "library"])


@ACCURACIES
def test_binary_accuracy_and_se(accuracy):
    a = accuracy([True, False, True, True])
    # worked by hand: p = 3/4, SE = sqrt(p (1 - p) / 4) = sqrt(3/64) = 0.2165063509...
    assert a.mean == 75.0 and math.isclose(a.se, 21.650635094610966, rel_tol=1e-12) and a.spread is None
    assert a.n == 4 and a.draws == 1
    assert accuracy([True]).se == 0.0 and accuracy([]) is None and accuracy(None) is None


@ACCURACIES
def test_fresh_accuracy_uses_per_sample_means(accuracy):
    draws = [[True, True, False, False], [True, False, False, False]]
    a = accuracy(draws)
    assert a.mean == 37.5 and a.draws == 2 and a.n == 4
    # per-sample rates (1, 1/2, 0, 0): SE across the 4 samples, not across the 8 draws
    assert math.isclose(a.se, 100 * sps.sem([1.0, 0.5, 0.0, 0.0]), rel_tol=1e-12)
    assert math.isclose(a.se, 23.935677693908453, rel_tol=1e-12)       # sqrt(0.2291667 / 4), worked by hand
    assert math.isclose(a.spread, 100 * np.std([0.5, 0.25], ddof=1), rel_tol=1e-12)   # SD of the draws' accuracies
    assert math.isnan(accuracy([[True], [False]]).se)                  # one sample has no SE across samples


def test_harness_and_library_accuracies_agree():
    rng = np.random.default_rng(3)
    for shape in [(7,), (3, 5), (1, 6), (4, 1)]:
        draws = (rng.random(shape) < 0.6).tolist()
        ours, theirs = accuracy(draws), outcomes.accuracy(draws)
        assert [ours.mean, ours.n, ours.draws] == [theirs.mean, theirs.n, theirs.draws]
        assert math.isclose(ours.se, theirs.se) or math.isnan(ours.se) and math.isnan(theirs.se)
        assert (ours.spread is None) == (theirs.spread is None)


def test_concat_joins_chunks_along_samples():
    recs = [{"a": [[1, 0], [0, 0]], "b": [1]}, {"a": [[1], [1]], "b": [0, 1]}, {}]
    assert concat(recs, "a") == [[1, 0, 1], [0, 0, 1]]
    assert concat(recs, "b") == [1, 0, 1]
    assert concat(recs, "missing") is None


def test_table_and_csv(tmp_path):
    rows = [{"name": "x", "acc": Accuracy(50.0, 5.0, 100)}, {"name": "y", "acc": None}]
    text = format_table(rows, [("name", "Name"), ("acc", "Acc")])
    assert "50.0±5.0" in text and text.splitlines()[0].startswith("Name")
    write_csv(tmp_path / "t.csv", rows, [("name", "Name"), ("acc", "Acc")])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["name,acc,acc_se", "x,50.000,5.000", "y,,"]


def test_paired_drop_uses_per_sample_differences():
    from empirical.harness.report import paired_drop
    d = paired_drop([[1, 1, 0, 1], [1, 0, 0, 1]], [1, 0, 0, 0])
    diffs = [0.0, 0.5, 0.0, 1.0]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 3)
    assert math.isclose(d.mean, 100 * mean) and math.isclose(d.se, 100 * sd / 2) and d.n == 4
    assert paired_drop(None, [1]) is None
    single = paired_drop([[1], [0]], [0])
    assert single.mean == 50.0 and math.isnan(single.se)
    import pytest
    with pytest.raises(ValueError, match="same samples"):
        paired_drop([1, 0, 1], [1, 0])


def test_render_formats_agree_on_the_cells():
    rows = [{"name": "x", "acc": Accuracy(50.0, 5.0, 100, 3, 1.5)}]
    cols = [("name", "Name"), ("acc", "Acc")]
    assert "50.0±5.0 [1.5]" in render(rows, cols, "wide") and "[1.5]" not in render(rows, cols, "compact")
    assert render(rows, cols, "markdown").splitlines()[0] == "| Name | Acc |"
    assert render(rows, cols, "csv").splitlines() == ["name,acc,acc_se", "x,50.000,5.000"]
