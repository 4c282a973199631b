"""Numba samplers: distributions (KS tests against scipy), chunking and thread-count invariance."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from toymodel import kernels as K
from toymodel.simulate import seed_key, simulate_dist2, simulate_partial_dist2

ROOT = Path(__file__).resolve().parents[1]


def _ks_p(sample, cdf):
    return stats.kstest(sample, cdf).pvalue


@pytest.mark.parametrize("n", [1, 2, 5])
def test_reduced_eot_is_chi2(n):
    k0, k1 = seed_key(11)
    d2 = K.reduced_dist2(K.EOT, n, 0.0, 1.0, np.inf, 0.0, 0, 20000, k0, k1)
    assert _ks_p(d2, stats.chi2(n).cdf) > 1e-3


def test_ziggurat_normal_via_noncentral_chi2_n1():
    # n = 1, offset a: dist2 = (a + g)^2, so the sign and the tails of g both matter
    k0, k1 = seed_key(12)
    c = np.array([3.0])
    d2 = K.ndim_dist2(K.EOT, c, np.array([-1.5]), 1.0, 1.5, K.L2, 0, 40000, k0, k1)
    assert _ks_p(d2, stats.ncx2(1, 1.5**2).cdf) > 1e-3
    for t in (3.0, 3.5):  # sqrt(d2) = |g - 1.5| > 1.5 + t  <=>  g < -t or g > 3 + t (ziggurat tail path)
        p = stats.norm.sf(t) + stats.norm.sf(3.0 + t)
        assert abs(np.mean(np.sqrt(d2) > 1.5 + t) - p) < 4 * math.sqrt(p / d2.size)


def test_chi2_pairs_eot_matches_chi2():
    k0, k1 = seed_key(13)
    c = np.zeros(7)
    d2 = K.ndim_dist2(K.EOT, c, np.zeros(7), 2.0, np.inf, K.NO_CLIP, 0, 20000, k0, k1)
    assert _ks_p(d2 / 4.0, stats.chi2(7).cdf) > 1e-3


def test_perfect_unclipped_ndim_is_scaled_chi2():
    k0, k1 = seed_key(14)
    c = np.zeros(9)
    c[0] = 4.0
    d2 = K.ndim_dist2(K.PERFECT, c, np.zeros(9), 1.0, np.inf, K.NO_CLIP, 0, 20000, k0, k1)
    assert _ks_p(d2 / 2.0, stats.chi2(9).cdf) > 1e-3


@pytest.mark.parametrize("sampler,norm,eps", [("ndim", "inf", 1.0), ("ndim", "2", 2.0), ("reduced", "2", 2.0)])
def test_chunking_is_bit_identical(sampler, norm, eps):
    args = dict(strategy="perfect", n=33, sigma=1.0, d=2.0, eps=eps, norm=norm, trials=1000, seed=5, sampler=sampler)
    whole = simulate_dist2(**args)
    assert np.array_equal(whole, simulate_dist2(chunk=37, **args))
    assert np.array_equal(whole[:400], simulate_dist2(**dict(args, trials=400)))
    assert not np.array_equal(whole, simulate_dist2(**dict(args, seed=6)))


@pytest.mark.parametrize("sampler,norm,eps", [("ndim", "inf", 1.0), ("ndim", "2", 2.0), ("reduced", "2", 2.0),
                                               ("ndim", "inf", 40.0)])
def test_partial_chunking_is_bit_identical(sampler, norm, eps):
    args = dict(n=33, sigma=1.0, rs=[3.0, 5.0, 6.5], d=2.0, eps=eps, norm=norm, trials=700, seed=5, sampler=sampler)
    whole = simulate_partial_dist2(**args)
    assert whole.shape == (700, 3)
    assert np.array_equal(whole, simulate_partial_dist2(chunk=37, **args))
    # a radius's column does not depend on the other radii (up to rounding: the fast path may switch)
    assert np.allclose(whole[:, 1:], simulate_partial_dist2(**dict(args, rs=[5.0, 6.5])), rtol=1e-12, atol=0)
    assert not np.array_equal(whole, simulate_partial_dist2(**dict(args, seed=6)))


def test_partial_fast_path_equals_explicit_projection():
    # eps = 40 keeps every target inside the l_inf box (fast path); eps = 1e6 too; eps = inf skips projection:
    # all three must give the same numbers, and the clipped eps = 1 case must differ
    base = dict(n=20, sigma=1.0, rs=[2.0, 4.0], d=2.0, norm="inf", trials=500, seed=3, sampler="ndim")
    a = simulate_partial_dist2(eps=40.0, **base)
    assert np.allclose(a, simulate_partial_dist2(eps=math.inf, **base), rtol=1e-12)
    assert not np.allclose(a, simulate_partial_dist2(eps=1.0, **base))


_SCRIPT = (
    "import hashlib, numba; from toymodel.simulate import simulate_dist2 as s, simulate_partial_dist2 as p;"
    "a = s('perfect', 64, 1.0, 2.0, 1.0, 'inf', 'diagonal', 3000, 3, 'ndim');"
    "b = s('perfect', 64, 1.0, 2.0, 1.0, '2', 'axis', 30000, 3, 'reduced');"
    "c = p(64, 1.0, [6.0, 8.0], 2.0, 1.0, 'inf', 'diagonal', 3000, 3, 'ndim');"
    "e = p(64, 1.0, [6.0, 8.0], 2.0, 1.0, '2', 'axis', 30000, 3, 'reduced');"
    "print(numba.get_num_threads(), hashlib.sha256(a.tobytes() + b.tobytes() + c.tobytes() + e.tobytes()).hexdigest())"
)


def test_thread_count_invariance_in_subprocesses():
    digests = []
    for threads in ("1", "2", "4"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=240, check=True).stdout.split()
        assert out[0] == threads
        digests.append(out[1])
    assert digests[0] == digests[1] == digests[2]
