"""openvaf-r compilation: output, content cache, error locations, CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cosim.compile as compile_module
from cosim.cli import app
from cosim.compile import VerilogACompileError, compile_va, parse_diagnostics
from cosim.paths import VERILOGA_DIR

RES_VA = VERILOGA_DIR / "examples" / "res_va.va"

BROKEN_VA = """`include "disciplines.vams"
module broken(p, n);
    inout p, n;
    electrical p, n;
    analog begin
        I(p, n) <+ V(p, n) / undefined_r;
    end
endmodule
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test compiles into its own cache folder."""
    monkeypatch.setenv("COSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "osdi"


@pytest.fixture()
def compiler_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every start of openvaf-r (the real compiler still runs)."""
    calls: list[Path] = []
    real = compile_module._run_compiler

    def counting(compiler, source, output, flags):
        calls.append(source)
        return real(compiler, source, output, flags)

    monkeypatch.setattr(compile_module, "_run_compiler", counting)
    return calls


def test_compile_writes_an_osdi_shared_object_into_the_cache(private_cache: Path) -> None:
    result = compile_va(RES_VA)
    assert result.parent == private_cache
    assert result.suffix == ".osdi" and result.name.startswith("res_va-")
    assert result.read_bytes()[:4] == b"\x7fELF"
    assert [p.name for p in private_cache.iterdir()] == [result.name]  # no temp leftovers


def test_second_compile_is_a_cache_hit(compiler_calls: list[Path]) -> None:
    first = compile_va(RES_VA)
    second = compile_va(RES_VA)
    assert first == second
    assert len(compiler_calls) == 1


def test_flags_are_part_of_the_cache_key(compiler_calls: list[Path]) -> None:
    optimised = compile_va(RES_VA, opt_level=3)
    plain = compile_va(RES_VA, opt_level=0)
    assert optimised != plain
    assert len(compiler_calls) == 2


def test_changed_included_file_forces_a_recompile(
    tmp_path: Path, compiler_calls: list[Path]
) -> None:
    (tmp_path / "value.vams").write_text("`define R_VALUE 1.0e3\n")
    source = tmp_path / "inc_res.va"
    source.write_text(
        '`include "disciplines.vams"\n`include "value.vams"\n'
        "module inc_res(p, n);\n inout p, n;\n electrical p, n;\n"
        " analog I(p, n) <+ V(p, n) / `R_VALUE;\nendmodule\n"
    )
    first = compile_va(source)
    assert compile_va(source) == first
    (tmp_path / "value.vams").write_text("`define R_VALUE 2.0e3\n")
    second = compile_va(source)
    assert second != first
    assert len(compiler_calls) == 2


def test_explicit_output_is_written(tmp_path: Path) -> None:
    target = tmp_path / "out" / "res.osdi"
    result = compile_va(RES_VA, target)
    assert result == target.resolve()
    assert target.read_bytes() == compile_va(RES_VA).read_bytes()


def test_compile_error_names_file_and_line(tmp_path: Path, private_cache: Path) -> None:
    source = tmp_path / "broken.va"
    source.write_text(BROKEN_VA)
    with pytest.raises(VerilogACompileError) as caught:
        compile_va(source)
    error = caught.value
    assert f"{source}:6:" in str(error)
    assert "undefined_r" in str(error)
    assert error.first_error is not None and error.first_error.line == 6
    leftovers = list(private_cache.iterdir()) if private_cache.exists() else []
    assert leftovers == []  # failed builds leave nothing in the cache


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(compile_module.CosimError, match="not found"):
        compile_va(tmp_path / "nope.va")


def test_bad_opt_level_is_refused() -> None:
    with pytest.raises(compile_module.CosimError, match="opt_level"):
        compile_va(RES_VA, opt_level=7)


def test_diagnostics_parser_reads_coloured_output() -> None:
    coloured = (
        "\x1b[0m\x1b[1m\x1b[31merror\x1b[0m\x1b[1m: unexpected token 'inout'\x1b[0m\n"
        "  \x1b[0m\x1b[1m\x1b[38;5;12m-->\x1b[0m /x/m.va:2:2\n"
        "warning: unused variable\n  --> /x/m.va:9:5\n"
        "error: could not compile `m.va` due to 1 previous errors\n"
    )
    found = parse_diagnostics(coloured)
    assert [(d.level, d.file, d.line, d.column) for d in found] == [
        ("error", "/x/m.va", 2, 2),
        ("warning", "/x/m.va", 9, 5),
        ("error", "", 0, 0),
    ]
    assert str(found[0]) == "/x/m.va:2:2: error: unexpected token 'inout'"


def test_cli_compile_prints_path_and_reports_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.osdi"
    ok = runner.invoke(app, ["compile", str(RES_VA), "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert out.is_file() and str(out) in ok.output
    source = tmp_path / "broken.va"
    source.write_text(BROKEN_VA)
    bad = runner.invoke(app, ["compile", str(source)])
    assert bad.exit_code == 2
    assert f"{source}:6:" in bad.output
    assert "Traceback" not in bad.output


def test_compiled_library_mode_honours_the_umask(tmp_path: Path, private_cache: Path) -> None:
    old = os.umask(0o027)
    try:
        target = compile_va(RES_VA, tmp_path / "res.osdi")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
