"""Crossbar netlists: templates, testbenches in ngspice, injection safety, examples, CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.optimize import brentq
from typer.testing import CliRunner

from cosim.cli import app
from cosim.compile import compile_va
from cosim.crossbar import Crossbar, LinearCells, PolynomialCells, Transistor, VerilogACells
from cosim.crossbar import config as cfg
from cosim.crossbar.examples import EXAMPLES_DIR, example_configs, render_example
from cosim.crossbar.netlist import ACCURATE_OPTIONS, WritePulse, read_netlist, write_netlist
from cosim.crossbar.solver import solve_many
from cosim.errors import CosimError, NetlistError
from cosim.paths import VERILOGA_DIR
from cosim.spice.batch import run_batch
from golden import assert_same_text_and_numbers

runner = CliRunner()


def all_kinds(shape=(3, 4)):
    g = np.full(shape, 1e-4)
    yield LinearCells(g)
    yield PolynomialCells(np.stack([np.full(shape, 1e-5), g, np.zeros(shape)]))
    yield VerilogACells(shape_=shape, model="rva", module="res_va", params={"r": 1 / g},
                        osdi_file=VERILOGA_DIR / "examples" / "res_va.osdi")


@pytest.mark.parametrize("access", ["1r", "1t1r"])
def test_every_netlist_carries_klu_and_one_thread(access):
    for cells in all_kinds():
        crossbar = Crossbar(cells, access=access)
        for text in (read_netlist(crossbar), write_netlist(crossbar, WritePulse(scheme="v3"))):
            lines = {line.strip() for line in text.splitlines()}
            assert ".options klu" in lines and "set num_threads=1" in lines
            assert text.count("\nRr") == 3 * 3 and text.count("\nRc") == 2 * 4
            cell_cards = [line for line in text.splitlines() if re.match(r"^[RBN]x\d+_\d+ ", line)]
            assert len(cell_cards) == 12
            assert (text.count("\nM") == 12) == (access == "1t1r")


def test_verilog_a_cells_run_in_ngspice_and_match_the_solver():
    rng = np.random.default_rng(2)
    resistance = rng.uniform(4.5e3, 75e3, size=(5, 4))
    osdi = compile_va(VERILOGA_DIR / "examples" / "res_va.va")
    va = VerilogACells(shape_=(5, 4), model="rva", module="res_va", params={"r": resistance}, osdi_file=osdi)
    inputs = rng.uniform(0, 0.2, size=5)
    text = read_netlist(Crossbar(va, r_row=2.0), inputs=inputs, spice_options=ACCURATE_OPTIONS)
    assert f"pre_osdi {osdi}" in text and "Nx4_3 r4_3 c4_3 rva r=" in text
    result = run_batch(text)
    spice = np.array([float(result[f"i(vsns{j})"][0]) for j in range(4)])
    nodal = solve_many(Crossbar(LinearCells(1 / resistance), r_row=2.0), inputs[None])[0]
    np.testing.assert_allclose(nodal, spice, rtol=1e-6)


def test_one_transistor_one_resistor_cell_follows_level1_equations():
    """1×1 1T1R: Vin → R_source → NMOS (gate at v_gate) → R → R_sense → 0 V, solved by hand."""
    t = Transistor(vto=0.5, kp=1e-4, w=2e-6, l=1e-6, v_gate=1.5)
    r_cell, r_source, r_sense, v_in = 5e3, 10.0, 20.0, 0.3
    crossbar = Crossbar(LinearCells(np.array([[1 / r_cell]])), access="1t1r", transistor=t,
                        r_source=r_source, r_sense=r_sense)
    result = run_batch(read_netlist(crossbar, inputs=np.array([v_in]), spice_options=ACCURATE_OPTIONS))
    beta = t.kp * t.w / t.l

    def mismatch(current: float) -> float:
        v_drain, v_source = v_in - current * r_source, current * (r_cell + r_sense)
        v_gs, v_ds = t.v_gate - v_source, v_drain - v_source
        assert v_ds < v_gs - t.vto  # linear region
        return beta * (v_gs - t.vto - v_ds / 2) * v_ds - current

    expected = brentq(mismatch, 0.0, v_in / (r_cell + r_source + r_sense), xtol=1e-18)
    assert float(result["i(vsns0)"][0]) == pytest.approx(expected, rel=1e-6)
    assert expected < v_in / (r_cell + r_source + r_sense)  # the transistor adds resistance


@pytest.mark.parametrize("scheme, other_row, other_col", [("v2", 0.5, 0.5), ("v3", 1 / 3, 2 / 3)])
def test_write_bench_applies_half_select_scheme(scheme, other_row, other_col):
    v_write, shape = 1.2, (3, 4)
    crossbar = Crossbar(LinearCells(np.full(shape, 1e-5)), r_row=0.01, r_col=0.01, r_source=0.01, r_sense=0.01)
    pulse = WritePulse(row=1, col=2, v_write=v_write, scheme=scheme, width=1e-6, tstep=2e-8)
    result = run_batch(write_netlist(crossbar, pulse, save="all"))
    time = result["time"]
    top = np.argmin(np.abs(time - (pulse.delay + pulse.rise + pulse.width / 2)))
    assert time[-1] == pytest.approx(pulse.stop_time)
    for i in range(shape[0]):
        for j in range(shape[1]):
            across = float(result[f"v(r{i}_{j})"][top] - result[f"v(c{i}_{j})"][top])
            row_level = v_write if i == 1 else other_row * v_write
            col_level = 0.0 if j == 2 else other_col * v_write
            assert across == pytest.approx(row_level - col_level, abs=1e-4 * v_write), (i, j)
    before = np.argmin(np.abs(time - pulse.delay / 2))
    assert abs(float(result["v(r1_2)"][before])) < 1e-9  # nothing before the pulse


# --- injection --------------------------------------------------------------------------
BAD_NAMES = ["rram\n.control\nshell echo pwned\n.endc", "x y", "a;b", "1abc", "", "r0=1 .end"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_identifiers_cannot_inject_cards(bad):
    shape = (2, 2)
    with pytest.raises(NetlistError):
        VerilogACells(shape_=shape, model=bad, module="res_va")
    with pytest.raises(NetlistError):
        VerilogACells(shape_=shape, model="rva", module="res_va", params={bad: 1.0})
    with pytest.raises(NetlistError):
        Transistor(model=bad)
    with pytest.raises(NetlistError):
        read_netlist(Crossbar(LinearCells(np.ones(shape) * 1e-4)), spice_options={bad: 1.0})


def test_values_from_toml_cannot_inject(tmp_path):
    evil = '"1\\n.control\\nshell touch /tmp/pwned\\n.endc"'
    for snippet in (f"[wires]\nr_row = {evil}\n", f"[read]\ninputs = [{evil}, 0.1]\n", f"[cells]\nresistance = {evil}\n"):
        path = tmp_path / "evil.toml"
        path.write_text("rows = 2\ncols = 2\n" + snippet)
        with pytest.raises(CosimError, match="evil.toml: field"):
            cfg.parse_config(cfg.load_toml(path), str(path))
    path.write_text(f'rows = 2\ncols = 2\n[cells]\nkind = "veriloga"\nva_model = {evil}\n')
    with pytest.raises(NetlistError):
        cfg.render(cfg.parse_config(cfg.load_toml(path)), tmp_path)
    path.write_text('rows = 2\ncols = 2\n[cells]\nkind = "veriloga"\nosdi_file = "/tmp/a b;.end"\n')
    with pytest.raises(NetlistError, match="path"):
        cfg.render(cfg.parse_config(cfg.load_toml(path)), tmp_path)


def test_cli_refuses_injection_and_leaves_no_file(tmp_path):
    out = tmp_path / "x.cir"
    result = runner.invoke(app, ["netlist", "crossbar", "--rows", "2", "--cols", "2", "--cell", "1r\n.end", "-o", str(out)])
    assert result.exit_code == 2 and "error:" in result.output and not out.exists()
    result = runner.invoke(app, ["netlist", "crossbar", "--rows", "0", "--cols", "2", "-o", str(out)])
    assert result.exit_code == 2 and "rows" in result.output and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_flags_and_toml(tmp_path):
    toml = tmp_path / "xbar.toml"
    toml.write_text('rows = 3\ncols = 2\nbench = "write"\n[wires]\nr_row = 2.5\n[write]\nscheme = "v3"\n')
    out = tmp_path / "x.cir"
    result = runner.invoke(app, ["netlist", "crossbar", "--config", str(toml), "--r-col", "4", "--cols", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Rr0_0 r0_0 r0_1 2.5" in text and "Rc0_3 c0_3 c1_3 4.0" in text and ".tran" in text
    assert "Vsns3 s3 0 PULSE(0 1.0 " in text  # 2V/3 of the default 1.5 V on unselected columns


# --- examples ---------------------------------------------------------------------------
def test_examples_regenerate():
    configs = example_configs()
    assert len(configs) >= 4
    for toml in configs:
        stored = toml.with_suffix(".cir")
        assert stored.exists(), f"{stored} missing: run python -m cosim.crossbar.examples"
        assert_same_text_and_numbers(render_example(toml), stored.read_text(), stored.name)
    assert (EXAMPLES_DIR / "README.md").exists()


def test_golden_comparison_tolerates_last_bits_only():
    stored = (EXAMPLES_DIR / "crossbar_read_4x4_1r.cir").read_text()
    assert_same_text_and_numbers(stored.replace("18992.4558687", "18992.4558688"), stored, "ok")
    with pytest.raises(AssertionError):
        assert_same_text_and_numbers(stored.replace("18992.4558687", "18992.46"), stored, "changed")
    with pytest.raises(AssertionError):
        assert_same_text_and_numbers(stored.replace("Rx0_0 r0_0", "Rx0_0 r0_1"), stored, "rewired")


@pytest.mark.parametrize("value", [1.6187659055887392e-05, 18992.45586874154, 4551.0 / 3.0, 0.1 + 0.2])
def test_last_bit_differences_print_the_same(value):
    """A result whose last bit differs between CPUs prints the same netlist text."""
    g = np.array([[value, 1e-4], [2e-5, 3e-5]])
    for neighbour in (np.nextafter(value, np.inf), np.nextafter(value, -np.inf)):
        g2 = g.copy()
        g2[0, 0] = neighbour
        cells = PolynomialCells(np.stack([g, g, np.zeros_like(g)]))
        cells2 = PolynomialCells(np.stack([g2, g2, np.zeros_like(g2)]))
        assert read_netlist(Crossbar(cells)) == read_netlist(Crossbar(cells2))
        assert read_netlist(Crossbar(LinearCells(g))) == read_netlist(Crossbar(LinearCells(g2)))


def test_example_read_netlists_run_in_ngspice():
    for toml in example_configs():
        text = toml.with_suffix(".cir").read_text()
        if "\n.op\n" in text:
            result = run_batch(text)
            assert float(result["i(vsns0)"][0]) > 0
