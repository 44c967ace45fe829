"""Running a simulator executable in its own process group, with a time limit.

Shared by the subprocess backends (:mod:`cosim.spice.batch` for ngspice,
:mod:`cosim.spice.vacask` for VACASK). The child starts a new session, so it and anything it
starts form one process group; stdout and stderr go to files (a pipe that nobody reads could
block a chatty simulator). Past the time limit, or if the caller is interrupted, the whole group
gets SIGKILL and is reaped.

Descendants can leave a process group (``setsid``) or the process tree (a double fork). To
find them anyway every run gets a *mark*: an environment variable with a value unique to the
run, which every descendant inherits unless it clears its environment. When the run ends (exit,
timeout or interrupt) every process of this user carrying the mark is killed
(:func:`kill_marked`, Linux ``/proc``). The child also gets ``PR_SET_PDEATHSIG`` = SIGKILL
(:func:`die_with_parent`), so that ``kill -9`` of the caller does not orphan the simulator.
The batch runner (:mod:`cosim.batch.runner`) uses the same helpers for its job processes.

Running simulators and temporary folders are tracked, so that a CLI command stopped by SIGTERM
(:func:`exit_on_sigterm`) kills them and deletes the folders before it exits with status 143.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


RUN_MARK_ENV = "COSIM_RUN_MARK"
"""Environment variable marking the descendants of one simulator run (see the module doc)."""
POLL_INTERVAL_S = 0.5
"""How often a running simulator's progress is looked at, seconds."""
_PR_SET_PDEATHSIG = 1
_KILL_ROUNDS = 5


def check_timeout(value: float, what: str = "timeout") -> float:
    """``value`` as a float if it is a finite number of seconds > 0; else a CosimError."""
    from cosim.errors import CosimError

    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise CosimError(f"{what} must be a finite number of seconds > 0, got {value!r}")
    return seconds


def new_mark() -> str:
    """A value for a mark variable that no other run uses: ``<this pid>-<random hex>``, so that
    :func:`kill_marked` with ``prefix=f"{pid}-"`` finds every mark a process handed out."""
    return f"{os.getpid()}-{secrets.token_hex(8)}"


def marked_pids(variable: str, mark: str, *, prefix: bool = False) -> list[int]:
    """Pids of this user's processes whose environment holds ``variable=mark`` (with
    ``prefix``: a value starting with ``mark``)."""
    needle = f"{variable}={mark}".encode()
    end = b"" if prefix else b"\0"
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                data = handle.read()
        except OSError:  # gone, or another user's process
            continue
        if data.startswith(needle + end) or b"\0" + needle + end in data:
            found.append(int(name))
    return found


def kill_marked(variable: str, mark: str, *, prefix: bool = False) -> list[int]:
    """SIGKILL every process carrying ``variable=mark`` (``prefix``: a value starting with
    ``mark``); return their pids.

    Repeats a few rounds so that a process forking while it is being killed is caught too;
    children of this process among them are reaped.
    """
    killed: list[int] = []
    for _ in range(_KILL_ROUNDS):
        pids = [pid for pid in marked_pids(variable, mark, prefix=prefix) if pid not in killed]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
        for pid in pids:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
    return killed


def _prctl():  # type: ignore[no-untyped-def]
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux; else no-op).

    Call it in a freshly forked child. If the parent already exited, exits at once.
    """
    parent = os.getppid()
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


_RUNNING: dict[int, tuple[subprocess.Popen[bytes], str | None]] = {}
"""Simulator processes started by this process and still running: pid → (process, mark)."""
_FOLDERS: set[str] = set()
"""Temporary folders to delete if this process is stopped by SIGTERM."""


def track_process(process: subprocess.Popen[bytes], mark: str | None = None) -> None:
    """Remember a running simulator (and its mark) for :func:`stop_everything`."""
    _RUNNING[process.pid] = (process, mark)


def untrack_process(process: subprocess.Popen[bytes]) -> None:
    _RUNNING.pop(process.pid, None)


def track_folder(folder: str | os.PathLike[str]) -> None:
    """Remember a temporary folder to delete on SIGTERM (:func:`stop_everything`)."""
    _FOLDERS.add(str(folder))


def untrack_folder(folder: str | os.PathLike[str]) -> None:
    _FOLDERS.discard(str(folder))


def stop_everything() -> None:
    """SIGKILL every tracked simulator (its process group and marked descendants), delete the
    tracked temporary folders and the atomic writers' temporary files. For signal handlers:
    it only sends signals and deletes files, and takes no lock the interrupted code may hold.
    """
    import shutil

    from cosim.fileio import remove_pending_temporaries

    for pid, (process, mark) in list(_RUNNING.items()):
        try:  # a marked run leads its own process group; os calls only, no Popen locks
            if mark is not None:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if mark is not None:
            kill_marked(RUN_MARK_ENV, mark)
    for folder in list(_FOLDERS):
        shutil.rmtree(folder, ignore_errors=True)
    remove_pending_temporaries()


def exit_on_sigterm(message: str, cleanup: Callable[[], None] | None = None) -> None:
    """On SIGTERM: run ``cleanup``, :func:`stop_everything`, print ``message`` (an ``error:``
    line) on stderr and exit with status 143 at once.

    The handler does not raise into the interrupted code: an exception raised from a signal
    handler can land in a callback that ignores it, or inside bookkeeping that then keeps a
    lock, so the exit would be lost or hang. Main thread only; a no-op elsewhere.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, frame: object) -> None:
        try:
            if cleanup is not None:
                cleanup()
            stop_everything()
        finally:
            os.write(2, (message.rstrip("\n") + "\n").encode("utf-8", "replace"))
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


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
    poll: Callable[[], None] | None = None,
) -> GroupRun:
    """Run ``argv`` in a new session with ``cwd``; write its output to the two files.

    ``timeout_s``: wall-clock limit in seconds. Raises :class:`GroupTimeout` (after killing the
    group) when it is exceeded; any other exception while waiting (e.g. ``KeyboardInterrupt``)
    also kills the group before it propagates. ``poll`` (if given) is called about every
    :data:`POLL_INTERVAL_S` seconds while the child runs (progress reports).
    """
    timeout_s = check_timeout(timeout_s)
    mark = new_mark()
    started = time.perf_counter()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        process = subprocess.Popen(
            [str(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env={**os.environ, RUN_MARK_ENV: mark},
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        track_process(process, mark)
        try:
            returncode = _wait(process, started + timeout_s, poll)
        except subprocess.TimeoutExpired:
            kill_group(process)
            raise GroupTimeout(process.pid, timeout_s) from None
        finally:
            if process.poll() is None:  # interrupted: leave nothing running
                kill_group(process)
            kill_marked(RUN_MARK_ENV, mark)  # descendants that left the group
            untrack_process(process)
    return GroupRun(returncode, process.pid, time.perf_counter() - started)


def _wait(process: subprocess.Popen[bytes], deadline: float,
          poll: Callable[[], None] | None) -> int:
    """Wait for ``process`` until ``deadline`` (``perf_counter`` time), calling ``poll``."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise subprocess.TimeoutExpired(process.args, 0)
        try:
            return process.wait(timeout=left if poll is None else min(left, POLL_INTERVAL_S))
        except subprocess.TimeoutExpired:
            if poll is None:
                raise
            poll()


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
    poll: Callable[[], None] | None = None,
) -> tuple[GroupRun, str]:
    """Run ``argv`` with :func:`run_in_group`, stdout/stderr in ``log_stem`` + ``.out``/``.err``.

    Returns the run and the combined log text. Past ``timeout_s`` raises
    :class:`~cosim.errors.SimulationTimeout` naming ``what`` (e.g. "ngspice run of x.cir"), with
    ``tail(log)`` (the last log lines, quoted) appended and the killed group id in ``.pid``.
    """
    from cosim.errors import SimulationTimeout

    out, err = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    try:
        run = run_in_group(
            argv, cwd=cwd, stdout_path=out, stderr_path=err, timeout_s=timeout_s, poll=poll
        )
    except GroupTimeout as timeout:
        log = read_text(out) + read_text(err)
        error = SimulationTimeout(
            f"{what} exceeded its {timeout_s:g} s limit; "
            f"process group {timeout.pid} killed.\n{tail(log)}"
        )
        error.pid = timeout.pid  # type: ignore[attr-defined]
        raise error from None
    return run, read_text(out) + read_text(err)
