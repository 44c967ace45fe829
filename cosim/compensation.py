"""Compensation of crossbar non-idealities: one stage, one entry point (:func:`compensate`).

A crossbar holding the weights ``W`` (M inputs × N outputs) as differential conductance pairs
does not compute ``V @ W``: the wires act (almost) as a per-output gain of 1 − NF, and
write-verify leaves every cell a little off its target. Real hardware compensates both; this
module does what a lab does, with the same circuit solvers as the rest of the toolkit.

Methods (``METHODS``):

``"none"``        program the plain targets; read as is.
``"gain"``        probe the array as programmed through the same solver: one read with all
                  inputs at 0 V gives each output's offset, ``probe_vectors`` known random
                  input vectors (uniform in ±v_read, seed ``probe_seed``) its gain (least
                  squares against the wanted products ``V @ W``); both are applied digitally
                  after the ADC.
``"predistort"``  parasitic-aware targets: iterate ``w ← w + (W − W_eff(w))/g`` where
                  ``W_eff`` is the in-circuit matrix read through the solver (one unit vector
                  per row) and ``g`` each output's fitted in-circuit gain (a diagonal
                  Newton step), until ``‖W − W_eff‖/‖W‖ ≤ tolerance`` or
                  ``max_iterations``; then program these targets. Output scales shrink where a predistorted weight
                  would leave the conductance window.
``"insitu"``      write-verify whose verify reads go through the array and its wires: every
                  verify round reads the whole array row by row through the solver and
                  compares each cell's in-circuit conductance with its target (needs devices).

API (also used by ``cosim s4d``, ``cosim mdm --compensation`` and deployment)::

    from cosim.compensation import ArraySpec, Devices, compensate
    spec = ArraySpec(weights=W, window=ConductanceWindow(g_min, g_max), wires=Wires(1, 1, 1, 1))
    result = compensate(spec, "predistort")           # "none" | "gain" | "predistort" | "insitu"
    y = result.read(volts)        # (K, M) row voltages [V] → (K, N) corrected products [V]
    result.effective_weights()    # (M, N) in-circuit matrix after compensation
    result.residual, result.cost  # ‖W_eff − W‖/‖W‖; reads, solver calls, pulses, seconds

``ArraySpec`` may carry an already programmed array (``conductance``, ``state``) — then
``"gain"`` only probes it — and an MDM placement (``remap``). ``Devices(model, seed, config)``
programs stochastic devices by write-verify (device ``k`` of the array has id
``device_offset + k``, row-major over the logical cells). ``solver="ngspice"`` runs every read
through in-process ngspice (small arrays). For an S4D layer use :func:`compensate_layer`,
which applies the same method tile by tile and returns the layer's digital correction and a
:class:`CorrectedMatVec`.

Products are in the units of the weights times volts: ``ΔI_j / s_j`` with ``ΔI_j`` the
differential column current [A] and ``s_j`` the output's conductance per unit weight [S].
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from cosim.errors import CosimError

if TYPE_CHECKING:
    from cosim.crossbar.mdm import Remap
    from cosim.crossbar.spec import Crossbar
    from cosim.device.programming import ProgramConfig
    from cosim.s4d.circuit import CircuitBackend, Wires
    from cosim.s4d.mapping import ConductanceWindow, MappedLayer
    from cosim.s4d.ideal import S4DLayer

Method = Literal["none", "gain", "predistort", "insitu"]
METHODS: tuple[str, ...] = ("none", "gain", "predistort", "insitu")
Solver = Literal["nodal", "ngspice"]


NEGLIGIBLE_ERROR = 1e-6
"""Output errors below this are at the solver's precision: MDM's effect on them has no sign."""


class CompensationError(CosimError, ValueError):
    """Invalid compensation request (unknown method, missing devices, bad shapes)."""


def check_methods(methods: Sequence[str]) -> list[str]:
    """Validate a list of method names (order kept, no repeats)."""
    names = list(methods)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise CompensationError(f"compensation method {unknown[0]!r} unknown; use one of {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise CompensationError("compensation methods: a method is listed twice")
    if not names:
        raise CompensationError("compensation methods: give at least one of " + ", ".join(METHODS))
    return names


@dataclass(frozen=True)
class CompensationOptions:
    """Settings of the methods (counts, tolerances, solver)."""

    probe_vectors: int = 32
    """``gain``: known input vectors read through the array."""
    probe_seed: int = 0
    """``gain``: seed of the probe vectors (recorded)."""
    max_iterations: int = 12
    """``predistort``: bound on solver iterations."""
    tolerance: float = 1e-6
    """``predistort``: stop when the relative matrix residual is at most this."""
    solver: Solver = "nodal"
    """Circuit solver of every read: ``"nodal"`` or ``"ngspice"``."""
    timeout_s: float = 120.0
    """ngspice: time limit per request [s]."""
    insitu_passes: int = 3
    """``insitu``: programming passes; after the first, only cells whose in-circuit
    conductance is off by more than ``insitu_tolerance`` are programmed again."""
    insitu_tolerance: float = 0.01
    """``insitu``: relative in-circuit error that sends a cell back to programming."""

    def __post_init__(self) -> None:
        if self.probe_vectors < 2:
            raise CompensationError("probe_vectors must be at least 2")
        if self.max_iterations < 1:
            raise CompensationError("max_iterations must be at least 1")
        if not 0 < self.tolerance < 1:
            raise CompensationError("tolerance must lie in (0, 1)")
        if self.insitu_passes < 1 or not 0 < self.insitu_tolerance < 1:
            raise CompensationError("insitu_passes must be >= 1 and insitu_tolerance in (0, 1)")
        if self.solver not in ("nodal", "ngspice"):
            raise CompensationError(f"solver must be 'nodal' or 'ngspice', got {self.solver!r}")


@dataclass(frozen=True)
class Devices:
    """Stochastic devices to program: model, seed and write-verify settings."""

    model: Any
    seed: int
    config: "ProgramConfig | None" = None


@dataclass
class CompensationCost:
    """What a method spent: input vectors read through the array, solver set-ups
    (factorizations or ngspice circuit loads), iterations, pulses per device, seconds."""

    reads: int = 0
    solver_calls: int = 0
    iterations: int = 0
    pulses_per_device: float = 0.0
    seconds: float = 0.0

    def add(self, other: "CompensationCost") -> "CompensationCost":
        return CompensationCost(
            self.reads + other.reads, self.solver_calls + other.solver_calls,
            max(self.iterations, other.iterations), self.pulses_per_device + other.pulses_per_device,
            self.seconds + other.seconds,
        )

    def as_dict(self) -> dict[str, float]:
        return {"reads": self.reads, "solver_calls": self.solver_calls, "iterations": self.iterations,
                "pulses_per_device": self.pulses_per_device, "seconds": self.seconds}


@dataclass(frozen=True, eq=False)
class ArraySpec:
    """One differential crossbar: wanted weights and how they sit on the array.

    ``weights`` (M, N): wanted weights, inputs × outputs. ``window``: conductance range [S].
    ``wires``: parasitic resistances [Ω]. ``scale`` (N,): S per unit weight (default: the
    window over each output's largest |weight|). ``conductance`` (M, 2N): the array as it is
    now (None: exact targets). ``state``: device states of a programmed array. ``remap``:
    MDM placement. ``v_read``: full-scale read voltage [V]. ``device_offset``: id of the
    first device. ``weight_bits``: device levels (None: analog targets).
    """

    weights: np.ndarray
    window: "ConductanceWindow"
    wires: "Wires | None" = None
    scale: np.ndarray | None = None
    conductance: np.ndarray | None = None
    state: np.ndarray | None = None
    remap: "Remap | None" = None
    v_read: float = 0.2
    device_offset: int = 0
    weight_bits: int | None = None

    def __post_init__(self) -> None:
        from cosim.s4d.circuit import Wires
        from cosim.s4d.mapping import column_scales

        weights = np.asarray(self.weights, dtype=float)
        if weights.ndim != 2 or not np.isfinite(weights).all():
            raise CompensationError(f"weights: expected a finite (M, N) array, got shape {weights.shape}")
        object.__setattr__(self, "weights", weights)
        if self.wires is None:
            object.__setattr__(self, "wires", Wires())
        scale = column_scales(weights, self.window, "column") if self.scale is None else np.asarray(self.scale, float)
        if scale.shape != (weights.shape[1],) or np.any(scale <= 0):
            raise CompensationError(f"scale: expected {weights.shape[1]} positive values")
        object.__setattr__(self, "scale", scale)
        if self.conductance is not None and np.shape(self.conductance) != (weights.shape[0], 2 * weights.shape[1]):
            raise CompensationError(f"conductance: expected shape {(weights.shape[0], 2 * weights.shape[1])}")
        if self.v_read <= 0:
            raise CompensationError("v_read must be positive")

    def targets(self, weights: np.ndarray | None = None, scale: np.ndarray | None = None) -> np.ndarray:
        """(M, 2N) target conductances [S] for ``weights`` (default the wanted ones)."""
        from cosim.s4d.mapping import differential_targets

        return differential_targets(self.weights if weights is None else weights,
                                    self.scale if scale is None else scale, self.window, self.weight_bits)


class ArrayReader:
    """Reads one array (given conductances) through a circuit solver, counting the cost."""

    def __init__(self, spec: ArraySpec, conductance: np.ndarray, cost: CompensationCost,
                 options: CompensationOptions) -> None:
        from cosim.s4d.circuit import tile_solver

        self.spec, self.cost = spec, cost
        self.crossbar = self.logical_crossbar(spec, conductance)
        physical = self.crossbar if spec.remap is None else spec.remap.apply(self.crossbar)
        self.solver = tile_solver(physical, options.solver, options.timeout_s)
        cost.solver_calls += 1

    @staticmethod
    def logical_crossbar(spec: ArraySpec, conductance: np.ndarray) -> "Crossbar":
        from cosim.crossbar.cells import LinearCells
        from cosim.crossbar.spec import Crossbar

        return Crossbar(cells=LinearCells(np.asarray(conductance, float)), differential=True,
                        v_read=spec.v_read, **spec.wires.as_dict())  # type: ignore[union-attr]

    def currents(self, volts: np.ndarray) -> np.ndarray:
        """Column currents [A], (K, 2N), logical order, for row voltages (K, M) [V]."""
        batch = np.atleast_2d(np.asarray(volts, dtype=float))
        remap = self.spec.remap
        physical = batch if remap is None else remap.inputs_to_physical(batch)
        self.cost.reads += len(batch)
        out = self.solver.solve(physical)
        return out if remap is None else remap.outputs_to_logical(out)

    def products(self, volts: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """``ΔI/s`` (K, N) for row voltages (K, M) [V]."""
        currents = self.currents(volts)
        return (currents[:, 0::2] - currents[:, 1::2]) / scale[None, :]

    def effective_weights(self, scale: np.ndarray) -> np.ndarray:
        """In-circuit matrix (M, N): one read of ``v_read`` per row (exact for linear cells)."""
        m = self.spec.weights.shape[0]
        return self.products(self.spec.v_read * np.eye(m), scale) / self.spec.v_read

    def close(self) -> None:
        self.solver.close()


@dataclass(frozen=True, eq=False)
class CompensatedArray:
    """The array after a compensation method, with its digital correction and cost.

    ``conductance`` / ``target`` (M, 2N) [S]: held and last programmed; ``scale`` (N,) [S per
    unit weight]; ``gain``, ``offset`` (N,): digital correction ``y = gain·ΔI/s + offset``;
    ``residual``: ‖W_eff − W‖/‖W‖ of the corrected in-circuit matrix (linear cells);
    ``history``: predistortion residual per iteration; ``programming``: write-verify summary.
    """

    method: str
    spec: ArraySpec
    conductance: np.ndarray
    target: np.ndarray
    scale: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    cost: CompensationCost
    residual: float = float("nan")
    history: tuple[float, ...] = ()
    state: np.ndarray | None = None
    programming: dict[str, Any] = field(default_factory=dict)
    failures: Any = None
    result: Any = None
    """The write-verify :class:`~cosim.device.programming.ProgramResult` (programmed here), or None."""

    def crossbar(self) -> "Crossbar":
        """The array as placed (MDM applied), linear cells at the held conductances."""
        logical = ArrayReader.logical_crossbar(self.spec, self.conductance)
        return logical if self.spec.remap is None else self.spec.remap.apply(logical)

    def read(self, volts: np.ndarray, solver: Solver = "nodal") -> np.ndarray:
        """Corrected products (K, N) [V·weight] for row voltages (K, M) [V]."""
        reader = ArrayReader(replace(self.spec, scale=self.scale), self.conductance, CompensationCost(),
                             CompensationOptions(solver=solver))
        try:
            return reader.products(volts, self.scale) * self.gain[None, :] + self.offset[None, :]
        finally:
            reader.close()

    def effective_weights(self) -> np.ndarray:
        """(M, N) in-circuit matrix with the digital gain (offsets excluded)."""
        reader = ArrayReader(self.spec, self.conductance, CompensationCost(), CompensationOptions())
        try:
            return reader.effective_weights(self.scale) * self.gain[None, :]
        finally:
            reader.close()

    def summary(self) -> dict[str, Any]:
        """JSON-friendly record: method, residual, iterations, cost, programming stats."""
        return {"method": self.method, "residual": self.residual, "history": list(self.history),
                **self.cost.as_dict(), "programming": dict(self.programming)}


def relative_residual(effective: np.ndarray, wanted: np.ndarray) -> float:
    """‖effective − wanted‖_F / ‖wanted‖_F."""
    norm = float(np.linalg.norm(wanted))
    return float(np.linalg.norm(effective - wanted) / (norm if norm > 0 else 1.0))


def fit_gain_offset(measured: np.ndarray, wanted: np.ndarray, zero: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per output j: ``wanted_j ≈ g_j·measured_j + o_j`` over K probe vectors.

    The offset is what the output reads for all-zero inputs (``zero``, (N,), as a lab reads
    it; None: 0), ``o_j = −g_j·zero_j``; the gain is the least-squares slope through that
    point. Outputs whose measured signal is (numerically) zero keep gain 1 and offset 0."""
    n = measured.shape[1]
    base = np.zeros(n) if zero is None else np.asarray(zero, float)
    centred = measured - base[None, :]
    gain, offset = np.ones(n), np.zeros(n)
    for j in range(n):
        x = centred[:, j]
        energy = float(x @ x)
        if energy <= 1e-24 * max(float(wanted[:, j] @ wanted[:, j]), 1e-300):
            continue
        gain[j] = float(x @ wanted[:, j]) / energy
        offset[j] = -gain[j] * base[j]
    return gain, offset


def probe_inputs(rows: int, count: int, v_read: float, seed: int) -> np.ndarray:
    """Known probe vectors (count, rows), uniform in ±v_read [V], drawn from ``seed``."""
    return np.random.default_rng(seed).uniform(-v_read, v_read, size=(count, rows))


# -- programming --------------------------------------------------------------------------
def _program(spec: ArraySpec, target: np.ndarray, devices: Devices, cost: CompensationCost,
             options: CompensationOptions, insitu: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    """Write-verify the array to ``target`` (M, 2N); returns conductance, states, result.

    In situ, every verify round reads the whole array through the solver, one row at a time
    (``v_read`` on row i, 0 V elsewhere: column j then carries cell (i, j)'s in-circuit
    current), and later passes re-program the cells still off by more than
    ``options.insitu_tolerance``."""
    from cosim.device.model import DeviceArray
    from cosim.device.programming import program

    ids = spec.device_offset + np.arange(target.size)
    array = DeviceArray(devices.model, device_ids=ids, seed=devices.seed)
    flat = target.ravel()
    if not insitu:
        result = program(array, flat, devices.config)
        cost.pulses_per_device += float(result.pulses.mean())
        return result.achieved.reshape(target.shape), array.r.reshape(target.shape).copy(), result
    shape, m = target.shape, target.shape[0]
    probes = spec.v_read * np.eye(m)
    system = None
    if options.solver == "nodal":  # one nodal system for every verify round, refactored per round
        from cosim.crossbar.solver import build_system

        physical = ArrayReader.logical_crossbar(spec, target)
        system = build_system(physical if spec.remap is None else spec.remap.apply(physical))

    def verify(d: Any) -> np.ndarray:
        conductance = d.conductance().reshape(shape)
        if system is None:
            reader = ArrayReader(spec, conductance, cost, options)
            try:
                return (reader.currents(probes) / spec.v_read).ravel()
            finally:
                reader.close()
        return (_nodal_reads(system, spec, conductance, probes, cost) / spec.v_read).ravel()

    totals = {name: np.zeros(flat.size, dtype=np.int64) for name in ("set_pulses", "reset_pulses", "reads", "attempts")}
    select = np.ones(flat.size, dtype=bool)
    result = None
    for _ in range(options.insitu_passes):
        result = program(array, flat, devices.config, verify_read=verify, select=select)
        for name in totals:
            totals[name] += getattr(result, name)
        select = np.abs(result.verified - flat) > options.insitu_tolerance * flat
        if not select.any():
            break
    assert result is not None
    result = replace(result, **totals)
    pulses = result.pulses
    cost.pulses_per_device += float(pulses.mean())
    return result.achieved.reshape(shape), array.r.reshape(shape).copy(), result


def _nodal_reads(system: Any, spec: ArraySpec, conductance: np.ndarray, volts: np.ndarray,
                 cost: CompensationCost) -> np.ndarray:
    """Column currents [A] (K, 2N), logical order, of linear cells at ``conductance`` for row
    voltages ``volts`` (K, M) [V], on a prebuilt nodal system of the placed array."""
    from cosim.crossbar.solver import factorize

    remap = spec.remap
    placed = conductance if remap is None else conductance[np.ix_(remap.row_order, remap.col_order)]
    batch = volts if remap is None else remap.inputs_to_physical(volts)
    x = factorize(system.matrix(placed))(system.rhs(batch))
    currents = (np.asarray(x).reshape(-1, len(batch))[system.sense_nodes, :] * system.g_sense).T
    cost.reads += len(batch)
    cost.solver_calls += 1
    return currents if remap is None else remap.outputs_to_logical(currents)


def _predistort(spec: ArraySpec, cost: CompensationCost, options: CompensationOptions
                ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Iterate targets against the in-circuit matrix; returns (targets, scale, residuals)."""
    wanted = spec.weights
    w = wanted.copy()
    scale = spec.scale.copy()  # type: ignore[union-attr]
    span = spec.window.g_max - spec.window.g_min
    history: list[float] = []
    m = wanted.shape[0]
    system = None
    if options.solver == "nodal":  # one nodal system for every iteration, refactored per iteration
        from cosim.crossbar.solver import build_system

        physical = ArrayReader.logical_crossbar(spec, spec.targets(w, scale))
        system = build_system(physical if spec.remap is None else spec.remap.apply(physical))
    for _ in range(options.max_iterations):
        target = spec.targets(w, scale)
        if system is not None:
            currents = _nodal_reads(system, spec, target, spec.v_read * np.eye(m), cost)
            effective = (currents[:, 0::2] - currents[:, 1::2]) / scale[None, :] / spec.v_read
        else:
            reader = ArrayReader(spec, target, cost, options)
            try:
                effective = reader.effective_weights(scale)
            finally:
                reader.close()
        cost.iterations += 1
        history.append(relative_residual(effective, wanted))
        if history[-1] <= options.tolerance:
            break
        # the array acts mostly as a gain g_j < 1 per output: dividing the correction by it
        # (a diagonal Newton step) removes that part at once instead of geometrically
        energy = np.sum(w * w, axis=0)
        gain = np.where(energy > 0, np.sum(effective * w, axis=0) / np.where(energy > 0, energy, 1.0), 1.0)
        gain = np.clip(gain, 0.1, 10.0)
        w = w + (wanted - effective) / gain[None, :]
        peak = np.abs(w).max(axis=0) * scale
        scale = np.where(peak > span, span / np.where(peak > 0, np.abs(w).max(axis=0), 1.0), scale)
    return spec.targets(w, scale), scale, history


# -- the entry point ------------------------------------------------------------------------
def compensate(
    spec: ArraySpec,
    method: str = "gain",
    *,
    devices: Devices | None = None,
    options: CompensationOptions | None = None,
) -> CompensatedArray:
    """Apply ``method`` to the array ``spec`` (see the module doc); program ``devices`` if given.

    With ``devices`` and no ``spec.conductance`` the array is programmed by write-verify
    (``"none"`` and ``"gain"``: plain targets; ``"predistort"``: the predistorted targets;
    ``"insitu"``: plain targets, verify reads through the array). A ``spec.conductance``
    already given is used as is by ``"none"`` and ``"gain"``.
    """
    check_methods([method])
    opts = options or CompensationOptions()
    if method == "insitu" and devices is None:
        raise CompensationError("method 'insitu' programs devices: give devices=Devices(model, seed)")
    started = time.perf_counter()
    cost = CompensationCost()
    scale = spec.scale.copy()  # type: ignore[union-attr]
    target = spec.targets()
    history: list[float] = []
    if method == "predistort":
        target, scale, history = _predistort(spec, cost, opts)
    spec_now = replace(spec, scale=scale)
    conductance, state, result = spec.conductance, spec.state, None
    if method in ("predistort", "insitu") or conductance is None:
        if devices is None:
            conductance, state = target.copy(), None
        else:
            conductance, state, result = _program(spec_now, target, devices, cost, opts, insitu=method == "insitu")
    n = spec.weights.shape[1]
    gain, offset = np.ones(n), np.zeros(n)
    if method == "gain":
        reader = ArrayReader(spec_now, np.asarray(conductance), cost, opts)
        try:
            volts = probe_inputs(spec.weights.shape[0], opts.probe_vectors, spec.v_read, opts.probe_seed)
            zero = reader.products(np.zeros((1, spec.weights.shape[0])), scale)[0]
            gain, offset = fit_gain_offset(reader.products(volts, scale), volts @ spec.weights, zero)
        finally:
            reader.close()
    cost.seconds = time.perf_counter() - started
    checker = ArrayReader(spec_now, np.asarray(conductance), CompensationCost(), CompensationOptions())
    try:
        residual = relative_residual(checker.effective_weights(scale) * gain[None, :], spec.weights)
    finally:
        checker.close()
    return CompensatedArray(
        method, spec_now, np.asarray(conductance), target, scale, gain, offset, cost, residual, tuple(history),
        state, programming=result.summary() if result is not None else {},
        failures=result.failures() if result is not None else None, result=result,
    )


# -- S4D layers ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CompensatedLayer:
    """An S4D :class:`MappedLayer` after compensation: the tiles as held, the digital
    per-output ``gain``/``offset`` (layer order), the summed cost and each tile's record."""

    method: str
    mapped: "MappedLayer"
    gain: np.ndarray
    offset: np.ndarray
    cost: CompensationCost
    tiles: tuple[CompensatedArray, ...]

    @property
    def residual(self) -> float:
        """Largest tile residual ‖W_eff − W‖/‖W‖."""
        return float(max(t.residual for t in self.tiles))

    def failures(self) -> Any:
        """Cells not accepted by write-verify in any tile (DataFrame, may be empty)."""
        import pandas as pd

        parts = [t.failures for t in self.tiles if t.failures is not None and len(t.failures)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def backend(self, wires: "Wires", **options: Any) -> "CorrectedMatVec":
        """A :class:`CorrectedMatVec` over a :class:`CircuitBackend` of the compensated tiles."""
        from cosim.s4d.circuit import CircuitBackend

        return CorrectedMatVec(CircuitBackend(self.mapped, wires, **options), self.gain, self.offset)

    def kernel_error(self, layer: "S4DLayer", variant: str, wires: "Wires", v_read: float,
                     length: int = 256, seed: int = 0) -> np.ndarray:
        """Per-channel relative L2 error of the in-circuit kernel against ``layer.kernel``.

        An impulse of ``length`` samples goes through the compensated tiles (wires ``wires``,
        read amplitude ``v_read`` [V]); the DAC is calibrated on a standard-normal input drawn
        from ``seed``; the feed-through ``D`` is removed from the first sample.
        """
        from cosim.s4d.ideal import calibrate_converters, run_recurrence
        from cosim.s4d.metrics import compare_kernels

        program = layer.crossbar_program(variant)
        u = np.random.default_rng(seed).standard_normal((layer.n_channels, length))
        dac, _ = calibrate_converters(program, u, v_read=v_read)
        impulse = np.zeros((layer.n_channels, length))
        impulse[:, 0] = 1.0
        with self.backend(wires) as backend:
            y = run_recurrence(backend, program, impulse, dac=dac)
        y[:, 0] -= program.D
        return compare_kernels(y, layer.kernel(length)).relative_l2

    def stability_margin(self, layer: "S4DLayer", variant: str) -> np.ndarray:
        """Per-channel stability margin of the corrected in-circuit state matrices (channel
        layout only; NaN per channel for the layer layout)."""
        from cosim.s4d.metrics import effective_eigenvalues, stability_margin

        if self.mapped.layout != "channel":
            return np.full(layer.n_channels, np.nan)
        program = layer.crossbar_program(variant)
        blocks = np.stack([record.effective_weights().T for record in self.tiles])
        return stability_margin(effective_eigenvalues(program.with_matrices(blocks, "effective")))

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "residual": self.residual, **self.cost.as_dict(),
                "tiles": [t.summary() for t in self.tiles]}


class CorrectedMatVec:
    """A :class:`CircuitBackend` followed by the digital per-output ``gain`` and ``offset``
    (layer order, applied to the products in volts). Forwards everything else to the
    backend (``stats``, ``tile_currents``, ``close``, ``with``)."""

    def __init__(self, backend: "CircuitBackend", gain: np.ndarray, offset: np.ndarray) -> None:
        self.backend = backend
        self.gain = np.asarray(gain, float)
        self.offset = np.asarray(offset, float)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def __enter__(self) -> "CorrectedMatVec":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.backend.close()

    def correct(self, products: np.ndarray) -> np.ndarray:
        """Apply the correction to (..., H(N+1)) layer products [V]."""
        return products * self.gain + self.offset

    def __call__(self, matrices: np.ndarray, volts: np.ndarray) -> np.ndarray:
        out = self.backend(matrices, volts)
        shape = out.shape
        flat = out.reshape(shape[:-2] + (-1,))
        return self.correct(flat).reshape(shape)


def compensate_layer(
    mapped: "MappedLayer",
    method: str,
    wires: "Wires",
    *,
    devices: Devices | None = None,
    options: CompensationOptions | None = None,
    v_read: float = 0.2,
) -> CompensatedLayer:
    """Apply ``method`` tile by tile to an S4D layer mapping (exact or programmed tiles).

    A programmed ``mapped`` (``device_seed`` set) is reused as is by ``"none"`` and ``"gain"``;
    ``"predistort"`` and ``"insitu"`` program the devices of ``devices`` anew (same ids).
    """
    check_methods([method])
    gain, offset = np.ones(mapped.size), np.zeros(mapped.size)
    programmed = mapped.device_seed is not None
    tiles, records = [], []
    total = CompensationCost()
    for tile in mapped.tiles:
        spec = ArraySpec(
            weights=tile.weights, window=mapped.window, wires=wires, scale=tile.scale,
            conductance=tile.conductance if (programmed or devices is None) else None,
            state=tile.state, remap=tile.remap, v_read=v_read, device_offset=tile.device_offset,
            weight_bits=mapped.weight_bits,
        )
        record = compensate(spec, method, devices=devices, options=options)
        records.append(record)
        total = total.add(record.cost)
        gain[tile.outputs] = record.gain
        offset[tile.outputs] = record.offset
        tiles.append(replace(tile, conductance=record.conductance, target=record.target, scale=record.scale,
                             state=record.state if record.state is not None else tile.state))
    total.pulses_per_device = float(np.mean([r.cost.pulses_per_device for r in records]))
    stats, failures = dict(mapped.programming), mapped.failures
    results = [r.result for r in records if r.result is not None]
    if results:
        from cosim.device.programming import ProgramResult

        combined = ProgramResult.concatenate(results)
        stats, failures = combined.summary(), combined.failures()
    reprogrammed = devices is not None and method in ("predistort", "insitu")
    new = replace(mapped, tiles=tuple(tiles), programming=stats, failures=failures,
                  device_seed=devices.seed if reprogrammed else mapped.device_seed)
    return CompensatedLayer(method, new, gain, offset, total, tuple(records))


def output_error(products: np.ndarray, wanted: np.ndarray) -> float:
    """``Σ|products − wanted| / Σ|wanted|`` over all outputs and vectors."""
    return float(np.sum(np.abs(products - wanted)) / max(float(np.sum(np.abs(wanted))), 1e-300))


def compare_with_mdm(
    spec: ArraySpec,
    remap: "Remap",
    inputs: np.ndarray,
    methods: Sequence[str],
    *,
    options: CompensationOptions | None = None,
) -> list[dict[str, Any]]:
    """Each method on the array as mapped and as placed by ``remap`` (MDM): the output error
    of the corrected products against the wanted ``inputs @ W`` (inputs (K, M) [V]), the
    residual and the cost, with the sign of MDM's effect (``helps`` / ``hurts`` beyond ±2 %,
    else ``neutral``; ``neutral`` too when both errors are below ``NEGLIGIBLE_ERROR`` or ten times
    the predistortion tolerance). Used by :func:`cosim.crossbar.mdm.analog_compensation`
    (``cosim mdm --compensation``)."""
    rows = []
    opts = options or CompensationOptions()
    negligible = max(NEGLIGIBLE_ERROR, 10 * opts.tolerance)
    wanted = np.atleast_2d(inputs) @ spec.weights
    for method in check_methods(methods):
        record: dict[str, Any] = {"compensation": method}
        for label, placement in (("before", None), ("after", remap)):
            result = compensate(replace(spec, remap=placement), method, options=opts)
            record[f"output_error_{label}"] = output_error(result.read(inputs), wanted)
            record[f"residual_{label}"] = result.residual
            record[f"reads_{label}"] = result.cost.reads
            record[f"solver_calls_{label}"] = result.cost.solver_calls
        before, after = record["output_error_before"], record["output_error_after"]
        change = after / before - 1.0 if before > 0 else 0.0
        if max(before, after) < negligible:
            change = 0.0  # both at the predistortion tolerance or the solver's precision: no sign

        record["mdm_effect"] = "helps" if change < -0.02 else "hurts" if change > 0.02 else "neutral"
        rows.append(record)
    return rows
