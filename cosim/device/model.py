"""Vectorized float64 reference of the generative ReRAM device model (docs/device-model.md).

Units: voltages in V, currents in A, resistances in Ω, conductances in S. Feature vectors
are ordered ``HRS, US, LRS, UR``; in feature arrays ``y`` the HRS entry is log10(Ω) when the
model says ``hrs_log10`` (the default), LRS is in Ω, US/UR in V.

Randomness comes only from :mod:`cosim.device.rng`: the innovation ε_n of device ``d`` is
``normal(seed, d, n, f, 0)`` for f = 0..3, the D2D draw uses streams 8 and 9 at cycle 0, so a
device's feature sequence y_0, y_1, ... depends only on (seed, device id, cycle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

from cosim.device import _fast, rng
from cosim.device.modelfile import DEFAULT_MA_ORDER, DeviceModel, d2d_invalid

BOLTZMANN = 1.380649e-23  # J/K
ELEMENTARY_CHARGE = 1.602176634e-19  # C
HRS, US, LRS, UR = 0, 1, 2, 3

ArrayLike = Union[float, np.ndarray]


def check_device_ids(device_ids: object) -> np.ndarray:
    """Device ids as int64, each in [0, 2**31 - 1] (they are RNG key words)."""
    ids = np.asarray(device_ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError("device ids must be a 1-D array of integers")
    ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() > rng.MASK31):
        raise ValueError("device ids must lie in [0, 2**31 - 1]")
    return ids


# --------------------------------------------------------------------------- D2D
@dataclass
class DeviceParams:
    """Per-device D2D parameters: mixture component and the 4-vectors μ, σ."""

    device_ids: np.ndarray  # (N,) int64
    component: np.ndarray  # (N,) int64
    mu: np.ndarray  # (N, 4)
    sigma: np.ndarray  # (N, 4)
    redrawn: int = 0
    """Devices whose first draw had a σ ≤ 0 or a mean LRS ≤ 0 and were drawn again."""


#: redraws of a device whose D2D vector has σ ≤ 0 or mean LRS ≤ 0 (each with fresh normals)
D2D_MAX_REDRAWS = 64


def draw_d2d(model: DeviceModel, seed: int, device_ids: np.ndarray) -> DeviceParams:
    """Pick a mixture component per device, then ``[μ; σ] = μDtD[:, k] + L_k z``.

    A Gaussian draw can give σ ≤ 0 (about 1e-4 of the devices of the published parameters),
    which flips or freezes a feature's cycle-to-cycle variation, or an LRS that can reach 0 Ω
    (:func:`cosim.device.modelfile.d2d_invalid`). Such a device is drawn again within its
    component with fresh normals (key cycle word = attempt 1, 2, ...): the D2D distribution is
    truncated to valid devices. The number of redrawn devices is ``DeviceParams.redrawn``.
    Model files whose mixture would need this for more than 1 % of the devices are refused
    (:data:`cosim.device.modelfile.MAX_INVALID_D2D`).
    """
    seed = rng.check_seed(seed)
    ids = check_device_ids(device_ids)
    u = rng.uniform(seed, ids, 0, rng.STREAM_D2D_COMPONENT, 0)
    cum = np.cumsum(model.d2d_weights) / model.d2d_weights.sum()
    comp = np.minimum(np.searchsorted(cum, u, side="right"), model.n_components - 1)
    z = rng.normal(seed, ids[:, None], 0, rng.STREAM_D2D_NORMAL, np.arange(8)[None, :])  # (N, 8)
    means = model.d2d_means.T[comp]  # (N, 8)
    chol = model.d2d_chol[comp]  # (N, 8, 8)
    vec = means + np.einsum("nij,nj->ni", chol, z)
    bad = np.flatnonzero(d2d_invalid(model, vec))
    redrawn = int(bad.size)
    for attempt in range(1, D2D_MAX_REDRAWS + 1):
        if bad.size == 0:
            break
        z = rng.normal(seed, ids[bad, None], attempt, rng.STREAM_D2D_NORMAL, np.arange(8)[None, :])
        vec[bad] = means[bad] + np.einsum("nij,nj->ni", chol[bad], z)
        bad = bad[d2d_invalid(model, vec[bad])]
    if bad.size:  # not reached for a valid model file (probability < 0.01 ** 64)
        raise ValueError(f"{bad.size} device(s) without a valid D2D draw after "
                         f"{D2D_MAX_REDRAWS} attempts; the model's D2D mixture is degenerate")
    return DeviceParams(ids, comp.astype(np.int64), vec[:, :4].copy(), vec[:, 4:].copy(), redrawn)


# --------------------------------------------------------------------------- C2C
def innovations(seed: int, device_ids: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """ε (N, C, 4) for the given devices and cycle numbers."""
    seed = rng.check_seed(seed)
    prefix = rng.hash_prefix(np.uint32(seed), check_device_ids(device_ids).astype(np.uint32))
    return np.stack([rng.c2c_normals(prefix, int(c)) for c in np.asarray(cycles)], axis=1)


def latent_var(model: DeviceModel, eps: np.ndarray) -> np.ndarray:
    """Exact VAR(p) recursion ``x_n = L ε_n + Σ_i A_i x_{n-i}``, zero history before n = 0.

    ``eps`` is (N, C, 4) for cycles 0..C-1; returns x of the same shape.
    """
    n_dev, n_cyc, _ = eps.shape
    p = model.var_order
    shocks = eps @ model.var_chol.T
    x = np.empty_like(shocks)
    # stacked lag matrix: x_n = hist @ big, hist = [x_{n-1}, ..., x_{n-p}] (N, 4p)
    big = np.concatenate([a.T for a in model.var_lags], axis=0)  # (4p, 4)
    hist = np.zeros((n_dev, 4 * p))
    for n in range(n_cyc):
        xn = shocks[:, n] + hist @ big if p else shocks[:, n]
        x[:, n] = xn
        if p:
            hist[:, 4:] = hist[:, :-4]
            hist[:, :4] = xn
    return x


def latent_ma(model: DeviceModel, eps: np.ndarray, order: int = DEFAULT_MA_ORDER) -> np.ndarray:
    """Truncated MA form ``x_n = Σ_{k=0..min(n,J)} (Ψ_k L) ε_{n-k}`` (exact for n <= J)."""
    coeffs = model.ma_coefficients(order)  # (J+1, 4, 4)
    n_cyc = eps.shape[1]
    x = np.zeros_like(eps)
    for k in range(min(order, n_cyc - 1) + 1):
        x[:, k:] += eps[:, : n_cyc - k] @ coeffs[k].T
    return x


def gamma_transform(model: DeviceModel, x: np.ndarray) -> np.ndarray:
    """Γ: per-feature degree-4 polynomial (Horner) of the latent, last axis = feature."""
    g = model.gamma  # (4, 5)
    out = np.broadcast_to(g[:, 0], x.shape).copy()
    for j in range(1, g.shape[1]):
        out *= x
        out += g[:, j]
    return out


def psi_transform(model: DeviceModel, params: DeviceParams, x: np.ndarray) -> np.ndarray:
    """Ψ: ``y = μ + σ ⊙ Γ(x)`` per device; x is (N, ..., 4). HRS stays in log10 Ω."""
    shape = (params.mu.shape[0],) + (1,) * (x.ndim - 2) + (4,)
    return params.mu.reshape(shape) + params.sigma.reshape(shape) * gamma_transform(model, x)


def feature_sequences(model: DeviceModel, seed: int, device_ids: np.ndarray, n_cycles: int,
                      method: str = "var", ma_order: int = DEFAULT_MA_ORDER,
                      params: Optional[DeviceParams] = None,
                      backend: Optional[str] = None) -> np.ndarray:
    """Features y (N, C, 4) of cycles 0..C-1 (HRS in log10 Ω if the model says so).

    ``backend``: ``"numba"`` (compiled, the default when numba imports; used for
    ``method="var"``) or ``"numpy"`` (the reference implementation).
    """
    ids = check_device_ids(device_ids)
    params = params if params is not None else draw_d2d(model, seed, ids)
    if method == "var" and _fast.resolve_backend(backend) == "numba":
        return _feature_sequences_numba(model, seed, ids, int(n_cycles), params)
    eps = innovations(seed, ids, np.arange(n_cycles))
    if method == "var":
        x = latent_var(model, eps)
    elif method == "ma":
        x = latent_ma(model, eps, ma_order)
    else:
        raise ValueError(f"method must be 'var' or 'ma', got {method!r}")
    return psi_transform(model, params, x)


def _feature_sequences_numba(model: DeviceModel, seed: int, ids: np.ndarray, n_cycles: int,
                              params: DeviceParams) -> np.ndarray:
    prefix = rng.hash_prefix(np.uint32(rng.check_seed(seed)), ids.astype(np.uint32))
    y = np.empty((ids.size, max(n_cycles, 0), 4))
    args = (np.ascontiguousarray(prefix, dtype=np.uint32), _c(model.var_chol), _c(model.var_lags),
            _c(model.gamma), _c(params.mu.T), _c(params.sigma.T), y)
    _fast.split_run(_fast.feature_sequences_kernel, ids.size, args)
    return y


def _c(a: np.ndarray) -> np.ndarray:
    """C-contiguous float64 copy-if-needed (kernel arguments)."""
    return np.ascontiguousarray(a, dtype=np.float64)


class FeatureEngine:
    """Fast path: all devices advance together, one cycle per :meth:`step` (VAR recursion).

    Produces the features of :func:`feature_sequences` (method ``"var"``) with
    preallocated buffers and a ring-buffer lag history (no copies of it).
    ``backend="numba"`` (the default when numba imports) runs one fused compiled kernel per
    cycle, split over ``threads`` threads (default: the usable CPUs); ``"numpy"`` is the
    reference with feature-major buffers.
    """

    def __init__(self, model: DeviceModel, seed: int, device_ids: np.ndarray,
                 params: Optional[DeviceParams] = None, backend: Optional[str] = None,
                 threads: Optional[int] = None) -> None:
        ids = check_device_ids(device_ids)
        self.model = model
        self.params = params if params is not None else draw_d2d(model, seed, ids)
        prefix = rng.hash_prefix(np.uint32(rng.check_seed(seed)), ids.astype(np.uint32))
        self.backend = _fast.resolve_backend(backend)
        self.threads = threads
        n, p = ids.size, model.var_order
        self.cycle = 0
        self._p = p
        if self.backend == "numba":
            self._kernel_args = (np.ascontiguousarray(prefix, dtype=np.uint32), _c(model.var_chol),
                                 _c(model.var_lags), _c(model.gamma), _c(self.params.mu.T),
                                 _c(self.params.sigma.T),
                                 np.zeros((-(-n // _fast.BLOCK), max(p, 1), 4, _fast.BLOCK)))
            self._y_fm = np.empty((4, n))
            return
        self._normals = rng.C2CNormals(prefix, backend="numpy")
        self._hist = np.zeros((4 * max(p, 1), n))
        self._eps = np.empty((4, n))
        self._x = np.empty((4, n))
        self._y = np.empty((4, n))
        self._mu = np.ascontiguousarray(self.params.mu.T)
        self._sigma = np.ascontiguousarray(self.params.sigma.T)
        self._gamma = [model.gamma[:, j][:, None] for j in range(model.gamma.shape[1])]
        # ring slot s holds x_m with m % p == s; at cycle n slot s carries lag ((n - s) mod p) or p
        self._big = [np.concatenate([model.var_lags[(k - s - 1) % p] for s in range(p)], axis=1)
                     for k in range(p)] if p else []

    def run(self, n_cycles: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Features y (N, n_cycles, 4) of the next ``n_cycles`` cycles (HRS in log10 Ω if the
        model says so); the engine moves on by ``n_cycles``. The same numbers as as many
        :meth:`step` calls; the compiled path runs all cycles of a block of devices while its
        lag history is in cache. ``out``: optional C-contiguous float64 array to fill."""
        n_cycles = int(n_cycles)
        shape = (self.params.mu.shape[0], n_cycles, 4)
        if out is None:
            out = np.empty(shape)
        elif out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float64 array of shape {shape}")
        if self.backend != "numba":
            for c in range(n_cycles):
                out[:, c] = self.step()
            return out
        prefix, chol, lags, gamma, mu, sigma, hist = self._kernel_args
        _fast.split_run(_fast.engine_run_kernel, prefix.size,
                        (prefix, self.cycle, chol, lags, gamma, mu, sigma, hist, out), self.threads,
                        align=_fast.BLOCK)
        self.cycle += n_cycles
        return out

    def step(self) -> np.ndarray:
        """Features y (N, 4) of the current cycle (a reused buffer, or a transposed view of
        one: copy it to keep it); then move to the next cycle."""
        n, p = self.cycle, self._p
        if self.backend == "numba":
            prefix, chol, lags, gamma, mu, sigma, hist = self._kernel_args
            _fast.split_run(_fast.engine_step_kernel, prefix.size,
                            (prefix, n, chol, lags, gamma, mu, sigma, hist, self._y_fm), self.threads,
                            align=_fast.BLOCK)
            self.cycle += 1
            return self._y_fm.T
        eps = self._normals.fill(n, self._eps)
        x = np.matmul(self.model.var_chol, eps, out=self._x)
        if p:
            k = n % p
            x += self._big[k] @ self._hist
            self._hist[4 * k: 4 * k + 4] = x
        y = self._y
        y[:] = self._gamma[0]
        for g in self._gamma[1:]:
            y *= x
            y += g
        y *= self._sigma
        y += self._mu
        self.cycle += 1
        return y.T


def hrs_ohm(model: DeviceModel, y_hrs: ArrayLike) -> ArrayLike:
    """HRS feature value → Ω."""
    return np.power(10.0, y_hrs) if model.hrs_log10 else y_hrs


# --------------------------------------------------------------------------- I-V
def current(model: DeviceModel, u: ArrayLike, r: ArrayLike) -> ArrayLike:
    """``I(U; r) = (1 − r)·P_LLRS(U) + r·P_HHRS(U)`` in A."""
    pl = np.polyval(model.llrs_poly(), u)
    ph = np.polyval(model.hhrs_poly(), u)
    return (1.0 - r) * pl + r * ph


def basis_conductances(model: DeviceModel) -> tuple[float, float]:
    """(G_LLRS, G_HHRS) = P_X(U0)/U0 in S; G_HHRS is negative."""
    u0 = model.u0
    return float(np.polyval(model.llrs_poly(), u0) / u0), float(np.polyval(model.hhrs_poly(), u0) / u0)


def r_from_resistance(model: DeviceModel, resistance: ArrayLike) -> ArrayLike:
    """``r(R) = (G_LLRS − 1/R)/(G_LLRS − G_HHRS)`` for a static resistance R (Ω) at U0."""
    g_l, g_h = basis_conductances(model)
    return (g_l - 1.0 / np.asarray(resistance, dtype=np.float64)) / (g_l - g_h)


def r_from_point(model: DeviceModel, i: ArrayLike, u: ArrayLike) -> ArrayLike:
    """``r = (I − P_LLRS(U))/(P_HHRS(U) − P_LLRS(U))`` for a point (I, U)."""
    pl = np.polyval(model.llrs_poly(), u)
    ph = np.polyval(model.hhrs_poly(), u)
    return (i - pl) / (ph - pl)


def passive_r_limit(model: DeviceModel) -> float:
    """r above which the device would stop being passive near 0 V: G_L/(G_L − G_H)."""
    g_l, g_h = basis_conductances(model)
    return g_l / (g_l - g_h)


def read_noise_sigma(model: DeviceModel, i: ArrayLike, u: ArrayLike) -> ArrayLike:
    """Read-noise sd (A): σ² = 4kT·BW·|I/U| + 2q|I|·BW."""
    bw, temp = model.read_bandwidth_Hz, model.read_temperature_K
    i_abs = np.abs(i)
    g = i_abs / np.maximum(np.abs(u), 1e-30)
    return np.sqrt(4.0 * BOLTZMANN * temp * bw * g + 2.0 * ELEMENTARY_CHARGE * i_abs * bw)


def adc_quantize(i: ArrayLike, bits: int, full_scale: float) -> ArrayLike:
    """Mid-tread ADC of ``bits`` bits over [−full_scale, +full_scale) A."""
    if bits < 1 or full_scale <= 0:
        raise ValueError("ADC needs bits >= 1 and full_scale > 0")
    lsb = 2.0 * full_scale / 2**bits
    code = np.clip(np.round(np.asarray(i) / lsb), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return code * lsb


class NoisyRead:
    """The noisy read of the numpy path (``DeviceArray.read(noise=True)``, backend "numpy").

    Device d reads I + σ·z (A): I = (1 − r)·P_LLRS(U) + r·P_HHRS(U) as in :func:`current`,
    σ² = c·|I| with c = 4kT·BW/|U| + 2q·BW (A; :func:`read_noise_sigma`) and z the normal of
    key (seed, d, cycle_d, 16, read counter_d) (:func:`cosim.device.rng.normal`); the read
    counters then move on. Same numbers as those functions, computed faster:

    * the hash after absorbing (seed, d, cycle, 16) is the device's read key, which the array
      keeps with its cycle (``DeviceArray._read_key``); a read absorbs the read counter (u1)
      and ``rng.SECOND`` (u2): two mixes.
    * σ·z = sqrt(2c)·sqrt(|I|·(−ln u1))·cos(2π·u2) with the half-angle form
      cos(2π·u2) = (1 − τ²)/(1 + τ²) = 2/(1 + τ²) − 1, τ = tan(π·u2): numpy's float64 tan
      is vectorized where its cos is not (~1 ns against ~8 ns per value). u2 is never ½
      exactly, so |τ| < 1.4·10⁹.
    * The devices go by chunks of ``READ_CHUNK`` through preallocated buffers, in place.

    z stays within 3e-15 (absolute) of ``rng.normal``'s (rounding in tan, log and in the
    argument of numpy's cos; 30 % of 4·10⁶ normals bit-identical); reads agree to ~1 ulp.
    """

    #: devices per chunk (buffers of 1.6 MB): fewer ufunc calls per device, temporaries
    #: mostly in cache; 16K to 128K were within 10 % of each other, 64K the fastest
    READ_CHUNK = 65536

    def __init__(self, n_devices: int) -> None:
        m = min(n_devices, self.READ_CHUNK)
        self._buf = (np.empty(m, dtype=np.uint32), np.empty(m, dtype=np.uint32),
                     np.empty(m), np.empty(m))

    def read(self, dev: "DeviceArray", u: float) -> np.ndarray:
        """Noisy currents (A) of the devices of ``dev`` at ``u`` (V); moves their read counters."""
        p_llrs, p_hhrs, _, _, _, two_c = dev._read_constants(u)  # σ² = c·|I|
        s = math.sqrt(two_c)  # σ·z = s·sqrt(|I|·(−ln u1))·cos(2π·u2)
        # constants as 0-d arrays (cheaper ufunc calls than Python floats)
        pl, ph, half, scale, ang, one, s1, s2, one_int = (np.array(v) for v in (
            p_llrs, p_hhrs, 0.5, 1.0 / rng.TWO_POW_31, math.pi / rng.TWO_POW_31, 1.0, s,
            2.0 * s, 1))
        second = np.array(rng.SECOND, dtype=np.uint32)
        n = dev.n_devices
        out = np.empty(n)
        with np.errstate(over="ignore"):  # uint32 products wrap mod 2**32 by design
            for lo in range(0, n, self.READ_CHUNK):
                hi = min(n, lo + self.READ_CHUNK)
                h, tmp, a, b = (x[:hi - lo] for x in self._buf)
                key_hash = dev._read_key[lo:hi]
                i = out[lo:hi]
                r = dev.r[lo:hi]
                np.subtract(one, r, a)  # I = (1 − r)·pl + r·ph, the operations of current()
                np.multiply(a, pl, a)
                np.multiply(r, ph, i)
                np.add(i, a, i)
                rc = dev.read_count[lo:hi]
                np.copyto(h, rc, casting="unsafe")
                np.bitwise_xor(h, key_hash, h)
                rng.mix31_into(h, tmp)  # full key hash -> u1
                np.add(rc, one_int, rc)
                h31 = h.view(np.int32)  # < 2**31: int32 converts to float faster than uint32
                np.add(h31, half, a)
                np.multiply(a, scale, a)
                np.log(a, a)  # ln u1
                np.multiply(a, i, a)
                np.abs(a, a)
                np.sqrt(a, a)  # sqrt(|I|·(−ln u1))
                np.bitwise_xor(h, second, h)
                rng.mix31_into(h, tmp)  # -> u2
                np.add(h31, half, b)
                np.multiply(b, ang, b)  # π·u2
                np.tan(b, b)  # τ
                np.multiply(b, b, b)
                np.add(b, one, b)
                np.divide(s2, b, b)
                np.subtract(b, s1, b)  # s·cos(2π·u2) = s·(2/(1 + τ²) − 1)
                np.multiply(b, a, b)
                np.add(i, b, i)
        return out


# --------------------------------------------------------------------------- state machine
def _index(mask: np.ndarray) -> Union[slice, np.ndarray]:
    """``mask`` as an index: the whole axis when every entry is selected (a view, no
    gather), else the mask itself."""
    return slice(None) if mask.all() else mask


class DeviceArray:
    """N devices switched by quasi-static voltage levels (docs/device-model.md, Switching).

    Every device starts in HRS of cycle 0. :meth:`apply` moves devices according to the
    voltage level (V, scalar or per device); :meth:`read` returns the current at U0.
    ``method`` selects how latent vectors are produced: ``"var"`` (exact recursion with a
    per-device history) or ``"ma"`` (truncated MA of order ``ma_order``, recomputed from the
    counter RNG — the form the Verilog-A model uses). ``backend="numba"`` (the default when
    numba imports) runs :meth:`apply` of method ``"var"`` and :meth:`read` as compiled
    passes over the devices, split over ``threads`` threads; ``"numpy"`` is the reference.
    ``precision="float32"`` (compiled path only) stores the lag history and μ, σ in float32
    and computes the normals (switching innovations, read noise) from the same keys in
    float32 arithmetic (the rest stays float64): less memory traffic and twice the devices per
    vector register; normals within 1.5e-6 absolute and features within ~2e-7 relative of
    the float64 path (docs/device-model.md, "Speed").
    """

    def __init__(self, model: DeviceModel, n_devices: int | None = None, seed: int = 0,
                 device_ids: Optional[np.ndarray] = None, method: str = "var",
                 ma_order: int = DEFAULT_MA_ORDER, backend: Optional[str] = None,
                 threads: Optional[int] = None, precision: str = "float64") -> None:
        if device_ids is None:
            if n_devices is None:
                raise ValueError("give n_devices or device_ids")
            device_ids = np.arange(n_devices)
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' or 'float32', got {precision!r}")
        self.model = model
        self.seed = rng.check_seed(seed)
        self.ids = check_device_ids(device_ids)
        if method not in ("var", "ma"):
            raise ValueError(f"method must be 'var' or 'ma', got {method!r}")
        self.method = method
        self.ma_order = int(ma_order)
        self.backend = _fast.resolve_backend(backend)
        self.threads = threads
        n = self.ids.size
        self.params = draw_d2d(model, self.seed, self.ids)
        self._prefix = rng.hash_prefix(np.uint32(self.seed), self.ids.astype(np.uint32))
        self._g_l, self._g_h = basis_conductances(model)
        self._r_max = passive_r_limit(model)
        self._ma = model.ma_coefficients(self.ma_order) if method == "ma" else None
        self._cycle = np.zeros(n, dtype=np.int32)  # key words lie below 2**31 (docs/rng.md)
        self._yf = np.empty((4, n))  # feature-major; ``y`` is its (N, 4) view
        self.y = self._yf.T
        self._compiled = self.backend == "numba" and method == "var"
        if precision == "float32" and not self._compiled:
            raise ValueError("precision 'float32' needs the compiled path (backend 'numba', "
                             "method 'var')")
        self.precision = precision
        self._store = np.float32 if precision == "float32" else np.float64
        p = model.var_order
        # lag history as ring buffers (see ``hist``): slot s of a device holds x_m, m ≡ s mod p
        if self._compiled:  # by block of devices, feature-major inside a block
            self._ring = np.zeros((-(-n // _fast.SWITCH_BLOCK), p, 4, _fast.SWITCH_BLOCK),
                                  dtype=self._store)
        else:  # (p, N, 4)
            self._ring = np.zeros((p if method == "var" else 0, n, 4))
        self.in_hrs = np.ones(n, dtype=bool)
        self.in_lrs = np.zeros(n, dtype=bool)
        self.ur_thr = np.empty(n)
        self.tr_a = np.zeros(n)
        self.tr_c = np.zeros(n)
        self.r_lrs_reset = np.zeros(n)
        self.read_count = np.zeros(n, dtype=np.int32)
        #: hash of (seed, device, cycle, 16), the read-noise key before its read counter,
        #: updated with the cycle (by ``_advance`` and the switching kernel)
        self._read_key = np.empty(n, dtype=np.uint32)
        self._kernel_consts: Optional[tuple] = None
        self._read_at: Optional[tuple] = None  # (voltage, _read_constants of it)
        self._normals: Optional[rng.C2CNormals] = None
        self._noisy_read: Optional[NoisyRead] = None  # numpy path: its read buffers
        self._advance(np.ones(n, dtype=bool), first=True)
        self.ur_thr[:] = self.ur
        self.r = self.r_of_resistance(self.hrs)

    @property
    def hist(self) -> np.ndarray:
        """Lag history (N, 4p): ``[x_n, x_{n−1}, …, x_{n−p+1}]`` of every device at its
        current cycle n (zero before cycle 0), a copy in this order of the ring buffers
        kept internally."""
        p = self.model.var_order if self.method == "var" else 0
        n = self.n_devices
        dev = np.arange(n)
        out = np.empty((n, 4 * p))
        for i in range(p):
            slot = (self._cycle - i) % p
            if self._compiled:
                rows = self._ring[dev // _fast.SWITCH_BLOCK, slot, :, dev % _fast.SWITCH_BLOCK]
            else:
                rows = self._ring[slot, dev]
            out[:, 4 * i: 4 * i + 4] = rows
        return out

    @property
    def cycle(self) -> np.ndarray:
        """Cycle number of every device (read-only view: the cycle only moves with a RESET,
        together with the device's features, lag history and read-noise key)."""
        view = self._cycle.view()
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------ features
    @property
    def n_devices(self) -> int:
        return int(self.ids.size)

    @property
    def hrs(self) -> np.ndarray:
        """HRS of the current cycle, Ω."""
        return hrs_ohm(self.model, self.y[:, HRS])

    @property
    def lrs(self) -> np.ndarray:
        """LRS of the current cycle, Ω."""
        return self.y[:, LRS]

    @property
    def us(self) -> np.ndarray:
        """SET threshold of the current cycle, V (negative)."""
        return self.y[:, US]

    @property
    def ur(self) -> np.ndarray:
        """RESET threshold of the current cycle, V."""
        return self.y[:, UR]

    def r_of_resistance(self, resistance: np.ndarray) -> np.ndarray:
        return (self._g_l - 1.0 / resistance) / (self._g_l - self._g_h)

    def _latent(self, sel: np.ndarray, first: bool) -> np.ndarray:
        """Latent x at the (already incremented) cycle of the selected devices."""
        cyc = self._cycle[sel]
        if self.method == "var":
            if not self._compiled and 0 < cyc.size == self.n_devices and cyc.min() == cyc.max():
                if self._normals is None:  # all devices in step: allocation-free normals
                    self._normals = rng.C2CNormals(self._prefix, backend="numpy")
                    self._eps_fm = np.empty((4, self.n_devices))
                eps = self._normals.fill(int(cyc[0]), self._eps_fm).T
            else:
                eps = self._eps(sel, cyc)
            x = eps @ self.model.var_chol.T
            p = self.model.var_order
            if not p:
                return x
            dev = np.flatnonzero(sel)
            if self._compiled:  # only cycle 0 comes here: x_0 goes into ring slot 0
                self._ring[dev // _fast.SWITCH_BLOCK, 0, :, dev % _fast.SWITCH_BLOCK] = x
                return x
            n_dev = self.n_devices
            if not first:  # x_n += Σ_i A_i x_{n−i}, lag after lag
                self._add_lags(x, dev, cyc)
            if 0 < dev.size == n_dev and cyc.min() == cyc.max():
                self._ring[int(cyc[0]) % p] = x
            else:
                self._ring.reshape(-1, 4)[(cyc % p) * n_dev + dev] = x
            return x
        x = np.zeros((int(sel.sum()), 4))
        for k in range(self.ma_order + 1):
            ok = cyc >= k
            if not ok.any():
                break
            idx = np.flatnonzero(sel)[ok]
            eps = self._eps_idx(idx, cyc[ok] - k)
            x[ok] += eps @ self._ma[k].T
        return x

    def _add_lags(self, x: np.ndarray, dev: np.ndarray, cyc: np.ndarray) -> None:
        """x += A_1 x_{n−1} + … + A_p x_{n−p} (in this order) for devices ``dev`` at their
        cycles n = ``cyc`` (numpy path; ring (p, N, 4), slot s of device d = row s·N + d)."""
        p, n_dev = self.model.var_order, self.n_devices
        in_step = cyc.size > 0 and cyc.min() == cyc.max()
        rows = self._ring.reshape(-1, 4)
        term = np.empty_like(x)
        for i in range(1, p + 1):
            if in_step:  # a whole slot (or its rows of the selected devices)
                slot = self._ring[(int(cyc[0]) - i) % p]
                lag = slot if dev.size == n_dev else slot[dev]
            else:
                lag = rows[((cyc - i) % p) * n_dev + dev]
            x += np.matmul(lag, self.model.var_lags[i - 1].T, out=term)

    def _eps(self, sel: np.ndarray, cyc: np.ndarray) -> np.ndarray:
        return self._eps_idx(np.flatnonzero(sel), cyc)

    def _eps_idx(self, idx: np.ndarray, cyc: np.ndarray) -> np.ndarray:
        h_c = rng.hash_extend(self._prefix[idx], cyc.astype(np.uint32))
        hs = rng.hash_extend(h_c[:, None], np.arange(4, dtype=np.uint32)[None, :], np.uint32(0))
        return rng.normal_from_hash(hs)

    def _advance(self, sel: np.ndarray, first: bool = False) -> None:
        """Move the selected devices to their next cycle (or set up cycle 0)."""
        ix = _index(sel)
        if not first:
            self._cycle[ix] += 1
        x = self._latent(sel, first)
        mu, sigma = self.params.mu[ix], self.params.sigma[ix]
        self.y[ix] = mu + sigma * gamma_transform(self.model, x)
        self.read_count[ix] = 0
        self._read_key[ix] = rng.hash_extend(self._prefix[ix], self._cycle[ix].astype(np.uint32),
                                             np.uint32(rng.STREAM_READ_NOISE))

    # ------------------------------------------------------------ switching
    def apply(self, voltage: ArrayLike) -> None:
        """Apply a quasi-static voltage level (V) to every device (scalar or (N,) array)."""
        if self._compiled:
            self._apply_numba(voltage)
            return
        u = np.broadcast_to(np.asarray(voltage, dtype=np.float64), self.ids.shape)
        m = self.model
        do_set_ = None
        # SET: not in LRS and U <= US_n
        do_set = (~self.in_lrs) & (u <= self.us)
        if do_set.any():
            do_set_ = do_set
            do_set = _index(do_set)
            self.r[do_set] = self.r_of_resistance(self.y[do_set, LRS])
            self.in_lrs[do_set] = True
            self.in_hrs[do_set] = False
            self.ur_thr[do_set] = self.y[do_set, UR]
        # first RESET after LRS
        first = self.in_lrs & (u > self.ur_thr)
        if do_set_ is not None:
            first &= ~do_set_
        if first.any():
            first_ = first
            first = _index(first)
            u1 = self.ur_thr[first]
            r_lrs = self.r[first]
            self.r_lrs_reset[first] = r_lrs
            self._advance(first_)
            self.in_lrs[first] = False
            i1 = current(m, u1, r_lrs)
            i2 = current(m, m.umax, self.r_of_resistance(hrs_ohm(m, self.y[first, HRS])))
            span = np.maximum(m.umax - u1, 1e-12)
            self.tr_c[first] = i2
            self.tr_a[first] = (i1 - i2) / span**m.eta
        # partial / full RESET of devices that are in neither state
        moving = (~self.in_lrs) & (~self.in_hrs) & (u > self.ur_thr)
        full_ = moving & (u >= m.umax)
        full = _index(full_)
        if full_.any():
            self.r[full] = self.r_of_resistance(hrs_ohm(m, self.y[full, HRS]))
            self.in_hrs[full] = True
        part = moving & ~full_
        if part.any():
            part = _index(part)
            up = u[part]
            i_tr = self.tr_a[part] * np.abs(m.umax - up) ** m.eta + self.tr_c[part]
            r_new = r_from_point(m, i_tr, up)
            r_hrs = self.r_of_resistance(hrs_ohm(m, self.y[part, HRS]))
            lo = np.minimum(self.r_lrs_reset[part], r_hrs)
            hi = np.maximum(self.r_lrs_reset[part], r_hrs)
            self.r[part] = np.clip(r_new, lo, np.minimum(hi, self._r_max))
            self.ur_thr[part] = up

    def _consts(self) -> tuple:
        """Kernel arguments that do not change: prefixes, feature-major μ, σ, model arrays."""
        if self._kernel_consts is None:
            m = self.model
            pad = np.zeros(_fast.POLY_N)
            llrs, hhrs = m.llrs_poly(), m.hhrs_poly()
            pl_u, ph_u = pad.copy(), pad.copy()
            pl_u[_fast.POLY_N - llrs.size:] = llrs
            ph_u[_fast.POLY_N - hhrs.size:] = hhrs
            consts = np.zeros(_fast.N_CONSTS)
            consts[_fast.C_GL] = self._g_l
            consts[_fast.C_DG] = self._g_l - self._g_h
            consts[_fast.C_RMAX] = self._r_max
            consts[_fast.C_UMAX] = m.umax
            consts[_fast.C_ETA] = m.eta
            consts[_fast.C_PL_UMAX] = np.polyval(llrs, m.umax)
            consts[_fast.C_PH_UMAX] = np.polyval(hhrs, m.umax)
            self._kernel_consts = (
                np.ascontiguousarray(self._prefix, dtype=np.uint32),
                np.ascontiguousarray(self.params.mu.T, dtype=self._store),
                np.ascontiguousarray(self.params.sigma.T, dtype=self._store), _c(m.var_chol),
                _c(m.var_lags), _c(m.gamma), pl_u, ph_u, consts)
        return self._kernel_consts

    def _apply_numba(self, voltage: ArrayLike) -> None:
        u = np.asarray(voltage, dtype=np.float64)
        if u.ndim == 0:
            u = u.reshape(1)
        else:
            u = np.ascontiguousarray(np.broadcast_to(u, self.ids.shape))
        prefix, muf, sigf, chol, lags, gamma, llrs, hhrs, consts = self._consts()
        args = (u, prefix, self._cycle, self.read_count, self._read_key, self.in_hrs,
                self.in_lrs, self.r, self.ur_thr, self.tr_a, self.tr_c, self.r_lrs_reset,
                self._yf, muf, sigf, self._ring, chol, lags, gamma, llrs, hhrs, consts,
                bool(self.model.hrs_log10), self.precision == "float32")
        _fast.split_run(_fast.switch_kernel, self.ids.size, args, self.threads,
                        align=_fast.SWITCH_BLOCK)

    # ------------------------------------------------------------ subsets
    #: per-device state arrays (N,) that :meth:`apply` changes (besides ``_yf`` and the ring)
    _STATE = ("_cycle", "read_count", "_read_key", "in_hrs", "in_lrs", "r", "ur_thr", "tr_a",
              "tr_c", "r_lrs_reset")

    def take(self, index: np.ndarray) -> "DeviceArray":
        """The devices at positions ``index`` (distinct ints) as a new array of
        ``len(index)`` devices: copies of their ids, D2D parameters and whole state
        (features, lag history, switching state, read counters), same model, seed,
        method, backend, threads and precision. They switch and read exactly as they would
        in this array; :meth:`put` writes their states back. Lets a loop that pulses few
        of many devices run the switching pass over those few only."""
        idx = np.asarray(index, dtype=np.int64)
        sub = object.__new__(DeviceArray)
        sub.__dict__.update(self.__dict__)
        pr = self.params
        sub.params = replace(pr, device_ids=pr.device_ids[idx], component=pr.component[idx],
                             mu=pr.mu[idx], sigma=pr.sigma[idx])
        sub.ids = self.ids[idx]
        sub._prefix = self._prefix[idx]
        for name in self._STATE:
            setattr(sub, name, getattr(self, name)[idx])
        sub._yf = np.ascontiguousarray(self._yf[:, idx])
        sub.y = sub._yf.T
        if self._compiled:
            sb = _fast.SWITCH_BLOCK
            sub._ring = np.zeros((-(-idx.size // sb),) + self._ring.shape[1:], dtype=self._store)
            _fast.ring_move(self._ring, idx, sub._ring, np.arange(idx.size))
        else:
            sub._ring = np.ascontiguousarray(self._ring[:, idx])
        sub._kernel_consts = None
        sub._normals = None
        sub._noisy_read = None
        return sub

    def put(self, index: np.ndarray, sub: "DeviceArray") -> None:
        """Write the state of ``sub`` (made by :meth:`take` with the same ``index``) back
        into the devices at positions ``index``."""
        idx = np.asarray(index, dtype=np.int64)
        if sub.n_devices != idx.size:
            raise ValueError(f"put: {idx.size} positions for {sub.n_devices} devices")
        for name in self._STATE:
            getattr(self, name)[idx] = getattr(sub, name)
        self._yf[:, idx] = sub._yf
        if self._compiled:
            _fast.ring_move(sub._ring, np.arange(idx.size), self._ring, idx)
        else:
            self._ring[:, idx] = sub._ring

    # ------------------------------------------------------------ reads
    def current(self, voltage: ArrayLike) -> np.ndarray:
        """Noise-free current I(U; r) in A for every device."""
        return current(self.model, np.asarray(voltage, dtype=np.float64), self.r)

    def read(self, voltage: Optional[float] = None, noise: bool = False,
             adc_bits: Optional[int] = None, adc_full_scale: Optional[float] = None) -> np.ndarray:
        """Read current (A) at ``voltage`` (default U0), optionally with noise and an ADC.

        Noise draws use stream 16 keyed by (seed, device, cycle, read counter).
        """
        u = self.model.u0 if voltage is None else float(voltage)
        if self.backend == "numba":
            i = self._read_numba(u, noise)
        else:
            i = self._read_numpy(u, noise)
        if adc_bits is not None:
            if adc_full_scale is None:
                raise ValueError("adc_full_scale is needed with adc_bits")
            i = adc_quantize(i, adc_bits, adc_full_scale)
        return i

    def _read_constants(self, u: float) -> tuple[float, float, float, float, float, float]:
        """(P_LLRS(U), P_HHRS(U), 4kT·BW, 2q, BW, scale) of a read at ``u`` V, kept for the
        last voltage read (scale = 2·(4kT·BW/|U| + 2q·BW), see ``_fast.read_kernel32``)."""
        if self._read_at is None or self._read_at[0] != u:
            m = self.model
            johnson = 4.0 * BOLTZMANN * m.read_temperature_K * m.read_bandwidth_Hz
            shot, bw = 2.0 * ELEMENTARY_CHARGE, float(m.read_bandwidth_Hz)
            pl, ph = float(np.polyval(m.llrs_poly(), u)), float(np.polyval(m.hhrs_poly(), u))
            scale = 2.0 * (johnson / max(abs(u), 1e-30) + shot * bw)
            self._read_at = (u, (pl, ph, johnson, shot, bw, scale))
        return self._read_at[1]

    def _read_numba(self, u: float, noise: bool) -> np.ndarray:
        out = np.empty(self.n_devices)
        pl, ph, johnson, shot, bw, scale = self._read_constants(u)
        if noise and self.precision == "float32":
            args = (self.r, self._read_key, self.read_count, out, pl, ph, scale)
            _fast.split_run(_fast.read_kernel32, self.n_devices, args, self.threads,
                            min_per_thread=_fast.MIN_READS_PER_THREAD)
            return out
        args = (self.r, self._read_key, self.read_count, out, pl, ph, u, johnson, shot, bw,
                bool(noise))
        _fast.split_run(_fast.read_kernel, self.n_devices, args, self.threads,
                        min_per_thread=_fast.MIN_READS_PER_THREAD)
        return out

    def _read_numpy(self, u: float, noise: bool) -> np.ndarray:
        if not noise:
            return self.current(u)
        if self._noisy_read is None:
            self._noisy_read = NoisyRead(self.n_devices)
        return self._noisy_read.read(self, u)

    def conductance(self, **read_kwargs: object) -> np.ndarray:
        """Static conductance I(U0)/U0 in S."""
        return self.read(**read_kwargs) / self.model.u0

    def resistance(self, **read_kwargs: object) -> np.ndarray:
        """Static resistance U0/I(U0) in Ω."""
        return self.model.u0 / self.read(**read_kwargs)
