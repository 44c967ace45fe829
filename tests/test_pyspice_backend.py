"""In-process ngspice backend (PySpice shared mode in a worker process).

Verilog-A devices compiled by openvaf-r, solved in libngspice and compared with analytic
answers; alter + re-solve; output-line classification; memory over 1000 runs; timeouts,
non-convergence and worker crashes that must not take the test process down.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

from cosim.compile import compile_va
from cosim.errors import ConvergenceError, NetlistError, SimulationError, SimulationTimeout
from cosim.spice import pyspice_backend as backend
from cosim.spice.pyspice_backend import InProcessCircuit, prepare_netlist, run_pyspice
from cosim.spice.render import check_netlist_settings, environment
from cosim.spice.worker import classify_line, vector_key

DATA = Path(__file__).parent / "data" / "pyspice"


@pytest.fixture(scope="module")
def osdi() -> dict[str, Path]:
    """The two test devices, compiled once per module into a private cache."""
    return {name: compile_va(DATA / f"{name}.va") for name in ("lin_res", "cubic_cond")}


def render_test(template: str, **context: object) -> str:
    text = environment(str(DATA)).get_template(template).render(**context)
    check_netlist_settings(text, template)
    return text


def network(osdi: dict[str, Path], vin: float, r1: float, r2: float,
            g: float | None = None, k: float = 0.0) -> str:
    return render_test("va_network.cir.j2", lin_osdi=osdi["lin_res"],
                       cubic_osdi=osdi["cubic_cond"], vin=vin, r1=r1, r2=r2, g=g, k=k,
                       sweep=None)


def mid_voltage(vin: float, r1: float, r2: float, g: float = 0.0, k: float = 0.0) -> float:
    """Analytic node voltage: (vin - v)/r1 = v/r2 + g v + k v^3 (monotone, one root)."""
    return brentq(lambda v: (vin - v) / r1 - v / r2 - g * v - k * v**3, -abs(vin) - 1,
                  abs(vin) + 1, xtol=1e-15, rtol=4 * np.finfo(float).eps)


# -- netlist preparation and line classification ------------------------------------------


def test_control_block_becomes_shared_mode_commands(osdi: dict[str, Path]) -> None:
    prepared = prepare_netlist(network(osdi, 1.0, 1e3, 2e3))
    assert prepared.osdi_files == [str(osdi["lin_res"]), str(osdi["cubic_cond"])]
    assert prepared.commands == ["set num_threads=1"]
    assert ".control" not in prepared.circuit.lower()
    assert "pre_osdi" not in prepared.circuit.lower()
    assert prepared.circuit.strip().lower().endswith(".end")


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ("shell rm -rf /tmp/x", "shell"),
        ("run", "run"),
        ("write out.raw", "write"),
        ("set a=1; shell ls", "';'"),
        ("pre_osdi relative/model.osdi", "relative/model.osdi does not exist"),
        ("pre_osdi /tmp/a b.osdi", "only letters"),
        ("pre_osdi /nonexistent/model.osdi", "does not exist"),
    ],
)
def test_unsupported_control_lines_are_refused(control: str, message: str) -> None:
    text = f"* t\n.control\n{control}\n.endc\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n"
    with pytest.raises(NetlistError, match=message):
        prepare_netlist(text)


def test_unterminated_control_block_is_refused() -> None:
    with pytest.raises(NetlistError, match="no closing .endc"):
        prepare_netlist("* t\nV1 a 0 1\nR1 a 0 1k\n.op\n.control\nset x=1\n")
    with pytest.raises(NetlistError, match="missing .endc"):
        prepare_netlist("* t\n.control\nset x=1\n.op\n.end\n")


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("stderr Note: Starting dynamic gmin stepping", "note"),
        ("stderr Note: Transient op started", "note"),
        ("stdout Note: No compatibility mode selected!", "note"),
        ("stderr Warning: singular matrix:  check node a", "warning"),
        ("stderr Warning: Dynamic gmin stepping failed", "warning"),
        ("stderr Error: Transient op failed, timestep too small", "error"),
        ("stderr doAnalyses: OP:  Timestep too small; trouble with node \"a\"", "error"),
        ("stderr run simulation(s) aborted", "error"),
        ("stderr unknown parameter (badparam) ", "error"),
        ("stderr foo: no such command available in ngspice", "error"),
        ("stdout Doing analysis at TEMP = 27.000000 and TNOM = 27.000000", "info"),
    ],
)
def test_output_lines_are_classified(line: str, kind: str) -> None:
    assert classify_line(line) == kind


def test_shared_mode_vector_names_follow_raw_file_spelling() -> None:
    assert vector_key("out", 3) == "v(out)"
    assert vector_key("n1#x", 3) == "v(n1#x)"
    assert vector_key("V1#branch", 4) == "i(v1)"
    assert vector_key("time", 1) == "time"


# -- Verilog-A devices against analytic answers --------------------------------------------


def test_verilog_a_resistor_divider_is_exact(osdi: dict[str, Path]) -> None:
    vin, r1, r2 = 1.3, 1234.5, 987.25
    result = run_pyspice(network(osdi, vin, r1, r2), timeout_s=60)
    assert result.backend == "pyspice"
    assert result.plot().name == "Operating Point"
    expected = vin * r2 / (r1 + r2)
    assert result["v(mid)"][0] == pytest.approx(expected, rel=1e-12)
    assert result["i(v1)"][0] == pytest.approx(-vin / (r1 + r2), rel=1e-12)
    assert result["v(in)"][0] == vin


def test_nonlinear_verilog_a_device_matches_root_of_node_equation(osdi: dict[str, Path]) -> None:
    vin, r1, r2, g, k = 2.5, 470.0, 3.3e3, 1.7e-3, 4e-3
    result = run_pyspice(network(osdi, vin, r1, r2, g, k), timeout_s=60)
    expected = mid_voltage(vin, r1, r2, g, k)
    linear_only = mid_voltage(vin, r1, r2, g, 0.0)
    assert abs(expected - linear_only) > 0.1  # the cubic term matters at this bias
    assert result["v(mid)"][0] == pytest.approx(expected, rel=1e-12)


def test_note_lines_on_stderr_do_not_fail_a_run() -> None:
    """A node with only a capacitor triggers gmin stepping (``Note:`` lines on stderr)."""
    text = ("* gmin\n.options klu\nV1 in 0 DC 1\nR1 in out 1k\nR2 out 0 3k\n"
            "I1 0 a DC 1m\nC1 a 0 1p\n.op\n.end\n")
    result = run_pyspice(text, timeout_s=60)
    assert "Note: Starting dynamic gmin stepping" in result.log
    assert result["v(out)"][0] == pytest.approx(0.75, rel=1e-12)


def test_transient_of_rc_matches_exponential() -> None:
    result = run_pyspice((DATA / "rc_tran.cir").read_text(), timeout_s=60)
    plot = result.plot()
    assert plot.name == "Transient Analysis"
    t, v = result["time"], result["v(out)"]
    assert t[-1] == pytest.approx(5e-3)
    later = t > 1e-4
    expected = 1.0 - np.exp(-(t[later] - 1e-9) / 1e-3)
    assert np.max(np.abs(v[later] - expected)) < 2e-3


# -- load once, alter, re-solve -------------------------------------------------------------


def test_alter_source_and_instance_parameter_then_resolve(osdi: dict[str, Path]) -> None:
    r1, r2, g, k = 1e3, 2.2e3, 1e-3, 3e-3
    with InProcessCircuit(network(osdi, 0.0, r1, r2, g, k), timeout_s=60) as circuit:
        for vin in (-1.5, 0.0, 0.2, 1.0, 3.7):
            circuit.alter("v1", vin)
            (v_mid,) = circuit.op_values(["v(mid)"])
            assert v_mid == pytest.approx(mid_voltage(vin, r1, r2, g, k), rel=1e-9, abs=1e-15)
        circuit.alter_many({("n1", "r"): 500.0, ("n2", "g"): 2e-3})
        result = circuit.op()
        assert result["v(in)"][0] == 3.7  # the source keeps its last altered value
        assert result["v(mid)"][0] == pytest.approx(mid_voltage(3.7, r1, 500.0, 2e-3, k), rel=1e-9)


def test_sweep_equals_step_by_step_solves(osdi: dict[str, Path]) -> None:
    r1, r2, g, k = 1e3, 2.2e3, 1e-3, 3e-3
    inputs = [0.1, -0.4, 2.0, 0.7]
    with InProcessCircuit(network(osdi, 0.0, r1, r2, g, k), timeout_s=60) as circuit:
        swept = circuit.sweep([{"v1": v} for v in inputs], ["v(mid)", "i(v1)"])
        stepped = []
        for v in inputs:
            circuit.alter("v1", v)
            stepped.append(circuit.op_values(["v(mid)", "i(v1)"]))
    assert swept.shape == (4, 2)
    np.testing.assert_array_equal(swept, np.array(stepped))
    expected = [mid_voltage(v, r1, r2, g, k) for v in inputs]
    np.testing.assert_allclose(swept[:, 0], expected, rtol=1e-9)
    np.testing.assert_allclose(swept[:, 1], -(np.array(inputs) - swept[:, 0]) / r1, rtol=1e-9)


def test_crossbar_column_currents_match_nodal_solution() -> None:
    """A 16x16 resistor crossbar with wires, altered inputs, against a SciPy nodal solve."""
    rng = np.random.default_rng(7)
    m = n = 16
    g = rng.uniform(1e-5, 1e-4, (m, n))
    text = render_test("crossbar.cir.j2", g=g.tolist(), v_in=[0.0] * m, r_wire=1.0,
                       r_source=1.0, r_sense=1.0)
    names = [f"i(vs{j})" for j in range(n)]
    with InProcessCircuit(text, timeout_s=60) as circuit:
        for _ in range(3):
            v_in = rng.uniform(0.0, 0.2, m)
            circuit.alter_many({f"vin{i}": float(v) for i, v in enumerate(v_in)})
            currents = circuit.op_values(names)
            np.testing.assert_allclose(currents, crossbar_currents(g, v_in), rtol=1e-9)


def crossbar_currents(g: np.ndarray, v_in: np.ndarray, r: float = 1.0) -> np.ndarray:
    """Nodal analysis of the fixture (wire, source and sense resistors all ``r`` ohm)."""
    m, n = g.shape
    row = lambda i, j: i * n + j  # noqa: E731
    col = lambda i, j: m * n + i * n + j  # noqa: E731
    size = 2 * m * n
    a = np.zeros((size, size))
    b = np.zeros(size)

    def stamp(p: int, q: int | None, conductance: float) -> None:
        a[p, p] += conductance
        if q is not None:
            a[q, q] += conductance
            a[p, q] -= conductance
            a[q, p] -= conductance

    for i in range(m):
        stamp(row(i, 0), None, 1 / r)
        b[row(i, 0)] += v_in[i] / r
        for j in range(n):
            stamp(row(i, j), col(i, j), g[i, j])
            if j + 1 < n:
                stamp(row(i, j), row(i, j + 1), 1 / r)
            if i + 1 < m:
                stamp(col(i, j), col(i + 1, j), 1 / r)
            else:
                stamp(col(i, j), None, 1 / r)
    v = np.linalg.solve(a, b)
    # current into each 0 V sense source, ngspice sign: flows from + (s_j) to - (ground)
    return np.array([v[col(m - 1, j)] / r for j in range(n)])


def test_alter_refuses_injection(osdi: dict[str, Path]) -> None:
    circuit = InProcessCircuit(network(osdi, 1.0, 1e3, 1e3))
    for name in ("v1; shell ls", "v1\nrun", "v1 = 3", ""):
        with pytest.raises(NetlistError):
            circuit.alter(name, 1.0)
    for value in (float("nan"), float("inf"), "1; shell ls", True):
        with pytest.raises(NetlistError):
            circuit.alter("v1", value)  # type: ignore[arg-type]
    with pytest.raises(NetlistError):
        circuit.alter("n1", 1.0, parameter="r = 2; shell ls")


# -- failures must not take the parent down --------------------------------------------------


def test_non_converging_netlist_raises_convergence_error() -> None:
    text = (DATA / "no_solution.cir").read_text()
    with pytest.raises(ConvergenceError, match="(?i)timestep too small|operating point"):
        run_pyspice(text, timeout_s=60)
    assert run_pyspice(text.replace("DC 2m", "DC 0.5m"), timeout_s=60)["v(a)"][0] == (
        pytest.approx(math.atanh(0.5), rel=1e-6))


def test_hanging_run_is_killed_at_its_timeout() -> None:
    before = run_pyspice("* ok\n.options klu\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n").meta["worker_pid"]
    start = time.monotonic()
    with pytest.raises(SimulationTimeout, match="within 2 s"):
        run_pyspice((DATA / "hang.cir").read_text(), timeout_s=2)
    assert time.monotonic() - start < 10
    with pytest.raises(ProcessLookupError):
        os.kill(int(before), 0)  # the worker that hung is gone
    after = run_pyspice("* ok\n.options klu\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n", timeout_s=60)
    assert after["v(a)"][0] == 1.0 and after.meta["worker_pid"] != before


def test_session_timeout_and_crash_end_the_session_cleanly(osdi: dict[str, Path]) -> None:
    with InProcessCircuit((DATA / "hang.cir").read_text(), timeout_s=1.5) as circuit:
        with pytest.raises(SimulationTimeout):
            circuit.run()
        with pytest.raises(SimulationError, match="not open"):
            circuit.op()
    with InProcessCircuit(network(osdi, 1.0, 1e3, 1e3), timeout_s=60) as circuit:
        os.kill(circuit.pid, signal.SIGSEGV)  # what a crash inside libngspice looks like
        with pytest.raises(SimulationError, match="died"):
            circuit.op_values(["v(mid)"])


def test_bad_osdi_file_and_bad_netlist_give_clear_errors(tmp_path: Path) -> None:
    fake = tmp_path / "fake.osdi"
    fake.write_text("not a shared library")
    text = f"* t\n.control\npre_osdi {fake}\n.endc\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n"
    with pytest.raises(SimulationError, match="could not load OSDI file"):
        run_pyspice(text, timeout_s=60)
    with pytest.raises(SimulationError, match="(?i)unknown parameter"):
        run_pyspice("* t\nV1 a 0 1\nR1 a 0 1k badparam=3\n.op\n.end\n", timeout_s=60)
    # the worker poisoned by the failed OSDI load was replaced: a clean run has no warning
    clean = run_pyspice("* t\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n", timeout_s=60)
    assert "OSDI libs have not been loaded" not in clean.log


def test_unknown_vector_is_reported(osdi: dict[str, Path]) -> None:
    with InProcessCircuit(network(osdi, 1.0, 1e3, 1e3), timeout_s=60) as circuit:
        with pytest.raises(SimulationError, match="no vector 'v\\(nope\\)'"):
            circuit.op_values(["v(nope)"])
        assert circuit.op_values(["V(MID)"])[0] == pytest.approx(0.5, rel=1e-12)


# -- memory ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_thousand_runs_keep_worker_memory_bounded(osdi: dict[str, Path]) -> None:
    """RSS of the process hosting libngspice grows < 10 MB over runs 500..1000."""
    text = network(osdi, 1.0, 1e3, 2e3, 1e-3, 1e-3)
    backend.close_shared_worker()
    rss = {}
    pids = set()
    for index in range(1, 1001):
        result = run_pyspice(text, timeout_s=60, recycle_after=10**6)
        pids.add(result.meta["worker_pid"])
        if index in (500, 1000):
            rss[index] = backend._shared_worker.rss_bytes()  # type: ignore[union-attr]
    assert len(pids) == 1  # one worker throughout: the figure is libngspice's own
    assert result["v(mid)"][0] == pytest.approx(mid_voltage(1.0, 1e3, 2e3, 1e-3, 1e-3), rel=1e-9)
    growth_mb = (rss[1000] - rss[500]) / 1e6
    print(f"worker RSS at 500 runs {rss[500] / 1e6:.1f} MB, growth over runs 500-1000 "
          f"{growth_mb:.2f} MB")
    assert growth_mb < 10


@pytest.mark.slow
def test_thousand_alter_solves_keep_worker_memory_bounded(osdi: dict[str, Path]) -> None:
    with InProcessCircuit(network(osdi, 0.0, 1e3, 2e3, 1e-3, 1e-3), timeout_s=60) as circuit:
        rss = {}
        for index in range(1, 1001):
            circuit.alter("v1", 0.001 * index)
            (v_mid,) = circuit.op_values(["v(mid)"])
            if index in (500, 1000):
                rss[index] = circuit.rss_bytes()
        assert v_mid == pytest.approx(mid_voltage(1.0, 1e3, 2e3, 1e-3, 1e-3), rel=1e-9)
    growth_mb = (rss[1000] - rss[500]) / 1e6
    print(f"session worker RSS at 500 solves {rss[500] / 1e6:.1f} MB, growth over solves "
          f"500-1000 {growth_mb:.2f} MB")
    assert growth_mb < 10


def test_fatal_library_state_replaces_the_worker() -> None:
    """ngspice refuses a 1e9-point transient and then 'awaits to be reset': a new worker."""
    text = (DATA / "hang.cir").read_text().replace(".tran 0.1p 1u 0.99u", ".tran 1p 1m")
    with pytest.raises(SimulationError, match="failed fatally") as info:
        run_pyspice(text, timeout_s=60)
    assert "memory required" in info.value.log  # type: ignore[attr-defined]
    assert backend.shared_worker_pid() is None  # the poisoned worker was closed
    after = run_pyspice("* ok\n.options klu\nV1 a 0 2\nR1 a 0 1k\n.op\n.end\n", timeout_s=60)
    assert after["i(v1)"][0] == pytest.approx(-2e-3, rel=1e-12)


def test_netlist_file_path_is_accepted_and_named_in_errors(tmp_path: Path) -> None:
    result = run_pyspice(DATA / "rc_tran.cir", timeout_s=60)
    assert result["v(out)"][-1] == pytest.approx(1 - math.exp(-5), abs=2e-3)
    bad = tmp_path / "bad.cir"
    bad.write_text("* t\n.control\nshell ls\n.endc\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n")
    with pytest.raises(NetlistError, match=r"bad\.cir.*line 3.*shell"):
        run_pyspice(bad)


def test_relative_pre_osdi_resolves_beside_the_netlist_in_both_ngspice_backends(
    osdi: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cosim.spice.batch import run_batch

    folder = tmp_path / "deck"
    folder.mkdir()
    (folder / "lin.osdi").write_bytes(osdi["lin_res"].read_bytes())
    netlist = folder / "divider.cir"
    netlist.write_text(
        "* relative osdi\n.control\nset num_threads=1\npre_osdi lin.osdi\n.endc\n.options klu\n"
        ".model linm lin_res\nV1 in 0 DC 1\nR1 in mid 1k\nN1 mid 0 linm r=3k\n.op\n.end\n"
    )
    monkeypatch.chdir(tmp_path)  # elsewhere: the netlist's folder must count, not the cwd
    prepared = prepare_netlist(netlist)
    assert prepared.osdi_files == [str(folder / "lin.osdi")]
    in_process = run_pyspice(netlist, timeout_s=60)["v(mid)"][0]
    subprocess_run = run_batch(netlist, timeout_s=60)["v(mid)"][0]
    assert in_process == pytest.approx(0.75, rel=1e-12)
    assert subprocess_run == pytest.approx(in_process, rel=1e-12)
