"""Running a simulator executable in its own process group, with a time limit.

Shared by the subprocess backends (:mod:`cosim.spice.batch` for ngspice,
:mod:`cosim.spice.vacask` for VACASK). The child starts a new session, so it and anything it
starts form one process group; stdout and stderr go to files (a pipe that nobody reads could
block a chatty simulator). Past the time limit, or if the caller is interrupted, the whole group
gets SIGKILL and is reaped, so nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GroupRun:
    """How a finished run ended."""

    returncode: int
    pid: int
    """Process id of the child, which is also its process-group id."""
    elapsed_s: float
    """Wall-clock seconds from start to exit."""


class GroupTimeout(Exception):
    """The run exceeded its limit; its process group has been killed and reaped."""

    def __init__(self, pid: int, timeout_s: float) -> None:
        super().__init__(f"process group {pid} killed after {timeout_s:g} s")
        self.pid = pid
        self.timeout_s = timeout_s


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group led by ``process`` (the child and its children), then reap."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    stdout_path: Path,
    stderr_path: Path,
    timeout_s: float,
) -> GroupRun:
    """Run ``argv`` in a new session with ``cwd``; write its output to the two files.

    ``timeout_s``: wall-clock limit in seconds. Raises :class:`GroupTimeout` (after killing the
    group) when it is exceeded; any other exception while waiting (e.g. ``KeyboardInterrupt``)
    also kills the group before it propagates.
    """
    started = time.perf_counter()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [str(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            raise GroupTimeout(process.pid, timeout_s) from None
        finally:
            if process.poll() is None:  # interrupted: leave nothing running
                kill_group(process)
    return GroupRun(returncode, process.pid, time.perf_counter() - started)


def read_text(path: Path) -> str:
    """The file's text (undecodable bytes replaced), or ``""`` if it does not exist."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def quote_lines(lines: list[str], max_lines: int) -> str:
    """Indent log lines for an error message, keeping the last ``max_lines`` of them."""
    if len(lines) > max_lines:
        skipped = len(lines) - max_lines
        lines = [f"[... {skipped} earlier lines ...]", *lines[-max_lines:]]
    return "\n".join(f"  | {line}" for line in lines)


def run_logged(
    argv: Sequence[str],
    *,
    cwd: Path,
    log_stem: Path,
    timeout_s: float,
    what: str,
    tail: Callable[[str], str],
) -> tuple[GroupRun, str]:
    """Run ``argv`` with :func:`run_in_group`, stdout/stderr in ``log_stem`` + ``.out``/``.err``.

    Returns the run and the combined log text. Past ``timeout_s`` raises
    :class:`~cosim.errors.SimulationTimeout` naming ``what`` (e.g. "ngspice run of x.cir"), with
    ``tail(log)`` (the last log lines, quoted) appended and the killed group id in ``.pid``.
    """
    from cosim.errors import SimulationTimeout

    out, err = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    try:
        run = run_in_group(argv, cwd=cwd, stdout_path=out, stderr_path=err, timeout_s=timeout_s)
    except GroupTimeout as timeout:
        log = read_text(out) + read_text(err)
        error = SimulationTimeout(
            f"{what} exceeded its {timeout_s:g} s limit; "
            f"process group {timeout.pid} killed.\n{tail(log)}"
        )
        error.pid = timeout.pid  # type: ignore[attr-defined]
        raise error from None
    return run, read_text(out) + read_text(err)
