"""Compiled (numba) device-model kernels against the numpy reference.

Agreement required here (and documented in docs/device-model.md, "Speed"):

* integers — hashes, cycle counters, read counters, state flags — bit-identical;
* the kernels' ``log`` and ``cos`` (``_fast.log_positive``, ``_fast.cos_0_2pi``: series
  evaluated in the module, so that the loops vectorize) within 1 ulp of the C library's
  functions that numpy calls; the normals built from them within 1e-15 relative;
* features y (and latents through them) within 1e-15 relative: the only other difference
  is the summation order of the VAR products, which numpy leaves to BLAS;
* the resistance state r after switching within 1e-12 relative: the partial-RESET
  transition curve subtracts nearly equal currents, which magnifies 1e-16 input
  differences (it does so in the numpy path as well);
* ``precision="float32"`` (float32 lag history and normals): normals within 1.5e-6 of the
  float64 ones, features within 1e-5 relative.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from cosim.device import _fast, rng
from cosim.device import model as dm
from cosim.device.modelfile import load_model
from cosim.paths import DEFAULT_MODEL


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


def _libm(function, x: np.ndarray) -> np.ndarray:
    """The C library's scalar function on every element (numpy's own SIMD versions differ
    between CPUs by an ulp or more, so they are no portable reference)."""
    return np.frompyfunc(function, 1, 1)(x).astype(float)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| in units of the last place of b."""
    return np.abs(a - b) / np.spacing(np.abs(b))


def _random_keys(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    ids = np.concatenate([[0, 1, 2**31 - 1], g.integers(0, 2**31, n - 3)])
    return ids, g.integers(0, 2**31, 4)


def test_hash_chain_is_bit_identical() -> None:
    g = np.random.default_rng(0)
    h0 = g.integers(0, 2**31, 50_000)
    h0[:3] = [0, 1, 2**31 - 1]
    words = g.integers(0, 2**31, (h0.size, 4))
    words[:8] = 2**31 - 1
    got = np.empty(h0.size, dtype=np.int64)
    _fast.hash_chain_kernel(0, h0.size, h0, words, got)
    want = rng.hash_extend(h0.astype(np.uint32), *[words[:, k].astype(np.uint32) for k in range(4)])
    np.testing.assert_array_equal(got, want.astype(np.int64))
    # and the scalar limb form the Verilog-A follows
    for i in range(20):
        ref = int(h0[i])
        for w in words[i]:
            ref = rng.mix31_scalar(ref ^ int(w))
        assert int(got[i]) == ref


def _hash_units(g: np.random.Generator, n: int) -> np.ndarray:
    """Unit values (h + 0.5)/2**31 as the RNG makes them: n random hashes plus the hashes
    next to 0, 1/4, 1/2, 3/4 and 1 (cos(2πu) near ±1 and near its zeros; log u near 0)."""
    h = np.concatenate([g.integers(0, 2**31, n), np.arange(0, 3000), 2**31 - 1 - np.arange(3000)]
                       + [k * 2**29 + np.arange(-3000, 3000) for k in (1, 2, 3)]
                       + [np.round(2**31 / math.sqrt(2)) + np.arange(-3000, 3000)])
    return (h + 0.5) / 2147483648.0


def _cos(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _fast.cos_array(x, out)
    return out


def _log(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _fast.log_array(x, out)
    return out


def test_series_constants_are_the_rounded_values() -> None:
    # the 200-bit ln 2 and π behind the split constants round to the C library's doubles
    assert _fast.LN2_HI + _fast.LN2_LO == math.log(2.0)
    assert _fast.PIO2_A + _fast.PIO2_B == math.pi / 2
    assert _fast.TWO_OVER_PI == 2.0 / math.pi
    assert abs(_fast._ln2_scaled(60) - round(math.log(2.0) * 2**60)) <= 2**8
    # the high parts carry few enough bits that small multiples are exact
    assert math.frexp(_fast.LN2_HI)[0] * 2**37 % 1 == 0
    assert math.frexp(_fast.PIO2_A)[0] * 2**50 % 1 == 0
    assert math.frexp(_fast.PIO2_B)[0] * 2**50 % 1 == 0
    # the √2 threshold of the mantissa field: the first mantissa at or above √2
    below = 1.0 + (_fast.SQRT2_MANTISSA - 1) / 2**52
    at = 1.0 + _fast.SQRT2_MANTISSA / 2**52
    assert below < math.sqrt(2.0) <= at and below * below < 2.0 <= at * at


def test_cosine_within_one_ulp_of_libm() -> None:
    g = np.random.default_rng(1)
    x = np.concatenate([(2.0 * math.pi) * _hash_units(g, 1_000_000),  # the RNG's arguments
                        g.uniform(0.0, 2.0 * math.pi, 500_000),
                        [0.0, 2.0 * math.pi, math.pi, math.pi / 2, 3 * math.pi / 2]]
                       + [np.nextafter(q * math.pi / 4, 0.0) + np.arange(-200, 200) * 1e-15
                          for q in range(1, 8)])  # both sides of the quadrant boundaries
    x = np.clip(x, 0.0, 2.0 * math.pi)
    got = _cos(x)
    want = _libm(math.cos, x)
    assert _ulps(got, want).max() <= 1.0
    assert np.mean(got == want) > 0.9  # measured 97 %


def test_log_within_one_ulp_of_libm() -> None:
    g = np.random.default_rng(6)
    x = np.concatenate([_hash_units(g, 1_000_000),  # the RNG's arguments, u near 1 included
                        np.exp(g.uniform(-700.0, 700.0, 300_000)),  # all magnitudes
                        1.0 + np.arange(-3000, 3000) * 2.0**-52,  # x next to 1
                        math.sqrt(2.0) * (1.0 + np.arange(-3000, 3000) * 2.0**-52),
                        math.sqrt(0.5) * (1.0 + np.arange(-3000, 3000) * 2.0**-52),
                        [np.finfo(float).tiny, np.finfo(float).max, 0.5 / 2**31]])
    got = _log(x)
    want = _libm(math.log, x)
    nonzero = want != 0.0
    assert np.all(got[~nonzero] == 0.0)
    assert _ulps(got[nonzero], want[nonzero]).max() <= 1.0
    assert np.mean(got == want) > 0.85  # measured 91 % on the RNG's arguments


@pytest.mark.parametrize("threads", [1, 3])
def test_c2c_normals_match_numpy(threads: int) -> None:
    ids, seeds = _random_keys(20_000, 2)
    for seed, cycle in zip(seeds, [0, 1, 2**31 - 1, 987_654]):
        prefix = rng.hash_prefix(np.uint32(seed), ids.astype(np.uint32))
        ref = rng.c2c_normals(prefix, int(cycle), backend="numpy")
        out = np.empty((4, ids.size))
        engine = rng.C2CNormals(prefix, backend="numba", threads=threads)
        got = engine.fill(int(cycle), out).T
        np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0)
        assert np.mean(got == ref) > 0.7
        np.testing.assert_array_equal(rng.c2c_normals(prefix, int(cycle), backend="numba"), got)


def test_feature_sequences_match_numpy(model) -> None:
    ids, seeds = _random_keys(400, 3)
    ref = dm.feature_sequences(model, int(seeds[0]), ids, 80, backend="numpy")
    got = dm.feature_sequences(model, int(seeds[0]), ids, 80, backend="numba")
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0)
    # the truncated-MA method has no compiled path: both backends give the numpy numbers
    ma = dm.feature_sequences(model, 5, ids[:20], 12, method="ma", backend="numba")
    np.testing.assert_array_equal(ma, dm.feature_sequences(model, 5, ids[:20], 12, method="ma",
                                                           backend="numpy"))


def test_engine_equals_compiled_sequences_and_numpy_engine(model) -> None:
    ids = np.arange(9000, 9000 + 10_000)  # more than one thread's share and several blocks
    seq = dm.feature_sequences(model, 21, ids, 15, backend="numba")
    fast = dm.FeatureEngine(model, 21, ids, backend="numba", threads=2)
    slow = dm.FeatureEngine(model, 21, ids, backend="numpy")
    for n in range(15):
        y_fast = fast.step().copy()
        np.testing.assert_array_equal(y_fast, seq[:, n])  # same kernel operations
        np.testing.assert_allclose(y_fast, slow.step(), rtol=1e-15, atol=0)
    assert fast.cycle == slow.cycle == 15
    # run(k) continues from the same state with the same operations
    more = fast.run(7)
    again = dm.feature_sequences(model, 21, ids, 22, backend="numba")
    np.testing.assert_array_equal(more, again[:, 15:])
    assert fast.cycle == 22
    slow_more = slow.run(7)
    np.testing.assert_allclose(more, slow_more, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="out must be"):
        fast.run(2, out=np.empty((3, 2, 4)))


def test_device_array_switching_matches_numpy(model) -> None:
    n = 6000
    fast = dm.DeviceArray(model, n, seed=4, backend="numba", threads=2)
    slow = dm.DeviceArray(model, n, seed=4, backend="numpy")
    g = np.random.default_rng(5)
    levels = np.array([-2.0, -0.7, 0.3, 0.8, 0.95, 1.1, 1.3, model.umax, 1.5])
    for k in range(40):
        if k % 2:
            u = g.uniform(-2.2, 1.6, n)
        else:
            u = g.choice(levels, n)
        fast.apply(u)
        slow.apply(u)
        if k % 10 == 9:  # reads (noise keyed by the read counter) interleave with the levels
            np.testing.assert_allclose(fast.read(noise=True), slow.read(noise=True), rtol=1e-12)
    for name in ("cycle", "read_count", "in_hrs", "in_lrs"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    assert fast.cycle.max() >= 10 and (~fast.in_hrs & ~fast.in_lrs).any()  # partial resets seen
    np.testing.assert_allclose(fast.y, slow.y, rtol=1e-15, atol=0)
    np.testing.assert_allclose(fast.ur_thr, slow.ur_thr, rtol=1e-15, atol=0)
    for name in ("r", "r_lrs_reset", "tr_a", "tr_c"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-12, atol=0,
                                   err_msg=name)
    np.testing.assert_allclose(fast.hist, slow.hist, rtol=0, atol=1e-14)  # latents are O(1)


def test_scalar_voltage_and_ma_method_use_their_paths(model) -> None:
    a = dm.DeviceArray(model, 50, seed=8, backend="numba")
    b = dm.DeviceArray(model, 50, seed=8, backend="numpy")
    for u in (-2.0, 1.0, 1.2, -2.0, 1.5):
        a.apply(u)
        b.apply(u)
    np.testing.assert_array_equal(a.cycle, b.cycle)
    np.testing.assert_allclose(a.r, b.r, rtol=1e-12)
    ma = dm.DeviceArray(model, 20, seed=8, method="ma", backend="numba")
    ma.apply(-2.0)
    ma.apply(1.5)
    assert (ma.cycle == 1).all()


def test_backend_choice() -> None:
    assert _fast.resolve_backend(None) == "numba"
    assert _fast.resolve_backend("numpy") == "numpy"
    with pytest.raises(ValueError, match="backend"):
        _fast.resolve_backend("cuda")
    model = load_model(DEFAULT_MODEL)
    assert dm.FeatureEngine(model, 0, np.arange(3)).backend == "numba"
    assert dm.DeviceArray(model, 3).backend == "numba"


@pytest.mark.timeout(180)
def test_threaded_kernels_work_in_a_forked_child(model) -> None:
    ids = np.arange(3 * _fast.MIN_DEVICES_PER_THREAD)  # large enough to use the thread pool
    want = dm.FeatureEngine(model, 1, ids, threads=2).run(3)
    pid = os.fork()
    if pid == 0:  # child: the parent's pool threads do not exist here
        try:
            got = dm.FeatureEngine(model, 1, ids, threads=2).run(3)
            os._exit(0 if np.array_equal(got, want) else 3)
        finally:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_exp_and_pow_series_match_libm() -> None:
    g = np.random.default_rng(11)
    x = np.concatenate([g.uniform(-700.0, 700.0, 200_000), g.uniform(-15.0, 0.0, 200_000),
                        [0.0, 1e-300, -1e-300, np.log(2.0), -np.log(2.0) / 2]])
    got = np.empty_like(x)
    _fast.exp_array(x, got)
    assert _ulps(got, _libm(math.exp, x)).max() <= 1.0
    # the transition curve's powers |Umax − U|**η: the error of e^(η ln x) grows with
    # |η ln x| (the rounding of η ln x): within (|η ln x| + 4)·2**-52 relative of the C
    # library, 3e-15 for distances of at least 0.01 V
    base = np.concatenate([g.uniform(1e-6, 3.5, 200_000), [1e-12, 1.0, 3.46]])
    got = np.empty_like(base)
    _fast.pow_array(base, 3.0567, got)
    want = _libm(lambda b: b**3.0567, base)
    rel = np.abs(got - want) / want
    assert np.all(rel <= (np.abs(3.0567 * np.log(base)) + 4.0) * 2.0**-52)
    assert rel[base >= 0.01].max() < 3e-15


def assert_read_key_current(dev: dm.DeviceArray) -> None:
    """The cached read-noise key of every device is the hash of (seed, device, its current
    cycle, stream 16)."""
    want = rng.hash_key(dev.seed, dev.ids, dev.cycle, rng.STREAM_READ_NOISE, 0)
    got = rng.hash_extend(dev._read_key, np.uint32(0))
    np.testing.assert_array_equal(got, want)


def test_read_kernel_matches_numpy(model) -> None:
    n = 3 * _fast.MIN_DEVICES_PER_THREAD + 5
    fast = dm.DeviceArray(model, n, seed=6, backend="numba", threads=2)
    slow = dm.DeviceArray(model, n, seed=6, backend="numpy")
    for dev in (fast, slow):
        dev.apply(-2.0)
        dev.apply(np.linspace(0.6, 1.5, n))
    np.testing.assert_allclose(fast.r, slow.r, rtol=1e-12)
    fast.r[:] = slow.r  # same state: the read itself is the same operations
    np.testing.assert_array_equal(fast.read(), slow.read())
    np.testing.assert_array_equal(fast.read(0.35), slow.read(0.35))
    for _ in range(3):  # noise keyed by the read counter
        np.testing.assert_allclose(fast.read(noise=True), slow.read(noise=True), rtol=1e-13)
    np.testing.assert_array_equal(fast.read_count, slow.read_count)
    assert fast.read_count.min() == 3
    adc = dict(adc_bits=6, adc_full_scale=1e-4)
    np.testing.assert_array_equal(fast.read(**adc), slow.read(**adc))


def test_noisy_reads_match_numpy_over_reads_and_cycles(model) -> None:
    """Several noisy reads per cycle, devices in and out of step, a subset read on its own:
    the compiled read equals the numpy read within 1e-12."""
    n = 3 * _fast.MIN_DEVICES_PER_THREAD + 5
    fast = dm.DeviceArray(model, n, seed=13, backend="numba", threads=2)
    slow = dm.DeviceArray(model, n, seed=13, backend="numpy")
    u = np.random.default_rng(4).uniform(0.8, 1.6, (8, n))
    idx = np.arange(1, n, 9)
    for k in range(8):
        for dev in (fast, slow):
            dev.apply(np.where(np.arange(n) % 3 == k % 3, 0.0, -2.0))  # a third sits out
            dev.apply(u[k])
        for _ in range(3):
            np.testing.assert_allclose(fast.read(noise=True), slow.read(noise=True), rtol=1e-12)
        if k == 5:
            subs = [dev.take(idx) for dev in (fast, slow)]
            for sub in subs:
                sub.apply(-2.0)
                sub.apply(1.5)
            np.testing.assert_allclose(subs[0].read(noise=True), subs[1].read(noise=True),
                                       rtol=1e-12)
            for dev, sub in zip((fast, slow), subs):
                dev.put(idx, sub)
    np.testing.assert_array_equal(fast.read_count, slow.read_count)
    np.testing.assert_array_equal(fast.cycle, slow.cycle)
    assert fast.cycle.max() > fast.cycle.min()


def test_lockstep_cycling_matches_numpy(model) -> None:
    """Full cycles of all devices at once (the in-step VAR path of the kernel) and with
    devices out of step (the device-by-device path) give the numpy numbers."""
    n = 2 * _fast.SWITCH_BLOCK + 17
    fast = dm.DeviceArray(model, n, seed=2, backend="numba")
    slow = dm.DeviceArray(model, n, seed=2, backend="numpy")
    skip = np.zeros(n)
    skip[::3] = 1.5  # every third device sits out the odd SETs: it falls one cycle behind
    for k in range(25):
        for dev in (fast, slow):
            dev.apply(np.where(skip > 0, 0.0, -2.0) if k % 7 == 3 else -2.0)
            dev.apply(1.5)
    np.testing.assert_array_equal(fast.cycle, slow.cycle)
    assert len(np.unique(fast.cycle)) == 2
    for dev in (fast, slow):
        assert_read_key_current(dev)
    np.testing.assert_allclose(fast.y, slow.y, rtol=1e-15, atol=0)
    np.testing.assert_allclose(fast.r, slow.r, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fast.hist, slow.hist, rtol=0, atol=1e-14)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_threads_do_not_change_the_numbers(model, monkeypatch, precision: str) -> None:
    """Switching and reads split over three threads give the one-thread numbers."""
    monkeypatch.setattr(_fast, "MIN_READS_PER_THREAD", _fast.MIN_DEVICES_PER_THREAD)
    calls = []
    real_split_run = _fast.split_run

    def spy(kernel, n, args, threads=None, **kwargs):
        calls.append((kernel.__name__, threads))
        real_split_run(kernel, n, args, threads, **kwargs)

    monkeypatch.setattr(_fast, "split_run", spy)
    n = 5 * _fast.MIN_DEVICES_PER_THREAD
    one = dm.DeviceArray(model, n, seed=9, threads=1, precision=precision)
    three = dm.DeviceArray(model, n, seed=9, threads=3, precision=precision)
    u = np.random.default_rng(1).uniform(-2.2, 1.6, (12, n))
    for row in u:
        one.apply(row)
        three.apply(row)
    np.testing.assert_array_equal(one.y, three.y)
    np.testing.assert_array_equal(one.r, three.r)
    np.testing.assert_array_equal(one.read(noise=True), three.read(noise=True))
    read_kernel = "read_kernel32" if precision == "float32" else "read_kernel"
    assert {("switch_kernel", 3), (read_kernel, 3)} <= set(calls)


def test_float32_history_stays_close_to_float64(model) -> None:
    n = 1000
    f64 = dm.DeviceArray(model, n, seed=4)
    f32 = dm.DeviceArray(model, n, seed=4, precision="float32")
    assert f32._ring.dtype == np.float32
    for _ in range(60):
        for dev in (f64, f32):
            dev.apply(-2.0)
            dev.apply(1.2)  # partial RESET: the transition curve too
    np.testing.assert_array_equal(f64.cycle, f32.cycle)
    rel = np.abs(f32.y - f64.y) / np.abs(f64.y)
    assert 0 < rel.max() < 1e-5  # float32 rounding of the latents, not a different model
    np.testing.assert_allclose(f32.r, f64.r, rtol=1e-4)
    with pytest.raises(ValueError, match="precision"):
        dm.DeviceArray(model, 4, precision="float16")
    with pytest.raises(ValueError, match="compiled path"):
        dm.DeviceArray(model, 4, backend="numpy", precision="float32")


def test_float32_normals_within_bound_of_float64() -> None:
    """The float32 Box–Muller of a hash (the ``precision="float32"`` paths) against
    ``rng.normal_from_hash``: random hashes and both ends of the range, where u1 → 0 (the
    largest |z|) and u1 → 1 (z → 0, where rounding u1 to float32 would cost precision)."""
    g = np.random.default_rng(5)
    h = np.concatenate([g.integers(0, 2**31, 1 << 18), np.arange(4096),
                        2**31 - 1 - np.arange(1 << 16)]).astype(np.int32)
    z32 = np.empty(h.size, dtype=np.float32)
    _fast.normals32_kernel(h, z32)
    z64 = rng.normal_from_hash(h.astype(np.uint32))
    err = np.abs(z32.astype(np.float64) - z64)
    assert err.max() < 1.5e-6
    assert (err / np.abs(z64))[np.abs(z64) > 1e-2].max() < 1e-6
    assert np.abs(z64).max() > 6.0 and np.abs(z64).min() < 1e-5  # both tails were reached


def test_float32_read_is_the_read_noise_formula(model) -> None:
    """A float32 noisy read: I(U0; r) in float64 plus σ·z with the key's normal computed in
    float32 — within 2e-6 σ of the float64 formula on the same state; counters as float64."""
    n = 3 * _fast.MIN_DEVICES_PER_THREAD + 5
    dev = dm.DeviceArray(model, n, seed=8, precision="float32", threads=2)
    dev.apply(-2.0)
    dev.apply(np.linspace(0.6, 1.5, n))
    for _ in range(3):
        i = dev.current(model.u0)
        sigma = dm.read_noise_sigma(model, i, model.u0)
        z = rng.normal(dev.seed, dev.ids, dev.cycle, rng.STREAM_READ_NOISE, dev.read_count)
        got = dev.read(noise=True)
        assert np.all(np.abs(got - (i + sigma * z)) <= 2e-6 * sigma + 1e-15 * np.abs(i))
    assert (dev.read_count == 3).all()
    assert_read_key_current(dev)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_empty_and_odd_sized_arrays(model, backend: str) -> None:
    for n in (0, 1, _fast.SWITCH_BLOCK + 1):
        dev = dm.DeviceArray(model, n, seed=1, backend=backend)
        dev.apply(-2.0)
        dev.apply(np.full(n, 1.2))
        dev.apply(1.5)
        assert dev.cycle.shape == (n,) and np.all(dev.cycle == 1)
        assert dev.read(noise=True).shape == (n,)
        assert dev.hist.shape == (n, 4 * model.var_order)


@pytest.mark.parametrize("backend,precision,method", [
    ("numba", "float64", "var"), ("numba", "float32", "var"), ("numpy", "float64", "var"),
    ("numba", "float64", "ma")])
def test_take_and_put_switch_a_subset_as_in_the_whole_array(model, backend: str,
                                                            precision: str, method: str) -> None:
    """Pulsing the devices of ``take(index)`` and writing them back with ``put`` leaves every
    device as pulsing those devices in the whole array with 0 V on the others."""
    n = 2 * _fast.SWITCH_BLOCK + 77  # several ring blocks, the last one partial
    whole = dm.DeviceArray(model, n, seed=6, backend=backend, precision=precision, method=method)
    split = dm.DeviceArray(model, n, seed=6, backend=backend, precision=precision, method=method)
    g = np.random.default_rng(7)
    levels = np.array([-2.0, 0.3, 0.8, 0.95, 1.1, 1.3, model.umax])
    for _ in range(3):  # a few cycles first: devices at different cycles and lags
        u = g.choice(levels, n)
        whole.apply(u)
        split.apply(u)
    index = np.sort(g.choice(n, 1500, replace=False))
    sub = split.take(index)
    assert sub.n_devices == index.size
    np.testing.assert_array_equal(sub.ids, split.ids[index])
    np.testing.assert_allclose(sub.hist, split.hist[index], rtol=0, atol=1e-14)
    for k in range(12):
        u = g.choice(levels, index.size) if k % 3 else np.full(index.size, -2.0)
        full = np.zeros(n)
        full[index] = u
        whole.apply(full)
        sub.apply(u)
        np.testing.assert_allclose(sub.conductance(), whole.conductance()[index], rtol=1e-12, atol=0)
    assert (sub.cycle > split.cycle[index]).any()  # the subset drew new cycles
    split.put(index, sub)
    for name in ("cycle", "read_count", "_read_key", "in_hrs", "in_lrs"):
        np.testing.assert_array_equal(getattr(split, name), getattr(whole, name), err_msg=name)
    assert_read_key_current(split)
    for name in ("r", "ur_thr", "tr_a", "tr_c", "r_lrs_reset", "y"):
        np.testing.assert_allclose(getattr(split, name), getattr(whole, name), rtol=1e-12,
                                   atol=0, err_msg=name)
    np.testing.assert_allclose(split.hist, whole.hist, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="positions"):
        split.put(index[:-1], sub)
