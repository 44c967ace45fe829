"""ngspice netlists of a :class:`~cosim.crossbar.spec.Crossbar` from the Jinja templates.

``templates/crossbar_read.cir.j2`` (``.op`` with DC inputs, columns into 0 V virtual grounds)
and ``templates/crossbar_write.cir.j2`` (``.tran`` pulses, V/2 or V/3 scheme) both include
``templates/crossbar_array.j2``. Everything reaches the text through the SPICE-safe
environment of :mod:`cosim.spice.render` (identifiers checked, numbers formatted by code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Mapping

import numpy as np

from cosim.crossbar.cells import LinearCells, PolynomialCells, VerilogACells
from cosim.crossbar.spec import Crossbar
from cosim.errors import CosimError, NetlistError
from cosim.spice.render import Spice, format_number, ident, render_netlist

if TYPE_CHECKING:
    from cosim.crossbar.stimulus import Stimulus

Save = Literal["terminals", "cells", "all"]
SAVE_CHOICES = ("terminals", "cells", "all")
"""``terminals``: column and driver currents; ``cells``: plus every array node voltage and each
Verilog-A cell's state nodes and outputs (:mod:`cosim.crossbar.probes` turns them into per-cell
arrays); ``all``: everything ngspice has. ``"currents"`` is accepted as ``"terminals"``."""
Scheme = Literal["v2", "v3"]

ACCURATE_OPTIONS: dict[str, float] = {"reltol": 1e-9, "abstol": 1e-15, "vntol": 1e-12}
"""Tight ngspice tolerances for comparisons with the nodal solver (defaults are reltol=1e-3)."""


@dataclass(frozen=True)
class WritePulse:
    """Trapezoidal write pulse and transient settings [V, s].

    ``row``/``col``: the selected cell; ``v_write``: pulse amplitude on the selected row
    (negative for SET with the sign convention of docs/device-model.md); ``scheme``: ``"v2"`` or
    ``"v3"`` half-select scheme.
    """

    row: int = 0
    col: int = 0
    v_write: float = 1.5
    scheme: Scheme = "v2"
    delay: float = 1e-7
    rise: float = 1e-8
    fall: float = 1e-8
    width: float = 1e-6
    tstep: float = 1e-8
    tstop: float | None = None

    @property
    def period(self) -> float:
        """Pulse period [s]: long enough for one pulse per run."""
        return 2 * (self.delay + self.rise + self.width + self.fall)

    @property
    def stop_time(self) -> float:
        return self.tstop if self.tstop is not None else self.delay + self.rise + self.width + self.fall + self.delay


def scheme_levels(pulse: WritePulse, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Pulse top levels [V] on every row driver and column terminal for a half-select scheme.

    V/2: selected row V, selected column 0, every other line V/2 (unselected cells see 0 or V/2).
    V/3: selected row V, selected column 0, other rows V/3, other columns 2V/3 (|V/3| at most).
    """
    if not (0 <= pulse.row < rows and 0 <= pulse.col < cols):
        raise CosimError(f"selected cell ({pulse.row}, {pulse.col}) outside the {rows}×{cols} array")
    v = float(pulse.v_write)
    if pulse.scheme == "v2":
        row_levels, col_levels = np.full(rows, v / 2), np.full(cols, v / 2)
    elif pulse.scheme == "v3":
        row_levels, col_levels = np.full(rows, v / 3), np.full(cols, 2 * v / 3)
    else:
        raise CosimError(f"unknown write scheme {pulse.scheme!r}; use v2 or v3")
    row_levels[pulse.row] = v
    col_levels[pulse.col] = 0.0
    return row_levels, col_levels


def array_context(crossbar: Crossbar) -> dict[str, object]:
    """Template context for ``crossbar_array.j2``."""
    cells = crossbar.cells
    context: dict[str, object] = {
        "m": crossbar.rows,
        "n": crossbar.cols,
        "ij": [[Spice(f"{i}_{j}") for j in range(crossbar.cols)] for i in range(crossbar.rows)],
        "r_row": crossbar.r_row,
        "r_col": crossbar.r_col,
        "r_source": crossbar.r_source,
        "r_sense": crossbar.r_sense,
        "access": crossbar.access,
        "transistor": crossbar.transistor,
        "v_gate": crossbar.transistor.v_gate,
        "resistance": None,
        "poly": None,
        "va": None,
        "va_params": None,
    }
    if isinstance(cells, LinearCells):
        context["resistance"] = [
            [format_number(1.0 / g) if g > 0 else None for g in row] for row in cells.g.tolist()
        ]
        context["cell_kind"] = "resistor"
    elif isinstance(cells, PolynomialCells):
        terms = np.moveaxis(cells.horner_terms(), 0, -1).tolist()  # (M, N, D)
        context["poly"] = [[[format_number(c) for c in cell] for cell in row] for row in terms]
        context["cell_kind"] = "polynomial"
    elif isinstance(cells, VerilogACells):
        names = [ident(name) for name in cells.params]
        columns = [np.asarray(v).tolist() for v in cells.params.values()]
        context["va_params"] = [
            [[(name, format_number(col[i][j])) for name, col in zip(names, columns)] for j in range(cells.shape[1])]
            for i in range(cells.shape[0])
        ]
        context["va"] = cells
        context["cell_kind"] = "veriloga"
    else:
        raise NetlistError(f"no netlist form for cell model {type(cells).__name__}")
    return context


def check_save(save: str) -> Save:
    """The probe set ``save`` names (``"currents"`` is the old name of ``"terminals"``)."""
    save = "terminals" if save == "currents" else save
    if save not in SAVE_CHOICES:
        raise CosimError(f"save must be one of {', '.join(SAVE_CHOICES)}; got {save!r}")
    return save  # type: ignore[return-value]


def osdi_files(crossbar: Crossbar) -> list[Path]:
    """OSDI libraries the netlist loads; a Verilog-A crossbar without one is an error."""
    cells = crossbar.cells
    if not isinstance(cells, VerilogACells):
        return []
    if cells.osdi_file is None:
        raise NetlistError(
            f"Verilog-A cells (module {cells.module}) have no OSDI file: ngspice could not find the "
            "model; give one (--osdi F.osdi / osdi_file, compiled with `cosim compile`) or use "
            "--device generative"
        )
    return [Path(cells.osdi_file).resolve()]


def _common(crossbar: Crossbar, title: str, spice_options: Mapping[str, float] | None, save: str) -> dict[str, object]:
    save = check_save(save)
    options = dict(spice_options or {})
    for name in options:
        ident(name)
    osdi = osdi_files(crossbar)
    context = array_context(crossbar)
    context.update(title=title, osdi_files=osdi, spice_options=options, save=save)
    return context


def read_netlist(
    crossbar: Crossbar,
    inputs: np.ndarray | None = None,
    spice_options: Mapping[str, float] | None = None,
    save: str = "terminals",
    title: str | None = None,
) -> str:
    """Read testbench (``.op``): DC ``inputs`` [V] per row (default: the crossbar's own)."""
    vector = crossbar.input_vector() if inputs is None else np.asarray(inputs, dtype=float)
    if vector.shape != (crossbar.rows,):
        raise CosimError(f"inputs: expected shape ({crossbar.rows},), got {vector.shape}")
    name = title or f"cosim crossbar read {crossbar.rows}x{crossbar.cols} {crossbar.access}"
    context = _common(crossbar, name, spice_options, save)
    context["inputs"] = vector
    return render_netlist("crossbar_read.cir.j2", **context)


def write_netlist(
    crossbar: Crossbar,
    pulse: WritePulse = WritePulse(),
    spice_options: Mapping[str, float] | None = None,
    save: str = "terminals",
    title: str | None = None,
) -> str:
    """Write testbench (``.tran``): one pulse on all lines with a V/2 or V/3 scheme."""
    row_levels, col_levels = scheme_levels(pulse, crossbar.rows, crossbar.cols)
    name = title or f"cosim crossbar write {crossbar.rows}x{crossbar.cols} {pulse.scheme}"
    context = _common(crossbar, name, spice_options, save)
    context.update(
        row_levels=row_levels,
        col_levels=col_levels,
        pulse={
            "delay": pulse.delay,
            "rise": pulse.rise,
            "fall": pulse.fall,
            "width": pulse.width,
            "period": pulse.period,
        },
        tstep=pulse.tstep,
        tstop=pulse.stop_time,
    )
    return render_netlist("crossbar_write.cir.j2", **context)




def sequence_netlist(
    crossbar: Crossbar,
    stimulus: "Stimulus",
    spice_options: Mapping[str, float] | None = None,
    save: str = "terminals",
    title: str | None = None,
) -> str:
    """Sequence testbench (``.tran``): PWL sources from a :class:`~cosim.crossbar.stimulus.Stimulus`.

    The time step is capped at ``stimulus.tstep`` [s] so that read plateaus and pulse tops are
    resolved; :meth:`Stimulus.read_times` gives the sampling time of each read.
    """
    waves = stimulus.waveforms(crossbar.rows, crossbar.cols)
    name = title or f"cosim crossbar sequence {crossbar.rows}x{crossbar.cols} {len(stimulus.steps)} steps"
    context = _common(crossbar, name, spice_options, save)
    context.update(
        row_pwl=[[(float(t), float(v)) for t, v in w] for w in waves.rows],
        col_pwl=[[(float(t), float(v)) for t, v in w] for w in waves.cols],
        tstep=float(stimulus.tstep),
        tstop=float(waves.stop_time),
    )
    return render_netlist("crossbar_sequence.cir.j2", **context)
