"""Crossbars of Verilog-A devices from flags and TOML: generative cells, user modules, probes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.crossbar import Crossbar, LinearCells
from cosim.crossbar import config as cfg
from cosim.crossbar.netlist import ACCURATE_OPTIONS, read_netlist
from cosim.crossbar.probes import CellArrays, ir_drop_figure
from cosim.crossbar.solver import simulate
from cosim.device.model import DeviceArray
from cosim.device.modelfile import load_model
from cosim.errors import CosimError, NetlistError
from cosim.paths import DEFAULT_MODEL, VERILOGA_DIR
from cosim.spice.batch import run_batch

runner = CliRunner()
MODEL = load_model(DEFAULT_MODEL)


def cli(*args: str) -> object:
    result = runner.invoke(app, list(args))
    return result


def run_file(path: Path, toml: dict | None = None, base: Path | None = None):
    result = run_batch(path.read_text(), timeout_s=300)
    return result


def synth(tmp_path: Path, devices: int, seed: int) -> pd.DataFrame:
    out = tmp_path / "synth.csv"
    res = cli("synth", "--devices", str(devices), "--cycles", "1", "--seed", str(seed), "--no-noise", "-o", str(out))
    assert res.exit_code == 0, res.output
    return pd.read_csv(out)


def test_generative_16x16_from_flags_has_the_synth_devices(tmp_path):
    seed = 5
    net = tmp_path / "g.cir"
    res = cli("netlist", "crossbar", "--rows", "16", "--cols", "16", "--device", "generative", "--seed", str(seed),
              "--save", "cells", "-o", str(net))
    assert res.exit_code == 0, res.output
    text = net.read_text()
    assert "pre_osdi /" in text and ".model rram cosim_reram" in text
    devids = [float(line.split("devid=")[1].split()[0]) for line in text.splitlines() if line.startswith("Nx")]
    assert sorted(devids) == list(range(256))  # 256 distinct devices
    crossbar = cfg.build_crossbar(cfg.parse_config({"rows": 16, "cols": 16, "save": "cells",
                                                    "cells": {"kind": "generative", "seed": seed}}))
    cells = CellArrays.from_result(run_batch(text, timeout_s=300), crossbar)
    table = synth(tmp_path, 256, seed)
    np.testing.assert_allclose(cells.outputs["us"][0].ravel(), table["US_V"], rtol=1e-8)  # US of cycle 0
    assert len(np.unique(np.round(cells.outputs["us"][0], 9))) == 256
    reference = DeviceArray(MODEL, seed=seed, device_ids=np.arange(256), method="ma")
    np.testing.assert_allclose(cells.outputs["hrs"][0].ravel(), reference.hrs, rtol=1e-8)  # HRS of cycle 0 (latched)
    # cell currents (KCL on the saved node voltages) equal the device model at the cell voltages
    expected = crossbar.cells.equivalent.current(cells.v_cell[0])
    np.testing.assert_allclose(cells.i_cell[0], expected, rtol=1e-6)
    np.testing.assert_allclose(cells.i_cell[0].sum(axis=0), cells.i_col[0], rtol=1e-9)


def test_generative_toml_in_lrs_reads_the_synth_lrs_and_ur(tmp_path):
    toml = tmp_path / "g.toml"
    toml.write_text('rows = 4\ncols = 8\nsave = "cells"\n[cells]\nkind = "generative"\nseed = 9\n'
                    'first_device = 100\nlrs0 = 1\n')
    net = tmp_path / "g.cir"
    assert cli("netlist", "crossbar", "--config", str(toml), "-o", str(net)).exit_code == 0
    crossbar = cfg.build_crossbar(cfg.parse_config(cfg.load_toml(toml)), tmp_path)
    cells = CellArrays.from_result(run_batch(net.read_text(), timeout_s=300), crossbar)
    table = synth(tmp_path, 132, 9).iloc[100:]
    np.testing.assert_allclose(cells.outputs["lrs"][0].ravel(), table["LRS_ohm"], rtol=1e-8)
    np.testing.assert_allclose(cells.outputs["ur"][0].ravel(), table["UR_V"], rtol=1e-8)
    np.testing.assert_array_equal(np.round(cells.states["a"][0] - cells.states["b"][0]), 1)  # in LRS


def test_user_verilog_a_with_parameter_table_matches_the_solver(tmp_path):
    rng = np.random.default_rng(3)
    r = rng.uniform(5e3, 50e3, size=(3, 5))
    np.savetxt(tmp_path / "r.csv", r, delimiter=",")
    osdi = tmp_path / "res.osdi"
    assert cli("compile", str(VERILOGA_DIR / "examples" / "res_va.va"), "-o", str(osdi)).exit_code == 0
    net = tmp_path / "x.cir"
    res = cli("netlist", "crossbar", "--rows", "3", "--cols", "5", "--device", "veriloga", "--osdi", str(osdi),
              "--module", "res_va", "--va-param", f"r={tmp_path / 'r.csv'}", "--save", "cells", "-o", str(net))
    assert res.exit_code == 0, res.output
    spice = run_batch(net.read_text())
    nodal = simulate(Crossbar(LinearCells(1 / r)), save_nodes=True)
    crossbar = Crossbar(LinearCells(1 / r))
    a, b = CellArrays.from_result(spice, crossbar), CellArrays.from_result(nodal, crossbar)
    np.testing.assert_allclose(a.i_cell, b.i_cell, rtol=1e-5)
    np.testing.assert_allclose(a.row_drop, b.row_drop, rtol=1e-4, atol=1e-9)


def test_verilog_a_without_osdi_is_refused(tmp_path):
    net = tmp_path / "va.cir"
    res = cli("netlist", "crossbar", "--rows", "2", "--cols", "2", "--device", "veriloga", "-o", str(net))
    assert res.exit_code == 2
    assert "error:" in res.output and "OSDI" in res.output and not net.exists()
    res = cli("netlist", "crossbar", "--rows", "2", "--cols", "2", "--device", "veriloga",
              "--osdi", str(tmp_path / "missing.osdi"), "-o", str(net))
    assert res.exit_code == 2 and "not found" in res.output and not net.exists()


@pytest.mark.parametrize("item, message", [("r", "NAME=NUMBER"), ("r=missing.npy", "cannot read"),
                                           ("r=table.txt", ".npy or .csv"), ("bad name=1", "identifier")])
def test_bad_instance_parameters_are_refused(tmp_path, item, message):
    osdi = tmp_path / "res.osdi"
    osdi.write_bytes(b"")
    net = tmp_path / "x.cir"
    res = cli("netlist", "crossbar", "--rows", "2", "--cols", "2", "--device", "veriloga", "--osdi", str(osdi),
              "--module", "res_va", "--va-param", item, "-o", str(net))
    assert res.exit_code == 2 and message in res.output and not net.exists()


def test_parameter_table_of_wrong_shape_names_the_file(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((3, 3)))
    (tmp_path / "a.osdi").write_bytes(b"")
    data = {"rows": 2, "cols": 2, "cells": {"kind": "veriloga", "osdi_file": "a.osdi", "va_params": {"w": "w.npy"}}}
    with pytest.raises(CosimError, match=r"w.npy.*shape \(3, 3\)"):
        cfg.build_crossbar(cfg.parse_config(data), tmp_path)


def test_state_node_names_cannot_inject(tmp_path):
    (tmp_path / "a.osdi").write_bytes(b"")
    data = {"rows": 2, "cols": 2, "save": "cells",
            "cells": {"kind": "veriloga", "osdi_file": "a.osdi", "va_state_nodes": ["x)\n.control\nshell id"]}}
    with pytest.raises(NetlistError):
        cfg.render(cfg.parse_config(data), tmp_path)


def test_ir_drop_maps_from_solver_and_ngspice_agree(tmp_path):
    g = np.random.default_rng(4).uniform(1 / 75e3, 1 / 4.5e3, size=(8, 6))
    crossbar = Crossbar(LinearCells(g), r_row=2.0, r_col=3.0)
    spice = CellArrays.from_result(run_batch(read_netlist(crossbar, save="cells", spice_options=ACCURATE_OPTIONS)),
                                   crossbar)
    nodal = CellArrays.from_result(simulate(crossbar, save_nodes=True), crossbar)
    np.testing.assert_allclose(spice.row_drop, nodal.row_drop, rtol=1e-6)
    np.testing.assert_allclose(spice.col_rise, nodal.col_rise, rtol=1e-6)
    drop = nodal.at(0)["row_drop"]
    assert np.all(np.diff(drop, axis=1) > 0)  # rows lose more voltage further from the driver
    rise = nodal.at(0)["col_rise"]
    assert np.all(np.diff(rise, axis=0) < 0)  # columns sit higher further from the sense end
    figure = ir_drop_figure(nodal, tmp_path / "ir.png", title="8x6")
    assert figure.stat().st_size > 10_000


def test_irdrop_command_writes_figure_and_maps(tmp_path):
    toml = Path(__file__).parents[1] / "netlists" / "crossbar_read_4x4_1r.toml"
    maps = {}
    for backend in ("nodal", "ngspice"):
        res = cli("irdrop", "--config", str(toml), "--backend", backend, "-o", str(tmp_path / f"{backend}.png"),
                  "--csv", str(tmp_path / f"{backend}.csv"))
        assert res.exit_code == 0, res.output
        assert (tmp_path / f"{backend}.png").stat().st_size > 10_000
        maps[backend] = pd.read_csv(tmp_path / f"{backend}.csv")
    np.testing.assert_allclose(maps["nodal"]["v_row_V"], maps["ngspice"]["v_row_V"], rtol=1e-6)
    np.testing.assert_allclose(maps["nodal"]["i_cell_A"], maps["ngspice"]["i_cell_A"], rtol=1e-3)
    res = cli("irdrop", "--config", str(toml), "--backend", "xyz", "-o", str(tmp_path / "x.png"))
    assert res.exit_code == 2 and "nodal or ngspice" in res.output and not (tmp_path / "x.png").exists()


def test_one_transistor_cells_probe_the_device_node():
    g = np.random.default_rng(5).uniform(1 / 75e3, 1 / 4.5e3, size=(3, 4))
    crossbar = Crossbar(LinearCells(g), access="1t1r")
    cells = run_batch(read_netlist(crossbar, save="cells", spice_options=ACCURATE_OPTIONS)).cells(crossbar)
    assert np.all(cells.v_row[0] > cells.v_dev[0])  # the access transistor drops some voltage
    np.testing.assert_allclose(cells.i_cell[0], g * cells.v_cell[0], rtol=1e-6)


def test_values_from_files_cannot_inject(tmp_path):
    (tmp_path / "a.osdi").write_bytes(b"")
    evil = "1\n.control\nshell touch /tmp/pwned\n.endc"
    data = {"rows": 2, "cols": 2, "cells": {"kind": "veriloga", "osdi_file": "a.osdi", "va_params": {"r": evil}}}
    with pytest.raises(CosimError):
        cfg.render(cfg.parse_config(data), tmp_path)
    (tmp_path / "r.csv").write_text("1,2\n3,.control\n")
    data["cells"]["va_params"] = {"r": "r.csv"}
    with pytest.raises(CosimError, match="r.csv"):
        cfg.render(cfg.parse_config(data), tmp_path)
    for step in ({"kind": "write", "v_write": evil}, {"kind": "pwl", "duration": 1e-6, "rows": {"0": [[0, evil]]}}):
        with pytest.raises(CosimError, match="field"):
            cfg.parse_config({"rows": 2, "cols": 2, "bench": "sequence", "sequence": {"steps": [step]}})


def test_generative_cells_read_the_same_in_the_nodal_solver_and_ngspice(tmp_path):
    config = cfg.parse_config({"rows": 8, "cols": 8, "save": "cells", "cells": {"kind": "generative", "seed": 4,
                                                                               "lrs0": 1}})
    crossbar = cfg.build_crossbar(config, tmp_path)
    spice = run_batch(cfg.render(config, tmp_path)).cells(crossbar)
    nodal = simulate(crossbar, save_nodes=True).cells(crossbar)
    np.testing.assert_allclose(nodal.i_cell, spice.i_cell, rtol=1e-9)  # the equivalent holds each initial state
    assert spice.row_drop[0].max() > 1e-3  # LRS cells: millivolts of IR drop
