"""The Verilog-A model in ngspice (and VACASK) against the Python reference (docs/veriloga.md).

One compiled library of the committed default rendering (J = 50, latched features) serves
most tests; two small J = 5 builds compare the latched and unlatched forms.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from cosim.compile import compile_va
from cosim.device.model import DeviceArray, current, feature_sequences, hrs_ohm, r_from_resistance
from cosim.device.modelfile import DEFAULT_MA_ORDER, load_model
from cosim.paths import DEFAULT_MODEL
from cosim.spice.batch import run_batch
from cosim.spice.render import check_netlist_settings, environment
from cosim.veriloga import (DEFAULT_DGATE, DEFAULT_MODULE, DEFAULT_TAU, DEFAULT_VA, RenderOptions,
                            compile_reram, instance_line_params, instance_params)

MODEL = load_model(DEFAULT_MODEL)
DATA = Path(__file__).parent / "data" / "va"
SEED, DEV = 7, 3
RATE = 2e6  # V/s, ramp rate of the triangular sweeps
U0 = MODEL.u0
HRS, US, LRS, UR = range(4)


def render_test_netlist(name: str, **context) -> str:
    text = environment(str(DATA)).get_template(name).render(**context)
    if name.endswith(".cir.j2"):
        check_netlist_settings(text, name)
    return text


@dataclass
class Wave:
    """PWL points (t [s], V [V]) and the middle of every read plateau at U0."""

    points: list = field(default_factory=lambda: [(0.0, 0.0)])
    reads: list = field(default_factory=list)

    @property
    def t(self) -> float:
        return self.points[-1][0]

    def sweep(self, peak: float) -> "Wave":
        """Triangle 0 -> peak -> 0 at RATE."""
        ramp = abs(peak) / RATE
        self.points += [(self.t + ramp, peak), (self.t + 2 * ramp, 0.0)]
        return self

    def read(self) -> "Wave":
        edge, hold = 10e-9, 100e-9
        self.reads.append(self.t + edge + hold / 2)
        self.points += [(self.t + edge, U0), (self.t + edge + hold, U0), (self.t + 2 * edge + hold, 0.0)]
        return self


def run_single(osdi: Path, wave: Wave, device: dict, tmax: float = 5e-9) -> dict[str, np.ndarray]:
    text = render_test_netlist(
        "single_tran.cir.j2", title="va single device", osdi=osdi, reltol=1e-6, pwl=wave.points,
        model="rr", module=DEFAULT_MODULE, params=device, model_params={}, tstep=1e-9, tstop=wave.t,
        tmax=tmax)
    return run_batch(text, timeout_s=300).plots[0].vectors


def device_params(seed: int = SEED, dev: int = DEV, **state) -> dict:
    return instance_line_params(instance_params(MODEL, seed, np.array([dev]), **state), 0)


def reads(vec: dict[str, np.ndarray], wave: Wave) -> np.ndarray:
    """Static resistance U/I [Ω] at the middle of every read plateau."""
    idx = [int(np.argmin(np.abs(vec["time"] - t))) for t in wave.reads]
    u, i = vec["v(te)"][idx], -vec["i(vsrc)"][idx]
    assert np.allclose(u, U0, rtol=0, atol=1e-12)
    return u / i


def crossings(t: np.ndarray, counter: np.ndarray, v: np.ndarray, n: int):
    """Applied voltage where ``counter`` passes k + 0.5 (k < n), and the voltage step there."""
    volts, steps = [], []
    for k in range(n):
        idx = np.flatnonzero((counter[:-1] < k + 0.5) & (counter[1:] >= k + 0.5))
        assert idx.size == 1, f"counter crosses {k + 0.5} {idx.size} times"
        j = idx[0]
        frac = (k + 0.5 - counter[j]) / (counter[j + 1] - counter[j])
        volts.append(v[j] + frac * (v[j + 1] - v[j]))
        steps.append(abs(v[j + 1] - v[j]))
    return np.array(volts), np.array(steps)


def threshold_tolerance(steps: np.ndarray) -> np.ndarray:
    """Time-step resolution plus the model's own offset: the gate is fully open dgate past
    the threshold and the counter needs ~tau to reach its midpoint."""
    return steps + DEFAULT_DGATE + 3 * RATE * DEFAULT_TAU


def reference_r(wave_vec: dict[str, np.ndarray], wave: Wave, order: int = DEFAULT_MA_ORDER,
                **state) -> np.ndarray:
    """Quasi-static Python reference driven by the simulated voltages: r at each read."""
    dev = DeviceArray(MODEL, seed=SEED, device_ids=np.array([DEV]), method="ma", ma_order=order)
    if state.get("lrs0"):
        dev.apply(-10.0)
    t, v = wave_vec["time"], wave_vec["v(te)"]
    out, targets = [], list(wave.reads)
    for k in range(t.size):
        dev.apply(v[k])
        while targets and t[k] >= targets[0] - 1e-15:
            out.append(dev.r[0])
            targets.pop(0)
    return np.array(out)


def resistance(r: np.ndarray) -> np.ndarray:
    return U0 / current(MODEL, U0, r)


@pytest.fixture(scope="module")
def osdi_default() -> Path:
    return compile_va(DEFAULT_VA)


def test_fifty_cycles_match_reference(osdi_default):
    n_cyc = 50
    wave = Wave().read()
    for _ in range(n_cyc):
        wave.sweep(-2.0).read().sweep(1.5).read()
    vec = run_single(osdi_default, wave, device_params())
    y = feature_sequences(MODEL, SEED, np.array([DEV]), n_cyc + 1, method="ma")[0]
    res = reads(vec, wave)
    hrs_sim, lrs_sim = res[0::2], res[1::2]
    hrs_ref, lrs_ref = hrs_ohm(MODEL, y[:, HRS]), y[:n_cyc, LRS]
    np.testing.assert_allclose(lrs_sim, lrs_ref, rtol=1e-6)
    np.testing.assert_allclose(hrs_sim, hrs_ref, rtol=1e-6)
    assert np.std(lrs_ref) > 50.0  # the sequence really varies from cycle to cycle
    t, v = vec["time"], vec["v(te)"]
    us_sim, us_step = crossings(t, vec["v(n1#a)"], v, n_cyc)
    ur_sim, ur_step = crossings(t, vec["v(n1#b)"], v, n_cyc)
    assert np.all(np.abs(us_sim - y[:n_cyc, US]) <= threshold_tolerance(us_step))
    assert np.all(np.abs(ur_sim - y[:n_cyc, UR]) <= threshold_tolerance(ur_step))
    assert round(vec["v(n1#b)"][-1]) == n_cyc and round(vec["v(n1#a)"][-1]) == n_cyc


def test_partial_resets_follow_peak_voltage(osdi_default):
    wave = Wave().read().sweep(-2.0).read()
    for peak in (1.0, 0.9, 1.2, 1.35):  # 0.9 V lies below the ratchet: no change
        wave.sweep(peak).read()
    wave.sweep(-2.0).read().sweep(1.25).read().sweep(1.5).read()
    vec = run_single(osdi_default, wave, device_params())
    r_ref = reference_r(vec, wave)
    np.testing.assert_allclose(reads(vec, wave), resistance(r_ref), rtol=1e-6)
    # ratchet: R grows with each higher peak, a lower peak (0.9 V) changes nothing
    ohm = resistance(r_ref)
    assert ohm[1] < ohm[2] < ohm[4] < ohm[5] < ohm[8] and ohm[6] < ohm[7] < ohm[8]
    assert abs(ohm[3] / ohm[2] - 1) < 1e-9
    # the peak node holds the largest voltage applied since the last SET
    assert abs(vec["v(n1#pk)"][-1] - vec["v(te)"].max()) < 1e-4


def test_static_iv_matches_current_formula(osdi_default):
    states = [dict(cycle0=0, lrs0=0), dict(cycle0=4, lrs0=1), dict(cycle0=9, lrs0=0)]
    devices = [device_params(**s) for s in states]
    text = render_test_netlist("single_dc.cir.j2", title="va static iv", osdi=osdi_default, devices=devices,
                               model="rr", module=DEFAULT_MODULE, start=-1.5, stop=1.5, step=0.01)
    vec = run_batch(text, timeout_s=120).plots[0].vectors
    u = vec["v(v-sweep)"] if "v(v-sweep)" in vec else vec["v(t)"]
    y = feature_sequences(MODEL, SEED, np.array([DEV]), 10, method="ma")[0]
    for k, s in enumerate(states):
        ohm = y[s["cycle0"], LRS] if s["lrs0"] else hrs_ohm(MODEL, y[s["cycle0"], HRS])
        expected = current(MODEL, u, r_from_resistance(MODEL, ohm))
        sim = vec[f"i(vs{k})"]
        assert np.max(np.abs(sim - expected)) <= 1e-9 * np.max(np.abs(expected))
        np.testing.assert_allclose(sim[u > 0.05], expected[u > 0.05], rtol=1e-9)


@pytest.mark.parametrize("latch", [True, False])
def test_latched_and_unlatched_forms_agree(latch):
    order = 5
    osdi = compile_reram(MODEL, RenderOptions(order=order, latch=latch))
    n_cyc = 8  # more cycles than J: the truncated MA form is exercised
    wave = Wave().read()
    for _ in range(n_cyc):
        wave.sweep(-2.0).read().sweep(1.5).read()
    vec = run_single(osdi, wave, device_params(seed=123, dev=456))
    y = feature_sequences(MODEL, 123, np.array([456]), n_cyc + 1, method="ma", ma_order=order)[0]
    res = reads(vec, wave)
    np.testing.assert_allclose(res[1::2], y[:n_cyc, LRS], rtol=1e-6)
    np.testing.assert_allclose(res[0::2], hrs_ohm(MODEL, y[:, HRS]), rtol=1e-6)


# --------------------------------------------------------------------------- VACASK
def run_vacask(netlist: str, folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """Vectors of each analysis (by name) from the VACASK backend; names as in ngspice
    except VACASK's hierarchy separator: internal node ``v(n1:a)`` is ngspice's ``v(n1#a)``."""
    from cosim.spice.vacask import run_vacask as simulate

    result = simulate(netlist, timeout_s=300, workdir=folder)
    assert result.meta["analyses"] == ["op1", "tran1"]
    return {name: plot.vectors for name, plot in zip(result.meta["analyses"], result.plots)}


def test_vacask_runs_the_same_osdi(osdi_default, tmp_path):
    context = dict(title="cosim va cross check", osdi=osdi_default, model="rr", module=DEFAULT_MODULE,
                   offset=-0.25, ampl=1.75, freq=2e5, u_read=U0, dev=device_params(),
                   dev_read=device_params(cycle0=3, lrs0=1), tstep=1e-9, tstop=21.5e-6, tmax=5e-9)
    vacask = run_vacask(render_test_netlist("cross_check.sim.j2", **context), tmp_path)
    spice = run_batch(render_test_netlist("cross_check.cir.j2", **context), timeout_s=300).plots[0].vectors
    y = feature_sequences(MODEL, SEED, np.array([DEV]), 6, method="ma")[0]
    # static read of LRS of cycle 3: both simulators equal the reference
    expected = current(MODEL, U0, r_from_resistance(MODEL, y[3, LRS]))
    i_vacask = -vacask["op1"]["i(vread)"][0]
    np.testing.assert_allclose(i_vacask, expected, rtol=1e-9)
    np.testing.assert_allclose(-spice["i(vread)"][-1], expected, rtol=1e-9)
    # transient: four and a half sine periods, same number of SETs/RESETs and the same thresholds
    tran = vacask["tran1"]
    for vec, prefix, v_name in ((tran, "v(n1:", "v(te)"), (spice, "v(n1#", "v(te)")):
        def node(name, vec=vec, prefix=prefix):
            return vec[prefix + name + ")"]
        n_set = int(round(node("a")[-1]))
        assert n_set == 4 and int(round(node("b")[-1])) == 4
        us_sim, us_step = crossings(vec["time"], node("a"), vec[v_name], n_set)
        ur_sim, ur_step = crossings(vec["time"], node("b"), vec[v_name], n_set)
        slope = 2 * np.pi * 2e5 * 1.75  # largest |dV/dt| of the sine
        tol = lambda steps: steps + DEFAULT_DGATE + 3 * slope * DEFAULT_TAU  # noqa: E731
        assert np.all(np.abs(us_sim - y[:n_set, US]) <= tol(us_step))
        assert np.all(np.abs(ur_sim - y[:n_set, UR]) <= tol(ur_step))


class _OsdiNode(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("units", ctypes.c_char_p), ("residual_units", ctypes.c_char_p),
                ("resist_residual_off", ctypes.c_uint32), ("react_residual_off", ctypes.c_uint32),
                ("resist_limit_rhs_off", ctypes.c_uint32), ("react_limit_rhs_off", ctypes.c_uint32),
                ("is_flow", ctypes.c_bool)]


class _OsdiJacobianEntry(ctypes.Structure):
    _fields_ = [("node_1", ctypes.c_uint32), ("node_2", ctypes.c_uint32),
                ("react_ptr_off", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class _OsdiDescriptorHead(ctypes.Structure):
    """Leading fields of the OSDI (0.3/0.4) device descriptor."""

    _fields_ = [("name", ctypes.c_char_p), ("num_nodes", ctypes.c_uint32), ("num_terminals", ctypes.c_uint32),
                ("nodes", ctypes.POINTER(_OsdiNode)), ("num_jacobian_entries", ctypes.c_uint32),
                ("jacobian_entries", ctypes.POINTER(_OsdiJacobianEntry))]


def jacobian_pattern(osdi: Path) -> set[tuple[str, str]]:
    """(row node, column node) of every Jacobian entry the compiled model declares."""
    lib = ctypes.CDLL(str(osdi))
    head = ctypes.cast(lib.OSDI_DESCRIPTORS, ctypes.POINTER(_OsdiDescriptorHead))[0]
    names = [head.nodes[i].name.decode() for i in range(head.num_nodes)]
    return {(names[e.node_1], names[e.node_2])
            for e in (head.jacobian_entries[i] for i in range(head.num_jacobian_entries))}


def test_held_features_add_no_jacobian_entries(osdi_default):
    """Latched features enter only through frozen() copies: no row (terminal, counter, peak)
    gets a column of a latch node, so latches add unknowns but no fill-in."""
    pattern = jacobian_pattern(osdi_default)
    latches = {"ia", "ib", "fur", "flrs", "fus", "fhrs"}
    assert {("te", "a"), ("te", "pk"), ("a", "te"), ("fur", "fur")} <= pattern  # sanity: parser reads it
    off_diagonal = {(row, col) for row, col in pattern if col in latches and row != col}
    assert not off_diagonal
