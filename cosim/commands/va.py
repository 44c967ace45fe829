"""``cosim va``: render the generative ReRAM model as Verilog-A (OpenVAF/OSDI)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


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
    from cosim.device.modelfile import (DEFAULT_MA_ORDER, MIN_MA_VARIANCE_CAPTURED, load_model,
                                        ma_variance_captured)
    from cosim.paths import DEFAULT_MODEL
    from cosim.veriloga import RenderOptions, write_reram

    from cosim.commands._guard import check_output_file

    check_output_file(output)
    m = load_model(model or DEFAULT_MODEL)
    options = RenderOptions(order=DEFAULT_MA_ORDER if order is None else order, module=module, latch=latch)
    path = write_reram(m, output, options)
    typer.echo(f"wrote {path} (module {module}, J={options.order}, latch={'on' if latch else 'off'})")
    kept = ma_variance_captured(m.var_lags, m.var_chol, options.order)
    if kept.min() < MIN_MA_VARIANCE_CAPTURED:
        worst = int(kept.argmin())
        typer.echo(f"warning: MA({options.order}) keeps {kept[worst]:.3g} of the {m.features[worst]} "
                   f"variance (< {MIN_MA_VARIANCE_CAPTURED}); use a larger -J for statistics",
                   err=True)


def library_list() -> None:
    """List the compact models of veriloga/library/ with their state node and SET polarity."""
    from cosim.library import MODELS

    for model in MODELS.values():
        polarity = "negative" if model.set_sign < 0 else "positive"
        typer.echo(f"{model.name:14s} module {model.module:20s} state node {model.state_node} "
                   f"(initial: {model.state_param}), SET at {polarity} U  [{model.reference}]")


def library_iv(
    name: str = typer.Argument(..., help="library model: vteam or stanford_pku"),
    output: Path = typer.Option(..., "-o", "--output", help="figure to write (.png, .pdf, .svg)"),
    v_peak: float = typer.Option(1.5, "--v-peak", help="sweep amplitude [V]"),
    leg: float = typer.Option(5e-6, "--leg", help="duration of each quarter of the sweep \\[s]"),
) -> None:
    """Single-device I-V hysteresis of a library model (ngspice transient, triangular sweeps)."""
    from cosim.commands._guard import check_figure_file
    from cosim.library import iv_figure

    check_figure_file(output)
    path = iv_figure(name, output, v_peak=v_peak, leg=leg)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``cosim va`` and ``cosim library`` to the application."""
    app.command("va")(va_command)
    library = typer.Typer(no_args_is_help=True, help="Compact-model library (veriloga/library/).")
    library.command("list")(library_list)
    library.command("iv")(library_iv)
    app.add_typer(library, name="library")
