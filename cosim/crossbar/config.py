"""Crossbar descriptions from TOML files and command-line flags.

A TOML file (all tables and keys optional except ``rows`` and ``cols``)::

    rows = 4
    cols = 4
    access = "1r"            # or "1t1r"
    differential = false
    bench = "read"           # "write" or "sequence" (the [[steps]] below)
    save = "terminals"       # "cells" (node voltages, cell states) or "all"
    spice_options = { reltol = 1e-6 }

    [wires]                  # ohms per segment / terminal
    r_row = 1.0
    r_col = 1.0
    r_source = 1.0
    r_sense = 1.0

    [cells]
    kind = "resistor"        # "polynomial" (device I–V as a B-source), "veriloga",
                             # "generative" (the project's Verilog-A model, one device per cell)
                             # or "library" (a compact model of veriloga/library/)
    resistance = 10e3        # ohms, every cell ...
    resistance_file = "r.npy"  # ... or an M×N table (.npy or .csv), relative to the TOML file
    random_seed = 1          # ... or log-uniform random in [r_min, r_max] from this seed
    r_min = 4.5e3
    r_max = 75e3
    model_file = "data/models/default.json"  # device model for kind = "polynomial"
    va_model = "rram"        # kind = "veriloga": .model name, module, OSDI file, parameters
    va_module = "synaptogen_cell"
    osdi_file = "/abs/path/model.osdi"
    va_params = { r0 = 0.5, w0 = "w0.npy" }  # a number for every cell or an M×N table file
    va_model_params = {}
    va_state_nodes = ["w"]   # internal state nodes to probe with save = "cells"
    seed = 0                 # kind = "generative": RNG seed of the devices (as `cosim synth --seed`)
    first_device = 0         # device id of cell (i, j) = first_device + i*cols + j
    cycle0 = 0               # initial state: HRS of cycle0, or LRS of it with lrs0 = 1
    lrs0 = 0
    library_model = "vteam"  # kind = "library": vteam | stanford_pku

    [read]
    v_read = 0.2             # every row, or
    inputs = [0.2, 0.1, 0.0, 0.2]

    [write]
    row = 0
    col = 0
    v_write = 1.5
    scheme = "v2"            # or "v3"
    width = 1e-6

    [sequence]               # bench = "sequence": steps played in order (cosim.crossbar.stimulus)
    tstep = 1e-8             # largest time step [s]
    [[sequence.steps]]
    kind = "write"           # pulse(s) on one cell: row, col, v_write, scheme, width, repeat, gap
    row = 1
    col = 2
    v_write = -1.3
    repeat = 2
    [[sequence.steps]]
    kind = "read"            # rows at v_read (or inputs = [...]), columns at 0 V, for width
    [[sequence.steps]]
    kind = "pwl"             # explicit waveforms per line, t from the step start, 0 V at both ends
    duration = 2e-6
    rows = { 0 = [[0, 0], [1e-6, 0.5], [2e-6, 0]] }
    cols = { 3 = [[0, 0], [1e-6, -0.5], [2e-6, 0]] }

    [transistor]             # 1T1R access NMOS (ngspice level 1)
    vto = 0.4
    kp = 2e-4
    v_gate = 1.8

Values are validated strictly (numbers must be numbers); identifiers are checked again when
the netlist is rendered, so nothing from a file or a flag can add a card.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cosim.crossbar.cells import LinearCells, PolynomialCells, VerilogACells
from cosim.crossbar.netlist import WritePulse, read_netlist, sequence_netlist, write_netlist
from cosim.crossbar.stimulus import PwlStep, ReadStep, Stimulus, WriteStep
from cosim.crossbar.spec import Crossbar, Transistor
from cosim.errors import CosimError, DataFileError
from cosim.validation import load_toml, validate

_STRICT = ConfigDict(extra="forbid", strict=True)


class WiresConfig(BaseModel):
    model_config = _STRICT
    r_row: float = Field(1.0, gt=0)
    r_col: float = Field(1.0, gt=0)
    r_source: float = Field(1.0, gt=0)
    r_sense: float = Field(1.0, gt=0)


class CellsConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["resistor", "polynomial", "veriloga", "generative", "library"] = "resistor"
    resistance: Optional[float] = Field(None, gt=0)
    resistance_file: Optional[str] = None
    random_seed: Optional[int] = Field(None, ge=0, le=2**32 - 1)
    r_min: float = Field(4.5e3, gt=0)
    r_max: float = Field(75e3, gt=0)
    model_file: Optional[str] = None
    va_model: str = "rram"
    va_module: str = "rram"
    osdi_file: Optional[str] = None
    va_params: dict[str, Union[float, str]] = Field(default_factory=dict)
    va_model_params: dict[str, float] = Field(default_factory=dict)
    va_state_nodes: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0, le=2147483647)
    first_device: int = Field(0, ge=0, le=2147483647)
    cycle0: int = Field(0, ge=0, le=100000)
    lrs0: int = Field(0, ge=0, le=1)
    library_model: str = "vteam"


class ReadConfig(BaseModel):
    model_config = _STRICT
    v_read: float = 0.2
    inputs: Optional[list[float]] = None


class WriteConfig(BaseModel):
    model_config = _STRICT
    row: int = Field(0, ge=0)
    col: int = Field(0, ge=0)
    v_write: float = 1.5
    scheme: Literal["v2", "v3"] = "v2"
    delay: float = Field(1e-7, ge=0)
    rise: float = Field(1e-8, gt=0)
    fall: float = Field(1e-8, gt=0)
    width: float = Field(1e-6, gt=0)
    tstep: float = Field(1e-8, gt=0)


class StepConfig(BaseModel):
    """One step of ``[[sequence.steps]]`` (see :mod:`cosim.crossbar.stimulus`)."""

    model_config = _STRICT
    kind: Literal["write", "read", "pwl"]
    row: int = Field(0, ge=0)
    col: int = Field(0, ge=0)
    v_write: float = 1.5
    scheme: Literal["v2", "v3"] = "v3"
    repeat: int = Field(1, ge=1, le=10000)
    v_read: float = 0.2
    inputs: Optional[list[float]] = None
    width: float = Field(1e-6, gt=0)
    rise: float = Field(1e-8, gt=0)
    fall: float = Field(1e-8, gt=0)
    gap: float = Field(1e-7, ge=0)
    duration: Optional[float] = Field(None, gt=0)
    rows: dict[str, list[list[float]]] = Field(default_factory=dict)
    cols: dict[str, list[list[float]]] = Field(default_factory=dict)


class SequenceConfig(BaseModel):
    model_config = _STRICT
    tstep: float = Field(1e-8, gt=0)
    delay: float = Field(1e-7, ge=0)
    steps: list[StepConfig] = Field(min_length=1)


class TransistorConfig(BaseModel):
    model_config = _STRICT
    model: str = "nacc"
    vto: float = 0.4
    kp: float = Field(2e-4, gt=0)
    lambda_: float = Field(0.0, alias="lambda")
    w: float = Field(1e-6, gt=0)
    l: float = Field(1e-7, gt=0)
    v_gate: float = 1.8


class CrossbarConfig(BaseModel):
    """Everything ``cosim netlist crossbar`` needs; see the module docstring for the TOML form."""

    model_config = _STRICT
    rows: int = Field(ge=1, le=4096)
    cols: int = Field(ge=1, le=4096)
    access: Literal["1r", "1t1r"] = "1r"
    differential: bool = False
    bench: Literal["read", "write", "sequence"] = "read"
    save: Literal["terminals", "cells", "all"] = "terminals"
    spice_options: dict[str, float] = Field(default_factory=dict)
    wires: WiresConfig = Field(default_factory=WiresConfig)
    cells: CellsConfig = Field(default_factory=CellsConfig)
    read: ReadConfig = Field(default_factory=ReadConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)
    transistor: TransistorConfig = Field(default_factory=TransistorConfig)
    sequence: Optional[SequenceConfig] = None


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested dict update: values in ``overrides`` that are not None win."""
    merged = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            merged[key] = merge(merged.get(key, {}) if isinstance(merged.get(key), dict) else {}, value)
        else:
            merged[key] = value
    return merged


def parse_config(data: dict[str, Any], source: str = "configuration") -> CrossbarConfig:
    """Validate a config dict; errors name ``source`` and the field."""
    return validate(CrossbarConfig, data, source)


def load_matrix(path: Path, what: str = "matrix") -> np.ndarray:
    """An M×N float table from ``.npy`` or ``.csv`` (comma-separated, no header)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            matrix = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            with warnings.catch_warnings():  # an empty file is reported below, not warned about
                warnings.simplefilter("ignore", UserWarning)
                matrix = np.loadtxt(path, delimiter=",", dtype=float, ndmin=2)
        else:
            raise DataFileError(f"{path}: {what} must be a .npy or .csv file")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read {what} ({exc})") from exc
    except ValueError as exc:
        raise DataFileError(f"{path}: {what} is not a numeric table: {exc}") from exc
    if matrix.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: {what} must hold real numbers, got dtype {matrix.dtype}")
    matrix = np.asarray(matrix, dtype=float)
    if matrix.size == 0:
        raise DataFileError(f"{path}: {what} is empty")
    if matrix.ndim != 2:
        raise DataFileError(f"{path}: {what} must be 2-D, got shape {matrix.shape}")
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        raise DataFileError(f"{path}: {what} has a non-finite value at row {bad[0][0]}, column {bad[0][1]}")
    return matrix


def cell_resistances(config: CrossbarConfig, base_dir: Path) -> np.ndarray:
    """Static resistance per cell [Ω] from the ``[cells]`` table."""
    cells, shape = config.cells, (config.rows, config.cols)
    given = [cells.resistance is not None, cells.resistance_file is not None, cells.random_seed is not None]
    if sum(given) > 1:
        raise CosimError("cells: give only one of resistance, resistance_file, random_seed")
    if cells.resistance_file is not None:
        table = load_matrix(base_dir / cells.resistance_file, "resistance table")
        if table.shape != shape:
            raise DataFileError(f"{cells.resistance_file}: shape {table.shape}, crossbar is {shape}")
        if (table <= 0).any():
            raise DataFileError(f"{cells.resistance_file}: resistances must be positive")
        return table
    if cells.random_seed is not None:
        if cells.r_min >= cells.r_max:
            raise CosimError("cells: need r_min < r_max")
        rng = np.random.default_rng(cells.random_seed)
        return np.exp(rng.uniform(np.log(cells.r_min), np.log(cells.r_max), size=shape))
    return np.full(shape, cells.resistance if cells.resistance is not None else 10e3)


_RESISTIVE = ("resistor", "polynomial")
CELL_FIELD_KINDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("resistance", "resistance_file", "random_seed", "r_min", "r_max"), _RESISTIVE),
    "model_file": ("polynomial", "generative"),
    **dict.fromkeys(("seed", "first_device", "cycle0", "lrs0"), ("generative",)),
    "osdi_file": ("veriloga", "generative"),
    **dict.fromkeys(("va_module", "va_state_nodes"), ("veriloga",)),
    **dict.fromkeys(("va_params", "va_model_params"), ("veriloga", "library")),
    "library_model": ("library",),
}
"""The cell kinds each ``[cells]`` field applies to (fields not listed apply to every kind)."""


def _check_cell_fields(cells: CellsConfig) -> None:
    """Refuse a ``[cells]`` field (or its flag) that the chosen kind would silently ignore."""
    for name in sorted(cells.model_fields_set):
        kinds = CELL_FIELD_KINDS.get(name)
        if kinds is not None and cells.kind not in kinds:
            raise CosimError(f"cells: kind = \"{cells.kind}\" takes no {name} (it applies to "
                             f"{' and '.join(kinds)} cells only)")


def build_crossbar(config: CrossbarConfig, base_dir: Path = Path(".")) -> Crossbar:
    """The :class:`Crossbar` a config describes (cells, wires, transistor, inputs)."""
    resistance = cell_resistances(config, base_dir)
    kind = config.cells.kind
    _check_cell_fields(config.cells)
    if kind == "resistor":
        cells: Any = LinearCells(1.0 / resistance)
    elif kind == "polynomial":
        cells = _device_cells(config, base_dir, resistance)
    elif kind == "generative":
        cells = _generative_cells(config, base_dir)
    elif kind == "library":
        from cosim.crossbar.devices import library_cells

        c = config.cells
        cells = library_cells(c.library_model, (config.rows, config.cols), _va_params(config, base_dir),
                              dict(c.va_model_params), model_name=c.va_model)
    else:
        cells = _veriloga_cells(config, base_dir)
    t = config.transistor
    transistor = Transistor(model=t.model, vto=t.vto, kp=t.kp, lambda_=t.lambda_, w=t.w, l=t.l, v_gate=t.v_gate)
    inputs = None if config.read.inputs is None else np.asarray(config.read.inputs, dtype=float)
    w = config.wires
    return Crossbar(
        cells=cells, r_row=w.r_row, r_col=w.r_col, r_source=w.r_source, r_sense=w.r_sense,
        differential=config.differential, access=config.access, transistor=transistor,
        inputs=inputs, v_read=config.read.v_read,
    )


def _va_params(config: CrossbarConfig, base_dir: Path) -> dict[str, object]:
    """Instance parameters: numbers for every cell, or M×N tables from .npy/.csv files."""
    shape = (config.rows, config.cols)
    params: dict[str, object] = {}
    for name, value in config.cells.va_params.items():
        if isinstance(value, str):
            table = load_matrix(base_dir / value, f"table of instance parameter {name}")
            if table.shape != shape:
                raise DataFileError(f"{value}: instance parameter {name} has shape {table.shape}, crossbar is {shape}")
            params[name] = table
        else:
            params[name] = value
    return params


def _veriloga_cells(config: CrossbarConfig, base_dir: Path) -> VerilogACells:
    c = config.cells
    cells = VerilogACells(
        shape_=(config.rows, config.cols), model=c.va_model, module=c.va_module,
        params=_va_params(config, base_dir), model_params=dict(c.va_model_params),
        state_nodes=tuple(c.va_state_nodes),
    )
    if c.osdi_file is None:
        raise CosimError(
            f"cells: kind = \"veriloga\" needs an OSDI file (osdi_file / --osdi F.osdi) with module "
            f"{c.va_module}; compile the Verilog-A with `cosim compile F.va -o F.osdi`"
        )
    osdi = (base_dir / c.osdi_file).resolve()
    from cosim.spice.render import path as checked_path

    checked_path(osdi)
    if not osdi.is_file():
        raise DataFileError(f"{c.osdi_file}: OSDI file not found")
    return replace(cells, osdi_file=osdi)


def _generative_cells(config: CrossbarConfig, base_dir: Path) -> VerilogACells:
    from cosim.crossbar.devices import generative_cells
    from cosim.device.modelfile import load_model
    from cosim.paths import DEFAULT_MODEL

    c = config.cells
    model = load_model(DEFAULT_MODEL if c.model_file is None else base_dir / c.model_file)
    osdi = None if c.osdi_file is None else (base_dir / c.osdi_file).resolve()
    if osdi is not None and not osdi.is_file():
        raise DataFileError(f"{c.osdi_file}: OSDI file not found")
    return generative_cells(model, c.seed, (config.rows, config.cols), c.first_device, c.cycle0, c.lrs0,
                            osdi_file=osdi, model_name=c.va_model)


def _device_cells(config: CrossbarConfig, base_dir: Path, resistance: np.ndarray) -> PolynomialCells:
    from cosim.device.modelfile import load_model
    from cosim.paths import DEFAULT_MODEL

    path = DEFAULT_MODEL if config.cells.model_file is None else base_dir / config.cells.model_file
    return PolynomialCells.from_device_model(load_model(path), resistance)


def stimulus(config: CrossbarConfig) -> Stimulus:
    """The :class:`Stimulus` of ``[sequence]`` (``bench = "sequence"``)."""
    if config.sequence is None:
        raise CosimError('bench = "sequence" needs a [sequence] table with [[sequence.steps]]')
    steps: list[Any] = []
    for index, step in enumerate(config.sequence.steps):
        if step.kind == "write":
            steps.append(WriteStep(row=step.row, col=step.col, v_write=step.v_write, scheme=step.scheme,
                                   width=step.width, rise=step.rise, fall=step.fall, gap=step.gap, repeat=step.repeat))
        elif step.kind == "read":
            steps.append(ReadStep(v_read=step.v_read, inputs=None if step.inputs is None else tuple(step.inputs),
                                  width=step.width, rise=step.rise, fall=step.fall, gap=step.gap))
        else:
            if step.duration is None:
                raise CosimError(f"sequence step {index + 1}: kind = \"pwl\" needs duration")
            steps.append(PwlStep(duration=step.duration, rows=_lines(step.rows, index, "rows"),
                                 cols=_lines(step.cols, index, "cols")))
    return Stimulus(steps=tuple(steps), tstep=config.sequence.tstep, delay=config.sequence.delay)


def _lines(table: dict[str, list[list[float]]], index: int, what: str) -> dict[int, list[list[float]]]:
    out = {}
    for key, wave in table.items():
        if not key.isdigit():
            raise CosimError(f"sequence step {index + 1}: {what} key {key!r} must be a line index (0, 1, ...)")
        out[int(key)] = wave
    return out


def render(config: CrossbarConfig, base_dir: Path = Path(".")) -> str:
    """Netlist text (read or write bench) for ``config``."""
    crossbar = build_crossbar(config, base_dir)
    title = f"cosim crossbar {config.bench} {config.rows}x{config.cols} {config.access} {config.cells.kind}"
    if config.differential:
        title += " differential"
    if config.cells.random_seed is not None:
        title += f" seed={config.cells.random_seed}"
    if config.cells.kind == "generative":
        title += f" seed={config.cells.seed} first_device={config.cells.first_device}"
    if config.bench == "read":
        return read_netlist(crossbar, spice_options=config.spice_options, save=config.save, title=title)
    if config.bench == "sequence":
        return sequence_netlist(crossbar, stimulus(config), spice_options=config.spice_options, save=config.save,
                                title=title)
    w = config.write
    pulse = WritePulse(
        row=w.row, col=w.col, v_write=w.v_write, scheme=w.scheme, delay=w.delay,
        rise=w.rise, fall=w.fall, width=w.width, tstep=w.tstep,
    )
    return write_netlist(crossbar, pulse, spice_options=config.spice_options, save=config.save, title=title)
