"""Readers for the two tidy measurement layouts (docs/file-formats.md).

* cycle table: ``device, cycle, HRS_ohm, US_V, LRS_ohm, UR_V`` (one row per device-cycle);
* raw I–V loops: ``device, cycle, t_s (optional), V, I`` (one row per sample).

Column names are matched case-insensitively against aliases (``dev``, ``cycle_index``,
``R_HRS``, ``Vset``, ``voltage`` ...). A unit may follow the name after ``_`` or a space, or
stand in brackets (``HRS [kohm]``, ``I (uA)``); values are converted to SI (Ω, V, A, s).
Every problem with the file itself raises :class:`~cosim.errors.DataFileError` naming the
file, the line and the column; problems with the *data* (NaNs, duplicates, failed
switching ...) are left for :mod:`cosim.fit.qc` to report.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cosim.fileio import write_frame_atomic
from cosim.errors import DataFileError

Format = Literal["auto", "cycles", "iv"]

CYCLE_FEATURES: tuple[str, ...] = ("HRS_ohm", "US_V", "LRS_ohm", "UR_V")
"""Canonical feature columns of a cycle table, SI units, in docs/device-model.md order."""

#: canonical column → (dimension, squashed lower-case aliases)
_COLUMNS: dict[str, tuple[str, frozenset[str]]] = {
    "device": ("none", frozenset({"device", "dev", "deviceid", "devid", "devicename", "dut",
                                  "cell", "cellid", "devicenr", "deviceno"})),
    "cycle": ("none", frozenset({"cycle", "cyc", "cycleindex", "cycleidx", "cycleno",
                                 "cyclenr", "cyclenumber", "cycleid", "loop", "loopindex",
                                 "sweep", "sweepindex"})),
    "HRS_ohm": ("resistance", frozenset({"hrs", "rhrs", "hrsr", "roff", "hrsresistance",
                                         "resistancehrs"})),
    "LRS_ohm": ("resistance", frozenset({"lrs", "rlrs", "lrsr", "ron", "lrsresistance",
                                         "resistancelrs"})),
    "US_V": ("voltage", frozenset({"us", "uset", "vset", "setvoltage", "vsetthreshold",
                                   "setthreshold", "vthset"})),
    "UR_V": ("voltage", frozenset({"ur", "ureset", "vreset", "resetvoltage",
                                   "vresetthreshold", "resetthreshold", "vthreset"})),
    "t_s": ("time", frozenset({"t", "time", "timestamp", "elapsedtime"})),
    "V": ("voltage", frozenset({"v", "u", "voltage", "vbias", "bias", "vapplied",
                                "appliedvoltage", "vtop", "vte"})),
    "I": ("current", frozenset({"i", "current", "imeas", "measuredcurrent", "itop", "ite"})),
}

#: unit spelling (lower-case, except the case-sensitive ones below) → (dimension, factor to SI)
_UNITS: dict[str, tuple[str, float]] = {
    "v": ("voltage", 1.0), "mv": ("voltage", 1e-3), "uv": ("voltage", 1e-6),
    "µv": ("voltage", 1e-6), "volt": ("voltage", 1.0), "volts": ("voltage", 1.0),
    "ohm": ("resistance", 1.0), "ohms": ("resistance", 1.0), "ω": ("resistance", 1.0),
    "kohm": ("resistance", 1e3), "kohms": ("resistance", 1e3), "kω": ("resistance", 1e3),
    "megaohm": ("resistance", 1e6), "gohm": ("resistance", 1e9),
    "a": ("current", 1.0), "ma": ("current", 1e-3), "ua": ("current", 1e-6),
    "µa": ("current", 1e-6), "na": ("current", 1e-9), "pa": ("current", 1e-12),
    "amp": ("current", 1.0), "amps": ("current", 1.0),
    "s": ("time", 1.0), "sec": ("time", 1.0), "ms": ("time", 1e-3), "us": ("time", 1e-6),
    "µs": ("time", 1e-6), "ns": ("time", 1e-9), "min": ("time", 60.0),
}
#: spellings whose case matters (mega vs milli)
_UNITS_CASED: dict[str, tuple[str, float]] = {
    "Mohm": ("resistance", 1e6), "MOhm": ("resistance", 1e6), "MΩ": ("resistance", 1e6),
    "Mohms": ("resistance", 1e6),
}
_AMBIGUOUS_UNITS = {"mohm", "mohms", "mω"}

_NA_STRINGS = ["", "nan", "NaN", "NAN", "NA", "N/A", "n/a", "#N/A", "null", "NULL", "None",
               "none", "-", "--", "?", "inf", "-inf", "Inf", "-Inf", "INF", "-INF"]


@dataclass(frozen=True)
class ColumnSpec:
    """How one file column maps onto a canonical column."""

    header: str
    """The header as written in the file."""
    canonical: str
    """Canonical name (``device``, ``cycle``, ``HRS_ohm``, ``V`` ...)."""
    factor: float
    """Multiply file values by this to get SI units."""
    unit: str
    """Unit as written (empty when none was given and SI was assumed)."""


@dataclass
class Measurement:
    """A measurement file read into canonical columns (SI units).

    ``frame`` has the columns ``device`` (str), ``cycle`` (int64), then either the four
    features of :data:`CYCLE_FEATURES` or ``V``, ``I`` (and ``t_s`` when the file had a time
    column), plus ``line``: the 1-based line of the file each row came from.
    """

    path: Path
    kind: Literal["cycles", "iv"]
    frame: pd.DataFrame
    columns: list[ColumnSpec]
    ignored_columns: list[str]


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-./]+", "", name.strip().lower())


def _lookup_unit(unit: str, file: Path, header: str) -> tuple[str, float] | None:
    unit = unit.strip()
    if unit in _UNITS_CASED:
        return _UNITS_CASED[unit]
    low = unit.lower().replace("μ", "µ")
    if low in _AMBIGUOUS_UNITS:
        raise DataFileError(
            f"{file}: column {header!r}: unit {unit!r} is ambiguous (milli- or mega-ohm?); "
            "write 'Mohm' for MΩ")
    return _UNITS.get(low)


def _canonical_of(base: str) -> str | None:
    squashed = _squash(base)
    for canonical, (_dim, aliases) in _COLUMNS.items():
        if squashed in aliases or squashed == _squash(canonical):
            return canonical
    return None


def parse_header(header: str, file: Path) -> ColumnSpec | None:
    """Map one column header to a :class:`ColumnSpec`; None when it is not a known column.

    Raises :class:`DataFileError` when the name is known but its unit is unknown or of the
    wrong dimension (e.g. ``HRS_mV``).
    """
    text = header.strip().lstrip("\ufeff")
    candidates: list[tuple[str, str]] = []
    bracket = re.fullmatch(r"(.+?)\s*[\[(]\s*([^\])]*)\s*[\])]\s*", text)
    if bracket:
        candidates.append((bracket.group(1), bracket.group(2)))
    else:
        split = re.fullmatch(r"(.+?)[_\s]+([^_\s]+)", text)
        if split:
            candidates.append((split.group(1), split.group(2)))
        candidates.append((text, ""))
    for base, unit in candidates:
        canonical = _canonical_of(base)
        if canonical is None:
            continue
        dimension = _COLUMNS[canonical][0]
        if unit == "":
            return ColumnSpec(header, canonical, 1.0, "")
        found = _lookup_unit(unit, file, header)
        if found is None:
            if bracket:
                raise DataFileError(f"{file}: column {header!r}: unknown unit {unit!r}")
            continue  # e.g. "cycle_index": the suffix was part of the name
        unit_dim, factor = found
        if dimension == "none" or unit_dim != dimension:
            raise DataFileError(
                f"{file}: column {header!r}: unit {unit!r} is a {unit_dim} unit, "
                f"but {canonical!r} needs {dimension if dimension != 'none' else 'no unit'}")
        return ColumnSpec(header, canonical, factor, unit)
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not raw.strip():
        raise DataFileError(f"{path}: file is empty")
    if b"\x00" in raw[:65536]:
        raise DataFileError(f"{path}: not a text CSV file (contains NUL bytes)")
    return raw


def _delimiter(first_line: str) -> str:
    counts = {sep: first_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] > 0 else ","


def _header_specs(headers: list[str], path: Path) -> tuple[dict[str, ColumnSpec], list[str]]:
    specs: dict[str, ColumnSpec] = {}
    ignored: list[str] = []
    for header in headers:
        spec = parse_header(str(header), path)
        if spec is None:
            ignored.append(str(header))
            continue
        if spec.canonical in specs:
            raise DataFileError(
                f"{path}: columns {specs[spec.canonical].header!r} and {header!r} both mean "
                f"{spec.canonical!r}; keep one")
        specs[spec.canonical] = spec
    return specs, ignored


def _detect_kind(specs: dict[str, ColumnSpec], fmt: Format, path: Path) -> str:
    has_cycles = any(c in specs for c in CYCLE_FEATURES)
    has_iv = "V" in specs or "I" in specs
    if fmt == "auto":
        if has_cycles and has_iv:
            raise DataFileError(f"{path}: has both cycle-table and I–V columns; "
                                "choose with --format cycles|iv")
        if not has_cycles and not has_iv:
            found = ", ".join(repr(h) for h in specs) or "none"
            raise DataFileError(
                f"{path}: neither a cycle table (HRS_ohm, US_V, LRS_ohm, UR_V) nor I–V loops "
                f"(V, I); recognised columns: {found}")
        return "cycles" if has_cycles else "iv"
    if fmt not in ("cycles", "iv"):
        raise DataFileError(f"unknown format {fmt!r}: use auto, cycles or iv")
    return fmt


def _required(kind: str) -> tuple[str, ...]:
    if kind == "cycles":
        return ("device", "cycle") + CYCLE_FEATURES
    return ("device", "cycle", "V", "I")


def _numeric_column(series: pd.Series, lines: np.ndarray, path: Path, header: str) -> np.ndarray:
    """Convert a column to float; text that is neither a number nor a NA marker is an error."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna().to_numpy() & ~text.isna().to_numpy() & ~text.isin(_NA_STRINGS).to_numpy()
    if bad.any():
        where = np.flatnonzero(bad)
        shown = ", ".join(f"line {lines[i]}: {text.iloc[i]!r}" for i in where[:5])
        more = f" (and {len(where) - 5} more)" if len(where) > 5 else ""
        raise DataFileError(f"{path}: column {header!r} must be numeric; {shown}{more}")
    return values.to_numpy(dtype=float, na_value=np.nan)


def _cycle_column(series: pd.Series, lines: np.ndarray, path: Path, header: str) -> np.ndarray:
    values = _numeric_column(series, lines, path, header)
    missing = np.isnan(values)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataFileError(f"{path}: line {lines[i]}, column {header!r}: cycle index is missing"
                            f" ({int(missing.sum())} row(s))")
    frac = values != np.round(values)
    if frac.any():
        i = int(np.flatnonzero(frac)[0])
        raise DataFileError(f"{path}: line {lines[i]}, column {header!r}: cycle index "
                            f"{float(values[i]):.10g} is not an integer")
    if np.abs(values).max(initial=0) > 2**53:
        raise DataFileError(f"{path}: column {header!r}: cycle index out of range")
    return values.astype(np.int64)


def _device_column(series: pd.Series, lines: np.ndarray, path: Path,
                   header: str) -> pd.Categorical:
    """Device names as a categorical of strings (categories in order of first appearance).

    A name is text: ``01`` and ``1``, ``1E3`` and ``1000`` are different devices (files are
    read with the device column as text). Only surrounding spaces are ignored. In-memory
    tables with a numeric device column get the integer spelling (``3.0`` → ``"3"``).
    """
    codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    if pd.api.types.is_float_dtype(series.dtype):
        uniques = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in uniques]
    names = pd.Series(pd.Index(uniques).astype(str), dtype=object).str.strip()
    blank = (names == "").to_numpy()
    missing = (codes < 0) | (blank[codes] if blank.any() else np.zeros(codes.size, bool))
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise DataFileError(f"{path}: line {lines[i]}, column {header!r}: device is missing"
                            f" ({int(missing.sum())} row(s))")
    # different spellings of one device (" 3" and "3", "3.0" and "3") merge here
    merged_codes, merged_names = pd.factorize(names, sort=False)
    return pd.Categorical.from_codes(merged_codes[codes], categories=pd.Index(merged_names,
                                                                              dtype=object))


def read_measurements(path: str | Path, fmt: Format = "auto") -> Measurement:
    """Read a cycle table or raw I–V loops into canonical SI columns.

    ``fmt`` is ``"auto"`` (decided by the columns present), ``"cycles"`` or ``"iv"``.
    Raises :class:`DataFileError` for unreadable files, missing or duplicated columns,
    unknown units and text in numeric columns (naming file, line and column).
    """
    path = Path(path)
    raw = _read_bytes(path)
    body = raw.lstrip(b"\r\n")
    header_line = 1 + raw[: len(raw) - len(body)].count(b"\n")
    end = body.find(b"\n", 0, 1 << 20)
    first_line = body[: end if end >= 0 else 1 << 20].decode("utf-8", errors="replace")
    sep = _delimiter(first_line)
    text_columns = _device_headers(first_line, sep, path)
    frame = None
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            frame = pd.read_csv(io.BytesIO(body), sep=sep, dtype=text_columns or None,
                                skip_blank_lines=False,
                                na_values=_NA_STRINGS, keep_default_na=True, low_memory=False,
                                skipinitialspace=True, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError,
                UnicodeError, OverflowError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataFileError(f"{path}: not a readable CSV table ({message})") from None
    if frame is None:
        raise DataFileError(f"{path}: not a text CSV file (undecodable bytes)")
    lines = None
    if _quoted_newline(body):  # a quoted field spans lines: count the lines of every record
        lines = _record_lines(body.decode(encoding, errors="replace"), sep, len(frame))
    if lines is not None:
        lines = lines + (header_line - 1)
    return measurement_from_frame(frame, fmt, path, first_line=header_line + 1, lines=lines)


def _quoted_newline(body: bytes) -> bool:
    """True when a line break lies inside quotes (between an odd and the next double quote)."""
    if b'"' not in body:
        return False
    return any(b"\n" in inside for inside in body.split(b'"')[1::2])


def _device_headers(first_line: str, sep: str, path: Path) -> dict[str, type]:
    """``{header: str}`` for the device column(s), so that names are read as text."""
    try:
        headers = next(csv.reader([first_line], delimiter=sep, skipinitialspace=True))
    except (csv.Error, StopIteration):
        return {}
    out: dict[str, type] = {}
    for i, header in enumerate(headers):
        name = header.lstrip("\ufeff") if i == 0 else header
        try:
            spec = parse_header(name, path)
        except DataFileError:
            continue  # reported with the full column check later
        if spec is not None and spec.canonical == "device":
            out[name] = str
    return out


def _record_lines(text: str, sep: str, rows: int) -> np.ndarray | None:
    """1-based line (within ``text``) where each data record starts, or None if the records
    do not line up with the ``rows`` rows pandas read."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    starts, previous = [], 0
    try:
        for _record in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    except csv.Error:
        return None
    data = starts[1:]  # the first record is the header
    if len(data) != rows:
        return None
    return np.asarray(data, dtype=np.int64)


def measurement_from_frame(frame: pd.DataFrame, fmt: Format = "auto",
                           path: str | Path = "<table>", first_line: int = 2,
                           lines: np.ndarray | None = None) -> Measurement:
    """Map an in-memory table (file headers as columns) like :func:`read_measurements` does.

    ``first_line`` is the line number reported for the first row (2: below a header line);
    ``lines`` gives the line of every row instead (records spanning several lines).
    """
    path = Path(path)
    if lines is None:
        lines = np.arange(len(frame), dtype=np.int64) + first_line
    empty_rows = frame.isna().all(axis=1).to_numpy()
    frame = frame.loc[~empty_rows].reset_index(drop=True)
    lines = lines[~empty_rows]

    specs, ignored = _header_specs([str(c) for c in frame.columns], path)
    kind = _detect_kind(specs, fmt, path)
    missing = [c for c in _required(kind) if c not in specs]
    if missing:
        found = ", ".join(repr(str(c)) for c in frame.columns)
        raise DataFileError(f"{path}: missing column(s) {', '.join(missing)} for a "
                            f"{'cycle table' if kind == 'cycles' else 'I–V loop'} file; "
                            f"found {found}")
    if len(frame) == 0:
        raise DataFileError(f"{path}: no data rows after the header")

    wanted = _required(kind) + (("t_s",) if kind == "iv" and "t_s" in specs else ())
    out: dict[str, np.ndarray] = {}
    for canonical in wanted:
        spec = specs[canonical]
        column = frame[spec.header]
        if canonical == "device":
            out[canonical] = _device_column(column, lines, path, spec.header)
        elif canonical == "cycle":
            out[canonical] = _cycle_column(column, lines, path, spec.header)
        else:
            out[canonical] = _numeric_column(column, lines, path, spec.header) * spec.factor
    out["line"] = lines
    table = pd.DataFrame(out)
    used = [specs[c] for c in wanted]
    ignored += [specs[c].header for c in specs if c not in wanted]
    return Measurement(path=path, kind=kind, frame=table, columns=used, ignored_columns=ignored)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV atomically (temporary file in the same folder, then rename)."""
    write_frame_atomic(path, frame)
