"""Compile Verilog-A to OSDI device libraries with ``openvaf-r``, with a content cache.

``compile_va("model.va")`` runs ``openvaf-r -O 3 --target_cpu generic model.va -o <cache>``
once per distinct (source text, included files, compiler version, flags) and returns the
cached ``.osdi`` path afterwards without starting the compiler. The cache folder is
``$COSIM_CACHE/osdi`` if ``COSIM_CACHE`` is set, else ``~/.cache/cosim/osdi``. Files appear
atomically (compiled into a private temporary folder, then ``os.replace``), so concurrent
processes compiling the same model never see a half-written library.

Compiler errors raise :class:`VerilogACompileError`, whose message lists each diagnostic as
``file:line:column: error: text``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cosim.fileio import make_ordinary
from cosim.errors import CosimError
from cosim.toolchain import find_openvaf

log = logging.getLogger(__name__)

TARGET_CPU = "generic"
"""Portable machine code: cached libraries may be shared between machines of one arch."""

COMPILE_TIMEOUT_S = 600.0
_INCLUDE_RE = re.compile(r'^\s*`include\s+"([^"]+)"', re.MULTILINE)
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_DIAG_RE = re.compile(r"^(error|warning)(?:\[[^\]]*\])?:\s*(.*)$")
_LOCATION_RE = re.compile(r"^\s*-->\s*(.+?):(\d+):(\d+)\s*$")


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message; ``line``/``column`` are 1-based, 0 when unknown."""

    level: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: " if self.file else ""
        return f"{where}{self.level}: {self.message}"


class VerilogACompileError(CosimError):
    """openvaf-r rejected a Verilog-A file; ``diagnostics`` holds the located messages."""

    def __init__(self, source: Path, diagnostics: list[Diagnostic], output: str) -> None:
        self.source = source
        self.diagnostics = diagnostics
        self.output = output
        located = [d for d in diagnostics if d.level == "error" and d.file]
        shown = located or [d for d in diagnostics if d.level == "error"]
        lines = [str(d) for d in shown] or [output.strip()[-2000:] or "(no compiler output)"]
        super().__init__(f"openvaf-r failed to compile {source}:\n" + "\n".join(lines))

    @property
    def first_error(self) -> Diagnostic | None:
        """The first located error, if the compiler named a file and line."""
        return next((d for d in self.diagnostics if d.level == "error" and d.file), None)


def cache_dir() -> Path:
    """Folder holding compiled OSDI libraries (created on demand)."""
    root = os.environ.get("COSIM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "cosim"
    return base / "osdi"


def parse_diagnostics(output: str) -> list[Diagnostic]:
    """Read openvaf-r's rustc-style diagnostics (``error: msg`` then ``--> file:line:col``)."""
    diagnostics: list[Diagnostic] = []
    pending: tuple[str, str] | None = None
    for raw_line in _ANSI_RE.sub("", output).splitlines():
        header = _DIAG_RE.match(raw_line)
        if header:
            if pending:
                diagnostics.append(Diagnostic(*pending))
            pending = (header.group(1), header.group(2).strip())
            continue
        location = _LOCATION_RE.match(raw_line)
        if location and pending:
            file, line, column = location.groups()
            diagnostics.append(Diagnostic(pending[0], pending[1], file, int(line), int(column)))
            pending = None
    if pending:
        diagnostics.append(Diagnostic(*pending))
    return diagnostics


def _include_dirs(source: Path, extra_flags: Sequence[str]) -> list[Path]:
    dirs = [source.parent]
    flags = list(extra_flags)
    for index, flag in enumerate(flags):
        if flag in ("-I", "--include") and index + 1 < len(flags):
            dirs.append(Path(flags[index + 1]))
        elif flag.startswith("-I") and len(flag) > 2:
            dirs.append(Path(flag[2:]))
        elif flag.startswith("--include="):
            dirs.append(Path(flag.split("=", 1)[1]))
    return dirs


def _hash_sources(source: Path, include_dirs: list[Path], digest: "hashlib._Hash") -> None:
    """Feed the source and every file it includes (recursively) into ``digest``.

    Includes that are not on disk (``disciplines.vams``, ``constants.vams``) are built into
    the compiler, whose version is part of the key; their names are hashed.
    """
    seen: set[Path] = set()
    stack = [source.resolve()]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        text = current.read_bytes()
        digest.update(b"file\0" + current.name.encode() + b"\0" + text + b"\0")
        for name in _INCLUDE_RE.findall(text.decode("utf-8", errors="replace")):
            found = next(
                (d / name for d in [current.parent, *include_dirs] if (d / name).is_file()), None
            )
            if found is None:
                digest.update(b"builtin\0" + name.encode() + b"\0")
            else:
                stack.append(found.resolve())


def compiler_flags(opt_level: int, extra_flags: Sequence[str]) -> list[str]:
    """The openvaf-r options used for a compile (besides input and output)."""
    if opt_level not in (0, 1, 2, 3):
        raise CosimError(f"opt_level must be 0, 1, 2 or 3, got {opt_level!r}")
    return ["-O", str(opt_level), "--target_cpu", TARGET_CPU, *[str(f) for f in extra_flags]]


def cache_key(source: Path, flags: Sequence[str], compiler_version: str) -> str:
    """SHA-256 over source text, included files, compiler version and flags."""
    digest = hashlib.sha256()
    digest.update(b"openvaf-r\0" + compiler_version.encode() + b"\0")
    digest.update(b"flags\0" + "\0".join(flags).encode() + b"\0")
    _hash_sources(source, _include_dirs(source, flags), digest)
    return digest.hexdigest()


def _run_compiler(
    compiler: Path, source: Path, output: Path, flags: Sequence[str]
) -> subprocess.CompletedProcess[str]:
    """Start openvaf-r once (separate function so tests can count invocations)."""
    env = {**os.environ, "NO_COLOR": "1", "CLICOLOR": "0"}
    try:
        return subprocess.run(
            [str(compiler), *flags, str(source), "-o", str(output)],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CosimError(f"openvaf-r did not finish compiling {source} in {exc.timeout} s") from exc


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp_name)
        make_ordinary(tmp_name, 0o777)  # a shared library: executable, minus the umask
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def compile_va(
    source: Path | str,
    output: Path | str | None = None,
    *,
    opt_level: int = 3,
    extra_flags: Sequence[str] = (),
) -> Path:
    """Compile ``source`` (Verilog-A) to an OSDI library and return its path.

    The result is cached (see module docs). With ``output`` the cached library is also
    copied, atomically, to that path, which is returned instead.

    Raises :class:`VerilogACompileError` on compiler errors (message names file and line),
    :class:`~cosim.errors.CosimError` if ``source`` is missing, and
    :class:`~cosim.errors.ToolchainError` if openvaf-r is not installed.
    """
    source = Path(source).resolve()
    if not source.is_file():
        raise CosimError(f"Verilog-A source not found: {source}")
    compiler = find_openvaf()
    flags = compiler_flags(opt_level, extra_flags)
    key = cache_key(source, flags, compiler.version)
    folder = cache_dir()
    cached = folder / f"{source.stem}-{key[:24]}.osdi"
    if cached.is_file():
        log.debug("compile cache hit %s -> %s", source, cached)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
        try:
            built = work / cached.name
            proc = _run_compiler(compiler.path, source, built, flags)
            text = proc.stdout + proc.stderr
            if proc.returncode != 0 or not built.is_file():
                raise VerilogACompileError(source, parse_diagnostics(text), text)
            for warning in (d for d in parse_diagnostics(text) if d.level == "warning"):
                log.warning("%s", warning)
            os.replace(built, cached)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if output is None:
        return cached
    destination = Path(output).resolve()
    _atomic_copy(cached, destination)
    return destination
