"""Reader for ngspice raw files (``ngspice -b -r out.raw``) into :class:`SimResult` plots.

A raw file is a sequence of plots. Each plot has a text header of ``Keyword: value`` lines
(``Title``, ``Date``, ``Command`` — new in ngspice 46 —, ``Plotname``, ``Flags``,
``No. Variables``, ``No. Points``, then ``Variables:`` with one indented line per vector)
ending with ``Binary:`` or ``Values:``. Headers are parsed by keyword, never by position.

* Binary data: ``points × variables`` little-endian float64 (real plots) or
  ``points × variables × (re, im)`` float64 pairs (complex plots), read with
  :func:`numpy.frombuffer` and reshaped.
* ASCII data: per point an index, then one value per variable (``re,im`` when complex).

The sweep vector of a complex (AC/noise) plot, ``frequency``, is returned real: ngspice
leaves its imaginary half uninitialised. Vector names go through
:func:`~cosim.spice.result.normalise_vector_name` (a DC sweep variable stays ``v(v-sweep)``,
as the in-process backend names it too).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import struct
from pathlib import Path

import numpy as np

from cosim.errors import SimulationError
from cosim.spice.result import Plot, SimResult, is_branch_flow, normalise_vector_name

_REAL_SWEEP_TYPES = {"frequency"}


_HEADER_WINDOW = 1 << 20
"""Bytes read to find one plot's header (names of all its vectors)."""


class RawFileError(SimulationError):
    """A raw file is malformed or truncated; the message names the file and plot."""


@dataclass
class _Header:
    title: str
    plotname: str
    flags: set[str]
    n_vars: int
    n_points: int
    names: list[str]
    types: list[str]
    data_kind: str  # "binary" or "values"


def read_raw(path: Path | str, backend: str = "batch") -> SimResult:
    """Parse the raw file at ``path`` into a :class:`SimResult` (one Plot per raw plot)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RawFileError(f"cannot read raw file {path}: {exc}") from exc
    return SimResult(backend=backend, plots=parse_raw(data, source=str(path)))


def parse_raw(data: bytes, source: str = "<raw>") -> list[Plot]:
    """Parse raw-file bytes into plots; ``source`` names the file in error messages."""
    plots: list[Plot] = []
    offset = 0
    while offset < len(data):
        if not data[offset:].strip():
            break
        where = f"{source}, plot {len(plots) + 1}"
        header, offset = _read_header(data, offset, where)
        if header.data_kind == "binary":
            vectors, offset = _read_binary(data, offset, header, where)
        else:
            vectors, offset = _read_ascii(data, offset, header, where)
        plots.append(_make_plot(header, vectors))
    if not plots:
        raise RawFileError(f"{source}: no plots in raw file")
    return plots


def _read_line(data: bytes, offset: int, where: str) -> tuple[str, int]:
    end = data.find(b"\n", offset)
    if end < 0:
        raise RawFileError(f"{where}: header ends before 'Binary:' or 'Values:'")
    return data[offset:end].decode("utf-8", errors="replace").rstrip("\r"), end + 1


def _header_int(fields: dict[str, str], key: str, where: str) -> int:
    try:
        return int(fields[key].split()[0])
    except (KeyError, ValueError, IndexError) as exc:
        raise RawFileError(f"{where}: header field {key!r} missing or not an integer") from exc


def _read_header(data: bytes, offset: int, where: str) -> tuple[_Header, int]:
    fields: dict[str, str] = {}
    names: list[str] = []
    types: list[str] = []
    in_variables = False
    while True:
        line, offset = _read_line(data, offset, where)
        keyword, sep, value = line.partition(":")
        key = keyword.strip().lower()
        if sep and key in ("binary", "values"):
            kind = "binary" if key == "binary" else "values"
            break
        if in_variables and line[:1] in ("\t", " ") and line.strip():
            parts = line.split()
            if len(parts) < 3:
                raise RawFileError(f"{where}: bad variable line {line!r}")
            names.append(parts[1])
            types.append(parts[2])
            continue
        if not sep:
            if line.strip():
                raise RawFileError(f"{where}: unexpected header line {line!r}")
            continue
        in_variables = key == "variables"
        fields[key] = value.strip()
    n_vars = _header_int(fields, "no. variables", where)
    n_points = _header_int(fields, "no. points", where)
    if len(names) != n_vars:
        raise RawFileError(f"{where}: header lists {len(names)} variables, expected {n_vars}")
    header = _Header(
        title=fields.get("title", ""),
        plotname=fields.get("plotname", ""),
        flags=set(fields.get("flags", "real").lower().split()),
        n_vars=n_vars,
        n_points=n_points,
        names=names,
        types=types,
        data_kind=kind,
    )
    return header, offset


def _read_binary(
    data: bytes, offset: int, header: _Header, where: str
) -> tuple[np.ndarray, int]:
    width = 2 if "complex" in header.flags else 1
    count = header.n_points * header.n_vars * width
    needed = count * 8
    if offset + needed > len(data):
        raise RawFileError(
            f"{where}: binary data truncated: need {needed} bytes for {header.n_points} points "
            f"x {header.n_vars} variables, file has {len(data) - offset}"
        )
    values = np.frombuffer(data, dtype="<f8", count=count, offset=offset)
    if width == 2:
        table = values.reshape(header.n_points, header.n_vars, 2)
        matrix = table[..., 0] + 1j * table[..., 1]
    else:
        matrix = values.reshape(header.n_points, header.n_vars).copy()
    return matrix, offset + needed


def _parse_number(token: str, complex_plot: bool, where: str) -> complex | float:
    try:
        if complex_plot:
            real, _, imag = token.partition(",")
            return complex(float(real), float(imag))
        return float(token)
    except ValueError as exc:
        raise RawFileError(f"{where}: bad value {token!r} in ASCII data") from exc


def _read_ascii(data: bytes, offset: int, header: _Header, where: str) -> tuple[np.ndarray, int]:
    complex_plot = "complex" in header.flags
    matrix = np.zeros(
        (header.n_points, header.n_vars), dtype=complex if complex_plot else float
    )
    tokens: list[str] = []
    needed = header.n_points * (header.n_vars + 1)
    while len(tokens) < needed and offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end
        line = data[offset:end].decode("utf-8", errors="replace")
        if line.startswith(("Title:", "Plotname:")):
            break
        tokens.extend(line.split())
        offset = end + 1
    if len(tokens) < needed:
        raise RawFileError(
            f"{where}: ASCII data truncated: {len(tokens)} of {needed} fields present"
        )
    for point in range(header.n_points):
        row = tokens[point * (header.n_vars + 1) : (point + 1) * (header.n_vars + 1)]
        if row[0] != str(point):
            raise RawFileError(f"{where}: expected point index {point}, found {row[0]!r}")
        matrix[point] = [_parse_number(t, complex_plot, where) for t in row[1:]]
    return matrix, offset


def _make_plot(header: _Header, matrix: np.ndarray) -> Plot:
    vectors: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for column, (name, kind) in enumerate(zip(header.names, header.types)):
        key = normalise_vector_name(name)
        values = matrix[:, column]
        if np.iscomplexobj(values) and kind.lower() in _REAL_SWEEP_TYPES:
            values = values.real.copy()
        vectors[key] = np.ascontiguousarray(values)
        units[key] = "current" if is_branch_flow(key) else kind
    return Plot(name=header.plotname, vectors=vectors, title=header.title, units=units)


def last_time_point(path: Path | str) -> float | None:
    """The scale value (time, s) of the last point ngspice has written so far, or None.

    ngspice writes a binary raw file while it simulates: each plot's header (with ``No.
    Points`` still 0 for the plot in progress) followed by the points as they are computed.
    This reads the header of the plot in progress and the last whole point behind it (not the
    data in between), so a caller can tell how far a slow transient got. None when nothing
    usable is there yet (no file, header incomplete, no point stored yet, ASCII or complex).
    """
    try:
        handle = open(path, "rb")
    except OSError:
        return None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        position, last = 0, None
        while position < size:
            handle.seek(position)
            head = handle.read(min(_HEADER_WINDOW, size - position))
            try:
                header, used = _read_header(head, 0, str(path))
            except RawFileError:
                return last
            if header.data_kind != "binary" or "complex" in header.flags:
                return last
            start, width = position + used, 8 * header.n_vars
            points = header.n_points or (size - start) // width
            if points == 0 or start + points * width > size:
                return last
            handle.seek(start + (points - 1) * width)
            value = struct.unpack("<d", handle.read(8))[0]
            if header.n_points == 0:  # the plot in progress
                return value
            last = value if header.names[0].lower() == "time" else None
            position = start + points * width
        return last
