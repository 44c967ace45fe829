"""Crossbar commands: ``cosim netlist crossbar`` and ``cosim mdm``.

``netlist`` is a sub-group so that other areas can add ``cosim netlist <other>`` (get it with
:func:`netlist_group`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from cosim.errors import CosimError, DataFileError

_NETLIST_GROUP: typer.Typer | None = None

#: peak memory of `cosim netlist crossbar`, measured at 128x128 and 512x512 cells (bytes)
NETLIST_BYTES_BASE, NETLIST_BYTES_PER_CELL = 150e6, 1.5e3
#: peak memory of `cosim mdm` per logical weight (differential pairs, nodal solves), bytes
MDM_BYTES_BASE, MDM_BYTES_PER_WEIGHT = 200e6, 5e3
#: peak memory of `cosim irdrop` (nodal, measured at 128x128 and 512x512 cells), bytes
IRDROP_BYTES_BASE, IRDROP_BYTES_PER_CELL = 200e6, 2.2e3


@contextmanager
def _naming(config: Optional[Path]) -> Iterator[None]:
    """Prefix errors found while building from ``config`` with its name (data files that the
    config points to name themselves)."""
    try:
        yield
    except DataFileError:
        raise
    except CosimError as exc:
        if config is None or str(exc).startswith(str(config)):
            raise
        raise CosimError(f"{config}: {exc}") from None


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
    cells = parsed.rows * parsed.cols  # cols counts physical columns (both of a differential pair)
    check_memory(NETLIST_BYTES_BASE + NETLIST_BYTES_PER_CELL * cells,
                 f"a {parsed.rows}x{parsed.cols} netlist ({cells} cells)")
    with _naming(config), working(f"rendering the {parsed.rows}x{parsed.cols} netlist"):
        text = cfg.render(parsed, base_dir)
    write_text_atomic(output, text)
    typer.echo(f"wrote {output} ({parsed.rows}x{parsed.cols} {parsed.access} {parsed.cells.kind}, {parsed.bench})")


def mdm(
    matrix: Optional[Path] = typer.Option(None, "--weights", "--matrix", help="Weight matrix, inputs x outputs (.npy or .csv); default random."),
    rows: int = typer.Option(64, "--rows", help="Rows of the random matrix."),
    cols: int = typer.Option(32, "--cols", help="Columns (logical outputs) of the random matrix."),
    block: int = typer.Option(0, "--block", help="Block size for a random block-diagonal matrix (0: dense)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random matrix and of the random input vectors."),
    inputs: Optional[Path] = typer.Option(None, "--inputs", help="Activations, vectors x inputs (.npy or .csv); default random uniform in [0, v_read]."),
    vectors: int = typer.Option(32, "--vectors", help="Number of random input vectors when --inputs is not given."),
    r_wire: float = typer.Option(1.0, "--r-wire", help="Row and column segment resistance [Ω]."),
    v_read: float = typer.Option(0.2, "--v-read", help="Full-scale read voltage [V]."),
    g_min: float = typer.Option(1 / 75e3, "--g-min", help="Smallest conductance (G_off) [S].",
                                show_default="1/75 kΩ ≈ 1.33e-05"),
    g_max: float = typer.Option(1 / 4.5e3, "--g-max", help="Largest conductance (G_on) [S].",
                                show_default="1/4.5 kΩ ≈ 2.22e-04"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
    # -- bit-sliced crossbars (issue #15) --
    weight_bits: int = typer.Option(0, "--weight-bits", help="Bits per weight, bit-sliced (0: analog differential pairs)."),
    slice_bits: int = typer.Option(1, "--slice-bits", help="Bits per cell (1 or 2)."),
    on_off: Optional[float] = typer.Option(None, "--on-off", help="ON/OFF ratio: G_off = G_on / ratio (G_on = --g-max)."),
    tile: int = typer.Option(0, "--tile", help="Tile size, e.g. 64 or 128 (0: one crossbar; 128 when bit-sliced)."),
    signed: str = typer.Option("differential", "--signed", help="Signed weights: differential (pairs) or offset (offset column)."),
    encoding: str = typer.Option("analog", "--input-encoding", help="analog or bit-serial inputs."),
    input_bits: int = typer.Option(8, "--input-bits", help="Bits of bit-serial inputs."),
    devices: str = typer.Option("ideal", "--devices", help="ideal cells or programmed (write-verify stochastic devices)."),
    device_model: Optional[Path] = typer.Option(None, "--device-model", help="Device model JSON: programmed devices and, without --on-off, its levels."),
    device_seed: int = typer.Option(0, "--device-seed", help="Seed of the programmed devices."),
    backend: str = typer.Option("nodal", "--backend", help="nodal (exact solver) or ngspice."),
    mdm_columns: str = typer.Option("flip", "--mdm-columns", help="Bit-sliced MDM columns: flip (drivers on the low-order side, the paper), sorted (by load) or keep (rows only)."),
    mlp: Optional[Path] = typer.Option(None, "--mlp", help="Trained ReLU network (.npz with W0, b0, W1, ...): accuracy with and without MDM."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Class labels of --inputs (.npy), for --mlp."),
    compensation: Optional[str] = typer.Option(
        None, "--compensation",
        help="Analog: compare MDM under each of none, gain, predistort (comma-separated); bit-sliced: gain adds the compensated accuracy.",
    ),
) -> None:
    """Report NF before and after Manhattan-distance mapping (MDM), per tile.

    Analog differential pairs, or bit-sliced weights with --weight-bits (see
    docs/commands/mdm.md).
    """
    from cosim.fileio import write_text_atomic
    from cosim.commands._guard import check_output_file

    if not 0 <= seed < 2**32 - 1:
        raise CosimError(f"--seed must be in 0..{2**32 - 2} (got {seed})")
    if json_out is not None:
        check_output_file(json_out, "--json")
    sliced = bool(weight_bits) or mlp is not None
    methods = _check_mdm_flags(sliced, mlp, labels, compensation, {
        "--slice-bits": slice_bits != 1, "--on-off": on_off is not None, "--signed": signed != "differential",
        "--input-encoding": encoding != "analog", "--input-bits": input_bits != 8, "--devices": devices != "ideal",
        "--device-model": device_model is not None, "--device-seed": device_seed != 0,
        "--backend": backend != "nodal", "--mdm-columns": mdm_columns != "flip",
    })
    if sliced:
        report, lines = _mdm_sliced(
            matrix, inputs, labels, mlp, rows, cols, block, seed, vectors, r_wire, v_read, g_min, g_max,
            weight_bits or 8, slice_bits, on_off, tile or 128, signed, encoding, input_bits, devices,
            device_model, device_seed, backend, mdm_columns, methods,
        )
    else:
        report, lines = _mdm_analog(
            matrix, inputs, rows, cols, block, seed, vectors, r_wire, v_read, g_min, g_max, tile, methods
        )
    for line in lines:
        typer.echo(line)
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(report, indent=2, default=_json_default) + "\n")


def _check_mdm_flags(sliced: bool, mlp: Optional[Path], labels: Optional[Path], compensation: Optional[str],
                     sliced_only: dict[str, bool]) -> list[str]:
    """Refuse flags the chosen mode would silently ignore; the ``--compensation`` methods
    (checked; empty when not given)."""
    if not sliced:
        given = [flag for flag, changed in sliced_only.items() if changed]
        if given:
            raise CosimError(f"{given[0]} applies to bit-sliced weights only; add --weight-bits B (or --mlp)")
    if labels is not None and mlp is None:
        raise CosimError("--labels are the classes of --inputs for --mlp; give --mlp too")
    if compensation is None:
        return []
    from cosim.compensation import check_methods

    try:
        names = check_methods([m.strip() for m in compensation.split(",") if m.strip()])
    except CosimError as exc:
        raise CosimError(f"--compensation {compensation!r}: {exc}") from None
    if sliced and "gain" in names and labels is None:
        raise CosimError("--compensation gain with bit-sliced weights adds the compensated accuracy of --mlp; "
                         "it needs --mlp, --inputs and --labels")
    return names


def _json_default(value: object) -> object:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    return float(value)  # type: ignore[arg-type]


def _weights_and_inputs(
    matrix: Optional[Path], inputs: Optional[Path], rows: int, cols: int, block: int, seed: int, vectors: int, v_read: float
) -> tuple["object", str, "object", str]:
    from cosim.commands._guard import check_memory
    from cosim.crossbar.config import load_matrix
    from cosim.crossbar.mdm import random_inputs, random_weights

    if matrix is not None:
        weights, origin = load_matrix(matrix, "weight matrix"), str(matrix)
    else:
        weights, origin = random_weights(rows, cols, block, seed), ("block-diagonal" if block else "dense Gaussian")
    check_memory(MDM_BYTES_BASE + MDM_BYTES_PER_WEIGHT * weights.size,
                 f"MDM on a {weights.shape[0]}x{weights.shape[1]} weight matrix")
    if inputs is not None:
        batch, source = load_matrix(inputs, "inputs"), str(inputs)
        if batch.shape[1] != weights.shape[0]:
            raise CosimError(f"{inputs}: {batch.shape[1]} inputs per vector, the weights have {weights.shape[0]} rows")
    else:
        if vectors < 1:
            raise CosimError(f"--vectors must be at least 1, got {vectors}")
        batch, source = random_inputs(weights.shape[0], vectors, v_read, seed + 1), f"{vectors} random (seed {seed + 1})"
    return weights, origin, batch, source


def _mdm_analog(
    matrix: Optional[Path], inputs: Optional[Path], rows: int, cols: int, block: int, seed: int, vectors: int,
    r_wire: float, v_read: float, g_min: float, g_max: float, tile: int, methods: list[str],
) -> tuple[dict[str, object], list[str]]:
    """Analog differential pairs: one crossbar, or ``tile``-row × ``tile``-column tiles;
    compensation ``methods`` (one crossbar only): MDM compared under each method."""
    from cosim.crossbar.mdm import analog_tiles

    weights, origin, batch, source = _weights_and_inputs(matrix, inputs, rows, cols, block, seed, vectors, v_read)
    if inputs is not None:  # activations → row voltages, full scale v_read
        batch = batch * (v_read / (float(abs(batch).max()) or 1.0))
    result = analog_tiles(weights, batch, tile, g_min=g_min, g_max=g_max, r_wire=r_wire, v_read=v_read)
    report = {
        "matrix": origin, "shape": list(weights.shape), "seed": seed, "inputs": source, "vectors": int(len(batch)),
        "r_wire_ohm": r_wire, "v_read_V": v_read, "g_min_S": g_min, "g_max_S": g_max, "tile": tile, **result,
    }
    lines = [
        f"matrix: {origin} {weights.shape[0]}x{weights.shape[1]} (seed {seed}), inputs: {source}, r_wire {r_wire} ohm",
        f"NF            {report['nf_before']:.5f} -> {report['nf_after']:.5f}  ({100 * report['nf_reduction']:.1f}% lower)",
        f"output error  {report['output_error_before']:.5f} -> {report['output_error_after']:.5f}",
        f"ideal output unchanged by the remap: {report['ideal_unchanged']}",
    ]
    if len(result["tiles"]) > 1:  # type: ignore[arg-type]
        lines.insert(1, f"tiles: {len(result['tiles'])} of at most {tile}x{2 * (tile // 2)} cells; NF means over tiles")  # type: ignore[arg-type]
    if methods:
        from cosim.crossbar.mdm import Remap, analog_compensation

        if len(result["tiles"]) > 1:  # type: ignore[arg-type]
            raise CosimError("--compensation compares one crossbar; leave out --tile for analog weights")
        if "insitu" in methods:
            raise CosimError("--compensation insitu needs programmed devices; cosim mdm reads exact conductances "
                             "(use cosim s4d for in-situ write-verify)")
        probe_seed = seed + 2  # gain calibration's known input vectors
        compensated = analog_compensation(weights, batch, Remap.from_dict(result), methods, g_min=g_min, g_max=g_max,
                                          r_wire=r_wire, v_read=v_read, probe_seed=probe_seed)
        for row in compensated:
            lines.append(f"compensation {row['compensation']:<10} output error vs wanted {row['output_error_before']:.4g} -> "
                         f"{row['output_error_after']:.4g} with MDM ({row['mdm_effect']})")
        report["compensation"] = compensated
        report["probe_seed"] = probe_seed
    return report, lines


def _mdm_sliced(
    matrix: Optional[Path], inputs: Optional[Path], labels: Optional[Path], mlp: Optional[Path], rows: int, cols: int,
    block: int, seed: int, vectors: int, r_wire: float, v_read: float, g_min: float, g_max: float, weight_bits: int,
    slice_bits: int, on_off: Optional[float], tile: int, signed: str, encoding: str, input_bits: int, devices: str,
    device_model: Optional[Path], device_seed: int, backend: str, mdm_columns: str, methods: list[str],
) -> tuple[dict[str, object], list[str]]:
    """Bit-sliced tiles (and, with ``mlp``, the accuracy of a trained network)."""
    from cosim.crossbar.tiled import SlicedStudy, load_mlp

    layers = load_mlp(mlp) if mlp is not None else None
    if layers is not None and matrix is None:
        if inputs is None:
            raise CosimError("--mlp needs --inputs (the network's input vectors)")
        from cosim.crossbar.config import load_matrix

        shapes = " -> ".join(str(layer.weights.shape[0]) for layer in layers) + f" -> {layers[-1].weights.shape[1]}"
        weights, origin = layers[0].weights, f"{mlp} (network {shapes}; every layer on its own activations)"
        batch, source = load_matrix(inputs, "inputs"), str(inputs)
        if batch.shape[1] != weights.shape[0]:
            raise CosimError(f"{inputs}: {batch.shape[1]} inputs per vector, the network's W0 has {weights.shape[0]} rows")
    else:
        weights, origin, batch, source = _weights_and_inputs(matrix, inputs, rows, cols, block, seed, vectors, v_read)
    unsupported = sorted(set(methods) - {"none", "gain"})
    if unsupported:
        raise CosimError(f"bit-sliced tiles support --compensation none or gain, not {unsupported[0]}")
    truth = None
    if labels is not None:
        from cosim.crossbar.tiled import load_labels

        truth = load_labels(labels, len(batch))
    study = SlicedStudy(
        weight_bits=weight_bits, slice_bits=slice_bits, on_off=on_off, g_on=g_max, g_off=g_min, tile=tile,
        signed=signed, encoding=encoding, input_bits=input_bits, v_read=v_read, r_wire=r_wire,
        devices=devices, device_model=device_model, device_seed=device_seed, backend=backend, columns=mdm_columns,
        compensation="gain" in methods,
    )
    from cosim.commands._progress import tracking

    with tracking("tiles") as advance:
        report = study.run(weights, batch, layers=layers, labels=truth, progress=advance)
    report = {"matrix": origin, "shape": list(weights.shape), "inputs": source, "vectors": int(len(batch)), **report}
    lines = [
        f"matrix: {origin}" + ("" if layers else f" {weights.shape[0]}x{weights.shape[1]}") + f", inputs: {source}",
        f"bit-sliced: {weight_bits}-bit weights in {slice_bits}-bit slices ({signed}), ON/OFF {report['on_off']:.3g}, "
        f"{len(report['tiles'])} tiles of at most {tile}x{tile}, {encoding} inputs, r_wire {r_wire} ohm",  # type: ignore[arg-type]
        f"NF (mean over tiles)  {report['nf_before']:.5f} -> {report['nf_after']:.5f}  ({100 * report['nf_reduction']:.1f}% lower)",
        f"NF lower per tile     mean {100 * report['nf_reduction_mean_over_tiles']:.1f}%, best {100 * report['nf_reduction_best_tile']:.1f}%, "
        f"worst {100 * report['nf_reduction_worst_tile']:.1f}%",
        f"output error          {report['output_error_before']:.5f} -> {report['output_error_after']:.5f}",
        f"ideal output unchanged by the mapping: {report['ideal_unchanged']}",
    ]
    if "accuracy_wires" in report:
        lines.append(
            f"accuracy: float {report['accuracy_float']:.4f}, quantized wire-free {report['accuracy_quantized_wire_free']:.4f}, "
            f"wires {report['accuracy_wires']:.4f}, wires + MDM {report['accuracy_wires_mdm']:.4f}"
        )
    if "accuracy_wires_gain" in report:
        lines.append(f"accuracy with per-column gain compensation: wires {report['accuracy_wires_gain']:.4f}, "
                     f"wires + MDM {report['accuracy_wires_mdm_gain']:.4f}")
    return report, lines


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
    from cosim.commands._guard import check_figure_file, check_memory, check_output_file
    from cosim.fileio import atomic_path

    check_figure_file(output)
    if csv is not None:
        check_output_file(csv, "--csv")
    parsed = cfg.parse_config(cfg.load_toml(config), str(config))
    cells_total = parsed.rows * parsed.cols  # physical columns, differential or not
    check_memory(IRDROP_BYTES_BASE + IRDROP_BYTES_PER_CELL * cells_total,
                 f"IR-drop maps of a {parsed.rows}x{parsed.cols} crossbar")
    with _naming(config):
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
    worst = float(cells.row_drop[0].max() + cells.col_rise[0].max())
    typer.echo(f"wrote {output}: worst row drop {1e3 * cells.row_drop[0].max():.3f} mV, "
               f"column rise {1e3 * cells.col_rise[0].max():.3f} mV (sum {1e3 * worst:.3f} mV)")


def register(app: typer.Typer) -> None:
    """Add ``cosim netlist crossbar``, ``cosim irdrop`` and ``cosim mdm``."""
    netlist_group(app).command("crossbar")(netlist_crossbar)
    app.command("irdrop")(irdrop)
    app.command("mdm")(mdm)
