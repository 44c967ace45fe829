"""Circuit-level S4D recurrence: every step's matrix-vector product done by crossbars.

:class:`CircuitBackend` is a :data:`cosim.s4d.ideal.MatVec`: ``backend(matrices, volts)``
takes the DAC's row voltages ``(..., H, N+1)`` [V] of one step, drives the mapped crossbar
tiles (:mod:`cosim.s4d.mapping`) with them, reads the column currents, forms the differential
outputs ``ΔI_j = I_2j − I_2j+1`` [A] and returns ``ΔI_j / s_j`` — the products in volts
(``s_j`` = the output's conductance per unit weight [S]). ``matrices`` is ignored (only its
shape is checked): the backend computes with what the crossbar holds. Any MDM permutation is
undone digitally inside the backend. Use it with :func:`cosim.s4d.ideal.run_recurrence`,
:func:`~cosim.s4d.ideal.impulse_kernel` and the metrics of :mod:`cosim.s4d.metrics`.

Two solvers, same circuit (docs/crossbar.md: rows driven through ``r_source`` at column 0, columns
sensed into 0 V at row M−1 through ``r_sense``, ``r_row``/``r_col`` wire segments):

* ``"nodal"`` — :class:`cosim.crossbar.solver.NodalSolver`; the nodal matrix of linear cells is
  factored once per tile and reused for every step (two triangular solves per step);
  polynomial (device) cells are solved by its chord Newton iteration.
* ``"ngspice"`` — :class:`cosim.spice.pyspice_backend.InProcessCircuit`: the read netlist of
  each tile (``templates/crossbar_read.cir.j2``, KLU, tight tolerances) is loaded once into
  libngspice; each step alters the ``vin<i>`` sources and re-solves the operating point.

"No wires" is modelled by :meth:`Wires.negligible` (every wire, source and sense resistance
1 nΩ): the kernel of the test model then differs from the wire-free one by ~3e−8
(relative; the error scales linearly with the resistance), below the 1e−6 the tests ask for.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np

from cosim.crossbar.spec import Crossbar
from cosim.s4d.ideal import MatVec, S4DError
from cosim.s4d.mapping import CellKind, MappedLayer, Tile

SolverName = Literal["nodal", "ngspice"]

NEGLIGIBLE_OHM = 1e-9
"""Wire resistance [Ω] standing for "no wires" (the crossbar needs positive resistances)."""


@dataclass(frozen=True)
class Wires:
    """Parasitic resistances [Ω]: row and column segments, row source, column sense."""

    r_row: float = 1.0
    r_col: float = 1.0
    r_source: float = 1.0
    r_sense: float = 1.0

    @classmethod
    def negligible(cls, ohm: float = NEGLIGIBLE_OHM) -> "Wires":
        """Every resistance ``ohm`` (default 1 nΩ): the wire-free crossbar up to ~1e−8."""
        return cls(ohm, ohm, ohm, ohm)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class _TileSolver(Protocol):
    def solve(self, inputs: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class _NodalTile:
    """Nodal solver of one physical tile (factorization kept between calls)."""

    def __init__(self, crossbar: Crossbar) -> None:
        from cosim.crossbar.solver import NodalSolver

        self.solver = NodalSolver(crossbar)

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        return self.solver.solve_many(inputs)

    def close(self) -> None:
        pass


class _SpiceTile:
    """One tile loaded once into an in-process ngspice session."""

    def __init__(self, crossbar: Crossbar, timeout_s: float) -> None:
        from cosim.crossbar.netlist import ACCURATE_OPTIONS, read_netlist
        from cosim.spice.pyspice_backend import InProcessCircuit

        text = read_netlist(crossbar, inputs=np.zeros(crossbar.rows), spice_options=ACCURATE_OPTIONS)
        self.sources = [f"vin{i}" for i in range(crossbar.rows)]
        self.names = [f"i(vsns{j})" for j in range(crossbar.cols)]
        self.circuit = InProcessCircuit(text, timeout_s=timeout_s).open()

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        change_sets = [dict(zip(self.sources, map(float, vector))) for vector in inputs]
        return np.asarray(self.circuit.sweep(change_sets, self.names), dtype=float)

    def close(self) -> None:
        self.circuit.close()


def tile_solver(crossbar: Crossbar, solver: SolverName = "nodal", timeout_s: float = 120.0) -> _TileSolver:
    """A solver of one physical array: ``solve(inputs (K, M) [V]) -> column currents (K, 2N) [A]``
    and ``close()``. ``"nodal"`` factors the linear-cell matrix once; ``"ngspice"`` loads the
    read netlist once into an in-process ngspice session."""
    if solver == "nodal":
        return _NodalTile(crossbar)
    if solver == "ngspice":
        return _SpiceTile(crossbar, timeout_s)
    raise S4DError(f"solver must be 'nodal' or 'ngspice', got {solver!r}")


class CircuitBackend:
    """The crossbar tiles of a :class:`MappedLayer` as a MatVec (see module doc).

    ``wires``: parasitic resistances; ``solver``: ``"nodal"`` or ``"ngspice"``;
    ``cell_model``: ``"linear"`` (resistors at the achieved conductances) or ``"polynomial"``
    (device I–V at the programmed states; needs ``device_model``). Close it (or use ``with``)
    to stop ngspice workers. ``stats`` counts solves and seconds spent in them.
    """

    def __init__(
        self,
        mapped: MappedLayer,
        wires: Wires = Wires(),
        *,
        solver: SolverName = "nodal",
        cell_model: CellKind = "linear",
        device_model: object | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        if solver not in ("nodal", "ngspice"):
            raise S4DError(f"solver must be 'nodal' or 'ngspice', got {solver!r}")
        self.mapped = mapped
        self.wires = wires
        self.solver_name = solver
        self.cell_model = cell_model
        self.device_model = device_model
        self.stats = {"solves": 0, "vectors": 0, "seconds": 0.0}
        self._solvers: list[_TileSolver] = []
        try:
            for tile in mapped.tiles:
                physical = tile.physical_crossbar(cell_model, device_model, **wires.as_dict())
                self._solvers.append(tile_solver(physical, solver, timeout_s))
        except BaseException:
            self.close()
            raise

    # -- life cycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop any ngspice sessions."""
        for solver in self._solvers:
            solver.close()
        self._solvers = []

    def __enter__(self) -> "CircuitBackend":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------------
    def logical_crossbar(self, index: int) -> Crossbar:
        """Tile ``index`` as mapped (logical order), with this backend's wires and cells."""
        tile = self.mapped.tiles[index]
        return tile.crossbar(self.cell_model, self.device_model, **self.wires.as_dict())

    def tile_currents(self, index: int, inputs: np.ndarray) -> np.ndarray:
        """Column currents [A], (K, 2·outputs), logical order, of tile ``index`` for logical
        row voltages ``inputs`` (K, rows) [V]."""
        if not self._solvers:
            raise S4DError("CircuitBackend is closed")
        tile: Tile = self.mapped.tiles[index]
        batch = np.atleast_2d(np.asarray(inputs, dtype=float))
        physical = batch if tile.remap is None else tile.remap.inputs_to_physical(batch)
        start = time.perf_counter()
        currents = self._solvers[index].solve(physical)
        self.stats["seconds"] += time.perf_counter() - start
        self.stats["solves"] += 1
        self.stats["vectors"] += len(batch)
        return currents if tile.remap is None else tile.remap.outputs_to_logical(currents)

    def layer_products(self, volts: np.ndarray) -> np.ndarray:
        """Products ``ΔI/s`` [V], (K, H(N+1)), for layer row voltages (K, H(N+1)) [V]."""
        batch = np.atleast_2d(np.asarray(volts, dtype=float))
        if batch.shape[1] != self.mapped.size:
            raise S4DError(f"volts: expected (K, {self.mapped.size}), got {batch.shape}")
        out = np.zeros_like(batch)
        for index, tile in enumerate(self.mapped.tiles):
            currents = self.tile_currents(index, batch[:, tile.inputs])
            out[:, tile.outputs] += (currents[:, 0::2] - currents[:, 1::2]) / tile.scale[None, :]
        return out

    def __call__(self, matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        """MatVec: (..., H, N+1) row voltages [V] → (..., H, N+1) products [V]."""
        h, n1 = self.mapped.program.n_channels, self.mapped.program.state_size + 1
        if np.shape(matrices) != (h, n1, n1) or np.shape(volts)[-2:] != (h, n1):
            raise S4DError(
                f"backend holds H={h}, N+1={n1}; got matrices {np.shape(matrices)} and volts {np.shape(volts)}"
            )
        flat = np.asarray(volts, dtype=float).reshape(-1, h * n1)
        return self.layer_products(flat).reshape(np.shape(volts))


def dense_layer_matvec(layer_weights: np.ndarray) -> MatVec:
    """Software model of a whole-layer crossbar including cross-talk: a MatVec computing
    ``volts_flat @ W`` with ``W`` (H(N+1), H(N+1)) inputs × outputs (e.g.
    :meth:`MappedLayer.stored_layer_weights`)."""
    weights = np.asarray(layer_weights, dtype=float)

    def matvec(matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        flat = np.asarray(volts, dtype=float).reshape(-1, weights.shape[0])
        return (flat @ weights).reshape(np.shape(volts))

    return matvec
