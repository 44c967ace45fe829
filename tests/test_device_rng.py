"""Counter-based hash RNG: exactness of the 31-bit integer steps and statistical quality."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cosim.device import rng

DATA = Path(__file__).parent / "data" / "device"
INT32_MAX = 2**31 - 1


class Int31:
    """Emulates the Verilog-A integer rules of docs/rng.md: every value must stay in [0, 2^31)."""

    def __init__(self, v: int) -> None:
        assert 0 <= v <= INT32_MAX, f"value {v} leaves [0, 2^31)"
        self.v = v

    def _w(self, o: "Int31 | int") -> int:
        return o.v if isinstance(o, Int31) else o

    def __mul__(self, o): return Int31(self.v * self._w(o))
    def __add__(self, o): return Int31(self.v + self._w(o))
    def __and__(self, o): return Int31(self.v & self._w(o))
    def __or__(self, o): return Int31(self.v | self._w(o))
    def __xor__(self, o): return Int31(self.v ^ self._w(o))
    def __rshift__(self, o): return Int31(self.v >> self._w(o))
    def __lshift__(self, o): return Int31(self.v << self._w(o))


def va_mul31(x: Int31, c: int) -> Int31:
    """docs/rng.md, mul31, step by step with range checks."""
    x0, x1, x2 = x & 32767, (x >> 15) & 32767, x >> 30
    c0, c1, c2 = c & 32767, (c >> 15) & 32767, c >> 30
    lo = x0 * c0
    mid = ((lo >> 15) + x0 * c1 + x1 * c0) & 65535
    par = (x0 * c2 + x1 * c1 + x2 * c0) & 1
    mid = (mid + (par << 15)) & 65535
    return (lo & 32767) | (mid << 15)


def va_mix31(x: Int31) -> Int31:
    x = x ^ (x >> 16)
    x = va_mul31(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = va_mul31(x, 0x046CA68B)
    return x ^ (x >> 16)


def va_hash(seed: int, device: int, cycle: int, stream: int, draw: int) -> int:
    h = Int31(0x2545F491)
    for w in (seed, device, cycle, stream, draw):
        h = va_mix31(h ^ Int31(w))
    return h.v


def va_normal(h: int) -> float:
    h2 = va_mix31(Int31(h) ^ Int31(0x5BD1E995)).v
    u1, u2 = (h + 0.5) / 2147483648.0, (h2 + 0.5) / 2147483648.0
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def test_constants_fit_in_31_bits() -> None:
    for c in (rng.MIX_C1, rng.MIX_C2, rng.INIT, rng.SECOND):
        assert 0 < c < INT32_MAX


def test_limb_product_is_exact_modular_product() -> None:
    gen = np.random.default_rng(5)
    xs = [0, 1, 2**15 - 1, 2**15, 2**30, INT32_MAX] + [int(v) for v in gen.integers(0, 2**31, 3000)]
    for c in (rng.MIX_C1, rng.MIX_C2, INT32_MAX, 3):
        for x in xs:
            expected = (x * c) % 2**31  # exact big-integer arithmetic
            assert va_mul31(Int31(x), c).v == expected
            assert rng.mul31_limbs(x, c) == expected


def test_vectorized_hash_equals_31bit_emulation() -> None:
    gen = np.random.default_rng(11)
    keys = gen.integers(0, 2**31, size=(400, 5))
    keys[:50, 2:] = gen.integers(0, 8, size=(50, 3))  # small counters too
    got_h = rng.hash_key(*(keys[:, j] for j in range(5)))
    got_z = rng.normal(*(keys[:, j] for j in range(5)))
    for row, h, z in zip(keys, got_h, got_z):
        want = va_hash(*(int(v) for v in row))
        assert int(h) == want
        assert z == pytest.approx(va_normal(want), rel=1e-12, abs=1e-12)
    # scalar path (Python ints) agrees as well
    assert rng.hash_key(*(int(v) for v in keys[0])) == int(got_h[0])


def test_golden_vectors_file() -> None:
    vectors = json.loads((DATA / "rng_vectors.json").read_text())
    for item in vectors["vectors"]:
        key = item["key"]
        assert va_hash(*key) == item["hash"]
        assert int(rng.hash_key(*key)) == item["hash"]
        assert float(rng.normal(*key)) == pytest.approx(item["normal"], rel=1e-12, abs=1e-12)


def test_key_words_are_range_checked() -> None:
    with pytest.raises(ValueError, match="device"):
        rng.hash_key(0, -1, 0, 0, 0)
    with pytest.raises(ValueError, match="cycle"):
        rng.hash_key(0, 0, 2**31, 0, 0)
    with pytest.raises(ValueError):
        rng.check_seed(-3)


def test_uniform_ks_on_two_million_draws() -> None:
    dev = np.arange(1000)[:, None]
    cyc = np.arange(2000)[None, :]
    u = rng.uniform(123, dev, cyc, 0, 0).ravel()
    assert u.size == 2_000_000
    assert 0.0 < u.min() and u.max() < 1.0
    ks = stats.kstest(u, "uniform")
    assert ks.pvalue > 1e-3, ks
    # chi-square on 64 bins of the low bits and of the high bits of the raw hash
    h = rng.hash_key(123, dev, cyc, 0, 0).ravel().astype(np.int64)
    for bits in (h & 63, h >> 25):
        counts = np.bincount(bits, minlength=64)
        assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("axis", ["seed", "device", "cycle", "stream", "draw"])
def test_no_correlation_between_neighbouring_keys(axis: str) -> None:
    """Lag-1 correlation along each key word; |r| < 5/sqrt(n) (5 standard errors)."""
    n = 200_000
    base = {"seed": 7, "device": 3, "cycle": 11, "stream": 0, "draw": 0}
    idx = np.arange(n + 1)
    other = np.arange(n + 1) % 97  # vary another word so the sequence is not trivially 1-D
    key = dict(base)
    key[axis] = idx
    if axis != "device":
        key["device"] = other
    else:
        key["cycle"] = other
    z = rng.normal(**key)
    r = np.corrcoef(z[:-1], z[1:])[0, 1]
    assert abs(r) < 5.0 / math.sqrt(n)
    u = rng.uniform(**key)
    r_u = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(r_u) < 5.0 / math.sqrt(n)


def test_no_correlation_across_streams_of_same_cycle() -> None:
    n = 200_000
    dev = np.arange(n)[:, None]
    z = rng.normal(1, dev, 5, np.arange(4)[None, :], 0)
    corr = np.corrcoef(z.T)
    off = corr[~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off) < 5.0 / math.sqrt(n))


def test_normal_moments() -> None:
    """Moments of 1e6 normals within 5 standard errors of N(0,1).

    Standard errors: mean 1/sqrt(n), variance sqrt(2/n), skewness sqrt(6/n), excess kurtosis
    sqrt(24/n).
    """
    n = 1_000_000
    z = rng.normal(99, np.arange(n // 4)[:, None], 2, np.arange(4)[None, :], 0).ravel()
    assert z.size == n
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1.0) < 5 * math.sqrt(2 / n)
    assert abs(stats.skew(z)) < 5 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 5 * math.sqrt(24 / n)
    # tails: P(|z| > 3) = 0.0026998
    p3 = np.mean(np.abs(z) > 3)
    assert abs(p3 - 0.0026998) < 5 * math.sqrt(0.0027 / n)


def test_c2c_fast_path_matches_keyed_normals() -> None:
    ids = np.array([0, 5, 1000, 2**31 - 1])
    prefix = rng.hash_prefix(np.uint32(42), ids.astype(np.uint32))
    fast = rng.c2c_normals(prefix, 17)
    ref = rng.normal(42, ids[:, None], 17, np.arange(4)[None, :], 0)
    np.testing.assert_array_equal(fast, ref)
