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
    from cosim.commands._progress import stepping
    from cosim.s4d.config import load_study_config
    from cosim.s4d.report import write_report
    from cosim.s4d.study import run_s4d_study, study_work_units

    settings = load_study_config(config, seed)
    with stepping("s4d", study_work_units(settings) + 1, quiet=quiet) as step:
        result = run_s4d_study(settings, step)
        step("writing the report", 0)
        written = write_report(result, output)
        step("done")
    typer.echo(f"wrote {len(written)} files to {output} (device seeds {settings.device_seeds()}, input seed {settings.seed})")


def register(app: typer.Typer) -> None:
    """Add ``cosim s4d``."""
    app.command("s4d")(s4d)
