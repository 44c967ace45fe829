"""The nodal solver against ngspice (batch backend) and against circuit laws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cosim.crossbar import Crossbar, LinearCells, PolynomialCells, VerilogACells
from cosim.crossbar.netlist import ACCURATE_OPTIONS, read_netlist
from cosim.crossbar.solver import (
    NodalSolver,
    build_system,
    cholmod_available,
    nested_dissection_order,
    simulate,
    solve_many,
)
from cosim.errors import CosimError
from cosim.spice.batch import run_batch

REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "synaptogen" / "default_params.json"


def device_polynomials() -> tuple[np.ndarray, np.ndarray]:
    """P_LLRS, P_HHRS (highest power first) as published with Synaptogen (shared reference)."""
    params = json.loads(REFERENCE.read_text())
    return np.asarray(params["LLRS"], float), np.asarray(params["HHRS"], float)


def device_cells(rng: np.random.Generator, shape: tuple[int, int]) -> PolynomialCells:
    llrs, hhrs = device_polynomials()
    resistance = np.exp(rng.uniform(np.log(4.5e3), np.log(75e3), size=shape))
    return PolynomialCells.from_resistance(resistance, llrs, hhrs)


def ngspice_columns(crossbar: Crossbar, inputs: np.ndarray) -> np.ndarray:
    """Column currents (K, N) from one ngspice .op run per input vector."""
    rows = []
    for vector in np.atleast_2d(inputs):
        result = run_batch(read_netlist(crossbar, inputs=vector, spice_options=ACCURATE_OPTIONS), timeout_s=300)
        assert result.backend == "batch"
        rows.append([float(result[f"i(vsns{j})"][0]) for j in range(crossbar.cols)])
    return np.asarray(rows)


def max_relative_error(got: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(got - reference) / np.abs(reference)))


CASES = [
    # (rows, cols, cells, differential, wires (r_row, r_col, r_source, r_sense), input vectors)
    pytest.param(8, 8, "linear", False, (1.0, 1.0, 1.0, 1.0), 3, id="linear-1r-8x8"),
    pytest.param(12, 10, "linear", True, (2.5, 0.7, 10.0, 5.0), 2, id="linear-diff-12x10"),
    pytest.param(16, 16, "device", False, (1.0, 2.0, 3.0, 4.0), 2, id="device-1r-16x16"),
    pytest.param(24, 16, "device", True, (1.0, 1.0, 1.0, 1.0), 1, id="device-diff-24x16"),
    pytest.param(64, 64, "linear", True, (1.0, 1.0, 1.0, 1.0), 1, id="linear-diff-64x64"),
    pytest.param(64, 64, "device", False, (1.0, 1.0, 1.0, 1.0), 1, id="device-1r-64x64", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("rows, cols, kind, differential, wires, count", CASES)
def test_nodal_matches_ngspice(rows, cols, kind, differential, wires, count):
    rng = np.random.default_rng(rows * 1000 + cols)
    if kind == "linear":
        cells = LinearCells(rng.uniform(1 / 75e3, 1 / 4.5e3, size=(rows, cols)))
    else:
        cells = device_cells(rng, (rows, cols))
    r_row, r_col, r_source, r_sense = wires
    crossbar = Crossbar(cells, r_row=r_row, r_col=r_col, r_source=r_source, r_sense=r_sense, differential=differential)
    inputs = rng.uniform(0.0, 0.2, size=(count, rows))
    reference = ngspice_columns(crossbar, inputs)
    solver = NodalSolver(crossbar)
    got = solver.solve_many(inputs)
    assert got.shape == (count, cols)
    assert max_relative_error(got, reference) < 1e-6
    if kind == "linear":
        assert solver.stats.factorizations == 1  # one factorization for every input vector
    else:
        assert solver.stats.iterations > 0


def test_simresult_vectors_match_ngspice_names():
    rng = np.random.default_rng(5)
    crossbar = Crossbar(device_cells(rng, (4, 5)), r_row=2.0)
    inputs = np.array([0.2, 0.05, 0.1, 0.0])
    ours = simulate(crossbar, inputs[None], save_nodes=True)
    theirs = run_batch(read_netlist(crossbar, inputs=inputs, spice_options=ACCURATE_OPTIONS, save="all"))
    assert ours.backend == "nodal"
    for name in ["i(vsns0)", "i(vsns4)", "i(vin0)", "i(vin2)", "v(r0_0)", "v(c3_4)", "v(r2_3)", "v(c0_0)"]:
        expected = float(theirs[name][0])
        assert abs(float(ours[name][0]) - expected) <= 1e-6 * abs(expected) + 1e-12, name


def test_single_cell_is_a_series_circuit():
    crossbar = Crossbar(LinearCells(np.array([[1 / 1000.0]])), r_source=10.0, r_sense=20.0)
    current = solve_many(crossbar, np.array([[0.3]]))
    assert current[0, 0] == pytest.approx(0.3 / 1030.0, rel=1e-13)


def test_kirchhoff_current_balance():
    """Current drawn from the inputs equals the current into the virtual grounds."""
    rng = np.random.default_rng(11)
    crossbar = Crossbar(device_cells(rng, (9, 7)), r_row=3.0, r_col=2.0)
    solver = NodalSolver(crossbar)
    inputs = rng.uniform(0, 0.2, size=(4, 9))
    x = solver.node_voltages(inputs)
    drawn = -solver.input_currents(x, inputs).sum(axis=1)
    sunk = solver.column_currents(x).sum(axis=1)
    np.testing.assert_allclose(drawn, sunk, rtol=1e-11)


def test_batched_equals_one_by_one_and_full_newton():
    rng = np.random.default_rng(3)
    crossbar = Crossbar(device_cells(rng, (10, 12)), r_row=5.0, r_col=5.0)
    inputs = np.vstack([rng.uniform(0, 0.2, size=(3, 10)), rng.uniform(0.8, 1.2, size=(2, 10))])
    batched = NodalSolver(crossbar)
    together = batched.solve_many(inputs)
    alone = np.vstack([NodalSolver(crossbar).solve_many(v[None]) for v in inputs])
    np.testing.assert_allclose(together, alone, rtol=1e-10)
    newton = NodalSolver(crossbar, refactor_ratio=0.0)  # fresh Jacobian at every iteration
    np.testing.assert_allclose(newton.solve_many(inputs), together, rtol=1e-10)
    assert newton.stats.factorizations > batched.stats.factorizations


def test_strongly_nonlinear_cells_match_ngspice():
    """I = g·V + c·V³ with a cubic term 10× the linear one at 1 V: the chord Jacobian must refresh."""
    rng = np.random.default_rng(8)
    shape = (6, 5)
    g = rng.uniform(2e-5, 2e-4, size=shape)
    coeffs = np.stack([10 * g, np.zeros(shape), g, np.zeros(shape)])
    crossbar = Crossbar(PolynomialCells(coeffs), r_row=20.0, r_col=20.0)
    inputs = rng.uniform(0.5, 1.5, size=(2, 6))
    solver = NodalSolver(crossbar)
    assert max_relative_error(solver.solve_many(inputs), ngspice_columns(crossbar, inputs)) < 1e-6
    assert solver.stats.factorizations >= 2


def test_zero_conductance_cells_are_open():
    g = np.full((3, 3), 1e-4)
    g[1, :] = 0.0
    crossbar = Crossbar(LinearCells(g))
    reference = ngspice_columns(crossbar, np.array([[0.2, 0.2, 0.2]]))
    assert max_relative_error(solve_many(crossbar, np.array([[0.2, 0.2, 0.2]])), reference) < 1e-9


def test_nested_dissection_order_is_a_permutation():
    for rows, cols in [(1, 1), (1, 9), (7, 3), (32, 17)]:
        order = nested_dissection_order(rows, cols)
        assert np.array_equal(np.sort(order), np.arange(2 * rows * cols))


def test_system_matrix_is_symmetric_positive_definite():
    rng = np.random.default_rng(0)
    crossbar = Crossbar(LinearCells(rng.uniform(0, 1e-4, (5, 6))))
    system = build_system(crossbar)
    matrix = system.matrix(crossbar.conductances()).toarray()
    assert np.allclose(matrix, matrix.T)
    assert np.linalg.eigvalsh(matrix).min() > 0


def test_unsupported_layouts_fail_clearly():
    cells = LinearCells(np.full((2, 2), 1e-4))
    with pytest.raises(CosimError, match="1R"):
        NodalSolver(Crossbar(cells, access="1t1r"))
    va = VerilogACells(shape_=(2, 2), model="rram", module="rram_cell", params={"r0": 0.5})
    with pytest.raises(CosimError, match="equivalent"):
        solve_many(Crossbar(va), np.full((1, 2), 0.2))
    with pytest.raises(CosimError, match="inputs"):
        solve_many(Crossbar(cells), np.full((1, 3), 0.2))


def test_verilog_a_cells_with_equivalent_solve():
    g = np.full((2, 3), 1e-4)
    va = VerilogACells(shape_=(2, 3), model="rram", module="rram_cell", params={"g": g}, equivalent=LinearCells(g))
    np.testing.assert_allclose(
        solve_many(Crossbar(va), np.full((1, 2), 0.2)), solve_many(Crossbar(LinearCells(g)), np.full((1, 2), 0.2))
    )


def test_factorization_choices_agree():
    rng = np.random.default_rng(21)
    crossbar = Crossbar(LinearCells(rng.uniform(1e-5, 1e-4, (6, 7))))
    inputs = rng.uniform(0, 0.2, (2, 6))
    reference = solve_many(crossbar, inputs, factorization="splu")
    np.testing.assert_array_equal(solve_many(crossbar, inputs), reference)  # auto = SuperLU
    if cholmod_available():
        np.testing.assert_allclose(solve_many(crossbar, inputs, factorization="cholmod"), reference, rtol=1e-12)
    else:
        with pytest.raises(CosimError, match="scikit-sparse"):
            solve_many(crossbar, inputs, factorization="cholmod")
    with pytest.raises(CosimError, match="unknown factorization"):
        solve_many(crossbar, inputs, factorization="qr")
