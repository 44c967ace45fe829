"""Compiled (numba) kernels of the device model: the fast path behind the numpy reference.

Every kernel computes the numbers of the numpy code in :mod:`cosim.device.rng` and
:mod:`cosim.device.model` with the same operations in the same order where numpy fixes
one (hash steps, Box–Muller, Γ Horner, Ψ, I–V polynomials, the switching rules and reads),
with these exceptions: the VAR products ``L ε`` and ``Σ A_i x_{n−i}`` are summed in the
kernels' own order (numpy's is BLAS's or lag by lag); ``log``, ``cos`` and ``exp`` (for
``10**y`` and the transition curve's ``x**η = exp(η ln x)``) are the module's own
branch-free series (within 1 ulp of the C library's), so that the loops over devices
vectorize. Hashes and every integer state are bit-identical; normals and features agree to
1e-15 relative, the switching state to 1e-12 (tests/test_device_fast.py;
docs/device-model.md, "Speed"). The float32 kernels (``precision="float32"``) compute the
same keys' normals in float32 (within 1.5e-6 absolute).

Kernels are serial, release the GIL (``nogil``) and work on a device range ``[lo, hi)``;
:func:`split_run` spreads a call over a few Python threads. (Python threads rather than
numba's ``prange``: they need no threading layer, so they are safe when several threads
call kernels at once and in processes forked afterwards, whatever layer a machine has.)
Compiled code is cached on disk (``cache=True``): the first call on a machine compiles
(about a minute of CPU for all kernels), later processes load it.

Set the environment variable ``COSIM_DEVICE_BACKEND=numpy`` to disable this module.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

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
#: the same for reads (~1–4 ns per device: a thread's share must outweigh handing it over)
MIN_READS_PER_THREAD = 1 << 17


def default_threads() -> int:
    """Threads for kernel calls: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_backend(backend: str | None) -> str:
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


def split_run(kernel: Callable[..., None], n: int, args: tuple, threads: int | None = None,
              align: int = 1, min_per_thread: int = MIN_DEVICES_PER_THREAD) -> None:
    """Call ``kernel(lo, hi, *args)`` over ``[0, n)`` split into one range per thread
    (inner range boundaries are multiples of ``align``; at least ``min_per_thread``
    devices per thread, so that a thread's work outweighs handing it over). The calling
    thread runs the first range itself."""
    threads = default_threads() if threads is None else max(1, int(threads))
    threads = min(threads, max(1, n // max(1, min_per_thread)))
    if threads == 1:
        kernel(0, n, *args)
        return
    pool = _POOLS.get(threads)
    if pool is None:
        pool = _POOLS.setdefault(threads, ThreadPoolExecutor(max_workers=threads - 1,
                                                             thread_name_prefix="cosim-device"))
    edges = [min(n, (n * k // threads) // align * align) for k in range(threads)] + [n]
    futures = [pool.submit(kernel, edges[k], edges[k + 1], *args) for k in range(1, threads)]
    try:
        kernel(edges[0], edges[1], *args)
    finally:
        for f in futures:
            f.result()


if AVAILABLE:
    from llvmlite import ir as _ir
    from numba import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def f64_bits(typingctx, x):
        """The IEEE-754 bits of a double as int64 (an LLVM bitcast)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], _ir.IntType(64))
        return _types.int64(_types.float64), codegen

    @_intrinsic
    def bits_f64(typingctx, x):
        """The double with the given IEEE-754 bits (an LLVM bitcast)."""
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], _ir.DoubleType())
        return _types.float64(_types.int64), codegen

    def _mix31_i32(builder, v):
        """The IR of :func:`mix31` on an i32 value below 2**31 (32-bit multiplies: the low 31
        bits of a product depend only on the low 31 bits of its factors)."""
        i32 = _ir.IntType(32)
        mask = _ir.Constant(i32, MASK31)
        v = builder.xor(v, builder.lshr(v, _ir.Constant(i32, 16)))
        v = builder.and_(builder.mul(v, _ir.Constant(i32, MIX_C1)), mask)
        v = builder.xor(v, builder.lshr(v, _ir.Constant(i32, 15)))
        v = builder.and_(builder.mul(v, _ir.Constant(i32, MIX_C2)), mask)
        return builder.xor(v, builder.lshr(v, _ir.Constant(i32, 16)))

    @_intrinsic
    def absorb32(typingctx, h, w):
        """``mix31(h ^ w)`` as int32, in 32-bit arithmetic (h, w integers in [0, 2**31); the
        loops of the float32 paths then vectorize 16 devices per AVX-512 register)."""
        def codegen(context, builder, sig, args):
            i32 = _ir.IntType(32)
            a, b = (builder.trunc(x, i32) if x.type.width > 32 else x for x in args)
            return _mix31_i32(builder, builder.xor(a, b))
        return _types.int32(h, w), codegen

    @_intrinsic
    def log_reduce32(typingctx, h):
        """(k, f) for u1 = (h + 0.5)/2**31 = 2**−k·(1 + f), f in [√2/2 − 1, √2 − 1) (float32;
        integer steps in 32 bits): x = fl32(h + 0.5) = 2**e·m, m = 1 + f in [√2/2, √2),
        k = 31 − e; where k = 0 (u1 >= √2/2), f = u1 − 1 = −(2**31 − 1 − h + 0.5)/2**31 from
        the integer complement, so that it keeps its relative precision as u1 → 1."""
        def codegen(context, builder, sig, args):
            i32, f32 = _ir.IntType(32), _ir.FloatType()
            c = lambda v: _ir.Constant(i32, v)  # noqa: E731
            hv = args[0]
            x = builder.fadd(builder.sitofp(hv, f32), _ir.Constant(f32, 0.5))
            bits = builder.bitcast(x, i32)
            mbits = builder.or_(builder.and_(bits, c(0x7FFFFF)), c(0x3F800000))
            big = builder.zext(builder.icmp_signed(">=", mbits, c(0x3FB504F3)), i32)
            k = builder.sub(builder.sub(c(31 + 127), builder.lshr(bits, c(23))), big)
            m = builder.bitcast(builder.sub(mbits, builder.shl(big, c(23))), f32)
            f_m = builder.fsub(m, _ir.Constant(f32, 1.0))
            comp = builder.sitofp(builder.sub(c(MASK31), hv), f32)
            f_near = builder.fmul(builder.fadd(comp, _ir.Constant(f32, 0.5)),
                                  _ir.Constant(f32, -(2.0 ** -31)))
            f = builder.select(builder.icmp_signed("==", k, c(0)), f_near, f_m)
            return context.make_tuple(builder, sig.return_type,
                                      [builder.sitofp(k, f32), f])
        return _types.UniTuple(_types.float32, 2)(_types.int32), codegen

    @_intrinsic
    def quadrant_reduce32(typingctx, h2):
        """(θ, q) for the angle 2π u2, u2 = (h2 + 0.5)/2**31: q = round(4 u2) (int32, 0..4,
        from the integer bits) and θ = (4 u2 − q)·π/2 in [−π/4, π/4] (float32; 4 u2 − q from
        the exact integer difference h2 − q·2**29)."""
        def codegen(context, builder, sig, args):
            i32, f32 = _ir.IntType(32), _ir.FloatType()
            c = lambda v: _ir.Constant(i32, v)  # noqa: E731
            hv = args[0]
            q = builder.lshr(builder.add(hv, c(1 << 28)), c(29))  # < 2**32: unsigned is exact
            rest = builder.sub(hv, builder.shl(q, c(29)))  # in [−2**28, 2**28)
            t = builder.fadd(builder.sitofp(rest, f32), _ir.Constant(f32, 0.5))
            th = builder.fmul(t, _ir.Constant(f32, float(np.float32(math.pi / 2.0 * 2.0 ** -29))))
            return context.make_tuple(builder, sig.return_type, [th, q])
        return _types.Tuple((_types.float32, _types.int32))(_types.int32), codegen

    @_intrinsic
    def quadrant_select32(typingctx, q, c, s):
        """cos(θ + q·π/2) from c = cos θ, s = sin θ: c, −s, −c, s for q mod 4 = 0..3 (a
        select and a sign flip on the float32 bits)."""
        def codegen(context, builder, sig, args):
            i32, f32 = _ir.IntType(32), _ir.FloatType()
            qv, cv, sv = args
            odd = builder.icmp_unsigned("!=", builder.and_(qv, _ir.Constant(i32, 1)),
                                        _ir.Constant(i32, 0))
            res = builder.bitcast(builder.select(odd, sv, cv), i32)
            sign = builder.shl(builder.and_(builder.add(qv, _ir.Constant(i32, 1)),
                                            _ir.Constant(i32, 2)), _ir.Constant(i32, 30))
            return builder.bitcast(builder.xor(res, sign), f32)
        return _types.float32(_types.int32, _types.float32, _types.float32), codegen

    # error_model="numpy": float division without a zero check (inf/nan as in numpy), which
    # lets loops vectorize
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
    _inline = numba.njit(inline="always", nogil=True, cache=True, error_model="numpy")

    from numba.core.compiler import Compiler as _Compiler

    class _NoAliasCompiler(_Compiler):
        """numba's pipeline with the ``noalias`` flag: the kernel's array arguments are
        declared not to overlap (each is a distinct array), so loops that update several
        state arrays vectorize without run-time overlap checks."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.state.flags = self.state.flags.copy()
            self.state.flags.noalias = True

    _jit_noalias = numba.njit(nogil=True, cache=True, error_model="numpy",
                              pipeline_class=_NoAliasCompiler)
    # the float32 kernels (not bit-matched to numpy) also let LLVM fuse multiply-adds
    _jit_noalias32 = numba.njit(nogil=True, cache=True, error_model="numpy",
                                pipeline_class=_NoAliasCompiler, fastmath={"contract"})
else:  # keep the definitions importable (they are never called)
    def _jit(f):  # type: ignore[no-redef]
        return f

    _inline = _jit
    _jit_noalias = _jit
    _jit_noalias32 = _jit


# --------------------------------------------------------------------------- constants
# The constants of ``log_positive`` and ``cos_0_2pi`` are computed here at import from exact
# rationals: the reciprocal factorials and odd reciprocals of the Taylor series, and ln 2 and
# π to 200 bits from the arctangent series (ln 2 = 2 atanh(1/3); Machin's formula
# π = 16 atan(1/5) − 4 atan(1/239)), split into doubles whose sums carry the extra bits.
_SPLIT_BITS = 200  # binary places of the integer approximations of ln 2 and π


def _scaled_series(x: Fraction, alternating: bool, bits: int) -> int:
    """round(2**bits · Σ_j (±1)^j x^(2j+1)/(2j+1)) for 0 < x <= 1/3: atan(x) when
    ``alternating``, atanh(x) otherwise. Summed until a term is below 2**-(bits+8)."""
    total = Fraction(0)
    power = x
    j = 0
    eps = Fraction(1, 1 << (bits + 8))
    while power > eps:
        term = power / (2 * j + 1)
        total += -term if (alternating and j % 2) else term
        power *= x * x
        j += 1
    return round(total * (1 << bits))


def _ln2_scaled(bits: int = _SPLIT_BITS) -> int:
    """ln 2 · 2**bits, to within a few units (ln 2 = 2 atanh(1/3))."""
    return 2 * _scaled_series(Fraction(1, 3), False, bits)


def _pi_scaled(bits: int = _SPLIT_BITS) -> int:
    """π · 2**bits, to within a few units (Machin's formula)."""
    return (16 * _scaled_series(Fraction(1, 5), True, bits)
            - 4 * _scaled_series(Fraction(1, 239), True, bits))


def _split(value: int, bits: int, parts: int, keep: int) -> tuple[float, ...]:
    """``value / 2**bits`` as ``parts`` doubles with decreasing magnitudes whose exact sum
    approximates it; all but the last have only their leading ``keep`` significant bits
    (their low bits are zero, so small integer multiples of them are exact)."""
    out = []
    rest = Fraction(value, 1 << bits)
    for _ in range(parts - 1):
        exponent = math.frexp(float(rest))[1]  # rest in [2**(e−1), 2**e) up to rounding
        unit = Fraction(2) ** (exponent - keep)
        head = Fraction(math.floor(rest / unit)) * unit
        out.append(float(head))  # exact: at most ``keep`` <= 53 significant bits
        rest -= head
    out.append(float(rest))
    return tuple(out)


# ln 2 = LN2_HI + LN2_LO; LN2_HI has 37 significant bits, so k·LN2_HI is exact for |k| < 2**16
LN2_HI, LN2_LO = _split(_ln2_scaled(), _SPLIT_BITS, 2, 37)
# π/2 = PIO2_A + PIO2_B + PIO2_C (to ~150 bits); A and B have 50 significant bits, so q·A
# and q·B are exact for integers 0 <= q <= 7
PIO2_A, PIO2_B, PIO2_C = _split(_pi_scaled(), _SPLIT_BITS + 1, 3, 50)
TWO_OVER_PI = float(Fraction(1 << (_SPLIT_BITS + 1), _pi_scaled()))

#: terms of the atanh series kept after the leading one (see ``log_positive``)
LOG_TERMS = 10
#: 2/(2j+1), j = 1..LOG_TERMS: ln((1+s)/(1−s)) = 2s + s·Σ_j (2/(2j+1)) s^(2j)
LOG_COEF = tuple(float(Fraction(2, 2 * j + 1)) for j in range(1, LOG_TERMS + 1))
#: (−1)^j/(2j)!, j = 2..8: cos θ = 1 − θ²/2 + Σ_j COS_COEF[j−2] θ^(2j) (the next term is
#: below 2**-58 on |θ| <= π/4)
COS_COEF = tuple(float(Fraction((-1) ** j, math.factorial(2 * j))) for j in range(2, 9))
#: (−1)^j/(2j+1)!, j = 1..8: sin θ = θ + θ·Σ_j SIN_COEF[j−1] θ^(2j) (next term < 2**-62)
SIN_COEF = tuple(float(Fraction((-1) ** j, math.factorial(2 * j + 1))) for j in range(1, 9))
L1, L2, L3, L4, L5, L6, L7, L8, L9, L10 = LOG_COEF
C2, C3, C4, C5, C6, C7, C8 = COS_COEF
S1, S2, S3, S4, S5, S6, S7, S8 = SIN_COEF

TWO_POW_52 = 4503599627370496.0
EXP_BIAS = 1023
MANTISSA_MASK = (1 << 52) - 1
#: the smallest 52-bit mantissa field M with 1 + M/2**52 >= √2 (exact integer arithmetic:
#: (2**52 + M)**2 >= 2**105)
SQRT2_MANTISSA = math.isqrt(1 << 105) + 1 - (1 << 52)


# --------------------------------------------------------------------------- log
@_inline
def log_positive(x: float) -> float:
    """ln(x) for a positive normal double x, without branches or library calls.

    From the bit pattern, x = 2**k · m with m in [√2/2, √2) (the mantissa 1.M, halved when
    it is at least √2). With f = m − 1 (exact) and s = f/(2 + f) = (m − 1)/(m + 1),
    |s| <= 0.1716, the series ln m = 2 atanh(s) = 2s + s·R, R = Σ_{j>=1} 2 s^(2j)/(2j+1),
    is rewritten with 2s = f − s·f as ln m = f − s·(f − R): the rounding errors of s and R
    then only touch a correction at most a fifth the size of f. Ten terms of R leave a
    truncation below 2**-60 relative. k ln 2 is added as k·LN2_HI (exact) + k·LN2_LO.
    """
    bits = f64_bits(x)
    biased_exp = (bits >> 52) & 0x7FF
    mantissa = bits & MANTISSA_MASK
    halve = (mantissa + ((1 << 52) - SQRT2_MANTISSA)) >> 52  # 1 when 1.M >= √2
    m = bits_f64(((EXP_BIAS - halve) << 52) | mantissa)
    # k as a double from 2**52 + (biased exponent + halve), without an int → double conversion
    k = bits_f64(0x4330000000000000 | (biased_exp + halve)) - (TWO_POW_52 + EXP_BIAS)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z  # the polynomial in z as two halves in z², for shorter dependency chains
    r = z * ((L1 + w * (L3 + w * (L5 + w * (L7 + w * L9))))
             + z * (L2 + w * (L4 + w * (L6 + w * (L8 + w * L10)))))
    return k * LN2_HI + ((f - s * (f - r)) + k * LN2_LO)


# --------------------------------------------------------------------------- cosine
# The argument is the double x = fl(2π·u) that numpy's reference also passes to cos, not u
# itself: reducing u (u − q/4 is exact) would give cos(2πu) more exactly, but it differs
# from cos(fl(2πu)) by up to |sin x|·ulp(x)/2, i.e. by up to 3e-7 relative next to the
# zeros of cos at the RNG's arguments, and the kernels are to reproduce the numpy numbers.
@_inline
def cos_0_2pi(x: float) -> float:
    """cos(x) for 0 <= x <= 2π, without branches or library calls.

    q = nearest integer to x/(π/2) (0..4); θ = x − q·π/2 in [−π/4, π/4] as a pair
    θ_hi + θ_lo, using π/2 = PIO2_A + PIO2_B + PIO2_C: x − q·PIO2_A is exact (q·PIO2_A is
    exact and within a factor 2 of x), the next subtraction keeps its rounding error (the
    two-sum of Knuth), so θ is known to ~100 bits even where cos x is near zero. Then the
    Taylor series of cos θ (to θ^16) and sin θ (to θ^17), with the θ_lo corrections
    cos(θ_hi + θ_lo) ≈ cos θ_hi − θ_hi θ_lo and sin(θ_hi + θ_lo) ≈ sin θ_hi + θ_lo cos θ_hi;
    cos x is then cos θ, −sin θ, −cos θ or sin θ for q mod 4 = 0, 1, 2, 3.
    """
    q = math.floor(x * TWO_OVER_PI + 0.5)
    quadrant = f64_bits(q + TWO_POW_52) & 3  # q as an integer (0 <= q < 2**52)
    a = x - q * PIO2_A  # exact
    b = q * PIO2_B  # exact
    hi = a - b
    b_seen = hi - a  # two-sum (Knuth): hi + err == a − b exactly
    err = (a - (hi - b_seen)) - (b + b_seen)
    lo = err - q * PIO2_C
    z = hi * hi
    # cos: 1 − z/2 split so that its rounding error is kept (1 >= z/2: exact difference)
    half_z = 0.5 * z
    one_minus = 1.0 - half_z
    one_minus_err = (1.0 - one_minus) - half_z
    w = z * z  # both polynomials in z as two halves in z², for shorter dependency chains
    cos_tail = w * ((C2 + w * (C4 + w * (C6 + w * C8))) + z * (C3 + w * (C5 + w * C7)))
    cos_t = one_minus + (one_minus_err + (cos_tail - hi * lo))
    sin_tail = hi * z * ((S1 + w * (S3 + w * (S5 + w * S7)))
                         + z * (S2 + w * (S4 + w * (S6 + w * S8))))
    sin_t = hi + (lo * (1.0 - half_z) + sin_tail)
    res = cos_t if (quadrant & 1) == 0 else sin_t
    return -res if (quadrant == 1 or quadrant == 2) else res


@_jit
def log_array(x: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = log_positive(x[i])`` (to test the function against the C library)."""
    for i in range(x.size):
        out[i] = log_positive(x[i])


@_jit
def cos_array(x: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = cos_0_2pi(x[i])``, x in [0, 2π] (to test it against the C library)."""
    for i in range(x.size):
        out[i] = cos_0_2pi(x[i])


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


# --------------------------------------------------------------------------- float32 normals
# The float32 paths (``DeviceArray(precision="float32")``) draw the same keys and transform
# u1, u2 of the same hashes by the same Box–Muller formula, in float32 arithmetic: integers
# and floats of 32 bits fill an AVX-512 register with 16 devices instead of 8. u1 and u2 are
# split off the integer hash exactly (:func:`log_reduce32`, :func:`quadrant_reduce32`), so z
# differs from the float64 normal by float32 rounding only: at most 6.8e-7 absolute over
# 2**18 random hashes and both ends of the range (tests/test_device_fast.py bounds it at
# 1.5e-6; docs/device-model.md, "Speed", gives the effect on the statistics).
_F = np.float32
F32_ONE = _F(1.0)
F32_TWO = _F(2.0)
F32_LN2 = _F(math.log(2.0))
#: 2/(2j+1), j = 1..4 (float32: the next term is below 2**-24 relative)
F32_L1, F32_L2, F32_L3, F32_L4 = (_F(2.0 / 3.0), _F(2.0 / 5.0), _F(2.0 / 7.0), _F(2.0 / 9.0))
#: (−1)^j/(2j)!, j = 1..5 and (−1)^j/(2j+1)!, j = 1..4 on |θ| <= π/4
F32_C1, F32_C2, F32_C3, F32_C4, F32_C5 = (_F((-1) ** j / math.factorial(2 * j)) for j in range(1, 6))
F32_S1, F32_S2, F32_S3, F32_S4 = (_F((-1) ** j / math.factorial(2 * j + 1)) for j in range(1, 5))


@_inline
def neg_log_unit32(h: int) -> float:
    """−ln u1 in float32, u1 = (h + 0.5)/2**31 for a hash h (int32): u1 = 2**−k·(1 + f)
    (:func:`log_reduce32`), −ln u1 = k ln 2 − ln(1 + f), ln(1 + f) = 2 atanh(s) with
    s = f/(2 + f) (four terms of the series)."""
    k, f = log_reduce32(h)
    s = f / (F32_TWO + f)
    z = s * s
    ln_m = F32_TWO * s + s * z * (F32_L1 + z * (F32_L2 + z * (F32_L3 + z * F32_L4)))
    return k * F32_LN2 - ln_m


@_inline
def cos_unit32(h2: int) -> float:
    """cos(2π u2) in float32, u2 = (h2 + 0.5)/2**31: q = round(4 u2), θ = 2π u2 − q·π/2 in
    [−π/4, π/4] (:func:`quadrant_reduce32`), then cos θ, −sin θ, −cos θ or sin θ for
    q mod 4 = 0..3 (Taylor series to θ^10 and θ^9)."""
    th, q = quadrant_reduce32(h2)
    z = th * th
    c = F32_ONE + z * (F32_C1 + z * (F32_C2 + z * (F32_C3 + z * (F32_C4 + z * F32_C5))))
    s = th + th * z * (F32_S1 + z * (F32_S2 + z * (F32_S3 + z * F32_S4)))
    return quadrant_select32(q, c, s)


@_inline
def scaled_normal32(h: int, scale: float) -> float:
    """sqrt(scale·(−ln u1))·cos(2π u2) in float32 for a finished key hash ``h`` (int32);
    ``scale`` = 2 gives the standard normal of ``rng.normal_from_hash``."""
    return math.sqrt(scale * neg_log_unit32(h)) * cos_unit32(absorb32(h, SECOND))


@_jit_noalias32
def normals32_kernel(h: np.ndarray, out: np.ndarray) -> None:
    """``out[i]`` = the float32 standard normal of hash ``h[i]`` (int32 → float32; to test
    the float32 transform against ``rng.normal_from_hash``)."""
    two = F32_TWO
    for i in range(np.uint64(h.size)):
        out[i] = scaled_normal32(h[i], two)


@_jit_noalias32
def c2c_hashes32(start: int, nb: int, prefix: np.ndarray, cycle: np.ndarray, h0: np.ndarray,
                 h1: np.ndarray, h2: np.ndarray, h3: np.ndarray) -> None:
    """The finished hashes of ε_f, f = 0..3 (key (seed, device, cycle, f, 0)) of devices
    start..start+nb-1 into int32 rows, in 32-bit arithmetic."""
    base = np.uint64(start)
    zero = np.int32(0)
    for b in range(np.uint64(nb)):
        d = base + b
        hc = absorb32(prefix[d], cycle[d])
        h0[b] = absorb32(absorb32(hc, np.int32(0)), zero)
        h1[b] = absorb32(absorb32(hc, np.int32(1)), zero)
        h2[b] = absorb32(absorb32(hc, np.int32(2)), zero)
        h3[b] = absorb32(absorb32(hc, np.int32(3)), zero)


@_jit_noalias32
def normals32_row(nb: int, h: np.ndarray, z: np.ndarray, out: np.ndarray) -> None:
    """Standard normals of the hashes ``h[:nb]``: float32 into ``z`` (a loop of 32-bit
    values only), then widened into ``out`` (float64)."""
    two = F32_TWO
    for b in range(np.uint64(nb)):
        z[b] = scaled_normal32(h[b], two)
    for b in range(np.uint64(nb)):
        out[b] = z[b]


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
# --------------------------------------------------------------------------- exp, pow
#: 1/k!, k = 2..13: e^r = 1 + r + r²·Σ_k EXP_COEF[k−2] r^(k−2) (next term < 2**-60 on |r| <= ln2/2)
EXP_COEF = tuple(float(Fraction(1, math.factorial(k))) for k in range(2, 14))
E2, E3, E4, E5, E6, E7, E8, E9, E10, E11, E12, E13 = EXP_COEF
INV_LN2 = float(Fraction(1 << _SPLIT_BITS, _ln2_scaled()))
#: ln 10 (the double nearest to it)
LN10 = math.log(10.0)
#: |x| bound of ``exp_series`` (keeps 2**k a normal double)
EXP_LIMIT = 700.0


@_inline
def exp_series(x: float) -> float:
    """e**x for |x| <= 700 (clamped there), without branches or library calls (within
    ~1 ulp of the C library): x = k ln 2 + r with |r| <= ln2/2 (k ln 2 subtracted in two
    parts as in ``log_positive``), e^r = 1 + (r + r²·P(r)) with P the Taylor series to r^11,
    scaled by 2**k built from its bit pattern."""
    x = min(max(x, -EXP_LIMIT), EXP_LIMIT)
    k = math.floor(x * INV_LN2 + 0.5)
    kf = float(k)
    r = (x - kf * LN2_HI) - kf * LN2_LO
    p = ((((((((((E13 * r + E12) * r + E11) * r + E10) * r + E9) * r + E8) * r + E7) * r + E6)
             * r + E5) * r + E4) * r + E3) * r + E2
    q = r + (r * r) * p
    return (1.0 + q) * bits_f64((k + EXP_BIAS) << 52)


@_inline
def pow_positive(x: float, e: float) -> float:
    """x**e = exp(e·ln x) for a positive normal x (relative error below ~|e ln x|·2**-52
    plus a few ulp: 3e-15 on the transition curve's arguments)."""
    return exp_series(e * log_positive(x))


@_jit
def exp_array(x: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = exp_series(x[i])`` (to test it against the C library)."""
    for i in range(x.size):
        out[i] = exp_series(x[i])


@_jit
def pow_array(x: np.ndarray, e: float, out: np.ndarray) -> None:
    """``out[i] = pow_positive(x[i], e)`` (to test it against the C library)."""
    for i in range(x.size):
        out[i] = pow_positive(x[i], e)


# --------------------------------------------------------------------------- switching
#: devices per block of the switching kernel; the lag history is stored by block
SWITCH_BLOCK = 2048
#: coefficients of the I–V polynomials as the kernels take them (leading zeros pad P_HHRS)
POLY_N = 7
#: coefficients of each Γ polynomial
GAMMA_N = 5
#: ``consts`` of :func:`switch_kernel`
(C_GL, C_DG, C_RMAX, C_UMAX, C_ETA, C_PL_UMAX, C_PH_UMAX, N_CONSTS) = range(8)


@_inline
def poly7(c0: float, c1: float, c2: float, c3: float, c4: float, c5: float, c6: float,
          u: float) -> float:
    """Horner as ``np.polyval`` (from 0: 0·u + c0) on POLY_N = 7 coefficients; leading zero
    coefficients leave the value unchanged."""
    return ((((((0.0 * u + c0) * u + c1) * u + c2) * u + c3) * u + c4) * u + c5) * u + c6


@_inline
def gamma5(g0: float, g1: float, g2: float, g3: float, g4: float, x: float) -> float:
    """Γ_f(x) from its GAMMA_N = 5 coefficients, Horner from the highest power, as
    ``gamma_transform``."""
    return (((g0 * x + g1) * x + g2) * x + g3) * x + g4


@_inline
def inv_hrs_of(y0: float, hrs_log10: bool) -> float:
    """1/HRS (S) from the HRS feature (log10 Ω or Ω)."""
    return exp_series(-LN10 * y0) if hrs_log10 else 1.0 / y0


# The loops over the devices of a block below are written so that LLVM vectorizes them:
# unsigned indices (no negative-index wraparound); every value loaded unconditionally;
# coefficients held in scalars; no store of a conditional choice between a new value and
# the old one in the loop that computes the new value (LLVM turns that into slow scatter
# code): new values go to block scratch rows, and a separate loop merges them (``merge``);
# and every array a loop touches is its own argument of :func:`switch_block`, compiled
# with ``noalias``, so no run-time overlap checks are needed.

@_inline
def merge(dst: np.ndarray, start: int, nb: int, new: np.ndarray, mask: np.ndarray) -> None:
    """dst[start + b] = new[b] where mask[b], for b < nb."""
    base = np.uint64(start)
    for b in range(np.uint64(nb)):
        d = base + b
        v = new[b]
        old = dst[d]
        dst[d] = v if mask[b] else old


@_jit_noalias
def switch_rules(start: int, nb: int, ub: np.ndarray, y_us: np.ndarray, y_lrs: np.ndarray,
                 y_ur: np.ndarray, in_lrs: np.ndarray, in_hrs: np.ndarray, r: np.ndarray,
                 ur_thr: np.ndarray, r_lrs_reset: np.ndarray, cycle: np.ndarray,
                 read_count: np.ndarray, prefix: np.ndarray, read_key: np.ndarray,
                 mk_draw: np.ndarray, mk_move: np.ndarray, g_l: float, dg: float):
    """SET, and which devices start a RESET (draw their next cycle: cycle + 1, read counter
    0, read key of the new cycle, r_LRS kept) or move along the transition curve. Returns
    (draws, moves, smallest and largest new cycle of the drawing devices)."""
    nd = 0
    nm = 0
    cmin = np.int64(2**62)
    cmax = np.int64(-1)
    base = np.uint64(start)
    for b in range(np.uint64(nb)):
        d = base + b
        ud = ub[b]
        lrs = in_lrs[d]
        hrs = in_hrs[d]
        us_n = y_us[d]
        r_old = r[d]
        r_set = (g_l - 1.0 / y_lrs[d]) / dg
        thr_old = ur_thr[d]
        thr_set = y_ur[d]
        do_set = (not lrs) & (ud <= us_n)
        rr = r_set if do_set else r_old
        thr = thr_set if do_set else thr_old
        lrs2 = lrs | do_set
        hrs2 = hrs & (not do_set)
        draw = lrs2 & (ud > thr) & (not do_set)
        lrs3 = lrs2 & (not draw)
        move = (not lrs3) & (not hrs2) & (ud > thr)
        n_new = cycle[d] + np.int64(draw)
        r[d] = rr
        ur_thr[d] = thr
        in_lrs[d] = lrs3
        in_hrs[d] = hrs2
        mk_draw[b] = draw
        mk_move[b] = move
        nd += np.int64(draw)
        nm += np.int64(move)
        cmin = min(cmin, n_new if draw else cmin)
        cmax = max(cmax, n_new if draw else cmax)
    if nd:  # the drawing devices start their next cycle
        for b in range(np.uint64(nb)):
            d = base + b
            draw = mk_draw[b]
            rr = r[d]
            rlr_old = r_lrs_reset[d]
            rc_old = read_count[d]
            c_new = cycle[d] + np.int64(draw)
            key_old = np.int64(read_key[d])
            key_new = np.int64(absorb32(absorb32(prefix[d], c_new), np.int32(16)))
            r_lrs_reset[d] = rr if draw else rlr_old
            read_count[d] = 0 if draw else rc_old
            read_key[d] = key_new if draw else key_old
            cycle[d] = c_new
    return nd, nm, cmin, cmax


@_jit_noalias
def normals64_row(nb: int, h: np.ndarray, out: np.ndarray) -> None:
    """Standard normals (float64, ``normal_of_hash``) of the int32 hashes ``h[:nb]``; the
    second uniform's hash in 32-bit arithmetic (the same integer)."""
    for b in range(np.uint64(nb)):
        hh = h[b]
        u2 = (absorb32(hh, SECOND) + 0.5) * INV_TWO_POW_31
        out[b] = radius_of_hash(hh) * cos_0_2pi(TWO_PI * u2)


@_jit
def switch_normals(start: int, nb: int, prefix: np.ndarray, cycle: np.ndarray, e0: np.ndarray,
                   e1: np.ndarray, e2: np.ndarray, e3: np.ndarray, hashes: np.ndarray,
                   z32: np.ndarray, normals32: bool) -> None:
    """ε of the devices of the block at their (new) cycle (the numbers of
    ``rng.c2c_normals``): the key hashes in 32-bit arithmetic into ``hashes`` (4,
    SWITCH_BLOCK) int32 scratch, then Box–Muller row by row, in float64 or, with
    ``normals32``, in float32 (``z32``: SWITCH_BLOCK float32 scratch)."""
    c2c_hashes32(start, nb, prefix, cycle, hashes[0], hashes[1], hashes[2], hashes[3])
    if normals32:
        normals32_row(nb, hashes[0], z32, e0)
        normals32_row(nb, hashes[1], z32, e1)
        normals32_row(nb, hashes[2], z32, e2)
        normals32_row(nb, hashes[3], z32, e3)
    else:
        normals64_row(nb, hashes[0], e0)
        normals64_row(nb, hashes[1], e1)
        normals64_row(nb, hashes[2], e2)
        normals64_row(nb, hashes[3], e3)


@_jit_noalias
def switch_var_uniform(nb: int, p: int, k: int, ring: np.ndarray, chol: np.ndarray,
                       lags: np.ndarray, e0: np.ndarray, e1: np.ndarray,
                       e2: np.ndarray, e3: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                       x2: np.ndarray, x3: np.ndarray, mk_draw: np.ndarray) -> None:
    """VAR(p) for a block whose drawing devices share the new cycle n (k = n mod p):
    x = L ε + Σ_s A_{i(s)} ring[s] over all devices of the block, i(s) = (k − s − 1) mod p + 1, stored into ring slot k
    for the drawing devices. ``ring`` (p, 4, SWITCH_BLOCK) is the block's history: slot s
    holds x_m with m ≡ s (mod p). Per feature: x_f = Σ_j L_fj ε_j, then slot after slot
    x_f += (((c_f0 h_0 + c_f1 h_1) + c_f2 h_2) + c_f3 h_3)."""
    a00, a01, a02, a03 = (chol[0, 0], chol[0, 1], chol[0, 2], chol[0, 3])
    a10, a11, a12, a13 = (chol[1, 0], chol[1, 1], chol[1, 2], chol[1, 3])
    a20, a21, a22, a23 = (chol[2, 0], chol[2, 1], chol[2, 2], chol[2, 3])
    a30, a31, a32, a33 = (chol[3, 0], chol[3, 1], chol[3, 2], chol[3, 3])
    for b in range(np.uint64(nb)):
        v0, v1, v2, v3 = e0[b], e1[b], e2[b], e3[b]
        x0[b] = a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3
        x1[b] = a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3
        x2[b] = a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3
        x3[b] = a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3
    for s in range(0, p - 1, 2):  # two slots per pass over the block
        h0, h1, h2, h3 = ring[s, 0], ring[s, 1], ring[s, 2], ring[s, 3]
        g0, g1, g2, g3 = ring[s + 1, 0], ring[s + 1, 1], ring[s + 1, 2], ring[s + 1, 3]
        a = lags[(k - s - 1) % p]
        c = lags[(k - s - 2) % p]
        a00, a01, a02, a03 = (a[0, 0], a[0, 1], a[0, 2], a[0, 3])
        a10, a11, a12, a13 = (a[1, 0], a[1, 1], a[1, 2], a[1, 3])
        a20, a21, a22, a23 = (a[2, 0], a[2, 1], a[2, 2], a[2, 3])
        a30, a31, a32, a33 = (a[3, 0], a[3, 1], a[3, 2], a[3, 3])
        c00, c01, c02, c03 = (c[0, 0], c[0, 1], c[0, 2], c[0, 3])
        c10, c11, c12, c13 = (c[1, 0], c[1, 1], c[1, 2], c[1, 3])
        c20, c21, c22, c23 = (c[2, 0], c[2, 1], c[2, 2], c[2, 3])
        c30, c31, c32, c33 = (c[3, 0], c[3, 1], c[3, 2], c[3, 3])
        for b in range(np.uint64(nb)):
            v0, v1, v2, v3 = h0[b], h1[b], h2[b], h3[b]
            w0, w1, w2, w3 = g0[b], g1[b], g2[b], g3[b]
            x0[b] = ((x0[b] + (((a00 * v0 + a01 * v1) + a02 * v2) + a03 * v3))
                     + (((c00 * w0 + c01 * w1) + c02 * w2) + c03 * w3))
            x1[b] = ((x1[b] + (((a10 * v0 + a11 * v1) + a12 * v2) + a13 * v3))
                     + (((c10 * w0 + c11 * w1) + c12 * w2) + c13 * w3))
            x2[b] = ((x2[b] + (((a20 * v0 + a21 * v1) + a22 * v2) + a23 * v3))
                     + (((c20 * w0 + c21 * w1) + c22 * w2) + c23 * w3))
            x3[b] = ((x3[b] + (((a30 * v0 + a31 * v1) + a32 * v2) + a33 * v3))
                     + (((c30 * w0 + c31 * w1) + c32 * w2) + c33 * w3))
    if p % 2:
        s = p - 1
        h0, h1, h2, h3 = ring[s, 0], ring[s, 1], ring[s, 2], ring[s, 3]
        a = lags[(k - s - 1) % p]
        a00, a01, a02, a03 = (a[0, 0], a[0, 1], a[0, 2], a[0, 3])
        a10, a11, a12, a13 = (a[1, 0], a[1, 1], a[1, 2], a[1, 3])
        a20, a21, a22, a23 = (a[2, 0], a[2, 1], a[2, 2], a[2, 3])
        a30, a31, a32, a33 = (a[3, 0], a[3, 1], a[3, 2], a[3, 3])
        for b in range(np.uint64(nb)):
            v0, v1, v2, v3 = h0[b], h1[b], h2[b], h3[b]
            x0[b] += ((a00 * v0 + a01 * v1) + a02 * v2) + a03 * v3
            x1[b] += ((a10 * v0 + a11 * v1) + a12 * v2) + a13 * v3
            x2[b] += ((a20 * v0 + a21 * v1) + a22 * v2) + a23 * v3
            x3[b] += ((a30 * v0 + a31 * v1) + a32 * v2) + a33 * v3
    if p:
        merge(ring[k, 0], 0, nb, x0, mk_draw)
        merge(ring[k, 1], 0, nb, x1, mk_draw)
        merge(ring[k, 2], 0, nb, x2, mk_draw)
        merge(ring[k, 3], 0, nb, x3, mk_draw)


@_jit_noalias
def switch_var_mixed(start: int, nb: int, p: int, ring: np.ndarray, cycle: np.ndarray,
                     chol: np.ndarray, lags: np.ndarray, e0: np.ndarray, e1: np.ndarray,
                     e2: np.ndarray, e3: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                     x2: np.ndarray, x3: np.ndarray, mk_draw: np.ndarray) -> None:
    """VAR(p) device by device (drawing devices at different cycles): the operations of
    :func:`switch_var_uniform` with each device's own rotation of the lags."""
    for b in range(nb):
        if not mk_draw[b]:
            continue
        n = cycle[start + b]
        k = n % p if p else 0
        v0, v1, v2, v3 = e0[b], e1[b], e2[b], e3[b]
        a = chol
        t0 = a[0, 0] * v0 + a[0, 1] * v1 + a[0, 2] * v2 + a[0, 3] * v3
        t1 = a[1, 0] * v0 + a[1, 1] * v1 + a[1, 2] * v2 + a[1, 3] * v3
        t2 = a[2, 0] * v0 + a[2, 1] * v1 + a[2, 2] * v2 + a[2, 3] * v3
        t3 = a[3, 0] * v0 + a[3, 1] * v1 + a[3, 2] * v2 + a[3, 3] * v3
        for s in range(p):
            a = lags[(k - s - 1) % p]
            v0, v1, v2, v3 = ring[s, 0, b], ring[s, 1, b], ring[s, 2, b], ring[s, 3, b]
            t0 += ((a[0, 0] * v0 + a[0, 1] * v1) + a[0, 2] * v2) + a[0, 3] * v3
            t1 += ((a[1, 0] * v0 + a[1, 1] * v1) + a[1, 2] * v2) + a[1, 3] * v3
            t2 += ((a[2, 0] * v0 + a[2, 1] * v1) + a[2, 2] * v2) + a[2, 3] * v3
            t3 += ((a[3, 0] * v0 + a[3, 1] * v1) + a[3, 2] * v2) + a[3, 3] * v3
        x0[b], x1[b], x2[b], x3[b] = t0, t1, t2, t3
        if p:
            ring[k, 0, b], ring[k, 1, b], ring[k, 2, b], ring[k, 3, b] = t0, t1, t2, t3


@_jit_noalias
def switch_features(start: int, nb: int, x0: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                    x3: np.ndarray, mk_draw: np.ndarray, y0: np.ndarray, y1: np.ndarray,
                    y2: np.ndarray, y3: np.ndarray, m0: np.ndarray, m1: np.ndarray,
                    m2: np.ndarray, m3: np.ndarray, s0: np.ndarray, s1: np.ndarray,
                    s2: np.ndarray, s3: np.ndarray, gamma: np.ndarray, r: np.ndarray,
                    ur_thr: np.ndarray, tr_a: np.ndarray, tr_c: np.ndarray, llrs: np.ndarray,
                    hhrs: np.ndarray, consts: np.ndarray, hrs_log10: bool, n0: np.ndarray,
                    n1: np.ndarray, n2: np.ndarray, n3: np.ndarray, na: np.ndarray,
                    nc: np.ndarray) -> None:
    """Drawing devices: y = μ + σ Γ(x), then the transition curve from
    (UR threshold, I(r_LRS)) to (Umax, I(r(HRS_new))) as a, c (computed for the block into
    the scratch rows n0..n3, na, nc, then merged)."""
    g_l, dg, umax, eta = consts[C_GL], consts[C_DG], consts[C_UMAX], consts[C_ETA]
    pl_umax, ph_umax = consts[C_PL_UMAX], consts[C_PH_UMAX]
    l0, l1, l2, l3, l4, l5, l6 = llrs[0], llrs[1], llrs[2], llrs[3], llrs[4], llrs[5], llrs[6]
    h0, h1, h2, h3, h4, h5, h6 = hhrs[0], hhrs[1], hhrs[2], hhrs[3], hhrs[4], hhrs[5], hhrs[6]
    a00, a01, a02, a03, a04 = gamma[0, 0], gamma[0, 1], gamma[0, 2], gamma[0, 3], gamma[0, 4]
    a10, a11, a12, a13, a14 = gamma[1, 0], gamma[1, 1], gamma[1, 2], gamma[1, 3], gamma[1, 4]
    a20, a21, a22, a23, a24 = gamma[2, 0], gamma[2, 1], gamma[2, 2], gamma[2, 3], gamma[2, 4]
    a30, a31, a32, a33, a34 = gamma[3, 0], gamma[3, 1], gamma[3, 2], gamma[3, 3], gamma[3, 4]
    base = np.uint64(start)
    for b in range(np.uint64(nb)):
        d = base + b
        v0 = m0[d] + s0[d] * gamma5(a00, a01, a02, a03, a04, x0[b])
        n0[b] = v0
        n1[b] = m1[d] + s1[d] * gamma5(a10, a11, a12, a13, a14, x1[b])
        n2[b] = m2[d] + s2[d] * gamma5(a20, a21, a22, a23, a24, x2[b])
        n3[b] = m3[d] + s3[d] * gamma5(a30, a31, a32, a33, a34, x3[b])
        r_h = (g_l - inv_hrs_of(v0, hrs_log10)) / dg
        u1 = ur_thr[d]
        r_lrs = r[d]
        i1 = ((1.0 - r_lrs) * poly7(l0, l1, l2, l3, l4, l5, l6, u1)
              + r_lrs * poly7(h0, h1, h2, h3, h4, h5, h6, u1))
        i2 = (1.0 - r_h) * pl_umax + r_h * ph_umax
        span = max(umax - u1, 1e-12)
        na[b] = (i1 - i2) / pow_positive(span, eta)
        nc[b] = i2
    merge(y0, start, nb, n0, mk_draw)
    merge(y1, start, nb, n1, mk_draw)
    merge(y2, start, nb, n2, mk_draw)
    merge(y3, start, nb, n3, mk_draw)
    merge(tr_a, start, nb, na, mk_draw)
    merge(tr_c, start, nb, nc, mk_draw)


@_jit_noalias
def switch_reset(start: int, nb: int, ub: np.ndarray, mk_move: np.ndarray, y_hrs: np.ndarray,
                 r: np.ndarray, in_hrs: np.ndarray, ur_thr: np.ndarray, tr_a: np.ndarray,
                 tr_c: np.ndarray, r_lrs_reset: np.ndarray, llrs: np.ndarray, hhrs: np.ndarray,
                 consts: np.ndarray, hrs_log10: bool, rn: np.ndarray, rp: np.ndarray,
                 mk_full: np.ndarray, mk_part: np.ndarray) -> None:
    """Moving devices: full RESET (U >= Umax: r = r(HRS_n), in HRS) or partial RESET along
    the transition curve, clipped, with the ratchet UR threshold ← U (computed for the block
    into the scratch rows ``rn``, ``rp``, then merged; the transition curve only when some
    device of the block resets partially)."""
    g_l, dg, r_max = consts[C_GL], consts[C_DG], consts[C_RMAX]
    umax, eta = consts[C_UMAX], consts[C_ETA]
    l0, l1, l2, l3, l4, l5, l6 = llrs[0], llrs[1], llrs[2], llrs[3], llrs[4], llrs[5], llrs[6]
    h0, h1, h2, h3, h4, h5, h6 = hhrs[0], hhrs[1], hhrs[2], hhrs[3], hhrs[4], hhrs[5], hhrs[6]
    base = np.uint64(start)
    n_part = 0
    for b in range(np.uint64(nb)):
        d = base + b
        ud = ub[b]
        mv = mk_move[b]
        full = ud >= umax
        rn[b] = (g_l - inv_hrs_of(y_hrs[d], hrs_log10)) / dg  # r(HRS_n)
        mk_full[b] = mv & full
        part = mv & (not full)
        mk_part[b] = part
        n_part += np.int64(part)
    if n_part:
        for b in range(np.uint64(nb)):
            d = base + b
            ud = ub[b]
            r_h = rn[b]
            dist = max(abs(umax - ud), 1e-300)  # > 0 on every partial RESET; keeps ln defined
            i_tr = tr_a[d] * pow_positive(dist, eta) + tr_c[d]
            pl = poly7(l0, l1, l2, l3, l4, l5, l6, ud)
            ph = poly7(h0, h1, h2, h3, h4, h5, h6, ud)
            r_new = (i_tr - pl) / (ph - pl)
            rl = r_lrs_reset[d]
            lo_r = min(rl, r_h)
            hi_r = min(max(rl, r_h), r_max)
            rp[b] = min(max(r_new, lo_r), hi_r)
        merge(rn, 0, nb, rp, mk_part)
        merge(ur_thr, start, nb, ub, mk_part)
    merge(r, start, nb, rn, mk_move)
    for b in range(np.uint64(nb)):
        d = base + b
        in_hrs[d] = in_hrs[d] | mk_full[b]


@_jit_noalias
def switch_block(start: int, nb: int, ub: np.ndarray, prefix: np.ndarray, cycle: np.ndarray,
                 read_count: np.ndarray, read_key: np.ndarray, in_hrs: np.ndarray,
                 in_lrs: np.ndarray, r: np.ndarray, ur_thr: np.ndarray, tr_a: np.ndarray,
                 tr_c: np.ndarray, r_lrs_reset: np.ndarray, y0: np.ndarray, y1: np.ndarray,
                 y2: np.ndarray, y3: np.ndarray, m0: np.ndarray, m1: np.ndarray, m2: np.ndarray, m3: np.ndarray,
                 s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, s3: np.ndarray,
                 ring: np.ndarray, chol: np.ndarray, lags: np.ndarray, gamma: np.ndarray,
                 llrs: np.ndarray, hhrs: np.ndarray, consts: np.ndarray, hrs_log10: bool,
                 mk_draw: np.ndarray, mk_move: np.ndarray, mk_full: np.ndarray,
                 mk_part: np.ndarray, e0: np.ndarray, e1: np.ndarray, e2: np.ndarray,
                 e3: np.ndarray, x0: np.ndarray, x1: np.ndarray, x2: np.ndarray,
                 x3: np.ndarray, n0: np.ndarray,
                 n1: np.ndarray, n2: np.ndarray, n3: np.ndarray, na: np.ndarray,
                 nc: np.ndarray, rn: np.ndarray, normals32: bool, hashes: np.ndarray,
                 z32: np.ndarray) -> None:
    """One block (devices start..start+nb-1, block ``ring``) of :func:`switch_kernel`;
    the trailing arrays are scratch of SWITCH_BLOCK entries (normals, latents, new values,
    flags; ``hashes``, ``z32`` for the float32 normals). Every array argument is distinct
    memory (``noalias``)."""
    p = lags.shape[0]
    nd, nm, cmin, cmax = switch_rules(start, nb, ub, y1, y2, y3, in_lrs, in_hrs, r, ur_thr,
                                      r_lrs_reset, cycle, read_count, prefix, read_key,
                                      mk_draw, mk_move, consts[C_GL], consts[C_DG])
    if nd:
        switch_normals(start, nb, prefix, cycle, e0, e1, e2, e3, hashes, z32, normals32)
        if cmin == cmax:
            switch_var_uniform(nb, p, cmin % p if p else 0, ring, chol, lags, e0, e1, e2, e3,
                               x0, x1, x2, x3, mk_draw)
        else:
            switch_var_mixed(start, nb, p, ring, cycle, chol, lags, e0, e1, e2, e3, x0, x1, x2,
                             x3, mk_draw)
        switch_features(start, nb, x0, x1, x2, x3, mk_draw, y0, y1, y2, y3, m0, m1, m2, m3,
                        s0, s1, s2, s3, gamma, r, ur_thr, tr_a, tr_c, llrs, hhrs, consts,
                        hrs_log10, n0, n1, n2, n3, na, nc)
    if nm:
        switch_reset(start, nb, ub, mk_move, y0, r, in_hrs, ur_thr, tr_a, tr_c, r_lrs_reset,
                     llrs, hhrs, consts, hrs_log10, rn, na, mk_full, mk_part)


@_jit
def switch_kernel(lo: int, hi: int, u: np.ndarray, prefix: np.ndarray, cycle: np.ndarray,
                  read_count: np.ndarray, read_key: np.ndarray, in_hrs: np.ndarray,
                  in_lrs: np.ndarray, r: np.ndarray, ur_thr: np.ndarray, tr_a: np.ndarray,
                  tr_c: np.ndarray, r_lrs_reset: np.ndarray, yf: np.ndarray, muf: np.ndarray, sigf: np.ndarray,
                  ring: np.ndarray, chol: np.ndarray, lags: np.ndarray, gamma: np.ndarray,
                  llrs: np.ndarray, hhrs: np.ndarray, consts: np.ndarray,
                  hrs_log10: bool, normals32: bool) -> None:
    """``DeviceArray.apply`` (method "var") for devices lo..hi-1, block after block of
    SWITCH_BLOCK devices, each in one pass (:func:`switch_block`): SET; first RESET (cycle
    + 1, four normals, VAR(p), Γ, Ψ, transition curve); partial and full RESET. ``lo`` must
    be a multiple of SWITCH_BLOCK.

    ``read_key`` (N,) uint32: hash of (seed, device, cycle, 16), kept with the cycle.
    ``u`` (N,) or (1,) levels, V; ``yf``, ``muf``, ``sigf`` (4, N) feature-major;
    ``ring`` (⌈N/SWITCH_BLOCK⌉, p, 4, SWITCH_BLOCK): slot s of a device holds x_m with
    m ≡ s (mod p), zero before m = 0; ``lags`` (p, 4, 4) with lags[i] = A_{i+1};
    ``gamma`` (4, GAMMA_N); ``llrs``, ``hhrs`` (POLY_N,) padded I–V coefficients;
    ``consts`` indexed by C_GL, C_DG, ... (C_PL_UMAX = P_LLRS(Umax) as ``np.polyval``);
    ``normals32``: draw ε with the float32 transform (:func:`normals32_row`).
    """
    p = lags.shape[0]
    sb = SWITCH_BLOCK
    ub = np.empty(sb)
    flags = np.empty((4, sb), dtype=np.bool_)
    eps = np.empty((4, sb))
    xs = np.zeros((4, sb))
    scratch = np.empty((7, sb))
    hashes = np.empty((4, sb), dtype=np.int32)
    z32 = np.empty(sb, dtype=np.float32)
    scalar_u = u.shape[0] == 1
    for start in range(lo, hi, sb):
        nb = min(sb, hi - start)
        if scalar_u:
            ub[:] = u[0]
        else:
            ub[:nb] = u[start:start + nb]
        switch_block(start, nb, ub, prefix, cycle, read_count, read_key, in_hrs, in_lrs, r,
                     ur_thr, tr_a, tr_c, r_lrs_reset, yf[0], yf[1], yf[2], yf[3], muf[0],
                     muf[1], muf[2], muf[3], sigf[0], sigf[1], sigf[2], sigf[3], ring[start // sb], chol, lags,
                     gamma, llrs, hhrs, consts, hrs_log10, flags[0], flags[1], flags[2],
                     flags[3], eps[0], eps[1], eps[2], eps[3], xs[0], xs[1], xs[2], xs[3],
                     scratch[0], scratch[1], scratch[2], scratch[3], scratch[4],
                     scratch[5], scratch[6], normals32, hashes, z32)


@_jit_noalias
def read_kernel(lo: int, hi: int, r: np.ndarray, read_key: np.ndarray,
                read_count: np.ndarray, out: np.ndarray, pl: float, ph: float, u: float,
                johnson: float, shot: float, bw: float, noise: bool) -> None:
    """Read current I(U; r) = (1 − r)·P_LLRS(U) + r·P_HHRS(U) (A) of devices lo..hi-1 into
    ``out`` (``pl``, ``ph`` = the polynomials at U); with ``noise``, plus σ·z with
    σ² = johnson·|I/U| + (shot·|I|)·bw (johnson = 4kT·BW, shot = 2q) and z the normal of
    key (seed, device, cycle, 16, read counter) (``read_key`` = the hash of its first four
    words), after which the read counter moves on (vectorized)."""
    base = np.uint64(lo)
    if not noise:
        for b in range(np.uint64(hi - lo)):
            d = base + b
            rd = r[d]
            out[d] = (1.0 - rd) * pl + rd * ph
        return
    u_abs = max(abs(u), 1e-30)
    for b in range(np.uint64(hi - lo)):
        d = base + b
        rd = r[d]
        i = (1.0 - rd) * pl + rd * ph
        i_abs = abs(i)
        sd = math.sqrt(johnson * (i_abs / u_abs) + (shot * i_abs) * bw)
        rc = read_count[d]
        h = mix31(np.int64(read_key[d]) ^ rc)
        out[d] = i + sd * normal_of_hash(h)
        read_count[d] = rc + 1


@_jit_noalias32
def read_keys32(start: int, nb: int, r: np.ndarray, read_key: np.ndarray,
                read_count: np.ndarray, pl: float, ph: float, scale: float, h: np.ndarray,
                s: np.ndarray) -> None:
    """First pass of :func:`read_kernel32` over a block: the read-noise hash (key (seed,
    device, cycle, 16, read counter), 32-bit arithmetic) into ``h``, scale·|I| (float32)
    into ``s``; the read counter moves on."""
    base = np.uint64(start)
    for b in range(np.uint64(nb)):
        d = base + b
        rd = r[d]
        i = (1.0 - rd) * pl + rd * ph
        s[b] = np.float32(scale * abs(i))
        rc = read_count[d]
        h[b] = absorb32(read_key[d], rc)
        read_count[d] = rc + 1


@_jit_noalias32
def read_noise32(nb: int, h: np.ndarray, s: np.ndarray, noise: np.ndarray) -> None:
    """Second pass, on 32-bit values only (16 devices per AVX-512 register):
    σ·z = sqrt(scale·|I|·(−ln u1))·cos(2π u2)."""
    for b in range(np.uint64(nb)):
        noise[b] = scaled_normal32(h[b], s[b])


@_jit_noalias
def read_add(start: int, nb: int, r: np.ndarray, pl: float, ph: float, noise: np.ndarray,
             out: np.ndarray) -> None:
    """Third pass: I (float64, as :func:`read_kernel`) plus the float32 noise."""
    base = np.uint64(start)
    for b in range(np.uint64(nb)):
        d = base + b
        rd = r[d]
        out[d] = ((1.0 - rd) * pl + rd * ph) + noise[b]


@_jit
def read_kernel32(lo: int, hi: int, r: np.ndarray, read_key: np.ndarray,
                  read_count: np.ndarray, out: np.ndarray, pl: float, ph: float,
                  scale: float) -> None:
    """:func:`read_kernel` with noise, the noise in float32 (``precision="float32"``):
    I(U; r) in float64 plus σ·z, σ² = johnson·|I/U| + shot·|I|·bw written as
    σ·z = sqrt(scale·|I|·(−ln u1))·cos(2π u2), scale = 2·(johnson/|U| + shot·bw), from the
    same key as the float64 read. Three passes per block of BLOCK devices, so that the
    transform runs on 32-bit values only."""
    h = np.empty(BLOCK, dtype=np.int32)
    s = np.empty(BLOCK, dtype=np.float32)
    noise = np.empty(BLOCK, dtype=np.float32)
    for start in range(lo, hi, BLOCK):
        nb = min(BLOCK, hi - start)
        read_keys32(start, nb, r, read_key, read_count, pl, ph, scale, h, s)
        read_noise32(nb, h, s, noise)
        read_add(start, nb, r, pl, ph, noise, out)


@_jit
def ring_move(src: np.ndarray, src_pos: np.ndarray, dst: np.ndarray,
              dst_pos: np.ndarray) -> None:
    """Copy the lag history of device ``src_pos[k]`` of ring ``src`` to device ``dst_pos[k]``
    of ring ``dst`` for every k (rings (blocks, p, 4, SWITCH_BLOCK) as in
    :func:`switch_kernel`): gathers a subset of devices and writes it back."""
    sb = SWITCH_BLOCK
    p = src.shape[1]
    n = src_pos.shape[0]
    for k0 in range(0, n, sb):  # a chunk of devices, history row after history row
        k1 = min(n, k0 + sb)
        for s in range(p):
            for f in range(4):
                for k in range(k0, k1):
                    a = src_pos[k]
                    b = dst_pos[k]
                    dst[b // sb, s, f, b % sb] = src[a // sb, s, f, a % sb]


@_jit
def ramp_step(g_work: np.ndarray, loc: np.ndarray, wpos: np.ndarray, gt: np.ndarray,
              bd: np.ndarray, g_prev: np.ndarray, u: np.ndarray, last_good: np.ndarray,
              cur: np.ndarray, pulses: np.ndarray, done: np.ndarray, start: np.ndarray,
              step: np.ndarray, n_reset: np.ndarray, n_reads: np.ndarray, umax: float,
              fine_step: float, reset_start: float, max_pulses: int, centred: bool) -> int:
    """The bookkeeping of one write-verify ramp step (``programming._program_active``) for
    the ramping devices k (working-array position ``loc[k]``, device ``wpos[loc[k]]``),
    after their RESET pulse at level ``u[k]`` and the verify read ``g_work`` (S): count
    the pulse and read; accept (``done``), or on an overshoot set the device's next
    ``start`` and halve its ``step``, or move on to the next level. The devices that go on
    ramping (below Umax, within ``max_pulses``) are compacted to the front of the per-k
    arrays, in order; returns their number. The arithmetic of the numpy version."""
    m = 0
    for k in range(loc.shape[0]):
        pos = loc[k]
        dev = wpos[pos]
        n_reset[dev] += 1
        n_reads[dev] += 1
        pk = pulses[k] + 1
        g = g_work[pos]
        t = gt[k]
        b = bd[k]
        c = cur[k]
        uk = u[k]
        inside = abs(g - t) <= b
        if centred:
            ns = min(fine_step, c) if inside else c
            dec = max(g_prev[k] - g, 0.0) * ns / c
            ok = inside and (g - t <= 0.5 * dec)
        else:
            ns = c
            ok = inside
        if ok:
            done[dev] = True
            continue
        if g < t - b:  # overshoot: next attempt a little below the last good level, finer
            start[dev] = max(reset_start, last_good[k] - step[dev])
            step[dev] = step[dev] * 0.5
            continue
        un = uk + ns
        if not (un < umax + 1e-12 and pk < max_pulses):
            continue
        loc[m] = pos
        gt[m] = t
        bd[m] = b
        g_prev[m] = g
        last_good[m] = uk
        cur[m] = ns
        u[m] = un
        pulses[m] = pk
        m += 1
    return m
