"""``cosim demo``: the main job on embedded defaults (see :mod:`cosim.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

DEFAULT_OUTPUT = Path("out/demo")


def demo_command(
    output: Path = typer.Option(DEFAULT_OUTPUT, "-o", "--output", help="Folder for every output (created if needed)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="Seed of every random draw (all recorded)."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes (about a minute; used by the tests)."),
) -> None:
    """Run the whole chain on embedded defaults; write DIR/report.md and a summary.

    Synthesize measurements, fit, compile the Verilog-A, cycle one device in ngspice vs
    Python, run S4D on crossbars raw and compensated, with and without MDM.
    """
    from rich.console import Console

    from cosim.demo import DemoSettings, run_demo, summary_table

    console = Console()
    if console.width < 120:  # not a terminal, or a narrow one: keep the summary rows readable
        console = Console(width=120)
    result = run_demo(output, DemoSettings.create(seed, quick), console)
    console.print(summary_table(result))
    console.print(f"report: {result.output / 'report.md'}  manifest: {result.output / 'manifest.json'}",
                  highlight=False, soft_wrap=True)
    if not result.ok:
        failed = ", ".join(f"{r.key} ({r.status})" for r in result.stages if r.status != "ok")
        typer.echo(f"error: demo stages did not complete: {failed}", err=True)
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``cosim demo``."""
    app.command("demo")(demo_command)
