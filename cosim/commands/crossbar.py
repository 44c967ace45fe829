"""Crossbar commands: ``cosim netlist crossbar`` and ``cosim mdm``.

``netlist`` is a sub-group so that other areas can add ``cosim netlist <other>`` (get it with
:func:`netlist_group`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cosim.errors import CosimError

_NETLIST_GROUP: typer.Typer | None = None

#: peak memory of `cosim netlist crossbar`, measured at 128x128 and 512x512 cells (bytes)
NETLIST_BYTES_BASE, NETLIST_BYTES_PER_CELL = 150e6, 1.5e3
#: peak memory of `cosim mdm` per logical weight (differential pairs, nodal solves), bytes
MDM_BYTES_BASE, MDM_BYTES_PER_WEIGHT = 200e6, 5e3
#: peak memory of `cosim irdrop` (nodal, measured at 128x128 and 512x512 cells), bytes
IRDROP_BYTES_BASE, IRDROP_BYTES_PER_CELL = 200e6, 2.2e3


def _fail(exc: CosimError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=2)


def _va_params(items: Optional[list[str]]) -> dict[str, object]:
    """``--va-param NAME=VALUE`` flags: a number, else a table file (absolute path)."""
    params: dict[str, object] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise CosimError(f"--va-param {item!r}: expected NAME=NUMBER or NAME=FILE.npy|.csv")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            params[name.strip()] = str(Path(value.strip()).resolve())
    return params


def netlist_group(app: typer.Typer) -> typer.Typer:
    """The ``cosim netlist`` sub-group, created and attached to ``app`` on first use."""
    global _NETLIST_GROUP
    if _NETLIST_GROUP is None:
        _NETLIST_GROUP = typer.Typer(no_args_is_help=True, help="Write ngspice netlists from templates.")
        app.add_typer(_NETLIST_GROUP, name="netlist")
    return _NETLIST_GROUP


def netlist_crossbar(
    output: Path = typer.Option(..., "-o", "--output", help="Netlist file to write (.cir)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML description; flags override it."),
    rows: Optional[int] = typer.Option(None, "--rows", help="M, number of rows (inputs)."),
    cols: Optional[int] = typer.Option(None, "--cols", help="N, number of columns."),
    r_wire: Optional[float] = typer.Option(None, "--r-wire", help="Row and column segment resistance [Ω]."),
    r_row: Optional[float] = typer.Option(None, "--r-row", help="Row segment resistance [Ω]."),
    r_col: Optional[float] = typer.Option(None, "--r-col", help="Column segment resistance [Ω]."),
    r_source: Optional[float] = typer.Option(None, "--r-source", help="Row driver resistance [Ω]."),
    r_sense: Optional[float] = typer.Option(None, "--r-sense", help="Column sense resistance [Ω]."),
    cell: Optional[str] = typer.Option(None, "--cell", help="Access: 1r or 1t1r."),
    device: Optional[str] = typer.Option(
        None, "--device", help="Cell: resistor, polynomial, veriloga, generative or library."),
    model: Optional[Path] = typer.Option(None, "--model", help="Device model JSON (generative and polynomial cells)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="generative: RNG seed of the devices (as cosim synth)."),
    first_device: Optional[int] = typer.Option(None, "--first-device", help="generative: device id of cell (0, 0)."),
    osdi: Optional[Path] = typer.Option(None, "--osdi", help="veriloga: compiled OSDI library (cosim compile)."),
    module: Optional[str] = typer.Option(None, "--module", help="veriloga: Verilog-A module name."),
    va_param: Optional[list[str]] = typer.Option(
        None, "--va-param", help="Instance parameter NAME=NUMBER or NAME=TABLE.npy|.csv (M×N); repeatable."),
    library_model: Optional[str] = typer.Option(None, "--library-model", help="library: vteam or stanford_pku."),
    save: Optional[str] = typer.Option(None, "--save", help="Probes: terminals, cells or all."),
    resistance: Optional[float] = typer.Option(None, "--resistance", help="Every cell's resistance [Ω]."),
    random_seed: Optional[int] = typer.Option(None, "--random-seed", help="Random log-uniform cell resistances from this seed."),
    differential: Optional[bool] = typer.Option(None, "--differential/--single-ended", help="Adjacent G+/G- column pairs."),
    bench: Optional[str] = typer.Option(None, "--bench", help="read (.op) or write (.tran pulses)."),
    v_read: Optional[float] = typer.Option(None, "--v-read", help="Read voltage on every row [V]."),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="Write scheme: v2 or v3."),
    v_write: Optional[float] = typer.Option(None, "--v-write", help="Write pulse amplitude [V]."),
    select_row: Optional[int] = typer.Option(None, "--select-row", help="Row of the cell to write."),
    select_col: Optional[int] = typer.Option(None, "--select-col", help="Column of the cell to write."),
) -> None:
    """Write a crossbar read or write testbench netlist (see docs/crossbar.md)."""
    from cosim.commands._guard import check_memory, check_output_file
    from cosim.commands._progress import working
    from cosim.crossbar import config as cfg
    from cosim.fileio import write_text_atomic

    try:
        check_output_file(output)
        data = cfg.load_toml(config) if config is not None else {}
        flags = {
            "rows": rows, "cols": cols, "access": cell, "differential": differential, "bench": bench,
            "wires": {
                "r_row": r_row if r_row is not None else r_wire,
                "r_col": r_col if r_col is not None else r_wire,
                "r_source": r_source, "r_sense": r_sense,
            },
            "cells": {
                "kind": device, "resistance": resistance, "random_seed": random_seed,
                "model_file": None if model is None else str(model.resolve()),
                "seed": seed, "first_device": first_device, "library_model": library_model,
                "osdi_file": None if osdi is None else str(osdi.resolve()), "va_module": module,
                "va_params": _va_params(va_param) or None,
            },
            "save": save,
            "read": {"v_read": v_read},
            "write": {"scheme": scheme, "v_write": v_write, "row": select_row, "col": select_col},
        }
        source = str(config) if config is not None else "flags"
        parsed = cfg.parse_config(cfg.merge(data, flags), source)
        base_dir = config.parent if config is not None else Path.cwd()
        cells = parsed.rows * parsed.cols * (2 if parsed.differential else 1)
        check_memory(NETLIST_BYTES_BASE + NETLIST_BYTES_PER_CELL * cells,
                     f"a {parsed.rows}x{parsed.cols} netlist ({cells} cells)")
        with working(f"rendering the {parsed.rows}x{parsed.cols} netlist"):
            text = cfg.render(parsed, base_dir)
        write_text_atomic(output, text)
    except CosimError as exc:
        raise _fail(exc) from exc
    typer.echo(f"wrote {output} ({parsed.rows}x{parsed.cols} {parsed.access} {parsed.cells.kind}, {parsed.bench})")


def mdm(
    matrix: Optional[Path] = typer.Option(None, "--matrix", help="Weight matrix (.npy or .csv); default random."),
    rows: int = typer.Option(64, "--rows", help="Rows of the random matrix."),
    cols: int = typer.Option(32, "--cols", help="Columns (logical outputs) of the random matrix."),
    block: int = typer.Option(0, "--block", help="Block size for a random block-diagonal matrix (0: dense)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random matrix and of the input vectors."),
    inputs: int = typer.Option(32, "--inputs", help="Number of random input vectors (uniform in [0, v_read])."),
    r_wire: float = typer.Option(1.0, "--r-wire", help="Row and column segment resistance [Ω]."),
    v_read: float = typer.Option(0.2, "--v-read", help="Full-scale read voltage [V]."),
    g_min: float = typer.Option(1 / 75e3, "--g-min", help="Smallest conductance [S].",
                                show_default="1/75 kΩ ≈ 1.33e-05"),
    g_max: float = typer.Option(1 / 4.5e3, "--g-max", help="Largest conductance [S].",
                                show_default="1/4.5 kΩ ≈ 2.22e-04"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Report NF before and after Manhattan-distance remapping (differential pairs)."""
    from cosim.crossbar.config import load_matrix
    from cosim.crossbar.mdm import random_inputs, random_weights, study
    from cosim.fileio import write_text_atomic
    from cosim.crossbar.spec import Crossbar
    from cosim.commands._guard import check_memory, check_output_file

    try:
        if not 0 <= seed < 2**32 - 1:
            raise CosimError(f"--seed must be in 0..{2**32 - 2} (got {seed})")
        if json_out is not None:
            check_output_file(json_out, "--json")
        if matrix is not None:
            weights, origin = load_matrix(matrix, "weight matrix"), str(matrix)
        else:
            weights, origin = random_weights(rows, cols, block, seed), ("block-diagonal" if block else "dense Gaussian")
        check_memory(MDM_BYTES_BASE + MDM_BYTES_PER_WEIGHT * weights.size,
                     f"MDM on a {weights.shape[0]}x{weights.shape[1]} weight matrix")
        crossbar = Crossbar.from_weights(
            weights, g_min=g_min, g_max=g_max, differential=True, r_row=r_wire, r_col=r_wire, v_read=v_read
        )
        vectors = random_inputs(crossbar.rows, inputs, v_read, seed + 1)
        result = study(crossbar, vectors)
    except CosimError as exc:
        raise _fail(exc) from exc
    report = {
        "matrix": origin, "shape": list(weights.shape), "seed": seed, "input_seed": seed + 1,
        "inputs": inputs, "r_wire_ohm": r_wire, "v_read_V": v_read, "g_min_S": g_min, "g_max_S": g_max,
        **result.as_dict(), **result.remap.as_dict(),
    }
    typer.echo(f"matrix: {origin} {weights.shape[0]}x{weights.shape[1]} (seed {seed}), {inputs} inputs, r_wire {r_wire} ohm")
    typer.echo(f"NF            {result.before.tile_nf:.5f} -> {result.after.tile_nf:.5f}  ({100 * report['nf_reduction']:.1f}% lower)")
    typer.echo(f"output error  {result.before.output_error:.5f} -> {result.after.output_error:.5f}")
    typer.echo(f"ideal output unchanged by the remap: {result.ideal_unchanged}")
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(report, indent=2, default=float) + "\n")


def irdrop(
    config: Path = typer.Option(..., "--config", help="Crossbar TOML (read bench)."),
    output: Path = typer.Option(..., "-o", "--output", help="Heatmap figure to write (.png, .pdf, .svg)."),
    backend: str = typer.Option("nodal", "--backend", help="nodal (exact solver, 1R) or ngspice."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the maps: i, j, v_row_V, v_col_V, v_cell_V, i_cell_A."),
) -> None:
    """IR-drop maps of a read: row-wire drop, column-wire rise and cell voltage per cell."""
    import numpy as np
    import pandas as pd

    from cosim.crossbar import config as cfg
    from cosim.crossbar.netlist import read_netlist
    from cosim.crossbar.probes import CellArrays, ir_drop_figure
    from cosim.commands._guard import check_memory, check_output_file
    from cosim.fileio import atomic_path

    try:
        check_output_file(output)
        if csv is not None:
            check_output_file(csv, "--csv")
        parsed = cfg.parse_config(cfg.load_toml(config), str(config))
        cells_total = parsed.rows * parsed.cols * (2 if parsed.differential else 1)
        check_memory(IRDROP_BYTES_BASE + IRDROP_BYTES_PER_CELL * cells_total,
                     f"IR-drop maps of a {parsed.rows}x{parsed.cols} crossbar")
        crossbar = cfg.build_crossbar(parsed, config.parent)
        if backend == "nodal":
            from cosim.crossbar.solver import simulate

            result = simulate(crossbar, save_nodes=True)
        elif backend == "ngspice":
            from cosim.spice.batch import run_batch

            result = run_batch(read_netlist(crossbar, spice_options=parsed.spice_options, save="cells"))
        else:
            raise CosimError(f"--backend must be nodal or ngspice, got {backend!r}")
        cells = CellArrays.from_result(result, crossbar)
        ir_drop_figure(cells, output, title=f"{config.name}: {crossbar.rows}x{crossbar.cols}, {backend}")
        if csv is not None:
            maps = cells.at(0)
            i, j = np.indices(crossbar.shape)
            frame = pd.DataFrame({"i": i.ravel(), "j": j.ravel(), "v_row_V": maps["v_row"].ravel(),
                                  "v_col_V": maps["v_col"].ravel(), "v_cell_V": maps["v_cell"].ravel(),
                                  "i_cell_A": maps["i_cell"].ravel()})
            with atomic_path(csv) as tmp:
                frame.to_csv(tmp, index=False, float_format="%.12g")
    except CosimError as exc:
        raise _fail(exc) from exc
    worst = float(cells.row_drop[0].max() + cells.col_rise[0].max())
    typer.echo(f"wrote {output}: worst row drop {1e3 * cells.row_drop[0].max():.3f} mV, "
               f"column rise {1e3 * cells.col_rise[0].max():.3f} mV (sum {1e3 * worst:.3f} mV)")


def register(app: typer.Typer) -> None:
    """Add ``cosim netlist crossbar``, ``cosim irdrop`` and ``cosim mdm``."""
    netlist_group(app).command("crossbar")(netlist_crossbar)
    app.command("irdrop")(irdrop)
    app.command("mdm")(mdm)
