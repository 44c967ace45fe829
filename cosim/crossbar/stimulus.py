"""Stimulus sequences for crossbar transients: program-then-read, multi-pulse, PWL per line.

A :class:`Stimulus` is a list of steps played one after the other; every row driver
(``Vin<i>``) and column terminal (``Vsns<j>``) becomes one PWL source whose breakpoints the
steps append. All lines rest at 0 V between steps.

* :class:`WriteStep` — a trapezoidal pulse on one selected cell in the V/2 or V/3
  half-select scheme (:func:`cosim.crossbar.netlist.scheme_levels`), ``repeat`` times with
  ``gap`` seconds at 0 V after each pulse (multi-pulse programming);
* :class:`ReadStep` — every row at its read voltage (``v_read`` or per-row ``inputs``),
  every column held at 0 V (virtual ground) for ``width`` seconds: the column currents and,
  with ``save="cells"``, the cell currents at the end of the plateau are the read
  (:meth:`Stimulus.read_times`);
* :class:`PwlStep` — explicit waveforms ``[(t, v), ...]`` (t relative to the step start,
  starting and ending at 0 V) on chosen rows and columns for ``duration`` seconds; lines
  not given stay at 0 V.

Units: V, s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence, Union

import numpy as np

from cosim.errors import CosimError


@dataclass(frozen=True)
class WriteStep:
    """``repeat`` trapezoidal pulses of ``v_write`` [V] on cell (row, col), V/2 or V/3 scheme."""

    row: int = 0
    col: int = 0
    v_write: float = 1.5
    scheme: str = "v3"
    width: float = 1e-6
    rise: float = 1e-8
    fall: float = 1e-8
    gap: float = 1e-7
    repeat: int = 1


@dataclass(frozen=True)
class ReadStep:
    """Rows at ``v_read`` (or ``inputs`` per row) [V], columns at 0 V, for ``width`` [s]."""

    v_read: float = 0.2
    inputs: tuple[float, ...] | None = None
    width: float = 1e-6
    rise: float = 1e-8
    fall: float = 1e-8
    gap: float = 1e-7


@dataclass(frozen=True)
class PwlStep:
    """Explicit waveforms: line index → [(t [s] from the step start, v [V]), ...]."""

    duration: float
    rows: Mapping[int, Sequence[tuple[float, float]]] = field(default_factory=dict)
    cols: Mapping[int, Sequence[tuple[float, float]]] = field(default_factory=dict)


Step = Union[WriteStep, ReadStep, PwlStep]


@dataclass(frozen=True)
class Waveforms:
    """PWL breakpoints per line: ``rows[i]`` / ``cols[j]`` are (K, 2) arrays of (t [s], v [V])."""

    rows: list[np.ndarray]
    cols: list[np.ndarray]
    stop_time: float
    reads: list[tuple[float, float]]
    """(start, end) [s] of each read plateau, in order."""


@dataclass(frozen=True)
class Stimulus:
    """Steps played in order from t = ``delay``; ``tstep`` [s] is the largest time step."""

    steps: tuple[Step, ...]
    tstep: float = 1e-8
    delay: float = 1e-7

    def waveforms(self, rows: int, cols: int) -> Waveforms:
        """Breakpoints of every line for an M×N array (checked: indices, times, values)."""
        from cosim.crossbar.netlist import WritePulse, scheme_levels

        if not self.steps:
            raise CosimError("sequence: no steps")
        _positive("sequence.tstep", self.tstep)
        _non_negative("sequence.delay", self.delay)
        points_r: list[list[tuple[float, float]]] = [[(0.0, 0.0)] for _ in range(rows)]
        points_c: list[list[tuple[float, float]]] = [[(0.0, 0.0)] for _ in range(cols)]
        reads: list[tuple[float, float]] = []
        t = float(self.delay)
        for index, step in enumerate(self.steps):
            where = f"sequence step {index + 1}"
            if isinstance(step, (WriteStep, ReadStep)):
                for name in ("width", "rise", "fall"):
                    _positive(f"{where}: {name}", getattr(step, name))
                _non_negative(f"{where}: gap", step.gap)
            if isinstance(step, WriteStep):
                if step.repeat < 1:
                    raise CosimError(f"{where}: repeat must be >= 1")
                pulse = WritePulse(row=step.row, col=step.col, v_write=_finite(where, step.v_write),
                                   scheme=step.scheme)  # type: ignore[arg-type]
                row_levels, col_levels = scheme_levels(pulse, rows, cols)
                for _ in range(step.repeat):
                    t = _trapezoid(points_r, points_c, row_levels, col_levels, t, step)
            elif isinstance(step, ReadStep):
                levels = np.full(rows, _finite(where, step.v_read)) if step.inputs is None else np.asarray(
                    step.inputs, dtype=float)
                if levels.shape != (rows,) or not np.isfinite(levels).all():
                    raise CosimError(f"{where}: inputs must be {rows} finite voltages")
                start = t + step.rise
                t = _trapezoid(points_r, points_c, levels, np.zeros(cols), t, step)
                reads.append((start, start + step.width))
            elif isinstance(step, PwlStep):
                _positive(f"{where}: duration", step.duration)
                for kind, table, count, points in (("row", step.rows, rows, points_r), ("column", step.cols, cols, points_c)):
                    for line, wave in table.items():
                        if not 0 <= int(line) < count:
                            raise CosimError(f"{where}: {kind} {line} outside the array (0..{count - 1})")
                        points[int(line)].extend(_pwl_points(f"{where}: {kind} {line}", wave, t, step.duration))
                t += step.duration
                for points in (*points_r, *points_c):  # back to 0 V at the end of the step
                    if points[-1][0] < t:
                        points.append((t, points[-1][1]))
            else:
                raise CosimError(f"{where}: unknown step {type(step).__name__}")
        t += self.delay
        return Waveforms(rows=[_finish(p, t) for p in points_r], cols=[_finish(p, t) for p in points_c],
                         stop_time=t, reads=reads)

    def read_times(self, rows: int, cols: int, before_end: float = 0.0) -> list[float]:
        """Times [s] at which each read plateau is sampled: its end minus ``before_end``."""
        return [end - before_end for _, end in self.waveforms(rows, cols).reads]


def _trapezoid(points_r, points_c, row_levels, col_levels, t: float, step) -> float:
    edges = (t, t + step.rise, t + step.rise + step.width, t + step.rise + step.width + step.fall)
    for points, level in ((points_r, row_levels), (points_c, col_levels)):
        for line, value in enumerate(level):
            points[line].extend([(edges[0], 0.0), (edges[1], float(value)), (edges[2], float(value)), (edges[3], 0.0)])
    return edges[3] + step.gap


def _pwl_points(where: str, wave: Sequence[tuple[float, float]], t0: float, duration: float) -> list[tuple[float, float]]:
    table = np.asarray(wave, dtype=float)
    if table.ndim != 2 or table.shape[1] != 2 or len(table) < 1 or not np.isfinite(table).all():
        raise CosimError(f"{where}: expected finite [[t, v], ...] pairs")
    times = table[:, 0]
    if table[0, 1] != 0.0 or table[-1, 1] != 0.0:
        raise CosimError(f"{where}: a PWL waveform starts and ends at 0 V (lines rest at 0 V between steps)")
    if times[0] < 0 or times[-1] > duration or np.any(np.diff(times) <= 0):
        raise CosimError(f"{where}: times must increase within [0, duration = {duration}]")
    return [(t0 + float(ti), float(v)) for ti, v in table]


def _finish(points: list[tuple[float, float]], stop: float) -> np.ndarray:
    """Drop repeated times (keep the later value only if it differs) and end at ``stop``."""
    out: list[tuple[float, float]] = []
    for time, value in points:
        if out and time <= out[-1][0]:
            if value != out[-1][1]:
                raise CosimError(f"sequence: two values at t = {time} s on one line (steps overlap)")
            continue
        out.append((time, value))
    if out[-1][0] < stop:
        out.append((stop, out[-1][1]))
    return np.asarray(out)


def _finite(where: str, value: float) -> float:
    if isinstance(value, bool) or not np.isfinite(float(value)):
        raise CosimError(f"{where}: voltage must be a finite number")
    return float(value)


def _positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise CosimError(f"{name} must be a positive number of seconds, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not (np.isfinite(value) and value >= 0):
        raise CosimError(f"{name} must be >= 0 s, got {value!r}")
