"""What a user sees from the ngspice backends: warnings that fit the netlist, each error line
once, the temporary netlist copy never named, branch currents named as currents, how far a
slow transient got, and the VACASK backend's limits stated where it is offered."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim.cli import app
from cosim.compile import compile_va
from cosim.errors import SimulationError, SimulationTimeout
from cosim.spice.batch import run_batch
from cosim.spice.netlist_io import read_netlist_file
from cosim.spice.pyspice_backend import run_pyspice
from cosim.spice.result import normalise_vector_name
from cosim.spice.worker import vector_key

DATA = Path(__file__).parent / "data" / "pyspice"
BAD_MODEL = "* bad\n.control\nset num_threads=1\n.endc\n.options klu\nV1 a 0 1\nR1 a 0 1k\nQ1 a b c nomodel\n.op\n.end\n"


def test_hand_written_netlist_warning_does_not_call_it_rendered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    netlist = tmp_path / "hand.cir"
    netlist.write_text("* hand written\nV1 a 0 1\nR1 a 0 1k\n.op\n.end\n")
    with caplog.at_level(logging.WARNING):
        read_netlist_file(netlist)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "hand.cir" in message and ".options klu" in message
    assert "rendered" not in message


def test_ngspice_error_line_is_printed_once_and_the_temp_copy_is_not_named(tmp_path: Path) -> None:
    netlist = tmp_path / "bad.cir"
    netlist.write_text(BAD_MODEL)
    result = CliRunner().invoke(app, ["run", str(netlist), "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    first = lines[0]
    assert first.startswith("error: ") and "bad.cir" in first
    reason = first.split(": ", 2)[-1].strip()
    assert reason and not any(line.strip(" |\t") == reason for line in lines[1:]), result.output
    assert "cosim-batch-" not in result.output and "in.cir" not in result.output


def test_text_netlist_errors_do_not_name_a_deleted_temp_file() -> None:
    with pytest.raises(SimulationError) as caught:
        run_batch("* t\nV1 a 0 1\nR1 a 0 1k\nX1 a b sub\n.op\n.end\n", timeout_s=60)
    assert "cosim-batch-" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("v(n1#flow(te,be))", "i(n1#flow(te,be))"), ("N1#flow(te,be)", "i(n1#flow(te,be))"),
     ("v(n1#x)", "v(n1#x)"), ("v1#branch", "i(v1)")],
)
def test_internal_branch_flows_are_named_as_currents(raw: str, expected: str) -> None:
    assert normalise_vector_name(raw) == expected


def test_shared_mode_names_internal_branch_flows_as_currents() -> None:
    assert vector_key("n1#flow(te,be)", 4) == "i(n1#flow(te,be))"
    assert vector_key("n1#flow(te,be)", 3) == "i(n1#flow(te,be))"


def test_both_ngspice_backends_report_the_branch_flow_as_a_current(tmp_path: Path) -> None:
    osdi = compile_va(DATA / "branch_res.va")
    text = (f"* branch\n.control\nset num_threads=1\npre_osdi {osdi}\n.endc\n.options klu\n"
            ".model m brva r=2k\nV1 a 0 1\nN1 a 0 m\n.op\n.end\n")
    for result in (run_batch(text, timeout_s=60), run_pyspice(text, timeout_s=60)):
        name = "i(n1#flow(te,be))"
        assert result[name][0] == pytest.approx(0.5e-3, rel=1e-9), result.backend
        assert result.plot().units[name] == "current", result.backend
        assert "v(n1#flow(te,be))" not in result.names


def test_transient_timeout_reports_how_far_it_got() -> None:
    with pytest.raises(SimulationTimeout) as caught:
        run_batch(DATA / "slow_tran.cir", timeout_s=3)
    message = str(caught.value)
    assert "transient reached t = " in message and "of 1e-06 s" in message, message
    assert "Initial Transient Solution" not in message  # no operating-point lines
    with pytest.raises(SimulationTimeout) as caught:  # its start time delays stored points
        run_batch(DATA / "hang.cir", timeout_s=2)
    assert "stored no point yet" in str(caught.value)


def test_transient_progress_callback_sees_the_simulated_time() -> None:
    seen: list[tuple[float, float]] = []
    with pytest.raises(SimulationTimeout):
        run_batch(DATA / "slow_tran.cir", timeout_s=3,
                  progress=lambda t, stop: seen.append((t, stop)))
    assert seen and all(stop == pytest.approx(1e-6) for _, stop in seen)
    assert 0 < seen[-1][0] < 1e-6
    assert [t for t, _ in seen] == sorted(t for t, _ in seen)


def test_vacask_limits_are_stated_in_the_run_help() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "VACASK" in result.output and "own netlist dialect" in result.output


def test_vacask_backend_refuses_ngspice_netlists_with_a_clear_error(tmp_path: Path) -> None:
    netlist = tmp_path / "n.cir"
    netlist.write_text(BAD_MODEL)
    result = CliRunner().invoke(app, ["run", str(netlist), "-o", str(tmp_path / "o.parquet"),
                                      "--backend", "vacask"])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "--backend batch" in result.output
