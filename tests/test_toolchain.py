"""Tool discovery, `cosim doctor`, and proof that the installed ngspice loads OSDI devices."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosim import toolchain
from cosim.cli import app
from cosim.compile import compile_va
from cosim.errors import ToolchainError
from cosim.paths import VERILOGA_DIR
from cosim.spice.batch import run_batch


@pytest.fixture(autouse=True)
def fresh_lookups() -> Iterator[None]:
    toolchain.clear_cache()
    yield
    toolchain.clear_cache()


def fake_ngspice(folder: Path, version: str, osdi: bool) -> Path:
    """A stand-in executable printing an ngspice banner; knows `pre_osdi` only if ``osdi``."""
    probe_reply = (
        'echo "Error opening osdi lib \\"x.osdi\\": No such file or directory!" >&2'
        if osdi
        else 'echo "pre_osdi: no such command available in ngspice" >&2'
    )
    script = folder / "ngspice"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-v" ]; then echo "** ngspice-{version} : Circuit level simulation"; exit 0; fi\n'
        f"{probe_reply}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_installed_ngspice_is_recent_with_osdi_and_klu() -> None:
    info = toolchain.find_ngspice()
    assert info.major >= toolchain.MIN_NGSPICE_MAJOR
    assert info.osdi and info.klu
    assert info.path.is_file()


@pytest.mark.parametrize(("banner", "expected"), [
    ("** ngspice-46 : Circuit level simulation program", ("46", 46)),
    ("******\n** ngspice-44.2 : Circuit level", ("44.2", 44)),
])
def test_version_banner_parsing(banner: str, expected: tuple[str, int]) -> None:
    assert toolchain.parse_ngspice_version(banner) == expected


def test_unreadable_banner_is_an_error() -> None:
    with pytest.raises(ToolchainError, match="cannot read the ngspice version"):
        toolchain.parse_ngspice_version("Berkeley SPICE3f5")


def test_old_ngspice_is_refused_with_remedy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIM_NGSPICE", str(fake_ngspice(tmp_path, "39", osdi=False)))
    with pytest.raises(ToolchainError, match="too old") as caught:
        toolchain.find_ngspice()
    assert str(caught.value).endswith(toolchain.REMEDY)


def test_ngspice_without_osdi_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIM_NGSPICE", str(fake_ngspice(tmp_path, "46", osdi=False)))
    with pytest.raises(ToolchainError, match="without OSDI"):
        toolchain.find_ngspice()


def test_fake_ngspice_with_osdi_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIM_NGSPICE", str(fake_ngspice(tmp_path, "44.2", osdi=True)))
    info = toolchain.find_ngspice()
    assert (info.version, info.osdi, info.klu) == ("44.2", True, False)


def test_missing_ngspice_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COSIM_NGSPICE", str(tmp_path / "no-such-ngspice"))
    with pytest.raises(ToolchainError, match="not an executable file"):
        toolchain.find_ngspice()


def test_libngspice_found_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = toolchain.find_libngspice().path
    assert found.is_file() and found.name.startswith("libngspice.so.0")
    monkeypatch.setenv("NGSPICE_LIBRARY_PATH", str(tmp_path))
    toolchain.clear_cache()
    with pytest.raises(ToolchainError, match="libngspice.so.0 not found"):
        toolchain.find_libngspice()
    (tmp_path / "libngspice.so.0").write_bytes(b"")
    toolchain.clear_cache()
    assert toolchain.find_libngspice().path == tmp_path / "libngspice.so.0"


def test_openvaf_and_vacask_from_the_wheel() -> None:
    openvaf = toolchain.find_openvaf()
    assert openvaf.version and os.access(openvaf.path, os.X_OK)
    assert openvaf.path.name == "openvaf-r"
    vacask = toolchain.find_vacask()
    assert os.access(vacask.path, os.X_OK) and vacask.version


def test_doctor_exits_zero_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COSIM_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for name in ("ngspice", "libngspice", "openvaf-r", "vacask"):
        assert name in result.output
    assert "OSDI: yes" in result.output
    assert "res_va compiled, loaded, solved" in result.output  # the end-to-end OSDI check


def test_doctor_reports_missing_tool_with_remedy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COSIM_NGSPICE", str(tmp_path / "gone"))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "MISSING" in result.output
    assert toolchain.REMEDY in result.output


def test_installed_ngspice_loads_an_openvaf_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever Debian release set-up found: an OSDI library compiled here loads and solves."""
    monkeypatch.setenv("COSIM_CACHE", str(tmp_path / "cache"))
    osdi = compile_va(VERILOGA_DIR / "examples" / "res_va.va")
    netlist = (
        "* osdi load check\n.control\nset num_threads=1\n"
        f"pre_osdi {osdi}\n.endc\n.options klu\n.model rva res_va\n"
        "V1 a 0 DC 2\nN1 a 0 rva r=500\n.op\n.end\n"
    )
    result = run_batch(netlist, timeout_s=60)
    assert result["i(v1)"][0] == pytest.approx(-2.0 / 500.0, rel=1e-12)
