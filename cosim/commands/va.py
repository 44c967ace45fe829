"""``cosim va``: render the generative ReRAM model as Verilog-A (OpenVAF/OSDI)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cosim.errors import CosimError


def va_command(
    output: Path = typer.Option(..., "-o", "--output", help="Verilog-A file to write"),
    model: Optional[Path] = typer.Option(None, "--model", help="model JSON (default: the shipped default model)"),
    order: Optional[int] = typer.Option(None, "-J", "--order", min=0,
                                        help="truncated MA order J (default: the Python reference default)"),
    module: str = typer.Option("cosim_reram", "--module", help="Verilog-A module name"),
    latch: bool = typer.Option(True, "--latch/--no-latch",
                               help="hold the per-cycle features in internal nodes (faster)"),
) -> None:
    """Render the device model's Verilog-A source (compile with openvaf-r, load with pre_osdi)."""
    from cosim.device.modelfile import DEFAULT_MA_ORDER, load_model
    from cosim.paths import DEFAULT_MODEL
    from cosim.veriloga import RenderOptions, write_reram

    try:
        m = load_model(model or DEFAULT_MODEL)
        options = RenderOptions(order=DEFAULT_MA_ORDER if order is None else order, module=module, latch=latch)
        path = write_reram(m, output, options)
    except CosimError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"wrote {path} (module {module}, J={options.order}, latch={'on' if latch else 'off'})")


def register(app: typer.Typer) -> None:
    """Add ``cosim va`` to the application."""
    app.command("va")(va_command)
