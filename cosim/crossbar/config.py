"""Crossbar descriptions from TOML files and command-line flags.

A TOML file (all tables and keys optional except ``rows`` and ``cols``)::

    rows = 4
    cols = 4
    access = "1r"            # or "1t1r"
    differential = false
    bench = "read"           # or "write"
    spice_options = { reltol = 1e-6 }

    [wires]                  # ohms per segment / terminal
    r_row = 1.0
    r_col = 1.0
    r_source = 1.0
    r_sense = 1.0

    [cells]
    kind = "resistor"        # "polynomial" (device I–V as a B-source) or "veriloga"
    resistance = 10e3        # ohms, every cell ...
    resistance_file = "r.npy"  # ... or an M×N table (.npy or .csv), relative to the TOML file
    random_seed = 1          # ... or log-uniform random in [r_min, r_max] from this seed
    r_min = 4.5e3
    r_max = 75e3
    model_file = "data/models/default.json"  # device model for kind = "polynomial"
    va_model = "rram"        # kind = "veriloga": .model name, module, OSDI file, parameters
    va_module = "synaptogen_cell"
    osdi_file = "/abs/path/model.osdi"
    va_params = { r0 = 0.5 }
    va_model_params = {}

    [read]
    v_read = 0.2             # every row, or
    inputs = [0.2, 0.1, 0.0, 0.2]

    [write]
    row = 0
    col = 0
    v_write = 1.5
    scheme = "v2"            # or "v3"
    width = 1e-6

    [transistor]             # 1T1R access NMOS (ngspice level 1)
    vto = 0.4
    kp = 2e-4
    v_gate = 1.8

Values are validated strictly (numbers must be numbers); identifiers are checked again when
the netlist is rendered, so nothing from a file or a flag can add a card.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cosim.crossbar.cells import LinearCells, PolynomialCells, VerilogACells
from cosim.crossbar.netlist import WritePulse, read_netlist, write_netlist
from cosim.crossbar.spec import Crossbar, Transistor
from cosim.errors import CosimError, DataFileError
from cosim.validation import validate

_STRICT = ConfigDict(extra="forbid", strict=True)


class WiresConfig(BaseModel):
    model_config = _STRICT
    r_row: float = Field(1.0, gt=0)
    r_col: float = Field(1.0, gt=0)
    r_source: float = Field(1.0, gt=0)
    r_sense: float = Field(1.0, gt=0)


class CellsConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["resistor", "polynomial", "veriloga"] = "resistor"
    resistance: Optional[float] = Field(None, gt=0)
    resistance_file: Optional[str] = None
    random_seed: Optional[int] = Field(None, ge=0, le=2**32 - 1)
    r_min: float = Field(4.5e3, gt=0)
    r_max: float = Field(75e3, gt=0)
    model_file: Optional[str] = None
    va_model: str = "rram"
    va_module: str = "rram"
    osdi_file: Optional[str] = None
    va_params: dict[str, float] = Field(default_factory=dict)
    va_model_params: dict[str, float] = Field(default_factory=dict)


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
    bench: Literal["read", "write"] = "read"
    spice_options: dict[str, float] = Field(default_factory=dict)
    wires: WiresConfig = Field(default_factory=WiresConfig)
    cells: CellsConfig = Field(default_factory=CellsConfig)
    read: ReadConfig = Field(default_factory=ReadConfig)
    write: WriteConfig = Field(default_factory=WriteConfig)
    transistor: TransistorConfig = Field(default_factory=TransistorConfig)


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file into a dict; errors name the file."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except OSError as exc:
        raise CosimError(f"{path}: cannot read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CosimError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise CosimError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None


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
            matrix = np.loadtxt(path, delimiter=",", dtype=float, ndmin=2)
        else:
            raise DataFileError(f"{path}: {what} must be a .npy or .csv file")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read {what} ({exc})") from exc
    except ValueError as exc:
        raise DataFileError(f"{path}: {what} is not a numeric table: {exc}") from exc
    matrix = np.asarray(matrix, dtype=float)
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


def build_crossbar(config: CrossbarConfig, base_dir: Path = Path(".")) -> Crossbar:
    """The :class:`Crossbar` a config describes (cells, wires, transistor, inputs)."""
    resistance = cell_resistances(config, base_dir)
    kind = config.cells.kind
    if kind == "resistor":
        cells: Any = LinearCells(1.0 / resistance)
    elif kind == "polynomial":
        cells = _device_cells(config, base_dir, resistance)
    else:
        c = config.cells
        osdi = None if c.osdi_file is None else (base_dir / c.osdi_file).resolve()
        cells = VerilogACells(
            shape_=(config.rows, config.cols), model=c.va_model, module=c.va_module,
            params=dict(c.va_params), model_params=dict(c.va_model_params), osdi_file=osdi,
        )
    t = config.transistor
    transistor = Transistor(model=t.model, vto=t.vto, kp=t.kp, lambda_=t.lambda_, w=t.w, l=t.l, v_gate=t.v_gate)
    inputs = None if config.read.inputs is None else np.asarray(config.read.inputs, dtype=float)
    w = config.wires
    return Crossbar(
        cells=cells, r_row=w.r_row, r_col=w.r_col, r_source=w.r_source, r_sense=w.r_sense,
        differential=config.differential, access=config.access, transistor=transistor,
        inputs=inputs, v_read=config.read.v_read,
    )


def _device_cells(config: CrossbarConfig, base_dir: Path, resistance: np.ndarray) -> PolynomialCells:
    from cosim.device.modelfile import load_model
    from cosim.paths import DEFAULT_MODEL

    path = DEFAULT_MODEL if config.cells.model_file is None else base_dir / config.cells.model_file
    return PolynomialCells.from_device_model(load_model(path), resistance)


def render(config: CrossbarConfig, base_dir: Path = Path(".")) -> str:
    """Netlist text (read or write bench) for ``config``."""
    crossbar = build_crossbar(config, base_dir)
    title = f"cosim crossbar {config.bench} {config.rows}x{config.cols} {config.access} {config.cells.kind}"
    if config.differential:
        title += " differential"
    if config.cells.random_seed is not None:
        title += f" seed={config.cells.random_seed}"
    if config.bench == "read":
        return read_netlist(crossbar, spice_options=config.spice_options, title=title)
    w = config.write
    pulse = WritePulse(
        row=w.row, col=w.col, v_write=w.v_write, scheme=w.scheme, delay=w.delay,
        rise=w.rise, fall=w.fall, width=w.width, tstep=w.tstep,
    )
    return write_netlist(crossbar, pulse, spice_options=config.spice_options, title=title)
