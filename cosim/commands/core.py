"""Core commands: ``cosim doctor``, ``cosim compile``, ``cosim run``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cosim.errors import CosimError


class Backend(str, Enum):
    """Simulator backends selectable by ``cosim run``."""

    batch = "batch"
    pyspice = "pyspice"
    vacask = "vacask"


NGSPICE_SUFFIXES = (".cir", ".sp", ".spi", ".spice", ".net", ".ckt")
"""Netlist file suffixes of SPICE dialects (refused by the VACASK backend)."""


def _osdi_chain_row():
    """Compile the example resistor, solve a divider with it in batch ngspice, check the answer."""
    from cosim.compile import compile_va
    from cosim.paths import VERILOGA_DIR
    from cosim.toolchain import REMEDY, ToolStatus

    source = VERILOGA_DIR / "examples" / "res_va.va"
    try:
        from cosim.spice.batch import run_batch

        osdi = compile_va(source)
        netlist = (
            f"* cosim doctor\n.control\nset num_threads=1\npre_osdi {osdi}\n.endc\n"
            ".options klu\n.model rva res_va\nV1 a 0 DC 1\nR1 a b 1k\nN1 b 0 rva r=3k\n.op\n.end\n"
        )
        value = float(run_batch(netlist, timeout_s=60)["v(b)"][0])
    except CosimError as exc:
        return ToolStatus("OSDI chain", False, "-", str(source), str(exc).splitlines()[0], REMEDY)
    if abs(value - 0.75) > 1e-12:
        detail = f"res_va divider gave {value!r} V, expected 0.75 V"
        return ToolStatus("OSDI chain", False, "-", str(osdi), detail, REMEDY)
    return ToolStatus("OSDI chain", True, "-", str(osdi), "res_va compiled, loaded, solved")


def doctor() -> None:
    """Check ngspice (>= 44, OSDI), libngspice, openvaf-r and VACASK; print versions."""
    from rich.console import Console
    from rich.table import Table

    from cosim.commands._progress import working
    from cosim.toolchain import toolchain_report

    with working("checking ngspice, libngspice, openvaf-r, VACASK and the OSDI chain"):
        rows = toolchain_report()
        if all(row.ok for row in rows if row.name in ("ngspice", "openvaf-r")):
            rows.append(_osdi_chain_row())
    table = Table(title="cosim toolchain")
    for column in ("tool", "status", "version", "path", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = "[green]ok[/green]" if row.ok else "[red]MISSING[/red]"
        table.add_row(row.name, status, row.version, row.path, row.detail)
    console = Console()
    if not console.is_terminal:  # logs and CI: do not fold paths at 80 columns
        console = Console(width=200)
    console.print(table)
    missing = [row for row in rows if not row.ok]
    for row in missing:
        typer.echo(f"{row.name}: {row.detail}\n  {row.remedy}", err=True)
    if missing:
        raise typer.Exit(code=1)


def compile_command(
    source: Path = typer.Argument(..., help="Verilog-A file (.va)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="OSDI file to write"),
    opt_level: int = typer.Option(3, "-O", "--opt-level", help="optimisation level 0-3"),
    lint: bool = typer.Option(True, "--lint/--no-lint",
                              help="warn about hidden state, $random, events and idt initial conditions"),
    lint_only: bool = typer.Option(False, "--lint-only", help="only lint (exit 1 if there are warnings)"),
) -> None:
    """Compile a Verilog-A file to OSDI with openvaf-r (cached); print the library path."""
    from cosim.commands._guard import check_output_file
    from cosim.commands._progress import working
    from cosim.compile import compile_va
    from cosim.valint import lint_file

    if output is not None:
        check_output_file(output)
    if lint or lint_only:
        warnings = lint_file(source)
        for warning in warnings:
            typer.echo(str(warning), err=True)
        if lint_only:
            typer.echo(f"{source}: {len(warnings)} warning(s)")
            raise typer.Exit(code=1 if warnings else 0)
    with working(f"compiling {source} with openvaf-r (cached)"):
        result = compile_va(source, output, opt_level=opt_level)
    typer.echo(str(result))


def _run_batch_with_progress(netlist: Path, timeout_s: float):
    """Run a netlist file in batch ngspice; a ``.tran`` shows its simulated time on a bar."""
    from cosim.commands._progress import tracking
    from cosim.spice.batch import run_batch

    with tracking(f"{netlist.name} .tran", lambda reached, stop: f"t = {reached:.3g} of {stop:.3g} s") as show:
        return run_batch(netlist, timeout_s=timeout_s, progress=show)


def run_command(
    netlist: Path = typer.Argument(..., help="ngspice netlist (.cir) or VACASK netlist (.sim)"),
    output: Path = typer.Option(..., "-o", "--output", help="Parquet file for the vectors"),
    backend: Optional[Backend] = typer.Option(
        None,
        "--backend",
        help="ngspice subprocess (batch), in-process libngspice (pyspice) or VACASK (vacask: "
        "its own netlist dialect, .sim files only; it cannot run the ngspice netlists cosim "
        "writes); default: vacask for .sim files, else batch",
    ),
    timeout: float = typer.Option(600.0, "--timeout", help="time limit in seconds"),
) -> None:
    """Simulate NETLIST and write every vector (long format) to a Parquet file."""
    from cosim.commands._guard import check_output_file
    from cosim.fileio import write_frame_atomic
    from cosim.spice._process import check_timeout, exit_on_sigterm

    if backend is None:
        backend = Backend.vacask if netlist.suffix.lower() == ".sim" else Backend.batch
    # SIGTERM: kill the simulator, remove its folder and any partial output, then exit 143
    exit_on_sigterm(f"error: {netlist}: terminated (SIGTERM); the simulator was stopped")
    timeout = check_timeout(timeout, "--timeout")
    check_output_file(output)
    if backend is Backend.vacask:  # VACASK's own dialect: run the file where it lies
        from cosim.spice.vacask import run_vacask

        if netlist.suffix.lower() in NGSPICE_SUFFIXES:
            raise CosimError(
                f"{netlist}: --backend vacask runs VACASK netlists (.sim) only; "
                f"{netlist.suffix} files (and every netlist cosim writes) are ngspice "
                "netlists: use --backend batch or --backend pyspice"
            )

        result = run_vacask(netlist, timeout_s=timeout)
    elif backend is Backend.batch:
        result = _run_batch_with_progress(netlist, timeout)
    else:
        from cosim.spice.pyspice_backend import run_pyspice

        result = run_pyspice(netlist, timeout_s=timeout)  # relative paths: beside it
    frame = result.to_long_frame()
    write_frame_atomic(output, frame)
    typer.echo(
        f"{netlist}: {len(result.plots)} plot(s), {len(frame)} rows -> {output} "
        f"({result.backend}, {result.elapsed_s:.3f} s)"
    )


def register(app: typer.Typer) -> None:
    """Attach the core commands to the top-level app."""
    app.command("doctor")(doctor)
    app.command("compile")(compile_command)
    app.command("run")(run_command)
