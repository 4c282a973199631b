"""AutoAttack's version for randomized defences as an outside anchor for the audit's recommended number
(slow: APGD-CE and APGD-DLR with 20 EOT draws per gradient; needs ``pip install --no-deps pyautoattack``)."""
import pytest

pytest.importorskip("pyautoattack")


@pytest.mark.slow
def test_the_audits_number_is_within_two_se_of_autoattack_rand_on_the_gaussian_example():
    from benchmarks.bench_autoattack import cross_check
    out = cross_check("empirical.examples.defences:gaussian_noise", 128)
    assert out["audit_verdict"] == "masking"
    d = out["difference"]
    assert abs(d["mean"]) <= 2 * d["se"], out
