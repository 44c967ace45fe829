"""Quality control of measurement data: what was found, where, and what was done about it.

Every problem is one :class:`QCEntry` naming the device and cycle (where that applies) and the
action taken, ``kept`` or ``excluded`` (or ``sorted`` for row order). Nothing is dropped
without an entry. :func:`check_cycle_table` turns a cycle table read by
:mod:`cosim.fit.readers` into the rows used for fitting plus the QC list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from cosim.fit.readers import CYCLE_FEATURES

#: kinds of QC entries, with a one-line description for the report
KINDS: dict[str, str] = {
    "missing": "NaN / empty / non-finite value",
    "duplicate": "duplicated (device, cycle) row",
    "unsorted": "rows not in (device, cycle) order",
    "gap": "dropped cycles (gap in the cycle index)",
    "failed_switching": "cycle without a valid switch (HRS <= LRS, wrong-sign threshold, R <= 0)",
    "stuck": "device without variation or without switching",
    "too_few_cycles": "device with too few usable cycles",
    "outlier": "robust z-score beyond the threshold",
    "extraction": "I–V loop from which a feature could not be extracted",
    "glitch": "instrument overflow code (|x| >= 9.9e37) or a voltage spike far outside the sweep",
    "units": "device whose typical value differs from the other devices by a unit factor",
    "info": "note",
}

Action = str  # "kept" | "excluded" | "sorted"


@dataclass(frozen=True)
class QCEntry:
    """One finding of quality control."""

    kind: str
    """One of :data:`KINDS`."""
    device: str | None
    cycle: int | None
    detail: str
    """Human-readable description (values with units)."""
    action: Action
    """``kept``, ``excluded`` or ``sorted``: what the fit did with the data."""
    column: str | None = None
    line: int | None = None
    """1-based line in the input file, where one line is concerned."""


OVERFLOW_CODE = 9.9e37
"""|value| at or above this is an instrument overflow/NaN code (SCPI instruments write
9.91e37 for "not a number" and 9.9e37 for overflow), never a measurement."""


def overflow_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is an instrument overflow code (finite but |x| >= 9.9e37)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.abs(values) >= OVERFLOW_CODE)


def fmt(value: object, digits: int = 4) -> str:
    """A number for humans: ``nan``, ``inf``, ``1.234e+05``, ``-0.6821`` (never ``np.float64``)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if np.isnan(number):
        return "nan"
    if np.isinf(number):
        return "inf" if number > 0 else "-inf"
    return f"{number:.{digits}g}"


@dataclass
class QCConfig:
    """Thresholds of quality control."""

    min_cycles: int = 20
    """Devices with fewer usable cycles are excluded."""
    outlier_flag_z: float = 6.0
    """|robust z| above this: reported, kept."""
    outlier_exclude_z: float = 20.0
    """|robust z| above this: reported and excluded (gross error, e.g. open contact)."""
    min_rel_spread: float = 1e-9
    """A feature whose within-device sd is below this fraction of |median| is 'stuck'."""
    unit_factor: float = 30.0
    """A device whose median HRS, LRS, |US| or |UR| differs from the median over devices by
    more than this factor (up or down) is excluded as recorded in other units ('units')."""
    glitch_v_factor: float = 3.0
    """I–V samples with |V| above this multiple of both their loop's 90th percentile of |V|
    and the median |V| of their four neighbours are voltage glitches (excluded)."""


@dataclass
class QCReport:
    """The list of findings, with helpers for tables and markdown."""

    entries: list[QCEntry] = field(default_factory=list)

    def add(self, kind: str, device: object, cycle: object, detail: str, action: Action,
            column: str | None = None, line: object = None) -> None:
        """Append one entry (device/cycle/line converted to plain Python types)."""
        self.entries.append(QCEntry(
            kind=kind, device=None if device is None else str(device),
            cycle=None if cycle is None else int(cycle), detail=detail, action=action,
            column=column, line=None if line is None else int(line)))

    def extend(self, other: "QCReport") -> None:
        """Append all entries of another report."""
        self.entries.extend(other.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_frame(self) -> pd.DataFrame:
        """All entries as a DataFrame (columns: kind, device, cycle, column, line, detail, action)."""
        columns = ["kind", "device", "cycle", "column", "line", "detail", "action"]
        if not self.entries:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame([asdict(e) for e in self.entries])
        return frame[columns]

    def counts(self) -> pd.DataFrame:
        """Number of entries per kind and action."""
        frame = self.to_frame()
        if frame.empty:
            return pd.DataFrame(columns=["kind", "action", "entries"])
        return (frame.groupby(["kind", "action"]).size().rename("entries").reset_index())

    def to_markdown(self, max_rows: int = 50) -> str:
        """Markdown: a count per kind/action, then the first ``max_rows`` entries."""
        if not self.entries:
            return "No problems found: every row was used.\n"
        lines = ["| kind | meaning | action | entries |", "|---|---|---|---|"]
        for row in self.counts().itertuples(index=False):
            lines.append(f"| {row.kind} | {KINDS.get(row.kind, '')} | {row.action} | {row.entries} |")
        lines += ["", "| kind | device | cycle | column | line | detail | action |",
                  "|---|---|---|---|---|---|---|"]
        for e in self.entries[:max_rows]:
            cells = [e.kind, e.device, e.cycle, e.column, e.line, e.detail, e.action]
            text = ["" if c is None else str(c).replace("|", "\\|") for c in cells]
            lines.append("| " + " | ".join(text) + " |")
        if len(self.entries) > max_rows:
            lines.append(f"\n… {len(self.entries) - max_rows} more entries in qc.csv.")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
def sort_key(series: pd.Series) -> np.ndarray:
    """Integer codes usable by np.lexsort: categorical/text keys by order of first appearance."""
    if isinstance(series.dtype, pd.CategoricalDtype) or series.dtype == object \
            or pd.api.types.is_string_dtype(series.dtype):
        return pd.factorize(series, sort=False)[0]
    return series.to_numpy()


def sort_rows(frame: pd.DataFrame, keys: list[str], report: QCReport) -> pd.DataFrame:
    """Sort by ``keys`` (stable; text keys such as device names keep the order of their first
    appearance, so devices stay in file order); report once when rows had to move."""
    values = [sort_key(frame[k]) for k in keys]
    order = np.lexsort(values[::-1])
    if np.any(order != np.arange(len(order))):
        report.add("unsorted", None, None, f"rows re-ordered by ({', '.join(keys)})", "sorted")
        frame = frame.iloc[order].reset_index(drop=True)
    return frame


def _drop_duplicates(frame: pd.DataFrame, report: QCReport) -> pd.DataFrame:
    dup = frame.duplicated(["device", "cycle"], keep="first").to_numpy()
    if not dup.any():
        return frame
    features = list(CYCLE_FEATURES)
    first = frame.drop_duplicates(["device", "cycle"], keep="first").set_index(["device", "cycle"])
    for row in frame.loc[dup].itertuples(index=False):
        kept = first.loc[(row.device, row.cycle), features].to_numpy(dtype=float)
        mine = np.array([getattr(row, f) for f in features], dtype=float)
        same = np.allclose(kept, mine, equal_nan=True, rtol=1e-12, atol=0.0)
        detail = ("identical to an earlier row" if same
                  else "differs from an earlier row for the same cycle; the first one is used")
        report.add("duplicate", row.device, row.cycle, detail, "excluded", line=row.line)
    return frame.loc[~dup].reset_index(drop=True)


def _missing_values(frame: pd.DataFrame, report: QCReport) -> np.ndarray:
    values = frame[list(CYCLE_FEATURES)].to_numpy(dtype=float)
    codes = overflow_mask(values)
    bad = ~np.isfinite(values) | codes
    for i, j in zip(*np.nonzero(bad)):
        if codes[i, j]:
            report.add("glitch", frame["device"].iat[i], frame["cycle"].iat[i],
                       f"{CYCLE_FEATURES[j]} = {fmt(values[i, j])}: instrument overflow code",
                       "excluded", column=CYCLE_FEATURES[j], line=frame["line"].iat[i])
        else:
            report.add("missing", frame["device"].iat[i], frame["cycle"].iat[i],
                       f"{CYCLE_FEATURES[j]} is {'empty' if np.isnan(values[i, j]) else fmt(values[i, j])}",
                       "excluded", column=CYCLE_FEATURES[j], line=frame["line"].iat[i])
    return bad.any(axis=1)


def _failed_switching(frame: pd.DataFrame, usable: np.ndarray, report: QCReport) -> np.ndarray:
    hrs, us = frame["HRS_ohm"].to_numpy(), frame["US_V"].to_numpy()
    lrs, ur = frame["LRS_ohm"].to_numpy(), frame["UR_V"].to_numpy()
    with np.errstate(invalid="ignore"):
        reasons = [
            (hrs <= 0, "HRS_ohm", "HRS <= 0 Ω"),
            (lrs <= 0, "LRS_ohm", "LRS <= 0 Ω"),
            (hrs <= lrs, "HRS_ohm", "HRS <= LRS (no resistive switching)"),
            (us >= 0, "US_V", "SET threshold US >= 0 V (must be negative)"),
            (ur <= 0, "UR_V", "RESET threshold UR <= 0 V (must be positive)"),
        ]
    failed = np.zeros(len(frame), dtype=bool)
    for mask, column, text in reasons:
        hit = mask & usable & ~failed
        for i in np.flatnonzero(hit):
            report.add("failed_switching", frame["device"].iat[i], frame["cycle"].iat[i],
                       f"{text}: HRS={fmt(hrs[i], 6)} Ω, US={fmt(us[i])} V, "
                       f"LRS={fmt(lrs[i], 6)} Ω, UR={fmt(ur[i])} V", "excluded", column=column,
                       line=frame["line"].iat[i])
        failed |= hit
    return failed


def _gaps(frame: pd.DataFrame, report: QCReport) -> None:
    names = frame["device"].to_numpy()
    dev = sort_key(frame["device"])
    cyc = frame["cycle"].to_numpy()
    same = dev[1:] == dev[:-1]
    step = cyc[1:] - cyc[:-1]
    for i in np.flatnonzero(same & (step > 1)):
        report.add("gap", names[i + 1], cyc[i + 1],
                   f"cycles {cyc[i] + 1}..{cyc[i + 1] - 1} absent or excluded ({step[i] - 1} cycle(s)); "
                   "no VAR lag spans the gap", "kept")


def _group_median(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-group column medians broadcast back to the rows (contiguous groups: one
    np.median per group; otherwise pandas groupby)."""
    if codes.size and np.all(np.diff(codes) >= 0):
        starts = np.flatnonzero(np.diff(codes, prepend=-1))
        ends = np.append(starts[1:], codes.size)
        out = np.empty_like(x)
        for a, b in zip(starts, ends):
            out[a:b] = np.median(x[a:b], axis=0)
        return out
    return pd.DataFrame(x).groupby(codes).median().to_numpy()[codes]


def robust_z(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Robust z-score per group: 0.6745·(x − median)/MAD (MAD = 0 → z = 0).

    ``values`` may be 1-D or (rows, features); the statistics are per group and column.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.zeros(values.shape)
    x = values.reshape(len(values), -1)
    codes, _ = pd.factorize(groups, sort=False)
    med = _group_median(x, codes)
    dev = np.abs(x - med)
    mad = _group_median(dev, codes)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(mad > 0, 0.6745 * (x - med) / mad, 0.0)
    return z.reshape(np.shape(values))


def _outliers(frame: pd.DataFrame, usable: np.ndarray, config: QCConfig,
              report: QCReport) -> np.ndarray:
    sub = frame.loc[usable]
    excluded = np.zeros(len(frame), dtype=bool)
    index = np.flatnonzero(usable)
    x = sub[list(CYCLE_FEATURES)].to_numpy(dtype=float).copy()
    x[:, 0] = np.log10(x[:, 0])
    z = robust_z(x, sort_key(sub["device"]))
    for k, j in zip(*np.nonzero(np.abs(z) > config.outlier_flag_z)):
        i = index[k]
        column = CYCLE_FEATURES[j]
        gross = abs(z[k, j]) > config.outlier_exclude_z
        shown_z = f"{z[k, j]:+.1f}" if abs(z[k, j]) < 1e4 else f"{z[k, j]:+.2e}"
        report.add("outlier", frame["device"].iat[i], frame["cycle"].iat[i],
                   f"{column} = {fmt(frame[column].iat[i], 6)}, robust z = {shown_z}"
                   f"{' (gross)' if gross else ''}", "excluded" if gross else "kept",
                   column=column, line=frame["line"].iat[i])
        excluded[i] |= gross
    return excluded


def _device_checks(frame: pd.DataFrame, usable: np.ndarray, config: QCConfig,
                   report: QCReport) -> np.ndarray:
    """Exclude devices that are stuck or have too few usable cycles; return the row mask."""
    codes, names = pd.factorize(frame["device"], sort=False)
    n_dev = len(names)
    total = np.bincount(codes, minlength=n_dev)
    count = np.bincount(codes[usable], minlength=n_dev)
    values = frame[list(CYCLE_FEATURES)].to_numpy(dtype=float)[usable]
    grouped = pd.DataFrame(values).groupby(codes[usable], sort=True)
    spread = grouped.std(ddof=0).reindex(range(n_dev)).to_numpy()
    level = np.abs(grouped.median().reindex(range(n_dev)).to_numpy())
    bad_device = np.zeros(n_dev, dtype=bool)
    for d in range(n_dev):
        if count[d] < config.min_cycles:
            report.add("too_few_cycles", names[d], None,
                       f"{int(count[d])} usable cycle(s) of {int(total[d])}, "
                       f"need >= {config.min_cycles}", "excluded")
            bad_device[d] = True
            continue
        flat = [CYCLE_FEATURES[j] for j in range(4)
                if spread[d, j] <= config.min_rel_spread * max(level[d, j], 1e-30)]
        if flat:
            report.add("stuck", names[d], None,
                       f"no cycle-to-cycle variation in {', '.join(flat)} over "
                       f"{int(count[d])} cycles", "excluded")
            bad_device[d] = True
    return bad_device[codes]


def _unit_mismatch(frame: pd.DataFrame, usable: np.ndarray, config: QCConfig,
                   report: QCReport) -> np.ndarray:
    """Exclude devices whose median of a feature is off the median over devices by more than
    ``config.unit_factor`` (a device recorded in kΩ in an Ω column, mV in a V column ...).

    Needs at least three devices (with two, which one is off cannot be told)."""
    codes, names = pd.factorize(frame["device"], sort=False)
    n_dev = len(names)
    bad_device = np.zeros(n_dev, dtype=bool)
    present = np.unique(codes[usable])
    if present.size < 3:
        return bad_device[codes]
    values = np.abs(frame[list(CYCLE_FEATURES)].to_numpy(dtype=float)[usable])
    medians = pd.DataFrame(values).groupby(codes[usable]).median()
    overall = medians.median(axis=0).to_numpy()
    units = {"HRS_ohm": "Ω", "US_V": "V", "LRS_ohm": "Ω", "UR_V": "V"}
    for d, row in zip(medians.index, medians.to_numpy()):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = row / overall
        off = [j for j in range(4) if overall[j] > 0
               and not (1 / config.unit_factor <= ratio[j] <= config.unit_factor)]
        if not off:
            continue
        parts = []
        for j in off:
            name, unit = CYCLE_FEATURES[j], units[CYCLE_FEATURES[j]]
            factor = f"{fmt(ratio[j])} ×" if ratio[j] >= 1 else f"1/{fmt(1 / ratio[j])} of"
            parts.append(f"median |{name}| {fmt(row[j])} {unit} is {factor} the median over "
                         f"devices ({fmt(overall[j])} {unit})")
        report.add("units", names[d], None, "; ".join(parts) + ": recorded in other units "
                   "(e.g. kΩ in an Ω column)?", "excluded", column=CYCLE_FEATURES[off[0]])
        bad_device[d] = True
    return bad_device[codes]


def check_cycle_table(frame: pd.DataFrame, config: QCConfig | None = None,
                      report: QCReport | None = None) -> tuple[pd.DataFrame, QCReport]:
    """Run QC on a canonical cycle table; return (rows to fit, report).

    The returned frame is sorted by (device, cycle) and holds only the rows kept for fitting;
    every other row appears in the report with action ``excluded``.
    """
    config = config or QCConfig()
    report = report if report is not None else QCReport()
    frame = sort_rows(frame, ["device", "cycle"], report)
    frame = _drop_duplicates(frame, report)
    missing = _missing_values(frame, report)
    failed = _failed_switching(frame, ~missing, report)
    usable = ~missing & ~failed
    usable &= ~_unit_mismatch(frame, usable, config, report)
    usable &= ~_outliers(frame, usable, config, report)
    usable &= ~_device_checks(frame, usable, config, report)
    kept = frame.loc[usable].reset_index(drop=True)
    _gaps(kept, report)
    return kept, report
