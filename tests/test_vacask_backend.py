"""VACASK backend: dividers against analytic answers and ngspice, errors, timeouts, names, CLI."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.compile import compile_va
from cosim.errors import ConvergenceError, SimulationError, SimulationTimeout
from cosim.paths import VERILOGA_DIR
from cosim.spice.batch import run_batch
from cosim.spice.render import check_netlist_settings, environment
from cosim.spice.vacask import (
    run_vacask,
    scan_vacask_log,
    statement_names,
    vacask_vector_name,
)

DATA = Path(__file__).parent / "data" / "vacask"
VIN, R1, R2 = 1.3, 1234.5, 987.25  # V, ohm, ohm
SWEEP = (-1.0, 1.0, 0.25)  # V: from, to, step


@pytest.fixture(scope="module")
def res_va() -> Path:
    return compile_va(VERILOGA_DIR / "examples" / "res_va.va")


def divider(dialect: str, osdi: Path | None, **context: object) -> str:
    """The divider netlist in VACASK (``sim``) or ngspice (``cir``) form."""
    values: dict[str, object] = {
        "title": "vacask divider", "vin": VIN, "r1": R1, "r2": R2, "osdi": osdi, "model": "rva",
        "sweep": None,
    }
    values.update(context)
    name = f"divider.{dialect}.j2"
    text = environment(str(DATA)).get_template(name).render(**values)
    if dialect == "cir":
        check_netlist_settings(text, name)
    return text


@pytest.mark.parametrize("lower_leg", ["builtin", "verilog-a"])
def test_divider_equals_analytic_answer_and_ngspice(lower_leg: str, res_va: Path) -> None:
    osdi = res_va if lower_leg == "verilog-a" else None
    result = run_vacask(divider("sim", osdi), timeout_s=60)
    assert result.backend == "vacask" and result.meta["analyses"] == ["op1"]
    assert result.plot().units["v(out)"] == "voltage" and result.plot().units["i(v1)"] == "current"
    v_out, i_v1 = VIN * R2 / (R1 + R2), -VIN / (R1 + R2)
    assert result["v(out)"][0] == pytest.approx(v_out, rel=1e-9)
    assert result["v(in)"][0] == pytest.approx(VIN, rel=1e-12)
    assert result["i(v1)"][0] == pytest.approx(i_v1, rel=1e-9)
    spice = run_batch(divider("cir", osdi), timeout_s=60)
    for name in ("v(out)", "v(in)", "i(v1)"):
        assert result[name][0] == pytest.approx(spice[name][0], rel=1e-9), name
    assert result.elapsed_s > 0 and result.meta["returncode"] == 0


def test_verilog_a_divider_in_a_dc_sweep_matches_ngspice(res_va: Path) -> None:
    result = run_vacask(divider("sim", res_va, sweep=SWEEP), timeout_s=60)
    assert result.meta["analyses"] == ["op1", "dc1"] and len(result.plots) == 2
    sweep = result.plot(1)
    v_in = sweep.vectors["vsweep"]
    assert sweep.units["vsweep"] == "sweep"
    np.testing.assert_allclose(v_in, np.linspace(-1.0, 1.0, 9), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sweep.vectors["v(in)"], v_in, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sweep.vectors["v(out)"], v_in * R2 / (R1 + R2), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(sweep.vectors["i(v1)"], -v_in / (R1 + R2), rtol=1e-9, atol=1e-18)
    plots = run_batch(divider("cir", res_va, sweep=SWEEP), timeout_s=60).plots
    spice = next(plot.vectors for plot in plots if "v(v-sweep)" in plot.vectors)
    np.testing.assert_allclose(spice["v(v-sweep)"], v_in, rtol=0, atol=1e-12)
    for name, atol in (("v(out)", 1e-15), ("i(v1)", 1e-18)):  # atol: the sweep's 0 V is ~1e-17 V
        np.testing.assert_allclose(sweep.vectors[name], spice[name], rtol=1e-9, atol=atol)


def test_syntax_error_names_the_netlist_line() -> None:
    with pytest.raises(SimulationError) as caught:
        run_vacask(DATA / "syntax_error.sim", timeout_s=60)
    assert not isinstance(caught.value, ConvergenceError)
    first = str(caught.value).splitlines()[0]
    assert "syntax_error.sim failed (exit 1): Parser syntax error" in first
    assert "line 4, column" in first
    assert "This is vacask" not in str(caught.value)  # banner not quoted


def test_unknown_parameter_fails_although_vacask_exits_zero_for_analyses(res_va: Path) -> None:
    netlist = divider("sim", res_va).replace(" r=987.25", " rr=987.25")
    with pytest.raises(SimulationError, match="Parameter 'rr' not found"):
        run_vacask(netlist, timeout_s=60)
    with pytest.raises(SimulationError, match=r"Analysis type 'opp' not found.*netlist text, line"):
        run_vacask(divider("sim", None).replace("analysis op1 op", "analysis op1 opp"), timeout_s=60)


def test_missing_osdi_library_is_named(tmp_path: Path) -> None:
    netlist = divider("sim", tmp_path / "none.osdi")
    with pytest.raises(SimulationError, match="none.osdi' not found"):
        run_vacask(netlist, timeout_s=60)


def test_floating_node_is_a_convergence_error() -> None:
    with pytest.raises(ConvergenceError) as caught:
        run_vacask(DATA / "floating.sim", timeout_s=60)
    first = str(caught.value).splitlines()[0]
    assert "floating.sim did not converge: Analysis 'op1' aborted." in first
    assert "zero pivot @ node 'b'" in first and "floating nodes" in first


def test_hanging_run_is_killed_at_its_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(SimulationTimeout, match="exceeded its 2 s limit") as caught:
        run_vacask(DATA / "hang.sim", timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 10.0
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.killpg(caught.value.pid, 0)


def test_relative_include_and_load_resolve_next_to_the_file() -> None:
    result = run_vacask(DATA / "with_include.sim", timeout_s=60)
    assert result["v(b)"][0] == pytest.approx(1.5, rel=1e-12)
    assert not list(DATA.glob("*.raw"))  # raw files went to the run folder, not next to it


def test_files_are_kept_and_stale_raw_files_are_not_reused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "op1.raw").write_text("stale")  # a leftover must never pass for a result
    netlist = divider("sim", None)
    result = run_vacask(netlist, timeout_s=60, workdir=folder)
    assert Path(str(result.meta["workdir"])) == folder.resolve()
    assert {p.name for p in folder.iterdir()} >= {"in.sim", "op1.raw", "vacask.out", "vacask.err"}
    assert (folder / "in.sim").read_text().rstrip("\n") == netlist.rstrip("\n")
    assert result["v(out)"][0] == pytest.approx(VIN * R2 / (R1 + R2), rel=1e-9)


def test_temporary_folder_is_removed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    run_vacask(divider("sim", None), timeout_s=60)
    with pytest.raises(SimulationError):
        run_vacask(DATA / "syntax_error.sim", timeout_s=60)
    assert list(tmp_path.iterdir()) == []


def test_empty_netlist_is_refused() -> None:
    with pytest.raises(SimulationError, match="empty netlist"):
        run_vacask("  \n", timeout_s=5)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("out", ("v(out)", "voltage")),
        ("N1:A", ("v(n1:a)", "voltage")),
        ("v1:flow(br)", ("i(v1)", "current")),
        ("x1:vd:flow(br)", ("i(x1:vd)", "current")),
        ("l1:flow(flux)", ("i(l1:flux)", "current")),
        ("r1.i", ("@r1[i]", "notype")),
        ("x1:r2.gd", ("@x1:r2[gd]", "notype")),
        ("time", ("time", "time")),
        ("frequency", ("frequency", "frequency")),
        ("vsweep", ("vsweep", "sweep")),
    ],
)
def test_vector_names_follow_the_other_backends(raw: str, expected: tuple[str, str]) -> None:
    assert vacask_vector_name(raw, frozenset({"vsweep"})) == expected


def test_statement_names_skip_comments_and_title() -> None:
    text = (
        "analysis in the title line\n// analysis old op\nsweep s1 instance=\"v1\" parameter=\"dc\""
        " values=[1, 2]\n  analysis dc1 op // analysis x op\nanalysis tr tran stop=1n\n"
    )
    assert statement_names(text) == (["dc1", "tr"], frozenset({"s1"}))


def test_log_scan_keeps_recovered_steps_and_ignored_lookups() -> None:
    recovered = (
        "This is vacask unknown.\nSolver failed, will reject point.\n"
        "Nodeset 'x' not found. Ignored.\nInitial condition 'y' not found. Zero initial "
        "conditions applied.\n"
    )
    verdict = scan_vacask_log(recovered, 0)
    assert not verdict.failed and "This is vacask unknown." not in verdict.lines
    failed = scan_vacask_log(recovered + "Timestep too small. Transient analysis aborted.\n", 0)
    assert failed.failed and failed.convergence
    assert failed.reason.startswith("Timestep too small. Transient analysis aborted.")
    assert scan_vacask_log("", -9).reason == "vacask was killed by signal 9"


def test_cli_run_dispatches_sim_files_to_vacask(res_va: Path, tmp_path: Path) -> None:
    netlist = tmp_path / "div.sim"
    netlist.write_text(divider("sim", res_va, vin=2.0, r1=1e3, r2=3e3))
    frames = {}
    for extra in ([], ["--backend", "vacask"]):
        out = tmp_path / f"div{len(extra)}.parquet"
        result = CliRunner().invoke(app, ["run", str(netlist), "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert "(vacask," in result.output
        frames[len(extra)] = pd.read_parquet(out)
    pd.testing.assert_frame_equal(frames[0], frames[2])
    values = dict(zip(frames[0]["vector"], frames[0]["value"]))
    assert values["v(out)"] == pytest.approx(1.5, rel=1e-9)
    assert values["i(v1)"] == pytest.approx(-2.0 / 4e3, rel=1e-9)


def test_cli_run_vacask_failure_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "bad.parquet"
    result = CliRunner().invoke(app, ["run", str(DATA / "syntax_error.sim"), "-o", str(out)])
    assert result.exit_code == 2
    assert "Parser syntax error" in result.output and "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_ac_of_an_rc_lowpass_in_a_subcircuit() -> None:
    result = run_vacask(DATA / "rc_lowpass.sim", timeout_s=60)
    assert result.meta["analyses"] == ["op1", "ac1"]
    plot = result.plot()
    f = plot.vectors["frequency"]
    assert f.dtype == np.float64 and plot.units["frequency"] == "frequency"
    np.testing.assert_allclose(f, np.logspace(3, 7, 21), rtol=1e-12)
    h = 1.0 / (1.0 + 2j * np.pi * f * 1e3 * 1e-9)  # R = 1 kOhm, C = 1 nF
    np.testing.assert_allclose(plot.vectors["v(out)"], h, rtol=1e-9)
    # subcircuit names keep VACASK's ':' separator: probe source x1:vprobe, node x1:mid
    np.testing.assert_allclose(plot.vectors["i(x1:vprobe)"], (1.0 - h) / 1e3, rtol=1e-9)
    np.testing.assert_allclose(plot.vectors["v(x1:mid)"], 1.0, rtol=1e-12)
    assert plot.units["i(x1:vprobe)"] == "current"
