"""Batch commands: ``cosim batch SWEEP.toml -o DIR`` and ``cosim report DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _stop_on_sigterm(out: Path) -> None:
    """On SIGTERM: kill the pool's workers and jobs, say so, exit 143 at once.

    Finished jobs are safe (each part file is written atomically); the folder's lock goes
    with the process. See :func:`cosim.spice._process.exit_on_sigterm`.
    """
    from cosim.batch.runner import kill_local_pools
    from cosim.spice._process import exit_on_sigterm

    exit_on_sigterm(
        f"error: terminated (SIGTERM); finished jobs are kept in {out}, rerun to resume",
        cleanup=kill_local_pools,
    )


def batch(
    sweep: Path = typer.Argument(..., help="Sweep file (TOML), see docs/batch.md."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (created; resumable)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", "-j", help="Local worker processes (default: usable CPUs)."
    ),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: local pool)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Accept an output folder holding a different sweep config."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Rerun jobs that failed in an earlier run."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Run a parameter sweep; finished jobs in OUT are kept and skipped on a rerun."""
    from rich.console import Console

    from cosim.batch.config import load_sweep
    from cosim.batch.runner import FAILED_STATUSES, run_sweep

    from cosim.commands._guard import check_output_folder

    _stop_on_sigterm(out)
    check_output_folder(out, "--out")
    loaded = load_sweep(sweep)
    counts = run_sweep(
        loaded,
        out,
        workers=workers,
        scheduler=scheduler,
        force=force,
        retry_failed=retry_failed,
        show_progress=progress,
    )
    failed = sum(counts[s] for s in FAILED_STATUSES)
    summary = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    Console(stderr=False).print(
        f"{loaded.config.name}: {len(loaded.jobs)} jobs ({summary}); results in {out}"
    )
    if failed:
        typer.echo(f"{failed} job(s) failed; see `cosim report {out}`", err=True)


def report(
    folder: Path = typer.Argument(..., help="Output folder of `cosim batch`."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Result column to plot."),
    x: Optional[str] = typer.Option(None, "--x", help="Grid parameter on the plot's x axis."),
) -> None:
    """Summarise a sweep: status counts, mean/std over seeds per grid point, a plot, report.md."""
    from rich.console import Console
    from rich.table import Table

    from cosim.batch.report import build_report, terminal_tables
    from cosim.commands._progress import working

    with working(f"reading {folder} and writing its report"):
        rep = build_report(folder, metric=metric, x=x)
    console = Console()
    results, notes = terminal_tables(rep.aggregate, width=console.width, first=rep.metric)
    for title, frame in [("status", rep.status), *results]:
        table = Table(title=title)
        for column in frame.columns:
            table.add_column(str(column), overflow="fold")
        for row in frame.head(40).itertuples(index=False):
            table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
        console.print(table)
    if len(rep.aggregate) > 40:
        console.print(f"(first 40 of {len(rep.aggregate)} grid points; all in {rep.markdown_path})")
    for note in notes:
        console.print(note)
    console.print(f"report: {rep.markdown_path}")
    if rep.figure_path:
        console.print(f"figure: {rep.figure_path}")


def register(app: typer.Typer) -> None:
    """Add ``batch`` and ``report`` to the ``cosim`` command line."""
    app.command("batch")(batch)
    app.command("report")(report)
