"""Compact-model library: Verilog-A against the Python transcription, hysteresis, crossbar writes."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.crossbar import Crossbar
from cosim.crossbar.devices import library_cells
from cosim.crossbar.netlist import WritePulse, write_netlist
from cosim.crossbar.probes import CellArrays
from cosim.errors import CosimError
from cosim.library import MODELS, get_model, iv_sweep, va_defaults
from cosim.spice.batch import run_batch
from cosim.valint import lint_file

runner = CliRunner()
NAMES = sorted(MODELS)
WRITE_AMPLITUDE = {"vteam": 1.3, "stanford_pku": 1.6}  # V, times the model's SET polarity


@pytest.fixture(scope="module", params=NAMES)
def sweep(request):
    return request.param, iv_sweep(request.param)


def test_verilog_a_follows_the_python_equations(sweep):
    name, s = sweep
    model = get_model(name)
    big = np.abs(s["i"]) > 1e-6 * np.abs(s["i"]).max()
    # the I-V equation at the simulated state
    np.testing.assert_allclose(model.current(s["v"], s["state"])[big], s["i"][big], rtol=1e-5)
    # the state equation: Python integration of the same waveform
    python = model.integrate(s["time"], s["v"], float(s["state"][0]))
    span = abs(model.hrs_state - model.lrs_state)
    assert np.max(np.abs(python - s["state"])) < 0.01 * span
    assert s["state"][0] == pytest.approx(model.hrs_state)  # the DC equation holds the initial state


def test_iv_sweep_shows_hysteresis(sweep):
    name, s = sweep
    model = get_model(name)
    half = len(s["time"]) // 2
    u = 0.3 * model.set_sign  # the same small SET-polarity voltage before and after the SET
    rising = np.flatnonzero(np.diff(s["v"][:half]) * model.set_sign > 0)
    falling = np.flatnonzero(np.diff(s["v"][:half]) * model.set_sign < 0)
    i_before = np.interp(u, s["v"][rising][:: int(model.set_sign)], s["i"][rising][:: int(model.set_sign)])
    i_after = np.interp(u, s["v"][falling][:: -int(model.set_sign)], s["i"][falling][:: -int(model.set_sign)])
    assert abs(i_after) > 10 * abs(i_before)  # SET: low to high current
    final = s["state"][-1]
    assert abs(final - model.hrs_state) < 0.05 * abs(model.hrs_state - model.lrs_state)  # RESET back


@pytest.mark.parametrize("name", NAMES)
def test_v3_write_in_32x32_switches_only_the_selected_cell(name):
    model = get_model(name)
    crossbar = Crossbar(library_cells(name, (32, 32)))
    pulse = WritePulse(row=10, col=16, v_write=model.set_sign * WRITE_AMPLITUDE[name], scheme="v3", width=1e-6)
    cells = CellArrays.from_result(run_batch(write_netlist(crossbar, pulse, save="cells"), timeout_s=300), crossbar)
    state = cells.states[model.state_node][-1]
    switched = (state - model.hrs_state) / (model.lrs_state - model.hrs_state)
    assert switched[10, 16] > 0.99
    others = np.delete(switched.ravel(), 10 * 32 + 16)
    assert np.max(np.abs(others)) < 1e-3
    half_selected = np.abs(cells.v_cell[cells.index(pulse.delay + pulse.rise + pulse.width / 2)])
    assert np.sort(half_selected.ravel())[-2] < 1.01 * WRITE_AMPLITUDE[name] / 3  # |V/3| (+ wire drops)


def test_parameters_come_from_the_verilog_a_and_are_checked():
    defaults = va_defaults(get_model("vteam").source)
    assert defaults["von"] == -0.68 and defaults["ron"] == 4.5e3
    with pytest.raises(CosimError, match="no parameter 'vonn'"):
        get_model("vteam").params({"vonn": 1.0})
    with pytest.raises(CosimError, match="no library model"):
        get_model("jart")


def test_library_models_pass_the_lint():
    for model in MODELS.values():
        assert lint_file(model.source) == []


def test_cli_lists_models_and_writes_iv_figure(tmp_path):
    res = runner.invoke(app, ["library", "list"])
    assert res.exit_code == 0 and "cosim_vteam" in res.output and "cosim_stanford_pku" in res.output
    out = tmp_path / "iv.png"
    res = runner.invoke(app, ["library", "iv", "vteam", "-o", str(out), "--leg", "2e-6"])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 20_000
    net = tmp_path / "x.cir"
    res = runner.invoke(app, ["netlist", "crossbar", "--rows", "3", "--cols", "3", "--device", "library",
                              "--library-model", "vteam", "--va-param", "w0=0.0", "-o", str(net)])
    assert res.exit_code == 0, res.output
    assert "cosim_vteam" in net.read_text() and "w0=0.0" in net.read_text()


@pytest.mark.parametrize("device", ["resistor", "polynomial"])
def test_va_param_on_cells_without_instance_parameters_is_an_error(tmp_path, device):
    """--va-param was silently dropped for resistor/polynomial cells; now a one-line error."""
    net = tmp_path / "x.cir"
    res = runner.invoke(app, ["netlist", "crossbar", "--rows", "3", "--cols", "3", "--device", device,
                              "--va-param", "w0=0.0", "-o", str(net)])
    assert res.exit_code != 0
    assert "error:" in res.output and "va_params" in res.output and device in res.output
    assert "Traceback" not in res.output and not net.exists()


@pytest.mark.parametrize("flag, value", [("--leg", "0"), ("--leg", "-1e-6"), ("--v-peak", "0")])
def test_iv_refuses_a_non_positive_sweep_before_running_ngspice(tmp_path, flag, value):
    """--leg 0 used to end in an ngspice log dump, --v-peak 0 in an empty figure."""
    out = tmp_path / "iv.png"
    res = runner.invoke(app, ["library", "iv", "vteam", "-o", str(out), flag, value])
    assert res.exit_code == 2 and "error: vteam I-V sweep:" in res.output and flag in res.output
    assert "ngspice" not in res.output and not out.exists()

