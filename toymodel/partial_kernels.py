"""Numba kernels for the partial-cancellation attack (paper Sec. 4.2, Theorem 1's scope).

The attack aims at y = c - t eta0 with t = max(0, 1 - r/||eta0||): under the crafting draw
P(y) = c + (1 - t) eta0 lies in A = B2(c, r), so it is adversarial by construction, yet t depends
on r, so one simulation cannot serve a whole r grid through dist2 <= r^2 as in kernels.py. These
kernels return, per trial and radius r_k, ||P(proj(y_k)) - c||^2 under a fresh draw eta1; success
at r_k is ``out[:, k] <= r_k**2``. Trials use the counter-based streams of kernels.py, so results
do not depend on thread count or chunking.
"""
import math

import numpy as np
from numba import njit, prange

from toymodel.kernels import (BLOCK, JIT_OPTIONS, L2, NO_CLIP, PARALLEL_OPTIONS, _chi2, _normal,
                              _normals_into, _project, _seed)


@njit(**PARALLEL_OPTIONS)
def reduced_partial_dist2(n, d, sigma, eps, rs, first, count, key0, key1):
    """Rotationally reduced l2 (or unclipped) sampler, O(len(rs)) per trial.

    eta0 = sigma (z1 e1 + sqrt(w0) u) with u orthogonal to c = d e1, so y = c - t eta0 and its
    radial projection stay in the (e1, u) plane; the fresh eta1 enters through
    ||a + sigma h||^2 = (|a| + sigma g)^2 + sigma^2 chi2(n - 1), exact for each r_k's marginal.
    """
    nr = rs.size
    out = np.empty((count, nr))
    nblocks = (count + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        st = np.empty(4, np.uint64)
        for i in range(b * BLOCK, min(count, (b + 1) * BLOCK)):
            _seed(st, key0, key1, first + i)
            e_axis = sigma * _normal(st)
            e_orth = sigma * math.sqrt(_chi2(st, n - 1))
            g = _normal(st)
            w1 = _chi2(st, n - 1)
            rho = math.sqrt(e_axis * e_axis + e_orth * e_orth)
            for k in range(nr):
                t = 1.0 - rs[k] / rho if rho > rs[k] else 0.0
                y1 = d - t * e_axis
                y2 = t * e_orth
                ynorm = math.sqrt(y1 * y1 + y2 * y2)
                s = 1.0 if ynorm <= eps else eps / ynorm
                a1 = s * y1 - d
                a2 = s * y2
                tt = math.sqrt(a1 * a1 + a2 * a2) + sigma * g
                out[i, k] = tt * tt + sigma * sigma * w1
    return out


@njit(**JIT_OPTIONS)
def _inside(y, eps, norm):
    """Whether y lies in the threat set B_p(0, eps)."""
    if norm == NO_CLIP:
        return True
    if norm == L2:
        return math.sqrt(np.sum(y * y)) <= eps
    for j in range(y.size):
        if abs(y[j]) > eps:
            return False
    return True


@njit(**JIT_OPTIONS)
def _offset_norm(c, e0, t, eps, norm, y, x):
    """||proj(c - t e0) - c|| for one radius (the slow path, when the projection may be active)."""
    for j in range(c.size):
        y[j] = c[j] - t * e0[j]
    _project(y, x, eps, norm)
    acc = 0.0
    for j in range(c.size):
        v = x[j] - c[j]
        acc += v * v
    return math.sqrt(acc)


@njit(**PARALLEL_OPTIONS)
def ndim_partial_dist2(c, sigma, eps, norm, rs, first, count, key0, key1):
    """n-dimensional sampler (any threat norm): per trial and radius ||proj(c - t eta0) + eta1 - c||^2.

    eta0 is drawn in full; the offset a = proj(c - t eta0) - c is exact for every norm. The set is
    convex, so if c and c - t_max eta0 (t_max for the smallest radius) are inside it, no target of
    the trial is projected and |a| = t ||eta0||; otherwise each radius is projected explicitly.
    The fresh eta1 enters through ||a + sigma h||^2 = (|a| + sigma g)^2 + sigma^2 chi2(n - 1).
    """
    n = c.size
    nr = rs.size
    rmin = rs.min()
    out = np.empty((count, nr))
    zero = np.zeros(n)
    c_inside = _inside(c, eps, norm)
    nblocks = (count + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        st = np.empty(4, np.uint64)
        e0 = np.empty(n)
        y = np.empty(n)
        x = np.empty(n)
        for i in range(b * BLOCK, min(count, (b + 1) * BLOCK)):
            _seed(st, key0, key1, first + i)
            _normals_into(st, e0, zero, sigma)
            g = _normal(st)
            w1 = _chi2(st, n - 1)
            rho = math.sqrt(np.dot(e0, e0))
            tmax = 1.0 - rmin / rho if rho > rmin else 0.0
            for j in range(n):
                y[j] = c[j] - tmax * e0[j]
            fast = c_inside and _inside(y, eps, norm)
            for k in range(nr):
                t = 1.0 - rs[k] / rho if rho > rs[k] else 0.0
                anorm = t * rho if fast else _offset_norm(c, e0, t, eps, norm, y, x)
                tt = anorm + sigma * g
                out[i, k] = tt * tt + sigma * sigma * w1
    return out
