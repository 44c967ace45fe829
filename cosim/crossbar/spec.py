"""The :class:`Crossbar`: one M×N array with its wires, terminals, cells and inputs.

Conventions (docs/crossbar.md): M rows (inputs) × N columns. Row i is driven at column 0 through
``r_source`` [Ω]; column j is sensed at row M−1 into a virtual ground (0 V) through
``r_sense`` [Ω]. ``r_row`` [Ω] joins neighbouring cells on a row, ``r_col`` [Ω] on a
column. With ``differential=True`` columns come in adjacent pairs (G⁺ at 2k, G⁻ at 2k+1)
and the signed output of pair k is I_2k − I_2k+1.

Node names used by the netlists (and by the nodal solver's result vectors):
``in<i>`` driven input, ``r<i>_<j>`` row side of cell (i, j), ``c<i>_<j>`` column side,
``m<i>_<j>`` between access transistor and device (1T1R), ``wl<i>`` word (gate) line of
row i, ``s<j>`` sense node; column current = ``i(vsns<j>)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from cosim.crossbar.cells import DEFAULT_READ_VOLTAGE, CellModel, LinearCells
from cosim.errors import CosimError
from cosim.spice.render import ident

Access = Literal["1r", "1t1r"]


@dataclass(frozen=True)
class Transistor:
    """Access NMOS of a 1T1R cell: ngspice's built-in MOSFET level 1.

    ``vto`` threshold [V], ``kp`` transconductance parameter [A/V²], ``lambda_`` channel-length
    modulation [1/V], ``w``/``l`` channel width/length [m], ``v_gate`` word-line voltage for
    reads [V].
    """

    model: str = "nacc"
    vto: float = 0.4
    kp: float = 2.0e-4
    lambda_: float = 0.0
    w: float = 1.0e-6
    l: float = 1.0e-7
    v_gate: float = 1.8

    def __post_init__(self) -> None:
        ident(self.model)
        for name in ("vto", "kp", "lambda_", "w", "l", "v_gate"):
            _check_finite(f"transistor.{name}", getattr(self, name))
        for name in ("kp", "w", "l"):
            if getattr(self, name) <= 0:
                raise CosimError(f"transistor.{name} must be positive")


@dataclass(frozen=True)
class Crossbar:
    """An M×N crossbar: cells, parasitic resistances [Ω], layout and read inputs [V]."""

    cells: CellModel
    r_row: float = 1.0
    r_col: float = 1.0
    r_source: float = 1.0
    r_sense: float = 1.0
    differential: bool = False
    access: Access = "1r"
    transistor: Transistor = field(default_factory=Transistor)
    inputs: np.ndarray | None = None
    """Read voltages per row [V], shape (M,); ``None`` means ``v_read`` on every row."""
    v_read: float = DEFAULT_READ_VOLTAGE
    """Full-scale read voltage [V]; also where static conductances are taken."""

    def __post_init__(self) -> None:
        if not isinstance(self.cells, CellModel):
            raise CosimError(f"cells: expected a cell model, got {type(self.cells).__name__}")
        for name in ("r_row", "r_col", "r_source", "r_sense"):
            value = getattr(self, name)
            _check_finite(name, value)
            if value <= 0:
                raise CosimError(f"{name} must be positive (got {value} Ω); use a small value for ideal wires")
        _check_finite("v_read", self.v_read)
        if self.v_read == 0:
            raise CosimError("v_read must be non-zero")
        if self.access not in ("1r", "1t1r"):
            raise CosimError(f"access must be '1r' or '1t1r', got {self.access!r}")
        if self.differential and self.cols % 2:
            raise CosimError(f"differential layout needs an even number of columns, got {self.cols}")
        if self.inputs is not None:
            vector = np.asarray(self.inputs, dtype=float)
            if vector.shape != (self.rows,):
                raise CosimError(f"inputs: expected shape ({self.rows},), got {vector.shape}")
            if not np.isfinite(vector).all():
                raise CosimError("inputs: non-finite voltage")
            object.__setattr__(self, "inputs", vector)

    # -- geometry ---------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return int(self.cells.shape[0])

    @property
    def cols(self) -> int:
        return int(self.cells.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def n_outputs(self) -> int:
        """Number of logical outputs: column pairs if differential, else columns."""
        return self.cols // 2 if self.differential else self.cols

    def input_vector(self) -> np.ndarray:
        """The read inputs [V], shape (M,)."""
        return np.full(self.rows, self.v_read) if self.inputs is None else np.asarray(self.inputs)

    def conductances(self) -> np.ndarray:
        """Static conductance per cell at ``v_read`` [S], shape (M, N)."""
        return np.asarray(self.cells.static_conductance(self.v_read))

    def with_(self, **changes: object) -> "Crossbar":
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def permuted(self, row_order: np.ndarray, col_order: np.ndarray) -> "Crossbar":
        """Physical array with logical row ``row_order[a]`` at position a (same for columns)."""
        inputs = None if self.inputs is None else np.asarray(self.inputs)[row_order]
        return replace(self, cells=self.cells.permuted(row_order, col_order), inputs=inputs)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_weights(
        cls,
        weights: np.ndarray,
        g_min: float = 1.0 / 75e3,
        g_max: float = 1.0 / 4.5e3,
        differential: bool = True,
        **kwargs: object,
    ) -> "Crossbar":
        """Linear cells holding ``weights`` (M, N) scaled into [g_min, g_max] [S].

        Differential: w ≥ 0 goes to G⁺ = g_min + w·s, G⁻ = g_min (and the reverse), with
        s = (g_max − g_min)/max|w|; columns become 2N. Otherwise weights must be ≥ 0.
        """
        w = np.asarray(weights, dtype=float)
        if w.ndim != 2 or not np.isfinite(w).all():
            raise CosimError("weights: expected a finite 2-D array")
        if not 0 < g_min < g_max:
            raise CosimError("need 0 < g_min < g_max")
        peak = float(np.abs(w).max()) or 1.0
        scale = (g_max - g_min) / peak
        if differential:
            g = np.empty((w.shape[0], 2 * w.shape[1]))
            g[:, 0::2] = g_min + scale * np.clip(w, 0, None)
            g[:, 1::2] = g_min + scale * np.clip(-w, 0, None)
        else:
            if (w < 0).any():
                raise CosimError("weights: negative entries need differential=True")
            g = g_min + scale * w
        return cls(cells=LinearCells(g), differential=differential, **kwargs)  # type: ignore[arg-type]


def _check_finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CosimError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise CosimError(f"{name}: must be finite")
