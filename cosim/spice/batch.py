"""Batch ngspice backend: one ``ngspice -b -r out.raw in.cir`` subprocess per run.

The subprocess runs in its own session (process group); a run that exceeds its time limit
gets the whole group killed with SIGKILL and raises
:class:`~cosim.errors.SimulationTimeout`. A crash, an error in the log or a failed
convergence raises :class:`~cosim.errors.SimulationError` /
:class:`~cosim.errors.ConvergenceError` with the relevant log lines. The parent never
shares memory with ngspice, so a leaking or hanging simulator cannot take it down.

ngspice runs with ``-n``: no ``.spiceinit`` (from the working directory or the home folder) is
read, so only the netlist decides what ngspice does (see ``docs/security.md``).

Progress: ngspice writes the raw file while it simulates; for a netlist with a ``.tran`` card
the time of the last stored point is read every half second and passed to the ``progress``
callback, and a run that times out says how far its transient got (instead of quoting the
operating-point lines of the log).

ngspice exits 0 after some errors (e.g. an OSDI library that fails to load), so the log is
always scanned: lines starting ``Error``, ``... error on line ...``, ``simulation
interrupted`` or ``aborted`` mark a failed run; ``Note:`` lines and warnings that a run
recovers from (gmin stepping, a transient singular matrix) are ignored unless it failed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cosim.errors import ConvergenceError, SimulationError
from cosim.spice._process import quote_lines, run_logged, track_folder, untrack_folder
from cosim.spice.rawfile import RawFileError, last_time_point, read_raw
from cosim.spice.result import SimResult
from cosim.toolchain import find_ngspice

DEFAULT_TIMEOUT_S = 600.0
MAX_LOG_LINES = 25
"""At most this many log lines are quoted in an error message."""

NETLIST_NAME = "in.cir"
RAW_NAME = "out.raw"
LOG_STEM = "ngspice"  # ngspice.out / ngspice.err in the run folder

_FAILURE_RE = re.compile(
    r"^\s*error\b|error on line|simulation interrupted|\baborted\b|circuit not parsed"
    r"|there aren't any circuits loaded|unknown parameter|can't find model|no such command",
    re.IGNORECASE,
)
_CONVERGENCE_RE = re.compile(
    r"timestep too small|no convergence|iteration limit|dc solution failed|gmin stepping failed"
    r"|source stepping failed|transient op failed|singular matrix|could not be simulated",
    re.IGNORECASE,
)
_NOISE_RE = re.compile(
    r"^\s*(note:|total (dram|analysis|elapsed)|dram currently|maximum ngspice|current ngspice"
    r"|shared ngspice|text \(code\)|stack =|library pages|no\. of data|doing analysis"
    r"|using (klu|sparse)|binary raw file|ascii raw file|circuit:|reference value|\*\*)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LogVerdict:
    """What the ngspice log says about a run."""

    failed: bool
    convergence: bool
    lines: list[str]
    """The log lines worth quoting (errors, warnings, their context), noise removed."""
    reason: str
    """One line summing up the failure (empty if none was found)."""


def scan_log(log: str, returncode: int | None = 0) -> LogVerdict:
    """Classify an ngspice log (stdout + stderr) and pick the lines to quote."""
    lines = [line.rstrip() for line in log.splitlines()]
    failed = returncode not in (0, None) or any(_FAILURE_RE.search(line) for line in lines)
    convergence = failed and any(_CONVERGENCE_RE.search(line) for line in lines)
    quoted: list[str] = []
    for line in lines:
        if not line.strip() or _NOISE_RE.match(line):
            continue
        if quoted and quoted[-1] == line:  # ngspice repeats warnings during gmin stepping
            continue
        quoted.append(line)
    return LogVerdict(failed, convergence, quoted, _reason(lines) if failed else "")


def _reason(lines: list[str]) -> str:
    """The most telling failure line: ngspice's analysis verdict, else the first error."""
    for pattern in (r"^\s*doAnalyses:", r"unknown parameter", r"^\s*error\b|error on line"):
        found = [line.strip() for line in lines if re.search(pattern, line, re.IGNORECASE)]
        if found:
            reason = found[-1] if pattern.startswith(r"^\s*doA") else found[0]
            break
    else:
        reason = "see the log lines below"
    if any("singular matrix" in line.lower() for line in lines):
        reason += " [singular matrix: look for floating nodes or loops of voltage sources]"
    return reason.strip()


def _quote(lines: list[str], reason: str = "") -> str:
    """Quote log lines, leaving out the first one that repeats ``reason`` (already shown)."""
    if reason:
        for k, line in enumerate(lines):
            if line.strip() == reason:
                lines = lines[:k] + lines[k + 1 :]
                break
    return quote_lines(lines, MAX_LOG_LINES)


_SUFFIXES = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "mil": 25.4e-6, "m": 1e-3, "u": 1e-6,
             "n": 1e-9, "p": 1e-12, "f": 1e-15}
_NUMBER_RE = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(meg|mil|[tgkmunpf])?[a-z]*$", re.IGNORECASE
)


def spice_number(text: str) -> float | None:
    """A SPICE number with an optional scale suffix (``1u``, ``0.1p``, ``2meg``), or None."""
    match = _NUMBER_RE.match(text.strip())
    if match is None:
        return None
    scale = _SUFFIXES.get((match.group(2) or "").lower(), 1.0)
    return float(match.group(1)) * scale


def tran_stop_time(text: str) -> float | None:
    """``tstop`` (s) of the netlist's ``.tran`` card, or None without one (or unreadable)."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0].lower() == ".tran" and len(words) >= 3:
            return spice_number(words[2])
    return None


def _progress_line(raw: Path, stop: float) -> str:
    reached = last_time_point(raw)
    if reached is None:
        return (f"  the transient had stored no point yet (stop time {stop:g} s; a start time "
                "in .tran delays the first stored point)")
    return f"  the transient reached t = {reached:.6g} s of {stop:g} s ({100 * reached / stop:.1f} %)"


def _prepare(netlist: str | Path, folder: Path) -> tuple[Path, str]:
    """Write the netlist into ``folder``; return its path and a label for messages."""
    if isinstance(netlist, Path):
        from cosim.spice.netlist_io import read_netlist_file

        text, label = read_netlist_file(netlist), str(netlist)
    else:
        text, label = netlist, "netlist"
    if not text.strip():
        raise SimulationError("empty netlist")
    target = folder / NETLIST_NAME
    target.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return target, label


def run_batch(
    netlist: str | Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workdir: Path | None = None,
    keep_files: bool = False,
    cwd: Path | None = None,
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    """Simulate ``netlist`` (netlist *text* if a ``str``, a *file* if a ``Path``) with ngspice.

    ``timeout_s``: wall-clock limit in seconds. ``workdir``: folder for ``in.cir``,
    ``out.raw`` and the logs (created if needed, always kept); by default a fresh temporary
    folder that is deleted unless ``keep_files``. ``cwd``: working directory of ngspice
    (relative ``.include`` paths); defaults to the netlist file's folder, else ``workdir``.

    ``progress(t, tstop)`` (seconds), if given, is called about twice a second during a
    ``.tran`` with the simulated time reached so far.

    Returns a :class:`SimResult` with ``backend="batch"``; ``meta`` holds ``returncode``,
    ``pid`` and, when files are kept, ``workdir``.
    """
    engine = find_ngspice()
    own_folder = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="cosim-batch-")) if own_folder else Path(workdir)
    if own_folder and not keep_files:
        track_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    if cwd is None:
        cwd = netlist.resolve().parent if isinstance(netlist, Path) else folder
    try:
        kept = keep_files or not own_folder
        result = _run_in(engine.path, netlist, folder, Path(cwd), timeout_s, kept, progress)
        result.meta["ngspice"] = engine.version
        return result
    finally:
        if own_folder and not keep_files:
            shutil.rmtree(folder, ignore_errors=True)
            untrack_folder(folder)


def _run_in(
    executable: Path, netlist: str | Path, folder: Path, cwd: Path, timeout_s: float, kept: bool,
    progress: Callable[[float, float], None] | None = None,
) -> SimResult:
    source, label = _prepare(netlist, folder)
    raw = folder / RAW_NAME
    raw.unlink(missing_ok=True)
    stop = tran_stop_time(source.read_text(encoding="utf-8"))

    def tail(text: str) -> str:
        if stop:
            return _progress_line(raw, stop)
        return _quote(scan_log(text).lines[-5:])

    def poll() -> None:
        reached = last_time_point(raw)
        if progress is not None and stop and reached is not None:
            progress(reached, stop)

    run, log = run_logged(
        [str(executable), "-n", "-b", "-r", str(raw), str(source)],
        cwd=cwd,
        log_stem=folder / LOG_STEM,
        timeout_s=timeout_s,
        what=f"ngspice run of {label}",
        tail=tail,
        poll=poll if progress is not None and stop else None,
    )
    # the run's copy of the netlist is an implementation detail (and deleted): name the netlist
    log = log.replace(str(source), label if label != "netlist" else "the netlist")
    returncode, elapsed = run.returncode, run.elapsed_s
    verdict = scan_log(log, returncode)
    if verdict.failed:
        kind = ConvergenceError if verdict.convergence else SimulationError
        what = "did not converge" if verdict.convergence else f"failed (exit {returncode})"
        raise kind(
            f"ngspice run of {label} {what}: {verdict.reason}\n"
            f"{_quote(verdict.lines, verdict.reason)}"
        )
    if not raw.is_file():
        raise SimulationError(f"ngspice run of {label} wrote no raw file:\n{_quote(verdict.lines)}")
    try:
        result = read_raw(raw, backend="batch")
    except RawFileError as exc:
        raise SimulationError(f"ngspice run of {label}: {exc}") from exc
    result.log = log
    result.elapsed_s = elapsed
    result.meta.update(returncode=returncode, pid=run.pid)
    if kept:
        result.meta["workdir"] = str(folder)
    return result
