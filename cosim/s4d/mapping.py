"""S4D crossbar weights → differential conductance pairs → programmed devices.

Orientation (docs/crossbar.md): a crossbar has its inputs on rows and its outputs on columns, so it
holds ``W = M^T`` (``CrossbarProgram.crossbar_weights``). Output ``j`` uses the adjacent column
pair ``(G⁺ at 2j, G⁻ at 2j+1)`` and reads ``ΔI_j = I_2j − I_2j+1 = s_j Σ_i V_i W_ij``.

Mapping of one tile (a crossbar of M inputs × N outputs):

* ``w ≥ 0``: ``G⁺ = G_min + s_j w``, ``G⁻ = G_min``; ``w < 0``: the reverse;
* ``s_j`` [S per unit weight] is the weight-to-conductance scale of output ``j``:
  ``"column"`` (default) — ``(G_max − G_min)/max_i |W_ij|`` per output (one digital gain per
  ADC channel, directly realisable), or ``"global"`` — one scale for the whole tile;
* optional device levels (``weight_bits = b``): conductances snap to ``2^{b−1}`` equally spaced
  levels in ``[G_min, G_max]`` (so the weight codes are ``±(2^{b−1} − 1)``, as in
  :func:`cosim.s4d.quant.quantize_program` with the ``"row"`` scheme).

Layouts: ``"layer"`` — one crossbar with all ``H(N+1)`` inputs and outputs holding the
block-diagonal layer matrix (off-block cells hold zero weights, i.e. ``G_min`` pairs: they
carry current and may pick up programming error, i.e. cross-talk); ``"channel"`` — one
``(N+1)×(N+1)`` crossbar per channel.

Programming (:func:`program_layer`): every cell is a device of the stochastic model
(:mod:`cosim.device`), identified by ``tile offset + cell index`` and drawn from the device
seed; write-verify (:func:`cosim.device.programming.program`) brings it near its target.
The achieved static conductances at ``U0`` define the stored weights ``(G⁺ − G⁻)/s_j`` —
the tile's own software model. The device states ``r`` are kept for a nonlinear cell model
(:class:`cosim.crossbar.cells.PolynomialCells`).

MDM (:func:`with_mdm`): rows and column pairs of each tile are placed by Manhattan-distance
mapping (:mod:`cosim.crossbar.mdm`); the permutation is stored with the tile and undone
digitally by the circuit backends. The same programmed devices (same achieved conductances
per logical weight) are placed at the new positions: statistically the same as programming
fresh devices at those positions, and it isolates the effect of the wires.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from cosim.crossbar.cells import CellModel, LinearCells, PolynomialCells
from cosim.crossbar.mdm import Remap, mdm_remap
from cosim.crossbar.spec import Crossbar
from cosim.s4d.ideal import CrossbarProgram, S4DError

ScaleScheme = Literal["column", "global"]
Layout = Literal["layer", "channel"]
CellKind = Literal["linear", "polynomial"]


@dataclass(frozen=True)
class ConductanceWindow:
    """Usable conductance range [S] of the devices (``g_min < g_max``)."""

    g_min: float
    g_max: float
    source: str = "given"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.g_min) and np.isfinite(self.g_max) and 0 < self.g_min < self.g_max):
            raise S4DError(f"conductance window: need 0 < g_min < g_max, got {self.g_min!r}, {self.g_max!r}")

    @classmethod
    def from_device_model(cls, model: object, seed: int = 0, coverage: float = 0.99) -> "ConductanceWindow":
        """The window reachable in ``coverage`` of device cycles (see ``conductance_window``)."""
        from cosim.device.programming import conductance_window

        g_min, g_max = conductance_window(model, seed=seed, coverage=coverage)  # type: ignore[arg-type]
        return cls(g_min, g_max, source=f"device model, coverage {coverage}, seed {seed}")


@dataclass(frozen=True, eq=False)
class Tile:
    """One physical crossbar: which layer inputs/outputs it serves and what it holds.

    ``inputs`` / ``outputs``: layer indices ``h·(N+1) + i`` of its rows / output pairs (logical
    order). ``weights``: intended (M, N) weights. ``target`` / ``conductance``: (M, 2N) target
    and achieved static conductances at the read voltage [S] (G⁺ at even, G⁻ at odd columns).
    ``scale``: (N,) S per unit weight. ``state``: (M, 2N) device states ``r`` (programmed
    tiles only). ``remap``: physical placement (MDM) or None (as mapped).
    """

    inputs: np.ndarray
    outputs: np.ndarray
    weights: np.ndarray
    target: np.ndarray
    conductance: np.ndarray
    scale: np.ndarray
    state: np.ndarray | None = None
    remap: Remap | None = None
    device_offset: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the physical array (columns = 2 × outputs)."""
        return self.conductance.shape  # type: ignore[return-value]

    def stored_weights(self) -> np.ndarray:
        """Weights the array holds, (M, N): ``(G⁺ − G⁻)/s`` of the achieved conductances."""
        return (self.conductance[:, 0::2] - self.conductance[:, 1::2]) / self.scale[None, :]

    def cells(self, kind: CellKind = "linear", device_model: object | None = None) -> CellModel:
        """Cell model in logical order: resistors at the achieved conductances, or the
        device polynomial I(U; r) at the programmed states (needs ``device_model``)."""
        if kind == "linear":
            return LinearCells(self.conductance)
        if kind == "polynomial":
            if self.state is None or device_model is None:
                raise S4DError("cell_model 'polynomial' needs programmed devices (device states r) and a device model")
            return PolynomialCells.from_state(self.state, device_model.llrs_poly(), device_model.hhrs_poly())  # type: ignore[attr-defined]
        raise S4DError(f"cell_model must be 'linear' or 'polynomial', got {kind!r}")

    def crossbar(self, kind: CellKind = "linear", device_model: object | None = None, **wires: float) -> Crossbar:
        """The logical (unpermuted) crossbar with wire resistances ``wires`` [Ω]."""
        v_read = float(getattr(device_model, "u0", 0.2)) if device_model is not None else 0.2
        return Crossbar(cells=self.cells(kind, device_model), differential=True, v_read=v_read, **wires)  # type: ignore[arg-type]

    def physical_crossbar(self, kind: CellKind = "linear", device_model: object | None = None, **wires: float) -> Crossbar:
        """The array as placed (MDM permutation applied if any)."""
        logical = self.crossbar(kind, device_model, **wires)
        return logical if self.remap is None else self.remap.apply(logical)


@dataclass(frozen=True, eq=False)
class MappedLayer:
    """An S4D program mapped onto one or more crossbar tiles.

    ``program`` is the intended program (its matrices are what the tiles were asked to hold);
    ``layout``, ``scale_scheme``, ``weight_bits`` and ``window`` describe the mapping;
    ``device_seed`` is the seed of the programmed devices (None: exact target conductances);
    ``programming`` holds the write-verify statistics.
    """

    program: CrossbarProgram
    tiles: tuple[Tile, ...]
    layout: Layout
    scale_scheme: ScaleScheme
    weight_bits: int | None
    window: ConductanceWindow
    device_seed: int | None = None
    programming: dict[str, float] = field(default_factory=dict)
    mdm: bool = False
    failures: Any = None
    """Cells write-verify did not accept (DataFrame: device id, target, achieved, error), or None."""

    @property
    def size(self) -> int:
        """Number of layer inputs (= outputs), H(N+1)."""
        return self.program.n_channels * (self.program.state_size + 1)

    def stored_layer_weights(self) -> np.ndarray:
        """The full (H(N+1), H(N+1)) weight matrix the tiles hold, inputs × outputs (includes
        any off-block cross-talk of a layer tile)."""
        full = np.zeros((self.size, self.size))
        for tile in self.tiles:
            full[np.ix_(tile.inputs, tile.outputs)] = tile.stored_weights()
        return full

    def stored_program(self) -> CrossbarProgram:
        """Per-channel diagonal blocks of the stored weights as a :class:`CrossbarProgram`
        (off-block cross-talk dropped; see :meth:`stored_layer_weights`)."""
        h, n1 = self.program.n_channels, self.program.state_size + 1
        layer = self.stored_layer_weights().T  # outputs × inputs
        blocks = np.stack([layer[c * n1:(c + 1) * n1, c * n1:(c + 1) * n1] for c in range(h)])
        return self.program.with_matrices(blocks, label=f"{self.program.label} stored")

    def describe(self) -> dict[str, object]:
        """JSON-friendly summary of the mapping (scales, window, seeds, programming)."""
        return {
            "layout": self.layout,
            "tiles": [list(t.shape) for t in self.tiles],
            "scale_scheme": self.scale_scheme,
            "weight_bits": self.weight_bits,
            "g_min_S": self.window.g_min,
            "g_max_S": self.window.g_max,
            "window_source": self.window.source,
            "scale_S_per_unit_weight": [t.scale.tolist() for t in self.tiles],
            "device_seed": self.device_seed,
            "programming": dict(self.programming),
            "mdm": self.mdm,
            "remaps": [None if t.remap is None else t.remap.as_dict() for t in self.tiles],
        }


def tile_indices(program: CrossbarProgram, layout: Layout) -> list[np.ndarray]:
    """Layer indices served by each tile: all of them (``"layer"``) or one channel each."""
    n1 = program.state_size + 1
    if layout == "layer":
        return [np.arange(program.n_channels * n1)]
    if layout == "channel":
        return [np.arange(c * n1, (c + 1) * n1) for c in range(program.n_channels)]
    raise S4DError(f"layout must be 'layer' or 'channel', got {layout!r}")


def column_scales(weights: np.ndarray, window: ConductanceWindow, scheme: ScaleScheme) -> np.ndarray:
    """S per unit weight for each output column of ``weights`` (M, N)."""
    peak = np.abs(weights).max(axis=0)
    if scheme == "global":
        peak = np.full_like(peak, peak.max())
    elif scheme != "column":
        raise S4DError(f"scale scheme must be 'column' or 'global', got {scheme!r}")
    peak = np.where(peak > 0, peak, 1.0)  # an all-zero output keeps both cells at G_min
    return (window.g_max - window.g_min) / peak


def differential_targets(
    weights: np.ndarray, scale: np.ndarray, window: ConductanceWindow, weight_bits: int | None = None
) -> np.ndarray:
    """(M, 2N) target conductances [S] for ``weights`` (M, N) and scales (N,)."""
    span = window.g_max - window.g_min
    excess = weights * scale[None, :]  # signed conductance difference
    if weight_bits is not None:
        if not isinstance(weight_bits, (int, np.integer)) or weight_bits < 2:
            raise S4DError(f"weight_bits must be an integer >= 2, got {weight_bits!r}")
        steps = 2 ** (weight_bits - 1) - 1
        excess = np.round(excess / span * steps) * (span / steps)
    excess = np.clip(excess, -span, span)
    target = np.empty((weights.shape[0], 2 * weights.shape[1]))
    target[:, 0::2] = window.g_min + np.clip(excess, 0.0, None)
    target[:, 1::2] = window.g_min + np.clip(-excess, 0.0, None)
    return target


def map_program(
    program: CrossbarProgram,
    window: ConductanceWindow,
    *,
    layout: Layout = "layer",
    scale_scheme: ScaleScheme = "column",
    weight_bits: int | None = None,
) -> MappedLayer:
    """Map ``program`` to differential conductance pairs (exact targets, nothing programmed)."""
    layer_weights = program.crossbar_weights()
    tiles = []
    offset = 0
    for index in tile_indices(program, layout):
        weights = layer_weights[np.ix_(index, index)]
        scale = column_scales(weights, window, scale_scheme)
        target = differential_targets(weights, scale, window, weight_bits)
        tiles.append(Tile(index, index, weights, target, target.copy(), scale, device_offset=offset))
        offset += target.size
    return MappedLayer(program, tuple(tiles), layout, scale_scheme, weight_bits, window)


def program_layer(mapped: MappedLayer, device_model: object, seed: int, config: object | None = None) -> MappedLayer:
    """Write-verify every cell of every tile with stochastic devices drawn from ``seed``.

    Device ``k`` of a tile has id ``tile.device_offset + k`` (row-major over the logical
    cells), so a seed fixes every device of the layer. Returns a new :class:`MappedLayer`
    whose tiles hold the achieved conductances and device states.
    """
    from cosim.device.model import DeviceArray
    from cosim.device.programming import program as write_verify

    tiles, results = [], []
    for tile in mapped.tiles:
        ids = tile.device_offset + np.arange(tile.target.size)
        devices = DeviceArray(device_model, device_ids=ids, seed=seed)  # type: ignore[arg-type]
        result = write_verify(devices, tile.target.ravel(), config)  # type: ignore[arg-type]
        results.append(result)
        tiles.append(
            replace(tile, conductance=result.achieved.reshape(tile.shape), state=devices.r.reshape(tile.shape).copy())
        )
    from cosim.device.programming import ProgramResult

    combined = ProgramResult.concatenate(results)
    stats = combined.summary()
    return replace(mapped, tiles=tuple(tiles), device_seed=int(seed), programming=stats, failures=combined.failures())


def with_mdm(mapped: MappedLayer, input_mean: np.ndarray) -> MappedLayer:
    """Place every tile by Manhattan-distance mapping for expected |row voltages|
    ``input_mean`` (layer order, H(N+1) values) [V]; permutations are stored per tile."""
    mean = np.asarray(input_mean, dtype=float)
    if mean.shape != (mapped.size,):
        raise S4DError(f"input_mean: expected shape ({mapped.size},), got {mean.shape}")
    tiles = []
    for tile in mapped.tiles:
        logical = Crossbar(cells=LinearCells(tile.conductance), differential=True)
        tiles.append(replace(tile, remap=mdm_remap(logical, np.abs(mean[tile.inputs]))))
    return replace(mapped, tiles=tuple(tiles), mdm=True)
