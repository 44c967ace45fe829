"""Mapping of S4D crossbar matrices to differential conductance pairs, programming, MDM."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.crossbar.mdm import expected_cell_currents, manhattan_cost
from cosim.crossbar.spec import Crossbar
from cosim.device.modelfile import load_model
from cosim.device.programming import ProgramConfig, conductance_window
from cosim.paths import DEFAULT_MODEL
from cosim.s4d import quantize_program, test_model
from cosim.s4d.ideal import S4DError
from cosim.s4d.mapping import ConductanceWindow, map_program, program_layer, with_mdm

WINDOW = ConductanceWindow(4.0e-5, 1.9e-4)


@pytest.fixture(scope="module")
def device_model():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def programmed(device_model):
    mapped = map_program(test_model().crossbar_program("delta"), WINDOW, layout="channel")
    return program_layer(mapped, device_model, seed=11, config=ProgramConfig(tolerance=0.05))


@pytest.mark.parametrize("variant", ["full", "delta"])
@pytest.mark.parametrize("layout", ["layer", "channel"])
def test_targets_in_window_and_stored_weights_exact(variant, layout):
    program = test_model().crossbar_program(variant)
    mapped = map_program(program, WINDOW, layout=layout)
    for tile in mapped.tiles:
        g = tile.target
        assert g.min() >= WINDOW.g_min and g.max() <= WINDOW.g_max * (1 + 1e-12)
        # one cell of each pair sits at G_min
        assert np.all(np.minimum(g[:, 0::2], g[:, 1::2]) == WINDOW.g_min)
        # every output with a non-zero weight spans the window exactly once
        peak = np.abs(g[:, 0::2] - g[:, 1::2]).max(axis=0)
        assert np.allclose(peak, WINDOW.g_max - WINDOW.g_min, rtol=1e-12)
    stored = mapped.stored_layer_weights()
    weights = program.crossbar_weights()
    assert np.max(np.abs(stored - weights)) <= 1e-12 * np.abs(weights).max()
    assert np.allclose(mapped.stored_program().matrices, program.matrices, rtol=0, atol=1e-12)


def test_global_scale_is_one_value():
    mapped = map_program(test_model().crossbar_program("full"), WINDOW, scale_scheme="global")
    scale = mapped.tiles[0].scale
    assert np.all(scale == scale[0])
    assert scale[0] == pytest.approx((WINDOW.g_max - WINDOW.g_min) / np.abs(test_model().layer_matrix()).max())


@pytest.mark.parametrize("bits", [4, 8])
def test_device_levels_equal_row_quantization(bits):
    """Conductance levels per output column are the 'row' scheme of the numpy quantizer
    (an independent implementation)."""
    program = test_model().crossbar_program("delta")
    mapped = map_program(program, WINDOW, layout="channel", weight_bits=bits)
    expected = quantize_program(program, bits, scheme="row").program.matrices
    assert np.max(np.abs(mapped.stored_program().matrices - expected)) <= 1e-12
    steps = 2 ** (bits - 1) - 1
    for tile in mapped.tiles:
        levels = (tile.target - WINDOW.g_min) / (WINDOW.g_max - WINDOW.g_min) * steps
        assert np.allclose(levels, np.round(levels), atol=1e-9)


def test_window_from_device_model(device_model):
    window = ConductanceWindow.from_device_model(device_model, seed=0)
    assert (window.g_min, window.g_max) == conductance_window(device_model, seed=0)


def test_programming_reaches_targets_and_records_states(programmed, device_model):
    stats = programmed.programming
    assert programmed.device_seed == 11
    assert stats["devices"] == 4 * 17 * 34
    assert stats["success_rate"] > 0.95
    for tile in programmed.tiles:
        error = np.abs(tile.conductance / tile.target - 1)
        assert np.median(error) <= 0.05
        assert not np.array_equal(tile.conductance, tile.target)
        # the nonlinear cell model at the programmed states reproduces the achieved G at U0
        cells = tile.cells("polynomial", device_model)
        assert np.allclose(cells.static_conductance(device_model.u0), tile.conductance, rtol=1e-10)
    # different tiles are different devices
    assert not np.allclose(programmed.tiles[0].conductance, programmed.tiles[1].conductance)


def test_programming_is_seeded(programmed, device_model):
    mapped = map_program(test_model().crossbar_program("delta"), WINDOW, layout="channel")
    config = ProgramConfig(tolerance=0.05)
    again = program_layer(mapped, device_model, seed=11, config=config)
    other = program_layer(mapped, device_model, seed=12, config=config)
    assert np.array_equal(again.stored_layer_weights(), programmed.stored_layer_weights())
    assert not np.allclose(other.stored_layer_weights(), programmed.stored_layer_weights())


def test_mdm_is_a_permutation_that_lowers_the_manhattan_cost(programmed):
    rng = np.random.default_rng(3)
    mean = rng.uniform(0.0, 0.2, programmed.size)
    remapped = with_mdm(programmed, mean)
    assert remapped.mdm
    for tile in remapped.tiles:
        rows, cols = tile.remap.row_order, tile.remap.col_order
        assert sorted(rows) == list(range(tile.shape[0])) and sorted(cols) == list(range(tile.shape[1]))
        assert np.all(cols[0::2] % 2 == 0) and np.all(cols[1::2] == cols[0::2] + 1)  # pairs stay together
        logical = Crossbar(cells=tile.cells(), differential=True)
        load = expected_cell_currents(logical, mean[tile.inputs])
        assert manhattan_cost(load[np.ix_(rows, cols)]) <= manhattan_cost(load)
        # the devices move with their weights: physical conductances are the permuted logical ones
        physical = tile.physical_crossbar().conductances()
        assert np.array_equal(physical, tile.conductance[np.ix_(rows, cols)])
    assert np.array_equal(remapped.stored_layer_weights(), programmed.stored_layer_weights())


def test_bad_inputs_name_the_field():
    program = test_model().crossbar_program("full")
    with pytest.raises(S4DError, match="g_min < g_max"):
        ConductanceWindow(2e-4, 1e-4)
    with pytest.raises(S4DError, match="layout"):
        map_program(program, WINDOW, layout="diagonal")  # type: ignore[arg-type]
    with pytest.raises(S4DError, match="scale scheme"):
        map_program(program, WINDOW, scale_scheme="row")  # type: ignore[arg-type]
    with pytest.raises(S4DError, match="weight_bits"):
        map_program(program, WINDOW, weight_bits=1)
    mapped = map_program(program, WINDOW)
    with pytest.raises(S4DError, match="input_mean"):
        with_mdm(mapped, np.ones(5))
    with pytest.raises(S4DError, match="polynomial"):
        mapped.tiles[0].cells("polynomial")
