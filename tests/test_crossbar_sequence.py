"""Stimulus sequences: program-then-read, multi-pulse, PWL per line, V/2 and V/3, from TOML."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.crossbar import Crossbar, LinearCells
from cosim.crossbar import config as cfg
from cosim.crossbar.devices import device_ids, reference_devices
from cosim.crossbar.netlist import sequence_netlist
from cosim.crossbar.probes import CellArrays
from cosim.crossbar.stimulus import PwlStep, ReadStep, Stimulus, WriteStep
from cosim.device.model import current
from cosim.device.modelfile import load_model
from cosim.errors import CosimError
from cosim.paths import DEFAULT_MODEL
from cosim.spice.batch import run_batch

MODEL = load_model(DEFAULT_MODEL)

PROGRAM_THEN_READ = """
rows = 16
cols = 16
bench = "sequence"
save = "cells"
[cells]
kind = "generative"
seed = 3
[sequence]
tstep = 1e-8
[[sequence.steps]]
kind = "write"
row = 2
col = 3
v_write = -1.3
scheme = "v3"
[[sequence.steps]]
kind = "write"
row = 5
col = 1
v_write = -1.3
scheme = "v3"
repeat = 2
[[sequence.steps]]
kind = "read"
v_read = 0.2
"""


def test_program_then_read_matches_the_python_model(tmp_path):
    toml = tmp_path / "seq.toml"
    toml.write_text(PROGRAM_THEN_READ)
    config = cfg.parse_config(cfg.load_toml(toml), str(toml))
    crossbar = cfg.build_crossbar(config, tmp_path)
    cells = CellArrays.from_result(run_batch(cfg.render(config, tmp_path), timeout_s=300), crossbar)
    # the Python devices, driven by the cell voltages the transient computed
    reference = reference_devices(MODEL, 3, device_ids((16, 16)))
    for u in cells.v_cell.reshape(len(cells.axis), -1):
        reference.apply(u)
    switched = reference.in_lrs.reshape(16, 16)
    assert sorted(map(tuple, np.argwhere(switched))) == [(2, 3), (5, 1)]  # V/3: only the selected cells
    k = cells.index(cfg.stimulus(config).read_times(16, 16)[0])
    expected = current(MODEL, cells.v_cell[k].ravel(), reference.r).reshape(16, 16)
    np.testing.assert_allclose(cells.i_cell[k], expected, rtol=1e-6)
    np.testing.assert_allclose(cells.i_col[k], expected.sum(axis=0), rtol=1e-6)
    assert cells.v_cell[k].min() > 0.19  # a read, not a write: every cell near 0.2 V
    np.testing.assert_array_equal(np.round(cells.states["b"][-1]), 0)  # nobody RESET


@pytest.mark.parametrize("scheme, other_row, other_col", [("v2", 1 / 2, 1 / 2), ("v3", 1 / 3, 2 / 3)])
def test_write_steps_follow_the_half_select_scheme(scheme, other_row, other_col):
    stim = Stimulus((WriteStep(row=1, col=2, v_write=1.2, scheme=scheme, repeat=3, width=1e-6, gap=2e-7),))
    waves = stim.waveforms(3, 4)
    for i, wave in enumerate(waves.rows):
        assert wave[:, 1].max() == pytest.approx(1.2 if i == 1 else other_row * 1.2)
        assert np.sum(np.diff(wave[:, 1]) > 0) == 3  # three pulses
    for j, wave in enumerate(waves.cols):
        assert wave[:, 1].max() == pytest.approx(0.0 if j == 2 else other_col * 1.2)
    assert waves.stop_time == pytest.approx(1e-7 + 3 * (1e-8 + 1e-6 + 1e-8 + 2e-7) + 1e-7)


def test_pwl_per_line_reaches_the_netlist_and_ngspice():
    wave = [[0.0, 0.0], [1e-6, 0.4], [2e-6, -0.2], [3e-6, 0.0]]
    stim = Stimulus((PwlStep(duration=3e-6, rows={1: wave}, cols={0: [[0, 0], [1.5e-6, 0.1], [3e-6, 0]]}),
                     ReadStep(inputs=(0.1, 0.2), width=5e-7)), tstep=2e-8)
    crossbar = Crossbar(LinearCells(np.full((2, 3), 1e-4)))
    result = run_batch(sequence_netlist(crossbar, stim, save="cells"))
    time, v_in1, v_s0 = result["time"], result["v(in1)"], result["v(s0)"]
    for t, v in ([1.1e-6, 0.4], [2.1e-6, -0.2], [0.6e-6, 0.2]):
        assert np.interp(t, time, v_in1) == pytest.approx(v, abs=1e-9)
    assert np.interp(1.6e-6, time, v_s0) == pytest.approx(0.1, abs=1e-9)
    cells = CellArrays.from_result(result, crossbar)
    k = cells.index(stim.read_times(2, 3)[0])
    np.testing.assert_allclose(cells.v_in[k], [0.1, 0.2], atol=1e-12)


@pytest.mark.parametrize("step, message", [
    (WriteStep(row=5), "outside"),
    (WriteStep(scheme="v4"), "v2 or v3"),
    (WriteStep(width=0.0), "width must be a positive"),
    (ReadStep(inputs=(0.1,)), "inputs must be 2"),
    (PwlStep(duration=1e-6, rows={7: [[0, 0], [1e-6, 0]]}), "row 7 outside"),
    (PwlStep(duration=1e-6, rows={0: [[0, 0], [2e-6, 0]]}), "within"),
    (PwlStep(duration=1e-6, cols={0: [[0, 0], [1e-6, 0.3]]}), "ends at 0 V"),
])
def test_bad_steps_are_refused(step, message):
    with pytest.raises(CosimError, match=message):
        Stimulus((step,)).waveforms(2, 2)


def test_sequence_toml_errors_name_the_field(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('rows = 2\ncols = 2\nbench = "sequence"\n[sequence]\n[[sequence.steps]]\nkind = "erase"\n')
    with pytest.raises(CosimError, match="s.toml.*sequence.steps.0.kind"):
        cfg.parse_config(cfg.load_toml(toml), str(toml))
    toml.write_text('rows = 2\ncols = 2\nbench = "sequence"\n')
    with pytest.raises(CosimError, match=r"\[sequence\]"):
        cfg.render(cfg.parse_config(cfg.load_toml(toml)), tmp_path)
    toml.write_text('rows = 2\ncols = 2\nbench = "sequence"\n[sequence]\n[[sequence.steps]]\nkind = "pwl"\n'
                    'duration = 1e-6\nrows = { "0\\n.control" = [[0, 0], [1e-6, 0]] }\n')
    with pytest.raises(CosimError, match="line index"):
        cfg.render(cfg.parse_config(cfg.load_toml(toml)), tmp_path)
