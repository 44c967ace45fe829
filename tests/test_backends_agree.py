"""The two ngspice backends (batch subprocess and in-process shared library) agree.

Same netlists through :func:`run_batch` and :func:`run_pyspice`: the same vector names and
node voltages identical to ≤1e-12 relative, and equal to the analytic answer, for Verilog-A
devices (a linear resistor with an instance parameter and a nonlinear cubic conductance)
compiled by openvaf-r, a DC sweep, an RC transient and a 16x16 resistor crossbar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

from cosim.compile import compile_va
from cosim.spice.batch import run_batch
from cosim.spice.pyspice_backend import run_pyspice
from cosim.spice.render import check_netlist_settings, environment
from cosim.spice.result import SimResult

DATA = Path(__file__).parent / "data" / "pyspice"
REL = 1e-12


@pytest.fixture(scope="module")
def osdi() -> dict[str, Path]:
    return {name: compile_va(DATA / f"{name}.va") for name in ("lin_res", "cubic_cond")}


def render_test(template: str, **context: object) -> str:
    text = environment(str(DATA)).get_template(template).render(**context)
    check_netlist_settings(text, template)
    return text


def network(osdi: dict[str, Path], vin: float, r1: float, r2: float, g: float | None = None,
            k: float = 0.0, sweep: tuple[float, float, float] | None = None) -> str:
    return render_test("va_network.cir.j2", lin_osdi=osdi["lin_res"],
                       cubic_osdi=osdi["cubic_cond"], vin=vin, r1=r1, r2=r2, g=g, k=k,
                       sweep=sweep)


def mid_voltage(vin: float, r1: float, r2: float, g: float = 0.0, k: float = 0.0) -> float:
    """Root of (vin - v)/r1 = v/r2 + g v + k v^3 (V)."""
    return brentq(lambda v: (vin - v) / r1 - v / r2 - g * v - k * v**3, -abs(vin) - 1,
                  abs(vin) + 1, xtol=1e-15, rtol=4 * np.finfo(float).eps)


def both(netlist: str) -> tuple[SimResult, SimResult]:
    batch = run_batch(netlist, timeout_s=60)
    shared = run_pyspice(netlist, timeout_s=60)
    assert batch.backend == "batch" and shared.backend == "pyspice"
    return batch, shared


def assert_same(batch: SimResult, shared: SimResult) -> None:
    """Same plots, same vector names, values equal to ≤1e-12 relative."""
    assert [p.name for p in batch.plots] == [p.name for p in shared.plots]
    for b_plot, s_plot in zip(batch.plots, shared.plots):
        assert sorted(b_plot.vectors) == sorted(s_plot.vectors)
        for name, values in b_plot.vectors.items():
            np.testing.assert_allclose(s_plot.vectors[name], values, rtol=REL, atol=0,
                                       err_msg=f"vector {name}")


def test_verilog_a_divider_agrees_and_is_exact(osdi: dict[str, Path]) -> None:
    vin, r1, r2 = 1.3, 1234.5, 987.25
    batch, shared = both(network(osdi, vin, r1, r2))
    assert_same(batch, shared)
    for result in (batch, shared):
        assert result["v(mid)"][0] == pytest.approx(vin * r2 / (r1 + r2), rel=REL)


def test_nonlinear_verilog_a_network_agrees_and_is_exact(osdi: dict[str, Path]) -> None:
    vin, r1, r2, g, k = 2.5, 470.0, 3.3e3, 1.7e-3, 4e-3
    batch, shared = both(network(osdi, vin, r1, r2, g, k))
    assert_same(batch, shared)
    expected = mid_voltage(vin, r1, r2, g, k)
    for result in (batch, shared):
        assert result["v(mid)"][0] == pytest.approx(expected, rel=REL)
        assert result["i(v1)"][0] == pytest.approx(-(vin - expected) / r1, rel=1e-10)


def test_dc_sweep_agrees_and_is_exact(osdi: dict[str, Path]) -> None:
    r1, r2, g, k = 1e3, 2.2e3, 1e-3, 3e-3
    batch, shared = both(network(osdi, 0.0, r1, r2, g, k, sweep=(-2.0, 2.0, 0.25)))
    assert_same(batch, shared)
    assert shared.names[0] == batch.names[0] == "v(v-sweep)"  # the scale vector comes first
    vin = shared["v(v-sweep)"]
    assert len(vin) == 17 and vin[0] == pytest.approx(-2.0) and vin[-1] == pytest.approx(2.0)
    expected = [mid_voltage(v, r1, r2, g, k) for v in vin]
    # a sweep point starts Newton from the previous point and stops once the update is below
    # reltol = 1e-10 (set in the fixture), so the analytic check is to 1e-9 here
    np.testing.assert_allclose(shared["v(mid)"], expected, rtol=1e-9, atol=1e-15)


def test_rc_transient_agrees() -> None:
    batch, shared = both((DATA / "rc_tran.cir").read_text())
    assert_same(batch, shared)
    t = shared["time"]
    late = t > 1e-4
    np.testing.assert_allclose(shared["v(out)"][late], 1 - np.exp(-(t[late] - 1e-9) / 1e-3),
                               atol=2e-3)


def test_crossbar_agrees() -> None:
    rng = np.random.default_rng(3)
    g = rng.uniform(1e-5, 1e-4, (16, 16))
    netlist = render_test("crossbar.cir.j2", g=g.tolist(), v_in=rng.uniform(0, 0.2, 16).tolist(),
                          r_wire=1.0, r_source=1.0, r_sense=1.0)
    batch, shared = both(netlist)
    assert_same(batch, shared)
    assert len(shared.names) == 2 * 256 + 16 + 16 + 16 + 16  # nodes + 32 branch currents


def test_ac_analysis_agrees_and_frequency_is_real() -> None:
    """An AC sweep: both backends give a real frequency scale and the same complex node voltages."""
    netlist = Path(__file__).parent / "data" / "raw" / "rc_ac.cir"
    batch = run_batch(netlist.read_text(), timeout_s=30)
    inproc = run_pyspice(netlist.read_text(), timeout_s=30)
    f_batch, f_inproc = batch["frequency"], inproc["frequency"]
    assert not np.iscomplexobj(f_batch) and not np.iscomplexobj(f_inproc)
    np.testing.assert_allclose(f_batch, f_inproc, rtol=1e-12, atol=0)  # two ngspice builds
    complex_names = [n for n in batch.names if np.iscomplexobj(batch[n])]
    assert complex_names, "an AC plot must hold complex node voltages"
    for name in complex_names:
        np.testing.assert_allclose(inproc[name], batch[name], rtol=REL, atol=0)
