"""Training and deployment commands: ``cosim train`` and ``cosim deploy`` (need ``cosim[train]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train(
    output: Path = typer.Option(..., "-o", "--output", help="Run folder (created if needed)."),
    task: Optional[str] = typer.Option(None, "--task", help="Built-in task: digits, gunpoint or coffee."),
    data: Optional[Path] = typer.Option(None, "--data", help="User data set (.npz with X_train, y_train, X_test, y_test)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Training settings (TOML); defaults otherwise."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**31 - 1, help="Seed of weights, batches, dropout and noise (overrides the file)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train an S4D classifier on the CPU; write the model and its metrics to RUN.

    Optionally quantization- and noise-aware, pruned; writes model.npz, test_split.npz,
    train.json and metrics.json.
    """
    from cosim.train.config import load_train_config
    from cosim.train.trainer import train_run

    settings = load_train_config(config, seed=seed, task=task, data=data)
    result = train_run(settings, output, progress=not quiet)
    m = result.metrics
    typer.echo(f"test accuracy {m['test_accuracy']:.4f} on {m['n_test']} samples ({m['bits']}, {m['variant']}); "
               f"wrote {len(result.files)} files to {output} (seed {settings.seed})")


def deploy(
    run: Path = typer.Argument(..., help="Run folder written by `cosim train`."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for accuracy.csv, figures and report.md."),
    config: Optional[Path] = typer.Option(None, "--config", help="Deployment settings (TOML); defaults otherwise."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Measure a trained model's test accuracy on simulated crossbars; write DIR/report.md.

    Levels float, quantized, devices and devices_wires (nodal solver, compensation) over
    several device seeds, with an ngspice spot check; writes accuracy.csv and figures.
    """
    from cosim.train.config import load_deploy_config
    from cosim.train.deploy import deploy_run

    settings = load_deploy_config(config)
    result = deploy_run(run, output, settings, progress=not quiet)
    typer.echo(f"wrote {len(result.files)} files to {output} ({len(result.table)} rows, device seeds {settings.device_seeds})")


def register(app: typer.Typer) -> None:
    """Add ``cosim train`` and ``cosim deploy``."""
    app.command("train")(train)
    app.command("deploy")(deploy)
