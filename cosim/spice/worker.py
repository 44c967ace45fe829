"""The process that hosts libngspice for the in-process (shared-library) backend.

:mod:`cosim.spice.pyspice_backend` starts this file as a separate Python process
(``python worker.py FD_IN FD_OUT``) and talks to it over two pipes with
:class:`multiprocessing.connection.Connection` messages. Keeping libngspice out of the parent
means that a crash (segfault) or a hang inside the C library kills only this process; the
parent notices the broken pipe or its own deadline, kills the worker and raises.

The file deliberately imports nothing from :mod:`cosim` (the package ``__init__`` pulls in
pandas, which would double the start-up time); it needs numpy, cffi and PySpice only. Errors go
back as ``("error", kind, message, log)`` tuples and the parent maps ``kind`` to the classes of
:mod:`cosim.errors`.

Protocol: each request is ``(operation, kwargs)``; each answer is ``("ok", payload)`` or
``("error", kind, message, log)``. Operations: ``load``, ``run``, ``alter``, ``op``, ``sweep``,
``unload``, ``run_once``, ``ping``, ``quit`` (see :class:`NgSpiceEngine`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, Iterable, Sequence

import numpy as np

ERROR_PATTERN = re.compile(
    r"^(error\b|doanalyses:|run simulation\(s\) aborted|.*no such command available)"
    r"|unknown parameter|unable to find definition|unknown model type|could not be simulated",
    re.IGNORECASE,
)
"""A line of ngspice output that means the command or analysis failed."""

CONVERGENCE_PATTERN = re.compile(
    r"timestep too small|could not be simulated|iteration limit|gmin stepping failed"
    r"|source stepping failed|singular matrix|dc solution failed|transient op failed",
    re.IGNORECASE,
)
"""Words that, inside an error report, mean the solver did not converge."""

FLOW_PATTERN = re.compile(r"#flow\([^()]*\)$")
"""Shared-mode name of an OSDI device's implicit-branch current (``n1#flow(te,be)``)."""

RELEASE_HISTORY_EVERY = 5000
"""Clear ngspice's command-history structures (``ngSpice_Command(NULL)``) this often."""

VECTOR_TYPE_VOLTAGE = 3
VECTOR_TYPE_CURRENT = 4
VECTOR_TYPE_NAMES = {1: "time", 2: "frequency", 3: "voltage", 4: "current"}

ANALYSIS_NAMES = {
    "op": "Operating Point",
    "tran": "Transient Analysis",
    "dc": "DC transfer characteristic",
    "ac": "AC Analysis",
    "tf": "Transfer Function",
    "noise": "Noise Spectral Density Curves",
    "sens": "Sensitivity Analysis",
    "pz": "Pole-Zero Analysis",
    "disto": "Distortion Analysis",
}
"""Plot type prefix (``op1`` → ``op``) → the plot name ngspice writes into raw files."""


class EngineError(Exception):
    """A failure reported back to the parent as ``(kind, message, log)``."""

    def __init__(self, kind: str, message: str, log: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.log = log


def classify_line(line: str) -> str:
    """Classify one line of ngspice output: ``"error"``, ``"warning"``, ``"note"`` or ``"info"``.

    ngspice prefixes callback text with ``stdout``/``stderr``; the prefix is removed first.
    ``Note:`` lines (gmin stepping, source stepping, "No compatibility mode selected") are
    harmless progress reports even on stderr — PySpice 1.5 treats them as errors, we do not.
    """
    text = strip_stream_prefix(line).strip()
    lowered = text.lower()
    if lowered.startswith("note:"):
        return "note"
    if lowered.startswith("warning:"):
        return "warning"
    if ERROR_PATTERN.search(text):
        return "error"
    return "info"


def strip_stream_prefix(line: str) -> str:
    """Remove the ``stdout ``/``stderr `` prefix the shared library puts before each line."""
    for prefix in ("stdout ", "stderr "):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return line


def error_kind(error_lines: Sequence[str]) -> str:
    """``"convergence"`` when the error lines describe a convergence failure, else ``"simulation"``."""
    return "convergence" if any(CONVERGENCE_PATTERN.search(x) for x in error_lines) else "simulation"


def vector_key(raw_name: str, vector_type: int) -> str:
    """Map a shared-mode vector name to the raw-file spelling used by :class:`SimResult`.

    In shared mode node voltages are bare node names (``out``, ``n1#x``) and branch currents
    ``v1#branch``; raw files spell them ``v(out)``, ``v(n1#x)`` and ``i(v1)``. The current of
    an OSDI implicit branch (``n1#flow(a,b)``) becomes ``i(n1#flow(a,b))``.
    """
    name = raw_name.strip().lower()
    if name.endswith("#branch"):
        return f"i({name[: -len('#branch')]})"
    if FLOW_PATTERN.search(name):  # an OSDI implicit branch: a current, whatever its type
        return f"i({name})"
    if vector_type == VECTOR_TYPE_VOLTAGE and "(" not in name and not name.startswith("@"):
        return f"v({name})"
    return name


class NgSpiceEngine:
    """libngspice in this process, driven through a PySpice 1.5 ``NgSpiceShared`` subclass."""

    def __init__(self, library_path: str) -> None:
        os.environ["NGSPICE_LIBRARY_PATH"] = library_path
        # PySpice warns "Unsupported Ngspice version 46" (its vector-type table stops at 34);
        # cosim reads ngspice's own type codes (VECTOR_TYPE_*), so the warning is noise.
        logging.getLogger("PySpice").setLevel(logging.ERROR)
        from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi

        self._ffi = ffi
        self.lines: list[str] = []
        engine = self

        class QuietShared(NgSpiceShared):
            """NgSpiceShared whose output callback records lines instead of raising on them."""

            @staticmethod
            def _send_char(message_c: Any, ngspice_id: int, user_data: Any) -> int:
                shared = ffi.from_handle(user_data)
                message = ffi.string(message_c).decode("utf-8", "replace")
                prefix, _, content = message.partition(" ")
                (shared._stderr if prefix == "stderr" else shared._stdout).append(content)
                engine.lines.append(message)
                return 0

        QuietShared.LIBRARY_PATH = library_path
        self._shared = QuietShared(ngspice_id=0, send_data=False)
        self._lib = self._shared._ngspice_shared
        self._commands_since_release = 0
        self._osdi_loaded: set[str] = set()
        self._vector_names: dict[str, bytes] = {}
        self.circuit_loaded = False
        self.lines.clear()

    # -- low level ---------------------------------------------------------------------
    def command(self, text: str) -> list[str]:
        """Run one ngspice command; return its output lines; raise :class:`EngineError` on error."""
        start = len(self.lines)
        self._send(text)
        output = self.lines[start:]
        self.raise_on_error(output, f"command {text!r}")
        return output

    def _send(self, text: str) -> None:
        if self._commands_since_release >= RELEASE_HISTORY_EVERY:
            self._lib.ngSpice_Command(self._ffi.NULL)
            self._commands_since_release = 0
        self._commands_since_release += 1
        self._shared.clear_output()  # PySpice keeps its own copies of the lines; drop them
        start = len(self.lines)
        rc = self._lib.ngSpice_Command(text.encode("ascii"))
        if rc:  # e.g. "ngspice.dll cannot recover and awaits to be reset or detached"
            output = self.lines[start:]
            errors = [strip_stream_prefix(x).strip() for x in output if classify_line(x) == "error"]
            raise EngineError("fatal", f"ngspice command {text!r} failed fatally (rc={rc}): "
                              + " | ".join(errors), "\n".join(output))

    def raise_on_error(self, output: Sequence[str], what: str) -> None:
        errors = [strip_stream_prefix(x).strip() for x in output if classify_line(x) == "error"]
        if errors:
            kind = error_kind(errors + [strip_stream_prefix(x) for x in output])
            raise EngineError(kind, f"ngspice {what} failed: " + " | ".join(errors), "\n".join(output))

    def take_log(self) -> str:
        text = "\n".join(strip_stream_prefix(x).rstrip("\r") for x in self.lines)
        self.lines.clear()
        return text

    # -- circuit -----------------------------------------------------------------------
    def load_osdi(self, path: str) -> None:
        """Load an OSDI library once per process (``osdi`` is the shared-mode ``pre_osdi``)."""
        if path in self._osdi_loaded:
            return
        start = len(self.lines)
        self._send(f"osdi {path}")
        output = self.lines[start:]
        if any(classify_line(x) == "error" for x in output):
            raise EngineError("osdi", f"could not load OSDI file {path}: " + " | ".join(
                strip_stream_prefix(x).strip() for x in output), "\n".join(output))
        self._osdi_loaded.add(path)

    def load(self, circuit: str, osdi_files: Iterable[str] = (), commands: Iterable[str] = ()) -> None:
        """Load a circuit (no ``.control`` block): OSDI files and ``set`` commands first."""
        self.unload()
        for path in osdi_files:
            self.load_osdi(path)
        for text in commands:
            self.command(text)
        lines = [line for line in circuit.splitlines() if line.strip()] + [""]
        keep = [self._ffi.new("char[]", line.encode("utf-8")) for line in lines] + [self._ffi.NULL]
        array = self._ffi.new("char *[]", keep)
        start = len(self.lines)
        rc = self._lib.ngSpice_Circ(array)
        output = self.lines[start:]
        self.circuit_loaded = True
        if rc:
            raise EngineError("netlist", f"ngSpice_Circ returned {rc}", "\n".join(output))
        errors = [strip_stream_prefix(x).strip() for x in output if classify_line(x) == "error"]
        if errors:
            raise EngineError("netlist", "ngspice rejected the netlist: " + " | ".join(errors),
                              "\n".join(output))
        self._vector_names = {}

    def unload(self) -> None:
        """Remove the circuit and every plot (what keeps memory flat between runs)."""
        if self.circuit_loaded:
            self._send("remcirc")
            self.circuit_loaded = False
        self._send("destroy all")

    # -- results -----------------------------------------------------------------------
    def plot_names(self) -> list[str]:
        return self._string_array(self._lib.ngSpice_AllPlots())

    def _string_array(self, array: Any) -> list[str]:
        names, i = [], 0
        while array[i] != self._ffi.NULL:
            names.append(self._ffi.string(array[i]).decode("utf-8", "replace"))
            i += 1
        return names

    def _vector(self, full_name: bytes) -> tuple[np.ndarray, int]:
        info = self._lib.ngGet_Vec_Info(full_name)
        if info == self._ffi.NULL:
            raise EngineError("simulation", f"no vector {full_name.decode()!r}")
        n = info.v_length
        if info.v_compdata != self._ffi.NULL:
            pairs = np.frombuffer(self._ffi.buffer(info.v_compdata, 16 * n), dtype=np.float64)
            values = pairs[0::2] + 1j * pairs[1::2]
        else:
            values = np.frombuffer(self._ffi.buffer(info.v_realdata, 8 * n), dtype=np.float64).copy()
        return values, info.v_type

    def read_plot(self, plot_type: str) -> dict[str, Any]:
        """All vectors of one plot as ``{name, type, vectors, units}``."""
        vectors: dict[str, np.ndarray] = {}
        units: dict[str, str] = {}
        # ngSpice_AllVecs lists the newest vector first; reverse to the raw-file order
        # (scale vector first: time, frequency, v(v-sweep)).
        for raw in reversed(self._string_array(self._lib.ngSpice_AllVecs(plot_type.encode()))):
            values, vtype = self._vector(f"{plot_type}.{raw}".encode())
            if vtype == 2:  # ngspice leaves the imaginary half of the AC frequency scale unset
                values = values.real.copy()
            key = vector_key(raw, vtype)
            vectors[key] = values
            flow = FLOW_PATTERN.search(raw.strip().lower()) is not None
            units[key] = "current" if flow else VECTOR_TYPE_NAMES.get(vtype, "notype")
        prefix = re.sub(r"\d+$", "", plot_type)
        return {"name": ANALYSIS_NAMES.get(prefix, plot_type), "type": plot_type,
                "vectors": vectors, "units": units}

    def run(self) -> list[dict[str, Any]]:
        """Run the deck's analyses; return every new plot, then destroy the plots."""
        if not self.circuit_loaded:
            raise EngineError("simulation", "no circuit loaded")
        before = set(self.plot_names())
        self.command("run")
        new = [p for p in reversed(self.plot_names()) if p not in before and p != "const"]
        plots = [self.read_plot(p) for p in new]
        self._send("destroy all")
        if not plots:
            raise EngineError("simulation", "the netlist produced no analysis results "
                              "(no .op/.dc/.tran/.ac card?)")
        return plots

    def alter(self, changes: Sequence[tuple[str, str, str]]) -> None:
        """Apply ``(device, parameter or "", value text)`` changes with ngspice ``alter``."""
        for device, parameter, value in changes:
            self.command(f"alter {device} {parameter} = {value}" if parameter
                         else f"alter {device} = {value}")

    def op(self, names: Sequence[str] | None = None,
           changes: Sequence[tuple[str, str, str]] = ()) -> dict[str, Any]:
        """Apply ``changes``, solve the operating point and return the whole plot, or with
        ``names`` only those values as ``{"values": array}`` (the fast path)."""
        if not self.circuit_loaded:
            raise EngineError("simulation", "no circuit loaded")
        self.alter(changes)
        try:
            self.command("op")
            if names is None:
                return self.read_plot(self._ffi.string(self._lib.ngSpice_CurPlot()).decode())
            return {"values": np.array([self._vector(self._raw_name(n))[0][0] for n in names])}
        finally:
            self._send("destroy all")

    def _raw_name(self, key: str) -> bytes:
        if key not in self._vector_names:
            plot = self._ffi.string(self._lib.ngSpice_CurPlot()).decode()
            for raw in self._string_array(self._lib.ngSpice_AllVecs(plot.encode())):
                _, vtype = self._vector(f"{plot}.{raw}".encode())
                self._vector_names[vector_key(raw, vtype)] = raw.encode()
            if key not in self._vector_names:
                raise EngineError("vector", f"no vector {key!r} in the operating point; have "
                                  f"{sorted(self._vector_names)}")
        return self._vector_names[key]

    def sweep(self, change_sets: Sequence[Sequence[tuple[str, str, str]]],
              names: Sequence[str]) -> np.ndarray:
        """For each change set: alter, solve the operating point, read ``names``."""
        out = np.empty((len(change_sets), len(names)))
        for row, changes in enumerate(change_sets):
            out[row] = self.op(names, changes)["values"]
        return out

    def run_once(self, circuit: str, osdi_files: Sequence[str], commands: Sequence[str]) -> Any:
        """Load, run, unload: the one-shot path."""
        try:
            self.load(circuit, osdi_files, commands)
            return self.run()
        finally:
            self.unload()


def serve(conn_in: Any, conn_out: Any, engine: NgSpiceEngine) -> None:
    """Answer requests until ``quit`` or until the parent closes the pipe."""
    while True:
        try:
            operation, kwargs = conn_in.recv()
        except (EOFError, OSError):
            return
        if operation == "quit":
            conn_out.send(("ok", None))
            return
        try:
            if operation == "ping":
                payload: Any = os.getpid()
            else:
                payload = getattr(engine, operation)(**kwargs)
            answer = ("ok", payload, engine.take_log())
        except EngineError as exc:
            answer = ("error", exc.kind, exc.message, exc.log or engine.take_log())
        except Exception as exc:  # report, keep serving: the parent decides to recycle
            answer = ("error", "internal", f"{type(exc).__name__}: {exc}", engine.take_log())
        conn_out.send(answer)


def main(argv: Sequence[str]) -> int:
    from multiprocessing.connection import Connection

    fd_in, fd_out, library_path = int(argv[1]), int(argv[2]), argv[3]
    conn_in, conn_out = Connection(fd_in, writable=False), Connection(fd_out, readable=False)
    try:
        engine = NgSpiceEngine(library_path)
    except Exception as exc:
        conn_out.send(("error", "toolchain", f"cannot start libngspice from {library_path}: {exc}", ""))
        return 1
    conn_out.send(("ok", os.getpid(), engine.take_log()))
    serve(conn_in, conn_out, engine)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
