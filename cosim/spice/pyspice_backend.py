"""In-process ngspice backend: libngspice (shared mode) through PySpice 1.5.

Two entry points, both returning :class:`~cosim.spice.result.SimResult` with
``backend="pyspice"``:

* :func:`run_pyspice` — one netlist, its analyses, the vectors; for isolated runs.
* :class:`InProcessCircuit` — load a circuit once, then ``alter`` sources or instance
  parameters and re-solve the operating point many times (the S4D step loop). A fast path
  (:meth:`InProcessCircuit.op_values`, :meth:`InProcessCircuit.sweep`) returns numpy arrays
  of chosen vectors instead of building a result object per step.

libngspice runs in a separate worker process (:mod:`cosim.spice.worker`), so a crash or hang
in the C library cannot take the caller down: a timeout kills the worker and raises
:class:`~cosim.errors.SimulationTimeout`, a crash raises :class:`~cosim.errors.SimulationError`.
Per request the pipe costs tens of microseconds (see ``benchmarks/bench_pyspice.py``).

Shared mode and ``.control`` blocks: the netlist's ``.control`` … ``.endc`` block (from
``templates/base.cir.j2``) is removed before the circuit is handed to ``ngSpice_Circ``; its
``pre_osdi FILE`` lines become the shared-mode command ``osdi FILE`` (run once per worker
per file, before the circuit is parsed; a relative path is resolved beside the netlist file)
and its ``set`` / ``unset`` / ``option`` lines are run as commands if they hold no shell or
substitution syntax. Any other control command (``run``, ``write``, ``shell``, …) is refused
with a :class:`~cosim.errors.NetlistError`: analyses belong in dot cards (``.op``, ``.tran``).
Included files are read, checked and spliced in by :mod:`cosim.spice.deck`, and the worker
runs in an empty private folder (no ``.spiceinit``): a netlist cannot make this backend run a
shell command (``docs/security.md``).

Memory: after every run the circuit and all plots are removed (``remcirc``, ``destroy all``);
the worker serving :func:`run_pyspice` is additionally replaced after
:data:`RECYCLE_AFTER_RUNS` runs. See ``docs/backends.md`` for the measured figures.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cosim.errors import (
    ConvergenceError,
    CosimError,
    NetlistError,
    SimulationError,
    SimulationTimeout,
    ToolchainError,
)
from cosim.spice._process import track_folder, track_process, untrack_folder, untrack_process
from cosim.spice.deck import SourceLine, check_title, flatten
from cosim.spice.render import PATH_PATTERN, format_number, ident
from cosim.spice.result import Plot, SimResult, normalise_vector_name

log = logging.getLogger(__name__)

WORKER_FILE = Path(__file__).with_name("worker.py")
LIBRARY_GLOBS = (
    "/usr/lib/*/libngspice.so.0",
    "/usr/lib/libngspice.so.0",
    "/usr/local/lib/libngspice.so.0",
    "/usr/lib64/libngspice.so.0",
)
RECYCLE_AFTER_RUNS = 500
"""Runs after which :func:`run_pyspice` replaces its worker process (bounds any slow leak)."""
STARTUP_TIMEOUT_S = 60.0
"""Seconds a new worker may take to import PySpice and initialise libngspice."""
ALLOWED_CONTROL = ("set", "unset", "option", "options", "pre_osdi", "osdi")
"""Control-block commands the shared-mode backend understands (others are refused)."""
SAFE_COMMAND_RE = re.compile(r"[A-Za-z0-9_.,=+\-() \t]*")
"""Characters allowed in a ``set``/``option`` line: nothing ngspice substitutes (backquotes,
``$``, ``!``), redirects (``<``, ``>``) or globs."""

RECYCLE_KINDS = ("osdi", "fatal", "internal", "")
"""Failures after which libngspice may be in a bad state: the worker is replaced."""

_ERROR_CLASSES: dict[str, type[SimulationError] | type[ToolchainError]] = {
    "convergence": ConvergenceError,
    "toolchain": ToolchainError,
}


def find_libngspice() -> Path:
    """Path of ``libngspice.so.0``: ``$NGSPICE_LIBRARY_PATH`` if set, else the system copy."""
    configured = os.environ.get("NGSPICE_LIBRARY_PATH")
    if configured:
        if Path(configured).is_file():
            return Path(configured)
        raise ToolchainError(
            f"NGSPICE_LIBRARY_PATH={configured} does not exist; unset it or point it at "
            "libngspice.so.0 (remedy: bash scripts/setup.sh installs libngspice0)"
        )
    for pattern in LIBRARY_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return Path(hits[0])
    raise ToolchainError(
        "libngspice.so.0 not found under /usr/lib/*/ (remedy: bash scripts/setup.sh, which "
        "installs libngspice0 with OSDI support)"
    )


# --------------------------------------------------------------------------------------
# netlist preparation
# --------------------------------------------------------------------------------------


@dataclass
class PreparedNetlist:
    """A netlist split for shared mode: the circuit text and what its control block asked."""

    circuit: str
    osdi_files: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    title: str = ""


def prepare_netlist(netlist: str | Path, base_dir: Path | None = None) -> PreparedNetlist:
    """Remove ``.control`` blocks, translate their commands and splice in included files.

    ``netlist`` is netlist *text* if a ``str``, a *file* if a ``Path``. Relative ``.include``,
    ``.lib`` and ``pre_osdi`` paths are resolved against the netlist file's folder, for text
    against ``base_dir`` (default: the working directory). Raises :class:`NetlistError` naming
    the file and line for an unsupported control command or character, an unterminated block,
    a missing OSDI or included file, or anything that would make ngspice run a command
    (see :mod:`cosim.spice.deck`).
    """
    if isinstance(netlist, Path):
        from cosim.spice.netlist_io import read_netlist_file

        try:
            return _prepare_text(read_netlist_file(netlist), netlist.resolve().parent, netlist)
        except NetlistError as exc:
            if str(netlist) in str(exc):
                raise
            raise NetlistError(f"{netlist}: {exc}") from exc
    return _prepare_text(netlist, Path.cwd() if base_dir is None else Path(base_dir), None)


def _prepare_text(text: str, folder: Path, top: Path | None) -> PreparedNetlist:
    if not isinstance(text, str) or not text.strip():
        raise NetlistError("empty netlist")
    prepared = PreparedNetlist(circuit="")
    circuit_lines: list[SourceLine] = []
    in_control = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        lowered = stripped.lower()
        if lowered.startswith(".control"):
            in_control = True
        elif lowered.startswith(".endc"):
            if not in_control:
                raise NetlistError(f"line {number}: .endc without .control")
            in_control = False
        elif in_control:
            _control_line(prepared, stripped, number, folder)
        else:
            circuit_lines.append(SourceLine(line, "", number))
    if in_control:
        raise NetlistError("the .control block has no closing .endc")
    if not circuit_lines:
        raise NetlistError("the netlist holds only a .control block")
    check_title(circuit_lines[0].text, "")
    body = [x.text for x in flatten(circuit_lines[1:], folder, top)]
    if not any(x.strip().lower() == ".end" for x in body):
        body.append(".end")
    prepared.circuit = "\n".join([circuit_lines[0].text, *body])
    prepared.title = circuit_lines[0].text.lstrip("* ").strip()
    return prepared


def _control_line(prepared: PreparedNetlist, stripped: str, number: int, folder: Path) -> None:
    if not stripped or stripped.startswith(("*", "#")):
        return
    verb, _, rest = stripped.partition(" ")
    verb = verb.lower()
    if verb.startswith("."):
        raise NetlistError(f"line {number}: card {verb} inside the .control block (missing .endc?)")
    if verb not in ALLOWED_CONTROL:
        raise NetlistError(
            f"line {number}: control command {verb!r} is not supported by the pyspice backend "
            f"(allowed: {', '.join(ALLOWED_CONTROL)}; put analyses in dot cards such as .op)"
        )
    if ";" in stripped:
        raise NetlistError(f"line {number}: ';' (several commands on one line) is not allowed")
    if verb in ("pre_osdi", "osdi"):
        osdi = rest.strip().strip('"')
        resolved = Path(osdi) if os.path.isabs(osdi) else folder / osdi
        if not PATH_PATTERN.fullmatch(str(resolved)):
            raise NetlistError(
                f"line {number}: OSDI path {osdi!r} may use only letters, digits and _./+- "
                "(ngspice would expand other characters)"
            )
        if not resolved.is_file():
            raise NetlistError(f"line {number}: OSDI file {resolved} does not exist")
        prepared.osdi_files.append(str(resolved))
    elif not SAFE_COMMAND_RE.fullmatch(stripped):
        bad = sorted({c for c in stripped if not SAFE_COMMAND_RE.fullmatch(c)})
        raise NetlistError(
            f"line {number}: {verb} line holds {' '.join(repr(c) for c in bad)}: ngspice "
            "expands or runs such syntax (backquotes run shell commands, > writes files); "
            "allowed are letters, digits, spaces and _.,=+-()"
        )
    else:
        prepared.commands.append(stripped)


def change_triples(changes: Mapping[Any, float]) -> list[tuple[str, str, str]]:
    """Turn ``{"v1": 0.3, ("n1", "r"): 2e3}`` into checked ``(device, parameter, value)`` text.

    Names must be identifiers and values finite reals (formatted with 17 significant digits,
    so a float round-trips exactly), so nothing can smuggle a command into ``alter``.
    """
    triples = []
    for key, value in changes.items():
        device, parameter = (key, "") if isinstance(key, str) else tuple(key)
        triples.append(
            (
                str(ident(device)).lower(),
                str(ident(parameter)).lower() if parameter else "",
                str(format_number(value, 17)),
            )
        )
    return triples


# --------------------------------------------------------------------------------------
# worker process
# --------------------------------------------------------------------------------------


_warned_spiceinit: set[str] = set()


def user_spiceinit() -> Path | None:
    """The account's ``~/.spiceinit`` if it exists (libngspice reads it at start-up; it finds
    the home folder in the password database, so ``HOME`` does not matter)."""
    import pwd

    try:
        home = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:
        return None
    path = Path(home) / ".spiceinit"
    return path if path.is_file() else None


def _warn_user_spiceinit() -> None:
    found = user_spiceinit()
    if found is not None and str(found) not in _warned_spiceinit:
        _warned_spiceinit.add(str(found))
        log.warning("%s exists: libngspice (the pyspice backend) runs its commands at start-up, "
                    "the batch backend does not; empty or remove it for identical runs", found)


class NgSpiceWorker:
    """One worker process hosting libngspice; requests go over a pipe, with deadlines."""

    def __init__(self, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.library_path = find_libngspice()
        _warn_user_spiceinit()
        self.requests = 0
        self._log_file = tempfile.TemporaryFile(prefix="cosim-ngspice-worker-")
        # libngspice reads ./.spiceinit at start-up (its commands may run shell commands):
        # the worker starts, and stays, in an empty private folder
        self.cwd = tempfile.mkdtemp(prefix="cosim-ngspice-cwd-")
        request_r, request_w = os.pipe()
        answer_r, answer_w = os.pipe()
        env = dict(os.environ, OMP_NUM_THREADS="1", NGSPICE_LIBRARY_PATH=str(self.library_path))
        try:
            self._process = subprocess.Popen(
                [sys.executable, str(WORKER_FILE), str(request_r), str(answer_w),
                 str(self.library_path)],
                pass_fds=(request_r, answer_w),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                close_fds=True,
            )
        except BaseException:
            shutil.rmtree(self.cwd, ignore_errors=True)
            raise
        finally:
            os.close(request_r)
            os.close(answer_w)
        track_process(self._process)  # SIGTERM of a CLI command kills it (stop_everything)
        track_folder(self.cwd)
        self._send_conn = Connection(request_w, readable=False)
        self._recv_conn = Connection(answer_r, writable=False)
        self.pid = self._process.pid
        # a worker whose owner is garbage-collected unclosed is killed, not left running
        weakref.finalize(self, _reap, self._process, self.cwd)
        self._receive(startup_timeout_s, "starting libngspice")

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def request(self, operation: str, timeout_s: float | None = None, **kwargs: Any) -> tuple[Any, str]:
        """Send one request; return ``(payload, ngspice log)``; raise on error, timeout, crash."""
        if not self.alive:
            raise SimulationError(f"ngspice worker (pid {self.pid}) is no longer running")
        self.requests += 1
        try:
            self._send_conn.send((operation, kwargs))
        except (BrokenPipeError, OSError) as exc:
            self._died(f"while sending {operation!r}", exc)
        try:
            return self._receive(timeout_s, operation)
        except CosimError:
            raise
        except BaseException:
            # interrupted (KeyboardInterrupt, ...) while the worker still works on the request:
            # its late answer would be taken for the next request's, so the worker must go
            self.kill()
            raise

    def _receive(self, timeout_s: float | None, what: str) -> tuple[Any, str]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                ready = self._recv_conn.poll(wait)
                if ready:
                    answer = self._recv_conn.recv()
                    break
            except (EOFError, OSError) as exc:
                self._died(f"during {what!r}", exc)
            if not self.alive and not self._recv_conn.poll(0):
                self._died(f"during {what!r}", None)
            if deadline is not None and time.monotonic() >= deadline:
                self.kill()
                raise SimulationTimeout(
                    f"ngspice (in-process backend) did not finish {what!r} within {timeout_s:g} s; "
                    f"its worker process {self.pid} was killed"
                )
        if answer[0] == "ok":
            return answer[1], answer[2]
        _, kind, message, log = answer
        error = _ERROR_CLASSES.get(kind, SimulationError)(message)
        error.log = log  # type: ignore[attr-defined]
        error.kind = kind  # type: ignore[attr-defined]
        raise error

    def _died(self, what: str, cause: BaseException | None) -> None:
        self.kill()
        code = self._process.returncode
        raise SimulationError(
            f"ngspice worker process {self.pid} died {what} (exit code {code}); "
            f"its output ends: {self.output_tail()!r}"
        ) from cause

    def output_tail(self, n_chars: int = 400) -> str:
        """The end of what libngspice printed directly to the worker's stdout/stderr."""
        try:
            self._log_file.seek(0)
            return self._log_file.read().decode("utf-8", "replace")[-n_chars:].strip()
        except (OSError, ValueError):
            return ""

    def rss_bytes(self) -> int:
        """Resident memory of the worker process (where libngspice lives), in bytes."""
        import psutil

        return psutil.Process(self.pid).memory_info().rss

    def kill(self) -> None:
        if self.alive:
            self._process.kill()
        self._process.wait()
        self._close_pipes()
        shutil.rmtree(self.cwd, ignore_errors=True)
        untrack_process(self._process)
        untrack_folder(self.cwd)

    def close(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to quit; kill it if it does not within ``timeout_s``."""
        if self.alive:
            try:
                self._send_conn.send(("quit", {}))
                self._process.wait(timeout=timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def _close_pipes(self) -> None:
        for conn in (self._send_conn, self._recv_conn):
            if not conn.closed:
                conn.close()
        if not self._log_file.closed:
            self._log_file.close()


def _reap(process: subprocess.Popen[bytes], cwd: str) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    shutil.rmtree(cwd, ignore_errors=True)


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


def _to_plot(raw: Mapping[str, Any], title: str) -> Plot:
    vectors = {normalise_vector_name(k): np.asarray(v) for k, v in raw["vectors"].items()}
    units = {normalise_vector_name(k): v for k, v in raw["units"].items()}
    return Plot(name=raw["name"], vectors=vectors, title=title, units=units)


def _to_result(plots: Iterable[Mapping[str, Any]], title: str, log: str, start: float,
               meta: dict[str, object]) -> SimResult:
    plots = list(plots)
    meta = dict(meta, plot_types=[p["type"] for p in plots])
    return SimResult(backend="pyspice", plots=[_to_plot(p, title) for p in plots], log=log,
                     elapsed_s=time.perf_counter() - start, meta=meta)


# --------------------------------------------------------------------------------------
# one-shot runs
# --------------------------------------------------------------------------------------

_shared_lock = threading.Lock()
_shared_worker: NgSpiceWorker | None = None
_shared_runs = 0


def _shared(recycle_after: int) -> NgSpiceWorker:
    global _shared_worker, _shared_runs
    if _shared_worker is not None and (not _shared_worker.alive or _shared_runs >= recycle_after):
        _shared_worker.close()
        _shared_worker = None
    if _shared_worker is None:
        _shared_worker = NgSpiceWorker()
        _shared_runs = 0
    return _shared_worker


def shared_worker_pid() -> int | None:
    """Process id of the worker serving :func:`run_pyspice` (None before the first run)."""
    return _shared_worker.pid if _shared_worker is not None and _shared_worker.alive else None


def close_shared_worker() -> None:
    """Stop the worker serving :func:`run_pyspice` (a new one starts on the next run)."""
    global _shared_worker
    with _shared_lock:
        if _shared_worker is not None:
            _shared_worker.close()
            _shared_worker = None


atexit.register(close_shared_worker)


def run_pyspice(netlist_text: str | Path, *, timeout_s: float | None = None,
                recycle_after: int = RECYCLE_AFTER_RUNS) -> SimResult:
    """Run a netlist's analyses in libngspice (shared mode) and return all its plots.

    ``netlist_text`` is netlist text, or a ``Path`` to a netlist file. Relative ``.include``
    paths resolve against the working directory the worker was started in (the caller's).

    ``timeout_s`` (seconds, None = no limit) bounds the run; past it the worker process is
    killed and :class:`SimulationTimeout` raised. Errors in the ngspice output raise
    :class:`ConvergenceError` (no convergence) or :class:`SimulationError` (anything else);
    ``Note:`` and ``Warning:`` lines do not. The worker is shared between calls (start-up
    costs ~0.5 s) and replaced after ``recycle_after`` runs or after any failure that may
    have left libngspice in a bad state (crash, timeout, OSDI load error).
    """
    global _shared_runs, _shared_worker
    prepared = prepare_netlist(netlist_text)
    start = time.perf_counter()
    with _shared_lock:
        worker = _shared(recycle_after)
        _shared_runs += 1
        try:
            plots, log = worker.request("run_once", timeout_s, circuit=prepared.circuit,
                                        osdi_files=prepared.osdi_files, commands=prepared.commands)
        except SimulationError as exc:
            if getattr(exc, "kind", "") in RECYCLE_KINDS or not worker.alive:
                worker.close()
                _shared_worker = None
            raise
    return _to_result(plots, prepared.title, log, start, {"worker_pid": worker.pid})


# --------------------------------------------------------------------------------------
# load once, re-solve many times
# --------------------------------------------------------------------------------------


class InProcessCircuit:
    """A circuit loaded once into its own libngspice worker, re-solved after ``alter``\\ s.

    Usage::

        with InProcessCircuit(netlist_text, timeout_s=10) as circuit:
            circuit.alter("vin1", 0.2)                 # source DC value, V or A
            circuit.alter_many({("n3", "r"): 2e3})     # instance parameter
            result = circuit.op()                      # SimResult, one "Operating Point" plot
            values = circuit.op_values(["v(out)"])     # fast path: numpy array

    Pending alters are sent together with the next solve (one pipe round trip per step).
    They persist: each solve starts from the values set so far. ``timeout_s`` (seconds)
    bounds each request; a timeout or a crash of the worker ends the session.
    """

    def __init__(self, netlist_text: str | Path, *, timeout_s: float | None = None) -> None:
        self.prepared = prepare_netlist(netlist_text)
        self.timeout_s = timeout_s
        self._pending: list[tuple[str, str, str]] = []
        self._worker: NgSpiceWorker | None = None
        self.load_log = ""

    # -- life cycle ----------------------------------------------------------------------
    def open(self) -> "InProcessCircuit":
        """Start the worker and load the circuit (done by ``with``)."""
        if self._worker is None:
            self._worker = NgSpiceWorker()
            try:
                _, self.load_log = self._request("load", circuit=self.prepared.circuit,
                                                 osdi_files=self.prepared.osdi_files,
                                                 commands=self.prepared.commands)
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Unload the circuit and stop the worker."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self) -> "InProcessCircuit":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self._live_worker().pid

    def rss_bytes(self) -> int:
        """Resident memory of the worker hosting libngspice, in bytes."""
        return self._live_worker().rss_bytes()

    def _live_worker(self) -> NgSpiceWorker:
        if self._worker is None:
            raise SimulationError("InProcessCircuit is not open (use it in a 'with' block)")
        return self._worker

    def _request(self, operation: str, **kwargs: Any) -> tuple[Any, str]:
        worker = self._live_worker()
        try:
            return worker.request(operation, self.timeout_s, **kwargs)
        except SimulationError as exc:
            if getattr(exc, "kind", "") in RECYCLE_KINDS or not worker.alive:
                worker.close()
                self._worker = None
            raise

    # -- changes -------------------------------------------------------------------------
    def alter(self, name: str, value: float, parameter: str | None = None) -> None:
        """Set source ``name``'s DC value (V or A), or its instance ``parameter``, to ``value``."""
        self._pending.extend(change_triples({(name, parameter) if parameter else name: value}))

    def alter_many(self, changes: Mapping[Any, float]) -> None:
        """Several alters: keys ``"v1"`` (source value) or ``("n1", "r")`` (parameter)."""
        self._pending.extend(change_triples(changes))

    def _take_pending(self) -> list[tuple[str, str, str]]:
        pending, self._pending = self._pending, []
        return pending

    # -- solves --------------------------------------------------------------------------
    def op(self) -> SimResult:
        """Solve the operating point with the pending alters; return every vector."""
        start = time.perf_counter()
        plot, log = self._request("op", changes=self._take_pending())
        return _to_result([plot], self.prepared.title, log, start, {"worker_pid": self.pid})

    def op_values(self, names: Sequence[str]) -> np.ndarray:
        """Fast path: solve the operating point, return the values of ``names`` (V, A)."""
        keys = [normalise_vector_name(n) for n in names]
        payload, _ = self._request("op", names=keys, changes=self._take_pending())
        return payload["values"]

    def sweep(self, change_sets: Sequence[Mapping[Any, float]], names: Sequence[str]) -> np.ndarray:
        """Solve once per change set in one request; array of shape (sets, names).

        For open-loop input sequences; a loop whose next input depends on this output must
        call :meth:`op_values` per step.
        """
        keys = [normalise_vector_name(n) for n in names]
        sets = [change_triples(c) for c in change_sets]
        if self._pending and sets:
            sets[0] = self._take_pending() + sets[0]
        payload, _ = self._request("sweep", change_sets=sets, names=keys)
        return payload

    def run(self) -> SimResult:
        """Run the netlist's own analyses (``.op``, ``.tran``, …) with the current values."""
        start = time.perf_counter()
        if self._pending:
            self._request("alter", changes=self._take_pending())
        plots, log = self._request("run")
        return _to_result(plots, self.prepared.title, log, start, {"worker_pid": self.pid})


__all__ = [
    "InProcessCircuit",
    "NgSpiceWorker",
    "PreparedNetlist",
    "close_shared_worker",
    "find_libngspice",
    "prepare_netlist",
    "run_pyspice",
    "shared_worker_pid",
]
