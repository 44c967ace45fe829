"""Long commands show rich progress on a terminal's stderr, and nothing in pipes or logs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cosim.cli import app


def _invoke(args: list[str], terminal: bool):
    env = {"TTY_COMPATIBLE": "1" if terminal else "0", "COLUMNS": "120"}
    return CliRunner().invoke(app, args, env=env)


def test_synth_shows_a_device_bar_on_a_terminal_only(tmp_path: Path) -> None:
    quiet = _invoke(["synth", "--devices", "40", "--cycles", "5", "-o", str(tmp_path / "a.csv")], False)
    shown = _invoke(["synth", "--devices", "40", "--cycles", "5", "-o", str(tmp_path / "b.csv")], True)
    assert quiet.exit_code == 0 and shown.exit_code == 0, (quiet.output, shown.output)
    assert "synthesizing" not in quiet.output
    assert "synthesizing" in shown.output and "40/40" in shown.output
    # the progress display does not change the data
    assert pd.read_csv(tmp_path / "a.csv").equals(pd.read_csv(tmp_path / "b.csv"))


def test_fit_and_report_steps_are_shown(tmp_path: Path) -> None:
    data = tmp_path / "m.csv"
    assert _invoke(["synth", "--devices", "6", "--cycles", "60", "-o", str(data)], False).exit_code == 0
    out = _invoke(["fit", str(data), "-o", str(tmp_path / "m.json"), "--report", str(tmp_path / "r"),
                   "--max-order", "2"], True)
    assert out.exit_code == 0, out.output
    assert "reading, checking and fitting" in out.output
    assert "writing the report" in out.output
    assert (tmp_path / "r" / "report.md").exists()


def test_s4d_bar_stays_in_logs_unless_quiet_and_run_bar_shows_the_simulated_time(monkeypatch, capsys) -> None:
    """`cosim s4d`'s bar stays as a record off a terminal (not with --quiet); `cosim run`'s
    transient bar shows the simulated time in place of done/total."""
    from cosim.commands._progress import stepping, tracking

    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    for quiet in (False, True):
        with stepping("s4d", 2, quiet=quiet) as step:
            step("first")
            step("writing the report", 0)
            step("done")
        err = capsys.readouterr().err
        assert ("s4d done" in err and "2/2" in err) is not quiet
    with tracking("n.cir .tran", lambda t, stop: f"t = {t:.3g} of {stop:.3g} s") as show:
        show(5e-7, 1e-6)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    with tracking("n.cir .tran", lambda t, stop: f"t = {t:.3g} of {stop:.3g} s") as show:
        show(5e-7, 1e-6)
    assert "n.cir .tran" in (err := capsys.readouterr().err) and "t = 5e-07 of 1e-06 s" in err
