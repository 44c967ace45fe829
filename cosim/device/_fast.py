"""Compiled (numba) kernels of the device model: the fast path behind the numpy reference.

Every kernel computes the numbers of the numpy code in :mod:`cosim.device.rng` and
:mod:`cosim.device.model` with the same operations in the same order where numpy fixes
one (hash steps, Box–Muller, Γ Horner, Ψ, I–V polynomials, the switching rules), with two
exceptions: the VAR products ``L ε`` and ``Σ A_i x_{n−i}``, whose order numpy leaves to
BLAS, are summed left to right; and ``log``/``cos`` are the module's own branch-free
versions (within 1 ulp of the C library's), so that the loops over devices vectorize.
Hashes and every integer state are bit-identical; normals and features agree to 1e-15
relative (tests/test_device_fast.py; docs/device-model.md, "Speed").

Kernels are serial, release the GIL (``nogil``) and work on a device range ``[lo, hi)``;
:func:`split_run` spreads a call over a few Python threads. (Python threads rather than
numba's ``prange``: they need no threading layer, so they are safe when several threads
call kernels at once and in processes forked afterwards, whatever layer a machine has.)
Compiled code is cached on disk (``cache=True``): the first call on a machine compiles
(about 75 CPU-seconds for all kernels), later processes load it.

Set the environment variable ``COSIM_DEVICE_BACKEND=numpy`` to disable this module.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np

try:  # numba is a dependency; the numpy path stays usable without it
    import numba

    AVAILABLE = os.environ.get("COSIM_DEVICE_BACKEND", "").lower() != "numpy"
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None
    AVAILABLE = False

MASK31 = 0x7FFFFFFF
MIX_C1 = 0x7FEB352D
MIX_C2 = 0x046CA68B
SECOND = 0x5BD1E995 & MASK31
INV_TWO_POW_31 = 1.0 / 2147483648.0
TWO_PI = 2.0 * math.pi

#: below this many devices a call runs on the calling thread only
MIN_DEVICES_PER_THREAD = 4096


def default_threads() -> int:
    """Threads for kernel calls: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_backend(backend: Optional[str]) -> str:
    """``None`` → ``"numba"`` when available, else ``"numpy"``; check explicit choices."""
    if backend is None:
        return "numba" if AVAILABLE else "numpy"
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    if backend == "numba" and not AVAILABLE:
        raise ValueError("backend 'numba' requested but numba is not available (or disabled "
                         "by COSIM_DEVICE_BACKEND=numpy)")
    return backend


_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's pool threads
    os.register_at_fork(after_in_child=_POOLS.clear)


def split_run(kernel: Callable[..., None], n: int, args: tuple, threads: Optional[int] = None,
              align: int = 1) -> None:
    """Call ``kernel(lo, hi, *args)`` over ``[0, n)`` split into one range per thread
    (inner range boundaries are multiples of ``align``)."""
    threads = default_threads() if threads is None else max(1, int(threads))
    threads = min(threads, max(1, n // MIN_DEVICES_PER_THREAD))
    if threads == 1:
        kernel(0, n, *args)
        return
    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS.setdefault(threads, ThreadPoolExecutor(max_workers=threads,
                                                             thread_name_prefix="cosim-device"))
    edges = [min(n, (n * k // threads) // align * align) for k in range(threads)] + [n]
    futures = [pool.submit(kernel, edges[k], edges[k + 1], *args) for k in range(threads)]
    for f in futures:
        f.result()


if AVAILABLE:
    from llvmlite import ir as _ir
    from numba import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def f64_bits(typingctx, x):  # noqa: ANN001 - numba intrinsic signature
        """The IEEE-754 bits of a double as int64 (an LLVM bitcast)."""
        def codegen(context, builder, sig, args):  # noqa: ANN001
            return builder.bitcast(args[0], _ir.IntType(64))
        return _types.int64(_types.float64), codegen

    @_intrinsic
    def bits_f64(typingctx, x):  # noqa: ANN001
        """The double with the given IEEE-754 bits (an LLVM bitcast)."""
        def codegen(context, builder, sig, args):  # noqa: ANN001
            return builder.bitcast(args[0], _ir.DoubleType())
        return _types.float64(_types.int64), codegen

    # error_model="numpy": float division without a zero check (inf/nan as in numpy), which
    # lets loops vectorize
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
    _inline = numba.njit(inline="always", nogil=True, cache=True, error_model="numpy")
else:  # keep the definitions importable (they are never called)
    def _jit(f):  # type: ignore[no-redef]
        return f

    _inline = _jit


# --------------------------------------------------------------------------- log
# ln(x) for a positive normal double, written out (no libm call) so that loops vectorize:
# the algorithm and coefficients of FreeBSD msun / musl e_log.c (x = 2^k (1 + f),
# √2/2 < 1 + f < √2, s = f/(2 + f), a degree-14 polynomial in s), both of its final
# branches evaluated and one selected. Error < 1 ulp; it differs from the C library's log by
# one ulp in about 1 of 14 arguments (tests/test_device_fast.py).
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LG1, LG2, LG3, LG4, LG5, LG6, LG7 = (6.666666666666735130e-01, 3.999999999940941908e-01,
                                     2.857142874366239149e-01, 2.222219843214978396e-01,
                                     1.818357216161805012e-01, 1.531383769920937332e-01,
                                     1.479819860511658591e-01)
TWO_POW_52 = 4503599627370496.0


@_inline
def log_positive(x: float) -> float:
    """ln(x) for a positive normal double x, branch-free (see the comment above)."""
    bits = f64_bits(x)
    hx = (bits >> 32) & 0x7FFFFFFF
    m = hx & 0x000FFFFF
    i = (m + 0x95F64) & 0x100000  # 1 when the mantissa is above √2: use x/2
    xn = bits_f64(((m | (i ^ 0x3FF00000)) << 32) | (bits & 0xFFFFFFFF))
    # k = exponent − 1023 + (i >> 20) as a double, without an int64 → double conversion
    dk = bits_f64(0x4330000000000000 | (((hx >> 20) & 0x7FF) + (i >> 20))) - (TWO_POW_52 + 1023.0)
    f = xn - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    far = dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
    near = dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f)
    return far if ((m - 0x6147A) | (0x6B851 - m)) > 0 else near


# --------------------------------------------------------------------------- cosine
# cos(x) for 0 <= x < 2π written out (no libm call) so that the compiler can vectorize the
# device loop: fn = nearest integer to x/(π/2); x − fn·π/2 in three 33-bit parts of π/2
# (always all three: the residual is exact to ~118 bits even next to a zero of cos); then the
# degree-12/13 kernels of FreeBSD msun / musl (k_cos.c, k_sin.c, the coefficients below are
# theirs). Error < 1 ulp; it differs from the C library's correctly-rounded-in-practice
# cos by one ulp in about 1 of 6 arguments (tests/test_device_fast.py measures it).
INVPIO2 = 6.36619772367581382433e-01
PIO2_1 = 1.57079632673412561417e+00
PIO2_1T = 6.07710050650619224932e-11
PIO2_2 = 6.07710050630396597660e-11
PIO2_2T = 2.02226624879595063154e-21
PIO2_3 = 2.02226624871116645580e-21
PIO2_3T = 8.47842766036889956997e-32
COS_C = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
         -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)
SIN_S = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
         2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
C1, C2, C3, C4, C5, C6 = COS_C
S1, S2, S3, S4, S5, S6 = SIN_S


@_inline
def cos_0_2pi(x: float) -> float:
    """cos(x) for 0 <= x < 2π, branch-free (see the comment above)."""
    fn = math.floor(x * INVPIO2 + 0.5)
    n = int(fn) & 3
    r = x - fn * PIO2_1
    w = fn * PIO2_2
    t = r
    r = t - w
    w = fn * PIO2_2T - ((t - r) - w)
    t = r
    w = fn * PIO2_3
    r = t - w
    w = fn * PIO2_3T - ((t - r) - w)
    y0 = r - w
    y1 = (r - y0) - w
    z = y0 * y0
    zz = z * z
    rc = z * (C1 + z * (C2 + z * C3)) + zz * zz * (C4 + z * (C5 + z * C6))
    hz = 0.5 * z
    wc = 1.0 - hz
    k_cos = wc + (((1.0 - wc) - hz) + (z * rc - y0 * y1))
    rs = S2 + z * (S3 + z * S4) + z * zz * (S5 + z * S6)
    v = z * y0
    k_sin = y0 - ((z * (0.5 * y1 - v * rs) - y1) - v * S1)
    res = k_cos if (n & 1) == 0 else k_sin
    return -res if (n == 1 or n == 2) else res


@_jit
def log_cos_arrays(x: np.ndarray, log_out: np.ndarray, cos_out: np.ndarray) -> None:
    """``log_positive`` of x > 0 into ``log_out`` and ``cos_0_2pi`` of 2π·x (x in [0, 1))
    into ``cos_out`` (to test the two functions against the C library)."""
    for i in range(x.size):
        log_out[i] = log_positive(x[i])
        cos_out[i] = cos_0_2pi(TWO_PI * x[i])


# --------------------------------------------------------------------------- hash RNG
@_inline
def mix31(x: int) -> int:
    """The 31-bit mixer of docs/rng.md on an int64 holding a value in [0, 2**31)."""
    x ^= x >> 16
    x = (x * MIX_C1) & MASK31  # product < 2**62: exact in int64
    x ^= x >> 15
    x = (x * MIX_C2) & MASK31
    x ^= x >> 16
    return x


@_inline
def normal_of_hash(h: int) -> float:
    """Box–Muller (cosine branch) of a finished key hash, as ``rng.normal_from_hash``."""
    return radius_of_hash(h) * cos_of_hash(h)


@_inline
def cos_of_hash(h: int) -> float:
    """cos(2π u2), u2 = to_unit(mix31(h ^ SECOND)) (the own, vectorizable cosine)."""
    return cos_0_2pi(TWO_PI * ((mix31(h ^ SECOND) + 0.5) * INV_TWO_POW_31))


@_inline
def radius_of_hash(h: int) -> float:
    """sqrt(−2 ln u1), u1 = to_unit(h) (the own, vectorizable log)."""
    return math.sqrt(-2.0 * log_positive((h + 0.5) * INV_TWO_POW_31))


#: devices per block of the two-phase normal generation
BLOCK = 512


@_inline
def c2c_eps_block(prefix: np.ndarray, lo: int, hi: int, cycle: int, eps: np.ndarray) -> None:
    """ε of devices lo..hi-1 (at most BLOCK) into eps[:, 0:hi-lo] (no library calls: the
    loop over devices vectorizes)."""
    for d in range(lo, hi):
        b = d - lo
        hc = mix31(np.int64(prefix[d]) ^ cycle)
        eps[0, b] = normal_of_hash(c2c_hash_after_cycle(hc, 0))
        eps[1, b] = normal_of_hash(c2c_hash_after_cycle(hc, 1))
        eps[2, b] = normal_of_hash(c2c_hash_after_cycle(hc, 2))
        eps[3, b] = normal_of_hash(c2c_hash_after_cycle(hc, 3))


@_inline
def c2c_hash_after_cycle(h_cycle: int, stream: int) -> int:
    return mix31(mix31(h_cycle ^ stream))


@_jit
def c2c_normals_kernel(lo: int, hi: int, prefix: np.ndarray, cycle: int, out: np.ndarray) -> None:
    """ε of cycle ``cycle`` for devices lo..hi-1 into ``out`` (4, N), feature-major."""
    eps = np.empty((4, BLOCK))
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        c2c_eps_block(prefix, start, stop, cycle, eps)
        for f in range(4):
            out[f, start:stop] = eps[f, : stop - start]


@_jit
def hash_chain_kernel(lo: int, hi: int, h0: np.ndarray, words: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = absorb(h0[i], words[i, :])`` (int64 arrays): the hash of a key tail."""
    for i in range(lo, hi):
        h = np.int64(h0[i])
        for k in range(words.shape[1]):
            h = mix31(h ^ np.int64(words[i, k]))
        out[i] = h


# --------------------------------------------------------------------------- feature engine
@_inline
def horner(gamma: np.ndarray, f: int, x: float) -> float:
    """Γ_f(x), Horner from the highest power, as ``gamma_transform``."""
    g = gamma[f, 0]
    for j in range(1, gamma.shape[1]):
        g = g * x + gamma[f, j]
    return g


@_inline
def slot_coefficients(lags: np.ndarray, p: int, cycle: int, coef: np.ndarray) -> None:
    """coef[s] = the lag matrix that multiplies ring slot s at ``cycle`` (slot s holds x_m,
    m ≡ s mod p; it is x_{cycle−i−1} with i = (cycle − 1 − s) mod p, multiplied by A_{i+1})."""
    for s in range(p):
        coef[s] = lags[(cycle - 1 - s) % p]


@_inline
def var_gamma_psi_block(start: int, stop: int, p: int, cycle: int, eps: np.ndarray,
                        chol: np.ndarray, coef: np.ndarray, gamma: np.ndarray, mu: np.ndarray,
                        sigma: np.ndarray, hist: np.ndarray, hist0: int, x: np.ndarray,
                        g: np.ndarray, y: np.ndarray, y0: int) -> None:
    """Devices start..stop-1: x = L ε + Σ_s coef[s] hist[s]; x into slot cycle % p; y = μ + σ Γ(x).

    Per device and feature the operations are ``x_f = Σ_j L_fj ε_j`` then, slot after slot,
    ``x_f += (((c_f0 h_0 + c_f1 h_1) + c_f2 h_2) + c_f3 h_3)``. Arrays are feature-major so the
    loops over devices are innermost (vectorized): ``eps``, ``x``, ``g`` (4 | 1, ≥ stop−start)
    scratch by block position, ``hist`` (p, 4, ·) indexed by d − hist0, ``mu``, ``sigma``
    (4, N) by device, ``y`` (4, ·) indexed by d − y0.
    """
    nb = stop - start
    off = start - hist0
    for f in range(4):
        c0, c1, c2, c3 = chol[f, 0], chol[f, 1], chol[f, 2], chol[f, 3]
        for b in range(nb):
            x[f, b] = c0 * eps[0, b] + c1 * eps[1, b] + c2 * eps[2, b] + c3 * eps[3, b]
    for s in range(p):
        for f in range(4):
            c0, c1, c2, c3 = coef[s, f, 0], coef[s, f, 1], coef[s, f, 2], coef[s, f, 3]
            for b in range(nb):
                r = off + b
                x[f, b] += (c0 * hist[s, 0, r] + c1 * hist[s, 1, r] + c2 * hist[s, 2, r]
                            + c3 * hist[s, 3, r])
    if p:
        slot = cycle % p
        for f in range(4):
            for b in range(nb):
                hist[slot, f, off + b] = x[f, b]
    for f in range(4):
        g0 = gamma[f, 0]
        for b in range(nb):
            g[0, b] = g0
        for j in range(1, gamma.shape[1]):
            gj = gamma[f, j]
            for b in range(nb):
                g[0, b] = g[0, b] * x[f, b] + gj
        for b in range(nb):
            d = start + b
            y[f, d - y0] = mu[f, d] + sigma[f, d] * g[0, b]


@_inline
def run_block(prefix: np.ndarray, start: int, stop: int, cycle0: int, chol: np.ndarray,
              lags: np.ndarray, coef: np.ndarray, gamma: np.ndarray, mu: np.ndarray,
              sigma: np.ndarray, hist: np.ndarray, hist0: int, eps: np.ndarray, x: np.ndarray,
              g: np.ndarray, yb: np.ndarray, out: np.ndarray) -> None:
    """Cycles cycle0 .. cycle0 + C − 1 of devices start..stop-1 (their history stays in
    cache); features into ``out`` (N, C, 4)."""
    p = lags.shape[0]
    for c in range(out.shape[1]):
        n = cycle0 + c
        slot_coefficients(lags, p, n, coef)
        c2c_eps_block(prefix, start, stop, n, eps)
        var_gamma_psi_block(start, stop, p, n, eps, chol, coef, gamma, mu, sigma, hist, hist0,
                            x, g, yb, start)
        for d in range(start, stop):
            for f in range(4):
                out[d, c, f] = yb[f, d - start]


@_jit
def engine_step_kernel(lo: int, hi: int, prefix: np.ndarray, cycle: int, chol: np.ndarray,
                       lags: np.ndarray, gamma: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                       hist: np.ndarray, y: np.ndarray) -> None:
    """One cycle update for devices lo..hi-1: 4 normals, VAR(p), Γ, Ψ.

    ``prefix`` (N,) hash prefixes; ``chol`` (4, 4) L; ``lags`` (p, 4, 4) with lags[i] = A_{i+1};
    ``gamma`` (4, 5); ``mu``, ``sigma`` (4, N); ``hist`` (⌈N/BLOCK⌉, max(p, 1), 4, BLOCK)
    ring buffers by device block (slot m % p holds x_m, zero before the first cycle); ``y``
    (4, N) output. ``lo`` must be a multiple of BLOCK.
    """
    p = lags.shape[0]
    coef = np.empty((max(p, 1), 4, 4))
    slot_coefficients(lags, p, cycle, coef)
    eps = np.empty((4, BLOCK))
    x = np.empty((4, BLOCK))
    g = np.empty((1, BLOCK))
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        c2c_eps_block(prefix, start, stop, cycle, eps)
        var_gamma_psi_block(start, stop, p, cycle, eps, chol, coef, gamma, mu, sigma,
                            hist[start // BLOCK], start, x, g, y, 0)


@_jit
def engine_run_kernel(lo: int, hi: int, prefix: np.ndarray, cycle0: int, chol: np.ndarray,
                      lags: np.ndarray, gamma: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                      hist: np.ndarray, out: np.ndarray) -> None:
    """``out.shape[1]`` cycle updates from ``cycle0`` on, device block after device block;
    the same operations as that many :func:`engine_step_kernel` calls (same arguments, but
    ``out`` (N, C, 4))."""
    coef = np.empty((max(lags.shape[0], 1), 4, 4))
    eps = np.empty((4, BLOCK))
    x = np.empty((4, BLOCK))
    g = np.empty((1, BLOCK))
    yb = np.empty((4, BLOCK))
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        run_block(prefix, start, stop, cycle0, chol, lags, coef, gamma, mu, sigma,
                  hist[start // BLOCK], start, eps, x, g, yb, out)


@_jit
def feature_sequences_kernel(lo: int, hi: int, prefix: np.ndarray, chol: np.ndarray,
                             lags: np.ndarray, gamma: np.ndarray, mu: np.ndarray,
                             sigma: np.ndarray, y: np.ndarray) -> None:
    """Features y (N, C, 4) of cycles 0..C-1 by the exact VAR recursion (zero history);
    the same operations as :func:`engine_step_kernel` cycle after cycle. ``mu``, ``sigma``
    (4, N)."""
    p = lags.shape[0]
    coef = np.empty((max(p, 1), 4, 4))
    eps = np.empty((4, BLOCK))
    x = np.empty((4, BLOCK))
    g = np.empty((1, BLOCK))
    yb = np.empty((4, BLOCK))
    hist = np.empty((max(p, 1), 4, BLOCK))
    for start in range(lo, hi, BLOCK):
        stop = min(start + BLOCK, hi)
        hist[:] = 0.0
        run_block(prefix, start, stop, 0, chol, lags, coef, gamma, mu, sigma, hist, start,
                  eps, x, g, yb, y)


# --------------------------------------------------------------------------- switching
@_inline
def polyval(coef: np.ndarray, u: float) -> float:
    """Horner exactly as ``np.polyval`` (starts from 0: 0·u + c0)."""
    acc = 0.0
    for k in range(coef.shape[0]):
        acc = acc * u + coef[k]
    return acc


@_jit
def apply_kernel(lo: int, hi: int, u: np.ndarray, prefix: np.ndarray, cycle: np.ndarray,
                 hist: np.ndarray, y: np.ndarray, in_hrs: np.ndarray, in_lrs: np.ndarray,
                 r: np.ndarray, ur_thr: np.ndarray, tr_a: np.ndarray, tr_c: np.ndarray,
                 r_lrs_reset: np.ndarray, read_count: np.ndarray, chol: np.ndarray,
                 big: np.ndarray, gamma: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                 llrs: np.ndarray, hhrs: np.ndarray, consts: np.ndarray, hrs_log10: bool) -> None:
    """``DeviceArray.apply`` (method "var") for devices lo..hi-1, rule by rule as numpy.

    ``hist`` (N, 4p) holds [x_{n−1}, …, x_{n−p}]; ``big`` (4p, 4) the stacked A_i^T;
    ``consts`` = [G_LLRS, G_HHRS, r_max, Umax, η].
    """
    g_l, g_h, r_max, umax, eta = consts[0], consts[1], consts[2], consts[3], consts[4]
    dg = g_l - g_h
    n_hist = hist.shape[1]
    n_coef = gamma.shape[1]
    eps = np.empty(4)
    x = np.empty(4)
    for d in range(lo, hi):
        ud = u[d]
        do_set = (not in_lrs[d]) and ud <= y[d, 1]
        if do_set:
            r[d] = (g_l - 1.0 / y[d, 2]) / dg
            in_lrs[d] = True
            in_hrs[d] = False
            ur_thr[d] = y[d, 3]
        if in_lrs[d] and ud > ur_thr[d] and not do_set:  # first RESET: draw the next cycle
            u1 = ur_thr[d]
            r_lrs = r[d]
            r_lrs_reset[d] = r_lrs
            cycle[d] += 1
            hc = mix31(np.int64(prefix[d]) ^ cycle[d])
            for f in range(4):
                eps[f] = normal_of_hash(c2c_hash_after_cycle(hc, f))
            for f in range(4):
                acc = eps[0] * chol[f, 0]
                for j in range(1, 4):
                    acc += eps[j] * chol[f, j]
                x[f] = acc
            if n_hist:  # Σ_k hist[d, k] big[k, f] as four interleaved partial sums (k mod 4)
                for f in range(4):
                    a0 = hist[d, 0] * big[0, f]
                    a1 = hist[d, 1] * big[1, f]
                    a2 = hist[d, 2] * big[2, f]
                    a3 = hist[d, 3] * big[3, f]
                    for k in range(4, n_hist, 4):
                        a0 += hist[d, k] * big[k, f]
                        a1 += hist[d, k + 1] * big[k + 1, f]
                        a2 += hist[d, k + 2] * big[k + 2, f]
                        a3 += hist[d, k + 3] * big[k + 3, f]
                    x[f] += (a0 + a1) + (a2 + a3)
                for k in range(n_hist - 1, 3, -1):
                    hist[d, k] = hist[d, k - 4]
                for f in range(4):
                    hist[d, f] = x[f]
            for f in range(4):
                g = gamma[f, 0]
                for j in range(1, n_coef):
                    g = g * x[f] + gamma[f, j]
                y[d, f] = mu[d, f] + sigma[d, f] * g
            read_count[d] = 0
            in_lrs[d] = False
            i1 = (1.0 - r_lrs) * polyval(llrs, u1) + r_lrs * polyval(hhrs, u1)
            hrs = 10.0 ** y[d, 0] if hrs_log10 else y[d, 0]
            r_h = (g_l - 1.0 / hrs) / dg
            i2 = (1.0 - r_h) * polyval(llrs, umax) + r_h * polyval(hhrs, umax)
            span = max(umax - u1, 1e-12)
            tr_c[d] = i2
            tr_a[d] = (i1 - i2) / span ** eta
            have_r_h = True
        else:
            have_r_h = False
        if (not in_lrs[d]) and (not in_hrs[d]) and ud > ur_thr[d]:
            if not have_r_h:  # r(HRS_n); a first RESET above has just computed it
                hrs = 10.0 ** y[d, 0] if hrs_log10 else y[d, 0]
                r_h = (g_l - 1.0 / hrs) / dg
            if ud >= umax:  # full RESET
                r[d] = r_h
                in_hrs[d] = True
            else:  # partial RESET along the transition curve; the ratchet moves up
                i_tr = tr_a[d] * abs(umax - ud) ** eta + tr_c[d]
                pl = polyval(llrs, ud)
                ph = polyval(hhrs, ud)
                r_new = (i_tr - pl) / (ph - pl)
                lo_r = min(r_lrs_reset[d], r_h)
                hi_r = min(max(r_lrs_reset[d], r_h), r_max)
                r[d] = min(max(r_new, lo_r), hi_r)
                ur_thr[d] = ud

