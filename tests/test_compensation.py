"""Compensation stage (none / gain / predistort / insitu) and the claims it must show.

The exact figures of the issue are asserted where they take seconds (the test layer has four
17×34 arrays); the larger sweeps are in benchmarks/bench_compensation.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.compensation import (
    ArraySpec,
    CompensationError,
    CompensationOptions,
    Devices,
    check_methods,
    compensate,
    compensate_layer,
    fit_gain_offset,
)
from cosim.device.modelfile import load_model
from cosim.device.programming import ProgramConfig
from cosim.paths import DEFAULT_MODEL
from cosim.s4d import (
    ConductanceWindow,
    S4DLayer,
    Wires,
    init_s4d_inv,
    init_s4d_lin,
    map_program,
    program_layer,
    test_model,
)

LENGTH = 256


@pytest.fixture(scope="module")
def device_model():
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def window(device_model):
    return ConductanceWindow.from_device_model(device_model)


def kernel_error(layer: S4DLayer, variant: str, compensated, wires: Wires, v_read: float):
    return compensated.kernel_error(layer, variant, wires, v_read, length=LENGTH)


@pytest.mark.parametrize("variant", ["full", "delta"])
def test_ideal_conductances_gain_and_predistort_meet_the_bounds(variant, device_model, window):
    """Test layer, L = 256, channel layout, 1 Ω wires, ideal conductances: raw 0.4–0.9,
    gain ≤ 0.08, predistort ≤ 1e−3 per channel."""
    layer, wires, v_read = test_model(), Wires(), float(device_model.u0)
    mapped = map_program(layer.crossbar_program(variant), window, layout="channel")
    errors = {m: kernel_error(layer, variant, compensate_layer(mapped, m, wires, v_read=v_read), wires, v_read)
              for m in ("none", "gain", "predistort")}
    print(f"\n{variant}: " + "; ".join(f"{m} {np.array2string(e, precision=4)}" for m, e in errors.items()))
    assert errors["none"].min() > 0.3  # the raw circuit is far off
    assert errors["gain"].max() <= 0.08
    assert errors["predistort"].max() <= 1e-3


def test_programmed_devices_delta_best_compensation_below_ten_percent(device_model, window):
    """Programmed default-model devices, 1 Ω wires, delta: mean kernel error over channels and
    three device seeds ≤ 0.10 with gain calibration (raw: ~0.57)."""
    layer, wires, v_read = test_model(), Wires(), float(device_model.u0)
    mapped = map_program(layer.crossbar_program("delta"), window, layout="channel")
    raw, gain = [], []
    for seed in (0, 1, 2):
        programmed = program_layer(mapped, device_model, seed, ProgramConfig())
        raw.append(kernel_error(layer, "delta", compensate_layer(programmed, "none", wires, v_read=v_read), wires, v_read))
        gain.append(kernel_error(layer, "delta", compensate_layer(programmed, "gain", wires, v_read=v_read), wires, v_read))
    print(f"\ndelta, devices: raw mean {np.mean(raw):.4f}, gain mean {np.mean(gain):.4f}")
    assert np.mean(gain) <= 0.10
    assert np.mean(gain) < 0.5 * np.mean(raw)


@pytest.mark.parametrize("kind", ["lin", "inv"])
@pytest.mark.parametrize("layout", ["channel", "layer"])
def test_predistort_converges_up_to_three_ohm(kind, layout, window):
    init = init_s4d_lin if kind == "lin" else init_s4d_inv
    layer = S4DLayer(init(2, 8, dt_min=1e-3, dt_max=1e-1, seed=1))
    mapped = map_program(layer.crossbar_program("delta"), window, layout=layout)
    options = CompensationOptions(max_iterations=15, tolerance=1e-8)
    for ohm in (1.0, 3.0):
        result = compensate_layer(mapped, "predistort", Wires(ohm, ohm, ohm, ohm), options=options)
        history = result.tiles[0].history
        assert result.residual <= 1e-8, (ohm, history)
        assert all(b < a for a, b in zip(history, history[1:]))  # monotone contraction
        assert result.cost.iterations <= 15


def test_predistort_with_ngspice_matches_nodal(window):
    layer = S4DLayer(init_s4d_lin(1, 4, seed=0))
    mapped = map_program(layer.crossbar_program("delta"), window, layout="channel")
    wires = Wires(3.0, 3.0, 3.0, 3.0)
    results = {solver: compensate_layer(mapped, "predistort", wires,
                                        options=CompensationOptions(solver=solver, max_iterations=10, tolerance=1e-9))
               for solver in ("nodal", "ngspice")}
    spice, nodal = results["ngspice"], results["nodal"]
    assert spice.tiles[0].history[0] > 1e-3  # there was something to compensate
    assert spice.residual <= 1e-6
    assert spice.cost.solver_calls == spice.cost.iterations  # one circuit load per iteration
    np.testing.assert_allclose(spice.tiles[0].target, nodal.tiles[0].target, rtol=1e-6)


def test_gain_fit_reads_offset_at_zero_and_recovers_gain():
    rng = np.random.default_rng(0)
    wanted = rng.standard_normal((40, 3))
    true_gain, zero = np.array([0.9, 1.1, 0.97]), np.array([0.01, -0.02, 0.0])
    measured = wanted / true_gain + zero
    gain, offset = fit_gain_offset(measured, wanted, zero)
    np.testing.assert_allclose(gain, true_gain, rtol=1e-12)
    np.testing.assert_allclose(gain * measured + offset, wanted, atol=1e-12)
    gain, offset = fit_gain_offset(np.zeros((5, 1)), np.zeros((5, 1)))
    assert gain[0] == 1.0 and offset[0] == 0.0


def test_array_api_methods_order_the_residuals(device_model, window):
    weights = np.random.default_rng(1).standard_normal((12, 6))
    spec = ArraySpec(weights=weights, window=window, wires=Wires(3.0, 3.0, 3.0, 3.0), v_read=float(device_model.u0))
    results = {m: compensate(spec, m) for m in ("none", "gain", "predistort")}
    assert results["none"].residual > 0.01
    assert results["gain"].residual < 0.5 * results["none"].residual
    assert results["predistort"].residual < 1e-6
    assert results["gain"].cost.reads == 32 + 1 and results["gain"].cost.solver_calls == 1
    # read() applies the digital correction: corrected products match the wanted ones
    volts = np.random.default_rng(2).uniform(-0.2, 0.2, (5, 12))
    np.testing.assert_allclose(results["predistort"].read(volts), volts @ weights, rtol=0, atol=1e-6 * np.abs(volts @ weights).max())
    # in situ needs devices; unknown names are errors naming the method
    with pytest.raises(CompensationError, match="insitu"):
        compensate(spec, "insitu")
    with pytest.raises(CompensationError, match="'bogus'"):
        check_methods(["none", "bogus"])


def test_insitu_verify_through_the_array_removes_the_wire_error(device_model, window):
    weights = np.random.default_rng(1).standard_normal((12, 6))
    spec = ArraySpec(weights=weights, window=window, wires=Wires(3.0, 3.0, 3.0, 3.0), v_read=float(device_model.u0))
    devices = Devices(device_model, 4, ProgramConfig())
    raw = compensate(spec, "none", devices=devices)
    insitu = compensate(spec, "insitu", devices=devices)
    print(f"\ninsitu residual {insitu.residual:.4f} (raw {raw.residual:.4f})")
    assert raw.residual > 0.015
    assert insitu.residual < 0.4 * raw.residual
    # verify reads went through the solver: one array read (12 vectors) per verify round
    assert insitu.cost.reads == 12 * insitu.cost.solver_calls and insitu.cost.solver_calls > 20
    # the devices' own conductances sit above the targets to make up for the wires
    assert insitu.programming["rel_error_mean"] > raw.programming["rel_error_mean"] + 0.005
    assert insitu.programming["failures"] == len(insitu.failures)


def test_mdm_command_compares_under_compensation(tmp_path):
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["mdm", "--rows", "16", "--cols", "8", "--block", "4", "--vectors", "8",
                                      "--compensation", "none,gain", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "compensation gain" in result.output and "with MDM (" in result.output
    record = json.loads(out.read_text())
    assert record["probe_seed"] == record["seed"] + 2
    rows = record["compensation"]
    assert [r["compensation"] for r in rows] == ["none", "gain"]
    assert rows[1]["output_error_before"] < rows[0]["output_error_before"]
    for row in rows:
        change = row["output_error_after"] / row["output_error_before"] - 1
        assert row["mdm_effect"] == ("helps" if change < -0.02 else "hurts" if change > 0.02 else "neutral")
    bad = CliRunner().invoke(app, ["mdm", "--rows", "8", "--cols", "4", "--compensation", "insitu"])
    assert bad.exit_code == 2 and "error: --compensation insitu" in bad.output and "Traceback" not in bad.output


def test_analog_compensation_is_what_the_mdm_command_compares(tmp_path):
    """The library entry point behind `cosim mdm --compensation`: same rows as the command's
    JSON for the matrix and inputs it draws (weights from seed, inputs from seed + 1, probes
    from seed + 2), with the MDM placement of :func:`analog_tiles`."""
    from cosim.crossbar.mdm import Remap, analog_compensation, analog_tiles, random_inputs, random_weights

    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["mdm", "--rows", "12", "--cols", "6", "--block", "3", "--vectors", "4", "--seed", "5",
                                      "--compensation", "gain,none", "--json", str(out)])
    assert result.exit_code == 0, result.output
    weights, volts = random_weights(12, 6, 3, seed=5), random_inputs(12, 4, 0.2, seed=6)
    remap = Remap.from_dict(analog_tiles(weights, volts))
    assert Remap.from_dict(remap.as_dict()).as_dict() == remap.as_dict()
    rows = analog_compensation(weights, volts, remap, ["gain", "none"], probe_seed=7)
    assert rows == json.loads(out.read_text())["compensation"]
    assert [r["compensation"] for r in rows] == ["gain", "none"]
    for methods, needle in ((["insitu"], "insitu"), (["none", "none"], "listed twice"), (["bogus"], "unknown")):
        with pytest.raises(CompensationError, match=needle):
            analog_compensation(weights, volts, remap, methods)


def test_insitu_fast_reads_equal_the_array_reader_with_mdm_placement(window):
    from cosim.compensation import ArrayReader, CompensationCost, _nodal_reads
    from cosim.crossbar.mdm import mdm_remap
    from cosim.crossbar.solver import build_system

    weights = np.random.default_rng(3).standard_normal((6, 3))
    base = ArraySpec(weights=weights, window=window, wires=Wires(2.0, 2.0, 1.0, 1.0))
    target = base.targets()
    remap = mdm_remap(ArrayReader.logical_crossbar(base, target), np.linspace(0.05, 0.2, 6))
    assert not np.array_equal(remap.row_order, np.arange(6))
    spec = ArraySpec(weights=weights, window=window, wires=Wires(2.0, 2.0, 1.0, 1.0), remap=remap)
    conductance = target * np.random.default_rng(4).uniform(0.95, 1.05, target.shape)
    volts = 0.2 * np.eye(6)
    system = build_system(remap.apply(ArrayReader.logical_crossbar(spec, target)))
    fast = _nodal_reads(system, spec, conductance, volts, CompensationCost())
    reader = ArrayReader(spec, conductance, CompensationCost(), CompensationOptions())
    np.testing.assert_allclose(fast, reader.currents(volts), rtol=1e-10, atol=1e-18)


def test_stability_margin_is_per_channel_for_channel_layout_and_nan_for_layer(device_model, window):
    """Predistorted ideal tiles keep every channel stable (margin > 0); the layer layout has no
    per-channel blocks, so every margin is NaN."""
    layer, wires, v_read = test_model(), Wires(), float(device_model.u0)
    margins = {}
    for layout in ("channel", "layer"):
        mapped = map_program(layer.crossbar_program("full"), window, layout=layout)
        margins[layout] = compensate_layer(mapped, "predistort", wires, v_read=v_read).stability_margin(layer, "full")
    assert margins["channel"].shape == (layer.n_channels,)
    assert np.all(margins["channel"] > 0)
    assert np.all(np.isnan(margins["layer"]))
