"""Reading a bit-sliced, tiled weight matrix through wired crossbars, with and without MDM.

:class:`TiledReader` is the one entry point: it holds a :class:`SlicedMatrix`, the wires, the
input encoding and the cells each tile really holds (target levels, or write-verify
programmed stochastic devices, drawn once so that a read with and without MDM uses the same
devices). :meth:`TiledReader.read` solves every tile for a batch of activations (nodal solver
or ngspice), undoes the MDM permutation digitally, applies the shift-and-add and adds the row
tiles' partial sums. It reports, per tile, the NF of the physical columns against the
wire-free currents of the same cells, the Manhattan cost, and whether the wire-free output
is unchanged bit for bit by the mapping.

:func:`mlp_accuracy` runs a small ReLU network (e.g. a scikit-learn MLP) with every layer on
such crossbars.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np

from cosim.crossbar.bitslice import InputEncoding, SliceConfig, SlicedMatrix, Tile
from cosim.crossbar.cells import LinearCells
from cosim.crossbar.mdm import Remap, manhattan_cost, sliced_remap
from cosim.crossbar.metrics import NFReport, evaluate, ideal_currents
from cosim.crossbar.spec import Crossbar
from cosim.errors import CosimError

Backend = Literal["nodal", "ngspice"]
MdmLoad = Literal["current", "active"]


@dataclass(frozen=True)
class Wires:
    """Parasitic resistances [Ω]: row and column segments, row driver, column sense."""

    r_wire: float = 1.0
    r_source: float = 1.0
    r_sense: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return {"r_wire_ohm": self.r_wire, "r_source_ohm": self.r_source, "r_sense_ohm": self.r_sense}


@dataclass(frozen=True)
class TileResult:
    """One tile read as mapped (before) and after MDM (same cells, same inputs)."""

    index: int
    tile: Tile
    before: NFReport | None
    after: NFReport | None
    output_error_before: float
    output_error_after: float
    cost_before: float
    cost_after: float
    ideal_unchanged: bool
    remap: Remap

    @property
    def nf_reduction(self) -> float:
        if self.before is None or self.after is None or self.before.tile_nf == 0:
            return float("nan")
        return 1.0 - self.after.tile_nf / self.before.tile_nf

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "rows": [self.tile.row_start, self.tile.row_stop],
            "outputs": self.tile.outputs.tolist(),
            "shape": list(self.tile.shape),
            "nf_before": None if self.before is None else self.before.tile_nf,
            "nf_after": None if self.after is None else self.after.tile_nf,
            "nf_reduction": self.nf_reduction,
            "output_error_before": self.output_error_before,
            "output_error_after": self.output_error_after,
            "manhattan_cost_before": self.cost_before,
            "manhattan_cost_after": self.cost_after,
            "ideal_unchanged": self.ideal_unchanged,
        }


@dataclass(frozen=True)
class StudyResult:
    """NF per tile and layer outputs of one weight matrix read without and with MDM."""

    tiles: list[TileResult]
    ideal: np.ndarray
    """Wire-free outputs (K, outputs) of the mapped cells."""
    before: np.ndarray
    after: np.ndarray
    x_max: float

    def _mean(self, name: str) -> float:
        values = [getattr(t, name).tile_nf for t in self.tiles if getattr(t, name) is not None]
        return float(np.mean(values)) if values else float("nan")

    @property
    def nf_before(self) -> float:
        return self._mean("before")

    @property
    def nf_after(self) -> float:
        return self._mean("after")

    def output_error(self, outputs: np.ndarray) -> float:
        """Σ|y − y_ideal| / Σ|y_ideal| over all outputs and vectors."""
        return float(np.sum(np.abs(outputs - self.ideal)) / max(np.sum(np.abs(self.ideal)), 1e-300))

    def as_dict(self) -> dict[str, object]:
        return {**_summary([self]), "x_max": self.x_max, "tiles": [t.as_dict() for t in self.tiles]}


def solve_currents(crossbar: Crossbar, volts: np.ndarray, backend: Backend = "nodal") -> np.ndarray:
    """Column currents (K, N) [A] of ``crossbar`` for row voltages (K, M) [V]."""
    if backend == "nodal":
        from cosim.crossbar.solver import NodalSolver

        solver, batch = NodalSolver(crossbar), np.atleast_2d(volts)
        if crossbar.cells.is_linear and len(batch) > crossbar.rows:
            # linear circuit: I = V·T with the transfer matrix T (M × N) from M unit reads
            return batch @ solver.solve_many(np.eye(crossbar.rows))
        return solver.solve_many(batch)
    if backend == "ngspice":
        from cosim.crossbar.netlist import ACCURATE_OPTIONS, read_netlist
        from cosim.spice.batch import run_batch

        rows = []
        for vector in np.atleast_2d(volts):
            result = run_batch(read_netlist(crossbar, inputs=vector, spice_options=ACCURATE_OPTIONS))
            rows.append([float(np.real(result[f"i(vsns{j})"][0])) for j in range(crossbar.cols)])
        return np.asarray(rows)
    raise CosimError(f"unknown backend {backend!r}; use nodal or ngspice")


@dataclass
class TiledReader:
    """Reads a :class:`SlicedMatrix` through wired crossbars (see the module docstring).

    ``devices``: ``"ideal"`` (cells at the target levels) or ``"programmed"`` (each cell a
    stochastic device of ``device_model`` write-verify programmed to its level, device ids
    numbered per tile and cell, seed ``device_seed``). ``mdm_load``: the cell weight of the
    Manhattan cost, ``"current"`` (E|V_i|·G_ij) or ``"active"`` (E|V_i|·(G_ij − G_off), only
    the cells above HRS).
    """

    matrix: SlicedMatrix
    wires: Wires = field(default_factory=Wires)
    encoding: InputEncoding = field(default_factory=InputEncoding)
    devices: Literal["ideal", "programmed"] = "ideal"
    device_model: object | None = None
    device_seed: int = 0
    tolerance: float = 0.05
    backend: Backend = "nodal"
    mdm_load: MdmLoad = "current"
    progress: Callable[[int, int], None] | None = None
    stored: list[np.ndarray] = field(init=False, repr=False)
    _transfers: dict[object, np.ndarray] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.devices not in ("ideal", "programmed"):
            raise CosimError(f"devices must be 'ideal' or 'programmed', got {self.devices!r}")
        if self.mdm_load not in ("current", "active"):
            raise CosimError(f"MDM load must be 'current' or 'active', got {self.mdm_load!r}")
        self.stored = [self._cells(k, tile) for k, tile in enumerate(self.matrix.tiles)]

    # -- cells -------------------------------------------------------------------------
    def _cells(self, index: int, tile: Tile) -> np.ndarray:
        if self.devices == "ideal":
            return tile.g
        from cosim.device.model import DeviceArray
        from cosim.device.programming import ProgramConfig, program

        if self.device_model is None:
            from cosim.device.modelfile import load_model
            from cosim.paths import DEFAULT_MODEL

            self.device_model = load_model(DEFAULT_MODEL)
        first = index * self.matrix.tile_rows * (self.matrix.tile_cols + 1)
        ids = first + np.arange(tile.g.size)
        devices = DeviceArray(self.device_model, seed=self.device_seed, device_ids=ids)  # type: ignore[arg-type]
        result = program(devices, tile.g.ravel(), ProgramConfig(tolerance=self.tolerance))
        return result.achieved.reshape(tile.g.shape)

    def crossbar(self, index: int) -> Crossbar:
        """The logical (unpermuted) crossbar of tile ``index`` with its stored cells and wires."""
        tile = self.matrix.tiles[index]
        w = self.wires
        return Crossbar(
            LinearCells(self.stored[index]), r_row=w.r_wire, r_col=w.r_wire, r_source=w.r_source,
            r_sense=w.r_sense, differential=tile.differential, v_read=self.encoding.v_read,
        )

    # -- MDM -----------------------------------------------------------------------------
    def _load(self, index: int, input_mean: np.ndarray) -> np.ndarray:
        g = self.stored[index]
        if self.mdm_load == "active":
            g = np.clip(g - self.matrix.config.g_off, 0.0, None)
        return g * np.abs(input_mean)[:, None]

    def remaps(self, x: np.ndarray, x_max: float, columns: str = "flip") -> list[Remap]:
        """MDM per tile from the mean row voltages of activations ``x`` (K, inputs);
        ``columns`` as in :func:`cosim.crossbar.mdm.sliced_remap`."""
        planes, _ = self.encoding.encode(x, x_max)
        mean = np.mean(np.abs(planes), axis=(0, 1))
        return [
            sliced_remap(self._load(k, mean[t.row_start:t.row_stop]), t.differential, columns)
            for k, t in enumerate(self.matrix.tiles)
        ]

    # -- reading -------------------------------------------------------------------------
    def transfer(self, index: int, remap: Remap | None = None) -> np.ndarray:
        """Transfer matrix T (rows × physical columns) [S] of tile ``index`` placed by
        ``remap``, in logical order: column currents = V·T for row voltages V (linear cells,
        nodal solver; one factorization and one solve per row, cached)."""
        key = (index, None if remap is None else (remap.row_order.tobytes(), remap.col_order.tobytes()))
        if key not in self._transfers:
            from cosim.crossbar.solver import NodalSolver

            crossbar = self.crossbar(index)
            if remap is None:
                self._transfers[key] = NodalSolver(crossbar).solve_many(np.eye(crossbar.rows))
            else:
                physical = NodalSolver(remap.apply(crossbar)).solve_many(np.eye(crossbar.rows))
                logical = np.empty_like(physical)
                logical[np.ix_(remap.row_order, remap.col_order)] = physical
                self._transfers[key] = logical
        return self._transfers[key]

    def x_max(self, x: np.ndarray) -> float:
        """Full-scale activation: max |x| of a calibration batch."""
        return float(np.max(np.abs(x))) if np.size(x) else 1.0

    def column_gains(self, index: int, remap: Remap | None = None, probes: int = 32, seed: int = 0) -> np.ndarray:
        """Digital gain per physical column of tile ``index`` placed by ``remap`` (the ``gain``
        compensation of :mod:`cosim.compensation` applied to every slice column): ``probes``
        known input vectors (uniform in ±v_read, ``seed``) read through the wires, least-squares
        slope against the wire-free currents of the same cells. Cached."""
        key = ("gain", index, probes, seed, None if remap is None else (remap.row_order.tobytes(), remap.col_order.tobytes()))
        if key not in self._transfers:
            from cosim.compensation import fit_gain_offset, probe_inputs

            crossbar = self.crossbar(index)
            volts = probe_inputs(crossbar.rows, probes, self.encoding.v_read, seed)
            measured = volts @ self.transfer(index, remap)
            self._transfers[key], _ = fit_gain_offset(measured, ideal_currents(crossbar, volts))
        return self._transfers[key]

    def read(self, x: np.ndarray, x_max: float, remaps: Sequence[Remap | None] | None = None,
             ideal: bool = False, gain: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Layer outputs (K, outputs) ≈ x·W_q, and the logical-order column currents of every
        tile (P·K, N_phys) [A]; ``remaps`` (one per tile, None = as mapped) place the tiles;
        ``ideal`` skips the circuit (wire-free currents of the placed cells, back in logical
        order: exactly those of the unplaced tile, since each column sum is correctly rounded);
        ``gain`` applies :meth:`column_gains` (nodal solver, linear cells)."""
        if gain and (ideal or self.backend != "nodal"):
            raise CosimError("gain compensation needs the nodal solver and a wired read")
        planes, weights = self.encoding.encode(x, x_max)
        count = planes.shape[1]
        out = np.zeros((count, self.matrix.shape[1]))
        currents = []
        for k, tile in enumerate(self.matrix.tiles):
            volts = planes[:, :, tile.row_start:tile.row_stop].reshape(-1, tile.row_stop - tile.row_start)
            crossbar = self.crossbar(k)
            remap = None if remaps is None else remaps[k]
            if ideal and remap is None:
                logical = ideal_currents(crossbar, volts)
            elif ideal:
                mapped = ideal_currents(remap.apply(crossbar), remap.inputs_to_physical(volts))
                logical = remap.outputs_to_logical(mapped)
            elif self.backend == "nodal" and crossbar.cells.is_linear:
                logical = volts @ self.transfer(k, remap)
                if gain:
                    logical = logical * self.column_gains(k, remap)[None, :]
            elif remap is None:
                logical = solve_currents(crossbar, volts, self.backend)
            else:
                physical = solve_currents(remap.apply(crossbar), remap.inputs_to_physical(volts), self.backend)
                logical = remap.outputs_to_logical(physical)
            currents.append(logical)
            partial = (logical @ tile.decode).reshape(len(weights), count, -1)
            out[:, tile.outputs] += np.tensordot(weights, partial, axes=1)
            if self.progress is not None:
                self.progress(k + 1, len(self.matrix.tiles))
        return out * self.matrix.weight_scale, currents

    def study(self, x: np.ndarray, x_max: float | None = None, remaps: Sequence[Remap] | None = None,
              columns: str = "flip") -> StudyResult:
        """Read activations ``x`` as mapped and after MDM (MDM from the same ``x`` unless
        ``remaps`` are given); NF per tile on the real activations."""
        scale = self.x_max(x) if x_max is None else x_max
        placed = self.remaps(x, scale, columns) if remaps is None else list(remaps)
        ideal, ideal_currents_ = self.read(x, scale, ideal=True)
        before, real_before = self.read(x, scale)
        after, real_after = self.read(x, scale, placed)
        planes, _ = self.encoding.encode(x, scale)
        tiles = []
        for k, tile in enumerate(self.matrix.tiles):
            volts = planes[:, :, tile.row_start:tile.row_stop].reshape(-1, tile.row_stop - tile.row_start)
            crossbar = self.crossbar(k)
            active = np.any(volts != 0, axis=1)
            rep_before = _report(crossbar, volts[active], real_before[k][active])
            rep_after = _report(crossbar, volts[active], real_after[k][active])
            mapped = placed[k].apply(crossbar)
            ideal_mapped = placed[k].outputs_to_logical(ideal_currents(mapped, placed[k].inputs_to_physical(volts)))
            load = self._load(k, np.mean(np.abs(volts), axis=0))
            ideal_part = ideal_currents_[k] @ tile.decode
            tiles.append(TileResult(
                index=k, tile=tile, before=rep_before, after=rep_after,
                output_error_before=_rel(real_before[k] @ tile.decode, ideal_part),
                output_error_after=_rel(real_after[k] @ tile.decode, ideal_part),
                cost_before=manhattan_cost(load),
                cost_after=manhattan_cost(load[np.ix_(placed[k].row_order, placed[k].col_order)]),
                ideal_unchanged=bool(np.array_equal(ideal_currents_[k], ideal_mapped)),
                remap=placed[k],
            ))
        return StudyResult(tiles, ideal, before, after, scale)


def _report(crossbar: Crossbar, volts: np.ndarray, real: np.ndarray) -> NFReport | None:
    if len(volts) == 0:
        return None
    try:
        return evaluate(crossbar, volts, real)
    except CosimError:
        return None


def _rel(got: np.ndarray, reference: np.ndarray) -> float:
    denominator = float(np.sum(np.abs(reference)))
    return float(np.sum(np.abs(got - reference)) / denominator) if denominator > 0 else float("nan")


# -- networks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """Dense layer y = x·W + b (W: inputs × outputs)."""

    weights: np.ndarray
    bias: np.ndarray


def load_mlp(path: object) -> list[Layer]:
    """ReLU MLP from a ``.npz`` with arrays ``W0, b0, W1, b1, …`` (W: inputs × outputs)."""
    from pathlib import Path

    from cosim.errors import DataFileError

    file = Path(str(path))
    loaded = _load_npy(file, "the network")
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataFileError(f"{file}: one array; the network is a .npz archive of arrays W0, b0, W1, b1, …")
    with loaded as data:
        arrays = {}
        for name in data.files:
            try:
                arrays[name] = np.asarray(data[name], dtype=float)
            except (ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
                raise DataFileError(f"{file}: array {name} is not a numeric array ({exc})") from None
    layers, k = [], 0
    while f"W{k}" in arrays:
        w, b = arrays[f"W{k}"], arrays.get(f"b{k}", np.zeros(arrays[f"W{k}"].shape[-1]))
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise DataFileError(f"{file}: W{k} must be 2-D and b{k} must have {w.shape[-1] if w.ndim else 0} entries")
        if layers and layers[-1].weights.shape[1] != w.shape[0]:
            raise DataFileError(f"{file}: W{k} has {w.shape[0]} inputs, the previous layer {layers[-1].weights.shape[1]} outputs")
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise DataFileError(f"{file}: W{k} or b{k} has a non-finite value")
        layers.append(Layer(w, b))
        k += 1
    if not layers:
        raise DataFileError(f"{file}: no array W0 (expected W0, b0, W1, b1, …)")
    return layers


def forward(layers: Sequence[Layer], x: np.ndarray) -> list[np.ndarray]:
    """Digital float forward pass: the input of every layer, then the final output."""
    acts = [np.atleast_2d(np.asarray(x, float))]
    for k, layer in enumerate(layers):
        y = acts[-1] @ layer.weights + layer.bias
        acts.append(np.maximum(y, 0.0) if k < len(layers) - 1 else y)
    return acts


ACCURACY_KEYS = {
    "float": "accuracy_float",
    "ideal": "accuracy_quantized_wire_free",
    "plain": "accuracy_wires",
    "mdm": "accuracy_wires_mdm",
    "plain+gain": "accuracy_wires_gain",
    "mdm+gain": "accuracy_wires_mdm_gain",
}
"""Accuracy settings of :func:`mlp_accuracy` and their report keys."""


def mlp_accuracy(
    layers: Sequence[Layer],
    readers: Sequence[TiledReader],
    x_calib: np.ndarray,
    x_test: np.ndarray,
    labels: np.ndarray,
    columns: str = "flip",
    compensation: bool = False,
    settings: Sequence[str] = ("float", "ideal", "plain", "mdm"),
) -> dict[str, float]:
    """Accuracy of the network in four settings: digital float, quantized wire-free, under
    wires as mapped, under wires with MDM — and with ``compensation`` the last two again with
    the per-column digital gain (:meth:`TiledReader.column_gains`). Full scales and MDM loads
    come from the float activations of ``x_calib``; every setting reads the same cells (same
    device seeds). ``settings`` picks among ``float``, ``ideal``, ``plain``, ``mdm`` (keys in
    :data:`ACCURACY_KEYS`)."""
    unknown = [m for m in settings if m not in ACCURACY_KEYS]
    if unknown:
        raise CosimError(f"unknown accuracy setting {unknown[0]!r}; use {', '.join(ACCURACY_KEYS)}")
    calib = forward(layers, x_calib)
    scales = [readers[k].x_max(calib[k]) for k in range(len(layers))]
    placements = [readers[k].remaps(calib[k], scales[k], columns) for k in range(len(layers))]
    truth = np.asarray(labels).ravel()

    def run(mode: str) -> float:
        act = np.atleast_2d(np.asarray(x_test, float))
        for k, layer in enumerate(layers):
            if mode == "float":
                y = act @ layer.weights
            else:
                remaps = placements[k] if mode.startswith("mdm") else None
                y, _ = readers[k].read(act, scales[k], remaps, ideal=(mode == "ideal"), gain=mode.endswith("gain"))
            y = y + layer.bias
            act = np.maximum(y, 0.0) if k < len(layers) - 1 else y
        return float(np.mean(np.argmax(act, axis=1) == truth))

    wanted = list(settings) + (["plain+gain", "mdm+gain"] if compensation else [])
    return {ACCURACY_KEYS[mode]: run(mode) for mode in wanted}


def _load_npy(file: "Path", what: str) -> object:
    """``np.load`` without pickles; every failure is a :class:`DataFileError` naming ``file``."""
    from cosim.errors import DataFileError

    try:
        return np.load(file, allow_pickle=False)
    except OSError as exc:
        raise DataFileError(f"{file}: cannot read {what} ({exc.strerror or exc})") from None
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise DataFileError(f"{file}: cannot read {what}: not a NumPy .npy/.npz file") from None


def load_labels(path: object, count: int) -> np.ndarray:
    """Integer class labels (count,) from a ``.npy`` file."""
    from pathlib import Path

    from cosim.errors import DataFileError

    file = Path(str(path))
    labels = _load_npy(file, "labels")
    if isinstance(labels, np.lib.npyio.NpzFile):
        labels.close()
        raise DataFileError(f"{file}: an archive; labels are one .npy array of integers")
    labels = np.asarray(labels).ravel()
    if labels.shape != (count,):
        raise DataFileError(f"{file}: {labels.size} labels for {count} input vectors")
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.equal(np.mod(labels, 1), 0)):
        raise DataFileError(f"{file}: labels must be integers")
    return labels.astype(np.int64)


@dataclass
class SlicedStudy:
    """Settings of one bit-sliced MDM study (what ``cosim mdm --weight-bits`` runs).

    Cell levels: ``on_off`` given → G_on = ``g_on``, G_off = G_on/``on_off`` [S]; else the
    fitted ``device_model``'s window if given; else ``g_on``, ``g_off``.
    """

    weight_bits: int = 8
    slice_bits: int = 1
    on_off: float | None = 10.0
    g_on: float = 1 / 4.5e3
    g_off: float = 1 / 75e3
    tile: int = 128
    signed: str = "differential"
    encoding: str = "analog"
    input_bits: int = 8
    v_read: float = 0.2
    r_wire: float = 1.0
    devices: str = "ideal"
    device_model: object | None = None
    device_seed: int = 0
    backend: str = "nodal"
    columns: str = "flip"
    compensation: bool = False
    """Also the accuracy with the per-column digital gain (:meth:`TiledReader.column_gains`)."""

    def config(self, model: object | None) -> "SliceConfig":
        from cosim.crossbar.bitslice import SliceConfig

        common = {"weight_bits": self.weight_bits, "slice_bits": self.slice_bits, "signed": self.signed}
        if self.on_off is not None:
            return SliceConfig.from_on_off(self.on_off, g_on=self.g_on, **common)
        if model is not None:
            return SliceConfig.from_device_model(model, seed=self.device_seed, **common)
        return SliceConfig(g_on=self.g_on, g_off=self.g_off, **common)  # type: ignore[arg-type]

    def reader(self, weights: np.ndarray, model: object | None, progress: Callable[[int, int], None] | None = None) -> TiledReader:
        """The reader of one weight matrix under these settings."""
        if self.tile < 2:
            raise CosimError(f"tile must be at least 2, got {self.tile}")
        matrix = SlicedMatrix.from_weights(weights, self.config(model), self.tile, self.tile)
        return TiledReader(
            matrix, Wires(self.r_wire), InputEncoding(self.encoding, self.v_read, self.input_bits),  # type: ignore[arg-type]
            devices=self.devices, device_model=model, device_seed=self.device_seed,  # type: ignore[arg-type]
            backend=self.backend, progress=progress,  # type: ignore[arg-type]
        )

    def _model(self) -> object | None:
        if self.device_model is None:
            return None
        if isinstance(self.device_model, (str, bytes)) or hasattr(self.device_model, "__fspath__"):
            from cosim.device.modelfile import load_model

            return load_model(self.device_model)  # type: ignore[arg-type]
        return self.device_model

    def run(
        self,
        weights: np.ndarray,
        inputs: np.ndarray,
        layers: Sequence[Layer] | None = None,
        labels: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, object]:
        """NF per tile of ``weights`` for activations ``inputs`` (K, inputs) without and with
        MDM; with ``layers`` and ``labels`` also the network's accuracy (every layer on
        tiles, same devices with and without MDM)."""
        model = self._model()
        if layers is None:
            readers = [self.reader(weights, model, progress)]
            results = [readers[0].study(inputs, columns=self.columns)]
        else:  # every layer on its own activations (the float network's)
            acts = forward(layers, inputs)
            readers = [self.reader(layer.weights, model, progress) for layer in layers]
            results = [r.study(acts[k], columns=self.columns) for k, r in enumerate(readers)]
        tiles = []
        for k, result in enumerate(results):
            tiles += [{"layer": k, **t} for t in result.as_dict()["tiles"]]  # type: ignore[union-attr]
        summary = _summary(results)
        first = readers[0]
        report: dict[str, object] = {
            **first.matrix.config.as_dict(), "tile": self.tile, **first.encoding.as_dict(),
            **first.wires.as_dict(), "devices": self.devices, "device_seed": self.device_seed,
            "backend": self.backend, "mdm_columns": self.columns, **summary, "tiles": tiles,
        }
        if layers is not None and labels is not None:
            report.update(mlp_accuracy(layers, readers, inputs, inputs, labels, columns=self.columns,
                                        compensation=self.compensation))
        return report


def _summary(results: Sequence[StudyResult]) -> dict[str, object]:
    """Means over the tiles of several studies (layers) and the spread of the NF reduction."""
    tiles = [t for r in results for t in r.tiles]
    before = [t.before.tile_nf for t in tiles if t.before is not None and t.after is not None]
    after = [t.after.tile_nf for t in tiles if t.before is not None and t.after is not None]
    if not before:
        raise CosimError("no tile carries current: the inputs or the weights are all zero")
    reductions = np.array([t.nf_reduction for t in tiles], dtype=float)
    reductions = reductions[np.isfinite(reductions)]
    nf_before, nf_after = float(np.mean(before)), float(np.mean(after))
    return {
        "nf_before": nf_before,
        "nf_after": nf_after,
        "nf_reduction": 1.0 - nf_after / nf_before,
        "nf_reduction_mean_over_tiles": float(reductions.mean()),
        "nf_reduction_best_tile": float(reductions.max()),
        "nf_reduction_worst_tile": float(reductions.min()),
        "output_error_before": float(np.mean([r.output_error(r.before) for r in results])),
        "output_error_after": float(np.mean([r.output_error(r.after) for r in results])),
        "ideal_unchanged": all(t.ideal_unchanged for t in tiles),
        "tiles_measured": len(before),
    }
