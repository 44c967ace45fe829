"""Batch ngspice backend: OSDI devices against analytic answers, timeouts, failures, CLI."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from typer.testing import CliRunner

from cosim.cli import app
from cosim.compile import compile_va
from cosim.errors import ConvergenceError, NetlistError, SimulationError, SimulationTimeout
from cosim.paths import VERILOGA_DIR
from cosim.spice.batch import run_batch, scan_log
from cosim.spice.render import check_netlist_settings, environment

DATA = Path(__file__).parent / "data" / "batch"
VT = 0.025852  # thermal voltage default of diode_va (V)


@pytest.fixture(scope="module")
def osdi() -> dict[str, Path]:
    """Compiled example devices (compiled once per module, private cache)."""
    return {
        name: compile_va(VERILOGA_DIR / "examples" / f"{name}.va")
        for name in ("res_va", "diode_va")
    }


def render_test(template: str, **context: object) -> str:
    text = environment(str(DATA)).get_template(template).render(**context)
    check_netlist_settings(text, template)
    return text


def divider(osdi: dict[str, Path], **context: object) -> str:
    values = dict(title="res_va divider", osdi=osdi["res_va"], model="rva", sweep=None)
    values.update(context)
    return render_test("osdi_divider.cir.j2", **values)


def test_verilog_a_resistor_solved_exactly(osdi: dict[str, Path]) -> None:
    vin, r1, r2 = 1.3, 1234.5, 987.25
    result = run_batch(divider(osdi, vin=vin, r1=r1, r2=r2), timeout_s=60)
    assert result.backend == "batch"
    assert result["v(out)"][0] == pytest.approx(vin * r2 / (r1 + r2), rel=1e-12)
    assert result["i(v1)"][0] == pytest.approx(-vin / (r1 + r2), rel=1e-12)
    assert result.elapsed_s > 0 and result.meta["returncode"] == 0


def test_verilog_a_resistor_in_a_dc_sweep(osdi: dict[str, Path]) -> None:
    r1, r2 = 1e3, 3e3
    netlist = divider(osdi, vin=0.0, r1=r1, r2=r2, sweep=(-1.0, 1.0, 0.25))
    plot = run_batch(netlist, timeout_s=60).plot()
    v_in = plot.vectors["v(v-sweep)"]
    np.testing.assert_allclose(v_in, np.linspace(-1.0, 1.0, 9), atol=1e-15)
    np.testing.assert_allclose(plot.vectors["v(out)"], v_in * r2 / (r1 + r2), rtol=1e-12, atol=1e-15)


def test_verilog_a_diode_matches_the_shockley_equation(osdi: dict[str, Path]) -> None:
    vin, r, is_, area = 5.0, 1e3, 1e-14, 2.0
    netlist = render_test(
        "osdi_diode.cir.j2", title="diode_va", osdi=osdi["diode_va"], vin=vin, r=r, is_=is_, area=area
    )
    result = run_batch(netlist, timeout_s=60)

    def kcl(v: float) -> float:
        return (vin - v) / r - area * is_ * math.expm1(v / VT)

    expected = brentq(kcl, 0.0, vin, xtol=1e-15, rtol=1e-15)
    assert result["v(a)"][0] == pytest.approx(expected, rel=1e-9)
    assert -result["i(v1)"][0] == pytest.approx((vin - expected) / r, rel=1e-9)


def test_hanging_job_is_killed_at_its_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(SimulationTimeout, match="exceeded its 2 s limit") as caught:
        run_batch(DATA / "hang.cir", timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 10.0
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.killpg(caught.value.pid, 0)


def test_non_converging_netlist_gives_a_clear_error() -> None:
    with pytest.raises(ConvergenceError) as caught:
        run_batch(DATA / "no_solution.cir", timeout_s=60)
    message = str(caught.value)
    assert "no_solution.cir did not converge" in message
    assert 'trouble with node "out"' in message.splitlines()[0]
    assert "Note:" not in message


def test_unknown_instance_parameter_is_a_simulation_error(osdi: dict[str, Path]) -> None:
    netlist = divider(osdi, vin=1.0, r1=1e3, r2=1e3).replace(" r=", " rr=")
    with pytest.raises(SimulationError, match=r"unknown parameter \(rr\)") as caught:
        run_batch(netlist, timeout_s=60)
    assert not isinstance(caught.value, ConvergenceError)


def test_missing_osdi_library_fails_although_ngspice_exits_zero(tmp_path: Path) -> None:
    netlist = (
        f"* missing lib\n.control\nset num_threads=1\npre_osdi {tmp_path}/none.osdi\n.endc\n"
        ".options klu\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n"
    )
    with pytest.raises(SimulationError, match="none.osdi"):
        run_batch(netlist, timeout_s=60)


def test_files_are_kept_on_request(osdi: dict[str, Path], tmp_path: Path) -> None:
    netlist = divider(osdi, vin=1.0, r1=1e3, r2=1e3)
    result = run_batch(netlist, timeout_s=60, workdir=tmp_path / "run")
    folder = Path(str(result.meta["workdir"]))
    assert folder == (tmp_path / "run").resolve()
    assert {p.name for p in folder.iterdir()} >= {"in.cir", "out.raw", "ngspice.out", "ngspice.err"}
    assert (folder / "in.cir").read_text() == netlist


def test_temporary_folder_is_removed(osdi: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    run_batch(divider(osdi, vin=1.0, r1=1e3, r2=1e3), timeout_s=60)
    assert list(tmp_path.iterdir()) == []


def test_scan_log_ignores_notes_and_recovered_warnings() -> None:
    recovered = "Note: Starting dynamic gmin stepping\nWarning: singular matrix: check node x\n"
    verdict = scan_log(recovered, returncode=0)
    assert not verdict.failed and not verdict.convergence
    assert all(not line.startswith("Note:") for line in verdict.lines)
    failed = scan_log(recovered + "doAnalyses: TRAN:  Timestep too small; time = 1e-9\n", 1)
    assert failed.failed and failed.convergence
    assert failed.reason.startswith("doAnalyses: TRAN:  Timestep too small")
    assert "singular matrix" in failed.reason
    assert scan_log("Error: unknown subckt: x1 a b foo\n", 0).failed


def test_empty_netlist_is_refused() -> None:
    with pytest.raises(SimulationError, match="empty netlist"):
        run_batch("  \n", timeout_s=5)


def test_cli_run_writes_long_parquet(osdi: dict[str, Path], tmp_path: Path) -> None:
    netlist = tmp_path / "div.cir"
    netlist.write_text(divider(osdi, vin=2.0, r1=1e3, r2=3e3))
    out = tmp_path / "div.parquet"
    result = CliRunner().invoke(app, ["run", str(netlist), "-o", str(out), "--timeout", "60"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    values = dict(zip(frame["vector"], frame["value"]))
    assert values["v(out)"] == pytest.approx(1.5, rel=1e-12)
    assert set(frame.columns) >= {"plot", "analysis", "point", "vector", "value"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_run_backends_agree(osdi: dict[str, Path], tmp_path: Path) -> None:
    """`cosim run` through the subprocess and the in-process backend: same vectors."""
    netlist = tmp_path / "div.cir"
    netlist.write_text(divider(osdi, vin=0.0, r1=1e3, r2=3e3, sweep=(-1.0, 1.0, 0.5)))
    frames = {}
    for backend in ("batch", "pyspice"):
        out = tmp_path / f"{backend}.parquet"
        result = CliRunner().invoke(app, ["run", str(netlist), "-o", str(out), "--backend", backend])
        assert result.exit_code == 0, result.output
        frames[backend] = pd.read_parquet(out).set_index(["plot", "vector", "point"])["value"]
    batch, pyspice = frames["batch"].sort_index(), frames["pyspice"].sort_index()
    assert list(batch.index) == list(pyspice.index)
    np.testing.assert_allclose(pyspice.to_numpy(), batch.to_numpy(), rtol=1e-12, atol=1e-18)
    assert batch.loc[(0, "v(out)", 4)] == pytest.approx(0.75, rel=1e-12)


def test_cli_run_rejects_unknown_backend(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", str(DATA / "no_solution.cir"), "-o", str(tmp_path / "x.parquet"), "--backend", "spectre"]
    )
    assert result.exit_code != 0 and not (tmp_path / "x.parquet").exists()


def test_cli_run_failure_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "bad.parquet"
    result = CliRunner().invoke(
        app, ["run", str(DATA / "no_solution.cir"), "-o", str(out), "--timeout", "60"]
    )
    assert result.exit_code == 2
    assert "did not converge" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_cli_run_missing_netlist(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.cir"), "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2
    assert "nope.cir" in result.output


def test_read_netlist_file_refuses_binary(tmp_path: Path) -> None:
    from cosim.spice.netlist_io import read_netlist_file

    bad = tmp_path / "bin.cir"
    bad.write_bytes(b"* t\n\xff\xfe\n")
    with pytest.raises(NetlistError, match="not UTF-8"):
        read_netlist_file(bad)
