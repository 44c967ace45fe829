"""Per-cell arrays from a crossbar simulation: node voltages, cell voltages and currents, states.

A netlist written with ``save="cells"`` (``cosim netlist crossbar --save cells``) records every
array node and, for Verilog-A cells, the state nodes and output variables of each instance.
:meth:`CellArrays.from_result` turns those vectors — from ngspice (batch or shared) or from
the nodal solver (``simulate(..., save_nodes=True)``, where points are input vectors) — into
arrays indexed ``[point, row, column]``; ``cells.at(k)`` gives the M×N maps of one point.

Cell currents come from Kirchhoff's current law along each row wire: the current that enters
row node (i, j) from the driver side and does not continue along the row flows through the
cell (exact for the resistive array the templates write: no capacitors, gates draw nothing).
IR drop: the row wire loses ``v_in[i] − v_row[i, j]`` between driver and cell, the column
wire lifts the cell's bottom node to ``v_col[i, j]`` above its sense node
(:func:`ir_drop_figure` draws both as heatmaps).

Units: V, A, s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cosim.crossbar.cells import VerilogACells
from cosim.crossbar.spec import Crossbar
from cosim.errors import CosimError
from cosim.spice.result import SimResult


@dataclass(frozen=True)
class CellArrays:
    """Per-cell probes of one run; every array is ``(points, M, N)`` unless noted.

    ``axis``: time [s] of a transient, or the point index of an operating point / of the
    nodal solver's input vectors. ``v_in`` (points, M) and ``v_sense`` (points, N): driver
    and sense node voltages; ``i_col`` (points, N): current into each sense source.
    ``v_row`` / ``v_col``: row- and column-side node of each cell; ``v_dev``: the device's
    top node (``v_row`` in 1R, the transistor's source node ``m`` in 1T1R); ``states``:
    internal state node voltages of Verilog-A cells by node name; ``outputs``: their
    operating-point output variables by name.
    """

    axis: np.ndarray
    v_in: np.ndarray
    v_sense: np.ndarray
    i_col: np.ndarray
    v_row: np.ndarray
    v_col: np.ndarray
    v_dev: np.ndarray
    i_cell: np.ndarray
    states: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.v_row.shape[1:]  # type: ignore[return-value]

    @property
    def v_cell(self) -> np.ndarray:
        """Voltage across each device [V] (top node minus column node)."""
        return self.v_dev - self.v_col

    @property
    def row_drop(self) -> np.ndarray:
        """IR drop on the row wire from the driver to each cell's row node [V]."""
        return self.v_in[:, :, None] - self.v_row

    @property
    def col_rise(self) -> np.ndarray:
        """Column node voltage above its sense node (IR drop on the column wire) [V]."""
        return self.v_col - self.v_sense[:, None, :]

    def index(self, t: float) -> int:
        """The point nearest to ``t`` on :attr:`axis`."""
        return int(np.argmin(np.abs(self.axis - t)))

    def at(self, point: int = -1) -> dict[str, np.ndarray]:
        """The M×N maps of one point: v_row, v_col, v_cell, i_cell, row_drop, col_rise, states."""
        maps = {"v_row": self.v_row[point], "v_col": self.v_col[point], "v_cell": self.v_cell[point],
                "i_cell": self.i_cell[point], "row_drop": self.row_drop[point], "col_rise": self.col_rise[point]}
        maps.update({f"state_{k}": v[point] for k, v in self.states.items()})
        maps.update({f"out_{k}": v[point] for k, v in self.outputs.items()})
        return maps

    @classmethod
    def from_result(cls, result: SimResult, crossbar: Crossbar, plot: int = -1) -> "CellArrays":
        """Collect the per-cell vectors of ``result`` (saved with ``save="cells"`` or ``"all"``)."""
        vectors = result.plot(plot).vectors
        m, n = crossbar.shape

        def get(name: str) -> np.ndarray:
            if name not in vectors:
                raise CosimError(
                    f"result has no vector {name}: write the netlist with save='cells' (--save cells) "
                    "or simulate with save_nodes=True"
                )
            return np.real(np.asarray(vectors[name], dtype=complex if np.iscomplexobj(vectors[name]) else float))

        def grid(fmt: str) -> np.ndarray:
            return np.stack([np.stack([get(fmt.format(i=i, j=j)) for j in range(n)], axis=-1) for i in range(m)],
                            axis=-2)

        v_in = np.stack([get(f"v(in{i})") for i in range(m)], axis=-1)
        points = v_in.shape[0]
        axis = get("time") if "time" in vectors else np.arange(points, dtype=float)
        v_sense = np.stack([get(f"v(s{j})") for j in range(n)], axis=-1)
        i_col = np.stack([get(f"i(vsns{j})") for j in range(n)], axis=-1)
        v_row, v_col = grid("v(r{i}_{j})"), grid("v(c{i}_{j})")
        v_dev = grid("v(m{i}_{j})") if crossbar.access == "1t1r" else v_row
        states: dict[str, np.ndarray] = {}
        outputs: dict[str, np.ndarray] = {}
        cells = crossbar.cells
        if isinstance(cells, VerilogACells):
            for name in cells.state_nodes:
                if f"v(nx0_0#{name})" in vectors:
                    states[name] = grid("v(nx{i}_{j}#" + name + ")")
            for name in cells.outputs:  # ngspice names some of them v(@...)
                for fmt in ("@nx{i}_{j}[" + name + "]", "v(@nx{i}_{j}[" + name + "])"):
                    if fmt.format(i=0, j=0) in vectors:
                        outputs[name] = grid(fmt)
                        break
        return cls(axis=axis, v_in=v_in, v_sense=v_sense, i_col=i_col, v_row=v_row, v_col=v_col, v_dev=v_dev,
                   i_cell=cell_currents(v_in, v_row, crossbar), states=states, outputs=outputs)


def cell_currents(v_in: np.ndarray, v_row: np.ndarray, crossbar: Crossbar) -> np.ndarray:
    """Cell currents [A], (points, M, N), by KCL at the row nodes (see the module docstring).

    ``v_in`` (points, M) driver voltages and ``v_row`` (points, M, N) row-node voltages [V].
    """
    points, m, n = v_row.shape
    segment = np.zeros((points, m, n + 1))  # current flowing rightwards into node j
    segment[:, :, 0] = (v_in - v_row[:, :, 0]) / crossbar.r_source
    segment[:, :, 1:n] = (v_row[:, :, :-1] - v_row[:, :, 1:]) / crossbar.r_row
    return segment[:, :, :-1] - segment[:, :, 1:]


def ir_drop_figure(cells: CellArrays, output: Path | str, point: int = -1, title: str = "") -> Path:
    """Heatmaps of the row-wire drop and column-wire rise [mV] and the cell voltage [V] at ``point``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cosim.fileio import atomic_path

    maps = cells.at(point)
    from matplotlib.ticker import MaxNLocator

    panels = [("row wire drop v_in − v_row", 1e3 * maps["row_drop"], "row wire drop [mV]"),
              ("column wire rise v_col − v_sense", 1e3 * maps["col_rise"], "column wire rise [mV]"),
              ("voltage across each cell", maps["v_cell"], "cell voltage [V]")]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2), constrained_layout=True)
    for ax, (name, data, label) in zip(axes, panels):
        image = ax.imshow(data, origin="upper", cmap="viridis", aspect="auto")
        ax.set_title(name)
        ax.set_xlabel("column j (index, 0 = driver side)")
        ax.set_ylabel("row i (index, last row = sense end)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(image, ax=ax, label=label)
    if title:
        fig.suptitle(title)
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=120, format=output.suffix.lstrip(".") or "png")
    plt.close(fig)
    return output
