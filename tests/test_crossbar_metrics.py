"""NF / output error (docs/crossbar.md) and Manhattan-distance remapping."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.crossbar.mdm import random_weights
from cosim.crossbar import Crossbar, LinearCells
from cosim.crossbar.mdm import identity_remap, manhattan_cost, mdm_remap, random_inputs, study
from cosim.crossbar.metrics import (
    column_currents,
    differential_error,
    evaluate,
    ideal_currents,
    nonideality_factor,
)
from cosim.crossbar.netlist import ACCURATE_OPTIONS, read_netlist
from cosim.crossbar.solver import simulate, solve_many
from cosim.errors import CosimError
from cosim.spice.batch import run_batch


def test_nf_definition_and_skipping():
    ideal = np.array([[1.0, 2.0, 1e-4, -4.0]])
    real = np.array([[0.9, 1.0, 5e-5, -3.0]])
    nf = nonideality_factor(ideal, real)
    assert nf[0, 0] == pytest.approx(0.1) and nf[0, 1] == pytest.approx(0.5) and nf[0, 3] == pytest.approx(0.25)
    assert np.isnan(nf[0, 2])  # 1e-4 < 1e-3 · 4
    assert not np.isnan(nonideality_factor(ideal, real, threshold=1e-5)[0, 2])


def test_differential_error_definition():
    ideal = np.array([[3.0, 1.0, 1.0, 2.0]])  # ΔI = 2, −1
    real = np.array([[2.5, 1.0, 1.0, 1.5]])  # ΔI = 1.5, −0.5
    assert differential_error(ideal, real) == pytest.approx((0.5 + 0.5) / 3.0)


def test_ideal_currents_are_the_wire_free_limit():
    rng = np.random.default_rng(4)
    crossbar = Crossbar(LinearCells(rng.uniform(1e-5, 1e-4, (6, 5))), r_row=1e-9, r_col=1e-9, r_source=1e-9, r_sense=1e-9)
    inputs = rng.uniform(0, 0.2, (3, 6))
    np.testing.assert_allclose(solve_many(crossbar, inputs), ideal_currents(crossbar, inputs), rtol=1e-6)
    assert evaluate(crossbar, inputs, solve_many(crossbar, inputs)).tile_nf == pytest.approx(0.0, abs=1e-6)


def test_nf_from_ngspice_equals_nf_from_nodal_solver():
    rng = np.random.default_rng(9)
    crossbar = Crossbar.from_weights(rng.standard_normal((8, 4)), r_row=3.0, r_col=3.0)
    inputs = rng.uniform(0, 0.2, (2, 8))
    spice = [run_batch(read_netlist(crossbar, inputs=v, spice_options=ACCURATE_OPTIONS)) for v in inputs]
    nodal = simulate(crossbar, inputs)
    from_spice, from_nodal = evaluate(crossbar, inputs, spice), evaluate(crossbar, inputs, nodal)
    assert column_currents(spice, crossbar.cols).shape == (2, 8)
    assert from_spice.tile_nf == pytest.approx(from_nodal.tile_nf, rel=1e-6)
    assert from_spice.output_error == pytest.approx(from_nodal.output_error, rel=1e-6)
    assert 0 < from_nodal.tile_nf < 1


def test_mdm_minimises_manhattan_cost_exactly():
    rng = np.random.default_rng(12)
    crossbar = Crossbar.from_weights(rng.standard_normal((4, 3)))  # 4 rows × 3 pairs
    mean = rng.uniform(0.05, 0.2, 4)
    load = crossbar.conductances() * mean[:, None]
    remap = mdm_remap(crossbar, mean)
    best = manhattan_cost(load[np.ix_(remap.row_order, remap.col_order)])
    for rows in itertools.permutations(range(4)):
        for pairs in itertools.permutations(range(3)):
            cols = np.array([[2 * p, 2 * p + 1] for p in pairs]).ravel()
            assert best <= manhattan_cost(load[np.ix_(rows, cols)]) * (1 + 1e-12)
    assert np.all(remap.col_order[1::2] == remap.col_order[0::2] + 1)  # pairs stay (G+, G−)


def test_remap_results_come_back_in_logical_order():
    rng = np.random.default_rng(1)
    crossbar = Crossbar.from_weights(rng.standard_normal((10, 6)), r_row=1e-9, r_col=1e-9, r_source=1e-9, r_sense=1e-9)
    inputs = rng.uniform(0, 0.2, (3, 10))
    remap = mdm_remap(crossbar, inputs.mean(axis=0))
    assert not np.array_equal(remap.row_order, np.arange(10))
    physical = solve_many(remap.apply(crossbar), remap.inputs_to_physical(inputs))
    np.testing.assert_allclose(remap.outputs_to_logical(physical), solve_many(crossbar, inputs), rtol=1e-7)
    ident = identity_remap(crossbar)
    assert np.array_equal(ident.outputs_to_logical(physical), physical)


@pytest.mark.parametrize("block", [0, 4])
def test_remap_leaves_ideal_output_exactly_unchanged(block):
    crossbar = Crossbar.from_weights(random_weights(24, 12, block, seed=5))
    inputs = random_inputs(24, 5, 0.2, seed=6)
    remap = mdm_remap(crossbar, inputs.mean(axis=0))
    mapped = remap.outputs_to_logical(ideal_currents(remap.apply(crossbar), remap.inputs_to_physical(inputs)))
    assert np.array_equal(mapped, ideal_currents(crossbar, inputs))


def test_mdm_lowers_nf_more_on_block_diagonal_than_dense():
    """MDM helps dense Gaussian weights a little, sparse block-structured ones more."""
    figures = {}
    for name, block in (("dense", 0), ("block", 4)):
        crossbar = Crossbar.from_weights(random_weights(32, 16, block, seed=0), r_row=2.0, r_col=2.0)
        result = study(crossbar, random_inputs(32, 16, 0.2, seed=1))
        assert result.ideal_unchanged
        assert result.cost_after < result.cost_before
        assert result.after.tile_nf < result.before.tile_nf
        assert result.after.output_error < result.before.output_error
        figures[name] = result.as_dict()["nf_reduction"]
    assert figures["block"] > figures["dense"] > 0


def test_mdm_command_reports_before_and_after(tmp_path):
    report = tmp_path / "mdm.json"
    result = CliRunner().invoke(app, ["mdm", "--rows", "16", "--cols", "8", "--block", "4", "--seed", "3", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "NF" in result.output and "->" in result.output
    data = json.loads(report.read_text())
    assert data["seed"] == 3 and data["shape"] == [16, 8] and data["ideal_unchanged"] is True
    assert data["nf_after"] < data["nf_before"]
    matrix = tmp_path / "w.csv"
    np.savetxt(matrix, random_weights(6, 3, 0, seed=1), delimiter=",")
    assert CliRunner().invoke(app, ["mdm", "--matrix", str(matrix), "--vectors", "4"]).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,abc\n")
    failed = CliRunner().invoke(app, ["mdm", "--matrix", str(bad)])
    assert failed.exit_code == 2 and "bad.csv" in failed.output


def test_metrics_reject_mismatched_results():
    crossbar = Crossbar(LinearCells(np.full((2, 3), 1e-4)))
    with pytest.raises(CosimError):
        evaluate(crossbar, np.full((2, 2), 0.2), np.ones((1, 3)))
    with pytest.raises(CosimError):
        differential_error(np.ones((1, 3)), np.ones((1, 3)))


@pytest.mark.parametrize("make, needle", [
    (lambda path: path.write_text(""), "weight matrix is empty"),
    (lambda path: np.save(path, np.ones((2, 2)) + 1j), "weight matrix must hold real numbers, got dtype complex128"),
    (lambda path: np.save(path, np.array([["a", "b"]])), "weight matrix must hold real numbers"),
])
def test_weight_files_that_are_empty_or_not_real_are_refused(tmp_path, make, needle):
    """An empty CSV and a string array used to end in a traceback; a complex one lost its
    imaginary part silently."""
    path = tmp_path / ("w.csv" if needle.endswith("empty") else "w.npy")
    make(path)
    result = CliRunner().invoke(app, ["mdm", "--weights", str(path)])
    assert result.exit_code == 2 and f"{path}: {needle}" in result.output and "Traceback" not in result.output
    assert "Warning" not in result.output
