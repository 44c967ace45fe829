"""Cell models of a crossbar: what sits between row node (i, j) and column node (i, j).

Three kinds share one small interface (:class:`CellModel`):

* :class:`LinearCells` — one conductance G_ij per cell [S]; rendered as a resistor.
* :class:`PolynomialCells` — a polynomial I–V per cell, I = Σ_k a_k,ij V^k [A] with V the
  voltage across the cell [V] (row side minus column side), no constant term; rendered in
  ngspice as a B-source. The Synaptogen-style device current
  I(U; r) = (1 − r)·P_LLRS(U) + r·P_HHRS(U) (docs/device-model.md) is such a polynomial per cell
  (:meth:`PolynomialCells.from_state`).
* :class:`VerilogACells` — a Verilog-A (OSDI) instance per cell with instance parameters;
  ngspice only, unless an ``equivalent`` model is given for the nodal solver.

Arrays are indexed ``[row, column]``; vectorised methods accept voltages of shape
``(..., M, N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from cosim.errors import CosimError
from cosim.spice.render import ident

DEFAULT_READ_VOLTAGE = 0.2
"""Read voltage U0 [V] at which static resistances are defined (docs/device-model.md)."""


@runtime_checkable
class CellModel(Protocol):
    """What the netlist writer, the nodal solver and the metrics need from a cell array."""

    kind: str

    @property
    def shape(self) -> tuple[int, int]: ...

    @property
    def is_linear(self) -> bool: ...

    def current(self, v: np.ndarray) -> np.ndarray:
        """Cell current [A] for cell voltages ``v`` [V], shape ``(..., M, N)``."""

    def derivative(self, v: np.ndarray) -> np.ndarray:
        """Differential conductance dI/dV [S] at cell voltages ``v`` [V]."""

    def static_conductance(self, v_read: float = DEFAULT_READ_VOLTAGE) -> np.ndarray:
        """I(v_read)/v_read [S] per cell: the conductance the array is meant to hold."""

    def permuted(self, rows: np.ndarray, cols: np.ndarray) -> "CellModel":
        """The same cells with rows and columns reordered (new[a, b] = old[rows[a], cols[b]])."""


def _as_matrix(name: str, value: np.ndarray | Sequence, shape: tuple[int, int] | None = None) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise CosimError(f"{name}: expected a 2-D (rows × columns) array, got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise CosimError(f"{name}: shape {array.shape} does not match the crossbar {shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise CosimError(f"{name}: non-finite value at row {i}, column {j}")
    return array


@dataclass(frozen=True)
class LinearCells:
    """Ohmic cells: conductance ``g`` [S] per cell, shape (M, N); must be ≥ 0."""

    g: np.ndarray
    kind: str = field(default="resistor", init=False)

    def __post_init__(self) -> None:
        g = _as_matrix("conductances", self.g)
        if (g < 0).any():
            i, j = np.argwhere(g < 0)[0]
            raise CosimError(f"conductances: negative value {g[i, j]} S at row {i}, column {j}")
        object.__setattr__(self, "g", g)

    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape  # type: ignore[return-value]

    @property
    def is_linear(self) -> bool:
        return True

    def current(self, v: np.ndarray) -> np.ndarray:
        return self.g * v

    def derivative(self, v: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.g, np.shape(v))

    def static_conductance(self, v_read: float = DEFAULT_READ_VOLTAGE) -> np.ndarray:
        return self.g

    def resistances(self) -> np.ndarray:
        """Resistance [Ω] per cell (inf where G = 0)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.g

    def permuted(self, rows: np.ndarray, cols: np.ndarray) -> "LinearCells":
        return LinearCells(self.g[np.ix_(rows, cols)])


@dataclass(frozen=True)
class PolynomialCells:
    """Polynomial I–V per cell: ``coeffs[k, i, j]`` multiplies V^(D−k) (highest power first).

    The last coefficient is the constant term and must be 0 (a passive cell carries no
    current at 0 V). Units: A/V^p for the coefficient of V^p.
    """

    coeffs: np.ndarray
    kind: str = field(default="polynomial", init=False)

    def __post_init__(self) -> None:
        c = np.asarray(self.coeffs, dtype=float)
        if c.ndim != 3 or c.shape[0] < 2:
            raise CosimError(
                f"polynomial coefficients: expected shape (degree+1, M, N) with degree ≥ 1, got {c.shape}"
            )
        if not np.isfinite(c).all():
            raise CosimError("polynomial coefficients: non-finite value")
        if np.any(c[-1] != 0.0):
            raise CosimError("polynomial coefficients: constant term must be 0 (I(0) = 0)")
        object.__setattr__(self, "coeffs", c)

    @classmethod
    def from_state(
        cls, r: np.ndarray, p_llrs: Sequence[float], p_hhrs: Sequence[float]
    ) -> "PolynomialCells":
        """Device cells I(U; r) = (1 − r)·P_LLRS(U) + r·P_HHRS(U) for state ``r`` (M, N).

        ``p_llrs`` / ``p_hhrs``: basis polynomials, highest power first, ending with the
        (zero) constant term (docs/device-model.md).
        """
        state = _as_matrix("device state r", r)
        low, high = _pad_same_degree(np.asarray(p_llrs, float), np.asarray(p_hhrs, float))
        coeffs = (1.0 - state)[None] * low[:, None, None] + state[None] * high[:, None, None]
        return cls(coeffs)

    @classmethod
    def from_resistance(
        cls,
        resistance: np.ndarray,
        p_llrs: Sequence[float],
        p_hhrs: Sequence[float],
        v_read: float = DEFAULT_READ_VOLTAGE,
    ) -> "PolynomialCells":
        """Device cells whose static resistance at ``v_read`` is ``resistance`` [Ω].

        Uses r(R) = (G_LLRS − 1/R)/(G_LLRS − G_HHRS) with G_X = P_X(U0)/U0.
        """
        res = _as_matrix("resistances", resistance)
        if (res <= 0).any():
            raise CosimError("resistances must be positive")
        g_low = np.polyval(p_llrs, v_read) / v_read
        g_high = np.polyval(p_hhrs, v_read) / v_read
        state = (g_low - 1.0 / res) / (g_low - g_high)
        return cls.from_state(state, p_llrs, p_hhrs)

    @classmethod
    def from_device_model(cls, model: object, resistance: np.ndarray) -> "PolynomialCells":
        """Cells of a :class:`cosim.device.modelfile.DeviceModel` at static resistances [Ω]."""
        return cls.from_resistance(
            resistance, model.llrs_poly(), model.hhrs_poly(), v_read=model.u0  # type: ignore[attr-defined]
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.coeffs.shape[1:]  # type: ignore[return-value]

    @property
    def degree(self) -> int:
        return self.coeffs.shape[0] - 1

    @property
    def is_linear(self) -> bool:
        return bool(np.all(self.coeffs[:-2] == 0.0))

    def current(self, v: np.ndarray) -> np.ndarray:
        result = np.zeros(np.broadcast_shapes(np.shape(v), self.shape))
        for c in self.coeffs:  # Horner
            result = result * v + c
        return result

    def derivative(self, v: np.ndarray) -> np.ndarray:
        degree = self.degree
        result = np.zeros(np.broadcast_shapes(np.shape(v), self.shape))
        for k, c in enumerate(self.coeffs[:-1]):
            result = result * v + (degree - k) * c
        return result

    def static_conductance(self, v_read: float = DEFAULT_READ_VOLTAGE) -> np.ndarray:
        return self.current(np.full(self.shape, v_read)) / v_read

    def horner_terms(self) -> np.ndarray:
        """Coefficients from the highest power down to V^1 (the constant is dropped)."""
        return self.coeffs[:-1]

    def permuted(self, rows: np.ndarray, cols: np.ndarray) -> "PolynomialCells":
        return PolynomialCells(self.coeffs[:, rows][:, :, cols])


def _pad_same_degree(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = max(a.size, b.size)
    return np.pad(a, (size - a.size, 0)), np.pad(b, (size - b.size, 0))


@dataclass(frozen=True)
class VerilogACells:
    """A Verilog-A (OSDI) device instance per cell.

    ``model``: the ``.model`` name; ``module``: the Verilog-A module name; ``params``:
    instance parameter name → a number for all cells or an (M, N) array; ``model_params``:
    parameters on the ``.model`` card; ``osdi_file``: absolute path loaded with ``pre_osdi``;
    ``equivalent``: an optional cell model with the same I–V that the nodal solver uses;
    ``state_nodes``: internal nodes of the module that hold its state (probed as
    ``v(nx<i>_<j>#<node>)`` with ``save="cells"``); ``outputs``: operating-point output
    variables of the module probed as ``@nx<i>_<j>[<name>]``.
    """

    shape_: tuple[int, int]
    model: str
    module: str
    params: Mapping[str, object] = field(default_factory=dict)
    model_params: Mapping[str, float] = field(default_factory=dict)
    osdi_file: Path | None = None
    equivalent: CellModel | None = None
    state_nodes: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    kind: str = field(default="veriloga", init=False)

    def __post_init__(self) -> None:
        ident(self.model)
        ident(self.module)
        object.__setattr__(self, "state_nodes", tuple(ident(n) for n in self.state_nodes))
        object.__setattr__(self, "outputs", tuple(ident(n) for n in self.outputs))
        arrays: dict[str, np.ndarray] = {}
        for name, value in self.params.items():
            ident(name)
            arrays[name] = _param_matrix(f"instance parameter {name}", value, self.shape_)
        for name, value in self.model_params.items():
            ident(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise CosimError(f"model parameter {name}: expected a finite number, got {value!r}")
        object.__setattr__(self, "params", arrays)
        if self.equivalent is not None and tuple(self.equivalent.shape) != tuple(self.shape_):
            raise CosimError("equivalent cell model has a different shape")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.shape_)  # type: ignore[return-value]

    @property
    def is_linear(self) -> bool:
        """Linear if the nodal equivalent is (False when there is none)."""
        return self.equivalent is not None and self.equivalent.is_linear

    def _nodal(self) -> CellModel:
        if self.equivalent is None:
            raise CosimError(
                "Verilog-A cells have no nodal-solver equivalent; pass `equivalent=` "
                "(e.g. PolynomialCells) or simulate with ngspice"
            )
        return self.equivalent

    def current(self, v: np.ndarray) -> np.ndarray:
        return self._nodal().current(v)

    def derivative(self, v: np.ndarray) -> np.ndarray:
        return self._nodal().derivative(v)

    def static_conductance(self, v_read: float = DEFAULT_READ_VOLTAGE) -> np.ndarray:
        return self._nodal().static_conductance(v_read)

    def permuted(self, rows: np.ndarray, cols: np.ndarray) -> "VerilogACells":
        return VerilogACells(
            shape_=(len(rows), len(cols)),
            model=self.model,
            module=self.module,
            params={k: v[np.ix_(rows, cols)] for k, v in self.params.items()},  # type: ignore[index]
            model_params=dict(self.model_params),
            osdi_file=self.osdi_file,
            equivalent=None if self.equivalent is None else self.equivalent.permuted(rows, cols),
            state_nodes=self.state_nodes,
            outputs=self.outputs,
        )


def _param_matrix(name: str, value: object, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(value, bool):
        raise CosimError(f"{name}: expected a number or an array, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(float(value)):
            raise CosimError(f"{name}: must be finite")
        return np.full(shape, float(value))
    try:
        return _as_matrix(name, value, shape)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CosimError(f"{name}: expected a number or an (M, N) array of numbers") from exc
