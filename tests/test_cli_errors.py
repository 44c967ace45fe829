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


def test_figure_with_an_unknown_suffix_is_refused_before_work(tmp_path: Path) -> None:
    """`-o map.txt` used to end in a matplotlib traceback after the simulation ran."""
    config = tmp_path / "small.toml"
    config.write_text("rows = 3\ncols = 3\n")
    csv = tmp_path / "maps.csv"
    fails_cleanly(["irdrop", "--config", str(config), "-o", str(tmp_path / "map.txt"), "--csv", str(csv)],
                  "--output", "map.txt", ".png, .pdf or .svg")
    fails_cleanly(["library", "iv", "vteam", "-o", str(tmp_path / "iv.txt")], "iv.txt", ".png, .pdf or .svg")
    assert not csv.exists() and not (tmp_path / "map.txt").exists() and not (tmp_path / "iv.txt").exists()


def test_errors_found_while_building_from_a_config_name_the_file(tmp_path: Path) -> None:
    """Checks that run after parsing (cell range, step inputs, missing OSDI) now name the TOML."""
    config = tmp_path / "seq.toml"
    config.write_text('rows = 4\ncols = 4\nbench = "sequence"\n[[sequence.steps]]\nkind = "write"\nrow = 7\n')
    out = tmp_path / "seq.cir"
    fails_cleanly(["netlist", "crossbar", "--config", str(config), "-o", str(out)],
                  f"error: {config}: selected cell (7, 0) outside")
    assert not out.exists()
    va = tmp_path / "va.toml"
    va.write_text('rows = 3\ncols = 3\n[cells]\nkind = "veriloga"\n')
    fails_cleanly(["irdrop", "--config", str(va), "-o", str(tmp_path / "ir.png")], f"error: {va}: cells:", "OSDI")


def test_memory_estimate_counts_a_differential_array_once(tmp_path: Path, monkeypatch) -> None:
    """``cols`` already counts both columns of every pair: 64x64 differential is 4096 cells."""
    monkeypatch.setattr(guard, "available_memory_bytes", lambda: 1_000)
    fails_cleanly(["netlist", "crossbar", "--rows", "64", "--cols", "64", "--differential",
                   "-o", str(tmp_path / "d.cir")], "(4096 cells)")


def test_fit_failure_names_the_input_file(tmp_path: Path) -> None:
    """A table that loses every row in quality control: the error names the CSV."""
    short = tmp_path / "short.csv"
    result = runner.invoke(app, ["synth", "--devices", "1", "--cycles", "4", "-o", str(short)])
    assert result.exit_code == 0, result.output
    fails_cleanly(["fit", str(short), "-o", str(tmp_path / "m.json")], f"error: {short}: no usable rows")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("args, needle", [
    (["--device", "generative", "--resistance", "1e4"], 'kind = "generative" takes no resistance'),
    (["--device", "library", "--random-seed", "3"], 'kind = "library" takes no random_seed'),
    (["--seed", "5"], 'kind = "resistor" takes no seed'),
    (["--model", "m.json"], 'kind = "resistor" takes no model_file'),
    (["--device", "generative", "--osdi", "missing.osdi"], "missing.osdi: OSDI file not found"),
])
def test_cell_flags_the_device_would_ignore_are_refused(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "x.cir"
    fails_cleanly(["netlist", "crossbar", "--rows", "3", "--cols", "3", *args, "-o", str(out)], needle)
    assert not out.exists()


def test_non_utf8_train_and_deploy_configs(tmp_path: Path) -> None:
    config = tmp_path / "train.toml"
    config.write_bytes(b'# caf\xe9\n')
    fails_cleanly(["train", "-o", str(tmp_path / "run"), "--config", str(config)],
                  "train.toml", "not UTF-8")
    assert not (tmp_path / "run").exists()
