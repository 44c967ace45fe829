"""User mistakes end in one `error:` line and exit status 2, never a traceback or partial output."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cosim.commands._guard as guard
from cosim.cli import app
from cosim.paths import DATA_DIR, NETLISTS_DIR

runner = CliRunner()


def fails_cleanly(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "error:" in result.output and "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output
    return result.output


@pytest.fixture
def cycles_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    result = runner.invoke(app, ["synth", "--devices", "3", "--cycles", "25", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_output_file_that_is_a_folder(tmp_path: Path, cycles_csv: Path) -> None:
    folder = tmp_path / "existing"
    folder.mkdir()
    for args in (["fit", str(cycles_csv), "-o", str(folder)],
                 ["run", str(NETLISTS_DIR / "crossbar_read_4x4_1r.cir"), "-o", str(folder)],
                 ["synth", "-o", str(folder)],
                 ["va", "-o", str(folder)],
                 ["netlist", "crossbar", "--rows", "2", "--cols", "2", "-o", str(folder)],
                 ["model", "import-synaptogen", str(cycles_csv), "-o", str(folder)]):
        fails_cleanly(args, f"{folder}: is a folder")
    assert list(folder.iterdir()) == []


def test_output_folder_that_is_a_file(tmp_path: Path, cycles_csv: Path) -> None:
    model = tmp_path / "m.json"
    fails_cleanly(["fit", str(cycles_csv), "-o", str(model), "--report", str(cycles_csv)],
                  "--report", "is a file")
    assert not model.exists()  # checked before the fit, so no model was written either
    fails_cleanly(["batch", str(DATA_DIR / "sweeps" / "example.toml"), "-o", str(cycles_csv)],
                  "--out", "is a file")
    fails_cleanly(["synth", "-o", str(cycles_csv / "x.csv")], "is a file, not a folder")


def test_existing_output_file_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "x.cir"
    out.write_text("old")
    result = runner.invoke(app, ["netlist", "crossbar", "--rows", "2", "--cols", "2", "-o", str(out)])
    assert result.exit_code == 0 and out.read_text().startswith("*")


def test_negative_seeds(tmp_path: Path, cycles_csv: Path) -> None:
    out = tmp_path / "x.cir"
    fails_cleanly(["netlist", "crossbar", "--rows", "2", "--cols", "2", "--random-seed", "-1",
                   "-o", str(out)], "random_seed", "greater than or equal to 0")
    fails_cleanly(["mdm", "--rows", "4", "--cols", "4", "--seed", "-1"], "--seed must be in")
    fails_cleanly(["fit", str(cycles_csv), "-o", str(out), "--seed", "-1"], "--seed must be in")
    assert not out.exists()


def test_non_utf8_sweep_file(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_bytes(b'name = "x"\n# caf\xe9\n')
    fails_cleanly(["batch", str(sweep), "-o", str(tmp_path / "out")], "sweep.toml", "not UTF-8")
    assert not (tmp_path / "out").exists()


def test_huge_array_fails_before_work_with_an_estimate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(guard, "available_memory_bytes", lambda: 2_000_000_000)
    out = tmp_path / "x.cir"
    fails_cleanly(["netlist", "crossbar", "--rows", "4096", "--cols", "4096", "-o", str(out)],
                  "4096x4096 netlist", "GB of memory", "2.0 GB is available")
    fails_cleanly(["mdm", "--rows", "4096", "--cols", "4096"], "4096x4096", "GB of memory")
    config = tmp_path / "big.toml"
    config.write_text("rows = 4096\ncols = 4096\n")
    fails_cleanly(["irdrop", "--config", str(config), "-o", str(tmp_path / "ir.png")],
                  "4096x4096 crossbar", "GB of memory")
    assert not out.exists() and not (tmp_path / "ir.png").exists()


def test_memory_error_becomes_an_error_line(monkeypatch) -> None:
    def exhausted(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr("cosim.crossbar.config.render", exhausted)
    fails_cleanly(["netlist", "crossbar", "--rows", "2", "--cols", "2", "-o", "/tmp/never.cir"],
                  "out of memory")


def test_real_bugs_keep_their_traceback(monkeypatch) -> None:
    def bug(*_args, **_kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("cosim.crossbar.config.render", bug)
    result = runner.invoke(app, ["netlist", "crossbar", "--rows", "2", "--cols", "2", "-o", "/tmp/never.cir"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_traceback_on_request(tmp_path: Path, monkeypatch) -> None:
    from cosim.errors import CosimError

    monkeypatch.setenv("COSIM_TRACEBACK", "1")
    result = runner.invoke(app, ["fit", str(tmp_path / "in.csv"), "-o", str(tmp_path)])
    assert isinstance(result.exception, CosimError) and "is a folder" in str(result.exception)


def test_every_command_is_guarded() -> None:
    def callbacks(typer_app):
        for info in typer_app.registered_commands:
            yield info.callback
        for group in typer_app.registered_groups:
            yield from callbacks(group.typer_instance)

    found = list(callbacks(app))
    assert len(found) >= 10 and all(getattr(cb, "__cosim_guarded__", False) for cb in found)
