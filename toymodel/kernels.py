"""Numba kernels for the toy-model Monte Carlo (paper Sec. 4.2): RNG, n-dim and reduced samplers.

Every trial owns its own xoshiro256++ stream, seeded by hashing (key, global trial index) with
splitmix64, so a trial's draws never depend on the thread that runs it or on how the caller
splits the trials into chunks: results are bit-identical for any NUMBA_NUM_THREADS and chunking.
Kernels return, per trial, the squared distance ||P(x_adv) - c||^2 under the test noise; success
for radius r is ``dist2 <= r**2``, so one simulation serves a whole r grid.
"""
import math

import numpy as np
from numba import njit, prange

JIT_OPTIONS = {"cache": True, "fastmath": False, "nogil": True}
PARALLEL_OPTIONS = dict(JIT_OPTIONS, parallel=True)

PERFECT, EOT, REPLAY = 0, 1, 2
NO_CLIP, LINF, L2 = 0, 1, 2
BLOCK = 64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0


def _ziggurat_tables(layers=128, r=3.442619855899, v=9.91256303526217e-3):
    """Layer edges x and acceptance ratios x[i+1]/x[i] of the 128-layer normal ziggurat
    (Marsaglia & Tsang 2000, in Doornik's 2005 double-precision form)."""
    x = np.zeros(layers + 1)
    f = math.exp(-0.5 * r * r)
    x[0] = v / f
    x[1] = r
    for i in range(2, layers):
        x[i] = math.sqrt(-2.0 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    ratio = np.zeros(layers)
    ratio[: layers - 1] = x[1:layers] / x[: layers - 1]
    return x, ratio, r


_ZX, _ZR, _ZTAIL = _ziggurat_tables()


@njit(**JIT_OPTIONS)
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(**JIT_OPTIONS)
def _seed(st, key0, key1, index):
    x = key0 ^ _mix64(np.uint64(index) + key1)
    for k in range(4):
        x = x + _GOLDEN
        st[k] = _mix64(x)


@njit(**JIT_OPTIONS)
def _xoshiro(s0, s1, s2, s3):
    """One xoshiro256++ step on a state held in locals: (output, new state)."""
    sum03 = s0 + s3
    result = ((sum03 << np.uint64(23)) | (sum03 >> np.uint64(41))) + s0
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    return result, s0, s1, s2, s3


@njit(**JIT_OPTIONS)
def _next(st):
    result, st[0], st[1], st[2], st[3] = _xoshiro(st[0], st[1], st[2], st[3])
    return result


@njit(**JIT_OPTIONS)
def _uniform(st):
    """Uniform on the open interval (0, 1) from the top 53 bits."""
    return (float(_next(st) >> np.uint64(11)) + 0.5) * _TO_UNIT


@njit(**JIT_OPTIONS)
def _normal_slow(st, u, i):
    """Ziggurat step outside the rectangles: (accepted, value); the base strip (i = 0) samples the tail."""
    if i == 0:
        while True:
            xt = math.log(_uniform(st)) / _ZTAIL
            yt = math.log(_uniform(st))
            if -2.0 * yt >= xt * xt:
                return True, (xt - _ZTAIL if u < 0.0 else _ZTAIL - xt)
    xx = u * _ZX[i]
    f0 = math.exp(-0.5 * (_ZX[i] * _ZX[i] - xx * xx))
    f1 = math.exp(-0.5 * (_ZX[i + 1] * _ZX[i + 1] - xx * xx))
    return f1 + _uniform(st) * (f0 - f1) < 1.0, xx


@njit(**JIT_OPTIONS)
def _normal(st):
    """One N(0, 1) draw by the 128-layer ziggurat: sign, level and position from one 64-bit word."""
    while True:
        bits, st[0], st[1], st[2], st[3] = _xoshiro(st[0], st[1], st[2], st[3])
        u = 2.0 * ((float(bits >> np.uint64(11)) + 0.5) * _TO_UNIT) - 1.0
        i = int((bits >> np.uint64(3)) & np.uint64(127))
        if abs(u) < _ZR[i]:
            return u * _ZX[i]
        ok, g = _normal_slow(st, u, i)
        if ok:
            return g


@njit(**JIT_OPTIONS)
def _normals_into(st, out, centre, scale):
    """out[j] = centre[j] + scale * N(0, 1), the fast path run on a state kept in locals."""
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    for j in range(out.size):
        bits, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        u = 2.0 * ((float(bits >> np.uint64(11)) + 0.5) * _TO_UNIT) - 1.0
        i = int((bits >> np.uint64(3)) & np.uint64(127))
        if abs(u) < _ZR[i]:
            g = u * _ZX[i]
        else:
            st[0], st[1], st[2], st[3] = s0, s1, s2, s3
            ok, g = _normal_slow(st, u, i)
            if not ok:
                g = _normal(st)
            s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
        out[j] = centre[j] + scale * g
    st[0], st[1], st[2], st[3] = s0, s1, s2, s3


@njit(**JIT_OPTIONS)
def _gamma(st, shape):
    """Gamma(shape, 1) by Marsaglia-Tsang (shape < 1 via the u**(1/shape) boost)."""
    boost = 1.0
    if shape < 1.0:
        boost = _uniform(st) ** (1.0 / shape)
        shape += 1.0
    dd = shape - 1.0 / 3.0
    cc = 1.0 / math.sqrt(9.0 * dd)
    while True:
        x = _normal(st)
        v = 1.0 + cc * x
        if v <= 0.0:
            continue
        v = v * v * v
        if math.log(_uniform(st)) < 0.5 * x * x + dd - dd * v + dd * math.log(v):
            return boost * dd * v


@njit(**JIT_OPTIONS)
def _chi2(st, dof):
    """chi2(dof) draw; chi2(0) = 0."""
    if dof <= 0:
        return 0.0
    return 2.0 * _gamma(st, 0.5 * dof)


@njit(**JIT_OPTIONS)
def _chi2_by_pairs(st, dof):
    """chi2(dof) as a sum of chi2(2) = 2 Exp(1) pairs (one squared normal if dof is odd)."""
    acc = 0.0
    for _ in range(dof // 2):
        acc -= 2.0 * math.log(_uniform(st))
    if dof % 2 == 1:
        g = _normal(st)
        acc += g * g
    return acc


@njit(**JIT_OPTIONS)
def _project(y, x, eps, norm):
    """x = projection of y onto the threat set B_p(0, eps) (l2: radial scaling, l_inf: clipping)."""
    n = y.size
    if norm == L2:
        nrm = math.sqrt(np.sum(y * y))
        s = 1.0 if nrm <= eps else eps / nrm
        for j in range(n):
            x[j] = s * y[j]
    elif norm == LINF:
        for j in range(n):
            x[j] = min(max(y[j], -eps), eps)
    else:
        for j in range(n):
            x[j] = y[j]


@njit(**JIT_OPTIONS)
def _offset_plus_noise(st, a, sigma, buf):
    """||a + sigma * h||^2 for fresh h ~ N(0, I_n)."""
    _normals_into(st, buf, a, sigma)
    acc = 0.0
    for j in range(a.size):
        acc += buf[j] * buf[j]
    return acc


@njit(**PARALLEL_OPTIONS)
def ndim_dist2(strategy, c, eot_offset, sigma, eps, norm, first, count, key0, key1):
    """n-dim geometric simulator: per trial ||P(x_adv) - c||^2 for trials first .. first+count-1.

    perfect: x = proj(c - eta0), tested with fresh eta1; eot: x = proj(c) (offset
    eot_offset = proj(c) - c), tested with eta1; replay: x = proj(c - eta0), tested with eta0.
    eta0 and the projection are simulated in full; perfect's fresh eta1 enters through
    ||a + sigma h||^2 = (|a| + sigma z)^2 + sigma^2 chi2(n - 1) (rotation invariance of h).
    """
    n = c.size
    out = np.empty(count)
    eot_centred = not np.any(eot_offset != 0.0)
    nblocks = (count + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        st = np.empty(4, np.uint64)
        y = np.empty(n)
        x = np.empty(n)
        for i in range(b * BLOCK, min(count, (b + 1) * BLOCK)):
            _seed(st, key0, key1, first + i)
            if strategy == EOT:
                if eot_centred:
                    out[i] = sigma * sigma * _chi2_by_pairs(st, n)
                else:
                    out[i] = _offset_plus_noise(st, eot_offset, sigma, y)
                continue
            _normals_into(st, y, c, -sigma)
            _project(y, x, eps, norm)
            if strategy == REPLAY:
                acc = 0.0
                for j in range(n):
                    t = x[j] - y[j]
                    acc += t * t
                out[i] = acc
            else:
                acc = 0.0
                for j in range(n):
                    t = x[j] - c[j]
                    acc += t * t
                t = math.sqrt(acc) + sigma * _normal(st)
                out[i] = t * t + sigma * sigma * _chi2(st, n - 1)
    return out


@njit(**PARALLEL_OPTIONS)
def reduced_dist2(strategy, n, d, sigma, eps, eot_offset_norm, first, count, key0, key1):
    """Rotationally reduced l2 sampler, O(1) per trial, same statistic as ndim_dist2.

    Uses ||a + sigma h||^2 = (|a| + sigma z)^2 + sigma^2 chi2(n-1) (l2 projection or none;
    eps = inf means no projection). perfect reduces c - eta0 to its e1 part and the norm of
    the orthogonal part, projects radially, then applies the identity to a = x - c.
    """
    out = np.empty(count)
    nblocks = (count + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        st = np.empty(4, np.uint64)
        for i in range(b * BLOCK, min(count, (b + 1) * BLOCK)):
            _seed(st, key0, key1, first + i)
            if strategy == EOT:
                anorm = eot_offset_norm
            else:
                z = _normal(st)
                y1 = d - sigma * z
                yw = sigma * math.sqrt(_chi2(st, n - 1))
                ynorm = math.sqrt(y1 * y1 + yw * yw)
                s = 1.0 if ynorm <= eps else eps / ynorm
                if strategy == REPLAY:
                    gap = ynorm - eps if ynorm > eps else 0.0
                    out[i] = gap * gap
                    continue
                a1 = s * y1 - d
                a2 = s * yw
                anorm = math.sqrt(a1 * a1 + a2 * a2)
            g = _normal(st)
            t = anorm + sigma * g
            out[i] = t * t + sigma * sigma * _chi2(st, n - 1)
    return out
