"""Reference device model: VAR vs MA, determinism, D2D, I-V, switching (SET, partial RESET
ratchet, full RESET), reads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cosim.device import model as dm
from cosim.device import rng
from cosim.device.modelfile import DEFAULT_MA_ORDER, load_model
from cosim.paths import DEFAULT_MODEL


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


def test_ma_equals_var_recursion_up_to_order(model) -> None:
    ids = np.arange(300)
    j = DEFAULT_MA_ORDER
    eps = dm.innovations(3, ids, np.arange(j + 30))
    x_var = dm.latent_var(model, eps)
    x_ma = dm.latent_ma(model, eps, j)
    np.testing.assert_allclose(x_ma[:, : j + 1], x_var[:, : j + 1], rtol=1e-12, atol=1e-12)
    # beyond J the truncation shows, but only slightly (the dropped variance is <= 2 %)
    diff = x_ma[:, j + 1:] - x_var[:, j + 1:]
    assert np.any(np.abs(diff) > 1e-9)
    assert np.sqrt(np.mean(diff**2)) < np.sqrt(0.02)


def test_ma_small_order_is_exact_then_differs(model) -> None:
    eps = dm.innovations(9, np.arange(50), np.arange(12))
    x_var = dm.latent_var(model, eps)
    x_ma = dm.latent_ma(model, eps, 5)
    np.testing.assert_allclose(x_ma[:, :6], x_var[:, :6], rtol=1e-12, atol=1e-13)
    assert not np.allclose(x_ma[:, 6:], x_var[:, 6:])


def test_var_recursion_follows_definition(model) -> None:
    """x_n = L ε_n + Σ_i A_i x_{n-i} checked for one device with explicit loops."""
    eps = dm.innovations(1, np.array([4]), np.arange(15))
    x = dm.latent_var(model, eps)[0]
    for n in range(15):
        want = model.var_chol @ eps[0, n]
        for i in range(1, model.var_order + 1):
            if n - i >= 0:
                want = want + model.var_lags[i - 1] @ x[n - i]
        np.testing.assert_allclose(x[n], want, rtol=1e-12, atol=1e-14)


def test_gamma_is_polyval(model) -> None:
    x = np.random.default_rng(0).normal(size=(7, 4))
    got = dm.gamma_transform(model, x)
    for f in range(4):
        np.testing.assert_allclose(got[:, f], np.polyval(model.gamma[f], x[:, f]), rtol=1e-13)


def test_d2d_component_frequencies_and_means(model) -> None:
    n = 60_000
    p = dm.draw_d2d(model, 5, np.arange(n))
    counts = np.bincount(p.component, minlength=3)
    w = model.d2d_weights / model.d2d_weights.sum()
    assert stats.chisquare(counts, w * n).pvalue > 1e-3
    # picked components, not averaged: component-2 devices have their own mean US
    us2 = p.mu[p.component == 2, 1]
    assert us2.mean() == pytest.approx(model.d2d_means[1, 2], abs=5 * us2.std() / math.sqrt(us2.size))
    cov0 = model.d2d_chol[0] @ model.d2d_chol[0].T
    mu0 = p.mu[p.component == 0, 2]
    assert mu0.std() == pytest.approx(math.sqrt(cov0[2, 2]), rel=0.03)


def test_sequence_depends_only_on_seed_device_cycle(model) -> None:
    ids = np.array([3, 17, 40])
    batch = dm.feature_sequences(model, 8, ids, 30)
    # device 17 alone, simulated with a waveform full of partial resets and reads
    one = dm.DeviceArray(model, seed=8, device_ids=np.array([17]))
    seen = [one.y[0].copy()]
    for _ in range(29):
        one.apply(-2.0)
        one.read(noise=True)
        for u in (0.3, 0.9, 1.0, 0.8, 1.2):
            one.apply(u)
        one.apply(-0.05)  # does nothing
        one.apply(1.6)
        seen.append(one.y[0].copy())
    np.testing.assert_allclose(np.array(seen), batch[1], rtol=1e-12)
    other_seed = dm.feature_sequences(model, 9, ids, 30)
    assert not np.allclose(other_seed, batch)


def test_state_machine_ma_equals_var_for_first_cycles(model) -> None:
    a = dm.DeviceArray(model, 20, seed=2, method="var")
    b = dm.DeviceArray(model, 20, seed=2, method="ma", ma_order=12)
    for _ in range(12):
        a.apply(-2.0), b.apply(-2.0)
        a.apply(1.5), b.apply(1.5)
        np.testing.assert_allclose(a.y, b.y, rtol=1e-11)
    a.apply(-2.0), b.apply(-2.0)
    a.apply(1.5), b.apply(1.5)
    assert not np.allclose(a.y, b.y, rtol=1e-11)


def test_devices_start_in_hrs_of_cycle_zero(model) -> None:
    d = dm.DeviceArray(model, 100, seed=4)
    assert d.in_hrs.all() and not d.in_lrs.any() and (d.cycle == 0).all()
    y0 = dm.feature_sequences(model, 4, np.arange(100), 1)[:, 0]
    np.testing.assert_allclose(d.resistance(), 10 ** y0[:, 0], rtol=1e-10)
    # a positive voltage below Umax does nothing to a device in HRS
    d.apply(1.2)
    np.testing.assert_allclose(d.resistance(), 10 ** y0[:, 0], rtol=1e-10)


def test_static_resistance_mapping(model) -> None:
    r_ohm = np.array([3e3, 4.5e3, 7e4, 2e5])
    r = dm.r_from_resistance(model, r_ohm)
    i = dm.current(model, model.u0, r)
    np.testing.assert_allclose(model.u0 / i, r_ohm, rtol=1e-12)
    assert np.all(r < dm.passive_r_limit(model))
    assert dm.passive_r_limit(model) == pytest.approx(0.889, abs=0.002)  # docs/device-model.md: ≈ 0.889
    np.testing.assert_allclose(dm.r_from_point(model, i, model.u0), r, rtol=1e-12)


def _transition_r(model, u_thr, r_lrs, r_hrs, u):
    """Independent evaluation of the transition curve and r(I, U)."""
    llrs, hhrs = np.append(model.iv_llrs, 0.0), np.append(model.iv_hhrs, 0.0)

    def cur(uu, r):
        return (1 - r) * np.polyval(llrs, uu) + r * np.polyval(hhrs, uu)

    i1, i2 = cur(u_thr, r_lrs), cur(model.umax, r_hrs)
    a = (i1 - i2) / abs(model.umax - u_thr) ** model.eta
    i_tr = a * abs(model.umax - u) ** model.eta + i2
    return (i_tr - np.polyval(llrs, u)) / (np.polyval(hhrs, u) - np.polyval(llrs, u))


def test_partial_reset_follows_transition_curve_and_ratchets(model) -> None:
    d = dm.DeviceArray(model, 200, seed=6)
    d.apply(-2.0)
    assert d.in_lrs.all()
    r_lrs = d.r.copy()
    u_thr = d.ur.copy()
    r_lrs_ohm = d.resistance()
    np.testing.assert_allclose(r_lrs_ohm, d.lrs, rtol=1e-10)
    u1 = u_thr + 0.5 * (model.umax - u_thr)  # half-way to Umax for every device
    d.apply(u1)
    assert (d.cycle == 1).all() and not d.in_lrs.any() and not d.in_hrs.any()
    r_hrs_new = d.r_of_resistance(d.hrs)
    want = _transition_r(model, u_thr, r_lrs, r_hrs_new, u1)
    np.testing.assert_allclose(d.r, want, rtol=1e-10)
    res = d.resistance()
    assert np.all(res > r_lrs_ohm) and np.all(res < d.hrs)
    # ratchet: lower voltages change nothing (and do not start a new cycle)
    before = d.r.copy()
    for u in (u1 - 0.2, u1 - 0.01, 0.1, u1):
        d.apply(u)
        np.testing.assert_array_equal(d.r, before)
    assert (d.cycle == 1).all()
    # a higher voltage follows the same curve further
    u2 = u1 + 0.5 * (model.umax - u1)
    d.apply(u2)
    np.testing.assert_allclose(d.r, _transition_r(model, u_thr, r_lrs, r_hrs_new, u2), rtol=1e-10)
    assert np.all(d.resistance() > res)
    # full reset at Umax lands on this cycle's HRS
    d.apply(model.umax)
    assert d.in_hrs.all()
    np.testing.assert_allclose(d.resistance(), d.hrs, rtol=1e-10)


def test_set_from_intermediate_goes_to_new_lrs(model) -> None:
    d = dm.DeviceArray(model, 100, seed=7)
    d.apply(-2.0)
    lrs_old = d.lrs.copy()
    d.apply(1.0)
    assert not d.in_lrs.any() and not d.in_hrs.any()
    lrs_new = d.lrs.copy()
    assert not np.allclose(lrs_new, lrs_old)  # the reset drew the next cycle's vector
    # a negative voltage above US does not set; one at or below US does
    d.apply(d.us + 0.01)
    assert not d.in_lrs.any()
    d.apply(d.us)
    assert d.in_lrs.all()
    np.testing.assert_allclose(d.resistance(), lrs_new, rtol=1e-10)
    assert (d.cycle == 1).all()


def test_read_noise_has_the_specified_spread(model) -> None:
    d = dm.DeviceArray(model, 1, seed=3)
    d.apply(-2.0)
    i0 = d.read()[0]
    reads = np.array([d.read(noise=True)[0] for _ in range(4000)])
    sigma = dm.read_noise_sigma(model, i0, model.u0)
    k_t = 1.380649e-23 * 300
    assert sigma == pytest.approx(math.sqrt(4 * k_t * 1e8 * i0 / 0.2 + 2 * 1.602176634e-19 * i0 * 1e8))
    assert reads.mean() == pytest.approx(i0, abs=5 * sigma / math.sqrt(4000))
    assert reads.std() == pytest.approx(sigma, rel=5 * math.sqrt(1 / 8000))
    assert np.corrcoef(reads[:-1], reads[1:])[0, 1] < 5 / math.sqrt(4000)


def test_numpy_noisy_read_follows_the_key_scheme(model, monkeypatch) -> None:
    """Every noisy read of the numpy path is I + σ·normal(seed, d, cycle, 16, read counter)
    while cycles move (switching, take/put) and read counters are written."""
    monkeypatch.setattr(dm.NoisyRead, "READ_CHUNK", 7)  # chunks, and a partial last one
    n = 40
    dev = dm.DeviceArray(model, seed=11, device_ids=np.arange(n) * 1000 + 3, backend="numpy")
    g = np.random.default_rng(2)

    def check(d: dm.DeviceArray, u: float) -> None:
        i0, rc = d.current(u), d.read_count.copy()
        z = rng.normal(d.seed, d.ids, d.cycle, rng.STREAM_READ_NOISE, rc)
        want = i0 + dm.read_noise_sigma(model, i0, u) * z
        np.testing.assert_allclose(d.read(u, noise=True), want, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(d.read_count, rc + 1)

    for k in range(6):
        for u in (model.u0, -0.3, model.u0):
            check(dev, u)
        dev.apply(np.where(g.random(n) < 0.5, -2.0, 0.0))  # some devices start a new cycle
        dev.apply(g.uniform(0.8, 1.6, n))
        if k == 2:
            dev.read_count[1::3] = 5  # the read counter is read on every read
            with pytest.raises(ValueError, match="read-only"):  # the cycle moves with a RESET only
                dev.cycle[::5] += 7
        if k == 4:  # a subset read on its own, then written back
            idx = np.array([3, 17, 8, 39])
            sub = dev.take(idx)
            sub.apply(-2.0)
            sub.apply(1.5)
            check(sub, model.u0)
            dev.put(idx, sub)
    assert len(np.unique(dev.cycle)) > 3


def test_adc_quantization(model) -> None:
    q = dm.adc_quantize(np.array([0.0, 1.01e-6, -3e-5, 1.0]), bits=8, full_scale=1e-4)
    lsb = 2e-4 / 256
    np.testing.assert_allclose(q, [0.0, round(1.01e-6 / lsb) * lsb, round(-3e-5 / lsb) * lsb, 127 * lsb])
    d = dm.DeviceArray(model, 50, seed=1)
    d.apply(-2.0)
    i = d.read(adc_bits=6, adc_full_scale=1e-4)
    assert np.allclose(np.round(i / (2e-4 / 64)), i / (2e-4 / 64))


def test_fast_engine_equals_reference_sequences(model) -> None:
    ids = np.array([0, 3, 9, 2**20, 77])
    ref = dm.feature_sequences(model, 13, ids, 25)
    engine = dm.FeatureEngine(model, 13, ids)
    got = np.stack([engine.step().copy() for _ in range(25)], axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)


def test_device_ids_must_be_rng_key_words(model) -> None:
    with pytest.raises(ValueError, match="device ids"):
        dm.DeviceArray(model, device_ids=np.array([0, 2**31]))
    with pytest.raises(ValueError, match="device ids"):
        dm.feature_sequences(model, 0, np.array([-1]), 3)
    with pytest.raises(ValueError, match="seed"):
        dm.DeviceArray(model, 3, seed=2**31)
