"""Counter-based hash random numbers shared by the Python model and the Verilog-A model.

Every random number of the device model is a pure function of a key
``(seed, device, cycle, stream, draw)`` of five non-negative integers below 2**31.
Nothing is stateful, so a device's numbers do not depend on how many other devices,
cycles or reads were simulated, nor on the waveform.

The arithmetic is restricted so that Verilog-A (OpenVAF: 32-bit signed ``integer``) can
compute bit-identical values:

* every value is kept in ``[0, 2**31)`` (31 bits, never negative), so right shifts are
  the same whether arithmetic or logical;
* every constant is below 2147483647;
* products never exceed ``2**31 - 1``: multiplication modulo ``2**31`` is done on 15-bit
  limbs (:func:`mul31_limbs`), see ``docs/rng.md`` for the exact integer steps.

The numpy implementation below computes the same function with int64 arrays, where the
direct product ``x * c`` (< 2**62) masked to 31 bits equals the limb construction; a test
checks the two against each other and that no intermediate of the limb form leaves
``[0, 2**31)``.

Uniforms are ``(h + 0.5) / 2**31`` in the open interval (0, 1); standard normals use the
cosine branch of Box–Muller on two uniforms derived from one key.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

from cosim.device import _fast

IntLike = Union[int, np.ndarray]

MASK31 = 0x7FFFFFFF
MASK16 = 0xFFFF
MASK15 = 0x7FFF
#: odd 31-bit multipliers of the mixer (both < 2**31 - 1)
MIX_C1 = 0x7FEB352D
MIX_C2 = 0x046CA68B
#: starting value of the key absorption chain
INIT = 0x2545F491
#: constant xored in to derive the second Box–Muller uniform from the same key
SECOND = 0x5BD1E995 & MASK31
TWO_POW_31 = 2147483648.0

#: stream numbers used by the device model (documented in docs/rng.md)
STREAM_C2C = 0  # streams 0..3: innovation eps_n of feature f = 0..3 (draw 0)
STREAM_D2D_COMPONENT = 8  # uniform for the mixture component, cycle 0, draw 0
STREAM_D2D_NORMAL = 9  # z_j of the D2D draw, cycle 0 (redraw a: cycle a), draw j = 0..7
STREAM_READ_NOISE = 16  # read noise: draw = read counter within the cycle
STREAM_MEAS_NOISE = 17  # measurement noise of synthetic I-V data (cosim synth)


_U31 = np.uint32(MASK31)
_UC1 = np.uint32(MIX_C1)
_UC2 = np.uint32(MIX_C2)


def mul31(x: IntLike, c: int) -> IntLike:
    """``x * c mod 2**31`` for 0 <= x < 2**31 (Python ints or numpy integer arrays)."""
    if isinstance(x, np.ndarray):
        x = x.astype(np.uint32, copy=False)
        with np.errstate(over="ignore"):
            return (x * np.uint32(c)) & _U31  # uint32 wraps mod 2**32; masking gives mod 2**31
    return (x * c) & MASK31


def mul31_limbs(x: int, c: int) -> int:
    """``x * c mod 2**31`` with 15-bit limbs: the exact steps the Verilog-A code performs.

    Every intermediate stays in ``[0, 2**31)``; see docs/rng.md.
    """
    x0, x1, x2 = x & MASK15, (x >> 15) & MASK15, x >> 30
    c0, c1, c2 = c & MASK15, (c >> 15) & MASK15, c >> 30
    lo = x0 * c0
    mid = ((lo >> 15) + x0 * c1 + x1 * c0) & MASK16
    par = (x0 * c2 + x1 * c1 + x2 * c0) & 1
    mid = (mid + (par << 15)) & MASK16
    return (lo & MASK15) | (mid << 15)


def mix31_scalar(x: int, mul=mul31_limbs) -> int:
    """Scalar :func:`mix31` on Python ints (by default through the 15-bit limb product)."""
    x ^= x >> 16
    x = mul(x, MIX_C1)
    x ^= x >> 15
    x = mul(x, MIX_C2)
    x ^= x >> 16
    return x


def _mix31_inplace(x: np.ndarray) -> np.ndarray:
    """:func:`mix31` on a uint32 array, in place (values must be < 2**31); also takes the
    numpy scalars that broadcasting yields, which :func:`mix31_into` (``out=``) cannot."""
    with np.errstate(over="ignore"):  # uint32 products wrap mod 2**32 by design
        x ^= x >> np.uint32(16)
        x *= _UC1
        x &= _U31
        x ^= x >> np.uint32(15)
        x *= _UC2
        x &= _U31
        x ^= x >> np.uint32(16)
    return x


# the same constants as 0-d arrays: ufunc calls on them cost less than on numpy scalars
_S15, _S16, _C1_0D, _C2_0D, _M31_0D = (np.array(v, dtype=np.uint32)
                                       for v in (15, 16, MIX_C1, MIX_C2, MASK31))


def mix31_into(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """:func:`mix31` on a uint32 array (values < 2**31) in place, allocation-free.

    ``tmp``: a uint32 scratch array of x's shape. Call inside ``np.errstate(over="ignore")``
    (the products wrap mod 2**32 by design).
    """
    np.right_shift(x, _S16, tmp)
    np.bitwise_xor(x, tmp, x)
    np.multiply(x, _C1_0D, x)
    np.bitwise_and(x, _M31_0D, x)
    np.right_shift(x, _S15, tmp)
    np.bitwise_xor(x, tmp, x)
    np.multiply(x, _C2_0D, x)
    np.bitwise_and(x, _M31_0D, x)
    np.right_shift(x, _S16, tmp)
    np.bitwise_xor(x, tmp, x)
    return x


def mix31(x: IntLike) -> IntLike:
    """Bijective 31-bit mixer: xorshift / multiply / xorshift / multiply / xorshift."""
    if isinstance(x, np.ndarray):
        return _mix31_inplace(x.astype(np.uint32, copy=True))
    return mix31_scalar(int(x), mul=mul31)


def _as_word(name: str, value: IntLike) -> IntLike:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"rng key word '{name}' must be an integer")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > MASK31):
        raise ValueError(f"rng key word '{name}' must lie in [0, 2**31 - 1]")
    if arr.ndim == 0 and not isinstance(value, np.ndarray):
        return int(value)
    return arr.astype(np.uint32)


def hash_extend(h: IntLike, *words: IntLike) -> IntLike:
    """Continue the absorption chain ``h = mix31(h ^ w)`` from a cached prefix ``h``.

    Arrays broadcast; the result is a uint32 array (or a Python int if all inputs are ints).
    Words are not range-checked here (use :func:`hash_key` for checked input).
    """
    for w in words:
        if isinstance(h, (np.ndarray, np.generic)) or isinstance(w, (np.ndarray, np.generic)):
            h = _mix31_inplace(np.bitwise_xor(np.asarray(h, dtype=np.uint32), np.asarray(w, dtype=np.uint32)))
        else:
            h = mix31_scalar(int(h) ^ int(w), mul=mul31)
    return h


def hash_prefix(*words: IntLike) -> IntLike:
    """``h = INIT`` then absorb ``words``; e.g. cache ``hash_prefix(seed, device)``."""
    return hash_extend(INIT, *words)


def hash_key(seed: IntLike, device: IntLike, cycle: IntLike, stream: IntLike, draw: IntLike) -> IntLike:
    """31-bit hash of the full key (range-checked; numpy arrays broadcast)."""
    names = ("seed", "device", "cycle", "stream", "draw")
    words = [_as_word(n, v) for n, v in zip(names, (seed, device, cycle, stream, draw))]
    return hash_prefix(*words)


def hash_key_scalar(seed: int, device: int, cycle: int, stream: int, draw: int) -> int:
    """Reference scalar hash through the 15-bit limb steps (what Verilog-A computes)."""
    h = INIT
    for w in (seed, device, cycle, stream, draw):
        h = mix31_scalar(h ^ int(w))
    return h


def to_unit(h: IntLike) -> Union[float, np.ndarray]:
    """Map a 31-bit hash to a uniform in the open interval (0, 1)."""
    return (np.asarray(h, dtype=np.float64) + 0.5) / TWO_POW_31


def normal_from_hash(h: IntLike) -> Union[float, np.ndarray]:
    """Standard normal from a finished key hash (Box–Muller, cosine branch).

    u1 = to_unit(h), u2 = to_unit(mix31(h ^ SECOND)), z = sqrt(-2 ln u1) * cos(2 pi u2).
    """
    if isinstance(h, (np.ndarray, np.generic)):
        h2 = _mix31_inplace(np.asarray(h, dtype=np.uint32) ^ np.uint32(SECOND))
    else:
        h2 = mix31_scalar(int(h) ^ SECOND, mul=mul31)
    u1 = to_unit(h)
    u2 = to_unit(h2)
    z = np.sqrt(-2.0 * np.log(u1))
    z *= np.cos((2.0 * math.pi) * u2)
    return z


def uniform(seed: IntLike, device: IntLike, cycle: IntLike, stream: IntLike, draw: IntLike) -> np.ndarray:
    """Uniform(0, 1) for each key (arguments broadcast)."""
    return to_unit(hash_key(seed, device, cycle, stream, draw))


def normal(seed: IntLike, device: IntLike, cycle: IntLike, stream: IntLike, draw: IntLike) -> np.ndarray:
    """Standard normal N(0, 1) for each key (arguments broadcast)."""
    return normal_from_hash(hash_key(seed, device, cycle, stream, draw))


def c2c_normals(device_prefix: np.ndarray, cycle: int, backend: str = "numpy") -> np.ndarray:
    """Innovations ε_n (N, 4) of cycle ``cycle`` from cached ``hash_prefix(seed, device)``.

    ``backend="numpy"`` (default) equals ``normal(seed, device, cycle, f, 0)`` for streams
    f = 0..3 bit for bit; ``"numba"`` is the compiled kernel of the fast model paths (its own
    vectorized log and cos: within 1e-15 relative, see docs/device-model.md).
    """
    if _fast.resolve_backend(backend) == "numba":
        prefix = np.ascontiguousarray(device_prefix, dtype=np.uint32)
        out = np.empty((4, prefix.size))
        _fast.split_run(_fast.c2c_normals_kernel, prefix.size, (prefix, int(cycle), out))
        return out.T.copy()
    h_c = hash_extend(device_prefix, np.uint32(cycle))
    hs = np.bitwise_xor(h_c[:, None], np.arange(4, dtype=np.uint32)[None, :])
    _mix31_inplace(hs)
    _mix31_inplace(hs)  # draw 0: h ^ 0 == h
    return normal_from_hash(hs)


class C2CNormals:
    """Allocation-free generator of the innovations ε_n (N, 4) of many devices.

    Same numbers as :func:`c2c_normals` (same ``backend``) but feature-major: :meth:`fill`
    writes a (4, N) array. Buffers are reused between cycles (the numpy path of
    :class:`cosim.device.model.FeatureEngine`).
    """

    def __init__(self, device_prefix: np.ndarray, backend: str = "numpy",
                 threads: Optional[int] = None) -> None:
        self.prefix = np.ascontiguousarray(device_prefix, dtype=np.uint32)
        self.backend = _fast.resolve_backend(backend)
        self.threads = threads
        n = self.prefix.size
        self._hc = np.empty(n, dtype=np.uint32)
        self._h = np.empty((4, n), dtype=np.uint32)
        self._tmp = np.empty((4, n), dtype=np.uint32)
        self._u = np.empty((4, n))
        self._streams = np.arange(4, dtype=np.uint32)[:, None]

    def _mix(self, x: np.ndarray, tmp: np.ndarray) -> None:
        with np.errstate(over="ignore"):
            mix31_into(x, tmp)

    def fill(self, cycle: int, out: np.ndarray) -> np.ndarray:
        """Write ε of cycle ``cycle`` into ``out`` (4, N) float64 and return it."""
        if self.backend == "numba" and out.flags.c_contiguous and out.dtype == np.float64:
            _fast.split_run(_fast.c2c_normals_kernel, self.prefix.size,
                            (self.prefix, int(cycle), out), self.threads)
            return out
        hc, h, tmp, u = self._hc, self._h, self._tmp, self._u
        np.bitwise_xor(self.prefix, np.uint32(cycle), out=hc)
        self._mix(hc, tmp[0])
        np.bitwise_xor(hc[None, :], self._streams, out=h)
        self._mix(h, tmp)  # absorb stream
        self._mix(h, tmp)  # absorb draw 0 (h ^ 0 == h)
        # u1 -> sqrt(-2 ln u1) into out
        np.add(h, 0.5, out=out)
        out *= 1.0 / TWO_POW_31
        np.log(out, out=out)
        out *= -2.0
        np.sqrt(out, out=out)
        # u2 from mix31(h ^ SECOND) -> cos(2 pi u2)
        np.bitwise_xor(h, np.uint32(SECOND), out=h)
        self._mix(h, tmp)
        np.add(h, 0.5, out=u)
        u *= (2.0 * math.pi) / TWO_POW_31
        np.cos(u, out=u)
        out *= u
        return out


def check_seed(seed: int) -> int:
    """Validate a user seed (0 <= seed < 2**31) and return it as int."""
    seed = int(seed)
    if not 0 <= seed <= MASK31:
        raise ValueError(f"seed must lie in [0, {MASK31}], got {seed}")
    return seed
