"""S4D command: ``cosim s4d [--config F.toml] [--seed S] -o DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def s4d(
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the report (created if needed)."),
    config: Optional[Path] = typer.Option(
        None, "--config",
        help="Study settings (TOML); defaults otherwise. Relative paths inside it are resolved against its folder.",
    ),
    seed: Optional[int] = typer.Option(
        None, "--seed", min=0, max=2**31 - 1,
        help="Input seed (overrides the file); device seeds default to seed, seed+1, ... (all recorded).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Compare circuit-level S4D kernels with the ideal model; write a report to DIR.

    Crossbars with wires and programmed devices, raw and compensated, with and without MDM;
    writes tables, figures and report.md.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cosim.s4d.config import load_study_config
    from cosim.s4d.report import write_report
    from cosim.s4d.study import run_s4d_study, study_work_units

    console = Console(stderr=True)
    settings = load_study_config(config, seed)
    columns = (TextColumn("s4d {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=quiet, transient=False) as progress:
        task = progress.add_task("starting", total=study_work_units(settings) + 1)

        def advance(label: str) -> None:
            progress.update(task, advance=1, description=label)

        result = run_s4d_study(settings, advance)
        progress.update(task, description="writing the report")
        written = write_report(result, output)
        progress.update(task, advance=1, description="done")
    typer.echo(f"wrote {len(written)} files to {output} (device seeds {settings.device_seeds()}, input seed {settings.seed})")


def register(app: typer.Typer) -> None:
    """Add ``cosim s4d``."""
    app.command("s4d")(s4d)
